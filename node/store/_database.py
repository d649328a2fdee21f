"""The two databases a store can live in, behind one connection: SQLite (the embedded
default, a file in the data directory) and PostgreSQL (the agency's own server).

The store's SQL is written once, in the dialect both understand (`?` parameters,
`INSERT ... ON CONFLICT`, standard types); what differs is said here and nowhere
else: PostgreSQL's parameter marks and column types, SQLite's index hints, how a
write transaction begins, how a full disk and a lost server show themselves, and
how the catalogue is read. The service sees neither (node/store/_store.py).

A PostgreSQL store is held by one process at a time through a lease: a
session-level advisory lock taken by the store's own connection. Every write
goes through that connection, so a process whose connection is gone (its host
died, the server dropped it) has lost its lease and can write nothing more; the
standby that takes the lease next is the only writer (SPEC section 4: one log,
gapless sequences).
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import parse_qsl, urlsplit

from node.errors import StoreError, StoreFull, StoreInUse, StoreUnavailable

if TYPE_CHECKING:
    import psycopg

LEASE_KEY: Final = int.from_bytes(b"EWXLEASE", "big") - (1 << 63)
"""The advisory lock that is a PostgreSQL store's lease (a signed 64-bit key; one
database holds one node's store, and advisory locks are per database)."""

CONNECT_TIMEOUT_SECONDS: Final = 10
"""How long a connection to the PostgreSQL server may take to open."""


PLAN_PER_CALL: Final = "-c plan_cache_mode=force_custom_plan"
"""psycopg prepares a statement on its 5th use, and PostgreSQL then keeps one generic plan,
chosen while the store was nearly empty: the alert lookup went on scanning by origin, 30
times slower after 4,000 alerts (bench/store_calls.py). A plan for each call's values keeps
the prepared statement's saving of the parse and never a stale plan."""

CONNECTION_DEFAULTS: Final = {
    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}
"""libpq settings a store URL may override: over TCP, a server (or the path to it) that
vanished without a word is known gone within about 20 s, and so is the lease
(on a unix socket the kernel tells at once)."""


class Cursor(Protocol):
    """What the store reads from a query (both drivers' cursors have it)."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Database(Protocol):
    """One connection to the store's database, in the store's dialect."""

    kind: str
    """"sqlite" or "postgresql"."""
    errors: tuple[type[Exception], ...]
    """The driver's errors."""
    where: str
    """The store's place for messages and logs: a path, or the URL (it never holds a password)."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def execute_ddl(self, statement: str) -> None: ...

    def cursor(self) -> Any: ...

    def begin_write(self, *, durable: bool = True) -> None:
        """BEGIN a write. `durable` False: its COMMIT need not wait for the disk (what it
        writes can be computed again); it reaches the disk with the next durable commit, and
        a crash before that loses it whole, never half of it nor anything committed before."""
        ...

    def sync(self) -> None: ...

    def begin_read(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def tables(self) -> set[str]: ...

    def columns(self, table: str) -> set[str]: ...

    def problem(self, exc: BaseException) -> StoreError | None:
        """What a driver error means for the store: full, gone, else None (a bug: raise it)."""
        ...

    def integrity_problems(self, limit: int) -> list[str]: ...

    def alive(self) -> bool:
        """Whether the database is still there for this process (PostgreSQL: its lease)."""
        ...

    def analyze(self) -> None:
        """Fresh statistics for the query planner, once at open."""
        ...

    def continue_identity(self, table: str, column: str) -> None:
        """Make the next row's generated `column` follow the largest one present (after a copy)."""
        ...


