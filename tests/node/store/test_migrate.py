"""Moving a store between databases, store level (issue 16, item 4): node/store/_migrate.py.

A store with a row in every table goes to PostgreSQL and back, page by page
(a small batch, so every composite key is paged across), row for row; the
copy refuses to commit, and writes nothing, unless the copied log verifies
against the store's checkpoints; a destination that is not empty, or in use,
and a source in use are refused. The CLI and a real federation's store are
tests/node/cli/test_store_migrate_cli.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from node.crypto import EMPTY_ROOT, leaf_hash
from node.errors import MigrationRefused, RefusedOperation, StoreInUse, UsageError
from node.files import DataDirLock
from node.store import (
    COPIED_TABLES,
    STORE_FILE,
    ListingKeys,
    Store,
    StorePlace,
    copy_store,
    migrate_store,
)
from node.store._migrate import RowDigest

pytestmark = pytest.mark.sqlite_only(
    "migrates and changes a SQLite store file; its PostgreSQL side is explicit"
)

ENTRIES = 300
CHECKPOINT_SIZES = (0, 1, 2, 7, 64, 65, 200, ENTRIES)


def _filled(path: Path) -> Store:
    """A store with rows in every table, the log's checkpoints at CHECKPOINT_SIZES (notes unsigned)."""
    store = Store(path)
    with store.transaction() as tx:
        tx.add_checkpoint(size=0, root=EMPTY_ROOT, note="checkpoint 0\n", at="2025-01-01T00:00:00Z")
    for i in range(ENTRIES):
        with store.transaction() as tx:
            origin = ("KR", "US", "JP")[i % 3]
            index = tx.append_log(f"entry {i} ".encode() * (1 + i % 5) + bytes([i % 256]))
            if i % 2 == 0:
                alert_id = f"{origin}-{i:05d}"
                tx.insert_alert(
                    origin=origin,
                    alert_id=alert_id,
                    digest=bytes([i % 256]) * 32,
                    envelope=b"envelope %d" % i,
                    msg_type="ALERT" if i % 4 == 0 else "ACK",
                    sent=f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                    log_index=index,
                    positions=[
                        ("US" if origin != "US" else "KR", i + 1),
                        ("JP" if origin != "JP" else "KR", i + 1),
                    ],
                    listing=ListingKeys(sent_us=1_735_689_600_000_000 + i, expires_us=None, reference=None),
                    via=None if origin == "KR" else origin,
                    received_at=None if origin == "KR" else "2025-01-01T01:00:00Z",
                    receipt=None if i % 3 else b"receipt",
                )
                if origin == "KR":
                    for recipient in ("US", "JP"):
                        tx.queue(recipient=recipient, seq=i + 1, alert_id=alert_id, created_at="t")
                        if i % 8 == 0:
                            tx.mark_delivered(
                                recipient=recipient, seq=i + 1, receipt=b"r", log_index=index, at="t"
                            )
            if i % 50 == 0:
                tx.set_witness_state(
                    log_node="US", origin="ewx/us/log", size=i, root=b"\x01" * 32, note=f"n{i}", at="t"
                )
                tx.add_trust_update(
                    member="JP", serial=i + 1, envelope=b"update %d" % i, log_index=index, at="t"
                )
                tx.remember(f"key-{i}", f"KR-{i:05d}", "t")
                tx.next_number("alert_counter")
            if tx.frontier.size in CHECKPOINT_SIZES:
                tx.add_checkpoint(
                    size=tx.frontier.size,
                    root=tx.frontier.root(),
                    note=f"checkpoint {tx.frontier.size}\n",
                    at="t",
                )
    with store.transaction() as tx:
        tx.set_cosigned("US", 200, "t")
        tx.set_cosigned("JP", ENTRIES, "t")
        tx.set_genesis("2025-01-01T00:00:00Z")
    store.set_exposure("US", "US-00002", '{"items": []}', "t")
    for n in range(3):
        store.add_evidence(
            kind="equivocation",
            peer="US",
            origin="US",
            alert_id=f"US-{n}",
            detail="two alerts at one seq",
            kept="first",
            conflicting=b"other %d" % n,
            at="t",
        )
    return store


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A filled SQLite store, closed, in a data directory of its own."""
    path = tmp_path / "data" / STORE_FILE
    _filled(path).close()
    return path


def _rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as Python values (bytes for either database's binary type), sorted."""
    rows = {}
    for table in COPIED_TABLES:
        columns = sorted(store._conn.columns(table.name))
        fetched = store._conn.execute(f"SELECT {', '.join(columns)} FROM {table.name}").fetchall()
        normal = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in fetched]
        rows[table.name] = sorted(normal, key=repr)
    return rows


