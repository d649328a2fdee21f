"""The offline audit: reading bundles, verifying logs and checkpoints, proofs, replay.

Owns the bundle format (`_bundle`), the verification of one or three logs
and their cross-checks (`_verify`, `_checkpoints`), inclusion proofs
(`_proof`) and the replay of the exchange with its HTML report (`_replay`);
`_text` is the one short form their messages give a digest or root.
Needs the trust file and the bundles only: it never loads the store, the
node configuration or gRPC (tests/test_layering.py).

May import: node's shared modules, node.message, node.crypto, node.trust, node.checks.
"""

from node.audit._bundle import (
    MAGIC,
    MAX_BUNDLE_BYTES,
    Bundle,
    export_time_line,
    read_bundle,
    signed_export_time,
    write_bundle,
)
from node.audit._checkpoints import history_findings
from node.audit._proof import DEFECTS, HEADER, MAX_PROOF_CHARS, check_proof, parse_proof, prove
from node.audit._replay import EVENT_KINDS, STATES, Replay, render_html, replay
from node.audit._verify import KINDS, Finding, Report, verify_bundles, verify_loaded

__all__ = [
    "DEFECTS",
    "EVENT_KINDS",
    "HEADER",
    "KINDS",
    "MAGIC",
    "MAX_BUNDLE_BYTES",
    "MAX_PROOF_CHARS",
    "STATES",
    "Bundle",
    "Finding",
    "Replay",
    "Report",
    "check_proof",
    "export_time_line",
    "history_findings",
    "parse_proof",
    "prove",
    "read_bundle",
    "render_html",
    "replay",
    "signed_export_time",
    "verify_bundles",
    "verify_loaded",
    "write_bundle",
]
