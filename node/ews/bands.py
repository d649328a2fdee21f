"""Figures to the coarse bands that may leave the node (SPEC section 3: bands, never figures).

One place for every cut: the supply-impact and share bands are the alert's
ImpactBand values; the HHI bands follow the usual antitrust cut-offs (an HHI
of 0.15 and 0.25 on a 0-1 scale); a trend is a change of a fifth either way.
"""

from __future__ import annotations

from typing import Any, Final

SHARE_CUTS: Final = ((0.10, "BELOW_10"), (0.30, "FROM_10_TO_30"), (0.60, "FROM_30_TO_60"))
SHARE_TOP: Final = "ABOVE_60"
SHARE_ORDER: Final = ("BELOW_10", "FROM_10_TO_30", "FROM_30_TO_60", "ABOVE_60")
HHI_CUTS: Final = ((0.15, "LOW"), (0.25, "MODERATE"))
HHI_TOP: Final = "HIGH"
HHI_ORDER: Final = ("LOW", "MODERATE", "HIGH")
TREND_CHANGE: Final = 0.2


def share_band(share: float) -> str:
    """A share (0-1) as an ImpactBand name: BELOW_10, FROM_10_TO_30, FROM_30_TO_60, ABOVE_60."""
    for cut, band in SHARE_CUTS:
        if share < cut:
            return band
    return SHARE_TOP


def hhi_band(hhi: float) -> str:
    """LOW (< 0.15), MODERATE (< 0.25), HIGH."""
    for cut, band in HHI_CUTS:
        if hhi < cut:
            return band
    return HHI_TOP


def trend_band(change: float | None) -> str:
    """FALLING, STABLE or RISING (a change of at least a fifth either way); NO_DATA without a base."""
    if change is None:
        return "NO_DATA"
    if change <= -TREND_CHANGE:
        return "FALLING"
    if change >= TREND_CHANGE:
        return "RISING"
    return "STABLE"


def widest(bands: list[str], order: tuple[str, ...]) -> str | None:
    """The highest of `bands` in `order`, None if there is none."""
    known = [b for b in bands if b in order]
    return max(known, key=order.index) if known else None


def exposure_summary(exposure: dict[str, Any] | None) -> str:
    """One phrase for `ewx alert list`."""
    if exposure is None:
        return "exposure pending"
    if not exposure["items"]:
        return "no own imports of these codes"
    sources = ",".join(exposure["sources"]) or "?"
    trends = sorted({i["trend"] for i in exposure["items"]})
    return f"own share from {sources} {exposure['share_band']}, HHI {exposure['hhi_band']}, trend {'/'.join(trends)}"
