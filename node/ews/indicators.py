"""Every indicator of SPEC section 7 as one SQL program over the store's flows and events.

Pure text: `indicator_sql` builds the statements, `node/ews/scan.py` runs them.
Per HS-6 code and month (the months of a code run from its first import to
the newest month in the store; a month with no row is a month of zero
imports, which is what an export ban looks like):

- `cr1`, `top_partner`: the largest partner's share of import value this month;
  `hhi`: the Herfindahl-Hirschman index of partner shares (0-1); `hhi_change`:
  its change over 12 months;
- the baseline over the trailing `history` months (not counting this one):
  `base_partner` (largest by value), `base_cr1`, `base_hhi`;
- robust z-scores against the trailing `history` months: (x - median) /
  (1.4826 * MAD), the MAD floored at 1% of the median so that a flat series
  does not divide by zero: `z_volume` (total quantity), `z_unit_value`
  (value / quantity) and `z_partner` (the baseline partner's quantity);
- `mom`, `yoy`: quantity against the month before and a year before;
  `partner_yoy` likewise for the baseline partner;
- the latest policy move on the code (its 6 digits or its 4-digit heading)
  announced by the month's end and not lifted: `days_since_event` (from its
  announcement to the month's end) and `days_to_effective` (negative once in force);
  beside the indicators, `event_reported_by`: the peers whose policy reports
  name that move (node/ews/reports.py), `,`-joined, NULL if none.
"""

from __future__ import annotations

from typing import Final

from node.ews.thresholds import Thresholds

MAD_SCALE: Final = 1.4826
"""MAD times this estimates the standard deviation of normal data."""
MAD_FLOOR: Final = 0.01
"""The MAD is at least this fraction of the median's size."""

INDICATOR_COLUMNS: Final = (
    "hs_code",
    "period",
    "history",
    "value",
    "quantity",
    "unit_value",
    "cr1",
    "top_partner",
    "hhi",
    "hhi_change",
    "base_partner",
    "base_cr1",
    "base_hhi",
    "q_median",
    "q_mad",
    "z_volume",
    "uv_median",
    "uv_mad",
    "z_unit_value",
    "partner_quantity",
    "partner_median",
    "partner_mad",
    "z_partner",
    "mom",
    "yoy",
    "partner_yoy",
    "event_id",
    "event_country",
    "event_measure",
    "event_announced",
    "event_effective",
    "event_stage",
    "days_since_event",
    "days_to_effective",
)
"""The columns of `_ews_indicators`, in order (the evidence and `--json` name them so).

The table also holds `event_reported_by` (after these): where the move came
from, not a figure of the data, so it is not among the evidence's values."""


def _z(x: str, median: str, mad: str) -> str:
    return f"({x} - {median}) / greatest({MAD_SCALE} * {mad}, {MAD_FLOOR} * abs({median}), 1e-9)"


