"""A peer alert against this node's own data: share, HHI and trend per code, in figures and bands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
    data_dir.mkdir()
    worker = ExposureWorker(data_dir=data_dir, months=12, lookup=_never, record=_never, node="KR")
    found = worker._compute({("US", "US-1"): (codes, ["CN"])})
    assert found[("US", "US-1")]["no_data"] == ["811292", "2504"]
    assert not (data_dir / EWS_FILE).exists()  # nothing opened, nothing created


async def _never(*_args: object) -> None:
    raise AssertionError("not called by _compute")
