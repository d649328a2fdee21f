"""The production PKI flow (node/pki/_pki.py): `ewx pki ca`, `ewx pki csr`, `ewx pki sign`,
and the check a node runs on its own certificate (`check_node_tls`).

Hostile requests are built with `cryptography` directly, as an attacker
with any tool would; each must be refused with a message naming the defect,
and the CLI must then write nothing.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.cli import _main as cli
from node.crypto import KEY_PURPOSES, key_id_for
from node.errors import ConfigError, RefusedOperation, UsageError
from node.ids import Country
from node.pki import (
    CertificateNotValidNow,
    check_node_csr,
    check_node_tls,
    create_national_ca,
    create_node_request,
    init_federation,
    issue_node_certificate,
    load_ec_private_key,
    load_ed25519_private_key,
    node_alt_names,
    node_csr,
    node_subject,
    public_key_fingerprint,
    sign_node_csr,
)
from node.trust import KeyEntry, Trust, ca_country, node_dns_name, node_id_from_certificate, node_uri

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
PEM = serialization.Encoding.PEM
KR_ONLY: tuple[Country, ...] = ("KR",)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development federation; its KR CA plays the national CA. Tests only read it."""
    out = tmp_path_factory.mktemp("pki") / "fed"
    init_federation(out, now=NOW)
    return out


def _ca(federation: Path, country: Country = "KR") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    root = federation / country / "ca"
    certificate = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
    return certificate, load_ec_private_key(root / "ca.key")


def _pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(PEM)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sign(federation: Path, csr_pem: bytes, **kwargs: object) -> x509.Certificate:
    ca_certificate, ca_key = _ca(federation)
    return sign_node_csr(csr_pem, ca_certificate=ca_certificate, ca_key=ca_key, now=NOW, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ csr
def test_csr_asks_for_exactly_the_node_identity(tmp_path: Path) -> None:
    request = create_node_request(tmp_path / "kr", country="KR", now=NOW)
    assert request.key_created and request.key_path == tmp_path / "kr" / "tls" / "node.key"
    assert _mode(request.key_path) == 0o600
    assert _mode(request.key_path.parent) == 0o700
    csr = x509.load_pem_x509_csr(request.csr_path.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject == node_subject("KR")
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ewx-node-kr"
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [node_dns_name("KR")]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [node_uri("KR")]
    assert len(list(csr.extensions)) == 1
    key = load_ec_private_key(request.key_path)
    assert request.fingerprint == public_key_fingerprint(key.public_key())
    assert not (tmp_path / "kr" / "keys").exists()


def test_csr_with_signing_keys_lists_their_trust_entries(tmp_path: Path) -> None:
    request = create_node_request(tmp_path, country="JP", signing_keys=True, now=NOW)
    document = json.loads((tmp_path / "keys" / "trust-entries.json").read_text())
    assert document["member"] == "JP"
    entries = [KeyEntry.model_validate({**entry, "owner": "JP"}) for entry in document["keys"]]
    assert [entry.purpose for entry in entries] == list(KEY_PURPOSES)
    assert tuple(entries) == request.entries
    for entry, path in zip(entries, request.signing_key_paths, strict=True):
        assert _mode(path) == 0o600
        assert entry.key_id == key_id_for("JP", entry.purpose, load_ed25519_private_key(path).public_key())
        assert entry.not_before == NOW - timedelta(hours=1)
        assert "revoked_from" not in json.dumps(document)


def test_csr_refuses_when_any_target_exists_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "log.key").write_text("an operator's key")
    with pytest.raises(RefusedOperation, match=r"log\.key already exists"):
        create_node_request(tmp_path, country="KR", signing_keys=True)
    assert not (tmp_path / "tls").exists()
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["log.key"]


def test_csr_for_an_existing_key_renews_the_certificate_only(federation: Path, tmp_path: Path) -> None:
    key_file = federation / "KR" / "tls" / "node.key"
    request = create_node_request(tmp_path, country="KR", key_file=key_file)
    assert not request.key_created and request.key_path == key_file
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == ["node.csr"]
    csr = x509.load_pem_x509_csr(request.csr_path.read_bytes())
    old = x509.load_pem_x509_certificate((federation / "KR" / "tls" / "node.pem").read_bytes())
    assert public_key_fingerprint(csr.public_key()) == public_key_fingerprint(old)  # type: ignore[arg-type]


# ------------------------------------------------------------------ sign
def test_signed_certificate_has_the_pki_init_profile(federation: Path, tmp_path: Path) -> None:
    request = create_node_request(tmp_path, country="KR", now=NOW)
    issued = _sign(federation, request.csr_path.read_bytes())
    developed = x509.load_pem_x509_certificate((federation / "KR" / "tls" / "node.pem").read_bytes())
    assert issued.subject == developed.subject and issued.issuer == developed.issuer
    assert issued.not_valid_before_utc == developed.not_valid_before_utc
    assert issued.not_valid_after_utc == developed.not_valid_after_utc
    assert issued.serial_number != developed.serial_number
    assert [(e.oid, e.critical) for e in issued.extensions] == [
        (e.oid, e.critical) for e in developed.extensions
    ]
    for kind in (x509.BasicConstraints, x509.KeyUsage, x509.ExtendedKeyUsage, x509.SubjectAlternativeName):
        assert issued.extensions.get_extension_for_class(
            kind
        ) == developed.extensions.get_extension_for_class(kind)
    assert issued.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    ) == developed.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert public_key_fingerprint(issued) == request.fingerprint
    # A peer accepts it as KR, for both ends of mutual TLS.
    trust = Trust.load(federation / "federation.json")
    for usage in (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH):
        assert (
            node_id_from_certificate(
                issued.public_bytes(PEM), trust=trust, allowed=KR_ONLY, at=NOW, usage=usage
            )
            == "KR"
        )


