"""The situation across three real nodes: every board and the replay agree (issue 13, item 5).

Three `ewx serve` processes on 127.0.0.1 over mutual TLS, with acknowledgement
deadlines of seconds (`ack_deadline_minutes`), run one scenario through their
operator sockets:

    A1  KR's SEVERE ALERT to US and JP: US acknowledges at once, JP only after
        the deadline (late)
    U1  KR's EXTREME UPDATE of A1: US acknowledges and responds, JP asks for a
        consultation but lets the deadline pass; then KR cancels U1 (JP: missed)
    A2  KR's SEVERE ALERT, still open: US acknowledges and responds, JP never
        acknowledges (overdue)
    A3  US's MODERATE ALERT, still open: KR acknowledges, JP's hour has not run
        out (waiting)

Then each node's board (the operator's "board" op, and `ewx board` once) must
show A2 and A3 only, and agree with the other boards on everything each can
see; and the replay of the three exported logs (`ewx audit replay --json
--ack-deadlines` with the nodes' deadlines) must give every alert the state
and the acknowledgements each node's `alert list` gives it, with a clean audit.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from node.ids import COUNTRIES, Country
from tests.federation.cluster import FAST, Cluster, Sent, wait_until
from tests.node.cli.test_cli import ewx
from tests.support.factories import alert_info, make_federation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DEADLINES: Final = {"EXTREME": 0.1, "SEVERE": 0.1, "MODERATE": 60}
"""Six seconds to acknowledge a SEVERE or EXTREME alert: long enough for an ACK sent on
receipt to be on time on a slow machine, short enough to let one pass; an hour for MODERATE."""
DEADLINES_FLAG: Final = ",".join(f"{s}={m}" for s, m in DEADLINES.items())
PAST: Final = 0.5
"""How far past a deadline the scenario waits before it acts as late."""
WAIT: Final = 15.0
INFO_TYPES: Final = ("ALERT", "UPDATE")

A1_INFO: Final = {"headline": "Export licensing required for gallium products"}
A2_INFO: Final = {
    "headline": "Export licensing required for germanium oxides",
    "items": [{"hs_code": "282560", "hs_edition": "HS2022"}],
}
A3_INFO: Final = {
    "category": "PRODUCTION_OUTAGE",
    "severity": "MODERATE",
    "headline": "Outages at polysilicon plants cut supply",
    "items": [{"hs_code": "280461", "hs_edition": "HS2022"}],
    "supply_impact": "FROM_10_TO_30",
    "expected_duration_days": 30,
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    root = tmp_path / "fed"
    configs = make_federation(root, **FAST, ack_deadline_minutes=DEADLINES)
    c = Cluster(root=root, configs=configs)
    try:
        yield c
    finally:
        for node in c.nodes.values():
            if not node.log_file.closed:
                node.stop(timeout=5)


# ------------------------------------------------------------------ steps
def publish(cluster: Cluster, cc: Country, msg_type: str, **fields: Any) -> str:
    """Publish at `cc` through its operator socket; remember it for the nothing-lost check."""
    reply = cluster.client(cc).call("publish", msg_type=msg_type, status="EXERCISE", **fields)
    cluster.sent.append(Sent(cc, reply["alert_id"], dict(reply["deliveries"])))
    return str(reply["alert_id"])


def answer(
    cluster: Cluster, cc: Country, msg_type: str, origin: Country, alert_id: str, **fields: Any
) -> str:
    """An ACK, RESPONSE, CONSULT or CANCEL of `origin`'s `alert_id`, to both of `cc`'s peers."""
    return publish(cluster, cc, msg_type, reference={"origin": origin, "alert_id": alert_id}, **fields)


def listed(cluster: Cluster, cc: Country, origin: Country, alert_id: str) -> dict[str, Any] | None:
    """`cc`'s `alert list` row of one alert, None until it holds it."""
    rows = [
        a
        for a in cluster.client(cc).alerts(origin=origin, alert_id=alert_id)
        if (a["origin"], a["alert_id"]) == (origin, alert_id)
    ]
    assert len(rows) <= 1
    return rows[0] if rows else None


