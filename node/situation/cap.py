"""One EWX message as an OASIS CAP 1.2 document, for agencies whose systems already read CAP.

EWX's alert is modelled on CAP (SPEC section 3), so the lifecycle types map
one to one; the coordination and trilateral types have no CAP counterpart and
are refused rather than squeezed into a type that would mean something else
to a CAP consumer. Everything written comes from a coded field of the model,
except the headline, the one free text the schema admits: the export adds no
names, sites, figures or open text, so a CAP feed leaks nothing the signed
alert did not already say (data minimization, SPEC section 3).

The element order is the sequence of the official schema
(tests/node/situation/data/CAP-v1.2.xsd), which the tests validate against;
docs/cap.md has the field-by-field mapping. Pure: bytes out, no I/O.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from node.countries import UNKNOWN
from node.errors import RefusedOperation
from node.ids import COUNTRIES
from node.message import Alert, Info, Item

CAP_NAMESPACE: Final = "urn:oasis:names:tc:emergency:cap:1.2"

SENDER_PREFIX: Final = "urn:ewx:node:"
"""A node's CAP sender is the URI its certificate names it by (node.trust.node_uri, held equal by the tests).

CAP wants a sender that is globally unique and free of spaces, commas, '<' and
'&'. The node's certificate identity is already the one name the federation
verifies for an origin, and as a URN in the `ewx` namespace it cannot collide
with the domain-name senders of other CAP publishers.
"""

MSG_TYPES: Final[dict[str, str]] = {
    "ALERT": "Alert",
    "UPDATE": "Update",
    "CANCEL": "Cancel",
    "ACK": "Ack",
    "ERROR": "Error",
}
"""CAP 1.2 has exactly these five; the EWX types not here have no CAP message type."""

STATUSES: Final[dict[str, str]] = {"ACTUAL": "Actual", "EXERCISE": "Exercise", "TEST": "Test"}

CATEGORIES: Final[dict[str, tuple[str, str]]] = {
    # EWX category: (CAP category, CAP event)
    "EXPORT_CONTROL": ("Security", "Export control"),
    "PRODUCTION_OUTAGE": ("Infra", "Production outage"),
    "LOGISTICS": ("Transport", "Logistics disruption"),
    "NATURAL_HAZARD": ("Geo", "Natural hazard"),
    "GEOPOLITICAL": ("Security", "Geopolitical event"),
    "PRICE_SHOCK": ("Other", "Price shock"),
    "SUPPLY_DROP": ("Infra", "Supply drop"),
    "CONCENTRATION": ("Other", "Supply concentration"),
    "OTHER": ("Other", "Other supply disruption"),
}
"""CAP's category list is about hazards, not trade: docs/cap.md says why each maps where it does.

NATURAL_HAZARD is Geo rather than Met because EWX cannot say which kind of
hazard it was; a CAP consumer filtering on Met would otherwise take every
earthquake for weather. The EWX code itself always travels in eventCode.
"""

URGENCIES: Final = {"IMMEDIATE": "Immediate", "EXPECTED": "Expected", "FUTURE": "Future", "PAST": "Past"}
SEVERITIES: Final = {"EXTREME": "Extreme", "SEVERE": "Severe", "MODERATE": "Moderate", "MINOR": "Minor"}
CERTAINTIES: Final = {
    "OBSERVED": "Observed",
    "LIKELY": "Likely",
    "POSSIBLE": "Possible",
    "UNLIKELY": "Unlikely",
}
"""EWX takes CAP's vocabularies in upper case, without Unknown (a value that crosses a border commits)."""

LANGUAGE: Final = "en"
CATEGORY_CODE: Final = "EWX-category"
HS_PARAMETER: Final = "HS"
IMPACT_PARAMETER: Final = "EWX-supply-impact"
DURATION_PARAMETER: Final = "EWX-expected-duration-days"
AFFECTED_PARAMETER: Final = "EWX-affected-country"
GEOCODE_NAME: Final = "ISO3166-1 alpha-2"
SCHEMA_CODE: Final = "EWX-schema-{version}"
"""CAP `code` flags special handling: here, which EWX schema the document was mapped from."""

_UNSAFE_IN_NAME: Final = re.compile(r"[^A-Za-z0-9._-]")


def cap_sender(origin: str) -> str:
    """The CAP `sender` of `origin`'s messages, e.g. `urn:ewx:node:KR` (see SENDER_PREFIX for why)."""
    if origin not in COUNTRIES:
        raise ValueError(f"unknown origin {origin!r}: expected one of {', '.join(COUNTRIES)}")
    return f"{SENDER_PREFIX}{origin}"


def cap_time(value: datetime) -> str:
    """A time as CAP 1.2 writes it: whole seconds, UTC as `-00:00`.

    The schema's pattern admits no fraction and no `Z`, and CAP 1.2 section
    3.3.2 says UTC is written `-00:00`. The fraction is cut, not rounded, so
    an exported time is never later than the signed one, and a `references`
    triple matches the `sent` of the document it names, both cut the same way.
    """
    if value.tzinfo is None:
        raise ValueError("a CAP time needs a timezone-aware datetime")
    utc = value.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    return f"{utc.isoformat()}-00:00"


def cap_filename(alert: Alert) -> str:
    """The feed file of `alert`: `<origin>-<alert id>.xml`, unique in a directory holding every origin's.

    An alert id is unique only per origin, hence the prefix. The model already
    limits ids to A-Z a-z 0-9 . _ -, starting with a letter or digit; anything
    else is replaced all the same, so the name can never leave the directory
    whatever reached this function.
    """
    return f"{_UNSAFE_IN_NAME.sub('_', alert.origin)}-{_UNSAFE_IN_NAME.sub('_', alert.alert_id)}.xml"


