"""The store's guarantees on both of its databases (issue 16, item 1): SQLite and a real
PostgreSQL server (tests/support/postgres.py), whatever EWX_TEST_STORE says.

The same writes go to both, and every read the service makes must answer the same
on both (a differential test: a statement one database takes differently from the
other shows up as a difference, not as a passing test on one of them). Then what
only one transaction can promise (all or nothing, the log's root), the lease, the
schema versions and a lost server.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.config import NodeConfig
from node.crypto import MerkleLevels, leaf_hash
from node.errors import ConfigError, StoreError, StoreInUse, StoreUnavailable
from node.ids import Digest
from node.store import AlertFilter, ListingKeys, Store, read_password
from node.store._database import postgres_sql
from node.store._schema import SCHEMA_VERSION
from tests.support import postgres

STORES = ("sqlite", "postgresql")

US, JP, KR = "US", "JP", "KR"
T0 = 1_780_000_000_000_000
"""A time in microseconds since the epoch (2026), beyond 32 bits as every sent_us is."""


def _open(kind: str, tmp_path: Path) -> Store:
    if kind == "sqlite":
        return Store(tmp_path / f"ewx-{len(list(tmp_path.iterdir()))}.sqlite3")
    return Store.postgresql(postgres.fresh_database("both"))


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = _open(request.param, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def _digest(n: int) -> Digest:
    return Digest(bytes([n % 256]) * 32)


def _write_a_history(store: Store) -> None:
    """Every kind of write the service makes, in a few transactions."""
    with store.transaction() as tx:
        tx.set_genesis("2026-12-01T00:00:00Z")
        for n in range(1, 7):
            origin = KR if n % 2 else US
            index = tx.append_log(b"alert-%d" % n)
            reference = (KR, "KR-1") if n in (3, 5) else None
            tx.insert_alert(
                origin=origin,
                alert_id=f"{origin}-{n}",
                digest=_digest(n),
                envelope=b"envelope-%d" % n,
                msg_type={3: "UPDATE", 5: "CANCEL"}.get(n, "ALERT"),
                sent=f"2026-12-01T00:00:0{n}Z",
                log_index=index,
                positions=[(JP, n), (US if origin == KR else KR, n)],
                listing=ListingKeys(
                    sent_us=T0 + n, expires_us=T0 + 100 * n if n != 4 else None, reference=reference
                ),
                via=None if origin == KR else US,
                received_at=None if origin == KR else "2026-12-01T00:01:00Z",
                receipt=None if origin == KR else b"receipt-%d" % n,
            )
            if origin == KR:
                tx.queue(recipient=JP, seq=n, alert_id=f"KR-{n}", created_at="2026-12-01T00:00:00Z")
        tx.remember("key-1", "KR-1", "2026-12-01T00:00:00Z")
        assert tx.next_number("alerts") == 1
        assert tx.next_number("alerts") == 2
    with store.transaction() as tx:
        receipt_index = tx.append_log(b"receipt for KR-1")
        tx.mark_delivered(
            recipient=JP, seq=1, receipt=b"r1", log_index=receipt_index, at="2026-12-01T00:02:00Z"
        )
        tx.add_checkpoint(size=receipt_index + 1, root=b"\x01" * 32, note="note", at="2026-12-01T00:02:00Z")
        tx.set_checkpoint_note(receipt_index + 1, "note\n\u2014 US cosigned")
        tx.set_cosigned(US, receipt_index + 1, "2026-12-01T00:02:01Z")
        tx.set_cosigned(US, receipt_index + 1, "2026-12-01T00:02:02Z")  # an upsert
        tx.set_witness_state(log_node=US, origin="us.ewx", size=4, root=b"\x02" * 32, note="n", at="t1")
        tx.set_witness_state(log_node=US, origin="us.ewx", size=5, root=b"\x03" * 32, note="n2", at="t2")
        tx.add_trust_update(member=US, serial=1, envelope=b"trust", log_index=tx.append_log(b"trust"), at="t")
        tx.set_history_missing(US, "checkpoint", "size 9")
        tx.set_history_missing(US, "receipt", "seq 4")
        tx.set_old_log_size(JP, 12)
        tx.set_deadlines_watched("2026-12-01T00:03:00Z")
        tx.set_receipt(US, "US-2", b"later receipt")
        tx.replace_envelope(KR, "KR-1", b"re-signed envelope")
        tx.add_evidence(
            kind="equivocation",
            peer=US,
            origin=US,
            alert_id="US-2",
            detail="two alerts at seq 2",
            kept="first",
            conflicting=b"\x00\xffconflicting",
            at="t",
        )
    store.record_failure(recipient=JP, seq=3, error="unavailable " * 100)
    store.set_exposure(US, "US-2", '{"exposed": false}', "t1")
    store.set_exposure(US, "US-2", '{"exposed": true}', "t2")  # replaces the first
    store.add_evidence(
        kind="forged",
        peer=JP,
        origin=JP,
        alert_id=None,
        detail="bad signature",
        kept="none",
        conflicting=b"x",
        at="t",
    )


def _every_read(store: Store) -> dict[str, Any]:
    """What every read of the store answers (the service's whole read surface)."""
    reads: dict[str, Any] = {
        "log": list(store.log_entries()),
        "log_part": list(store.log_entries(2, 5)),
        "size_root": (store.log_size, store.log_root()),
        "proofs": [store.consistency_proof(a, store.log_size) for a in range(1, store.log_size)],
        "alert": store.alert(KR, "KR-1"),
        "absent": store.alert(KR, "KR-99"),
        "by_type": store.alerts_by_type(("ALERT", "UPDATE")),
        "last_seq": [store.last_seq(o, r) for o in (KR, US) for r in (JP, US, KR)],
        "backlog": store.backlog(JP),
        "old_log_size": (store.old_log_size(JP), store.old_log_size(US)),
        "unchecked": store.history_unchecked(),
        "watched": (store.deadlines_watched(), store.deadlines_watched_log_size()),
        "logged_from": store.alerts_logged_from(2),
        "genesis": store.genesis(),
        "rejoined": store.rejoined(),
        "missing": store.history_missing(),
        "newest_checkpoint": store.newest_checkpoint_signed_at(),
        "cosigned": (store.cosigned(), store.cosigned_at()),
        "witness_state": (store.witness_state(US), store.witness_state(JP)),
        "exposure": (store.exposure(US, "US-2"), store.exposures()),
        "evidence": store.evidence(),
        "evidence_page": store.evidence_page(1),
        "counts": [
            store.count(t) for t in ("log", "alerts", "positions", "outbox", "evidence", "checkpoints")
        ],
        "outbox_row": (store.outbox_row(JP, 1), store.outbox_row(JP, 3)),
        "followups": store.followups(KR, "KR-1"),
        "entries_naming": store.entries_naming(KR, "KR-1", receipts_for=((JP, 1),)),
        "open": store.open_alerts(now_us=T0 + 250, limit=2),
        "sent_between": store.alerts_sent_between(T0 + 1, T0 + 4),
        "trust": (store.trust_updates(), store.trust_updates(US, after_serial=1)),
        "alerts": store.alerts(),
        "envelopes_for": store.envelopes_for(origin=KR, recipient=JP, after_seq=1, limit=2),
        "outbox": (store.outbox(), store.outbox(US)),
        "pending": store.pending(KR, JP, 10, after_seq=1),
        "checkpoints": (store.checkpoints(), store.latest_checkpoint(), store.checkpoint_at(7)),
        "witnessed": (store.witnessed(), store.witnessed_at(US, 5)),
        "idempotent": (store.idempotent("key-1"), store.idempotent("key-2")),
        "peer_alerts": (
            store.peer_alerts(without_exposure=True),
            store.peer_alerts(without_exposure=False, after_index=0, limit=1),
            store.count_peer_alerts(),
        ),
        "integrity": store.integrity_problems(),
    }
    for state in (None, "active", "updated", "cancelled", "expired"):
        for origin in (None, KR):
            query = AlertFilter(limit=2, origin=origin, state=state)
            reads[f"page {state} {origin}"] = store.alert_page(query, now_us=T0 + 250)
    reads["page since"] = store.alert_page(AlertFilter(limit=10, since_us=T0 + 3), now_us=T0)
    reads["page id"] = store.alert_page(AlertFilter(limit=10, alert_id="US-2"), now_us=T0)
    reads["page after"] = store.alert_page(AlertFilter(limit=10, after=3), now_us=T0)
    with store.reader() as reader:
        reads["reader"] = (reader.alert(US, "US-2"), reader.count("log"), reader.evidence_page(5))
    return reads


def test_every_read_answers_the_same_on_both_databases_after_the_same_writes(tmp_path: Path) -> None:
    answers = {}
    for kind in STORES:
        store = _open(kind, tmp_path)
        try:
            _write_a_history(store)
            answers[kind] = _every_read(store)
        finally:
            store.close()
    sqlite, pg = answers["sqlite"], answers["postgresql"]
    assert sqlite["counts"] == [8, 6, 12, 3, 2, 1]  # the history was written, not skipped
    assert sqlite["exposure"][0] == '{"exposed": true}'
    assert sqlite["missing"] == {US: "size 9 and seq 4"}
    different = [name for name in sqlite if sqlite[name] != pg[name]]
    assert not different, {name: (sqlite[name], pg[name]) for name in different}


def test_a_reopened_store_answers_as_before(store: Store, tmp_path: Path) -> None:
    _write_a_history(store)
    before = _every_read(store)
    store.close()
    again = Store(Path(store.where)) if store.kind == "sqlite" else Store.postgresql(store.where)
    try:
        assert _every_read(again) == before
    finally:
        again.close()
    store._database = again._database  # the fixture closes it once more: harmless


# ------------------------------------------------------------------ one transaction
def test_a_transaction_that_fails_leaves_nothing_and_the_log_as_it_was(store: Store) -> None:
    with store.transaction() as tx:
        tx.append_log(b"kept")
    root = store.log_root()
    with pytest.raises(RuntimeError, match="half-way"), store.transaction() as tx:
        tx.append_log(b"lost 1")
        tx.append_log(b"lost 2")
        tx.queue(recipient=JP, seq=1, alert_id="KR-1", created_at="t")
        raise RuntimeError("half-way")
    assert (store.log_size, store.log_root()) == (1, root)
    assert store.count("log") == 1 and store.outbox() == []
    # a constraint (the key is taken), as the driver says it
    with pytest.raises(store._conn.errors), store.transaction() as tx:
        tx.append_log(b"also lost")
        tx.remember("k", "a", "t")
        tx.remember("k", "b", "t")
    assert (store.log_size, store.idempotent("k")) == (1, None)
    with store.transaction() as tx:
        assert tx.append_log(b"next") == 1  # the index after the kept entry, not after the lost ones


def test_a_group_commits_its_parts_once_and_a_failed_part_leaves_nothing(store: Store) -> None:
    told: list[str] = []
    with store.group():
        with store.transaction() as tx:
            tx.append_log(b"first")
            tx.after_commit(lambda: told.append("first"))
        with pytest.raises(RuntimeError, match="refused"), store.transaction() as tx:
            tx.append_log(b"undone")
            tx.queue(recipient=JP, seq=1, alert_id="KR-1", created_at="t")
            assert tx.next_number("alerts") == 1
            tx.after_commit(lambda: told.append("undone"))
            raise RuntimeError("refused")
        with store.transaction() as tx:
            assert tx.append_log(b"second") == 1  # the undone part's index is free again
            assert tx.next_number("alerts") == 1  # and so is its number
            tx.after_commit(lambda: told.append("second"))
        assert told == []  # nothing is told before the one commit
    assert told == ["first", "second"]
    assert list(store.log_entries()) == [(0, b"first"), (1, b"second")]
    levels = MerkleLevels()
    for entry in (b"first", b"second"):
        levels.append(leaf_hash(entry))
    assert store.log_root() == levels.root() and store.outbox() == []
    with pytest.raises(RuntimeError, match="whole"), store.group():
        with store.transaction() as tx:
            tx.append_log(b"in a group that fails")
        raise RuntimeError("the whole group")
    assert (store.log_size, store.log_root()) == (2, levels.root())
    assert told == ["first", "second"]


class _Dropped(Exception):
    pass


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.tuples(st.lists(st.binary(max_size=40), min_size=1, max_size=9), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    kind=st.sampled_from(STORES),
)
def test_the_root_is_the_rfc_6962_root_of_the_committed_entries_only(
    tmp_path: Path, batches: list[tuple[list[bytes], bool]], kind: str
) -> None:
    store = _open(kind, tmp_path)
    committed = MerkleLevels()
    try:
        for entries, commits in batches:
            try:
                with store.transaction() as tx:
                    for entry in entries:
                        tx.append_log(entry)
                    if not commits:
                        raise _Dropped
            except _Dropped:
                pass
            else:
                for entry in entries:
                    committed.append(leaf_hash(entry))
            assert store.log_size == committed.size
            assert store.log_root() == committed.root()
    finally:
        store.close()
    reopened = Store(Path(store.where)) if kind == "sqlite" else Store.postgresql(store.where)
    try:
        assert (reopened.log_size, reopened.log_root()) == (committed.size, committed.root())
        for old in range(1, committed.size):
            assert reopened.consistency_proof(old, committed.size) == committed.consistency_proof(
                old, committed.size
            )
    finally:
        reopened.close()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE log SET entry = ? WHERE idx = 0", "DELETE FROM log WHERE idx = 0", "DELETE FROM log"],
)
def test_no_statement_changes_or_removes_a_log_entry(store: Store, statement: str) -> None:
    with store.transaction() as tx:
        tx.append_log(b"entry")
    args = (b"forged",) if "?" in statement else ()
    with pytest.raises(store._conn.errors, match="the exchange log is append-only"):
        store._conn.execute(statement, args)
    store._conn.rollback()
    assert list(store.log_entries()) == [(0, b"entry")]
    with store.transaction() as tx:
        assert tx.append_log(b"next") == 1  # appending is what stays allowed


