"""Which store a node's configuration names, opened for the node or for a reader beside it."""

from __future__ import annotations

from node.config import NodeConfig
from node.store import STORE_FILE, Store, read_password


def open_node_store(config: NodeConfig, *, lease: bool = True) -> Store:
    """The node's store: the SQLite file in data_dir, or the PostgreSQL database of `[store]`
    with its lease held (StoreInUse if another process holds it), or without `lease` a
    read-only session beside the process that holds it."""
    if config.store is None:
        return Store(config.data_dir / STORE_FILE)
    return Store.postgresql(config.store.url, password=read_password(config.store.password_file), lease=lease)


def read_node_store(config: NodeConfig) -> Store:
    """The node's store, opened beside the running node to read it (export, trust): the
    SQLite file (WAL: one consistent snapshot), or the PostgreSQL database without its lease."""
    return open_node_store(config, lease=False)


def has_node_store(config: NodeConfig) -> bool:
    """Whether the node has a store yet (a PostgreSQL one is taken to exist: its database does)."""
    return config.store is not None or (config.data_dir / STORE_FILE).exists()
