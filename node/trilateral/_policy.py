"""Policy-move reports into the receiver's own policy events, and the watchlist's severity step.

A POLICY_REPORT becomes one row of the early-warning store's `events` table
(node/ews/store.py: country, hs_codes, measure, announced, effective, stage),
in the record form `node.ews.ingest.ingest_records(store, Kind.EVENTS, ...)`
takes, with its origin and report id beside it (`policy_event` from a logged
message, `report_event` from the operator API's `policy_list` row, which
`ewx ews scan` reads; node/ews/reports.py stores it); the next scan
(node/ews/scan.py) then sees it as a trigger like a move the node's own
analysts entered. What is not an announcement does not enter: SPEC section 7's
policy events are "export controls and similar announcements", so a rumour
stays a received message until a report says the move was announced.

Pure: the strings this module writes are node/ews/codes.py's (the ews engine
sits above the message layer and cannot read the proto, so
tests/node/trilateral/test_trilateral.py holds the two vocabularies together).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from node import limits
from node.ids import Country, as_country
from node.message import Alert, PolicyMove, WatchPair, enum_names, pb
from node.trilateral._watchlist import Watchlist, covers

EWS_MEASURE: Final[dict[str, str]] = {
    "EXPORT_LICENSING": "EXPORT_LICENSING",
    "EXPORT_BAN": "EXPORT_BAN",
    "EXPORT_QUOTA": "EXPORT_QUOTA",
    "EXPORT_INSPECTION": "EXPORT_INSPECTION",
    "EXPORT_TAX": "EXPORT_TAX",
    "IMPORT_RESTRICTION": "IMPORT_RESTRICTION",
    "OTHER_MEASURE": "OTHER",  # proto enum values share one namespace: Category has OTHER
}
"""Each PolicyMeasure to the early-warning store's measure code."""

EWS_STAGE: Final[dict[str, str | None]] = {
    "RUMOURED": None,
    "ANNOUNCED": "ANNOUNCED",
    "IN_FORCE": "IN_FORCE",
    "LIFTED": "LIFTED",
}
"""Each PolicyStage to the early-warning store's stage; None: it does not enter the policy events."""

SEVERITIES: Final = tuple(enum_names(pb.Severity))
"""MINOR, MODERATE, SEVERE, EXTREME: the order one step climbs."""


@dataclass(frozen=True, slots=True)
class PolicyEvent:
    """A received (or sent) report as one policy event of the early-warning store, marked with its origin."""

    country: str
    hs_codes: tuple[str, ...]
    measure: str
    announced: date
    effective: date
    stage: str
    origin: Country
    """The member whose mission reported it."""
    alert_id: str
    digest: bytes
    source_kind: str

    def record(self) -> dict[str, str]:
        """The row as `ingest_records(store, Kind.EVENTS, [row], source=event.source)` takes it.

        The first six keys are the events table's columns (node/ews/ingest.py);
        `origin` and `report` mark where it came from (the ingest keeps only
        the columns it knows; node/ews/reports.py keeps the origin beside the
        event, in the early-warning store's `event_reports`).
        """
        return {
            "country": self.country,
            "hs_codes": ";".join(self.hs_codes),
            "measure": self.measure,
            "announced": self.announced.isoformat(),
            "effective": self.effective.isoformat(),
            "stage": self.stage,
            "origin": self.origin,
            "report": f"{self.origin}/{self.alert_id}",
        }

    @property
    def source(self) -> str:
        """The ingest's `source` (kept in its batch): which report, from whom, by digest."""
        return f"policy report {self.origin} {self.alert_id} {self.digest.hex()[:16]}"


def policy_event(origin: Country, digest: bytes, alert: Alert) -> PolicyEvent | None:
    """The policy event a logged message makes, or None.

    None for every message that is not an ACTUAL POLICY_REPORT (an exercise
    report never raises a real detection) and for a rumour (not an
    announcement, SPEC section 7). Without an effective day the move counts
    from its announcement, as `ewx ews event add` does.
    """
    if alert.msg_type != "POLICY_REPORT" or alert.policy is None or alert.status != "ACTUAL":
        return None
    return event_of(alert.policy, origin=origin, alert_id=alert.alert_id, digest=digest)


def report_event(report: Mapping[str, Any]) -> PolicyEvent | None:
    """The policy event one report makes, from the operator API's `policy_list` row, or None.

    The rules of `policy_event` (an ACTUAL report that is not a rumour) over
    the JSON the node answers (origin, alert_id, status, digest in hex and the
    `PolicyMove` fields): `ewx ews scan` reads the reports so. A report its
    origin withdrew (`withdrawn_by`, a CANCEL) makes none. ValueError if the
    row is not a report's.
    """
    if report.get("status") != "ACTUAL" or report.get("withdrawn_by"):
        return None
    move = PolicyMove.model_validate({name: report.get(name) for name in PolicyMove.model_fields})
    return event_of(
        move,
        origin=as_country(str(report["origin"])),
        alert_id=str(report["alert_id"]),
        digest=bytes.fromhex(str(report["digest"])),
    )


def event_of(move: PolicyMove, *, origin: Country, alert_id: str, digest: bytes) -> PolicyEvent | None:
    """The policy event one report body makes (None for a rumour)."""
    stage = EWS_STAGE[move.stage]
    if stage is None:
        return None
    return PolicyEvent(
        country=move.country,
        hs_codes=tuple(move.hs_codes),
        measure=EWS_MEASURE[move.measure],
        announced=move.announced,
        effective=move.effective or move.announced,
        stage=stage,
        origin=origin,
        alert_id=alert_id,
        digest=digest,
        source_kind=move.source,
    )


def watched_pairs(watchlist: Watchlist, move: PolicyMove) -> tuple[WatchPair, ...]:
    """The watchlist pairs a report is on: its country, and a code that overlaps one of its codes."""
    return tuple(
        p
        for p in watchlist.pairs
        if p.country == move.country and any(covers(p.hs_code, c) for c in move.hs_codes)
    )


def stepped(severity: str, steps: int) -> str:
    """`severity` raised by `steps` (0 or more), at most EXTREME."""
    if severity not in SEVERITIES:
        raise ValueError(f"{severity!r} is not a severity (one of {', '.join(SEVERITIES)})")
    if not 0 <= steps <= limits.MAX_WATCHLIST_SEVERITY_STEPS:
        raise ValueError(f"severity steps must be 0-{limits.MAX_WATCHLIST_SEVERITY_STEPS}, not {steps}")
    return SEVERITIES[min(SEVERITIES.index(severity) + steps, len(SEVERITIES) - 1)]


def watchlist_severity(
    severity: str,
    *,
    hs_code: str,
    country: str,
    watchlist: Watchlist,
    steps: int = limits.WATCHLIST_SEVERITY_STEPS,
) -> str:
    """The severity of a detection that a report on (`hs_code`, `country`) triggered.

    One step (`steps`, configurable) above the rules' severity when the
    watchlist in force watches that pair, capped at EXTREME; unchanged
    otherwise. The caller applies it to detections whose policy trigger came
    from a report (node/ews evidence `policy_event`, its country being the
    detection's partner).
    """
    if watchlist.watched(hs_code, country) is None:
        return stepped(severity, 0)
    return stepped(severity, steps)
