"""Trust updates: a member's own signed changes to its trust entry (pure, no I/O).

Each country alone vouches for its entry in the federation trust material
(issue 5, docs/key-rotation.md). After the trust file has been exchanged, a
member changes its entry only by a trust update:

- it grants new signing keys (rotation) and revokes keys or node TLS
  certificates from a given time;
- it is signed twice over the same PAE bytes: by the member's current alert
  key (the node consents) and by its national CA (the country vouches; the CA
  key need never be on the node: `ewx pki rotate` writes the request at the
  node, `ewx pki endorse` signs it at the CA);
- updates of one member form a chain, serial 1, 2, 3, ...; each is verified
  against the trust that the file and the earlier updates make, so a key
  revoked by update 2 cannot sign update 3.

Nodes exchange updates over the federation channel (UpdateTrust) and log them
(TRUST_UPDATE_SENT / TRUST_UPDATE_RECEIVED entries), so an auditor rebuilds
the same trust from the exported logs with `replay`.

Checks in `verify_update`, in order, each failure a TrustUpdateRejected (or
its subclass) naming what was wrong:

  1. size                      MAX_TRUST_UPDATE_BYTES
  2. the member's current alert key, then its signature over the exact bytes
  3. the national CA's signature over the same bytes (before any parsing)
  4. schema: canonical encoding, version, federation, member = key owner,
     sender binding (a direct announcement comes from the member itself)
  5. serial: the next of that member (TrustUpdateOutOfOrder otherwise)
  6. issued_at not beyond the clock skew; grants and revocations well-formed,
     and the amended trust still obeys every rule of the trust file
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from node import limits
from node.clock import iso
from node.crypto import (
    KEY_PURPOSES,
    PAYLOAD_TRUST_UPDATE,
    KeyPurpose,
    Signer,
    key_id_for,
    pae,
    raw_public_key,
    verify_signature,
)
from node.errors import ConfigError, InboundRejected, TrustUpdateOutOfOrder, TrustUpdateRejected
from node.ids import Country, KeyId
from node.message import DecodeFailure, from_timestamp, parse_canonical, pb, timestamp
from node.message import member as member_of
from node.trust._identity import ca_country as national_ca_country
from node.trust._trust import RevocationReason, Trust

SCHEMA_VERSION: Final = 1
MAX_GRANTS: Final = 8
MAX_REVOCATIONS: Final = 32
MAX_CERTIFICATE_SERIAL_BYTES: Final = 20
"""RFC 5280 section 4.1.2.2: a serial number is at most 20 octets."""

_REASONS: Final[dict[pb.RevocationReason, RevocationReason]] = {
    pb.KEY_SUPERSEDED: "superseded",
    pb.KEY_COMPROMISED: "compromised",
}
_REASON_LABELS: Final[dict[RevocationReason, pb.RevocationReason]] = {
    name: code for code, name in _REASONS.items()
}


@dataclass(frozen=True, slots=True)
class Grant:
    """A new key of the member's."""

    purpose: KeyPurpose
    public_key: Ed25519PublicKey
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class KeyRevocation:
    key_id: str
    revoked_from: datetime
    reason: RevocationReason


@dataclass(frozen=True, slots=True)
class CertificateRevocation:
    serial: int
    revoked_from: datetime
    reason: RevocationReason


@dataclass(frozen=True, slots=True)
class VerifiedTrustUpdate:
    """A trust update that passed every check, and the trust it makes."""

    envelope: bytes
    member: Country
    serial: int
    issued_at: datetime
    key_id: KeyId
    grants: tuple[KeyId, ...]
    revoked_keys: tuple[KeyId, ...]
    revoked_certificates: tuple[int, ...]
    trust: Trust = field(repr=False)
    """The trust before this update, amended by it."""


# ------------------------------------------------------------ making one
def build_update(
    *,
    trust: Trust,
    member: Country,
    issued_at: datetime,
    grants: Sequence[Grant] = (),
    key_revocations: Sequence[KeyRevocation] = (),
    certificate_revocations: Sequence[CertificateRevocation] = (),
) -> bytes:
    """The serialized TrustUpdate that follows `member`'s latest in `trust`."""
    update = pb.TrustUpdate(
        schema_version=SCHEMA_VERSION,
        federation=trust.federation,
        member=member,
        serial=trust.serial_of(member) + 1,
        issued_at=timestamp(issued_at),
        grants=[
            pb.KeyGrant(
                key_id=key_id_for(member, grant.purpose, grant.public_key),
                purpose=grant.purpose,
                public_key=raw_public_key(grant.public_key),
                not_before=timestamp(grant.not_before),
                not_after=timestamp(grant.not_after),
            )
            for grant in grants
        ],
        key_revocations=[
            pb.KeyRevocation(
                key_id=revocation.key_id,
                revoked_from=timestamp(revocation.revoked_from),
                reason=_REASON_LABELS[revocation.reason],
            )
            for revocation in key_revocations
        ],
        certificate_revocations=[
            pb.CertificateRevocation(
                serial_number=_serial_bytes(revocation.serial),
                revoked_from=timestamp(revocation.revoked_from),
                reason=_REASON_LABELS[revocation.reason],
            )
            for revocation in certificate_revocations
        ],
    )
    return update.SerializeToString(deterministic=True)


