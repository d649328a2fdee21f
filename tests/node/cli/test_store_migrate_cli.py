"""`ewx store migrate` on a real federation's store (issue 16, item 4).

KR, US and JP exchange alerts (receipts, checkpoints, cosignatures, witnessing:
a real store); KR, stopped, moves its SQLite store to PostgreSQL; the copy
equals the file, KR starts on it and goes on serving the federation, and its
log, exported from PostgreSQL, audits clean. Refusals: a store whose log was
changed (nothing written), the wrong node's trust, a destination not empty,
a running node, a password in the URL, bad flags.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import tomli_w

from node.config import NodeConfig
from node.crypto import leaf_hash
from node.files import DataDirLock
from node.ids import Country
from node.pki import init_federation
from node.store import COPIED_TABLES, STORE_FILE, Store
from tests.node.cli.test_cli import ewx


@pytest.fixture(scope="module")
def exchanged() -> Iterator[Path]:
    """A federation (always on SQLite) after KR and US published and every node delivered,
    checkpointed and cosigned; stopped. Short paths: in-process nodes make unix sockets in it."""
    from gateway.local_nodes import assign_free_ports
    from tests.support.factories import alert_info, running, wait_for
    from tests.support.ports import next_port

    root = Path(tempfile.mkdtemp(prefix="ewx-mig-"))
    init_federation(root / "fed")
    paths = assign_free_ports(root / "fed", port_source=next_port, outbox_retry_max_seconds=0.5)

    async def scenario() -> None:
        async with running(*paths.values()) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service

            def settled(sent: int) -> bool:
                outbox, newest, cosigned = (
                    kr.store.outbox(),
                    kr.store.latest_checkpoint(),
                    kr.store.cosigned(),
                )
                return (
                    len(outbox) == 2 * sent
                    and all(row.delivered_at for row in outbox)
                    and any(a.origin == "US" for a in kr.store.alerts())
                    and newest is not None
                    and newest[0] == kr.store.log_size
                    and all(cosigned.get(peer) == newest[0] for peer in ("US", "JP"))
                    and all(kr.store.witness_state(peer) is not None for peer in ("US", "JP"))
                )

            # Two rounds, each to a checkpoint cosigned by both peers: several checkpoints.
            for n in range(2):
                kr.publish(msg_type="ALERT", status="TEST", info=alert_info(), idempotency_key=f"kr-{n}")
            us.publish(msg_type="ALERT", status="TEST", info=alert_info())
            await wait_for(lambda: settled(2), timeout=60)
            kr.publish(msg_type="ALERT", status="TEST", info=alert_info(), idempotency_key="kr-2")
            await wait_for(lambda: settled(3), timeout=60)

    asyncio.run(scenario())
    yield root / "fed"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fed(exchanged: Path) -> Iterator[dict[Country, Path]]:
    """This test's own copy of the federation (config paths are relative: the copy stands alone)."""
    root = Path(tempfile.mkdtemp(prefix="ewx-mig-"))
    shutil.copytree(exchanged, root / "fed")
    yield {cc: root / "fed" / cc / "node.toml" for cc in ("KR", "US", "JP")}
    shutil.rmtree(root, ignore_errors=True)


def _kr_file(fed: dict[Country, Path]) -> Path:
    return NodeConfig.load(fed["KR"]).data_dir / STORE_FILE


