"""Replay of the trilateral messages: the watchlist's history and the missions' policy moves (issue 12).

From the same authentic entries as the alerts' replay (node/audit/_replay.py):

- The watchlist. node/trilateral's fold over the union of the logs'
  proposals and votes, as the audit folds it (node/audit/_watchlist.py),
  gives each proposed version its state, signers and rejections; its events
  are PROPOSED (the proposer's entry), DELIVERED (each receiver's), ACCEPT
  and REJECT (every entry holding a vote), RECEIPT (each signed receipt
  logged at a message's origin), IN_FORCE (in each given log that holds
  every signature of a version that came into force, at the entry of the
  last of them: from there on that node held it in force) and SUPERSEDED
  (at the entries where its successor came into force). Votes on a proposal
  no given log holds are kept under a version in state `unknown`.
- The policy moves. One PolicyReplay per POLICY_REPORT: country, measure, HS
  codes and edition, stage, announced and effective days, kind of source,
  the pairs of the watchlist in force it is on; its events are POLICY (the
  reporter's entry), DELIVERED, RECEIPT, and any follow-up that references
  it (a CANCEL by its origin withdraws it).

Only ACTUAL proposals and votes make the watchlist (as in a node's own
ledger); reports of every status are listed, each with its status.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from node.audit._text import short_hash
from node.audit._timeline import NODE_ORDER, AlertEntry, Event, ReceiptEntry, via
from node.audit._watchlist import Logged, fold_logs, is_watchlist, referenced
from node.clock import iso
from node.ids import Country
from node.message import Alert, PolicyMove, WatchPair
from node.trilateral import VersionRecord, VersionState, Watchlist, WatchlistState, watched_pairs

__all__ = [
    "TRILATERAL_EVENT_KINDS",
    "VERSION_STATES",
    "PolicyReplay",
    "TrilateralReplay",
    "VersionReplay",
    "no_trilateral",
    "replay_trilateral",
]

TRILATERAL_EVENT_KINDS: Final[dict[str, str]] = {
    "PROPOSED": "a member proposed a watchlist version (the proposal is its signature)",
    "ACCEPT": "a member accepted a watchlist version (its signature)",
    "REJECT": "a member rejected a watchlist version, with its reason",
    "IN_FORCE": "a node's log holds every member's signature of the version: in force for it from here",
    "SUPERSEDED": "the next version came into force at that node",
    "POLICY": "a member's mission reported a host country's policy move",
}
"""The event kinds the trilateral messages add to the timeline (beside DELIVERED, RECEIPT, CANCEL, ...)."""

VERSION_STATES: Final = (*(s.value for s in VersionState), "unknown")
"""A version's state: node/trilateral's, or `unknown` for a proposal only voted on."""

_POLICY: Final = "POLICY_REPORT"
_FOLLOWUPS: Final = frozenset({"ACK", "RESPONSE", "CONSULT", "ERROR", "UPDATE", "CANCEL"})
"""Follow-ups that show on a report's timeline."""
_ORDER: Final = NODE_ORDER


def _pair(p: WatchPair) -> str:
    return f"{p.hs_code}:{p.country} ({p.reason})"


def _pairs(pairs: Iterable[WatchPair]) -> str:
    return ", ".join(_pair(p) for p in pairs) or "-"


def _rank(member: Country) -> int:
    return _ORDER.get(member, len(_ORDER))


def _members(members: Iterable[Country]) -> str:
    ordered: list[Country] = sorted(members, key=_rank)
    return ", ".join(ordered) or "-"


