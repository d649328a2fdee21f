"""Issue 16, item 3: KR as an active/standby pair of `ewx serve` processes on one
PostgreSQL database, beside US and JP on their SQLite files.

Only the holder of the store's lease (the advisory lock of its connection) serves;
the other waits. kill -9 of the active in the middle of a burst: the standby
serves within 10 s, the peers catch up, every acknowledged alert is at every
recipient exactly once with gapless sequences, and every log verifies
(Cluster.check_nothing_lost).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import tomllib
from pathlib import Path

import tomli_w

from gateway.local_nodes import NodeProcess
from node.errors import EwxError
from tests.federation.cluster import FAST, Cluster, wait_until
from tests.support.factories import make_federation

TAKEOVER_LIMIT_SECONDS = 10.0
"""The issue's bound on how soon the standby serves after the active died."""


def _pair(config: Path, url: str) -> Path:
    """Put KR's store on `url` and write the standby's node.toml beside it: the same node,
    store and port, its own data folder (its lock, its operator socket)."""
    data = tomllib.loads(config.read_text())
    data["store"] = {"url": url, "lease_poll_seconds": 0.2}
    config.write_text(tomli_w.dumps(data))
    standby = dict(data, data_dir="data-standby")
    path = config.with_name("node-standby.toml")
    path.write_text(tomli_w.dumps(standby))
    return path


def _events(log: Path, event: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("event") == event:
                found.append(record)
    return found


def _standby_story(standby: NodeProcess, log: Path) -> str:
    """For a failure message: whether the standby still runs, and the log's last events."""
    code = standby.process.poll()
    tail = [
        f"{r.get('event')} {r.get('reason') or r.get('error') or ''}".strip()
        for line in log.read_text(errors="replace").splitlines()[-15:]
        for r in [_record(line)]
        if r is not None
    ]
    return f"standby {'running' if code is None else f'exited {code}'}; last events: {tail}"


def _record(line: str) -> dict[str, object] | None:
    with contextlib.suppress(ValueError):
        record = json.loads(line)
        if isinstance(record, dict):
            return record
    return None


def _serving(node: NodeProcess) -> bool:
    try:
        return bool(node.client.call("ping").get("serving"))
    except (EwxError, OSError):
        return False


def test_the_standby_takes_over_within_10_s_of_a_kill_9_mid_burst_and_nothing_is_lost(
    short_tmp: Path, postgres_url: str
) -> None:
    configs = make_federation(short_tmp / "fed", **FAST)
    standby_config = _pair(configs["KR"], postgres_url)
    cluster = Cluster(short_tmp / "fed", configs)
    standby: NodeProcess | None = None
    try:
        cluster.start()
        standby = NodeProcess.start("KR", standby_config)
        log = cluster.node_log("KR")  # both processes append to it
        wait_until(lambda: _events(log, "store_lease_waiting"), timeout=20, what="the standby waiting")
        time.sleep(0.5)
        assert standby.process.poll() is None, "the standby exited instead of waiting"
        assert not _serving(standby), "the standby serves while the active holds the lease"

        # A burst from US and JP towards KR goes on in a thread while KR's active dies.
        stop_peers = threading.Event()
        failures: list[BaseException] = []

        def peers_publish() -> None:
            try:
                while not stop_peers.is_set():
                    cluster.publish("US")
                    cluster.publish("JP")
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)

        for _ in range(15):
            cluster.publish("KR")
        burst = threading.Thread(target=peers_publish, name="peers-burst")
        burst.start()
        try:
            for _ in range(10):
                cluster.publish("KR")
            cluster.kill("KR")  # kill -9 of the active, alerts in flight both ways
            killed_at = time.monotonic()
            wait_until(lambda: _serving(standby), timeout=30, what="the standby serving")
            took = time.monotonic() - killed_at
            assert took < TAKEOVER_LIMIT_SECONDS, f"the standby served {took:.1f} s after the kill"
            cluster.nodes["KR"] = standby
            cluster.configs["KR"] = standby_config
            for _ in range(10):
                cluster.publish("KR")  # the same node, now the standby process
            time.sleep(0.5)
        finally:
            stop_peers.set()
            burst.join(30)
        assert not failures, f"a peer's publish failed: {failures[0]!r}"
        assert _events(log, "store_lease_taken"), "the standby did not log taking the lease"

        cluster.settle(timeout=60)
        assert len(cluster.sent) > 60
        cluster.check_nothing_lost(short_tmp / "out")  # once each, gapless, audit clean
    finally:
        cluster.stop()
        if standby is not None and not standby.log_file.closed:
            standby.stop()


