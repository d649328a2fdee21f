"""`ewx outbox export/import`: offline transfer of signed alerts for a link that is down."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from node.cli._common import EXIT_FINDING, EXIT_OK, add_export_out, load_config, operator_client
from node.errors import UsageError
from node.parsing import parse_country

IMPORT_CHUNK_BYTES = 40 * 1024
"""Envelopes per operator request are capped so a request stays under its limit."""


def cmd_outbox_export(args: argparse.Namespace) -> int:
    """Write what one peer has not receipted yet, for carrying by hand."""
    from node.files import check_output_target
    from node.message import write_transfer
    from node.service import NodeService

    config = load_config(args)
    if args.peer not in config.peers:
        raise UsageError(f"{args.peer} is not a peer of {config.node_id}")
    check_output_target(Path(args.out), force=args.force)  # before any work
    service = NodeService.open(config, beside_the_node=True)  # the node may be running
    try:
        envelopes = service.undelivered(args.peer)
    finally:
        service.close()
    write_transfer(
        Path(args.out), origin=config.node_id, recipient=args.peer, envelopes=envelopes, force=args.force
    )
    print(f"exported {len(envelopes)} undelivered alerts for {args.peer} to {args.out}")
    return EXIT_OK


def cmd_outbox_import(args: argparse.Namespace) -> int:
    """Hand a transfer file to the running node, which checks every alert."""
    import base64

    from node.message import read_transfer

    transfer = read_transfer(Path(args.file))
    client = operator_client(args)
    chunks: list[list[str]] = [[]]
    size = 0
    for envelope in transfer.envelopes:
        if chunks[-1] and size + len(envelope) > IMPORT_CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(base64.b64encode(envelope).decode())
        size += len(envelope)
    stored = refused = last_seq = 0
    for chunk in filter(None, chunks):
        result = client.call("import", origin=transfer.origin, recipient=transfer.recipient, envelopes=chunk)
        stored, refused, last_seq = stored + result["stored"], refused + result["refused"], result["last_seq"]
    print(
        f"imported {stored} new of {len(transfer.envelopes)} alerts from {transfer.origin}; "
        f"now at sequence {last_seq} from {transfer.origin}"
    )
    if refused:
        print(f"ewx: refused: {refused} alerts failed the checks; see the node's log", file=sys.stderr)
        return EXIT_FINDING
    return EXIT_OK


def add_outbox_commands(commands: Any, add_config: Any) -> None:
    """The `outbox` command group."""
    group = commands.add_parser("outbox", help="offline transfer for a link that is down")
    outbox = group.add_subparsers(dest="outbox", required=True, parser_class=type(group))
    p = outbox.add_parser("export", help="write the signed alerts one peer has not receipted yet")
    add_config(p)
    p.add_argument("--peer", type=parse_country, required=True, help="the peer the file is for")
    add_export_out(p)
    p.set_defaults(func=cmd_outbox_export)
    p = outbox.add_parser(
        "import", help="hand a transfer file to the running node (same checks as the network)"
    )
    p.add_argument("file", metavar="FILE", help="the .ewxoutbox file `ewx outbox export` wrote at the origin")
    add_config(p)
    p.set_defaults(func=cmd_outbox_import)