# ------------------------------------------------------------------ results
@dataclass
class VersionReplay:
    """One proposed watchlist version: what it changes, what became of it, and its timeline."""

    origin: Country
    alert_id: str
    digest: bytes
    version: int
    state: str
    """One of VERSION_STATES."""
    sent: datetime | None = None
    hs_edition: str | None = None
    predecessor: str | None = None
    """`KR KR-...` of the proposal it follows (None for version 1, and when unknown)."""
    add: list[WatchPair] = field(default_factory=list)
    remove: list[WatchPair] = field(default_factory=list)
    pairs: list[WatchPair] | None = None
    """The watchlist it makes (None when its chain cannot be resolved)."""
    signers: list[Country] = field(default_factory=list)
    rejections: dict[Country, str] = field(default_factory=dict)
    in_force_at: datetime | None = None
    """The sent time of the signature that completed it (for a version that came into force)."""
    superseded_by: str | None = None
    """The alert id of the proposal of the version that replaced it."""
    events: list[Event] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How the timeline names it: `watchlist v1`."""
        return f"watchlist v{self.version}"

    def state_line(self) -> str:
        """`in_force (since ..., signed by KR, US, JP)`, `rejected (KR: OUT_OF_SCOPE)`, ..."""
        if self.state == VersionState.IN_FORCE:
            since = iso(self.in_force_at) if self.in_force_at else "?"
            return f"in_force (since {since}, signed by {_members(self.signers)})"
        if self.state == VersionState.SUPERSEDED:
            return f"superseded (by {self.superseded_by or '?'}; signed by {_members(self.signers)})"
        if self.state == VersionState.REJECTED:
            return "rejected (" + ", ".join(f"{m}: {r}" for m, r in self.rejections.items()) + ")"
        if self.state == "unknown":
            return "unknown (only voted on; the proposal is in no given log)"
        return f"{self.state} (signed by {_members(self.signers)})"

    def to_json(self) -> dict[str, Any]:
        """The version's replay as JSON-ready data."""
        return {
            "version": self.version,
            "origin": self.origin,
            "alert_id": self.alert_id,
            "digest": self.digest.hex(),
            "state": self.state,
            "sent": None if self.sent is None else iso(self.sent),
            "hs_edition": self.hs_edition,
            "predecessor": self.predecessor,
            "add": [p.model_dump() for p in self.add],
            "remove": [p.model_dump() for p in self.remove],
            "pairs": None if self.pairs is None else [p.model_dump() for p in self.pairs],
            "signers": list(self.signers),
            "rejections": dict(self.rejections),
            "in_force_at": None if self.in_force_at is None else iso(self.in_force_at),
            "superseded_by": self.superseded_by,
            "events": [e.to_json() for e in self.events],
        }

    def to_text(self) -> str:
        """One block: heading, the change, then the events in time order."""
        lines = [f"WATCHLIST v{self.version} {self.alert_id} from {self.origin}: {self.state_line()}"]
        if self.hs_edition is not None:
            on = f" on {self.predecessor}" if self.predecessor else ""
            lines.append(f"  {self.hs_edition}{on}: add {_pairs(self.add)}; remove {_pairs(self.remove)}")
        for e in self.events:
            lines.append(e.line(10))
        return "\n".join(lines)

    def _sort_key(self) -> tuple[int, datetime, int, str]:
        first = self.sent or (self.events[0].time if self.events else datetime.max.replace(tzinfo=UTC))
        return (self.version, first, _ORDER.get(self.origin, 9), self.alert_id)


