"""The watchlist and policy-report message types (issue 12): their rules, their bytes, hostile input."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from node import limits
from node.message import (
    WATCH_REASONS_FOR,
    Alert,
    DecodeFailure,
    alert_from_bytes,
    alert_to_bytes,
    enum_names,
    hs_code_problem,
)
from node.wire import ewx_pb2 as pb

SENT = datetime(2023, 8, 1, 9, 0, tzinfo=UTC)
DIGEST = bytes(range(32))


def envelope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": limits.SCHEMA_VERSION,
        "alert_id": "KR-W-0001",
        "origin": "KR",
        "sent": SENT,
        "status": "ACTUAL",
        "deliveries": [{"recipient": "US", "seq": 1}, {"recipient": "JP", "seq": 1}],
    }
    base.update(overrides)
    return base


def pair(hs: str = "811292", cc: str = "CN", reason: str = "SUPPLY_CONCENTRATION") -> dict[str, Any]:
    return {"hs_code": hs, "country": cc, "reason": reason}


def proposal(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"version": 1, "hs_edition": "HS2022", "add": [pair()]}
    body.update(change)
    refs = [] if body["version"] == 1 else [{"origin": "US", "alert_id": "US-W-0001", "digest": DIGEST}]
    return envelope(msg_type="WATCHLIST_PROPOSAL", watchlist=body, references=refs)


def vote(**body: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"version": 1, "decision": "ACCEPT"}
    fields.update(body)
    return envelope(
        msg_type="WATCHLIST_VOTE",
        origin="US",
        alert_id="US-V-0001",
        deliveries=[{"recipient": "KR", "seq": 1}, {"recipient": "JP", "seq": 1}],
        references=[{"origin": "KR", "alert_id": "KR-W-0001", "digest": DIGEST}],
        vote=fields,
    )


def report(**move: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "country": "CN",
        "measure": "EXPORT_LICENSING",
        "hs_codes": ["282560", "811292"],
        "hs_edition": "HS2022",
        "stage": "IN_FORCE",
        "announced": date(2023, 7, 3),
        "effective": date(2023, 8, 1),
        "source": "OFFICIAL_GAZETTE",
    }
    body.update(move)
    return envelope(msg_type="POLICY_REPORT", alert_id="KR-R-0001", policy=body)


VALID = {
    "proposal v1": proposal(),
    "proposal v2 adds and removes": proposal(
        version=2,
        add=[pair("2504", "CN", "POLICY_RISK"), pair("811292", "CN", "PAST_DISRUPTION")],
        remove=[pair("282560", "CN", "RISK_SUBSIDED")],
    ),
    "proposal v3 only removes": proposal(version=3, add=[], remove=[pair(reason="LISTED_IN_ERROR")]),
    "accept": vote(),
    "reject": vote(decision="REJECT", reject_reason="INSUFFICIENT_EVIDENCE"),
    "report in force": report(),
    "report rumoured, no effective day": report(stage="RUMOURED", effective=None, source="PRESS"),
    "report on a heading": report(hs_codes=["8112"], stage="ANNOUNCED", source="MISSION_REPORT"),
    "report announced the day after sent (time zones)": report(
        stage="ANNOUNCED", announced=SENT.date() + timedelta(days=1), effective=None
    ),
}


@pytest.mark.parametrize("fields", VALID.values(), ids=VALID.keys())
def test_valid_messages_round_trip_through_canonical_bytes(fields: dict[str, Any]) -> None:
    alert = Alert.model_validate(fields)
    data = alert_to_bytes(alert)
    assert alert_from_bytes(data) == alert
    assert alert_to_bytes(alert_from_bytes(data)) == data


def test_an_alert_without_the_new_bodies_encodes_as_before() -> None:
    """Fields 13-15 are absent from every older type's bytes: its canonical form is unchanged."""
    data = alert_to_bytes(Alert.model_validate(report()))
    msg = pb.Alert.FromString(data)
    msg.ClearField("policy")
    assert {f.number for f, _ in msg.ListFields()} <= set(range(1, 13))


