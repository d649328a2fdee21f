"""The acknowledgement deadlines as settings: their defaults, and checking what node.toml or a flag gives.

Apart from node/situation/deadlines.py, which applies them, so that the node's
configuration can check them without importing the fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from node.message import enum_names, pb

__all__ = [
    "ACK_STATUSES",
    "DEFAULT_ACK_DEADLINE_MINUTES",
    "SEVERITIES",
    "check_deadline_minutes",
    "deadlines_from_minutes",
    "parse_deadlines",
]

DEFAULT_ACK_DEADLINE_MINUTES: Final[Mapping[str, float]] = {"EXTREME": 15, "SEVERE": 60, "MODERATE": 24 * 60}
"""Minutes to acknowledge, per severity; MINOR alerts need no acknowledgement by a deadline."""

ACK_STATUSES: Final = ("on_time", "late", "overdue", "missed", "waiting", "not_due")
"""What `AckDue.status` can be, as the module docstring says."""

_MIN_MINUTES: Final = 0.01
"""Less than a second makes no deadline anyone could meet; fractions serve drills and tests."""
_MAX_MINUTES: Final = 365 * 24 * 60
"""No deadline beyond the longest an alert can live (limits.MAX_EXPIRY)."""

SEVERITIES: Final = frozenset(enum_names(pb.Severity))


def check_deadline_minutes(minutes: Mapping[str, object]) -> dict[str, float]:
    """`minutes` if every key is a severity and every value minutes in range; ValueError naming the bad one."""
    out: dict[str, float] = {}
    for name, value in minutes.items():
        if name not in SEVERITIES:
            raise ValueError(f"{name!r} is not a severity (one of {', '.join(sorted(SEVERITIES))})")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not _MIN_MINUTES <= value <= _MAX_MINUTES  # NaN fails too
        ):
            raise ValueError(
                f"{name} = {value!r}: the minutes must be a number from {_MIN_MINUTES} to {_MAX_MINUTES}"
            )
        out[name] = value
    return out


def deadlines_from_minutes(minutes: Mapping[str, float]) -> dict[str, timedelta]:
    """{severity: deadline} from {severity: minutes}."""
    return {severity: timedelta(minutes=m) for severity, m in minutes.items()}


def parse_deadlines(text: str) -> dict[str, float]:
    """`EXTREME=15,SEVERE=60` into {severity: minutes}; ValueError naming the bad part.

    `none` (or an empty text) sets no deadline at all.
    """
    if text.strip().lower() in ("", "none"):
        return {}
    out: dict[str, object] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r}: want SEVERITY=MINUTES, for example EXTREME=15")
        if name in out:
            raise ValueError(f"{part!r}: {name} is given twice")
        try:
            number: object = float(value) if value.isascii() else value
        except ValueError:
            number = value
        out[name] = int(number) if isinstance(number, float) and number.is_integer() else number
    return check_deadline_minutes(out)
