"""Domain models of the alert (SPEC section 3) that enforce every rule and limit.

The proto (proto/ewx/v1/ewx.proto) is the one schema: coded values here are
validated against the generated enum descriptors, so a name exists in exactly
one place. node/message/_convert.py maps these models to and from the signed bytes.
There is deliberately no field for anything section 3 keeps out (names,
sites, volumes, prices, free text, URLs, attachments, key/value bags).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from node import limits
from node.countries import VALID_CODES
from node.ids import Country
from node.message._plaintext import not_plain
from node.wire import ewx_pb2 as pb


def enum_names(wrapper: EnumTypeWrapper) -> list[str]:
    """The names a coded field accepts, in proto order, without UNSPECIFIED."""
    # EnumTypeWrapper is not a dict and is not iterable: .keys() is its API.
    return [name for name in wrapper.keys() if not name.endswith("_UNSPECIFIED")]  # noqa: SIM118


def coded(wrapper: EnumTypeWrapper) -> AfterValidator:
    """A validator accepting only the proto enum's names, never UNSPECIFIED."""
    names = frozenset(enum_names(wrapper))
    enum_name = wrapper.DESCRIPTOR.name

    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"{value!r} is not a valid {enum_name} (one of {', '.join(sorted(names))})")
        return value

    return AfterValidator(check)


StatusName = Annotated[str, coded(pb.Status)]
MsgTypeName = Annotated[str, coded(pb.MsgType)]
CategoryName = Annotated[str, coded(pb.Category)]
UrgencyName = Annotated[str, coded(pb.Urgency)]
SeverityName = Annotated[str, coded(pb.Severity)]
CertaintyName = Annotated[str, coded(pb.Certainty)]
HsEditionName = Annotated[str, coded(pb.HsEdition)]
ImpactBandName = Annotated[str, coded(pb.ImpactBand)]
ReasonName = Annotated[str, coded(pb.ReasonCode)]
SectorName = Annotated[str, coded(pb.Sector)]
MeasureName = Annotated[str, coded(pb.Measure)]
AssistanceName = Annotated[str, coded(pb.Assistance)]

REASONS_FOR: Final[dict[str, frozenset[str]]] = {
    "CANCEL": frozenset({"ISSUED_IN_ERROR", "SITUATION_RESOLVED", "SUPERSEDED"}),
    "ACK": frozenset({"RECEIVED", "UNDER_REVIEW", "ACTION_TAKEN"}),
    "ERROR": frozenset({"UNKNOWN_REFERENCE", "NOT_UNDERSTOOD", "POLICY_REFUSED"}),
}
"""Which coded reasons fit which message type; other types carry none."""

SEVERE_OR_WORSE: Final = frozenset({"SEVERE", "EXTREME"})

_ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HS_CODE = re.compile(r"[0-9]{4}([0-9]{2})?")  # ASCII only: \d takes every script's digits
def _check_alert_id(value: str) -> str:
    if not 1 <= len(value) <= limits.MAX_ALERT_ID_CHARS or not _ALERT_ID.fullmatch(value):
        raise ValueError(
            f"alert id must be 1-{limits.MAX_ALERT_ID_CHARS} characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return value


def _check_headline(value: str) -> str:
    if not value.strip():
        raise ValueError("headline is empty")
    if len(value) > limits.MAX_HEADLINE_CHARS:
        raise ValueError(f"headline has {len(value)} characters, at most {limits.MAX_HEADLINE_CHARS}")
    # str.isprintable is all(ch.isprintable() for ch in value), in C.
    if not value.isprintable():
        raise ValueError("headline contains control characters")
    found = not_plain(value)  # node/message/_plaintext.py states what plain text means
    if found is not None:
        what, part = found
        shown = part if len(part) <= 40 else part[:37] + "..."
        raise ValueError(f"headline must be plain text and appears to contain {what} ({shown!r})")
    return value


def _check_country_code(value: str) -> str:
    if value not in VALID_CODES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 code (ZZ for unknown)")
    return value


def _check_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() != UTC.utcoffset(None):
        raise ValueError("time must be timezone-aware UTC")
    return value.astimezone(UTC)


def _check_digest(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"digest must be 32 bytes (SHA-256), got {len(value)}")
    return value


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


AlertId = Annotated[str, AfterValidator(_check_alert_id)]
Headline = Annotated[str, AfterValidator(_check_headline)]
CountryCode = Annotated[str, AfterValidator(_check_country_code)]
UtcTime = Annotated[datetime, AfterValidator(_check_utc)]
Sha256 = Annotated[bytes, AfterValidator(_check_digest)]
DurationDays = Annotated[int, Field(ge=0, le=limits.MAX_DURATION_DAYS)]
Seq = Annotated[int, Field(ge=1, lt=2**63)]


Countries = Annotated[list[CountryCode], Field(max_length=limits.MAX_COUNTRIES), AfterValidator(_unique)]
Measures = Annotated[list[MeasureName], Field(max_length=limits.MAX_CODED_LIST), AfterValidator(_unique)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="hex", val_json_bytes="hex")


class Delivery(_Model):
    """One recipient and the origin's gapless sequence number towards it."""

    recipient: Country
    seq: Seq


class AlertRef(_Model):
    """A reference to an earlier signed alert: origin, id and digest of its bytes."""

    origin: Country
    alert_id: AlertId
    digest: Sha256


class Item(_Model):
    """An HS code at 4 or 6 digits with its HS edition (never a national line)."""

    hs_code: str
    hs_edition: HsEditionName

    @model_validator(mode="after")
    def _hs(self) -> Item:
        if not _HS_CODE.fullmatch(self.hs_code):
            raise ValueError(
                f"HS code {self.hs_code!r} must be 4 or 6 digits (national 8-10 digit lines stay home)"
            )
        return self


class Info(_Model):
    """What an ALERT or UPDATE says about the disruption."""

    category: CategoryName
    urgency: UrgencyName
    severity: SeverityName
    certainty: CertaintyName
    effective: UtcTime | None = None
    expires: UtcTime
    headline: Headline
    items: Annotated[
        list[Item], Field(min_length=limits.MIN_ITEMS, max_length=limits.MAX_ITEMS), AfterValidator(_unique)
    ]
    source_countries: Countries = []
    affected_countries: Countries = []
    supply_impact: ImpactBandName
    expected_duration_days: DurationDays = 0


class Response(_Model):
    """A RESPONSE: measures taken and assistance offered or requested."""

    measures: Annotated[Measures, Field(min_length=1)]
    assistance: AssistanceName
    assistance_measures: Measures = []
    expected_duration_days: DurationDays = 0
    own_exposure: ImpactBandName | None = None
    """The responder's own import share from the alert's sources, as a band (node/ews/exposure.py)."""


class Consult(_Model):
    """A CONSULT: the IPEF Crisis Response Network request fields, coded."""

    impact: ImpactBandName
    cause: CategoryName
    expected_duration_days: DurationDays = 0
    sectors: Annotated[
        list[SectorName], Field(min_length=1, max_length=limits.MAX_CODED_LIST), AfterValidator(_unique)
    ]
    measures_taken: Measures = []
    assistance_wanted: Measures = []


_BODY_OF: Final[dict[str, str | None]] = {
    "ALERT": "info",
    "UPDATE": "info",
    "CANCEL": None,
    "ACK": None,
    "ERROR": None,
    "RESPONSE": "response",
    "CONSULT": "consult",
}


class Alert(_Model):
    """One signed message of any type (SPEC section 3), exactly as it crosses a border."""

    schema_version: int
    alert_id: AlertId
    origin: Country
    sent: UtcTime
    status: StatusName
    msg_type: MsgTypeName
    deliveries: Annotated[list[Delivery], Field(min_length=1, max_length=2)]
    references: Annotated[list[AlertRef], Field(max_length=limits.MAX_REFERENCES)] = []
    info: Info | None = None
    reason: ReasonName | None = None
    response: Response | None = None
    consult: Consult | None = None

    @property
    def recipients(self) -> tuple[Country, ...]:
        """The peers this alert is addressed to."""
        return tuple(d.recipient for d in self.deliveries)

    def seq_for(self, recipient: Country) -> int | None:
        """The origin's sequence number towards `recipient`, None if not addressed."""
        return next((d.seq for d in self.deliveries if d.recipient == recipient), None)

    @model_validator(mode="after")
    def _rules(self) -> Alert:
        if self.schema_version != limits.SCHEMA_VERSION:
            raise ValueError(f"schema version {self.schema_version} is not supported")
        recipients = self.recipients
        if len(set(recipients)) != len(recipients):
            raise ValueError("a recipient appears twice in deliveries")
        if self.origin in recipients:
            raise ValueError("an alert is not addressed to its own origin")
        self._check_body()
        self._check_references()
        self._check_reason()
        if self.info is not None:
            self._check_times(self.info)
        return self

    def _check_body(self) -> None:
        wanted = _BODY_OF[self.msg_type]
        for name in ("info", "response", "consult"):
            present = getattr(self, name) is not None
            if name == wanted and not present:
                raise ValueError(f"{self.msg_type} requires {name}")
            if name != wanted and present:
                raise ValueError(f"{self.msg_type} must not carry {name}")

    def _check_references(self) -> None:
        if self.msg_type == "ALERT":
            if self.references:
                raise ValueError("ALERT must not reference another alert")
            return
        if len(self.references) != 1:
            raise ValueError(f"{self.msg_type} must reference exactly one alert")
        ref = self.references[0]
        if self.msg_type in ("UPDATE", "CANCEL") and ref.origin != self.origin:
            raise ValueError(f"{self.msg_type} may only reference the origin's own alerts")
        if self.msg_type in ("ACK", "ERROR") and ref.origin == self.origin:
            raise ValueError(f"{self.msg_type} must reference another origin's alert")

    def _check_reason(self) -> None:
        allowed = REASONS_FOR.get(self.msg_type)
        if allowed is None:
            if self.reason is not None:
                raise ValueError(f"{self.msg_type} carries no reason code")
        elif self.reason not in allowed:
            raise ValueError(f"{self.msg_type} needs a reason code, one of {', '.join(sorted(allowed))}")

    def _check_times(self, info: Info) -> None:
        if info.expires <= self.sent:
            raise ValueError("expires must be after sent")
        if info.expires - self.sent > limits.MAX_EXPIRY:
            raise ValueError(f"expires must be at most {limits.MAX_EXPIRY.days} days after sent")
        if info.effective is not None and info.effective >= info.expires:
            raise ValueError("effective must be before expires")


class Receipt(_Model):
    """A receiver's signed statement that it durably stored one alert."""

    schema_version: int
    receiver: Country
    origin: Country
    alert_id: AlertId
    seq: Seq
    alert_digest: Sha256
    log_index: Annotated[int, Field(ge=0, lt=2**63)]
    received_at: UtcTime

    @model_validator(mode="after")
    def _rules(self) -> Receipt:
        if self.schema_version != limits.SCHEMA_VERSION:
            raise ValueError(f"schema version {self.schema_version} is not supported")
        if self.receiver == self.origin:
            raise ValueError("a node does not receipt its own alerts")
        return self
