"""`ewx ews`: the analyst's commands (SPEC section 7).

    ewx ews ingest FILE... [--kind flows|prices|events|shares] [--skip-bad] [--quiet]
    ewx ews event add --country CN --hs 811292,282560 --measure EXPORT_LICENSING \\
        --announced 2023-07-03 --effective 2023-08-01 --stage IN_FORCE
    ewx ews event list
    ewx ews scan [--period YYYY-MM]
    ewx ews review
    ewx ews explain ID
    ewx ews approve ID [ID...] [--severity ... --headline ...]
    ewx ews dismiss ID --reason CODE
    ewx ews propose-watch ID [ID...] [--reason CODE]

Ingest, scan, review, explain and dismiss work on the node's early-warning
store directly (the node may be up or down); approve publishes through the
running node's operator API, with an idempotency key made from the
detections' ids, so that an approval retried after a lost reply publishes
the alert once.

Scan first asks the running node for the members' policy reports and the
watchlist in force (operator ops `policy_list`, `watchlist`): each report
that announces a move becomes one of this node's policy events, marked with
its origin (node/ews/reports.py), and the watchlist is kept in the store
(node/ews/watch.py). With the node down the scan goes on with what the store
holds and says so. Propose-watch proposes a detection's pair for the
watchlist through the node (operator op `propose_watch`).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.cli._alert_fields import (
    add_alert_info,
    add_config,
    alert_info_from,
    choices,
    parse_recipients,
    publish_request,
)
from node.cli._common import EXIT_OK, load_config, operator_client, print_json
from node.cli._progress import add_quiet, progress_bar
from node.errors import ConfigError, EwxError, RefusedOperation, UsageError
from node.ews.codes import PERIOD_PATTERN, DetectionState, DismissReason, Kind, Measure, Stage
from node.ews.ingest import IngestReport, ingest_file, ingest_records
from node.ews.reports import ReportedEvent, ReportsTaken, reports_of_events, take_reports
from node.ews.review import Publisher, approve, detections, dismiss, open_store
from node.ews.rules import explain
from node.ews.scan import ScanResult, compute, scan, should_auto_publish, watch_flag
from node.ews.store import EwsStore
from node.ews.thresholds import Thresholds
from node.ews.watch import WatchView, keep_watchlist, stored_watchlist, watchlist_by_digest
from node.message import WATCH_REASONS_FOR, pb
from node.operator import OperatorClient
from node.trilateral._policy import report_event

_DEFAULT_HS_EDITION = "HS2022"
"""The edition `ews propose-watch` names for watchlist version 1 (later versions keep theirs)."""
_ADD_REASONS = sorted(WATCH_REASONS_FOR["add"])


@dataclass(frozen=True, slots=True)
class NodeSync:
    """What the running node said before a scan (or why it could not)."""

    reachable: bool
    reports: list[ReportedEvent] = field(default_factory=list)
    """The reports that are policy events (ACTUAL announcements), in the node's log order."""
    watchlist: WatchView | None = None
    """The version in force (None: the node was not asked)."""
    not_events: int = 0
    """Reports that are no policy events: EXERCISE or TEST, or rumoured."""
    unreadable: list[str] = field(default_factory=list)
    down: str | None = None
    """Why the node could not be asked."""


def from_node(args: argparse.Namespace) -> NodeSync:
    """The node's policy reports as policy events, and its watchlist in force; `down` if it is not running."""
    return sync_from(operator_client(args))


def sync_from(client: OperatorClient) -> NodeSync:
    """What the node behind `client` holds for a scan: its reports as policy events, its watchlist."""
    try:
        rows = client.call("policy_list")
        current = client.call("watchlist")["current"]
    except ConfigError as exc:  # not running, or its socket unreachable
        return NodeSync(reachable=False, down=str(exc))
    reports, not_events, unreadable = reported_events(rows)
    return NodeSync(
        reachable=True,
        reports=reports,
        watchlist=WatchView.from_current(current),
        not_events=not_events,
        unreadable=unreadable,
    )