def sign_update(update: bytes, signer: Signer) -> bytes:
    """A SignedTrustUpdate carrying the node's signature; the CA's is still missing."""
    signed = pb.SignedTrustUpdate(
        update=update, key_id=signer.key_id, key_signature=signer.sign(PAYLOAD_TRUST_UPDATE, update)
    )
    return signed.SerializeToString(deterministic=True)


def endorse_update(
    envelope: bytes, *, ca_key: ec.EllipticCurvePrivateKey, ca_certificate: x509.Certificate
) -> bytes:
    """Add the national CA's signature to a node-signed update of that CA's country.

    The CA signs only an update of its own country: its certificate's country
    must be the update's member (a ConfigError otherwise, nothing signed).
    """
    signed = _outer(envelope)
    update = _inner(signed)
    ca_country = national_ca_country(ca_certificate)
    if update.member != pb.Country.Value(ca_country):
        raise ConfigError(
            f"this CA is {ca_country}'s; the update is for {pb.Country.Name(update.member)}: "
            "a CA vouches only for its own country"
        )
    if ca_certificate.public_key() != ca_key.public_key():
        raise ConfigError("the CA key does not belong to the CA certificate")
    signed.ca_signature = ca_key.sign(pae(PAYLOAD_TRUST_UPDATE, signed.update), ec.ECDSA(hashes.SHA256()))
    return signed.SerializeToString(deterministic=True)


def _serial_bytes(number: int) -> bytes:
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


# ------------------------------------------------------------ checking one
def _outer(envelope: bytes) -> pb.SignedTrustUpdate:
    if len(envelope) > limits.MAX_TRUST_UPDATE_BYTES:
        raise TrustUpdateRejected(
            f"trust update is {len(envelope)} bytes, at most {limits.MAX_TRUST_UPDATE_BYTES}"
        )
    try:
        return pb.SignedTrustUpdate.FromString(envelope)
    except DecodeError:
        raise TrustUpdateRejected("trust update is not a valid protobuf message") from None


def _inner(signed: pb.SignedTrustUpdate) -> pb.TrustUpdate:
    try:
        return parse_canonical(pb.TrustUpdate, bytes(signed.update), what="trust update body")
    except DecodeFailure as exc:
        raise TrustUpdateRejected(str(exc)) from None


def peek(envelope: bytes) -> tuple[Country, int]:
    """(member, serial) of an update, unverified: only to look up what is held."""
    update = _inner(_outer(envelope))
    name = member_of(update.member)
    if name is None:
        raise TrustUpdateRejected("trust update names no member")
    return name, update.serial


