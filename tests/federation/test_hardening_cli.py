"""Issue 10 (hardening) against running nodes: the operator API and the real `ewx` command.

Each test names the issue's item it covers. Peer-facing cases also have rows
in tests/federation/test_hostile_matrix.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.errors import UsageError
from node.ids import Country
from node.operator import OperatorClient
from tests.support.factories import alert_info, running

Fed = dict[Country, Path]


def ewx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real `ewx` command, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


async def ewx_async(*args: str) -> subprocess.CompletedProcess[str]:
    """`ewx` from a test that runs a node in its own event loop."""
    return await asyncio.to_thread(ewx, *args)


def raise_args(config: Path, *extra: str, hs: str = "811292") -> tuple[str, ...]:
    return (
        "alert", "raise", "--config", str(config), "--hs", hs, "--category", "EXPORT_CONTROL",
        "--severity", "SEVERE", "--source-country", "CN", "--headline", "gallium licensing", *extra,
    )  # fmt: skip


# ---------------------------------------------------------------- item 3: an empty recipient list
def test_the_operator_api_refuses_an_empty_recipient_list(federation: Fed) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            client = OperatorClient(nodes["KR"].config.operator_socket)
            store = nodes["KR"].service.store
            with pytest.raises(UsageError, match="recipient list is empty"):
                await asyncio.to_thread(
                    client.call, "publish", msg_type="ALERT", info=alert_info(), recipients=[]
                )
            assert store.log_size == 0 and store.count("outbox") == 0

    asyncio.run(scenario())


# ---------------------------------------------------------------- item 12: ASCII digits only
def test_hs_codes_in_other_scripts_digits_are_refused_at_the_cli(federation: Fed) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            for hs in ("８１１２９２", "٨١١٢٩٢", "8112.９２"):
                done = await ewx_async(*raise_args(federation["KR"], hs=hs))
                assert done.returncode == 2, done.stderr
                assert "4 or 6 digits" in done.stderr and "Traceback" not in done.stderr
            assert nodes["KR"].service.store.log_size == 0
            done = await ewx_async(*raise_args(federation["KR"], "--duration-days", "１８０"))
            assert done.returncode == 2 and "digits 0-9" in done.stderr
            ok = await ewx_async(*raise_args(federation["KR"], hs="8112.92"))
            assert ok.returncode == 0, ok.stderr

    asyncio.run(scenario())


# ---------------------------------------------------------------- item 16: the lifecycle at the CLI
def test_cancel_twice_update_after_cancel_and_ack_twice_are_refused(federation: Fed) -> None:
    from tests.support.factories import wait_for

    kr, us = str(federation["KR"]), str(federation["US"])

    async def scenario() -> None:
        async with running(federation["KR"], federation["US"]) as nodes:
            raised = await ewx_async(*raise_args(federation["KR"], "--to", "US"))
            alert_id = raised.stdout.strip()
            await wait_for(lambda: nodes["US"].service.store.alert("KR", alert_id) is not None)
            acked = await ewx_async("alert", "ack", alert_id, "--config", us)
            assert acked.returncode == 0, acked.stderr
            again = await ewx_async("alert", "ack", alert_id, "--config", us, "--reason", "ACTION_TAKEN")
            assert again.returncode == 1 and "acknowledges an alert once" in again.stderr, again.stderr
            assert (await ewx_async("alert", "cancel", alert_id, "--config", kr)).returncode == 0
            for argv in (("cancel", alert_id), ("update", alert_id, "--severity", "EXTREME")):
                done = await ewx_async("alert", *argv, "--config", kr)
                assert done.returncode == 1, done.stderr
                assert "ewx: refused:" in done.stderr and "takes no further UPDATE or CANCEL" in done.stderr
                assert "Traceback" not in done.stderr

    asyncio.run(scenario())


# ---------------------------------------------------------------- item 1: one node per port and data directory
def _second_node_on_the_same_port(config: Path) -> Path:
    """A config of the same node with its own data directory but the same listen address."""
    text = config.read_text()
    assert 'data_dir = "data"' in text
    second = config.with_name("second.toml")
    second.write_text(text.replace('data_dir = "data"', 'data_dir = "data-second"'))
    return second


@pytest.mark.sqlite_only(
    "its second node copies KR's node.toml: on PostgreSQL the same database, so it waits as KR's standby"
)
def test_a_second_node_on_a_port_in_use_refuses_to_start(federation: Fed) -> None:
    from gateway.runtime import NodeRuntime
    from node.config import NodeConfig
    from node.errors import ConfigError

    second = _second_node_on_the_same_port(federation["KR"])

    async def scenario() -> None:
        async with running(federation["KR"]):
            runtime = NodeRuntime(NodeConfig.load(second))
            with pytest.raises(ConfigError, match="address in use"):
                await runtime.start()
            # the real command, as an operator would start it
            done = await ewx_async("serve", "--config", str(second))
            assert done.returncode == 2, done.stderr
            assert "address in use" in done.stderr and "Traceback" not in done.stderr
            assert "node_started" not in done.stderr
        # once the port is free the second one starts (its lock was released on the refusal)
        async with running(second) as nodes:
            assert nodes["KR"].port is not None

    asyncio.run(scenario())


def test_a_second_node_on_the_same_data_directory_refuses_to_start(federation: Fed) -> None:
    from node.files import LOCK_FILE

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            data_dir = nodes["KR"].config.data_dir
            assert (data_dir / LOCK_FILE).read_text().strip() == str(os.getpid())
            # the operator socket gone (deleted by hand, say): the lock still holds
            nodes["KR"].config.operator_socket.unlink()
            done = await ewx_async("serve", "--config", str(federation["KR"]))
            assert done.returncode == 2, done.stderr
            assert f"data directory {data_dir} is in use by another node (pid {os.getpid()})" in done.stderr
            assert "Traceback" not in done.stderr
        async with running(federation["KR"]):  # released at stop
            pass

    asyncio.run(scenario())


# ---------------------------------------------------------------- item 4: exports
def _published(config: Path, count: int) -> None:
    """`count` alerts in the node's store (the node need not run for an export)."""
    from node.config import NodeConfig
    from node.service import NodeService

    service = NodeService.open(NodeConfig.load(config))
    try:
        for _ in range(count):
            service.publish(msg_type="ALERT", info=alert_info())
    finally:
        service.close()


