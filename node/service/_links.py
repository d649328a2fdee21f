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
    down_since: datetime | None = None
    """When the calls started failing (the first failure since the last success)."""
    pulling_until: float = 0.0
    """Monotonic time until which the peer is taken to be pulling our alerts (catch-up)."""
    pulled_to: int = 0
    """The last of our sequence numbers towards the peer that its latest full catch-up page held."""
    pushed_at: float = 0.0
    """Monotonic time this node last stored, in order, alerts the peer pushed to it."""
    catching_up: tuple[int, int] | None = None
    """While this node pulls the peer's alerts by pages: (the first seq stored in this catch-up,
    the latest); None otherwise. The peer sends no total, so how far is left shows at the peer."""

    def succeeded(self, at: datetime) -> None:
        """A call to the peer completed."""
        self.reachable = True
        self.last_ok = self.last_attempt = at
        self.last_error = None
        self.down_since = None

    def note_pulling(self, now: float, window: float, *, to_seq: int = 0) -> None:
        """The peer just asked us for a full catch-up page of our own alerts, up to `to_seq`."""
        self.pulling_until = now + window
        self.pulled_to = max(self.pulled_to, to_seq)

    def caught_up_to(self, first: int, latest: int) -> None:
        """This node stored a catch-up page from the peer, up to its seq `latest`."""
        self.catching_up = (first if self.catching_up is None else self.catching_up[0], latest)

    def is_pushing(self, now: float, within: float) -> bool:
        """Whether the peer's pushes reached this node in order within the last `within` s:
        it is delivering its backlog, so pulling the same alerts would fetch what is
        already in flight (and it still needs our receipts, which only a push gets)."""
        return now - self.pushed_at < within

    def is_pulling(self, now: float) -> bool:
        """While the peer pulls pages, pushing the same alerts one by one only competes."""
        return now < self.pulling_until

    def failed(self, at: datetime, error: str) -> None:
        """A call to the peer failed; `error` is safe to show the operator."""
        if self.reachable is not False or self.down_since is None:
            self.down_since = at
        self.reachable = False
        self.last_attempt = at
        self.last_error = error


_PLAIN: tuple[tuple[str, str], ...] = (
    ("connection refused", "connection refused"),
    ("deadline exceeded", "no answer in time"),
    ("deadline_exceeded", "no answer in time"),
    ("certificate", "TLS certificate refused"),
    ("handshake", "TLS handshake failed"),
    ("ssl", "TLS handshake failed"),
    ("name or service not known", "host name not found"),
    ("dns resolution failed", "host name not found"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("connection reset", "connection reset"),
    ("socket closed", "connection closed"),
    ("timed out", "connection timed out"),
)
"""Phrases of gRPC's and the OS's error texts, most telling first, and what an operator calls them."""


def plain_error(error: str | None) -> str | None:
    """A failed call's text (gateway/peers.py `describe`: `CODE (reason): details`) in plain words.

    A refusal the peer gave with a reason keeps the reason ("refused: trust_update_stale");
    a transport failure becomes what it is ("connection refused", "no answer in time").
    The raw text stays in `ewx status --json` (last_error).
    """
    if not error:
        return None
    code, _, rest = error.partition(": ")
    if code.endswith(")") and " (" in code:  # the peer answered, with a coded reason
        return f"refused: {code[code.index(' (') + 2 : -1]}"
    lowered = error.lower()
    for phrase, words in _PLAIN:
        if phrase in lowered:
            return words
    if code == "UNAVAILABLE":
        return "unreachable"
    if code in {"UNAUTHENTICATED", "PERMISSION_DENIED"}:
        return "not let in (certificate or identity refused)"
    return (rest or error)[:120]
