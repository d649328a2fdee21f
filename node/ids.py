"""Small value types so that bytes and strings of different meaning do not mix."""

from __future__ import annotations

from typing import Literal, NewType, get_args

Country = Literal["KR", "US", "JP"]
"""A member of the federation; also the node id, which comes from the peer's
verified certificate, never from message content (SPEC section 2)."""

COUNTRIES: tuple[Country, ...] = get_args(Country)

KeyId = NewType("KeyId", str)
"""Identifies one public key in the federation trust file."""

Digest = NewType("Digest", bytes)
"""SHA-256 of an alert's signed bytes (the `alert` field of a SignedAlert)."""

LeafHash = NewType("LeafHash", bytes)
"""RFC 6962 leaf hash of one exchange-log entry."""


def as_country(value: str) -> Country:
    """Return `value` as a Country, or raise ValueError naming it."""
    if value not in COUNTRIES:
        raise ValueError(f"unknown country {value!r}: expected one of {', '.join(COUNTRIES)}")
    return value


def peers_of(country: Country) -> tuple[Country, ...]:
    """The other members of the federation, in the federation's fixed order."""
    return tuple(c for c in COUNTRIES if c != country)
