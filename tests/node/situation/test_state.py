"""node.situation: an alert's state folded from log entries, and its acknowledgement deadlines (issue 13).

Pure: the entries are built here from schema-valid Alert models, no store
and no server. The node's views and the replay use this one fold; that they
agree on real logs is tests/node/situation/test_agreement.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from node.crypto import digest
from node.ids import Country
from node.message import Alert, Receipt, alert_to_bytes
from node.situation.deadlines import ack_dues
from node.situation.entries import AlertEntry, ReceiptEntry
from node.situation.settings import deadlines_from_minutes, parse_deadlines
from node.situation.state import AlertState, fold
from tests.support.audit_factories import INFO

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DEADLINES = deadlines_from_minutes({"EXTREME": 15, "SEVERE": 60, "MODERATE": 1440})


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Log:
    """Messages as three nodes' logs would hold them: each sent one at its origin, received at each recipient."""

    def __init__(self) -> None:
        self.entries: list[AlertEntry] = []
        self.receipts: list[ReceiptEntry] = []
        self.seq: dict[tuple[Country, Country], int] = {}
        self.index: dict[Country, int] = {"KR": 0, "US": 0, "JP": 0}

    def _next(self, node: Country) -> int:
        self.index[node] += 1
        return self.index[node] - 1

    def send(
        self,
        origin: Country,
        alert_id: str,
        msg_type: str,
        *,
        minute: float,
        to: tuple[Country, ...] | None = None,
        about: Alert | None = None,
        deliver: bool = True,
        **fields: Any,
    ) -> Alert:
        to = to or tuple(c for c in ("KR", "US", "JP") if c != origin)
        deliveries = []
        for r in to:
            self.seq[(origin, r)] = self.seq.get((origin, r), 0) + 1
            deliveries.append({"recipient": r, "seq": self.seq[(origin, r)]})
        body: dict[str, Any] = {
            "schema_version": 1,
            "alert_id": alert_id,
            "origin": origin,
            "sent": at(minute),
            "status": "ACTUAL",
            "msg_type": msg_type,
            "deliveries": deliveries,
            **fields,
        }
        if about is not None:
            body["references"] = [
                {"origin": about.origin, "alert_id": about.alert_id, "digest": digest(alert_to_bytes(about))}
            ]
        alert = Alert.model_validate(body)
        d = digest(alert_to_bytes(alert))
        self.entries.append(
            AlertEntry(
                node=origin,
                index=self._next(origin),
                logged_at=at(minute),
                sent=True,
                peer=None,
                alert=alert,
                digest=d,
            )
        )
        if deliver:
            for r in to:
                self.entries.append(
                    AlertEntry(
                        node=r,
                        index=self._next(r),
                        logged_at=at(minute),
                        sent=False,
                        peer=origin,
                        alert=alert,
                        digest=d,
                    )
                )
        return alert

    def alert(self, origin: Country, alert_id: str, *, minute: float, **info: Any) -> Alert:
        return self.send(
            origin,
            alert_id,
            "ALERT",
            minute=minute,
            info={**INFO, "expires": at(minute) + timedelta(days=30), **info},
        )

    def receipt(self, alert: Alert, recipient: Country, *, minute: float) -> None:
        seq = alert.seq_for(recipient)
        assert seq is not None
        receipt = Receipt(
            schema_version=1,
            receiver=recipient,
            origin=alert.origin,
            alert_id=alert.alert_id,
            seq=seq,
            alert_digest=digest(alert_to_bytes(alert)),
            log_index=7,
            received_at=at(minute),
        )
        self.receipts.append(
            ReceiptEntry(
                node=alert.origin,
                index=self._next(alert.origin),
                logged_at=at(minute),
                peer=recipient,
                receipt=receipt,
            )
        )

    def of(self, node: Country) -> tuple[list[AlertEntry], list[ReceiptEntry]]:
        """One node's log."""
        return [e for e in self.entries if e.node == node], [r for r in self.receipts if r.node == node]

    def state(self, alert: Alert, *, as_of: datetime, node: Country | None = None) -> AlertState:
        entries, receipts = self.of(node) if node else (self.entries, self.receipts)
        return fold(entries, receipts, as_of=as_of)[(alert.origin, alert.alert_id)]


# ---------------------------------------------------------------- states
def test_states_in_their_precedence() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    a2 = log.send(
        "KR", "KR-A2", "UPDATE", minute=5, about=a1, info={**INFO, "expires": at(30), "severity": "EXTREME"}
    )
    log.send("KR", "KR-X2", "CANCEL", minute=10, about=a2, reason="SITUATION_RESOLVED")
    short = log.alert("KR", "KR-E1", minute=0, expires=at(20))
    open_one = log.alert("US", "US-B1", minute=1)
    now = at(25)
    assert log.state(a1, as_of=now).state == "updated"
    assert log.state(a1, as_of=now).superseded_by == ["KR-A2"]
    cancelled = log.state(a2, as_of=now)
    assert (cancelled.state, cancelled.cancelled_by, cancelled.cancel_reason) == (
        "cancelled",
        "KR-X2",
        "SITUATION_RESOLVED",
    )
    assert cancelled.state == "cancelled" and cancelled.closed_at == at(10)
    assert log.state(short, as_of=at(19)).state == "active"
    assert log.state(short, as_of=at(20)).state == "expired"  # an expired alert leaves the active set
    assert log.state(open_one, as_of=now).state == "active"


