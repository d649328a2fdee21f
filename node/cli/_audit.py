"""`ewx log export` and `ewx audit verify/replay/prove/check-proof`: the exchange log, exported and checked offline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.cli._common import EXIT_FINDING, EXIT_OK, add_export_out, load_config, print_json
from node.cli._progress import add_quiet, progress_bar
from node.errors import UsageError
from node.ids import COUNTRIES
from node.parsing import cli_int, flag, parse_country
from node.situation.settings import DEFAULT_ACK_DEADLINE_MINUTES, parse_deadlines

if TYPE_CHECKING:
    from node.audit import Bundle


def read_bundles(args: argparse.Namespace, paths: Sequence[Path]) -> list[Bundle]:
    """The bundles at `paths`, read with a progress bar (bytes, file by file)."""
    from node.audit import read_bundle

    stages = [(f"read {path.name}", _size(path)) for path in paths]
    with progress_bar(args, total=sum(n for _, n in stages), unit="B", in_bytes=True, stages=stages) as bar:
        return [read_bundle(path, progress=bar) for path in paths]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # read_bundle says what is wrong
        return 0


def log_stages(verb: str, bundles: Sequence[Bundle]) -> list[tuple[str, int]]:
    """The progress bar's stages for `bundles`: one per log, in the order the audit takes them."""
    order = {c: i for i, c in enumerate(COUNTRIES)}
    ordered = sorted(bundles, key=lambda b: order.get(b.node, len(order)))
    return [(f"{verb} {b.node}", len(b.entries)) for b in ordered]


def cmd_log_export(args: argparse.Namespace) -> int:
    """Write the portable, self-contained log bundle."""
    from node.service import export_bundle

    config = load_config(args)
    with progress_bar(args, total=None, unit=" entries", label="export") as bar:
        size = export_bundle(
            config,
            Path(args.out),
            force=args.force,
            progress=bar,
            size_known=bar.set_total if bar else None,
        )
    print(f"exported {size} entries to {args.out}")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify exported logs offline against the trust file."""
    from node.audit import verify_loaded
    from node.trust import Trust

    trust = Trust.load(Path(args.trust))
    bundles = read_bundles(args, [Path(p) for p in args.logs])
    stages = log_stages("audit", bundles)
    with progress_bar(
        args, total=sum(n for _, n in stages), unit=" entries", stages=stages, finishing="cross-check"
    ) as bar:
        report = verify_loaded(bundles, trust=trust, progress=bar)
    if args.json:
        print_json(report.to_json())
    else:
        print(report.to_text())
    return EXIT_OK if report.clean else EXIT_FINDING


def cmd_audit_replay(args: argparse.Namespace) -> int:
    """Rebuild every alert's timeline and state from exported logs; optionally an HTML page."""
    from node.audit import render_html, replay
    from node.trust import Trust

    trust = Trust.load(Path(args.trust))
    bundles = read_bundles(args, [Path(p) for p in args.logs])
    stages = log_stages("audit", bundles) + log_stages("replay", bundles)
    with progress_bar(
        args, total=sum(n for _, n in stages), unit=" entries", stages=stages, finishing="timelines"
    ) as bar:
        result = replay(bundles, trust=trust, deadline_minutes=args.ack_deadlines, progress=bar)
    if args.html:
        try:
            Path(args.html).write_text(render_html(result), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.html}: {exc.strerror}") from None
    if args.json:
        print_json(result.to_json())
    else:
        print(result.to_text())
    return EXIT_OK if result.clean else EXIT_FINDING


def cmd_audit_prove(args: argparse.Namespace) -> int:
    """Write a self-contained inclusion proof (C2SP tlog-proof) of one alert in one log."""
    from node.audit import prove, read_bundle
    from node.errors import ProofError

    bundle = read_bundle(Path(args.log))
    try:
        text = prove(bundle, args.alert_id, origin=args.origin)
    except ProofError as exc:
        print(f"ewx: refused: {exc}", file=sys.stderr)
        return EXIT_FINDING
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    print(f"proof of {args.alert_id} in {bundle.node}'s log written to {args.out}")
    return EXIT_OK


