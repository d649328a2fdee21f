"""The detection settings: the `[ews]` table of node.toml, validated with named errors.

Example::

    [ews]
    cr1 = 0.5               # exposure: top partner's share of import value
    hhi = 0.4               # exposure: import concentration (0-1)
    cr1_critical = 0.8      # a policy move on a code this concentrated is SEVERE at once
    volume_z = 3.5          # trigger: robust z of volume at or below -volume_z
    unit_value_z = 3.5      # trigger: robust z of unit value at or above +unit_value_z ...
    unit_value_rise = 0.25  # ... and at least this much above its baseline median
    yoy_drop = 0.5          # trigger: volume at least this much below a year earlier
    history = 12            # trailing periods of the baseline (median, MAD)
    min_history = 12        # periods a code needs before anomalies count
    policy_days = 120       # a policy move counts as a trigger this long after its announcement
    auto_publish = "EXTREME"   # optional: publish detections of this severity or worse at once
    watchlist_steps = 1     # a peer's policy report on a watchlist pair raises the severity this many steps (0-3)

Every key is optional; each default is below. A value outside its bounds is
a ConfigError naming the key (node/config.py reads this table).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from node import limits

SeverityName = Literal["MINOR", "MODERATE", "SEVERE", "EXTREME"]
SEVERITY_ORDER: dict[str, int] = {"MINOR": 1, "MODERATE": 2, "SEVERE": 3, "EXTREME": 4}


class Thresholds(BaseModel):
    """What makes exposure, what makes a trigger, and which severity publishes itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cr1: float = Field(default=0.5, gt=0, le=1, strict=True)
    """Exposure: the baseline top partner holds at least this share of import value."""

    hhi: float = Field(default=0.4, gt=0, le=1, strict=True)
    """Exposure: the baseline Herfindahl-Hirschman index (0-1) is at least this."""

    cr1_critical: float = Field(default=0.8, gt=0, le=1, strict=True)
    """A policy move on a code whose top partner holds this much is SEVERE before any anomaly."""

    volume_z: float = Field(default=3.5, gt=0, le=100, strict=True)
    """Trigger: the top partner's (or the total) volume has a robust z at or below minus this."""

    unit_value_z: float = Field(default=3.5, gt=0, le=100, strict=True)
    """Trigger: the unit value has a robust z at or above this (a price shock)."""

    unit_value_rise: float = Field(default=0.25, gt=0, le=100, strict=True)
    """Trigger, with a high z: the unit value at least this fraction above its baseline median
    (a steady series has a small MAD, so a z alone flags ordinary wobbles)."""

    yoy_drop: float = Field(default=0.5, gt=0, lt=1, strict=True)
    """Trigger, with a negative z: volume at least this fraction below the same period a year earlier."""

    history: int = Field(default=12, ge=3, le=60, strict=True)
    """Trailing periods of the baseline (median and MAD, top partner, CR1, HHI)."""

    min_history: int = Field(default=12, ge=3, le=60, strict=True)
    """Periods of history a code needs before its anomalies count (exposure needs them too)."""

    policy_days: int = Field(default=120, ge=0, le=3650, strict=True)
    """A policy move counts as a trigger from its announcement for this many days (until lifted)."""

    auto_publish: SeverityName | None = None
    """Publish detections of this severity or worse without review (None: every one waits)."""

    watchlist_steps: int = Field(
        default=limits.WATCHLIST_SEVERITY_STEPS, ge=0, le=limits.MAX_WATCHLIST_SEVERITY_STEPS, strict=True
    )
    """A detection whose policy trigger a peer's report names, on a pair of the watchlist in force,
    is this many severity steps above the rules' severity, at most EXTREME (0: no step; issue 12)."""

    @model_validator(mode="after")
    def _check_order(self) -> Thresholds:
        if self.cr1_critical < self.cr1:
            raise ValueError(f"cr1_critical ({self.cr1_critical}) is below cr1 ({self.cr1})")
        if self.min_history > self.history:
            raise ValueError(f"min_history ({self.min_history}) is more than history ({self.history})")
        return self

    def to_json(self) -> dict[str, object]:
        """As kept in every detection's evidence."""
        return self.model_dump(mode="json")
