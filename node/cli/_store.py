"""`ewx store migrate`: a stopped node's whole store copied into another database, verified before it commits.

The copy and its checks are node/store/_migrate.py's; this module is the
command, its help and its output, and the check of each checkpoint's
signature against the node's trust (which node/store may not import).
docs/operator-guide.md "Moving the store between SQLite and PostgreSQL" is the procedure.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.cli._common import EXIT_OK, load_config, print_json

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.store import CheckpointCheck, Store


def cmd_store_migrate(args: argparse.Namespace) -> int:
    """Copy the store at --from into the empty store at --to; exit 1 unless the copy verifies."""
    from node.store import StorePlace, migrate_store, read_password

    config = load_config(args)
    source = StorePlace.parse(args.source, flag="--from")
    destination = StorePlace.parse(args.to, flag="--to")
    password = read_password(Path(args.password_file) if args.password_file else None)
    result = migrate_store(
        source, destination, password=password, checker=lambda store: checkpoint_signatures(config, store)
    )
    if args.json:
        print_json(
            {
                "from": result.source,
                "to": result.destination,
                "log": {"size": result.log_size, "root": result.root.hex()},
                "checkpoints_verified": result.checkpoints,
                "signatures_verified": result.signatures_checked,
                "rows": result.rows,
                "verified": True,
            }
        )
        return EXIT_OK
    print(
        f"migrated {result.source} to {result.destination}: {sum(result.rows.values())} rows in"
        f" {len(result.rows)} tables; the copied log ({result.log_size} entries, root"
        f" {result.root.hex()[:16]}…) verifies against all {result.checkpoints} checkpoints of"
        f" {config.node_id}, signatures included; every table's rows equal the source's"
    )
    return EXIT_OK


def checkpoint_signatures(config: NodeConfig, source: Store) -> CheckpointCheck:
    """The check of each stored checkpoint's note: signed by a log key of this node, in its trust
    file as amended by the trust updates the store holds (keys rotate), for that size and root."""
    from node.checks import open_log_checkpoint
    from node.trust import replay

    trust, _ = replay(config.load_trust(), (envelope for _, _, envelope in source.trust_updates()))
    node = config.node_id

    def check(size: int, root: bytes, note: str) -> str | None:
        opened = open_log_checkpoint(note, node=node, trust=trust)
        if opened is None:
            return (
                f"checkpoint {size} is not signed by a log key of {node} (trust file {config.trust_file},"
                " with the store's trust updates): is this the store of the node --config names?"
            )
        checkpoint = opened[0]
        if (checkpoint.size, checkpoint.root_hash) != (size, root):
            return (
                f"checkpoint {size}: its signed note is of size {checkpoint.size}, root"
                f" {checkpoint.root_hash.hex()}, not the size and root stored with it"
            )
        return None

    return check


_DESCRIPTION = """\
Copy a node's whole store from one database into another: every table of the
store's schema (the exchange log, alerts, sequence positions, outbox,
checkpoints with their cosignatures, witness state, trust updates, evidence,
the log's subtree roots, ...), row by row, ids included, in pages (a log of
millions of entries is never held in memory). SQLite to PostgreSQL, the
other way round, or between two of a kind.

The node must be stopped, and no node may run on the destination: a source
file named ewx.sqlite3 is held by its data directory's lock (refused while
the node runs there; a file of another name, a backup, is run on by no
node), a PostgreSQL source or destination by the store's lease (refused while
a node or its standby holds it). The source is opened as `ewx serve` opens
it: a store of an older schema version is brought to this build's first.

The destination must be empty: a PostgreSQL database without tables, or with
an EWX store's tables and no row in them (a database holding other tables is
refused); a SQLite file that does not exist yet (written as a hidden file
beside it, mode 0600, that appears at PATH only once it is complete). The
whole copy is ONE transaction of the destination, and it is committed only
once what it holds, read back through that transaction, verifies:
(1) the copied exchange log, from its entries' own bytes: indices without a
gap, every stored leaf hash its entry's, and its RFC 6962 Merkle root at the
size of each of the store's own checkpoints equal to that checkpoint's root;
(2) each checkpoint's signed note signed by a log key of the node that
--config names (its trust file, amended by the trust updates the store
holds) for that same size and root; (3) the log's size and root equal to the
source store's; (4) the log's stored subtree roots exactly those its entries
give; (5) every table holding as many rows as the source's, and the same rows
(a digest of every row, in each database's own types). On the first mismatch
the transaction is rolled back, nothing is written, and the command exits 1
naming it.

A PostgreSQL password is never in a URL (such a URL is refused): it is the
first line of --password-file, else $EWX_STORE_PASSWORD, else libpq's own
(~/.pgpass, peer authentication); one password serves either side.
Afterwards, point node.toml's [store] url at the new store (or remove
[store] to run on the SQLite file) and start the node. Exit 0 copied and
verified, 1 refused (a mismatch, a destination not empty, a store in use),
2 usage error (a bad flag, a URL with a password, a source that is not a
store)."""


def add_store_commands(commands: Any, add_config: Any) -> None:
    """Register `ewx store migrate`."""
    group = commands.add_parser("store", help="the node's store itself: move it to another database")
    store = group.add_subparsers(dest="store", required=True, metavar="COMMAND", parser_class=type(group))
    p = store.add_parser(
        "migrate",
        help="copy a stopped node's whole store into an empty one (SQLite <-> PostgreSQL), verified before it commits",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config(p)
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="STORE",
        help="the store to copy: sqlite:PATH (e.g. sqlite:/var/lib/ewx/ewx.sqlite3) or postgresql://USER@HOST/DB",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="STORE",
        help="the empty store to copy into: postgresql://USER@HOST/DB (no password in it) or sqlite:PATH (a new file)",
    )
    p.add_argument(
        "--password-file",
        metavar="FILE",
        help="file whose first line is the PostgreSQL password (default: $EWX_STORE_PASSWORD, else libpq's own)",
    )
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_store_migrate)
