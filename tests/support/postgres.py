"""One real PostgreSQL server per test process, for the tests run on the PostgreSQL store.

The server is PostgreSQL 16 from the `pgserver` wheel (a dev dependency: no
system package, no port, nothing to install on a fresh machine). Each test
process (each pytest-xdist worker) starts its own on first need, in a fresh
folder straight under the system's temp folder (its unix socket must fit in
107 bytes), listening on that socket only, and stops it and removes the folder
at exit (`stop`, from tests/conftest.py's pytest_unconfigure, and atexit).

`fresh_database(label)` makes a new empty database and returns its URL, with
no password and the server's socket folder as host, as a node.toml's
`[store] url` takes it. The databases made during one test are dropped after
it (`drop_test_databases`, from tests/conftest.py), except those made while a
fixture of a wider scope is set up (`long_lived`): they stay until the server
stops.

The server trades durability for speed (fsync, full-page writes and
synchronous commit off): the tests kill node processes, never the server or
the machine, so what a commit makes visible is all they can see either way.

If the server cannot start, every call that needs it raises
PostgresUnavailable with one sentence and the tail of the server's log; it
is tried once per process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

USER: Final = "postgres"
"""The superuser pgserver's initdb makes; trust authentication on the socket, no password."""

DIR_PREFIX: Final = "ewx-pg-"
"""Name prefix of a server's folder under the temp folder (short: the socket lives in it)."""

OWNER_FILE: Final = "ewx-test-owner"
"""In a server's folder: the pid of the test process that started it (for the sweep of orphans)."""

SETTINGS: Final = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
"""Reloadable settings applied once the server is up (see the module docstring)."""

LOG_TAIL_LINES: Final = 20


class PostgresUnavailable(RuntimeError):
    """The test PostgreSQL server could not be started or reached."""


class _Server:
    """A started pgserver handle, its folder and socket, and an admin connection."""

    def __init__(self) -> None:
        pgserver = pgserver_module()
        self._admin: Any = None
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        except OSError as error:
            raise PostgresUnavailable(
                f"the test PostgreSQL server has no folder: {tempfile.gettempdir()}: {error}"
            ) from error
        try:
            self.handle: Any = pgserver.get_server(self.folder, cleanup_mode="stop")
            (self.folder / OWNER_FILE).write_text(str(os.getpid()))
            socket_dir = self.handle.get_postmaster_info().socket_dir
            if socket_dir is None:
                raise RuntimeError("the server reports no unix socket folder")
            self.socket_dir = Path(socket_dir)
            self.execute("SELECT 1")
            for name, value in SETTINGS.items():
                self.execute(f"ALTER SYSTEM SET {name} = {value}")
            self.execute("SELECT pg_reload_conf()")
        except Exception as error:
            log = _log_tail(self.folder / "log")
            self.stop()
            raise PostgresUnavailable(
                f"the test PostgreSQL server (pgserver, in {self.folder}) did not start: "
                f"{type(error).__name__}: {error}" + (f"\nserver log, last lines:\n{log}" if log else "")
            ) from error

    def url(self, database: str) -> str:
        """A libpq URL of `database` on this server: user, no password, the socket folder as host."""
        return f"postgresql://{USER}@/{quote(database)}?host={quote(str(self.socket_dir), safe='/')}"

    def execute(self, statement: str, *params: Any) -> Any:
        """Run one statement on the admin connection (autocommit), reconnecting once if it broke."""
        import psycopg

        for attempt in (1, 2):
            try:
                if self._admin is None or self._admin.closed:
                    self._admin = psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10)
                return self._admin.execute(statement, params or None)
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                self._close_admin()
        raise AssertionError("unreachable")

    def _close_admin(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def stop(self) -> None:
        """Stop the server (its connections are cut) and remove its folder."""
        self._close_admin()
        handle = getattr(self, "handle", None)
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


def pgserver_module() -> Any:
    """The pgserver package, imported without its platformdirs warning (XDG_RUNTIME_DIR unset:
    it falls back to a folder under /tmp for its lock file, which is fine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        import pgserver._commands
        import pgserver.utils
    return pgserver


def _log_tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        return ""


_lock = threading.RLock()
_server: _Server | None = None
_failure: PostgresUnavailable | None = None
_counter = 0
_long_lived_depth = 0
_per_test: list[str] = []


def server() -> _Server:
    """This process's server, started on the first call; PostgresUnavailable if it cannot start."""
    global _server, _failure  # noqa: PLW0603 - one server per process, made on first need
    with _lock:
        if _server is not None:
            return _server
        if _failure is not None:
            raise _failure
        sweep_orphans()
        try:
            _server = _Server()
        except PostgresUnavailable as error:
            _failure = error
            raise
        atexit.register(stop)
        return _server


def started() -> bool:
    """Whether this process has a running server (without starting one)."""
    return _server is not None


def fresh_database(label: str) -> str:
    """Make a new empty database named after `label` and return its URL (see the module docstring)."""
    global _counter  # noqa: PLW0603 - names unique within this process's server
    with _lock:
        running = server()
        _counter += 1
        stem = re.sub(r"[^a-z0-9_]+", "_", label.lower()).strip("_")[:40] or "db"
        name = f"t_{stem}_{_counter}"
        running.execute(f'CREATE DATABASE "{name}"')
        if _long_lived_depth == 0:
            _per_test.append(name)
        return running.url(name)


def recreate_database(url: str) -> None:
    """Drop the database of `url` (a URL fresh_database gave) and make it again, empty: a lost
    store, as deleting a SQLite file is (the URL stays the same)."""
    name = unquote(urlsplit(url).path.lstrip("/"))
    with _lock:
        running = server()
        if not name.startswith("t_") or running.url(name) != url:
            raise ValueError(f"{url} is not a database of this process's test server")
        running.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        running.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Databases made within are kept past the current test (a module- or session-scoped fixture's)."""
    global _long_lived_depth  # noqa: PLW0603
    with _lock:
        _long_lived_depth += 1
    try:
        yield
    finally:
        with _lock:
            _long_lived_depth -= 1


def drop_test_databases() -> list[str]:
    """Drop the databases made for the test that just ended (cutting any connection left); returns
    the names of those that could not be dropped."""
    with _lock:
        names, _per_test[:] = list(_per_test), []
        if _server is None:
            return names
        failed = []
        for name in names:
            try:
                _server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # reported by the caller; the run goes on
                failed.append(name)
        return failed


def stop() -> None:
    """Stop this process's server if it runs; idempotent."""
    global _server  # noqa: PLW0603
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None


def sweep_orphans(prefix: str = DIR_PREFIX, owner_file: str = OWNER_FILE) -> None:
    """Stop and remove the servers of earlier processes that died without stopping them (killed
    by the test command's timeout, say): folders `prefix*` in the temporary folder whose
    `owner_file` names a pid that is gone. The benches' servers (bench/postgres.py) are swept
    with their own prefix and owner file."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{prefix}*"):
        owner = folder / owner_file
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue  # not started yet, or not ours
        if pid == os.getpid() or _alive(pid):
            continue
        _stop_orphan(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_orphan(folder: Path) -> None:
    pgserver = pgserver_module()
    with contextlib.suppress(Exception):
        info = pgserver.utils.PostmasterInfo.read_from_pgdata(folder)
        if info is not None and info.is_running():
            # as pgserver runs it: a root process runs the server as its own user `pgserver`
            user = "pgserver" if os.geteuid() == 0 else None
            pgserver._commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=folder, user=user, timeout=20)
    shutil.rmtree(folder, ignore_errors=True)
