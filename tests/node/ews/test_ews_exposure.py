"""A peer alert against this node's own data: share, HHI and trend per code, in figures and bands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.ews import bands
from node.ews.exposure import ExposureWorker, local_exposure, no_data_exposure
from node.ews.ingest import ingest_file
from node.ews.store import EWS_FILE, EwsStore
from tests.support.ews_factories import FLOW_HEADER, flow_rows, open_store, write_csv


def test_share_hhi_and_trend_over_the_trailing_months(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    rows = flow_rows(
        hs_code="250410", partners={"CN": 6000.0, "MZ": 3000.0, "BR": 1000.0}, shock_from="2024-10"
    )
    ingest_file(store, write_csv(tmp_path / "f.csv", FLOW_HEADER, rows))
    found = local_exposure(store, hs_codes=["2504", "811292"], sources=["CN"])
    (item,) = found["items"]
    assert item["hs_code"] == "2504" and item["lines"] == ["250410"]
    assert item["window"] == {"first": "2024-01", "last": "2024-12"}
    assert 0.3 < item["share"] < 0.6 and item["share_band"] == "FROM_30_TO_60"
    assert item["hhi_band"] == "HIGH" and item["top_partner"] == "CN"
    assert item["trend"] == "FALLING" and item["trend_change"] < -0.5  # CN fell 90% in the last 3 months
    assert found["no_data"] == ["811292"]
    assert found["share_band"] == "FROM_30_TO_60" and found["hhi_band"] == "HIGH"
    none = local_exposure(store, hs_codes=["250410"], sources=["US"])
    assert none["items"][0]["share"] == 0 and none["items"][0]["share_band"] == "BELOW_10"
    store.close()


def test_bands_cut_where_documented() -> None:
    assert [bands.share_band(x) for x in (0.0, 0.0999, 0.1, 0.3, 0.6, 1.0)] == [
        "BELOW_10",
        "BELOW_10",
        "FROM_10_TO_30",
        "FROM_30_TO_60",
        "ABOVE_60",
        "ABOVE_60",
    ]
    assert [bands.hhi_band(x) for x in (0.1, 0.15, 0.25)] == ["LOW", "MODERATE", "HIGH"]
    assert [bands.trend_band(x) for x in (None, -0.2, 0.0, 0.2)] == ["NO_DATA", "FALLING", "STABLE", "RISING"]
    assert bands.exposure_summary(None) == "exposure pending"


def test_a_node_without_trade_data_finds_none_without_opening_duckdb(tmp_path: Path) -> None:
    # The shortcut (docs/performance.md: 138 ms of CPU per peer alert to find nothing)
    # must give what the queries give on an empty store, for every code kind.
    codes = ["811292", "2504", "811292", "12345", "８１１２９２", "28"]
    now = datetime(2026, 12, 4, tzinfo=UTC)
    empty = EwsStore.in_memory()
    try:
        queried = local_exposure(empty, hs_codes=codes, sources=["CN", "RU"], now=now)
    finally:
        empty.close()
    assert queried["no_data"] == ["811292", "2504"] and queried["items"] == []
    assert no_data_exposure(hs_codes=codes, sources=["CN", "RU"], now=now) == queried

    data_dir = tmp_path / "data"
    worker = _worker(data_dir, lookup=_never, record=_never, unchecked=_never, everything=_never)
    found = worker._compute({("US", "US-1"): (codes, ["CN"])})
    assert found[("US", "US-1")]["no_data"] == ["811292", "2504"]
    assert not (data_dir / EWS_FILE).exists()  # nothing opened, nothing created


def _worker(data_dir: Path, **parts: Any) -> ExposureWorker:
    """A worker of KR over an empty data folder, checking 12 months, with the given
    lookup, record, unchecked and everything (and max_queued, if given)."""
    data_dir.mkdir()
    return ExposureWorker(data_dir=data_dir, months=12, node="KR", **parts)


async def _never(*_args: object) -> Any:
    raise AssertionError("not called by _compute")


def test_the_worker_holds_a_bounded_queue_and_sweeps_the_store_for_the_rest(tmp_path: Path) -> None:
    # 2,500 peer alerts stored, 40 of them before the start; the queue holds at most 100:
    # every one is checked once, from the queue or by the sweeps, and a recheck checks all again.
    stored: list[tuple[str, str, int]] = []
    checked: list[tuple[str, str]] = []
    queued_most = 0

    async def page(after: int, limit: int, *, unchecked_only: bool) -> list[tuple[str, str, int]]:
        done = set(checked)
        return [r for r in stored if r[2] > after and not (unchecked_only and r[:2] in done)][:limit]

    async def scope(alerts: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
        return {key: (["811292"], ["CN"]) for key in alerts}

    async def record(exposures: list[tuple[str, str, str]]) -> None:
        checked.extend((origin, alert_id) for origin, alert_id, _ in exposures)

    worker = _worker(
        tmp_path / "data",
        lookup=scope,
        record=record,
        unchecked=lambda a, n: page(a, n, unchecked_only=True),
        everything=lambda a, n: page(a, n, unchecked_only=False),
        max_queued=100,
    )

    async def scenario() -> None:
        nonlocal queued_most
        stored.extend(("US", f"US-{i}", i) for i in range(40))  # before the start
        task = asyncio.create_task(worker.run())
        for i in range(40, 2500):
            stored.append(("US", f"US-{i}", i))
            worker.submit("US", f"US-{i}")
            queued_most = max(queued_most, worker._queue.qsize())
            if i % 500 == 0:
                await asyncio.sleep(0)
        for _ in range(500):
            if len(set(checked)) == 2500 and worker._queue.empty():
                break
            await asyncio.sleep(0.01)
        assert sorted(set(checked)) == sorted(r[:2] for r in stored)
        first_round = len(checked)
        assert first_round < 2500 + 200  # a few checked twice (queued and swept), not all
        await asyncio.sleep(0.05)
        settled = len(checked)
        worker.recheck_all()
        for _ in range(500):
            if len(checked) >= settled + 2500:
                break
            await asyncio.sleep(0.01)
        assert len(checked) == settled + 2500
        assert sorted(checked[settled:]) == sorted(r[:2] for r in stored)
        task.cancel()
        await asyncio.wait([task])

    asyncio.run(scenario())
    assert queued_most <= 100


def test_an_alert_s_scope_is_read_from_its_stored_bytes_as_the_model_decodes_them(tmp_path: Path) -> None:
    # alert_scope reads codes and source countries from the protobuf without validating the
    # stored envelope again; it must give what the validated model gives, and None without info.
    from node.pki import init_federation
    from tests.support.audit_factories import ThreeNodes
    from tests.support.factories import alert_info

    init_federation(tmp_path)
    info = alert_info(
        items=[{"hs_code": c, "hs_edition": "HS2022"} for c in ("811292", "2504", "282590")],
        source_countries=["CN", "RU"],
    )
    with ThreeNodes(tmp_path) as nodes:
        told: list[tuple[str, str, tuple[list[str], list[str]]]] = []
        nodes.svc["US"].on_peer_alerts = told.extend
        nodes.publish("KR", msg_type="ALERT", info=info, alert_id="KR-SCOPE")
        nodes.deliver("KR", "US")
        nodes.publish(
            "US", msg_type="ACK", reference=("KR", "KR-SCOPE"), reason="RECEIVED", alert_id="US-ACK"
        )
        nodes.deliver("US", "KR")
        us, kr = nodes.svc["US"], nodes.svc["KR"]
        stored = us.store.alert("KR", "KR-SCOPE")
        assert stored is not None
        model = us.ctx.decode(stored).info
        assert model is not None
        assert us.views.alert_scope("KR", "KR-SCOPE") == (
            [i.hs_code for i in model.items],
            list(model.source_countries),
        )
        assert us.views.alert_scope("KR", "KR-SCOPE") == (["811292", "2504", "282590"], ["CN", "RU"])
        # the receiving node hands the exposure worker the same scope, from the model it decoded
        assert told == [("KR", "KR-SCOPE", us.views.alert_scope("KR", "KR-SCOPE"))]
        assert kr.views.alert_scope("US", "US-ACK") is None  # an ACK has no info block
        assert us.alert_scopes([("KR", "KR-SCOPE"), ("KR", "KR-NONE")]) == {
            ("KR", "KR-SCOPE"): (["811292", "2504", "282590"], ["CN", "RU"])
        }


def test_an_alert_queued_with_its_scope_is_not_looked_up_one_swept_is(tmp_path: Path) -> None:
    looked_up: list[list[tuple[str, str]]] = []
    recorded: list[str] = []
    swept = [("US", "US-OLD", 0)]

    async def lookup(alerts: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
        looked_up.append(alerts)
        return {key: (["811292"], ["CN"]) for key in alerts}

    async def record(exposures: list[tuple[str, str, str]]) -> None:
        recorded.extend(alert_id for _, alert_id, _ in exposures)

    async def unchecked(after: int, limit: int) -> list[tuple[str, str, int]]:
        return [r for r in swept if r[2] > after and r[1] not in recorded][:limit]

    worker = _worker(
        tmp_path / "data", lookup=lookup, record=record, unchecked=unchecked, everything=unchecked
    )

    async def scenario() -> None:
        task = asyncio.create_task(worker.run())
        for _ in range(200):  # the start's sweep: looked up
            if "US-OLD" in recorded:
                break
            await asyncio.sleep(0.01)
        worker.submit("US", "US-1", (["811292", "2504"], ["CN", "RU"]))
        worker.submit("US", "US-2", (["2504"], ["RU"]))
        worker.submit("US", "US-3")  # a caller without the scope: looked up
        for _ in range(200):
            if len(recorded) == 4:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.wait([task])

    asyncio.run(scenario())
    assert sorted(recorded) == ["US-1", "US-2", "US-3", "US-OLD"]
    assert looked_up == [[("US", "US-OLD")], [("US", "US-3")]]


def test_a_batch_logs_an_event_for_each_exposed_alert_and_one_for_the_batch(tmp_path: Path) -> None:
    """Not a line an alert that this node does not import: a catch-up of 100,000 wrote 100,000."""
    import structlog

    from tests.support.factories import wait_for

    store = open_store(tmp_path / "data")
    ingest_file(
        store, write_csv(tmp_path / "f.csv", FLOW_HEADER, flow_rows(hs_code="250410", partners={"CN": 1.0}))
    )
    store.close()
    recorded: list[str] = []

    async def record(exposures: list[tuple[str, str, str]]) -> None:
        recorded.extend(alert_id for _, alert_id, _ in exposures)

    async def nothing(after: int, limit: int) -> list[tuple[str, str, int]]:
        return []

    worker = ExposureWorker(
        data_dir=tmp_path / "data",
        months=12,
        node="KR",
        lookup=_never,
        record=record,
        unchecked=nothing,
        everything=nothing,
    )

    async def scenario() -> None:
        task = asyncio.create_task(worker.run())
        worker.submit_many([("US", "US-1", (["2504"], ["CN"])), ("US", "US-2", (["811292"], ["CN"]))])
        await wait_for(lambda: len(recorded) == 2)  # its events are logged in the same turn
        task.cancel()
        await asyncio.wait([task])

    with structlog.testing.capture_logs() as logs:
        asyncio.run(scenario())
    assert sorted(recorded) == ["US-1", "US-2"]
    assert [e["alert_id"] for e in logs if e["event"] == "exposure_checked"] == ["US-1"]
    (batch,) = [e for e in logs if e["event"] == "exposures_checked"]
    assert (batch["alerts"], batch["exposed"], batch["node"]) == (2, 1, "KR")
