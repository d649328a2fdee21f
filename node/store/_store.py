"""The node's own store: the exchange log and everything the node keeps, in SQLite (the
embedded default: a file in its data dir, WAL mode, synchronous=FULL) or PostgreSQL
(node/store/_database.py says how the two differ; nothing here does).

Primitives only; node/service/_service.py holds the logic. Everything that belongs
together (a log entry, the alert it records, its sequence positions, its
outbox rows, the receipt given for it) is written in one transaction, so a
crash leaves either all of it or none of it (SPEC section 4: acknowledge only
after the durable commit). The Merkle root of the exchange log is kept
incrementally in memory (every perfect subtree's root, so consistency proofs
cost O(log^2 n)) and only advanced once a commit has succeeded.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from node.crypto import (
    CompactRange,
    MerkleLevels,
    frontier_subtrees,
    interior_count,
    leaf_hash,
    levels_consistency_proof,
)
from node.errors import ConfigError, StoreError
from node.ids import COUNTRIES, Country, Digest, as_country
from node.store._database import Database, PostgresDatabase, SqliteDatabase
from node.store._schema import (
    LISTING_COLUMNS,
    LISTING_INDICES,
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    statements,
)

_HISTORY_MISSING: Final = "history_missing:"
"""Prefix of the meta keys naming a peer that holds own history the store lacks."""
_HISTORY_UNCHECKED: Final = "history_unchecked"
"""Meta key, present while a store started empty has had no peer's word on its history."""
_GENESIS: Final = "genesis"
"""Meta key: when this store took in its GENESIS file (the first start of a new federation)."""
_DEADLINES_WATCHED: Final = "deadlines_watched_until"
"""Meta key: the time up to which the overdue acknowledgements were looked for and logged."""
_DEADLINES_WATCHED_LOG: Final = "deadlines_watched_log_size"
"""Meta key: the log's size at that watch (alerts logged after it are looked at whatever their time)."""
_OLD_LOG_SIZE: Final = "old_log_size:"
"""Prefix of the meta keys with a peer's witnessed size of the log lost before a re-join."""

_LAST_SEQ: Final = "SELECT seq FROM positions WHERE origin = ? AND recipient = ? ORDER BY seq DESC LIMIT 1"
"""The highest position from an origin towards a recipient: the primary key's last entry for
the pair, read backwards (PostgreSQL's MAX() read every position of the pair until the table
had statistics)."""

_MERKLE_FILL_BATCH: Final = 10_000
"""Subtree roots inserted per statement while filling the table for an older store."""
_LOG_PAGE: Final = 10_000
"""Log entries read per query by log_entries (a whole log is never one result in memory)."""

ALERT_STATES: Final = ("active", "updated", "cancelled", "expired")
"""An alert's state in a listing: cancelled or updated by a follow-up stored
here (a cancel wins), else expired by its own expiry time, else active."""


@dataclass(frozen=True, slots=True)
class ListingKeys:
    """What the listing filters on, taken from the signed alert by the service."""

    sent_us: int
    expires_us: int | None
    reference: tuple[Country, str] | None


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """One page of `ewx alert list`: alerts after `after` (a log index) in log order."""

    limit: int
    after: int = -1
    origin: Country | None = None
    since_us: int | None = None
    state: str | None = None
    alert_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One row of the alerts table."""

    origin: Country
    alert_id: str
    digest: Digest
    envelope: bytes
    msg_type: str
    sent: str
    log_index: int
    via: Country | None
    received_at: str | None
    receipt: bytes | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One own alert towards one recipient, delivered or not."""

    recipient: Country
    seq: int
    alert_id: str
    created_at: str
    attempts: int
    last_error: str | None
    delivered_at: str | None
    receipt: bytes | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """What one recipient still has to receive, in aggregate (for status)."""

    waiting: int
    oldest: OutboxRow | None
    last_delivered: int


