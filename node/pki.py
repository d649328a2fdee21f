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
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import tomli_w
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.errors import ConfigError, RefusedOperation, UsageError
from node.identity import node_dns_name, node_uri
from node.ids import COUNTRIES, Country, as_country
from node.signing import KEY_PURPOSES, KeyPurpose, key_id_for, raw_public_key
from node.trust import FEDERATION_NAME, FORMAT, KeyEntry, Member, Trust

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
def _write_new_file(path: Path, data: bytes, *, mode: int) -> None:
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
    _write_new_file(path, pem, mode=PRIVATE_FILE_MODE)


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
    *, country: Country, key: ec.EllipticCurvePrivateKey, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    """A self-signed national CA certificate for `country`.

    path_length=0: the national CA signs node certificates only, never a
    subordinate CA, so a node certificate is always directly issued by it
    (which node.identity checks).
    """
    name = _name(country, f"EWX {country} National CA (development)")
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


def issue_node_certificate(
    *,
    country: Country,
    public_key: ec.EllipticCurvePublicKey,
    ca_certificate: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A node TLS certificate for `country`, issued by `ca_certificate`.

    It names the node in the URI SAN `urn:ewx:node:<CC>` (the identity that
    node.identity reads) and the DNS SAN `<cc>.node.ewx` (the TLS target
    name), and serves both ends of mutual TLS (serverAuth and clientAuth).
    """
    ca_key_id = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name(country, f"ewx-node-{country.lower()}"))
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
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(node_dns_name(country)),
                    x509.UniformResourceIdentifier(node_uri(country)),
                ]
            ),
            critical=False,
        )
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
    try:
        countries = tuple(as_country(code) for code in codes)
    except ValueError as exc:
        raise UsageError(f"--countries: {exc}") from None
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
    for part in ("ca", "tls", "keys"):
        _make_private_dir(root / part)

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
    _write_new_file(root / "ca" / "ca.pem", ca_certificate.public_bytes(pem), mode=PUBLIC_FILE_MODE)

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
    _write_new_file(root / "tls" / "node.pem", node_certificate.public_bytes(pem), mode=PUBLIC_FILE_MODE)

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
    _write_new_file(root / CONFIG_FILE_NAME, tomli_w.dumps(config).encode("utf-8"), mode=PUBLIC_FILE_MODE)
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
