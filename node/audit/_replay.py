"""Replay of exported logs: the timeline and state of every alert (SPEC section 6).

`replay` rebuilds, from the exchange logs alone, what happened to every alert
(an ALERT or UPDATE message): raised at its origin, delivered to each peer
(the recipient's ALERT_RECEIVED, direct or relayed, and the recipient's
signed receipt logged back at the origin), acknowledged, responded to,
consultation requested, updated (superseded by a new version), cancelled,
expired, and ERROR reports about it. Each event names the node whose log
says so, the entry's index and its logged_at time.

Only authentic entries count. The audit (`node.audit.verify_loaded`) runs
first and its report is part of the replay; every entry it reports as
unusable (see `UNUSABLE_KINDS`: malformed, signed by an unknown key, a
signature that does not verify, logged at a node that cannot hold it, a
receipt that does not match) is left out, so a forged or damaged entry never
moves an alert's state. What the remaining entries prove is replayed even
when the audit has findings elsewhere; the verdict says whether to trust the
logs as a whole.

State of an alert, from every given log (a receiver's copy of a signed
CANCEL is as good as the origin's):

    cancelled   a CANCEL by its origin references it (a CANCEL names one version)
    updated     an UPDATE by its origin references it: superseded by that version
    expired     its info.expires is before the latest export time of the logs
    active      none of the above
    unknown     the alert is only referenced: its own signed text is in no given log

in that order of precedence. Watchlist proposals and votes and policy
reports are no alerts: node/audit/_replay_trilateral.py replays them (every
watchlist version's state and history, every policy move), and their events
join the one timeline. Trust updates in the logs (key rotations and
revocations, docs/key-rotation.md) are listed beside the alerts, each where
it was sent and received. `render_html` writes one self-contained page
(inline CSS, no script, nothing fetched) with the verdict, a timeline with
one column per node, and the findings.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Union

from node.audit._bundle import Bundle
from node.audit._replay_trilateral import (
    TRILATERAL_EVENT_KINDS,
    VERSION_STATES,
    PolicyReplay,
    TrilateralReplay,
    VersionReplay,
    no_trilateral,
    replay_trilateral,
)
from node.audit._text import short_hash
from node.audit._timeline import NODE_ORDER as _NODE_ORDER
from node.audit._timeline import AlertEntry as _AlertEntry
from node.audit._timeline import Event
from node.audit._timeline import ReceiptEntry as _ReceiptEntry
from node.audit._timeline import read_entry as _read_entry
from node.audit._timeline import via as _via
from node.audit._verify import PROGRESS_EVERY, Report, verify_loaded
from node.audit._watchlist import KEY_NOT_VALID_KINDS
from node.clock import iso
from node.errors import TrustUpdateRejected
from node.ids import COUNTRIES, Country
from node.message import (
    Alert,
    DecodeFailure,
    WatchPair,
    from_timestamp,
    parse_canonical,
    pb,
)
from node.situation.deadlines import AckDue, ack_dues
from node.situation.settings import ACK_STATUSES, DEFAULT_ACK_DEADLINE_MINUTES, deadlines_from_minutes
from node.situation.state import (
    ALERT_STATES,
    INFO_TYPES,
    TRILATERAL_TYPES,
    AlertFold,
    AlertState,
    Delivery,
)
from node.trust import Trust, summarize

__all__ = [
    "EVENT_KINDS",
    "STATES",
    "UNUSABLE_KINDS",
    "VERSION_STATES",
    "AlertReplay",
    "Delivery",
    "Event",
    "PolicyReplay",
    "Replay",
    "TrilateralReplay",
    "VersionReplay",
    "render_html",
    "replay",
]

UNUSABLE_KINDS: Final = frozenset(
    {
        "malformed_entry",
        "unknown_key",
        "bad_alert_signature",
        "bad_receipt_signature",
        "misattributed",
        "receipt_mismatch",
    }
)
"""Audit finding kinds that, on an entry, leave that entry out of the replay."""

EVENT_KINDS: Final[dict[str, str]] = {
    "RAISED": "the origin logged the ALERT it signed",
    "DELIVERED": "a recipient logged the alert (direct from the origin or relayed by the third node)",
    "RECEIPT": "the origin logged a recipient's signed receipt",
    "ACK": "an acknowledgement by a recipient",
    "RESPONSE": "measures taken, assistance offered or requested",
    "CONSULT": "a request for a consultation",
    "UPDATE": "a new version of the alert",
    "CANCEL": "the origin cancelled the alert",
    "ERROR": "a recipient reported a problem with the alert",
    "EXPIRED": "the alert's expiry passed before the logs were exported",
    **TRILATERAL_EVENT_KINDS,
}
"""Event kinds (stable strings) and what each means (DELIVERED, RECEIPT and the follow-ups
serve the watchlist messages and policy reports too)."""

STATES: Final = ALERT_STATES
"""The states an alert can end up in (node.situation.state)."""

Subject = Union["AlertReplay", VersionReplay, PolicyReplay]
"""What a timeline event is about: an alert, a watchlist version or a policy report."""

_INFO_TYPES: Final = INFO_TYPES
_TRILATERAL_TYPES: Final = TRILATERAL_TYPES
"""Replayed by node/audit/_replay_trilateral.py, not as alerts."""
_SENT: Final = pb.ALERT_SENT
_RECEIVED: Final = pb.ALERT_RECEIVED
_RECEIPT: Final = pb.RECEIPT_RECEIVED


# ------------------------------------------------------------------ results
@dataclass
class AlertReplay(AlertState):
    """One alert (an ALERT or UPDATE message): its state (node.situation.fold) and its timeline."""

    events: list[Event] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How the timeline names it: its id."""
        return self.alert_id

    def _sort_key(self) -> tuple[datetime, int, str]:
        first = self.sent or (self.events[0].time if self.events else datetime.max.replace(tzinfo=UTC))
        return (first, _NODE_ORDER.get(self.origin, 9), self.alert_id)

    def state_line(self) -> str:
        """`updated (superseded by KR-A2)`, `cancelled (SITUATION_RESOLVED, KR-C1)`, ..."""
        state = self.state
        if state == "cancelled":
            return f"cancelled ({self.cancel_reason}, by {self.cancelled_by})"
        if state == "updated":
            return f"updated (superseded by {', '.join(self.superseded_by)})"
        if state == "expired" and self.expires is not None:
            return f"expired (at {iso(self.expires)})"
        if state == "unknown":
            return "unknown (only referenced; its signed text is in no given log)"
        return state

    def to_json(self) -> dict[str, Any]:
        """The alert's replay as JSON-ready data."""
        return {
            "origin": self.origin,
            "alert_id": self.alert_id,
            "msg_type": self.msg_type,
            "digest": None if self.digest is None else self.digest.hex(),
            "sent": None if self.sent is None else iso(self.sent),
            "status": self.status,
            "severity": self.severity,
            "category": self.category,
            "headline": self.headline,
            "expires": None if self.expires is None else iso(self.expires),
            "state": self.state,
            "supersedes": self.supersedes,
            "superseded_by": list(self.superseded_by),
            "cancelled_by": self.cancelled_by,
            "cancel_reason": self.cancel_reason,
            "delivered_to": self.delivered_to,
            "deliveries": {r: d.to_json() for r, d in self.deliveries.items()},
            "acknowledged_by": dict(self.acknowledged_by),
            "responded_by": list(self.responded_by),
            "consulted_by": list(self.consulted_by),
            "errors_by": dict(self.errors_by),
            "events": [e.to_json() for e in self.events],
        }

    def to_text(self) -> str:
        """One block: heading, summary lines, then the events in time order."""
        what = self.msg_type or "alert"
        lines = [f"{what} {self.alert_id} from {self.origin}: {self.state_line()}"]
        if self.headline is not None:
            lines.append(
                f"  {self.severity} {self.category} {self.status}: {self.headline!r}; "
                f"sent {iso(self.sent) if self.sent else '?'}, "
                f"expires {iso(self.expires) if self.expires else '?'}"
            )
        if self.supersedes is not None:
            lines.append(f"  supersedes {self.supersedes}")
        if self.deliveries:
            deliveries = "; ".join(self.deliveries[r].describe() for r in COUNTRIES if r in self.deliveries)
            lines.append(f"  delivered: {deliveries}")
        acks = ", ".join(f"{n} ({reason})" for n, reason in self.acknowledged_by.items())
        lines.append(f"  acknowledged by: {acks or '-'}")
        if self.responded_by:
            lines.append(f"  responded by: {', '.join(self.responded_by)}")
        if self.consulted_by:
            lines.append(f"  consultation requested by: {', '.join(self.consulted_by)}")
        if self.errors_by:
            lines.append(f"  errors from: {', '.join(f'{n} ({r})' for n, r in self.errors_by.items())}")
        for e in self.events:
            lines.append(e.line(9))
        return "\n".join(lines)


