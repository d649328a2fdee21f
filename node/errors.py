"""The error tree, split by who is at fault (style: python-tuf, sigstore).

Each inbound refusal is its own class with a stable `reason` code; the gateway
maps classes to gRPC status codes in one table (gateway/status_map.py), and
every refusal is logged with the peer, the reason and the message id.
"""

from __future__ import annotations

from typing import ClassVar, Final


class EwxError(Exception):
    """Base of every error this package raises on purpose.

    Each class carries its outcome, so the CLI and the operator socket read the
    same facts: `exit_code` is what `ewx` exits with, `operator_kind` the error
    kind an operator reply names (the client raises the class of that kind again,
    so an error exits the same whether the CLI or the node raised it).
    """

    exit_code: ClassVar[int] = 1
    operator_kind: ClassVar[str] = "refused"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # A caller's-fault error that names no kind of its own travels as one of usage,
        # so it exits 2 from both sides; the rest inherit their parent's kind.
        if "operator_kind" not in cls.__dict__ and cls.exit_code == 2 and cls.operator_kind == "refused":
            cls.operator_kind = "usage"


class ConfigError(EwxError):
    """A configuration, trust or key file is missing or invalid (operator's fault)."""

    exit_code = 2
    operator_kind = "config"


class UsageError(EwxError):
    """A CLI or operator-API request is malformed (caller's fault)."""

    exit_code = 2
    operator_kind = "usage"


class RefusedOperation(EwxError):
    """The node understood the request but will not do it (CLI exit 1)."""


class StoreError(EwxError):
    """The local store is unusable or its contents are inconsistent."""

    operator_kind = "store"


class StoreFull(StoreError):
    """The disk under the store is full (SQLite: "database or disk is full"); nothing was written."""

    operator_kind = "store_full"


# ------------------------------------------------------------------ inbound
class InboundRejected(EwxError):
    """An alert, receipt or request from a peer was refused; nothing was stored.

    `reason` is a stable, documented code; the message names what was wrong
    and is safe to return to the peer (it never carries local data).
    """

    reason = "rejected"

    def __init__(self, message: str, *, alert_id: str | None = None) -> None:
        super().__init__(message)
        self.alert_id = alert_id
        self.logged = False
        """Set once a layer has written the refusal's log event, so it is logged once."""


class UnauthenticatedPeer(InboundRejected):
    """The TLS client certificate does not map to a federation member."""

    reason = "peer_unauthenticated"


class TooLarge(InboundRejected):
    """A message exceeds its size limit (node/limits.py)."""

    reason = "too_large"


class Malformed(InboundRejected):
    """The outer envelope cannot be decoded at all."""

    reason = "malformed"


class UnknownKey(InboundRejected):
    """The key id is not in the federation trust file."""

    reason = "unknown_key"


class KeyNotValid(InboundRejected):
    """The key exists but is not valid for that purpose or at that time."""

    reason = "key_not_valid"


class KeyRevoked(KeyNotValid):
    """The key was revoked by its owner's trust update from a time at or before the check."""

    reason = "key_revoked"


class CertificateRevoked(UnauthenticatedPeer):
    """The peer's TLS certificate was revoked by its owner's trust update."""

    reason = "certificate_revoked"


class BadSignature(InboundRejected):
    """The signature does not verify over the exact signed bytes."""

    reason = "bad_signature"


class SenderMismatch(InboundRejected):
    """The signer or the alert's origin is not who delivered it directly."""

    reason = "sender_mismatch"


class SchemaViolation(InboundRejected):
    """The signed alert breaks a rule of SPEC section 3."""

    reason = "schema_violation"


class NotAddressed(InboundRejected):
    """This node is not among the alert's recipients."""

    reason = "not_addressed"


class FromTheFuture(InboundRejected):
    """The sent time is beyond the allowed clock skew."""

    reason = "from_the_future"


class OutOfSequence(InboundRejected):
    """The sequence number is not the next one expected from that origin.

    `expected` tells the sender where to resume.
    """

    reason = "out_of_sequence"

    def __init__(self, message: str, *, alert_id: str | None = None, expected: int) -> None:
        super().__init__(message, alert_id=alert_id)
        self.expected = expected


class Equivocation(InboundRejected):
    """Two different validly signed alerts claim one origin position or id.

    The second one is kept as evidence and raised to the operator.
    """

    reason = "equivocation"


class WatchlistConflict(InboundRejected):
    """A signed watchlist proposal or vote that no later message could make fit (node/trilateral)."""

    reason = "watchlist_conflict"


class RateLimited(InboundRejected):
    """A peer exceeded its call rate or its concurrent calls (node/limits.py, node.toml)."""

    reason = "rate_limited"


class TrustUpdateRejected(InboundRejected):
    """A trust update (key rotation, revocation) failed a check; nothing was applied."""

    reason = "bad_trust_update"


class TrustUpdateOutOfOrder(TrustUpdateRejected):
    """A member's trust update skips a serial; `expected` is the next one this node needs."""

    reason = "trust_update_out_of_order"

    def __init__(self, message: str, *, expected: int) -> None:
        super().__init__(message)
        self.expected = expected


# ------------------------------------------------------------------ files, notes and proofs


class NoteError(EwxError):
    """A signed note, checkpoint or cosignature is malformed or fails to verify (node/crypto/_note.py).

    The message names the defect; it quotes no key material and is safe to
    return to the peer that sent the note.
    """


class MerkleProofError(EwxError):
    """A Merkle proof, or the values it is checked against, did not verify (node/crypto/_merkle.py).

    The message names the defect (bad hash length, index out of range, wrong
    proof length, root mismatch, ...) so that audit findings can quote it.
    """


class ProofError(EwxError):
    """A proof that cannot be made or does not verify (node/audit/_proof.py); `defect` names what is wrong."""

    def __init__(self, defect: str, detail: str) -> None:
        super().__init__(f"{defect}: {detail}")
        self.defect = defect
        self.detail = detail


class BundleError(EwxError):
    """A file that is not a readable log bundle (audit exit code 2)."""

    exit_code = 2  # a bad input file, as a bad flag


class FramingError(UsageError):
    """A file whose framing is broken (node/message/_framing.py): bad input (CLI exit 2)."""


class TransferError(FramingError):
    """Not a readable outbox transfer file (bad input)."""


# ------------------------------------------------------------------ outcomes
OPERATOR_ERRORS: Final[dict[str, type[EwxError]]] = {
    cls.operator_kind: cls for cls in (UsageError, ConfigError, RefusedOperation, StoreError, StoreFull)
}
"""The class an operator client raises for each error kind a reply names (else RefusedOperation)."""


def operator_error(kind: object, message: str) -> EwxError:
    """The error an operator reply of `kind` stands for, with the node's message."""
    return OPERATOR_ERRORS.get(str(kind), RefusedOperation)(message)
