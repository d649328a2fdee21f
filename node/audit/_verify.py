"""Offline audit of exported exchange logs (SPEC section 6).

`verify_bundles` reads one or more exported log bundles (node/audit/_bundle.py) and
checks them against the federation trust file alone; `verify_loaded` is the
pure core over bundles already in memory. Nothing stored in a bundle is
trusted: the Merkle root is recomputed from the entry bytes, every alert and
receipt signature is checked over the exact signed bytes, and each entry is
decoded once, canonically.

The work runs in three passes so that the expensive part is separable:

1. decode every entry of every log and collect one `SignatureCheck`
   (raw public key, payload type, payload, signature) per signed object;
   a signed alert sits in its origin's log and in each recipient's, and its
   identical check is collected once;
2. `verify_signatures` over those checks, then the signed bytes that verify
   are decoded into the few facts the checks need: pure functions of
   picklable values, the only place Ed25519 verification happens for
   entries. It is the cost of an audit (about 9,400 checks a second per
   core), so from `MIN_PARALLEL_CHECKS` checks on it runs in a process pool
   over all cores ($EWX_AUDIT_WORKERS processes if set), fed in chunks
   while pass 1 is still decoding;
3. interpret the verified entries: per-log checks (each log as soon as its
   checks are done, while the pool works on the next), then cross-log
   checks.

The pool's workers start from a forkserver (see node/crypto/_sigpool.py), which
imports the main module afresh in each worker, as Python's multiprocessing
does outside plain fork: a script that audits must guard its entry point
with `if __name__ == "__main__":` (the `ewx` command does).

An entry whose signature fails, whose key is unknown, or that does not
decode is reported once and then left out of the later checks ("unusable"),
so the findings name the damage where it is and otherwise state only what
the remaining, authentic entries prove. (An expired key is reported but the
entry stays in: its signature is still authentic.) Only what the checks need
of each entry is kept after decoding, not the decoded models.

Finding kinds (stable strings, also in `KINDS`). The index is the entry's
position in that node's log, or None for a finding about the log as a whole.

Per log, index None:
    size_mismatch             the header's size differs from the number of entries
    root_mismatch             the RFC 6962 root or size recomputed from the entries
                              differs from the signed checkpoint
    bad_checkpoint_signature  the checkpoint does not parse, a signature by the
                              node's log key on it fails, or its origin is not the
                              bundle's log origin
    bad_cosignature           a cosignature line by a witness key in the trust file
                              does not verify
    unknown_key               no log key of the node in the trust file signed the
                              checkpoint
    expired_key               the checkpoint's log key was not valid at export time
    export_time_mismatch      the header's export time is not the one the export
                              checkpoint signs (its `ewx-exported-at` line)

Per entry:
    malformed_entry           not a canonical LogEntry, a kind or field layout that
                              no node writes, or an alert/receipt that does not
                              decode and validate (SPEC section 3)
    unknown_key               the alert or receipt names a key id not in the trust file
    expired_key               the key was not valid at the entry's logged_at
    revoked_key               the key's owner had revoked it by the entry's logged_at
    bad_trust_update          a logged trust update (key rotation, revocation) that
                              does not verify against the trust before it, does not
                              follow its member's previous one, or differs from
                              another update of that member under the same serial
    bad_alert_signature       the alert signature does not verify, the key is not an
                              alert key, or the signer is not the alert's origin
    bad_receipt_signature     the same for a receipt, whose signer must be the peer
                              the entry names
    misattributed             an alert in the wrong log: ALERT_SENT of another
                              origin, ALERT_RECEIVED of this node's own alert, or
                              ALERT_RECEIVED of an alert not addressed to this node
    receipt_mismatch          a receipt not by the alert's receiver for this node's
                              alert, or one that names an alert, digest or sequence
                              this log has not sent; across logs: the receiver's
                              log holds the alert, but not at the index its receipt
                              names
    duplicate                 the same signed alert (origin, id, digest) logged
                              twice, or a second receipt of one receiver for one alert
    equivocation              two different signed alerts for one (origin, alert id)
                              or one (origin, recipient, seq), within one log or
                              across logs (except the sender/receiver pair below)
    sequence_gap              a stream's sequence jumps: own alerts per recipient,
                              received alerts per origin, must run 1, 2, 3, ...
    sequence_reorder          a sequence number lower than one logged before it

Across logs (only between logs given together):
    content_mismatch          a receiver logged an alert under the sender's
                              (origin, alert id) with another digest than the
                              sender's ALERT_SENT
    sent_not_received         the sender holds the receiver's receipt, but the
                              receiver's log has no such ALERT_RECEIVED
    undelivered (info)        sent, no receipt, not in the receiver's log: in
                              flight when the logs were exported (also a trust
                              update sent but not in a peer's log)
    received_not_sent         the origin's log has no ALERT_SENT of a received
                              alert (injected, or dropped at the origin), or no
                              TRUST_UPDATE_SENT of a received trust update

The watchlist chain (issue 12; node/audit/_watchlist.py, docs/audit.md):
    watchlist_<kind>          a finding of node/trilateral's fold over the union of
                              the usable alert entries of the given logs (fork,
                              vote_unknown_proposal, bad_version, ...), at the
                              message's entry in its origin's log when given, else
                              in the first log holding it; the in-flight kinds are
                              info unless every member's log is given
    watchlist_unsigned_in_force
                              a member proposed or accepted a successor of a
                              version that its own log, before that entry, does
                              not show signed by every member (a vote whose
                              signature fails, or signed with a key expired or
                              revoked when logged, is left out: it signs nothing)

Checkpoint histories and what each node witnessed of the others are
node/audit/_checkpoints.py's (not_append_only, checkpoint_equivocation,
bad_cosignature, unpublished); docs/audit.md lists every kind.

Logs are compared as exported: a log exported while its node was running
can lack what a later-exported peer log already holds, which shows as
received_not_sent or sent_not_received; export stopped nodes (as `ewx demo`
does) or export all logs at about the same time.
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import hashlib
import itertools
import os
import warnings
from array import array
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple

from node.audit._bundle import Bundle, read_bundle, signed_export_time
from node.audit._checkpoints import Witnessing, compared_sizes, history_check, roots_at, witnessed_findings
from node.audit._text import short_hash
from node.audit._watchlist import (
    KEY_NOT_VALID_KINDS,
    WATCHLIST_KINDS,
    Logged,
    is_watchlist,
    referenced,
    watchlist_findings,
)
from node.clock import iso
from node.crypto import (
    PAYLOAD_ALERT,
    PAYLOAD_RECEIPT,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    SIGNATURE_BYTES,
    Checkpoint,
    ChunkedRunner,
    SignatureCheck,
    SignedNote,
    available_cpus,
    digest,
    exit_with_parent,
    note_key_hash,
    parse_checkpoint,
    parse_signed_note,
    pool_context,
    verify_cosignature,
    verify_note_signature,
    verify_signatures,
)
from node.errors import BundleError, NoteError, TrustUpdateRejected, UsageError
from node.ids import COUNTRIES, Country, Digest
from node.message import (
    Alert,
    DecodeFailure,
    Receipt,
    alert_from_bytes,
    from_timestamp,
    parse_canonical,
    pb,
    receipt_from_bytes,
)
from node.message import member as _member
from node.parsing import whole_number
from node.trust import KeyEntry, Trust, peek, replay, witness_name

__all__ = [
    "KINDS",
    "MIN_PARALLEL_CHECKS",
    "WORKERS_ENV",
    "Finding",
    "LogSummary",
    "Report",
    "SignatureCheck",
    "verify_bundles",
    "verify_loaded",
    "verify_signatures",
]

Severity = Literal["error", "info"]


class AuditKind(StrEnum):
    """Every finding kind the audit reports; KINDS describes each (and docs/audit.md has more).

    The watchlist kinds are node/trilateral's, prefixed (node/audit/_watchlist.py):
    KINDS is built from both and fails at import if one lacks a member here.
    """

    NOT_APPEND_ONLY = "not_append_only"
    CHECKPOINT_EQUIVOCATION = "checkpoint_equivocation"
    UNPUBLISHED = "unpublished"
    SIZE_MISMATCH = "size_mismatch"
    ROOT_MISMATCH = "root_mismatch"
    EXPORT_TIME_MISMATCH = "export_time_mismatch"
    BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"
    BAD_COSIGNATURE = "bad_cosignature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_KEY = "expired_key"
    REVOKED_KEY = "revoked_key"
    BAD_TRUST_UPDATE = "bad_trust_update"
    MALFORMED_ENTRY = "malformed_entry"
    BAD_ALERT_SIGNATURE = "bad_alert_signature"
    BAD_RECEIPT_SIGNATURE = "bad_receipt_signature"
    MISATTRIBUTED = "misattributed"
    RECEIPT_MISMATCH = "receipt_mismatch"
    DUPLICATE = "duplicate"
    EQUIVOCATION = "equivocation"
    SEQUENCE_GAP = "sequence_gap"
    SEQUENCE_REORDER = "sequence_reorder"
    CONTENT_MISMATCH = "content_mismatch"
    SENT_NOT_RECEIVED = "sent_not_received"
    UNDELIVERED = "undelivered"
    RECEIVED_NOT_SENT = "received_not_sent"
    WATCHLIST_PROPOSAL_BY_NON_MEMBER = "watchlist_proposal_by_non_member"
    WATCHLIST_VOTE_BY_NON_MEMBER = "watchlist_vote_by_non_member"
    WATCHLIST_NOT_ADDRESSED_TO_ALL = "watchlist_not_addressed_to_all"
    WATCHLIST_UNKNOWN_PREDECESSOR = "watchlist_unknown_predecessor"
    WATCHLIST_BAD_PREDECESSOR = "watchlist_bad_predecessor"
    WATCHLIST_BAD_VERSION = "watchlist_bad_version"
    WATCHLIST_EDITION_CHANGE = "watchlist_edition_change"
    WATCHLIST_REMOVES_ABSENT = "watchlist_removes_absent"
    WATCHLIST_ADDS_PRESENT = "watchlist_adds_present"
    WATCHLIST_TOO_MANY_PAIRS = "watchlist_too_many_pairs"
    WATCHLIST_VOTE_UNKNOWN_PROPOSAL = "watchlist_vote_unknown_proposal"
    WATCHLIST_VOTE_OTHER_VERSION = "watchlist_vote_other_version"
    WATCHLIST_VOTE_NOT_ON_PROPOSAL = "watchlist_vote_not_on_proposal"
    WATCHLIST_VOTE_BY_PROPOSER = "watchlist_vote_by_proposer"
    WATCHLIST_VOTE_REPEATED = "watchlist_vote_repeated"
    WATCHLIST_PREDECESSOR_NOT_IN_FORCE = "watchlist_predecessor_not_in_force"
    WATCHLIST_FORK = "watchlist_fork"
    WATCHLIST_UNSIGNED_IN_FORCE = "watchlist_unsigned_in_force"


_BASE_KINDS: Final[dict[str, str]] = {
    "not_append_only": "a signed checkpoint of the node's history is not reproduced by its entries",
    "checkpoint_equivocation": "two signed checkpoints of one log and size with different roots",
    "unpublished": "(info) the newest checkpoint lacks a peer's cosignature",
    "size_mismatch": "the bundle header's size differs from its number of entries",
    "root_mismatch": "the root recomputed from the entries differs from the signed checkpoint",
    "export_time_mismatch": "the header's export time differs from the one the export checkpoint signs",
    "bad_checkpoint_signature": "the checkpoint is malformed or its log signature does not verify",
    "bad_cosignature": "a witness cosignature on the checkpoint does not verify",
    "unknown_key": "a signature by a key that is not in the trust file",
    "expired_key": "a key used outside its validity",
    "revoked_key": "a key used after its owner revoked it",
    "bad_trust_update": "a trust update that does not verify or does not follow the member's previous one",
    "malformed_entry": "an entry that is not a canonical, valid log entry, alert or receipt",
    "bad_alert_signature": "an alert signature that does not verify or is not by the alert's origin",
    "bad_receipt_signature": "a receipt signature that does not verify or is not by the receiver",
    "misattributed": "an alert logged at a node that cannot have sent or received it",
    "receipt_mismatch": "a receipt that does not match what the sender sent or the receiver logged",
    "duplicate": "the same alert or receipt logged twice",
    "equivocation": "two different signed alerts for one alert id or one sequence position",
    "sequence_gap": "a sequence number skipped",
    "sequence_reorder": "a sequence number logged after a higher one",
    "content_mismatch": "sender and receiver logged different contents for one alert",
    "sent_not_received": "receipted by the receiver but missing from the receiver's log",
    "undelivered": "sent but neither receipted nor in the receiver's log (in flight)",
    "received_not_sent": "received but not in the origin's log as sent",
}

KINDS: Final[dict[AuditKind, str]] = {
    AuditKind(kind): description for kind, description in {**_BASE_KINDS, **WATCHLIST_KINDS}.items()
}
"""Every finding kind, with a one-line description (module docstring and docs/audit.md have more)."""

MIN_PARALLEL_CHECKS: Final = 5000
"""From this many signature checks on, pass 2 runs in a process pool. Starting it
costs about 0.45 s (a fresh interpreter importing this module), what 5,000 checks
saved on 2 cores with OpenSSL's verify; fewer are verified in-process. With
libsodium's (twice as fast) it is still about even there: 8,000 entries 1.4 s with
the pool, 1.5 s without; 16,000 2.1 s either way (bench/audit.py, 2026-12-05)."""

WORKERS_ENV: Final = "EWX_AUDIT_WORKERS"
"""Environment variable: how many processes verify signatures (default: the CPUs
this process may run on; 1 keeps the audit in-process)."""

_MAX_CHUNK: Final = 4096
"""Checks per task sent to a worker: about 0.5 s of work, so pickling and the
pipe are noise, while the last task leaves little idle time."""

_IN_FLIGHT: Final = 16
"""Most chunks queued for the pool (about 2 MB each): enough that the pool stays
busy while the auditor hashes the trees and interprets the first logs."""

PROGRESS_EVERY: Final = 1024
"""Entries between two calls of a `progress` callback, at most (the last entries of
a log are told at its end): some microseconds of work per thousand entries."""

_SENT: Final = pb.ALERT_SENT
_RECEIVED: Final = pb.ALERT_RECEIVED
_RECEIPT: Final = pb.RECEIPT_RECEIVED
_MEMBER_NUMBERS: Final[dict[Country, int]] = {"KR": pb.KR, "US": pb.US, "JP": pb.JP}
"""The proto number of each member, to pack peers compactly (convert.member reads them back)."""


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class Finding:
    """One audit finding: which node's log, which entry (None: the whole log), what."""

    node: Country
    index: int | None
    kind: AuditKind
    detail: str
    severity: Severity = "error"

    def to_json(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return {
            "node": self.node,
            "index": self.index,
            "kind": self.kind,
            "severity": self.severity,
            "detail": self.detail,
        }

    def line(self) -> str:
        """One line for the human report: `KR #12 bad_alert_signature: ...`."""
        where = f"#{self.index}" if self.index is not None else "log"
        tag = "" if self.severity == "error" else f" ({self.severity})"
        return f"{self.node} {where} {self.kind}{tag}: {self.detail}"


@dataclass(frozen=True)
class LogSummary:
    """What the audit established about one log as a whole."""

    node: Country
    log_origin: str
    entries: int
    root: str
    """Hex of the RFC 6962 root recomputed from the entries."""
    exported_at: datetime
    checkpoint_verified: bool
    """True iff a log key of the node in the trust file validly signed the checkpoint."""
    witnessing: Witnessing = field(default_factory=Witnessing)
    """The newest checkpoint of its own history and how far each peer cosigned it."""


@dataclass
class Report:
    """The outcome of an audit: findings, the nodes whose logs were checked, entry count."""

    findings: list[Finding]
    nodes: list[Country]
    entries: int
    logs: list[LogSummary] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """The findings of severity `error`."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def clean(self) -> bool:
        """True iff there is no error-severity finding (info findings do not count)."""
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """The machine report: verdict, per-node summary, findings."""
        per_node: dict[str, dict[str, Any]] = {}
        for node in self.nodes:
            mine = [f for f in self.findings if f.node == node]
            summary: dict[str, Any] = {
                "errors": sum(f.severity == "error" for f in mine),
                "info": sum(f.severity == "info" for f in mine),
            }
            log = next((s for s in self.logs if s.node == node), None)
            if log is not None:
                summary.update(
                    log_origin=log.log_origin,
                    entries=log.entries,
                    root=log.root,
                    exported_at=iso(log.exported_at),
                    checkpoint_verified=log.checkpoint_verified,
                    witnessed=log.witnessing.to_json(),
                )
            per_node[node] = summary
        return {
            "verdict": "clean" if self.clean else "findings",
            "clean": self.clean,
            "logs": len(self.nodes),
            "entries": self.entries,
            "errors": len(self.errors),
            "info": len(self.findings) - len(self.errors),
            "nodes": per_node,
            "findings": [f.to_json() for f in self.findings],
        }

    def to_text(self) -> str:
        """The human report: what each log's checkpoints show was witnessed, one line per
        finding, then the verdict line."""
        lines = [s.witnessing.line(s.node) for s in self.logs]
        lines += [f.line() for f in self.findings]
        errors = len(self.errors)
        if errors == 0:
            logs = len(self.nodes)
            lines.append(f"VERDICT: clean ({logs} log{'s' if logs != 1 else ''}, {self.entries} entries)")
        else:
            lines.append(f"VERDICT: {errors} finding{'s' if errors != 1 else ''}")
        return "\n".join(lines)


# ------------------------------------------------------------------ decoded entries
@dataclass(slots=True)
class _Signed:
    """An entry that parsed and names a usable key: waiting for its signature check."""

    index: int
    kind: int
    peer: Country | None
    key: KeyEntry


class _Pending:
    """Pass 1's output for one log: the entries waiting for their check, in log order.

    Kept in arrays, a few bytes an entry rather than an object each: at a
    million entries, objects here would cost more than the entries themselves.
    """

    __slots__ = ("check", "index", "key", "kind", "peer")

    def __init__(self) -> None:
        self.index = array("q")
        self.kind = bytearray()
        self.peer = bytearray()
        """pb.Country number of the entry's peer, 0 for none."""
        self.key: list[KeyEntry] = []
        self.check = array("q")
        """Position of the entry's (possibly shared) check in pass 2's outcomes."""

    def add(self, signed: _Signed, check: int) -> None:
        self.index.append(signed.index)
        self.kind.append(signed.kind)
        self.peer.append(_MEMBER_NUMBERS[signed.peer] if signed.peer else 0)
        self.key.append(signed.key)
        self.check.append(check)

    def __iter__(self) -> Iterator[tuple[_Signed, int]]:
        for index, kind, peer, key, check in zip(
            self.index, self.kind, self.peer, self.key, self.check, strict=True
        ):
            yield _Signed(index=index, kind=kind, peer=_member(peer), key=key), check


class _AlertFacts(NamedTuple):
    """What the checks need of a validated alert, as a worker sends it back (a pydantic
    Alert is ~5 KB). The auditor keeps none of these: `_Versions.add` takes each into
    its columns as it arrives, and pass 3 reads the version number it gave."""

    origin: Country
    alert_id: str
    recipients: tuple[Country, ...]
    """Shared by every alert to the same recipients (see `of`)."""
    seqs: tuple[int, ...]
    """The sequence number towards each of `recipients`."""
    digest: Digest
    """SHA-256 of the signed bytes."""
    msg_type: str
    status: str
    body: Alert | None
    """The whole alert, for a watchlist proposal or vote only (the watchlist fold needs it)."""

    @classmethod
    def of(cls, alert: Alert, payload: bytes) -> _AlertFacts:
        recipients = tuple(d.recipient for d in alert.deliveries)
        # One tuple object per set of recipients, so pickling a chunk of outcomes
        # (its memo) sends one per chunk rather than one an alert.
        recipients = _RECIPIENTS.setdefault(recipients, recipients)
        body = alert if is_watchlist(alert.msg_type) else None
        return cls(
            alert.origin,
            alert.alert_id,
            recipients,
            tuple(d.seq for d in alert.deliveries),
            digest(payload),
            alert.msg_type,
            alert.status,
            body,
        )


_RECIPIENTS: dict[tuple[Country, ...], tuple[Country, ...]] = {}
"""The recipient tuples seen in this process (a handful: the members' subsets)."""

_MOST_RECIPIENTS: Final = len(COUNTRIES) - 1
"""An alert's deliveries, at most: one per member but its origin (node/message validates it)."""


class _ReceiptFacts(NamedTuple):
    """What the checks need of a validated receipt."""

    receiver: Country
    origin: Country
    alert_id: str
    seq: int
    alert_digest: bytes
    log_index: int

    @classmethod
    def of(cls, receipt: Receipt) -> _ReceiptFacts:
        return cls(
            receipt.receiver,
            receipt.origin,
            receipt.alert_id,
            receipt.seq,
            receipt.alert_digest,
            receipt.log_index,
        )


class _Versions:
    """Every alert id and every distinct signed alert (a version: one origin, alert id and
    digest) the audit met, numbered once across all the logs: in columns.

    The logs then hold version numbers, not objects. A signed alert sits in
    three logs and a million-entry audit meets some 200,000 of them; as
    objects (their facts, records, and a versions index per log keyed by
    tuples) they were most of the auditor's memory, about 450 bytes an entry;
    here a version costs about 60 bytes beside its id's string. Two entries
    hold the same version exactly when their alerts have the same digest,
    so comparing digests is comparing numbers.
    """

    __slots__ = (
        "_first",
        "_id_numbers",
        "_more",
        "_name_numbers",
        "_names",
        "_set_numbers",
        "_sets",
        "bodies",
        "digests",
        "id_origin",
        "id_text",
        "msg_type",
        "recipients",
        "seqs",
        "status",
        "version_id",
    )

    def __init__(self) -> None:
        self._id_numbers: dict[Country, dict[str, int]] = {c: {} for c in COUNTRIES}
        self.id_text: list[str] = []
        self.id_origin = bytearray()
        """Per id: its origin's proto number."""
        self._first = array("i")
        """Per id: its first version, -1 for an id only a receipt named."""
        self._more: dict[int, list[int]] = {}
        """Per id with more than one version (an equivocation): the later ones."""
        self.version_id = array("I")
        """Per version: its id."""
        self.digests = bytearray()
        """Per version: its 32-byte digest."""
        self.recipients = bytearray()
        """Per version: its set of recipients, a number into `_sets`."""
        self.seqs = array("q")
        """Per version, `_MOST_RECIPIENTS` slots: the seq towards each recipient of its set."""
        self.msg_type = bytearray()
        self.status = bytearray()
        """Per version: a number into `_names` each."""
        self.bodies: dict[int, Alert] = {}
        """The watchlist proposals and votes, whole (see `_AlertFacts.body`)."""
        self._sets: list[tuple[Country, ...]] = []
        self._set_numbers: dict[tuple[Country, ...], int] = {}
        self._names: list[str] = []
        self._name_numbers: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.version_id)

    # ids
    def id_number(self, origin: Country, alert_id: str) -> int:
        """The number of (origin, alert id), given it now if it has none yet."""
        numbers = self._id_numbers[origin]
        number = numbers.get(alert_id)
        if number is None:
            number = numbers[alert_id] = len(self.id_text)
            self.id_text.append(alert_id)
            self.id_origin.append(_MEMBER_NUMBERS[origin])
            self._first.append(-1)
        return number

    def ids(self) -> int:
        return len(self.id_text)

    def versions_of(self, id_number: int) -> list[int]:
        """The versions of one id, in the order they were met."""
        first = self._first[id_number]
        return [] if first < 0 else [first, *self._more.get(id_number, ())]

    def contested_ids(self) -> list[int]:
        """The ids with more than one version."""
        return sorted(self._more)

    # versions
    def add(self, facts: _AlertFacts) -> int:
        """The number of the version `facts` describe, given it now if it is new."""
        id_number = self.id_number(facts.origin, facts.alert_id)
        known = self.find(id_number, facts.digest)
        if known >= 0:
            return known
        if len(facts.recipients) > _MOST_RECIPIENTS or len(facts.seqs) != len(facts.recipients):
            raise RuntimeError(f"alert {facts.alert_id} has deliveries node/message does not admit")
        version = len(self.version_id)
        if self._first[id_number] < 0:
            self._first[id_number] = version
        else:
            self._more.setdefault(id_number, []).append(version)
        self.version_id.append(id_number)
        self.digests += facts.digest
        self.recipients.append(self._number(facts.recipients, self._sets, self._set_numbers))
        self.seqs.extend(facts.seqs)
        self.seqs.extend([0] * (_MOST_RECIPIENTS - len(facts.seqs)))
        self.msg_type.append(self._number(facts.msg_type, self._names, self._name_numbers))
        self.status.append(self._number(facts.status, self._names, self._name_numbers))
        if facts.body is not None:
            self.bodies[version] = facts.body
        return version

    @staticmethod
    def _number(value: Any, values: list[Any], numbers: dict[Any, int]) -> int:
        number = numbers.get(value)
        if number is None:
            if len(values) > 255:  # validated enums and the members' subsets: a few dozen
                raise RuntimeError(f"more than 256 distinct values in an audit's table: {value!r}")
            number = numbers[value] = len(values)
            values.append(value)
        return number

    def find(self, id_number: int, alert_digest: bytes) -> int:
        """The version of `id_number` with that digest, -1 if none."""
        return next((v for v in self.versions_of(id_number) if self.digest(v) == alert_digest), -1)

    def digest(self, version: int) -> bytes:
        return bytes(self.digests[32 * version : 32 * version + 32])

    def origin(self, version: int) -> Country:
        return _member_at(self.id_origin, self.version_id[version])

    def alert_id(self, version: int) -> str:
        return self.id_text[self.version_id[version]]

    def recipients_of(self, version: int) -> tuple[Country, ...]:
        return self._sets[self.recipients[version]]

    def deliveries(self, version: int) -> Iterator[tuple[Country, int]]:
        """(recipient, seq) of each of the version's deliveries, in the alert's order."""
        slot = _MOST_RECIPIENTS * version
        return zip(self.recipients_of(version), self.seqs[slot : slot + _MOST_RECIPIENTS], strict=False)

    def seq_for(self, version: int, recipient: Country) -> int | None:
        return next((seq for r, seq in self.deliveries(version) if r == recipient), None)

    def msg_type_of(self, version: int) -> str:
        return self._names[self.msg_type[version]]

    def status_of(self, version: int) -> str:
        return self._names[self.status[version]]

    def describe(self, version: int, sent: bool) -> str:
        what = "ALERT_SENT" if sent else "ALERT_RECEIVED"
        return (
            f"{what} of {self.origin(version)} {self.alert_id(version)} "
            f"(digest {short_hash(self.digest(version))})"
        )


