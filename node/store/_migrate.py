"""Moving a node's whole store from one database to another (`ewx store migrate`).

SQLite to PostgreSQL (an agency moving its node onto its own server), and back,
or between two of a kind. Every table the schema's migrations make is copied
(node/store/_schema.py is the one list of them: `store_tables`), row by row
with every column as it is (ids included), page by page in primary-key order:
a table is never one result in memory, whatever its size.

The copy is ONE transaction of the destination, and it commits only if what
that transaction now holds verifies, read back through the same transaction:

1. the exchange log, from its entries' own bytes: indices 0..n-1 without a
   gap, every stored leaf hash the hash of its entry, and the RFC 6962 root
   of the first `size` entries equal to the root of each of the store's own
   checkpoints at that size (and, given a `check_checkpoint`, each
   checkpoint's signed note verifies and names that size and root);
2. the log's size and root equal to the source store's;
3. the log's stored subtree roots (`merkle`, what the node resumes from)
   exactly those its entries give;
4. every table holding as many rows as the source's, and the same rows (an
   order-free digest of every row, read back from the destination, against
   the one of the rows read from the source).

On the first mismatch the transaction is rolled back, so nothing is written,
and MigrationRefused names it. The destination must be empty (its tables,
if any, without a row but the schema version) and is held while the copy
runs: a PostgreSQL database by its lease (node/store/_database.py), a new
SQLite file by being a hidden file that appears at its path only once
committed (node/files.atomic_path). The source is opened as a node opens it,
held the same way (the data directory's lock for `data_dir/ewx.sqlite3`, the
lease for PostgreSQL), so that no node writes it meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from node.crypto import EMPTY_ROOT, CompactRange, leaf_hash
from node.errors import ConfigError, MigrationRefused, RefusedOperation, StoreError, StoreInUse, UsageError
from node.files import DataDirLock, atomic_path
from node.store._backup import SIDE_FILE_SUFFIXES, make_self_contained
from node.store._database import Database, PostgresDatabase, SqliteDatabase
from node.store._schema import MIGRATIONS, TABLES
from node.store._store import Store
from node.store.settings import PASSWORD_ENV, POSTGRES_SCHEMES, STORE_FILE, check_postgres_url, redact

BATCH_ROWS: Final = 2_000
"""Rows read per query and inserted per statement (log entries are up to a few kB each)."""

CheckpointCheck = Callable[[int, bytes, str], str | None]
"""Judges one stored checkpoint (size, root, signed note): a sentence saying what is wrong, or None."""

SQLITE_PREFIX: Final = "sqlite:"


# ------------------------------------------------------------------ the tables
@dataclass(frozen=True, slots=True)
class StoreTable:
    """One table of the schema, as the copy needs it."""

    name: str
    key: tuple[str, ...]
    """Its primary key: the order it is read in, page by page."""
    identity: str | None
    """A column PostgreSQL numbers itself (`id INTEGER PRIMARY KEY`), whose sequence must go on past the copied ids."""


_CREATE: Final = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)", re.DOTALL)
_COMPOSITE_KEY: Final = re.compile(r"PRIMARY KEY\s*\(([^)]*)\)")
_COLUMN_KEY: Final = re.compile(r"(?:^|,)\s*(\w+)\s+\w+\s+PRIMARY KEY\b")
_IDENTITY: Final = re.compile(r"(?:^|,)\s*id INTEGER PRIMARY KEY\b")  # as node/store/_database.py's DDL


def store_tables() -> tuple[StoreTable, ...]:
    """Every table the schema's migrations make (TABLES and those added since, such as `merkle`),
    in the order they are made, each with its primary key."""
    found: dict[str, StoreTable] = {}
    for text in _schema_texts():
        for statement in text.split(";"):
            match = _CREATE.match(statement.strip())
            if match is None:
                continue
            name, body = match.groups()
            composite = _COMPOSITE_KEY.search(body)
            if composite is not None:
                key = tuple(column.strip() for column in composite.group(1).split(","))
            else:
                column = _COLUMN_KEY.search(body)
                if column is None:
                    raise StoreError(f"schema: table {name} has no primary key to copy it by")
                key = (column.group(1),)
            found[name] = StoreTable(name, key, "id" if _IDENTITY.search(body) else None)
    missing = TABLES - set(found)
    if missing:  # TABLES is read from the first migration: it cannot be
        raise StoreError(f"schema: tables {sorted(missing)} are made by no migration")
    return tuple(found.values())


def _schema_texts() -> Iterator[str]:
    """The SQL of every migration, for either database (a table is made by both alike), comments left out."""
    for migration in MIGRATIONS:
        texts = [migration] if isinstance(migration, str) else list(migration.values())
        for text in texts:
            yield re.sub(r"--[^\n]*", "", text)


COPIED_TABLES: Final = store_tables()


# ------------------------------------------------------------------ where a store is
@dataclass(frozen=True, slots=True)
class StorePlace:
    """A store named on the command line: `sqlite:PATH` or a `postgresql://` URL (no password in it)."""

    kind: str
    """"sqlite" or "postgresql"."""
    path: Path | None = None
    url: str | None = None

    @classmethod
    def parse(cls, text: str, *, flag: str) -> StorePlace:
        """The place `text` names; UsageError, naming `flag`, for anything else or a URL with a password."""
        if text.startswith(SQLITE_PREFIX):
            rest = text[len(SQLITE_PREFIX) :]
            if not rest:
                raise UsageError(f"{flag} {text!r} names no file: give sqlite:PATH")
            return cls("sqlite", path=Path(rest))
        if text.partition(":")[0] in POSTGRES_SCHEMES and "://" in text:
            try:
                check_postgres_url(text)
            except ConfigError:
                raise UsageError(
                    f"{flag} {redact(text)!r}: the URL holds a password; give it in a file"
                    f" (--password-file) or the {PASSWORD_ENV} environment variable, never in the URL"
                ) from None
            return cls("postgresql", url=text)
        raise UsageError(f"{flag} {redact(text)!r}: give sqlite:PATH or postgresql://USER@HOST/DATABASE")

    def __str__(self) -> str:
        return f"{SQLITE_PREFIX}{self.path}" if self.kind == "sqlite" else str(self.url)

    def same_as(self, other: StorePlace) -> bool:
        """Whether both name one store (the same file, or the same URL)."""
        if self.kind != other.kind:
            return False
        if self.path is not None and other.path is not None:
            return self.path.resolve() == other.path.resolve()
        return self.url == other.url


@contextlib.contextmanager
def _node_stopped(path: Path, what: str) -> Iterator[None]:
    """Hold the data directory's lock while `path` is used, if `path` is a data directory's
    store: a node runs on `data_dir/ewx.sqlite3` only, holding that lock (node/files.py)."""
    if path.resolve().name != STORE_FILE:
        yield
        return
    data_dir = path.resolve().parent
    try:
        lock = DataDirLock.acquire(data_dir)
    except ConfigError as exc:
        raise RefusedOperation(f"{what} {path}: {exc}; stop the node first, then migrate") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def open_source(place: StorePlace, *, password: str | None = None) -> Iterator[Store]:
    """The store to copy, opened as a node opens it (an older schema is migrated first) and held:
    the data directory's lock, or the PostgreSQL lease (StoreInUse while a node holds it)."""
    path, url = place.path, place.url
    if url is not None:
        _require_postgres_store(url, password)
        try:
            store = Store.postgresql(url, password=password)
        except StoreInUse as exc:
            raise StoreInUse(f"source: {exc}; stop the node (and any standby) first, then migrate") from None
        try:
            yield store
        finally:
            store.close()
        return
    if path is None or not path.is_file():
        raise UsageError(f"--from {place}: no such file")
    _require_sqlite_store(path)
    with _node_stopped(path, "source"):
        store = Store(path)
        try:
            yield store
        finally:
            store.close()


