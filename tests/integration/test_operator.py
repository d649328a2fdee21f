"""The operator API: only the node's user gets in; bad requests get clear errors."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import structlog

from node.errors import RefusedOperation, UsageError
from node.ids import Country
from node.operator import OperatorClient
from tests.factories import alert_info, running

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
    second.write_text(text.replace('data_dir = "data"', 'data_dir = "data-second"\noperator_socket = "data/operator.sock"'))

    async def scenario() -> None:
        async with running(federation["KR"]):
            with pytest.raises(ConfigError, match="already serving"):
                async with running(second):
                    pass
            # The same data directory: its lock refuses first (tests/integration/test_hardening_cli.py).
            with pytest.raises(ConfigError, match="in use by another node"):
                async with running(federation["KR"]):
                    pass

    asyncio.run(scenario())
