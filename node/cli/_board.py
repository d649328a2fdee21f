"""`ewx board`: the federation's situation as this node sees it (node/situation/board.py).

Plain text on standard output (80 columns), `--json` for machines, `--html
FILE` for a page to keep or share inside the agency, and `--watch` to redraw
it in place every `--interval` seconds on a duty officer's terminal until
Ctrl-C. The HTML file is replaced atomically, so a browser reloading it (or
a web server serving it) never reads half a page.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Final

from node.cli._common import EXIT_OK, operator_client, print_json
from node.errors import UsageError
from node.files import write_atomically
from node.parsing import flag
from node.situation.board import render_html, render_text

_CLEAR: Final = "\x1b[H\x1b[2J"
"""Cursor home, then erase the screen: the two ANSI sequences `--watch` redraws with."""
DEFAULT_INTERVAL_SECONDS: Final = 5.0
_HTML_MODE: Final = 0o640


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 1.0 <= seconds <= 3600.0:  # NaN fails too
        raise ValueError(f"{value!r}: the interval is seconds from 1 to 3600")
    return seconds


def _draw(args: argparse.Namespace, board: dict[str, Any]) -> None:
    if args.html:
        try:
            write_atomically(Path(args.html), render_html(board).encode("utf-8"), mode=_HTML_MODE)
        except OSError as exc:
            raise UsageError(f"cannot write {args.html}: {exc.strerror}") from None
    if args.json:
        print_json(board)
    else:
        sys.stdout.write(render_text(board))
    sys.stdout.flush()


def cmd_board(args: argparse.Namespace) -> int:
    """Print the situation board once, or redraw it until interrupted with --watch."""
    client = operator_client(args)
    if not args.watch:
        _draw(args, client.call("board"))
        return EXIT_OK
    if args.json:
        raise UsageError("--watch redraws a terminal; with --json, call `ewx board --json` when needed")
    redraw = sys.stdout.isatty()
    try:
        while True:
            board = client.call("board")
            if redraw:
                sys.stdout.write(_CLEAR)
            _draw(args, board)
            if not redraw:
                sys.stdout.write("\f\n")  # a page break between boards in a pipe or a log
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK


def add_board_command(commands: Any, add_config: Any) -> None:
    """`ewx board`."""
    p = commands.add_parser(
        "board",
        help="the situation: open alerts by item and source, acknowledgements, deadlines, watchlist",
        description="The federation's situation as this node sees it: open alerts from all three "
        "origins grouped by HS code and source country, with severity, age, delivery and "
        "acknowledgement per peer, overdue acknowledgements, consultations and responses, this "
        "node's own exposure to each peer alert, and the watchlist with the latest reported "
        "policy move on each pair.",
    )
    add_config(p)
    p.add_argument("--json", action="store_true", help="machine output")
    p.add_argument("--html", metavar="FILE", help="also write the board as a self-contained HTML page")
    p.add_argument("--watch", action="store_true", help="redraw the board in place until Ctrl-C")
    p.add_argument(
        "--interval",
        type=flag(_interval, error=ValueError),
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=f"how often --watch redraws (default {DEFAULT_INTERVAL_SECONDS:g})",
    )
    p.set_defaults(func=cmd_board)
