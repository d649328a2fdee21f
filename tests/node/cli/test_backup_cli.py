"""`ewx backup` and `ewx restore` against real `ewx serve` processes (issue 14, item 6).

A backup taken while the node publishes is one consistent, verifying state;
a restore refuses while the node runs and refuses a backup whose log does not
verify, keeps the store it replaces, and the node starts on the restored one.
Killing the node, or the backup itself, mid-backup never leaves a half file.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.local_nodes import NodeProcess, assign_free_ports
from node.config import NodeConfig
from node.crypto import leaf_hash
from node.errors import EwxError
from node.store import STORE_FILE
from tests.node.cli.test_cli import ewx, wait_until
from tests.support.factories import alert_info
from tests.support.ports import next_port

pytestmark = pytest.mark.slow


class Burst:
    """Publishes on one node from a thread, as fast as its operator API takes them, until stopped."""

    def __init__(self, node: NodeProcess, *, most: int = 2000) -> None:
        self.node, self.most = node, most
        self.published: list[str] = []
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = self.node.client
        while not self._stop.is_set() and len(self.published) < self.most:
            try:
                reply = client.call("publish", msg_type="ALERT", status="TEST", info=alert_info())
            except EwxError as exc:  # the node was killed under it (the SIGKILL test)
                self.errors.append(exc)
                return
            self.published.append(reply["alert_id"])

    def __enter__(self) -> Burst:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        wait_until(lambda: len(self.published) >= count or self.errors, timeout=timeout)
        assert not self.errors, self.errors


def _log_size(store: Path) -> int:
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM log").fetchone()[0])
    finally:
        connection.close()


def _status(config: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(ewx("status", "--config", str(config), "--json").stdout)


@pytest.fixture
def fed(tmp_path: Path) -> dict[str, Path]:
    ewx("pki", "init", "--out", str(tmp_path / "fed"))
    return dict(assign_free_ports(tmp_path / "fed", port_source=next_port, outbox_retry_max_seconds=0.5))


@pytest.fixture
def three(fed: dict[str, Path]) -> Iterator[dict[str, NodeProcess]]:
    nodes = {cc: NodeProcess.start(cc, path) for cc, path in fed.items()}
    try:
        for node in nodes.values():
            node.wait_ready()
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()


def test_backup_under_publishes_then_restore_into_the_stopped_node(
    three: dict[str, NodeProcess], fed: dict[str, Path], tmp_path: Path
) -> None:
    kr = three["KR"]
    config = fed["KR"]
    data_dir = NodeConfig.load(config).data_dir
    backup = tmp_path / "kr.backup"
    with Burst(kr) as burst:
        burst.wait_for(30)
        taken = ewx("backup", "--config", str(config), "--out", str(backup), "--json")
        during = len(burst.published)
        burst.wait_for(during + 30)  # the node went on publishing while and after it copied
    made = json.loads(taken.stdout)
    assert made["verified"] is True and made["node"] == "KR"
    assert made["entries"] == _log_size(backup) > 0
    assert backup.stat().st_mode & 0o777 == 0o600  # every alert the node keeps is in it
    assert not list(tmp_path.glob(".kr.backup.*")), "no partial file left beside the backup"

    # While the node runs: the check runs, the restore itself is refused and changes nothing.
    dry = ewx("restore", "--config", str(config), "--from", str(backup))
    assert "verifies" in dry.stdout and "the node is running" in dry.stdout and "--yes" in dry.stdout
    refused = ewx("restore", "--config", str(config), "--from", str(backup), "--yes", check=False)
    assert refused.returncode == 1 and "in use by another node" in refused.stderr
    assert "stop it" in refused.stderr
    assert not list(data_dir.glob("store-before-restore-*"))

    wait_until(lambda: _status(config)["peers"]["US"]["backlog"] == 0, timeout=60)
    kr.stop()
    newer = _log_size(data_dir / STORE_FILE)
    assert newer > made["entries"]

    restored = ewx("restore", "--config", str(config), "--from", str(backup), "--yes", "--json")
    result = json.loads(restored.stdout)
    assert result["restored"] is True and result["entries"] == made["entries"]
    assert _log_size(data_dir / STORE_FILE) == made["entries"]
    previous = Path(result["previous"])
    assert previous.parent == data_dir and previous.name.startswith("store-before-restore-")
    assert _log_size(previous / STORE_FILE) == newer  # the replaced store, kept whole
    assert not list(data_dir.glob(f"{STORE_FILE}-wal")) and not list(data_dir.glob(".*.part"))

    # The node starts on the restored store and its log verifies.
    again = NodeProcess.start("KR", config)
    three["KR"] = again
    again.wait_ready()
    status = _status(config)
    assert status["log"]["size"] >= made["entries"]
    # Its peers hold alerts it published after the backup: it must not publish under their ids.
    wait_until(lambda: _status(config).get("history_missing"), timeout=30)
    out = tmp_path / "KR.ewxlog"
    ewx("log", "export", "--config", str(config), "--out", str(out))
    verdict = ewx("audit", "verify", str(out), "--trust", str(fed["KR"].parent.parent / "federation.json"))
    assert "VERDICT: clean" in verdict.stdout


def _tamper(backup: Path, copy: Path, *, index: int, fix_leaf_hash: bool) -> Path:
    shutil.copyfile(backup, copy)
    connection = sqlite3.connect(copy)
    try:
        # A forger with the file drops what keeps the log append-only; the checks must still see it.
        connection.execute("DROP TRIGGER log_append_only_update")
        (entry,) = connection.execute("SELECT entry FROM log WHERE idx = ?", (index,)).fetchone()
        changed = bytearray(entry)
        changed[-3] ^= 0x01
        if fix_leaf_hash:  # a careful forger keeps the stored Merkle leaves in step
            connection.execute(
                "UPDATE log SET entry = ?, leaf_hash = ? WHERE idx = ?",
                (bytes(changed), leaf_hash(bytes(changed)), index),
            )
        else:
            connection.execute("UPDATE log SET entry = ? WHERE idx = ?", (bytes(changed), index))
        connection.commit()
    finally:
        connection.close()
    return copy


def test_a_tampered_or_foreign_backup_is_refused_and_the_store_is_left_alone(
    fed: dict[str, Path], tmp_path: Path
) -> None:
    config = fed["KR"]
    kr = NodeProcess.start("KR", config)  # alone: a new federation's first start (GENESIS) may publish
    try:
        kr.wait_ready()
        for _ in range(12):
            kr.client.call("publish", msg_type="ALERT", status="TEST", info=alert_info())
        backup = tmp_path / "kr.backup"
        time.sleep(1.5)  # a checkpoint covers them (checkpoint_interval_seconds 1)
        ewx("backup", "--config", str(config), "--out", str(backup))
    finally:
        kr.stop()
    data_dir = NodeConfig.load(config).data_dir
    before = (data_dir / STORE_FILE).read_bytes()

    flipped = _tamper(backup, tmp_path / "flipped.backup", index=3, fix_leaf_hash=False)
    forged = _tamper(backup, tmp_path / "forged.backup", index=3, fix_leaf_hash=True)
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()

    for bad, code, words in (
        (flipped, 1, ("does not verify against its own checkpoints", "root_mismatch", "not_append_only")),
        (
            forged,
            1,
            ("does not verify against its own checkpoints", "not_append_only", "bad_alert_signature"),
        ),
        (truncated, None, ("truncated.backup",)),
        (other, 2, ("is not an EWX store",)),
    ):
        for flags in ((), ("--yes",)):
            result = ewx("restore", "--config", str(config), "--from", str(bad), *flags, check=False)
            assert result.returncode == (code or result.returncode) and result.returncode in (1, 2), result
            assert all(word in result.stderr for word in words), result.stderr
            assert str(data_dir) not in result.stderr  # names the backup given, not the copy checked
    assert (data_dir / STORE_FILE).read_bytes() == before
    assert not list(data_dir.glob("store-before-restore-*")) and not list(data_dir.glob(".*.part"))

    # A backup of another node's store is not this node's log.
    us_data = NodeConfig.load(fed["US"]).data_dir
    foreign = tmp_path / "as-us.backup"
    shutil.copyfile(backup, foreign)
    us_data.mkdir(exist_ok=True)
    result = ewx("restore", "--config", str(fed["US"]), "--from", str(foreign), check=False)
    assert result.returncode == 1 and "does not verify" in result.stderr


def _partial_files(folder: Path, name: str) -> list[Path]:
    return list(folder.glob(f".{name}.*"))


def _once_the_backup_is_under_way(
    process: subprocess.Popen[str] | subprocess.Popen[bytes], backup: Path
) -> None:
    """Return as soon as the backup's partial file exists (it is copying or checking); fail if it ended first."""
    deadline = time.monotonic() + 30
    while not _partial_files(backup.parent, backup.name):
        assert process.poll() is None, "the backup ended before it could be cut into"
        assert time.monotonic() < deadline, "the backup did not start"
        time.sleep(0.002)


