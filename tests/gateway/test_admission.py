"""Per-peer admission: rate, burst and calls in flight, one peer at a time."""

from __future__ import annotations

import pytest

from gateway.admission import PeerAdmission
from node.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate_and_peers_are_independent() -> None:
    clock = Clock()
    admission = PeerAdmission(rate_per_second=10, burst=3, max_concurrent=100, clock=clock)
    for _ in range(3):
        with admission.admit("KR"):
            pass
    with pytest.raises(RateLimited, match="KR exceeds 10 calls a second"), admission.admit("KR"):
        pass
    with admission.admit("JP"):  # the other peer keeps its own budget
        pass
    clock.now += 0.11  # a little over one token back
    with admission.admit("KR"):
        pass
    with pytest.raises(RateLimited), admission.admit("KR"):
        pass
    clock.now += 60  # never more than the burst
    for _ in range(3):
        with admission.admit("KR"):
            pass
    with pytest.raises(RateLimited), admission.admit("KR"):
        pass


def test_calls_in_flight_are_capped_and_released() -> None:
    admission = PeerAdmission(rate_per_second=1e6, burst=1000, max_concurrent=2, clock=Clock())
    with admission.admit("US"), admission.admit("US"):
        with pytest.raises(RateLimited, match="2 calls in flight"), admission.admit("US"):
            pass
        with admission.admit("JP"):
            pass
    with admission.admit("US"), admission.admit("US"):  # released after the calls ended
        pass


def test_a_failing_call_releases_its_slot() -> None:
    admission = PeerAdmission(rate_per_second=1e6, burst=1000, max_concurrent=1, clock=Clock())
    with pytest.raises(ValueError), admission.admit("KR"):
        raise ValueError("boom")
    with admission.admit("KR"):
        pass
