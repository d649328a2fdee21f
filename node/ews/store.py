"""The early-warning store: one DuckDB file, `ews.duckdb`, in the node's data directory.

Why DuckDB and not the node's SQLite store: the indicator data is bulk and
columnar (Korea's monitored list is ~7 million flow rows), every indicator is
a window over a series, and DuckDB reads a CSV, validates it and computes
windowed medians and MADs over it in a few seconds on two cores (bench/scan.py),
where row-by-row SQLite inserts alone would take longer. It also keeps this
bulk I/O out of the exchange store, whose commits the peers wait on.

DuckDB lets one process write a file at a time. Every `ewx ews` command
opens the store for the length of one operation and closes it; a second
process waits for it (EWS_LOCK_WAIT_SECONDS) and is then refused with a
clear message instead of a traceback.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import duckdb

from node.errors import RefusedOperation, StoreError

EWS_FILE: Final = "ews.duckdb"
"""The store's file name inside the node's data directory."""
SCHEMA_VERSION: Final = 2
"""1: the data, batches, replacements, detections. 2: `event_reports` and `watchlists` (issue 12)."""
EWS_LOCK_WAIT_SECONDS: Final = 30.0
MEMORY_LIMIT: Final = "900MB"
"""DuckDB spills to disk beyond this; keeps a scan of the bench's data under 1 GB."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
-- Monthly imports by HS-6 code and partner; one row per (hs_code, partner, period).
CREATE TABLE IF NOT EXISTS flows (
    hs_code VARCHAR NOT NULL, partner VARCHAR NOT NULL, period VARCHAR NOT NULL,
    value DOUBLE NOT NULL, quantity DOUBLE NOT NULL, unit VARCHAR NOT NULL, batch INTEGER NOT NULL,
    month INTEGER NOT NULL  -- the period as year * 12 + month - 1, for the indicators' windows
);
CREATE TABLE IF NOT EXISTS prices (
    hs_code VARCHAR NOT NULL, period VARCHAR NOT NULL,
    price DOUBLE NOT NULL, currency VARCHAR NOT NULL, unit VARCHAR NOT NULL, batch INTEGER NOT NULL
);
-- Policy moves by a country on HS codes (4 or 6 digits, `;`-joined, sorted).
CREATE TABLE IF NOT EXISTS events (
    event_id VARCHAR NOT NULL, country VARCHAR NOT NULL, hs_codes VARCHAR NOT NULL,
    measure VARCHAR NOT NULL, announced DATE NOT NULL, effective DATE NOT NULL,
    stage VARCHAR NOT NULL, batch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shares (
    year INTEGER NOT NULL, hs_code VARCHAR NOT NULL, country VARCHAR NOT NULL,
    share DOUBLE NOT NULL, batch INTEGER NOT NULL
);
-- Every ingest (file or `event add`), changed or not: the node's own record.
CREATE TABLE IF NOT EXISTS batches (
    batch INTEGER PRIMARY KEY, kind VARCHAR NOT NULL, source VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, layout VARCHAR NOT NULL, rows_read INTEGER NOT NULL,
    added INTEGER NOT NULL, replaced INTEGER NOT NULL, unchanged INTEGER NOT NULL,
    skipped INTEGER NOT NULL, ignored INTEGER NOT NULL, ingested_at VARCHAR NOT NULL
);
-- A corrected row replaced an older one: both, as JSON.
CREATE TABLE IF NOT EXISTS replacements (
    batch INTEGER NOT NULL, kind VARCHAR NOT NULL, key VARCHAR NOT NULL,
    old VARCHAR NOT NULL, new VARCHAR NOT NULL
);
-- What the scan found, with its evidence, and what the analyst decided.
CREATE TABLE IF NOT EXISTS detections (
    detection_id VARCHAR PRIMARY KEY, hs_code VARCHAR NOT NULL, period VARCHAR NOT NULL,
    partner VARCHAR NOT NULL, rule VARCHAR NOT NULL, severity VARCHAR NOT NULL,
    category VARCHAR NOT NULL, state VARCHAR NOT NULL, evidence VARCHAR NOT NULL,
    data_version INTEGER NOT NULL, found_at VARCHAR NOT NULL, decided_at VARCHAR,
    alert_id VARCHAR, dismiss_reason VARCHAR, edits VARCHAR
);
"""

_EVENT_REPORTS: Final = """
-- A member's policy-move report (POLICY_REPORT) taken into `events`: which event it names,
-- who sent it (`peer`: another member than this node) and the batch that took it. One row per
-- report: the same report again is not taken twice. An event may be named by several reports
-- and by the node's own analysts; the rules count it as a peer's report if any row says so.
CREATE TABLE IF NOT EXISTS event_reports (
    origin VARCHAR NOT NULL, alert_id VARCHAR NOT NULL, digest VARCHAR NOT NULL,
    event_id VARCHAR NOT NULL, peer BOOLEAN NOT NULL, batch INTEGER NOT NULL, taken_at VARCHAR NOT NULL,
    PRIMARY KEY (origin, alert_id, digest)
);
"""

_WATCHLISTS: Final = """
-- Every watchlist version the node said was in force when a scan asked (by its proposal's
-- digest; version 0, the empty one, is not kept): what an offline scan and `ews explain` use.
CREATE TABLE IF NOT EXISTS watchlists (
    digest VARCHAR PRIMARY KEY, version INTEGER NOT NULL, hs_edition VARCHAR,
    in_force_at VARCHAR, pairs VARCHAR NOT NULL, first_seen VARCHAR NOT NULL
);
"""

_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (_EVENT_REPORTS, _WATCHLISTS),
}
"""The statements that take a store from schema N to N + 1 (in one transaction, with the data kept)."""


class EwsStore:
    """An open early-warning store; use as a context manager, one operation at a time."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self.db = connection
        self.path = path

    @classmethod
    def open(
        cls, data_dir: Path, *, read_only: bool = False, wait_seconds: float = EWS_LOCK_WAIT_SECONDS
    ) -> EwsStore:
        """Open (creating, unless read-only) `data_dir/ews.duckdb`, waiting while another process holds it."""
        path = data_dir / EWS_FILE
        if read_only and not path.exists():
            return cls.in_memory()
        if not data_dir.is_dir():
            raise StoreError(f"data directory {data_dir} does not exist or is not a folder")
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                connection = duckdb.connect(str(path), read_only=read_only, config=_settings(data_dir))
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise StoreError(f"cannot open the early-warning store {path}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise RefusedOperation(
                        f"the early-warning store {path} is in use by another process "
                        f"(an ingest or scan still running?); waited {wait_seconds:.0f}s"
                    ) from None
                time.sleep(0.1)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open the early-warning store {path}: {exc}") from None
        store = cls(connection, path)
        if not read_only:
            store._create()
        return store

    @classmethod
    def in_memory(cls) -> EwsStore:
        """A fresh store in memory (tests, and a read of a node that has no data yet)."""
        store = cls(duckdb.connect(":memory:", config={"threads": 2}), None)
        store._create()
        return store

    def _create(self) -> None:
        with self.transaction():
            self.db.execute(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:  # a new store
                for statement in (_EVENT_REPORTS, _WATCHLISTS):
                    self.db.execute(statement)
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                return
            version = int(row[0]) if row[0].isdigit() else -1
            if not 1 <= version <= SCHEMA_VERSION:
                raise StoreError(f"early-warning store has schema {row[0]}, this node reads {SCHEMA_VERSION}")
            while version < SCHEMA_VERSION:  # an older store: migrated in place, its data kept
                for statement in _MIGRATIONS[version]:
                    self.db.execute(statement)
                version += 1
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])

    def schema_version(self) -> int:
        """The schema this store is at (SCHEMA_VERSION once opened for writing)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the file; other processes may open it again."""
        self.db.close()

    def __enter__(self) -> EwsStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All of it or none of it: a failed ingest leaves the store as it was."""
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def drop_work(self, *, keep: tuple[str, ...] = ()) -> None:
        """Drop the temporary `_ews_*` tables and views an ingest or a scan left, except `keep`.

        They hold a copy of the rows they were made from (7.2 million flows are
        some 300 MB): left behind, they would squeeze the next statement under
        the store's memory limit into spilling to disk.
        """
        work = self.db.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_catalog = 'temp' AND table_name LIKE '\\_ews\\_%' ESCAPE '\\'"
        ).fetchall()
        for name, kind in sorted(work, key=lambda row: row[1] != "VIEW"):  # views first: they read the tables
            if name not in keep:
                self.db.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {name}")

    # ------------------------------------------------------------ small reads
    def data_version(self) -> int:
        """The last batch that changed the data (0: none); kept in each detection's evidence."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()
        return int(row[0]) if row else 0

    def set_data_version(self, batch: int) -> None:
        """Within a transaction: data changed in `batch`."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('data_version', ?)", [str(batch)])

    def next_batch(self) -> int:
        """The number of the next batch."""
        row = self.db.execute("SELECT coalesce(max(batch), 0) + 1 FROM batches").fetchone()
        return int(row[0]) if row else 1

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """A query's rows as dicts (for small results only)."""
        cursor = self.db.execute(sql, params or [])
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self, table: str) -> int:
        """Rows in one of the store's own tables."""
        row = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def _settings(data_dir: Path) -> dict[str, Any]:
    return {
        "threads": 2,
        "memory_limit": MEMORY_LIMIT,
        "temp_directory": str(data_dir / "ews.tmp"),
        "preserve_insertion_order": True,
    }
