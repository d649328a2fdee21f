"""`ewx alert raise/update/cancel/ack/error/respond/consult/list/show`: publish and read alerts.

The flags that shape an alert's info are node/cli/_alert_fields.py, shared with
`ewx ews approve`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from node.cli._alert_fields import (
    add_alert_info,
    alert_info_from,
    choices,
    parse_recipients,
    publish_request,
)
from node.cli._common import EXIT_OK, load_config, operator_client, print_json
from node.errors import RefusedOperation, UsageError
from node.files import write_atomically
from node.ids import Country
from node.limits import OPERATOR_PAGE_DEFAULT, OPERATOR_PAGE_MAX
from node.message import pb
from node.operator import parse_cursor
from node.parsing import cli_int, flag, parse_ago, parse_country
from node.store import ALERT_STATES


def _publish(args: argparse.Namespace, **fields: Any) -> int:
    if getattr(args, "to", None) is not None:
        fields["recipients"] = args.to
    if getattr(args, "id", None):
        fields["alert_id"] = args.id
    if getattr(args, "idempotency_key", None):
        fields["idempotency_key"] = args.idempotency_key
    result = publish_request(args, status=args.status, **fields)
    print(result["alert_id"])
    return EXIT_OK


def cmd_alert_raise(args: argparse.Namespace) -> int:
    """Publish a new ALERT (the parser fills RAISE_DEFAULTS in)."""
    return _publish(args, msg_type="ALERT", info=alert_info_from(args))


def _find(args: argparse.Namespace, alert_id: str, origin: Country | None) -> dict[str, Any]:
    wanted = {"alert_id": alert_id} if origin is None else {"alert_id": alert_id, "origin": origin}
    matches = operator_client(args).alerts(**wanted)  # one per origin at most: the node looks it up by key
    if not matches:
        raise RefusedOperation(f"no alert {alert_id} is known to this node")
    if len(matches) > 1:
        raise UsageError(f"{alert_id} exists from several origins; give --origin")
    return dict(matches[0])


def cmd_alert_update(args: argparse.Namespace) -> int:
    """Publish an UPDATE of one of this node's alerts (unchanged fields carried over)."""
    base = operator_client(args).call("show", origin=load_config(args).node_id, alert_id=args.alert_id)
    info = alert_info_from(args, base=base.get("info") or {})
    return _publish(
        args, msg_type="UPDATE", reference={"origin": base["origin"], "alert_id": args.alert_id}, info=info
    )


def cmd_alert_cancel(args: argparse.Namespace) -> int:
    """Publish a CANCEL of one of this node's alerts."""
    me = load_config(args).node_id  # this node's own alert: its id is in the config
    return _publish(
        args, msg_type="CANCEL", reference={"origin": me, "alert_id": args.alert_id}, reason=args.reason
    )


def _peer_ref(args: argparse.Namespace) -> dict[str, str]:
    if args.origin:  # named in full: the node itself refuses an unknown reference
        return {"origin": args.origin, "alert_id": args.alert_id}
    found = _find(args, args.alert_id, args.origin)
    return {"origin": found["origin"], "alert_id": found["alert_id"]}


def cmd_alert_ack(args: argparse.Namespace) -> int:
    """Publish an ACK of a peer's alert."""
    return _publish(args, msg_type="ACK", reference=_peer_ref(args), reason=args.reason)


def cmd_alert_error(args: argparse.Namespace) -> int:
    """Publish an ERROR about a peer's alert."""
    return _publish(args, msg_type="ERROR", reference=_peer_ref(args), reason=args.reason)


def cmd_alert_respond(args: argparse.Namespace) -> int:
    """Publish a RESPONSE to an alert: measures taken, assistance offered or requested."""
    response = {
        "measures": args.measure,
        "assistance": args.assistance,
        "assistance_measures": args.assistance_measure or [],
        "expected_duration_days": args.duration_days,
    }
    reference = _peer_ref(args)
    if args.with_exposure:
        shown = operator_client(args).call("show", **reference)
        exposure = shown.get("local_exposure")
        if not exposure or not exposure.get("share_band"):
            raise RefusedOperation(
                f"no local exposure to share for {reference['origin']}/{reference['alert_id']}: "
                + ("not computed yet" if not exposure else "this node imports none of its codes")
            )
        response["own_exposure"] = exposure["share_band"]  # the band only: never a figure
    return _publish(args, msg_type="RESPONSE", reference=reference, response=response)


