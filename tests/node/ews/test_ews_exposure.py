"""A peer alert against this node's own data: share, HHI and trend per code, in figures and bands."""

from __future__ import annotations

from pathlib import Path

from node.ews import bands
from node.ews.exposure import local_exposure
from node.ews.ingest import ingest_file
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
