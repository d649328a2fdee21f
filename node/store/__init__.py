"""The node's store: SQLite in WAL mode, the exchange log and everything the node keeps.

Owns the schema, transactions (`Tx`), reads (`Reads`, read-only connections
for operator threads) and the in-memory Merkle levels of the log (`_sqlite`);
the one thread a running node's store is used from (`_thread`).

May import: node's shared modules, node.crypto.
"""

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
    "STORE_FILE",
    "AlertFilter",
    "ListingKeys",
    "Reads",
    "Store",
    "StoreThread",
    "StoredAlert",
    "Tx",
]