def _member_at(column: bytearray, at: int) -> Country:
    member = _member(column[at])
    if member is None:  # the columns hold members' numbers only; anything else is a bug here
        raise RuntimeError(f"column slot {at} holds no member's number")
    return member


@dataclass(slots=True)
class _ReceiptRec:
    """An authentic, decoded RECEIPT_RECEIVED entry, on its way into a log's `_Receipts`."""

    index: int
    peer: Country
    receipt: _ReceiptFacts


class _LogAlerts:
    """A log's usable alert entries that are not duplicates, in log order: in columns.

    Per entry its index, version and two flags; per id the position here of
    its first version (an array over every id number, grown as ids are met),
    and of later ones for the rare id that has several.
    """

    __slots__ = ("_first", "_more", "equivocal", "index", "sent", "version")

    def __init__(self) -> None:
        self.index = array("q")
        self.version = array("I")
        self.sent = bytearray()
        """1 for ALERT_SENT, 0 for ALERT_RECEIVED."""
        self.equivocal = bytearray()
        """1 if already reported as equivocation within its own log."""
        self._first = array("i")
        self._more: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def add(self, index: int, version: int, sent: bool, equivocal: bool, id_number: int) -> int:
        """Append one entry; returns its position here."""
        position = len(self.index)
        self.index.append(index)
        self.version.append(version)
        self.sent.append(sent)
        self.equivocal.append(equivocal)
        if id_number >= len(self._first):
            self._first.extend([-1] * (id_number + 1 - len(self._first)))
        if self._first[id_number] < 0:
            self._first[id_number] = position
        else:
            self._more.setdefault(id_number, []).append(position)
        return position

    def of_id(self, id_number: int) -> list[int]:
        """The positions of the versions of one id here (first occurrences), in log order."""
        first = self._first[id_number] if id_number < len(self._first) else -1
        return [] if first < 0 else [first, *self._more.get(id_number, ())]

    def holds(self, id_number: int) -> bool:
        return id_number < len(self._first) and self._first[id_number] >= 0


