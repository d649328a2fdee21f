"""A development federation: per-country CA, node certificate, keys and config.

`ewx pki init --out DIR [--countries KR,US,JP]` (SPEC section 8) calls
`init_federation`, which writes, for each country CC::

    DIR/CC/ca/ca.key, ca.pem          ECDSA P-256 national CA, 10 years
    DIR/CC/tls/node.key, node.pem     ECDSA P-256 node certificate, 397 days
    DIR/CC/keys/{alert,log,witness}.key   Ed25519 signing keys (PKCS#8 PEM)
    DIR/CC/node.toml                  node configuration (node.config.NodeConfig)

and then `DIR/federation.json`, the trust file (node.trust) holding every
member's CA certificate and public signing keys. The trust file is written
last, so its presence marks a complete run; a second run into the same
directory is refused rather than overwriting keys.

Each country gets its own CA and no CA signs for another country (SPEC
section 2: no shared root). The CA keys sit beside the node for convenience;
this layout is for development and tests, not for an agency's production PKI,
where the CA key stays offline.

Private key files are created with mode 0600 in one step (O_CREAT|O_EXCL),
never chmod-ed afterwards, so there is no window in which another user could
open them; their directories are 0700.

The production flow keeps each CA key off the nodes (deploy/README.md,
"Production PKI"):

    ewx pki ca   --country KR --out DIR   `create_national_ca`: DIR/ca.key, DIR/ca.pem
    ewx pki csr  --country KR --out DIR   `create_node_request`, on the node:
                                          DIR/tls/node.key and DIR/tls/node.csr,
                                          with --signing-keys also DIR/keys/*.key and
                                          DIR/keys/trust-entries.json
    ewx pki sign --ca-cert --ca-key --csr --out   `sign_node_csr`, at the CA

`sign_node_csr` issues through `issue_node_certificate`, the same function
`ewx pki init` uses, so both paths give one certificate profile; it refuses a
request for any identity but the one node of the CA's own country.
`check_node_tls` is what a node runs on its own certificate and key, at
start and on every reload, before it presents them to a peer.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import tomli_w
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.crypto import KEY_PURPOSES, KeyPurpose, key_id_for, raw_public_key
from node.errors import (
    CertificateNotValidNow,
    ConfigError,
    InboundRejected,
    RefusedOperation,
    UsageError,
)
from node.files import GENESIS_FILE, read_bounded
from node.ids import COUNTRIES, Country
from node.parsing import parse_country
from node.trust import (
    FEDERATION_NAME,
    FORMAT,
    NODE_URI_PREFIX,
    KeyEntry,
    Member,
    Trust,
    ca_country,
    node_dns_name,
    node_id_from_certificate,
    node_uri,
)

TRUST_FILE_NAME: Final = "federation.json"
CONFIG_FILE_NAME: Final = "node.toml"

CA_VALIDITY_YEARS: Final = 10
NODE_CERT_VALIDITY: Final = timedelta(days=397)
"""The CA/Browser Forum ceiling; short enough that rotation gets practised."""
SIGNING_KEY_VALIDITY_YEARS: Final = 2
BACKDATE: Final = timedelta(hours=1)
"""Start of every validity period before `now`, so that a peer whose clock is
slightly behind still accepts freshly made certificates and keys."""

PRIVATE_FILE_MODE: Final = 0o600
PRIVATE_DIR_MODE: Final = 0o700
PUBLIC_FILE_MODE: Final = 0o644
MAX_KEY_FILE_BYTES: Final = 64 * 1024
"""A PEM private key is well under 1 KiB; the cap bounds what a misconfigured
path (a log file, a device) can make the node read."""

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
"""The private key types this module writes."""


# ------------------------------------------------------------------ files
def write_new_file(path: Path, data: bytes, *, mode: int) -> None:
    """Create `path` with `mode` and write `data`; refuse if it already exists.

    The mode is given to open(2) itself, so the file never exists with looser
    permissions (the umask can only narrow it).
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise RefusedOperation(f"{path} already exists; refusing to overwrite it") from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _make_private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        raise RefusedOperation(f"{path} already exists; refusing to overwrite it") from None


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write `key` as unencrypted PKCS#8 PEM to a new file of mode 0600.

    Raises RefusedOperation if `path` exists: a key is never overwritten.
    """
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    write_new_file(path, pem, mode=PRIVATE_FILE_MODE)


def read_private_key_pem(path: Path) -> bytes:
    """The bytes of a private key file, refused if group or others can access it.

    The mode is checked on the opened file (fstat), not on the path, so a
    swap between check and read cannot slip a different file through.
    Symbolic links are followed on purpose: secret stores often mount keys
    that way. Raises ConfigError naming the file.
    """
    try:
        with path.open("rb") as stream:
            status = os.fstat(stream.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise ConfigError(f"key file {path} is not a regular file")
            loose = stat.S_IMODE(status.st_mode) & 0o077
            if loose:
                raise ConfigError(
                    f"key file {path} is accessible by group or others "
                    f"(mode {stat.S_IMODE(status.st_mode):04o}); restrict it with: chmod 600 {path}"
                )
            data = stream.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"key file {path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key")
    return data


def load_ed25519_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an unencrypted PEM Ed25519 private key, checking the file's mode.

    Raises ConfigError naming the file if it is accessible by group or
    others, unreadable, not a PEM private key, encrypted, or not Ed25519.
    """
    data = read_private_key_pem(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"key file {path} is encrypted; EWX reads unencrypted PKCS#8 PEM") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"key file {path} does not hold a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 signing key")
    return key