# ------------------------------------------------------------------ schema versions
def test_a_store_of_a_newer_schema_is_refused_naming_both_versions(store: Store) -> None:
    with store.transaction() as tx:
        tx.append_log(b"entry")
    store._conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    where = store.where
    kind = store.kind
    store.close()
    with pytest.raises(StoreError, match=rf"schema version 99, newer than this build's {SCHEMA_VERSION}"):
        Store(Path(where)) if kind == "sqlite" else Store.postgresql(where)
    # the fixture's close of the closed store must not fail the test
    store._database = _Closed()


class _Closed:
    def close(self) -> None:
        pass


# ------------------------------------------------------------------ PostgreSQL only
def test_the_lease_admits_one_writer_and_readers_beside_it(postgres_url: str) -> None:
    active = Store.postgresql(postgres_url)
    try:
        with active.transaction() as tx:
            tx.append_log(b"entry")
        with pytest.raises(StoreInUse, match="another ewx process holds its lease"):
            Store.postgresql(postgres_url)
        beside = Store.postgresql(postgres_url, lease=False)  # ewx export while the node runs
        try:
            assert (beside.log_size, beside.log_root()) == (1, active.log_root())
            assert not beside.writable
            with pytest.raises(StoreError, match="read-only"), beside.transaction() as tx:
                tx.append_log(b"a second writer")  # the server refuses it: only the lease holder writes
        finally:
            beside.close()
        assert active.log_size == 1 and active.count("log") == 1
    finally:
        active.close()
    taken_over = Store.postgresql(postgres_url)  # the lease went with the connection
    try:
        assert taken_over.log_size == 1
    finally:
        taken_over.close()