def _rows_in(url: str) -> dict[str, int]:
    """Rows per EWX table of the database at `url`, the schema version's row aside."""
    with psycopg.connect(url) as connection:
        tables = {
            r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        counts = {}
        for table in COPIED_TABLES:
            if table.name in tables:
                row = connection.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()
                assert row is not None
                counts[table.name] = int(row[0]) - (1 if table.name == "meta" else 0)
    return {name: count for name, count in counts.items() if count}


def _migrate(config: Path, *flags: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return ewx("store", "migrate", "--config", str(config), *flags, check=False, env=env)


def _snapshot(store: Store) -> dict[str, object]:
    return {
        "size": store.log_size,
        "root": store.log_root(),
        "entries": list(store.log_entries()),
        "alerts": store.alerts(),
        "outbox": store.outbox(),
        "checkpoints": store.checkpoints(),
        "witnessed": store.witnessed(),
        "cosigned": store.cosigned_at(),
        "evidence": store.evidence(),
        "trust_updates": store.trust_updates(),
        "idempotent": store.idempotent("kr-1"),
        "genesis": store.genesis(),
    }


def test_kr_moves_to_postgresql_and_serves_the_federation_from_it(
    fed: dict[Country, Path], postgres_url: str
) -> None:
    from tests.support.factories import alert_info, running, wait_for

    source = _kr_file(fed)
    done = _migrate(fed["KR"], "--from", f"sqlite:{source}", "--to", postgres_url, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    original = Store(source)
    try:
        before = _snapshot(original)
        checkpoints = len(original.checkpoints())
    finally:
        original.close()
    assert result["verified"] is True and result["signatures_verified"] is True
    assert result["checkpoints_verified"] == checkpoints >= 2
    assert result["log"] == {"size": before["size"], "root": before["root"].hex()}  # type: ignore[union-attr]
    assert result["rows"]["alerts"] >= 4 and result["rows"]["witnessed"] >= 1

    moved = Store.postgresql(postgres_url)
    try:
        assert _snapshot(moved) == before
    finally:
        moved.close()

    # KR runs on the PostgreSQL store from now on; the file is put out of its way.
    data = tomllib.loads(fed["KR"].read_text())
    data["store"] = {"url": postgres_url}
    fed["KR"].write_text(tomli_w.dumps(data))
    source.rename(source.with_name("before-migration.sqlite3"))

    async def scenario() -> None:
        async with running(*fed.values()) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            assert kr.store.kind == "postgresql" and kr.store.log_size == before["size"]
            published = kr.publish(msg_type="ALERT", status="TEST", info=alert_info())
            await wait_for(lambda: us.store.alert("KR", published.alert.alert_id) is not None, timeout=30)
            await wait_for(lambda: all(row.delivered_at for row in kr.store.outbox()), timeout=30)
            assert kr.store.log_size > before["size"]  # type: ignore[operator]
            # The operator's listing, served from the PostgreSQL store: old alerts and the new one.
            listing = await asyncio.to_thread(ewx, "alert", "list", "--config", str(fed["KR"]), "--json")
            listed = {a["alert_id"] for a in json.loads(listing.stdout)["alerts"]}
            assert {a.alert_id for a in before["alerts"]} | {published.alert.alert_id} <= listed  # type: ignore[attr-defined]

    asyncio.run(scenario())
    out = fed["KR"].parent / "KR.ewxlog"
    ewx("log", "export", "--config", str(fed["KR"]), "--out", str(out))
    verdict = ewx("audit", "verify", str(out), "--trust", str(fed["KR"].parent.parent / "federation.json"))
    assert "VERDICT: clean" in verdict.stdout


def _tamper(path: Path, index: int) -> None:
    """Change one entry of the log, and its leaf hash (the append-only triggers dropped first:
    whoever holds the file can), so that only the checkpoints can tell."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        triggers = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'log'")
        for (name,) in triggers.fetchall():
            db.execute(f"DROP TRIGGER {name}")
        changed = b"an entry that was never logged"
        db.execute(
            "UPDATE log SET entry = ?, leaf_hash = ? WHERE idx = ?", (changed, leaf_hash(changed), index)
        )
    finally:
        db.close()


def test_a_changed_log_is_refused_and_nothing_is_written(fed: dict[Country, Path], postgres_url: str) -> None:
    source = _kr_file(fed)
    _tamper(source, 1)
    refused = _migrate(fed["KR"], "--from", f"sqlite:{source}", "--to", postgres_url)
    assert refused.returncode == 1, refused.stderr
    assert (
        "ewx: refused: the copy of" in refused.stderr
        and "does not verify, so nothing was written" in refused.stderr
    )
    assert (
        "the copied log's root at size" in refused.stderr and "but the store's checkpoint" in refused.stderr
    )
    assert refused.stdout == ""
    assert _rows_in(postgres_url) == {}


def test_refusals(fed: dict[Country, Path], postgres_url: str, tmp_path: Path) -> None:
    source = f"sqlite:{_kr_file(fed)}"

    # Another node's trust: KR's checkpoints are not JP's.
    wrong = _migrate(fed["JP"], "--from", source, "--to", postgres_url)
    assert wrong.returncode == 1 and "is not signed by a log key of JP" in wrong.stderr, wrong.stderr
    assert _rows_in(postgres_url) == {}

    # KR's node running on its data directory (it holds the lock).
    lock = DataDirLock.acquire(_kr_file(fed).parent)
    try:
        running = _migrate(fed["KR"], "--from", source, "--to", postgres_url)
    finally:
        lock.release()
    assert running.returncode == 1 and "stop the node first" in running.stderr, running.stderr

    # A destination that is not empty.
    assert _migrate(fed["KR"], "--from", source, "--to", postgres_url).returncode == 0
    again = _migrate(fed["KR"], "--from", source, "--to", postgres_url)
    assert (
        again.returncode == 1 and "is not empty: it holds" in again.stderr and "rows in log" in again.stderr
    )

    # A password in the URL: refused, and never echoed.
    with_password = postgres_url.replace("postgres@", "postgres:hunter2@", 1)
    assert with_password != postgres_url
    leaked = _migrate(fed["KR"], "--from", source, "--to", with_password)
    assert leaked.returncode == 2 and "holds a password" in leaked.stderr, leaked.stderr
    assert "hunter2" not in leaked.stderr + leaked.stdout

    # Bad flags and inputs: exit 2, nothing done.
    target = tmp_path / "new.sqlite3"
    for flags, said in (
        (("--from", source), "the following arguments are required: --to"),
        (("--from", "ftp://host/store", "--to", f"sqlite:{target}"), "give sqlite:PATH or postgresql://"),
        (("--from", f"sqlite:{tmp_path / 'missing'}", "--to", f"sqlite:{target}"), "no such file"),
        (("--from", source, "--to", source), "name the same store"),
        (
            ("--from", source, "--to", f"sqlite:{target}", "--password-file", str(tmp_path / "none")),
            "password_file",
        ),
    ):
        bad = _migrate(fed["KR"], *flags)
        assert bad.returncode == 2 and said in bad.stderr, (flags, bad.stderr)
    assert not target.exists()

    # Back the other way, into a new SQLite file: the same store again.
    back = _migrate(fed["KR"], "--from", postgres_url, "--to", f"sqlite:{target}")
    assert back.returncode == 0, back.stderr
    assert "verifies against all" in back.stdout and "signatures included" in back.stdout
    first, second = Store(_kr_file(fed)), Store(target)
    try:
        assert _snapshot(second) == _snapshot(first)
    finally:
        first.close()
        second.close()