def test_killing_the_node_mid_backup_leaves_a_verifying_backup_or_none(
    fed: dict[str, Path], tmp_path: Path
) -> None:
    config = fed["KR"]
    kr = NodeProcess.start("KR", config)
    backup = tmp_path / "kr.backup"
    try:
        kr.wait_ready()
        with Burst(kr, most=5000) as burst:
            burst.wait_for(400)  # a store whose backup takes long enough to be cut into
            running = subprocess.Popen(
                [sys.executable, "-m", "gateway", "backup", "--config", str(config), "--out", str(backup)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            _once_the_backup_is_under_way(running, backup)
            kr.process.send_signal(signal.SIGKILL)  # the node dies while the backup copies or checks
            kr.process.wait()
            out, err = running.communicate(timeout=120)
    finally:
        kr.stop()
    assert not _partial_files(tmp_path, backup.name), "a backup that ran to its end leaves no partial file"
    if running.returncode == 0:
        assert "verified" in out
        check = ewx("restore", "--config", str(config), "--from", str(backup))
        assert "verifies" in check.stdout
    else:
        assert not backup.exists(), (running.returncode, err)


def test_killing_the_backup_itself_leaves_nothing_at_its_path(fed: dict[str, Path], tmp_path: Path) -> None:
    config = fed["KR"]
    kr = NodeProcess.start("KR", config)
    backup = tmp_path / "kr.backup"
    try:
        kr.wait_ready()
        with Burst(kr, most=600) as burst:
            burst.wait_for(600)
        killed = subprocess.Popen(
            [sys.executable, "-m", "gateway", "backup", "--config", str(config), "--out", str(backup)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _once_the_backup_is_under_way(killed, backup)
        killed.send_signal(signal.SIGKILL)
        assert killed.wait() == -signal.SIGKILL
        assert not backup.exists(), "a backup killed before its end must leave nothing at its path"
        # The next backup is not disturbed by what the killed one left behind.
        ewx("backup", "--config", str(config), "--out", str(backup), "--force")
        assert "verifies" in ewx("restore", "--config", str(config), "--from", str(backup)).stdout
    finally:
        kr.stop()
