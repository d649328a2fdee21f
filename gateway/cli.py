"""The `ewx` console entry point: node's commands plus `serve` and `demo`.

node/cli/_main.py builds the parser for everything the core can do alone; this
module adds the commands that need the federation edge, so the dependency
runs one way only (gateway -> node).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from node.cli import EXIT_OK, load_config
from node.cli import _main as node_cli
from node.cli._health import Check
from node.config import NodeConfig
from node.logs import DEFAULT_LEVEL, configure


def cmd_serve(args: argparse.Namespace) -> int:
    """Run a node until SIGTERM, then stop cleanly."""
    from gateway.runtime import serve

    configure(level=args.log_level)
    asyncio.run(serve(load_config(args)))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the end-to-end scenario on three local nodes."""
    from gateway.demo import run_demo

    return run_demo(Path(args.dir) if args.dir else None)


def _grpc_health(config: NodeConfig, *, timeout: float) -> Check:
    """`ewx health`'s third check, imported when run (grpc loads slowly; `--help` stays fast)."""
    from gateway.health_check import check_health_service

    return check_health_service(config, timeout=timeout)


def _add_gateway_commands(commands: node_cli.Subcommands) -> None:
    commands.choices["health"].set_defaults(extra_checks=[_grpc_health])
    p = commands.add_parser("serve", help="run a node until SIGTERM, then stop cleanly")
    p.add_argument("--config", metavar="FILE", help="node configuration (default: $EWX_CONFIG)")
    p.add_argument(
        "--log-level",
        default=DEFAULT_LEVEL,
        choices=["debug", "info", "warning", "error"],
        help="the least severe log events written (JSON lines on standard error; default info)",
    )
    p.set_defaults(func=cmd_serve)
    p = commands.add_parser(
        "demo",
        help="three local nodes, a fresh PKI, the gallium and germanium scenario and the audit of their logs",
    )
    p.add_argument("--dir", metavar="DIR", help="where to keep the run (default: a new temporary folder)")
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """node's parser plus `serve` and `demo`."""
    return node_cli.build_parser(_add_gateway_commands)


def main(argv: Sequence[str] | None = None) -> int:
    """`ewx` console script."""
    return node_cli.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
