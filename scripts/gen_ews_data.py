"""Regenerate the bundled early-warning scenario data in node/ews/data/ (illustrative figures).

The figures are made up, shaped after the public record of four episodes
(node/ews/data/README.md says which facts are real and which are not): Korea's
2021 urea shortage, Korea's quiet urea year 2024, China's gallium and
germanium export licensing of August 2023 and its graphite licensing of
December 2023, plus a few quiet background codes. Every series is noise
around a flat level except where a scenario says otherwise.

Deterministic: every node's code draws from its own `random.Random` seeded
with a fixed text, so two runs write byte-identical files. Noise is
multiplicative (log-normal, clipped) on each partner's quantity and unit
value; a month whose noise would be an outlier against its own trailing 12
months is drawn again (see `code_flows`), so that only the scenarios' moves
stand out. Before anything is written a self-check recomputes the engine's
robust z-scores, shares and rules (stdlib only, after node/ews/indicators.py
and node/ews/rules.py with their default thresholds) and asserts that each
shock shows where it should and nowhere else.

`--check` regenerates in memory and exits 1 if the committed files differ.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "node" / "ews" / "data"
SEED = "ewx-ews-scenarios-v1"

FIRST_YEAR, LAST_YEAR = 2019, 2024
PERIODS = tuple(f"{y:04d}-{m:02d}" for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13))
INDEX = {p: i for i, p in enumerate(PERIODS)}

VOLUME_SIGMA = 0.09
"""Log-normal noise on each partner's monthly quantity."""
UNIT_VALUE_SIGMA = 0.045
"""Log-normal noise on each partner's monthly unit value."""
CLIP = 1.8
"""Noise is a normal draw clipped at this many sigmas (no freak months)."""
GAP_SHARE = 0.02
"""Partners below this share of a code's volume miss a month now and then (no row that month)."""
GAP_PROBABILITY = 0.08

# The engine's defaults (node/ews/thresholds.py), for the self-check.
HISTORY = 12
MAD_SCALE = 1.4826
MAD_FLOOR = 0.01
CR1, HHI, CR1_CRITICAL = 0.5, 0.4, 0.8
VOLUME_Z, UNIT_VALUE_Z, UNIT_VALUE_RISE, YOY_DROP, POLICY_DAYS = 3.5, 3.5, 0.25, 0.5, 120

UREA = "310210"
GALLIUM, GERMANIUM = "811292", "282560"
FLAKE, OTHER_GRAPHITE, ARTIFICIAL = "250410", "250490", "380110"
CHIPS, SILICON, MEDICINES, INSTRUMENTS = "854231", "280461", "300490", "901890"

SHOCK = {UREA: "2021-11", GALLIUM: "2023-08", GERMANIUM: "2023-08"} | dict.fromkeys(
    (FLAKE, OTHER_GRAPHITE, ARTIFICIAL), "2023-12"
)
"""The first month each scenario's volume collapse shows in the import data."""

DESCRIPTIONS = {
    UREA: "Fertilizers, mineral or chemical; nitrogenous, urea, whether or not in aqueous solution",
    GALLIUM: "Gallium, germanium, indium, niobium, vanadium (heading 8112 n.e.c.); unwrought, waste and "
    "scrap, powders",
    GERMANIUM: "Germanium oxides and zirconium dioxide",
    FLAKE: "Natural graphite; in powder or in flakes",
    OTHER_GRAPHITE: "Natural graphite; other than in powder or in flakes",
    ARTIFICIAL: "Artificial graphite",
    CHIPS: "Electronic integrated circuits; processors and controllers",
    SILICON: "Silicon; containing by weight not less than 99.99% of silicon",
    MEDICINES: "Medicaments; mixed or unmixed products for therapeutic or prophylactic uses, in measured "
    "doses or for retail sale, n.e.c.",
    INSTRUMENTS: "Medical, surgical or veterinary instruments and appliances; n.e.c.",
}

COMTRADE_PARTNERS = {
    # alpha-2: (UN Comtrade partner code (M49), alpha-3, Comtrade's name)
    "BE": (56, "BEL", "Belgium"),
    "BH": (48, "BHR", "Bahrain"),
    "BR": (76, "BRA", "Brazil"),
    "CA": (124, "CAN", "Canada"),
    "CN": (156, "CHN", "China"),
    "CR": (188, "CRI", "Costa Rica"),
    "DE": (276, "DEU", "Germany"),
    "DK": (208, "DNK", "Denmark"),
    "DZ": (12, "DZA", "Algeria"),
    "EG": (818, "EGY", "Egypt"),
    "GB": (826, "GBR", "United Kingdom"),
    "IE": (372, "IRL", "Ireland"),
    "IL": (376, "ISR", "Israel"),
    "JP": (392, "JPN", "Japan"),
    "KR": (410, "KOR", "Rep. of Korea"),
    "MG": (450, "MDG", "Madagascar"),
    "MX": (484, "MEX", "Mexico"),
    "MY": (458, "MYS", "Malaysia"),
    "MZ": (508, "MOZ", "Mozambique"),
    "NL": (528, "NLD", "Netherlands"),
    "OM": (512, "OMN", "Oman"),
    "PH": (608, "PHL", "Philippines"),
    "QA": (634, "QAT", "Qatar"),
    "RU": (643, "RUS", "Russian Federation"),
    "SA": (682, "SAU", "Saudi Arabia"),
    "SG": (702, "SGP", "Singapore"),
    "TH": (764, "THA", "Thailand"),
    "TT": (780, "TTO", "Trinidad and Tobago"),
    "VN": (704, "VNM", "Viet Nam"),
}
"""Only partners with a plain M49 code in Comtrade (no Taiwan 490, India 699, France 251, ...)."""
EXPORT_PARTNER = "CA"
"""The US export row of every period and code goes to Canada (the engine must skip it)."""


