"""A peer's node id from its certificate (node/trust/_identity.py): one accept, each refusal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.errors import UnauthenticatedPeer
from node.ids import Country
from node.pki import init_federation, issue_node_certificate
from node.trust import Trust, node_dns_name, node_id_from_certificate, node_uri

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
AT = NOW + timedelta(days=1)
KR_PEERS: tuple[Country, ...] = ("US", "JP")


@dataclass(frozen=True)
class Federation:
    root: Path
    trust: Trust

    def node_pem(self, country: Country) -> bytes:
        return (self.root / country / "tls" / "node.pem").read_bytes()

    def ca(self, country: Country) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        folder = self.root / country / "ca"
        certificate = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return certificate, key


def _federation(root: Path) -> Federation:
    return Federation(root=root, trust=Trust.load(init_federation(root, now=NOW)))


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return _federation(tmp_path_factory.mktemp("identity") / "fed")


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    """A second federation whose CAs nobody in `fed` trusts."""
    return _federation(tmp_path_factory.mktemp("identity") / "rogue")


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _mint(
    fed: Federation,
    *,
    issuer: Country,
    uris: Sequence[str],
    not_before: datetime = NOW,
    not_after: datetime = NOW + timedelta(days=30),
    usages: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    is_ca: bool = False,
    with_san: bool = True,
) -> bytes:
    """A certificate signed by `issuer`'s real CA key, shaped as each test needs."""
    ca_certificate, ca_key = fed.ca(issuer)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minted")]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if with_san:
        names: list[x509.GeneralName] = [x509.DNSName("minted.node.ewx")]
        names += [x509.UniformResourceIdentifier(uri) for uri in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _pem(builder.sign(ca_key, hashes.SHA256()))


def _refused(fed: Federation, pem: bytes, match: str, *, allowed: Sequence[Country] = KR_PEERS) -> None:
    with pytest.raises(UnauthenticatedPeer, match=match) as caught:
        node_id_from_certificate(pem, trust=fed.trust, allowed=allowed, at=AT)
    assert caught.value.reason == "peer_unauthenticated"


# ----------------------------------------------------------------- accept
def test_helpers() -> None:
    assert node_uri("KR") == "urn:ewx:node:KR"
    assert node_dns_name("KR") == "kr.node.ewx"
    assert node_dns_name("JP") == "jp.node.ewx"


@pytest.mark.parametrize("peer", KR_PEERS)
def test_accepts_a_peer_certificate_from_its_own_ca(fed: Federation, peer: Country) -> None:
    assert node_id_from_certificate(fed.node_pem(peer), trust=fed.trust, allowed=KR_PEERS, at=AT) == peer


def test_accepts_a_certificate_minted_by_the_right_ca(fed: Federation) -> None:
    pem = _mint(fed, issuer="US", uris=[node_uri("US"), "https://example.org/not-an-identity"])
    assert node_id_from_certificate(pem, trust=fed.trust, allowed=KR_PEERS, at=AT) == "US"


def test_server_auth_check_for_the_client_side(fed: Federation) -> None:
    pem = _mint(fed, issuer="JP", uris=[node_uri("JP")], usages=[ExtendedKeyUsageOID.SERVER_AUTH])
    _refused(fed, pem, "lacks the clientAuth extended key usage")
    country = node_id_from_certificate(
        pem, trust=fed.trust, allowed=["JP"], at=AT, usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    assert country == "JP"


# ----------------------------------------------------------------- refuse
def test_refuses_a_certificate_from_a_foreign_ca(fed: Federation, rogue: Federation) -> None:
    _refused(fed, rogue.node_pem("US"), "claiming US is not issued by the US national CA")


def test_refuses_a_certificate_issued_by_another_members_ca(fed: Federation) -> None:
    us_ca, us_key = fed.ca("US")
    impostor = issue_node_certificate(
        country="JP",
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        ca_certificate=us_ca,
        ca_key=us_key,
        not_before=NOW,
        not_after=NOW + timedelta(days=30),
    )
    _refused(fed, _pem(impostor), r"claiming JP is not issued by the JP national CA \(issuer: .*EWX US")


def test_refuses_a_jp_ca_certificate_claiming_us(fed: Federation) -> None:
    _refused(fed, _mint(fed, issuer="JP", uris=[node_uri("US")]), "claiming US is not issued by the US")


def test_refuses_own_node_id(fed: Federation) -> None:
    _refused(fed, fed.node_pem("KR"), "names KR, which is not an allowed peer")


def test_empty_allowlist_denies_everyone(fed: Federation) -> None:
    _refused(fed, fed.node_pem("US"), "names US, which is not an allowed peer", allowed=())


def test_refuses_a_member_missing_from_the_trust_file(fed: Federation, tmp_path: Path) -> None:
    two = Trust.load(init_federation(tmp_path, countries=("KR", "US"), now=NOW))
    with pytest.raises(UnauthenticatedPeer, match="JP, which has no CA in federation"):
        node_id_from_certificate(fed.node_pem("JP"), trust=two, allowed=KR_PEERS, at=AT)


def test_refuses_an_expired_certificate(fed: Federation) -> None:
    pem = _mint(fed, issuer="US", uris=[node_uri("US")], not_before=NOW - timedelta(days=30), not_after=NOW)
    _refused(fed, pem, "peer certificate of US is not valid at")


def test_refuses_a_certificate_not_yet_valid(fed: Federation) -> None:
    pem = _mint(fed, issuer="US", uris=[node_uri("US")], not_before=AT + timedelta(minutes=1))
    _refused(fed, pem, "peer certificate of US is not valid at")


def test_refuses_when_the_ca_itself_has_expired(fed: Federation) -> None:
    later = NOW.replace(year=NOW.year + 11)
    with pytest.raises(UnauthenticatedPeer, match="not valid at"):
        node_id_from_certificate(fed.node_pem("US"), trust=fed.trust, allowed=KR_PEERS, at=later)


def test_refuses_a_certificate_without_uri_san(fed: Federation) -> None:
    _refused(fed, _mint(fed, issuer="US", uris=[]), r"exactly one urn:ewx:node:<CC> URI SAN, found 0")


def test_refuses_a_certificate_without_any_san(fed: Federation) -> None:
    _refused(fed, _mint(fed, issuer="US", uris=[], with_san=False), "no subjectAltName")


def test_refuses_two_identities(fed: Federation) -> None:
    pem = _mint(fed, issuer="US", uris=[node_uri("US"), "URN:EWX:NODE:JP"])
    _refused(fed, pem, "found 2")


@pytest.mark.parametrize(
    ("uri", "message"),
    [("urn:ewx:node:CN", "unknown node 'CN'"), ("urn:ewx:node:us", "unknown node 'us'")],
)
def test_refuses_an_unknown_node_name(fed: Federation, uri: str, message: str) -> None:
    _refused(fed, _mint(fed, issuer="US", uris=[uri]), message)


def test_refuses_a_ca_certificate_as_peer(fed: Federation) -> None:
    _refused(fed, _mint(fed, issuer="US", uris=[node_uri("US")], is_ca=True), "is a CA certificate")


def test_refuses_a_certificate_without_extended_key_usage(fed: Federation) -> None:
    _refused(fed, _mint(fed, issuer="US", uris=[node_uri("US")], usages=()), "no extended key usage")


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", bytes(range(256))],
)
def test_refuses_garbage(fed: Federation, garbage: bytes) -> None:
    _refused(fed, garbage, "not a PEM certificate")


def test_refuses_more_than_one_certificate(fed: Federation) -> None:
    _refused(fed, fed.node_pem("US") + fed.node_pem("JP"), "exactly one peer certificate, got 2")


def test_needs_an_aware_time(fed: Federation) -> None:
    with pytest.raises(ValueError, match="aware"):
        node_id_from_certificate(
            fed.node_pem("US"), trust=fed.trust, allowed=KR_PEERS, at=AT.replace(tzinfo=None)
        )
