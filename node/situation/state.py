"""The state of every alert as a pure function of log entries (issue 13, item 1).

`fold` reads signed alerts and receipts as logs hold them (node.situation.entries)
and gives, for every alert (an ALERT or UPDATE message), what they prove:

    cancelled   a CANCEL by its origin references it (a CANCEL names one version)
    updated     an UPDATE by its origin references it: superseded by that version
    expired     its info.expires is at or before `as_of`
    active      none of the above
    unknown     the alert is only referenced: its own signed text is in no given entry

in that order of precedence; and per recipient whether it was delivered, and
per member its acknowledgement, error report, responses and consultation
requests. The node's views fold the entries of its own log that name an alert
(node/service/_views.py); `ewx audit replay` folds every authentic entry of
the given logs and adds the timeline (node/audit/_replay.py). One function,
so the node and the auditor cannot disagree on what a log says.

The result does not depend on the order of the entries given apart from
where several entries prove one delivery (the first in the given order
names the index): where a member sent two answers of a kind, the earliest by
its signed `sent` time counts. An ACK signed after the CANCEL of what it
acknowledges is kept and flagged (`AlertState.acks_after_cancel`), not
dropped: the log holds it, and a duty officer should see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Generic, TypeVar

from node.clock import iso
from node.ids import COUNTRIES, Country
from node.message import Alert
from node.situation.entries import AlertEntry, ReceiptEntry

__all__ = [
    "ALERT_STATES",
    "INFO_TYPES",
    "TRILATERAL_TYPES",
    "AlertFold",
    "AlertState",
    "Answer",
    "Delivery",
    "fold",
]

ALERT_STATES: Final = ("active", "updated", "cancelled", "expired", "unknown")
"""The states an alert can be in, in the precedence the module docstring gives."""

INFO_TYPES: Final = frozenset({"ALERT", "UPDATE"})
"""The message types that are alerts of their own (they carry info)."""

TRILATERAL_TYPES: Final = frozenset({"WATCHLIST_PROPOSAL", "WATCHLIST_VOTE", "POLICY_REPORT"})
"""Watchlist messages and policy reports: no alerts, node.trilateral folds them."""

_ORDER: Final = {c: i for i, c in enumerate(COUNTRIES)}


@dataclass
class Delivery:
    """What the entries prove about one recipient of an alert."""

    recipient: Country
    seq: int
    """The origin's sequence number towards this recipient (signed in the alert)."""
    received_at: datetime | None = None
    """logged_at of the recipient's ALERT_RECEIVED, else the receipt's received_at."""
    relayed_by: Country | None = None
    """None when the origin handed it over itself (or when only the receipt is known)."""
    receiver_index: int | None = None
    """The index of the ALERT_RECEIVED in the recipient's log (or as its receipt names it)."""
    receipt_index: int | None = None
    """The index of the recipient's receipt in the origin's log."""
    in_receiver_log: bool = False
    """True iff the recipient's given log holds the alert with the sent digest."""

    @property
    def delivered(self) -> bool:
        """True iff the recipient's log or its signed receipt proves delivery."""
        return self.in_receiver_log or self.receipt_index is not None

    def describe(self) -> str:
        """`US seq 1 at ... direct, receipted (KR #2)`, or `US seq 1: not delivered`."""
        if not self.delivered:
            return f"{self.recipient} seq {self.seq}: no delivery in the logs"
        parts = [f"{self.recipient} seq {self.seq}"]
        if self.received_at is not None:
            parts.append(f"at {iso(self.received_at)}")
        if self.in_receiver_log:
            parts.append(f"relayed by {self.relayed_by}" if self.relayed_by else "direct")
        parts.append("receipted" if self.receipt_index is not None else "no receipt logged at origin")
        return " ".join(parts)

    def to_json(self) -> dict[str, object]:
        """The delivery as JSON-ready data."""
        return {
            "recipient": self.recipient,
            "seq": self.seq,
            "delivered": self.delivered,
            "received_at": None if self.received_at is None else iso(self.received_at),
            "direct": None if not self.in_receiver_log else self.relayed_by is None,
            "relayed_by": self.relayed_by,
            "receiver_index": self.receiver_index,
            "receipt_index": self.receipt_index,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """A member's signed follow-up about one alert version: ACK, ERROR, RESPONSE, CONSULT, UPDATE or CANCEL."""

    by: Country
    alert_id: str
    """The follow-up's own id."""
    msg_type: str
    sent: datetime
    """Its signed sent time: what deadlines are measured against (not when a log took it in)."""
    reason: str | None = None

    def sort_key(self) -> tuple[datetime, int, str]:
        return (self.sent, _ORDER.get(self.by, 9), self.alert_id)

    def to_json(self) -> dict[str, object]:
        return {
            "by": self.by,
            "alert_id": self.alert_id,
            "msg_type": self.msg_type,
            "sent": iso(self.sent),
            "reason": self.reason,
        }


def _earliest(kept: Answer | None, new: Answer) -> Answer:
    return new if kept is None or new.sort_key() < kept.sort_key() else kept


@dataclass
class AlertState:
    """One alert (an ALERT or UPDATE message) as the folded entries prove it."""

    origin: Country
    alert_id: str
    msg_type: str | None = None
    """ALERT or UPDATE; None when the alert is only referenced by other messages."""
    digest: bytes | None = None
    """SHA-256 of the signed alert bytes (the origin's version when its entry is given)."""
    sent: datetime | None = None
    status: str | None = None
    severity: str | None = None
    category: str | None = None
    headline: str | None = None
    expires: datetime | None = None
    items: tuple[str, ...] = ()
    source_countries: tuple[str, ...] = ()
    supersedes: str | None = None
    """For an UPDATE: the id of the version it replaces."""
    updates: list[Answer] = field(default_factory=list)
    """The origin's UPDATEs of this version, earliest first."""
    cancel: Answer | None = None
    """The origin's (earliest) CANCEL of this version."""
    expired: bool = False
    deliveries: dict[Country, Delivery] = field(default_factory=dict)
    acks: dict[Country, Answer] = field(default_factory=dict)
    """Each member's earliest ACK of this version."""
    errors: dict[Country, Answer] = field(default_factory=dict)
    """Each member's earliest ERROR about this version."""
    responses: list[Answer] = field(default_factory=list)
    consults: list[Answer] = field(default_factory=list)

    @property
    def key(self) -> tuple[Country, str]:
        """(origin, alert id): ids are unique per origin only."""
        return (self.origin, self.alert_id)

    @property
    def state(self) -> str:
        """cancelled, updated, expired, active or unknown (that precedence)."""
        if self.cancel is not None:
            return "cancelled"
        if self.updates:
            return "updated"
        if self.msg_type is None:
            return "unknown"
        if self.expired:
            return "expired"
        return "active"

    @property
    def superseded_by(self) -> list[str]:
        """The ids of the UPDATEs that replace this version, earliest first."""
        return [u.alert_id for u in self.updates]

    @property
    def cancelled_by(self) -> str | None:
        return None if self.cancel is None else self.cancel.alert_id

    @property
    def cancel_reason(self) -> str | None:
        return None if self.cancel is None else self.cancel.reason

    @property
    def closed_at(self) -> datetime | None:
        """When its origin closed this version (the signed time of the first CANCEL or UPDATE)."""
        times = [a.sent for a in (self.cancel, *self.updates[:1]) if a is not None]
        return min(times) if times else None

    @property
    def acknowledged_by(self) -> dict[Country, str]:
        """Acknowledging member -> the reason code of its ACK, in federation order."""
        return {by: self.acks[by].reason or "" for by in sorted(self.acks, key=_ORDER.__getitem__)}

    @property
    def errors_by(self) -> dict[Country, str]:
        return {by: self.errors[by].reason or "" for by in sorted(self.errors, key=_ORDER.__getitem__)}

    @property
    def responded_by(self) -> list[Country]:
        return list(dict.fromkeys(r.by for r in self.responses))

    @property
    def consulted_by(self) -> list[Country]:
        return list(dict.fromkeys(c.by for c in self.consults))

    @property
    def consultation_open(self) -> bool:
        """A member asked for a consultation and the alert is still active."""
        return bool(self.consults) and self.state == "active"

    @property
    def acks_after_cancel(self) -> list[Answer]:
        """ACKs signed after the CANCEL of this version: recorded, and flagged wherever shown."""
        if self.cancel is None:
            return []
        return sorted((a for a in self.acks.values() if a.sent > self.cancel.sent), key=Answer.sort_key)

    @property
    def delivered_to(self) -> list[Country]:
        """The recipients the entries prove received it, in federation order."""
        return [r for r in COUNTRIES if r in self.deliveries and self.deliveries[r].delivered]

    @property
    def recipients(self) -> list[Country]:
        """Whom its origin addressed it to, in federation order."""
        return [r for r in COUNTRIES if r in self.deliveries]


S = TypeVar("S", bound=AlertState)


class AlertFold(Generic[S]):
    """The fold's steps, for a caller that adds to them (the replay adds the timeline).

    `learn` every alert entry first (it picks the reference version of each
    message: the origin's own, else the first given), then `on_alert` each
    and `on_receipt` each; `alerts` is the result. `fold` does exactly this.
    """

    def __init__(self, *, as_of: datetime, make: Callable[[Country, str], S]) -> None:
        self.as_of = as_of
        self.make = make
        self.alerts: dict[tuple[Country, str], S] = {}
        self.messages: dict[tuple[Country, str], AlertEntry] = {}
        """The reference version of every message: the origin's own, else the first seen."""

    def block(self, key: tuple[Country, str]) -> S:
        found = self.alerts.get(key)
        if found is None:
            found = self.alerts[key] = self.make(key[0], key[1])
        return found

    def learn(self, entries: Iterable[AlertEntry]) -> None:
        for e in entries:
            key = (e.alert.origin, e.alert.alert_id)
            known = self.messages.get(key)
            if known is None or (e.sent and not known.sent):
                self.messages[key] = e
        for key, e in self.messages.items():
            if e.alert.msg_type in INFO_TYPES:
                self._describe(self.block(key), e)

    def _describe(self, a: S, e: AlertEntry) -> None:
        alert = e.alert
        a.msg_type = alert.msg_type
        a.digest = e.digest
        a.sent = alert.sent
        a.status = alert.status
        if alert.info is not None:
            a.severity = alert.info.severity
            a.category = alert.info.category
            a.headline = alert.info.headline
            a.expires = alert.info.expires
            a.items = tuple(i.hs_code for i in alert.info.items)
            a.source_countries = tuple(alert.info.source_countries)
            a.expired = alert.info.expires <= self.as_of
        if alert.msg_type == "UPDATE" and alert.references:
            a.supersedes = alert.references[0].alert_id
        for d in alert.deliveries:
            a.deliveries[d.recipient] = Delivery(recipient=d.recipient, seq=d.seq)

    def target(self, alert: Alert) -> S | None:
        """The alert a follow-up message is about; follow-ups of follow-ups resolve to the root."""
        seen: set[tuple[Country, str]] = set()
        while alert.references:
            ref = alert.references[0]
            key = (ref.origin, ref.alert_id)
            if key in seen:
                return None
            seen.add(key)
            known = self.messages.get(key)
            if known is not None and known.alert.msg_type in TRILATERAL_TYPES:
                return None  # about a watchlist message or a report: node.trilateral has it
            if known is None or known.alert.msg_type in INFO_TYPES:
                return self.block(key)
            alert = known.alert
        return None

    def on_alert(self, e: AlertEntry) -> None:
        alert = e.alert
        if alert.msg_type in TRILATERAL_TYPES:
            return
        if alert.msg_type in INFO_TYPES and not e.sent:
            a = self.block((alert.origin, alert.alert_id))
            d = a.deliveries.get(e.node)
            if d is not None and a.digest in (None, e.digest) and not d.in_receiver_log:
                d.in_receiver_log = True
                d.received_at = e.logged_at
                d.receiver_index = e.index
                d.relayed_by = None if e.peer == alert.origin else e.peer
        if alert.references:
            target = self.target(alert)
            if target is not None:
                self._on_followup(target, e)

    def _on_followup(self, a: S, e: AlertEntry) -> None:
        alert = e.alert
        ref = alert.references[0]
        if ref.alert_id != a.alert_id or (a.digest is not None and ref.digest != a.digest):
            return  # about another version, or a follow-up of a follow-up: moves no state
        answer = Answer(
            by=alert.origin,
            alert_id=alert.alert_id,
            msg_type=alert.msg_type,
            sent=alert.sent,
            reason=alert.reason,
        )
        kind, sender = alert.msg_type, alert.origin
        if kind == "ACK" and alert.reason is not None:
            a.acks[sender] = _earliest(a.acks.get(sender), answer)
        elif kind == "ERROR" and alert.reason is not None:
            a.errors[sender] = _earliest(a.errors.get(sender), answer)
        elif kind == "RESPONSE":
            _add(a.responses, answer)
        elif kind == "CONSULT":
            _add(a.consults, answer)
        elif kind == "UPDATE" and sender == a.origin:
            _add(a.updates, answer)
        elif kind == "CANCEL" and sender == a.origin:
            a.cancel = _earliest(a.cancel, answer)

    def on_receipt(self, e: ReceiptEntry) -> None:
        r = e.receipt
        known = self.messages.get((r.origin, r.alert_id))
        if known is None or known.alert.msg_type not in INFO_TYPES:
            return
        a = self.block((r.origin, r.alert_id))
        d = a.deliveries.get(e.peer)
        if a.digest == r.alert_digest and d is not None and d.receipt_index is None:
            d.receipt_index = e.index
            if not d.in_receiver_log:
                d.received_at = r.received_at
                d.receiver_index = r.log_index


def _add(answers: list[Answer], answer: Answer) -> None:
    """Keep `answers` free of repeats (one message seen in two logs) and in signed-time order."""
    if all(a.alert_id != answer.alert_id or a.by != answer.by for a in answers):
        answers.append(answer)
        answers.sort(key=Answer.sort_key)


def fold(
    alerts: Iterable[AlertEntry],
    receipts: Iterable[ReceiptEntry] = (),
    *,
    as_of: datetime,
    make: Callable[[Country, str], S] = AlertState,  # type: ignore[assignment]
) -> dict[tuple[Country, str], S]:
    """Every alert's state from `alerts` and `receipts`, as of `as_of` (which decides expiry)."""
    steps: AlertFold[S] = AlertFold(as_of=as_of, make=make)
    entries = list(alerts)
    steps.learn(entries)
    for e in entries:
        steps.on_alert(e)
    for r in receipts:
        steps.on_receipt(r)
    return steps.alerts
