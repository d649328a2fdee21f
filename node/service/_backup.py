"""Backing up a node's store while it runs, and restoring one (`ewx backup`, `ewx restore`).

A backup is one SQLite file: a consistent snapshot of `data_dir/ewx.sqlite3`
taken through a read-only connection of its own (node/store/_backup.py),
so the node goes on serving and committing meanwhile. It appears at its
path whole or not at all (node/files.atomic_path).

Both commands check a store file the same way before they accept it
(`check_store_file`): SQLite's integrity check, then the exchange log as an
auditor would check an export of it (node/audit.verify_loaded, with the
node's trust file): every signed checkpoint the store holds must be
reproduced by its entries (append-only), every entry must decode and its
signatures verify, sequences must be gapless, and the store's own Merkle
root (its leaf hashes, which the node resumes from) must be the one its
entries give. A backup that fails any of it is refused with the findings.

Restore takes the data directory's lock (node/files.DataDirLock), so it
refuses while the node runs and no node can start while it works. It copies
the backup into the data directory, checks that copy (what will be
installed, not the file it came from), moves the store in use aside
(`store-before-restore-<time>/`) and renames the copy into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from node.audit import verify_loaded
from node.checks import open_log_checkpoint, verify_witness_cosignature
from node.config import NodeConfig
from node.errors import ConfigError, RefusedOperation, StoreError, UsageError
from node.files import GENESIS_FILE, DataDirLock, atomic_path, sync_directory
from node.ids import Country, peers_of
from node.service._export import store_bundle
from node.service._rotation import trust_with_updates
from node.store import SIDE_FILE_SUFFIXES, STORE_FILE, Store, copy_online, make_self_contained

ASIDE_PREFIX: Final = "store-before-restore-"
"""The folder in the data directory that a restore moves the previous store into."""
_FINDINGS_SHOWN: Final = 8


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What checking one store file established."""

    path: Path
    node: Country
    entries: int
    root: bytes
    checkpoint_size: int | None
    """The size of the newest checkpoint the store holds, None if it holds none."""
    cosigned_by: tuple[Country, ...]
    """The peers whose cosignature that checkpoint carries."""
    problems: list[str] = field(default_factory=list)
    """Why the file is refused: SQLite's integrity findings or the audit's error findings; empty if sound."""

    @property
    def sound(self) -> bool:
        """True iff nothing was found."""
        return not self.problems

    def describe(self) -> str:
        """One line: the log's size, its root and the newest checkpoint."""
        if self.checkpoint_size is None:
            checkpoint = "no signed checkpoint yet"
        else:
            cosigners = ", ".join(self.cosigned_by) or "no peer yet"
            checkpoint = f"newest checkpoint at size {self.checkpoint_size}, cosigned by {cosigners}"
        return f"{self.node}'s log: {self.entries} entries, root {self.root.hex()[:16]}…; {checkpoint}"

    def refusal(self, what: str) -> RefusedOperation:
        """The refusal naming the file and the first findings."""
        shown = self.problems[:_FINDINGS_SHOWN]
        more = len(self.problems) - len(shown)
        lines = "\n  ".join(shown + ([f"... and {more} more"] if more > 0 else []))
        return RefusedOperation(
            f"{what} {self.path}: its exchange log does not verify against its own checkpoints "
            f"and signatures, or the file is damaged:\n  {lines}"
        )


def check_store_file(config: NodeConfig, path: Path, *, workers: int | None = None) -> StoreCheck:
    """Check a store file nothing writes to (a backup), read-only, against this node's trust.

    Raises StoreError if the file is not an EWX store at all, ConfigError if
    the node's own configuration, trust file or log key cannot be loaded.
    `workers` is verify_loaded's (1: no process pool, for a backup taken
    beside a running node).
    """
    store = Store(path, read_only=True)
    try:
        integrity = store.integrity_problems()
        if integrity:
            return StoreCheck(
                path=path,
                node=config.node_id,
                entries=store.log_size,
                root=store.log_root(),
                checkpoint_size=None,
                cosigned_by=(),
                problems=[f"SQLite integrity check: {line}" for line in integrity],
            )
        trust = config.load_trust()
        bundle = store_bundle(config, store)
        report = verify_loaded([bundle], trust=trust, workers=workers)
        newest = store.latest_checkpoint()
        cosigners = _cosigners(config, store, newest[2]) if newest is not None else ()
        return StoreCheck(
            path=path,
            node=config.node_id,
            entries=store.log_size,
            root=store.log_root(),
            checkpoint_size=None if newest is None else newest[0],
            cosigned_by=cosigners,
            problems=[finding.line() for finding in report.errors],
        )
    finally:
        store.close()


def check_backup(config: NodeConfig, path: Path, *, shown_as: Path | None = None) -> StoreCheck:
    """check_store_file for a file an operator gave: one that is not an EWX store is bad input (UsageError)."""
    try:
        check = check_store_file(config, path)
    except StoreError as exc:  # its message names the copy checked; the operator gave `shown_as`
        shown = str(shown_as or path)
        raise UsageError(f"backup {shown}: {str(exc).replace(str(path), shown)}") from None
    return check if shown_as is None else dataclasses.replace(check, path=shown_as)


def _cosigners(config: NodeConfig, store: Store, note: str) -> tuple[Country, ...]:
    trust = trust_with_updates(config, config.load_trust(), store)
    opened = open_log_checkpoint(note, node=config.node_id, trust=trust)
    if opened is None:
        return ()
    checkpoint = opened[0]
    return tuple(
        peer
        for peer in peers_of(config.node_id)
        if verify_witness_cosignature(note, witness_node=peer, trust=trust, checkpoint=checkpoint) is not None
    )


