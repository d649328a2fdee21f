"""`ewx watchlist ...` and `ewx policy ...`: the joint watchlist and the missions' policy-move reports.

Both go through the running node's operator API, like `ewx alert`: a
proposal, a vote or a report is one signed message, logged and delivered to
the peers (docs/trilateral.md). The rules of what may be proposed or voted
next are node/trilateral's; the node refuses what does not fit and the
message says why.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli._alert_fields import choices, parse_recipients
from node.cli._common import EXIT_OK, operator_client, print_json
from node.errors import RefusedOperation, UsageError
from node.ids import Country, as_country
from node.message import pb
from node.parsing import parse_country

_ADD_REASON = "SUPPLY_CONCENTRATION"
"""`--reason` when none is given for added pairs: the reason most pairs are watched for."""


def parse_pair(value: str) -> dict[str, str]:
    """HS:CC (8112.92:CN) as a watchlist pair without its reason; the dots dropped (the node checks both)."""
    code, sep, country = value.partition(":")
    if not sep or not code.strip() or not country.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not HS:CC (for example 8112.92:CN)")
    return {"hs_code": code.strip().replace(".", ""), "country": country.strip().upper()}


def _published(result: dict[str, Any]) -> int:
    print(result["alert_id"])
    return EXIT_OK


# ------------------------------------------------------------------ watchlist
def _pairs_text(pairs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['hs_code']}:{p['country']} ({p['reason']})" for p in pairs) or "-"


def cmd_watchlist_show(args: argparse.Namespace) -> int:
    """The version in force, its pairs, and what is pending."""
    state = operator_client(args).call("watchlist")
    if args.json:
        print_json({"current": state["current"], "forked": state["forked"], "pending": _pending(state)})
        return EXIT_OK
    current = state["current"]
    if current["version"] == 0:
        print("no watchlist in force yet")
    else:
        print(
            f"watchlist version {current['version']} ({current['hs_edition']}), in force since "
            f"{current['in_force_at']}, {len(current['pairs'])} pairs"
        )
        for pair in current["pairs"]:
            print(f"  {pair['hs_code']:<8} {pair['country']}  {pair['reason']}")
    if state["forked"]:
        print("FORKED: two versions at one number are both signed by every member")
    for version in _pending(state):
        print(
            f"pending: version {version['version']} {version['origin']} {version['alert_id']} "
            f"signed by {','.join(version['signers'])}; add {_pairs_text(version['add'])}; "
            f"remove {_pairs_text(version['remove'])}"
        )
    return EXIT_OK


def _pending(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in state["versions"] if v["state"] == "pending"]


def cmd_watchlist_history(args: argparse.Namespace) -> int:
    """Every version proposed, what became of it, and the findings."""
    state = operator_client(args).call("watchlist")
    if args.json:
        print_json({"versions": state["versions"], "findings": state["findings"]})
        return EXIT_OK
    for v in state["versions"]:
        rejected = ", ".join(f"{r['member']} {r['reason']}" for r in v["rejections"])
        print(
            f"version {v['version']:<3} {v['state']:<10} {v['origin']} {v['alert_id']}  sent {v['sent']}  "
            f"signed {','.join(v['signers'])}" + (f"  rejected by {rejected}" if rejected else "")
        )
        print(f"    add {_pairs_text(v['add'])}; remove {_pairs_text(v['remove'])}")
    for f in state["findings"]:
        print(f"{f['severity']}: {f['kind']} {f['origin']} {f['alert_id']}: {f['detail']}")
    if not state["versions"]:
        print("no watchlist proposal yet")
    return EXIT_OK


def cmd_watchlist_propose(args: argparse.Namespace) -> int:
    """Propose the next version: the one in force with pairs added and removed."""
    if not args.add and not args.remove:
        raise UsageError("a proposal adds or removes at least one pair: give --add or --remove")
    add = [{**pair, "reason": args.reason or _ADD_REASON} for pair in args.add or []]
    remove_reason = args.remove_reason or (args.reason if not args.add else None)
    if args.remove and remove_reason is None:
        raise UsageError("give --remove-reason for the removed pairs (--reason names why pairs are added)")
    remove = [{**pair, "reason": remove_reason} for pair in args.remove or []]
    request: dict[str, Any] = {"add": add, "remove": remove}
    if args.hs_edition:
        request["hs_edition"] = args.hs_edition
    if args.idempotency_key:
        request["idempotency_key"] = args.idempotency_key
    return _published(operator_client(args).call("propose_watch", **request))


def _proposal_origin(args: argparse.Namespace) -> Country:
    if args.origin is not None:
        return as_country(args.origin)
    state = operator_client(args).call("watchlist")
    origins = sorted({v["origin"] for v in state["versions"] if v["alert_id"] == args.id})
    if not origins:
        raise RefusedOperation(f"no watchlist proposal {args.id} is known to this node")
    if len(origins) > 1:
        raise UsageError(f"{args.id} is a proposal of several members; give --origin")
    return as_country(origins[0])


def _vote(args: argparse.Namespace, decision: str, reject_reason: str | None) -> int:
    request: dict[str, Any] = {"origin": _proposal_origin(args), "alert_id": args.id, "decision": decision}
    if reject_reason is not None:
        request["reject_reason"] = reject_reason
    if args.idempotency_key:
        request["idempotency_key"] = args.idempotency_key
    return _published(operator_client(args).call("vote_watch", **request))


def cmd_watchlist_accept(args: argparse.Namespace) -> int:
    """Sign a peer's proposal: its version is in force once every member has."""
    return _vote(args, "ACCEPT", None)


def cmd_watchlist_reject(args: argparse.Namespace) -> int:
    """Refuse a peer's proposal, with the coded reason."""
    return _vote(args, "REJECT", args.reason)