INVALID = {
    # the type rules: one body per type, references as the type needs
    "proposal without its body": (envelope(msg_type="WATCHLIST_PROPOSAL"), "requires watchlist"),
    "proposal with a vote body": (
        {**proposal(), "vote": {"version": 1, "decision": "ACCEPT"}},
        "must not carry vote",
    ),
    "report with info": (
        {
            **report(),
            "info": None,
            "consult": {"impact": "BELOW_10", "cause": "OTHER", "sectors": ["ENERGY"]},
        },
        "must not carry consult",
    ),
    "version 1 naming a predecessor": (
        {**proposal(), "references": [{"origin": "US", "alert_id": "US-W-1", "digest": DIGEST}]},
        "no predecessor",
    ),
    "version 2 without its predecessor": ({**proposal(version=2), "references": []}, "predecessor"),
    "vote on its own proposal": (
        {**vote(), "references": [{"origin": "US", "alert_id": "US-W-0001", "digest": DIGEST}]},
        "another origin",
    ),
    "vote referencing nothing": ({**vote(), "references": []}, "exactly one"),
    "report referencing an alert": (
        {**report(), "references": [{"origin": "US", "alert_id": "US-A-1", "digest": DIGEST}]},
        "must not reference",
    ),
    "proposal with a reason code": ({**proposal(), "reason": "RECEIVED"}, "no reason"),
    # the watchlist change
    "empty change": (proposal(add=[]), "at least one pair"),
    "version 1 removing": (
        proposal(remove=[pair(reason="RISK_SUBSIDED")], add=[pair("2504")]),
        "removes nothing",
    ),
    "pairs out of order": (proposal(add=[pair("811292"), pair("2504")]), "sorted"),
    "pair twice": (proposal(add=[pair(), pair(reason="POLICY_RISK")]), "twice"),
    "pair added and removed": (
        proposal(version=2, add=[pair()], remove=[pair(reason="RISK_SUBSIDED")]),
        "both added and removed",
    ),
    "adding with a removal reason": (proposal(add=[pair(reason="RISK_SUBSIDED")]), "not a reason to add"),
    "removing with an adding reason": (
        proposal(version=2, add=[], remove=[pair()]),
        "not a reason to remove",
    ),
    "national tariff line on the watchlist": (proposal(add=[pair("81129200")]), "national 8-digit"),
    "unknown supplier": (proposal(add=[pair(cc="ZZ")]), "ZZ"),
    "not a country": (proposal(add=[pair(cc="XX")]), "ISO 3166-1"),
    "version 0": (proposal(version=0), "greater than or equal to 1"),
    "too many pairs": (
        proposal(add=[pair(f"{2500 + i:04d}") for i in range(limits.MAX_WATCH_CHANGE_PAIRS + 1)]),
        "at most",
    ),
    # the vote
    "reject without a reason": (vote(decision="REJECT"), "needs a reject_reason"),
    "accept with a reason": (vote(reject_reason="OUT_OF_SCOPE"), "no reject_reason"),
    # the report
    "report with a 10-digit code": (report(hs_codes=["2825600000", "811292"]), "national 10-digit"),
    "report with a 5-digit code": (report(hs_codes=["28256"]), "4 or 6 digits"),
    "report with no code": (report(hs_codes=[]), "at least 1"),
    "report codes out of order": (report(hs_codes=["811292", "282560"]), "ascending"),
    "report codes repeat": (report(hs_codes=["811292", "811292"]), "repeat"),
    "report with too many codes": (
        report(hs_codes=[f"{2500 + i:04d}" for i in range(limits.MAX_POLICY_CODES + 1)]),
        "at most",
    ),
    "report on ZZ": (report(country="ZZ"), "ZZ"),
    "in force without effective day": (report(effective=None), "effective day"),
    "effective before announced": (report(effective=date(2023, 7, 2)), "before announced"),
    "announced after sent": (
        report(stage="ANNOUNCED", announced=SENT.date() + timedelta(days=2), effective=None),
        "after the day the report is sent",
    ),
    "a year out of range": (report(announced=date(1989, 12, 31), stage="RUMOURED", effective=None), "1989"),
    "an unknown measure name": (report(measure="STOCKPILE_RELEASE"), "PolicyMeasure"),
    "a time for a day": (report(announced=datetime(2023, 7, 3, 12, tzinfo=UTC)), "date"),
}


