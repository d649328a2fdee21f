"""What the replay reads from a log: its authentic alert and receipt entries, and the events it makes of them.

Shared by the replay of alerts (`_replay`) and of the watchlist and policy
reports (`_replay_trilateral`): each event names the node whose log says so,
the entry's index and its logged_at time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from node.clock import iso
from node.ids import COUNTRIES, Country
from node.situation.entries import AlertEntry, ReceiptEntry, read_entry

__all__ = ["NODE_ORDER", "AlertEntry", "Event", "ReceiptEntry", "read_entry", "via"]

NODE_ORDER: Final = {c: i for i, c in enumerate(COUNTRIES)}
"""Federation order, for sorting."""
_NODE_ORDER: Final = NODE_ORDER


@dataclass(frozen=True)
class Event:
    """One thing that happened to an alert, a watchlist version or a policy report, as one node's log says."""

    time: datetime
    """The entry's logged_at (for EXPIRED: the alert's info.expires)."""
    node: Country
    """Whose log says so (for EXPIRED: the origin, from its signed alert)."""
    index: int | None
    """The entry's index in that node's log; None for what no entry records (EXPIRED, and
    IN_FORCE when no given log holds every signature)."""
    kind: str
    """One of EVENT_KINDS."""
    message: str
    """The id of the message the entry carries (the ACK's own id for an ACK, ...)."""
    actor: Country
    """Who acted: the message's origin, or the recipient for DELIVERED and RECEIPT."""
    detail: str

    def sort_key(self) -> tuple[datetime, int, int, int]:
        """Chronological, then by node and log index; EXPIRED last among equal times."""
        index = -1 if self.index is None else self.index
        return (self.time, self.index is None, _NODE_ORDER.get(self.node, 9), index)

    def where(self) -> str:
        """`KR #3`, or `KR` for an event no entry records."""
        return self.node if self.index is None else f"{self.node} #{self.index}"

    def line(self, kind_width: int) -> str:
        """One line of a timeline in the text report: time, where, kind (padded), detail."""
        return f"  {iso(self.time)}  {self.where():<7} {self.kind:<{kind_width}} {self.detail}"

    def to_json(self) -> dict[str, Any]:
        """The event as JSON-ready data."""
        return {
            "time": iso(self.time),
            "node": self.node,
            "index": self.index,
            "kind": self.kind,
            "message": self.message,
            "actor": self.actor,
            "detail": self.detail,
        }


def via(origin: Country, peer: Country | None) -> str:
    if peer is None or peer == origin:
        return f"direct from {origin}"
    return f"relayed by {peer}"