def indicator_sql(thresholds: Thresholds, *, hs_codes: list[str] | None = None) -> list[str]:
    """The statements that fill the temp table `_ews_indicators` (parameters: none).

    `hs_codes` restricts the computation to those codes (`ewx ews explain`).
    """
    h = thresholds.history
    where = ""
    if hs_codes:
        listed = ", ".join(f"'{code}'" for code in hs_codes if code.isascii() and code.isdigit())
        where = "WHERE hs_code IN (" + (listed or "''") + ")"
    return [
        f"""
        CREATE OR REPLACE TEMP VIEW _ews_flows AS
        SELECT hs_code, partner, month AS m, value, quantity FROM flows {where}
        """,
        # Zero-filled months, generated only for the pairs that miss some (a dense
        # series, the common case for a key item, costs no join).
        """
        CREATE OR REPLACE TEMP VIEW _ews_grid AS
        WITH last AS (SELECT max(m) AS last FROM _ews_flows),
             span AS (SELECT hs_code, min(m) AS first FROM _ews_flows GROUP BY hs_code),
             pairs AS (SELECT hs_code, partner, count(*) AS present FROM _ews_flows GROUP BY hs_code, partner),
             sparse AS (SELECT p.hs_code, p.partner, s.first FROM pairs p JOIN span s USING (hs_code), last
                        WHERE p.present < last.last - s.first + 1),
             wanted AS (SELECT hs_code, partner, unnest(range(first, (SELECT last FROM last) + 1)) AS m FROM sparse)
        SELECT hs_code, partner, m, value, quantity FROM _ews_flows
        UNION ALL
        SELECT w.hs_code, w.partner, w.m, 0.0, 0.0 FROM wanted w
        ANTI JOIN _ews_flows f ON f.hs_code = w.hs_code AND f.partner = w.partner AND f.m = w.m
        """,
        f"""
        CREATE OR REPLACE TEMP TABLE _ews_partner AS
        SELECT hs_code, partner, m, value, quantity,
               sum(value) OVER (PARTITION BY hs_code, partner ORDER BY m
                                ROWS BETWEEN {h} PRECEDING AND 1 PRECEDING) AS base_value
        FROM _ews_grid
        """,
        """
        CREATE OR REPLACE TEMP TABLE _ews_month AS
        SELECT hs_code, m,
               sum(value) AS value, sum(quantity) AS quantity,
               max(value) / nullif(sum(value), 0) AS cr1,
               CASE WHEN sum(value) > 0 THEN arg_max(partner, value) END AS top_partner,
               sum(value * value) / nullif(sum(value) * sum(value), 0) AS hhi,
               max(base_value) / nullif(sum(base_value), 0) AS base_cr1,
               CASE WHEN sum(base_value) > 0 THEN arg_max(partner, base_value) END AS base_partner,
               sum(base_value * base_value) / nullif(sum(base_value) * sum(base_value), 0) AS base_hhi
        FROM _ews_partner GROUP BY hs_code, m
        """,
        f"""
        CREATE OR REPLACE TEMP TABLE _ews_series AS
        SELECT *, value / nullif(quantity, 0) AS unit_value,
               row_number() OVER o - 1 AS history,
               median(quantity) OVER w AS q_median, mad(quantity) OVER w AS q_mad,
               median(value / nullif(quantity, 0)) OVER w AS uv_median,
               mad(value / nullif(quantity, 0)) OVER w AS uv_mad,
               quantity / nullif(lag(quantity, 1) OVER o, 0) - 1 AS mom,
               quantity / nullif(lag(quantity, 12) OVER o, 0) - 1 AS yoy,
               hhi - lag(hhi, 12) OVER o AS hhi_change
        FROM _ews_month
        WINDOW o AS (PARTITION BY hs_code ORDER BY m),
               w AS (PARTITION BY hs_code ORDER BY m ROWS BETWEEN {h} PRECEDING AND 1 PRECEDING)
        """,
        # The baseline partner's own series: windows over the few (code, partner)
        # pairs that are ever a baseline partner, not over every pair.
        f"""
        CREATE OR REPLACE TEMP TABLE _ews_top AS
        WITH candidates AS (SELECT DISTINCT hs_code, base_partner AS partner FROM _ews_series
                            WHERE base_partner IS NOT NULL),
             own AS (SELECT p.hs_code, p.partner, p.m, p.quantity,
                            lag(p.quantity, 12) OVER (PARTITION BY p.hs_code, p.partner ORDER BY p.m) AS quantity_12,
                            median(p.quantity) OVER w AS partner_median, mad(p.quantity) OVER w AS partner_mad
                     FROM _ews_grid p SEMI JOIN candidates c ON c.hs_code = p.hs_code AND c.partner = p.partner
                     WINDOW w AS (PARTITION BY p.hs_code, p.partner ORDER BY p.m
                                  ROWS BETWEEN {h} PRECEDING AND 1 PRECEDING))
        SELECT s.hs_code, s.m, o.quantity AS partner_quantity, o.quantity_12 AS partner_quantity_12,
               o.partner_median, o.partner_mad
        FROM _ews_series s JOIN own o ON o.hs_code = s.hs_code AND o.partner = s.base_partner AND o.m = s.m
        """,
        """
        CREATE OR REPLACE TEMP TABLE _ews_event_codes AS
        SELECT e.event_id, e.country, e.measure, e.announced, e.effective, e.stage, trim(code) AS code
        FROM events e, unnest(string_split(e.hs_codes, ';')) AS t(code)
        WHERE e.stage <> 'LIFTED'
        """,
        f"""
        CREATE OR REPLACE TEMP TABLE _ews_indicators AS
        WITH dated AS (
            SELECT s.*, printf('%04d-%02d', s.m // 12, s.m % 12 + 1) AS period,
                   last_day(make_date(CAST(s.m // 12 AS BIGINT), CAST(s.m % 12 + 1 AS BIGINT), 1)) AS month_end
            FROM _ews_series s
        ),
        latest_event AS (
            SELECT d.hs_code, d.m, arg_max(e.event_id, e.announced) AS event_id
            FROM dated d JOIN _ews_event_codes e
              ON (e.code = d.hs_code OR e.code = substr(d.hs_code, 1, 4)) AND e.announced <= d.month_end
            GROUP BY d.hs_code, d.m
        )
        SELECT d.hs_code, d.period, d.history, d.value, d.quantity, d.unit_value, d.cr1, d.top_partner,
               d.hhi, d.hhi_change, d.base_partner, d.base_cr1, d.base_hhi,
               d.q_median, d.q_mad, {_z("d.quantity", "d.q_median", "d.q_mad")} AS z_volume,
               d.uv_median, d.uv_mad, {_z("d.unit_value", "d.uv_median", "d.uv_mad")} AS z_unit_value,
               t.partner_quantity, t.partner_median, t.partner_mad,
               {_z("t.partner_quantity", "t.partner_median", "t.partner_mad")} AS z_partner,
               d.mom, d.yoy, t.partner_quantity / nullif(t.partner_quantity_12, 0) - 1 AS partner_yoy,
               e.event_id, e.country AS event_country, e.measure AS event_measure,
               e.announced AS event_announced, e.effective AS event_effective, e.stage AS event_stage,
               date_diff('day', e.announced, d.month_end) AS days_since_event,
               date_diff('day', d.month_end, e.effective) AS days_to_effective,
               r.reported_by AS event_reported_by
        FROM dated d
        LEFT JOIN _ews_top t ON t.hs_code = d.hs_code AND t.m = d.m
        LEFT JOIN latest_event le ON le.hs_code = d.hs_code AND le.m = d.m
        LEFT JOIN (SELECT DISTINCT event_id, country, measure, announced, effective, stage
                   FROM _ews_event_codes) e ON e.event_id = le.event_id
        LEFT JOIN (SELECT event_id, array_to_string(list_sort(list_distinct(list(origin))), ',') AS reported_by
                   FROM event_reports WHERE peer GROUP BY event_id) r ON r.event_id = le.event_id
        ORDER BY d.hs_code, d.period
        """,
    ]
