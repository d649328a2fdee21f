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

    def succeeded(self, at: datetime) -> None:
        """A call to the peer completed."""
        self.reachable = True
        self.last_ok = self.last_attempt = at
        self.last_error = None

    def failed(self, at: datetime, error: str) -> None:
        """A call to the peer failed; `error` is safe to show the operator."""
        self.reachable = False
        self.last_attempt = at
        self.last_error = error
