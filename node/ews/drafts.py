"""A detection (or several, on one source) as the SPEC section 3 alert fields: bands, never figures.

This is the only way indicator data turns into something that leaves the
node, and it takes from the evidence only codes, countries, the severity,
the category and two bands: the supply impact (the share of imports at risk)
and nothing else. The headline is built from codes and words only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from node.ews import bands
from node.ews.rules import Detection
from node.ews.thresholds import SEVERITY_ORDER

DRAFT_EXPIRY: Final = timedelta(days=90)
HS_EDITION: Final = "HS2022"
_MEASURE_WORDS: Final = {
    "EXPORT_LICENSING": "export licensing",
    "EXPORT_BAN": "export ban",
    "EXPORT_QUOTA": "export quota",
    "EXPORT_INSPECTION": "export inspection",
    "EXPORT_TAX": "export tax",
    "IMPORT_RESTRICTION": "import restriction",
    "OTHER": "policy move",
}


def supply_at_risk(evidence: dict[str, Any]) -> float:
    """The share of imports at risk: the partner's baseline share, times its fall when it fell."""
    share = float(evidence["exposure"]["base_cr1"] or 0.0)
    values = evidence["values"]
    if "volume_drop" in evidence["triggers"] and values.get("partner_median"):
        fall = 1 - float(values["partner_quantity"] or 0.0) / float(values["partner_median"])
        return share * min(max(fall, 0.0), 1.0)
    return share


def draft_info(detections: list[Detection], *, me: str, now: datetime) -> dict[str, Any]:
    """The info block of one ALERT covering `detections` (one source country)."""
    if not detections:
        raise ValueError("no detection to draft from")
    partners = sorted({d.partner for d in detections})
    top = max(detections, key=lambda d: SEVERITY_ORDER[d.severity])
    codes = sorted({d.hs_code for d in detections})
    observed = any(
        "volume_drop" in d.evidence["triggers"] or "price_shock" in d.evidence["triggers"] for d in detections
    )
    impact = max(supply_at_risk(d.evidence) for d in detections)
    event = next((d.evidence["policy_event"] for d in detections if d.evidence.get("policy_event")), None)
    what = _MEASURE_WORDS.get(event["measure"], "policy move") if event else None
    if top.category == "PRICE_SHOCK":
        trend = "prices rising"
    elif observed:
        trend = "imports falling"
    else:
        trend = "imports exposed"
    source = ", ".join(partners)
    headline = (
        f"{source} {what} on HS {', '.join(codes)}; {me} {trend}"
        if what
        else f"HS {', '.join(codes)}: {me} {trend} from {source}"
    )
    return {
        "category": top.category,
        "urgency": "IMMEDIATE" if SEVERITY_ORDER[top.severity] >= SEVERITY_ORDER["SEVERE"] else "EXPECTED",
        "severity": top.severity,
        "certainty": "OBSERVED" if observed else "LIKELY",
        "effective": now.isoformat(),
        "expires": (now + DRAFT_EXPIRY).isoformat(),
        "headline": headline[:140],
        "items": [{"hs_code": code, "hs_edition": HS_EDITION} for code in codes],
        "source_countries": partners,
        "affected_countries": [me],
        "supply_impact": bands.share_band(impact),
        "expected_duration_days": 0,
    }