# ------------------------------------------------------------------ scenario shapes
Shape = Callable[[str, int], tuple[float, float]]
"""(partner, month index) to (volume multiplier, unit value multiplier) on the partner's base."""


def _at(period: str) -> int:
    return INDEX[period]


def _ramp(i: int, start: str, end: str, low: float, high: float) -> float:
    """Linear from `low` at `start` to `high` at `end` (held outside)."""
    a, b = _at(start), _at(end)
    if i <= a:
        return low
    if i >= b:
        return high
    return low + (high - low) * (i - a) / (b - a)


def _path(i: int, points: dict[str, float], before: float = 1.0) -> float:
    """A piecewise-linear path through (period, value) points; `before` until the first."""
    keys = sorted(points, key=_at)
    if i < _at(keys[0]):
        return before
    for left, right in itertools.pairwise(keys):
        if _at(left) <= i <= _at(right):
            return _ramp(i, left, right, points[left], points[right])
    return points[keys[-1]]


def urea_price(i: int) -> float:
    """World urea prices as import unit values: flat, high from December 2021 to May 2022, then a little
    above the old level (import unit values follow contracts, a month after Korea's volumes collapse)."""
    if i < _at("2021-12"):
        return 1.0
    high = {"2021-12": 1.9, "2022-01": 1.95, "2022-02": 1.85, "2022-03": 1.9, "2022-04": 1.8, "2022-05": 1.6}
    return high.get(PERIODS[i], 1.15)


def flat(_partner: str, _i: int) -> tuple[float, float]:
    return 1.0, 1.0


def urea_kr(partner: str, i: int) -> tuple[float, float]:
    """China's volume collapses in November 2021 and comes back to about half; others fill in and grow."""
    if partner == "CN":
        collapse = {
            "2021-11": 0.12,
            "2021-12": 0.18,
            "2022-01": 0.26,
            "2022-02": 0.31,
            "2022-03": 0.34,
            "2022-04": 0.37,
            "2022-05": 0.45,
            "2022-06": 0.48,
            "2024-12": 0.38,
        }
        return _path(i, collapse), urea_price(i)
    # Other partners (3.5% of the volume before): a multiple of their old volume.
    growth = {
        "2021-11": 1.7,
        "2021-12": 3.3,
        "2022-01": 5.5,
        "2022-02": 7.2,
        "2022-03": 8.3,
        "2022-04": 9.2,
        "2022-05": 10.0,
        "2022-06": 10.6,
        "2023-01": 13.0,
        "2024-12": 20.5,
    }
    weight = {"VN": 1.3, "SA": 1.1, "QA": 0.9, "ID": 0.8, "JP": 0.35}.get(partner, 1.0)
    return 1.0 + (_path(i, growth) - 1.0) * weight, urea_price(i)


def urea_jp(partner: str, i: int) -> tuple[float, float]:
    """Japan's Chinese urea falls too, but Malaysia is its main supplier."""
    if partner == "CN":
        return _path(
            i, {"2021-11": 0.25, "2021-12": 0.3, "2022-01": 0.4, "2022-02": 0.55, "2022-04": 0.7}
        ), urea_price(i)
    return _path(i, {"2021-11": 1.05, "2022-04": 1.1}), urea_price(i)


def urea_us(_partner: str, i: int) -> tuple[float, float]:
    return 1.0, urea_price(i)


def licensing(cn_floor: float, cn_2024: float) -> Shape:
    """Gallium and germanium: China's volume collapses from August 2023, licences let some back in 2024."""

    def shape(partner: str, i: int) -> tuple[float, float]:
        if partner == "CN":
            volume = _path(
                i,
                {
                    "2023-07": 1.03,
                    "2023-08": cn_floor,
                    "2023-09": cn_floor * 0.7,
                    "2023-10": 0.1,
                    "2023-12": 0.2,
                    "2024-01": 0.24,
                    "2024-12": cn_2024,
                },
            )
            price = _path(i, {"2023-08": 1.0, "2023-09": 1.2, "2023-12": 1.4, "2024-03": 1.45})
            return volume, price
        volume = _path(i, {"2023-07": 1.0, "2023-08": 1.3, "2023-10": 1.6, "2024-12": 1.75})
        price = _path(i, {"2023-08": 1.0, "2023-09": 1.15, "2023-12": 1.3, "2024-03": 1.35})
        return volume, price

    return shape


def graphite(cn_floor: float, rush: float) -> Shape:
    """A pre-control rush in October and November 2023, China's volume collapses from December 2023."""

    def shape(partner: str, i: int) -> tuple[float, float]:
        if partner == "CN":
            volume = _path(
                i,
                {
                    "2023-09": 1.0,
                    "2023-10": 1.0 + rush * 0.4,
                    "2023-11": 1.0 + rush,
                    "2023-12": cn_floor,
                    "2024-01": cn_floor * 0.8,
                    "2024-02": cn_floor * 1.3,
                    "2024-12": 0.5,
                },
            )
            price = _path(i, {"2023-12": 1.0, "2024-01": 1.15, "2024-03": 1.25})
            return volume, price
        volume = _path(i, {"2023-11": 1.0, "2023-12": 1.4, "2024-06": 1.9, "2024-12": 2.0})
        price = _path(i, {"2023-12": 1.0, "2024-01": 1.1, "2024-03": 1.15})
        return volume, price

    return shape


@dataclass(frozen=True)
class Code:
    """One node's imports of one HS-6 code: a base monthly volume split over partners, and a shape."""

    hs_code: str
    kg_per_month: float
    partners: tuple[tuple[str, float, float], ...]
    """(partner, share of volume, unit value in USD/kg) before any shock."""
    shape: Shape = flat


