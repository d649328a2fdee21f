"""`ewx status` and `ewx node rejoin/first-start`: this node's links, and its membership of the federation."""

from __future__ import annotations

import argparse
from typing import Any

from node.cli._common import EXIT_OK, operator_client, print_json
from node.errors import UsageError


def _hhmm(when: str) -> str:
    """`10:35Z`, or `2026-12-01 10:35Z` when not today (UTC) beside `now`."""
    return when[11:16] + "Z"


def _peer_line(peer: str, s: dict[str, Any], now: str) -> str:
    """`JP: UNREACHABLE since 10:35Z: connection refused; sent 4 ...`, in plain words."""
    if s["reachable"] is False:
        since = s.get("down_since")
        when = (
            "" if since is None else f" since {_hhmm(since) if since[:10] == now[:10] else since[:16] + 'Z'}"
        )
        reach = f"UNREACHABLE{when}" + (f": {s['problem']}" if s.get("problem") else "")
    else:
        reach = {True: "reachable", None: "not yet tried"}[s["reachable"]]
    line = (
        f"  {peer}: {reach}; sent {s['last_seq_sent']} delivered {s['last_seq_delivered']} "
        f"received {s['last_seq_received']}; backlog {s['backlog']}"
    )
    if s["backlog"] and s["oldest_undelivered_seconds"] is not None:
        line += f" (oldest {s['oldest_undelivered_seconds']:.0f}s)"
    if s["reachable"] is not False and s.get("problem"):
        line += f"; last problem: {s['problem']}"
    return line


def _witness_line(peer: str, s: dict[str, Any]) -> str:
    """What each side cosigned of the other's log (SPEC section 8): split-view protection at a glance."""
    ours, theirs = s.get("our_log_cosigned"), s.get("their_log_cosigned")
    mine = f"{peer} cosigned our log up to {ours['size']}" if ours else f"{peer} has cosigned none of our log"
    yours = (
        f"we cosigned {peer}'s up to {theirs['size']} (root {theirs['root'][:12]})"
        if theirs
        else f"we have cosigned none of {peer}'s"
    )
    return f"{mine}; {yours}"


def _catch_up_line(peer: str, catch_up: dict[str, Any]) -> str:
    """`catching up from US: seq 2,000 stored (from 1)`; `US catching up from us: seq 3,000 of 20,000 (15%)`."""
    parts = []
    ours, theirs = catch_up.get("from_peer"), catch_up.get("peer_from_us")
    if ours:
        parts.append(f"catching up from {peer}: seq {ours['at_seq']:,} stored (from {ours['first_seq']:,})")
    if theirs:
        share = f" ({100 * theirs['at_seq'] // theirs['of']}%)" if theirs["of"] else ""
        parts.append(f"{peer} catching up from us: seq {theirs['at_seq']:,} of {theirs['of']:,}{share}")
    return "; ".join(parts)


def cmd_status(args: argparse.Namespace) -> int:
    """Each peer link: reachable, sequences, backlog."""
    status = operator_client(args).call("status")
    if args.json:
        print_json(status)
        return EXIT_OK
    print(
        f"node {status['node']}  log size {status['log']['size']}  root {status['log']['root'][:16]}…"
        f"  evidence {status['evidence']}"
    )
    for peer, held in status.get("history_missing", {}).items():
        print(
            f"  HISTORY MISSING: {peer} holds {held}; publishing is refused. "
            "Restore the data directory from a backup, or run `ewx node rejoin`"
        )
    if status.get("history_unchecked_since"):
        print(
            f"  WAITING FOR PEERS: the store was empty when it started at {status['history_unchecked_since']} and no "
            "peer has said what it holds of this node yet; publishing waits (first start of a new "
            "federation: `ewx node first-start --yes`)"
        )
    certificate = status["certificate"]
    print(
        f"  TLS certificate valid until {certificate['not_after']} ({certificate['days_left']:.0f} days)"
        + (
            "  EXPIRING SOON: renew it (SIGHUP picks up the new files)"
            if certificate["expiring_soon"]
            else ""
        )
    )
    for purpose, key in status.get("signing_keys", {}).items():
        warning = ""
        if not key["usable"]:
            warning = "  NOT USABLE: rotate it (ewx pki rotate)"
        elif key["expiring_soon"]:
            warning = "  EXPIRING SOON: rotate it (ewx pki rotate)"
        print(f"  {purpose} key {key['key_id']} valid until {key['valid_until']}{warning}")
    for peer, s in status["peers"].items():
        print(_peer_line(peer, s, status["time"]))
        print(f"    {_witness_line(peer, s)}")
        if s.get("catch_up"):
            print(f"    {_catch_up_line(peer, s['catch_up'])}")
        if s.get("overdue_acks"):
            print(f"    {peer} OVERDUE ACKS ({len(s['overdue_acks'])}): {', '.join(s['overdue_acks'][:5])}")
    if status.get("overdue_acks"):
        print(
            f"  THIS NODE OWES ACKS ({len(status['overdue_acks'])}): {', '.join(status['overdue_acks'][:5])}"
            " (ewx alert ack ID)"
        )
    return EXIT_OK


def cmd_node_rejoin(args: argparse.Namespace) -> int:
    """Recover this node's own alerts from its peers after its store lost them (issue 10, item 2)."""
    if not args.yes:
        raise UsageError(
            "re-join takes this node's own alerts back from its peers and continues its ids and sequences "
            "after them; the exchange log starts again from empty, and peers that witnessed the lost log "
            "are not asked to witness the new one. If a backup of the data directory exists, restore it "
            "instead. To re-join, run again with --yes"
        )
    done = operator_client(args).call("rejoin")
    if args.json:
        print_json(done)
        return EXIT_OK
    last = ", ".join(f"{peer} {seq}" for peer, seq in done["last_seq"].items())
    print(f"re-joined: {done['recovered']} own alerts recovered from the peers; last sequences {last}")
    return EXIT_OK


def cmd_node_first_start(args: argparse.Namespace) -> int:
    """Publish on a new store before any peer has answered: the first start of a new federation."""
    if not args.yes:
        raise UsageError(
            "first-start states that no peer holds any history of this node, so it may publish before a "
            "peer has answered. If this node ran before (its data directory was lost or not mounted), do "
            "not: restore a backup, or start it with its peers reachable. To declare it, run again with --yes"
        )
    done = operator_client(args).call("first_start")
    print(f"first start declared for the store created at {done['store_created']}; publishing is open")
    return EXIT_OK


def add_status_command(commands: Any, add_config: Any) -> None:
    """`ewx status`."""
    p = commands.add_parser("status", help="each peer: reachable, sequences, backlog")
    add_config(p)
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_status)


def add_node_commands(commands: Any, add_config: Any) -> None:
    """The `node` command group."""
    group = commands.add_parser("node", help="this node's membership of the federation")
    node = group.add_subparsers(dest="node", required=True, parser_class=type(group))
    p = node.add_parser(
        "rejoin",
        help="after a lost store: recover this node's own alerts from its peers, continue after them",
    )
    add_config(p)
    p.add_argument("--yes", action="store_true", help="confirm: without it, only says what re-join does")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_node_rejoin)
    p = node.add_parser(
        "first-start", help="a new federation with no peer up yet: publish before any peer has answered"
    )
    add_config(p)
    p.add_argument("--yes", action="store_true", help="confirm: without it, only says what this does")
    p.set_defaults(func=cmd_node_first_start)