def test_a_store_commits_durably_even_where_the_server_says_otherwise(postgres_url: str) -> None:
    (server_default,) = postgres.server().execute("SHOW synchronous_commit").fetchone()
    assert server_default == "off"  # the test server's own setting (tests/support/postgres.py)
    store = Store.postgresql(postgres_url)
    try:
        (mode,) = store._conn.execute("SHOW synchronous_commit").fetchone()
        assert mode == "on"  # a receipt follows a commit that is on disk
    finally:
        store.close()


def _commit_mode(store: Store) -> str:
    """How the store's next commit waits for the disk: SQLite's synchronous, PostgreSQL's
    synchronous_commit, read inside a transaction (where SET LOCAL would show)."""
    if store._conn.kind == "sqlite":
        (level,) = store._conn.execute("PRAGMA synchronous").fetchone()
        return {2: "durable", 1: "relaxed"}.get(level, f"synchronous={level}")
    store._conn.begin_read()
    try:
        (mode,) = store._conn.execute("SHOW synchronous_commit").fetchone()
    finally:
        store._conn.rollback()
    return "durable" if mode == "on" else f"synchronous_commit={mode}"


def test_exposures_are_kept_without_waiting_for_the_disk_and_everything_else_still_waits(
    store: Store,
) -> None:
    seen: list[str] = []
    original = store._conn.commit

    def commit() -> None:  # what the COMMIT of each transaction waited for
        if store._conn.kind == "sqlite":
            (level,) = store._conn.execute("PRAGMA synchronous").fetchone()
            seen.append("relaxed" if level == 1 else "durable")
        else:
            (mode,) = store._conn.execute("SHOW synchronous_commit").fetchone()
            seen.append("relaxed" if mode == "off" else "durable")
        original()

    store._conn.commit = commit  # type: ignore[method-assign]
    store.set_exposures([(US, "US-1", '{"a": 1}'), (JP, "JP-1", '{"b": 2}')], "t1")
    with store.transaction() as tx:
        tx.set_old_log_size(JP, 12)
    assert seen == ["relaxed", "durable"]
    assert _commit_mode(store) == "durable"
    assert store.exposures() == {(US, "US-1"): '{"a": 1}', (JP, "JP-1"): '{"b": 2}'}

    # A refused one leaves nothing, and the connection durable again.
    with pytest.raises(store._conn.errors):
        store.set_exposures([(US, "US-2", "{}"), (US, "US-3", None)], "t2")  # type: ignore[list-item]
    assert _commit_mode(store) == "durable"
    assert set(store.exposures()) == {(US, "US-1"), (JP, "JP-1")}

    # Inside a group it is one part of the group's durable commit.
    seen.clear()
    with store.group():
        store.set_exposures([(US, "US-4", "{}")], "t3")
        with store.transaction() as tx:
            tx.set_old_log_size(JP, 13)
    assert seen == ["durable"]
    assert (US, "US-4") in store.exposures()


