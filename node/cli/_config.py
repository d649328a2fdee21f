"""`ewx config check`: is this node.toml, and every file it names, fit to start a node? Without starting it.

Checks, each reported on its own line so that one run lists every problem:
the file itself (TOML, every field, with EWX_ environment overrides applied,
node/config.py); the trust file loads and lists this node and exactly its
peers; each signing key file is readable, not readable by group or others
(0600), Ed25519, and this node's key for its purpose in the trust file; the
TLS key file is 0600 and the certificate matches it, chains to this node's
national CA in the trust file, names this node and is valid now
(node.pki.check_node_tls, as `ewx serve` checks at start); the data
directory exists or can be made. Exit 0 valid, 2 invalid.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.cli._common import EXIT_OK, EXIT_USAGE, print_json
from node.config import NodeConfig
from node.crypto import KEY_PURPOSES
from node.errors import ConfigError, EwxError
from node.trust import Trust


def check_config(
    path: Path, *, at: datetime, environ: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """(problems, what was checked and found sound), one line each; no problems: fit to start."""
    try:
        config = NodeConfig.load(path, environ=environ)
    except ConfigError as exc:
        return [str(exc)], []
    problems: list[str] = []
    sound = [f"config file {path}: node {config.node_id}, peers {', '.join(config.peer_countries)}"]
    trust: Trust | None = None
    try:
        trust = config.load_trust()
        sound.append(f"trust file {config.trust_file}: federation {trust.federation}")
    except EwxError as exc:
        problems.append(str(exc))
    if trust is not None:
        for purpose in KEY_PURPOSES:
            try:
                signer = config.load_signer(purpose, trust)
                sound.append(f"{purpose} key {config.keys.path_for(purpose)}: {signer.key_id}")
            except EwxError as exc:
                problems.append(str(exc))
        try:
            credentials = config.read_tls_credentials()
            certificate = config.check_tls(credentials, trust, at=at)
            sound.append(
                f"tls.certificate {config.tls.certificate}: matches its key, valid until "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}"
            )
        except EwxError as exc:
            problems.append(str(exc))
    problems.extend(_data_dir_problems(config.data_dir))
    return problems, sound


def _data_dir_problems(data_dir: Path) -> list[str]:
    if data_dir.exists():
        if not data_dir.is_dir():
            return [f"data_dir {data_dir} is not a directory"]
        if not os.access(data_dir, os.W_OK | os.X_OK):
            return [f"data_dir {data_dir} is not writable by this user"]
        return []
    parent = next((p for p in data_dir.parents if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        return [f"data_dir {data_dir} does not exist and cannot be made under {parent}"]
    return []


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate a node.toml and the files it names; one line per problem; exit 0 valid, 2 invalid."""
    path = args.config or os.environ.get("EWX_CONFIG")
    if not path:
        print("ewx: error: give --config FILE or set EWX_CONFIG")
        return EXIT_USAGE
    problems, sound = check_config(Path(path), at=datetime.now(UTC))
    if args.json:
        print_json({"valid": not problems, "problems": problems, "checked": sound})
    else:
        for line in problems:
            print(f"PROBLEM {line}")
        if not problems:
            for line in sound:
                print(f"ok  {line}")
            print(f"config {path}: valid")
    return EXIT_OK if not problems else EXIT_USAGE


def add_config_commands(commands: Any, add_config: Any) -> None:
    """The `config` command group."""
    group = commands.add_parser("config", help="check a node configuration without starting the node")
    config = group.add_subparsers(dest="config_command", required=True, parser_class=type(group))
    p = config.add_parser(
        "check",
        help="validate node.toml and the files it names (keys 0600, trust file, certificate); exit 0 or 2",
        description="Validate a node.toml (with EWX_ environment overrides applied) and every file it "
        "names, without starting the node: the trust file loads and lists this node and its peers; each "
        "signing key is readable only by its owner (0600), Ed25519, and this node's key in the trust "
        "file; the TLS key is 0600 and the certificate matches it, chains to this node's national CA, "
        "names this node and is valid now; the data directory can be used. One line per problem; "
        "exit 0 valid, 2 invalid.",
    )
    add_config(p)
    p.add_argument("--json", action="store_true", help="machine output: {valid, problems, checked}")
    p.set_defaults(func=cmd_config_check)
