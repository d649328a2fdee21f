"""The store's pieces of backup and restore: the online copy, read-only opening, folding the WAL (issue 14, item 6)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from node.crypto import leaf_hash
from node.errors import StoreError
from node.store import STORE_FILE, Store, copy_online, make_self_contained

pytestmark = pytest.mark.sqlite_only("SQLite's online copy, read-only opening and WAL of ewx.sqlite3")


def _fill(store: Store, count: int) -> None:
    for i in range(count):
        with store.transaction() as tx:
            tx.append_log(f"entry {store.log_size + i}".encode())


def test_the_online_copy_is_one_committed_state_while_a_writer_goes_on(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = Store(path)
    _fill(store, 50)
    stop = threading.Event()

    def write() -> None:  # another connection commits throughout, as the running node does
        writer = Store(path)
        try:
            while not stop.is_set():
                with writer.transaction() as tx:
                    for _ in range(20):
                        tx.append_log(b"x" * 2000)
        finally:
            writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        copies = []
        for n in range(5):
            target = tmp_path / f"copy{n}.sqlite3"
            target.touch(mode=0o600)
            copy_online(path, target)
            copies.append(target)
    finally:
        stop.set()
        thread.join()
        store.close()
    for target in copies:
        assert not Path(f"{target}-wal").exists()
        with sqlite3.connect(target) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = db.execute("SELECT idx, entry, leaf_hash FROM log ORDER BY idx").fetchall()
        # Whole transactions only: 50 first, then batches of 20, every leaf its entry's hash.
        assert [r[0] for r in rows] == list(range(len(rows))) and (len(rows) - 50) % 20 == 0
        assert all(bytes(h) == leaf_hash(bytes(e)) for _, e, h in rows)


def test_read_only_opening_reads_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = Store(path)
    _fill(store, 5)
    root = store.log_root()
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=DELETE")
    before = path.read_bytes()
    opened = Store(path, read_only=True)
    try:
        assert opened.log_size == 5 and opened.log_root() == root
        assert opened.integrity_problems() == []
        with pytest.raises(sqlite3.OperationalError), opened.transaction() as tx:
            tx.append_log(b"more")
    finally:
        opened.close()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [STORE_FILE]  # no -wal, no -shm


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"not a database at all, just text" * 10, "cannot read store"),
        ("other", "is not an EWX store"),
    ],
)
def test_read_only_opening_refuses_what_is_not_a_store(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "given.sqlite3"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "other":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE log (idx INTEGER)")
    with pytest.raises(StoreError, match=message):
        Store(path, read_only=True)


def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    Store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()  # the last connection folds the WAL in: a read-only opening reads the file alone
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path, read_only=True)


def test_make_self_contained_folds_the_wal_in(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = Store(path)
    _fill(store, 8)
    keeper = sqlite3.connect(path)  # a second connection keeps the WAL from being folded at close
    keeper.execute("SELECT 1 FROM log").fetchall()
    store.close()
    keeper.close()
    assert make_self_contained(path)
    assert not Path(f"{path}-wal").exists()
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / STORE_FILE).write_bytes(path.read_bytes())  # the main file by itself is the whole store
    assert Store(alone / STORE_FILE, read_only=True).log_size == 8
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"\x00" * 4096)
    assert make_self_contained(damaged) is False