def test_a_store_whose_server_dropped_it_has_lost_its_lease_and_writes_nothing(postgres_url: str) -> None:
    active = Store.postgresql(postgres_url)
    try:
        with active.transaction() as tx:
            tx.append_log(b"entry")
        assert active.alive()
        (pid,) = active._conn.execute("SELECT pg_backend_pid()").fetchone()
        postgres.server().execute(f"SELECT pg_terminate_backend({int(pid)})")  # as a dead host's would end
        assert not active.alive()
        lost = pytest.raises(StoreUnavailable, match="no longer holds the store's lease")
        with lost, active.transaction() as tx:
            tx.append_log(b"after the loss")
        standby = Store.postgresql(postgres_url)  # the lease is free: the standby takes it
        try:
            assert standby.log_size == 1
        finally:
            standby.close()
    finally:
        active.close()


def test_every_statement_of_the_store_reads_as_postgresql_sql() -> None:
    assert postgres_sql("SELECT a FROM t INDEXED BY t_by_a WHERE a = ? AND b IN (?, ?)") == (
        "SELECT a FROM t WHERE a = %s AND b IN (%s, %s)"
    )
    with pytest.raises(ValueError, match="may not contain '%'"):
        postgres_sql("SELECT * FROM t WHERE a LIKE 'x%'")