@contextlib.contextmanager
def open_destination(place: StorePlace, *, password: str | None = None) -> Iterator[Store]:
    """The store to copy into, made if need be and held while the copy runs.

    PostgreSQL: the database with its schema made and its lease held (StoreInUse
    if a node holds it); refused if it holds tables that are not an EWX store's.
    SQLite: a new file (refused if the path exists), written as a hidden file
    beside it that appears at the path only when the context ends without an
    exception (node/files.atomic_path), as one self-contained file.
    """
    path, url = place.path, place.url
    if url is not None:
        _require_no_other_tables(url, password)
        try:
            store = Store.postgresql(url, password=password)
        except StoreInUse as exc:
            raise StoreInUse(f"destination: {exc}; a node runs on it") from None
        try:
            yield store
        finally:
            store.close()
        return
    if path is None:
        raise UsageError("--to names no store")
    if path.exists() or path.is_symlink():
        raise RefusedOperation(
            f"destination {place} already exists: a migration writes a new file, it never replaces a store"
        )
    if not path.parent.is_dir():
        raise UsageError(f"--to {place}: no folder {path.parent}")
    with _node_stopped(path, "destination"), atomic_path(path) as partial:
        try:
            store = Store(partial)
            try:
                yield store
            finally:
                store.close()
            if not make_self_contained(partial):
                raise StoreError(f"destination {place}: the copy could not be made one file")
        finally:
            for suffix in SIDE_FILE_SUFFIXES:
                Path(f"{partial}{suffix}").unlink(missing_ok=True)


