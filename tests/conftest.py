"""Process-wide settings for the test run, applied before any test module imports grpc,
and the fixtures shared by tests that run real nodes."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import postgres, stores, task_dump

if TYPE_CHECKING:
    from collections.abc import Generator

    from node.ids import Country

# A test starts a process as another user (tests/node/operator/test_operator.py)
# while gRPC's threads run; gRPC's fork handlers are not safe then and crashed
# the child before its exec (SIGSEGV) now and again. The node itself never forks.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


@pytest.fixture
def federation(tmp_path: Path) -> dict[Country, Path]:
    """A fresh development federation with free ports and a short outbox backoff."""
    from tests.support.factories import make_federation  # here, so grpc loads after the setting above

    return make_federation(tmp_path / "fed", outbox_retry_max_seconds=0.5)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder straight under the system's temp folder, for a test whose nodes sit
    deep inside it: under pytest-xdist, tmp_path's own depth leaves too little of a unix
    socket's 107 bytes (node/limits.py UNIX_SOCKET_PATH_MAX) for the demo's operator sockets."""
    path = Path(tempfile.mkdtemp(prefix="ewx-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# The store of the run (tests/support/stores.py): EWX_TEST_STORE=postgresql puts the nodes of
# make_federation on this process's PostgreSQL test server (tests/support/postgres.py).


def pytest_configure(config: pytest.Config) -> None:
    try:
        stores.run_store()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_report_header(config: pytest.Config) -> str:
    return f"store: {stores.run_store()} ({stores.ENV})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not stores.on_postgresql():
        return
    for item in items:
        mark = item.get_closest_marker("sqlite_only")
        if mark is not None:
            why = mark.args[0] if mark.args else "reads or changes the SQLite store file itself"
            item.add_marker(pytest.mark.skip(reason=f"sqlite_only: {why}; this run is on PostgreSQL"))


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Generator[None]:
    """A database made while a module- or session-scoped fixture is set up outlives the test."""
    if fixturedef.scope == "function":
        yield
        return
    with postgres.long_lived():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None]:
    """After a test and its fixtures: drop the PostgreSQL databases made for it."""
    yield
    if postgres.started():
        left = postgres.drop_test_databases()
        if left:
            item.warn(pytest.PytestWarning(f"could not drop test databases {left} (still in use?)"))


_TASK_DUMP = pytest.StashKey[threading.Timer | None]()


def pytest_timeout_set_timer(item: pytest.Item, settings: object) -> None:
    """Alongside pytest-timeout's own timer (this returns None, so it still runs): the
    asyncio task dump of tests/support/task_dump.py."""
    timeout = getattr(settings, "timeout", None)
    if timeout:
        item.stash[_TASK_DUMP] = task_dump.start_timer(float(timeout))


def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    timer = item.stash.get(_TASK_DUMP, None)
    if timer is not None:
        timer.cancel()


def pytest_unconfigure(config: pytest.Config) -> None:
    postgres.stop()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh empty database on this process's PostgreSQL test server, as a libpq URL (whatever
    EWX_TEST_STORE says); the test fails, not skips, if the server cannot start."""
    try:
        return postgres.fresh_database(request.node.name)
    except postgres.PostgresUnavailable as error:
        pytest.fail(str(error), pytrace=False)