# ------------------------------------------------------------------ the [store] table
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://ewx:secret@db.example/kr", "holds a password"),
        ("postgresql://ewx@db.example/kr?password=secret", "holds a password"),
        ("mysql://ewx@db.example/kr", "not a postgresql:// URL"),
        ("/var/lib/ewx/kr.sqlite3", "not a postgresql:// URL"),
    ],
)
def test_a_store_url_that_is_not_postgresql_or_holds_a_password_is_refused_without_echoing_it(
    federation: dict[str, Path], url: str, problem: str
) -> None:
    path = federation["KR"]
    document = tomllib.loads(path.read_text())
    path.write_text(tomli_w.dumps({**document, "store": {"url": url}}))
    with pytest.raises(ConfigError, match=problem) as in_file:
        NodeConfig.load(path)
    path.write_text(tomli_w.dumps(document))
    with pytest.raises(ConfigError, match=problem) as from_environment:
        NodeConfig.load(path, environ={"EWX_STORE__URL": url})
    for caught in (in_file, from_environment):
        assert "secret" not in str(caught.value)
    assert "store" in str(in_file.value)


def test_the_password_comes_from_its_file_else_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "store-password"
    secret.write_text("s3cret\n")
    assert read_password(secret, {"EWX_STORE_PASSWORD": "other"}) == "s3cret"
    assert read_password(None, {"EWX_STORE_PASSWORD": "other"}) == "other"
    assert read_password(None, {}) is None
    with pytest.raises(ConfigError, match="store password_file"):
        read_password(tmp_path / "absent", {})


def test_backup_and_restore_refuse_a_store_on_postgresql_naming_the_tools_to_use(
    federation: dict[str, Path], postgres_url: str, tmp_path: Path
) -> None:
    from node.errors import RefusedOperation
    from node.service import backup_store, restore_store

    config = NodeConfig.load(federation["KR"], environ={"EWX_STORE__URL": postgres_url})
    for attempt in (
        lambda: backup_store(config, tmp_path / "kr.bak"),
        lambda: restore_store(config, tmp_path / "x"),
    ):
        with pytest.raises(RefusedOperation, match=r"on PostgreSQL .*pg_dump.*ewx store migrate"):
            attempt()
    assert not (tmp_path / "kr.bak").exists()