class _Receipts:
    """A log's usable receipts, the first per (receiver, alert id), in log order: in columns.

    Two in five entries of a log are receipts. Each keeps its index, peer,
    seq and log index, its alert's id number, and the version of that id its
    digest names (-1 if none the audit met when the receipt was taken in: its
    digest is then kept aside, for the finding). The receiver and origin are
    the peer and the log's node (`_interpret_receipt` refused any other).
    """

    __slots__ = ("_first", "_odd", "id", "index", "log_index", "node", "peer", "seq", "version")

    def __init__(self, node: Country) -> None:
        self.node = node
        self.index = array("q")
        self.peer = bytearray()
        self.seq = array("q")
        self.log_index = array("q")
        self.id = array("I")
        self.version = array("i")
        self._odd: dict[int, bytes] = {}
        """The digests of receipts whose digest names no known version, by position."""
        self._first: dict[Country, array[int]] = {}
        """Per receiver, per id number: the position of its receipt, -1 for none."""

    def __len__(self) -> int:
        return len(self.index)

    def add(self, rec: _ReceiptRec, versions: _Versions) -> None:
        r = rec.receipt
        id_number = versions.id_number(r.origin, r.alert_id)
        version = versions.find(id_number, r.alert_digest)
        position = len(self.index)
        first = self._first.setdefault(rec.peer, array("i"))
        if id_number >= len(first):
            first.extend([-1] * (id_number + 1 - len(first)))
        first[id_number] = position
        self.index.append(rec.index)
        self.peer.append(_MEMBER_NUMBERS[rec.peer])
        self.seq.append(r.seq)
        self.log_index.append(r.log_index)
        self.id.append(id_number)
        self.version.append(version)
        if version < 0:
            self._odd[position] = r.alert_digest

    def first(self, peer: Country, id_number: int) -> int | None:
        """The position of the receipt by `peer` for that id, if this log holds one."""
        first = self._first.get(peer)
        if first is None or id_number >= len(first) or first[id_number] < 0:
            return None
        return first[id_number]

    def peer_at(self, position: int) -> Country:
        return _member_at(self.peer, position)

    def digest(self, position: int, versions: _Versions) -> bytes:
        version = self.version[position]
        return self._odd[position] if version < 0 else versions.digest(version)


