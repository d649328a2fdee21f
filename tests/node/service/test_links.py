"""Link state: health, and the pause of pushes while a peer pulls pages."""

from __future__ import annotations

from datetime import UTC, datetime

from node.service import LinkState


def test_pulling_window_opens_and_closes() -> None:
    link = LinkState()
    assert not link.is_pulling(100.0)
    link.note_pulling(100.0, 1.0)
    assert link.is_pulling(100.5)
    assert not link.is_pulling(101.0)


def test_health_records_the_last_outcome() -> None:
    link = LinkState()
    assert link.reachable is None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    link.failed(at, "UNAVAILABLE: connection refused")
    assert link.reachable is False and link.last_error == "UNAVAILABLE: connection refused"
    link.succeeded(at)
    assert link.reachable is True and link.last_error is None and link.last_ok == at
