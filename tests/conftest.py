"""Process-wide settings for the test run, applied before any test module imports grpc,
and the fixtures shared by tests that run real nodes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
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
