"""The node's store: the exchange log and everything the node keeps, in SQLite or PostgreSQL.

Owns the schema and its migrations (`_schema`), the two databases and how they
differ, the PostgreSQL lease among them (`_database`), transactions (`Tx`), reads
(`Reads`, read-only connections for operator threads, read-only opening of a
backup) and the log's Merkle frontier (`_store`); the one thread a running node's store is used
from (`_thread`); the online copy of a running node's store (`_backup`); the copy of a stopped
node's whole store into another database, verified before it commits (`_migrate`).

May import: node's shared modules, node.crypto.
"""

from node.store._backup import SIDE_FILE_SUFFIXES, copy_online, make_self_contained
from node.store._migrate import (
    COPIED_TABLES,
    CheckpointCheck,
    Migrated,
    StorePlace,
    copy_store,
    migrate_store,
)
from node.store._store import (
    ALERT_STATES,
    AlertFilter,
    ListingKeys,
    Reads,
    Store,
    StoredAlert,
    Tx,
)
from node.store._thread import StoreThread
from node.store.settings import PASSWORD_ENV, STORE_FILE, check_postgres_url, read_password, redact

__all__ = [
    "ALERT_STATES",
    "COPIED_TABLES",
    "PASSWORD_ENV",
    "SIDE_FILE_SUFFIXES",
    "STORE_FILE",
    "AlertFilter",
    "CheckpointCheck",
    "ListingKeys",
    "Migrated",
    "Reads",
    "Store",
    "StorePlace",
    "StoreThread",
    "StoredAlert",
    "Tx",
    "check_postgres_url",
    "copy_online",
    "copy_store",
    "make_self_contained",
    "migrate_store",
    "read_password",
    "redact",
]