def _empty(url: str) -> dict[str, int]:
    """The rows each EWX table of the database at `url` holds (none of them if it has none)."""
    with psycopg.connect(url) as connection:
        tables = {
            r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        counts = {
            t.name: connection.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0]
            for t in COPIED_TABLES
            if t.name in tables
        }  # type: ignore[index]
    return {name: count for name, count in counts.items() if count and not (name == "meta" and count == 1)}


def _places(source: Path, url: str) -> tuple[StorePlace, StorePlace]:
    return StorePlace.parse(f"sqlite:{source}", flag="--from"), StorePlace.parse(url, flag="--to")


def test_every_table_of_the_schema_is_copied_by_its_primary_key(tmp_path: Path) -> None:
    store = Store(tmp_path / STORE_FILE)
    try:
        made = {str(r[0]) for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {t.name for t in COPIED_TABLES} == made  # a table added to the schema is copied too
        for table in COPIED_TABLES:
            key = [
                str(r[1])
                for r in sorted(store._conn.execute(f"PRAGMA table_info({table.name})"), key=lambda r: r[5])
                if r[5]
            ]
            assert tuple(key) == table.key, table.name
        assert {t.name for t in COPIED_TABLES if t.identity} == {"evidence", "witnessed"}
    finally:
        store.close()


def test_sqlite_to_postgresql_copies_every_row_and_the_store_goes_on_from_there(
    source: Path, postgres_url: str
) -> None:
    original = Store(source)
    expected, root = _rows(original), original.log_root()
    original.close()

    result = migrate_store(*_places(source, postgres_url), batch=7)
    assert (result.log_size, result.root) == (ENTRIES, root)
    assert result.checkpoints == len(CHECKPOINT_SIZES) and not result.signatures_checked
    assert result.rows == {name: len(rows) for name, rows in expected.items()}
    assert all(result.rows[t] > 0 for t in result.rows), result.rows  # the test store fills every table

    moved = Store.postgresql(postgres_url)
    try:
        assert moved.kind == "postgresql"
        assert (moved.log_size, moved.log_root()) == (ENTRIES, root)
        assert _rows(moved) == expected
        assert [size for size, _, _ in moved.checkpoints()] == list(CHECKPOINT_SIZES)
        assert moved.consistency_proof(7, ENTRIES)  # from the copied subtree roots
        # The node's next writes: ids after the copied ones, the log at its size.
        moved.add_evidence(
            kind="k", peer="US", origin="US", alert_id="x", detail="d", kept="k", conflicting=b"c", at="t"
        )
        assert [row["id"] for row in moved.evidence()] == [1, 2, 3, 4]
        with moved.transaction() as tx:
            tx.set_witness_state(log_node="JP", origin="o", size=1, root=b"\x02" * 32, note="n", at="t")
            assert tx.append_log(b"the next entry") == ENTRIES
        ids = [int(r[0]) for r in moved._conn.execute("SELECT id FROM witnessed ORDER BY id").fetchall()]
        assert ids == list(range(1, len(ids) + 1))
    finally:
        moved.close()


def test_postgresql_back_to_a_new_sqlite_file_is_row_for_row(
    source: Path, postgres_url: str, tmp_path: Path
) -> None:
    migrate_store(*_places(source, postgres_url), batch=7)
    back = tmp_path / "back" / STORE_FILE
    back.parent.mkdir()
    result = migrate_store(
        StorePlace.parse(postgres_url, flag="--from"),
        StorePlace.parse(f"sqlite:{back}", flag="--to"),
        batch=5,
    )
    assert result.log_size == ENTRIES
    assert sorted(p.name for p in back.parent.iterdir()) == [
        STORE_FILE,
        "node.lock",
    ]  # no -wal, no .part left
    assert back.stat().st_mode & 0o777 == 0o600
    first, second = Store(source), Store(back)
    try:
        assert _rows(second) == _rows(first)
        assert second.log_root() == first.log_root()
    finally:
        first.close()
        second.close()


def _drop_log_triggers(path: Path) -> sqlite3.Connection:
    """A connection to the store file that may change its log (the append-only triggers dropped:
    whoever holds the file can do as much)."""
    connection = sqlite3.connect(path, isolation_level=None)
    for (name,) in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'log'"
    ).fetchall():
        connection.execute(f"DROP TRIGGER {name}")
    return connection


def _change_entry(db: sqlite3.Connection) -> None:
    db.execute("UPDATE log SET entry = ? WHERE idx = 40", (b"a changed entry",))


def _change_entry_and_hash(db: sqlite3.Connection) -> None:
    db.execute("UPDATE log SET entry = ?, leaf_hash = ? WHERE idx = 40", (b"changed", leaf_hash(b"changed")))