def held_everywhere(cluster: Cluster, origin: Country, alert_id: str) -> None:
    for cc in COUNTRIES:
        wait_until(
            functools.partial(listed, cluster, cc, origin, alert_id),
            timeout=WAIT,
            what=f"{origin}/{alert_id} at {cc}",
        )


def sleep_past(due: datetime) -> None:
    """The scenario's only deliberate sleep: until a deadline has passed."""
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() + PAST))


def due_of(cluster: Cluster, origin: Country, alert_id: str) -> datetime:
    """When `alert_id`'s ACKs fall due: its signed sent time plus the deadline of its severity."""
    row = listed(cluster, origin, origin, alert_id)
    assert row is not None
    return datetime.fromisoformat(row["sent"]) + timedelta(minutes=DEADLINES[row["severity"]])


# ------------------------------------------------------------------ views
def board_view(board: dict[str, Any]) -> dict[str, Any]:
    """What every node's board must show alike: all but its time, ages, direction, exposure and
    which deliveries it can see (a node sees the third node's delivery of a peer's alert only by
    what that node sends it, which is no proof of delivery)."""
    alerts = {}
    for a in board["alerts"]:
        alerts[(a["origin"], a["alert_id"])] = {
            **{k: v for k, v in a.items() if k not in ("age", "direction", "local_exposure", "recipients")},
            "recipients": {
                r: {k: v for k, v in p.items() if k != "delivered"} for r, p in a["recipients"].items()
            },
        }
    return {
        "open": board["open"],
        "more": board["more"],
        "open_by_origin": board["open_by_origin"],
        "alerts": alerts,
        "order": [(a["origin"], a["alert_id"]) for a in board["alerts"]],
        "groups": board["groups"],
        "overdue": board["overdue"],
        "consultations": board["consultations"],
        "responses": board["responses"],
    }


def followers(row: dict[str, Any], msg_type: str) -> list[str]:
    """The members that sent a follow-up of `msg_type` about a listed alert, sorted."""
    return sorted({f["origin"] for f in row["responses"] if f["msg_type"] == msg_type})


def dues_by_alert(replayed: dict[str, Any]) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """The replay's acknowledgements as {(origin, alert id): {recipient: AckDue json}}."""
    out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for by_status in replayed["acknowledgements"].values():
        for dues in by_status.values():
            for d in dues:
                out.setdefault((d["origin"], d["alert_id"]), {})[d["recipient"]] = d
    return out


