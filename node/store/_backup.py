"""A consistent copy of a store while its node runs: SQLite's online backup API.

`ewx backup` copies the store through a connection of its own, in its own
process, never through the running node's: the node's connection belongs to
its store thread (node/store/_thread.py), and a copy of the file's bytes
(cp, rsync) taken while the node commits can mix pages of two states.
`sqlite3.Connection.backup` with its default `pages=-1` copies every page in
one step, inside one read transaction, so the copy is one committed state of
the store; in WAL mode that reader never blocks the node's writers (they go
on appending to the WAL meanwhile), and no write of the node restarts it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from node.errors import StoreError

SIDE_FILE_SUFFIXES: Final = ("-wal", "-shm", "-journal")
"""SQLite's files beside a database; each belongs to the database it sits beside."""


def copy_online(source: Path, target: Path) -> None:
    """Copy the store at `source` into `target` (a new, empty file) as one consistent snapshot.

    `source` is opened read-only (`mode=ro`): this connection can never
    write to the node's store. `target` ends as a self-contained database in
    rollback-journal mode (no -wal beside it), so it is one file to carry.
    Raises StoreError if `source` cannot be read.
    """
    try:
        origin = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read store {source}: {exc}") from exc
    try:
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            origin.backup(copy)  # pages=-1: all pages in one step, one snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # the copy kept the source's WAL mode
        finally:
            copy.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot back up store {source}: {exc}") from exc
    finally:
        origin.close()


def make_self_contained(path: Path) -> bool:
    """Fold a stopped store's WAL into its file and leave it in rollback mode: one file, no -wal.

    For moving a store aside as one file (a restore keeps the previous one).
    False if the file cannot be opened or checkpointed (it is damaged): then
    it is left for the caller to move with its side files as they are.
    """
    try:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            mode = connection.execute("PRAGMA journal_mode=DELETE").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return False
    if mode is None or str(mode[0]).lower() != "delete":
        return False
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return not any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-journal"))
