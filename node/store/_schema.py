"""The store's schema, written once for both databases, and its migrations.

A store records the version it is at (meta `schema_version`); opening it applies,
each in one transaction with the version it reaches, every migration after that
one, and refuses a store at a version newer than this code's (written by a
newer build: going on could misread it). SQL here is the dialect both databases
take; node/store/_database.py turns its types into PostgreSQL's.

The first migration is the schema as it stood when versions began to be
counted; a SQLite store from before then has version 1 and may lack the listing
columns, which _store.Store adds (LISTING_COLUMNS) before the migrations run.
"""

from __future__ import annotations

import re
from typing import Final

_BASE: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- The exchange log: entry bytes exactly as hashed into the Merkle tree.
CREATE TABLE IF NOT EXISTS log (
    idx INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
-- Every signed alert this node holds, own or received, stored verbatim.
CREATE TABLE IF NOT EXISTS alerts (
    origin TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    envelope BLOB NOT NULL,
    msg_type TEXT NOT NULL,
    sent TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    via TEXT,              -- the peer that handed it over; NULL for own alerts
    received_at TEXT,
    receipt BLOB,          -- the receipt this node gave for it
    -- What `ewx alert list` filters on, copied out of the signed alert at insert
    -- (see _LISTING_COLUMNS): times in microseconds since the epoch, and the
    -- one alert it refers to (MAX_REFERENCES is 1).
    sent_us INTEGER,
    expires_us INTEGER,
    ref_origin TEXT,
    ref_alert_id TEXT,
    PRIMARY KEY (origin, alert_id)
);
CREATE INDEX IF NOT EXISTS alerts_by_type ON alerts (origin, msg_type);
CREATE INDEX IF NOT EXISTS alerts_by_kind_in_log ON alerts (msg_type, log_index);
-- Every (origin, recipient, seq) position named by a stored alert.
CREATE TABLE IF NOT EXISTS positions (
    origin TEXT NOT NULL,
    recipient TEXT NOT NULL,
    seq INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (origin, recipient, seq)
);
-- Own alerts still to deliver, and the receipts of those delivered.
CREATE TABLE IF NOT EXISTS outbox (
    recipient TEXT NOT NULL,
    seq INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at TEXT,
    receipt BLOB,
    receipt_log_index INTEGER,
    PRIMARY KEY (recipient, seq)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (recipient, seq) WHERE delivered_at IS NULL;
-- This node's signed checkpoints; `note` gains the peers' cosignature lines.
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    signed_at TEXT NOT NULL
);
-- Per peer: the largest size of this node's log that the peer cosigned.
CREATE TABLE IF NOT EXISTS cosigned (
    peer TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    at TEXT NOT NULL
);
-- This node as a witness: the latest checkpoint it cosigned of each peer's
-- log, and every one it cosigned (kept for the audit bundle).
CREATE TABLE IF NOT EXISTS witness_state (
    log_node TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS witnessed (
    id INTEGER PRIMARY KEY,
    log_node TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS witnessed_by_size ON witnessed (log_node, size);
-- Every member's trust updates this node holds (its own and its peers'),
-- verbatim, in each member's serial order; see node/trust/_updates.py.
CREATE TABLE IF NOT EXISTS trust_updates (
    member TEXT NOT NULL,
    serial INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    log_index INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (member, serial)
);
-- `alert raise --idempotency-key` and `ews approve`: a retried request gets the
-- alert its first attempt published, never a second one.
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    at TEXT NOT NULL
);
-- This node's own exposure to each peer alert's items and source countries
-- (node/ews/exposure.py); kept at home, never sent.
CREATE TABLE IF NOT EXISTS exposures (
    origin TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    body TEXT NOT NULL,
    computed_at TEXT NOT NULL,
    PRIMARY KEY (origin, alert_id)
);
-- What was refused but must be kept: equivocation evidence (SPEC section 4).
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    peer TEXT,
    origin TEXT,
    alert_id TEXT,
    detail TEXT NOT NULL,
    kept TEXT NOT NULL,
    conflicting BLOB NOT NULL,
    at TEXT NOT NULL
);
"""

TABLES: Final = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _BASE))
"""The tables of the first version: a database without one of them is not an EWX store."""

LISTING_COLUMNS: Final = (
    ("sent_us", "INTEGER"),
    ("expires_us", "INTEGER"),
    ("ref_origin", "TEXT"),
    ("ref_alert_id", "TEXT"),
)
"""Columns added to the alerts table of a SQLite store from before they existed (in
_BASE now), with LISTING_INDICES; Store.fill_listing_keys fills them from the signed alerts."""

LISTING_INDICES: Final = """
-- Keyset pagination of `ewx alert list` in log order, whole or by origin, and
-- its `since` filter; the follow-ups of an alert (its state) by reference.
CREATE INDEX IF NOT EXISTS alerts_by_log ON alerts (log_index);
CREATE INDEX IF NOT EXISTS alerts_by_origin_log ON alerts (origin, log_index);
CREATE INDEX IF NOT EXISTS alerts_by_sent ON alerts (sent_us, log_index);
CREATE INDEX IF NOT EXISTS alerts_by_reference ON alerts (ref_origin, ref_alert_id, msg_type);
"""

_MERKLE: Final = """
-- The roots of the log's completed perfect subtrees of height 1 or more
-- (height 0 is log.leaf_hash), each written in the transaction that completes
-- it: a consistency proof reads O(log^2 n) of them and the node holds only the
-- log's frontier in memory, not 64 bytes per entry. Derived from the log: a
-- store written before this table has it filled once when opened (a backup
-- read without writing computes it in memory instead), so it is not in _TABLES.
CREATE TABLE IF NOT EXISTS merkle (
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (height, idx)
) WITHOUT ROWID;
"""

_APPEND_ONLY: Final = {
    # What the Merkle tree and the checkpoints prove after the fact, the database
    # enforces as it happens: no statement of this code, of a tool or of a person
    # at a SQL prompt changes or removes an entry of the exchange log. (Whoever
    # can drop the triggers can also rewrite the file; the audit catches that.)
    "sqlite": """
