import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Country(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUNTRY_UNSPECIFIED: _ClassVar[Country]
    KR: _ClassVar[Country]
    US: _ClassVar[Country]
    JP: _ClassVar[Country]

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    ACTUAL: _ClassVar[Status]
    EXERCISE: _ClassVar[Status]
    TEST: _ClassVar[Status]

class MsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MSG_TYPE_UNSPECIFIED: _ClassVar[MsgType]
    ALERT: _ClassVar[MsgType]
    UPDATE: _ClassVar[MsgType]
    CANCEL: _ClassVar[MsgType]
    ACK: _ClassVar[MsgType]
    ERROR: _ClassVar[MsgType]
    RESPONSE: _ClassVar[MsgType]
    CONSULT: _ClassVar[MsgType]
    WATCHLIST_PROPOSAL: _ClassVar[MsgType]
    WATCHLIST_VOTE: _ClassVar[MsgType]
    POLICY_REPORT: _ClassVar[MsgType]

class Category(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATEGORY_UNSPECIFIED: _ClassVar[Category]
    EXPORT_CONTROL: _ClassVar[Category]
    PRODUCTION_OUTAGE: _ClassVar[Category]
    LOGISTICS: _ClassVar[Category]
    NATURAL_HAZARD: _ClassVar[Category]
    GEOPOLITICAL: _ClassVar[Category]
    PRICE_SHOCK: _ClassVar[Category]
    SUPPLY_DROP: _ClassVar[Category]
    CONCENTRATION: _ClassVar[Category]
    OTHER: _ClassVar[Category]

class Urgency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    URGENCY_UNSPECIFIED: _ClassVar[Urgency]
    IMMEDIATE: _ClassVar[Urgency]
    EXPECTED: _ClassVar[Urgency]
    FUTURE: _ClassVar[Urgency]
    PAST: _ClassVar[Urgency]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    MINOR: _ClassVar[Severity]
    MODERATE: _ClassVar[Severity]
    SEVERE: _ClassVar[Severity]
    EXTREME: _ClassVar[Severity]

class Certainty(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTAINTY_UNSPECIFIED: _ClassVar[Certainty]
    OBSERVED: _ClassVar[Certainty]
    LIKELY: _ClassVar[Certainty]
    POSSIBLE: _ClassVar[Certainty]
    UNLIKELY: _ClassVar[Certainty]

class HsEdition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HS_EDITION_UNSPECIFIED: _ClassVar[HsEdition]
    HS2017: _ClassVar[HsEdition]
    HS2022: _ClassVar[HsEdition]
    HS2027: _ClassVar[HsEdition]

class ImpactBand(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPACT_BAND_UNSPECIFIED: _ClassVar[ImpactBand]
    BELOW_10: _ClassVar[ImpactBand]
    FROM_10_TO_30: _ClassVar[ImpactBand]
    FROM_30_TO_60: _ClassVar[ImpactBand]
    ABOVE_60: _ClassVar[ImpactBand]

class ReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_CODE_UNSPECIFIED: _ClassVar[ReasonCode]
    ISSUED_IN_ERROR: _ClassVar[ReasonCode]
    SITUATION_RESOLVED: _ClassVar[ReasonCode]
    SUPERSEDED: _ClassVar[ReasonCode]
    RECEIVED: _ClassVar[ReasonCode]
    UNDER_REVIEW: _ClassVar[ReasonCode]
    ACTION_TAKEN: _ClassVar[ReasonCode]
    UNKNOWN_REFERENCE: _ClassVar[ReasonCode]
    NOT_UNDERSTOOD: _ClassVar[ReasonCode]
    POLICY_REFUSED: _ClassVar[ReasonCode]

class Sector(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SECTOR_UNSPECIFIED: _ClassVar[Sector]
    SEMICONDUCTORS: _ClassVar[Sector]
    CRITICAL_MINERALS: _ClassVar[Sector]
    BATTERIES: _ClassVar[Sector]
    PHARMACEUTICALS: _ClassVar[Sector]
    CHEMICALS: _ClassVar[Sector]
    ENERGY: _ClassVar[Sector]
    FOOD_AND_AGRICULTURE: _ClassVar[Sector]
    MACHINERY: _ClassVar[Sector]
    TRANSPORT_EQUIPMENT: _ClassVar[Sector]
    OTHER_SECTOR: _ClassVar[Sector]

class Measure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEASURE_UNSPECIFIED: _ClassVar[Measure]
    STOCKPILE_RELEASE: _ClassVar[Measure]
    ALTERNATIVE_SOURCING: _ClassVar[Measure]
    EXPORT_FACILITATION: _ClassVar[Measure]
    LOGISTICS_SUPPORT: _ClassVar[Measure]
    DEMAND_MANAGEMENT: _ClassVar[Measure]
    PRODUCTION_INCREASE: _ClassVar[Measure]
    DIPLOMATIC_ENGAGEMENT: _ClassVar[Measure]
    INFORMATION_SHARING: _ClassVar[Measure]
    JOINT_PROCUREMENT: _ClassVar[Measure]

class Assistance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSISTANCE_UNSPECIFIED: _ClassVar[Assistance]
    NONE: _ClassVar[Assistance]
    OFFERED: _ClassVar[Assistance]
    REQUESTED: _ClassVar[Assistance]

class WatchReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_REASON_UNSPECIFIED: _ClassVar[WatchReason]
    SUPPLY_CONCENTRATION: _ClassVar[WatchReason]
    POLICY_RISK: _ClassVar[WatchReason]
    PAST_DISRUPTION: _ClassVar[WatchReason]
    STRATEGIC_ITEM: _ClassVar[WatchReason]
    RISK_SUBSIDED: _ClassVar[WatchReason]
    SUPPLY_DIVERSIFIED: _ClassVar[WatchReason]
    LISTED_IN_ERROR: _ClassVar[WatchReason]

class VoteDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOTE_DECISION_UNSPECIFIED: _ClassVar[VoteDecision]
    ACCEPT: _ClassVar[VoteDecision]
    REJECT: _ClassVar[VoteDecision]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_REASON_UNSPECIFIED: _ClassVar[RejectReason]
    INSUFFICIENT_EVIDENCE: _ClassVar[RejectReason]
    OUT_OF_SCOPE: _ClassVar[RejectReason]
    COMPETING_VERSION: _ClassVar[RejectReason]
    STALE_PREDECESSOR: _ClassVar[RejectReason]
    INVALID_CHANGE: _ClassVar[RejectReason]
    CONSULTATION_NEEDED: _ClassVar[RejectReason]

class PolicyMeasure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_MEASURE_UNSPECIFIED: _ClassVar[PolicyMeasure]
    EXPORT_LICENSING: _ClassVar[PolicyMeasure]
    EXPORT_BAN: _ClassVar[PolicyMeasure]
    EXPORT_QUOTA: _ClassVar[PolicyMeasure]
    EXPORT_INSPECTION: _ClassVar[PolicyMeasure]
    EXPORT_TAX: _ClassVar[PolicyMeasure]
    IMPORT_RESTRICTION: _ClassVar[PolicyMeasure]
    OTHER_MEASURE: _ClassVar[PolicyMeasure]

class PolicyStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_STAGE_UNSPECIFIED: _ClassVar[PolicyStage]
    RUMOURED: _ClassVar[PolicyStage]
    ANNOUNCED: _ClassVar[PolicyStage]
    IN_FORCE: _ClassVar[PolicyStage]
    LIFTED: _ClassVar[PolicyStage]

class SourceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_KIND_UNSPECIFIED: _ClassVar[SourceKind]
    OFFICIAL_GAZETTE: _ClassVar[SourceKind]
    MISSION_REPORT: _ClassVar[SourceKind]
    PRESS: _ClassVar[SourceKind]

class EntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_KIND_UNSPECIFIED: _ClassVar[EntryKind]
    ALERT_SENT: _ClassVar[EntryKind]
    ALERT_RECEIVED: _ClassVar[EntryKind]
    RECEIPT_RECEIVED: _ClassVar[EntryKind]
    TRUST_UPDATE_SENT: _ClassVar[EntryKind]
    TRUST_UPDATE_RECEIVED: _ClassVar[EntryKind]

class RevocationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_REASON_UNSPECIFIED: _ClassVar[RevocationReason]
    KEY_SUPERSEDED: _ClassVar[RevocationReason]
    KEY_COMPROMISED: _ClassVar[RevocationReason]
COUNTRY_UNSPECIFIED: Country
KR: Country
US: Country
JP: Country
STATUS_UNSPECIFIED: Status
ACTUAL: Status
EXERCISE: Status
TEST: Status
MSG_TYPE_UNSPECIFIED: MsgType
ALERT: MsgType
UPDATE: MsgType
CANCEL: MsgType
ACK: MsgType
ERROR: MsgType
RESPONSE: MsgType
CONSULT: MsgType
WATCHLIST_PROPOSAL: MsgType
WATCHLIST_VOTE: MsgType
POLICY_REPORT: MsgType
CATEGORY_UNSPECIFIED: Category
EXPORT_CONTROL: Category
PRODUCTION_OUTAGE: Category
LOGISTICS: Category
NATURAL_HAZARD: Category
GEOPOLITICAL: Category
PRICE_SHOCK: Category
SUPPLY_DROP: Category
CONCENTRATION: Category
OTHER: Category
URGENCY_UNSPECIFIED: Urgency
IMMEDIATE: Urgency
EXPECTED: Urgency
FUTURE: Urgency
PAST: Urgency
SEVERITY_UNSPECIFIED: Severity
MINOR: Severity
MODERATE: Severity
SEVERE: Severity
EXTREME: Severity
CERTAINTY_UNSPECIFIED: Certainty
OBSERVED: Certainty
LIKELY: Certainty
POSSIBLE: Certainty
UNLIKELY: Certainty
HS_EDITION_UNSPECIFIED: HsEdition
HS2017: HsEdition
HS2022: HsEdition
HS2027: HsEdition
IMPACT_BAND_UNSPECIFIED: ImpactBand
BELOW_10: ImpactBand
FROM_10_TO_30: ImpactBand
FROM_30_TO_60: ImpactBand
ABOVE_60: ImpactBand
REASON_CODE_UNSPECIFIED: ReasonCode
ISSUED_IN_ERROR: ReasonCode
SITUATION_RESOLVED: ReasonCode
SUPERSEDED: ReasonCode
RECEIVED: ReasonCode
UNDER_REVIEW: ReasonCode
ACTION_TAKEN: ReasonCode
UNKNOWN_REFERENCE: ReasonCode
NOT_UNDERSTOOD: ReasonCode
POLICY_REFUSED: ReasonCode
SECTOR_UNSPECIFIED: Sector
SEMICONDUCTORS: Sector
CRITICAL_MINERALS: Sector
BATTERIES: Sector
PHARMACEUTICALS: Sector
CHEMICALS: Sector
ENERGY: Sector
FOOD_AND_AGRICULTURE: Sector
MACHINERY: Sector
TRANSPORT_EQUIPMENT: Sector
OTHER_SECTOR: Sector
MEASURE_UNSPECIFIED: Measure
STOCKPILE_RELEASE: Measure
ALTERNATIVE_SOURCING: Measure
EXPORT_FACILITATION: Measure
LOGISTICS_SUPPORT: Measure
DEMAND_MANAGEMENT: Measure
PRODUCTION_INCREASE: Measure
DIPLOMATIC_ENGAGEMENT: Measure
INFORMATION_SHARING: Measure
JOINT_PROCUREMENT: Measure
ASSISTANCE_UNSPECIFIED: Assistance
NONE: Assistance
OFFERED: Assistance
REQUESTED: Assistance
WATCH_REASON_UNSPECIFIED: WatchReason
SUPPLY_CONCENTRATION: WatchReason
POLICY_RISK: WatchReason
PAST_DISRUPTION: WatchReason
STRATEGIC_ITEM: WatchReason
RISK_SUBSIDED: WatchReason
SUPPLY_DIVERSIFIED: WatchReason
LISTED_IN_ERROR: WatchReason
VOTE_DECISION_UNSPECIFIED: VoteDecision
ACCEPT: VoteDecision
REJECT: VoteDecision
REJECT_REASON_UNSPECIFIED: RejectReason
INSUFFICIENT_EVIDENCE: RejectReason
OUT_OF_SCOPE: RejectReason
COMPETING_VERSION: RejectReason
STALE_PREDECESSOR: RejectReason
INVALID_CHANGE: RejectReason
CONSULTATION_NEEDED: RejectReason
POLICY_MEASURE_UNSPECIFIED: PolicyMeasure
EXPORT_LICENSING: PolicyMeasure
EXPORT_BAN: PolicyMeasure
EXPORT_QUOTA: PolicyMeasure
EXPORT_INSPECTION: PolicyMeasure
EXPORT_TAX: PolicyMeasure
IMPORT_RESTRICTION: PolicyMeasure
OTHER_MEASURE: PolicyMeasure
POLICY_STAGE_UNSPECIFIED: PolicyStage
RUMOURED: PolicyStage
ANNOUNCED: PolicyStage
IN_FORCE: PolicyStage
LIFTED: PolicyStage
SOURCE_KIND_UNSPECIFIED: SourceKind
OFFICIAL_GAZETTE: SourceKind
MISSION_REPORT: SourceKind
PRESS: SourceKind
ENTRY_KIND_UNSPECIFIED: EntryKind
ALERT_SENT: EntryKind
ALERT_RECEIVED: EntryKind
RECEIPT_RECEIVED: EntryKind
TRUST_UPDATE_SENT: EntryKind
TRUST_UPDATE_RECEIVED: EntryKind
REVOCATION_REASON_UNSPECIFIED: RevocationReason
KEY_SUPERSEDED: RevocationReason
KEY_COMPROMISED: RevocationReason

class Delivery(_message.Message):
    __slots__ = ("recipient", "seq")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    recipient: Country
    seq: int
    def __init__(self, recipient: _Optional[_Union[Country, str]] = ..., seq: _Optional[int] = ...) -> None: ...

class AlertRef(_message.Message):
    __slots__ = ("origin", "alert_id", "digest")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    origin: Country
    alert_id: str
    digest: bytes
    def __init__(self, origin: _Optional[_Union[Country, str]] = ..., alert_id: _Optional[str] = ..., digest: _Optional[bytes] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("hs_code", "hs_edition")
    HS_CODE_FIELD_NUMBER: _ClassVar[int]
    HS_EDITION_FIELD_NUMBER: _ClassVar[int]
    hs_code: str
    hs_edition: HsEdition
    def __init__(self, hs_code: _Optional[str] = ..., hs_edition: _Optional[_Union[HsEdition, str]] = ...) -> None: ...

class Info(_message.Message):
    __slots__ = ("category", "urgency", "severity", "certainty", "effective", "expires", "headline", "items", "source_countries", "affected_countries", "supply_impact", "expected_duration_days")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CERTAINTY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    HEADLINE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_IMPACT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    category: Category
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    effective: _timestamp_pb2.Timestamp
    expires: _timestamp_pb2.Timestamp
    headline: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    source_countries: _containers.RepeatedScalarFieldContainer[str]
    affected_countries: _containers.RepeatedScalarFieldContainer[str]
    supply_impact: ImpactBand
    expected_duration_days: int
    def __init__(self, category: _Optional[_Union[Category, str]] = ..., urgency: _Optional[_Union[Urgency, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., certainty: _Optional[_Union[Certainty, str]] = ..., effective: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., headline: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., source_countries: _Optional[_Iterable[str]] = ..., affected_countries: _Optional[_Iterable[str]] = ..., supply_impact: _Optional[_Union[ImpactBand, str]] = ..., expected_duration_days: _Optional[int] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("measures", "assistance", "assistance_measures", "expected_duration_days", "own_exposure")
    MEASURES_FIELD_NUMBER: _ClassVar[int]
    ASSISTANCE_FIELD_NUMBER: _ClassVar[int]
    ASSISTANCE_MEASURES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    OWN_EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    measures: _containers.RepeatedScalarFieldContainer[Measure]
    assistance: Assistance
    assistance_measures: _containers.RepeatedScalarFieldContainer[Measure]
    expected_duration_days: int
    own_exposure: ImpactBand
    def __init__(self, measures: _Optional[_Iterable[_Union[Measure, str]]] = ..., assistance: _Optional[_Union[Assistance, str]] = ..., assistance_measures: _Optional[_Iterable[_Union[Measure, str]]] = ..., expected_duration_days: _Optional[int] = ..., own_exposure: _Optional[_Union[ImpactBand, str]] = ...) -> None: ...

class Consult(_message.Message):
    __slots__ = ("impact", "cause", "expected_duration_days", "sectors", "measures_taken", "assistance_wanted")
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    SECTORS_FIELD_NUMBER: _ClassVar[int]
    MEASURES_TAKEN_FIELD_NUMBER: _ClassVar[int]
    ASSISTANCE_WANTED_FIELD_NUMBER: _ClassVar[int]
    impact: ImpactBand
    cause: Category
    expected_duration_days: int
    sectors: _containers.RepeatedScalarFieldContainer[Sector]
    measures_taken: _containers.RepeatedScalarFieldContainer[Measure]
    assistance_wanted: _containers.RepeatedScalarFieldContainer[Measure]
    def __init__(self, impact: _Optional[_Union[ImpactBand, str]] = ..., cause: _Optional[_Union[Category, str]] = ..., expected_duration_days: _Optional[int] = ..., sectors: _Optional[_Iterable[_Union[Sector, str]]] = ..., measures_taken: _Optional[_Iterable[_Union[Measure, str]]] = ..., assistance_wanted: _Optional[_Iterable[_Union[Measure, str]]] = ...) -> None: ...

class CalendarDate(_message.Message):
    __slots__ = ("year", "month", "day")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    year: int
    month: int
    day: int
    def __init__(self, year: _Optional[int] = ..., month: _Optional[int] = ..., day: _Optional[int] = ...) -> None: ...

class WatchPair(_message.Message):
    __slots__ = ("hs_code", "country", "reason")
    HS_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    hs_code: str
    country: str
    reason: WatchReason
    def __init__(self, hs_code: _Optional[str] = ..., country: _Optional[str] = ..., reason: _Optional[_Union[WatchReason, str]] = ...) -> None: ...

class WatchlistChange(_message.Message):
    __slots__ = ("version", "hs_edition", "add", "remove")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HS_EDITION_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    version: int
    hs_edition: HsEdition
    add: _containers.RepeatedCompositeFieldContainer[WatchPair]
    remove: _containers.RepeatedCompositeFieldContainer[WatchPair]
    def __init__(self, version: _Optional[int] = ..., hs_edition: _Optional[_Union[HsEdition, str]] = ..., add: _Optional[_Iterable[_Union[WatchPair, _Mapping]]] = ..., remove: _Optional[_Iterable[_Union[WatchPair, _Mapping]]] = ...) -> None: ...

class WatchlistVote(_message.Message):
    __slots__ = ("version", "decision", "reject_reason")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    version: int
    decision: VoteDecision
    reject_reason: RejectReason
    def __init__(self, version: _Optional[int] = ..., decision: _Optional[_Union[VoteDecision, str]] = ..., reject_reason: _Optional[_Union[RejectReason, str]] = ...) -> None: ...

class PolicyMove(_message.Message):
    __slots__ = ("country", "measure", "hs_codes", "hs_edition", "stage", "announced", "effective", "source")
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    HS_CODES_FIELD_NUMBER: _ClassVar[int]
    HS_EDITION_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    country: str
    measure: PolicyMeasure
    hs_codes: _containers.RepeatedScalarFieldContainer[str]
    hs_edition: HsEdition
    stage: PolicyStage
    announced: CalendarDate
    effective: CalendarDate
    source: SourceKind
    def __init__(self, country: _Optional[str] = ..., measure: _Optional[_Union[PolicyMeasure, str]] = ..., hs_codes: _Optional[_Iterable[str]] = ..., hs_edition: _Optional[_Union[HsEdition, str]] = ..., stage: _Optional[_Union[PolicyStage, str]] = ..., announced: _Optional[_Union[CalendarDate, _Mapping]] = ..., effective: _Optional[_Union[CalendarDate, _Mapping]] = ..., source: _Optional[_Union[SourceKind, str]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("schema_version", "alert_id", "origin", "sent", "status", "msg_type", "deliveries", "references", "info", "reason", "response", "consult", "watchlist", "vote", "policy")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MSG_TYPE_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CONSULT_FIELD_NUMBER: _ClassVar[int]
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    alert_id: str
    origin: Country
    sent: _timestamp_pb2.Timestamp
    status: Status
    msg_type: MsgType
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    references: _containers.RepeatedCompositeFieldContainer[AlertRef]
    info: Info
    reason: ReasonCode
    response: Response
    consult: Consult
    watchlist: WatchlistChange
    vote: WatchlistVote
    policy: PolicyMove
    def __init__(self, schema_version: _Optional[int] = ..., alert_id: _Optional[str] = ..., origin: _Optional[_Union[Country, str]] = ..., sent: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[Status, str]] = ..., msg_type: _Optional[_Union[MsgType, str]] = ..., deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., references: _Optional[_Iterable[_Union[AlertRef, _Mapping]]] = ..., info: _Optional[_Union[Info, _Mapping]] = ..., reason: _Optional[_Union[ReasonCode, str]] = ..., response: _Optional[_Union[Response, _Mapping]] = ..., consult: _Optional[_Union[Consult, _Mapping]] = ..., watchlist: _Optional[_Union[WatchlistChange, _Mapping]] = ..., vote: _Optional[_Union[WatchlistVote, _Mapping]] = ..., policy: _Optional[_Union[PolicyMove, _Mapping]] = ...) -> None: ...

class SignedAlert(_message.Message):
    __slots__ = ("alert", "key_id", "signature")
    ALERT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    alert: bytes
    key_id: str
    signature: bytes
    def __init__(self, alert: _Optional[bytes] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ReceiptBody(_message.Message):
    __slots__ = ("schema_version", "receiver", "origin", "alert_id", "seq", "alert_digest", "log_index", "received_at")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ALERT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    receiver: Country
    origin: Country
    alert_id: str
    seq: int
    alert_digest: bytes
    log_index: int
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, schema_version: _Optional[int] = ..., receiver: _Optional[_Union[Country, str]] = ..., origin: _Optional[_Union[Country, str]] = ..., alert_id: _Optional[str] = ..., seq: _Optional[int] = ..., alert_digest: _Optional[bytes] = ..., log_index: _Optional[int] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SignedReceipt(_message.Message):
    __slots__ = ("receipt", "key_id", "signature")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    receipt: bytes
    key_id: str
    signature: bytes
    def __init__(self, receipt: _Optional[bytes] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("kind", "logged_at", "peer", "alert", "receipt", "trust_update")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LOGGED_AT_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    TRUST_UPDATE_FIELD_NUMBER: _ClassVar[int]
    kind: EntryKind
    logged_at: _timestamp_pb2.Timestamp
    peer: Country
    alert: SignedAlert
    receipt: SignedReceipt
    trust_update: bytes
    def __init__(self, kind: _Optional[_Union[EntryKind, str]] = ..., logged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., peer: _Optional[_Union[Country, str]] = ..., alert: _Optional[_Union[SignedAlert, _Mapping]] = ..., receipt: _Optional[_Union[SignedReceipt, _Mapping]] = ..., trust_update: _Optional[bytes] = ...) -> None: ...

class BundleHeader(_message.Message):
    __slots__ = ("format_version", "node", "log_origin", "size", "exported_at")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    node: Country
    log_origin: str
    size: int
    exported_at: _timestamp_pb2.Timestamp
    def __init__(self, format_version: _Optional[int] = ..., node: _Optional[_Union[Country, str]] = ..., log_origin: _Optional[str] = ..., size: _Optional[int] = ..., exported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WitnessedCheckpoint(_message.Message):
    __slots__ = ("log_node", "note")
    LOG_NODE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    log_node: Country
    note: str
    def __init__(self, log_node: _Optional[_Union[Country, str]] = ..., note: _Optional[str] = ...) -> None: ...

class BundleRecord(_message.Message):
    __slots__ = ("header", "entry", "checkpoint", "history", "witnessed")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    WITNESSED_FIELD_NUMBER: _ClassVar[int]
    header: BundleHeader
    entry: bytes
    checkpoint: str
    history: str
    witnessed: WitnessedCheckpoint
    def __init__(self, header: _Optional[_Union[BundleHeader, _Mapping]] = ..., entry: _Optional[bytes] = ..., checkpoint: _Optional[str] = ..., history: _Optional[str] = ..., witnessed: _Optional[_Union[WitnessedCheckpoint, _Mapping]] = ...) -> None: ...

class TransferHeader(_message.Message):
    __slots__ = ("format_version", "origin", "recipient", "exported_at")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    origin: Country
    recipient: Country
    exported_at: _timestamp_pb2.Timestamp
    def __init__(self, format_version: _Optional[int] = ..., origin: _Optional[_Union[Country, str]] = ..., recipient: _Optional[_Union[Country, str]] = ..., exported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TransferRecord(_message.Message):
    __slots__ = ("header", "envelope")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    header: TransferHeader
    envelope: bytes
    def __init__(self, header: _Optional[_Union[TransferHeader, _Mapping]] = ..., envelope: _Optional[bytes] = ...) -> None: ...

class KeyGrant(_message.Message):
    __slots__ = ("key_id", "purpose", "public_key", "not_before", "not_after")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    purpose: str
    public_key: bytes
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, key_id: _Optional[str] = ..., purpose: _Optional[str] = ..., public_key: _Optional[bytes] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KeyRevocation(_message.Message):
    __slots__ = ("key_id", "revoked_from", "reason")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FROM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    revoked_from: _timestamp_pb2.Timestamp
    reason: RevocationReason
    def __init__(self, key_id: _Optional[str] = ..., revoked_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[_Union[RevocationReason, str]] = ...) -> None: ...

class CertificateRevocation(_message.Message):
    __slots__ = ("serial_number", "revoked_from", "reason")
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FROM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    serial_number: bytes
    revoked_from: _timestamp_pb2.Timestamp
    reason: RevocationReason
    def __init__(self, serial_number: _Optional[bytes] = ..., revoked_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[_Union[RevocationReason, str]] = ...) -> None: ...

class TrustUpdate(_message.Message):
    __slots__ = ("schema_version", "federation", "member", "serial", "issued_at", "grants", "key_revocations", "certificate_revocations")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEDERATION_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    KEY_REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    federation: str
    member: Country
    serial: int
    issued_at: _timestamp_pb2.Timestamp
    grants: _containers.RepeatedCompositeFieldContainer[KeyGrant]
    key_revocations: _containers.RepeatedCompositeFieldContainer[KeyRevocation]
    certificate_revocations: _containers.RepeatedCompositeFieldContainer[CertificateRevocation]
    def __init__(self, schema_version: _Optional[int] = ..., federation: _Optional[str] = ..., member: _Optional[_Union[Country, str]] = ..., serial: _Optional[int] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., grants: _Optional[_Iterable[_Union[KeyGrant, _Mapping]]] = ..., key_revocations: _Optional[_Iterable[_Union[KeyRevocation, _Mapping]]] = ..., certificate_revocations: _Optional[_Iterable[_Union[CertificateRevocation, _Mapping]]] = ...) -> None: ...

class SignedTrustUpdate(_message.Message):
    __slots__ = ("update", "key_id", "key_signature", "ca_signature")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CA_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    update: bytes
    key_id: str
    key_signature: bytes
    ca_signature: bytes
    def __init__(self, update: _Optional[bytes] = ..., key_id: _Optional[str] = ..., key_signature: _Optional[bytes] = ..., ca_signature: _Optional[bytes] = ...) -> None: ...

class TrustUpdateRequest(_message.Message):
    __slots__ = ("update",)
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    update: bytes
    def __init__(self, update: _Optional[bytes] = ...) -> None: ...

class TrustUpdateResponse(_message.Message):
    __slots__ = ("held_serial",)
    HELD_SERIAL_FIELD_NUMBER: _ClassVar[int]
    held_serial: int
    def __init__(self, held_serial: _Optional[int] = ...) -> None: ...

class DeliverRequest(_message.Message):
    __slots__ = ("envelope", "checkpoint")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    checkpoint: str
    def __init__(self, envelope: _Optional[bytes] = ..., checkpoint: _Optional[str] = ...) -> None: ...

class DeliverResponse(_message.Message):
    __slots__ = ("receipt", "checkpoint")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    receipt: bytes
    checkpoint: str
    def __init__(self, receipt: _Optional[bytes] = ..., checkpoint: _Optional[str] = ...) -> None: ...

class CatchUpRequest(_message.Message):
    __slots__ = ("origin", "after_seq", "max_count", "trust_after", "batched")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUST_AFTER_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    origin: Country
    after_seq: int
    max_count: int
    trust_after: int
    batched: bool
    def __init__(self, origin: _Optional[_Union[Country, str]] = ..., after_seq: _Optional[int] = ..., max_count: _Optional[int] = ..., trust_after: _Optional[int] = ..., batched: _Optional[bool] = ...) -> None: ...

class CatchUpItem(_message.Message):
    __slots__ = ("envelope", "trust_update", "envelopes")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    TRUST_UPDATE_FIELD_NUMBER: _ClassVar[int]
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    trust_update: bytes
    envelopes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, envelope: _Optional[bytes] = ..., trust_update: _Optional[bytes] = ..., envelopes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class WitnessRequest(_message.Message):
    __slots__ = ("body",)
    BODY_FIELD_NUMBER: _ClassVar[int]
    body: str
    def __init__(self, body: _Optional[str] = ...) -> None: ...

class WitnessResponse(_message.Message):
    __slots__ = ("cosignature",)
    COSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    cosignature: str
    def __init__(self, cosignature: _Optional[str] = ...) -> None: ...