def _report_scan(args: argparse.Namespace, seconds: float, result: ScanResult) -> None:
    """Tell the node what the scan took and found, for its metrics (gateway/metrics.py); a node that
    cannot take it (stopped since, or older) costs the scan nothing."""
    counts = Counter(d.severity for d in result.detections)
    try:
        operator_client(args).call("ews_scanned", seconds=round(seconds, 3), detections=dict(counts))
    except EwxError as exc:
        print(f"note: the node did not take the scan's figures for its metrics: {exc}", file=sys.stderr)


def scan_synced(
    store: EwsStore, sync: NodeSync, thresholds: Thresholds, *, me: str, period: str | None = None
) -> tuple[ScanResult, ReportsTaken | None]:
    """`ewx ews scan`'s order: take the node's reports, keep its watchlist, then scan.

    The reports taken are None when the node could not be asked; the scan then
    uses the events and the last watchlist the store holds.
    """
    taken = take_reports(store, sync.reports, me=me) if sync.reachable else None
    watch = keep_watchlist(store, sync.watchlist) if sync.watchlist is not None else None
    return scan(store, thresholds, period=period, watch=watch), taken


def reported_events(rows: list[dict[str, Any]]) -> tuple[list[ReportedEvent], int, list[str]]:
    """The operator op `policy_list`'s rows as policy events (node.trilateral.report_event's rules).

    Returns the events in the rows' order, how many rows are no policy event
    (EXERCISE or TEST, or rumoured), and each row that is not a report's, with why.
    """
    reports: list[ReportedEvent] = []
    unreadable: list[str] = []
    not_events = 0
    for row in rows:
        try:
            event = report_event(row)
        except (KeyError, TypeError, ValueError) as exc:
            unreadable.append(f"{row.get('origin')}/{row.get('alert_id')}: {str(exc).splitlines()[0]}")
            continue
        if event is None:
            not_events += 1
            continue
        reports.append(
            ReportedEvent(
                record=event.record(),
                origin=event.origin,
                alert_id=event.alert_id,
                digest=event.digest.hex(),
                source=event.source,
            )
        )
    return reports, not_events, unreadable


def _size(path: Path) -> int | None:
    """The file's size for the progress bar (None if unknown: ingest_file says what is wrong)."""
    try:
        return path.stat().st_size
    except OSError:
        return None