@dataclass
class PolicyReplay:
    """One policy-move report: the move, whether it was withdrawn, and its timeline."""

    origin: Country
    alert_id: str
    digest: bytes
    sent: datetime
    status: str
    move: PolicyMove
    watched: list[str] = field(default_factory=list)
    """The pairs (`hs_code:country`) of the watchlist in force the report is on."""
    withdrawn_by: str | None = None
    """The id of the CANCEL by its origin that withdrew it."""
    withdraw_reason: str | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How the timeline names it: its id."""
        return self.alert_id

    @property
    def state(self) -> str:
        """`withdrawn` or `reported`."""
        return "withdrawn" if self.withdrawn_by is not None else "reported"

    def summary(self) -> str:
        """`CN EXPORT_LICENSING on 282560, 811292 (HS2022): IN_FORCE, announced ..., effective ..., OFFICIAL_GAZETTE`."""
        m = self.move
        text = (
            f"{m.country} {m.measure} on {', '.join(m.hs_codes)} ({m.hs_edition}): {m.stage}, "
            f"announced {m.announced.isoformat()}"
        )
        if m.effective is not None:
            text += f", effective {m.effective.isoformat()}"
        return text + f", source {m.source}"

    def to_json(self) -> dict[str, Any]:
        """The report's replay as JSON-ready data."""
        return {
            "origin": self.origin,
            "alert_id": self.alert_id,
            "digest": self.digest.hex(),
            "sent": iso(self.sent),
            "status": self.status,
            "state": self.state,
            **self.move.model_dump(mode="json"),
            "watched": list(self.watched),
            "withdrawn_by": self.withdrawn_by,
            "withdraw_reason": self.withdraw_reason,
            "events": [e.to_json() for e in self.events],
        }

    def to_text(self) -> str:
        """One block: heading, the move, then the events in time order."""
        state = (
            f"withdrawn ({self.withdraw_reason}, by {self.withdrawn_by})" if self.withdrawn_by else "reported"
        )
        status = "" if self.status == "ACTUAL" else f" [{self.status}]"
        lines = [f"POLICY_REPORT {self.alert_id} from {self.origin}{status}: {state}", f"  {self.summary()}"]
        if self.watched:
            lines.append(f"  on the watchlist: {', '.join(self.watched)}")
        for e in self.events:
            lines.append(e.line(10))
        return "\n".join(lines)


@dataclass
class TrilateralReplay:
    """The watchlist as the logs make it, every version's history, and every policy report."""

    current: Watchlist
    """The version in force (version 0, empty: none)."""
    versions: list[VersionReplay]
    """By version number, then sent time."""
    policy: list[PolicyReplay]
    """In order of sending."""
    complete: bool
    """True iff every member's log was given (the fold's in-flight findings are errors)."""

    def current_line(self) -> str:
        """`version 1 in force (HS2022, since ...): 282560:CN (POLICY_RISK), ...` or `no version in force`."""
        c = self.current
        if c.version == 0:
            return "no version in force"
        since = iso(c.in_force_at) if c.in_force_at else "?"
        return f"version {c.version} in force ({c.hs_edition}, since {since}): {_pairs(c.pairs)}"

    def to_json(self) -> dict[str, Any]:
        """The watchlist part of the replay's JSON: current, versions; the reports go beside it."""
        return {
            "current": self.current.to_json(),
            "versions": [v.to_json() for v in self.versions],
        }


# ------------------------------------------------------------------ building
def replay_trilateral(
    alerts: Sequence[AlertEntry],
    receipts: Sequence[ReceiptEntry],
    *,
    members: Collection[Country],
    nodes: Collection[Country],
) -> TrilateralReplay:
    """The watchlist and policy replay of the authentic entries (`alerts` and `receipts`, each
    log in its order, the logs in federation order) of the logs of `nodes`."""
    complete = frozenset(members) <= set(nodes)
    state = fold_logs(_logged(alerts), members=members, complete=complete)
    builder = _Builder(state, alerts)
    for e in alerts:
        builder.on_alert(e)
    for r in receipts:
        builder.on_receipt(r)
    return builder.finish(complete=complete)


def _logged(alerts: Sequence[AlertEntry]) -> dict[Country, list[Logged]]:
    wanted = referenced(e.alert for e in alerts if is_watchlist(e.alert.msg_type))
    out: dict[Country, list[Logged]] = defaultdict(list)
    for e in alerts:
        watchlist = is_watchlist(e.alert.msg_type)
        if watchlist or e.digest in wanted:
            out[e.node].append(
                Logged(
                    log_index=e.index,
                    sent=e.sent,
                    origin=e.alert.origin,
                    alert_id=e.alert.alert_id,
                    msg_type=e.alert.msg_type,
                    status=e.alert.status,
                    digest=e.digest,
                    body=e.alert if watchlist else None,
                )
            )
    return out