# ------------------------------------------------------------ certificates
def _add_years(moment: datetime, years: int) -> datetime:
    """Same calendar day `years` later (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _name(country: Country, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EWX"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, digital_signature: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def issue_ca_certificate(
    *,
    country: Country,
    key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
    common_name: str | None = None,
) -> x509.Certificate:
    """A self-signed national CA certificate for `country`.

    path_length=0: the national CA signs node certificates only, never a
    subordinate CA, so a node certificate is always directly issued by it
    (which node.identity checks). The subject's C attribute names the
    country, which is how `sign_node_csr` knows whose CA it is.
    `common_name` defaults to the development CA's name.
    """
    name = _name(country, common_name or f"EWX {country} National CA (development)")
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def node_subject(country: Country) -> x509.Name:
    """The subject of `country`'s node certificate and of its CSR: C=CC, O=EWX, CN=ewx-node-cc."""
    return _name(country, f"ewx-node-{country.lower()}")


def node_alt_names(country: Country) -> x509.SubjectAlternativeName:
    """The node's names, and nothing else: DNS `<cc>.node.ewx` and URI `urn:ewx:node:<CC>`."""
    return x509.SubjectAlternativeName(
        [x509.DNSName(node_dns_name(country)), x509.UniformResourceIdentifier(node_uri(country))]
    )


