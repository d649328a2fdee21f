"""Acknowledgement deadlines: by when each recipient must ACK an alert, and whether it did (issue 13, item 2).

A deadline is set per severity (`ack_deadline_minutes` in node.toml, or
`ewx audit replay --ack-deadlines`) and runs from the alert's signed `sent`
time to the ACK's signed `sent` time: both are in the logs, so the node and
an auditor replaying the logs measure the same thing, whatever the network
did in between. Each version counts on its own: an UPDATE starts a new
deadline, and a version closed (updated or cancelled) or expired before its
deadline needs no ACK any more.

Per recipient, one of

    on_time     acknowledged by the deadline
    late        acknowledged after it (`late_by` says how much)
    overdue     not acknowledged, the deadline passed and the alert is still open
    missed      not acknowledged, the deadline passed while it was open; closed since
    waiting     not acknowledged, the deadline is still ahead
    not_due     closed or expired before its deadline, without an ACK
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.clock import iso
from node.ids import Country
from node.situation.settings import ACK_STATUSES
from node.situation.state import AlertState, Answer

__all__ = ["ACK_STATUSES", "AckDue", "ack_dues"]


@dataclass(frozen=True, slots=True)
class AckDue:
    """One recipient's acknowledgement of one alert version against its deadline."""

    origin: Country
    alert_id: str
    recipient: Country
    severity: str
    due: datetime
    status: str
    """One of ACK_STATUSES."""
    ack: Answer | None = None

    @property
    def late_by(self) -> timedelta | None:
        """How long after the deadline the ACK was signed (a late one only)."""
        return None if self.ack is None or self.status != "late" else self.ack.sent - self.due

    @property
    def unmet(self) -> bool:
        """Late, missed or overdue: what the audit reports per peer."""
        return self.status in ("late", "overdue", "missed")

    def to_json(self) -> dict[str, object]:
        late_by = self.late_by
        return {
            "origin": self.origin,
            "alert_id": self.alert_id,
            "recipient": self.recipient,
            "severity": self.severity,
            "due": iso(self.due),
            "status": self.status,
            "acknowledged": None if self.ack is None else iso(self.ack.sent),
            "late_by_seconds": None if late_by is None else late_by.total_seconds(),
        }

    def describe(self) -> str:
        """`US late by 0:05:00 (due ...)`, `JP overdue since ...`, as a report line says it."""
        if self.status == "late" and self.late_by is not None:
            return f"{self.recipient} acknowledged {self.origin}/{self.alert_id} late by {self.late_by} (due {iso(self.due)})"
        if self.status in ("overdue", "missed"):
            return f"{self.recipient} never acknowledged {self.origin}/{self.alert_id} (due {iso(self.due)}, {self.status})"
        return f"{self.recipient} {self.status.replace('_', ' ')} for {self.origin}/{self.alert_id} (due {iso(self.due)})"


def ack_dues(state: AlertState, deadlines: Mapping[str, timedelta], *, now: datetime) -> list[AckDue]:
    """Each recipient's acknowledgement of `state` against the deadline of its severity, as of `now`.

    Empty for an alert whose severity has no deadline, and for one known only
    by reference (its signed text, and so its time and recipients, is not held).
    """
    if state.msg_type is None or state.sent is None or state.severity is None:
        return []
    deadline = deadlines.get(state.severity)
    if deadline is None:
        return []
    due = state.sent + deadline
    ends = [t for t in (state.closed_at, state.expires) if t is not None]
    closed = min(ends) if ends else None
    dues: list[AckDue] = []
    for recipient in state.recipients:
        ack = state.acks.get(recipient)
        if ack is not None:
            status = "on_time" if ack.sent <= due else "late"
        elif closed is not None and closed <= due:
            status = "not_due" if closed <= now else "waiting"
        elif now < due:
            status = "waiting"
        else:
            status = "missed" if closed is not None and closed <= now else "overdue"
        dues.append(
            AckDue(
                origin=state.origin,
                alert_id=state.alert_id,
                recipient=recipient,
                severity=state.severity,
                due=due,
                status=status,
                ack=ack,
            )
        )
    return dues