def _partners(table: str) -> tuple[tuple[str, float, float], ...]:
    """ "CN 0.965 0.29, VN 0.012 0.31" to (partner, share of volume, unit value) rows."""
    rows = [item.split() for item in table.split(",")]
    return tuple((code, float(share), float(unit_value)) for code, share, unit_value in rows)


# fmt: off
NODES: dict[str, tuple[Code, ...]] = {
    # Each partner: ISO code, share of the code's volume, unit value in USD/kg (before any shock).
    "KR": (
        Code(UREA, 4.5e7, _partners(
            "CN 0.965 0.29, VN 0.012 0.31, QA 0.008 0.30, SA 0.006 0.30, ID 0.005 0.31, JP 0.004 0.33"),
            urea_kr),
        Code(GALLIUM, 3500, _partners(
            "CN 0.87 300, JP 0.05 360, DE 0.035 380, US 0.025 400, CA 0.02 340"), licensing(0.06, 0.55)),
        Code(GERMANIUM, 2500, _partners(
            "CN 0.78 900, BE 0.08 1050, RU 0.05 880, US 0.05 1100, JP 0.04 1000"), licensing(0.07, 0.5)),
        Code(FLAKE, 8.0e6, _partners(
            "CN 0.93 0.75, MZ 0.025 0.70, MG 0.015 0.72, BR 0.012 0.80, CA 0.01 0.85, TZ 0.008 0.70"),
            graphite(0.15, 0.28)),
        Code(OTHER_GRAPHITE, 6.0e5, _partners(
            "CN 0.62 0.45, BR 0.1 0.5, MX 0.1 0.42, MG 0.08 0.48, LK 0.05 0.6, DE 0.05 0.7"),
            graphite(0.25, 0.2)),
        Code(ARTIFICIAL, 4.0e6, _partners(
            "CN 0.92 2.2, JP 0.04 3.2, US 0.015 3.5, DE 0.015 3.4, MY 0.01 2.5"), graphite(0.2, 0.28)),
        Code(CHIPS, 2.5e5, _partners(
            "TW 0.34 6000, CN 0.2 4500, US 0.13 8000, JP 0.1 6500, MY 0.09 5000, VN 0.07 4000, PH 0.04 4200,"
            "SG 0.03 7000")),
        Code(SILICON, 2.5e6, _partners("DE 0.3 22, CN 0.25 16, MY 0.2 18, US 0.15 24, JP 0.1 26")),
        Code(MEDICINES, 1.5e6, _partners(
            "US 0.25 700, DE 0.18 650, CH 0.12 900, FR 0.1 500, GB 0.08 600, IE 0.08 800, BE 0.07 550,"
            "IT 0.07 450, JP 0.05 750")),
    ),
    "US": (
        Code(UREA, 4.0e8, _partners(
            "RU 0.22 0.29, QA 0.17 0.30, SA 0.16 0.30, CA 0.15 0.32, DZ 0.07 0.29, OM 0.07 0.30,"
            "EG 0.06 0.31, TT 0.05 0.30, BH 0.05 0.30"), urea_us),
        Code(GALLIUM, 1500, _partners(
            "CN 0.6 300, JP 0.12 360, DE 0.11 380, CA 0.09 340, GB 0.04 380, KR 0.04 350"),
            licensing(0.08, 0.45)),
        Code(GERMANIUM, 1200, _partners(
            "CN 0.45 900, BE 0.2 1050, CA 0.12 950, DE 0.1 1100, JP 0.08 1000, GB 0.05 1050"),
            licensing(0.1, 0.45)),
        Code(FLAKE, 3.0e6, _partners(
            "CN 0.38 0.75, MX 0.18 0.70, CA 0.16 0.85, MG 0.1 0.72, BR 0.1 0.80, MZ 0.08 0.70"),
            graphite(0.2, 0.25)),
        Code(OTHER_GRAPHITE, 4.0e5, _partners(
            "CN 0.35 0.45, MX 0.25 0.42, BR 0.15 0.5, CA 0.1 0.55, DE 0.1 0.7, MG 0.05 0.48"),
            graphite(0.3, 0.2)),
        Code(ARTIFICIAL, 2.5e6, _partners(
            "CN 0.7 2.2, JP 0.12 3.2, MX 0.08 2.6, DE 0.05 3.4, CA 0.03 3.0, GB 0.02 3.2"),
            graphite(0.25, 0.25)),
        Code(CHIPS, 3.0e5, _partners(
            "MY 0.25 8000, VN 0.15 6000, IE 0.12 9000, IL 0.1 9500, KR 0.1 7000, MX 0.08 5000, PH 0.07 5500,"
            "TH 0.05 5000, CN 0.05 4500, SG 0.03 8500")),
        Code(MEDICINES, 1.2e7, _partners(
            "IE 0.3 900, DE 0.16 800, BE 0.1 700, DK 0.1 850, GB 0.09 750, NL 0.08 700, JP 0.07 950,"
            "CA 0.05 600,"
            "KR 0.05 650")),
        Code(INSTRUMENTS, 2.0e7, _partners(
            "MX 0.35 60, IE 0.15 90, DE 0.1 85, CN 0.1 25, CR 0.1 70, MY 0.05 45, JP 0.05 95, GB 0.05 80,"
            "IL 0.05 100")),
    ),
    "JP": (
        Code(UREA, 2.0e7, _partners(
            "MY 0.42 0.30, CN 0.26 0.29, ID 0.14 0.30, SA 0.07 0.30, QA 0.06 0.30, VN 0.05 0.31"), urea_jp),
        Code(GALLIUM, 4000, _partners(
            "CN 0.68 300, KR 0.08 340, DE 0.08 380, US 0.06 400, CA 0.05 340, GB 0.05 380"),
            licensing(0.1, 0.5)),
        Code(GERMANIUM, 2000, _partners(
            "CN 0.62 900, BE 0.15 1050, US 0.08 1100, DE 0.08 1100, RU 0.07 880"), licensing(0.08, 0.5)),
        Code(FLAKE, 5.0e6, _partners(
            "CN 0.88 0.75, BR 0.04 0.80, MZ 0.03 0.70, MG 0.03 0.72, CA 0.02 0.85"), graphite(0.18, 0.25)),
        Code(OTHER_GRAPHITE, 3.0e5, _partners(
            "CN 0.7 0.45, BR 0.1 0.5, LK 0.08 0.6, MX 0.06 0.42, DE 0.06 0.7"), graphite(0.25, 0.2)),
        Code(ARTIFICIAL, 3.0e6, _partners(
            "CN 0.6 2.2, US 0.1 4.8, KR 0.1 3.0, DE 0.1 4.8, MY 0.1 2.5"), graphite(0.25, 0.2)),
        Code(CHIPS, 4.0e5, _partners(
            "TW 0.4 6500, CN 0.15 4500, US 0.12 8000, KR 0.1 6000, MY 0.08 5000, PH 0.06 4200, VN 0.05 4000,"
            "SG 0.04 7000")),
        Code(SILICON, 3.0e6, _partners(
            "DE 0.28 22, US 0.22 24, MY 0.15 18, CN 0.15 16, NO 0.1 20, KR 0.1 21")),
        Code(MEDICINES, 2.0e6, _partners(
            "US 0.22 800, DE 0.2 700, IE 0.15 850, CH 0.12 950, BE 0.1 600, FR 0.08 550, GB 0.07 650,"
            "IT 0.06 500")),
    ),
}
# fmt: on