CREATE TRIGGER IF NOT EXISTS log_append_only_update BEFORE UPDATE ON log
BEGIN SELECT RAISE(ABORT, 'the exchange log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS log_append_only_delete BEFORE DELETE ON log
BEGIN SELECT RAISE(ABORT, 'the exchange log is append-only'); END;
""",
    "postgresql": """
CREATE OR REPLACE FUNCTION ewx_log_append_only() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION 'the exchange log is append-only'; END $$;
DROP TRIGGER IF EXISTS log_append_only ON log;
CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON log
FOR EACH ROW EXECUTE FUNCTION ewx_log_append_only();
DROP TRIGGER IF EXISTS log_no_truncate ON log;
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON log
FOR EACH STATEMENT EXECUTE FUNCTION ewx_log_append_only();
""",
}

Migration = str | dict[str, str]
"""A migration's SQL: one text for both databases, or one per database (kind: "sqlite",
"postgresql") where they have no statement in common (triggers)."""

MIGRATIONS: Final[tuple[Migration, ...]] = (_BASE + LISTING_INDICES, _MERKLE, _APPEND_ONLY)
"""Migration k (from 1) takes a store from version k - 1 to k; each is idempotent
(IF NOT EXISTS), so a store that gained a table before versions were counted
takes its migration unharmed."""


def statements(migration: Migration, kind: str) -> list[str]:
    """A migration's statements for one database, one by one (so that each runs inside
    its transaction: sqlite3's executescript would commit first), comments left out.
    A statement ends with a semicolon at the end of its line (a trigger's body holds
    others, inside its line)."""
    script = migration if isinstance(migration, str) else migration[kind]
    text = re.sub(r"--[^\n]*", "", script)
    return [part.strip() for part in re.split(r";[ \t]*(?:\n|$)", text) if part.strip()]


SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The version a store has once this code opened it for writing."""
