"""Indicator data made in code for the early-warning tests: series with a known shape."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from node.ews.store import EwsStore

FLOW_HEADER = "period,hs_code,partner,import_value_usd,quantity,unit"
EVENT_HEADER = "country,hs_codes,measure,announced,effective,stage"


def months(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, as YYYY-MM."""
    y, m = int(first[:4]), int(first[5:7])
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def flow_rows(
    *,
    hs_code: str = "811292",
    partners: dict[str, float] | None = None,
    first: str = "2021-01",
    last: str = "2024-12",
    shock_from: str | None = None,
    shock_partner: str = "CN",
    shock_factor: float = 0.1,
    unit_value: float = 300.0,
    noise: float = 0.08,
    seed: int = 7,
) -> list[str]:
    """CSV rows (no header): each partner's monthly volume with lognormal noise;
    from `shock_from` the shock partner's volume is multiplied by `shock_factor`."""
    rng = random.Random(seed)
    shares = partners or {"CN": 8000.0, "JP": 1000.0, "DE": 500.0}
    rows = []
    for period in months(first, last):
        for partner, base in shares.items():
            quantity = base * rng.lognormvariate(0, noise)
            if shock_from is not None and partner == shock_partner and period >= shock_from:
                quantity *= shock_factor
            value = quantity * unit_value * rng.lognormvariate(0, noise / 2)
            rows.append(f"{period},{hs_code},{partner},{value:.0f},{quantity:.1f},kg")
    return rows


def write_csv(path: Path, header: str, rows: Iterable[str]) -> Path:
    """A CSV file with a header row."""
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def gallium_event() -> str:
    """The July 2023 gallium and germanium controls, as an events row."""
    return "CN,811292;282560,EXPORT_LICENSING,2023-07-03,2023-08-01,IN_FORCE"


def open_store(folder: Path) -> EwsStore:
    """A fresh on-disk early-warning store in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return EwsStore.open(folder)