def _require_sqlite_store(path: Path) -> None:
    """Refuse a file that is not an EWX store before opening it to write (which would make one)."""
    try:
        database = SqliteDatabase.open_read_only(path, immutable=False)
        try:
            tables = database.tables()
        finally:
            database.close()
    except SqliteDatabase.errors as exc:
        raise UsageError(f"--from sqlite:{path}: cannot read it as a store: {exc}") from None
    missing = sorted(TABLES - tables)
    if missing:
        raise UsageError(f"--from sqlite:{path} is not an EWX store (no table {', '.join(missing)})")


def _require_postgres_store(url: str, password: str | None) -> None:
    database = PostgresDatabase.connect(url, password=password)
    try:
        missing = sorted(TABLES - database.tables())
    finally:
        database.close()
    if missing:
        raise UsageError(f"--from {url} is not an EWX store (no table {', '.join(missing)})")


def _require_no_other_tables(url: str, password: str | None) -> None:
    database = PostgresDatabase.connect(url, password=password)
    try:
        other = sorted(database.tables() - {table.name for table in COPIED_TABLES})
    finally:
        database.close()
    if other:
        raise RefusedOperation(
            f"destination {url} holds tables that are not an EWX store's ({', '.join(other)}):"
            " migrate into a new, empty database"
        )


# ------------------------------------------------------------------ the copy
@dataclass(frozen=True, slots=True)
class Migrated:
    """What a migration copied and verified."""

    source: str
    destination: str
    log_size: int
    root: bytes
    checkpoints: int
    """How many checkpoints the copied log was verified against."""
    signatures_checked: bool
    """Whether each checkpoint's signed note was verified too (a `check_checkpoint` was given)."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows copied, per table."""


def migrate_store(
    source: StorePlace,
    destination: StorePlace,
    *,
    password: str | None = None,
    checker: Callable[[Store], CheckpointCheck | None] | None = None,
    batch: int = BATCH_ROWS,
) -> Migrated:
    """Open both stores (open_source, open_destination) and copy_store one into the other.

    `checker`, given the opened source, returns the check of its checkpoints'
    signatures (the node's trust amended by the store's trust updates).
    """
    if source.same_as(destination):
        raise UsageError(f"--from and --to name the same store ({source})")
    with open_source(source, password=password) as origin:
        check = None if checker is None else checker(origin)
        with open_destination(destination, password=password) as target:
            result = copy_store(origin, target, check_checkpoint=check, batch=batch)
    return Migrated(
        source=str(source),
        destination=str(destination),
        log_size=result.log_size,
        root=result.root,
        checkpoints=result.checkpoints,
        signatures_checked=result.signatures_checked,
        rows=result.rows,
    )


def copy_store(
    source: Store,
    destination: Store,
    *,
    check_checkpoint: CheckpointCheck | None = None,
    batch: int = BATCH_ROWS,
) -> Migrated:
    """Copy every table of `source` into the empty `destination` in one transaction of the
    destination, and commit it only if it verifies (the module docstring's four checks).

    RefusedOperation if the destination is not empty; MigrationRefused naming the
    first mismatch (nothing written); StoreError if a database fails meanwhile
    (nothing written either). Both stores must have been opened by this code (one
    schema version); neither may be used by another thread meanwhile.
    """
    src, dst = source._conn, destination._conn
    columns = _columns(src, dst, source.where)
    held = _holdings(dst)
    if held:
        raise RefusedOperation(
            f"destination {destination.where} is not empty: it holds {', '.join(held)};"
            " migrate only into a new, empty database or a new file"
        )
    try:
        src.begin_read()  # one state of the source throughout (nothing should write it anyway)
        try:
            dst.begin_write()
            try:
                dst.execute("DELETE FROM meta")  # its schema version, which the source's replaces
                copied = {
                    table.name: _copy_table(src, dst, table, columns[table.name], batch)
                    for table in COPIED_TABLES
                }
                checked = _Verification(
                    source,
                    src=src,
                    dst=dst,
                    columns=columns,
                    copied=copied,
                    check_checkpoint=check_checkpoint,
                    batch=batch,
                )
                problem = checked.run()
                if problem is not None:
                    raise MigrationRefused(
                        f"the copy of {source.where} does not verify, so nothing was written to"
                        f" {destination.where}: {problem}"
                    )
                _continue_identities(dst)
                dst.commit()
            except BaseException:
                dst.rollback()
                raise
        finally:
            src.rollback()
    except (*src.errors, *dst.errors) as exc:
        problem_of = dst.problem(exc) or src.problem(exc)
        if problem_of is not None:
            raise problem_of from None
        raise StoreError(
            f"copying {source.where} to {destination.where} failed, nothing was written: {_first_line(exc)}"
        ) from None
    return Migrated(
        source=source.where,
        destination=destination.where,
        log_size=checked.size,
        root=checked.root,
        checkpoints=checked.checkpoints,
        signatures_checked=check_checkpoint is not None,
        rows={name: digest.count for name, digest in copied.items()},
    )


