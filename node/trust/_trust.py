"""The federation trust file: every member's national CA and signing keys.

One file, written by the PKI tool (`ewx pki init`) and loaded by every node and
by auditors (SPEC sections 2 and 4). It is the only trust material: a node
trusts exactly its peers' national CAs from it (no shared root) and checks
every signature against the Ed25519 public keys listed in it.

Format, UTF-8 JSON, version `ewx-federation/1`::

    {
      "format": "ewx-federation/1",
      "federation": "ewx-dev",
      "members": {
        "KR": {
          "ca_certificate": "-----BEGIN CERTIFICATE-----\\n...",
          "keys": [
            {
              "key_id": "KR-alert-0123456789abcdef",
              "purpose": "alert",
              "public_key": "<standard base64 of the raw 32-byte Ed25519 key>",
              "not_before": "2026-11-25T00:00:00Z",
              "not_after": "2028-11-25T00:00:00Z"
            }
          ]
        }
      }
    }

Rules, each checked on load (a breach is a `ConfigError` naming the file and
the defect):

- `format` is exactly `ewx-federation/1`; unknown keys are refused anywhere.
- `members` maps a federation country (KR, US, JP) to its material.
- `ca_certificate` is exactly one PEM certificate, and it is a CA
  (BasicConstraints ca=true, KeyUsage keyCertSign). No two members share a
  CA key: each country is its own root of trust.
- A key's owner is the member it is listed under (it is not repeated in the
  file). `purpose` is `alert`, `log` or `witness`. `key_id` must equal
  `node.crypto.key_id_for(owner, purpose, key)`, which pins the key bytes,
  so an id can never be rebound to another key.
- `not_before` and `not_after` are RFC 3339 UTC timestamps, in that order;
  the key is valid for its purpose within them, both ends included.
- Key ids are unique across the file, and no public key appears twice (one
  key, one owner, one purpose).
- Optional, written only when set: a key's `revoked_from` (RFC 3339) and
  `revocation_reason` (`superseded` or `compromised`): the key is not valid
  at or after that instant; and a member's `revoked_certificates`, a list of
  `{"serial": "<hex>", "revoked_from": ..., "reason": ...}` naming node
  certificates its CA issued that no peer may present any more.

The trust a node works with is this file amended by the members' signed trust
updates (node/trust/_updates.py, docs/key-rotation.md): `Trust.amended` makes
the amended copy, and `serial_of` tells how many updates of a member it holds.

`Trust.to_json` writes the canonical form: sorted keys, two-space indent,
timestamps with `Z`, one trailing newline; the same trust always gives the
same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from node.clock import iso
from node.crypto import PUBLIC_KEY_BYTES, KeyPurpose, key_id_for
from node.errors import ConfigError, KeyNotValid, KeyRevoked, UnknownKey
from node.files import read_bounded, write_atomically
from node.ids import COUNTRIES, Country, KeyId

FORMAT: Final = "ewx-federation/1"
"""The only trust file format this code reads and writes."""

MAX_TRUST_FILE_BYTES: Final = 4 * 1024 * 1024
"""A trust file holds three CA certificates and a handful of keys; anything
this large is not one, and refusing it early bounds memory on load."""

_MAX_REPORTED_ERRORS: Final = 5
RevocationReason = Literal["superseded", "compromised"]
"""Why a key or certificate was revoked: retired by rotation, or possibly known to others."""
FEDERATION_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""What a federation name may be: it appears in messages and file names."""


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each defect by its dotted location, without echoing input.

    Shared by the trust file and node configuration loaders so that operators
    see the same style of message for both. Input values are left out on
    purpose: they may be large (PEM blocks) or be key material.
    """
    parts: list[str] = []
    errors = exc.errors(include_url=False, include_input=False)
    for error in errors[:_MAX_REPORTED_ERRORS]:
        # pydantic marks a bad mapping key with a "[key]" step after the key
        # itself; "peers.CN" already says which key is wrong.
        location = ".".join(str(part) for part in error["loc"] if part != "[key]")
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        # Checks that span fields (model validators) have no location; their
        # messages name what they are about.
        parts.append(f"{location}: {message}" if location else message)
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"(and {len(errors) - _MAX_REPORTED_ERRORS} more)")
    return "; ".join(parts)


def _utc_timestamp(value: object) -> datetime:
    """Accept only an RFC 3339 string or an aware datetime, at UTC.

    pydantic's lax datetime parsing would also take numbers and numeric
    strings as Unix times; a trust file is hand-auditable text, so only the
    written-out form is accepted.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value[:40]!r} is not an RFC 3339 timestamp such as 2026-11-25T00:00:00Z"
            ) from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise ValueError("must be an RFC 3339 timestamp string such as 2026-11-25T00:00:00Z")
    offset = parsed.utcoffset()
    if offset is None:
        raise ValueError("timestamp has no timezone: write it in UTC with a trailing Z")
    if offset.total_seconds() != 0:
        raise ValueError("timestamp is not in UTC: write it with a trailing Z")
    return parsed.astimezone(UTC)


