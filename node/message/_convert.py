"""The one place that maps pb2 messages to and from node's models.

Decoding outside bytes is strict: the bytes must parse, must be in the
canonical (deterministic) encoding this code writes, and must satisfy the
model. Re-encoding here is a *schema* check that nothing unknown rides along
(data minimization: an unknown field could smuggle anything). Signatures are
never checked over re-encoded bytes; node/crypto/_signing.py checks the bytes as
received, before this module ever sees them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from node.errors import DecodeFailure
from node.ids import Country
from node.message._models import Alert, Info, PolicyMove, Receipt, WatchlistChange, WatchPair
from node.wire import ewx_pb2 as pb

M = TypeVar("M", bound=Message)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp for a UTC datetime (microsecond precision)."""
    # What Timestamp.FromDatetime computes (calendar.timegm of the UTC time
    # tuple, microseconds as nanos), in integer arithmetic: it runs for every
    # alert and log entry written. Any aware datetime is in Timestamp's range.
    delta = value.astimezone(UTC) - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


_MIN_SECONDS: Final = -62135596800
"""0001-01-01T00:00:00Z, the first instant a Timestamp (and a datetime) can hold."""
_MAX_SECONDS: Final = 253402300799
"""9999-12-31T23:59:59Z, the last."""


def from_timestamp(ts: Timestamp, *, field: str) -> datetime:
    """A UTC datetime from a Timestamp; nanoseconds must be whole microseconds."""
    seconds, nanos = ts.seconds, ts.nanos
    if nanos % 1000:
        raise DecodeFailure(f"{field}: sub-microsecond timestamps are not used")
    # What Timestamp.ToDatetime(tzinfo=UTC) checks and computes, without its
    # extra calls: this runs for every log entry and alert an audit decodes.
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        raise DecodeFailure(f"{field}: timestamp out of range")
    return _EPOCH + timedelta(0, seconds, nanos // 1000)  # positional: half the cost of keywords


def parse_canonical(message_type: type[M], data: bytes, *, what: str) -> M:
    """Parse `data` as `message_type`, refusing non-canonical or unknown content."""
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise DecodeFailure(f"{what} is not a valid protobuf message") from exc
    # Unknown fields survive a re-encode, so drop them (recursively) first: the
    # comparison then catches both smuggled fields and non-canonical encodings.
    message.DiscardUnknownFields()
    if message.SerializeToString(deterministic=True) != data:
        raise DecodeFailure(f"{what} is not in canonical encoding (unknown fields or non-canonical form)")
    return message


def encode(message: Message) -> bytes:
    """The canonical bytes of a message: what gets signed, stored and sent."""
    return message.SerializeToString(deterministic=True)


_MEMBERS: Final[dict[int, Country]] = {pb.KR: "KR", pb.US: "US", pb.JP: "JP"}


def member(value: int) -> Country | None:
    """The federation member a proto Country value names, or None (unspecified, unknown)."""
    return _MEMBERS.get(value)


def _country(value: int, *, field: str) -> Country:
    name = _MEMBERS.get(value)
    if name is None:
        raise DecodeFailure(f"{field}: not a federation member")
    return name


_ENUM_NAMES: dict[Any, dict[int, str]] = {}
"""Number -> name of each enum wrapper met so far, as wrapper.Name gives it:
wrapper.values() builds a list on every call, and decoding is on the audit's
hot path (every alert, every coded field)."""


def _name(wrapper: Any, value: int) -> str:
    names = _ENUM_NAMES.get(wrapper)
    if names is None:
        names = _ENUM_NAMES[wrapper] = {
            number: str(v.name) for number, v in wrapper.DESCRIPTOR.values_by_number.items()
        }
    # Unknown numbers pass through as a string the model refuses by name.
    name = names.get(value)
    return name if name is not None else f"<{value}>"


def _names(wrapper: Any, values: Any) -> list[str]:
    return [_name(wrapper, v) for v in values]


# ------------------------------------------------------------------ alert
def alert_to_pb(alert: Alert) -> pb.Alert:
    """The pb2 form of a validated alert."""
    msg = pb.Alert(
        schema_version=alert.schema_version,
        alert_id=alert.alert_id,
        origin=alert.origin,
        sent=timestamp(alert.sent),
        status=alert.status,
        msg_type=alert.msg_type,
        deliveries=[pb.Delivery(recipient=d.recipient, seq=d.seq) for d in alert.deliveries],
        references=[
            pb.AlertRef(origin=r.origin, alert_id=r.alert_id, digest=r.digest) for r in alert.references
        ],
        reason=alert.reason,
    )
    if alert.info is not None:
        msg.info.CopyFrom(_info_to_pb(alert.info))
    if alert.response is not None:
        r = alert.response
        msg.response.CopyFrom(
            pb.Response(
                measures=list(r.measures),
                assistance=r.assistance,
                assistance_measures=list(r.assistance_measures),
                expected_duration_days=r.expected_duration_days,
                own_exposure=r.own_exposure,
            )
        )
    if alert.consult is not None:
        c = alert.consult
        msg.consult.CopyFrom(
            pb.Consult(
                impact=c.impact,
                cause=c.cause,
                expected_duration_days=c.expected_duration_days,
                sectors=list(c.sectors),
                measures_taken=list(c.measures_taken),
                assistance_wanted=list(c.assistance_wanted),
            )
        )
    if alert.watchlist is not None:
        msg.watchlist.CopyFrom(_watchlist_to_pb(alert.watchlist))
    if alert.vote is not None:
        v = alert.vote
        msg.vote.CopyFrom(
            pb.WatchlistVote(version=v.version, decision=v.decision, reject_reason=v.reject_reason)
        )
    if alert.policy is not None:
        msg.policy.CopyFrom(_policy_to_pb(alert.policy))
    return msg


def _pair_to_pb(pair: WatchPair) -> pb.WatchPair:
    return pb.WatchPair(hs_code=pair.hs_code, country=pair.country, reason=pair.reason)


def _watchlist_to_pb(change: WatchlistChange) -> pb.WatchlistChange:
    return pb.WatchlistChange(
        version=change.version,
        hs_edition=change.hs_edition,
        add=[_pair_to_pb(p) for p in change.add],
        remove=[_pair_to_pb(p) for p in change.remove],
    )


def _date_to_pb(value: date) -> pb.CalendarDate:
    return pb.CalendarDate(year=value.year, month=value.month, day=value.day)


def _policy_to_pb(move: PolicyMove) -> pb.PolicyMove:
    msg = pb.PolicyMove(
        country=move.country,
        measure=move.measure,
        hs_codes=list(move.hs_codes),
        hs_edition=move.hs_edition,
        stage=move.stage,
        announced=_date_to_pb(move.announced),
        source=move.source,
    )
    if move.effective is not None:
        msg.effective.CopyFrom(_date_to_pb(move.effective))
    return msg


def _info_to_pb(info: Info) -> pb.Info:
    msg = pb.Info(
        category=info.category,
        urgency=info.urgency,
        severity=info.severity,
        certainty=info.certainty,
        expires=timestamp(info.expires),
        headline=info.headline,
        items=[pb.Item(hs_code=i.hs_code, hs_edition=i.hs_edition) for i in info.items],
        source_countries=info.source_countries,
        affected_countries=info.affected_countries,
        supply_impact=info.supply_impact,
        expected_duration_days=info.expected_duration_days,
    )
    if info.effective is not None:
        msg.effective.CopyFrom(timestamp(info.effective))
    return msg


def alert_to_bytes(alert: Alert) -> bytes:
    """The canonical signed-payload bytes of an alert."""
    return encode(alert_to_pb(alert))


def alert_from_bytes(data: bytes) -> Alert:
    """Decode and validate signed-payload bytes; DecodeFailure names the defect."""
    msg = parse_canonical(pb.Alert, data, what="alert")
    if not msg.HasField("sent"):
        # An absent Timestamp would read as 1970-01-01, a time nobody sent.
        raise DecodeFailure("sent: required")
    fields: dict[str, Any] = {
        "schema_version": msg.schema_version,
        "alert_id": msg.alert_id,
        "origin": _country(msg.origin, field="origin"),
        "sent": from_timestamp(msg.sent, field="sent"),
        "status": _name(pb.Status, msg.status),
        "msg_type": _name(pb.MsgType, msg.msg_type),
        "deliveries": [
            {"recipient": _country(d.recipient, field="deliveries.recipient"), "seq": d.seq}
            for d in msg.deliveries
        ],
        "references": [
            {
                "origin": _country(r.origin, field="references.origin"),
                "alert_id": r.alert_id,
                "digest": r.digest,
            }
            for r in msg.references
        ],
    }
    if msg.reason:
        fields["reason"] = _name(pb.ReasonCode, msg.reason)
    if msg.HasField("info"):
        fields["info"] = _info_fields(msg.info)
    if msg.HasField("response"):
        r = msg.response
        fields["response"] = {
            "measures": _names(pb.Measure, r.measures),
            "assistance": _name(pb.Assistance, r.assistance),
            "assistance_measures": _names(pb.Measure, r.assistance_measures),
            "expected_duration_days": r.expected_duration_days,
        }
        if r.own_exposure:
            fields["response"]["own_exposure"] = _name(pb.ImpactBand, r.own_exposure)
    if msg.HasField("consult"):
        c = msg.consult
        fields["consult"] = {
            "impact": _name(pb.ImpactBand, c.impact),
            "cause": _name(pb.Category, c.cause),
            "expected_duration_days": c.expected_duration_days,
            "sectors": _names(pb.Sector, c.sectors),
            "measures_taken": _names(pb.Measure, c.measures_taken),
            "assistance_wanted": _names(pb.Measure, c.assistance_wanted),
        }
    if msg.HasField("watchlist"):
        w = msg.watchlist
        fields["watchlist"] = {
            "version": w.version,
            "hs_edition": _name(pb.HsEdition, w.hs_edition),
            "add": [_pair_fields(p) for p in w.add],
            "remove": [_pair_fields(p) for p in w.remove],
        }
    if msg.HasField("vote"):
        v = msg.vote
        fields["vote"] = {"version": v.version, "decision": _name(pb.VoteDecision, v.decision)}
        if v.reject_reason:
            fields["vote"]["reject_reason"] = _name(pb.RejectReason, v.reject_reason)
    if msg.HasField("policy"):
        fields["policy"] = _policy_fields(msg.policy)
    return _validate(Alert, fields)


def _pair_fields(pair: pb.WatchPair) -> dict[str, Any]:
    return {"hs_code": pair.hs_code, "country": pair.country, "reason": _name(pb.WatchReason, pair.reason)}


def _date_from_pb(value: pb.CalendarDate, *, field: str) -> date:
    try:
        return date(value.year, value.month, value.day)
    except (ValueError, OverflowError):
        raise DecodeFailure(
            f"{field}: {value.year:04d}-{value.month:02d}-{value.day:02d} is not a calendar day"
        ) from None


def _policy_fields(move: pb.PolicyMove) -> dict[str, Any]:
    if not move.HasField("announced"):
        raise DecodeFailure("policy.announced: required")
    fields: dict[str, Any] = {
        "country": move.country,
        "measure": _name(pb.PolicyMeasure, move.measure),
        "hs_codes": list(move.hs_codes),
        "hs_edition": _name(pb.HsEdition, move.hs_edition),
        "stage": _name(pb.PolicyStage, move.stage),
        "announced": _date_from_pb(move.announced, field="policy.announced"),
        "source": _name(pb.SourceKind, move.source),
    }
    if move.HasField("effective"):
        fields["effective"] = _date_from_pb(move.effective, field="policy.effective")
    return fields


def _info_fields(info: pb.Info) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "category": _name(pb.Category, info.category),
        "urgency": _name(pb.Urgency, info.urgency),
        "severity": _name(pb.Severity, info.severity),
        "certainty": _name(pb.Certainty, info.certainty),
        "headline": info.headline,
        "items": [
            {"hs_code": i.hs_code, "hs_edition": _name(pb.HsEdition, i.hs_edition)} for i in info.items
        ],
        "source_countries": list(info.source_countries),
        "affected_countries": list(info.affected_countries),
        "supply_impact": _name(pb.ImpactBand, info.supply_impact),
        "expected_duration_days": info.expected_duration_days,
    }
    if not info.HasField("expires"):
        raise DecodeFailure("info.expires is required")
    fields["expires"] = from_timestamp(info.expires, field="info.expires")
    if info.HasField("effective"):
        fields["effective"] = from_timestamp(info.effective, field="info.effective")
    return fields