def test_a_second_node_on_a_held_store_waits_and_sigterm_ends_the_wait(
    short_tmp: Path, postgres_url: str
) -> None:
    configs = make_federation(short_tmp / "fed", **FAST)
    standby_config = _pair(configs["KR"], postgres_url)
    cluster = Cluster(short_tmp / "fed", configs)
    try:
        cluster.start("KR")
        standby = NodeProcess.start("KR", standby_config)
        wait_until(lambda: _events(cluster.node_log("KR"), "store_lease_waiting"), timeout=20, what="waiting")
        assert standby.stop() == 0, "a waiting standby did not stop cleanly on SIGTERM"
        assert _serving(cluster.nodes["KR"]), "the active stopped serving"
    finally:
        cluster.stop()


def test_an_active_whose_lease_is_gone_stops_and_exits_non_zero_and_the_standby_takes_over(
    short_tmp: Path, postgres_url: str
) -> None:
    """The database dropped the active's connection (a network cut, a DBA's
    pg_terminate_backend): it holds no lease and may not go on answering; it logs
    store_lease_lost and exits 1, for its supervisor to restart it as the standby."""
    _cut_the_active_and_see_the_standby_serve(short_tmp, postgres_url)


def test_a_standby_that_takes_the_lease_before_the_active_noticed_waits_for_the_port(
    short_tmp: Path, postgres_url: str
) -> None:
    """The lease is free the moment the database ends the active's connection, but the active
    learns it only at its next check: a standby on the same host that takes the lease first
    finds the federation port still bound. It waits for the port (takeover_listen_waiting),
    not exits 2 with "address in use" beside an active about to exit 1. Seen once under the
    full suite's load with both polling every 0.2 s; here the active checks every 2 s, so
    the standby is first in most runs."""
    log = _cut_the_active_and_see_the_standby_serve(short_tmp, postgres_url, active_lease_poll=2.0)
    assert _events(log, "store_lease_taken"), "the standby did not log taking the lease"


def _cut_the_active_and_see_the_standby_serve(
    short_tmp: Path, postgres_url: str, *, active_lease_poll: float | None = None
) -> Path:
    """End the active's store connection (so its lease) under it, see it exit 1 and the
    standby serve; returns KR's log. `active_lease_poll`: the active's own lease_poll_seconds."""
    from tests.support import postgres

    configs = make_federation(short_tmp / "fed", **FAST)
    standby_config = _pair(configs["KR"], postgres_url)
    if active_lease_poll is not None:
        data = tomllib.loads(configs["KR"].read_text())
        data["store"]["lease_poll_seconds"] = active_lease_poll
        configs["KR"].write_text(tomli_w.dumps(data))
    cluster = Cluster(short_tmp / "fed", configs)
    standby: NodeProcess | None = None
    try:
        cluster.start("KR")
        standby = NodeProcess.start("KR", standby_config)
        log = cluster.node_log("KR")
        wait_until(lambda: _events(log, "store_lease_waiting"), timeout=20, what="the standby waiting")
        database = postgres_url.split("?", 1)[0].rsplit("/", 1)[1]
        ended = (
            postgres.server()
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted AND database ="
                f" (SELECT oid FROM pg_database WHERE datname = '{database}')"
            )
            .fetchall()
        )
        assert ended and all(row[0] for row in ended), "no backend held the lease"
        active = cluster.nodes["KR"]
        code = active.process.wait(20)
        assert code == 1, f"the active exited with {code}"
        assert _events(log, "store_lease_lost"), "the active did not say why it stopped"
        try:
            wait_until(lambda: _serving(standby), timeout=20, what="the standby serving")
        except AssertionError as exc:
            # Seen once under the full suite's load: the standby had taken the lease before the
            # active noticed, and exited 2 on the port still bound (now it waits for the port).
            raise AssertionError(f"{exc}; {_standby_story(standby, log)}") from None
        return log
    finally:
        cluster.stop()
        if standby is not None and not standby.log_file.closed:
            standby.stop()