class KeyEntry(BaseModel):
    """One Ed25519 public key of a member, with its purpose and validity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: KeyId
    """`<owner>-<purpose>-<16 hex of SHA-256(key)>`, as node.crypto.key_id_for."""

    owner: Country = Field(exclude=True)
    """The member the key belongs to. Implied in the file by the member the key
    is listed under, so it is never written out."""

    purpose: KeyPurpose
    """What the key may sign: alerts and receipts, checkpoints, or cosignatures."""

    public_key: bytes
    """The raw 32-byte Ed25519 public key (standard base64 in the file)."""

    not_before: datetime
    """First instant (UTC) at which signatures by this key are accepted."""

    not_after: datetime
    """Last instant (UTC) at which signatures by this key are accepted."""

    revoked_from: datetime | None = None
    """If set, the key is not valid at or after this instant, whatever not_after says."""

    revocation_reason: RevocationReason | None = None
    """Set with revoked_from, and only with it."""

    # Parsed once at validation: verification is the hot path (SPEC section 9)
    # and parsing the key for every signature would waste a measurable share.
    _verifying_key: Ed25519PublicKey = PrivateAttr()

    @field_validator("public_key", mode="before")
    @classmethod
    def _decode_public_key(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return base64.b64decode(value.encode("ascii"), validate=True)
            except (ValueError, binascii.Error):
                raise ValueError("not standard base64") from None
        return value

    @field_validator("public_key")
    @classmethod
    def _check_public_key_length(cls, value: bytes) -> bytes:
        if len(value) != PUBLIC_KEY_BYTES:
            raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(value)}")
        return value

    @field_validator("not_before", "not_after", mode="before")
    @classmethod
    def _check_timestamp(cls, value: object) -> datetime:
        return _utc_timestamp(value)

    @field_validator("revoked_from", mode="before")
    @classmethod
    def _check_revocation_time(cls, value: object) -> datetime | None:
        return None if value is None else _utc_timestamp(value)

    @model_validator(mode="after")
    def _check_binding(self) -> KeyEntry:
        if self.not_before >= self.not_after:
            raise ValueError(
                f"key {self.key_id}: not_before {iso(self.not_before)} "
                f"is not before not_after {iso(self.not_after)}"
            )
        try:
            verifying_key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise ValueError(f"key {self.key_id}: not a valid Ed25519 public key") from None
        named_owner = self.key_id.split("-", 1)[0]
        if named_owner in COUNTRIES and named_owner != self.owner:
            raise ValueError(f"key {self.key_id} belongs to {named_owner} but is listed under {self.owner}")
        expected = key_id_for(self.owner, self.purpose, verifying_key)
        if self.key_id != expected:
            raise ValueError(
                f"key_id {self.key_id!r} does not match its key: owner {self.owner} and "
                f"purpose {self.purpose} give {expected!r}"
            )
        if (self.revoked_from is None) != (self.revocation_reason is None):
            raise ValueError(f"key {self.key_id}: revoked_from and revocation_reason go together")
        self._verifying_key = verifying_key
        return self

    @field_serializer("public_key", when_used="json")
    def _encode_public_key(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    @field_serializer("not_before", "not_after", when_used="json")
    def _encode_timestamp(self, value: datetime) -> str:
        return iso(value)

    @field_serializer("revoked_from", when_used="json")
    def _encode_revocation_time(self, value: datetime | None) -> str | None:
        return None if value is None else iso(value)

    def verifying_key(self) -> Ed25519PublicKey:
        """The parsed public key (parsed once, when the entry was validated)."""
        return self._verifying_key

    def valid_at(self, at: datetime) -> bool:
        """True iff `at` lies within [not_before, not_after] and before any revocation."""
        return self.not_before <= at <= self.not_after and not self.revoked_at(at)

    def revoked_at(self, at: datetime) -> bool:
        """True iff the key is revoked at `at` (from revoked_from on, inclusive)."""
        return self.revoked_from is not None and at >= self.revoked_from


class RevokedCertificate(BaseModel):
    """A node certificate its member's CA issued that no peer may present any more."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    serial: str = Field(pattern=r"^[0-9a-f]{1,40}$")
    """The certificate's serial number, lowercase hex without leading zeros."""

    revoked_from: datetime
    reason: RevocationReason

    @field_validator("revoked_from", mode="before")
    @classmethod
    def _check_timestamp(cls, value: object) -> datetime:
        return _utc_timestamp(value)

    @field_serializer("revoked_from", when_used="json")
    def _encode_timestamp(self, value: datetime) -> str:
        return iso(value)