def cmd_alert_consult(args: argparse.Namespace) -> int:
    """Publish a CONSULT request on a SEVERE or EXTREME alert."""
    consult = {
        "impact": args.impact,
        "cause": args.cause,
        "expected_duration_days": args.duration_days,
        "sectors": args.sector,
        "measures_taken": args.measure_taken or [],
        "assistance_wanted": args.assistance_wanted or [],
    }
    return _publish(args, msg_type="CONSULT", reference=_peer_ref(args), consult=consult)


def _valid_cursor(value: str) -> str:
    """A listing cursor as given (the node reads it again), if parse_cursor takes it."""
    parse_cursor(value)
    return value


_cursor = flag(
    _valid_cursor,
    error=UsageError,
    refusal=lambda v: f"{v!r} is not a cursor; give the 'next' a listing printed",
)


def cmd_alert_list(args: argparse.Namespace) -> int:
    """List one page of own and received alerts with their delivery and acknowledgement state."""
    filters = {"state": args.state, "origin": args.origin, "after": args.after, "limit": args.limit}
    if args.since is not None:
        filters["since"] = args.since.isoformat()
    page = operator_client(args).call("list", **{k: v for k, v in filters.items() if v is not None})
    if args.json:
        print_json(page)
        return EXIT_OK
    alerts = page["alerts"]
    if not alerts:
        print("no alerts")
    else:
        print(_LIST_HEADER)
    for a in alerts:
        print(_clip(_list_row(a)))
        if a.get("local_exposure"):
            print(_clip(f"  our exposure: {a['local_exposure']}"))
        for note in a.get("flags", []):
            kind, _, who = note.partition(":")
            if kind == "ack_after_cancel":
                print(_clip(f"  note: {who} acknowledged it after it was cancelled"))
    if alerts:
        print(_LIST_LEGEND)
    if page["more"]:
        print(f"more: ewx alert list --after {page['next']} (with the same filters)")
    return EXIT_OK


_LIST_WIDTH = 80
"""`ewx alert list` fits an 80-column terminal; --json carries every field in full."""
_LIST_COLUMNS = "{:<18} {:<2} {:<8} {:<9} {:<8} {:<11} {}"
_LIST_HEADER = _LIST_COLUMNS.format("ID", "BY", "TYPE", "STATE", "SEVERITY", "PEERS", "HEADLINE OR REF")
_LIST_LEGEND = "peers: + acknowledged  ~ late  ! ack overdue  . delivered  - not delivered yet"
_ACK_MARK = {"on_time": "+", "late": "~", "overdue": "!", "missed": "!"}


