"""Which store the test run's nodes use: SQLite (the default) or PostgreSQL.

`EWX_TEST_STORE=postgresql` puts every federation `make_federation` makes on a
fresh PostgreSQL database per node (`[store] url` in each node.toml, on this
process's test server, tests/support/postgres.py); unset or `sqlite`, nodes
keep their SQLite file in data_dir as without a `[store]` table. Tests that
read or change the SQLite file itself carry the `sqlite_only` mark and are
skipped on PostgreSQL (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

import tomli_w

if TYPE_CHECKING:
    from node.ids import Country

ENV: Final = "EWX_TEST_STORE"
SQLITE: Final = "sqlite"
POSTGRESQL: Final = "postgresql"
STORES: Final = (SQLITE, POSTGRESQL)


def run_store() -> str:
    """The store of this run, from EWX_TEST_STORE; ValueError for a value that names no store."""
    store = os.environ.get(ENV, "").strip().lower() or SQLITE
    if store not in STORES:
        raise ValueError(f"{ENV}={os.environ[ENV]!r} names no store: use one of {', '.join(STORES)}")
    return store


def on_postgresql() -> bool:
    """Whether this run's nodes are on PostgreSQL."""
    return run_store() == POSTGRESQL


def put_on_test_store(configs: Mapping[Country, Path], label: str) -> None:
    """On PostgreSQL, give each node.toml in `configs` a `[store]` table with a fresh database
    (named after `label` and the country); on SQLite, leave them as they are."""
    if not on_postgresql():
        return
    from tests.support.postgres import fresh_database

    for country, path in configs.items():
        data = tomllib.loads(path.read_text())
        data["store"] = {"url": fresh_database(f"{label}_{country}")}
        path.write_text(tomli_w.dumps(data))


def wipe_node_store(config: Path) -> None:
    """Lose the store of the node of `config`, as a dead disk would: its data directory removed
    and, on PostgreSQL, its database dropped and made again, empty."""
    from node.config import NodeConfig

    loaded = NodeConfig.load(config)
    shutil.rmtree(loaded.data_dir)
    if loaded.store is not None:
        from tests.support.postgres import recreate_database

        recreate_database(loaded.store.url)
