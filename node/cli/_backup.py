"""`ewx backup` and `ewx restore`: the node's store, copied while it runs and put back while it is stopped.

The work is node/service/_backup.py's; this module is the commands, their
help and their output. deploy/README.md "Backup and restore" is the
operator's procedure.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli._common import EXIT_OK, load_config, print_json


def cmd_backup(args: argparse.Namespace) -> int:
    """Write a consistent, checked copy of the node's store; the node may keep running."""
    from node.service import backup_store

    config = load_config(args)
    check = backup_store(config, Path(args.out), force=args.force)
    if args.json:
        print_json({"backup": str(check.path), **_summary(check)})
        return EXIT_OK
    print(f"backed up to {check.path}: {check.describe()}; verified")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    """Check a backup and, with --yes, make it the stopped node's store (the previous one kept aside)."""
    from node.service import check_backup, node_is_running, restore_store

    config = load_config(args)
    backup = Path(args.source)
    if not args.yes:
        check = check_backup(config, backup)
        if not check.sound:
            raise check.refusal("backup")
        running = node_is_running(config)
        if args.json:
            print_json({"backup": str(backup), "restored": False, "node_running": running, **_summary(check)})
            return EXIT_OK
        print(f"backup {backup} verifies: {check.describe()}")
        print(
            f"restoring it replaces the store in {config.data_dir} (the current one is moved aside); "
            + (f"the node is running ({running}): stop it first, then " if running else "")
            + "run again with --yes"
        )
        return EXIT_OK
    restored = restore_store(config, backup)
    if args.json:
        print_json(
            {
                "backup": str(backup),
                "restored": True,
                "store": str(restored.store),
                "previous": None if restored.previous is None else str(restored.previous),
                **_summary(restored.check),
            }
        )
        return EXIT_OK
    print(f"restored {backup} as {restored.store}: {restored.check.describe()}")
    if restored.previous is not None:
        print(f"the previous store is kept in {restored.previous}")
    print("start the node; it asks its peers what they hold of it before it publishes again")
    return EXIT_OK


def _summary(check: Any) -> dict[str, Any]:
    return {
        "node": check.node,
        "entries": check.entries,
        "root": check.root.hex(),
        "checkpoint_size": check.checkpoint_size,
        "cosigned_by": list(check.cosigned_by),
        "verified": check.sound,
    }


def add_backup_commands(commands: Any, add_config: Any) -> None:
    """Register `ewx backup` and `ewx restore`."""
    p: argparse.ArgumentParser = commands.add_parser(
        "backup",
        help="copy the node's store to a file, safely while the node runs, and verify the copy",
        description="Copy the node's store (data_dir/ewx.sqlite3) to FILE with SQLite's online backup "
        "API, through a read-only connection of this command's own: the node keeps running and "
        "committing, and the copy is one consistent state of the store. The copy is then checked as "
        "`ewx restore` checks a backup (SQLite's integrity check; the exchange log against its own "
        "signed checkpoints, every signature, the store's Merkle root), in this process only. FILE "
        "appears whole, or not at all: a copy that fails a check, or a backup cut short, leaves "
        "nothing at FILE (a kill leaves at most a hidden .FILE.*.part beside it). FILE holds every "
        "alert the node keeps, so it is written with mode 0600. Run it as the node's user. The "
        "early-warning data (data_dir/ews.duckdb) is not in it. Exit 0 written, 1 refused.",
    )
    add_config(p)
    p.add_argument("--out", required=True, metavar="FILE", help="the backup file to write (a new file)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_backup)

    p = commands.add_parser(
        "restore",
        help="check a backup and, with --yes, make it the stopped node's store",
        description="Check the backup FILE against this node's trust: SQLite's integrity check, then "
        "its exchange log as an auditor checks an export (every signed checkpoint it holds reproduced "
        "by its entries, every signature, gapless sequences, the store's Merkle root). A backup that "
        "fails is refused (exit 1) with the findings. Without --yes, only that check runs and what a "
        "restore would do is printed (exit 0 if the backup would be accepted). With --yes the node "
        "must be stopped (its data directory's lock is taken, so it cannot start meanwhile): the "
        "backup is copied into the data directory, the copy is checked again, the current store is "
        "moved to data_dir/store-before-restore-<time>/ and the copy renamed into place in one "
        "atomic step. On the next start the node asks its peers what they hold of it: if they hold "
        "alerts it published after the backup was taken, it refuses to publish (ewx status: HISTORY "
        "MISSING) rather than reuse their ids (deploy/README.md).",
    )
    add_config(p)
    p.add_argument(
        "--from", dest="source", required=True, metavar="FILE", help="a backup written by `ewx backup`"
    )
    p.add_argument(
        "--yes", action="store_true", help="restore it: without it, only check and say what would be done"
    )
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_restore)