def verify_update(
    envelope: bytes,
    *,
    trust: Trust,
    at: datetime,
    peer: Country | None = None,
    max_skew: timedelta = limits.MAX_CLOCK_SKEW,
) -> VerifiedTrustUpdate:
    """Run every check (module docstring) on one SignedTrustUpdate.

    `at` is when the keys must be valid: the receiving node's clock, or the
    update's own issued_at when replaying a chain already accepted. `peer`
    set means a direct announcement, which only the member itself may make.
    """
    # 1. size
    signed = _outer(envelope)
    body = bytes(signed.update)
    signed_bytes = pae(PAYLOAD_TRUST_UPDATE, body)
    # 2. the member's current alert key
    try:
        entry = trust.resolve_key(signed.key_id, purpose="alert", at=at)
    except InboundRejected as exc:
        raise TrustUpdateRejected(f"trust update signer: {exc}") from None
    if not verify_signature(entry.verifying_key(), PAYLOAD_TRUST_UPDATE, body, bytes(signed.key_signature)):
        raise TrustUpdateRejected(f"trust update signature by {entry.key_id} does not verify")
    # 3. the national CA
    ca_public_key = trust.ca_certificate(entry.owner).public_key()
    if not isinstance(ca_public_key, ec.EllipticCurvePublicKey):
        raise TrustUpdateRejected(f"{entry.owner}'s CA key is not ECDSA; it cannot endorse updates")
    try:
        ca_public_key.verify(bytes(signed.ca_signature), signed_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise TrustUpdateRejected(
            f"trust update of {entry.owner} carries no valid signature by {entry.owner}'s national CA"
        ) from None
    # 4. schema and binding
    update = _inner(signed)
    if update.schema_version != SCHEMA_VERSION:
        raise TrustUpdateRejected(
            f"trust update schema version {update.schema_version} is not {SCHEMA_VERSION}"
        )
    if update.federation != trust.federation:
        raise TrustUpdateRejected(
            f"trust update is for federation {update.federation[:64]!r}, not {trust.federation}"
        )
    member_code = member_of(update.member)
    if member_code != entry.owner:
        raise TrustUpdateRejected(
            f"trust update for {member_code or 'no member'} is signed by {entry.owner}'s key"
        )
    member: Country = entry.owner
    if peer is not None and peer != member:
        raise TrustUpdateRejected(f"peer {peer} announced a trust update of {member}: only {member} may")
    # 5. serial
    expected = trust.serial_of(member) + 1
    if update.serial != expected:
        raise TrustUpdateOutOfOrder(
            f"trust update {update.serial} of {member}: the next one this node needs is {expected}",
            expected=expected,
        )
    # 6. time and content
    try:
        issued_at, grants, key_revocations, certificate_revocations = _content(member, update)
    except DecodeFailure as exc:
        raise TrustUpdateRejected(f"trust update {update.serial} of {member}: {exc}") from None
    if issued_at > at + max_skew:
        raise TrustUpdateRejected(f"trust update issued at {issued_at.isoformat()} is beyond the clock skew")
    if not (grants or key_revocations or certificate_revocations):
        raise TrustUpdateRejected("trust update changes nothing")
    if len(grants) > MAX_GRANTS or len(key_revocations) + len(certificate_revocations) > MAX_REVOCATIONS:
        raise TrustUpdateRejected(
            f"trust update holds more than {MAX_GRANTS} grants or {MAX_REVOCATIONS} revocations"
        )
    try:
        amended = trust.amended(
            member,
            serial=update.serial,
            grants=grants,
            key_revocations=[(r.key_id, r.revoked_from, r.reason) for r in key_revocations],
            certificate_revocations=[(r.serial, r.revoked_from, r.reason) for r in certificate_revocations],
        )
    except ConfigError as exc:
        raise TrustUpdateRejected(str(exc)) from None
    return VerifiedTrustUpdate(
        envelope=envelope,
        member=member,
        serial=update.serial,
        issued_at=issued_at,
        key_id=entry.key_id,
        grants=tuple(KeyId(grant["key_id"]) for grant in grants),
        revoked_keys=tuple(KeyId(r.key_id) for r in key_revocations),
        revoked_certificates=tuple(r.serial for r in certificate_revocations),
        trust=amended,
    )


def _content(
    member: Country, update: pb.TrustUpdate
) -> tuple[datetime, list[dict[str, str]], list[KeyRevocation], list[CertificateRevocation]]:
    """issued_at, grants (as trust-file key entries) and revocations; DecodeFailure names a defect."""
    if not update.HasField("issued_at"):
        # An absent Timestamp would read as 1970-01-01.
        raise DecodeFailure("issued_at: required")
    return (
        from_timestamp(update.issued_at, field="issued_at"),
        [_grant(member, grant) for grant in update.grants],
        [_key_revocation(r) for r in update.key_revocations],
        [_certificate_revocation(r) for r in update.certificate_revocations],
    )


def _reason(code: pb.RevocationReason) -> RevocationReason:
    reason = _REASONS.get(code)
    if reason is None:
        raise DecodeFailure("revocation reason is missing or unknown")
    return reason


def _grant(member: Country, grant: pb.KeyGrant) -> dict[str, str]:
    if grant.purpose not in KEY_PURPOSES:
        raise DecodeFailure(f"grant purpose {grant.purpose[:16]!r} is not one of {', '.join(KEY_PURPOSES)}")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(bytes(grant.public_key))
    except ValueError:
        raise DecodeFailure("grant public key is not a raw Ed25519 key") from None
    if grant.key_id != key_id_for(member, grant.purpose, public_key):
        raise DecodeFailure(f"grant key id {grant.key_id[:80]!r} does not match its key, owner and purpose")
    # The trust file's own rules (order of the validity, no reuse) are checked
    # once more by Trust.amended on the result.
    return {
        "key_id": grant.key_id,
        "purpose": grant.purpose,
        "public_key": _b64(bytes(grant.public_key)),
        "not_before": iso(from_timestamp(grant.not_before, field="not_before")),
        "not_after": iso(from_timestamp(grant.not_after, field="not_after")),
    }


def _key_revocation(revocation: pb.KeyRevocation) -> KeyRevocation:
    return KeyRevocation(
        key_id=revocation.key_id,
        revoked_from=from_timestamp(revocation.revoked_from, field="revoked_from"),
        reason=_reason(revocation.reason),
    )


def _certificate_revocation(revocation: pb.CertificateRevocation) -> CertificateRevocation:
    serial = bytes(revocation.serial_number)
    if not 1 <= len(serial) <= MAX_CERTIFICATE_SERIAL_BYTES:
        raise DecodeFailure(f"certificate serial is 1-{MAX_CERTIFICATE_SERIAL_BYTES} bytes")
    return CertificateRevocation(
        serial=int.from_bytes(serial, "big"),
        revoked_from=from_timestamp(revocation.revoked_from, field="revoked_from"),
        reason=_reason(revocation.reason),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ------------------------------------------------------------ chains
def replay(trust: Trust, envelopes: Iterable[bytes]) -> tuple[Trust, list[tuple[bytes, TrustUpdateRejected]]]:
    """The trust that `trust` amended by already-accepted updates makes.

    Each update is checked at its own issued_at (it was accepted then; a key
    may have expired since). Updates are applied in the order given, which
    must be each member's serial order; one that fails is skipped and
    returned with its error, and so are that member's later ones (they
    would not follow). Used by the node at start and by the auditor.
    """
    refused: list[tuple[bytes, TrustUpdateRejected]] = []
    broken: set[Country] = set()
    for envelope in envelopes:
        try:
            member, _ = peek(envelope)
            if member in broken:
                raise TrustUpdateRejected(f"an earlier trust update of {member} was refused")
            issued_at = from_timestamp(_inner(_outer(envelope)).issued_at, field="issued_at")
            trust = verify_update(envelope, trust=trust, at=issued_at, max_skew=timedelta(0)).trust
        except TrustUpdateRejected as exc:
            refused.append((envelope, exc))
            with contextlib.suppress(TrustUpdateRejected):
                broken.add(peek(envelope)[0])
        except DecodeFailure as exc:
            refused.append((envelope, TrustUpdateRejected(str(exc))))
    return trust, refused


def describe(envelope: bytes) -> dict[str, object]:
    """What an update says, for a person to read before endorsing or announcing it.

    Not a verification: the signatures are reported as present or missing
    only (a CA officer checks what they are about to sign).
    """
    signed = _outer(envelope)
    update = _inner(signed)
    try:
        return {
            "member": pb.Country.Name(update.member),
            "federation": update.federation,
            "serial": update.serial,
            "issued_at": iso(from_timestamp(update.issued_at, field="issued_at")),
            "signed_by": signed.key_id,
            "node_signature": bool(signed.key_signature),
            "ca_signature": bool(signed.ca_signature),
            "grants": [
                {
                    "key_id": grant.key_id,
                    "purpose": grant.purpose,
                    "not_before": iso(from_timestamp(grant.not_before, field="not_before")),
                    "not_after": iso(from_timestamp(grant.not_after, field="not_after")),
                }
                for grant in update.grants
            ],
            "revoked_keys": [
                {
                    "key_id": r.key_id,
                    "from": iso(from_timestamp(r.revoked_from, field="revoked_from")),
                    "reason": _reason(r.reason),
                }
                for r in update.key_revocations
            ],
            "revoked_certificates": [
                {
                    "serial": bytes(r.serial_number).hex(),
                    "from": iso(from_timestamp(r.revoked_from, field="revoked_from")),
                    "reason": _reason(r.reason),
                }
                for r in update.certificate_revocations
            ],
        }
    except (DecodeFailure, ValueError) as exc:
        raise TrustUpdateRejected(f"trust update does not decode: {exc}") from None


@dataclass(frozen=True, slots=True)
class UpdateSummary:
    """Who changed which keys: an update's gist, for the replay (unverified by itself)."""

    member: Country
    serial: int
    granted: tuple[str, ...]
    revoked_keys: tuple[str, ...]
    revoked_certificates: tuple[str, ...]


def summarize(envelope: bytes) -> UpdateSummary:
    """The gist of an update; TrustUpdateRejected if it does not decode."""
    member, serial = peek(envelope)
    update = _inner(_outer(envelope))
    return UpdateSummary(
        member=member,
        serial=serial,
        granted=tuple(grant.key_id for grant in update.grants),
        revoked_keys=tuple(r.key_id for r in update.key_revocations),
        revoked_certificates=tuple(bytes(r.serial_number).hex() for r in update.certificate_revocations),
    )