_MODEL = TypeVar("_MODEL", Alert, Receipt)


def _validate(model: type[_MODEL], fields: dict[str, Any]) -> _MODEL:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or model.__name__.lower()
        raise DecodeFailure(f"{where}: {first['msg']}") from None


# ------------------------------------------------------------------ receipt
def receipt_to_bytes(receipt: Receipt) -> bytes:
    """The canonical signed-payload bytes of a receipt."""
    return encode(
        pb.ReceiptBody(
            schema_version=receipt.schema_version,
            receiver=receipt.receiver,
            origin=receipt.origin,
            alert_id=receipt.alert_id,
            seq=receipt.seq,
            alert_digest=receipt.alert_digest,
            log_index=receipt.log_index,
            received_at=timestamp(receipt.received_at),
        )
    )


def receipt_from_bytes(data: bytes) -> Receipt:
    """Decode and validate receipt bytes; DecodeFailure names the defect."""
    msg = parse_canonical(pb.ReceiptBody, data, what="receipt")
    if not msg.HasField("received_at"):
        raise DecodeFailure("received_at: required")
    return _validate(
        Receipt,
        {
            "schema_version": msg.schema_version,
            "receiver": _country(msg.receiver, field="receiver"),
            "origin": _country(msg.origin, field="origin"),
            "alert_id": msg.alert_id,
            "seq": msg.seq,
            "alert_digest": msg.alert_digest,
            "log_index": msg.log_index,
            "received_at": from_timestamp(msg.received_at, field="received_at"),
        },
    )