def issue_node_certificate(
    *,
    country: Country,
    public_key: ec.EllipticCurvePublicKey,
    ca_certificate: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A node TLS certificate for `country`, issued by `ca_certificate`: the one profile.

    Both `ewx pki init` and `ewx pki sign` issue through here. It names the
    node in the URI SAN `urn:ewx:node:<CC>` (the identity that node.identity
    reads) and the DNS SAN `<cc>.node.ewx` (the TLS target name), and serves
    both ends of mutual TLS (serverAuth and clientAuth).
    """
    ca_key_id = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(node_subject(country))
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(node_alt_names(country), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


# -------------------------------------------------------------- federation
def parse_countries(text: str) -> tuple[Country, ...]:
    """Parse the CLI's `--countries KR,US,JP`; UsageError on a bad or repeated code."""
    codes = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not codes:
        raise UsageError("--countries needs at least one country code")
    countries = tuple(parse_country(code, refuse=lambda m: UsageError(f"--countries: {m}")) for code in codes)
    _check_countries(countries)
    return countries


def _check_countries(countries: Sequence[Country]) -> None:
    if not countries:
        raise UsageError("a federation needs at least one country")
    for country in countries:
        if country not in COUNTRIES:
            raise UsageError(f"unknown country {country!r}: expected one of {', '.join(COUNTRIES)}")
    if len(set(countries)) != len(countries):
        raise UsageError(f"countries repeat: {', '.join(countries)}")


def _address(host: str, port: int) -> str:
    # An IPv6 literal must be bracketed or its colons read as the port.
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _node_config(
    country: Country, *, addresses: dict[Country, str], keys: dict[KeyPurpose, str]
) -> dict[str, object]:
    """The node.toml document; paths are relative to the file's own folder."""
    return {
        "node_id": country,
        "listen": addresses[country],
        "data_dir": "data",
        "trust_file": f"../{TRUST_FILE_NAME}",
        "tls": {"certificate": "tls/node.pem", "private_key": "tls/node.key"},
        "keys": dict(keys),
        "peers": {peer: {"address": address} for peer, address in addresses.items() if peer != country},
    }


def _init_member(root: Path, *, country: Country, now: datetime, addresses: dict[Country, str]) -> Member:
    """Write one country's folder and return its trust file entry."""
    _make_private_dir(root)
    for part in ("ca", "tls", "keys", "data"):
        _make_private_dir(root / part)
    # Every member of a new federation starts with nothing: none need wait for
    # its peers' word on its history before publishing (node/service/_rejoin.py).
    (root / "data" / GENESIS_FILE).write_text("written by ewx pki init\n")

    pem = serialization.Encoding.PEM
    not_before = now - BACKDATE

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_certificate = issue_ca_certificate(
        country=country,
        key=ca_key,
        not_before=not_before,
        not_after=_add_years(now, CA_VALIDITY_YEARS),
    )
    write_private_key(root / "ca" / "ca.key", ca_key)
    write_new_file(root / "ca" / "ca.pem", ca_certificate.public_bytes(pem), mode=PUBLIC_FILE_MODE)

    node_key = ec.generate_private_key(ec.SECP256R1())
    node_certificate = issue_node_certificate(
        country=country,
        public_key=node_key.public_key(),
        ca_certificate=ca_certificate,
        ca_key=ca_key,
        not_before=not_before,
        not_after=now + NODE_CERT_VALIDITY,
    )
    write_private_key(root / "tls" / "node.key", node_key)
    write_new_file(root / "tls" / "node.pem", node_certificate.public_bytes(pem), mode=PUBLIC_FILE_MODE)

    entries: list[KeyEntry] = []
    key_paths: dict[KeyPurpose, str] = {}
    for purpose in KEY_PURPOSES:
        signing_key = Ed25519PrivateKey.generate()
        write_private_key(root / "keys" / f"{purpose}.key", signing_key)
        key_paths[purpose] = f"keys/{purpose}.key"
        public_key = signing_key.public_key()
        entries.append(
            KeyEntry(
                key_id=key_id_for(country, purpose, public_key),
                owner=country,
                purpose=purpose,
                public_key=raw_public_key(public_key),
                not_before=not_before,
                not_after=_add_years(now, SIGNING_KEY_VALIDITY_YEARS),
            )
        )

    config = _node_config(country, addresses=addresses, keys=key_paths)
    write_new_file(root / CONFIG_FILE_NAME, tomli_w.dumps(config).encode("utf-8"), mode=PUBLIC_FILE_MODE)
    return Member(ca_certificate=ca_certificate.public_bytes(pem).decode("ascii"), keys=tuple(entries))


def init_federation(
    out: Path,
    *,
    countries: Sequence[Country] = COUNTRIES,
    host: str = "127.0.0.1",
    base_port: int = 7401,
    federation: str = "ewx-dev",
    now: datetime | None = None,
) -> Path:
    """Create a development federation under `out`; return the trust file's path.

    Country `countries[i]` listens on `host:base_port+i`. Raises
    RefusedOperation if `out/federation.json` or any `out/<CC>` already
    exists (nothing is overwritten), UsageError on bad arguments.
    """
    _check_countries(countries)
    if not host or any(character.isspace() for character in host):
        raise UsageError(f"invalid host {host!r}")
    if not 1 <= base_port <= 65536 - len(countries):
        raise UsageError(f"base port {base_port} leaves no room for {len(countries)} ports below 65536")
    if not FEDERATION_NAME.fullmatch(federation):
        raise UsageError(f"invalid federation name {federation!r}: letters, digits, '.', '_' or '-'")
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise UsageError("now must be an aware datetime")
    # Whole seconds: X.509 has no finer resolution, and the trust file then
    # shows the same instants as the certificates.
    now = now.astimezone(UTC).replace(microsecond=0)

    trust_path = out / TRUST_FILE_NAME
    if trust_path.exists():
        raise RefusedOperation(f"{trust_path} already exists; refusing to create another federation there")
    for country in countries:
        if (out / country).exists():
            raise RefusedOperation(f"{out / country} already exists; refusing to overwrite it")
    out.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)

    addresses = {country: _address(host, base_port + index) for index, country in enumerate(countries)}
    members = {
        country: _init_member(out / country, country=country, now=now, addresses=addresses)
        for country in countries
    }
    trust = Trust(format=FORMAT, federation=federation, members=members)
    trust.save(trust_path)
    return trust_path