@dataclass
class Replay:
    """Every alert's timeline and state, and the audit verdict on the logs."""

    report: Report
    as_of: datetime
    """The latest export time of the given logs: expiry is judged against it."""
    nodes: list[Country]
    """The nodes whose logs were given, in federation order."""
    alerts: list[AlertReplay]
    """In order of sending (alerts known only by reference: first event)."""
    left_out: list[tuple[Country, int]]
    """(node, index) of entries left out as unusable, per the audit."""
    trust_updates: list[TrustUpdateEvent] = field(default_factory=list)
    """Key rotations and revocations, as each log recorded them, in time order."""
    trilateral: TrilateralReplay = field(default_factory=no_trilateral)
    """The watchlist's versions and the policy reports (node/audit/_replay_trilateral.py)."""
    deadline_minutes: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ACK_DEADLINE_MINUTES))
    """The acknowledgement deadlines the replay measured against, per severity."""
    acks: list[AckDue] = field(default_factory=list)
    """Every recipient's acknowledgement of every alert against its deadline, as of `as_of`."""

    def acks_by_peer(self) -> dict[Country, dict[str, list[AckDue]]]:
        """Per recipient: its acknowledgements by status (on_time, late, overdue, ...), federation order."""
        out: dict[Country, dict[str, list[AckDue]]] = {}
        for due in self.acks:
            out.setdefault(due.recipient, {}).setdefault(due.status, []).append(due)
        return {peer: out[peer] for peer in COUNTRIES if peer in out}

    def _acks_text(self) -> list[str]:
        deadlines = ", ".join(f"{s} {m:g} min" for s, m in self.deadline_minutes.items()) or "none"
        lines = [f"Acknowledgement deadlines ({deadlines}), from the alert's signed time to the ACK's:"]
        for peer, by_status in self.acks_by_peer().items():
            counts = ", ".join(
                f"{len(by_status[s])} {s.replace('_', ' ')}" for s in ACK_STATUSES if s in by_status
            )
            lines.append(f"  {peer}: {counts}")
            for status in ("late", "overdue", "missed"):
                lines.extend(f"    {d.describe()}" for d in by_status.get(status, []))
        if not self.acks:
            lines.append("  no alert with a deadline in these logs")
        return lines

    @property
    def clean(self) -> bool:
        """The audit verdict: True iff no error-severity finding."""
        return self.report.clean

    def alert(self, alert_id: str, origin: Country | None = None) -> AlertReplay:
        """The replay of one alert; KeyError if absent or ambiguous without `origin`."""
        found = [a for a in self.alerts if a.alert_id == alert_id and origin in (None, a.origin)]
        if len(found) != 1:
            raise KeyError(
                f"{len(found)} alerts with id {alert_id!r}" + (f" from {origin}" if origin else "")
            )
        return found[0]

    def verdict(self) -> str:
        """The audit's verdict line."""
        return self.report.to_text().splitlines()[-1]

    def timeline(self) -> list[tuple[Subject, Event]]:
        """Every event of every alert, watchlist version and policy report, in time order
        (an entry may serve two alerts)."""
        pairs: list[tuple[Subject, Event]] = [(a, e) for a in self.alerts for e in a.events]
        pairs += [(v, e) for v in self.trilateral.versions for e in v.events]
        pairs += [(p, e) for p in self.trilateral.policy for e in p.events]
        order: dict[int, int] = {}
        for subject, _ in pairs:
            order.setdefault(id(subject), len(order))
        pairs.sort(key=lambda p: (p[1].sort_key(), order[id(p[0])]))
        return pairs

    def to_json(self) -> dict[str, Any]:
        """The machine report: audit verdict and findings, then every alert."""
        return {
            "verdict": "clean" if self.clean else "findings",
            "clean": self.clean,
            "as_of": iso(self.as_of),
            "nodes": list(self.nodes),
            "left_out": [{"node": n, "index": i} for n, i in self.left_out],
            "audit": self.report.to_json(),
            "alerts": [a.to_json() for a in self.alerts],
            "trust_updates": [t.to_json() for t in self.trust_updates],
            "watchlist": self.trilateral.to_json(),
            "policy_reports": [p.to_json() for p in self.trilateral.policy],
            "ack_deadline_minutes": dict(self.deadline_minutes),
            "acknowledgements": {
                peer: {status: [d.to_json() for d in dues] for status, dues in by_status.items()}
                for peer, by_status in self.acks_by_peer().items()
            },
        }

    def to_text(self) -> str:
        """The human report: logs, one block per alert (chronological), findings, verdict."""
        logs = ", ".join(f"{s.node} ({s.entries} entries)" for s in self.report.logs)
        lines = [f"EWX replay of {len(self.nodes)} log{'s' if len(self.nodes) != 1 else ''}: {logs}"]
        lines.append(f"as of {iso(self.as_of)} (latest export)")
        if self.left_out:
            where = ", ".join(f"{n} #{i}" for n, i in self.left_out)
            lines.append(f"left out as unusable (see findings): {where}")
        lines.append(f"{len(self.alerts)} alert{'s' if len(self.alerts) != 1 else ''}")
        for a in self.alerts:
            lines.append("")
            lines.append(a.to_text())
        tri = self.trilateral
        if tri.versions:
            lines.append("")
            lines.append(f"Watchlist: {tri.current_line()}")
            for v in tri.versions:
                lines.append("")
                lines.append(v.to_text())
        if tri.policy:
            lines.append("")
            lines.append(f"Policy moves: {len(tri.policy)} report{'s' if len(tri.policy) != 1 else ''}")
            for p in tri.policy:
                lines.append("")
                lines.append(p.to_text())
        lines.append("")
        lines.extend(self._acks_text())
        if self.trust_updates:
            lines.append("")
            lines.append("Trust updates (key rotation and revocation):")
            lines.extend(f"  {t.line()}" for t in self.trust_updates)
        lines.append("")
        if self.report.findings:
            lines.append("Findings:")
            lines.extend(f"  {f.line()}" for f in self.report.findings)
        lines.append(self.verdict())
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TrustUpdateEvent:
    """One logged trust update: who changed its keys, and which log says so."""

    node: Country
    index: int
    logged_at: datetime
    sent: bool
    """True in the member's own log (TRUST_UPDATE_SENT), False where a peer received it."""
    member: Country
    serial: int
    granted: list[str]
    revoked_keys: list[str]
    revoked_certificates: list[str]

    def line(self) -> str:
        """`2026-11-25T10:00:00Z  KR #5  KR update 1 sent: granted KR-alert-...; revoked ...`."""
        what = "sent" if self.sent else f"received from {self.member}"
        changes = [f"granted {', '.join(self.granted)}"] if self.granted else []
        if self.revoked_keys:
            changes.append(f"revoked {', '.join(self.revoked_keys)}")
        if self.revoked_certificates:
            changes.append(f"revoked certificate {', '.join(self.revoked_certificates)}")
        return f"{iso(self.logged_at)}  {self.node} #{self.index}  {self.member} update {self.serial} {what}: {'; '.join(changes)}"

    def to_json(self) -> dict[str, Any]:
        """The event as plain JSON values."""
        return {
            "node": self.node,
            "index": self.index,
            "logged_at": iso(self.logged_at),
            "sent": self.sent,
            "member": self.member,
            "serial": self.serial,
            "granted": self.granted,
            "revoked_keys": self.revoked_keys,
            "revoked_certificates": self.revoked_certificates,
        }


