"""What every group of `ewx` commands shares: exit codes, the node configuration, the operator client, output.

Its own module so that the command groups (node/cli/_pki.py, _alerts.py, ...,
node/ews/cli.py) import it rather than each other; so is node/cli/_alert_fields.py.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from node.errors import UsageError
from node.operator import OperatorClient

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


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


def add_export_out(p: argparse.ArgumentParser) -> None:
    """--out FILE and --force, for a command that writes one new file (`ewx outbox export`, `ewx log export`)."""
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="a new file (written whole or not at all; never a device)",
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