def test_sign_takes_the_validity_asked_for(federation: Path) -> None:
    issued = _sign(
        federation, _pem(node_csr("KR", ec.generate_private_key(ec.SECP256R1()))), validity=timedelta(days=30)
    )
    assert issued.not_valid_after_utc == NOW + timedelta(days=30)


def _csr(
    *,
    key: object = None,
    subject: x509.Name | None = None,
    names: list[x509.GeneralName] | None = None,
    extensions: list[x509.ExtensionType] = (),  # type: ignore[assignment]
) -> bytes:
    """A KR request, with any part replaced by what an attacker chose."""
    private_key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or node_subject("KR"))
    if names is None:
        builder = builder.add_extension(node_alt_names("KR"), critical=False)
    elif names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(private_key, Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private_key, algorithm).public_bytes(PEM)  # type: ignore[arg-type]


def _tampered() -> bytes:
    """A valid request whose subject was changed after signing (one byte)."""
    der = bytearray(x509.load_pem_x509_csr(_csr()).public_bytes(serialization.Encoding.DER))
    at = der.index(b"ewx-node-kr")
    der[at + len("ewx-node-k")] = ord("q")
    return x509.load_der_x509_csr(bytes(der)).public_bytes(PEM)


def _usage(**overrides: bool) -> x509.KeyUsage:
    fields = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    fields.update(overrides)
    return x509.KeyUsage(**fields)


KR_NAMES: list[x509.GeneralName] = [
    x509.DNSName(node_dns_name("KR")),
    x509.UniformResourceIdentifier(node_uri("KR")),
]

HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "another country's identity": (
        lambda: _csr(
            subject=node_subject("US"),
            names=[x509.DNSName(node_dns_name("US")), x509.UniformResourceIdentifier(node_uri("US"))],
        ),
        "asks for the identity urn:ewx:node:US, but this is the KR national CA",
    ),
    "extra DNS name": (
        lambda: _csr(names=[*KR_NAMES, x509.DNSName("mail.example.org")]),
        "subjectAltName must be exactly",
    ),
    "extra IP address": (
        lambda: _csr(names=[*KR_NAMES, x509.IPAddress(IPv4Address("10.0.0.1"))]),
        "subjectAltName must be exactly",
    ),
    "a second node URI": (
        lambda: _csr(names=[*KR_NAMES, x509.UniformResourceIdentifier(node_uri("JP"))]),
        "subjectAltName must be exactly",
    ),
    "no subjectAltName": (lambda: _csr(names=[]), "has no subjectAltName"),
    "subject of another node": (lambda: _csr(subject=node_subject("JP")), "request's subject is"),
    "bad signature": (_tampered, "signature does not verify"),
    "CA=true": (
        lambda: _csr(extensions=[x509.BasicConstraints(ca=True, path_length=None)]),
        "asks for a CA certificate",
    ),
    "keyCertSign": (
        lambda: _csr(extensions=[_usage(digital_signature=True, key_cert_sign=True)]),
        "asks for CA key usages",
    ),
    "an extension outside the profile": (
        lambda: _csr(extensions=[x509.OCSPNoCheck()]),
        "extensions node certificates do not carry",
    ),
    "RSA key": (
        lambda: _csr(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "carries an RSA key of 2048 bits; node certificates are ECDSA P-256",
    ),
    "Ed25519 key": (lambda: _csr(key=Ed25519PrivateKey.generate()), "carries an Ed25519 key"),
    "P-384 key": (lambda: _csr(key=ec.generate_private_key(ec.SECP384R1())), "an EC secp384r1 key"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_requests_are_refused(federation: Path, case: str) -> None:
    make, message = HOSTILE[case]
    with pytest.raises(RefusedOperation, match=message):
        _sign(federation, make())


def test_harmless_extensions_in_a_request_do_not_change_the_profile(federation: Path) -> None:
    # What OpenSSL puts in a request by default: CA=false, digitalSignature, some EKU.
    csr = _csr(
        extensions=[
            x509.BasicConstraints(ca=False, path_length=None),
            _usage(digital_signature=True, key_encipherment=True),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
        ]
    )
    issued = _sign(federation, csr)
    usages = issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not issued.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_check_node_csr_returns_the_requested_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    checked = check_node_csr(node_csr("US", key), country="US")
    assert public_key_fingerprint(checked) == public_key_fingerprint(key.public_key())


def test_ca_side_problems_are_usage_errors_or_refusals(federation: Path, tmp_path: Path) -> None:
    csr = _pem(node_csr("KR", ec.generate_private_key(ec.SECP256R1())))
    kr_ca, kr_key = _ca(federation)
    _, us_key = _ca(federation, "US")
    node_certificate = x509.load_pem_x509_certificate((federation / "KR" / "tls" / "node.pem").read_bytes())
    with pytest.raises(UsageError, match="CA key does not belong to the KR CA certificate"):
        sign_node_csr(csr, ca_certificate=kr_ca, ca_key=us_key, now=NOW)
    with pytest.raises(UsageError, match="not a CA certificate"):
        sign_node_csr(csr, ca_certificate=node_certificate, ca_key=kr_key, now=NOW)
    with pytest.raises(UsageError, match="validity must be 1 to 397 days"):
        sign_node_csr(csr, ca_certificate=kr_ca, ca_key=kr_key, now=NOW, validity=timedelta(days=398))
    with pytest.raises(RefusedOperation, match="would outlive the KR CA certificate"):
        sign_node_csr(
            csr, ca_certificate=kr_ca, ca_key=kr_key, now=NOW.replace(year=NOW.year + 10) - timedelta(days=30)
        )
    with pytest.raises(RefusedOperation, match="CA certificate is not valid now"):
        sign_node_csr(csr, ca_certificate=kr_ca, ca_key=kr_key, now=NOW - timedelta(days=1))
    with pytest.raises(UsageError, match="not a PEM certificate signing request"):
        sign_node_csr(kr_ca.public_bytes(PEM), ca_certificate=kr_ca, ca_key=kr_key, now=NOW)
    # A CA whose subject names no country cannot say whose node it may sign for.
    anonymous = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")]))
        .public_key(kr_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=900))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(kr_key.public_key()), critical=False)
        .sign(kr_key, hashes.SHA256())
    )
    with pytest.raises(UsageError, match=r"must name exactly one country \(C=...\)"):
        ca_country(anonymous)


# ------------------------------------------------------------------ ca
def test_national_ca_is_a_production_ca_of_its_country(tmp_path: Path) -> None:
    ca = create_national_ca(tmp_path / "ca", country="JP", now=NOW)
    assert _mode(ca.key_path) == 0o600 and _mode(ca.key_path.parent) == 0o700
    assert ca_country(ca.certificate) == "JP"
    assert ca.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "EWX JP National CA"
    assert ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert ca.certificate.not_valid_after_utc == NOW.replace(year=NOW.year + 10)
    with pytest.raises(RefusedOperation, match="already exists"):
        create_national_ca(tmp_path / "ca", country="JP")
    # It signs its own node's request, end to end.
    request = create_node_request(tmp_path / "node", country="JP", now=NOW)
    issued = sign_node_csr(
        request.csr_path.read_bytes(),
        ca_certificate=ca.certificate,
        ca_key=load_ec_private_key(ca.key_path),
        now=NOW,
    )
    issued.verify_directly_issued_by(ca.certificate)


# ------------------------------------------------------------------ the CLI
def _run(*argv: str) -> int:
    return cli.main(list(argv))


@pytest.mark.parametrize("command", ["ca", "csr", "sign"])
def test_cli_pki_commands_have_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _run("pki", command, "--help")
    assert exited.value.code == 0
    assert f"usage: ewx pki {command}" in capsys.readouterr().out


def test_cli_sign_writes_the_certificate_and_refuses_to_overwrite(
    federation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("pki", "csr", "--country", "kr", "--out", str(tmp_path / "node")) == 0
    shown = capsys.readouterr().out
    csr = tmp_path / "node" / "tls" / "node.csr"
    out = tmp_path / "node" / "tls" / "node.pem"
    ca = federation / "KR" / "ca"
    args = ("pki", "sign", "--ca-cert", str(ca / "ca.pem"), "--ca-key", str(ca / "ca.key"), "--csr", str(csr))
    assert _run(*args, "--out", str(out), "--days", "90") == 0
    signed = capsys.readouterr().out
    certificate = x509.load_pem_x509_certificate(out.read_bytes())
    # Both ends print the same key fingerprint, for the officers to compare.
    assert public_key_fingerprint(certificate) in shown and public_key_fingerprint(certificate) in signed
    assert f"{certificate.serial_number:x}" in signed
    assert _run(*args, "--out", str(out)) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["another country's identity", "bad signature", "CA=true", "RSA key"])
