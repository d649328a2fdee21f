"""Members' policy-move reports into this node's own policy events (issue 12).

A POLICY_REPORT that announces a move (node.trilateral.policy_event: an
ACTUAL report, not a rumour) is one row of the `events` table, taken through
the same checks and keys as `ewx ews event add`: the same move (country,
measure, announcement, codes) is the same event, whoever entered it, and a
report with a new stage updates it. The report itself is kept in
`event_reports` beside it: its origin, id and digest, the event it names,
whether a peer sent it (another member than this node) and the batch that
took it, all in one transaction with the event. A report already there is
not taken again: the same report twice adds nothing, not even a batch.

The engine sits below the message layer (README, "Layers"): the CLI turns
the node's reports into `ReportedEvent`s (node.trilateral.PolicyEvent's
record and source), this module stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from node.errors import UsageError
from node.ews.codes import Kind
from node.ews.ingest import EVENT_ID_SQL, ingest_records
from node.ews.store import EwsStore


@dataclass(frozen=True, slots=True)
class ReportedEvent:
    """One report as a policy event: the events row and where it came from."""

    record: Mapping[str, str]
    """country, hs_codes, measure, announced, effective, stage (node.trilateral.PolicyEvent.record())."""
    origin: str
    alert_id: str
    digest: str
    """The report's SHA-256 digest in hex."""
    source: str
    """The batch's source (node.trilateral.PolicyEvent.source)."""

    @property
    def name(self) -> str:
        """`ORIGIN/ID`."""
        return f"{self.origin}/{self.alert_id}"


@dataclass(slots=True)
class ReportsTaken:
    """What taking the node's reports did."""

    held: int = 0
    """Reports that are policy events (ACTUAL announcements) the node holds."""
    taken: list[str] = field(default_factory=list)
    """`ORIGIN/ID` of each report taken now (the others were taken before)."""
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    refused: list[str] = field(default_factory=list)
    """Each report the early-warning checks refused, with the reason (it is tried again next scan)."""

    def to_json(self) -> dict[str, Any]:
        """As `ewx ews scan --json` prints it."""
        return {
            "held": self.held,
            "taken": self.taken,
            "added": self.added,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "refused": self.refused,
        }


def take_reports(
    store: EwsStore, reports: Sequence[ReportedEvent], *, me: str, now: datetime | None = None
) -> ReportsTaken:
    """Store each report not taken yet as a policy event, in the order given (the node's log order)."""
    done = {
        (r["origin"], r["alert_id"], r["digest"])
        for r in store.rows("SELECT origin, alert_id, digest FROM event_reports")
    }
    result = ReportsTaken(held=len(reports))
    at = (now or datetime.now(UTC)).isoformat()
    for report in reports:
        if (report.origin, report.alert_id, report.digest) in done:
            continue

        def link(store: EwsStore, batch: int, report: ReportedEvent = report) -> None:
            store.db.execute(
                "INSERT INTO event_reports (origin, alert_id, digest, event_id, peer, batch, taken_at) "
                f"SELECT ?, ?, ?, {EVENT_ID_SQL}, ?, ?, ? FROM _ews_new",
                [report.origin, report.alert_id, report.digest, report.origin != me, batch, at],
            )

        try:
            ingested = ingest_records(
                store, Kind.EVENTS, [dict(report.record)], source=report.source, now=now, then=link
            )
        except UsageError as exc:  # IngestRefused, FileRefused: this report only
            result.refused.append(f"{report.name}: {exc}")
            continue
        done.add((report.origin, report.alert_id, report.digest))
        result.taken.append(report.name)
        result.added += ingested.added
        result.replaced += ingested.replaced
        result.unchanged += ingested.unchanged
    return result


def reports_of_events(store: EwsStore) -> dict[str, list[dict[str, Any]]]:
    """Each event's reports (origin, alert_id, peer), by event id, in the order taken."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in store.rows(
        "SELECT event_id, origin, alert_id, peer FROM event_reports ORDER BY batch, origin, alert_id"
    ):
        out.setdefault(row["event_id"], []).append(
            {"origin": row["origin"], "alert_id": row["alert_id"], "peer": row["peer"]}
        )
    return out
