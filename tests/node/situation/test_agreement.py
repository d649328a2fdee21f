"""The node's view and the replay of its exported log always agree (issue 13, item 1).

Hypothesis writes message histories: alerts raised to one or both peers,
acknowledgements (some after their deadline), errors, responses,
consultations, updates and cancels, deliveries direct or relayed, and time
passing. Three NodeServices over real stores run each history (publishing
refusals, such as a second ACK or an UPDATE of a cancelled alert, are part of
it: nothing is stored for them). Then, at one frozen instant, each node's
alert list and board are compared with `ewx audit replay` of that node's
exported log alone: state, acknowledgements and their deadlines,
consultations, ACKs after a CANCEL, and deliveries.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.audit import read_bundle, replay
from node.errors import RefusedOperation, UsageError
from node.ids import COUNTRIES, Country, peers_of
from node.pki import init_federation
from node.situation.settings import deadlines_from_minutes
from tests.support.audit_factories import INFO, ThreeNodes

START = datetime.now(UTC).replace(microsecond=0)
"""Now: the keys `ewx pki init` makes are valid from about now, for two years."""
MINUTES = {"EXTREME": 15, "SEVERE": 60, "MODERATE": 24 * 60}


class SteppingClock:
    """One second later on every read, plus what a history's `wait` steps add; frozen for the comparison."""

    def __init__(self) -> None:
        self.now = START
        self.frozen = False

    def __call__(self) -> datetime:
        if not self.frozen:
            self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agreement") / "pristine"
    init_federation(root)
    return root


NODE = st.sampled_from(COUNTRIES)
STEP = st.one_of(
    st.tuples(
        st.just("raise"), NODE, st.sampled_from(["MINOR", "MODERATE", "SEVERE", "EXTREME"]), st.booleans()
    ),
    st.tuples(
        st.just("answer"), NODE, st.integers(0, 7), st.sampled_from(["ACK", "ERROR", "RESPONSE", "CONSULT"])
    ),
    st.tuples(st.just("update"), st.integers(0, 7)),
    st.tuples(st.just("cancel"), st.integers(0, 7)),
    st.tuples(st.just("deliver"), NODE, NODE, st.booleans()),
    st.tuples(st.just("wait"), st.sampled_from([5, 20, 90, 2000])),
)


def _run(nodes: ThreeNodes, clock: SteppingClock, steps: list[tuple[Any, ...]]) -> None:
    raised: list[tuple[Country, str]] = []  # every ALERT and UPDATE published, in order
    for step in steps:
        kind = step[0]
        try:
            if kind == "raise":
                _, origin, severity, both = step
                recipients = None if both else [peers_of(origin)[0]]
                info = {**INFO, "severity": severity, "expires": clock.now + timedelta(days=2)}
                published = nodes.svc[origin].publish(msg_type="ALERT", info=info, recipients=recipients)
                raised.append((origin, published.alert.alert_id))
            elif kind == "answer" and raised:
                _, who, pick, msg_type = step
                target = raised[pick % len(raised)]
                if target[0] == who:
                    continue
                fields: dict[str, Any] = {"reason": "RECEIVED" if msg_type == "ACK" else "NOT_UNDERSTOOD"}
                if msg_type == "RESPONSE":
                    fields = {"response": {"measures": ["STOCKPILE_RELEASE"], "assistance": "OFFERED"}}
                elif msg_type == "CONSULT":
                    fields = {
                        "consult": {
                            "impact": "FROM_30_TO_60",
                            "cause": "EXPORT_CONTROL",
                            "sectors": ["SEMICONDUCTORS"],
                        }
                    }
                nodes.svc[who].publish(msg_type=msg_type, reference=target, **fields)
            elif kind in ("update", "cancel") and raised:
                origin, alert_id = raised[step[1] % len(raised)]
                if kind == "update":
                    info = {**INFO, "severity": "EXTREME", "expires": clock.now + timedelta(days=2)}
                    published = nodes.svc[origin].publish(
                        msg_type="UPDATE", reference=(origin, alert_id), info=info
                    )
                    raised.append((origin, published.alert.alert_id))
                else:
                    nodes.svc[origin].publish(
                        msg_type="CANCEL", reference=(origin, alert_id), reason="SITUATION_RESOLVED"
                    )
            elif kind == "deliver":
                _, origin, peer, relayed = step
                if origin != peer:
                    via = next(c for c in COUNTRIES if c not in (origin, peer)) if relayed else None
                    nodes.deliver(origin, peer, via=via)
            elif kind == "wait":
                clock.now += timedelta(minutes=step[1])
        except (RefusedOperation, UsageError):
            continue  # refused by the lifecycle rules or the store: nothing was stored


def _view(nodes: ThreeNodes, cc: Country) -> dict[tuple[str, str], Any]:
    out = {}
    for a in nodes.svc[cc].list_alerts():
        if a.msg_type in ("ALERT", "UPDATE"):
            out[(a.origin, a.alert_id)] = (
                a.state,
                sorted(a.acknowledged_by),
                sorted((d.recipient, d.status) for d in a.acks),
                sorted(f.split(":")[1] for f in a.flags if f.startswith("ack_after_cancel:")),
                a.consultation_open,
            )
    return out