LATE_PARTNERS: dict[tuple[str, str], tuple[tuple[str, float, float, str], ...]] = {
    # (node, code): (partner, share of the code's base volume once ramped up, unit value, first period)
    ("KR", UREA): (("AU", 0.02, 0.34, "2021-11"), ("MY", 0.012, 0.31, "2022-03")),
}
"""Suppliers that appear only after a shock (Korea's emergency urea from Australia, then Malaysia)."""


# ------------------------------------------------------------------ generation
FlowRow = tuple[str, str, str, int, int]
"""(period, hs_code, partner, import value in USD, quantity in kg)."""

QUIET: dict[str, tuple[tuple[str, str], ...]] = {
    UREA: (("2020-01", "2021-10"), ("2023-01", "2024-12")),
    GALLIUM: (("2020-01", "2023-07"),),
    GERMANIUM: (("2020-01", "2023-07"),),
    FLAKE: (("2020-01", "2023-09"),),
    OTHER_GRAPHITE: (("2020-01", "2023-09"),),
    ARTIFICIAL: (("2020-01", "2023-09"),),
}
"""The months (with 12 months of history) where a code is noise only; background codes: every month.

The self-check holds every node to these: no trigger and no volume z at -3 or below."""
Z_LIMIT = 2.6
"""A month is drawn again while the robust z of its noise (against the trailing 12 months) is beyond this."""
MAX_DRAWS = 500


def quiet(hs_code: str, period: str) -> bool:
    """Noise only in this month (and 12 months of history before it)."""
    if INDEX[period] < HISTORY:
        return False
    return any(a <= period <= b for a, b in QUIET.get(hs_code, ((PERIODS[HISTORY], PERIODS[-1]),)))


def _noise(rng: random.Random, sigma: float) -> float:
    return math.exp(max(-CLIP, min(CLIP, rng.gauss(0.0, 1.0))) * sigma)


def _series(node: str, code: Code) -> list[tuple[str, float, float, str]]:
    """(partner, share of the base volume, base unit value, first period) of every partner of a code."""
    return [(p, share, uv, PERIODS[0]) for p, share, uv in code.partners] + list(
        LATE_PARTNERS.get((node, code.hs_code), ())
    )


def code_flows(node: str, code: Code) -> list[FlowRow]:
    """Every month's rows of one node's code.

    One random stream per code. A month is drawn again (same stream, so still
    deterministic) while the noise of the top partner's quantity, the total
    quantity, the unit value or China's quantity (each figure over what it
    would be without noise) sits beyond `Z_LIMIT` robust z of the noise of
    its trailing 12 months. A 12-month MAD is a noisy estimate: without this,
    a run of calm months now and then makes an ordinary month look like a
    shock. The scenarios' own moves are not noise, so they pass unchanged.
    """
    rng = random.Random(f"{SEED}:{node}:{code.hs_code}")  # noqa: S311 - reproducible data, no secret
    series = _series(node, code)
    top = max(code.partners, key=lambda p: p[1] * p[2])[0]
    noise: dict[str, list[float]] = {"top": [], "total": [], "unit_value": [], "cn": []}
    rows: list[FlowRow] = []
    for i, period in enumerate(PERIODS):
        expected = _figures(_month(code, series, i, None), top)
        for _ in range(MAX_DRAWS):
            month = _month(code, series, i, rng)
            figures = _figures(month, top)
            ratio = {k: figures[k] / expected[k] if expected[k] else 1.0 for k in noise}
            if i < HISTORY or all(
                abs(_robust_z(ratio[k], v[i - HISTORY : i])) <= Z_LIMIT for k, v in noise.items()
            ):
                break
        for k, v in noise.items():
            v.append(ratio[k])
        rows.extend((period, code.hs_code, partner, value, qty) for partner, value, qty in month)
    return rows


