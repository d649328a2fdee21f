"""Domain models of the alert (SPEC section 3) that enforce every rule and limit.

The proto (proto/ewx/v1/ewx.proto) is the one schema: coded values here are
validated against the generated enum descriptors, so a name exists in exactly
one place. node/message/_convert.py maps these models to and from the signed bytes.
There is deliberately no field for anything section 3 keeps out (names,
sites, volumes, prices, free text, URLs, attachments, key/value bags).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
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
from node.countries import UNKNOWN, VALID_CODES
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
class MsgType(StrEnum):
    """The message types, by the proto's names (tests/node/message/test_models.py holds the two together).

    A StrEnum equals its name as a string, so code can compare an Alert's
    `msg_type` with these and the wire keeps the proto's enum.
    """

    ALERT = "ALERT"
    UPDATE = "UPDATE"
    CANCEL = "CANCEL"
    ACK = "ACK"
    ERROR = "ERROR"
    RESPONSE = "RESPONSE"
    CONSULT = "CONSULT"
    WATCHLIST_PROPOSAL = "WATCHLIST_PROPOSAL"
    WATCHLIST_VOTE = "WATCHLIST_VOTE"
    POLICY_REPORT = "POLICY_REPORT"


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
WatchReasonName = Annotated[str, coded(pb.WatchReason)]
VoteDecisionName = Annotated[str, coded(pb.VoteDecision)]
RejectReasonName = Annotated[str, coded(pb.RejectReason)]
PolicyMeasureName = Annotated[str, coded(pb.PolicyMeasure)]
PolicyStageName = Annotated[str, coded(pb.PolicyStage)]
SourceKindName = Annotated[str, coded(pb.SourceKind)]

REASONS_FOR: Final[dict[str, frozenset[str]]] = {
    "CANCEL": frozenset({"ISSUED_IN_ERROR", "SITUATION_RESOLVED", "SUPERSEDED"}),
    "ACK": frozenset({"RECEIVED", "UNDER_REVIEW", "ACTION_TAKEN"}),
    "ERROR": frozenset({"UNKNOWN_REFERENCE", "NOT_UNDERSTOOD", "POLICY_REFUSED"}),
}
"""Which coded reasons fit which message type; other types carry none."""

WATCH_REASONS_FOR: Final[dict[str, frozenset[str]]] = {
    "add": frozenset({"SUPPLY_CONCENTRATION", "POLICY_RISK", "PAST_DISRUPTION", "STRATEGIC_ITEM"}),
    "remove": frozenset({"RISK_SUBSIDED", "SUPPLY_DIVERSIFIED", "LISTED_IN_ERROR"}),
}
"""Which watch reasons fit a pair a watchlist change adds, and which one it removes."""

SEVERE_OR_WORSE: Final = frozenset({"SEVERE", "EXTREME"})

_ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HS_CODE = re.compile(r"[0-9]{4}([0-9]{2})?")  # ASCII only: \d takes every script's digits


def hs_code_problem(value: str) -> str | None:
    """Why `value` is not an HS code of 4 or 6 digits (a national 8-10 digit line is named so), or None."""
    if _HS_CODE.fullmatch(value):
        return None
    if value.isascii() and value.isdigit() and 8 <= len(value) <= 10:
        return f"HS code {value!r} is a national {len(value)}-digit tariff line: only 4 or 6 digits cross a border"
    return f"HS code {value!r} must be 4 or 6 digits (national 8-10 digit lines stay home)"


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


def _check_hs_code(value: str) -> str:
    problem = hs_code_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _check_known_country(value: str) -> str:
    _check_country_code(value)
    if value == UNKNOWN:
        raise ValueError(f"{UNKNOWN} (unknown) does not name a country here")
    return value


def _check_policy_date(value: date) -> date:
    if isinstance(value, datetime):  # a datetime is a date too: a policy move has a day, not a time
        raise ValueError("a policy date is a calendar day, not a time")
    if not limits.MIN_POLICY_YEAR <= value.year <= limits.MAX_POLICY_YEAR:
        raise ValueError(f"year {value.year} is outside {limits.MIN_POLICY_YEAR}-{limits.MAX_POLICY_YEAR}")
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


def _sorted_unique(values: list[Any]) -> list[Any]:
    _unique(values)
    if values != sorted(values):
        raise ValueError("values must be in ascending order (one canonical form)")
    return values


AlertId = Annotated[str, AfterValidator(_check_alert_id)]
Headline = Annotated[str, AfterValidator(_check_headline)]
CountryCode = Annotated[str, AfterValidator(_check_country_code)]
UtcTime = Annotated[datetime, AfterValidator(_check_utc)]
Sha256 = Annotated[bytes, AfterValidator(_check_digest)]
DurationDays = Annotated[int, Field(ge=0, le=limits.MAX_DURATION_DAYS)]
Seq = Annotated[int, Field(ge=1, lt=2**63)]
HsCode = Annotated[str, AfterValidator(_check_hs_code)]
KnownCountry = Annotated[str, AfterValidator(_check_known_country)]
PolicyDate = Annotated[date, AfterValidator(_check_policy_date)]
WatchlistVersion = Annotated[int, Field(ge=1, le=limits.MAX_WATCHLIST_VERSION)]


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
        problem = hs_code_problem(self.hs_code)
        if problem is not None:
            raise ValueError(problem)
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


class WatchPair(_Model):
    """One watchlist pair: an HS code and the supplier country watched for it, with the coded reason."""

    hs_code: HsCode
    country: KnownCountry
    reason: WatchReasonName

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the pair on a watchlist: (hs_code, country); the reason does not."""
        return (self.hs_code, self.country)