def _clip(text: str, width: int = _LIST_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _peer_marks(a: dict[str, Any]) -> str:
    """`US+ JP!`: each recipient and what is known of it (the legend says what the marks mean)."""
    dues = {d["recipient"]: d["status"] for d in a.get("acks", [])}
    marks = []
    for recipient, delivery in a["deliveries"].items():
        mark = _ACK_MARK.get(dues.get(recipient, ""), "")
        if not mark and recipient in a["acknowledged_by"]:
            mark = "+"
        if not mark and a["direction"] == "sent":
            mark = "." if delivery.get("delivered_at") else "-"
        marks.append(recipient + mark)
    return " ".join(marks)


def _list_row(a: dict[str, Any]) -> str:
    if a.get("headline"):
        about = a["headline"]
    elif a["references"]:
        ref = a["references"][0]
        about = f"re {ref['origin']}/{ref['alert_id']}" + (f" {a['reason']}" if a.get("reason") else "")
    else:
        about = ""
    return _LIST_COLUMNS.format(
        _clip(a["alert_id"], 18),
        a["origin"],
        a["msg_type"][:8],
        a["state"],
        a.get("severity") or "",
        _peer_marks(a),
        about,
    )


_FEED_FILE = re.compile(r"^(?:KR|US|JP)-[A-Za-z0-9._-]+\.xml$")
"""The names cap_filename gives: only these are removed from a feed directory as stale."""


def cmd_alert_export(args: argparse.Namespace) -> int:
    """Write one alert as CAP 1.2 to standard output, or every active alert into a feed directory."""
    if args.all == (args.alert_id is not None):
        raise UsageError("give an alert ID, or --all --out DIR, not both")
    client = operator_client(args)
    if not args.all:
        if args.out is not None:
            raise UsageError("--out goes with --all; one alert is written to standard output")
        origin = args.origin or _find(args, args.alert_id, None)["origin"]
        sys.stdout.write(client.call("cap", origin=origin, alert_id=args.alert_id)["xml"])
        return EXIT_OK
    if args.out is None:
        raise UsageError("--all needs --out DIR, the feed directory")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make {out}: {exc.strerror}") from None
    written: set[str] = set()
    query: dict[str, Any] = {"state": "active", "limit": OPERATOR_PAGE_MAX}
    while True:
        page = client.call("list", **query)
        for a in page["alerts"]:
            if a["msg_type"] in ("ALERT", "UPDATE"):
                doc = client.call("cap", origin=a["origin"], alert_id=a["alert_id"])
                write_atomically(out / doc["filename"], doc["xml"].encode("utf-8"), mode=0o644)
                written.add(doc["filename"])
        if page["next"] is None:
            break
        query["after"] = parse_cursor(page["next"])
    stale = [p for p in out.iterdir() if _FEED_FILE.match(p.name) and p.name not in written]
    for path in stale:
        path.unlink(missing_ok=True)
    print(f"wrote {len(written)} CAP documents to {out}; removed {len(stale)} of alerts no longer active")
    return EXIT_OK


def cmd_alert_show(args: argparse.Namespace) -> int:
    """Show one alert in full (JSON)."""
    origin = args.origin or _find(args, args.alert_id, None)["origin"]
    print_json(operator_client(args).call("show", origin=origin, alert_id=args.alert_id))
    return EXIT_OK


def _add_common_publish(p: argparse.ArgumentParser, add_config: Any) -> None:
    add_config(p)
    p.add_argument("--status", choices=choices(pb.Status), default="ACTUAL", help="default: ACTUAL")
    p.add_argument("--to", type=parse_recipients, metavar="CC[,CC]", help="recipients (default: both peers)")
    p.add_argument("--id", metavar="ALERT_ID", help="alert id (default: generated)")
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="a retry with the same key publishes nothing new and prints the first alert's id",
    )


def _add_duration(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--duration-days", type=cli_int(), default=0, help="expected duration in days (default 0: not known)"
    )


def _add_peer_ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("alert_id", metavar="ID", help="the peer's alert id")
    p.add_argument("--origin", type=parse_country, help="the alert's origin (default: looked up)")