@dataclass
class _Log:
    """One bundle being audited, and what its entries turned out to be."""

    bundle: Bundle
    pending: _Pending = field(default_factory=_Pending)
    """Pass 1's output, until pass 3 takes it."""
    checks: int = 0
    """How many checks pass 2 must have done before pass 3 can take this log."""
    alerts: _LogAlerts = field(default_factory=_LogAlerts)
    """Usable alert entries that are not duplicates, in log order."""
    receipts: _Receipts = field(init=False)
    """Usable receipt entries that are not duplicates, in log order."""
    at_index: array[int] = field(default_factory=lambda: array("i"))
    """Per entry: 2 x version + 1 if sent of the usable alert entry there (duplicates
    included), -1 at any other."""

    def __post_init__(self) -> None:
        self.receipts = _Receipts(self.bundle.node)

    def alert_at(self, index: int) -> tuple[int, bool] | None:
        """(version, sent) of the usable alert entry at `index`, if that is one."""
        code = self.at_index[index] if 0 <= index < len(self.at_index) else -1
        return None if code < 0 else (code >> 1, bool(code & 1))

    @property
    def node(self) -> Country:
        return self.bundle.node


class _Findings:
    """Collects findings; one finding per (node, index, kind, detail)."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self._seen: set[tuple[Country, int | None, str, str]] = set()

    def add(
        self, node: Country, index: int | None, kind: str, detail: str, severity: Severity = "error"
    ) -> None:
        key = (node, index, kind, detail)
        if key not in self._seen:
            self._seen.add(key)
            # AuditKind(kind): a kind nobody described is a bug, and fails here, not in a report.
            self.items.append(
                Finding(node=node, index=index, kind=AuditKind(kind), detail=detail, severity=severity)
            )

    def sorted(self) -> list[Finding]:
        order = {c: i for i, c in enumerate(COUNTRIES)}
        return sorted(
            self.items, key=lambda f: (order.get(f.node, len(order)), -1 if f.index is None else f.index)
        )


# ------------------------------------------------------------------ API
def verify_bundles(
    paths: Sequence[Path],
    *,
    trust: Trust,
    workers: int | None = None,
    min_parallel: int = MIN_PARALLEL_CHECKS,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Read and audit the bundles at `paths`.

    Raises node.audit.BundleError for an unreadable file, bad framing, or two
    bundles of the same node (the CLI's exit code 2); everything else is a
    finding in the report. `workers`, `min_parallel` and `progress` are as for
    `verify_loaded`.
    """
    return verify_loaded(
        [read_bundle(path) for path in paths],
        trust=trust,
        workers=workers,
        min_parallel=min_parallel,
        progress=progress,
    )


