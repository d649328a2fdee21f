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

DEFAULT_ACK_DEADLINE_MINUTES: Final[Mapping[str, int]] = {"EXTREME": 15, "SEVERE": 60, "MODERATE": 24 * 60}
"""Minutes to acknowledge, per severity; MINOR alerts need no acknowledgement by a deadline."""

ACK_STATUSES: Final = ("on_time", "late", "overdue", "missed", "waiting", "not_due")
"""What `AckDue.status` can be, as the module docstring says."""

_MAX_MINUTES: Final = 365 * 24 * 60
"""No deadline beyond the longest an alert can live (limits.MAX_EXPIRY)."""

SEVERITIES: Final = frozenset(enum_names(pb.Severity))


def check_deadline_minutes(minutes: Mapping[str, object]) -> dict[str, int]:
    """`minutes` if every key is a severity and every value whole minutes in range; ValueError naming the bad one."""
    out: dict[str, int] = {}
    for name, value in minutes.items():
        if name not in SEVERITIES:
            raise ValueError(f"{name!r} is not a severity (one of {', '.join(sorted(SEVERITIES))})")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_MINUTES:
            raise ValueError(
                f"{name} = {value!r}: the minutes must be a whole number from 1 to {_MAX_MINUTES}"
            )
        out[name] = value
    return out


def deadlines_from_minutes(minutes: Mapping[str, int]) -> dict[str, timedelta]:
    """{severity: deadline} from {severity: minutes}."""
    return {severity: timedelta(minutes=m) for severity, m in minutes.items()}


def parse_deadlines(text: str) -> dict[str, int]:
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
        out[name] = int(value) if value.isascii() and value.isdigit() else value
    return check_deadline_minutes(out)
