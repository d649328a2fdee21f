"""The node's store: SQLite in WAL mode, the exchange log and everything the node keeps.

Owns the schema, transactions (`Tx`), reads (`Reads`, read-only connections
for operator threads, read-only opening of a backup) and the in-memory Merkle
levels of the log (`_sqlite`); the one thread a running node's store is used
from (`_thread`); the online copy of a running node's store (`_backup`).

May import: node's shared modules, node.crypto.
"""

from node.store._backup import SIDE_FILE_SUFFIXES, copy_online, make_self_contained
from node.store._sqlite import (
    ALERT_STATES,
    STORE_FILE,
    AlertFilter,
    ListingKeys,
    Reads,
    Store,
    StoredAlert,
    Tx,
)
from node.store._thread import StoreThread

__all__ = [
    "ALERT_STATES",
    "SIDE_FILE_SUFFIXES",
    "STORE_FILE",
    "AlertFilter",
    "ListingKeys",
    "Reads",
    "Store",
    "StoreThread",
    "StoredAlert",
    "Tx",
    "copy_online",
    "make_self_contained",
]