def _columns(src: Database, dst: Database, where: str) -> dict[str, list[str]]:
    """Each table's columns, its key's first: the order rows are read, written and digested in."""
    columns: dict[str, list[str]] = {}
    for table in COPIED_TABLES:
        have, want = src.columns(table.name), dst.columns(table.name)
        if have != want:
            raise StoreError(
                f"table {table.name} of {where} has columns {sorted(have)}, the destination's"
                f" {sorted(want)}: not one schema"
            )
        columns[table.name] = [*table.key, *sorted(have - set(table.key))]
    return columns


def _holdings(db: Database) -> list[str]:
    """What a destination holds beyond an empty schema: "N rows in TABLE", table by table."""
    held = []
    for table in COPIED_TABLES:
        where = " WHERE key <> 'schema_version'" if table.name == "meta" else ""
        (count,) = db.execute(f"SELECT COUNT(*) FROM {table.name}{where}").fetchone()
        if count:
            held.append(f"{int(count)} row{'' if int(count) == 1 else 's'} in {table.name}")
    return held


def _scan(db: Database, table: StoreTable, columns: Sequence[str], batch: int) -> Iterator[tuple[Any, ...]]:
    """Every row of `table` (its `columns`, the key's first), a page per query in key order.

    Keyset pages, not one cursor: a PostgreSQL cursor fetches a query's whole
    result at once. Each database orders its own text keys by its own rules;
    that is enough, since each page starts after the last key of the one before.
    """
    names, order = ", ".join(columns), ", ".join(table.key)
    marks = ", ".join("?" * len(table.key))
    width = len(table.key)
    rows = db.execute(f"SELECT {names} FROM {table.name} ORDER BY {order} LIMIT ?", (batch,)).fetchall()
    after = f"SELECT {names} FROM {table.name} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT ?"
    while rows:
        yield from (tuple(row) for row in rows)
        if len(rows) < batch:
            return
        rows = db.execute(after, (*rows[-1][:width], batch)).fetchall()


def _copy_table(src: Database, dst: Database, table: StoreTable, columns: list[str], batch: int) -> RowDigest:
    """Insert every row of `table` as read from `src`; the digest of the rows read."""
    insert = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    digest = RowDigest()
    page: list[tuple[Any, ...]] = []
    for row in _scan(src, table, columns, batch):
        digest.add(row)
        page.append(row)
        if len(page) >= batch:
            dst.executemany(insert, page)
            page.clear()
    if page:
        dst.executemany(insert, page)
    return digest


def _continue_identities(db: Database) -> None:
    """Set each PostgreSQL identity's sequence past the largest copied id, so that the next
    insert does not reuse one (SQLite's INTEGER PRIMARY KEY takes the largest + 1 by itself).

    After the checks, just before the commit: a sequence is not rolled back.
    """
    for table in COPIED_TABLES:
        if table.identity is not None:
            db.continue_identity(table.name, table.identity)


# ------------------------------------------------------------------ the checks
_MASK: Final = (1 << 256) - 1


class RowDigest:
    """The rows of a table, in any order: how many, and the sum of their SHA-256 hashes mod 2^256.

    Order-free, so each side may read in its own key order; every value is
    hashed with its type and length, so a text that became bytes, or a
    number that became text, changes it.
    """

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0

    def add(self, row: Sequence[Any]) -> None:
        hashed = hashlib.sha256()
        for value in row:
            hashed.update(_encoded(value))
        self._sum = (self._sum + int.from_bytes(hashed.digest(), "big")) & _MASK
        self.count += 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowDigest) and (self.count, self._sum) == (other.count, other._sum)

    def __hash__(self) -> int:
        return hash((self.count, self._sum))


