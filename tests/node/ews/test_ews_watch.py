"""Policy reports as policy events and the watchlist in the early-warning engine (issue 12), without nodes.

The reports come in as the operator op `policy_list` answers them; the
watchlist as its op `watchlist` answers `current`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import duckdb
import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

import node.cli  # noqa: F401 - node.ews.cli is a part of the CLI: loaded through it
from node import limits
from node.config import NodeConfig
from node.errors import ConfigError, RefusedOperation, StoreError
from node.ews.cli import reported_events
from node.ews.ingest import ingest_file
from node.ews.reports import take_reports
from node.ews.rules import SEVERITIES as RULE_LEVELS
from node.ews.rules import explain
from node.ews.scan import compute, scan, watch_flag
from node.ews.store import EWS_FILE, SCHEMA_VERSION, EwsStore
from node.ews.thresholds import Thresholds
from node.ews.watch import WatchView, keep_watchlist, stored_watchlist, watchlist_by_digest
from node.message import WatchPair
from node.pki import init_federation
from node.trilateral import SEVERITIES, Watchlist, stepped
from node.trilateral._policy import report_event
from tests.support.ews_factories import EVENT_HEADER, FLOW_HEADER, flow_rows, open_store, write_csv

ME = "KR"
MODERATE_PARTNERS = {"CN": 6000.0, "JP": 3000.0, "DE": 1000.0}
"""CN holds some 60% of import value: exposed (CR1 >= 0.5) but not critical (< 0.8): a policy move alone is MODERATE."""


def report(origin: str = "JP", alert_id: str = "JP-1", **move: Any) -> dict[str, Any]:
    """One row of the operator op `policy_list`: China's July 2023 announcement on gallium."""
    row: dict[str, Any] = {
        "origin": origin,
        "alert_id": alert_id,
        "status": "ACTUAL",
        "sent": "2023-07-04T08:00:00+00:00",
        "direction": "sent" if origin == ME else "received",
        "digest": (origin + alert_id).encode().hex().ljust(64, "0")[:64],
        "country": "CN",
        "measure": "EXPORT_LICENSING",
        "hs_codes": ["811292"],
        "hs_edition": "HS2022",
        "stage": "ANNOUNCED",
        "announced": "2023-07-03",
        "effective": "2023-08-01",
        "source": "MISSION_REPORT",
    }
    row.update(move)
    return row


def current(*pairs: str, version: int = 1) -> dict[str, Any]:
    """The op `watchlist`'s `current` with `pairs` (HS:CC)."""
    return {
        "version": version,
        "digest": f"{version:02d}" * 32,
        "hs_edition": "HS2022",
        "in_force_at": "2023-06-01T00:00:00+00:00",
        "pairs": [
            {"hs_code": p.split(":")[0], "country": p.split(":")[1], "reason": "SUPPLY_CONCENTRATION"}
            for p in pairs
        ],
    }


def _flows(tmp_path: Path, **kwargs: Any) -> EwsStore:
    store = open_store(tmp_path / "data")
    ingest_file(store, write_csv(tmp_path / "flows.csv", FLOW_HEADER, flow_rows(**kwargs)))
    return store


def _take(store: EwsStore, *rows: dict[str, Any]) -> Any:
    events, _, unreadable = reported_events(list(rows))
    assert unreadable == []
    return take_reports(store, events, me=ME)


def _severities(store: EwsStore, watch: WatchView, **thresholds: Any) -> list[tuple[str, str]]:
    return [(d.period, d.severity) for d in compute(store, Thresholds(**thresholds), watch=watch)]


# ---------------------------------------------------------------- reports into the policy events
def test_only_actual_announcements_become_policy_events() -> None:
    events, not_events, unreadable = reported_events(
        [
            report(),
            report(alert_id="JP-2", status="EXERCISE"),
            report(alert_id="JP-3", stage="RUMOURED"),
            report(alert_id="JP-4", effective=None),
            {"origin": "JP", "alert_id": "JP-5", "status": "ACTUAL"},  # not a report's row
        ]
    )
    assert [e.alert_id for e in events] == ["JP-1", "JP-4"]
    assert not_events == 2 and len(unreadable) == 1 and unreadable[0].startswith("JP/JP-5:")
    first, no_effective = events
    assert first.record["hs_codes"] == "811292" and first.record["stage"] == "ANNOUNCED"
    assert no_effective.record["effective"] == "2023-07-03"  # counts from its announcement
    assert first.source.startswith("policy report JP JP-1 ")
    # The same rules as node.trilateral.policy_event, which the service uses.
    made = report_event(report())
    assert made is not None and made.record() == dict(first.record)