def _drop_entry(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM log WHERE idx = 100")


def _change_subtree(db: sqlite3.Connection) -> None:
    db.execute("UPDATE merkle SET hash = ? WHERE height = 1 AND idx = 3", (b"\x00" * 32,))


def _change_checkpoint(db: sqlite3.Connection) -> None:
    db.execute("UPDATE checkpoints SET root = ? WHERE size = 64", (b"\x00" * 32,))


def _checkpoint_past_the_log(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, 'n', 't')",
        (ENTRIES + 5, b"\x00" * 32),
    )


@pytest.mark.parametrize(
    ("tamper", "finding"),
    [
        (_change_entry, "log entry 40: its bytes do not hash to the leaf hash stored beside them"),
        (_change_entry_and_hash, "the copied log's root at size 64 is "),
        (_drop_entry, "log entry 100 is missing"),
        (_change_subtree, "the log's stored subtree roots (table merkle) are not those its entries give"),
        (_change_checkpoint, "but the store's checkpoint at that size has root 0000"),
        (
            _checkpoint_past_the_log,
            f"checkpoint {ENTRIES + 5} is of a log larger than the {ENTRIES} entries copied",
        ),
    ],
)
def test_a_copy_that_does_not_verify_is_refused_and_nothing_is_written(
    source: Path, postgres_url: str, tamper: Callable[[sqlite3.Connection], None], finding: str
) -> None:
    db = _drop_log_triggers(source)
    tamper(db)
    db.close()
    with pytest.raises(MigrationRefused) as refused:
        migrate_store(*_places(source, postgres_url), batch=7)
    assert "does not verify, so nothing was written to" in str(refused.value)
    assert finding in str(refused.value)
    assert _empty(postgres_url) == {}
    # The refusal wrote nothing: the same destination takes a sound store afterwards.
    sound = source.parent.parent / "sound" / STORE_FILE
    _filled(sound).close()
    assert migrate_store(*_places(sound, postgres_url)).log_size == ENTRIES


def test_the_checkpoint_check_is_asked_of_every_checkpoint_and_its_finding_refuses(
    source: Path, postgres_url: str
) -> None:
    asked: list[tuple[int, bytes, str]] = []

    def check(size: int, root: bytes, note: str) -> str | None:
        asked.append((size, root, note))
        return "checkpoint 65 is not signed by a log key of KR" if size == 65 else None

    with pytest.raises(MigrationRefused, match="checkpoint 65 is not signed by a log key of KR"):
        migrate_store(*_places(source, postgres_url), checker=lambda store: check)
    assert [size for size, _, _ in asked] == [0, 1, 2, 7, 64, 65]
    assert asked[3][2] == "checkpoint 7\n"
    assert _empty(postgres_url) == {}

    asked.clear()
    result = migrate_store(
        *_places(source, postgres_url), checker=lambda store: lambda s, r, n: asked.append((s, r, n))
    )  # type: ignore[func-returns-value]
    assert result.signatures_checked and [s for s, _, _ in asked] == list(CHECKPOINT_SIZES)


def test_a_destination_that_is_not_empty_is_refused_naming_what_it_holds(
    source: Path, postgres_url: str, tmp_path: Path
) -> None:
    migrate_store(*_places(source, postgres_url))
    with pytest.raises(
        RefusedOperation,
        match=r"is not empty: it holds 2 rows in meta, 300 rows in log, 150 rows in alerts, .*1 row in exposures",
    ):
        migrate_store(*_places(source, postgres_url))

    existing = tmp_path / "existing.sqlite3"
    existing.write_bytes(b"")
    with pytest.raises(RefusedOperation, match="already exists: a migration writes a new file"):
        migrate_store(
            StorePlace.parse(f"sqlite:{source}", flag="--from"),
            StorePlace.parse(f"sqlite:{existing}", flag="--to"),
        )
    assert existing.read_bytes() == b""


