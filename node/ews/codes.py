"""The closed sets and field rules of the indicator data, defined once.

Ingest (in SQL), `ewx ews event add` (in Python) and the tests read these;
every code and number is ASCII only (a full-width digit is not a digit here).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """What an input file holds."""

    FLOWS = "flows"
    PRICES = "prices"
    EVENTS = "events"
    SHARES = "shares"


class Measure(StrEnum):
    """A policy move's measure, coded."""

    EXPORT_LICENSING = "EXPORT_LICENSING"
    EXPORT_BAN = "EXPORT_BAN"
    EXPORT_QUOTA = "EXPORT_QUOTA"
    EXPORT_INSPECTION = "EXPORT_INSPECTION"
    EXPORT_TAX = "EXPORT_TAX"
    IMPORT_RESTRICTION = "IMPORT_RESTRICTION"
    OTHER = "OTHER"


class Stage(StrEnum):
    """Where a policy move stands."""

    ANNOUNCED = "ANNOUNCED"
    IN_FORCE = "IN_FORCE"
    LIFTED = "LIFTED"


class DetectionState(StrEnum):
    """A detection's review state."""

    DRAFT = "draft"
    PUBLISHED = "published"
    DISMISSED = "dismissed"


class DismissReason(StrEnum):
    """Why an analyst dismissed a detection, coded (no free text is kept)."""

    FALSE_POSITIVE = "FALSE_POSITIVE"
    DATA_ERROR = "DATA_ERROR"
    ALREADY_KNOWN = "ALREADY_KNOWN"
    NOT_RELEVANT = "NOT_RELEVANT"
    DUPLICATE = "DUPLICATE"


UNITS: Final = {"kg": 1.0, "t": 1000.0, "u": 1.0, "l": 1.0}
"""Quantity units and their factor to the unit stored (tonnes are kept as kg)."""
STORED_UNIT: Final = {"kg": "kg", "t": "kg", "u": "u", "l": "l"}

PERIOD_PATTERN: Final = "^[0-9]{4}-(0[1-9]|1[0-2])$"
"""A month, `YYYY-MM`."""
DATE_PATTERN: Final = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
HS6_PATTERN: Final = "^[0-9]{6}$"
HS_PATTERN: Final = "^([0-9]{4}|[0-9]{6})$"
"""An HS code of 4 or 6 digits (policy events may name a heading)."""
NUMBER_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?$"
"""A non-negative decimal in plain ASCII: no sign, exponent, grouping or NaN."""
YEAR_PATTERN: Final = "^(19|20)[0-9]{2}$"
COUNTRY_PATTERN: Final = "^[A-Z]{2}$"
CURRENCY_PATTERN: Final = "^[A-Z]{3}$"

MIN_YEAR: Final = 1990
MAX_YEAR: Final = 2099
MAX_VALUE: Final = 1e15
"""Above any real monthly import value or quantity: such a figure is a unit mistake."""
MAX_HS_CODES_PER_EVENT: Final = 32
MAX_INPUT_BYTES: Final = 2 * 1024**3
"""An input file larger than this is refused before it is read."""