@pytest.mark.parametrize(("fields", "needle"), INVALID.values(), ids=INVALID.keys())
def test_each_rule_is_enforced_with_a_clear_error(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Alert.model_validate(fields)
    assert needle in str(caught.value)


def _mutated(fields: dict[str, Any], change: Any) -> bytes:
    """The canonical bytes of a valid message after `change(pb.Alert)`: bytes a hostile peer could sign."""
    msg = pb.Alert.FromString(alert_to_bytes(Alert.model_validate(fields)))
    change(msg)
    return msg.SerializeToString(deterministic=True)


def _set_code(msg: pb.Alert, value: str) -> None:
    msg.policy.hs_codes[0] = value


HOSTILE = {
    "a report with an unknown measure code": (
        report(),
        lambda m: setattr(m.policy, "measure", 42),
        "policy.measure: ",
    ),
    "a report with a national 8-digit code": (
        report(hs_codes=["282560"]),
        lambda m: _set_code(m, "28256000"),
        "policy.hs_codes.0: ",
    ),
    "a report with a national 10-digit code": (
        report(hs_codes=["282560"]),
        lambda m: _set_code(m, "2825600010"),
        "policy.hs_codes.0: ",
    ),
    "a proposal with a national code": (
        proposal(),
        lambda m: setattr(m.watchlist.add[0], "hs_code", "8112920000"),
        "watchlist.add.0.hs_code: ",
    ),
    "a proposal with an unknown reason": (
        proposal(),
        lambda m: setattr(m.watchlist.add[0], "reason", 99),
        "watchlist.add.0.reason: ",
    ),
    "a vote with an unknown decision": (vote(), lambda m: setattr(m.vote, "decision", 7), "vote.decision: "),
    "a report without an announced day": (report(), lambda m: m.policy.ClearField("announced"), "required"),
    "a report on 30 February": (
        report(),
        lambda m: (setattr(m.policy.effective, "month", 2), setattr(m.policy.effective, "day", 30)),
        "policy.effective: 2023-02-30 is not a calendar day",
    ),
    "a report of year 0": (report(), lambda m: setattr(m.policy.announced, "year", 0), "policy.announced"),
    "a proposal that is also a report": (
        proposal(),
        lambda m: m.policy.CopyFrom(
            pb.Alert.FromString(alert_to_bytes(Alert.model_validate(report()))).policy
        ),
        "must not carry policy",
    ),
}


@pytest.mark.parametrize(("fields", "change", "needle"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bytes_are_refused_naming_the_field(fields: dict[str, Any], change: Any, needle: str) -> None:
    with pytest.raises(DecodeFailure) as caught:
        alert_from_bytes(_mutated(fields, change))
    assert needle in str(caught.value)


def test_the_national_line_message_names_the_length() -> None:
    assert hs_code_problem("811292") is None
    assert hs_code_problem("8112") is None
    assert "national 8-digit tariff line" in str(hs_code_problem("81129200"))
    assert "national 10-digit tariff line" in str(hs_code_problem("8112920010"))
    # full-width digits are not digits here
    assert "must be 4 or 6 digits" in str(hs_code_problem("８１１２"))
    assert "must be 4 or 6 digits" in str(hs_code_problem("81129"))


def test_the_watch_reasons_split_the_enum_between_adding_and_removing() -> None:
    add, remove = WATCH_REASONS_FOR["add"], WATCH_REASONS_FOR["remove"]
    assert not add & remove
    assert add | remove == set(enum_names(pb.WatchReason))


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(
        st.from_regex(r"[0-9]{4}([0-9]{2})?", fullmatch=True), min_size=1, max_size=limits.MAX_POLICY_CODES
    ).map(lambda c: sorted(set(c))),
    stage=st.sampled_from(enum_names(pb.PolicyStage)),
    measure=st.sampled_from(enum_names(pb.PolicyMeasure)),
    source=st.sampled_from(enum_names(pb.SourceKind)),
    announced=st.dates(date(limits.MIN_POLICY_YEAR, 1, 1), SENT.date()),
    lag=st.integers(0, 400),
)
def test_any_coded_report_round_trips(
    codes: list[str], stage: str, measure: str, source: str, announced: date, lag: int
) -> None:
    effective = announced + timedelta(days=lag)
    alert = Alert.model_validate(
        report(
            hs_codes=codes,
            stage=stage,
            measure=measure,
            source=source,
            announced=announced,
            effective=effective,
        )
    )
    data = alert_to_bytes(alert)
    assert len(data) < limits.MAX_ENVELOPE_BYTES
    assert alert_from_bytes(data) == alert


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), body=st.sampled_from(["watchlist", "vote", "policy"]))
def test_random_bodies_raise_only_decode_failure(data: bytes, body: str) -> None:
    """Whatever a peer signs into the new fields, the decoder refuses it with DecodeFailure or accepts it."""
    msg = pb.Alert.FromString(alert_to_bytes(Alert.model_validate(proposal())))
    msg.ClearField("watchlist")
    sub = getattr(msg, body)
    try:
        sub.MergeFromString(data)
    except DecodeError:  # random bytes that are no protobuf at all: nothing to test
        return
    raw = msg.SerializeToString(deterministic=True)
    with contextlib.suppress(DecodeFailure):
        alert_from_bytes(raw)


def test_the_new_bodies_have_no_place_for_free_text() -> None:
    """SPEC section 3 keeps free text out: every string in these bodies is a code the model checks."""
    from google.protobuf.descriptor import FieldDescriptor

    coded_strings = {"hs_code", "country", "hs_codes"}
    for message in (pb.WatchPair, pb.WatchlistChange, pb.WatchlistVote, pb.PolicyMove, pb.CalendarDate):
        strings = {f.name for f in message.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING}
        assert strings <= coded_strings, message.DESCRIPTOR.name
        assert not [f.name for f in message.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_BYTES]
