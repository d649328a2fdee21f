"""The log's Merkle levels live in the store, not in memory (issue 15, item 4).

The store keeps the roots of completed subtrees in its `merkle` table, written
in the transaction that completes each, and holds only the log's frontier:
its roots and proofs must equal those computed from the leaves alone, across
commits, rollbacks, reopening, and stores written before the table existed.
"""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.crypto import (
    CompactRange,
    MerkleLevels,
    consistency_proof,
    leaf_hash,
    root_from_leaf_hashes,
)
from node.errors import StoreError
from node.store import Store


def _append(store: Store, entries: list[bytes]) -> None:
    with store.transaction() as tx:
        for entry in entries:
            tx.append_log(entry)


def _assert_matches_leaves(store: Store, leaves: list[bytes]) -> None:
    n = len(leaves)
    assert store.log_size == n
    assert store.log_root() == root_from_leaf_hashes(leaves)
    for old in sorted({0, 1, n // 3, n // 2, n - 1, n} - {-1}):
        if 0 <= old <= n:
            assert store.consistency_proof(old, n) == consistency_proof(old, leaves), (old, n)
    if n >= 2:
        assert store.consistency_proof(1, n - 1) == consistency_proof(1, leaves[: n - 1])


@pytest.mark.sqlite_only("opens a SQLite store file by path")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.tuples(st.integers(min_value=0, max_value=40), st.booleans()), min_size=1, max_size=8)
)
def test_roots_and_proofs_equal_those_of_the_leaves_across_commits_rollbacks_and_reopening(
    tmp_path: Path, batches: list[tuple[int, bool]]
) -> None:
    path = tmp_path / f"s{abs(hash(tuple(batches)))}.sqlite3"
    store = Store(path)
    leaves: list[bytes] = []
    try:
        for count, rolls_back in batches:
            entries = [f"entry {len(leaves)}-{i}".encode() for i in range(count)]
            if rolls_back:
                with pytest.raises(RuntimeError), store.transaction() as tx:
                    for entry in entries:
                        tx.append_log(entry)
                    raise RuntimeError("rolled back")
            else:
                _append(store, entries)
                leaves += [leaf_hash(e) for e in entries]
            _assert_matches_leaves(store, leaves)
    finally:
        store.close()
    reopened = Store(path)
    try:
        _assert_matches_leaves(reopened, leaves)
    finally:
        reopened.close()
    path.unlink()


def test_the_subtrees_a_leaf_completes_are_the_in_memory_levels_own() -> None:
    frontier, levels = CompactRange(), MerkleLevels()
    for i in range(300):
        hashed = leaf_hash(str(i).encode())
        completed = frontier.append(hashed)
        levels.append(hashed)
        assert completed == [(h, x, levels.subtree_root(h, x)) for h, x, _ in completed]
        assert [h for h, _, _ in completed] == list(range(1, len(completed) + 1))
        assert len(completed) == ((i + 1) & -(i + 1)).bit_length() - 1  # trailing zeros of the new size


@pytest.mark.sqlite_only("removes the merkle table from a SQLite store file with sqlite3")
def test_a_store_written_before_the_table_gets_it_filled_and_a_backup_of_one_reads_without_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    store = Store(path)
    entries = [f"e{i}".encode() for i in range(1000)]
    _append(store, entries)
    store.close()
    leaves = [leaf_hash(e) for e in entries]
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE merkle")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")  # as that build wrote it
    conn.close()

    backup = Store(path, read_only=True)  # reads the file as it is: no table, levels in memory
    try:
        _assert_matches_leaves(backup, leaves)
    finally:
        backup.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'merkle'").fetchone() is None
    conn.close()

    reopened = Store(path)
    try:
        _assert_matches_leaves(reopened, leaves)
        _append(reopened, [b"after"])
        _assert_matches_leaves(reopened, [*leaves, leaf_hash(b"after")])
    finally:
        reopened.close()
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM merkle").fetchone()
    conn.close()
    assert count == 1001 - (1001).bit_count()


@pytest.mark.sqlite_only("deletes a merkle row from a SQLite store file with sqlite3")
def test_a_missing_subtree_row_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "torn.sqlite3"
    store = Store(path)
    _append(store, [f"e{i}".encode() for i in range(8)])
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM merkle WHERE height = 2 AND idx = 1")
        conn.execute(
            "INSERT INTO merkle (height, idx, hash) VALUES (9, 9, ?)", (b"\0" * 32,)
        )  # count still right
    conn.close()
    torn = Store(path)
    try:
        with pytest.raises(StoreError, match=r"subtree \(2, 1\) is missing"):
            torn.consistency_proof(2, 8)
    finally:
        torn.close()


@pytest.mark.sqlite_only("opens a SQLite store file by path")
def test_the_store_holds_no_per_entry_state_in_memory(tmp_path: Path) -> None:
    store = Store(tmp_path / "big.sqlite3")
    try:
        _append(store, [b"warm-up"])
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for start in range(0, 20_000, 1000):
            _append(store, [f"entry {i}".encode() for i in range(start, start + 1000)])
        gc.collect()
        grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        # In-memory levels held 64 bytes per entry: 1.28 MB for these 20,000.
        assert grown < 200_000, grown
        assert store.log_size == 20_001
    finally:
        store.close()