def test_an_alert_known_only_by_reference_is_unknown() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    log.send("US", "US-ACK1", "ACK", minute=1, about=a1, reason="RECEIVED", to=("JP",))
    # JP's log alone: it holds US's ACK, not KR's ALERT (which went to US only, say).
    entries = [e for e in log.entries if e.node == "JP" and e.alert.origin == "US"]
    state = fold(entries, as_of=at(2))[("KR", "KR-A1")]
    assert state.state == "unknown" and state.msg_type is None
    assert state.acknowledged_by == {"US": "RECEIVED"}
    assert ack_dues(state, DEADLINES, now=at(100)) == []  # its time and recipients are not held


def test_deliveries_from_the_recipients_log_or_the_receipt() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    log.receipt(a1, "US", minute=1)
    at_kr = log.state(a1, as_of=at(2), node="KR")
    assert at_kr.delivered_to == ["US"]  # KR's log has US's receipt, not JP's
    assert at_kr.deliveries["US"].receipt_index is not None and not at_kr.deliveries["US"].in_receiver_log
    everyone = log.state(a1, as_of=at(2))
    assert everyone.delivered_to == ["US", "JP"]  # the recipients' own logs hold it
    assert everyone.deliveries["JP"].in_receiver_log and everyone.deliveries["JP"].relayed_by is None


def test_a_followup_of_another_version_moves_no_state() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    other = a1.model_copy(update={"info": a1.info.model_copy(update={"headline": "A different text"})})  # type: ignore[union-attr]
    log.send("US", "US-ACK1", "ACK", minute=1, about=other, reason="RECEIVED")
    state = log.state(a1, as_of=at(2))
    assert state.acks == {}


def test_answers_are_kept_per_member_and_the_earliest_ack_counts() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    log.send("US", "US-ACK2", "ACK", minute=9, about=a1, reason="UNDER_REVIEW")
    log.send("US", "US-ACK1", "ACK", minute=3, about=a1, reason="RECEIVED")
    log.send("JP", "JP-E1", "ERROR", minute=4, about=a1, reason="NOT_UNDERSTOOD")
    log.send(
        "US",
        "US-R1",
        "RESPONSE",
        minute=5,
        about=a1,
        response={"measures": ["STOCKPILE_RELEASE"], "assistance": "OFFERED"},
    )
    log.send(
        "JP",
        "JP-C1",
        "CONSULT",
        minute=6,
        about=a1,
        consult={"impact": "FROM_30_TO_60", "cause": "EXPORT_CONTROL", "sectors": ["SEMICONDUCTORS"]},
    )
    state = log.state(a1, as_of=at(10))
    assert state.acks["US"].alert_id == "US-ACK1" and state.acknowledged_by == {"US": "RECEIVED"}
    assert state.errors_by == {"JP": "NOT_UNDERSTOOD"}
    assert state.responded_by == ["US"] and state.consulted_by == ["JP"]
    assert state.consultation_open
    log.send("KR", "KR-X1", "CANCEL", minute=11, about=a1, reason="SITUATION_RESOLVED")
    assert not log.state(a1, as_of=at(12)).consultation_open  # closed with the alert


def test_an_ack_after_the_cancel_is_recorded_and_flagged() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    log.send("US", "US-ACK1", "ACK", minute=2, about=a1, reason="RECEIVED")
    log.send("KR", "KR-X1", "CANCEL", minute=5, about=a1, reason="ISSUED_IN_ERROR")
    log.send("JP", "JP-ACK1", "ACK", minute=7, about=a1, reason="RECEIVED")
    state = log.state(a1, as_of=at(8))
    assert state.state == "cancelled"
    assert set(state.acknowledged_by) == {"US", "JP"}  # recorded
    assert [a.by for a in state.acks_after_cancel] == ["JP"]  # and flagged; US's came before