def _parse_ca_certificate(pem: str) -> x509.Certificate:
    """Parse and check a member's national CA certificate, or raise ValueError."""
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except ValueError:
        raise ValueError("not a PEM certificate") from None
    if len(certificates) != 1:
        # Everything in this field ends up in gRPC's root bundle: a second
        # certificate smuggled in here would become a trusted root too.
        raise ValueError(f"must hold exactly one certificate, found {len(certificates)}")
    certificate = certificates[0]
    try:
        extensions = certificate.extensions
        certificate.public_key()
    except UnsupportedAlgorithm:
        raise ValueError("unsupported public key algorithm") from None
    except ValueError:
        raise ValueError("malformed extensions or public key") from None
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise ValueError("not a CA certificate (no BasicConstraints)") from None
    if not constraints.ca:
        raise ValueError("not a CA certificate (BasicConstraints ca=false)")
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise ValueError("no KeyUsage: a CA certificate must state keyCertSign") from None
    if not usage.key_cert_sign:
        raise ValueError("may not sign certificates (no keyCertSign usage)")
    return certificate


class Member(BaseModel):
    """One country's trust material: its national CA and its signing keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_certificate: str
    """PEM of the national CA that issues this country's node TLS certificate."""

    keys: tuple[KeyEntry, ...]
    """The member's Ed25519 public keys, current and retired, in file order."""

    revoked_certificates: tuple[RevokedCertificate, ...] = ()
    """Node certificates of this member that are revoked, each from a time."""

    _certificate: x509.Certificate = PrivateAttr()

    @field_validator("ca_certificate")
    @classmethod
    def _check_ca_certificate(cls, value: str) -> str:
        _parse_ca_certificate(value)
        return value

    @model_validator(mode="after")
    def _keep_parsed_certificate(self) -> Member:
        # Checked above (where the error can name the field); parsed again
        # here to keep the object, which a field validator cannot store.
        self._certificate = _parse_ca_certificate(self.ca_certificate)
        return self

    def certificate(self) -> x509.Certificate:
        """The parsed national CA certificate."""
        return self._certificate


