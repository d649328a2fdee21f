"""Numbers from text, in ASCII digits only.

Python's `str.isdigit`, `int()` and a regex's `\\d` all accept the digits of
every script: `int("١٢")` and `int("１２")` are both 12. A code or number the
node reads from an operator, a file, an environment variable or a peer must
mean the same to every reader (a peer, an auditor, a spreadsheet), so it is
ASCII 0-9 only (issue 10, item 12). Patterns use `[0-9]`, never `\\d`.
"""

from __future__ import annotations


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