class Tx:
    """Writes within one open transaction; only Store.transaction() makes one."""

    def __init__(self, conn: Database, frontier: CompactRange) -> None:
        self._conn = conn
        self.frontier = frontier
        """The log's frontier with this transaction's entries; the store's own once it commits."""
        self.appended: list[bytes] = []
        self._last_seq: dict[tuple[Country, Country], int] = {}
        """last_seq's answers, kept up to date by insert_alert (the only writer of
        positions): a catch-up page asks once per alert, in one transaction."""
        self.committed: list[Callable[[], None]] = []
        """Called, in order, once the transaction has committed (never if it rolls back)."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction's commit succeeded."""
        self.committed.append(callback)

    def _mark(self) -> tuple[CompactRange, int, dict[tuple[Country, Country], int], int]:
        """What a savepoint must put back if the part after it is rolled back."""
        return self.frontier.copy(), len(self.appended), dict(self._last_seq), len(self.committed)

    def _restore(self, mark: tuple[CompactRange, int, dict[tuple[Country, Country], int], int]) -> None:
        frontier, appended, last_seq, committed = mark
        self.frontier = frontier
        del self.appended[appended:]
        self._last_seq = last_seq
        del self.committed[committed:]

    def remember(self, key: str, alert_id: str, at: str) -> None:
        """Bind an idempotency key to the alert published under it."""
        self._conn.execute(
            "INSERT INTO idempotency (key, alert_id, at) VALUES (?, ?, ?)", (key, alert_id, at)
        )

    @property
    def appended_count(self) -> int:
        """Entries appended so far in this transaction."""
        return len(self.appended)

    def append_log(self, entry: bytes) -> int:
        """Append one entry; returns its index (valid once the commit succeeds)."""
        index = self.frontier.size
        hashed = leaf_hash(entry)
        self._conn.execute("INSERT INTO log (idx, entry, leaf_hash) VALUES (?, ?, ?)", (index, entry, hashed))
        completed = self.frontier.append(hashed)
        if completed:
            self._conn.executemany("INSERT INTO merkle (height, idx, hash) VALUES (?, ?, ?)", completed)
        self.appended.append(hashed)
        return index

    def last_seq(self, origin: Country, recipient: Country) -> int:
        """Highest sequence position known from `origin` towards `recipient`, 0 if none."""
        known = self._last_seq.get((origin, recipient))
        if known is not None:
            return known
        row = self._conn.execute(_LAST_SEQ, (origin, recipient)).fetchone()
        highest = self._last_seq[(origin, recipient)] = 0 if row is None else int(row[0])
        return highest

    def position(self, origin: Country, recipient: Country, seq: int) -> tuple[str, Digest] | None:
        """The alert id and digest already holding that position, if any."""
        row = self._conn.execute(
            "SELECT alert_id, digest FROM positions WHERE origin = ? AND recipient = ? AND seq = ?",
            (origin, recipient, seq),
        ).fetchone()
        return None if row is None else (str(row[0]), Digest(bytes(row[1])))

    def alert(self, origin: Country, alert_id: str) -> StoredAlert | None:
        """The stored alert with that origin and id, if any."""
        return _alert_row(
            self._conn.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE origin = ? AND alert_id = ?", (origin, alert_id)
            ).fetchone()
        )

    def alerts_of_type(self, origin: Country, msg_types: tuple[str, ...]) -> list[tuple[str, str, bytes]]:
        """(alert id, message type, envelope) of `origin`'s stored alerts of these types (node/service/_lifecycle.py)."""
        marks = ", ".join("?" * len(msg_types))
        rows = self._conn.execute(
            f"SELECT alert_id, msg_type, envelope FROM alerts WHERE origin = ? AND msg_type IN ({marks})",
            (origin, *msg_types),
        )
        return [(str(a), str(t), bytes(e)) for a, t, e in rows]

    def insert_alert(
        self,
        *,
        origin: Country,
        alert_id: str,
        digest: Digest,
        envelope: bytes,
        msg_type: str,
        sent: str,
        log_index: int,
        positions: list[tuple[Country, int]],
        listing: ListingKeys,
        via: Country | None = None,
        received_at: str | None = None,
        receipt: bytes | None = None,
    ) -> None:
        """Store a signed alert and every sequence position it names."""
        ref_origin, ref_alert_id = listing.reference or (None, None)
        row = (origin, alert_id, digest, envelope, msg_type, sent, log_index, via, received_at, receipt)
        keys = (listing.sent_us, listing.expires_us, ref_origin, ref_alert_id)
        self._conn.execute(
            f"INSERT INTO alerts ({_ALERT_COLUMNS}, sent_us, expires_us, ref_origin, ref_alert_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*row, *keys),
        )
        for recipient, seq in positions:
            self._conn.execute(
                "INSERT INTO positions (origin, recipient, seq, alert_id, digest) VALUES (?, ?, ?, ?, ?)",
                (origin, recipient, seq, alert_id, digest),
            )
            known = self._last_seq.get((origin, recipient))
            if known is not None and seq > known:
                self._last_seq[(origin, recipient)] = seq

    def next_number(self, counter: str) -> int:
        """Increment and return a named counter kept in the store (1, 2, 3, ...)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (counter,)).fetchone()
        value = int(row[0]) + 1 if row else 1
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (counter, str(value)),
        )
        return value

    def set_history_missing(self, peer: Country, evidence: str, held: str) -> None:
        """Record that `peer` holds more of this node's own history than the store (issue 10, item 2).

        Kept in the store, not in memory: the log grows from received alerts
        meanwhile, so the comparison that found it may not hold after a
        restart, while the history is still missing. A restored backup is
        another store file, without this row.
        """
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"{_HISTORY_MISSING}{peer}:{evidence}", held),
        )

    def set_old_log_size(self, peer: Country, size: int) -> None:
        """Keep the size of this node's lost log that `peer`'s witness holds (set by a re-join).

        The log after a re-join does not extend that one; the node does not
        ask that peer to witness it (node/service/_rejoin.py).
        """
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_OLD_LOG_SIZE + peer, str(size)),
        )

    def set_genesis(self, at: str) -> None:
        """Record that this store is the first of a new federation (its GENESIS file), and needs no peer's word."""
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (_GENESIS, at)
        )
        self.clear_history_unchecked()

    def set_history_unchecked(self, at: str) -> None:
        """Mark a store started empty, outside a new federation: no peer has yet said what it holds of us."""
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (_HISTORY_UNCHECKED, at),
        )

    def set_deadlines_watched(self, until: str, *, log_size: int | None = None) -> None:
        """Every acknowledgement that became overdue up to `until`, of the alerts the log held
        at `log_size` (default: all it holds), has been logged (once)."""
        size = self.frontier.size if log_size is None else log_size  # this transaction's appends included
        for key, value in ((_DEADLINES_WATCHED, until), (_DEADLINES_WATCHED_LOG, str(size))):
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def clear_history_unchecked(self) -> None:
        """A peer answered what it holds of this node, or the operator declared a first start."""
        self._conn.execute("DELETE FROM meta WHERE key = ?", (_HISTORY_UNCHECKED,))

    def clear_history_missing(self) -> None:
        """Forget every peer's note of missing history (after a re-join recovered it)."""
        self._conn.execute(_with_prefix("DELETE FROM meta", _HISTORY_MISSING), (_HISTORY_MISSING,))

    def set_receipt(self, origin: Country, alert_id: str, receipt: bytes) -> None:
        """Keep the receipt signed later for an alert stored by catch-up."""
        self._conn.execute(
            "UPDATE alerts SET receipt = ? WHERE origin = ? AND alert_id = ?", (receipt, origin, alert_id)
        )

    def replace_envelope(self, origin: Country, alert_id: str, envelope: bytes) -> None:
        """Keep an own alert re-signed under a newer key (the signed alert bytes are unchanged)."""
        self._conn.execute(
            "UPDATE alerts SET envelope = ? WHERE origin = ? AND alert_id = ?", (envelope, origin, alert_id)
        )

    def queue(self, *, recipient: Country, seq: int, alert_id: str, created_at: str) -> None:
        """Put an own alert in the outbox towards `recipient`."""
        self._conn.execute(
            "INSERT INTO outbox (recipient, seq, alert_id, created_at) VALUES (?, ?, ?, ?)",
            (recipient, seq, alert_id, created_at),
        )

    def outbox_row(self, recipient: Country, seq: int) -> OutboxRow | None:
        """The outbox row at that position, if any."""
        return _outbox_row(
            self._conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE recipient = ? AND seq = ?", (recipient, seq)
            ).fetchone()
        )

    def mark_delivered(
        self, *, recipient: Country, seq: int, receipt: bytes, log_index: int, at: str
    ) -> None:
        """Record the receipt that closes one outbox row."""
        self._conn.execute(
            "UPDATE outbox SET delivered_at = ?, receipt = ?, receipt_log_index = ?, last_error = NULL"
            " WHERE recipient = ? AND seq = ?",
            (at, receipt, log_index, recipient, seq),
        )

    def add_checkpoint(self, *, size: int, root: bytes, note: str, at: str) -> None:
        """Record a checkpoint this node signed."""
        self._conn.execute(
            "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
            (size, root, note, at),
        )

    def set_checkpoint_note(self, size: int, note: str) -> None:
        """Replace a checkpoint's note (it gained a cosignature line)."""
        self._conn.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, size))

    def set_cosigned(self, peer: Country, size: int, at: str) -> None:
        """The largest size of this node's log that `peer` cosigned."""
        self._conn.execute(
            "INSERT INTO cosigned (peer, size, at) VALUES (?, ?, ?)"
            " ON CONFLICT (peer) DO UPDATE SET size = excluded.size, at = excluded.at",
            (peer, size, at),
        )

    def set_witness_state(
        self, *, log_node: Country, origin: str, size: int, root: bytes, note: str, at: str
    ) -> None:
        """Persist what this node just cosigned of `log_node`'s log, and keep it."""
        self._conn.execute(
            "INSERT INTO witness_state (log_node, origin, size, root, note) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (log_node) DO UPDATE SET origin = excluded.origin, size = excluded.size,"
            " root = excluded.root, note = excluded.note",
            (log_node, origin, size, root, note),
        )
        self._conn.execute(
            "INSERT INTO witnessed (log_node, size, root, note, at) VALUES (?, ?, ?, ?, ?)",
            (log_node, size, root, note, at),
        )

    def add_trust_update(
        self, *, member: Country, serial: int, envelope: bytes, log_index: int, at: str
    ) -> None:
        """Keep a verified trust update; the caller logged it at `log_index`."""
        self._conn.execute(
            "INSERT INTO trust_updates (member, serial, envelope, log_index, at) VALUES (?, ?, ?, ?, ?)",
            (member, serial, envelope, log_index, at),
        )

    def add_evidence(
        self,
        *,
        kind: str,
        peer: Country | None,
        origin: Country | None,
        alert_id: str | None,
        detail: str,
        kept: str,
        conflicting: bytes,
        at: str,
    ) -> None:
        """Keep refused material that proves misbehaviour."""
        self._conn.execute(
            "INSERT INTO evidence (kind, peer, origin, alert_id, detail, kept, conflicting, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, peer, origin, alert_id, detail, kept, conflicting, at),
        )


