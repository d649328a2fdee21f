"""Fixtures for tests that run real nodes on 127.0.0.1 with real mTLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.ids import Country
from tests.factories import make_federation


@pytest.fixture
def federation(tmp_path: Path) -> dict[Country, Path]:
    """A fresh development federation with free ports and a short outbox backoff."""
    return make_federation(tmp_path / "fed", outbox_retry_max_seconds=0.5)