class EwsCommands:
    """The command functions of `ewx ews`."""

    def _publisher(self, args: argparse.Namespace) -> Publisher:
        return lambda **fields: publish_request(args, **fields)

    # ------------------------------------------------------------ ingest and events
    def ingest(self, args: argparse.Namespace) -> int:
        """Validate and store indicator files, each whole or not at all."""
        config = load_config(args)
        kind = Kind(args.kind) if args.kind else None
        reports: list[IngestReport] = []
        with open_store(config) as store:
            for name in args.files:
                path = Path(name)
                with progress_bar(
                    args,
                    total=_size(path),
                    unit="B",
                    in_bytes=True,
                    label=f"read {path.name}",
                    finishing=f"check and store {path.name}",
                ) as bar:
                    reports.append(ingest_file(store, path, kind=kind, skip_bad=args.skip_bad, progress=bar))
        rechecked = None
        if any(r.added or r.replaced for r in reports):
            # The running node checks its peers' alerts against the new data (if it runs).
            with contextlib.suppress(ConfigError):
                rechecked = int(operator_client(args).call("recheck_exposure")["queued"])
        if args.json:
            print_json([r.to_json() for r in reports])
        else:
            for report in reports:
                print(report.to_text())
            if rechecked:
                print(f"the node checks {rechecked} peer alerts against the new data")
        return EXIT_OK

    def event_add(self, args: argparse.Namespace) -> int:
        """Record one policy move, as a mission reported it."""
        config = load_config(args)
        record = {
            "country": args.country,
            "hs_codes": args.hs.replace(",", ";"),
            "measure": args.measure,
            "announced": args.announced,
            "effective": args.effective or args.announced,
            "stage": args.stage,
        }
        with open_store(config) as store:
            report = ingest_records(store, Kind.EVENTS, [record], source="event add")
            event = store.rows(
                "SELECT event_id FROM events WHERE country = ? AND measure = ? AND CAST(announced AS VARCHAR) = ? "
                "ORDER BY batch DESC LIMIT 1",
                [args.country.upper(), args.measure.upper(), args.announced],
            )
        what = (
            "recorded" if report.added else ("updated" if report.replaced else "unchanged (already recorded)")
        )
        print(f"{event[0]['event_id'] if event else '?'} {what}")
        return EXIT_OK

    def event_list(self, args: argparse.Namespace) -> int:
        """Every policy move on record."""
        config = load_config(args)
        with open_store(config) as store:
            events = store.rows(
                "SELECT event_id, country, hs_codes, measure, CAST(announced AS VARCHAR) AS announced, "
                "CAST(effective AS VARCHAR) AS effective, stage, batch FROM events ORDER BY announced, event_id"
            )
            reports = reports_of_events(store)
        for e in events:
            e["reports"] = reports.get(e["event_id"], [])
        if args.json:
            print_json(events)
            return EXIT_OK
        if not events:
            print("no policy events")
        for e in events:
            origins = ", ".join(f"{r['origin']} {r['alert_id']}" for r in e["reports"])
            print(
                f"{e['event_id']}  {e['country']} {e['measure']:<18} HS {e['hs_codes'].replace(';', ',')}  "
                f"announced {e['announced']} effective {e['effective']}  {e['stage']}"
                + (f"  reported by {origins}" if origins else "")
            )
        return EXIT_OK

    # ------------------------------------------------------------ scan and review
    def scan(self, args: argparse.Namespace) -> int:
        """Take the node's policy reports and watchlist, compute every indicator, apply the rules,
        keep new detections as drafts."""
        config = load_config(args)
        thresholds = config.ews
        sync = from_node(args)
        started = time.monotonic()
        with open_store(config) as store:
            result, taken = scan_synced(store, sync, thresholds, me=config.node_id, period=args.period)
        if sync.reachable:
            _report_scan(args, time.monotonic() - started, result)
        notes = [f"policy report {r}; not taken" for r in sync.unreadable + (taken.refused if taken else [])]
        if not sync.reachable:
            notes.insert(0, _offline_note(sync, result.watchlist))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        published: dict[str, str] = {}
        waiting: dict[str, str] = {}
        for detection in result.detections:
            if detection.detection_id in result.new and should_auto_publish(detection, thresholds):
                try:
                    published[detection.detection_id] = approve(
                        config, [detection.detection_id], publish=self._publisher(args)
                    )
                except (RefusedOperation, UsageError) as exc:
                    waiting[detection.detection_id] = str(exc)
        if args.json:
            data = result.to_json()
            data["node"] = {"reachable": sync.reachable, "notes": notes, "not_policy_events": sync.not_events}
            data["policy_reports"] = None if taken is None else taken.to_json()
            data["auto_published"] = published
            data["auto_publish_failed"] = waiting
            print_json(data)
            return EXIT_OK
        print(
            f"scanned {result.codes} codes, {result.months} code-months (data version {result.data_version}); "
            f"{len(result.detections)} detections"
            + (f" in {result.period}" if result.period else "")
            + f", {len(result.new)} new"
        )
        print(_sync_line(sync, taken, result.watchlist))
        for d in result.detections:
            state = result.states.get(d.detection_id)
            mark = "new " if d.detection_id in result.new else ""
            extra = f" -> published {published[d.detection_id]}" if d.detection_id in published else ""
            if d.detection_id in waiting:
                extra = f" -> auto-publish failed: {waiting[d.detection_id]}"
            print(
                f"  {mark}{d.detection_id:<28} {d.severity:<8} {d.category:<15} {d.partner} {d.rule} [{state}]"
                f"  {_watch_text(result.watchlist, d.hs_code, d.partner, d.evidence)}{extra}"
            )
        if result.indicators:
            print(f"indicators for {result.period}:")
            print("  hs_code  top  cr1   hhi   base  z_vol  z_uv   z_top  yoy    event")
            for row in result.indicators:
                print(
                    f"  {row['hs_code']}  {row['top_partner'] or '--':<3}  {_f(row['cr1'])}  {_f(row['hhi'])}  "
                    f"{row['base_partner'] or '--':<4}  {_f(row['z_volume'])}  {_f(row['z_unit_value'])}  "
                    f"{_f(row['z_partner'])}  {_f(row['yoy'])}  "
                    + (
                        f"{row['event_country']} {row['event_measure']} {row['days_since_event']}d"
                        if row["event_id"]
                        else "-"
                    )
                )
        return EXIT_OK

    def review(self, args: argparse.Namespace) -> int:
        """The drafts waiting for an analyst (all detections with --all)."""
        config = load_config(args)
        with open_store(config) as store:
            rows = detections(store, state=None if args.all else DetectionState.DRAFT.value)
            watch = stored_watchlist(store)
        for row in rows:
            row.update(watch_flag(watch, row["hs_code"], row["partner"]))
        if args.json:
            print_json(rows)
            return EXIT_OK
        if not rows:
            print("no drafts to review" if not args.all else "no detections")
        for row in rows:
            line = f"{row['detection_id']:<28} {row['state']:<9} {row['severity']:<8} {row['category']:<15}"
            line += f" {_watch_text(watch, row['hs_code'], row['partner'], row['evidence'])}"
            if row["alert_id"]:
                line += f" alert {row['alert_id']}"
            if row["dismiss_reason"]:
                line += f" dismissed {row['dismiss_reason']}"
            print(line)
            print("  " + explain(row["evidence"]).replace("\n", "\n  "))
        return EXIT_OK

    def explain(self, args: argparse.Namespace) -> int:
        """Reproduce one detection from the data now in the store, and say why it fired."""
        config = load_config(args)
        with open_store(config) as store:
            rows = detections(store, [args.detection_id])
            if not rows:
                raise RefusedOperation(f"no detection {args.detection_id} in this node's store")
            row = rows[0]
            thresholds = Thresholds.model_validate(row["evidence"]["thresholds"])
            # The watchlist it was found with (none before issue 12), kept in the store.
            watch = watchlist_by_digest(store, (row["evidence"].get("watchlist") or {}).get("digest"))
            again = [
                d
                for d in compute(store, thresholds, hs_codes=[row["hs_code"]], watch=watch)
                if d.detection_id == row["detection_id"]
            ]
            version = store.data_version()
        reproduced = bool(again) and again[0].evidence["values"] == row["evidence"]["values"]
        if args.json:
            print_json(
                {
                    "detection": row,
                    "reproduced": reproduced,
                    "data_version_now": version,
                    "recomputed": again[0].evidence if again else None,
                }
            )
            return EXIT_OK
        print(explain(row["evidence"]))
        print(f"  state {row['state']}" + (f", published as {row['alert_id']}" if row["alert_id"] else ""))
        if reproduced:
            print(f"  reproduced: the data now in the store (version {version}) gives the same figures")
        elif again:
            print(
                f"  NOT the same figures now: the data changed since (version {row['data_version']} -> {version})"
            )
            print("  now: " + explain(again[0].evidence).replace("\n", "\n  "))
        else:
            print(
                f"  does NOT fire on the data now in the store (version {row['data_version']} -> {version})"
            )
        return EXIT_OK

    def approve(self, args: argparse.Namespace) -> int:
        """Publish one ALERT from one or more drafts (optionally edited); prints its id."""
        config = load_config(args)
        edits = {k: v for k, v in vars(args).items() if k in _EDIT_FLAGS and v is not None}
        alert_id = approve(
            config,
            args.detection_ids,
            publish=self._publisher(args),
            edit=(lambda info: alert_info_from(args, base=info)) if edits else None,
            edits=edits or None,
            status=args.status,
            recipients=args.to,
        )
        print(alert_id)
        return EXIT_OK

    def dismiss(self, args: argparse.Namespace) -> int:
        """Set a draft aside with a coded reason; it is kept, with its evidence."""
        dismiss(load_config(args), args.detection_id, reason=DismissReason(args.reason))
        print(f"{args.detection_id} dismissed ({args.reason})")
        return EXIT_OK

    def propose_watch(self, args: argparse.Namespace) -> int:
        """Propose the detections' (HS code, partner) pairs for the watchlist; prints the proposal's id."""
        config = load_config(args)
        ids = sorted(dict.fromkeys(args.detection_ids))
        with open_store(config) as store:
            rows = detections(store, ids)
        missing = sorted(set(ids) - {r["detection_id"] for r in rows})
        if missing:
            raise RefusedOperation(f"no detection {', '.join(missing)} in this node's store")
        client = operator_client(args)
        state = client.call("watchlist")
        watch = WatchView.from_current(state["current"])
        wanted: dict[tuple[str, str], list[str]] = {}
        problems = []
        for row in rows:
            pair = watch.watched(row["hs_code"], row["partner"])
            if row["partner"] == "ZZ":
                problems.append(f"{row['detection_id']} has no known partner country (ZZ)")
            elif pair is not None:
                problems.append(
                    f"{row['detection_id']}: {row['hs_code']} from {row['partner']} is already on watchlist "
                    f"version {watch.version} (as {pair.key}, {pair.reason})"
                )
            else:
                wanted.setdefault((row["hs_code"], row["partner"]), []).append(row["detection_id"])
        policy = any(row["evidence"].get("policy_event") for row in rows)
        reason = args.reason or ("POLICY_RISK" if policy else "SUPPLY_CONCENTRATION")
        add = [{"hs_code": hs, "country": cc, "reason": reason} for hs, cc in sorted(wanted)]
        for version in state["versions"]:
            if version["state"] != "pending":
                continue
            if not problems and version["origin"] == config.node_id and version["add"] == add:
                # This very proposal, pending: a retry (after a lost reply, say) names it again.
                print(
                    f"already proposed: watchlist version {version['version']}, pending, signed by "
                    f"{','.join(version['signers'])}",
                    file=sys.stderr,
                )
                print(version["alert_id"])
                return EXIT_OK
            for added in version["add"]:
                if (added["hs_code"], added["country"]) in wanted:
                    problems.append(
                        f"{added['hs_code']}:{added['country']} is already proposed in version "
                        f"{version['version']} ({version['origin']} {version['alert_id']}), pending: "
                        f"sign it with `ewx watchlist accept {version['alert_id']}`"
                    )
        if problems:
            raise RefusedOperation("; ".join(problems))
        request: dict[str, Any] = {
            "add": add,
            "remove": [],
            # A retry after a lost reply proposes once; the version in force is part of the key, so that
            # the same detection proposed again after its pair left the watchlist is a new proposal.
            "idempotency_key": args.idempotency_key or f"ews-propose-watch:v{watch.version}:" + "+".join(ids),
        }
        if args.hs_edition or watch.version == 0:
            request["hs_edition"] = args.hs_edition or _DEFAULT_HS_EDITION
        result = client.call("propose_watch", **request)
        pairs = ", ".join(f"{hs}:{cc}" for hs, cc in sorted(wanted))
        print(
            f"proposed watchlist version {watch.version + 1}: add {pairs} ({reason}); "
            "in force once every member has signed it (`ewx watchlist show`)",
            file=sys.stderr,
        )
        print(result["alert_id"])
        return EXIT_OK


