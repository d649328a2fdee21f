"""How the audit's messages show bytes: one short form for digests and tree roots."""

from __future__ import annotations


def short_hash(value: bytes) -> str:
    """The first 8 bytes of a digest or root in hex: enough to tell two apart in a message."""
    return value.hex()[:16]
