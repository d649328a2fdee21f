"""The alert models enforce every SPEC section 3 rule; convert round-trips exactly."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from node import limits
from node.message import Alert, DecodeFailure, alert_from_bytes, alert_to_bytes, receipt_from_bytes
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info

SENT = datetime(2023, 8, 1, 0, 0, tzinfo=UTC)
DIGEST = bytes(range(32))


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "alert_id": "KR-2023-0001",
        "origin": "KR",
        "sent": SENT,
        "status": "ACTUAL",
        "msg_type": "ALERT",
        "deliveries": [{"recipient": "US", "seq": 1}, {"recipient": "JP", "seq": 1}],
        "info": alert_info(effective=SENT, expires=SENT + timedelta(days=90)),
    }
    base.update(overrides)
    return base


def info(**overrides: Any) -> dict[str, Any]:
    return alert_info(**{"effective": SENT, "expires": SENT + timedelta(days=90), **overrides})


def ref(origin: str = "KR") -> list[dict[str, Any]]:
    return [{"origin": origin, "alert_id": "KR-2023-0001", "digest": DIGEST}]


def test_valid_alert_round_trips_through_canonical_bytes() -> None:
    alert = Alert.model_validate(fields())
    data = alert_to_bytes(alert)
    assert alert_from_bytes(data) == alert
    assert alert_to_bytes(alert_from_bytes(data)) == data


VALID_OTHER_TYPES = [
    {"msg_type": "UPDATE", "references": ref()},
    {"msg_type": "CANCEL", "references": ref(), "reason": "SITUATION_RESOLVED", "info": None},
    {
        "msg_type": "ACK",
        "origin": "US",
        "deliveries": [{"recipient": "KR", "seq": 3}],
        "references": ref(),
        "reason": "RECEIVED",
        "info": None,
    },
    {
        "msg_type": "ERROR",
        "origin": "JP",
        "deliveries": [{"recipient": "KR", "seq": 1}],
        "references": ref(),
        "reason": "NOT_UNDERSTOOD",
        "info": None,
    },
    {
        "msg_type": "RESPONSE",
        "origin": "US",
        "deliveries": [{"recipient": "KR", "seq": 2}],
        "references": ref(),
        "info": None,
        "response": {"measures": ["STOCKPILE_RELEASE"], "assistance": "OFFERED"},
    },
    {
        "msg_type": "CONSULT",
        "origin": "JP",
        "deliveries": [{"recipient": "KR", "seq": 2}],
        "references": ref(),
        "info": None,
        "consult": {"impact": "ABOVE_60", "cause": "EXPORT_CONTROL", "sectors": ["SEMICONDUCTORS"]},
    },
]


@pytest.mark.parametrize("overrides", VALID_OTHER_TYPES, ids=lambda o: o["msg_type"])
def test_every_message_type_round_trips(overrides: dict[str, Any]) -> None:
    alert = Alert.model_validate(fields(**overrides))
    assert alert_from_bytes(alert_to_bytes(alert)) == alert


INVALID = {
    "unspecified category": {"info": info(category="CATEGORY_UNSPECIFIED")},
    "unknown severity": {"info": info(severity="CATASTROPHIC")},
    "headline too long": {"info": info(headline="x" * (limits.MAX_HEADLINE_CHARS + 1))},
    "headline with url": {"info": info(headline="see www.example.org for details")},
    "headline with e-mail": {"info": info(headline="write to analyst@agency")},
    "headline with phone": {"info": info(headline="call +82 2 1234 5678")},
    "headline with markup": {"info": info(headline="<b>gallium</b>")},
    "headline with control char": {"info": info(headline="gallium\nnotes")},
    "national tariff line": {"info": info(items=[{"hs_code": "8112921000", "hs_edition": "HS2022"}])},
    "five digit hs": {"info": info(items=[{"hs_code": "81129", "hs_edition": "HS2022"}])},
    "no items": {"info": info(items=[])},
    "too many items": {
        "info": info(
            items=[{"hs_code": f"{2800 + i}", "hs_edition": "HS2022"} for i in range(limits.MAX_ITEMS + 1)]
        )
    },
    "duplicate items": {"info": info(items=[{"hs_code": "8112", "hs_edition": "HS2022"}] * 2)},
    "hs edition missing": {"info": info(items=[{"hs_code": "8112", "hs_edition": "HS_EDITION_UNSPECIFIED"}])},
    "bad country code": {"info": info(source_countries=["XX"])},
    "lower-case country": {"info": info(source_countries=["cn"])},
    "expires beyond 365 days": {"info": info(expires=SENT + timedelta(days=366))},
    "expires before sent": {"info": info(expires=SENT - timedelta(days=1), effective=None)},
    "effective after expires": {"info": info(effective=SENT + timedelta(days=100))},
    "naive time": {"sent": datetime(2023, 8, 1)},
    "alert without info": {"info": None},
    "alert with reference": {"references": ref()},
    "alert with reason": {"reason": "RECEIVED"},
    "ack of own alert": {"msg_type": "ACK", "references": ref("KR"), "reason": "RECEIVED", "info": None},
    "cancel with ack reason": {"msg_type": "CANCEL", "references": ref(), "reason": "RECEIVED", "info": None},
    "cancel without reason": {"msg_type": "CANCEL", "references": ref(), "info": None},
    "update of another origin": {"msg_type": "UPDATE", "references": ref("US")},
    "addressed to itself": {"deliveries": [{"recipient": "KR", "seq": 1}]},
    "recipient twice": {"deliveries": [{"recipient": "US", "seq": 1}, {"recipient": "US", "seq": 2}]},
    "sequence zero": {"deliveries": [{"recipient": "US", "seq": 0}]},
    "no recipients": {"deliveries": []},
    "wrong schema version": {"schema_version": 2},
    "alert id with space": {"alert_id": "KR 1"},
    "alert id too long": {"alert_id": "K" * (limits.MAX_ALERT_ID_CHARS + 1)},
    "unknown field": {"company": "ACME Corp."},
    "short digest": {"msg_type": "UPDATE", "references": [{"origin": "KR", "alert_id": "a", "digest": b"x"}]},
}


@pytest.mark.parametrize("overrides", INVALID.values(), ids=INVALID.keys())
def test_schema_violations_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate(fields(**overrides))


def _mutated_bytes(mutate: Any) -> bytes:
    msg = pb.Alert.FromString(alert_to_bytes(Alert.model_validate(fields())))
    mutate(msg)
    return msg.SerializeToString(deterministic=True)


def test_decoder_refuses_unknown_fields_and_non_canonical_encodings() -> None:
    good = alert_to_bytes(Alert.model_validate(fields()))
    with pytest.raises(DecodeFailure, match="canonical"):
        alert_from_bytes(good + b"\xfa\x01\x03abc")  # unknown field 31
    # the same field written twice is valid protobuf but not our canonical form
    with pytest.raises(DecodeFailure, match="canonical"):
        alert_from_bytes(b"\x08\x01" + good)
    with pytest.raises(DecodeFailure, match="origin"):
        alert_from_bytes(_mutated_bytes(lambda m: setattr(m, "origin", 0)))
    with pytest.raises(DecodeFailure, match="category"):
        alert_from_bytes(_mutated_bytes(lambda m: setattr(m.info, "category", 99)))
    with pytest.raises(DecodeFailure, match="expires"):
        alert_from_bytes(_mutated_bytes(lambda m: m.info.ClearField("expires")))
    # an absent sent time would otherwise read as 1970-01-01
    with pytest.raises(DecodeFailure, match="sent: required"):
        alert_from_bytes(_mutated_bytes(lambda m: m.ClearField("sent")))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_alert_decoder_raises_only_decode_failure(data: bytes) -> None:
    with contextlib.suppress(DecodeFailure):
        alert_from_bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_receipt_decoder_raises_only_decode_failure(data: bytes) -> None:
    with contextlib.suppress(DecodeFailure):
        receipt_from_bytes(data)


headlines = st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs")), min_size=1, max_size=140)


@settings(max_examples=150, deadline=None)
@given(
    headline=headlines,
    severity=st.sampled_from(["MINOR", "MODERATE", "SEVERE", "EXTREME"]),
    days=st.integers(min_value=1, max_value=365),
    seqs=st.tuples(st.integers(1, 2**62), st.integers(1, 2**62)),
    codes=st.lists(st.from_regex(r"\d{4}(\d{2})?", fullmatch=True), min_size=1, max_size=32, unique=True),
)
def test_any_valid_alert_round_trips(
    headline: str, severity: str, days: int, seqs: tuple[int, int], codes: list[str]
) -> None:
    try:
        alert = Alert.model_validate(
            fields(
                deliveries=[{"recipient": "US", "seq": seqs[0]}, {"recipient": "JP", "seq": seqs[1]}],
                info=info(
                    headline=headline,
                    severity=severity,
                    expires=SENT + timedelta(days=days),
                    effective=None,
                    items=[{"hs_code": c, "hs_edition": "HS2017"} for c in codes],
                ),
            )
        )
    except ValidationError:
        return  # e.g. a generated headline that looks like a phone number
    data = alert_to_bytes(alert)
    assert alert_from_bytes(data) == alert
    assert len(data) < limits.MAX_ENVELOPE_BYTES


def test_a_receipt_without_its_receipt_time_is_refused() -> None:
    body = pb.ReceiptBody(
        schema_version=limits.SCHEMA_VERSION,
        receiver="US",
        origin="KR",
        alert_id="KR-1",
        seq=1,
        alert_digest=b"\x01" * 32,
        log_index=0,
    )
    with pytest.raises(DecodeFailure, match="received_at: required"):
        receipt_from_bytes(body.SerializeToString(deterministic=True))


def test_the_message_type_enum_names_every_proto_type_and_nothing_else() -> None:
    from node.message import MsgType

    proto = {v.name for v in pb.MsgType.DESCRIPTOR.values if v.number != 0}
    assert {t.value for t in MsgType} == proto
    assert all(t == t.value for t in MsgType)  # equal to the plain string the models carry