def cmd_audit_check_proof(args: argparse.Namespace) -> int:
    """Verify an inclusion proof offline against the trust file."""
    from node.audit import HEADER, MAX_PROOF_CHARS, check_proof
    from node.errors import ProofError
    from node.files import read_bounded
    from node.trust import Trust

    trust = Trust.load(Path(args.trust))
    data = read_bounded(Path(args.proof), 4 * MAX_PROOF_CHARS, what="proof file", error=UsageError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {args.proof}: not UTF-8 text") from None
    if not text.startswith(HEADER + "\n"):
        raise UsageError(f"{args.proof} is not a tlog-proof (first line is not {HEADER})")
    try:
        result = check_proof(text, trust=trust, min_cosigners=args.min_cosigners)
    except ProofError as exc:
        if args.json:
            print_json({"valid": False, "defect": exc.defect, "detail": exc.detail})
        else:
            print(f"INVALID: {exc.defect}: {exc.detail}")
        return EXIT_FINDING
    if args.json:
        print_json(result.to_json())
    else:
        print(result.to_text())
    return EXIT_OK


def add_audit_commands(commands: Any, add_config: Any) -> None:
    """The `log` and `audit` command groups."""
    group = commands.add_parser("log", help="the exchange log")
    logp = group.add_subparsers(dest="log", required=True, parser_class=type(group))
    p = logp.add_parser("export", help="write the portable log bundle (works with the node up or down)")
    add_config(p)
    add_export_out(p)
    add_quiet(p)
    p.set_defaults(func=cmd_log_export)

    group = commands.add_parser("audit", help="offline verification of exported logs")
    audit = group.add_subparsers(dest="audit", required=True, parser_class=type(group))
    p = audit.add_parser("verify", help="verify one or more exported logs; exit 1 on findings")
    p.add_argument(
        "logs", nargs="+", metavar="LOG", help="exported log bundles (ewx log export), at most one per node"
    )
    p.add_argument("--trust", required=True, metavar="federation.json", help="the federation trust file")
    p.add_argument("--json", action="store_true", help="machine report")
    add_quiet(p)
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser(
        "replay",
        help="rebuild every alert's timeline and state from exported logs; exit 1 on audit findings",
        description="Audit the logs, then replay every alert from their authentic entries: raised, "
        "delivered to each peer (direct or relayed, receipted), acknowledged, responded, consultation "
        "requested, updated, cancelled, expired. Prints the report; exit 0 if the audit is clean, "
        "1 on findings, 2 on unreadable input.",
    )
    p.add_argument("logs", nargs="+", metavar="LOG", help="exported log bundles, at most one per node")
    p.add_argument("--trust", required=True, metavar="federation.json", help="the federation trust file")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page with the timeline")
    p.add_argument("--json", action="store_true", help="machine report instead of text")
    p.add_argument(
        "--ack-deadlines",
        type=flag(parse_deadlines, error=ValueError),
        default=dict(DEFAULT_ACK_DEADLINE_MINUTES),
        metavar="SEV=MIN[,...]",
        help="minutes to acknowledge, per severity, to report late and missing ACKs against "
        "(default " + ",".join(f"{s}={m}" for s, m in DEFAULT_ACK_DEADLINE_MINUTES.items()) + "; "
        "`none` for no deadlines); use the nodes' [ack_deadline_minutes]",
    )
    add_quiet(p)
    p.set_defaults(func=cmd_audit_replay)
    p = audit.add_parser(
        "prove",
        help="write an offline-verifiable inclusion proof (C2SP tlog-proof) of one alert in a log",
        description="Find the alert's ALERT_SENT or ALERT_RECEIVED entry in the log and write a "
        "c2sp.org/tlog-proof@v1 file: the entry (extra line), its index, the inclusion proof and the "
        "log's signed checkpoint (the latest cosigned one covering it, else the export checkpoint). "
        "Exit 1 if the log holds no such alert, 2 on unreadable input.",
    )
    p.add_argument("alert_id", metavar="ALERT_ID", help="the alert's id")
    p.add_argument("--log", required=True, metavar="BUNDLE", help="an exported log bundle")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the proof")
    p.add_argument(
        "--origin", type=parse_country, metavar="CC", help="the alert's origin, if the id is ambiguous"
    )
    p.set_defaults(func=cmd_audit_prove)
    p = audit.add_parser(
        "check-proof",
        help="verify an inclusion proof offline; exit 0 valid, 1 invalid, 2 unreadable",
        description="Check a tlog-proof against the trust file alone: the checkpoint's log signature, "
        "the peers' cosignatures, the inclusion proof and the alert's signature. Prints the defect "
        "when invalid.",
    )
    p.add_argument("proof", metavar="FILE", help="a proof written by `ewx audit prove`")
    p.add_argument("--trust", required=True, metavar="federation.json", help="the federation trust file")
    p.add_argument(
        "--min-cosigners",
        type=cli_int(low=0),
        default=0,
        metavar="N",
        help="peers that must have cosigned (default 0)",
    )
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_audit_check_proof)
