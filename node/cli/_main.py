"""The `ewx` command line (SPEC section 8), minus the commands that need the gateway.

This module assembles the parser from the command groups (one module each:
node/cli/__init__.py lists them) and runs one command. `gateway/cli.py` adds
`serve` and `demo` to this parser and is the console entry point, so that
node/ never imports gateway/. Exit codes: 0 ok, 1 a verification finding or a
refused operation, 2 usage error or bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeAlias

from node.cli._alert_fields import add_config
from node.cli._alerts import add_alert_commands
from node.cli._audit import add_audit_commands
from node.cli._backup import add_backup_commands
from node.cli._board import add_board_command
from node.cli._common import EXIT_OK, EXIT_USAGE
from node.cli._config import add_config_commands
from node.cli._health import add_health_command
from node.cli._node import add_node_commands, add_status_command
from node.cli._outbox import add_outbox_commands
from node.cli._pki import add_pki_commands
from node.cli._rotation import add_rotation_commands
from node.cli._store import add_store_commands
from node.cli._trilateral import add_trilateral_commands
from node.errors import EwxError
from node.ews.cli import add_ews_commands


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # no public name


def build_parser(extend: Callable[[Subcommands], None] | None = None) -> argparse.ArgumentParser:
    """The whole `ewx` parser; `extend` adds commands that live outside node/."""
    parser = _Parser(
        prog="ewx",
        description="EWX national node: the federated supply-chain "
        "early-warning exchange between KR, US and JP.",
    )
    commands: Subcommands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    add_pki_commands(commands, add_config, add_rotation_commands)
    add_alert_commands(commands, add_config)
    add_trilateral_commands(commands, add_config)
    add_status_command(commands, add_config)
    add_board_command(commands, add_config)
    add_config_commands(commands, add_config)
    add_health_command(commands, add_config)
    add_backup_commands(commands, add_config)
    add_store_commands(commands, add_config)
    add_node_commands(commands, add_config)
    add_outbox_commands(commands, add_config)
    add_audit_commands(commands, add_config)
    add_ews_commands(commands)
    if extend is not None:
        extend(commands)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse, run one command, map errors to exit codes and a one-line message."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EwxError as exc:  # its class says how it ends (node/errors.py)
        print(f"ewx: {'error' if exc.exit_code == EXIT_USAGE else 'refused'}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`ewx ... | head`): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except OSError as exc:  # a path missing or unwritable, a full disk: the operator's input or host
        print(f"ewx: error: {_os_error(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _os_error(exc: OSError) -> str:
    """An OSError in one line: the file it names, then what went wrong."""
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename is not None else what


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for the node-only commands (gateway/cli.py adds the rest)."""
    return run(build_parser(), argv)