def verify_loaded(
    bundles: Sequence[Bundle],
    *,
    trust: Trust,
    workers: int | None = None,
    min_parallel: int = MIN_PARALLEL_CHECKS,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Audit bundles already read: the pure core of `verify_bundles`.

    Signatures are verified by `workers` processes (default: $EWX_AUDIT_WORKERS,
    else one per CPU this process may use) once there are at least
    `min_parallel` checks, else in-process; the report is the same either way.
    Raises BundleError only if two bundles are of the same node, UsageError if
    $EWX_AUDIT_WORKERS is not a positive number.

    `progress`, if given, is called with how many entries were verified since
    its last call (decoded, and every signature check up to theirs done), every
    `PROGRESS_EVERY` entries or so and at the end of each log: the calls sum to
    the number of entries. The logs are verified one after the other in the
    federation's order (node.ids.COUNTRIES: KR, US, JP). The checkpoints and
    cross-log checks that follow the last entry are not counted.
    """
    # The audit builds millions of small objects and no reference cycles; the
    # cyclic collector would walk them all again and again (a fifth of the
    # time at a million entries), so it pauses until the audit is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _audit(bundles, trust=trust, workers=workers, min_parallel=min_parallel, progress=progress)
    finally:
        if collecting:
            gc.enable()


class _Progress:
    """verify_loaded's `progress`: entries told done once pass 1 has decoded them and
    pass 2 has the outcome of every check added up to them (their own included)."""

    __slots__ = ("_before", "_marks", "_ready", "_tell", "_told")

    def __init__(self, tell: Callable[[int], None]) -> None:
        self._tell = tell
        self._marks: deque[tuple[int, int]] = deque()
        """(entries decoded so far, over all logs; checks added by then), oldest first."""
        self._before = 0
        """Entries of the logs before the one being decoded."""
        self._ready = 0
        self._told = 0

    def mark(self, entries: int, checks: int) -> None:
        """The first `entries` entries of this log are decoded, and done once `checks` outcomes are ready."""
        self._marks.append((self._before + entries, checks))
        self.ready(self._ready)

    def log_done(self, entries: int, checks: int) -> None:
        """All `entries` entries of this log are decoded; the next ones are the next log's."""
        self.mark(entries, checks)
        self._before += entries

    def ready(self, outcomes: int) -> None:
        """Pass 2 has the first `outcomes` outcomes (ChunkedRunner's `on_ready`)."""
        self._ready = outcomes
        done = self._told
        while self._marks and self._marks[0][1] <= outcomes:
            done = self._marks.popleft()[0]
        if done > self._told:
            self._tell(done - self._told)
            self._told = done


def _audit(
    bundles: Sequence[Bundle],
    *,
    trust: Trust,
    workers: int | None,
    min_parallel: int,
    progress: Callable[[int], None] | None,
) -> Report:
    seen: set[Country] = set()
    for bundle in bundles:
        if bundle.node in seen:
            raise BundleError(f"two logs of {bundle.node} given; audit one log per node")
        seen.add(bundle.node)
    order = {c: i for i, c in enumerate(COUNTRIES)}
    logs = [_Log(bundle=b) for b in sorted(bundles, key=lambda b: order.get(b.node, len(order)))]
    findings = _Findings()
    versions = _Versions()
    # Keys rotated or revoked after the trust file was written are known from
    # the trust updates the logs carry; everything below checks against them.
    trust = _trust_from_logs(logs, trust, findings)
    workers = _default_workers() if workers is None else max(1, workers)
    total = sum(len(log.bundle.entries) for log in logs)
    told = _Progress(progress) if progress is not None else None
    with _Verifier(
        versions,
        workers=workers,
        min_parallel=min_parallel,
        total=total,
        on_ready=told.ready if told else None,
    ) as verifier:
        # Pass 1: decode every entry once, collect the signature checks; pass 2
        # runs on them meanwhile, in chunks, when it runs in a pool.
        keys = _Keys(trust)
        shared: dict[bytes, int] = {}
        for i, log in enumerate(logs):
            for index, data in enumerate(log.bundle.entries):
                if told is not None and not index % PROGRESS_EVERY:
                    told.mark(index, verifier.added)
                decoded = _decode_entry(log.node, index, data, keys, findings)
                if decoded is None:
                    continue
                signed, check = decoded
                identity = _identity(check) if signed.kind != _RECEIPT else None
                if identity is None:
                    log.pending.add(signed, verifier.add(check))
                    continue
                position = shared.get(identity)
                if position is None:
                    position = shared[identity] = verifier.add(check)
                log.pending.add(signed, position)
            log.checks = verifier.added
            if told is not None:
                told.log_done(len(log.bundle.entries), verifier.added)
            if i > 0:
                # The previous log's checks are done by now, or nearly: pass 3 on
                # it overlaps with the pool's work on this one's.
                _finish_log(logs[i - 1], verifier, versions, findings)
        shared.clear()
        # The trees need no signature: hashed while the pool works, once each, with the
        # roots the checkpoint checks below compare taken on the way.
        sizes = compared_sizes([log.bundle for log in logs])
        roots = {log.node: _tree_roots(log.bundle, sizes[log.node]) for log in logs}
        summaries = [_check_tree(log.bundle, roots[log.node], trust, findings) for log in logs]
        if logs:
            _finish_log(logs[-1], verifier, versions, findings)
    summaries = _check_histories(logs, roots, summaries, trust, findings)
    if len(logs) > 1:
        by_node = {log.node: log for log in logs}
        _cross_conflicts(logs, versions, findings)
        _cross_presence(by_node, versions, findings)
        _cross_receipts(by_node, versions, findings)
    _check_watchlist(logs, versions, trust, findings)
    return Report(
        findings=findings.sorted(),
        nodes=[log.node for log in logs],
        entries=sum(len(log.bundle.entries) for log in logs),
        logs=summaries,
    )


def _check_histories(
    logs: Sequence[_Log],
    roots: dict[Country, dict[int, bytes]],
    summaries: list[LogSummary],
    trust: Trust,
    findings: _Findings,
) -> list[LogSummary]:
    """Checkpoint histories, and what each node witnessed of the others (SPEC section 5):
    the findings, and each log's summary with what it shows was witnessed."""
    checkpoint_findings = []
    summaries = list(summaries)
    for i, log in enumerate(logs):
        found, witnessing = history_check(log.bundle, trust=trust, roots=roots[log.node])
        checkpoint_findings += found
        summaries[i] = dataclasses.replace(summaries[i], witnessing=witnessing)
    checkpoint_findings += witnessed_findings([log.bundle for log in logs], trust=trust, roots=roots)
    for cf in checkpoint_findings:
        findings.add(cf.node, None, cf.kind, cf.detail, cf.severity)
    return summaries


def _finish_log(log: _Log, verifier: _Verifier, versions: _Versions, findings: _Findings) -> None:
    """Pass 3 on one log: interpret its entries once their checks are done, then check it."""
    outcomes = verifier.outcomes(log.checks)
    node = log.node
    log.at_index = array("i", [-1]) * len(log.bundle.entries)
    held = _Held()
    for signed, position in log.pending:
        outcome = outcomes[position]
        try:
            if signed.kind == _RECEIPT:
                # No other entry shares a receipt's check: its facts live on in
                # log.receipts' columns only, not as objects for the rest of the audit.
                outcomes[position] = None
                _take_receipt(log, _interpret_receipt(node, signed, outcome), versions, findings)
            else:
                version = _interpret_alert(node, signed, outcome, versions)
                _take_alert(log, signed, version, versions=versions, held=held, findings=findings)
        except _Reject as exc:
            findings.add(node, signed.index, exc.kind, exc.detail)
    log.pending = _Pending()
    _check_sequences(log, versions, findings)
    _check_receipts(log, versions, findings)


# ------------------------------------------------------------------ the watchlist chain
def _check_watchlist(logs: Sequence[_Log], versions: _Versions, trust: Trust, findings: _Findings) -> None:
    """node/audit/_watchlist.py over the usable alert entries: the union fold and each
    member's own claims. Nothing to do, and nothing built, when no log holds a
    watchlist message."""
    bodies = versions.bodies
    if not any(v in bodies for log in logs for v in log.alerts.version):
        return
    wanted = referenced(bodies[v] for log in logs for v in log.alerts.version if v in bodies)
    shown = {v for v in range(len(versions)) if v in bodies or versions.digest(v) in wanted}
    invalid_key = {(f.node, f.index) for f in findings.items if f.kind in KEY_NOT_VALID_KINDS}
    messages = {
        log.node: [
            Logged(
                log_index=index,
                sent=bool(sent),
                origin=versions.origin(v),
                alert_id=versions.alert_id(v),
                msg_type=versions.msg_type_of(v),
                status=versions.status_of(v),
                digest=versions.digest(v),
                body=bodies.get(v),
            )
            for index, v, sent in zip(log.alerts.index, log.alerts.version, log.alerts.sent, strict=True)
            if v in shown and (log.node, index) not in invalid_key
        ]
        for log in logs
    }
    for f in watchlist_findings(messages, members=tuple(trust.members)):
        findings.add(f.node, f.index, f.kind, f.detail, f.severity)


# ------------------------------------------------------------------ the tree and checkpoint
def _tree_roots(bundle: Bundle, sizes: set[int]) -> dict[int, bytes]:
    """The log's RFC 6962 roots at `sizes` and at its own size, in one pass over its entries
    (a frontier, not a list of every leaf hash: 32 bytes a level, not 65 an entry)."""
    return roots_at(bundle.entries, sizes | {len(bundle.entries)})


def _check_tree(bundle: Bundle, roots: dict[int, bytes], trust: Trust, findings: _Findings) -> LogSummary:
    node, origin = bundle.node, bundle.log_origin
    size = len(bundle.entries)
    if bundle.declared_size != size:
        findings.add(
            node,
            None,
            "size_mismatch",
            f"header declares {bundle.declared_size} entries, the bundle holds {size}",
        )
    root = roots[size]
    summary = LogSummary(
        node=node,
        log_origin=origin,
        entries=size,
        root=root.hex(),
        exported_at=bundle.exported_at,
        checkpoint_verified=False,
    )
    try:
        note = parse_signed_note(bundle.checkpoint)
    except NoteError as exc:
        findings.add(node, None, "bad_checkpoint_signature", f"checkpoint is not a signed note: {exc}")
        return summary
    verified = _check_log_signature(bundle, note, trust, findings)
    try:
        cp = parse_checkpoint(note.body)
    except NoteError as exc:
        findings.add(node, None, "bad_checkpoint_signature", f"checkpoint text is malformed: {exc}")
        return summary
    if cp.origin != origin:
        findings.add(
            node,
            None,
            "bad_checkpoint_signature",
            f"checkpoint origin {cp.origin!r} is not the bundle's log origin {origin!r}",
        )
        verified = False
    if cp.size != size or cp.root_hash != root:
        findings.add(
            node,
            None,
            "root_mismatch",
            f"checkpoint says size {cp.size} root {short_hash(cp.root_hash)}, the entries give "
            f"size {size} root {short_hash(root)}",
        )
    signed_at = signed_export_time(cp.extensions)
    if isinstance(signed_at, str) or (signed_at is not None and signed_at != bundle.exported_at):
        findings.add(
            node,
            None,
            "export_time_mismatch",
            signed_at
            if isinstance(signed_at, str)
            else f"the header says exported {iso(bundle.exported_at)}, the signed checkpoint {iso(signed_at)}",
        )
        verified = False
    _check_cosignatures(node, note, cp, trust, findings)
    return LogSummary(
        node=node,
        log_origin=origin,
        entries=size,
        root=root.hex(),
        exported_at=bundle.exported_at,
        checkpoint_verified=verified,
    )


def _check_log_signature(bundle: Bundle, note: SignedNote, trust: Trust, findings: _Findings) -> bool:
    node, name = bundle.node, bundle.log_origin
    keys = trust.keys_of(node, "log")
    if not keys:
        findings.add(node, None, "unknown_key", f"the trust file lists no log key of {node}")
        return False
    matched = False
    for key in keys:
        try:
            key_hash = note_key_hash(name, key.verifying_key(), SIG_TYPE_ED25519)
        except NoteError as exc:
            findings.add(node, None, "bad_checkpoint_signature", f"log origin {name!r}: {exc}")
            return False
        if not any(s.name == name and s.key_hash == key_hash for s in note.signatures):
            continue
        matched = True
        if not verify_note_signature(note, name=name, public_key=key.verifying_key()):
            findings.add(
                node,
                None,
                "bad_checkpoint_signature",
                f"signature by log key {key.key_id} on the checkpoint does not verify",
            )
            return False
        if not key.valid_at(bundle.exported_at):
            findings.add(
                node,
                None,
                "expired_key",
                f"log key {key.key_id} is valid {iso(key.not_before)} to {iso(key.not_after)}, "
                f"not at export time {iso(bundle.exported_at)}",
            )
        return True
    if not matched:
        findings.add(
            node,
            None,
            "unknown_key",
            f"checkpoint carries no signature {name!r} by a log key of {node} in the trust file",
        )
    return False


def _check_cosignatures(
    node: Country, note: SignedNote, cp: Checkpoint, trust: Trust, findings: _Findings
) -> None:
    witnesses = [key for member in trust.countries for key in trust.keys_of(member, "witness")]
    witness_names = {witness_name(member): member for member in trust.countries}
    for line in note.signatures:
        member = witness_names.get(line.name)
        if member is not None and not any(
            note_key_hash(line.name, key.verifying_key(), SIG_TYPE_COSIGNATURE_V1) == line.key_hash
            for key in trust.keys_of(member, "witness")
        ):
            # A witness's name with a key hash of no key of theirs (a flipped byte, a forged
            # line) would otherwise count for nothing and vanish from the report.
            findings.add(
                node,
                None,
                "bad_cosignature",
                f"cosignature {line.name!r} names {member}'s witness but its key hash matches no "
                f"witness key of {member} in the trust file",
            )
            continue
        for key in witnesses:
            try:
                key_hash = note_key_hash(line.name, key.verifying_key(), SIG_TYPE_COSIGNATURE_V1)
            except NoteError:
                break
            if key_hash != line.key_hash:
                continue
            if verify_cosignature(note, cp, name=line.name, public_key=key.verifying_key()) is None:
                findings.add(
                    node,
                    None,
                    "bad_cosignature",
                    f"cosignature {line.name!r} by witness key {key.key_id} does not verify",
                )
            break


# ------------------------------------------------------------------ pass 1: decode
class _Reject(Exception):
    """An entry that is reported under `kind` and left out of the later checks."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Keys:
    """`Trust.key`, remembered: the trust file's index is a pydantic private
    attribute, whose every read costs microseconds, once per entry."""

    def __init__(self, trust: Trust) -> None:
        self._trust = trust
        self._known: dict[str, KeyEntry | None] = {}

    def key(self, key_id: str) -> KeyEntry | None:
        """The entry with that id, or None."""
        try:
            return self._known[key_id]
        except KeyError:
            found = self._known[key_id] = self._trust.key(key_id)
            return found


_KIND_NAMES: Final[dict[int, str]] = {
    _SENT: "ALERT_SENT",
    _RECEIVED: "ALERT_RECEIVED",
    _RECEIPT: "RECEIPT_RECEIVED",
}


def _trust_from_logs(logs: Sequence[_Log], trust: Trust, findings: _Findings) -> Trust:
    """The trust file amended by every trust update the logs hold, each verified.

    An update is usually in three logs (sent by its member, received by the
    two others); it is checked once. Each member's updates are applied in
    serial order; one that fails is reported where it was logged, and the
    member's later ones are not applied.
    """
    where: dict[bytes, tuple[Country, int]] = {}
    logged_at: dict[bytes, dict[Country, int]] = defaultdict(dict)
    for log in logs:
        for index, data in enumerate(log.bundle.entries):
            if data[:2] not in _TRUST_ENTRY_PREFIXES:
                continue
            try:
                envelope = _trust_entry(log.node, data)
            except _Reject as exc:
                findings.add(log.node, index, exc.kind, exc.detail)
                continue
            where.setdefault(envelope, (log.node, index))
            logged_at[envelope].setdefault(log.node, index)
    _cross_check_trust_updates(logged_at, {log.node for log in logs}, findings)
    chains: dict[tuple[Country, int], bytes] = {}
    for envelope, (node, index) in where.items():
        position = peek(envelope)
        if position in chains:
            findings.add(
                node,
                index,
                "bad_trust_update",
                f"a second, different trust update {position[1]} of {position[0]}",
            )
            continue
        chains[position] = envelope
    amended, refused = replay(trust, (chains[position] for position in sorted(chains)))
    for envelope, problem in refused:
        node, index = where[envelope]
        findings.add(node, index, "bad_trust_update", str(problem))
    return amended


def _cross_check_trust_updates(
    logged_at: dict[bytes, dict[Country, int]], given: set[Country], findings: _Findings
) -> None:
    """Across logs, as for alerts: a received update must be in its member's log as
    sent (else received_not_sent); a sent one not (yet) in a peer's log is
    reported as undelivered (info): updates carry no receipt, so it may be in flight."""
    for envelope, nodes in logged_at.items():
        member, serial = peek(envelope)
        if member not in given:
            continue
        if member not in nodes:
            for node, index in nodes.items():
                findings.add(
                    node,
                    index,
                    "received_not_sent",
                    f"trust update {serial} of {member} is not in {member}'s log",
                )
            continue
        for peer in sorted(given - set(nodes) - {member}):
            findings.add(
                member,
                nodes[member],
                "undelivered",
                f"trust update {serial} is not in {peer}'s log",
                severity="info",
            )


_TRUST_ENTRY_PREFIXES: Final = (bytes([0x08, pb.TRUST_UPDATE_SENT]), bytes([0x08, pb.TRUST_UPDATE_RECEIVED]))
"""How a canonical LogEntry of a trust update begins: field 1 (kind) comes first."""


def _trust_entry(node: Country, data: bytes) -> bytes:
    """The SignedTrustUpdate of a TRUST_UPDATE_* entry whose layout is one a node writes."""
    try:
        entry = parse_canonical(pb.LogEntry, data, what="log entry")
        from_timestamp(entry.logged_at, field="logged_at")
        envelope = bytes(entry.trust_update)
        member, _ = peek(envelope)
    except DecodeFailure as exc:
        raise _Reject("malformed_entry", str(exc)) from None
    except TrustUpdateRejected as exc:
        raise _Reject("bad_trust_update", str(exc)) from None
    if not entry.HasField("logged_at") or entry.HasField("alert") or entry.HasField("receipt"):
        raise _Reject("malformed_entry", "a trust update entry carries logged_at and the update only")
    peer = _member(entry.peer)
    if entry.kind == pb.TRUST_UPDATE_SENT and (entry.peer or member != node):
        raise _Reject("misattributed", f"TRUST_UPDATE_SENT of {member}'s update in {node}'s log")
    # Received from the member itself, or relayed by the third node.
    if entry.kind == pb.TRUST_UPDATE_RECEIVED and (peer is None or node in (peer, member)):
        raise _Reject(
            "misattributed", f"TRUST_UPDATE_RECEIVED of {member}'s update from {peer} in {node}'s log"
        )
    return envelope


def _decode_entry(
    node: Country, index: int, data: bytes, keys: _Keys, findings: _Findings
) -> tuple[_Signed, SignatureCheck] | None:
    if data[:2] in _TRUST_ENTRY_PREFIXES:
        return None  # checked before the trust was settled (_trust_from_logs)
    try:
        return _decode_entry_or_reject(node, index, data, keys, findings)
    except _Reject as exc:
        findings.add(node, index, exc.kind, exc.detail)
        return None


def _structure(node: Country, entry: pb.LogEntry) -> tuple[datetime, Country | None]:
    """Check the entry's layout is one a node writes; its logged_at and peer."""
    kind = entry.kind
    if kind not in (_SENT, _RECEIVED, _RECEIPT):
        raise _Reject(
            "malformed_entry", f"entry kind {kind} is not ALERT_SENT, ALERT_RECEIVED or RECEIPT_RECEIVED"
        )
    kind_name = _KIND_NAMES[kind]
    if not entry.HasField("logged_at"):
        raise _Reject("malformed_entry", f"{kind_name} entry has no logged_at")
    try:
        logged_at = from_timestamp(entry.logged_at, field="logged_at")
    except DecodeFailure as exc:
        raise _Reject("malformed_entry", str(exc)) from None
    peer = _member(entry.peer)
    if kind == _SENT and entry.peer:
        raise _Reject("malformed_entry", "ALERT_SENT entry names a peer")
    if kind != _SENT and (peer is None or peer == node):
        raise _Reject("malformed_entry", f"{kind_name} entry names no peer other than {node}")
    if entry.HasField("alert") != (kind != _RECEIPT) or entry.HasField("receipt") != (kind == _RECEIPT):
        raise _Reject(
            "malformed_entry",
            f"{kind_name} entry must carry {'a receipt' if kind == _RECEIPT else 'an alert'} only",
        )
    return logged_at, peer


def _decode_entry_or_reject(
    node: Country, index: int, data: bytes, keys: _Keys, findings: _Findings
) -> tuple[_Signed, SignatureCheck]:
    try:
        entry = parse_canonical(pb.LogEntry, data, what="log entry")
    except DecodeFailure as exc:
        raise _Reject("malformed_entry", str(exc)) from None
    logged_at, peer = _structure(node, entry)
    signed: pb.SignedAlert | pb.SignedReceipt
    if entry.kind == _RECEIPT:
        signed, payload = entry.receipt, bytes(entry.receipt.receipt)
        payload_type, bad_kind = PAYLOAD_RECEIPT, "bad_receipt_signature"
    else:
        signed, payload = entry.alert, bytes(entry.alert.alert)
        payload_type, bad_kind = PAYLOAD_ALERT, "bad_alert_signature"
    key = keys.key(signed.key_id)
    if key is None:
        raise _Reject("unknown_key", f"key {signed.key_id[:80]!r} is not in the trust file")
    if key.purpose != "alert":
        raise _Reject(bad_kind, f"key {key.key_id} is a {key.purpose} key, not an alert key")
    if key.revoked_at(logged_at):
        findings.add(
            node,
            index,
            "revoked_key",
            f"key {key.key_id} was revoked ({key.revocation_reason}) from "
            f"{iso(key.revoked_from or logged_at)}, before logged_at {iso(logged_at)}",
        )
    elif not key.valid_at(logged_at):
        # Reported, but the entry stays in: the signature may still be authentic.
        findings.add(
            node,
            index,
            "expired_key",
            f"key {key.key_id} is valid {iso(key.not_before)} to {iso(key.not_after)}, "
            f"not at logged_at {iso(logged_at)}",
        )
    return (
        _Signed(index=index, kind=entry.kind, peer=peer, key=key),
        SignatureCheck(key.public_key, payload_type, payload, bytes(signed.signature)),
    )


def _identity(check: SignatureCheck) -> bytes | None:
    """What makes two checks the same: SHA-256 over key, signature and signed bytes.

    Key and signature have fixed lengths (a signature of another length fails
    anyway and is not shared), so the framing is unambiguous; two different
    checks with one identity would take a SHA-256 collision, which would
    equally forge the log's Merkle tree and every alert digest.
    """
    if len(check.signature) != SIGNATURE_BYTES:
        return None
    return hashlib.sha256(check.public_key + check.signature + check.payload).digest()


# ------------------------------------------------------------------ pass 2: verify and decode
_Outcome = _AlertFacts | _ReceiptFacts | int | str | None
"""A check's outcome: None if the signature does not verify (the bytes are then
not decoded), else what the signed bytes decode to, or the DecodeFailure message.
An alert's facts, as they arrive from pass 2, become the number of their
version (`_Verifier._keep`)."""


def _check_and_decode(checks: Sequence[SignatureCheck]) -> list[_Outcome]:
    """Pass 2 over one chunk: verify each check, decode the bytes of those that hold.

    Pure and over picklable values: runs in-process or in a pool worker alike.
    """
    out: list[_Outcome] = []
    for check, ok in zip(checks, verify_signatures(checks), strict=True):
        try:
            if not ok:
                out.append(None)
            elif check.payload_type == PAYLOAD_ALERT:
                out.append(_AlertFacts.of(alert_from_bytes(check.payload), check.payload))
            else:
                out.append(_ReceiptFacts.of(receipt_from_bytes(check.payload)))
        except DecodeFailure as exc:
            out.append(str(exc))
    return out


def _default_workers() -> int:
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        refusal = f"{WORKERS_ENV}={value!r} is not a positive number of processes"
        return whole_number(value, low=1, refusal=refusal, refuse=UsageError)
    return available_cpus()


class _Verifier(ChunkedRunner[SignatureCheck, _Outcome]):
    """Runs pass 2 over the checks as pass 1 adds them, in-process or in a pool.

    Checks are kept until `min_parallel` were added; then a pool of `workers`
    processes starts and takes them in chunks, and later chunks as they fill.
    At most `_IN_FLIGHT` chunks are queued, so pass 1 runs ahead of the pool
    only by that much (their payloads are copies). Outcomes come back in the
    order checks were added. Should the pool break (a worker killed, say), the
    rest is verified in this process, with a warning.
    """

    def __init__(
        self,
        versions: _Versions,
        *,
        workers: int,
        min_parallel: int,
        total: int,
        on_ready: Callable[[int], None] | None = None,
    ) -> None:
        self._versions = versions

        def start() -> ProcessPoolExecutor:
            return ProcessPoolExecutor(
                max_workers=workers,
                mp_context=pool_context("node.audit._verify"),
                initializer=exit_with_parent,
            )

        super().__init__(
            _check_and_decode,
            start=start if workers > 1 else None,
            min_parallel=min_parallel,
            chunk=max(64, min(_MAX_CHUNK, total // (4 * workers) or 1)),
            in_flight=_IN_FLIGHT,
            on_broken=_warn_broken,
            on_ready=on_ready,
            keep=self._keep,
        )

    def _keep(self, outcomes: list[_Outcome]) -> list[_Outcome]:
        """Each alert's facts into the versions' columns, as a chunk's outcomes arrive: the
        auditor then holds a number per check, not a tuple, strings and ints per alert."""
        add = self._versions.add
        return [add(o) if isinstance(o, _AlertFacts) else o for o in outcomes]

    def __enter__(self) -> _Verifier:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _warn_broken(exc: BrokenProcessPool) -> None:
    warnings.warn(
        f"audit: the verifying processes failed ({exc}); verifying in this process",
        RuntimeWarning,
        stacklevel=4,
    )


# ------------------------------------------------------------------ pass 3: interpret
def _interpret_alert(node: Country, s: _Signed, alert: _Outcome, versions: _Versions) -> int:
    """The version an authentic alert entry holds, or _Reject."""
    if alert is None:
        raise _Reject("bad_alert_signature", f"alert signature by {s.key.key_id} does not verify")
    if not isinstance(alert, int):
        raise _Reject("malformed_entry", f"signed alert does not decode: {alert}")
    origin, alert_id = versions.origin(alert), versions.alert_id(alert)
    if origin != s.key.owner:
        raise _Reject(
            "bad_alert_signature",
            f"alert {alert_id} claims origin {origin} but is signed by {s.key.owner}'s key {s.key.key_id}",
        )
    sent = s.kind == _SENT
    if sent and origin != node:
        raise _Reject("misattributed", f"ALERT_SENT of {origin}'s alert {alert_id}")
    if not sent and origin == node:
        raise _Reject("misattributed", f"ALERT_RECEIVED of {node}'s own alert {alert_id}")
    recipients = versions.recipients_of(alert)
    if not sent and node not in recipients:
        raise _Reject(
            "misattributed", f"{origin} alert {alert_id} is addressed to {', '.join(recipients)}, not {node}"
        )
    return alert


def _interpret_receipt(node: Country, s: _Signed, receipt: _Outcome) -> _ReceiptRec:
    if receipt is None:
        raise _Reject("bad_receipt_signature", f"receipt signature by {s.key.key_id} does not verify")
    if not isinstance(receipt, _ReceiptFacts):
        raise _Reject("malformed_entry", f"signed receipt does not decode: {receipt}")
    peer = s.peer
    if peer is None or s.key.owner != peer:
        raise _Reject(
            "bad_receipt_signature",
            f"receipt logged as {peer}'s is signed by {s.key.owner}'s key {s.key.key_id}",
        )
    if receipt.receiver != peer or receipt.origin != node:
        raise _Reject(
            "receipt_mismatch",
            f"receipt names receiver {receipt.receiver} and origin {receipt.origin}, "
            f"expected {peer} and {node}",
        )
    return _ReceiptRec(index=s.index, peer=peer, receipt=receipt)


# ------------------------------------------------------------------ per-log checks
class _Claims:
    """Which entry first claimed each sequence number of one stream (origin, recipient).

    Sorted arrays while the claims come in rising order, as in every log a
    node writes; a dict from the first claim that does not, so a log that
    reorders costs what it costs and no more.
    """

    __slots__ = ("_by_seq", "holders", "seqs")

    def __init__(self) -> None:
        self.seqs = array("q")
        self.holders = array("q")
        self._by_seq: dict[int, int] | None = None

    def holder(self, seq: int) -> int | None:
        if self._by_seq is not None:
            return self._by_seq.get(seq)
        at = bisect.bisect_left(self.seqs, seq)
        return self.holders[at] if at < len(self.seqs) and self.seqs[at] == seq else None

    def claim(self, seq: int, holder: int) -> None:
        """`holder` claims `seq`, unless an earlier claim holds it."""
        if self._by_seq is None:
            if not self.seqs or seq > self.seqs[-1]:
                self.seqs.append(seq)
                self.holders.append(holder)
                return
            if self.holder(seq) is not None:
                return
            self._by_seq = dict(zip(self.seqs, self.holders, strict=True))
            self.seqs, self.holders = array("q"), array("q")
        self._by_seq.setdefault(seq, holder)


class _Held(defaultdict[tuple[Country, Country], _Claims]):
    """A log's claims, per stream (origin, recipient), of the positions of its alerts."""

    def __init__(self) -> None:
        super().__init__(_Claims)


def _take_receipt(log: _Log, rec: _ReceiptRec, versions: _Versions, findings: _Findings) -> None:
    node, r = log.node, rec.receipt
    earlier = log.receipts.first(rec.peer, versions.id_number(node, r.alert_id))
    if earlier is not None:
        findings.add(
            node,
            rec.index,
            "duplicate",
            f"second receipt by {rec.peer} for {r.alert_id} (first at #{log.receipts.index[earlier]})",
        )
        return
    log.receipts.add(rec, versions)


def _take_alert(
    log: _Log, s: _Signed, version: int, *, versions: _Versions, held: _Held, findings: _Findings
) -> None:
    node, alerts = log.node, log.alerts
    sent = s.kind == _SENT
    log.at_index[s.index] = 2 * version + sent
    id_number = versions.version_id[version]
    earlier = alerts.of_id(id_number)
    same = next((p for p in earlier if alerts.version[p] == version), None)
    if same is not None:
        findings.add(
            node,
            s.index,
            "duplicate",
            f"{versions.describe(version, sent)} already logged at #{alerts.index[same]}",
        )
        return
    origin = versions.origin(version)
    equivocal = False
    if earlier:
        equivocal = True
        findings.add(
            node,
            s.index,
            "equivocation",
            f"{versions.describe(version, sent)}, but #{alerts.index[earlier[0]]} holds another alert "
            f"with that id (digest {short_hash(versions.digest(alerts.version[earlier[0]]))})",
        )
    else:
        for recipient, seq in versions.deliveries(version):
            other = held[(origin, recipient)].holder(seq)
            if other is not None and alerts.version[other] != version:
                equivocal = True
                findings.add(
                    node,
                    s.index,
                    "equivocation",
                    f"{versions.describe(version, sent)} has seq {seq} towards {recipient}, which "
                    f"#{alerts.index[other]} ({versions.alert_id(alerts.version[other])}) already holds",
                )
                break
    position = alerts.add(s.index, version, sent, equivocal, id_number)
    for recipient, seq in versions.deliveries(version):
        held[(origin, recipient)].claim(seq, position)


def _check_sequences(log: _Log, versions: _Versions, findings: _Findings) -> None:
    node = log.node
    streams: dict[tuple[Country, Country], tuple[array[int], array[int]]] = {}

    def stream(origin: Country, recipient: Country) -> tuple[array[int], array[int]]:
        found = streams.get((origin, recipient))
        if found is None:
            found = streams[(origin, recipient)] = (array("q"), array("q"))
        return found

    alerts = log.alerts
    for index, version, sent in zip(alerts.index, alerts.version, alerts.sent, strict=True):
        if sent:
            for recipient, seq in versions.deliveries(version):
                indexes, seqs = stream(node, recipient)
                indexes.append(index)
                seqs.append(seq)
        else:
            towards_node = versions.seq_for(version, node)
            if towards_node is not None:
                indexes, seqs = stream(versions.origin(version), node)
                indexes.append(index)
                seqs.append(towards_node)
    for (origin, recipient), (indexes, seqs) in streams.items():
        _check_stream(node, f"{origin}->{recipient}", indexes, seqs, findings)


def _rising(seqs: Sequence[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(seqs))


def _check_stream(
    node: Country, name: str, indexes: Sequence[int], seqs: Sequence[int], findings: _Findings
) -> None:
    """Sequences in log order must run 1, 2, 3, ...; a position seen again is skipped
    (reported as duplicate or equivocation)."""
    rising = _rising(seqs)
    # Rising (every log a node writes): nothing is seen again or lower, and no
    # seq lies between two that follow each other, so only the gaps remain.
    present: Sequence[int] = seqs if rising else sorted(set(seqs))
    taken: set[int] = set()
    highest = 0
    for index, seq in zip(indexes, seqs, strict=True):
        if not rising and seq in taken:
            continue
        if seq > highest + 1:
            between = (
                0 if rising else bisect.bisect_left(present, seq) - bisect.bisect_right(present, highest)
            )
            missing = seq - highest - 1 - between
            if missing > 0:
                findings.add(
                    node,
                    index,
                    "sequence_gap",
                    f"{name} seq {seq} follows {highest}: {missing} sequence number"
                    f"{'s' if missing != 1 else ''} missing",
                )
        elif seq < highest:
            findings.add(node, index, "sequence_reorder", f"{name} seq {seq} logged after seq {highest}")
        if not rising:
            taken.add(seq)
        highest = max(highest, seq)


def _check_receipts(log: _Log, versions: _Versions, findings: _Findings) -> None:
    node, receipts, alerts = log.node, log.receipts, log.alerts
    for at in range(len(receipts)):
        peer, index, alert_id = receipts.peer_at(at), receipts.index[at], versions.id_text[receipts.id[at]]
        sent = alerts.of_id(receipts.id[at])
        if not sent:
            findings.add(
                node,
                index,
                "receipt_mismatch",
                f"receipt by {peer} for {alert_id}, which this log never sent",
            )
            continue
        version = receipts.version[at]
        match = next((p for p in sent if alerts.version[p] == version), None)
        if match is None:
            findings.add(
                node,
                index,
                "receipt_mismatch",
                f"receipt by {peer} for {alert_id} has digest {short_hash(receipts.digest(at, versions))}, "
                f"#{alerts.index[sent[0]]} sent {short_hash(versions.digest(alerts.version[sent[0]]))}",
            )
            continue
        seq = versions.seq_for(version, peer)
        if seq != receipts.seq[at]:
            towards = f"seq {seq}" if seq is not None else "nothing"
            findings.add(
                node,
                index,
                "receipt_mismatch",
                f"receipt by {peer} for {alert_id} says seq {receipts.seq[at]}, #{alerts.index[match]} "
                f"sent {towards} to {peer}",
            )


# ------------------------------------------------------------------ cross-log checks
@dataclass(frozen=True, slots=True)
class _Entry:
    """One usable alert entry of one log, for the rare checks that compare them one by one."""

    node: Country
    index: int
    sent: bool
    version: int
    equivocal: bool


def _entries(log: _Log, positions: Iterable[int]) -> list[_Entry]:
    alerts = log.alerts
    return [
        _Entry(log.node, alerts.index[p], bool(alerts.sent[p]), alerts.version[p], bool(alerts.equivocal[p]))
        for p in positions
    ]


def _reference(recs: Sequence[_Entry]) -> _Entry:
    """The version others are compared with: the origin's own, else the first seen."""
    return next((r for r in recs if r.sent), recs[0])


def _differing(recs: Sequence[_Entry]) -> tuple[_Entry, list[_Entry]]:
    """The reference version and the versions in other logs that differ from it."""
    ref = _reference(recs)
    return ref, [r for r in recs if r.node != ref.node and r.version != ref.version]


def _cross_conflicts(logs: Sequence[_Log], versions: _Versions, findings: _Findings) -> None:
    """Two versions of one id, or at one (origin, recipient, seq), in different logs.

    Only where the audit met more than one version of an id, or more than
    one version at a position, can two logs differ; the entries are looked
    at only there.
    """
    flagged: set[tuple[Country, int]] = set()
    for id_number in versions.contested_ids():
        recs = [e for log in logs for e in _entries(log, log.alerts.of_id(id_number))]
        if recs:
            _id_conflicts(recs, versions, flagged, findings)
    # In the order the entries first claim each position (log, entry, delivery),
    # as an earlier finding on an entry leaves it out of the later ones.
    rank = {log.node: i for i, log in enumerate(logs)}
    positions: list[tuple[tuple[int, int, int], Country, int, list[_Entry]]] = []
    for (_, recipient, seq), claimants in _contested_positions(versions).items():
        first: tuple[int, int, int] | None = None
        recs = []
        for log in logs:
            held = sorted(
                p
                for v in claimants
                for p in log.alerts.of_id(versions.version_id[v])
                if log.alerts.version[p] == v
            )
            for p in held:
                slot = next(
                    k
                    for k, (r, s) in enumerate(versions.deliveries(log.alerts.version[p]))
                    if r == recipient and s == seq
                )
                first = min(first or (rank[log.node], p, slot), (rank[log.node], p, slot))
            recs += _entries(log, held)
        if first is not None:
            positions.append((first, recipient, seq, recs))
    positions.sort(key=lambda item: item[0])
    for _, recipient, seq, recs in positions:
        _position_conflicts(recs, recipient, seq, versions=versions, flagged=flagged, findings=findings)


def _contested_positions(versions: _Versions) -> dict[tuple[Country, Country, int], set[int]]:
    """The positions (origin, recipient, seq) of more than one version, with those versions."""
    streams: dict[tuple[Country, Country], tuple[array[int], array[int]]] = {}
    for version in range(len(versions)):
        origin = versions.origin(version)
        for recipient, seq in versions.deliveries(version):
            found = streams.get((origin, recipient))
            if found is None:
                found = streams[(origin, recipient)] = (array("q"), array("q"))
            found[0].append(seq)
            found[1].append(version)
    contested: dict[tuple[Country, Country, int], set[int]] = {}
    for (origin, recipient), (seqs, held_by) in streams.items():
        if _rising(seqs):
            continue  # as in every federation that does not equivocate: no seq twice
        ordered = sorted(seqs)
        again = {a for a, b in itertools.pairwise(ordered) if a == b}
        for seq, version in zip(seqs, held_by, strict=True):
            if seq in again:
                contested.setdefault((origin, recipient, seq), set()).add(version)
    return {position: vs for position, vs in contested.items() if len(vs) > 1}


def _id_conflicts(
    recs: Sequence[_Entry], versions: _Versions, flagged: set[tuple[Country, int]], findings: _Findings
) -> None:
    ref, others = _differing(recs)
    origin, alert_id = versions.origin(ref.version), versions.alert_id(ref.version)
    ref_digest = short_hash(versions.digest(ref.version))
    for r in others:
        flagged.add((r.node, r.index))
        if ref.sent:
            findings.add(
                r.node,
                r.index,
                "content_mismatch",
                f"{origin} alert {alert_id} has digest {short_hash(versions.digest(r.version))} here, but "
                f"{ref.node} #{ref.index} sent it with digest {ref_digest}",
            )
        elif not r.equivocal:
            findings.add(
                r.node,
                r.index,
                "equivocation",
                f"{origin} alert {alert_id} has digest {short_hash(versions.digest(r.version))} here, but "
                f"{ref.node} #{ref.index} holds digest {ref_digest}",
            )


def _position_conflicts(
    recs: Sequence[_Entry],
    recipient: Country,
    seq: int,
    *,
    versions: _Versions,
    flagged: set[tuple[Country, int]],
    findings: _Findings,
) -> None:
    ref, others = _differing(recs)
    ref_id = versions.version_id[ref.version]
    for r in others:
        # The same id with another digest is the id check's finding.
        if versions.version_id[r.version] == ref_id or r.equivocal or (r.node, r.index) in flagged:
            continue
        flagged.add((r.node, r.index))
        findings.add(
            r.node,
            r.index,
            "equivocation",
            f"{versions.origin(r.version)} alert {versions.alert_id(r.version)} has seq {seq} towards "
            f"{recipient}, but {ref.node} #{ref.index} holds {versions.alert_id(ref.version)} at that position",
        )


def _cross_presence(logs: dict[Country, _Log], versions: _Versions, findings: _Findings) -> None:
    for log in logs.values():
        alerts = log.alerts
        for at, (index, version, sent) in enumerate(
            zip(alerts.index, alerts.version, alerts.sent, strict=True)
        ):
            if sent:
                _sent_arrived(log, at, logs, versions, findings)
                continue
            origin = versions.origin(version)
            origin_log = logs.get(origin)
            if origin_log is None:
                continue
            if not origin_log.alerts.holds(versions.version_id[version]):
                findings.add(
                    log.node,
                    index,
                    "received_not_sent",
                    f"{versions.describe(version, False)}, which {origin}'s log does not hold as sent",
                )


def _sent_arrived(
    log: _Log, at: int, logs: dict[Country, _Log], versions: _Versions, findings: _Findings
) -> None:
    index, version = log.alerts.index[at], log.alerts.version[at]
    id_number = versions.version_id[version]
    for recipient, seq in versions.deliveries(version):
        receiver = logs.get(recipient)
        if receiver is None:
            continue
        if receiver.alerts.holds(id_number):
            continue  # the same digest, or a content_mismatch already reported
        alert_id = versions.id_text[id_number]
        first = log.receipts.first(recipient, id_number)
        if first is not None and log.receipts.version[first] == version:
            findings.add(
                log.node,
                index,
                "sent_not_received",
                f"{alert_id} seq {seq} to {recipient} was receipted (#{log.receipts.index[first]}, "
                f"{recipient} #{log.receipts.log_index[first]}) but {recipient}'s log lacks it",
            )
        else:
            findings.add(
                log.node,
                index,
                "undelivered",
                f"{alert_id} seq {seq} to {recipient}: no receipt and not in "
                f"{recipient}'s log (in flight at export)",
                severity="info",
            )


def _cross_receipts(logs: dict[Country, _Log], versions: _Versions, findings: _Findings) -> None:
    for log in logs.values():
        receipts = log.receipts
        for at in range(len(receipts)):
            peer = receipts.peer_at(at)
            receiver = logs.get(peer)
            if receiver is None:
                continue
            id_number, log_index = receipts.id[at], receipts.log_index[at]
            target = receiver.alert_at(log_index)
            if target is not None and not target[1] and versions.version_id[target[0]] == id_number:
                continue  # digest differences are content_mismatch findings
            where = receiver.alerts.of_id(id_number)
            if not where:
                continue  # not in the receiver's log at all: sent_not_received says so
            if log_index >= len(receiver.bundle.entries):
                holds = f"its log has only {len(receiver.bundle.entries)} entries"
            elif target is None:
                holds = f"#{log_index} is no usable alert entry"
            else:
                holds = f"#{log_index} is {versions.describe(*target)}"
            findings.add(
                log.node,
                receipts.index[at],
                "receipt_mismatch",
                f"receipt by {peer} for {versions.id_text[id_number]} names {peer} #{log_index}, but "
                f"{holds}; {peer} logged it at #{receiver.alerts.index[where[0]]}",
            )
