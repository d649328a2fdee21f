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
from node.ews.watch import WatchView, stored_watchlist


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
    watchlist: WatchView = field(default_factory=WatchView)
    """The watchlist in force the scan used (its pairs flag the detections; node/ews/watch.py)."""

    def to_json(self) -> dict[str, Any]:
        """Machine output of `ewx ews scan --json`."""
        return {
            "data_version": self.data_version,
            "codes": self.codes,
            "months": self.months,
            "period": self.period,
            "watchlist": self.watchlist.to_json(),
            "detections": [
                {
                    **d.to_json(),
                    "state": self.states.get(d.detection_id),
                    "new": d.detection_id in self.new,
                    **watch_flag(self.watchlist, d.hs_code, d.partner),
                }
                for d in self.detections
            ],
            "indicators": self.indicators,
        }


def watch_flag(watch: WatchView, hs_code: str, partner: str) -> dict[str, Any]:
    """Whether (hs_code, partner) is on the watchlist in force, as scan and review print it."""
    pair = watch.watched(hs_code, partner)
    return {
        "watchlist": pair is not None,
        "watchlist_version": watch.version,
        "watch_pair": None if pair is None else pair.to_json(),
    }


def compute(
    store: EwsStore,
    thresholds: Thresholds,
    *,
    hs_codes: list[str] | None = None,
    watch: WatchView | None = None,
) -> list[Detection]:
    """Indicators and rules over the store's data; nothing is written to its tables.

    `watch` is the watchlist in force (default: the one the store last kept,
    node/ews/watch.py); `ewx ews explain` gives the one a detection was found with.
    """
    db = store.db
    watch = stored_watchlist(store) if watch is None else watch
    try:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _ews_watch (hs_code VARCHAR NOT NULL, country VARCHAR NOT NULL)"
        )
        if watch.pairs:
            db.executemany(
                "INSERT INTO _ews_watch VALUES (?, ?)", [[p.hs_code, p.country] for p in watch.pairs]
            )
        for statement in indicator_sql(thresholds, hs_codes=hs_codes):
            db.execute(statement)
        db.execute(fired_sql(thresholds))
        rows = _dicts(db, f"SELECT {', '.join(FIRED_COLUMNS)} FROM _ews_fired")
        store.drop_work(keep=("_ews_indicators", "_ews_fired"))
    except duckdb.OutOfMemoryException as exc:
        raise RefusedOperation(f"the scan ran out of memory: {exc}") from None
    except duckdb.Error as exc:
        raise StoreError(f"the scan failed: {exc}") from None
    return detections_from(rows, thresholds, data_version=store.data_version(), watch=watch)


def scan(
    store: EwsStore,
    thresholds: Thresholds,
    *,
    period: str | None = None,
    now: datetime | None = None,
    watch: WatchView | None = None,
) -> ScanResult:
    """Compute, then store each new detection as a draft (one transaction).

    `watch`: the watchlist in force (default: the one the store last kept).
    """
    watch = stored_watchlist(store) if watch is None else watch
    found = compute(store, thresholds, watch=watch)
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
        watchlist=watch,
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
