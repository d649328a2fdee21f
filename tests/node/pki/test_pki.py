"""`ewx pki init`: a development federation on disk (node/pki/_pki.py)."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.config import NodeConfig
from node.crypto import KEY_PURPOSES, PAYLOAD_ALERT, verify_signature
from node.errors import ConfigError, RefusedOperation, UsageError
from node.ids import COUNTRIES, Country
from node.pki import (
    init_federation,
    load_ed25519_private_key,
    parse_countries,
    read_private_key_pem,
    write_private_key,
)
from node.trust import Trust, node_dns_name, node_uri

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
PRIVATE_FILES = ("ca/ca.key", "tls/node.key", "keys/alert.key", "keys/log.key", "keys/witness.key")
PUBLIC_FILES = ("ca/ca.pem", "tls/node.pem", "node.toml")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One KR/US/JP federation for the whole module; tests only read it."""
    out = tmp_path_factory.mktemp("pki") / "fed"
    init_federation(out, now=NOW)
    return out


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_returns_trust_file_and_writes_every_file(federation: Path) -> None:
    assert (federation / "federation.json").is_file()
    for country in COUNTRIES:
        for name in PRIVATE_FILES + PUBLIC_FILES:
            assert (federation / country / name).is_file(), f"{country}/{name}"


def test_private_keys_are_0600_and_their_folders_0700(federation: Path) -> None:
    for country in COUNTRIES:
        root = federation / country
        assert _mode(root) == 0o700
        for folder in ("ca", "tls", "keys"):
            assert _mode(root / folder) == 0o700
        for name in PRIVATE_FILES:
            assert _mode(root / name) == 0o600, f"{country}/{name}"


def test_ca_is_a_self_signed_path_length_zero_national_ca(federation: Path) -> None:
    for country in COUNTRIES:
        ca = _certificate(federation / country / "ca" / "ca.pem")
        assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
            f"EWX {country} National CA (development)"
        )
        assert ca.subject == ca.issuer
        ca.verify_directly_issued_by(ca)
        assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
        assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]

        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical
        assert constraints.value.ca
        assert constraints.value.path_length == 0
        usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical
        assert usage.value.key_cert_sign
        assert usage.value.crl_sign
        assert not usage.value.digital_signature
        ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

        assert ca.not_valid_before_utc == NOW - timedelta(hours=1)
        assert ca.not_valid_after_utc == NOW.replace(year=NOW.year + 10)


def test_node_certificate_names_its_node(federation: Path) -> None:
    serials = set()
    for country in COUNTRIES:
        cert = _certificate(federation / country / "tls" / "node.pem")
        ca = _certificate(federation / country / "ca" / "ca.pem")
        serials.add(cert.serial_number)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
            f"ewx-node-{country.lower()}"
        )
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [node_dns_name(country)]
        assert names.get_values_for_type(x509.UniformResourceIdentifier) == [node_uri(country)]
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert not constraints.ca
        authority = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ca_subject_key = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert authority.key_identifier == ca_subject_key.digest
        assert cert.not_valid_after_utc == NOW + timedelta(days=397)
        assert cert.not_valid_before_utc == NOW - timedelta(hours=1)
    assert len(serials) == len(COUNTRIES)


def test_node_certificate_verifies_against_its_own_ca_only(federation: Path) -> None:
    for country in COUNTRIES:
        cert = _certificate(federation / country / "tls" / "node.pem")
        cert.verify_directly_issued_by(_certificate(federation / country / "ca" / "ca.pem"))
        for other in COUNTRIES:
            if other == country:
                continue
            other_ca = _certificate(federation / other / "ca" / "ca.pem")
            # Issuer names differ, so cryptography refuses before the signature.
            with pytest.raises((ValueError, InvalidSignature)):
                cert.verify_directly_issued_by(other_ca)


def test_node_toml_loads_with_ports_in_country_order(federation: Path) -> None:
    for index, country in enumerate(COUNTRIES):
        config = NodeConfig.load(federation / country / "node.toml")
        assert config.node_id == country
        assert config.listen == f"127.0.0.1:{7401 + index}"
        assert config.trust_file == (federation / "federation.json").resolve()
        assert config.data_dir == (federation / country / "data").resolve()
        assert set(config.peers) == set(COUNTRIES) - {country}
        for peer, peer_config in config.peers.items():
            assert peer_config.address == f"127.0.0.1:{7401 + COUNTRIES.index(peer)}"
        config.load_trust()


