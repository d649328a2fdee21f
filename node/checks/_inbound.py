"""Verification of what arrives from a peer: pure functions, no I/O.

The checks run in the fixed order of SPEC section 4 and stop at the first
failure, raising the InboundRejected subclass that names it:

  1. peer certificate to node id      (gateway, node/trust/_identity.py)
  2. size limits                      TooLarge, Malformed
  3. signature and key validity       UnknownKey, KeyNotValid, BadSignature
  4. sender binding                   SenderMismatch
  5. schema                           SchemaViolation
  6. recipient                        NotAddressed
  7. sequence and freshness           FromTheFuture here; the sequence against
                                      the store in node/service/_service.py
                                      (OutOfSequence, Equivocation)

The signature is verified over the exact bytes received, before they are
parsed (step 3 precedes step 5); the verified bytes are what gets stored.

A caller with many alerts at once (a catch-up page) may have their
signatures verified ahead, in other processes (node/crypto/_sigpool.py): it takes
`signature_check` of each envelope, has the checks verified, and passes each
`Verdict` to `verify_alert`, which still runs every step in order, resolving
the key itself, and uses a verdict only for exactly the check it would make.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from google.protobuf.message import DecodeError

from node import limits
from node.crypto import PAYLOAD_ALERT, PAYLOAD_RECEIPT, SignatureCheck, digest, verify_signature
from node.errors import (
    BadSignature,
    FromTheFuture,
    InboundRejected,
    Malformed,
    NotAddressed,
    SchemaViolation,
    SenderMismatch,
    TooLarge,
)
from node.ids import Country, Digest, KeyId
from node.message import Alert, DecodeFailure, Receipt, alert_from_bytes, pb, receipt_from_bytes
from node.trust import Trust


@dataclass(frozen=True, slots=True)
class VerifiedAlert:
    """A signed alert that passed steps 2-7 (all but the store's sequence check)."""

    envelope: bytes
    """The serialized SignedAlert, as received."""
    payload: bytes
    """The signed alert bytes, verbatim."""
    key_id: KeyId
    signature: bytes
    signer: Country
    alert: Alert
    digest: Digest


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt whose signature and content checked out."""

    envelope: bytes
    receipt: Receipt


_Outer = TypeVar("_Outer", pb.SignedAlert, pb.SignedReceipt)


def _outer(envelope: bytes, message_type: type[_Outer], *, max_bytes: int, what: str) -> _Outer:
    if len(envelope) > max_bytes:
        raise TooLarge(f"{what} is {len(envelope)} bytes, at most {max_bytes}")
    outer = message_type()
    try:
        outer.ParseFromString(envelope)
    except DecodeError:
        raise Malformed(f"{what} is not a valid protobuf message") from None
    # Framing, not a key question: an empty envelope (an empty Deliver) has no key id to look up.
    signed = "alert" if message_type is pb.SignedAlert else "receipt"
    missing = [name for name in (signed, "key_id", "signature") if not getattr(outer, name)]
    if missing:
        raise Malformed(f"{what} has no {', no '.join(missing)}")
    return outer


class Verdict(NamedTuple):
    """Whether one SignatureCheck holds, found ahead of verify_alert."""

    check: SignatureCheck
    valid: bool


def signature_check(envelope: bytes, *, trust: Trust) -> SignatureCheck | None:
    """What step 3 of verify_alert will verify for `envelope`, to verify it ahead.

    None where step 2 refuses the envelope or its key is unknown: verify_alert
    will refuse it too, and say why. Whether the key may sign alerts now is
    left to verify_alert, which refuses before it would use this check's verdict.
    """
    try:
        outer = _outer(envelope, pb.SignedAlert, max_bytes=limits.MAX_ENVELOPE_BYTES, what="envelope")
    except InboundRejected:
        return None
    entry = trust.key(outer.key_id)
    if entry is None:
        return None
    return SignatureCheck(entry.public_key, PAYLOAD_ALERT, bytes(outer.alert), bytes(outer.signature))


def verify_alert(
    envelope: bytes,
    *,
    trust: Trust,
    me: Country,
    peer: Country,
    direct: bool,
    now: datetime,
    max_skew: timedelta = limits.MAX_CLOCK_SKEW,
    known: Verdict | None = None,
) -> VerifiedAlert:
    """Run steps 2-7 on one SignedAlert received from `peer`.

    `direct` is True when `peer` claims to be the origin's own node handing
    over its alert; False for relay and offline import, where any peer may
    carry a self-authenticating alert but the signature still binds the origin.
    `known`: the signature's verdict if it was verified ahead (see
    `signature_check`); used only if its check is exactly the one step 3
    makes here, with the key resolved here, else the signature is verified now.
    """
    # 2. size limits
    outer = _outer(envelope, pb.SignedAlert, max_bytes=limits.MAX_ENVELOPE_BYTES, what="envelope")
    payload = bytes(outer.alert)
    signature = bytes(outer.signature)
    # 3. signature and key validity, over the exact bytes
    entry = trust.resolve_key(KeyId(outer.key_id), purpose="alert", at=now)
    if known is not None and known.check == (entry.public_key, PAYLOAD_ALERT, payload, signature):
        valid = known.valid
    else:
        valid = verify_signature(entry.public_key, PAYLOAD_ALERT, payload, signature)
    if not valid:
        raise BadSignature(f"signature by {outer.key_id} does not verify")
    # 4. sender binding
    if direct and entry.owner != peer:
        raise SenderMismatch(f"peer {peer} delivered an alert signed by {entry.owner}'s key {entry.key_id}")
    # 5. schema
    try:
        alert = alert_from_bytes(payload)
    except DecodeFailure as exc:
        raise SchemaViolation(str(exc)) from None
    if alert.origin != entry.owner:
        raise SenderMismatch(
            f"alert claims origin {alert.origin} but is signed by {entry.owner}", alert_id=alert.alert_id
        )
    # 6. recipient
    if me not in alert.recipients:
        raise NotAddressed(
            f"alert is addressed to {', '.join(alert.recipients)}, not {me}", alert_id=alert.alert_id
        )
    # 7. freshness (the sequence is checked against the store by the caller)
    if alert.sent > now + max_skew:
        raise FromTheFuture(
            f"sent {alert.sent.isoformat()} is more than {max_skew} ahead of this node's clock",
            alert_id=alert.alert_id,
        )
    return VerifiedAlert(
        envelope=envelope,
        payload=payload,
        key_id=entry.key_id,
        signature=signature,
        signer=entry.owner,
        alert=alert,
        digest=digest(payload),
    )


def verify_receipt(
    envelope: bytes, *, trust: Trust, receiver: Country, origin: Country, now: datetime
) -> VerifiedReceipt:
    """Check a receipt that `receiver` returned for one of `origin`'s alerts."""
    outer = _outer(envelope, pb.SignedReceipt, max_bytes=limits.MAX_RECEIPT_BYTES, what="receipt")
    payload = bytes(outer.receipt)
    entry = trust.resolve_key(KeyId(outer.key_id), purpose="alert", at=now)
    if not verify_signature(entry.public_key, PAYLOAD_RECEIPT, payload, bytes(outer.signature)):
        raise BadSignature(f"receipt signature by {outer.key_id} does not verify")
    if entry.owner != receiver:
        raise SenderMismatch(f"receipt from {receiver} is signed by {entry.owner}'s key")
    try:
        receipt = receipt_from_bytes(payload)
    except DecodeFailure as exc:
        raise SchemaViolation(str(exc)) from None
    if receipt.receiver != receiver or receipt.origin != origin:
        raise SenderMismatch(
            f"receipt names receiver {receipt.receiver} and origin {receipt.origin}, "
            f"expected {receiver} and {origin}"
        )
    return VerifiedReceipt(envelope=envelope, receipt=receipt)