def _one_error_line(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr


def test_exports_refuse_devices_folders_and_existing_files(federation: Fed, tmp_path: Path) -> None:
    import stat

    kr = str(federation["KR"])
    _published(federation["KR"], 3)
    exports = {
        "log": ("log", "export", "--config", kr),
        "outbox": ("outbox", "export", "--config", kr, "--peer", "US"),
    }
    # A device, reached through a link so that a regression replaces the link, never /dev/full itself.
    device = tmp_path / "device"
    device.symlink_to("/dev/full")
    for name, command in exports.items():
        # a device is not replaced by a file
        _one_error_line(ewx(*command, "--out", str(device)), 2, f"{device}: it is not a regular file")
        assert device.is_symlink() and stat.S_ISCHR(device.stat().st_mode)
        _one_error_line(ewx(*command, "--out", str(tmp_path)), 2, "it is a folder")
        # a link planted at the old fixed temporary name is not followed
        out, victim = tmp_path / f"{name}.out", tmp_path / f"{name}.victim"
        victim.write_bytes(b"precious")
        out.with_name(out.name + ".part").symlink_to(victim)
        first = ewx(*command, "--out", str(out))
        assert first.returncode == 0, first.stderr
        assert victim.read_bytes() == b"precious" and out.stat().st_size > 0
        written = out.read_bytes()
        # an existing export is not overwritten without --force
        out.write_bytes(b"an earlier export")
        _one_error_line(ewx(*command, "--out", str(out)), 1, "already exists; give --force to replace it")
        assert out.read_bytes() == b"an earlier export"
        assert ewx(*command, "--out", str(out), "--force").returncode == 0
        assert out.read_bytes()[:11] == written[:11]  # the magic of a fresh export
    assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name) == ["log.out.part", "outbox.out.part"]