def test_a_report_enters_the_events_marked_with_its_origin_once(tmp_path: Path) -> None:
    store = _flows(tmp_path)
    taken = _take(store, report(), report(ME, "KR-9", hs_codes=["282590"]))
    assert taken.taken == ["JP/JP-1", "KR/KR-9"] and taken.added == 2
    batches, events = store.count("batches"), store.count("events")
    linked = store.rows(
        "SELECT origin, alert_id, peer, e.country FROM event_reports JOIN events e USING (event_id)"
    )
    assert sorted((r["origin"], r["peer"]) for r in linked) == [("JP", True), ("KR", False)]
    assert {r["country"] for r in linked} == {"CN"}
    # The same reports again add nothing: no event, no batch, no link.
    again = _take(store, report(), report(ME, "KR-9", hs_codes=["282590"]))
    assert again.held == 2 and again.taken == [] and again.added == 0
    assert (store.count("batches"), store.count("events"), store.count("event_reports")) == (
        batches,
        events,
        2,
    )


def test_a_report_of_a_move_the_node_holds_names_that_event_and_a_later_stage_updates_it(
    tmp_path: Path,
) -> None:
    store = _flows(tmp_path)
    own = "CN,811292,EXPORT_LICENSING,2023-07-03,2023-08-01,ANNOUNCED"
    ingest_file(store, write_csv(tmp_path / "events.csv", EVENT_HEADER, [own]))
    taken = _take(store, report())
    assert (taken.added, taken.unchanged) == (0, 1) and store.count("events") == 1
    lifted = _take(store, report(alert_id="JP-2", stage="LIFTED"))
    assert lifted.replaced == 1
    (event,) = store.rows("SELECT event_id, stage FROM events")
    assert event["stage"] == "LIFTED"
    assert {r["event_id"] for r in store.rows("SELECT event_id FROM event_reports")} == {event["event_id"]}
    assert _severities(store, WatchView.from_current(current("811292:CN"))) == []  # lifted: no trigger


def test_a_report_the_checks_refuse_is_named_and_the_others_are_taken(tmp_path: Path) -> None:
    store = _flows(tmp_path)
    events, _, _ = reported_events([report(), report(alert_id="JP-2", announced="2023-07-05")])
    bad = events[0].__class__(
        record={**events[0].record, "hs_codes": "81129200"},
        origin="JP",
        alert_id="JP-0",
        digest="00" * 32,
        source="policy report JP JP-0",
    )
    taken = take_reports(store, [bad, *events], me=ME)
    assert taken.taken == ["JP/JP-1", "JP/JP-2"] and len(taken.refused) == 1
    assert taken.refused[0].startswith("JP/JP-0: ") and "hs_codes" in taken.refused[0]


# ---------------------------------------------------------------- the severity step
def test_a_peer_report_on_a_watched_pair_is_one_step_higher(tmp_path: Path) -> None:
    store = _flows(tmp_path, partners=MODERATE_PARTNERS)
    _take(store, report())
    unwatched = WatchView.from_current(current("282590:CN", "811292:VN"))
    watched = WatchView.from_current(current("811292:CN"))
    heading = WatchView.from_current(current("8112:CN"))
    assert _severities(store, WatchView()) == [("2023-07", "MODERATE")]
    assert _severities(store, unwatched) == [("2023-07", "MODERATE")]
    assert _severities(store, watched) == [("2023-07", "SEVERE")]
    assert _severities(store, heading) == [("2023-07", "SEVERE")]  # a 4-digit pair watches its codes
    assert _severities(store, watched, watchlist_steps=0) == [("2023-07", "MODERATE")]
    assert _severities(store, watched, watchlist_steps=3) == [("2023-07", "EXTREME")]

    (found,) = compute(store, Thresholds(), watch=watched)
    evidence = found.evidence
    assert found.detection_id == "D-811292-202307-SEVERE" and found.rule == "exposure+policy"
    assert evidence["watchlist_step"] == {"from": "MODERATE", "steps": 1}
    assert evidence["watchlist"]["version"] == 1
    assert evidence["watchlist"]["pair"] == {
        "hs_code": "811292",
        "country": "CN",
        "reason": "SUPPLY_CONCENTRATION",
    }
    assert evidence["policy_event"]["reported_by"] == ["JP"]
    words = explain(evidence)
    assert "reported by JP" in words and "811292:CN is on it" in words
    assert "MODERATE raised 1 step(s) to SEVERE" in words


