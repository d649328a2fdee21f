"""The error tree, split by who is at fault (style: python-tuf, sigstore).

Each inbound refusal is its own class with a stable `reason` code; the gateway
maps classes to gRPC status codes in one table (gateway/status_map.py), and
every refusal is logged with the peer, the reason and the message id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final, Protocol

from node.limits import MAX_REPORTED_PROBLEMS


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


class StoreInUse(StoreError):
    """Another process holds this store: a PostgreSQL store's lease (node/store/_database.py)."""

    operator_kind = "store_in_use"


class StoreUnavailable(StoreError):
    """The store's database went away under a running node (a PostgreSQL connection lost,
    and the lease with it)."""

    operator_kind = "store_unavailable"


class MigrationRefused(RefusedOperation):
    """`ewx store migrate`: the copy did not verify; the destination was rolled back (nothing written)."""


class StoreFull(StoreError):
    """The disk under the store is full (SQLite: "database or disk is full"); nothing was written."""

    operator_kind = "store_full"


class DecodeFailure(EwxError):
    """Bytes that are not a valid, canonical message of the expected type (node/message decoders).

    Whoever decodes says what it means: the inbound checks refuse the message
    (Malformed, SchemaViolation), the audit reports the entry.
    """


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
    cls.operator_kind: cls
    for cls in (UsageError, ConfigError, RefusedOperation, StoreError, StoreFull, StoreInUse, StoreUnavailable)
}
"""The class an operator client raises for each error kind a reply names (else RefusedOperation)."""


def operator_error(kind: object, message: str) -> EwxError:
    """The error an operator reply of `kind` stands for, with the node's message."""
    return OPERATOR_ERRORS.get(str(kind), RefusedOperation)(message)


# ------------------------------------------------------------------ witnessing (C2SP tlog-witness refusals, node/checks/_witness.py)
class WitnessRejected(InboundRejected):
    """Base of every refusal of an add-checkpoint request; nothing was cosigned."""

    reason = "witness_rejected"


class WitnessMalformed(WitnessRejected):
    """The request body or the checkpoint in it cannot be parsed (C2SP 400)."""

    reason = "witness_malformed"


class UnknownLog(WitnessRejected):
    """The checkpoint's origin is not the log of the authenticated peer (C2SP 404).

    A node witnesses exactly one log per peer, named by
    :func:`node.trust.log_origin`; a peer cannot get another node's log,
    or any other log, cosigned through its own connection.
    """

    reason = "unknown_log"


class CheckpointSignatureInvalid(WitnessRejected):
    """No valid signature by the peer's log key under its log name (C2SP 403)."""

    reason = "checkpoint_signature_invalid"


class SizeMismatch(WitnessRejected):
    """The request's old size is not the size this witness last cosigned (C2SP 409).

    ``witness_size`` is that size (0 if it never cosigned this log), returned
    to the log (trailer ``ewx-witness-size``) so it can retry with a proof
    from there.
    """

    reason = "size_mismatch"

    def __init__(self, message: str, *, witness_size: int) -> None:
        """Record the witness's own size alongside the message."""
        super().__init__(message)
        self.witness_size = witness_size
        self.witness_note: str | None = None
        """The log's signed checkpoint at `witness_size` as this witness keeps it
        (its proof of the size: the log's own signature), set by the node service."""


class InconsistentCheckpoint(WitnessRejected):
    """The checkpoint does not extend what this witness last cosigned.

    Raised for a rollback (a checkpoint smaller than the old size), for the
    same size with another root (C2SP 409) and for a consistency proof that
    does not verify (C2SP 422). The checkpoint's log signature has been
    verified by then, so the refused note is kept:

    - ``evidence`` is ``(what this witness cosigned before, the new signed
      note)`` when the pair itself proves a fork: two checkpoints of one size
      with different roots. The first element is the stored cosigned note
      when the caller passed it, else the checkpoint text of the state.
      None for the other cases, which a buggy log could also cause.
    - ``refused_note`` is the new, validly log-signed note in every case, for
      the caller to log (C2SP: the witness MAY keep it, it might later prove
      misbehaviour). None only if raised before the signature was checked.
    """

    reason = "inconsistent_checkpoint"

    def __init__(
        self,
        message: str,
        *,
        evidence: tuple[str, str] | None = None,
        refused_note: str | None = None,
    ) -> None:
        """Record the fork evidence (if any) and the refused note alongside the message."""
        super().__init__(message)
        self.evidence = evidence
        self.refused_note = refused_note


# ------------------------------------------------------------------ early-warning ingest (node/ews/ingest.py)
class DescribedProblem(Protocol):
    """A refused row's problem (node/ews/ingest.py RowProblem): it names itself in a file."""

    def describe(self, source: str) -> str: ...


class IngestRefused(UsageError):
    """The file was refused whole; nothing was stored."""

    def __init__(self, source: str, problems: Sequence[DescribedProblem], total: int | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        shown = "; ".join(p.describe(source) for p in self.problems[:MAX_REPORTED_PROBLEMS])
        more = self.total - min(len(self.problems), MAX_REPORTED_PROBLEMS)
        tail = f"; and {more} more problems" if more > 0 else ""
        super().__init__(f"{shown}{tail}; nothing was stored (--skip-bad stores the good rows)")


class FileRefused(UsageError):
    """The file itself cannot be read as a kind of indicator data; nothing was stored."""


# ------------------------------------------------------------------ PKI (node/pki)
class CertificateNotValidNow(ConfigError):
    """The node's certificate is sound but outside its validity period at the time checked."""