def _sorted_pairs(pairs: list[WatchPair]) -> list[WatchPair]:
    keys = [p.key for p in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a pair (hs_code, country) appears twice")
    if keys != sorted(keys):
        raise ValueError("pairs must be sorted by (hs_code, country) (one canonical form)")
    return pairs


WatchPairs = Annotated[
    list[WatchPair], Field(max_length=limits.MAX_WATCH_CHANGE_PAIRS), AfterValidator(_sorted_pairs)
]


class WatchlistChange(_Model):
    """A WATCHLIST_PROPOSAL: the next watchlist version as a change of its predecessor.

    The predecessor is the proposal the alert references (none for version 1).
    Removals and additions apply to the predecessor's pairs; whether they fit
    it (no removing a pair not listed, no adding one listed) is node/trilateral's
    fold, which holds the chain.
    """

    version: WatchlistVersion
    hs_edition: HsEditionName
    add: WatchPairs = []
    remove: WatchPairs = []

    @model_validator(mode="after")
    def _rules(self) -> WatchlistChange:
        if not self.add and not self.remove:
            raise ValueError("a watchlist change adds or removes at least one pair")
        if len(self.add) + len(self.remove) > limits.MAX_WATCH_CHANGE_PAIRS:
            raise ValueError(f"a watchlist change names at most {limits.MAX_WATCH_CHANGE_PAIRS} pairs")
        if self.version == 1 and self.remove:
            raise ValueError("version 1 has no predecessor, so it removes nothing")
        both = sorted({p.key for p in self.add} & {p.key for p in self.remove})
        if both:
            raise ValueError(f"pair {':'.join(both[0])} is both added and removed")
        for side, pairs in (("add", self.add), ("remove", self.remove)):
            allowed = WATCH_REASONS_FOR[side]
            for pair in pairs:
                if pair.reason not in allowed:
                    raise ValueError(
                        f"{side}: {pair.reason} is not a reason to {side} a pair (one of {', '.join(sorted(allowed))})"
                    )
        return self


class WatchlistVote(_Model):
    """A WATCHLIST_VOTE: a member's accept or reject of the proposal the alert references."""

    version: WatchlistVersion
    decision: VoteDecisionName
    reject_reason: RejectReasonName | None = None

    @model_validator(mode="after")
    def _rules(self) -> WatchlistVote:
        if self.decision == "REJECT" and self.reject_reason is None:
            raise ValueError("a REJECT needs a reject_reason")
        if self.decision == "ACCEPT" and self.reject_reason is not None:
            raise ValueError("an ACCEPT carries no reject_reason")
        return self


class PolicyMove(_Model):
    """A POLICY_REPORT: a host country's policy move, coded (no free text, no source named)."""

    country: KnownCountry
    measure: PolicyMeasureName
    hs_codes: Annotated[
        list[HsCode],
        Field(min_length=1, max_length=limits.MAX_POLICY_CODES),
        AfterValidator(_sorted_unique),
    ]
    hs_edition: HsEditionName
    stage: PolicyStageName
    announced: PolicyDate
    """The day the move was announced; for a rumour, the day it surfaced."""
    effective: PolicyDate | None = None
    """The day it takes (or took) effect; required once IN_FORCE."""
    source: SourceKindName

    @model_validator(mode="after")
    def _rules(self) -> PolicyMove:
        if self.stage == "IN_FORCE" and self.effective is None:
            raise ValueError("a move IN_FORCE needs its effective day")
        if self.effective is not None and self.effective < self.announced:
            raise ValueError("effective must not be before announced")
        return self


_BODY_OF: Final[dict[str, str | None]] = {
    "ALERT": "info",
    "UPDATE": "info",
    "CANCEL": None,
    "ACK": None,
    "ERROR": None,
    "RESPONSE": "response",
    "CONSULT": "consult",
    "WATCHLIST_PROPOSAL": "watchlist",
    "WATCHLIST_VOTE": "vote",
    "POLICY_REPORT": "policy",
}
"""The one body each message type carries (None: a coded reason only); every other body is refused."""

_BODIES: Final = ("info", "response", "consult", "watchlist", "vote", "policy")

_UNREFERENCED: Final = frozenset({"ALERT", "POLICY_REPORT"})
"""Types that stand alone (a report is withdrawn by a CANCEL that references it)."""
_OWN_REFERENCE: Final = frozenset({"UPDATE", "CANCEL"})
"""Types that reference one of the origin's own messages."""
_OTHER_REFERENCE: Final = frozenset({"ACK", "ERROR", "WATCHLIST_VOTE"})
"""Types that reference another origin's message (a proposer's proposal is its own signature)."""


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
    watchlist: WatchlistChange | None = None
    vote: WatchlistVote | None = None
    policy: PolicyMove | None = None

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
        if self.policy is not None:
            self._check_policy_dates(self.policy)
        return self

    def _check_body(self) -> None:
        wanted = _BODY_OF[self.msg_type]
        for name in _BODIES:
            present = getattr(self, name) is not None
            if name == wanted and not present:
                raise ValueError(f"{self.msg_type} requires {name}")
            if name != wanted and present:
                raise ValueError(f"{self.msg_type} must not carry {name}")

    def _check_references(self) -> None:
        if self.msg_type in _UNREFERENCED:
            if self.references:
                raise ValueError(f"{self.msg_type} must not reference another alert")
            return
        if self.msg_type == "WATCHLIST_PROPOSAL" and self.watchlist is not None:  # body checked first
            if self.watchlist.version == 1:
                if self.references:
                    raise ValueError("watchlist version 1 has no predecessor to reference")
                return
            if len(self.references) != 1:
                raise ValueError("a watchlist proposal must reference the proposal of its predecessor")
            return
        if len(self.references) != 1:
            raise ValueError(f"{self.msg_type} must reference exactly one alert")
        ref = self.references[0]
        if self.msg_type in _OWN_REFERENCE and ref.origin != self.origin:
            raise ValueError(f"{self.msg_type} may only reference the origin's own alerts")
        if self.msg_type in _OTHER_REFERENCE and ref.origin == self.origin:
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

    def _check_policy_dates(self, policy: PolicyMove) -> None:
        if policy.announced > self.sent.date() + limits.MAX_POLICY_DATE_LEAD:
            raise ValueError("announced must not be after the day the report is sent")


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