_EDIT_FLAGS = frozenset(
    {
        "category",
        "severity",
        "urgency",
        "certainty",
        "headline",
        "impact",
        "duration_days",
        "effective",
        "expires",
        "source_country",
        "affected_country",
        "hs",
        "hs_edition",
    }
)


def _f(value: object) -> str:
    return f"{value:5.2f}" if isinstance(value, int | float) else "  -  "


def _watch_text(watch: WatchView, hs_code: str, partner: str, evidence: dict[str, Any]) -> str:
    """A detection's watchlist flag in words: on it (and the step it made), not on it, or none in force."""
    if watch.version == 0:
        return "watchlist: none in force"
    pair = watch.watched(hs_code, partner)
    if pair is None:
        return f"watchlist v{watch.version}: not on it"
    text = f"watchlist v{watch.version}: on it ({pair.key})"
    step = evidence.get("watchlist_step")
    if step:
        by = ",".join((evidence.get("policy_event") or {}).get("reported_by") or [])
        text += f", {step['from']} +{step['steps']} (report by {by})"
    return text


def _sync_line(sync: NodeSync, taken: ReportsTaken | None, watch: WatchView) -> str:
    """What the scan took from the node: its reports, and the watchlist it used."""
    if watch.version:
        used = f"watchlist version {watch.version} ({len(watch.pairs)} pairs)"
    else:
        used = "no watchlist in force"
    if taken is None:
        return f"node not running: no new policy reports; {used}" + (
            f" as the node gave it at {watch.seen_at}" if watch.seen_at else ""
        )
    line = f"policy reports from the node: {_n(taken.held, 'announcement')}"
    if sync.not_events:
        line += f" (and {sync.not_events} exercise, test or rumoured, not taken)"
    line += f", {len(taken.taken)} new"
    if taken.taken:
        line += f" ({taken.added} added, {taken.replaced} updated, {taken.unchanged} already held as events)"
    return f"{line}; {used}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _offline_note(sync: NodeSync, watch: WatchView) -> str:
    kept = (
        f"watchlist version {watch.version} as the node gave it at {watch.seen_at}"
        if watch.seen_at
        else "no watchlist (the node never gave one)"
    )
    return (
        f"{sync.down}; the scan uses the policy events this store already holds and the {kept}; "
        "start the node (`ewx serve`) to take its new policy reports"
    )