def test_cli_sign_refuses_hostile_requests_and_writes_nothing(
    federation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, message = HOSTILE[case]
    csr = tmp_path / "hostile.csr"
    csr.write_bytes(make())
    out = tmp_path / "node.pem"
    ca = federation / "KR" / "ca"
    code = _run(
        "pki", "sign", "--ca-cert", str(ca / "ca.pem"), "--ca-key", str(ca / "ca.key"),
        "--csr", str(csr), "--out", str(out),
    )  # fmt: skip
    assert code == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_sign_refuses_a_ca_key_others_can_read(federation: Path, tmp_path: Path) -> None:
    loose = tmp_path / "ca.key"
    loose.write_bytes((federation / "KR" / "ca" / "ca.key").read_bytes())
    loose.chmod(0o644)
    csr = tmp_path / "node.csr"
    csr.write_bytes(_csr())
    out = tmp_path / "node.pem"
    code = _run(
        "pki", "sign", "--ca-cert", str(federation / "KR" / "ca" / "ca.pem"), "--ca-key", str(loose),
        "--csr", str(csr), "--out", str(out),
    )  # fmt: skip
    assert code == 2 and not out.exists()


# ------------------------------------------------------ the node's own TLS
def _pair(federation: Path, country: Country = "KR") -> tuple[bytes, bytes]:
    root = federation / country / "tls"
    return (root / "node.pem").read_bytes(), (root / "node.key").read_bytes()


def _issue(
    federation: Path, *, country: Country = "KR", start: datetime = NOW, days: int = 30
) -> tuple[bytes, bytes]:
    ca_certificate, ca_key = _ca(federation, country)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = issue_node_certificate(
        country=country,
        public_key=key.public_key(),
        ca_certificate=ca_certificate,
        ca_key=ca_key,
        not_before=start,
        not_after=start + timedelta(days=days),
    )
    key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return certificate.public_bytes(PEM), key_pem


def test_check_node_tls_accepts_the_node_own_pair(federation: Path) -> None:
    trust = Trust.load(federation / "federation.json")
    certificate = check_node_tls(*_pair(federation), node_id="KR", trust=trust, at=NOW)
    assert certificate.subject == node_subject("KR")


def test_check_node_tls_refusals(federation: Path, tmp_path: Path) -> None:
    trust = Trust.load(federation / "federation.json")
    kr_pem, kr_key = _pair(federation)
    us_pem, us_key = _pair(federation, "US")
    other_pem, _ = _issue(federation)
    rogue = create_national_ca(tmp_path / "rogue", country="KR", now=NOW)
    request = create_node_request(tmp_path / "rogue-node", country="KR", now=NOW)
    rogue_pem = sign_node_csr(
        request.csr_path.read_bytes(),
        ca_certificate=rogue.certificate,
        ca_key=load_ec_private_key(rogue.key_path),
        now=NOW,
    ).public_bytes(PEM)
    rogue_key = request.key_path.read_bytes()
    cases = {
        "does not belong to the certificate": (other_pem, kr_key),
        "names node US, but this node is KR": (us_pem, us_key),
        "not issued by the KR national CA": (rogue_pem, rogue_key),
        "holds 2 certificates": (kr_pem + kr_pem, kr_key),
        "not a PEM certificate": (b"garbage", kr_key),
        "does not hold a PEM private key": (kr_pem, b"garbage"),
    }
    for message, (certificate_pem, key_pem) in cases.items():
        with pytest.raises(ConfigError, match=message) as caught:
            check_node_tls(certificate_pem, key_pem, node_id="KR", trust=trust, at=NOW)
        assert not isinstance(caught.value, CertificateNotValidNow), message


def test_check_node_tls_tells_an_expired_certificate_apart(federation: Path) -> None:
    trust = Trust.load(federation / "federation.json")
    expired = _issue(federation, start=NOW - timedelta(days=10), days=5)
    with pytest.raises(CertificateNotValidNow, match="expired at"):
        check_node_tls(*expired, node_id="KR", trust=trust, at=NOW)
    future = _issue(federation, start=NOW + timedelta(days=1))
    with pytest.raises(CertificateNotValidNow, match="not valid before"):
        check_node_tls(*future, node_id="KR", trust=trust, at=NOW)