# ------------------------------------------------------------ production PKI
MAX_NODE_CERT_DAYS: Final = NODE_CERT_VALIDITY.days
"""`ewx pki sign --days` may not exceed this (397, the default)."""
MAX_PKI_INPUT_BYTES: Final = 64 * 1024
"""A CSR or a CA certificate is well under 4 KiB; the cap bounds a wrong path."""
TRUST_ENTRIES_FILE_NAME: Final = "trust-entries.json"
"""Written by `ewx pki csr --signing-keys`: the node's public keys for the trust file."""

_NODE_KEY_CURVE: Final = ec.SECP256R1.name
_CSR_EXTENSIONS_IGNORED: Final = {
    # The profile sets these itself; a request may carry them (as OpenSSL's
    # defaults do), but what it asks for there is not what it gets.
    x509.ExtendedKeyUsage.oid,
    x509.SubjectKeyIdentifier.oid,
}


def _public_key_der(key: ec.EllipticCurvePublicKey | x509.Certificate) -> bytes:
    public_key = key.public_key() if isinstance(key, x509.Certificate) else key
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_fingerprint(key: ec.EllipticCurvePublicKey | x509.Certificate) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo as colon-separated hex.

    `ewx pki csr` prints it at the node and `ewx pki sign` at the CA: the two
    officers compare it over another channel (a phone call) before the CA
    signs, so a request swapped in transit is caught.
    """
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(_public_key_der(key)).digest())


def _read_input(path: Path, what: str) -> bytes:
    return read_bounded(path, MAX_PKI_INPUT_BYTES, what=what, error=UsageError)


def read_csr_file(path: Path) -> bytes:
    """The bytes of a certificate request file (parsed by `sign_node_csr`)."""
    return _read_input(path, "request")


def write_public_file(path: Path, certificate: x509.Certificate) -> None:
    """Write `certificate` as PEM to a new file of mode 0644; RefusedOperation if it exists."""
    write_new_file(path, certificate.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE)


def load_certificate_file(path: Path, what: str = "certificate") -> x509.Certificate:
    """Exactly one PEM certificate from `path`; UsageError naming the file otherwise."""
    try:
        certificates = x509.load_pem_x509_certificates(_read_input(path, what))
    except ValueError:
        raise UsageError(f"{what} {path} does not hold a PEM certificate") from None
    if len(certificates) != 1:
        raise UsageError(f"{what} {path} holds {len(certificates)} certificates; expected exactly one")
    return certificates[0]


def load_ec_private_key(path: Path, what: str = "key file") -> ec.EllipticCurvePrivateKey:
    """An unencrypted PEM ECDSA P-256 key, its file mode checked (node.pki.read_private_key_pem)."""
    data = read_private_key_pem(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{what} {path} is encrypted; EWX reads unencrypted PKCS#8 PEM") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{what} {path} does not hold a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _NODE_KEY_CURVE:
        raise ConfigError(f"{what} {path} holds {_describe_key(key.public_key())}, not an ECDSA P-256 key")
    return key


def _describe_key(public_key: object) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"an EC {public_key.curve.name} key"
    size = getattr(public_key, "key_size", None)
    kind = type(public_key).__name__.removesuffix("PublicKey").removeprefix("_")
    return f"an {kind} key" + (f" of {size} bits" if size else "")


@dataclass(frozen=True, slots=True)
class LoadedCa:
    """A national CA as its officer loads it: key and certificate, checked to belong together."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    country: Country


