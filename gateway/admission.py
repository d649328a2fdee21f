"""Per-peer admission: a token bucket for the call rate and a cap on calls in flight.

Checked right after the peer's identity (step 1) and before any work, so a
flooding peer is refused cheaply while the other peer keeps being served at
full rate. Limits come from node.toml (defaults in node/limits.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from node.errors import RateLimited
from node.ids import Country


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0


@dataclass(slots=True)
class PeerAdmission:
    """Admission state for every peer; not thread-safe (one event loop)."""

    rate_per_second: float
    burst: int
    max_concurrent: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[Country, _Bucket] = field(default_factory=dict)

    @contextmanager
    def admit(self, peer: Country) -> Iterator[None]:
        """Hold one call slot of `peer` for the duration; RateLimited if none is free."""
        now = self.clock()
        bucket = self._buckets.setdefault(peer, _Bucket(tokens=float(self.burst), stamp=now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate_per_second)
        bucket.stamp = now
        if bucket.in_flight >= self.max_concurrent:
            raise RateLimited(
                f"{peer} already has {bucket.in_flight} calls in flight (limit {self.max_concurrent})"
            )
        if bucket.tokens < 1.0:
            raise RateLimited(f"{peer} exceeds {self.rate_per_second:g} calls a second (burst {self.burst})")
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        try:
            yield
        finally:
            bucket.in_flight -= 1