class _Builder:
    def __init__(self, state: WatchlistState, alerts: Sequence[AlertEntry]) -> None:
        self.state = state
        self.versions: dict[bytes, VersionReplay] = {}
        self.records: dict[bytes, VersionRecord] = {r.digest: r for r in state.versions}
        by_digest = {r.digest: r for r in state.versions}
        for r in state.versions:
            pred = by_digest.get(r.predecessor) if r.predecessor is not None else None
            self.versions[r.digest] = VersionReplay(
                origin=r.origin,
                alert_id=r.alert_id,
                digest=r.digest,
                version=r.version,
                state=r.state.value,
                sent=r.sent,
                hs_edition=r.hs_edition,
                predecessor=(
                    f"{pred.origin} {pred.alert_id}"
                    if pred is not None
                    else (None if r.predecessor is None else short_hash(r.predecessor))
                ),
                add=list(r.add),
                remove=list(r.remove),
                pairs=None if r.pairs is None else list(r.pairs),
                signers=list(r.signers),
                rejections=dict(r.rejections),
                in_force_at=r.in_force_at,
            )
        self.reports: dict[bytes, PolicyReplay] = {}
        self.messages: dict[tuple[Country, str], AlertEntry] = {}
        """Every watchlist message and report by (origin, id): the origin's copy, else the first."""
        self.held: dict[Country, dict[bytes, AlertEntry]] = defaultdict(dict)
        """Per log: each digest's first entry."""
        self.accepts: dict[bytes, dict[Country, AlertEntry]] = defaultdict(dict)
        """Per proposal digest: each voter's first ACCEPT (by its sent time)."""
        for e in alerts:
            alert = e.alert
            self.held[e.node].setdefault(e.digest, e)
            if is_watchlist(alert.msg_type) or alert.msg_type == _POLICY:
                key = (alert.origin, alert.alert_id)
                known = self.messages.get(key)
                if known is None or (e.sent and not known.sent):
                    self.messages[key] = e
            if alert.msg_type == _POLICY and alert.policy is not None and e.digest not in self.reports:
                self.reports[e.digest] = PolicyReplay(
                    origin=alert.origin,
                    alert_id=alert.alert_id,
                    digest=e.digest,
                    sent=alert.sent,
                    status=alert.status,
                    move=alert.policy,
                    watched=[f"{p.hs_code}:{p.country}" for p in watched_pairs(state.current, alert.policy)],
                )
            vote = alert.vote
            if (
                alert.msg_type == "WATCHLIST_VOTE"
                and alert.status == "ACTUAL"
                and vote is not None
                and vote.decision == "ACCEPT"
                and alert.references
            ):
                first = self.accepts[alert.references[0].digest].get(alert.origin)
                if first is None or alert.sent < first.alert.sent:
                    self.accepts[alert.references[0].digest][alert.origin] = e

    # -------------------------------------------------------- events
    @staticmethod
    def _event(e: AlertEntry | ReceiptEntry, kind: str, actor: Country, detail: str) -> Event:
        message = e.receipt.alert_id if isinstance(e, ReceiptEntry) else e.alert.alert_id
        return Event(
            time=e.logged_at,
            node=e.node,
            index=e.index,
            kind=kind,
            message=message,
            actor=actor,
            detail=detail,
        )

    def _unknown(self, alert: Alert) -> VersionReplay:
        ref = alert.references[0]
        found = self.versions.get(ref.digest)
        if found is None:
            version = alert.vote.version if alert.vote is not None else 0
            found = self.versions[ref.digest] = VersionReplay(
                origin=ref.origin, alert_id=ref.alert_id, digest=ref.digest, version=version, state="unknown"
            )
        return found

    def on_alert(self, e: AlertEntry) -> None:
        alert = e.alert
        if alert.status == "ACTUAL" and alert.msg_type == "WATCHLIST_PROPOSAL":
            v = self.versions.get(e.digest)
            if v is not None:
                v.events.append(self._proposal_event(e, alert))
        elif alert.status == "ACTUAL" and alert.msg_type == "WATCHLIST_VOTE" and alert.references:
            v = self._unknown(alert)
            v.events.append(self._vote_event(e, alert, v))
        elif alert.msg_type == _POLICY:
            report = self.reports.get(e.digest)
            if report is not None:
                report.events.append(self._report_event(e, alert, report))
        elif alert.references:
            self._on_followup(e, alert)

    def _proposal_event(self, e: AlertEntry, alert: Alert) -> Event:
        change = alert.watchlist
        if not e.sent:
            seq = alert.seq_for(e.node)
            return self._event(
                e, "DELIVERED", e.node, f"delivered to {e.node} (seq {seq}), {via(alert.origin, e.peer)}"
            )
        to = ", ".join(f"{d.recipient} (seq {d.seq})" for d in alert.deliveries)
        if change is None:  # the schema requires the body: never expected
            return self._event(e, "PROPOSED", alert.origin, f"{alert.origin} proposed a version to {to}")
        text = f"{alert.origin} proposed version {change.version} ({change.hs_edition})"
        if alert.references:
            ref = alert.references[0]
            text += f" on {ref.origin} {ref.alert_id}"
        text += f" to {to}: add {_pairs(change.add)}"
        if change.remove:
            text += f"; remove {_pairs(change.remove)}"
        return self._event(e, "PROPOSED", alert.origin, text)

    def _vote_event(self, e: AlertEntry, alert: Alert, v: VersionReplay) -> Event:
        vote = alert.vote
        decision = vote.decision if vote is not None else "?"
        kind = "ACCEPT" if decision == "ACCEPT" else "REJECT"
        what = f"accepted version {v.version}" if kind == "ACCEPT" else f"rejected version {v.version}"
        if vote is not None and vote.reject_reason:
            what += f": {vote.reject_reason}"
        counted = alert.origin in v.signers if kind == "ACCEPT" else alert.origin in v.rejections
        note = "" if counted or v.state == "unknown" else " [does not count: see the findings]"
        if e.sent:
            detail = f"{alert.origin} {what} ({alert.alert_id})"
        else:
            detail = (
                f"{e.node} received {alert.origin}'s {decision} {alert.alert_id}, "
                f"{via(alert.origin, e.peer)}: {alert.origin} {what}"
            )
        return self._event(e, kind, alert.origin, detail + note)

    def _report_event(self, e: AlertEntry, alert: Alert, report: PolicyReplay) -> Event:
        if not e.sent:
            seq = alert.seq_for(e.node)
            return self._event(
                e, "DELIVERED", e.node, f"delivered to {e.node} (seq {seq}), {via(alert.origin, e.peer)}"
            )
        to = ", ".join(f"{d.recipient} (seq {d.seq})" for d in alert.deliveries)
        return self._event(e, "POLICY", alert.origin, f"{alert.origin} reported to {to}: {report.summary()}")

    def _on_followup(self, e: AlertEntry, alert: Alert) -> None:
        """A message about a policy report (a CANCEL by its origin withdraws it)."""
        ref = alert.references[0]
        report = self.reports.get(ref.digest)
        kind = alert.msg_type
        if report is None or kind not in _FOLLOWUPS:
            return
        reason = f": {alert.reason}" if alert.reason else ""
        where = "" if e.sent else f", {via(alert.origin, e.peer)}"
        report.events.append(
            self._event(e, kind, alert.origin, f"{alert.origin} sent {kind} {alert.alert_id}{reason}{where}")
        )
        if kind == "CANCEL" and alert.origin == report.origin and report.withdrawn_by is None:
            report.withdrawn_by = alert.alert_id
            report.withdraw_reason = alert.reason

    def on_receipt(self, r: ReceiptEntry) -> None:
        receipt = r.receipt
        known = self.messages.get((receipt.origin, receipt.alert_id))
        if known is None:
            return
        alert = known.alert
        target: VersionReplay | PolicyReplay | None
        if alert.msg_type == _POLICY:
            target = self.reports.get(known.digest)
        elif alert.msg_type == "WATCHLIST_PROPOSAL":
            target = self.versions.get(known.digest)
        elif alert.references:
            target = self.versions.get(alert.references[0].digest)
        else:
            target = None
        if target is None:
            return
        detail = (
            f"{r.peer} receipted {receipt.origin}'s {alert.msg_type} {receipt.alert_id} (seq {receipt.seq})"
        )
        if receipt.alert_digest != known.digest:
            detail += f" [for digest {short_hash(receipt.alert_digest)}, not the sent version]"
        target.events.append(self._event(r, "RECEIPT", r.peer, detail))

    # -------------------------------------------------------- in force, superseded
    def _in_force(self) -> None:
        successor: dict[bytes, VersionReplay] = {}
        for v in self.versions.values():
            record = self.records.get(v.digest)
            if record is None or record.state not in (VersionState.IN_FORCE, VersionState.SUPERSEDED):
                continue
            if record.predecessor is not None:
                successor[record.predecessor] = v
        for v in self.versions.values():
            record = self.records.get(v.digest)
            if record is None or record.state not in (VersionState.IN_FORCE, VersionState.SUPERSEDED):
                continue
            votes = self.accepts.get(v.digest, {})
            signatures = [v.digest, *(votes[m].digest for m in record.signers if m in votes)]
            nxt = successor.get(v.digest)
            if record.state is VersionState.SUPERSEDED and nxt is not None:
                v.superseded_by = nxt.alert_id
            placed = False
            for node in sorted(self.held, key=_rank):
                held = self.held[node]
                if not all(s in held for s in signatures):
                    continue
                last = max((held[s] for s in signatures), key=lambda entry: entry.index)
                placed = True
                v.events.append(
                    self._event(
                        last,
                        "IN_FORCE",
                        node,
                        f"version {v.version} in force at {node}: its log holds every member's signature "
                        f"({_members(record.signers)}), the last {last.alert.origin}'s "
                        f"{last.alert.msg_type} {last.alert.alert_id} logged here",
                    )
                )
            if not placed and v.in_force_at is not None:
                v.events.append(
                    Event(
                        time=v.in_force_at,
                        node=v.origin,
                        index=None,
                        kind="IN_FORCE",
                        message=v.alert_id,
                        actor=v.origin,
                        detail=f"version {v.version} in force from {iso(v.in_force_at)} (the last signature's "
                        "sent time; no given log holds every signature)",
                    )
                )
        for pred_digest, v in successor.items():
            pred = self.versions.get(pred_digest)
            if pred is None:
                continue
            for e in v.events:
                if e.kind == "IN_FORCE":
                    pred.events.append(
                        Event(
                            time=e.time,
                            node=e.node,
                            index=e.index,
                            kind="SUPERSEDED",
                            message=v.alert_id,
                            actor=e.actor,
                            detail=f"version {pred.version} superseded at {e.node} by version {v.version} "
                            f"({v.origin} {v.alert_id})",
                        )
                    )

    def finish(self, *, complete: bool) -> TrilateralReplay:
        self._in_force()
        for v in self.versions.values():
            v.events.sort(key=Event.sort_key)
        for p in self.reports.values():
            p.events.sort(key=Event.sort_key)
        return TrilateralReplay(
            current=self.state.current,
            versions=sorted(self.versions.values(), key=VersionReplay._sort_key),
            policy=sorted(self.reports.values(), key=lambda p: (p.sent, _ORDER.get(p.origin, 9), p.alert_id)),
            complete=complete,
        )


def no_trilateral() -> TrilateralReplay:
    """The replay of logs without a single trilateral message."""
    return TrilateralReplay(current=Watchlist(), versions=[], policy=[], complete=False)