_ALERT_COLUMNS: Final = (
    "origin, alert_id, digest, envelope, msg_type, sent, log_index, via, received_at, receipt"
)
_ALERT_COLUMNS_OF_A: Final = ", ".join(f"a.{c.strip()}" for c in _ALERT_COLUMNS.split(","))
_OUTBOX_COLUMNS: Final = "recipient, seq, alert_id, created_at, attempts, last_error, delivered_at, receipt"


def _alert_row(row: tuple[Any, ...] | None) -> StoredAlert | None:
    if row is None:
        return None
    origin, alert_id, dig, envelope, msg_type, sent, log_index, via, received_at, receipt = row
    return StoredAlert(
        origin=origin,
        alert_id=str(alert_id),
        digest=Digest(bytes(dig)),
        envelope=bytes(envelope),
        msg_type=str(msg_type),
        sent=str(sent),
        log_index=int(log_index),
        via=via,
        received_at=None if received_at is None else str(received_at),
        receipt=None if receipt is None else bytes(receipt),
    )


def _outbox_row(row: tuple[Any, ...] | None) -> OutboxRow | None:
    if row is None:
        return None
    recipient, seq, alert_id, created_at, attempts, last_error, delivered_at, receipt = row
    return OutboxRow(
        recipient=recipient,
        seq=int(seq),
        alert_id=str(alert_id),
        created_at=str(created_at),
        attempts=int(attempts),
        last_error=None if last_error is None else str(last_error),
        delivered_at=None if delivered_at is None else str(delivered_at),
        receipt=None if receipt is None else bytes(receipt),
    )