def _read_trust_update(node: Country, index: int, data: bytes) -> TrustUpdateEvent | None:
    """A TRUST_UPDATE_* entry the audit found usable, for the replay; None for any other entry."""
    try:
        entry = parse_canonical(pb.LogEntry, data, what="log entry")
        if entry.kind not in (pb.TRUST_UPDATE_SENT, pb.TRUST_UPDATE_RECEIVED):
            return None
        said = summarize(bytes(entry.trust_update))
        return TrustUpdateEvent(
            node=node,
            index=index,
            logged_at=from_timestamp(entry.logged_at, field="logged_at"),
            sent=entry.kind == pb.TRUST_UPDATE_SENT,
            member=said.member,
            serial=said.serial,
            granted=list(said.granted),
            revoked_keys=list(said.revoked_keys),
            revoked_certificates=list(said.revoked_certificates),
        )
    except (DecodeFailure, TrustUpdateRejected):
        return None


# ------------------------------------------------------------------ reading the logs
# ------------------------------------------------------------------ building the replay
class _Builder:
    """The timeline's events, over the fold that gives each alert its state."""

    def __init__(self, steps: AlertFold[AlertReplay]) -> None:
        self.steps = steps
        self.as_of = steps.as_of
        self.alerts = steps.alerts
        self.messages = steps.messages
        self.target = steps.target
        self.block = steps.block

    # -------------------------------------------------------- events
    def add(
        self, a: AlertReplay, e: _AlertEntry | _ReceiptEntry, kind: str, actor: Country, detail: str
    ) -> None:
        message = e.receipt.alert_id if isinstance(e, _ReceiptEntry) else e.alert.alert_id
        a.events.append(
            Event(
                time=e.logged_at,
                node=e.node,
                index=e.index,
                kind=kind,
                message=message,
                actor=actor,
                detail=detail,
            )
        )

    def on_alert(self, e: _AlertEntry) -> None:
        alert = e.alert
        if alert.msg_type in _TRILATERAL_TYPES:
            return
        key = (alert.origin, alert.alert_id)
        if alert.msg_type in _INFO_TYPES:
            self._on_info(self.block(key), e)
        if alert.references:
            target = self.target(alert)
            if target is not None:
                self._on_followup(target, e)

    def _on_info(self, a: AlertReplay, e: _AlertEntry) -> None:
        alert = e.alert
        other = "" if a.digest in (None, e.digest) else f" [different content: digest {short_hash(e.digest)}]"
        if e.sent:
            to = ", ".join(f"{d.recipient} (seq {d.seq})" for d in alert.deliveries)
            if alert.msg_type == "ALERT":
                if alert.info is None:  # the model requires info on ALERT: a bug if ever seen
                    raise RuntimeError(f"ALERT {alert.alert_id} was stored without its info")
                detail = (
                    f"{alert.origin} raised it to {to}: {alert.info.severity} {alert.info.category} "
                    f"{alert.info.headline!r}, expires {iso(alert.info.expires)}"
                )
                self.add(a, e, "RAISED", alert.origin, detail + other)
            else:
                ref = alert.references[0].alert_id if alert.references else "?"
                self.add(
                    a,
                    e,
                    "UPDATE",
                    alert.origin,
                    f"{alert.origin} issued it to {to} as a new version of {ref}" + other,
                )
            return
        seq = alert.seq_for(e.node)
        via = _via(alert.origin, e.peer)
        self.add(a, e, "DELIVERED", e.node, f"delivered to {e.node} (seq {seq}), {via}" + other)

    def _on_followup(self, a: AlertReplay, e: _AlertEntry) -> None:
        alert = e.alert
        sender, kind = alert.origin, alert.msg_type
        ref = alert.references[0]
        other_version = a.digest is not None and ref.digest != a.digest
        note = ""
        if other_version and a.digest is not None:  # the second test only narrows the type
            note = f" [references digest {short_hash(ref.digest)}, the logs hold {short_hash(a.digest)}]"
        if ref.alert_id != a.alert_id:
            note += f" [via {ref.alert_id}]"
        what = self._followup_text(alert)
        if e.sent:
            detail = f"{what} ({alert.alert_id})"
        else:
            detail = f"{e.node} received {sender}'s {kind} {alert.alert_id}, {_via(sender, e.peer)}: {what}"
        self.add(a, e, kind, sender, detail + note)

    @staticmethod
    def _followup_text(alert: Alert) -> str:
        sender, kind = alert.origin, alert.msg_type
        if kind == "ACK":
            return f"{sender} acknowledged it: {alert.reason}"
        if kind == "ERROR":
            return f"{sender} reported an error: {alert.reason}"
        if kind == "CANCEL":
            return f"{sender} cancelled it: {alert.reason}"
        if kind == "UPDATE":
            return f"{sender} issued a new version"
        if kind == "RESPONSE" and alert.response is not None:
            r = alert.response
            text = f"{sender} responded: measures {', '.join(r.measures)}; assistance {r.assistance}"
            if r.assistance_measures:
                text += f" ({', '.join(r.assistance_measures)})"
            if r.expected_duration_days:
                text += f"; expected {r.expected_duration_days} days"
            return text
        if kind == "CONSULT" and alert.consult is not None:
            c = alert.consult
            text = (
                f"{sender} requested a consultation: impact {c.impact}, cause {c.cause}, "
                f"sectors {', '.join(c.sectors)}"
            )
            if c.assistance_wanted:
                text += f"; assistance wanted {', '.join(c.assistance_wanted)}"
            return text
        return f"{sender} sent {kind}"

    def on_receipt(self, e: _ReceiptEntry) -> None:
        r = e.receipt
        known = self.messages.get((r.origin, r.alert_id))
        if known is None or known.alert.msg_type in _TRILATERAL_TYPES:
            return
        if known.alert.msg_type in _INFO_TYPES:
            a = self.block((r.origin, r.alert_id))
            matches = a.digest == r.alert_digest
            detail = (
                f"{e.peer} receipted seq {r.seq}: logged at {e.peer} #{r.log_index}, "
                f"received {iso(r.received_at)}"
            )
            if not matches:
                detail += f" [for digest {short_hash(r.alert_digest)}, not the sent version]"
            self.add(a, e, "RECEIPT", e.peer, detail)
            return
        target = self.target(known.alert)
        if target is not None:
            detail = f"{e.peer} receipted {r.origin}'s {known.alert.msg_type} {r.alert_id} (seq {r.seq})"
            self.add(target, e, "RECEIPT", e.peer, detail)

    def finish(self) -> list[AlertReplay]:
        for a in self.alerts.values():
            if a.expired and a.expires is not None:
                a.events.append(
                    Event(
                        time=a.expires,
                        node=a.origin,
                        index=None,
                        kind="EXPIRED",
                        message=a.alert_id,
                        actor=a.origin,
                        detail=f"expired at {iso(a.expires)}, before the export at {iso(self.as_of)}",
                    )
                )
            a.events.sort(key=Event.sort_key)
        return sorted(self.alerts.values(), key=AlertReplay._sort_key)