def add_alert_commands(commands: Any, add_config: Any) -> None:
    """The `alert` command group."""
    group = commands.add_parser("alert", help="publish and read alerts")
    alert = group.add_subparsers(dest="alert", required=True, parser_class=type(group))
    p = alert.add_parser("raise", help="publish a new ALERT; prints its id")
    _add_common_publish(p, add_config)
    add_alert_info(p, required=True)
    p.set_defaults(func=cmd_alert_raise)
    p = alert.add_parser("update", help="publish an UPDATE of an own alert; prints its id")
    p.add_argument(
        "alert_id",
        metavar="ID",
        help="the own ALERT or UPDATE this one replaces (fields not given carry over)",
    )
    _add_common_publish(p, add_config)
    add_alert_info(p, required=False)
    p.set_defaults(func=cmd_alert_update)
    p = alert.add_parser("cancel", help="publish a CANCEL of an own alert; prints its id")
    p.add_argument("alert_id", metavar="ID", help="the own ALERT or UPDATE (or policy report) to cancel")
    _add_common_publish(p, add_config)
    p.add_argument(
        "--reason",
        choices=["ISSUED_IN_ERROR", "SITUATION_RESOLVED", "SUPERSEDED"],
        default="SITUATION_RESOLVED",
        help="why it is cancelled (default SITUATION_RESOLVED)",
    )
    p.set_defaults(func=cmd_alert_cancel)
    p = alert.add_parser("ack", help="acknowledge a peer's alert; prints the ACK's id")
    _add_peer_ref(p)
    _add_common_publish(p, add_config)
    p.add_argument(
        "--reason",
        choices=["RECEIVED", "UNDER_REVIEW", "ACTION_TAKEN"],
        default="RECEIVED",
        help="what the acknowledgement says (default RECEIVED); a node acknowledges an alert once",
    )
    p.set_defaults(func=cmd_alert_ack)
    p = alert.add_parser("error", help="report a problem with a peer's alert; prints the ERROR's id")
    _add_peer_ref(p)
    _add_common_publish(p, add_config)
    p.add_argument(
        "--reason",
        choices=["UNKNOWN_REFERENCE", "NOT_UNDERSTOOD", "POLICY_REFUSED"],
        default="NOT_UNDERSTOOD",
        help="the problem (default NOT_UNDERSTOOD)",
    )
    p.set_defaults(func=cmd_alert_error)
    p = alert.add_parser("respond", help="publish a RESPONSE to an alert; prints its id")
    _add_peer_ref(p)
    _add_common_publish(p, add_config)
    p.add_argument(
        "--measure",
        action="append",
        choices=choices(pb.Measure),
        required=True,
        help="a measure taken (repeat for several)",
    )
    p.add_argument(
        "--assistance",
        choices=choices(pb.Assistance),
        default="NONE",
        help="assistance offered or requested (default NONE)",
    )
    p.add_argument(
        "--assistance-measure",
        action="append",
        choices=choices(pb.Measure),
        help="what the assistance is (repeat for several)",
    )
    _add_duration(p)
    p.add_argument(
        "--with-exposure",
        action="store_true",
        help="also send this node's own exposure to the alert's sources, as a share band (never a figure)",
    )
    p.set_defaults(func=cmd_alert_respond)
    p = alert.add_parser("consult", help="request a consultation on a SEVERE or EXTREME alert")
    _add_peer_ref(p)
    _add_common_publish(p, add_config)
    p.add_argument(
        "--impact", choices=choices(pb.ImpactBand), required=True, help="the supply impact, as a band"
    )
    p.add_argument("--cause", choices=choices(pb.Category), required=True, help="the cause, as a category")
    p.add_argument(
        "--sector",
        action="append",
        choices=choices(pb.Sector),
        required=True,
        help="a sector affected (repeat for several)",
    )
    p.add_argument(
        "--measure-taken",
        action="append",
        choices=choices(pb.Measure),
        help="a measure already taken (repeat for several)",
    )
    p.add_argument(
        "--assistance-wanted",
        action="append",
        choices=choices(pb.Measure),
        help="assistance wanted from the peers (repeat for several)",
    )
    _add_duration(p)
    p.set_defaults(func=cmd_alert_consult)
    p = alert.add_parser(
        "list",
        help="own and received alerts with delivery and acknowledgement state, a page at a time",
        description="Alerts in log order, oldest first, one page at a time: a page that is not the "
        "last ends with the cursor to give to --after for the next one ('next' in --json).",
    )
    add_config(p)
    p.add_argument("--state", choices=ALERT_STATES, help="only alerts in this state")
    p.add_argument("--origin", type=parse_country, metavar="CC", help="only alerts from this node")
    p.add_argument(
        "--since",
        type=parse_ago,
        metavar="TIME",
        help="only alerts sent at or after TIME (ISO 8601 UTC, or Nd/Nh: days or hours ago)",
    )
    p.add_argument(
        "--limit",
        type=cli_int(low=1, high=OPERATOR_PAGE_MAX),
        metavar="N",
        help=f"alerts on the page (default {OPERATOR_PAGE_DEFAULT}, at most {OPERATOR_PAGE_MAX})",
    )
    p.add_argument("--after", type=_cursor, metavar="CURSOR", help="the page after this cursor")
    p.add_argument("--json", action="store_true", help="machine output: {alerts, more, next}")
    p.set_defaults(func=cmd_alert_list)
    p = alert.add_parser("show", help="one alert in full, as JSON")
    _add_peer_ref(p)
    add_config(p)
    p.set_defaults(func=cmd_alert_show)
    p = alert.add_parser(
        "export",
        help="an alert as an OASIS CAP 1.2 document, or every active alert as a CAP feed directory",
        description="Writes one message as a CAP 1.2 XML document to standard output (ALERT, UPDATE, "
        "CANCEL, ACK and ERROR; CAP has no form for the others), or with --all --out DIR one file "
        "per active alert into DIR, removing the files of alerts no longer active. docs/cap.md "
        "maps every field.",
    )
    p.add_argument("alert_id", metavar="ID", nargs="?", help="the alert's id (not with --all)")
    p.add_argument("--origin", type=parse_country, help="the alert's origin (default: looked up)")
    p.add_argument("--format", choices=("cap",), required=True, help="cap: OASIS CAP 1.2 XML")
    p.add_argument("--all", action="store_true", help="every active ALERT and UPDATE, one file each")
    p.add_argument("--out", metavar="DIR", help="the feed directory for --all (created if missing)")
    add_config(p)
    p.set_defaults(func=cmd_alert_export)
