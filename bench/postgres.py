"""The benches' own PostgreSQL server, for the runs on the PostgreSQL store (`--store postgresql`).

The server is PostgreSQL from the `pgserver` wheel (the one the tests use; no
system package, no TCP port): started in a fresh folder straight under the
temp folder (its unix socket must fit in 107 bytes), listening on that socket
only, with trust authentication for the `postgres` user.

Unlike the tests' server it keeps PostgreSQL's durable defaults: fsync on,
full_page_writes on, synchronous_commit on (a commit returns after its WAL
is flushed with wal_sync_method, fdatasync on Linux), shared_buffers 128MB.
Nothing is changed: a figure measured on it is what an agency's server with
its defaults gives on this disk (the same disk as the SQLite benches'
temporary folders), plus the unix-socket round trips to it. `settings()`
reads them back for the JSON.

bench/run.py starts one server for a run and names its socket folder to
every bench child in $EWX_BENCH_POSTGRES; a bench run alone with
`--store postgresql` starts its own, stopped at exit. Each node of a bench
gets a fresh database (`put_on_store`), dropped when the process that made
it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import tomli_w

from tests.support.postgres import pgserver_module, sweep_orphans

ENV: Final = "EWX_BENCH_POSTGRES"
"""The socket folder of a server bench/run.py started for its children."""

SQLITE: Final = "sqlite"
POSTGRESQL: Final = "postgresql"
STORES: Final = (SQLITE, POSTGRESQL)

USER: Final = "postgres"
DIR_PREFIX: Final = "ewx-bench-pg-"
OWNER_FILE: Final = "ewx-bench-owner"
"""In a server's folder: the pid of the process that started it (for the sweep of orphans)."""

SHOWN: Final = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "wal_level",
    "shared_buffers",
)
"""The settings `settings()` reports."""


class Server:
    """A PostgreSQL server with its durable defaults, or one started by another process (`socket_dir`)."""

    def __init__(self, socket_dir: Path, *, handle: Any = None, folder: Path | None = None) -> None:
        self.socket_dir = socket_dir
        self.handle = handle
        self.folder = folder
        self._admin: Any = None
        self._lock = threading.Lock()
        self._made: list[str] = []

    @classmethod
    def start(cls) -> Server:
        """Start a server in a fresh folder under the temp folder."""
        sweep_orphans(DIR_PREFIX, OWNER_FILE)
        pgserver = pgserver_module()
        folder = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        try:
            handle = pgserver.get_server(folder, cleanup_mode="stop")
            (folder / OWNER_FILE).write_text(str(os.getpid()))
            socket_dir = handle.get_postmaster_info().socket_dir
            if socket_dir is None:
                raise RuntimeError("the server reports no unix socket folder")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        server = cls(Path(socket_dir), handle=handle, folder=folder)
        server.execute("SELECT 1")
        return server

    def url(self, database: str) -> str:
        """A libpq URL of `database`: the `postgres` user, no password, the socket folder as host."""
        return f"postgresql://{USER}@/{quote(database)}?host={quote(str(self.socket_dir), safe='/')}"

    def execute(self, statement: str, *params: Any) -> Any:
        """One statement on this process's admin connection (autocommit)."""
        import psycopg

        with self._lock:
            if self._admin is None or self._admin.closed:
                self._admin = psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10)
            cursor = self._admin.execute(statement, params or None)
            return cursor.fetchall() if cursor.description is not None else []

    def fresh_database(self, label: str) -> str:
        """A new empty database named after `label` (and this process); its URL."""
        stem = re.sub(r"[^a-z0-9_]+", "_", label.lower()).strip("_")[:40] or "db"
        name = f"b_{stem}_{os.getpid()}_{len(self._made) + 1}"
        self.execute(f'CREATE DATABASE "{name}"')
        self._made.append(name)
        return self.url(name)

    def drop_databases(self) -> None:
        """Drop the databases this process made (cutting any connection left to them)."""
        names, self._made = self._made, []
        for name in names:
            with contextlib.suppress(Exception):
                self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def settings(self) -> dict[str, str]:
        """The server's durability settings and version, as SHOW gives them."""
        return {name: str(self.execute(f"SHOW {name}")[0][0]) for name in SHOWN}

    def stop(self) -> None:
        """Drop this process's databases; stop the server if this process started it."""
        self.drop_databases()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None
        if self.handle is not None:
            with contextlib.suppress(Exception):
                self.handle.cleanup()
            self.handle = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


_server: Server | None = None
_server_lock = threading.Lock()


def server() -> Server:
    """This process's server: the one named in $EWX_BENCH_POSTGRES, else one started now
    (stopped at exit, as are the databases made here)."""
    global _server  # noqa: PLW0603 - one server per process, on first need
    with _server_lock:
        if _server is None:
            given = os.environ.get(ENV)
            _server = Server(Path(given)) if given else Server.start()
            atexit.register(stop)
        return _server


def start_for_children() -> Server:
    """Start a server for this process's bench children (bench/run.py) and name it in $EWX_BENCH_POSTGRES."""
    running = server()
    os.environ[ENV] = str(running.socket_dir)
    return running


def stop() -> None:
    """Drop this process's databases and stop its server if it started it; idempotent."""
    global _server  # noqa: PLW0603
    with _server_lock:
        if _server is not None:
            if _server.handle is not None:
                os.environ.pop(ENV, None)
            _server.stop()
            _server = None


def check_store(store: str) -> str:
    if store not in STORES:
        raise ValueError(f"store {store!r}: use one of {', '.join(STORES)}")
    return store


def put_on_store(configs: Mapping[Any, Path], store: str, label: str) -> None:
    """On PostgreSQL, give each node.toml in `configs` a `[store]` table with a fresh database
    of the bench's server; on SQLite, leave them (the store is ewx.sqlite3 in data_dir)."""
    if check_store(store) == SQLITE:
        return
    running = server()
    for country, path in configs.items():
        data = tomllib.loads(path.read_text())
        data["store"] = {"url": running.fresh_database(f"{label}_{country}")}
        path.write_text(tomli_w.dumps(data))


def fresh_store_table(store: str, label: str) -> dict[str, str] | None:
    """A `[store]` table on a fresh database (PostgreSQL), or None (SQLite: data_dir's file)."""
    if check_store(store) == SQLITE:
        return None
    return {"url": server().fresh_database(label)}


def connect(url: str, *, durable: bool = True) -> Any:
    """A psycopg connection (autocommit: BEGIN and COMMIT are explicit, as the store's);
    without `durable`, its commits do not wait for the WAL flush (synchronous_commit off)."""
    import psycopg

    connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
    if not durable:
        connection.execute("SET synchronous_commit = off")
    return connection


def database_mb(url: str) -> float:
    """The database's size on disk, MB (10^6 bytes)."""
    with connect(url) as db:
        (size,) = db.execute("SELECT pg_database_size(current_database())").fetchone()
    return float(size) / 1e6
