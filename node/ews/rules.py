"""The rules: exposure combined with a trigger gives a severity (SPEC section 7).

Exposure (over the trailing baseline, so that a collapse does not hide it):
the baseline top partner holds at least `cr1` of import value, or the
baseline HHI is at least `hhi`. Triggers: a policy move on the code by that
partner, announced at most `policy_days` before the month's end and not
lifted; a volume drop (the partner's or the total quantity at a robust z of
`-volume_z` or below, and at least `yoy_drop` below a year earlier); a price
shock (unit value at a robust z of `unit_value_z` or above and at least
`unit_value_rise` above its baseline median). Anomalies count
once a code has `min_history` months of history.

| exposure and ...                | severity |
|---------------------------------|----------|
| policy move and volume drop     | EXTREME  |
| volume drop                     | SEVERE   |
| policy move and price shock     | SEVERE   |
| policy move, CR1 >= cr1_critical | SEVERE  |
| policy move                     | MODERATE |
| price shock                     | MODERATE |

No exposure, no detection: an anomaly on a diversified code is not an
early warning of a supply risk.

The watchlist step (issue 12): when the policy move that triggers a
detection is named by a peer's policy report (node/ews/reports.py) and the
watchlist in force watches the code from that partner (a 6-digit pair, or
its 4-digit heading; the temp table `_ews_watch`, node/ews/watch.py), the
severity is `watchlist_steps` (default 1) above the table's, at most EXTREME
(node.trilateral.stepped; tests/node/ews/test_ews_watch.py checks the two agree).

A detection is the first month a code fires at a severity (after the step)
above the month before (a run of months at one severity is one detection;
an escalation is a new one).

`fired_sql` is the vectorized test of every month (it reads `_ews_indicators`
and `_ews_watch`); `detections_from` turns the (few) escalation rows into
Detections with their evidence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from node.ews.indicators import INDICATOR_COLUMNS
from node.ews.thresholds import Thresholds
from node.ews.watch import WatchView

SEVERITIES: Final = ("NONE", "MINOR", "MODERATE", "SEVERE", "EXTREME")
"""Index = the level the SQL computes."""


def fired_sql(t: Thresholds) -> str:
    """The statement filling `_ews_fired`: every escalation month, with its triggers and level."""
    return f"""
    CREATE OR REPLACE TEMP TABLE _ews_fired AS
    WITH tested AS (
        SELECT i.*,
               coalesce(history >= {t.min_history} AND (base_cr1 >= {t.cr1} OR base_hhi >= {t.hhi}), false)
                   AS exposed,
               coalesce(event_id IS NOT NULL AND event_country = base_partner
                        AND days_since_event <= {t.policy_days}, false) AS policy,
               coalesce(history >= {t.min_history}
                        AND (z_partner <= -{t.volume_z} OR z_volume <= -{t.volume_z})
                        AND (coalesce(partner_yoy, -1) <= -{t.yoy_drop} OR coalesce(yoy, -1) <= -{t.yoy_drop}),
                        false) AS volume_drop,
               coalesce(history >= {t.min_history} AND z_unit_value >= {t.unit_value_z}
                        AND unit_value >= uv_median * (1 + {t.unit_value_rise}), false) AS price_shock
        FROM _ews_indicators i
    ),
    levelled AS (
        SELECT *, CASE
            WHEN exposed AND policy AND volume_drop THEN 4
            WHEN exposed AND volume_drop THEN 3
            WHEN exposed AND policy AND price_shock THEN 3
            WHEN exposed AND policy AND base_cr1 >= {t.cr1_critical} THEN 3
            WHEN exposed AND policy THEN 2
            WHEN exposed AND price_shock THEN 2
            ELSE 0 END AS rule_level
        FROM tested
    ),
    watch AS (  -- the first watchlist pair on the code (6 digits or its heading) from the partner
        SELECT l.hs_code, l.period, min(w.hs_code) AS watch_code
        FROM levelled l JOIN _ews_watch w
          ON w.country = l.base_partner AND (w.hs_code = l.hs_code OR w.hs_code = substr(l.hs_code, 1, 4))
        WHERE l.rule_level > 0
        GROUP BY l.hs_code, l.period
    ),
    stepped AS (
        SELECT l.*, w.watch_code, CASE
            WHEN l.rule_level > 0 AND l.policy AND l.event_reported_by IS NOT NULL AND w.watch_code IS NOT NULL
            THEN least(4, l.rule_level + {t.watchlist_steps})
            ELSE l.rule_level END AS level
        FROM levelled l LEFT JOIN watch w ON w.hs_code = l.hs_code AND w.period = l.period
    )
    SELECT * FROM (
        SELECT *, lag(level, 1, 0) OVER (PARTITION BY hs_code ORDER BY period) AS level_before FROM stepped
    ) WHERE level > level_before
    ORDER BY hs_code, period
    """


FIRED_COLUMNS: Final = (
    *INDICATOR_COLUMNS,
    "event_reported_by",
    "exposed",
    "policy",
    "volume_drop",
    "price_shock",
    "rule_level",
    "watch_code",
    "level",
)


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection: what fired where, and all it rests on."""

    detection_id: str
    hs_code: str
    period: str
    partner: str
    rule: str
    severity: str
    category: str
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """As `ewx ews scan --json` prints it."""
        return {
            "detection_id": self.detection_id,
            "hs_code": self.hs_code,
            "period": self.period,
            "partner": self.partner,
            "rule": self.rule,
            "severity": self.severity,
            "category": self.category,
            "evidence": self.evidence,
        }