# ------------------------------------------------------------------ the scenario
def test_raise_ack_late_update_respond_consult_cancel_then_boards_and_replay_agree(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start()

    # Raise: two SEVERE alerts from KR, one MODERATE from the US.
    a1 = publish(cluster, "KR", "ALERT", info=alert_info(**A1_INFO))
    a2 = publish(cluster, "KR", "ALERT", info=alert_info(**A2_INFO))
    a3 = publish(cluster, "US", "ALERT", info=alert_info(**A3_INFO))
    raised: tuple[tuple[Country, str], ...] = (("KR", a1), ("KR", a2), ("US", a3))
    for origin, alert_id in raised:
        held_everywhere(cluster, origin, alert_id)
    # Acknowledge on receipt (on time); the US responds to the open one.
    answer(cluster, "US", "ACK", "KR", a1, reason="RECEIVED")
    answer(cluster, "US", "ACK", "KR", a2, reason="UNDER_REVIEW")
    answer(cluster, "KR", "ACK", "US", a3, reason="RECEIVED")
    response_a2 = answer(
        cluster,
        "US",
        "RESPONSE",
        "KR",
        a2,
        response={"measures": ["ALTERNATIVE_SOURCING"], "assistance": "NONE", "expected_duration_days": 60},
    )

    # JP acknowledges A1 only after its deadline: late. A2's deadline passes too (JP: overdue).
    sleep_past(max(due_of(cluster, "KR", a1), due_of(cluster, "KR", a2)))
    late_ack = answer(cluster, "JP", "ACK", "KR", a1, reason="RECEIVED")

    # KR updates A1 to EXTREME; the US acknowledges and responds, JP asks for a consultation.
    shown = cluster.client("KR").call("show", origin="KR", alert_id=a1)
    u1 = answer(
        cluster,
        "KR",
        "UPDATE",
        "KR",
        a1,
        info={**shown["info"], "severity": "EXTREME", "headline": "Update: gallium licences stalled"},
    )
    held_everywhere(cluster, "KR", u1)
    answer(cluster, "US", "ACK", "KR", u1, reason="ACTION_TAKEN")
    response_u1 = answer(
        cluster,
        "US",
        "RESPONSE",
        "KR",
        u1,
        response={
            "measures": ["STOCKPILE_RELEASE"],
            "assistance": "OFFERED",
            "assistance_measures": ["INFORMATION_SHARING"],
            "expected_duration_days": 90,
        },
    )
    consult_u1 = answer(
        cluster,
        "JP",
        "CONSULT",
        "KR",
        u1,
        consult={
            "impact": "ABOVE_60",
            "cause": "EXPORT_CONTROL",
            "expected_duration_days": 180,
            "sectors": ["SEMICONDUCTORS"],
            "measures_taken": ["ALTERNATIVE_SOURCING"],
            "assistance_wanted": ["JOINT_PROCUREMENT"],
        },
    )
    # JP never acknowledges U1: its deadline passes while it is open, then KR cancels it (missed).
    sleep_past(due_of(cluster, "KR", u1))
    cancel = answer(cluster, "KR", "CANCEL", "KR", u1, reason="SITUATION_RESOLVED")
    cluster.settle(timeout=WAIT)

    # Every node has every message and every receipt: its board.
    boards = {cc: cluster.client(cc).call("board") for cc in COUNTRIES}
    for cc, board in boards.items():
        assert board["node"] == cc
        assert board["open"] == 2 and board["more"] is False, board
        assert board["open_by_origin"] == {"KR": 1, "US": 1, "JP": 0}
        assert [(a["origin"], a["alert_id"]) for a in board["alerts"]] == [("KR", a2), ("US", a3)]
        shown_ids = json.dumps(board)
        for closed in (a1, u1, late_ack, consult_u1, response_u1, cancel):
            assert closed not in shown_ids, f"{closed} is on {cc}'s board"
        peers_a2 = board["alerts"][0]["recipients"]
        us_a2 = {k: v for k, v in peers_a2["US"].items() if k not in ("delivered", "due")}
        assert us_a2 == {
            "acknowledged": "UNDER_REVIEW",
            "ack_status": "on_time",
            "error": None,
            "responded": True,
            "consulted": False,
        }
        assert (peers_a2["JP"]["acknowledged"], peers_a2["JP"]["ack_status"]) == (None, "overdue")
        peers_a3 = board["alerts"][1]["recipients"]
        assert (peers_a3["KR"]["acknowledged"], peers_a3["KR"]["ack_status"]) == ("RECEIVED", "on_time")
        assert (peers_a3["JP"]["acknowledged"], peers_a3["JP"]["ack_status"]) == (None, "waiting")
        assert [(d["recipient"], d["origin"], d["alert_id"]) for d in board["overdue"]] == [("JP", "KR", a2)]
        assert [r["alert_id"] for r in board["responses"]] == [response_a2]
        assert board["consultations"] == []
        # Each node sees what it can prove: the origin every delivery (receipts), a recipient its own.
        for a in board["alerts"]:
            for recipient, p in a["recipients"].items():
                if cc in (a["origin"], recipient):
                    assert p["delivered"] is True, (cc, a["alert_id"], recipient)
    views = {cc: board_view(board) for cc, board in boards.items()}
    assert views["US"] == views["KR"]
    assert views["JP"] == views["KR"]
    text = ewx("board", "--config", str(cluster.configs["KR"])).stdout
    assert f"KR/{a2}" in text and f"US/{a3}" in text and "JP ACK OVERDUE" in text
    assert a1 not in text and u1 not in text

    # Every node's alert list, while the nodes run.
    lists = {
        cc: {
            (a["origin"], a["alert_id"]): a
            for a in cluster.client(cc).alerts()
            if a["msg_type"] in INFO_TYPES
        }
        for cc in COUNTRIES
    }
    keys = {("KR", a1), ("KR", u1), ("KR", a2), ("US", a3)}
    expected_states = {
        ("KR", a1): "updated",
        ("KR", u1): "cancelled",
        ("KR", a2): "active",
        ("US", a3): "active",
    }
    for cc, rows in lists.items():
        assert set(rows) == keys, cc
        assert {k: r["state"] for k, r in rows.items()} == expected_states, cc

    # The logs, exported from the stopped nodes and audited (exactly once everywhere, clean).
    logs = tmp_path / "logs"
    cluster.check_nothing_lost(logs)
    run = ewx(
        "audit",
        "replay",
        *(str(logs / f"{cc}.ewxlog") for cc in COUNTRIES),
        "--trust",
        str(cluster.root / "federation.json"),
        "--json",
        "--ack-deadlines",
        DEADLINES_FLAG,
    )
    replayed = json.loads(run.stdout)
    assert replayed["clean"] is True and replayed["verdict"] == "clean", replayed["audit"]
    assert replayed["audit"]["errors"] == 0 and replayed["left_out"] == []
    assert replayed["ack_deadline_minutes"] == DEADLINES
    alerts = {(a["origin"], a["alert_id"]): a for a in replayed["alerts"]}
    assert set(alerts) == keys
    dues = dues_by_alert(replayed)

    # The replay agrees with every node's list: states, acknowledgements, who answered.
    for cc, rows in lists.items():
        for key, row in rows.items():
            a = alerts[key]
            where = f"{key[0]}/{key[1]} at {cc}"
            assert a["state"] == row["state"], where
            assert a["digest"] == row["digest"], where
            assert {d["recipient"]: d for d in row["acks"]} == dues[key], where
            assert sorted(a["acknowledged_by"]) == row["acknowledged_by"], where
            assert a["responded_by"] == followers(row, "RESPONSE"), where
            assert a["consulted_by"] == followers(row, "CONSULT"), where
            assert row["overdue"] == [r for r, d in dues[key].items() if d["status"] == "overdue"], where
            if cc == key[0]:  # the origin's outbox: every recipient received it
                assert all(d["delivered_at"] for d in row["deliveries"].values()), where
            assert set(a["delivered_to"]) == set(row["deliveries"]), where

    # What happened, as the replay tells it.
    assert alerts[("KR", a1)]["superseded_by"] == [u1]
    assert alerts[("KR", u1)]["supersedes"] == a1
    assert alerts[("KR", u1)]["cancelled_by"] == cancel
    assert alerts[("KR", u1)]["cancel_reason"] == "SITUATION_RESOLVED"
    assert alerts[("KR", a1)]["acknowledged_by"] == {"US": "RECEIVED", "JP": "RECEIVED"}
    assert alerts[("KR", u1)]["acknowledged_by"] == {"US": "ACTION_TAKEN"}
    assert alerts[("KR", u1)]["responded_by"] == ["US"]
    assert alerts[("KR", u1)]["consulted_by"] == ["JP"]
    assert alerts[("KR", a2)]["responded_by"] == ["US"]
    status = {key: {r: d["status"] for r, d in by.items()} for key, by in dues.items()}
    assert status == {
        ("KR", a1): {"US": "on_time", "JP": "late"},
        ("KR", u1): {"US": "on_time", "JP": "missed"},
        ("KR", a2): {"US": "on_time", "JP": "overdue"},
        ("US", a3): {"KR": "on_time", "JP": "waiting"},
    }
    late = dues[("KR", a1)]["JP"]
    assert late["late_by_seconds"] is not None and late["late_by_seconds"] > 0
    assert [d["alert_id"] for d in replayed["acknowledgements"]["JP"]["late"]] == [a1]
    assert [d["alert_id"] for d in replayed["acknowledgements"]["JP"]["overdue"]] == [a2]