# ---------------------------------------------------------------- SQLite
class SqliteDatabase:
    """The embedded default: a file in WAL mode, synchronous=FULL (durable at COMMIT)."""

    kind = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)

    def __init__(self, connection: sqlite3.Connection, where: Path) -> None:
        self._connection = connection
        self.raw = connection
        """sqlite3's connection itself, for what only SQLite has (tests trace and plan queries)."""
        self.where = str(where)
        self._relaxed = False
        """In a transaction begun with durable=False: synchronous is NORMAL until it ends."""

    @classmethod
    def open(cls, path: Path) -> SqliteDatabase:
        # check_same_thread off: the store's owner check says which thread, by name,
        # where sqlite3's own would only say "created in another thread".
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        return cls(connection, path)

    @classmethod
    def open_read_only(cls, path: Path, *, immutable: bool) -> SqliteDatabase:
        flags = "?mode=ro&immutable=1" if immutable else "?mode=ro"
        connection = sqlite3.connect(
            path.resolve().as_uri() + flags, uri=True, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA query_only=ON")
        return cls(connection, path)

    @property
    def in_transaction(self) -> bool:
        return self._connection.in_transaction

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        return self._connection.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)

    def execute_ddl(self, statement: str) -> None:
        self._connection.execute(statement)

    def cursor(self) -> Any:
        return _SqliteCursor(self._connection.cursor())

    def begin_write(self, *, durable: bool = True) -> None:
        if not durable:
            # WAL with synchronous=NORMAL: COMMIT appends to the WAL without an fsync; the
            # next FULL commit's fsync of the WAL carries these frames too (SQLite's WAL
            # stays consistent either way). Set back at COMMIT or ROLLBACK.
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._relaxed = True
        self._connection.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write

    def _durable_again(self) -> None:
        if self._relaxed:
            self._connection.execute("PRAGMA synchronous=FULL")
            self._relaxed = False

    def sync(self) -> None:
        """Nothing to wait for: each statement has run when execute returns."""

    def begin_read(self) -> None:
        self._connection.execute("BEGIN")  # WAL: every query after sees one committed state

    def commit(self) -> None:
        try:
            self._connection.execute("COMMIT")
        finally:
            if not self._connection.in_transaction:
                self._durable_again()

    def rollback(self) -> None:
        try:
            if self._connection.in_transaction:  # SQLite itself rolls back on some errors (SQLITE_FULL)
                self._connection.execute("ROLLBACK")
        finally:
            self._durable_again()

    def close(self) -> None:
        self._connection.close()

    def tables(self) -> set[str]:
        return {str(row[0]) for row in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> set[str]:
        return {str(row[1]) for row in self.execute(f"PRAGMA table_info({table})")}

    def problem(self, exc: BaseException) -> StoreError | None:
        if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
            return StoreFull(f"store is full ({self.where}: {exc}); nothing was written; free disk space")
        return None

    def continue_identity(self, table: str, column: str) -> None:
        """Nothing to do: an INTEGER PRIMARY KEY takes the largest + 1 by itself."""

    def alive(self) -> bool:
        """A file in the data directory is always there (its lock is the data directory's)."""
        return True

    def analyze(self) -> None:
        """Nothing: SQLite's planner needs no statistics for these queries (each names its index)."""

    def integrity_problems(self, limit: int) -> list[str]:
        """SQLite's own check of the file (`PRAGMA integrity_check`): empty if sound."""
        rows = [str(row[0]) for row in self.execute(f"PRAGMA integrity_check({int(limit)})")]
        return [] if rows == ["ok"] else rows


class _SqliteCursor:
    """A second cursor, to read one table while the connection writes another."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql, args)


# ---------------------------------------------------------------- PostgreSQL
_PARAMETER: Final = re.compile(r"\?")
_INDEX_HINT: Final = re.compile(r"\s+INDEXED BY \w+")
_DDL_TYPES: Final = (
    (re.compile(r"\bid INTEGER PRIMARY KEY\b"), "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),  # microseconds since the epoch do not fit in 32 bits
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
)


@functools.lru_cache(maxsize=512)
def postgres_sql(sql: str) -> str:
    """A statement of the store's SQL in PostgreSQL's: `%s` parameters, no SQLite index hints.

    The store's statements hold no `?`, `%` or quoted text that could be
    mistaken for them (tests/node/store: every statement is translated and run).
    """
    if "%" in sql:
        raise ValueError(f"store SQL may not contain '%': {sql[:80]!r}")
    return _PARAMETER.sub("%s", _INDEX_HINT.sub("", sql))


def postgres_ddl(statement: str) -> str:
    """A statement of the store's schema in PostgreSQL's column types."""
    for pattern, replacement in _DDL_TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


class PostgresDatabase:
    """A PostgreSQL connection in autocommit mode; transactions begin and end explicitly."""

    kind = "postgresql"

    def __init__(self, connection: psycopg.Connection[Any], url: str) -> None:
        self._connection = connection
        self.where = url
        import psycopg

        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self._psycopg = psycopg
        self._pipeline: Any = None
        self._pipeline_block: Any = None
        self._leased = False
        """While a write transaction is open: psycopg's pipeline, which sends each statement
        without waiting for its answer until one is needed (a SELECT's rows, sync, COMMIT):
        a publish's INSERTs cost no round trip each (~0.1 ms apiece over a unix socket)."""

    @classmethod
    def connect(cls, url: str, *, password: str | None, read_only: bool = False) -> PostgresDatabase:
        """A connection, or StoreError naming the URL and what the server or libpq said.

        `read_only`: every transaction of the session is READ ONLY, so the server
        itself refuses a write from a process that does not hold the lease.
        """
        import psycopg

        given = dict(parse_qsl(urlsplit(url).query))
        extra: dict[str, Any] = {k: v for k, v in CONNECTION_DEFAULTS.items() if k not in given}
        if password is not None:
            extra["password"] = password
        options = [given.get("options", ""), PLAN_PER_CALL]
        if read_only:
            options.append("-c default_transaction_read_only=on")
        extra["options"] = " ".join(o for o in options if o)
        try:
            connection = psycopg.connect(url, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open store {url}: {_first_line(exc)}") from None
        return cls(connection, url)

    @classmethod
    def open_leased(cls, url: str, *, password: str | None) -> PostgresDatabase:
        """A connection that holds the store's lease, or StoreInUse if another process holds it."""
        database = cls.connect(url, password=password)
        try:
            (held,) = database.execute("SELECT pg_try_advisory_lock(?)", (LEASE_KEY,)).fetchone()
        except BaseException:
            database.close()
            raise
        if not held:
            database.close()
            raise StoreInUse(f"store {url} is in use: another ewx process holds its lease")
        database._leased = True
        (commit_mode,) = database.execute("SHOW synchronous_commit").fetchone()
        if commit_mode == "off":
            # A receipt is given after COMMIT returns (SPEC section 4): with the server's
            # synchronous_commit off, that would be before the commit is on disk. A stronger
            # setting of the agency's (remote_write, remote_apply: a replica too) is kept.
            database.execute("SET synchronous_commit = on")
        return database

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._connection.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        return self._connection.execute(postgres_sql(sql), args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._connection.cursor() as cursor:
            cursor.executemany(postgres_sql(sql), rows)

    def execute_ddl(self, statement: str) -> None:
        self._connection.execute(postgres_ddl(statement))

    def cursor(self) -> Any:
        return _PostgresCursor(self._connection.cursor())

    def begin_write(self, *, durable: bool = True) -> None:
        self._pipeline_block = self._connection.pipeline()
        self._pipeline = self._pipeline_block.__enter__()
        self._connection.execute("BEGIN")
        if not durable:
            # For this transaction only: its COMMIT returns before the WAL is flushed (the
            # server flushes it within wal_writer_delay, and with any later durable commit).
            self._connection.execute("SET LOCAL synchronous_commit = off")

    def sync(self) -> None:
        """Wait for the answers to every statement sent so far: a refused one raises here, so
        a part of a group (Store._savepoint) is charged with its own error, not the next's."""
        if self._pipeline is not None:
            self._pipeline.sync()

    def begin_read(self) -> None:
        self._connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        self._connection.execute("COMMIT")
        block, self._pipeline_block, self._pipeline = self._pipeline_block, None, None
        if block is not None:
            block.__exit__(None, None, None)  # waits for COMMIT's answer; raises any error

    def rollback(self) -> None:
        block, self._pipeline_block, self._pipeline = self._pipeline_block, None, None
        if block is not None:
            # Leaving the pipeline with an exception given: an error still pending in it
            # (the one being handled, most often) is logged by psycopg, not raised again.
            ending = RuntimeError("rolling back")
            with contextlib.suppress(RuntimeError):
                block.__exit__(type(ending), ending, None)
        if self.in_transaction and not self._connection.broken:
            self._connection.execute("ROLLBACK")

    def close(self) -> None:
        if self._leased and not self._connection.broken and not self._connection.closed:
            # Given back before the connection goes: the server frees a closed session's
            # locks only once its backend has ended, and a restart (or the test that reopens
            # the store) at once would find its own lease still held.
            with contextlib.suppress(self._psycopg.Error):
                self._connection.execute("SELECT pg_advisory_unlock(%s)", (LEASE_KEY,))
        self._leased = False
        self._connection.close()

    def tables(self) -> set[str]:
        rows = self.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {str(row[0]) for row in rows}

    def columns(self, table: str) -> set[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {str(row[0]) for row in rows}

    def alive(self) -> bool:
        """Whether the connection, and so the lease, is still there (a round trip to the server)."""
        if self._connection.broken or self._connection.closed:
            return False
        try:
            self._connection.execute("SELECT 1")
        except self._psycopg.Error:
            return False
        return True

    def problem(self, exc: BaseException) -> StoreError | None:
        errors = self._psycopg.errors
        if isinstance(exc, errors.ReadOnlySqlTransaction):
            return StoreError(
                f"store {self.where} is opened read-only here (without its lease): only the process"
                " that holds the lease writes; nothing was written"
            )
        if isinstance(exc, errors.DiskFull):
            return StoreFull(f"store is full ({self.where}: {_first_line(exc)}); nothing was written")
        if isinstance(exc, self._psycopg.OperationalError) and (
            self._connection.broken or self._connection.closed
        ):
            return StoreUnavailable(
                f"store {self.where}: the connection to the server is lost ({_first_line(exc)});"
                " this process no longer holds the store's lease"
            )
        return None

    def analyze(self) -> None:
        """ANALYZE: a store opened with tables grown since the last autovacuum gets plans for its
        sizes (ANALYZE samples; seconds at most on a large store)."""
        self._connection.execute("ANALYZE")

    def continue_identity(self, table: str, column: str) -> None:
        """Set the identity's sequence to the largest id (a sequence is not rolled back: call
        it last, just before the commit)."""
        self.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), MAX({column})) FROM {table}"
        )

    def integrity_problems(self, limit: int) -> list[str]:
        """None to report: PostgreSQL checks its pages itself (data checksums, amcheck)."""
        return []


class _PostgresCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(postgres_sql(sql), args)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