def _encoded(value: Any) -> bytes:
    if value is None:
        return b"n"
    if isinstance(value, bool):  # not in the schema; kept apart from int all the same
        return b"t" if value else b"f"
    if isinstance(value, int):
        return b"i%d;" % value
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"s%d:" % len(data) + data
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return b"b%d:" % len(data) + data
    text = repr(value).encode()
    return b"o" + type(value).__name__.encode() + b"%d:" % len(text) + text


class _Verification:
    """The checks of copy_store, through the destination's open transaction."""

    def __init__(
        self,
        source: Store,
        *,
        src: Database,
        dst: Database,
        columns: dict[str, list[str]],
        copied: dict[str, RowDigest],
        check_checkpoint: CheckpointCheck | None,
        batch: int,
    ) -> None:
        self.source, self.src, self.dst = source, src, dst
        self.columns, self.copied = columns, copied
        self.check_checkpoint, self.batch = check_checkpoint, batch
        self.tables = {table.name: table for table in COPIED_TABLES}
        self.size, self.root, self.checkpoints = 0, EMPTY_ROOT, 0

    def run(self) -> str | None:
        """The first mismatch, or None."""
        log_digest, merkle_digest = RowDigest(), RowDigest()
        problem = self._log(log_digest, merkle_digest)
        if problem is not None:
            return problem
        if (self.size, self.root) != (self.source.log_size, self.source.log_root()):
            return (
                f"the copied log has {self.size} entries and root {self.root.hex()}, the source store"
                f" {self.source.log_size} and root {self.source.log_root().hex()}"
            )
        stored_merkle = self._digest("merkle")
        if stored_merkle != merkle_digest:
            return (
                "the log's stored subtree roots (table merkle) are not those its entries give"
                f" ({stored_merkle.count} rows, the entries give {merkle_digest.count})"
            )
        for name in self.tables:
            digest = (
                log_digest if name == "log" else stored_merkle if name == "merkle" else self._digest(name)
            )
            (in_source,) = self.src.execute(f"SELECT COUNT(*) FROM {name}").fetchone()
            copied = self.copied[name]
            if not int(in_source) == copied.count == digest.count:
                return (
                    f"table {name}: the source holds {int(in_source)} rows, {copied.count} were read"
                    f" and the copy holds {digest.count}"
                )
            if digest != copied:
                return f"table {name}: the copy's {digest.count} rows are not the source's"
        return None

    def _digest(self, name: str) -> RowDigest:
        digest = RowDigest()
        for row in _scan(self.dst, self.tables[name], self.columns[name], self.batch):
            digest.add(row)
        return digest

    def _log(self, log_digest: RowDigest, merkle_digest: RowDigest) -> str | None:
        """Walk the copied log from its entries, checking each checkpoint as its size is reached."""
        log_columns = self.columns["log"]
        at_idx, at_entry, at_hash = (log_columns.index(c) for c in ("idx", "entry", "leaf_hash"))
        checkpoints = _scan(self.dst, self.tables["checkpoints"], ["size", "root", "note"], self.batch)
        pending = next(checkpoints, None)
        frontier = CompactRange()
        while pending is not None and int(pending[0]) == 0:
            problem = self._checkpoint(pending, frontier)
            if problem is not None:
                return problem
            pending = next(checkpoints, None)
        for row in _scan(self.dst, self.tables["log"], log_columns, self.batch):
            log_digest.add(row)
            index, entry, stored = int(row[at_idx]), bytes(row[at_entry]), bytes(row[at_hash])
            if index != frontier.size:
                return f"log entry {frontier.size} is missing (the next one held is {index})"
            hashed = leaf_hash(entry)
            if hashed != stored:
                return (
                    f"log entry {index}: its bytes do not hash to the leaf hash stored beside them"
                    " (the entry or its hash was changed)"
                )
            for completed in frontier.append(hashed):
                merkle_digest.add(completed)
            while pending is not None and int(pending[0]) == frontier.size:
                problem = self._checkpoint(pending, frontier)
                if problem is not None:
                    return problem
                pending = next(checkpoints, None)
        self.size, self.root = frontier.size, frontier.root()
        if pending is not None:
            return f"checkpoint {int(pending[0])} is of a log larger than the {frontier.size} entries copied"
        return None

    def _checkpoint(self, row: tuple[Any, ...], frontier: CompactRange) -> str | None:
        size, root, note = int(row[0]), bytes(row[1]), str(row[2])
        self.checkpoints += 1
        computed = frontier.root()
        if computed != root:
            return (
                f"the copied log's root at size {size} is {computed.hex()}, but the store's checkpoint"
                f" at that size has root {root.hex()}"
            )
        if self.check_checkpoint is not None:
            problem = self.check_checkpoint(size, root, note)
            if problem is not None:
                return problem
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
