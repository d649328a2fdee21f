"""Running the indicators and the rules on a store, and keeping what they found.

A scan computes every indicator of every code and month in one pass of SQL
(node/ews/indicators.py), finds the escalation months (node/ews/rules.py)
and stores each new detection as a draft. A detection found again by a later
scan keeps its review state; its id is stable (code, month, severity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from node.errors import RefusedOperation, StoreError
from node.ews.codes import DetectionState
from node.ews.indicators import INDICATOR_COLUMNS, indicator_sql
from node.ews.rules import FIRED_COLUMNS, Detection, detections_from, fired_sql
from node.ews.store import EwsStore
from node.ews.thresholds import SEVERITY_ORDER, Thresholds


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan found."""

    data_version: int
    codes: int
    months: int
    detections: list[Detection]
    new: list[str]
    states: dict[str, str]
    indicators: list[dict[str, Any]] = field(default_factory=list)
    period: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Machine output of `ewx ews scan --json`."""
        return {
            "data_version": self.data_version,
            "codes": self.codes,
            "months": self.months,
            "period": self.period,
            "detections": [
                {**d.to_json(), "state": self.states.get(d.detection_id), "new": d.detection_id in self.new}
                for d in self.detections
            ],
            "indicators": self.indicators,
        }


def compute(store: EwsStore, thresholds: Thresholds, *, hs_codes: list[str] | None = None) -> list[Detection]:
    """Indicators and rules over the store's data; nothing is written to its tables."""
    db = store.db
    try:
        for statement in indicator_sql(thresholds, hs_codes=hs_codes):
            db.execute(statement)
        db.execute(fired_sql(thresholds))
        rows = _dicts(db, f"SELECT {', '.join(FIRED_COLUMNS)} FROM _ews_fired")
        store.drop_work(keep=("_ews_indicators", "_ews_fired"))
    except duckdb.OutOfMemoryException as exc:
        raise RefusedOperation(f"the scan ran out of memory: {exc}") from None
    except duckdb.Error as exc:
        raise StoreError(f"the scan failed: {exc}") from None
    return detections_from(rows, thresholds, data_version=store.data_version())


def scan(
    store: EwsStore, thresholds: Thresholds, *, period: str | None = None, now: datetime | None = None
) -> ScanResult:
    """Compute, then store each new detection as a draft (one transaction)."""
    found = compute(store, thresholds)
    db = store.db
    codes, months = db.execute(
        "SELECT count(DISTINCT hs_code), count(*) FROM _ews_indicators"
    ).fetchone() or (0, 0)
    if period is not None:
        found = [d for d in found if d.period == period]
    at = (now or datetime.now(UTC)).isoformat()
    with store.transaction():
        known = dict(db.execute("SELECT detection_id, state FROM detections").fetchall())
        new = [d for d in found if d.detection_id not in known]
        for d in new:
            db.execute(
                "INSERT INTO detections (detection_id, hs_code, period, partner, rule, severity, category, state, "
                "evidence, data_version, found_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    d.detection_id,
                    d.hs_code,
                    d.period,
                    d.partner,
                    d.rule,
                    d.severity,
                    d.category,
                    DetectionState.DRAFT.value,
                    json.dumps(d.evidence, sort_keys=True),
                    d.evidence["data_version"],
                    at,
                ],
            )
            known[d.detection_id] = DetectionState.DRAFT.value
    indicators = []
    if period is not None:
        indicators = _dicts(
            db,
            f"SELECT {', '.join(INDICATOR_COLUMNS)} FROM _ews_indicators WHERE period = ? ORDER BY hs_code",
            [period],
        )
    return ScanResult(
        data_version=store.data_version(),
        codes=int(codes),
        months=int(months),
        detections=found,
        new=[d.detection_id for d in new],
        states={d.detection_id: known[d.detection_id] for d in found},
        indicators=[{k: _json_value(v) for k, v in row.items()} for row in indicators],
        period=period,
    )


def should_auto_publish(detection: Detection, thresholds: Thresholds) -> bool:
    """At or above the configured auto-publish severity."""
    if thresholds.auto_publish is None:
        return False
    return SEVERITY_ORDER[detection.severity] >= SEVERITY_ORDER[thresholds.auto_publish]


def _dicts(db: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params or [])
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _json_value(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float):
        return None if value != value else round(value, 6)  # noqa: PLR0124 - NaN test
    return value
