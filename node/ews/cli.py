"""`ewx ews`: the analyst's commands (SPEC section 7).

    ewx ews ingest FILE... [--kind flows|prices|events|shares] [--skip-bad]
    ewx ews event add --country CN --hs 811292,282560 --measure EXPORT_LICENSING \\
        --announced 2023-07-03 --effective 2023-08-01 --stage IN_FORCE
    ewx ews event list
    ewx ews scan [--period YYYY-MM]
    ewx ews review
    ewx ews explain ID
    ewx ews approve ID [ID...] [--severity ... --headline ...]
    ewx ews dismiss ID --reason CODE

Ingest, scan, review, explain and dismiss work on the node's early-warning
store directly (the node may be up or down); approve publishes through the
running node's operator API, with an idempotency key made from the
detections' ids, so that an approval retried after a lost reply publishes
the alert once.
"""

from __future__ import annotations

import argparse
import contextlib
import re
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
from node.errors import ConfigError, RefusedOperation, UsageError
from node.ews.codes import PERIOD_PATTERN, DetectionState, DismissReason, Kind, Measure, Stage
from node.ews.ingest import IngestReport, ingest_file, ingest_records
from node.ews.review import Publisher, approve, detections, dismiss, open_store
from node.ews.rules import explain
from node.ews.scan import compute, scan, should_auto_publish
from node.ews.thresholds import Thresholds
from node.wire import ewx_pb2 as pb


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
                reports.append(ingest_file(store, Path(name), kind=kind, skip_bad=args.skip_bad))
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
        if args.json:
            print_json(events)
            return EXIT_OK
        if not events:
            print("no policy events")
        for e in events:
            print(
                f"{e['event_id']}  {e['country']} {e['measure']:<18} HS {e['hs_codes'].replace(';', ',')}  "
                f"announced {e['announced']} effective {e['effective']}  {e['stage']}"
            )
        return EXIT_OK

    # ------------------------------------------------------------ scan and review
    def scan(self, args: argparse.Namespace) -> int:
        """Compute every indicator, apply the rules, keep new detections as drafts."""
        config = load_config(args)
        thresholds = config.ews
        with open_store(config) as store:
            result = scan(store, thresholds, period=args.period)
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
        for d in result.detections:
            state = result.states.get(d.detection_id)
            mark = "new " if d.detection_id in result.new else ""
            extra = f" -> published {published[d.detection_id]}" if d.detection_id in published else ""
            if d.detection_id in waiting:
                extra = f" -> auto-publish failed: {waiting[d.detection_id]}"
            print(
                f"  {mark}{d.detection_id:<28} {d.severity:<8} {d.category:<15} {d.partner} {d.rule} [{state}]{extra}"
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
        if args.json:
            print_json(rows)
            return EXIT_OK
        if not rows:
            print("no drafts to review" if not args.all else "no detections")
        for row in rows:
            line = f"{row['detection_id']:<28} {row['state']:<9} {row['severity']:<8} {row['category']:<15}"
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
            again = [
                d
                for d in compute(store, thresholds, hs_codes=[row["hs_code"]])
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
    p.add_argument("files", nargs="+", metavar="FILE")
    add_config(p)
    p.add_argument(
        "--kind", choices=[k.value for k in Kind], help="the kind of data (default: from the header)"
    )
    p.add_argument("--skip-bad", action="store_true", help="store the good rows and report each skipped one")
    p.add_argument("--json", action="store_true", help="machine output")
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
    p.add_argument("--measure", required=True, choices=[m.value for m in Measure])
    p.add_argument("--announced", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--effective", metavar="YYYY-MM-DD", help="default: the announcement date")
    p.add_argument("--stage", choices=[s.value for s in Stage], default=Stage.ANNOUNCED.value)
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
        "--period shows only that month's detections, and its indicators for every code.",
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
    p.add_argument("detection_id", metavar="ID")
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
    p.add_argument("detection_ids", nargs="+", metavar="ID")
    add_config(p)
    p.add_argument("--status", choices=choices(pb.Status), default="ACTUAL", help="default: ACTUAL")
    p.add_argument("--to", type=parse_recipients, metavar="CC[,CC]", help="recipients (default: both peers)")
    add_alert_info(p, required=False)
    p.set_defaults(func=c.approve)

    p = sub.add_parser("dismiss", help="set a draft aside with a coded reason")
    p.add_argument("detection_id", metavar="ID")
    add_config(p)
    p.add_argument("--reason", required=True, choices=[r.value for r in DismissReason])
    p.set_defaults(func=c.dismiss)


def _period(value: str) -> str:
    if re.fullmatch(PERIOD_PATTERN, value) is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month YYYY-MM (ASCII digits)")
    return value