# ------------------------------------------------------------------ policy
def cmd_policy_report(args: argparse.Namespace) -> int:
    """Report a host country's policy move to the peers, coded."""
    move: dict[str, Any] = {
        "country": args.country,
        "measure": args.measure,
        "hs_codes": sorted({code.replace(".", "") for code in args.hs}),
        "hs_edition": args.hs_edition,
        "stage": args.stage,
        "announced": args.announced,
        "source": args.source,
    }
    if args.effective:
        move["effective"] = args.effective
    request: dict[str, Any] = {"policy": move, "status": args.status}
    if args.to is not None:
        request["recipients"] = args.to
    if args.idempotency_key:
        request["idempotency_key"] = args.idempotency_key
    return _published(operator_client(args).call("report_policy", **request))


def cmd_policy_list(args: argparse.Namespace) -> int:
    """Every policy report this node holds, sent and received."""
    reports = operator_client(args).call("policy_list")
    if args.json:
        print_json(reports)
        return EXIT_OK
    if not reports:
        print("no policy report yet")
    for r in reports:
        dates = r["announced"] + (f" effective {r['effective']}" if r.get("effective") else "")
        print(
            f"{r['origin']} {r['alert_id']:<22} {r['status']:<8} {r['country']} {r['measure']:<18} "
            f"{r['stage']:<10} {','.join(r['hs_codes'])}  {dates}  ({r['source']}, {r['direction']})"
        )
    return EXIT_OK


def add_trilateral_commands(commands: Any, add_config: Any) -> None:
    """The `watchlist` and `policy` command groups."""
    watch = commands.add_parser(
        "watchlist", help="the jointly signed watchlist of items and supplier countries"
    )
    group = watch.add_subparsers(dest="watchlist", required=True, parser_class=type(watch))
    p = group.add_parser("show", help="the version in force and what is pending")
    add_config(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_watchlist_show)
    p = group.add_parser("history", help="every version proposed, its signers and fate, and the findings")
    add_config(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_watchlist_history)
    p = group.add_parser("propose", help="propose the next version; prints the proposal's id")
    add_config(p)
    p.add_argument("--add", type=parse_pair, action="append", metavar="HS:CC", help="a pair to add (repeat)")
    p.add_argument(
        "--remove", type=parse_pair, action="append", metavar="HS:CC", help="a pair to remove (repeat)"
    )
    p.add_argument(
        "--reason",
        choices=choices(pb.WatchReason),
        metavar="CODE",
        help=f"why the added pairs are watched (default {_ADD_REASON}); one of %(choices)s",
    )
    p.add_argument(
        "--remove-reason",
        choices=choices(pb.WatchReason),
        metavar="CODE",
        help="why the removed pairs leave (RISK_SUBSIDED, SUPPLY_DIVERSIFIED, LISTED_IN_ERROR)",
    )
    p.add_argument("--hs-edition", choices=choices(pb.HsEdition), help="HS edition (needed for version 1)")
    p.add_argument("--idempotency-key", help="a retry with the same key proposes nothing new")
    p.set_defaults(func=cmd_watchlist_propose)
    for name, func, text in (
        ("accept", cmd_watchlist_accept, "sign a peer's proposal; prints the vote's id"),
        (
            "reject",
            cmd_watchlist_reject,
            "refuse a peer's proposal with a coded reason; prints the vote's id",
        ),
    ):
        p = group.add_parser(name, help=text)
        add_config(p)
        p.add_argument("id", help="the proposal's id")
        p.add_argument("--origin", type=parse_country, help="the proposing member, if the id is ambiguous")
        if name == "reject":
            p.add_argument(
                "--reason",
                required=True,
                choices=choices(pb.RejectReason),
                metavar="CODE",
                help="one of %(choices)s",
            )
        p.add_argument("--idempotency-key", help="a retry with the same key votes nothing new")
        p.set_defaults(func=func)

    policy = commands.add_parser("policy", help="coded reports of a host country's policy moves")
    group = policy.add_subparsers(dest="policy", required=True, parser_class=type(policy))
    p = group.add_parser("report", help="report a policy move to the peers; prints the report's id")
    add_config(p)
    p.add_argument("--country", required=True, type=str.upper, help="the host country (ISO alpha-2)")
    p.add_argument(
        "--measure",
        required=True,
        choices=choices(pb.PolicyMeasure),
        metavar="CODE",
        help="one of %(choices)s",
    )
    p.add_argument(
        "--hs",
        required=True,
        action="append",
        metavar="CODE",
        help="an HS code of 4 or 6 digits, dots allowed (repeat)",
    )
    p.add_argument("--hs-edition", default="HS2022", choices=choices(pb.HsEdition), help="default HS2022")
    p.add_argument("--stage", required=True, choices=choices(pb.PolicyStage), help="where the move stands")
    p.add_argument("--announced", required=True, metavar="YYYY-MM-DD", help="the day it was announced")
    p.add_argument("--effective", metavar="YYYY-MM-DD", help="the day it takes effect (needed once IN_FORCE)")
    p.add_argument("--source", required=True, choices=choices(pb.SourceKind), help="what the report rests on")
    p.add_argument("--status", default="ACTUAL", choices=choices(pb.Status), help="default ACTUAL")
    p.add_argument("--to", type=parse_recipients, metavar="CC[,CC]", help="recipients (default: both peers)")
    p.add_argument("--idempotency-key", help="a retry with the same key reports nothing new")
    p.set_defaults(func=cmd_policy_report)
    p = group.add_parser("list", help="the policy reports this node holds, sent and received")
    add_config(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_policy_list)
