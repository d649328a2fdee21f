"""The operator API: only the node's user gets in; bad requests get clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from node import limits
from node.errors import RefusedOperation, UsageError
from node.ids import Country
from node.operator import OperatorClient
from node.store import AlertFilter, Reads, StoredAlert
from tests.support.factories import alert_info, alert_payload, envelope, peer_channel, running

NOBODY = 65534


_PROBE = """
import socket, sys
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(sys.argv[1])
        sock.sendall(b'{"op": "ping"}\\n')
        outcome = "answered" if sock.recv(4096) else "closed"
except ConnectionError:  # reset or broken pipe: the server hung up on us
    outcome = "closed"
except PermissionError:
    outcome = "permission-denied"
except OSError as exc:
    outcome = f"error {exc}"
print(outcome, end="")
"""


def _as_nobody(path: Path) -> str:
    """Connect to `path` from a process running as uid 65534; report what happened.

    A Python that user can run executes the probe (the venv's may live under
    /root, which nobody cannot enter); fork and exec in one step, as
    subprocess does, is safe beside gRPC's threads, where a bare fork of this
    process was not.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        Path(sys.base_prefix) / "bin" / version,
        Path("/usr/bin") / version,
        Path("/usr/local/bin") / version,
    ]
    for interpreter in candidates:
        try:
            result = subprocess.run(
                [str(interpreter), "-I", "-c", _PROBE, str(path)],
                user=NOBODY,
                group=NOBODY,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (PermissionError, FileNotFoundError):
            continue
        return result.stdout or f"probe failed ({result.returncode}): {result.stderr.strip()[-3000:]}"
    pytest.skip(f"no Python the nobody user may run among {', '.join(map(str, candidates))}")


def test_socket_is_private_and_other_users_are_refused(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            path = nodes["KR"].config.operator_socket
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            public = Path(tempfile.mkdtemp())
            public.chmod(0o755)
            (public / "op.sock").hardlink_to(path)  # reachable without the 0700 data dir
            assert await asyncio.to_thread(_as_nobody, public / "op.sock") == "permission-denied"
            # Even if someone loosens the file mode, the peer-credential check refuses.
            path.chmod(0o666)
            with structlog.testing.capture_logs() as logs:
                assert await asyncio.to_thread(_as_nobody, public / "op.sock") == "closed"
            assert any(e["event"] == "operator_refused" and e["peer_uid"] == NOBODY for e in logs)
            # the node's own user is served
            assert await asyncio.to_thread(OperatorClient(path).call, "ping") == {
                "node": "KR",
                "serving": True,
            }

    asyncio.run(scenario())


def test_bad_requests_get_clear_errors_and_change_nothing(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            path = nodes["KR"].config.operator_socket
            store = nodes["KR"].service.store
            client = OperatorClient(path)

            def raw(line: bytes) -> dict:  # type: ignore[type-arg]
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(path))
                    sock.sendall(line)
                    return json.loads(sock.makefile().readline())

            assert await asyncio.to_thread(raw, b"not json\n") == {
                "ok": False,
                "error": {"kind": "usage", "message": "request is not valid UTF-8 JSON"},
            }
            # issue 10, item 14: neither is an internal error
            assert (await asyncio.to_thread(raw, b'{"op": "\xff\xfe"}\n'))["error"] == {
                "kind": "usage",
                "message": "request is not valid UTF-8 JSON",
            }
            assert (await asyncio.to_thread(raw, b"[" * 30_000 + b"]" * 30_000 + b"\n"))["error"] == {
                "kind": "usage",
                "message": "request is nested too deeply",
            }
            reply = await asyncio.to_thread(raw, b'{"op": "launch"}\n')
            assert reply["error"]["kind"] == "usage" and "launch" in reply["error"]["message"]

            def call(op: str, **args: object) -> object:
                return client.call(op, **args)

            with pytest.raises(UsageError, match="headline"):
                await asyncio.to_thread(
                    call, "publish", msg_type="ALERT", info=alert_info(headline="mail ops@agency.example")
                )
            with pytest.raises(UsageError, match="bad publish request: notes: unknown key"):
                await asyncio.to_thread(call, "publish", msg_type="ALERT", info=alert_info(), notes="x")
            with pytest.raises(RefusedOperation, match="no alert KR-404"):
                await asyncio.to_thread(
                    call,
                    "publish",
                    msg_type="CANCEL",
                    reason="ISSUED_IN_ERROR",
                    reference={"origin": "KR", "alert_id": "KR-404"},
                )
            assert store.log_size == 0 and store.count("alerts") == 0 and store.count("outbox") == 0

            ok = await asyncio.to_thread(
                call, "publish", msg_type="ALERT", info=alert_info(), alert_id="KR-1"
            )
            assert ok["alert_id"] == "KR-1"  # type: ignore[index]
            with pytest.raises(RefusedOperation, match="already used"):
                await asyncio.to_thread(call, "publish", msg_type="ALERT", info=alert_info(), alert_id="KR-1")
            assert store.log_size == 1

    asyncio.run(scenario())


def test_a_second_node_on_the_same_socket_refuses_to_start(federation: dict[Country, Path]) -> None:
    from node.errors import ConfigError

    # Another data directory, the same socket: the socket itself is the guard.
    text = federation["KR"].read_text()
    second = federation["KR"].with_name("second.toml")
    second.write_text(
        text.replace('data_dir = "data"', 'data_dir = "data-second"\noperator_socket = "data/operator.sock"')
    )

    async def scenario() -> None:
        async with running(federation["KR"]):
            with pytest.raises(ConfigError, match="already serving"):
                async with running(second):
                    pass
            # The same data directory: its lock refuses first (tests/federation/test_hardening_cli.py).
            with pytest.raises(ConfigError, match="in use by another node"):
                async with running(federation["KR"]):
                    pass

    asyncio.run(scenario())


# ---------------------------------------------------------------- listings (issue 10, item 7)
def _deliver_request(federation: dict[Country, Path], origin: Country, seq: int) -> bytes:
    """A DeliverRequest of a valid alert from `origin` to KR at `seq`, signed by `origin`'s node."""
    from node.wire import ewx_pb2 as pb

    payload = alert_payload(origin, {"KR": seq}, alert_id=f"{origin}-L-{seq}")
    return pb.DeliverRequest(envelope=envelope(federation[origin], payload)).SerializeToString()


async def _deliver(federation: dict[Country, Path], origin: Country, seq: int) -> bytes:
    """Deliver one alert to the running KR node as its peer `origin`; the receipt."""
    from gateway import rpc
    from node.wire import ewx_pb2 as pb

    async with peer_channel(federation["KR"], federation[origin]) as channel:
        reply = await channel.unary_unary(rpc.DELIVER)(_deliver_request(federation, origin, seq), timeout=5)
    return bytes(pb.DeliverResponse.FromString(reply).receipt)


def test_alert_list_pages_by_a_stable_cursor_and_filters_in_the_store(
    federation: dict[Country, Path],
) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].service
            client = OperatorClient(nodes["KR"].config.operator_socket)

            def listing(**args: object) -> dict:  # type: ignore[type-arg]
                return client.call("list", **args)  # type: ignore[no-any-return]

            own = [service.publish(msg_type="ALERT", info=alert_info()).alert.alert_id for _ in range(5)]
            service.publish(msg_type="CANCEL", reference=("KR", own[1]), reason="ISSUED_IN_ERROR")
            update = service.publish(
                msg_type="UPDATE", reference=("KR", own[2]), info=alert_info(headline="Revised")
            ).alert.alert_id
            since = datetime.now(UTC)
            for seq in (1, 2):
                await _deliver(federation, "US", seq)
            logged = [a.alert_id for a in service.list_alerts()]
            assert len(logged) == 9

            # Paging: every alert exactly once, in log order, whatever is stored meanwhile.
            seen: list[str] = []
            page = await asyncio.to_thread(listing, limit=4)
            assert page["more"] and len(page["alerts"]) == 4
            late = service.publish(msg_type="ALERT", info=alert_info()).alert.alert_id
            while True:
                seen += [a["alert_id"] for a in page["alerts"]]
                if not page["more"]:
                    assert page["next"] is None
                    break
                page = await asyncio.to_thread(listing, limit=4, after=page["next"])
            assert seen == [*logged, late]
            default = await asyncio.to_thread(listing)
            assert len(default["alerts"]) == 10 and not default["more"]  # under the default page

            # Filters, each checked against the state and fields the listing itself shows.
            everything = service.list_alerts()
            for state in ("active", "updated", "cancelled", "expired"):
                got = await asyncio.to_thread(listing, state=state)
                assert [a["alert_id"] for a in got["alerts"]] == [
                    a.alert_id for a in everything if a.state == state
                ]
            assert [
                a["alert_id"] for a in (await asyncio.to_thread(listing, state="cancelled"))["alerts"]
            ] == [own[1]]
            assert [a["alert_id"] for a in (await asyncio.to_thread(listing, state="updated"))["alerts"]] == [
                own[2]
            ]
            from_us = await asyncio.to_thread(listing, origin="US")
            assert [a["alert_id"] for a in from_us["alerts"]] == ["US-L-1", "US-L-2"]
            assert all(a["direction"] == "received" and a["local_exposure"] for a in from_us["alerts"])
            recent = await asyncio.to_thread(listing, since=since.isoformat())
            assert [a["alert_id"] for a in recent["alerts"]] == ["US-L-1", "US-L-2", late]
            by_id = await asyncio.to_thread(listing, alert_id=own[0])
            assert [(a["origin"], a["alert_id"]) for a in by_id["alerts"]] == [("KR", own[0])]
            assert by_id["alerts"][0]["deliveries"]["US"]["attempts"] >= 0  # own: with outbox state

            # Expiry is the node's clock's: ninety-one days on, every alert with an info
            # block (the UPDATE too) that was not cancelled or updated has expired.
            # The real clock function, not the store-thread wrapper a read through
            # `service` returns: the node calls its clock on the store's thread.
            real_clock = service.unwrapped.clock
            service.clock = lambda: real_clock() + timedelta(days=91)
            expired = await asyncio.to_thread(listing, state="expired")
            assert [a["alert_id"] for a in expired["alerts"]] == [
                own[0],
                own[3],
                own[4],
                update,
                "US-L-1",
                "US-L-2",
                late,
            ]
            service.clock = real_clock

            for args, named in [
                ({"limit": 0}, "limit"),
                ({"limit": 1001}, "limit"),
                ({"limit": "5"}, "limit"),
                ({"after": "x"}, "after"),
                ({"after": "１２"}, "after"),
                ({"after": str(2**63)}, "after"),
                ({"since": "yesterday"}, "since"),
                ({"since": "2026-01-01T00:00:00"}, "since"),
                ({"state": "gone"}, "state"),
                ({"origin": "XX"}, "origin"),
                ({"page": 2}, "page"),
            ]:
                with pytest.raises(UsageError, match=named):
                    await asyncio.to_thread(listing, **args)

    asyncio.run(scenario())


def test_a_listing_in_progress_does_not_hold_the_event_loop(
    federation: dict[Country, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing blocked inside the store read; a ping and a peer's Deliver are answered meanwhile.

    Before the fix the listing ran on the event loop: blocked there, nothing
    else was answered until the hook gave up, and the test fails on `stuck`.
    """
    entered, release = threading.Event(), threading.Event()
    stuck: list[str] = []
    read_page = Reads.alert_page

    def blocking_page(self: Reads, query: AlertFilter, *, now_us: int) -> tuple[list[StoredAlert], bool]:
        entered.set()
        if not release.wait(timeout=20):
            stuck.append("the listing was never released: nothing else got through while it ran")
        return read_page(self, query, now_us=now_us)

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].service
            service.publish(msg_type="ALERT", info=alert_info())
            path = nodes["KR"].config.operator_socket
            monkeypatch.setattr(Reads, "alert_page", blocking_page)
            listing = asyncio.ensure_future(asyncio.to_thread(OperatorClient(path).call, "list"))
            assert await asyncio.to_thread(entered.wait, 20)
            order = ["listing entered"]
            assert await asyncio.to_thread(OperatorClient(path, timeout=10).call, "ping") == {
                "node": "KR",
                "serving": True,
            }
            order.append("ping answered")
            assert await _deliver(federation, "US", 1)
            order.append("deliver receipted")
            assert not listing.done()
            release.set()
            page = await listing
            order.append("listing answered")
            assert order == ["listing entered", "ping answered", "deliver receipted", "listing answered"]
            assert [a["origin"] for a in page["alerts"]] in (["KR"], ["KR", "US"])  # its snapshot
            assert not stuck

    try:
        asyncio.run(scenario())
    finally:
        release.set()


# ---------------------------------------------------------------- the socket itself (issue 10, item 6)
async def wait_for_served(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Until `check()` (blocking, so run in a thread) is true; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not served again within {timeout}s")
        await asyncio.sleep(0.02)


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)  # a deadline for every wait below, never a wait for time to pass
    sock.connect(str(path))
    return sock


def _ping_on(sock: socket.socket) -> dict:  # type: ignore[type-arg]
    sock.sendall(b'{"op": "ping"}\n')
    return json.loads(sock.makefile("rb").readline())  # type: ignore[no-any-return]


def _read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_operator_connections_beyond_the_cap_are_refused_with_a_short_error(
    federation: dict[Country, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_OPERATOR_CONNECTIONS", 3)

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            path = nodes["KR"].config.operator_socket
            held = [_connect(path) for _ in range(3)]
            for sock in held:  # answered: each is counted by the node now
                assert (await asyncio.to_thread(_ping_on, sock))["ok"]
            with structlog.testing.capture_logs() as logs:
                extra = _connect(path)
                reply = await asyncio.to_thread(_read_to_end, extra)
            assert json.loads(reply) == {
                "ok": False,
                "error": {
                    "kind": "refused",
                    "message": "the node serves at most 3 operator connections at once; close one and try again",
                },
            }
            with pytest.raises(RefusedOperation, match="at most 3 operator connections"):
                await asyncio.to_thread(OperatorClient(path).call, "ping")
            refused = [e for e in logs if e["event"] == "operator_refused"]
            assert refused[0]["reason"] == "too_many_connections"
            assert refused[0]["peer_pid"] == os.getpid() and refused[0]["peer_uid"] == os.getuid()
            # A slot closed is a slot free again.
            held.pop().close()

            def served() -> bool:
                try:
                    return OperatorClient(path).call("ping")["node"] == "KR"  # type: ignore[no-any-return]
                except RefusedOperation:
                    return False

            await wait_for_served(served)
            for sock in held:
                sock.close()

    asyncio.run(scenario())


def test_an_operator_connection_that_sends_nothing_or_half_a_line_is_closed(
    federation: dict[Country, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "OPERATOR_IDLE_SECONDS", 0.2)
    monkeypatch.setattr(limits, "MAX_OPERATOR_CONNECTIONS", 2)

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            path = nodes["KR"].config.operator_socket
            with structlog.testing.capture_logs() as logs:
                silent, partial = _connect(path), _connect(path)
                partial.sendall(b'{"op": "pi')
                # Both are closed by the node (recv sees the end), so they hold no slot.
                assert await asyncio.to_thread(_read_to_end, silent) == b""
                assert await asyncio.to_thread(_read_to_end, partial) == b""
            closed = [e for e in logs if e["event"] == "operator_idle_closed"]
            assert len(closed) == 2 and {e["reason"] for e in closed} == {"idle_timeout"}
            assert all(e["peer_pid"] == os.getpid() for e in closed)
            # A client that keeps talking is served for as long as it does.
            with _connect(path) as busy:
                for _ in range(3):
                    assert (await asyncio.to_thread(_ping_on, busy))["ok"]
            assert (await asyncio.to_thread(OperatorClient(path).call, "ping"))["node"] == "KR"

    asyncio.run(scenario())


def test_an_operator_request_line_over_the_bound_is_refused_and_closed(
    federation: dict[Country, Path],
) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            path = nodes["KR"].config.operator_socket
            store = nodes["KR"].service.store
            with structlog.testing.capture_logs() as logs, _connect(path) as sock:
                line = b'{"op": "publish", "args": {"reason": "' + b"x" * limits.MAX_OPERATOR_REQUEST_BYTES
                await asyncio.to_thread(sock.sendall, line + b'"}}\n')
                reply = await asyncio.to_thread(_read_to_end, sock)
            assert json.loads(reply)["error"] == {
                "kind": "usage",
                "message": f"request line is longer than {limits.MAX_OPERATOR_REQUEST_BYTES} bytes; nothing was done",
            }
            assert [e["reason"] for e in logs if e["event"] == "operator_refused"] == ["request_too_large"]
            assert store.log_size == 0
            # A line of exactly the bound, newline included, is read and answered.
            with _connect(path) as sock:
                padded = b'{"op": "ping"}'
                padded += b" " * (limits.MAX_OPERATOR_REQUEST_BYTES - len(padded) - 1) + b"\n"
                await asyncio.to_thread(sock.sendall, padded)
                assert (await asyncio.to_thread(sock.makefile("rb").readline)).startswith(b'{"ok": true')

    asyncio.run(scenario())


def test_a_store_from_before_the_listing_columns_is_listed_and_filtered_after_a_restart(
    federation: dict[Country, Path],
) -> None:
    import sqlite3

    from node.config import NodeConfig
    from node.store import STORE_FILE
    from node.store._schema import LISTING_COLUMNS as _LISTING_COLUMNS

    async def publish() -> list[str]:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].service
            ids = [service.publish(msg_type="ALERT", info=alert_info()).alert.alert_id for _ in range(3)]
            service.publish(msg_type="CANCEL", reference=("KR", ids[1]), reason="ISSUED_IN_ERROR")
            return ids

    ids = asyncio.run(publish())
    # Back to the alerts table's first layout: no listing columns, none of their indices.
    with sqlite3.connect(NodeConfig.load(federation["KR"]).data_dir / STORE_FILE) as conn:
        for (index,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'alerts'"
        ).fetchall():
            if not index.startswith("sqlite_autoindex") and index != "alerts_by_type":
                conn.execute(f"DROP INDEX {index}")
        for name, _kind in _LISTING_COLUMNS:
            conn.execute(f"ALTER TABLE alerts DROP COLUMN {name}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")  # as that build wrote it

    async def listed() -> None:
        async with running(federation["KR"]) as nodes:
            client = OperatorClient(nodes["KR"].config.operator_socket)
            cancelled = await asyncio.to_thread(client.call, "list", state="cancelled")
            assert [a["alert_id"] for a in cancelled["alerts"]] == [ids[1]]
            active = await asyncio.to_thread(client.alerts, state="active", since="2000-01-01T00:00:00Z")
            assert [a["alert_id"] for a in active][:2] == [ids[0], ids[2]]

    asyncio.run(listed())
