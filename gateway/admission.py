"""Per-peer admission: a token bucket for the call rate, caps on calls and streams in flight.

Checked right after the peer's identity (step 1) and before any work, so a
flooding peer is refused cheaply while the other peer keeps being served at
full rate. A call holds its slot until it ends; a server stream (CatchUp)
holds a call slot and a stream slot until its last message is taken or the
node cancels it (gateway/server.py: `stream_max_seconds`,
`stream_stall_seconds`). Limits come from node.toml (defaults in
node/limits.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from node.errors import InboundRejected, RateLimited
from node.ids import Country
from node.limits import PEER_MAX_CONCURRENT_STREAMS


class TooManyStreams(RateLimited):
    """A peer already holds its `peer_max_concurrent_streams` CatchUp streams open."""

    reason = "too_many_streams"


class StreamStalled(InboundRejected):
    """A peer stopped reading a stream: one message waited `stream_stall_seconds`."""

    reason = "stream_stalled"


class StreamTooLong(InboundRejected):
    """A stream stayed open past `stream_max_seconds`."""

    reason = "stream_too_long"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0
    streams: int = 0


@dataclass(slots=True)
class PeerAdmission:
    """Admission state for every peer; not thread-safe (one event loop)."""

    rate_per_second: float
    burst: int
    max_concurrent: int
    max_streams: int = PEER_MAX_CONCURRENT_STREAMS
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[Country, _Bucket] = field(default_factory=dict)

    @contextmanager
    def admit(self, peer: Country, *, stream: bool = False) -> Iterator[None]:
        """Hold one call slot of `peer` (and a stream slot if `stream`) for the duration.

        RateLimited (TooManyStreams for streams) if none is free; a refused
        call takes no token.
        """
        now = self.clock()
        bucket = self._buckets.setdefault(peer, _Bucket(tokens=float(self.burst), stamp=now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate_per_second)
        bucket.stamp = now
        if bucket.in_flight >= self.max_concurrent:
            raise RateLimited(
                f"{peer} already has {bucket.in_flight} calls in flight (limit {self.max_concurrent})"
            )
        if stream and bucket.streams >= self.max_streams:
            raise TooManyStreams(
                f"{peer} already has {bucket.streams} streams open (limit {self.max_streams})"
            )
        if bucket.tokens < 1.0:
            raise RateLimited(f"{peer} exceeds {self.rate_per_second:g} calls a second (burst {self.burst})")
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        bucket.streams += stream
        try:
            yield
        finally:
            bucket.in_flight -= 1
            bucket.streams -= stream

