"""The exchange's checks of peer input, pure functions over bytes: inbound alerts and witnessing.

Owns SPEC section 4's inbound checks in order (`_inbound`) and the witness
protocol: requests, cosignatures, rollback and fork refusal (`_witness`).
No store, no clock of its own, no network.

May import: node's shared modules, node.message, node.crypto, node.trust.
"""

from node.checks._inbound import Verdict, VerifiedAlert, signature_check, verify_alert, verify_receipt
from node.checks._witness import (
    MAX_PROOF_LINES,
    MAX_REQUEST_BYTES,
    Witnessed,
    WitnessRequestBody,
    WitnessState,
    add_cosignature,
    build_request,
    cosigned_by,
    open_log_checkpoint,
    parse_request,
    verify_witness_cosignature,
    witness,
)
from node.errors import (
    CheckpointSignatureInvalid,
    InconsistentCheckpoint,
    SizeMismatch,
    UnknownLog,
    WitnessMalformed,
    WitnessRejected,
)

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "CheckpointSignatureInvalid",
    "InconsistentCheckpoint",
    "SizeMismatch",
    "UnknownLog",
    "Verdict",
    "VerifiedAlert",
    "WitnessMalformed",
    "WitnessRejected",
    "WitnessRequestBody",
    "WitnessState",
    "Witnessed",
    "add_cosignature",
    "build_request",
    "cosigned_by",
    "open_log_checkpoint",
    "parse_request",
    "signature_check",
    "verify_alert",
    "verify_receipt",
    "verify_witness_cosignature",
    "witness",
]