def test_a_database_with_other_tables_is_refused(source: Path, postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE payroll (name TEXT)")
    with pytest.raises(RefusedOperation, match=r"holds tables that are not an EWX store's \(payroll\)"):
        migrate_store(*_places(source, postgres_url))
    with psycopg.connect(postgres_url) as connection:
        tables = {
            r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert tables == {"payroll"}  # no EWX table was made in it


def test_stores_in_use_are_refused(source: Path, postgres_url: str, tmp_path: Path) -> None:
    lock = DataDirLock.acquire(source.parent)  # as a node running on that data directory holds it
    try:
        with pytest.raises(RefusedOperation, match=r"in use by another node.*stop the node first"):
            migrate_store(*_places(source, postgres_url))
    finally:
        lock.release()
    assert _empty(postgres_url) == {}

    holder = Store.postgresql(postgres_url)  # a node (or its standby) holding the lease
    try:
        with pytest.raises(StoreInUse, match=r"destination: .* holds its lease; a node runs on it"):
            migrate_store(*_places(source, postgres_url))
    finally:
        holder.close()

    migrate_store(*_places(source, postgres_url))
    holder = Store.postgresql(postgres_url)
    try:
        back = tmp_path / "back.sqlite3"
        with pytest.raises(StoreInUse, match=r"source: .*stop the node"):
            migrate_store(
                StorePlace.parse(postgres_url, flag="--from"), StorePlace.parse(f"sqlite:{back}", flag="--to")
            )
        assert not back.exists()
    finally:
        holder.close()


def test_places_and_sources_that_are_not_stores(tmp_path: Path, postgres_url: str) -> None:
    assert StorePlace.parse("sqlite:/x/ewx.sqlite3", flag="--from").path == Path("/x/ewx.sqlite3")
    assert StorePlace.parse(postgres_url, flag="--to").url == postgres_url
    for text in ("/x/ewx.sqlite3", "sqlite:", "mysql://u@h/db", "postgresql:db"):
        with pytest.raises(UsageError, match="--to"):
            StorePlace.parse(text, flag="--to")
    for text in ("postgresql://kr:s3cret@db.example/ewx", "postgresql://kr@db.example/ewx?password=s3cret"):
        with pytest.raises(UsageError, match="the URL holds a password") as refused:
            StorePlace.parse(text, flag="--to")
        assert "s3cret" not in str(refused.value)

    same = StorePlace.parse(f"sqlite:{tmp_path / 'a' / '..' / 'ewx.sqlite3'}", flag="--to")
    with pytest.raises(UsageError, match="name the same store"):
        migrate_store(StorePlace.parse(f"sqlite:{tmp_path / 'ewx.sqlite3'}", flag="--from"), same)

    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(UsageError, match="no such file"):
        migrate_store(
            StorePlace.parse(f"sqlite:{missing}", flag="--from"), StorePlace.parse(postgres_url, flag="--to")
        )
    assert not missing.exists()  # not made by trying
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(UsageError, match="is not an EWX store"):
        migrate_store(
            StorePlace.parse(f"sqlite:{other}", flag="--from"), StorePlace.parse(postgres_url, flag="--to")
        )
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["t"]  # left as it was
    with pytest.raises(UsageError, match="is not an EWX store"):
        migrate_store(
            StorePlace.parse(postgres_url, flag="--from"),
            StorePlace.parse(f"sqlite:{tmp_path / 'n'}", flag="--to"),
        )


def test_copy_store_needs_an_empty_destination_of_its_own(tmp_path: Path) -> None:
    first, second = _filled(tmp_path / "a.sqlite3"), Store(tmp_path / "b.sqlite3")
    try:
        copy_store(first, second, batch=3)
        assert second.log_size == 0  # its own frontier is stale: reopen it
        with pytest.raises(RefusedOperation, match="not empty"):
            copy_store(first, second)
    finally:
        first.close()
        second.close()
    reopened = Store(tmp_path / "b.sqlite3")
    try:
        assert reopened.log_size == ENTRIES
    finally:
        reopened.close()


def test_the_row_digest_is_order_free_and_tells_types_apart() -> None:
    def digest(*rows: tuple[Any, ...]) -> RowDigest:
        d = RowDigest()
        for row in rows:
            d.add(row)
        return d

    assert digest((1, "a"), (2, b"b")) == digest((2, b"b"), (1, "a"))
    assert digest((1, "a")) != digest((1, b"a"))
    assert digest(("1",)) != digest((1,))
    assert digest((None,)) != digest(("",))
    assert digest(("ab", "c")) != digest(("a", "bc"))
    assert digest((1,), (1,)) != digest((1,))
    assert digest((memoryview(b"x"),)) == digest((b"x",))


@pytest.mark.parametrize(
    ("damage", "finding"),
    [
        (
            "DELETE FROM outbox WHERE recipient = 'US' AND seq = 1",
            r"table outbox: the source holds 100 rows, 100 were read and the copy holds 99",
        ),
        (
            "UPDATE outbox SET attempts = 99 WHERE seq = 1",
            r"table outbox: the copy's 100 rows are not the source's",
        ),
        (
            "UPDATE evidence SET conflicting = 'text' WHERE id = 2",
            r"table evidence: the copy's 3 rows are not the source's",
        ),
    ],
)
def test_rows_that_did_not_arrive_as_read_are_refused(
    source: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, damage: str, finding: str
) -> None:
    from node.store import _migrate

    copy_table = _migrate._copy_table

    def lossy(src: Any, dst: Any, table: Any, columns: Any, batch: int) -> Any:
        digest = copy_table(src, dst, table, columns, batch)
        if table.name == damage.split()[1 if damage.startswith("UPDATE") else 2]:
            dst.execute(damage)  # inside the copy's transaction, as a faulty driver or server would
        return digest

    monkeypatch.setattr(_migrate, "_copy_table", lossy)
    with pytest.raises(MigrationRefused, match=finding):
        migrate_store(*_places(source, postgres_url))
    assert _empty(postgres_url) == {}
