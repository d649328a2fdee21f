"""The node's clock and the one text form of its times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The node's clock; injectable so tests can move time."""
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """The one text form of times in the store and in operator output."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
