"""What the node knows of each peer link; the gateway writes it, status reads it.

Kept in node/ so the operator API can report link health without importing
the gateway (SPEC section 2: node never imports gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class LinkState:
    """Health of the link to one peer, as last observed."""

    reachable: bool | None = None
    """None until the first attempt; then whether the last call got through."""
    last_ok: datetime | None = None
    last_attempt: datetime | None = None
    last_error: str | None = None
    pulling_until: float = 0.0
    """Monotonic time until which the peer is taken to be pulling our alerts (catch-up)."""

    def succeeded(self, at: datetime) -> None:
        """A call to the peer completed."""
        self.reachable = True
        self.last_ok = self.last_attempt = at
        self.last_error = None

    def note_pulling(self, now: float, window: float) -> None:
        """The peer just asked us for a catch-up page of our own alerts."""
        self.pulling_until = now + window

    def is_pulling(self, now: float) -> bool:
        """While the peer pulls pages, pushing the same alerts one by one only competes."""
        return now < self.pulling_until

    def failed(self, at: datetime, error: str) -> None:
        """A call to the peer failed; `error` is safe to show the operator."""
        self.reachable = False
        self.last_attempt = at
        self.last_error = error
