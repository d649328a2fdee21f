"""What every group of `ewx` commands shares: exit codes, the node configuration, the operator client, output.

Its own module so that command groups (node/cli/_main.py, node/cli/_rotation.py,
node/ews/cli.py) import it rather than each other.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from node.digits import ascii_int
from node.errors import UsageError
from node.operator import OperatorClient

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


def parse_when(value: str) -> datetime:
    """An ISO 8601 UTC time, or +Nd / +Nh relative to now."""
    amount = ascii_int(value[1:-1]) if value.startswith("+") and value[-1:] in ("d", "h") else None
    if amount is not None:
        try:
            return datetime.now(UTC) + (timedelta(days=amount) if value[-1] == "d" else timedelta(hours=amount))
        except OverflowError:
            raise argparse.ArgumentTypeError(f"{value!r} is beyond the calendar (year 9999)") from None
    return parse_iso_time(value, alternative="+Nd/+Nh")


def parse_iso_time(value: str, *, alternative: str) -> datetime:
    """An ISO 8601 time with its zone, in UTC; the error names the `alternative` form the flag also takes."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time or {alternative}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone; give Z or +00:00")
    return parsed.astimezone(UTC)


def config_path(args: argparse.Namespace) -> Path:
    value = args.config or os.environ.get("EWX_CONFIG")
    if not value:
        raise UsageError("no node configuration: give --config FILE or set EWX_CONFIG")
    return Path(value)


def load_config(args: argparse.Namespace) -> NodeConfig:
    """The node configuration named by --config or EWX_CONFIG."""
    return NodeConfig.load(config_path(args))


def operator_client(args: argparse.Namespace) -> OperatorClient:
    return OperatorClient(load_config(args).operator_socket)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))