def replay(
    bundles: Sequence[Bundle],
    *,
    trust: Trust,
    deadline_minutes: Mapping[str, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Audit `bundles` and rebuild every alert's timeline and state from their authentic entries.

    Acknowledgements are measured against `deadline_minutes` (default: the
    node's default deadlines, node/situation/settings.py).

    `progress`, if given, is called with how many entries were done since its
    last call: first as the audit verifies them (verify_loaded's `progress`),
    then again as the replay reads them, log after log in the federation's
    order, every `PROGRESS_EVERY` entries and at the end of each log; the calls
    sum to twice the number of entries.

    Raises node.audit.BundleError (from the audit) if two bundles are of one node.
    """
    report = verify_loaded(bundles, trust=trust, progress=progress)
    unusable = {
        (f.node, f.index) for f in report.findings if f.index is not None and f.kind in UNUSABLE_KINDS
    }
    ordered = sorted(bundles, key=lambda b: _NODE_ORDER.get(b.node, 9))
    as_of = max((b.exported_at for b in ordered), default=datetime.now(UTC))
    alert_entries: list[_AlertEntry] = []
    receipt_entries: list[_ReceiptEntry] = []
    left_out: list[tuple[Country, int]] = []
    trust_updates: list[TrustUpdateEvent] = []
    for b in ordered:
        for index, data in enumerate(b.entries):
            if progress is not None and index and not index % PROGRESS_EVERY:
                progress(PROGRESS_EVERY)
            read = None if (b.node, index) in unusable else _read_entry(b.node, index, data)
            if read is None:
                update = None if (b.node, index) in unusable else _read_trust_update(b.node, index, data)
                if update is not None:
                    trust_updates.append(update)
                else:
                    left_out.append((b.node, index))
            elif isinstance(read, _ReceiptEntry):
                receipt_entries.append(read)
            else:
                alert_entries.append(read)
        if progress is not None and b.entries:
            progress((len(b.entries) - 1) % PROGRESS_EVERY + 1)
    steps: AlertFold[AlertReplay] = AlertFold(as_of=as_of, make=AlertReplay)
    steps.learn(alert_entries)
    builder = _Builder(steps)
    for e in alert_entries:
        steps.on_alert(e)
        builder.on_alert(e)
    for r in receipt_entries:
        steps.on_receipt(r)
        builder.on_receipt(r)
    # The watchlist counts only what the audit's fold counts (node/audit/_watchlist.py).
    invalid_key = {(f.node, f.index) for f in report.findings if f.kind in KEY_NOT_VALID_KINDS}
    trilateral = replay_trilateral(
        [e for e in alert_entries if (e.node, e.index) not in invalid_key],
        receipt_entries,
        members=tuple(trust.members),
        nodes=[b.node for b in ordered],
    )
    minutes = dict(DEFAULT_ACK_DEADLINE_MINUTES if deadline_minutes is None else deadline_minutes)
    alerts = builder.finish()
    deadlines = deadlines_from_minutes(minutes)
    return Replay(
        deadline_minutes=minutes,
        acks=[d for a in alerts for d in ack_dues(a, deadlines, now=as_of)],
        report=report,
        as_of=as_of,
        nodes=[b.node for b in ordered],
        alerts=alerts,
        left_out=left_out,
        trust_updates=sorted(trust_updates, key=lambda t: (t.logged_at, _NODE_ORDER.get(t.node, 9), t.index)),
        trilateral=trilateral,
    )


# ------------------------------------------------------------------ HTML
_COLOURS: Final[dict[str, tuple[str, str]]] = {
    "RAISED": ("#1d4ed8", "#dbeafe"),
    "DELIVERED": ("#15803d", "#dcfce7"),
    "RECEIPT": ("#0f766e", "#ccfbf1"),
    "ACK": ("#7e22ce", "#f3e8ff"),
    "RESPONSE": ("#a16207", "#fef9c3"),
    "CONSULT": ("#c2410c", "#ffedd5"),
    "UPDATE": ("#b45309", "#fef3c7"),
    "CANCEL": ("#b91c1c", "#fee2e2"),
    "ERROR": ("#9f1239", "#ffe4e6"),
    "EXPIRED": ("#4b5563", "#e5e7eb"),
    "PROPOSED": ("#4338ca", "#e0e7ff"),
    "ACCEPT": ("#047857", "#d1fae5"),
    "REJECT": ("#be123c", "#ffe4e6"),
    "IN_FORCE": ("#166534", "#bbf7d0"),
    "SUPERSEDED": ("#57534e", "#e7e5e4"),
    "POLICY": ("#0369a1", "#e0f2fe"),
}
_STATE_COLOURS: Final[dict[str, str]] = {
    "active": "#15803d",
    "updated": "#b45309",
    "cancelled": "#b91c1c",
    "expired": "#4b5563",
    "unknown": "#6b7280",
    "pending": "#a16207",
    "in_force": "#15803d",
    "superseded": "#57534e",
    "rejected": "#b91c1c",
    "lapsed": "#6b7280",
    "forked": "#9f1239",
    "invalid": "#9f1239",
    "reported": "#0369a1",
    "withdrawn": "#b91c1c",
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _css() -> str:
    kinds = "\n".join(
        f".k-{kind.lower()} {{ border-left: 4px solid {fg}; background: {bg}; }}\n"
        f".k-{kind.lower()} .kind {{ color: {fg}; }}"
        for kind, (fg, bg) in _COLOURS.items()
    )
    states = "\n".join(f".s-{s} {{ color: {c}; font-weight: 600; }}" for s, c in _STATE_COLOURS.items())
    return f"""
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #111827;
  background: #f9fafb; font-size: 14px; }}
header {{ padding: 16px 24px; color: #fff; }}
header.clean {{ background: #166534; }}
header.findings {{ background: #991b1b; }}
header h1 {{ margin: 0 0 4px 0; font-size: 20px; }}
header p {{ margin: 2px 0; }}
main {{ padding: 8px 24px 24px 24px; }}
h2 {{ font-size: 16px; margin: 20px 0 8px 0; }}
table {{ border-collapse: collapse; width: 100%; background: #fff; }}
th, td {{ border: 1px solid #e5e7eb; padding: 4px 6px; vertical-align: top; text-align: left; }}
th {{ background: #f3f4f6; position: sticky; top: 0; }}
td.time {{ white-space: nowrap; font-family: ui-monospace, monospace; font-size: 12px; }}
.timeline td.node {{ width: 30%; }}
.ev {{ margin: 2px 0; padding: 2px 6px; border-radius: 3px; }}
.ev .kind {{ font-weight: 700; font-size: 11px; letter-spacing: .03em; }}
.ev .aid {{ font-family: ui-monospace, monospace; font-weight: 600; }}
.ev .idx {{ color: #6b7280; font-size: 11px; }}
.ev .detail {{ display: block; font-size: 12px; }}
.absent {{ color: #9ca3af; font-weight: 400; font-size: 11px; }}
.legend span {{ display: inline-block; margin: 2px 6px 2px 0; }}
ol.findings li {{ margin: 2px 0; font-family: ui-monospace, monospace; font-size: 12px; }}
li.info {{ color: #6b7280; }}
{kinds}
{states}
"""


def _event_html(subject: Subject, e: Event) -> str:
    return (
        f'<div class="ev k-{_e(e.kind.lower())}">'
        f'<span class="kind">{_e(e.kind)}</span> '
        f'<span class="aid">{_e(subject.label)}</span> '
        f'<span class="idx">{_e(e.where())}</span>'
        f'<span class="detail">{_e(e.detail)}</span></div>'
    )


def _alerts_table(r: Replay) -> list[str]:
    out = [
        "<table><thead><tr><th>alert</th><th>origin</th><th>type</th><th>state</th><th>severity</th>"
        "<th>headline</th><th>delivered to</th><th>acknowledged by</th><th>expires</th></tr></thead><tbody>"
    ]
    for a in r.alerts:
        acks = ", ".join(f"{n} ({reason})" for n, reason in a.acknowledged_by.items())
        out.append(
            "<tr>"
            f'<td class="aid">{_e(a.alert_id)}</td><td>{_e(a.origin)}</td><td>{_e(a.msg_type or "?")}</td>'
            f'<td class="s-{_e(a.state)}">{_e(a.state_line())}</td><td>{_e(a.severity or "")}</td>'
            f"<td>{_e(a.headline or '')}</td><td>{_e(', '.join(a.delivered_to) or '-')}</td>"
            f"<td>{_e(acks or '-')}</td><td>{_e(iso(a.expires) if a.expires else '')}</td>"
            "</tr>"
        )
    out.append("</tbody></table>")
    return out


def _pairs_html(pairs: Sequence[WatchPair] | None) -> str:
    if pairs is None:
        return "?"
    return ", ".join(f"{p.hs_code}:{p.country} ({p.reason})" for p in pairs) or "-"


def _watchlist_html(r: Replay) -> list[str]:
    tri = r.trilateral
    out = [
        f"<p>{_e(tri.current_line())}</p>",
        "<table><thead><tr><th>version</th><th>proposal</th><th>origin</th><th>state</th><th>on</th>"
        "<th>add</th><th>remove</th><th>signed by</th><th>rejected by</th><th>in force at</th>"
        "</tr></thead><tbody>",
    ]
    for v in tri.versions:
        rejections = ", ".join(f"{m} ({reason})" for m, reason in v.rejections.items())
        out.append(
            "<tr>"
            f'<td>{_e(v.version)}</td><td class="aid">{_e(v.alert_id)}</td><td>{_e(v.origin)}</td>'
            f'<td class="s-{_e(v.state)}">{_e(v.state_line())}</td><td>{_e(v.predecessor or "-")}</td>'
            f"<td>{_e(_pairs_html(v.add))}</td><td>{_e(_pairs_html(v.remove))}</td>"
            f"<td>{_e(', '.join(v.signers) or '-')}</td><td>{_e(rejections or '-')}</td>"
            f"<td>{_e(iso(v.in_force_at) if v.in_force_at else '')}</td>"
            "</tr>"
        )
    out.append("</tbody></table>")
    return out


def _policy_html(r: Replay) -> list[str]:
    out = [
        "<table><thead><tr><th>report</th><th>origin</th><th>status</th><th>state</th><th>country</th>"
        "<th>measure</th><th>HS codes</th><th>stage</th><th>announced</th><th>effective</th>"
        "<th>source</th><th>on the watchlist</th></tr></thead><tbody>"
    ]
    for p in r.trilateral.policy:
        m = p.move
        state = f"withdrawn ({p.withdraw_reason}, by {p.withdrawn_by})" if p.withdrawn_by else p.state
        out.append(
            "<tr>"
            f'<td class="aid">{_e(p.alert_id)}</td><td>{_e(p.origin)}</td><td>{_e(p.status)}</td>'
            f'<td class="s-{_e(p.state)}">{_e(state)}</td><td>{_e(m.country)}</td><td>{_e(m.measure)}</td>'
            f"<td>{_e(', '.join(m.hs_codes))} ({_e(m.hs_edition)})</td><td>{_e(m.stage)}</td>"
            f"<td>{_e(m.announced.isoformat())}</td>"
            f"<td>{_e(m.effective.isoformat() if m.effective else '')}</td><td>{_e(m.source)}</td>"
            f"<td>{_e(', '.join(p.watched) or '-')}</td>"
            "</tr>"
        )
    out.append("</tbody></table>")
    return out


def _timeline_table(r: Replay) -> list[str]:
    columns = list(COUNTRIES)
    absent = ' <span class="absent">(log not given)</span>'
    head = "".join(f"<th>{_e(c)}{'' if c in r.nodes else absent}</th>" for c in columns)
    out = [f'<table class="timeline"><thead><tr><th>time (UTC)</th>{head}</tr></thead><tbody>']
    rows: dict[tuple[datetime, Country, int | None], list[str]] = defaultdict(list)
    order: list[tuple[datetime, Country, int | None]] = []
    for subject, e in r.timeline():
        row = (e.time, e.node, e.index)
        if row not in rows:
            order.append(row)
        rows[row].append(_event_html(subject, e))
    for row in order:
        time, node, _ = row
        cells = "".join(f'<td class="node">{"".join(rows[row]) if c == node else ""}</td>' for c in columns)
        out.append(f'<tr><td class="time">{_e(iso(time))}</td>{cells}</tr>')
    if not order:
        out.append(f'<tr><td colspan="{len(columns) + 1}">no messages in the logs</td></tr>')
    out.append("</tbody></table>")
    return out


def _acks_html(r: Replay) -> list[str]:
    """Per peer: how many acknowledgements on time, late, overdue or missed, and each unmet one."""
    deadlines = ", ".join(f"{s} {m:g} min" for s, m in r.deadline_minutes.items()) or "none"
    out = [f"<p>Deadlines: {_e(deadlines)}, from the alert's signed time to the ACK's.</p>"]
    by_peer = r.acks_by_peer()
    if not by_peer:
        return [*out, "<p>No alert with a deadline in these logs.</p>"]
    out.append(
        "<table><thead><tr><th>peer</th>"
        + "".join(f"<th>{_e(s)}</th>" for s in ACK_STATUSES)
        + "</tr></thead><tbody>"
    )
    for peer, by_status in by_peer.items():
        cells = "".join(f"<td>{len(by_status.get(s, []))}</td>" for s in ACK_STATUSES)
        out.append(f"<tr><td>{_e(peer)}</td>{cells}</tr>")
    out.append("</tbody></table><ul>")
    out.extend(f"<li>{_e(d.describe())}</li>" for d in r.acks if d.unmet)
    out.append("</ul>")
    return out


def render_html(r: Replay) -> str:
    """One self-contained page: verdict, alerts, the watchlist's versions and the policy
    reports (when the logs hold any), timeline (a column per node), findings.

    Inline CSS only; no script, no link, no image, and a Content-Security-Policy
    that forbids fetching anything. Every value from the logs is HTML-escaped.
    """
    verdict = r.verdict()
    logs = "; ".join(
        f"{s.node}: {s.entries} entries, root {s.root[:16]}, exported {iso(s.exported_at)}, "
        f"checkpoint {'verified' if s.checkpoint_verified else 'NOT verified'}"
        for s in r.report.logs
    )
    legend = "".join(
        f'<span class="ev k-{k.lower()}"><span class="kind">{_e(k)}</span></span>' for k in _COLOURS
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>EWX replay: {_e(verdict)}</title>",
        f"<style>{_css()}</style></head><body>",
        f'<header class="{"clean" if r.clean else "findings"}"><h1>EWX alert replay</h1>',
        f"<p><strong>{_e(verdict)}</strong></p>",
        f"<p>{_e(logs)}</p>",
        f"<p>as of {_e(iso(r.as_of))} (latest export); {len(r.alerts)} alerts"
        + (f"; {len(r.trilateral.versions)} watchlist versions" if r.trilateral.versions else "")
        + (f"; {len(r.trilateral.policy)} policy reports" if r.trilateral.policy else "")
        + (f"; {len(r.left_out)} entries left out as unusable" if r.left_out else "")
        + "</p></header><main>",
        "<h2>Alerts</h2>",
        *_alerts_table(r),
    ]
    parts += ["<h2>Acknowledgement deadlines</h2>", *_acks_html(r)]
    if r.trilateral.versions:
        parts += ["<h2>Watchlist</h2>", *_watchlist_html(r)]
    if r.trilateral.policy:
        parts += ["<h2>Policy moves</h2>", *_policy_html(r)]
    parts += [
        "<h2>Timeline</h2>",
        f'<p class="legend">{legend}</p>',
        *_timeline_table(r),
    ]
    if r.trust_updates:
        parts.append('<h2>Trust updates</h2><ol class="trust">')
        parts.extend(f"<li>{_e(t.line())}</li>" for t in r.trust_updates)
        parts.append("</ol>")
    if r.report.findings:
        parts.append('<h2>Findings</h2><ol class="findings">')
        parts.extend(f'<li class="{_e(f.severity)}">{_e(f.line())}</li>' for f in r.report.findings)
        parts.append("</ol>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