def test_an_export_that_fails_midway_exits_2_in_one_line_and_leaves_nothing(federation: Fed, tmp_path: Path) -> None:
    """The disk filling up: a file-size limit makes the kernel refuse the export's writes (EFBIG)."""
    _published(federation["KR"], 200)  # ~150 KB of log
    out = tmp_path / "exports"
    out.mkdir()
    for command in (("log", "export"), ("outbox", "export", "--peer", "US")):
        target = out / "file"
        limited = subprocess.run(
            ["bash", "-c", 'ulimit -f 40 && exec "$@"', "ewx", sys.executable, "-m", "gateway",
             *command, "--config", str(federation["KR"]), "--out", str(target)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        _one_error_line(limited, 2, f"cannot write {target}: File too large")
        assert list(out.iterdir()) == []  # no partial file, no temporary file
    _one_error_line(
        ewx("log", "export", "--config", str(federation["KR"]), "--out", str(tmp_path / "no" / "such" / "x")),
        2,
        "no folder",
    )


# ---------------------------------------------------------------- item 13: one line and exit 2, not a traceback
def test_missing_unwritable_or_full_paths_exit_2_in_one_line(tmp_path: Path) -> None:
    fed = tmp_path / "fed"
    assert ewx("pki", "init", "--out", str(fed)).returncode == 0
    config = fed / "KR" / "node.toml"
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    _one_error_line(ewx("pki", "init", "--out", "/proc/no-such-folder"), 2, "No such file or directory")
    _one_error_line(ewx("pki", "init", "--out", str(a_file / "fed")), 2, "Not a directory")
    # a full disk: the file-size limit makes the first key's write fail
    full = subprocess.run(
        ["bash", "-c", 'ulimit -f 0 && exec "$@" 2>&1', "ewx", sys.executable, "-m", "gateway",
         "pki", "init", "--out", str(tmp_path / "full")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert full.returncode == 2 and full.stdout.strip().splitlines() == ["ewx: error: File too large"]
    # pki rotate checks its output path before it makes any key
    for out, fragment in ((tmp_path / "no" / "req", "no folder"), (a_file / "req", "Not a directory")):
        _one_error_line(
            ewx("pki", "rotate", "--config", str(config), "--purpose", "alert", "--out", str(out)), 2, fragment
        )
    assert not list((fed / "KR" / "keys").glob("*.next"))  # so a retry is not blocked
    assert ewx("pki", "rotate", "--config", str(config), "--purpose", "alert", "--out", str(tmp_path / "r")).returncode == 0
    # a data directory that names a file
    bad = config.with_name("bad.toml")
    bad.write_text(config.read_text().replace('data_dir = "data"', 'data_dir = "node.toml"'))
    for command in (("serve",), ("log", "export", "--out", str(tmp_path / "x")), ("outbox", "export", "--peer", "US", "--out", str(tmp_path / "y"))):
        _one_error_line(ewx(*command, "--config", str(bad)), 2, "node.toml")


def test_a_time_beyond_the_calendar_is_a_usage_error(tmp_path: Path) -> None:
    fed = tmp_path / "fed"
    assert ewx("pki", "init", "--out", str(fed)).returncode == 0
    for flag in ("--expires", "--effective"):
        for value in ("+99999999999d", "+999999999999999h"):
            done = ewx(*raise_args(fed / "KR" / "node.toml", flag, value))
            assert done.returncode == 2 and "beyond the calendar" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- item 14: a full disk at the operator
def _cap_pages(store: Any, pages: int | None = None) -> None:
    """Let the store grow to `pages` pages, by default none beyond what it has: a full disk.

    Runs on the store's thread (NodeService.call): the connection is that thread's own.
    """
    conn = store._conn
    limit = pages if pages is not None else conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {limit}")


@pytest.mark.sqlite_only("fakes a full disk with SQLite's PRAGMA max_page_count")
def test_a_full_store_reads_as_store_is_full_at_the_operator(federation: Fed) -> None:
    from node.errors import StoreFull

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].runtime.service
            await service.call(_cap_pages, service.store)
            client = OperatorClient(nodes["KR"].config.operator_socket)
            with pytest.raises(StoreFull, match="store is full") as refused:
                for _ in range(50):
                    await asyncio.to_thread(client.call, "publish", msg_type="ALERT", info=alert_info())
            assert "internal error" not in str(refused.value)

    asyncio.run(scenario())


@pytest.mark.sqlite_only("fakes a full disk with SQLite's PRAGMA max_page_count")
def test_a_full_store_answers_a_peer_unavailable_store_full_and_takes_the_retry(federation: Fed) -> None:
    """A peer's Deliver to a full store: nothing written or acknowledged, a status the
    sender retries (not INTERNAL with a correlation id), and the retry stored once space is back."""
    import grpc

    from tests.federation.test_hostile_matrix import _signed, deliver_as, identity_of, receipt_of, stored
    from tests.support.factories import alert_payload

    requests = [_signed(federation, alert_payload("KR", {"US": seq})) for seq in range(1, 61)]
    kr = identity_of(federation["KR"])

    async def scenario() -> None:
        async with running(federation["US"]) as nodes:
            us = nodes["US"].service
            real = nodes["US"].runtime.service
            await real.call(_cap_pages, real.store)
            for request in requests:  # until the free pages run out
                before = stored(us)
                outcome = await deliver_as(federation["US"], kr, request)
                if outcome.code != grpc.StatusCode.OK:
                    break
            assert (outcome.code, outcome.reason) == (grpc.StatusCode.UNAVAILABLE, "store_full"), outcome
            assert "store is full" in outcome.details
            assert stored(us) == before  # nothing written, nothing acknowledged
            await real.call(_cap_pages, real.store, pages=1073741823)
            retried = await deliver_as(federation["US"], kr, request)
            assert retried.code == grpc.StatusCode.OK and receipt_of(retried)
            assert us.store.last_seq("KR", "US") == requests.index(request) + 1

    asyncio.run(scenario())