def test_signers_load_and_match_the_trust_file(federation: Path) -> None:
    trust = Trust.load(federation / "federation.json")
    for country in COUNTRIES:
        signers = NodeConfig.load(federation / country / "node.toml").load_signers(trust)
        assert set(signers) == set(KEY_PURPOSES)
        for purpose, signer in signers.items():
            entry = trust.resolve_key(signer.key_id, purpose=purpose, at=NOW)
            assert entry.owner == country
            signature = signer.sign(PAYLOAD_ALERT, b"payload")
            assert verify_signature(trust.public_key(entry), PAYLOAD_ALERT, b"payload", signature)


def test_trust_file_lists_every_member_with_key_validity(federation: Path) -> None:
    trust = Trust.load(federation / "federation.json")
    assert trust.federation == "ewx-dev"
    assert trust.countries == COUNTRIES
    for country in COUNTRIES:
        ca_pem = (federation / country / "ca" / "ca.pem").read_bytes()
        assert trust.ca_bundle_pem([country]) == ca_pem
        for purpose in KEY_PURPOSES:
            (entry,) = trust.keys_of(country, purpose)
            assert entry.not_before == NOW - timedelta(hours=1)
            assert entry.not_after == NOW.replace(year=NOW.year + 2)


def test_second_run_is_refused(federation: Path) -> None:
    before = (federation / "federation.json").read_bytes()
    with pytest.raises(RefusedOperation, match=r"federation\.json already exists"):
        init_federation(federation, now=NOW)
    assert (federation / "federation.json").read_bytes() == before


def test_leftover_country_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "US").mkdir()
    with pytest.raises(RefusedOperation, match="US already exists"):
        init_federation(tmp_path, now=NOW)
    assert not (tmp_path / "KR").exists()


def test_subset_of_countries_with_own_ports(tmp_path: Path) -> None:
    countries: tuple[Country, ...] = ("JP", "KR")
    trust_path = init_federation(tmp_path, countries=countries, base_port=9100, federation="two", now=NOW)
    trust = Trust.load(trust_path)
    assert trust.countries == ("KR", "JP")
    assert trust.federation == "two"
    assert not (tmp_path / "US").exists()
    jp = NodeConfig.load(tmp_path / "JP" / "node.toml")
    assert jp.listen == "127.0.0.1:9100"
    assert {peer: p.address for peer, p in jp.peers.items()} == {"KR": "127.0.0.1:9101"}
    jp.load_trust()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"countries": ()}, "at least one"),
        ({"countries": ("KR", "KR")}, "repeat"),
        ({"base_port": 65535}, "no room"),
        ({"federation": "bad name"}, "federation name"),
        ({"host": ""}, "invalid host"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        init_federation(tmp_path, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_parse_countries() -> None:
    assert parse_countries("kr, JP") == ("KR", "JP")
    for bad in ("", "KR,CN", "KR,KR"):
        with pytest.raises(UsageError):
            parse_countries(bad)


def test_write_private_key_sets_0600_at_creation_even_with_open_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_private_key(tmp_path / "k.key", Ed25519PrivateKey.generate())
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "k.key") == 0o600
    load_ed25519_private_key(tmp_path / "k.key")


def test_write_private_key_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_private_key(path, Ed25519PrivateKey.generate())
    before = path.read_bytes()
    with pytest.raises(RefusedOperation, match="already exists"):
        write_private_key(path, Ed25519PrivateKey.generate())
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_key_file_accessible_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.key"
    write_private_key(path, Ed25519PrivateKey.generate())
    path.chmod(mode)
    with pytest.raises(ConfigError, match=rf"{path}.*group or others"):
        load_ed25519_private_key(path)
    with pytest.raises(ConfigError, match="group or others"):
        read_private_key_pem(path)


def test_tls_key_is_not_a_signing_key(federation: Path) -> None:
    path = federation / "KR" / "tls" / "node.key"
    with pytest.raises(ConfigError, match=rf"{path}.*not an Ed25519 signing key"):
        load_ed25519_private_key(path)


def test_missing_or_garbage_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_ed25519_private_key(tmp_path / "absent.key")
    garbage = tmp_path / "garbage.key"
    fd = os.open(garbage, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(ConfigError, match="does not hold a PEM private key"):
        load_ed25519_private_key(garbage)
