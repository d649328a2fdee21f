"""Numbers from text, in ASCII digits only.

Python's `str.isdigit`, `int()` and a regex's `\\d` all accept the digits of
every script: `int("١٢")` and `int("１２")` are both 12. A code or number the
node reads from an operator, a file, an environment variable or a peer must
mean the same to every reader (a peer, an auditor, a spreadsheet), so it is
ASCII 0-9 only (issue 10, item 12). Patterns use `[0-9]`, never `\\d`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def is_ascii_digits(text: str) -> bool:
    """True if `text` is one or more of the ASCII digits 0-9 and nothing else."""
    return text.isascii() and text.isdigit()


def ascii_int(text: str) -> int | None:
    """`text` as a non-negative integer if it is ASCII digits only, else None."""
    return int(text) if is_ascii_digits(text) else None


def ascii_hex(text: str) -> int | None:
    """`text` as a non-negative integer if it is ASCII hex digits only, else None."""
    if not text or not text.isascii() or any(c not in "0123456789abcdefABCDEF" for c in text):
        return None
    return int(text, 16)


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