class Trust(BaseModel):
    """The whole federation trust file; see the module docstring for the format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["ewx-federation/1"]
    """Format and version tag; anything else is refused."""

    federation: str
    """Name of the federation, e.g. `ewx-dev`: letters, digits, `.`, `_`, `-`."""

    members: dict[Country, Member] = Field(min_length=1)
    """Every member's material, by country."""

    _keys: dict[KeyId, KeyEntry] = PrivateAttr(default_factory=dict)
    _serials: dict[Country, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _bind_owners(cls, data: Any) -> Any:
        """Give each key in raw input the owner it is listed under.

        The file does not repeat the owner inside each key (it could only
        disagree with where the key is listed); the model carries it so that a
        KeyEntry checks its own id. Anything of an unexpected shape is passed
        through untouched for the schema to refuse with a precise location.
        """
        if not isinstance(data, dict) or not isinstance(data.get("members"), dict):
            return data
        members: dict[Any, Any] = {}
        for country, member in data["members"].items():
            if country not in COUNTRIES:
                # Refused here, once, rather than again for each of its keys.
                raise ValueError(
                    f"members: unknown country {str(country)[:16]!r}: expected one of {', '.join(COUNTRIES)}"
                )
            if isinstance(member, dict) and isinstance(member.get("keys"), list | tuple):
                keys = [{"owner": country, **key} if isinstance(key, dict) else key for key in member["keys"]]
                members[country] = {**member, "keys": keys}
            else:
                members[country] = member
        return {**data, "members": members}

    @field_validator("federation")
    @classmethod
    def _check_federation(cls, value: str) -> str:
        if not FEDERATION_NAME.fullmatch(value):
            raise ValueError(
                "federation name must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _check_members(self) -> Trust:
        index: dict[KeyId, KeyEntry] = {}
        key_users: dict[bytes, KeyId] = {}
        ca_users: dict[bytes, Country] = {}
        for country, member in self.members.items():
            ca_key = (
                member.certificate()
                .public_key()
                .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            )
            if ca_key in ca_users:
                raise ValueError(
                    f"members {ca_users[ca_key]} and {country} share a CA key: "
                    "each country must be its own root of trust"
                )
            ca_users[ca_key] = country
            for entry in member.keys:
                if entry.owner != country:
                    raise ValueError(
                        f"key {entry.key_id} belongs to {entry.owner} but is listed under {country}"
                    )
                if entry.key_id in index:
                    raise ValueError(f"duplicate key id {entry.key_id}")
                if entry.public_key in key_users:
                    raise ValueError(
                        f"key {entry.key_id} reuses the public key of {key_users[entry.public_key]}: "
                        "each key has exactly one owner and one purpose"
                    )
                index[entry.key_id] = entry
                key_users[entry.public_key] = entry.key_id
        self._keys = index
        return self

    # ------------------------------------------------------------ loading
    @classmethod
    def parse(cls, data: bytes, *, source: str = "trust data") -> Trust:
        """Validate trust file bytes; any defect is a ConfigError naming `source`."""
        if len(data) > MAX_TRUST_FILE_BYTES:
            raise ConfigError(
                f"{source}: {len(data)} bytes is larger than the {MAX_TRUST_FILE_BYTES}-byte "
                "limit for a trust file"
            )
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None

    @classmethod
    def load(cls, path: Path) -> Trust:
        """Read and validate the trust file at `path` (ConfigError on any problem)."""
        data = read_bounded(path, MAX_TRUST_FILE_BYTES, what="trust file", error=ConfigError)
        return cls.parse(data, source=f"trust file {path}")

    def to_json(self) -> bytes:
        """The canonical file bytes: sorted keys, indented, one trailing newline."""
        document = self._document()
        return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")

    def _document(self) -> dict[str, Any]:
        """The file's JSON document. Optional fields (revocations) appear only when
        set, so a trust file without any keeps the bytes it always had."""
        document: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        for member in document["members"].values():
            if not member.get("revoked_certificates"):
                member.pop("revoked_certificates", None)
        return document

    def save(self, path: Path) -> None:
        """Write the trust file atomically: readers see the old file or the new one.

        The bytes go to a new temporary file beside `path`, are flushed to
        disk, and then renamed over `path`; the directory is synced so that the
        rename itself survives a crash.
        """
        write_atomically(path, self.to_json(), mode=0o644)

    # ------------------------------------------------------------ queries
    @property
    def countries(self) -> tuple[Country, ...]:
        """The members, in the federation's fixed order (KR, US, JP)."""
        return tuple(country for country in COUNTRIES if country in self.members)

    def member(self, country: Country) -> Member:
        """The material of `country`; ConfigError if it is not a member."""
        try:
            return self.members[country]
        except KeyError:
            raise ConfigError(f"{country} is not a member of federation {self.federation}") from None

    def key(self, key_id: str) -> KeyEntry | None:
        """The entry with that id, or None."""
        return self._keys.get(KeyId(key_id))

    def resolve_key(self, key_id: str, *, purpose: KeyPurpose, at: datetime) -> KeyEntry:
        """The entry for `key_id`, checked to be usable for `purpose` at `at`.

        Raises UnknownKey if the id is not in the trust file, KeyNotValid if
        the key has another purpose or `at` is outside its validity.
        """
        if at.utcoffset() is None:
            raise ValueError("resolve_key needs an aware datetime (UTC)")
        entry = self._keys.get(KeyId(key_id))
        if entry is None:
            raise UnknownKey(f"key {key_id[:80]!r} is not in the trust file of federation {self.federation}")
        if entry.purpose != purpose:
            raise KeyNotValid(f"key {entry.key_id} is a {entry.purpose} key, not valid for {purpose}")
        if at < entry.not_before:
            raise KeyNotValid(
                f"key {entry.key_id} is not valid before {iso(entry.not_before)} (checked at {iso(at)})"
            )
        if at > entry.not_after:
            raise KeyNotValid(f"key {entry.key_id} expired at {iso(entry.not_after)} (checked at {iso(at)})")
        if entry.revoked_from is not None and at >= entry.revoked_from:
            raise KeyRevoked(
                f"key {entry.key_id} was revoked ({entry.revocation_reason}) from "
                f"{iso(entry.revoked_from)} (checked at {iso(at)})"
            )
        return entry

    def certificate_revocation(
        self, country: Country, serial: int, *, at: datetime
    ) -> RevokedCertificate | None:
        """The revocation in force at `at` of `country`'s node certificate `serial`, or None."""
        member = self.members.get(country)
        if member is None:
            return None
        wanted = format(serial, "x")
        for revoked in member.revoked_certificates:
            if revoked.serial == wanted and at >= revoked.revoked_from:
                return revoked
        return None

    def serial_of(self, country: Country) -> int:
        """How many of `country`'s trust updates this trust includes (0: the file alone)."""
        return self._serials.get(country, 0)

    def amended(
        self,
        member: Country,
        *,
        serial: int,
        grants: Iterable[dict[str, Any]] = (),
        key_revocations: Iterable[tuple[str, datetime, RevocationReason]] = (),
        certificate_revocations: Iterable[tuple[int, datetime, RevocationReason]] = (),
    ) -> Trust:
        """A copy with `member`'s update number `serial` applied; ConfigError if it does not fit.

        `grants` are key entries as in the file (key_id, purpose, public_key,
        not_before, not_after); every rule of the file applies to the result,
        so a grant cannot reuse an id or a public key. A revocation names one
        of `member`'s own keys; a key revoked twice keeps the earlier time
        (a revocation can be brought forward, never taken back).
        """
        if serial != self.serial_of(member) + 1:
            raise ConfigError(f"update {serial} of {member} does not follow {self.serial_of(member)}")
        document = self._document()
        entry = document["members"].get(member)
        if entry is None:
            raise ConfigError(f"{member} is not a member of federation {self.federation}")
        keys: list[dict[str, Any]] = entry["keys"]
        for grant in grants:
            keys.append(dict(grant))
        by_id = {key["key_id"]: key for key in keys}
        for key_id, revoked_from, reason in key_revocations:
            key = by_id.get(key_id)
            if key is None:
                raise ConfigError(f"{member} cannot revoke {key_id[:80]!r}: not one of its keys")
            earlier = key.get("revoked_from")
            if earlier is None or _utc_timestamp(earlier) > revoked_from:
                key["revoked_from"] = iso(revoked_from)
                key["revocation_reason"] = reason
        certificates: list[dict[str, Any]] = entry.setdefault("revoked_certificates", [])
        for number, revoked_from, reason in certificate_revocations:
            certificates.append(
                {
                    "serial": format(number, "x"),
                    "revoked_from": iso(revoked_from),
                    "reason": reason,
                }
            )
        try:
            amended = type(self).model_validate(document)
        except ValidationError as exc:
            raise ConfigError(f"update {serial} of {member}: {describe_validation_error(exc)}") from None
        amended._serials = {**self._serials, member: serial}
        return amended

    def public_key(self, entry: KeyEntry) -> Ed25519PublicKey:
        """The parsed Ed25519 key of `entry` (cached; no parsing per signature)."""
        return entry.verifying_key()

    def keys_of(self, country: Country, purpose: KeyPurpose) -> tuple[KeyEntry, ...]:
        """Every key of `country` for `purpose`, in file order (empty if none)."""
        member = self.members.get(country)
        if member is None:
            return ()
        return tuple(entry for entry in member.keys if entry.purpose == purpose)

    def ca_certificate(self, country: Country) -> x509.Certificate:
        """The national CA certificate of `country`; ConfigError if not a member."""
        return self.member(country).certificate()

    def ca_bundle_pem(self, countries: Iterable[Country]) -> bytes:
        """Concatenated PEM of those members' CAs, for gRPC `root_certificates`.

        The PEM is re-encoded from the parsed certificates, so exactly the
        checked CA of each country is trusted and nothing else in the file.
        Raises ValueError if `countries` is empty: gRPC treats a missing root
        bundle as "use the system roots", the opposite of trusting nobody.
        """
        chosen = list(dict.fromkeys(countries))
        if not chosen:
            raise ValueError("an empty CA bundle would make gRPC fall back to system roots")
        return b"".join(self.ca_certificate(country).public_bytes(Encoding.PEM) for country in chosen)