def add_ews_commands(commands: Any) -> None:
    """Register `ewx ews ...` on the top-level parser."""
    c = EwsCommands()
    group = commands.add_parser(
        "ews", help="early warning: ingest indicator data, scan, review, approve (SPEC section 7)"
    )
    parser_class = type(group)  # the CLI's own parser class: exit 2 and one line on a usage error
    sub = group.add_subparsers(dest="ews", required=True, metavar="COMMAND", parser_class=parser_class)

    p = sub.add_parser(
        "ingest",
        help="validate and store indicator data (CSV, JSON lines, UN Comtrade export); all or nothing per file",
        description="Read each FILE (CSV with a header row, or JSON lines: .jsonl/.ndjson) of one kind: "
        "flows (period, hs_code, partner, import_value_usd, quantity[, unit]), prices (period, hs_code, "
        "price[, currency, unit]), events (country, hs_codes, measure, announced, effective, stage) or "
        "shares (year, hs_code, country, share). A UN Comtrade export (period, reporterISO, partnerISO, "
        "cmdCode, flowCode, primaryValue, netWgt/qty) is read as flows: imports only, World and breakdown "
        "rows ignored. Other columns are ignored. A file with a bad row is refused whole (exit 2) naming "
        "the file, row, column and reason, unless --skip-bad. The same rows again change nothing; a "
        "corrected row replaces the stored one, and both are kept in the store's replacements.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="CSV or JSON-lines files of flows, prices, events or supply shares, or a UN Comtrade export",
    )
    add_config(p)
    p.add_argument(
        "--kind", choices=[k.value for k in Kind], help="the kind of data (default: from the header)"
    )
    p.add_argument("--skip-bad", action="store_true", help="store the good rows and report each skipped one")
    p.add_argument("--json", action="store_true", help="machine output")
    add_quiet(p)
    p.set_defaults(func=c.ingest)

    event = sub.add_parser("event", help="policy moves reported by a mission").add_subparsers(
        dest="ews_event", required=True, metavar="COMMAND", parser_class=parser_class
    )
    p = event.add_parser(
        "add",
        help="record a policy move (country, HS codes, measure, dates, stage); prints its event id",
        description="Record one policy move by a country on HS codes. The same country, measure, "
        "announcement date and codes name the same event: adding it again with another stage or "
        "effective date updates it (the old values are kept in the store's replacements).",
    )
    add_config(p)
    p.add_argument(
        "--country", required=True, metavar="CC", help="the country taking the measure (ISO alpha-2)"
    )
    p.add_argument("--hs", required=True, metavar="CODE[,CODE]", help="HS codes of 4 or 6 digits")
    p.add_argument(
        "--measure", required=True, choices=[m.value for m in Measure], help="what kind of measure"
    )
    p.add_argument("--announced", required=True, metavar="YYYY-MM-DD", help="the day it was announced")
    p.add_argument("--effective", metavar="YYYY-MM-DD", help="default: the announcement date")
    p.add_argument(
        "--stage",
        choices=[s.value for s in Stage],
        default=Stage.ANNOUNCED.value,
        help=f"where it stands (default {Stage.ANNOUNCED.value})",
    )
    p.set_defaults(func=c.event_add)
    p = event.add_parser("list", help="every policy move on record")
    add_config(p)
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=c.event_list)

    p = sub.add_parser(
        "scan",
        help="compute the indicators, apply the rules, keep new detections as drafts",
        description="Compute per HS-6 code and month: CR1 and top partner, HHI and its 12-month change, "
        "robust z-scores of volume and unit value (median and MAD over the trailing months), month-on-month "
        "and year-on-year change, days since a policy move; then the rules of the node's [ews] thresholds. "
        "New detections are kept as drafts (those at or above [ews] auto_publish are published at once). "
        "--period shows only that month's detections, and its indicators for every code. "
        "First the running node is asked for the members' policy reports and the watchlist in force: "
        "each ACTUAL report of an announced move becomes one of this node's policy events, marked with "
        "its origin (once: the same report again adds nothing), and a detection whose policy trigger is a "
        "peer's report on a watchlist pair is [ews] watchlist_steps (default 1) severity steps higher. "
        "Each detection says whether its HS code and partner are on the watchlist in force. With the node "
        "down the scan uses what the store holds (the watchlist the node last gave) and says so.",
    )
    add_config(p)
    p.add_argument("--period", metavar="YYYY-MM", type=_period, help="one month only")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=c.scan)

    p = sub.add_parser("review", help="the drafts waiting for review, with their evidence")
    add_config(p)
    p.add_argument("--all", action="store_true", help="every detection, published and dismissed too")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=c.review)

    p = sub.add_parser("explain", help="reproduce one detection from the data and explain it")
    p.add_argument("detection_id", metavar="ID", help="a detection's id, as ewx ews review lists it")
    add_config(p)
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=c.explain)

    p = sub.add_parser(
        "approve",
        help="publish one ALERT from one or more drafts (one source country); prints its id",
        description="Build the SPEC section 3 alert from the drafts (codes, source country, severity, "
        "category, a supply-impact band; never a figure), apply any edits given, and publish it through "
        "the running node. Retrying the same approval publishes nothing new and prints the same id.",
    )
    p.add_argument(
        "detection_ids", nargs="+", metavar="ID", help="detection ids, as ewx ews review lists them"
    )
    add_config(p)
    p.add_argument("--status", choices=choices(pb.Status), default="ACTUAL", help="default: ACTUAL")
    p.add_argument("--to", type=parse_recipients, metavar="CC[,CC]", help="recipients (default: both peers)")
    add_alert_info(p, required=False)
    p.set_defaults(func=c.approve)

    p = sub.add_parser("dismiss", help="set a draft aside with a coded reason")
    p.add_argument("detection_id", metavar="ID", help="the draft's detection id")
    add_config(p)
    p.add_argument(
        "--reason", required=True, choices=[r.value for r in DismissReason], help="why it is set aside"
    )
    p.set_defaults(func=c.dismiss)

    p = sub.add_parser(
        "propose-watch",
        help="propose a detection's HS code and partner country for the watchlist; prints the proposal's id",
        description="Propose the next watchlist version through the running node: the version in force "
        "with each detection's pair (its HS-6 code, its partner country) added. Refused if a detection is "
        "unknown, if its pair is already on the watchlist in force (a 4-digit pair watches its 6-digit "
        "codes) or already added by a pending proposal. The proposal is in force once every member has "
        "signed it (`ewx watchlist show`, `ewx watchlist accept ID` on the peers). A retry with the same "
        "detections on the same version in force proposes nothing new and prints the same id, as does "
        "running it again while this node's own proposal of those pairs is pending.",
    )
    p.add_argument(
        "detection_ids", nargs="+", metavar="ID", help="detection ids, as ewx ews review lists them"
    )
    add_config(p)
    p.add_argument(
        "--reason",
        choices=_ADD_REASONS,
        metavar="CODE",
        help="why the pair is watched, one of %(choices)s (default: POLICY_RISK for a detection a "
        "policy move triggered, else SUPPLY_CONCENTRATION)",
    )
    p.add_argument(
        "--hs-edition",
        choices=choices(pb.HsEdition),
        help=f"the HS edition of the codes (watchlist version 1 only; default {_DEFAULT_HS_EDITION})",
    )
    p.add_argument("--idempotency-key", help="a retry with the same key proposes nothing new")
    p.set_defaults(func=c.propose_watch)


def _period(value: str) -> str:
    if re.fullmatch(PERIOD_PATTERN, value) is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month YYYY-MM (ASCII digits)")
    return value