def hs_text(item: Item) -> str:
    """An HS item as trade documents write it, e.g. `8112.92 (HS2022)`: the edition says which nomenclature."""
    code = item.hs_code
    shown = f"{code[:4]}.{code[4:]}" if len(code) == 6 else code
    return f"{shown} ({item.hs_edition})"


def to_cap(alert: Alert, *, referenced: Mapping[tuple[str, str], datetime] | None = None) -> bytes:
    """The CAP 1.2 document (UTF-8, with an XML declaration) for one ALERT, UPDATE, CANCEL, ACK or ERROR.

    `referenced` maps the (origin, alert id) of each alert `alert` references
    to its sent time: CAP names an earlier message by "sender,identifier,sent"
    and the EWX reference carries a digest instead of the time, so the caller
    looks it up in its store. A reference without a time is refused rather
    than guessed, since a wrong `sent` points a CAP consumer at no message.
    """
    msg_type = MSG_TYPES.get(alert.msg_type)
    if msg_type is None:
        raise RefusedOperation(
            f"{alert.msg_type} {alert.origin}/{alert.alert_id} has no CAP form: CAP 1.2 has only the message "
            f"types Alert, Update, Cancel, Ack and Error, and a {alert.msg_type} is none of them"
        )
    root = ET.Element(_tag("alert"))
    _text(root, "identifier", alert.alert_id)
    _text(root, "sender", cap_sender(alert.origin))
    _text(root, "sent", cap_time(alert.sent))
    _text(root, "status", STATUSES[alert.status])
    _text(root, "msgType", msg_type)
    _text(root, "scope", "Restricted")
    _text(root, "restriction", _restriction(alert))
    _text(root, "code", SCHEMA_CODE.format(version=alert.schema_version))
    if alert.reason is not None:
        _text(root, "note", f"reason: {alert.reason}")
    if alert.references:
        _text(root, "references", _references(alert, referenced or {}))
    if alert.info is not None:
        _info(root, alert.origin, alert.info)
    ET.indent(root)
    # typeshed types tostring's result by the encoding name; "UTF-8" gives bytes.
    document: bytes = ET.tostring(
        root, encoding="UTF-8", xml_declaration=True, default_namespace=CAP_NAMESPACE
    )
    return document + b"\n"


def _tag(name: str) -> str:
    return f"{{{CAP_NAMESPACE}}}{name}"


def _text(parent: ET.Element, name: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, _tag(name))
    element.text = text
    return element


def _pair(parent: ET.Element, name: str, value_name: str, value: str) -> None:
    """CAP's eventCode, parameter and geocode are all a valueName/value pair."""
    element = ET.SubElement(parent, _tag(name))
    _text(element, "valueName", value_name)
    _text(element, "value", value)


def _restriction(alert: Alert) -> str:
    """Who may read it: the signed alert reaches only its recipients (SPEC section 4), so the feed says so."""
    return f"EWX federation ({', '.join(COUNTRIES)}): from {alert.origin}, addressed to {', '.join(alert.recipients)}"


def _references(alert: Alert, referenced: Mapping[tuple[str, str], datetime]) -> str:
    triples = []
    for ref in alert.references:
        sent = referenced.get((ref.origin, ref.alert_id))
        if sent is None:
            raise RefusedOperation(
                f"{alert.msg_type} {alert.origin}/{alert.alert_id} references {ref.origin}/{ref.alert_id}, "
                "whose sent time is not known here: CAP 1.2 names a referenced message by sender, "
                "identifier and sent"
            )
        triples.append(f"{cap_sender(ref.origin)},{ref.alert_id},{cap_time(sent)}")
    return " ".join(triples)  # CAP: several references are separated by whitespace


def _info(root: ET.Element, origin: str, info: Info) -> None:
    block = ET.SubElement(root, _tag("info"))
    category, event = CATEGORIES[info.category]
    _text(block, "language", LANGUAGE)
    _text(block, "category", category)
    _text(block, "event", event)
    _text(block, "urgency", URGENCIES[info.urgency])
    _text(block, "severity", SEVERITIES[info.severity])
    _text(block, "certainty", CERTAINTIES[info.certainty])
    _pair(block, "eventCode", CATEGORY_CODE, info.category)
    if info.effective is not None:  # CAP: without it, effective is the sent time, as in EWX
        _text(block, "effective", cap_time(info.effective))
    _text(block, "expires", cap_time(info.expires))
    _text(block, "senderName", f"EWX national node {origin}")
    _text(block, "headline", info.headline)
    for item in info.items:
        _pair(block, "parameter", HS_PARAMETER, hs_text(item))
    _pair(block, "parameter", IMPACT_PARAMETER, info.supply_impact)
    if info.expected_duration_days:  # 0 is EWX's "not known": no figure beats a false one
        _pair(block, "parameter", DURATION_PARAMETER, str(info.expected_duration_days))
    for country in info.affected_countries:
        _pair(block, "parameter", AFFECTED_PARAMETER, country)
    if info.source_countries:  # CAP's area is optional; an alert naming no source has none
        area = ET.SubElement(block, _tag("area"))
        named = (f"{c} (unknown)" if c == UNKNOWN else c for c in info.source_countries)
        _text(area, "areaDesc", f"Source countries: {', '.join(named)}")
        for country in info.source_countries:
            _pair(area, "geocode", GEOCODE_NAME, country)