def test_no_step_for_the_nodes_own_move_or_its_own_report(tmp_path: Path) -> None:
    watched = WatchView.from_current(current("811292:CN"))
    own_report = _flows(tmp_path / "a", partners=MODERATE_PARTNERS)
    _take(own_report, report(ME, "KR-1"))
    assert _severities(own_report, watched) == [("2023-07", "MODERATE")]
    entered = _flows(tmp_path / "b", partners=MODERATE_PARTNERS)
    ingest_file(
        entered,
        write_csv(
            tmp_path / "events.csv",
            EVENT_HEADER,
            ["CN,811292,EXPORT_LICENSING,2023-07-03,2023-08-01,ANNOUNCED"],
        ),
    )
    assert _severities(entered, watched) == [("2023-07", "MODERATE")]
    (found,) = compute(entered, Thresholds(), watch=watched)
    assert found.evidence["watchlist_step"] is None and found.evidence["policy_event"]["reported_by"] == []
    # A peer reporting the move the node entered itself: the same event, now a peer's report too.
    _take(entered, report())
    assert _severities(entered, watched) == [("2023-07", "SEVERE")]


def test_a_detection_without_a_policy_trigger_is_flagged_not_stepped(tmp_path: Path) -> None:
    store = _flows(tmp_path, shock_from="2023-08")
    watched = WatchView.from_current(current("811292:CN"))
    (drop,) = compute(store, Thresholds(), watch=watched)
    assert (drop.severity, drop.category) == ("SEVERE", "SUPPLY_DROP")
    assert drop.evidence["watchlist_step"] is None and drop.evidence["watchlist"]["pair"] is not None
    assert watch_flag(watched, drop.hs_code, drop.partner)["watchlist"] is True
    assert watch_flag(WatchView.from_current(current("282590:CN")), drop.hs_code, drop.partner) == {
        "watchlist": False,
        "watchlist_version": 1,
        "watch_pair": None,
    }


def test_the_step_counts_in_the_escalation(tmp_path: Path) -> None:
    """July: SEVERE by the table (CR1 >= 0.8), stepped to EXTREME; August's collapse is EXTREME by the
    table too: one run at one severity, one detection."""
    store = _flows(tmp_path, shock_from="2023-08")
    _take(store, report())
    assert _severities(store, WatchView()) == [("2023-07", "SEVERE"), ("2023-08", "EXTREME")]
    assert _severities(store, WatchView.from_current(current("811292:CN"))) == [("2023-07", "EXTREME")]


@pytest.mark.parametrize("steps", range(limits.MAX_WATCHLIST_SEVERITY_STEPS + 1))
@pytest.mark.parametrize("base", ["MODERATE", "SEVERE"])
def test_the_engine_steps_as_node_trilateral_does(tmp_path: Path, base: str, steps: int) -> None:
    partners = MODERATE_PARTNERS if base == "MODERATE" else None
    store = _flows(tmp_path, partners=partners)
    _take(store, report())
    watched = WatchView.from_current(current("811292:CN"))
    assert _severities(store, watched, watchlist_steps=steps) == [("2023-07", stepped(base, steps))]


def test_the_engine_and_node_trilateral_name_severities_alike() -> None:
    assert RULE_LEVELS[1:] == SEVERITIES


codes = st.sampled_from(["8112", "811292", "811299", "2825", "282590", "282560", "250410"])
countries = st.sampled_from(["CN", "VN", "ZA", "CD"])