def _month(
    code: Code, series: list[tuple[str, float, float, str]], i: int, rng: random.Random | None
) -> list[tuple[str, int, int]]:
    """(partner, value, quantity) of every partner with imports in month `i` (no noise without `rng`)."""
    month = []
    for partner, share, unit_value, first in series:
        volume_noise, price_noise, gap = (
            (_noise(rng, VOLUME_SIGMA), _noise(rng, UNIT_VALUE_SIGMA), rng.random())
            if rng
            else (1.0, 1.0, 1.0)
        )
        if i < _at(first) or (share < GAP_SHARE and gap < GAP_PROBABILITY):
            continue
        volume, price = code.shape(partner, i)
        if first != PERIODS[0]:  # a late partner ramps up over six months
            volume = _ramp(i, first, PERIODS[min(_at(first) + 5, len(PERIODS) - 1)], 0.3, 1.0)
        quantity = round(code.kg_per_month * share * volume * volume_noise)
        if quantity > 0:
            month.append((partner, round(quantity * unit_value * price * price_noise), quantity))
    return month


def _figures(month: list[tuple[str, int, int]], top: str) -> dict[str, float]:
    quantity = sum(q for _, _, q in month)
    return {
        "top": float(sum(q for p, _, q in month if p == top)),
        "total": float(quantity),
        "unit_value": sum(v for _, v, _ in month) / quantity if quantity else 0.0,
        "cn": float(sum(q for p, _, q in month if p == "CN")),
    }


def all_flows() -> dict[str, list[FlowRow]]:
    flows: dict[str, list[FlowRow]] = {}
    for node, node_codes in NODES.items():
        rows = [row for code in node_codes for row in code_flows(node, code)]
        rows.sort(key=lambda r: (r[0], r[1], -r[3], r[2]))
        flows[node] = rows
    return flows


EVENTS = {
    "urea": ("CN", UREA, "EXPORT_INSPECTION", "2021-10-11", "2021-10-15", "IN_FORCE"),
    "gallium": ("CN", f"{GALLIUM};{GERMANIUM}", "EXPORT_LICENSING", "2023-07-03", "2023-08-01", "IN_FORCE"),
    "graphite": ("CN", "2504;3801", "EXPORT_LICENSING", "2023-10-20", "2023-12-01", "IN_FORCE"),
}
NODE_EVENTS = {
    "KR": ("urea", "gallium", "graphite"),
    "US": ("gallium", "graphite"),
    "JP": ("gallium", "graphite"),
}


def prices() -> list[tuple[str, str, float]]:
    """One illustrative market price (USD/kg) per critical-mineral code, the same for every node."""
    paths = {
        GALLIUM: (300.0, {"2023-06": 1.0, "2023-08": 1.25, "2023-12": 1.5, "2024-12": 2.3}),
        GERMANIUM: (900.0, {"2023-06": 1.0, "2023-08": 1.15, "2023-12": 1.3, "2024-12": 2.2}),
        FLAKE: (0.75, {"2023-10": 1.0, "2023-12": 1.1, "2024-06": 1.15, "2024-12": 1.12}),
        OTHER_GRAPHITE: (0.45, {"2023-10": 1.0, "2023-12": 1.08, "2024-06": 1.12, "2024-12": 1.1}),
        ARTIFICIAL: (2.2, {"2023-10": 1.0, "2023-12": 1.12, "2024-06": 1.18, "2024-12": 1.15}),
    }
    rows = []
    for hs_code, (base, points) in paths.items():
        rng = random.Random(f"{SEED}:price:{hs_code}")  # noqa: S311 - reproducible data, no secret
        for i, period in enumerate(PERIODS):
            noise = _noise(rng, 0.02)
            rows.append((period, hs_code, round(base * _path(i, points) * noise, 2)))
    return rows


SHARES: dict[str, dict[str, tuple[float, ...]]] = {
    # hs_code: country: shares for 2019..2024 (illustrative, shaped after the sources in the README)
    GALLIUM: {
        "CN": (0.97, 0.97, 0.98, 0.98, 0.98, 0.99),
        "RU": (0.01, 0.01, 0.005, 0.005, 0.005, 0.004),
        "JP": (0.005, 0.005, 0.005, 0.005, 0.005, 0.003),
        "KR": (0.005, 0.005, 0.005, 0.005, 0.005, 0.003),
    },
    GERMANIUM: {
        "CN": (0.65, 0.65, 0.66, 0.67, 0.68, 0.68),
        "RU": (0.05, 0.05, 0.05, 0.04, 0.04, 0.04),
        "CA": (0.1, 0.1, 0.09, 0.09, 0.09, 0.09),
        "BE": (0.1, 0.1, 0.1, 0.1, 0.1, 0.1),
        "US": (0.03, 0.03, 0.03, 0.03, 0.03, 0.03),
    },
    FLAKE: {
        "CN": (0.65, 0.66, 0.68, 0.7, 0.77, 0.78),
        "MZ": (0.09, 0.05, 0.06, 0.1, 0.06, 0.05),
        "MG": (0.04, 0.02, 0.06, 0.09, 0.06, 0.06),
        "BR": (0.09, 0.09, 0.07, 0.07, 0.05, 0.05),
        "IN": (0.03, 0.03, 0.04, 0.02, 0.01, 0.01),
    },
    OTHER_GRAPHITE: {
        "CN": (0.65, 0.66, 0.68, 0.7, 0.77, 0.78),
        "MZ": (0.09, 0.05, 0.06, 0.1, 0.06, 0.05),
        "MG": (0.04, 0.02, 0.06, 0.09, 0.06, 0.06),
        "BR": (0.09, 0.09, 0.07, 0.07, 0.05, 0.05),
        "IN": (0.03, 0.03, 0.04, 0.02, 0.01, 0.01),
    },
    ARTIFICIAL: {
        "CN": (0.72, 0.74, 0.77, 0.8, 0.82, 0.83),
        "JP": (0.08, 0.07, 0.07, 0.06, 0.05, 0.05),
        "US": (0.05, 0.05, 0.04, 0.04, 0.04, 0.04),
        "IN": (0.04, 0.04, 0.03, 0.03, 0.03, 0.03),
        "DE": (0.03, 0.03, 0.02, 0.02, 0.02, 0.02),
    },
    UREA: {
        "CN": (0.3, 0.31, 0.3, 0.3, 0.31, 0.31),
        "IN": (0.13, 0.13, 0.13, 0.14, 0.15, 0.15),
        "RU": (0.05, 0.05, 0.05, 0.05, 0.05, 0.05),
        "US": (0.05, 0.05, 0.05, 0.05, 0.05, 0.05),
        "ID": (0.04, 0.04, 0.04, 0.04, 0.04, 0.04),
        "QA": (0.03, 0.03, 0.03, 0.03, 0.03, 0.03),
        "SA": (0.03, 0.03, 0.03, 0.03, 0.03, 0.03),
    },
}