def _plain(value: object) -> object:
    """A JSON-ready value: dates as ISO text, floats rounded, NaN as None."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    return value


def _window(period: str, months: int) -> tuple[str, str]:
    year, month = int(period[:4]), int(period[5:7])
    index = year * 12 + month - 1

    def text(i: int) -> str:
        return f"{i // 12:04d}-{i % 12 + 1:02d}"

    return text(index - months), text(index - 1)


def detection_id(hs_code: str, period: str, severity: str) -> str:
    """Stable across scans: the same finding on the same data is the same detection."""
    return f"D-{hs_code}-{period.replace('-', '')}-{severity}"


def detections_from(
    rows: list[dict[str, Any]], t: Thresholds, *, data_version: int, watch: WatchView | None = None
) -> list[Detection]:
    """Detections, with evidence, from `_ews_fired` rows; `watch` is the watchlist `_ews_watch` held."""
    watch = watch or WatchView()
    found = []
    for row in rows:
        severity = SEVERITIES[int(row["level"])]
        rule_severity = SEVERITIES[int(row["rule_level"])]
        reported_by = sorted(filter(None, (row.get("event_reported_by") or "").split(",")))
        pair = watch.watched(row["hs_code"], row["base_partner"]) if row["base_partner"] else None
        triggers = [name for name in ("policy", "volume_drop", "price_shock") if row[name]]
        rule = "exposure+" + "+".join(triggers)
        if row["policy"]:
            category = "EXPORT_CONTROL" if str(row["event_measure"]).startswith("EXPORT_") else "GEOPOLITICAL"
        elif row["volume_drop"]:
            category = "SUPPLY_DROP"
        else:
            category = "PRICE_SHOCK"
        first, last = _window(row["period"], t.history)
        values = {k: _plain(row[k]) for k in INDICATOR_COLUMNS}
        evidence = {
            "rule": rule,
            "severity": severity,
            "hs_code": row["hs_code"],
            "period": row["period"],
            "window": {"first": first, "last": last, "months": t.history, "history": row["history"]},
            "exposure": {
                "partner": row["base_partner"],
                "base_cr1": _plain(row["base_cr1"]),
                "base_hhi": _plain(row["base_hhi"]),
                "by": [
                    name
                    for name, holds in (
                        ("cr1", (row["base_cr1"] or 0) >= t.cr1),
                        ("hhi", (row["base_hhi"] or 0) >= t.hhi),
                    )
                    if holds
                ],
            },
            "triggers": triggers,
            "baseline": {
                k: values[k]
                for k in ("q_median", "q_mad", "uv_median", "uv_mad", "partner_median", "partner_mad")
            },
            "values": values,
            "policy_event": (
                {
                    "event_id": row["event_id"],
                    "country": row["event_country"],
                    "measure": row["event_measure"],
                    "announced": _plain(row["event_announced"]),
                    "effective": _plain(row["event_effective"]),
                    "stage": row["event_stage"],
                    "days_since_announced": row["days_since_event"],
                    "days_to_effective": row["days_to_effective"],
                    "reported_by": reported_by,
                }
                if row["policy"]
                else None
            ),
            "watchlist": {
                "version": watch.version,
                "digest": watch.digest,
                "pair": None if pair is None else pair.to_json(),
            },
            "watchlist_step": (
                {"from": rule_severity, "steps": int(row["level"]) - int(row["rule_level"])}
                if severity != rule_severity
                else None
            ),
            "thresholds": t.to_json(),
            "data_version": data_version,
        }
        found.append(
            Detection(
                detection_id=detection_id(row["hs_code"], row["period"], severity),
                hs_code=row["hs_code"],
                period=row["period"],
                partner=row["base_partner"],
                rule=rule,
                severity=severity,
                category=category,
                evidence=json.loads(json.dumps(evidence)),
            )
        )
    return found


def explain(evidence: dict[str, Any]) -> str:
    """The evidence in words: why this severity, from which figures against which thresholds."""
    t = evidence["thresholds"]
    v = evidence["values"]
    e = evidence["exposure"]
    w = evidence["window"]
    lines = [
        f"HS {evidence['hs_code']}, {evidence['period']}: {evidence['severity']} by rule {evidence['rule']}",
        f"  baseline {w['first']}..{w['last']} ({w['months']} months; {w['history']} months of history)",
    ]
    share = e["base_cr1"]
    hhi = e["base_hhi"]
    lines.append(
        f"  exposure: {e['partner']} held {_pct(share)} of import value (CR1 threshold {_pct(t['cr1'])}); "
        f"HHI {_num(hhi)} (threshold {t['hhi']}); exposed by {', '.join(e['by']) or 'nothing'}"
    )
    if "volume_drop" in evidence["triggers"]:
        lines.append(
            f"  volume drop: {e['partner']} quantity {_num(v['partner_quantity'])} against a median of "
            f"{_num(v['partner_median'])} (MAD {_num(v['partner_mad'])}): robust z {_num(v['z_partner'])}; "
            f"total z {_num(v['z_volume'])} (threshold -{t['volume_z']}); year on year "
            f"{_pct(v['partner_yoy'])} for {e['partner']}, {_pct(v['yoy'])} in total (threshold -{_pct(t['yoy_drop'])})"
        )
    if "price_shock" in evidence["triggers"]:
        lines.append(
            f"  price shock: unit value {_num(v['unit_value'])} against a median of {_num(v['uv_median'])}: "
            f"robust z {_num(v['z_unit_value'])} (threshold {t['unit_value_z']}, and a rise of at least "
            f"{_pct(t['unit_value_rise'])})"
        )
    event = evidence.get("policy_event")
    if event:
        lines.append(
            f"  policy move {event['event_id']}: {event['country']} {event['measure']} announced "
            f"{event['announced']}, effective {event['effective']} ({event['stage']}); "
            f"{event['days_since_announced']} days since its announcement at the month's end "
            f"(counts for {t['policy_days']} days)"
            + (f"; reported by {', '.join(event['reported_by'])}" if event.get("reported_by") else "")
        )
    watch = evidence.get("watchlist")
    if watch and watch["version"]:
        pair = watch["pair"]
        lines.append(
            f"  watchlist version {watch['version']}: "
            + (
                f"{pair['hs_code']}:{pair['country']} is on it ({pair['reason']})"
                if pair
                else f"{evidence['hs_code']} from {e['partner']} is not on it"
            )
        )
    step = evidence.get("watchlist_step")
    if step:
        lines.append(
            f"  {step['from']} raised {step['steps']} step(s) to {evidence['severity']}: the policy move is a "
            f"peer's report on a watchlist pair (watchlist_steps {t.get('watchlist_steps')})"
        )
    lines.append(
        f"  month: CR1 {_pct(v['cr1'])} ({v['top_partner']}), HHI {_num(v['hhi'])} (12-month change "
        f"{_num(v['hhi_change'])}), month on month {_pct(v['mom'])}"
    )
    return "\n".join(lines)


def _pct(value: object) -> str:
    return f"{float(value):.0%}" if isinstance(value, int | float) else "n/a"


def _num(value: object) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
