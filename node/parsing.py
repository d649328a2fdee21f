"""Parse or refuse: the values an operator types (flags, environment variables), read in one place.

Each parser returns the value the text stands for, or refuses the text with
one message that quotes it. The refusal is argparse's error by default, which
argparse prints as a usage error (exit 2); a caller outside a flag passes its
own (`refuse=UsageError`). Numbers are ASCII digits only (node/digits.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias, TypeVar

from node.digits import ascii_int
from node.ids import Country, as_country

T = TypeVar("T")

Refuse: TypeAlias = Callable[[str], Exception]
"""Makes the exception a refusal raises, from its message."""


def flag(
    parse: Callable[[str], T], *, error: type[Exception], refusal: Callable[[str], str] | None = None
) -> Callable[[str], T]:
    """An argparse `type` from a parser that refuses with `error`: argparse's error instead,
    with the parser's message or `refusal(value)`."""

    def parse_flag(value: str) -> T:
        try:
            return parse(value)
        except error as exc:
            raise argparse.ArgumentTypeError(str(exc) if refusal is None else refusal(value)) from None

    return parse_flag


def whole_number(
    value: str,
    *,
    low: int,
    high: int | None = None,
    refusal: str,
    refuse: Refuse = argparse.ArgumentTypeError,
) -> int:
    """`value` as a whole number in ASCII digits from `low` to `high` (no bound if None), else `refusal`."""
    number = ascii_int(value)
    if number is None or number < low or (high is not None and number > high):
        raise refuse(refusal)
    return number


def cli_int(*, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type` for a whole number in ASCII digits (an optional leading minus), within bounds."""

    def parse(value: str) -> int:
        negative = value.startswith("-")
        number = ascii_int(value[1:] if negative else value)
        if number is None:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number in the digits 0-9")
        number = -number if negative else number
        if (low is not None and number < low) or (high is not None and number > high):
            if low is not None and high is not None:
                bounds = f"from {low} to {high}"
            else:
                bounds = f"of at least {low}" if low is not None else f"of at most {high}"
            raise argparse.ArgumentTypeError(f"{value!r}: give a whole number {bounds}")
        return number

    return parse


def cli_days(high: int) -> Callable[[str], int]:
    """An argparse `type` for a whole number of days from 1 to `high`."""

    def parse(value: str) -> int:
        return whole_number(
            value, low=1, high=high, refusal=f"{value!r}: give a whole number of days from 1 to {high}"
        )

    return parse


def parse_country(value: str, *, refuse: Refuse = argparse.ArgumentTypeError) -> Country:
    """A member's country code in any case (`us` is US), refused with node.ids.as_country's message."""
    try:
        return as_country(value.upper())
    except ValueError as exc:
        raise refuse(str(exc)) from None


def parse_iso_time(
    value: str,
    *,
    alternative: str | None = None,
    field: str | None = None,
    refuse: Refuse = argparse.ArgumentTypeError,
) -> datetime:
    """An ISO 8601 time with its zone, in UTC; the error names the `field` and the `alternative`
    form the flag also takes, if any."""
    prefix = f"{field}: " if field else ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        other = f" or {alternative}" if alternative else ""
        raise refuse(f"{prefix}{value!r} is not an ISO 8601 time{other}") from None
    if parsed.tzinfo is None:
        raise refuse(f"{prefix}{value!r} has no time zone; give Z or +00:00")
    return parsed.astimezone(UTC)


def parse_when(value: str) -> datetime:
    """An ISO 8601 UTC time, or +Nd / +Nh relative to now."""
    return _now_or_time(value, value[1:] if value.startswith("+") else None, later=True)


def parse_ago(value: str) -> datetime:
    """An ISO 8601 UTC time, or Nd / Nh: that long ago (a leading minus would read as a flag)."""
    return _now_or_time(value, value.removeprefix("-"), later=False)


def _now_or_time(value: str, span: str | None, *, later: bool) -> datetime:
    """`span` (Nd or Nh) later or earlier than now if it is one, else `value` as an ISO 8601 time."""
    amount = ascii_int(span[:-1]) if span is not None and span[-1:] in ("d", "h") else None
    if span is None or amount is None:
        return parse_iso_time(value, alternative="+Nd/+Nh" if later else "Nd/Nh (days or hours ago)")
    try:
        delta = timedelta(days=amount) if span[-1] == "d" else timedelta(hours=amount)
        return datetime.now(UTC) + delta if later else datetime.now(UTC) - delta
    except OverflowError:
        edge = "beyond the calendar (year 9999)" if later else "before the calendar (year 1)"
        raise argparse.ArgumentTypeError(f"{value!r} is {edge}") from None