def test_update_by_a_non_origin_and_followups_without_a_reference_are_refused_by_the_schema() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    with pytest.raises(ValidationError, match="may only reference the origin's own alerts"):
        log.send("US", "US-U1", "UPDATE", minute=1, about=a1, info={**INFO, "expires": at(60)})
    with pytest.raises(ValidationError, match="may only reference the origin's own alerts"):
        log.send("US", "US-X1", "CANCEL", minute=1, about=a1, reason="ISSUED_IN_ERROR")
    with pytest.raises(ValidationError, match="must reference exactly one alert"):
        log.send("US", "US-A1", "ACK", minute=1, reason="RECEIVED")


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_fold_does_not_depend_on_the_order_of_the_entries(rng: Any) -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)
    log.send("US", "US-ACK1", "ACK", minute=3, about=a1, reason="RECEIVED")
    log.send("US", "US-ACK2", "ACK", minute=4, about=a1, reason="UNDER_REVIEW")
    log.send(
        "JP",
        "JP-C1",
        "CONSULT",
        minute=4,
        about=a1,
        consult={"impact": "FROM_30_TO_60", "cause": "EXPORT_CONTROL", "sectors": ["SEMICONDUCTORS"]},
    )
    a2 = log.send("KR", "KR-A2", "UPDATE", minute=6, about=a1, info={**INFO, "expires": at(90)})
    log.send("JP", "JP-ACK2", "ACK", minute=8, about=a2, reason="RECEIVED")
    log.send("KR", "KR-X2", "CANCEL", minute=9, about=a2, reason="SITUATION_RESOLVED")
    log.send("US", "US-ACK3", "ACK", minute=10, about=a2, reason="RECEIVED")
    log.receipt(a1, "US", minute=1)

    def summary(entries: list[AlertEntry], receipts: list[ReceiptEntry]) -> Any:
        states = fold(entries, receipts, as_of=at(20))
        return {
            key: (
                s.state,
                s.acknowledged_by,
                s.consulted_by,
                s.superseded_by,
                s.cancelled_by,
                [a.by for a in s.acks_after_cancel],
                s.delivered_to,
                [(d.recipient, d.status) for d in ack_dues(s, DEADLINES, now=at(20))],
            )
            for key, s in states.items()
        }

    expected = summary(log.entries, log.receipts)
    shuffled = list(log.entries)
    rng.shuffle(shuffled)
    assert summary(shuffled, log.receipts) == expected


# ---------------------------------------------------------------- deadlines
def _dues(log: Log, alert: Alert, now: float) -> dict[str, str]:
    return {d.recipient: d.status for d in ack_dues(log.state(alert, as_of=at(now)), DEADLINES, now=at(now))}


def test_a_deadline_met_then_missed_then_met_late() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0)  # SEVERE: 60 minutes
    assert _dues(log, a1, 30) == {"US": "waiting", "JP": "waiting"}
    log.send("US", "US-ACK1", "ACK", minute=40, about=a1, reason="RECEIVED")
    assert _dues(log, a1, 61) == {"US": "on_time", "JP": "overdue"}
    log.send("JP", "JP-ACK1", "ACK", minute=75, about=a1, reason="RECEIVED")
    (late,) = [d for d in ack_dues(log.state(a1, as_of=at(80)), DEADLINES, now=at(80)) if d.recipient == "JP"]
    assert late.status == "late" and late.late_by == timedelta(minutes=15) and late.unmet
    assert "late by 0:15:00" in late.describe()


def test_a_version_closed_before_its_deadline_needs_no_ack_and_one_closed_after_is_missed() -> None:
    log = Log()
    a1 = log.alert("KR", "KR-A1", minute=0, severity="EXTREME")  # 15 minutes
    log.send(
        "KR", "KR-A2", "UPDATE", minute=10, about=a1, info={**INFO, "expires": at(600), "severity": "EXTREME"}
    )
    assert _dues(log, a1, 20) == {"US": "not_due", "JP": "not_due"}  # superseded at 10 < 15
    a2 = log.entries[-1].alert
    assert _dues(log, a2, 20) == {"US": "waiting", "JP": "waiting"}  # the update's own deadline, 10 + 15
    assert _dues(log, a2, 26) == {"US": "overdue", "JP": "overdue"}
    log.send("KR", "KR-X2", "CANCEL", minute=30, about=a2, reason="SITUATION_RESOLVED")
    assert _dues(log, a2, 31) == {"US": "missed", "JP": "missed"}  # never acknowledged while open


def test_an_alert_that_expires_before_its_deadline_needs_no_ack_and_minor_has_none() -> None:
    log = Log()
    short = log.alert("KR", "KR-E1", minute=0, severity="MODERATE", expires=at(30))  # deadline 24 h
    assert _dues(log, short, 20) == {"US": "waiting", "JP": "waiting"}
    assert _dues(log, short, 40) == {"US": "not_due", "JP": "not_due"}
    minor = log.alert("KR", "KR-M1", minute=0, severity="MINOR")
    assert _dues(log, minor, 10_000) == {}


def test_deadlines_are_parsed_with_a_clear_refusal() -> None:
    assert parse_deadlines("EXTREME=15,SEVERE=60") == {"EXTREME": 15, "SEVERE": 60}
    assert parse_deadlines("EXTREME=0.05") == {"EXTREME": 0.05}
    assert parse_deadlines("none") == {}
    for bad, words in [
        ("URGENT=5", "not a severity"),
        ("EXTREME", "want SEVERITY=MINUTES"),
        ("EXTREME=0", "from 0.01"),
        ("EXTREME=nan", "from 0.01"),
        ("EXTREME=ten", "from 0.01"),
        ("EXTREME=1,EXTREME=2", "given twice"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_deadlines(bad)