@given(
    pairs=st.lists(st.tuples(codes, countries), unique=True, max_size=6),
    code=st.sampled_from(["811292", "811299", "282590", "282560", "250410", "250490"]),
    country=countries,
)
def test_watched_is_node_trilaterals_watched(pairs: list[tuple[str, str]], code: str, country: str) -> None:
    ordered = sorted(pairs)
    view = WatchView.from_current(current(*(f"{h}:{c}" for h, c in ordered)))
    watchlist = Watchlist(
        version=1,
        pairs=tuple(WatchPair(hs_code=h, country=c, reason="SUPPLY_CONCENTRATION") for h, c in ordered),
    )
    ours, theirs = view.watched(code, country), watchlist.watched(code, country)
    assert (ours is None) == (theirs is None)
    if ours is not None and theirs is not None:
        assert (ours.hs_code, ours.country) == (theirs.hs_code, theirs.country)


# ---------------------------------------------------------------- the watchlist kept in the store
def test_the_store_keeps_each_version_the_node_gave_and_explain_uses_the_detections(tmp_path: Path) -> None:
    store = _flows(tmp_path, partners=MODERATE_PARTNERS)
    _take(store, report())
    assert stored_watchlist(store) == WatchView()
    first = keep_watchlist(store, WatchView.from_current(current("811292:CN")))
    assert first.seen_at is not None and stored_watchlist(store) == first
    # The scan with no watchlist given uses the one the store holds (a scan while the node is down).
    result = scan(store, Thresholds())
    assert [d.detection_id for d in result.detections] == ["D-811292-202307-SEVERE"]
    assert result.to_json()["detections"][0]["watchlist"] is True
    # Version 2 drops the pair: the next scan finds MODERATE; the SEVERE one is replayed with version 1.
    keep_watchlist(store, WatchView.from_current(current("282590:CN", version=2)))
    assert stored_watchlist(store).version == 2
    assert [d.severity for d in scan(store, Thresholds()).detections] == ["MODERATE"]
    evidence = store.rows("SELECT evidence FROM detections WHERE severity = 'SEVERE'")[0]["evidence"]
    assert '"version": 1' in evidence
    replay = watchlist_by_digest(store, current(version=1)["digest"])
    assert replay.version == 1 and [p.key for p in replay.pairs] == ["811292:CN"]
    assert watchlist_by_digest(store, None) == WatchView() == watchlist_by_digest(store, "ab" * 32)


def test_a_watchlist_not_in_the_nodes_shape_is_refused() -> None:
    with pytest.raises(RefusedOperation, match="HS code"):
        WatchView.from_current(current("8112920010:CN"))
    with pytest.raises(RefusedOperation, match="country"):
        WatchView.from_current(current("811292:cn';--"))
    with pytest.raises(RefusedOperation, match="digest"):
        WatchView.from_current({**current("811292:CN"), "digest": None})
    assert WatchView.from_current({"version": 0, "digest": None, "pairs": []}) == WatchView()


# ---------------------------------------------------------------- settings and schema
def test_watchlist_steps_is_configured_within_its_bounds(tmp_path: Path) -> None:
    assert Thresholds().watchlist_steps == limits.WATCHLIST_SEVERITY_STEPS
    assert "watchlist_steps" in Thresholds().to_json()  # kept in every detection's evidence
    init_federation(tmp_path / "fed")
    path = tmp_path / "fed" / "KR" / "node.toml"
    document = tomllib.loads(path.read_text())
    for steps, fits in ((0, True), (limits.MAX_WATCHLIST_SEVERITY_STEPS, True), (4, False), (-1, False)):
        document["ews"] = {"watchlist_steps": steps}
        path.write_text(tomli_w.dumps(document))
        if fits:
            assert NodeConfig.load(path).ews.watchlist_steps == steps
        else:
            with pytest.raises(ConfigError, match=r"ews\.watchlist_steps"):
                NodeConfig.load(path)


def test_a_schema_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    store = _flows(tmp_path)
    flows = store.count("flows")
    store.db.execute("DROP TABLE event_reports")
    store.db.execute("DROP TABLE watchlists")
    store.db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store.close()
    with EwsStore.open(folder) as again:
        assert again.schema_version() == SCHEMA_VERSION == 2
        assert again.count("flows") == flows and again.count("event_reports") == 0
        assert stored_watchlist(again) == WatchView()
    raw = duckdb.connect(str(folder / EWS_FILE))
    raw.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    raw.close()
    with pytest.raises(StoreError, match="schema 3"):
        EwsStore.open(folder)