class Reads:
    """The store's read queries, over a connection of the node's thread or of a reader's.

    Store reads through these on the connection of the store's thread; Store.reader()
    opens a read-only connection for a worker thread (SQLite in WAL mode lets
    it read a consistent snapshot while the loop keeps committing).
    """

    def __init__(self, conn: Database) -> None:
        self._conn = conn

    def alert(self, origin: Country, alert_id: str) -> StoredAlert | None:
        """The stored alert with that origin and id, if any."""
        return _alert_row(
            self._conn.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE origin = ? AND alert_id = ?", (origin, alert_id)
            ).fetchone()
        )

    def alerts_by_type(self, msg_types: tuple[str, ...]) -> list[StoredAlert]:
        """Every stored alert, own and received, of these message types, in log order."""
        marks = ", ".join("?" * len(msg_types))
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE msg_type IN ({marks}) ORDER BY log_index", msg_types
        )
        return [row for row in map(_alert_row, rows) if row is not None]

    def last_seq(self, origin: Country, recipient: Country) -> int:
        """Highest sequence position known from `origin` towards `recipient`, 0 if none."""
        row = self._conn.execute(_LAST_SEQ, (origin, recipient)).fetchone()
        return 0 if row is None else int(row[0])

    def backlog(self, recipient: Country) -> Backlog:
        """Count and oldest of the undelivered rows, and the last delivered seq, by index."""
        waiting = int(
            self._conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE recipient = ? AND delivered_at IS NULL", (recipient,)
            ).fetchone()[0]
        )
        oldest = _outbox_row(
            self._conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE recipient = ? AND delivered_at IS NULL"
                " ORDER BY seq LIMIT 1",
                (recipient,),
            ).fetchone()
        )
        delivered = self._conn.execute(
            "SELECT MAX(seq) FROM outbox WHERE recipient = ? AND delivered_at IS NOT NULL", (recipient,)
        ).fetchone()[0]
        return Backlog(waiting=waiting, oldest=oldest, last_delivered=int(delivered or 0))

    def old_log_size(self, peer: Country) -> int | None:
        """The size of the lost log `peer` witnessed, if this node re-joined (see Tx.set_old_log_size)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (_OLD_LOG_SIZE + peer,)).fetchone()
        return None if row is None else int(row[0])

    def history_unchecked(self) -> str | None:
        """When this store started empty, if no peer has answered about its history since."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (_HISTORY_UNCHECKED,)).fetchone()
        return None if row is None else str(row[0])

    def deadlines_watched(self) -> str | None:
        """Up to when overdue acknowledgements were logged (Tx.set_deadlines_watched); None: never."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (_DEADLINES_WATCHED,)).fetchone()
        return None if row is None else str(row[0])

    def deadlines_watched_log_size(self) -> int | None:
        """The log's size at that watch; None for a store watched before it was kept."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (_DEADLINES_WATCHED_LOG,)).fetchone()
        return None if row is None else int(row[0])

    def alerts_logged_from(self, log_index: int) -> list[StoredAlert]:
        """The ALERTs and UPDATEs logged at `log_index` or after, by alerts_by_log, in log order."""
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts INDEXED BY alerts_by_log"
            " WHERE log_index >= ? AND msg_type IN ('ALERT', 'UPDATE') ORDER BY log_index",
            (log_index,),
        ).fetchall()
        return [a for a in map(_alert_row, rows) if a is not None]

    def genesis(self) -> str | None:
        """When this store took in its GENESIS file, if it did (see Tx.set_genesis)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (_GENESIS,)).fetchone()
        return None if row is None else str(row[0])

    def rejoined(self) -> bool:
        """Whether a re-join took note of a peer's size of a lost log (see Tx.set_old_log_size)."""
        row = self._conn.execute(
            _with_prefix("SELECT 1 FROM meta", _OLD_LOG_SIZE) + " LIMIT 1", (_OLD_LOG_SIZE,)
        ).fetchone()
        return row is not None

    def history_missing(self) -> dict[Country, str]:
        """Per peer, what it holds of this node's own history beyond the store (see Tx.set_history_missing)."""
        rows = self._conn.execute(
            _with_prefix("SELECT key, value FROM meta", _HISTORY_MISSING) + " ORDER BY key", (_HISTORY_MISSING,)
        )
        held: dict[Country, list[str]] = {}
        for key, value in rows:
            peer = as_country(str(key)[len(_HISTORY_MISSING) :].partition(":")[0])
            held.setdefault(peer, []).append(str(value))
        return {peer: " and ".join(texts) for peer, texts in held.items()}

    def newest_checkpoint_signed_at(self) -> str | None:
        """When this node signed its newest checkpoint (ISO 8601), if it signed one."""
        row = self._conn.execute("SELECT signed_at FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def cosigned(self) -> dict[Country, int]:
        """Per peer, the largest size of this node's log it cosigned."""
        return {peer: int(size) for peer, size in self._conn.execute("SELECT peer, size FROM cosigned")}

    def witness_state(self, log_node: Country) -> tuple[str, int, bytes, str] | None:
        """(origin, size, root, note) this node last cosigned of `log_node`'s log."""
        row = self._conn.execute(
            "SELECT origin, size, root, note FROM witness_state WHERE log_node = ?", (log_node,)
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), bytes(row[2]), str(row[3]))

    def cosigned_at(self) -> dict[Country, tuple[int, str]]:
        """Per peer, (the largest size of this node's log it cosigned, when that cosignature came)."""
        rows = self._conn.execute("SELECT peer, size, at FROM cosigned")
        return {peer: (int(size), str(at)) for peer, size, at in rows}

    def exposure(self, origin: Country, alert_id: str) -> str | None:
        """One kept exposure as JSON text, if computed."""
        row = self._conn.execute(
            "SELECT body FROM exposures WHERE origin = ? AND alert_id = ?", (origin, alert_id)
        ).fetchone()
        return None if row is None else str(row[0])

    def evidence(self) -> list[dict[str, object]]:
        """Kept evidence, newest last."""
        cur = self._conn.execute(
            "SELECT id, kind, peer, origin, alert_id, detail, at FROM evidence ORDER BY id"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def count(self, table: str) -> int:
        """Row count of one table (tests and status)."""
        if table not in ("log", "alerts", "positions", "outbox", "evidence", "checkpoints", "witnessed"):
            raise ValueError(f"unknown table {table}")
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def outbox_row(self, recipient: Country, seq: int) -> OutboxRow | None:
        """The outbox row at that position, if any."""
        return _outbox_row(
            self._conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE recipient = ? AND seq = ?", (recipient, seq)
            ).fetchone()
        )

    def alert_page(self, query: AlertFilter, *, now_us: int) -> tuple[list[StoredAlert], bool]:
        """One page of alerts in log order after `query.after`, and whether more follow.

        Keyset pagination on the log index (alerts_by_log, or alerts_by_origin_log
        with an origin): a page costs the same at the end of a long log as at its
        start, and alerts stored meanwhile come after every cursor already given,
        so paging never repeats or skips one. `now_us` decides which alerts have
        expired (the caller's clock, not SQLite's).
        """
        after = query.after
        if query.since_us is not None:
            # Start at the first alert sent since then (alerts_by_sent alone, covering):
            # a scan in log order from the start would pass every older alert first.
            first = self._conn.execute(
                "SELECT MIN(log_index) FROM alerts INDEXED BY alerts_by_sent WHERE sent_us >= ?",
                (query.since_us,),
            ).fetchone()[0]
            if first is None:
                return [], False
            after = max(after, int(first) - 1)
        where: list[str] = ["a.log_index > ?"]
        args: list[int | str] = [after]
        if query.origin is not None:
            where.append("a.origin = ?")
            args.append(query.origin)
        if query.alert_id is not None:
            # The primary key leads with the origin: naming every origin lets the
            # lookup use it instead of scanning.
            where.append(f"a.origin IN ({', '.join('?' * len(COUNTRIES))}) AND a.alert_id = ?")
            args.extend([*COUNTRIES, query.alert_id])
        if query.since_us is not None:
            where.append("a.sent_us >= ?")
            args.append(query.since_us)
        if query.state is not None:
            where.append(_STATE_SQL[query.state])
            if query.state in ("active", "expired"):
                args.append(now_us)
        args.append(query.limit + 1)
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS_OF_A} FROM alerts a WHERE {' AND '.join(where)}"
            " ORDER BY a.log_index LIMIT ?",
            args,
        ).fetchall()
        page = [a for a in map(_alert_row, rows[: query.limit]) if a is not None]
        return page, len(rows) > query.limit

    def followups(self, origin: Country, alert_id: str) -> list[StoredAlert]:
        """Stored alerts that refer to this one (updates, cancels, acks, responses), in log order."""
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE ref_origin = ? AND ref_alert_id = ? ORDER BY log_index",
            (origin, alert_id),
        ).fetchall()
        return [a for a in map(_alert_row, rows) if a is not None]

    def entries_naming(
        self, origin: Country, alert_id: str, *, receipts_for: tuple[tuple[Country, int], ...] = ()
    ) -> list[tuple[int, bytes]]:
        """(index, entry) of the log entries that name one alert, in log order: the alert's own,
        every follow-up's, and the receipts of the outbox rows `receipts_for` ((recipient, seq)
        of an own alert). What node.situation folds into its state, each found by an index."""
        parts = [
            "SELECT log_index FROM alerts WHERE origin = ? AND alert_id = ?",
            "SELECT log_index FROM alerts WHERE ref_origin = ? AND ref_alert_id = ?",
        ]
        args: list[object] = [origin, alert_id, origin, alert_id]
        for recipient, seq in receipts_for:
            parts.append(
                "SELECT receipt_log_index FROM outbox WHERE recipient = ? AND seq = ? AND alert_id = ?"
                " AND receipt_log_index IS NOT NULL"
            )
            args.extend([recipient, seq, alert_id])
        rows = self._conn.execute(
            f"SELECT idx, entry FROM log WHERE idx IN ({' UNION '.join(parts)}) ORDER BY idx", args
        ).fetchall()
        return [(int(idx), bytes(entry)) for idx, entry in rows]

    def open_alerts(self, *, now_us: int, limit: int) -> tuple[list[StoredAlert], bool]:
        """The newest `limit` ALERTs and UPDATEs neither cancelled, updated nor expired at `now_us`
        (oldest of them first), and whether there were more."""
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS_OF_A} FROM alerts a"
            f" WHERE a.msg_type IN ('ALERT', 'UPDATE') AND {_STATE_SQL['active']}"
            " ORDER BY a.log_index DESC LIMIT ?",
            (now_us, limit + 1),
        ).fetchall()
        page = [a for a in map(_alert_row, rows[:limit]) if a is not None]
        return page[::-1], len(rows) > limit

    def alerts_sent_between(self, low_us: int, high_us: int) -> list[StoredAlert]:
        """The ALERTs and UPDATEs signed in (low_us, high_us], by alerts_by_sent, in sent order."""
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts INDEXED BY alerts_by_sent"
            " WHERE sent_us > ? AND sent_us <= ? AND msg_type IN ('ALERT', 'UPDATE') ORDER BY sent_us, log_index",
            (low_us, high_us),
        ).fetchall()
        return [a for a in map(_alert_row, rows) if a is not None]

    def evidence_page(self, limit: int) -> tuple[list[dict[str, object]], int]:
        """The newest `limit` rows of kept evidence (oldest of them first), and how many are kept in all."""
        cur = self._conn.execute(
            "SELECT id, kind, peer, origin, alert_id, detail, at FROM"
            " (SELECT * FROM evidence ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
            (limit,),
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        return rows, self.count("evidence")


def _with_prefix(statement: str, prefix: str) -> str:
    """`statement` over the meta keys that start with `prefix` (its one parameter): a
    comparison both databases make alike (SQLite's GLOB and LIKE's wildcards differ)."""
    return f"{statement} WHERE substr(key, 1, {len(prefix)}) = ?"


def _followup_exists(msg_type: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM alerts f WHERE f.ref_origin = a.origin AND f.ref_alert_id = a.alert_id"
        f" AND f.msg_type = '{msg_type}')"
    )


_CANCELLED, _UPDATED = _followup_exists("CANCEL"), _followup_exists("UPDATE")
_STATE_SQL: Final = {
    "cancelled": _CANCELLED,
    "updated": f"NOT {_CANCELLED} AND {_UPDATED}",
    "expired": f"NOT {_CANCELLED} AND NOT {_UPDATED} AND a.expires_us IS NOT NULL AND a.expires_us <= ?",
    "active": f"NOT {_CANCELLED} AND NOT {_UPDATED} AND (a.expires_us IS NULL OR a.expires_us > ?)",
}
"""ALERT_STATES in SQL, each follow-up found through alerts_by_reference; the
same rules as Views._state, which names the state of each alert shown."""


class Store(Reads):
    """One node's store, used from one thread: the one that opened it.

    `Store(path)` opens (or makes) the SQLite file; `Store.postgresql(url)` the
    database on an agency's PostgreSQL server, holding its lease. A running node
    opens it on its StoreThread (node/store/_thread.py) and the event loop awaits
    every call there; a call from any other thread is refused (StoreError)
    instead of racing a transaction on the same connection. `log_size`,
    `log_root` and `reader()` need no connection of this thread and may be used
    anywhere.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path: Path | None = path
        self.where = str(path)
        self._password: str | None = None
        self.writable = not read_only
        """False for a store opened only to read (a backup; PostgreSQL beside the running node)."""
        if read_only:
            self._open_read_only(path)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:  # data_dir names a file, or a folder that cannot be made
            raise ConfigError(f"data directory {path.parent}: {exc.strerror or exc}") from None
        try:
            database = SqliteDatabase.open(path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        self._open(database)

    @classmethod
    def postgresql(cls, url: str, *, password: str | None = None, lease: bool = True) -> Store:
        """The store in a PostgreSQL database, with its lease held (StoreInUse if another
        process holds it: a second node on the same database, or the active of a pair).

        Without `lease`, to read beside the running node (`ewx export`): the
        connection is read-only (PostgreSQL refuses its writes: only the lease
        holder writes), nothing is migrated, and the store must be at this code's
        schema version.
        """
        store = cls.__new__(cls)
        store.path = None
        store.where = url
        store._password = password
        store.writable = lease  # without the lease, the connection may not write (read_only)
        if lease:
            store._open(PostgresDatabase.open_leased(url, password=password))
        else:
            store._open(PostgresDatabase.connect(url, password=password, read_only=True), migrate=False)
        return store

    def _open(self, database: Database, *, migrate: bool = True) -> None:
        self._owner = threading.get_ident()
        self._in_tx = False
        self._group: Tx | None = None
        self._group_lost: BaseException | None = None
        self._savepoints = 0
        self._database = database
        try:
            if migrate:
                self._migrate()
                database.analyze()
            elif "meta" not in database.tables() or self._schema_version() != SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.where} is not at schema version {SCHEMA_VERSION}: start the node"
                    " once, which migrates it"
                )
            self._load_tree(writable=migrate)
        except database.errors as exc:
            database.close()
            raise StoreError(f"cannot open store {self.where}: {exc}") from exc
        except BaseException:
            database.close()
            raise

    @property
    def kind(self) -> str:
        """The database the store is in: "sqlite" or "postgresql"."""
        return self._database.kind

    def _migrate(self) -> None:
        """Bring the store to SCHEMA_VERSION, a migration a transaction (node/store/_schema.py)."""
        db = self._conn
        tables = db.tables()
        version = self._schema_version() if "meta" in tables else 0
        if "alerts" in tables and version <= 1:  # a SQLite store from before the listing columns
            have = db.columns("alerts")
            for name, kind in LISTING_COLUMNS:
                if name not in have:
                    db.execute_ddl(f"ALTER TABLE alerts ADD COLUMN {name} {kind}")
            for statement in statements(LISTING_INDICES, db.kind):
                db.execute_ddl(statement)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            db.begin_write()
            try:
                for statement in statements(MIGRATIONS[number - 1], db.kind):
                    db.execute_ddl(statement)
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(number),),
                )
                db.commit()
            except BaseException:
                db.rollback()
                raise

    def _schema_version(self) -> int:
        """The version the store is at (0: none recorded); StoreError if newer than this code's."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.where} is at schema version {version}, newer than this build's"
                f" {SCHEMA_VERSION}: it was written by a newer ewx; run that one"
            )
        return version

    def _load_tree(self, *, writable: bool = True) -> None:
        """The log's frontier, read from the stored subtree roots (O(log n) rows).

        A store whose `merkle` table does not cover its log (written before the
        table existed) has it filled here in one transaction; a backup opened
        read-only keeps its levels in memory for as long as it is open.
        """
        (last,) = self._conn.execute("SELECT MAX(idx) FROM log").fetchone()
        size = 0 if last is None else int(last) + 1
        self._levels_in_memory: MerkleLevels | None = None
        if not self._levels_cover(size):
            if writable:
                self._fill_levels()
            else:
                levels = MerkleLevels()
                for (hashed,) in self._conn.execute("SELECT leaf_hash FROM log ORDER BY idx"):
                    levels.append(bytes(hashed))
                self._levels_in_memory = levels
        self._frontier = CompactRange.from_nodes(
            size, [self._subtree_root(height, index) for height, index in frontier_subtrees(size)]
        )

    def _levels_cover(self, size: int) -> bool:
        if "merkle" not in self._conn.tables():
            return False
        (count,) = self._conn.execute("SELECT COUNT(*) FROM merkle").fetchone()
        return int(count) == interior_count(size)

    def _fill_levels(self) -> None:
        frontier = CompactRange()
        pending: list[tuple[int, int, bytes]] = []
        db = self._conn
        db.begin_write()
        try:
            db.execute("DELETE FROM merkle")
            leaves = db.cursor()  # read while the other statement writes: another table
            for (hashed,) in leaves.execute("SELECT leaf_hash FROM log ORDER BY idx"):
                pending += frontier.append(bytes(hashed))
                if len(pending) >= _MERKLE_FILL_BATCH:
                    db.executemany("INSERT INTO merkle (height, idx, hash) VALUES (?, ?, ?)", pending)
                    pending.clear()
            db.executemany("INSERT INTO merkle (height, idx, hash) VALUES (?, ?, ?)", pending)
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def _subtree_root(self, height: int, index: int) -> bytes:
        """The root of an aligned perfect subtree of the log (node.crypto SubtreeRoot)."""
        if self._levels_in_memory is not None:
            return self._levels_in_memory.subtree_root(height, index)
        if height == 0:
            row = self._conn.execute("SELECT leaf_hash FROM log WHERE idx = ?", (index,)).fetchone()
        else:
            row = self._conn.execute(
                "SELECT hash FROM merkle WHERE height = ? AND idx = ?", (height, index)
            ).fetchone()
        if row is None:
            raise StoreError(f"store {self.where}: the log's subtree ({height}, {index}) is missing")
        return bytes(row[0])

    def _open_read_only(self, path: Path) -> None:
        """Open a store file that nothing writes (a backup) to read it, never to change it.

        `immutable=1`: SQLite takes no locks and makes no -wal or -shm file
        beside it, so a backup is read as the bytes it holds; a -wal beside
        it is not read (`ewx backup` writes none, and a restore installs the
        file alone, so what is checked is what is installed). Refuses a file
        that is not an EWX store, or one of a newer schema version (StoreError);
        an older one is read as it is (its migrations run when a node opens it).
        """
        self._owner = threading.get_ident()
        self._in_tx = False
        self._group = None
        self._group_lost = None
        self._savepoints = 0
        if not path.is_file():
            raise StoreError(f"cannot read store {path}: no such file")
        try:
            self._database = SqliteDatabase.open_read_only(path, immutable=True)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read store {path}: {exc}") from exc
        try:
            missing = sorted(TABLES - self._conn.tables())
            if missing:
                raise StoreError(f"{path} is not an EWX store (no table {', '.join(missing)})")
            if self._conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is None:
                raise StoreError(f"{path}: store has no schema version")
            self._schema_version()
            self._load_tree(writable=False)
        except sqlite3.DatabaseError as exc:
            self._database.close()
            raise StoreError(f"cannot read store {path}: {exc}") from exc
        except StoreError:
            self._database.close()
            raise

    def integrity_problems(self, limit: int = 10) -> list[str]:
        """The database's own check of what it holds (SQLite: `PRAGMA integrity_check`): empty if sound."""
        return self._conn.integrity_problems(limit)

    @property
    def _conn(self) -> Database:  # type: ignore[override]
        if threading.get_ident() != self._owner:
            raise StoreError(
                f"store {self.where} used from thread {threading.current_thread().name!r}, not the one"
                " that opened it: a running node's store calls go through its StoreThread"
            )
        return self._database

    def fill_listing_keys(self, keys_of: Callable[[bytes], ListingKeys]) -> int:
        """Fill the listing columns of alerts stored before they existed (`keys_of` reads an envelope).

        One transaction; returns how many alerts it filled (none after the first run).
        """
        rows = self._conn.execute(
            "SELECT origin, alert_id, envelope FROM alerts WHERE sent_us IS NULL"
        ).fetchall()
        if not rows:
            return 0
        with self.transaction():
            for origin, alert_id, envelope in rows:
                keys = keys_of(bytes(envelope))
                ref_origin, ref_alert_id = keys.reference or (None, None)
                self._conn.execute(
                    "UPDATE alerts SET sent_us = ?, expires_us = ?, ref_origin = ?, ref_alert_id = ?"
                    " WHERE origin = ? AND alert_id = ?",
                    (keys.sent_us, keys.expires_us, ref_origin, ref_alert_id, origin, alert_id),
                )
        return len(rows)

    @contextmanager
    def reader(self) -> Iterator[Reads]:
        """A read-only connection of its own, for one worker thread, over one snapshot.

        The operator's listings run on it off the event loop (issue 10, item 7),
        so the loop that answers peers never waits on a large read. SQLite's WAL
        mode, like PostgreSQL's REPEATABLE READ, lets it read one committed state
        while the loop commits; it is opened read-only, so it never writes. Open,
        use and close it in the same thread.
        """
        database: Database
        try:
            if self.path is not None:
                database = SqliteDatabase.open_read_only(self.path, immutable=False)
            else:
                database = PostgresDatabase.connect(self.where, password=self._password)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read store {self.where}: {exc}") from exc
        try:
            database.begin_read()  # every query of this reader sees the same committed state
            yield Reads(database)
        finally:
            database.close()

    def close(self) -> None:
        """Close the database (a PostgreSQL store's lease with it); the object is unusable afterwards."""
        self._conn.close()

    def alive(self) -> bool:
        """Whether the store's database is still there: for PostgreSQL, that this process still
        holds the lease (a round trip on the store's connection); a file is always there."""
        return self._conn.alive()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Tx]:
        """BEGIN ... COMMIT; rolled back entirely on any exception.

        A full disk is StoreFull, a PostgreSQL server gone StoreUnavailable, and
        nothing of the transaction was written in either case. `durable` False
        is for what can be computed again and nobody was promised (an exposure):
        its commit does not wait for the disk (Database.begin_write). Inside a
        group it is a savepoint of the group's durable commit like any other.
        """
        if self._group is not None:
            with self._savepoint(self._group) as tx:
                yield tx
            return
        if self._in_tx:
            raise StoreError("nested transaction")
        with self._outermost(durable=durable) as tx:
            yield tx

    @contextmanager
    def group(self) -> Iterator[None]:
        """One transaction, one durable commit, for many: each transaction() opened inside
        it is a savepoint of it, undone alone if it fails, while the others stand.

        Group commit (issue 15): concurrent publishes share one fsync. What each
        registered with after_commit runs once the group has committed, and the
        caller acknowledges none of them before this block has ended without an
        exception; if the commit itself fails, none of them was written.
        """
        if self._in_tx:
            raise StoreError("nested transaction")
        with self._outermost() as tx:
            self._group, self._group_lost = tx, None
            try:
                yield
                if self._group_lost is not None:  # then nothing of the group is written: say so
                    raise self._group_lost
            finally:
                self._group = self._group_lost = None

    @contextmanager
    def _outermost(self, *, durable: bool = True) -> Iterator[Tx]:
        """BEGIN ... COMMIT, then the after-commit callbacks; rolled back entirely on any exception."""
        self._in_tx = True
        db = self._conn
        try:
            db.begin_write(durable=durable)
            tx = Tx(db, self._frontier.copy())
            try:
                yield tx
            except BaseException:
                db.rollback()
                raise
            else:
                db.commit()
                self._frontier = tx.frontier
        except db.errors as exc:
            db.rollback()  # a COMMIT refused (PostgreSQL's pipeline answers at it) ends nothing itself
            problem = db.problem(exc)
            if problem is None:
                raise
            raise problem from None
        finally:
            self._in_tx = False
        for callback in tx.committed:
            callback()

    @contextmanager
    def _savepoint(self, tx: Tx) -> Iterator[Tx]:
        """One part of a group: rolled back to where it began on any exception, the group's
        frontier, appends and callbacks with it."""
        db = self._conn
        if self._group_lost is not None:
            raise StoreError(f"store {self.where}: this group's transaction is lost: {self._group_lost}")
        self._savepoints += 1
        name = f"part_{self._savepoints}"
        mark = tx._mark()
        db.execute(f"SAVEPOINT {name}")
        try:
            yield tx
            db.sync()  # this part's own refusal is raised here, while it is undone alone
        except BaseException as exc:
            if not db.in_transaction:  # SQLite drops the whole transaction on a full disk
                self._group_lost = exc
            else:
                db.execute(f"ROLLBACK TO SAVEPOINT {name}")
                db.execute(f"RELEASE SAVEPOINT {name}")
                tx._restore(mark)
            if isinstance(exc, db.errors) and (problem := db.problem(exc)) is not None:
                raise problem from None
            raise
        else:
            db.execute(f"RELEASE SAVEPOINT {name}")

    # ------------------------------------------------------------ the log
    @property
    def log_size(self) -> int:
        """Number of committed log entries."""
        return self._frontier.size

    def log_root(self) -> bytes:
        """RFC 6962 root hash of the committed log."""
        return self._frontier.root()

    def log_entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(index, entry bytes) in order, from `start` up to `end` (exclusive)."""
        stop = self.log_size if end is None else end
        while start < stop:
            rows = self._conn.execute(
                "SELECT idx, entry FROM log WHERE idx >= ? AND idx < ? ORDER BY idx LIMIT ?",
                (start, stop, _LOG_PAGE),
            ).fetchall()
            if not rows:
                return
            for idx, entry in rows:
                yield int(idx), bytes(entry)
            start = int(rows[-1][0]) + 1

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes of the committed log."""
        if not 0 <= old_size <= new_size <= self.log_size:
            raise ValueError(f"sizes {old_size}, {new_size} are outside the log's [0, {self.log_size}]")
        return levels_consistency_proof(self._subtree_root, old_size, new_size)

    # ------------------------------------------------------------ reads
    def trust_updates(
        self, member: Country | None = None, *, after_serial: int = 0
    ) -> list[tuple[Country, int, bytes]]:
        """(member, serial, envelope) of the trust updates held after `after_serial`, by member then serial."""
        if member is None:
            rows = self._conn.execute(
                "SELECT member, serial, envelope FROM trust_updates WHERE serial > ? ORDER BY member, serial",
                (after_serial,),
            )
        else:
            rows = self._conn.execute(
                "SELECT member, serial, envelope FROM trust_updates WHERE member = ? AND serial > ?"
                " ORDER BY serial",
                (member, after_serial),
            )
        return [(cast(Country, m), int(n), bytes(e)) for m, n, e in rows]

    def alerts(self) -> list[StoredAlert]:
        """Every stored alert in log order."""
        rows = self._conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts ORDER BY log_index").fetchall()
        return [a for a in map(_alert_row, rows) if a is not None]

    def envelopes_for(
        self, *, origin: Country, recipient: Country, after_seq: int, limit: int
    ) -> list[tuple[int, str, bytes]]:
        """(seq, alert id, envelope) of `origin`'s alerts addressed to `recipient`, in order."""
        rows = self._conn.execute(
            "SELECT p.seq, a.alert_id, a.envelope FROM positions p JOIN alerts a"
            " ON a.origin = p.origin AND a.alert_id = p.alert_id"
            " WHERE p.origin = ? AND p.recipient = ? AND p.seq > ? ORDER BY p.seq LIMIT ?",
            (origin, recipient, after_seq, limit),
        ).fetchall()
        return [(int(seq), str(aid), bytes(env)) for seq, aid, env in rows]

    def outbox(self, recipient: Country | None = None) -> list[OutboxRow]:
        """Outbox rows (all, or towards one recipient) in sequence order."""
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox"
        args: tuple[str, ...] = ()
        if recipient is not None:
            sql += " WHERE recipient = ?"
            args = (recipient,)
        rows = self._conn.execute(sql + " ORDER BY recipient, seq", args).fetchall()
        return [r for r in map(_outbox_row, rows) if r is not None]

    def pending(
        self, origin: Country, recipient: Country, limit: int, *, after_seq: int = 0
    ) -> list[tuple[int, str, bytes]]:
        """(seq, alert id, envelope) of `origin`'s (this node's) alerts still to deliver, oldest first."""
        # Join on the alerts table's whole key: joining on the id alone cannot use
        # its index and scanned every alert once per outbox row.
        rows = self._conn.execute(
            "SELECT o.seq, o.alert_id, a.envelope FROM outbox o JOIN alerts a"
            " ON a.origin = ? AND a.alert_id = o.alert_id"
            " WHERE o.recipient = ? AND o.delivered_at IS NULL AND o.seq > ? ORDER BY o.seq LIMIT ?",
            (origin, recipient, after_seq, limit),
        ).fetchall()
        return [(int(seq), str(aid), bytes(env)) for seq, aid, env in rows]

    def record_failure(self, *, recipient: Country, seq: int, error: str) -> None:
        """Count a failed delivery attempt (its own small commit)."""
        self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE recipient = ? AND seq = ?",
            (error[:500], recipient, seq),
        )

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """(size, root, note with cosignatures) of every own checkpoint, oldest first."""
        rows = self._conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size").fetchall()
        return [(int(size), bytes(root), str(note)) for size, root, note in rows]

    def latest_checkpoint(self) -> tuple[int, bytes, str] | None:
        """The newest own checkpoint, if any."""
        row = self._conn.execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def checkpoint_at(self, size: int) -> tuple[bytes, str] | None:
        """Root and note of the own checkpoint at `size`, if one was signed."""
        row = self._conn.execute("SELECT root, note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return None if row is None else (bytes(row[0]), str(row[1]))

    def witnessed(self) -> list[tuple[Country, int, bytes, str]]:
        """(log node, size, root, note) of every peer checkpoint this node cosigned, in order."""
        rows = self._conn.execute("SELECT log_node, size, root, note FROM witnessed ORDER BY id").fetchall()
        return [(node, int(size), bytes(root), str(note)) for node, size, root, note in rows]

    def witnessed_at(self, log_node: Country, size: int) -> list[tuple[bytes, str]]:
        """(root, note) of every checkpoint of `log_node`'s log at `size` this node cosigned."""
        rows = self._conn.execute(
            "SELECT root, note FROM witnessed WHERE log_node = ? AND size = ?", (log_node, size)
        ).fetchall()
        return [(bytes(root), str(note)) for root, note in rows]

    def idempotent(self, key: str) -> str | None:
        """The alert id published under an idempotency key, if any."""
        row = self._conn.execute("SELECT alert_id FROM idempotency WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_exposure(self, origin: Country, alert_id: str, body: str, at: str) -> None:
        """Keep this node's exposure to a peer alert (replacing an older computation)."""
        self.set_exposures([(origin, alert_id, body)], at)

    def set_exposures(self, exposures: Sequence[tuple[Country, str, str]], at: str) -> None:
        """Keep this node's exposures to peer alerts, (origin, alert id, JSON text) each, in one
        transaction that does not wait for the disk: an exposure is computed again from the
        alert and the node's data, and one lost in a crash is found missing by the exposure
        worker's sweep at the next start (a durable commit for each cost a peer's delivery
        its fsync's worth of the disk, 0.3-0.5 ms of a hop's p50; docs/performance.md)."""
        with self.transaction(durable=False):
            self._conn.executemany(
                "INSERT INTO exposures (origin, alert_id, body, computed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (origin, alert_id) DO UPDATE SET body = excluded.body, computed_at = excluded.computed_at",
                [(origin, alert_id, body, at) for origin, alert_id, body in exposures],
            )

    def exposures(self) -> dict[tuple[str, str], str]:
        """Every kept exposure, by (origin, alert id), as stored JSON text."""
        rows = self._conn.execute("SELECT origin, alert_id, body FROM exposures")
        return {(str(o), str(a)): str(b) for o, a, b in rows}

    def peer_alerts(
        self, *, without_exposure: bool, after_index: int = -1, limit: int = 1000
    ) -> list[tuple[Country, str, int]]:
        """Received ALERTs and UPDATEs logged after `after_index` (only those whose exposure
        is not computed yet, with `without_exposure`), as (origin, id, log index), in log
        order, at most `limit`: the exposure worker's sweep reads them page by page."""
        missing = (
            " AND NOT EXISTS (SELECT 1 FROM exposures e WHERE e.origin = a.origin AND e.alert_id = a.alert_id)"
            if without_exposure
            else ""
        )
        rows = self._conn.execute(
            "SELECT a.origin, a.alert_id, a.log_index FROM alerts a WHERE a.via IS NOT NULL "
            f"AND a.msg_type IN ('ALERT', 'UPDATE') AND a.log_index > ?{missing} ORDER BY a.log_index LIMIT ?",
            (after_index, limit),
        )
        return [(cast(Country, o), str(a), int(i)) for o, a, i in rows]

    def count_peer_alerts(self) -> int:
        """How many received ALERTs and UPDATEs the store holds (what a recheck checks)."""
        (count,) = self._conn.execute(
            "SELECT count(*) FROM alerts WHERE via IS NOT NULL AND msg_type IN ('ALERT', 'UPDATE')"
        ).fetchone()
        return int(count)

    def add_evidence(self, **fields: Any) -> None:
        """Keep evidence in its own small transaction (see Tx.add_evidence)."""
        with self.transaction() as tx:
            tx.add_evidence(**fields)
