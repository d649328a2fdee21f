"""The offline audit: reading bundles, verifying logs and checkpoints, proofs, replay.

Owns the bundle format (`_bundle`), the verification of one or three logs
and their cross-checks (`_verify`, `_checkpoints`), the watchlist chain's
checks over them (`_watchlist`, node/trilateral's fold), inclusion proofs
(`_proof`) and the replay of the exchange with its HTML report (`_replay`;
the entries and events it reads, `_timeline`; the watchlist's history and
the policy moves, `_replay_trilateral`); `_text` is the one short form their
messages give a digest or root.
Needs the trust file and the bundles only: it never loads the store, the
node configuration or gRPC (tests/test_layering.py).

May import: node's shared modules, node.message, node.crypto, node.trust, node.checks, node.trilateral.
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
from node.audit._replay import (
    EVENT_KINDS,
    STATES,
    VERSION_STATES,
    PolicyReplay,
    Replay,
    TrilateralReplay,
    VersionReplay,
    render_html,
    replay,
)
from node.audit._verify import KINDS, AuditKind, Finding, Report, verify_bundles, verify_loaded

__all__ = [
    "DEFECTS",
    "EVENT_KINDS",
    "HEADER",
    "KINDS",
    "MAGIC",
    "MAX_BUNDLE_BYTES",
    "MAX_PROOF_CHARS",
    "STATES",
    "VERSION_STATES",
    "AuditKind",
    "Bundle",
    "Finding",
    "PolicyReplay",
    "Replay",
    "Report",
    "TrilateralReplay",
    "VersionReplay",
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