def _replayed(result: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    dues: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for d in result.acks:
        dues.setdefault((d.origin, d.alert_id), []).append((d.recipient, d.status))
    return {
        a.key: (
            a.state,
            sorted(a.acknowledged_by),
            sorted(dues.get(a.key, [])),
            sorted(x.by for x in a.acks_after_cancel),
            a.consultation_open,
        )
        for a in result.alerts
        if a.key in keys
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=4, max_size=24))
def test_the_node_and_the_replay_of_its_log_agree(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]]
) -> None:
    root = tmp_path_factory.mktemp("history") / "fed"
    shutil.copytree(pristine, root)
    clock = SteppingClock()
    with ThreeNodes(root, clock=clock) as nodes:
        _run(nodes, clock, steps)
        clock.frozen = True
        paths = nodes.export(root, now=clock.now)
        trust = nodes.trust()
        for cc in COUNTRIES:
            view = _view(nodes, cc)
            result = replay([read_bundle(paths[cc])], trust=trust, deadline_minutes=MINUTES)
            assert result.clean, result.report.to_text()
            assert _replayed(result, set(view)) == view, cc
            # The board folds the same entries: its open alerts and their deliveries agree too.
            board = nodes.svc[cc].board_from(nodes.svc[cc].board_snapshot())
            replayed = {a.key: a for a in result.alerts}
            open_keys = {k for k, v in view.items() if v[0] == "active"}
            limit = len(open_keys) <= 500
            assert not limit or {(a["origin"], a["alert_id"]) for a in board["alerts"]} == open_keys
            for a in board["alerts"]:
                r = replayed[(a["origin"], a["alert_id"])]
                # What this node can know (as origin, or as that recipient); the rest is null.
                assert {p: s["delivered"] for p, s in a["recipients"].items()} == {
                    p: d.delivered if cc in (a["origin"], p) else None for p, d in r.deliveries.items()
                }
            overdue = sorted((d["recipient"], d["origin"], d["alert_id"]) for d in board["overdue"])
            assert overdue == sorted(
                (d.recipient, d.origin, d.alert_id)
                for d in result.acks
                if d.status == "overdue" and (d.origin, d.alert_id) in open_keys
            )


def test_the_histories_reach_every_deadline_status(pristine: Path, tmp_path: Path) -> None:
    """The property above is only as good as its histories: one written out reaches each status."""
    root = tmp_path / "fed"
    shutil.copytree(pristine, root)
    clock = SteppingClock()
    steps: list[tuple[Any, ...]] = [
        ("raise", "KR", "SEVERE", True),  # 0: US acks on time, JP late
        ("raise", "US", "EXTREME", True),  # 1: nobody acks: overdue
        ("raise", "JP", "EXTREME", True),  # 2: updated before its deadline: not due; the update cancelled late: missed
        ("deliver", "KR", "US", False), ("deliver", "KR", "JP", True),
        ("deliver", "US", "KR", False), ("deliver", "US", "JP", False),
        ("update", 2),
        ("deliver", "JP", "KR", False), ("deliver", "JP", "US", False),
        ("answer", "US", 0, "ACK"), ("deliver", "US", "KR", False),
        ("wait", 90),
        ("answer", "JP", 0, "ACK"), ("deliver", "JP", "KR", False),
        ("cancel", 3), ("deliver", "JP", "KR", False),
    ]  # fmt: skip
    with ThreeNodes(root, clock=clock) as nodes:
        _run(nodes, clock, steps)
        clock.frozen = True
        paths = nodes.export(root, now=clock.now)
        result = replay([read_bundle(paths["KR"])], trust=nodes.trust(), deadline_minutes=MINUTES)
        seen = {d.status for d in result.acks}
        assert {"on_time", "late", "overdue", "not_due", "missed"} <= seen, sorted(seen)
        view = _view(nodes, "KR")
        assert _replayed(result, set(view)) == view
    assert deadlines_from_minutes(MINUTES)["SEVERE"] == timedelta(hours=1)


def test_the_publisher_refuses_an_update_by_a_non_origin_and_a_cancel_of_an_unknown_alert(
    pristine: Path, tmp_path: Path
) -> None:
    root = tmp_path / "fed"
    shutil.copytree(pristine, root)
    with ThreeNodes(root, clock=SteppingClock()) as nodes:
        info = {**INFO, "expires": START + timedelta(days=2)}
        us_alert = nodes.svc["US"].publish(msg_type="ALERT", info=info).alert.alert_id
        nodes.deliver("US", "KR")
        with pytest.raises(UsageError, match="may only reference the origin's own alerts"):
            nodes.svc["KR"].publish(msg_type="UPDATE", reference=("US", us_alert), info=info)
        with pytest.raises(UsageError, match="may only reference the origin's own alerts"):
            nodes.svc["KR"].publish(msg_type="CANCEL", reference=("US", us_alert), reason="ISSUED_IN_ERROR")
        with pytest.raises(RefusedOperation, match="no alert KR-NOPE from KR is known to KR"):
            nodes.svc["KR"].publish(msg_type="CANCEL", reference=("KR", "KR-NOPE"), reason="ISSUED_IN_ERROR")
        assert [a.msg_type for a in nodes.svc["KR"].list_alerts()] == ["ALERT"]  # nothing stored for them