# ------------------------------------------------------------------ backup
def _refuse_postgresql(config: NodeConfig, what: str) -> None:
    """`ewx backup` and `ewx restore` copy the SQLite file; a store on PostgreSQL is the
    agency's database, backed up and restored with the server's own tools."""
    if config.store is not None:
        raise RefusedOperation(
            f"{what}: this node's store is on PostgreSQL ({config.store_place}), not a file: back it up"
            " and restore it with PostgreSQL's own tools (pg_dump / pg_restore, base backups), or copy"
            " it to or from an EWX store file with `ewx store migrate`"
        )


def backup_store(config: NodeConfig, out: Path, *, force: bool = False) -> StoreCheck:
    """Write a checked, consistent copy of the node's store to `out`; works with the node running.

    The copy is taken into a hidden file beside `out` and checked there
    (check_store_file, in this process only: the node keeps the other cores);
    only a copy that passes is renamed to `out`. RefusedOperation if the node
    has no store yet or the copy does not verify (then nothing is at `out`).
    """
    _refuse_postgresql(config, "backup")
    source = config.data_dir / STORE_FILE
    if not source.is_file():
        raise RefusedOperation(f"no store to back up: {source} does not exist (has the node ever run?)")
    with atomic_path(out, force=force) as partial:
        try:
            copy_online(source, partial)
            check = check_store_file(config, partial, workers=1)
        finally:
            for suffix in SIDE_FILE_SUFFIXES:  # SQLite's journal of the copy, if it was cut short
                Path(f"{partial}{suffix}").unlink(missing_ok=True)
        if not check.sound:  # the node's own store has findings: say so, write nothing
            raise dataclasses.replace(check, path=out).refusal("nothing written: the copy of the store for")
    return dataclasses.replace(check, path=out)


# ------------------------------------------------------------------ restore
@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did."""

    check: StoreCheck
    store: Path
    previous: Path | None
    """The folder the previous store was moved into, None if there was none."""


def node_is_running(config: NodeConfig) -> str | None:
    """Why the data directory is in use (a node runs on it), or None if it is free now."""
    if not config.data_dir.is_dir():
        return None
    try:
        lock = DataDirLock.acquire(config.data_dir)
    except ConfigError as exc:
        return str(exc)
    lock.release()
    return None


def restore_store(config: NodeConfig, backup: Path) -> Restored:
    """Replace the node's store with `backup`, once the copy to be installed has passed every check.

    Refuses (RefusedOperation) while the node runs, and a backup that does
    not verify; in either case nothing in the data directory is changed
    but for a hidden temporary file that is removed again.
    """
    _refuse_postgresql(config, "restore")
    if not backup.is_file():
        raise UsageError(f"backup {backup}: no such file")
    data_dir = config.data_dir
    try:
        lock = DataDirLock.acquire(data_dir)
    except ConfigError as exc:
        raise RefusedOperation(f"{exc}; restore only a stopped node: stop it, then run this again") from None
    try:
        with _copy_into(backup, data_dir) as copy:
            check = check_backup(config, copy, shown_as=backup)
            if not check.sound:
                raise check.refusal("backup")
            previous = _install(copy, data_dir)
    finally:
        lock.release()
    return Restored(check=check, store=data_dir / STORE_FILE, previous=previous)


@contextlib.contextmanager
def _copy_into(backup: Path, data_dir: Path) -> Iterator[Path]:
    """A private copy of `backup` in the data directory (same file system: the install is a rename)."""
    descriptor, name = tempfile.mkstemp(prefix=f".{STORE_FILE}.restore.", suffix=".part", dir=data_dir)
    copy = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as target:
            try:
                source = backup.open("rb")
            except OSError as exc:
                raise UsageError(f"backup {backup}: cannot read it: {exc.strerror or exc}") from None
            with source:
                shutil.copyfileobj(source, target, 1 << 20)
            target.flush()
            os.fsync(target.fileno())
        yield copy
    finally:
        copy.unlink(missing_ok=True)
        for suffix in SIDE_FILE_SUFFIXES:
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def _install(copy: Path, data_dir: Path) -> Path | None:
    """Move the store in use aside and rename `copy` into its place; the folder it went to, if any.

    The store in use is first made one self-contained file (its WAL folded
    in), so the switch is one atomic rename: at every instant the data
    directory holds either the old store or the new one, never a store with
    another's WAL beside it. The old one is kept by a hard link in the
    aside folder.
    """
    current = data_dir / STORE_FILE
    pieces = (STORE_FILE, *(STORE_FILE + suffix for suffix in SIDE_FILE_SUFFIXES), GENESIS_FILE)
    if not any((data_dir / name).exists() for name in pieces):
        os.replace(copy, current)
        sync_directory(data_dir)
        return None
    aside = _new_aside(data_dir)
    whole = current.exists() and make_self_contained(current)
    if whole:
        os.link(current, aside / STORE_FILE)
    # What is left beside it after folding, or for a damaged store every piece as it is:
    # its side files before it, so that no WAL is ever left beside a store not its own.
    moved = [name for name in pieces[1:] if (data_dir / name).exists()]
    if not whole and current.exists():
        moved.append(STORE_FILE)
    for name in moved:
        os.replace(data_dir / name, aside / name)
    sync_directory(aside)
    os.replace(copy, current)
    sync_directory(data_dir)
    return aside


def _new_aside(data_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        aside = data_dir / (ASIDE_PREFIX + stamp + (f"-{n}" if n else ""))
        try:
            aside.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return aside
    raise StoreError(f"cannot make a folder for the previous store in {data_dir}")