# ------------------------------------------------------------------ writing
def _csv(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def comtrade_rows(rows: list[FlowRow]) -> list[tuple[object, ...]]:
    """The US flows in the UN Comtrade layout, with a World row and an export row per period and code."""
    out: list[tuple[object, ...]] = []

    def line(
        period: str, hs: str, flow: str, partner: tuple[int, str, str], figures: tuple[int, int], *, agg: bool
    ) -> tuple[object, ...]:
        year, month = int(period[:4]), int(period[5:7])
        code, iso3, name = partner
        value, qty = figures
        # fmt: off
        return (
            "C", "M", int(f"{year:04d}{month:02d}01"), year, month, f"{year:04d}{month:02d}",
            842, "USA", "USA", flow, {"M": "Import", "X": "Export"}[flow], code, iso3, name,
            "H6", hs, DESCRIPTIONS[hs], "C00", 0, 8, "kg", qty, qty, "", value, "", value, "True", str(agg),
        )
        # fmt: on

    groups: dict[tuple[str, str], list[FlowRow]] = {}
    for row in rows:
        groups.setdefault((row[0], row[1]), []).append(row)
    for (period, hs), members in sorted(groups.items()):
        for _, _, partner, value, qty in members:
            out.append(line(period, hs, "M", COMTRADE_PARTNERS[partner], (value, qty), agg=False))
        total_value, total_qty = sum(r[3] for r in members), sum(r[4] for r in members)
        out.append(line(period, hs, "M", (0, "W00", "World"), (total_value, total_qty), agg=True))
        rng = random.Random(f"{SEED}:export:{period}:{hs}")  # noqa: S311 - reproducible data, no secret
        share = rng.uniform(0.05, 0.15)
        exported = (round(total_value * share), max(1, round(total_qty * share)))
        out.append(line(period, hs, "X", COMTRADE_PARTNERS[EXPORT_PARTNER], exported, agg=False))
    return out


COMTRADE_HEADER = (
    "typeCode", "freqCode", "refPeriodId", "refYear", "refMonth", "period", "reporterCode", "reporterISO",
    "reporterDesc", "flowCode", "flowDesc", "partnerCode", "partnerISO", "partnerDesc", "classificationCode",
    "cmdCode", "cmdDesc", "customsCode", "motCode", "qtyUnitCode", "qtyUnitAbbr", "qty", "netWgt", "grossWgt",
    "cifvalue", "fobvalue", "primaryValue", "isReported", "isAggregate",
)  # fmt: skip


def build() -> tuple[dict[str, bytes], list[str]]:
    """Every file by its path under node/ews/data, and the self-check's report (it passed)."""
    flows = all_flows()
    report = self_check(flows)
    files: dict[str, bytes] = {}
    price_rows = [(p, hs, f"{price:.2f}", "USD", "kg") for p, hs, price in prices()]
    share_rows = [
        (year, hs, country, f"{values[year - FIRST_YEAR]:g}")
        for year in range(FIRST_YEAR, LAST_YEAR + 1)
        for hs, by_country in SHARES.items()
        for country, values in by_country.items()
    ]
    for node in NODES:
        plain = [(p, hs, partner, value, qty, "kg") for p, hs, partner, value, qty in flows[node]]
        if node == "US":
            files[f"{node}/flows_comtrade.csv"] = _csv(COMTRADE_HEADER, comtrade_rows(flows[node]))
        else:
            header = ("period", "hs_code", "partner", "import_value_usd", "quantity", "unit")
            files[f"{node}/flows.csv"] = _csv(header, list(plain))
        events = [EVENTS[name] for name in NODE_EVENTS[node]]
        files[f"{node}/events.csv"] = _csv(
            ("country", "hs_codes", "measure", "announced", "effective", "stage"), list(events)
        )
        files[f"{node}/prices.csv"] = _csv(
            ("period", "hs_code", "price", "currency", "unit"), list(price_rows)
        )
        files[f"{node}/shares.csv"] = _csv(("year", "hs_code", "country", "share"), list(share_rows))
    return files, report


# ------------------------------------------------------------------ self-check (the engine's arithmetic)
@dataclass
class Month:
    """One code's indicators in one month, as node/ews/indicators.py computes them."""

    period: str
    quantity: float
    value: float
    unit_value: float | None
    cr1: float | None
    base_partner: str | None
    base_cr1: float | None
    base_hhi: float | None
    z_volume: float | None
    z_unit_value: float | None
    uv_median: float
    z_partner: float | None
    yoy: float | None
    partner_yoy: float | None
    cn_z: float | None
    cn_base_share: float | None


def _robust_z(x: float, window: list[float]) -> float:
    median = statistics.median(window)
    mad = statistics.median([abs(v - median) for v in window])
    return (x - median) / max(MAD_SCALE * mad, MAD_FLOOR * abs(median), 1e-9)


def indicators(rows: list[FlowRow], hs_code: str) -> list[Month]:
    by_partner: dict[str, list[tuple[float, float]]] = {}
    for period, hs, partner, row_value, row_quantity in rows:
        if hs == hs_code:
            by_partner.setdefault(partner, [(0.0, 0.0)] * len(PERIODS))
            by_partner[partner][INDEX[period]] = (float(row_value), float(row_quantity))
    quantity = [sum(s[i][1] for s in by_partner.values()) for i in range(len(PERIODS))]
    value = [sum(s[i][0] for s in by_partner.values()) for i in range(len(PERIODS))]
    unit_value = [v / q if q else None for v, q in zip(value, quantity, strict=True)]
    months = []
    for i, period in enumerate(PERIODS):
        lo = max(0, i - HISTORY)
        base = {p: sum(s[j][0] for j in range(lo, i)) for p, s in by_partner.items()}
        base_total = sum(base.values())
        base_partner = max(sorted(base), key=lambda p: base[p]) if base_total else None
        enough = i >= HISTORY

        def z(series: list[float], i: int = i, lo: int = lo, enough: bool = enough) -> float | None:
            return _robust_z(series[i], series[lo:i]) if enough else None

        partner_q = [s[1] for s in by_partner[base_partner]] if base_partner else None
        cn_q = [s[1] for s in by_partner["CN"]] if "CN" in by_partner else None
        uvs = [u or 0.0 for u in unit_value]
        months.append(
            Month(
                period=period,
                quantity=quantity[i],
                value=value[i],
                unit_value=unit_value[i],
                cr1=max(s[i][0] for s in by_partner.values()) / value[i] if value[i] else None,
                base_partner=base_partner,
                base_cr1=base[base_partner] / base_total if base_partner else None,
                base_hhi=sum(v * v for v in base.values()) / base_total**2 if base_total else None,
                z_volume=z(quantity),
                z_unit_value=z(uvs),
                uv_median=statistics.median(uvs[lo:i]) if enough else 0.0,
                z_partner=z(partner_q) if partner_q else None,
                yoy=quantity[i] / quantity[i - 12] - 1 if i >= 12 and quantity[i - 12] else None,
                partner_yoy=(
                    partner_q[i] / partner_q[i - 12] - 1
                    if partner_q and i >= 12 and partner_q[i - 12]
                    else None
                ),
                cn_z=z(cn_q) if cn_q else None,
                cn_base_share=base.get("CN", 0.0) / base_total if base_total else None,
            )
        )
    return months


def _days(a: str, b: str) -> int:
    from datetime import date

    return (date.fromisoformat(b) - date.fromisoformat(a)).days


def _month_end(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    nxt = f"{year + (month == 12):04d}-{month % 12 + 1:02d}-01"
    from datetime import date, timedelta

    return (date.fromisoformat(nxt) - timedelta(days=1)).isoformat()


def levels(node: str, hs_code: str, months: list[Month]) -> list[tuple[str, int, str]]:
    """The escalation months of node/ews/rules.py: (period, level, triggers)."""
    events = [EVENTS[name] for name in NODE_EVENTS[node]]
    out = []
    before = 0
    for m in months:
        end = _month_end(m.period)
        hits = [
            e for e in events if any(c in (hs_code, hs_code[:4]) for c in e[1].split(";")) and e[3] <= end
        ]
        event = max(hits, key=lambda e: e[3]) if hits else None
        history = INDEX[m.period]
        exposed = history >= HISTORY and ((m.base_cr1 or 0) >= CR1 or (m.base_hhi or 0) >= HHI)
        policy = event is not None and event[0] == m.base_partner and _days(event[3], end) <= POLICY_DAYS
        drop = (
            history >= HISTORY
            and ((m.z_partner or 0) <= -VOLUME_Z or (m.z_volume or 0) <= -VOLUME_Z)
            and (
                (-1 if m.partner_yoy is None else m.partner_yoy) <= -YOY_DROP
                or (-1 if m.yoy is None else m.yoy) <= -YOY_DROP
            )
        )
        price = (
            history >= HISTORY
            and (m.z_unit_value or 0) >= UNIT_VALUE_Z
            and (m.unit_value or 0) >= m.uv_median * (1 + UNIT_VALUE_RISE)
        )
        level = 0
        if exposed:
            if policy and drop:
                level = 4
            elif drop or (policy and price) or (policy and (m.base_cr1 or 0) >= CR1_CRITICAL):
                level = 3
            elif policy or price:
                level = 2
        if level > before:
            names = [n for n, on in (("policy", policy), ("volume_drop", drop), ("price_shock", price)) if on]
            out.append((m.period, level, "+".join(names)))
        before = level
    return out


SEVERITY = ("NONE", "MINOR", "MODERATE", "SEVERE", "EXTREME")


def _max_abs(values: list[float | None]) -> float:
    return max(abs(v) for v in values if v is not None)


def _event_codes(event: tuple[str, ...]) -> list[str]:
    return event[1].split(";")


def _announced(node: str, hs_code: str) -> str | None:
    """The first month a policy move on this code (or its heading) is announced in a node's events."""
    dates = [EVENTS[n][3] for n in NODE_EVENTS[node] if {hs_code, hs_code[:4]} & set(_event_codes(EVENTS[n]))]
    return min(dates)[:7] if dates else None


def self_check(flows: dict[str, list[FlowRow]]) -> list[str]:
    """Assert the scenarios show where they should and nowhere else; return a printable report.

    For every node and code: in quiet months (QUIET) no trigger of the engine's
    rules fires, exposed or not, and no robust z of the volumes is at -3 or
    below; no detection comes before the code's first policy move (none at all
    on a code without one); an exposed code is warned at its policy move, then
    EXTREME (policy and volume drop, no price shock yet) at its shock month and
    never escalates after; Korea's shocks show at a robust z below -5 on
    China's volume, after a trailing-12-month China share above 0.5; and
    Korea's urea is neither concentrated nor firing in 2024.
    """
    report = [
        "node code   shock   CN share  CN z quiet  CN z shock  detections (escalations, engine defaults)"
    ]
    problems: list[str] = []
    for node, node_codes in NODES.items():
        for code in node_codes:
            report.append(_check_code(node, code, flows[node], problems))
    if problems:
        raise SystemExit("self-check failed:\n  " + "\n  ".join(problems))
    return report


def _check_code(node: str, code: Code, rows: list[FlowRow], problems: list[str]) -> str:
    """Check one node's code (problems appended); its line of the report."""
    hs = code.hs_code
    months = indicators(rows, hs)
    by_period = {m.period: m for m in months}
    shock = SHOCK.get(hs)
    calm = [m for m in months if quiet(hs, m.period)]
    problems.extend(_quiet_problems(f"{node} {hs}", calm))
    detected = levels(node, hs, months)
    problems.extend(_detection_problems(node, hs, shock, detected))
    if shock is None and any((m.base_cr1 or 0) >= CR1 or (m.base_hhi or 0) >= HHI for m in months[HISTORY:]):
        problems.append(f"{node} {hs}: a background code is concentrated")
    has_cn = any(p == "CN" for p, _, _ in code.partners)
    cn_z = [m.cn_z for m in calm if m.cn_z is not None] if has_cn else []
    z_quiet = max(cn_z, key=abs) if cn_z else None
    before = by_period[PERIODS[INDEX[shock] - 1]] if shock else by_period[PERIODS[-1]]
    share = before.cn_base_share if has_cn else None
    z_shock = by_period[shock].cn_z if shock and has_cn else None
    if node == "KR" and hs in (UREA, GALLIUM, GERMANIUM, FLAKE, ARTIFICIAL):
        assert shock is not None and z_quiet is not None and z_shock is not None and share is not None
        falls_only = hs in (FLAKE, ARTIFICIAL)  # the graphite rush is a rise
        if (falls_only and min(cn_z) <= -3.0) or (not falls_only and abs(z_quiet) >= 3.0):
            problems.append(f"KR {hs}: China's volume z {z_quiet:+.2f} in a quiet month")
        if z_shock >= -5:
            problems.append(f"KR {hs}: China's volume z {z_shock:+.2f} at the shock {shock}")
        if share <= CR1:
            problems.append(f"KR {hs}: China's share {share:.3f} before the shock")
    if (node, hs) == ("KR", UREA):
        for m in months:
            if m.period >= "2024-01" and ((m.cn_base_share or 0) >= CR1 or (m.base_hhi or 0) >= HHI):
                problems.append(
                    f"KR {hs} {m.period}: trailing China share {m.cn_base_share}, HHI {m.base_hhi}"
                )
        if any(d[0] >= "2024-01" for d in detected):
            problems.append(f"KR {hs}: fired in 2024: {detected}")

    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    text = ", ".join(f"{p} {SEVERITY[lv]} ({t})" for p, lv, t in detected) or "none"
    return (
        f"{node:4} {hs} {shock or '-':7} {fmt(share, '.3f'):>8} {fmt(z_quiet, '+.2f'):>11} "
        f"{fmt(z_shock, '+.1f'):>11}  {text}"
    )


def _quiet_problems(where: str, calm: list[Month]) -> list[str]:
    """No trigger (exposed or not) and no volume z at -3 or below in a quiet month."""
    problems = []
    for m in calm:
        drop = (
            min(m.z_partner or 0, m.z_volume or 0) <= -VOLUME_Z
            and min(m.partner_yoy or 0, m.yoy or 0) <= -YOY_DROP
        )
        if drop or (m.z_unit_value or 0) >= UNIT_VALUE_Z:
            problems.append(f"{where} {m.period}: a trigger fires in a quiet month")
        for name in ("z_volume", "z_partner", "cn_z"):
            value = getattr(m, name)
            if value is not None and value <= -3.0:
                problems.append(f"{where} {m.period}: {name} {value:.2f} in a quiet month")
    return problems


def _detection_problems(
    node: str, hs: str, shock: str | None, detected: list[tuple[str, int, str]]
) -> list[str]:
    """Nothing before the policy move; an exposed scenario code: the move, EXTREME at the shock, then quiet."""
    announced = _announced(node, hs)
    if announced is None:
        return [f"{node} {hs}: fired with no policy move: {detected}"] if detected else []
    if any(d[0] < announced for d in detected):
        return [f"{node} {hs}: fired before the policy move of {announced}: {detected}"]
    if detected and (len(detected) != 2 or detected[1] != (shock, 4, "policy+volume_drop")):
        return [f"{node} {hs}: expected the policy move, then EXTREME at {shock}: {detected}"]
    return []


# ------------------------------------------------------------------ entry
def stale_files() -> list[str]:
    """Paths (under node/ews/data) of committed files that differ from a fresh generation."""
    files, _ = build()
    return [
        name for name, data in files.items() if not (OUT / name).exists() or (OUT / name).read_bytes() != data
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    args = parser.parse_args()
    files, report = build()
    print("\n".join(report))
    if args.check:
        stale = [n for n, data in files.items() if not (OUT / n).exists() or (OUT / n).read_bytes() != data]
        if stale:
            print(f"stale data: {', '.join(stale)}; run scripts/gen_ews_data.py", file=sys.stderr)
            return 1
        print("bundled data is fresh")
        return 0
    for name, data in files.items():
        path = OUT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"wrote {len(files)} files under {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
