"""Indicators and rules on series of a known shape: what fires, when, how severely, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.ews.drafts import draft_info
from node.ews.ingest import ingest_file
from node.ews.rules import explain
from node.ews.scan import compute, scan
from node.ews.store import EwsStore
from node.ews.thresholds import Thresholds
from tests.support.ews_factories import (
    EVENT_HEADER,
    FLOW_HEADER,
    flow_rows,
    gallium_event,
    open_store,
    write_csv,
)


def _store(tmp_path: Path, rows: list[str], events: list[str] | None = None) -> EwsStore:
    store = open_store(tmp_path / "data")
    ingest_file(store, write_csv(tmp_path / "flows.csv", FLOW_HEADER, rows))
    if events:
        ingest_file(store, write_csv(tmp_path / "events.csv", EVENT_HEADER, events))
    return store


def test_policy_move_then_collapse_fires_in_those_months_and_not_before(tmp_path: Path) -> None:
    store = _store(tmp_path, flow_rows(shock_from="2023-08"), [gallium_event()])
    found = {d.period: d for d in compute(store, Thresholds())}
    assert sorted(found) == ["2023-07", "2023-08"]
    july, august = found["2023-07"], found["2023-08"]
    assert (july.severity, july.rule, july.category) == ("SEVERE", "exposure+policy", "EXPORT_CONTROL")
    assert (august.severity, august.rule) == ("EXTREME", "exposure+policy+volume_drop")
    assert august.partner == "CN"
    evidence = august.evidence
    assert evidence["window"] == {"first": "2022-08", "last": "2023-07", "months": 12, "history": 31}
    assert evidence["exposure"]["base_cr1"] > 0.8 and evidence["exposure"]["by"] == ["cr1", "hhi"]
    assert evidence["values"]["z_partner"] < -3.5 and evidence["values"]["partner_yoy"] < -0.5
    assert evidence["policy_event"]["days_since_announced"] == 59
    assert evidence["thresholds"] == Thresholds().to_json()


def test_a_collapse_without_a_policy_move_is_severe(tmp_path: Path) -> None:
    store = _store(tmp_path, flow_rows(shock_from="2023-08"))
    (only,) = compute(store, Thresholds())
    assert (only.period, only.severity, only.category) == ("2023-08", "SEVERE", "SUPPLY_DROP")


def test_a_diversified_code_stays_quiet_whatever_happens(tmp_path: Path) -> None:
    spread = {"CN": 1000.0, "VN": 1000.0, "QA": 900.0, "SA": 800.0, "ID": 700.0}
    store = _store(
        tmp_path, flow_rows(partners=spread, shock_from="2023-08", shock_factor=0.5), [gallium_event()]
    )
    assert compute(store, Thresholds()) == []


def test_noise_alone_never_fires(tmp_path: Path) -> None:
    store = _store(tmp_path, flow_rows(seed=11))
    assert compute(store, Thresholds()) == []


def test_changed_thresholds_change_the_outcome(tmp_path: Path) -> None:
    store = _store(tmp_path, flow_rows(shock_from="2023-08"), [gallium_event()])
    assert compute(store, Thresholds(cr1=0.95, hhi=0.9, cr1_critical=0.95)) == []  # not exposed
    no_policy = compute(store, Thresholds(policy_days=0))
    assert [(d.period, d.severity) for d in no_policy] == [("2023-08", "SEVERE")]
    moderate = compute(store, Thresholds(cr1_critical=0.99))
    assert [(d.period, d.severity) for d in moderate] == [("2023-07", "MODERATE"), ("2023-08", "EXTREME")]
    assert [d.period for d in compute(store, Thresholds(volume_z=50.0))] == ["2023-07"]


def test_a_flat_series_does_not_divide_by_zero(tmp_path: Path) -> None:
    rows = flow_rows(noise=0.0, shock_from="2024-06")
    store = _store(tmp_path, rows)
    (only,) = compute(store, Thresholds())
    assert only.period == "2024-06" and only.evidence["values"]["partner_mad"] == 0


def test_a_month_with_no_row_counts_as_zero_imports(tmp_path: Path) -> None:
    rows = [r for r in flow_rows() if not (r.startswith("2024-0") and ",CN," in r)]  # CN stops in 2024
    store = _store(tmp_path, rows)
    (only,) = compute(store, Thresholds())
    assert only.period == "2024-01" and only.evidence["values"]["partner_quantity"] == 0


def test_scan_keeps_drafts_once_and_their_state(tmp_path: Path) -> None:
    store = _store(tmp_path, flow_rows(shock_from="2023-08"), [gallium_event()])
    first = scan(store, Thresholds())
    assert len(first.new) == 2 and set(first.states.values()) == {"draft"}
    store.db.execute("UPDATE detections SET state = 'dismissed' WHERE period = '2023-07'")
    again = scan(store, Thresholds())
    assert again.new == [] and again.states[first.detections[0].detection_id] == "dismissed"
    assert store.count("detections") == 2
    one = scan(store, Thresholds(), period="2023-08")
    assert [d.period for d in one.detections] == ["2023-08"] and len(one.indicators) == 1


def test_explain_says_why_with_the_figures_and_thresholds(tmp_path: Path) -> None:
    store = _store(tmp_path, flow_rows(shock_from="2023-08"), [gallium_event()])
    august = next(d for d in compute(store, Thresholds()) if d.period == "2023-08")
    text = explain(august.evidence)
    assert "EXTREME by rule exposure+policy+volume_drop" in text
    assert "CN held" in text and "CR1 threshold 50%" in text
    assert "robust z" in text and "(threshold -3.5)" in text
    assert "CN EXPORT_LICENSING announced 2023-07-03" in text


@pytest.mark.parametrize("period", ["2023-07", "2023-08"])
def test_a_draft_carries_bands_and_codes_never_figures(tmp_path: Path, period: str) -> None:
    store = _store(tmp_path, flow_rows(shock_from="2023-08"), [gallium_event()])
    detection = next(d for d in compute(store, Thresholds()) if d.period == period)
    from datetime import UTC, datetime

    info = draft_info([detection], me="KR", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert info["source_countries"] == ["CN"] and info["items"] == [
        {"hs_code": "811292", "hs_edition": "HS2022"}
    ]
    assert info["supply_impact"] == "ABOVE_60"  # 84% of imports at risk; in August 84% x a 90% fall
    assert info["severity"] == detection.severity
    figures = {str(v) for v in detection.evidence["values"].values() if isinstance(v, float)}
    assert not any(f in str(info) for f in figures if len(f) > 3)


def test_a_price_shock_on_an_exposed_code_is_moderate(tmp_path: Path) -> None:
    rows = flow_rows()
    shocked = []
    for row in rows:
        period, hs, partner, value, quantity, unit = row.split(",")
        if period >= "2024-03":
            value = f"{float(value) * 1.8:.0f}"
        shocked.append(",".join([period, hs, partner, value, quantity, unit]))
    store = _store(tmp_path, shocked)
    (only,) = compute(store, Thresholds())
    assert (only.period, only.severity, only.category) == ("2024-03", "MODERATE", "PRICE_SHOCK")
    assert compute(store, Thresholds(unit_value_rise=1.0)) == []
