"""The one table from domain errors to gRPC status codes (style example 4).

Each refusal also sends the trailer `ewx-reason` (the error's stable reason
code), so a peer's operator sees which check failed, not just a class of
status. Anything unexpected becomes INTERNAL with a correlation id that
appears only in this node's log, never the exception text.
"""

from __future__ import annotations

import base64
from typing import Final

import grpc

from gateway import admission
from node import errors, limits
from node.checks import _witness as witness

REASON_TRAILER: Final = "ewx-reason"
EXPECTED_SEQ_TRAILER: Final = "ewx-expected-seq"
WITNESS_SIZE_TRAILER: Final = "ewx-witness-size"
WITNESS_CHECKPOINT_TRAILER: Final = "ewx-witness-checkpoint"
"""With a size mismatch: the log's signed checkpoint at the witness's size, base64 (the proof of that size)."""

STATUS_OF: Final[dict[type[errors.InboundRejected], grpc.StatusCode]] = {
    errors.UnauthenticatedPeer: grpc.StatusCode.UNAUTHENTICATED,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Malformed: grpc.StatusCode.INVALID_ARGUMENT,
    errors.UnknownKey: grpc.StatusCode.UNAUTHENTICATED,
    errors.KeyNotValid: grpc.StatusCode.UNAUTHENTICATED,
    errors.BadSignature: grpc.StatusCode.UNAUTHENTICATED,
    errors.SenderMismatch: grpc.StatusCode.PERMISSION_DENIED,
    errors.SchemaViolation: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotAddressed: grpc.StatusCode.PERMISSION_DENIED,
    errors.FromTheFuture: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfSequence: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Equivocation: grpc.StatusCode.ALREADY_EXISTS,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.WatchlistConflict: grpc.StatusCode.FAILED_PRECONDITION,
    admission.TooManyStreams: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # the node cancelled a stream it will not hold open any longer
    admission.StreamStalled: grpc.StatusCode.DEADLINE_EXCEEDED,
    admission.StreamTooLong: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.TrustUpdateRejected: grpc.StatusCode.PERMISSION_DENIED,
    errors.TrustUpdateOutOfOrder: grpc.StatusCode.FAILED_PRECONDITION,
    # C2SP tlog-witness answers, as notes/tlog-design.md maps them
    witness.WitnessMalformed: grpc.StatusCode.INVALID_ARGUMENT,
    witness.UnknownLog: grpc.StatusCode.NOT_FOUND,
    witness.CheckpointSignatureInvalid: grpc.StatusCode.PERMISSION_DENIED,
    witness.SizeMismatch: grpc.StatusCode.ABORTED,
    witness.InconsistentCheckpoint: grpc.StatusCode.FAILED_PRECONDITION,
}

STORE_FULL: Final = (grpc.StatusCode.UNAVAILABLE, "store_full")
"""A full store (`errors.StoreFull`) is no refusal of the message: nothing was written or
acknowledged, and UNAVAILABLE is what a sender's backoff retries."""


def status_for(exc: errors.InboundRejected) -> grpc.StatusCode:
    """The status for a refusal; the most specific class in the table wins."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INVALID_ARGUMENT


def trailers_for(exc: errors.InboundRejected) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that names the failed check (and where to resume)."""
    trailers: tuple[tuple[str, str], ...] = ((REASON_TRAILER, exc.reason),)
    if isinstance(exc, errors.OutOfSequence | errors.TrustUpdateOutOfOrder):
        trailers += ((EXPECTED_SEQ_TRAILER, str(exc.expected)),)
    if isinstance(exc, witness.SizeMismatch):
        trailers += ((WITNESS_SIZE_TRAILER, str(exc.witness_size)),)
        if exc.witness_note is not None:
            encoded = base64.b64encode(exc.witness_note.encode()).decode("ascii")
            if len(encoded) <= limits.MAX_WITNESS_CHECKPOINT_TRAILER:  # else gRPC would fail the answer
                trailers += ((WITNESS_CHECKPOINT_TRAILER, encoded),)
    return trailers