def load_national_ca(*, certificate: Path, key: Path) -> LoadedCa:
    """Load a national CA's certificate and key (mode 0600), checked to be a pair.

    UsageError or ConfigError naming the file otherwise; the country is the
    certificate's own (ca_country).
    """
    ca_certificate = load_certificate_file(certificate, "CA certificate")
    country = ca_country(ca_certificate)
    ca_key = load_ec_private_key(key, "CA key")
    if _public_key_der(ca_key.public_key()) != _public_key_der(ca_certificate):
        raise UsageError(f"the CA key {key} does not belong to the {country} CA certificate {certificate}")
    return LoadedCa(key=ca_key, certificate=ca_certificate, country=country)


def node_csr(country: Country, key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    """The PKCS#10 request for `country`'s node certificate: its subject and its two names only."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(node_subject(country))
        .add_extension(node_alt_names(country), critical=False)
        .sign(key, hashes.SHA256())
    )


def parse_csr(data: bytes, *, source: str = "request") -> x509.CertificateSigningRequest:
    """A PEM PKCS#10 request; UsageError if `data` is not one."""
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError:
        raise UsageError(
            f"{source} is not a PEM certificate signing request (BEGIN CERTIFICATE REQUEST)"
        ) from None


def _requested_country(uris: list[str]) -> str | None:
    claims = [uri for uri in uris if uri.lower().startswith(NODE_URI_PREFIX)]
    return claims[0][len(NODE_URI_PREFIX) :] if len(claims) == 1 else None


def _check_csr_names(names: x509.SubjectAlternativeName, *, country: Country) -> None:
    requested = _requested_country(names.get_values_for_type(x509.UniformResourceIdentifier))
    if requested is not None and requested != country:
        raise RefusedOperation(
            f"the request asks for the identity {NODE_URI_PREFIX}{requested[:16]}, but this is the "
            f"{country} national CA: a national CA signs for its own country's node only"
        )
    expected = node_alt_names(country)
    if len(names) != len(expected) or set(names) != set(expected):
        shown = ", ".join(f"{type(n).__name__}:{n.value}"[:120] for n in names)
        raise RefusedOperation(
            f"the request's subjectAltName must be exactly DNS:{node_dns_name(country)} and "
            f"URI:{node_uri(country)}; it has {shown or 'nothing'}"
        )


def check_node_csr(csr: x509.CertificateSigningRequest, *, country: Country) -> ec.EllipticCurvePublicKey:
    """The public key of a request for `country`'s node certificate, once the request is acceptable.

    Checks, in order: (1) the request's self-signature verifies (it was made
    with the key it carries, and not altered); (2) the key is ECDSA P-256;
    (3) it asks for `country`'s node identity and nothing else: the URI SAN
    `urn:ewx:node:<CC>` and DNS SAN `<cc>.node.ewx`, exactly, and the subject
    `node_subject(country)`; (4) it asks for no CA powers (BasicConstraints
    ca=true, keyCertSign, cRLSign) and no extension outside the profile.
    Raises RefusedOperation naming the first thing wrong.
    """
    try:
        signature_ok = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        signature_ok = False
    if not signature_ok:
        raise RefusedOperation(
            "the request's signature does not verify: it was altered, or not signed by the key it carries"
        )
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise RefusedOperation("the request carries a public key of an unsupported type") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != _NODE_KEY_CURVE:
        raise RefusedOperation(
            f"the request carries {_describe_key(public_key)}; node certificates are ECDSA P-256 (secp256r1)"
        )
    try:
        values = {extension.oid: extension.value for extension in csr.extensions}
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise RefusedOperation("the request has malformed or repeated extensions") from None
    names = values.pop(x509.SubjectAlternativeName.oid, None)
    if not isinstance(names, x509.SubjectAlternativeName):
        raise RefusedOperation(
            f"the request has no subjectAltName; it needs URI:{node_uri(country)} and "
            f"DNS:{node_dns_name(country)}"
        )
    _check_csr_names(names, country=country)
    if csr.subject != node_subject(country):
        raise RefusedOperation(
            f"the request's subject is {csr.subject.rfc4514_string()[:200]!r}; "
            f"expected {node_subject(country).rfc4514_string()!r}"
        )
    constraints = values.pop(x509.BasicConstraints.oid, None)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise RefusedOperation("the request asks for a CA certificate (BasicConstraints ca=true)")
    usage = values.pop(x509.KeyUsage.oid, None)
    if isinstance(usage, x509.KeyUsage) and (usage.key_cert_sign or usage.crl_sign):
        raise RefusedOperation("the request asks for CA key usages (keyCertSign or cRLSign)")
    unexpected = [oid for oid in values if oid not in _CSR_EXTENSIONS_IGNORED]
    if unexpected:
        names = ", ".join(getattr(oid, "_name", None) or oid.dotted_string for oid in unexpected)
        raise RefusedOperation(f"the request asks for extensions node certificates do not carry: {names}")
    return public_key


def _whole_seconds(now: datetime | None) -> datetime:
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise UsageError("now must be an aware datetime")
    return now.astimezone(UTC).replace(microsecond=0)


def sign_node_csr(
    csr_pem: bytes,
    *,
    ca_certificate: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    validity: timedelta = NODE_CERT_VALIDITY,
    now: datetime | None = None,
    source: str = "request",
) -> x509.Certificate:
    """Issue the node certificate a CSR asks for, if the CA may: the `ewx pki sign` core.

    The country is the CA's own (`ca_country`), never the request's. Checks
    the CA side first (a CA certificate, the key is its key, valid now and
    until the new certificate's end), then the request (`check_node_csr`),
    and issues through `issue_node_certificate`, the profile `ewx pki init`
    uses. Pure: it writes nothing. UsageError for bad CA material or
    arguments, RefusedOperation for a request the CA must not sign.
    """
    now = _whole_seconds(now)
    if not timedelta(days=1) <= validity <= NODE_CERT_VALIDITY:
        raise UsageError(f"validity must be 1 to {MAX_NODE_CERT_DAYS} days, not {validity}")
    country = ca_country(ca_certificate)
    if _public_key_der(ca_key.public_key()) != _public_key_der(ca_certificate):
        raise UsageError(f"the CA key does not belong to the {country} CA certificate")
    ca_end = ca_certificate.not_valid_after_utc
    if not ca_certificate.not_valid_before_utc <= now <= ca_end:
        raise RefusedOperation(
            f"the {country} CA certificate is not valid now (valid "
            f"{ca_certificate.not_valid_before_utc.isoformat()} to {ca_end.isoformat()})"
        )
    not_after = now + validity
    if not_after > ca_end:
        raise RefusedOperation(
            f"a certificate valid until {not_after.isoformat()} would outlive the {country} CA certificate "
            f"(valid until {ca_end.isoformat()}); ask for fewer days or renew the CA first"
        )
    public_key = check_node_csr(parse_csr(csr_pem, source=source), country=country)
    return issue_node_certificate(
        country=country,
        public_key=public_key,
        ca_certificate=ca_certificate,
        ca_key=ca_key,
        not_before=now - BACKDATE,
        not_after=not_after,
    )


def _refuse_existing(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.exists() or path.is_symlink():
            raise RefusedOperation(f"{path} already exists; refusing to overwrite it")


def _ensure_private_dir(path: Path) -> None:
    """`path` as a directory, created 0700 if missing (an existing one is kept as it is)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")


@dataclass(frozen=True, slots=True)
class NationalCa:
    """What `create_national_ca` wrote."""

    key_path: Path
    certificate_path: Path
    certificate: x509.Certificate


def create_national_ca(
    out: Path, *, country: Country, years: int = CA_VALIDITY_YEARS, now: datetime | None = None
) -> NationalCa:
    """A production national CA: `out/ca.key` (0600) and `out/ca.pem`, nothing else.

    Run it on the CA's own (offline) machine; the key never goes to the
    node. Refuses to overwrite either file.
    """
    if country not in COUNTRIES:
        raise UsageError(f"unknown country {country!r}: expected one of {', '.join(COUNTRIES)}")
    if not 1 <= years <= 30:
        raise UsageError(f"CA validity must be 1 to 30 years, not {years}")
    now = _whole_seconds(now)
    key_path, certificate_path = out / "ca.key", out / "ca.pem"
    _refuse_existing([key_path, certificate_path])
    _ensure_private_dir(out)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = issue_ca_certificate(
        country=country,
        key=key,
        not_before=now - BACKDATE,
        not_after=_add_years(now, years),
        common_name=f"EWX {country} National CA",
    )
    write_private_key(key_path, key)
    write_new_file(
        certificate_path, certificate.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE
    )
    return NationalCa(key_path=key_path, certificate_path=certificate_path, certificate=certificate)


@dataclass(frozen=True, slots=True)
class NodeRequest:
    """What `create_node_request` wrote."""

    csr_path: Path
    key_path: Path
    key_created: bool
    fingerprint: str
    signing_key_paths: tuple[Path, ...] = ()
    trust_entries_path: Path | None = None
    entries: tuple[KeyEntry, ...] = ()


def create_node_request(
    out: Path,
    *,
    country: Country,
    key_file: Path | None = None,
    signing_keys: bool = False,
    now: datetime | None = None,
) -> NodeRequest:
    """On the node: its TLS key and CSR, and optionally its Ed25519 signing keys.

    Writes, in the layout node.toml expects (`ewx pki init` uses the same)::

        out/tls/node.key    new ECDSA P-256 key, mode 0600 (unless `key_file`
                            names an existing key to renew the certificate for)
        out/tls/node.csr    the PKCS#10 request for the national CA
        out/keys/{alert,log,witness}.key      with `signing_keys`, mode 0600
        out/keys/trust-entries.json           their public trust entries

    Every target is checked first: if any exists nothing is written.
    """
    if country not in COUNTRIES:
        raise UsageError(f"unknown country {country!r}: expected one of {', '.join(COUNTRIES)}")
    now = _whole_seconds(now)
    tls_dir, keys_dir = out / "tls", out / "keys"
    csr_path = tls_dir / "node.csr"
    key_path = key_file if key_file is not None else tls_dir / "node.key"
    key_paths = tuple(keys_dir / f"{purpose}.key" for purpose in KEY_PURPOSES) if signing_keys else ()
    entries_path = keys_dir / TRUST_ENTRIES_FILE_NAME if signing_keys else None
    targets = [csr_path, *key_paths, *([entries_path] if entries_path else [])]
    if key_file is None:
        targets.append(key_path)
    _refuse_existing(targets)

    # Load or make everything before the first write.
    if key_file is not None:
        tls_key = load_ec_private_key(key_file, "TLS key")
    else:
        tls_key = ec.generate_private_key(ec.SECP256R1())
    csr = node_csr(country, tls_key)
    signing = {purpose: Ed25519PrivateKey.generate() for purpose in KEY_PURPOSES} if signing_keys else {}
    entries = tuple(
        KeyEntry(
            key_id=key_id_for(country, purpose, key.public_key()),
            owner=country,
            purpose=purpose,
            public_key=raw_public_key(key.public_key()),
            not_before=now - BACKDATE,
            not_after=_add_years(now, SIGNING_KEY_VALIDITY_YEARS),
        )
        for purpose, key in signing.items()
    )

    _ensure_private_dir(tls_dir)
    if key_file is None:
        write_private_key(key_path, tls_key)
    write_new_file(csr_path, csr.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE)
    if signing:
        _ensure_private_dir(keys_dir)
        for path, key in zip(key_paths, signing.values(), strict=True):
            write_private_key(path, key)
        document = {
            "member": country,
            "keys": [entry.model_dump(mode="json", exclude_none=True) for entry in entries],
        }
        text = json.dumps(document, sort_keys=True, indent=2) + "\n"
        write_new_file(keys_dir / TRUST_ENTRIES_FILE_NAME, text.encode("ascii"), mode=PUBLIC_FILE_MODE)
    return NodeRequest(
        csr_path=csr_path,
        key_path=key_path,
        key_created=key_file is None,
        fingerprint=public_key_fingerprint(tls_key.public_key()),
        signing_key_paths=key_paths,
        trust_entries_path=entries_path,
        entries=entries,
    )


# ------------------------------------------------------- the node's own TLS


def check_node_tls(
    certificate_pem: bytes,
    private_key_pem: bytes,
    *,
    node_id: Country,
    trust: Trust,
    at: datetime,
    where: str = "TLS certificate",
) -> x509.Certificate:
    """Check the node's own certificate and key before it presents them; return the certificate.

    Run at start and on every reload, so that a node never switches to a
    certificate its peers would refuse. Checks, in order: one PEM certificate
    and one PEM private key; the key is the certificate's key; the
    certificate names this node (`urn:ewx:node:<node_id>`) and no other; it
    is issued directly by this node's national CA in `trust`; it is a leaf
    with serverAuth and clientAuth; it is valid at `at`
    (CertificateNotValidNow otherwise); and finally a peer's own check
    (node.trust.node_id_from_certificate, which also applies revocations)
    accepts it. Raises ConfigError starting with `where`.
    """
    certificate = _matching_pair(certificate_pem, private_key_pem, where=where)
    serial = format(certificate.serial_number, "x")
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        claimed = _requested_country(names.get_values_for_type(x509.UniformResourceIdentifier))
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise ConfigError(f"{where}: certificate {serial} is not a node certificate: {exc}") from None
    except ValueError:
        raise ConfigError(f"{where}: certificate {serial} has malformed extensions") from None
    if claimed != node_id:
        named = f"node {claimed[:16]}" if claimed else "no single node"
        raise ConfigError(
            f"{where}: certificate {serial} names {named}, but this node is {node_id} "
            f"(it needs the URI SAN {node_uri(node_id)})"
        )
    try:
        certificate.verify_directly_issued_by(trust.ca_certificate(node_id))
    except (ConfigError, ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise ConfigError(
            f"{where}: certificate {serial} is not issued by the {node_id} national CA in the trust file "
            f"(issuer: {certificate.issuer.rfc4514_string()[:160]})"
        ) from None
    if constraints.ca or not {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(
        usages
    ):
        raise ConfigError(
            f"{where}: certificate {serial} must be a leaf (not a CA) with serverAuth and clientAuth"
        )
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if at > end:
        raise CertificateNotValidNow(f"{where}: certificate {serial} expired at {end.isoformat()}")
    if at < start:
        raise CertificateNotValidNow(f"{where}: certificate {serial} is not valid before {start.isoformat()}")
    leaf = certificate.public_bytes(serialization.Encoding.PEM)
    for usage in (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH):
        try:
            node_id_from_certificate(leaf, trust=trust, allowed=(node_id,), at=at, usage=usage)
        except InboundRejected as exc:
            raise ConfigError(f"{where}: certificate {serial}: a peer would refuse it: {exc}") from None
    return certificate


def _matching_pair(certificate_pem: bytes, private_key_pem: bytes, *, where: str) -> x509.Certificate:
    """The one certificate in `certificate_pem`, once the private key is shown to be its key."""
    try:
        certificates = x509.load_pem_x509_certificates(certificate_pem)
    except ValueError:
        raise ConfigError(f"{where}: not a PEM certificate") from None
    if len(certificates) != 1:
        raise ConfigError(
            f"{where}: holds {len(certificates)} certificates; it must hold the node certificate alone "
            "(peers find the national CA in the trust file)"
        )
    (certificate,) = certificates
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except TypeError:
        raise ConfigError(
            f"{where}: its private key is encrypted; EWX reads unencrypted PKCS#8 PEM"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{where}: its private key file does not hold a PEM private key") from None
    try:
        certificate_key = _public_key_der(certificate)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{where}: its public key is of an unsupported type") from None
    if (
        not isinstance(key, ec.EllipticCurvePrivateKey)
        or _public_key_der(key.public_key()) != certificate_key
    ):
        raise ConfigError(f"{where}: the private key does not belong to the certificate")
    return certificate
