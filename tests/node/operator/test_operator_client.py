"""The operator client against a real unix socket that answers before it reads, as a node at its cap does."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from node.errors import RefusedOperation
from node.operator import OperatorClient


def _answer_without_reading(path: Path, line: bytes) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.sendall(line)
                conn.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_refusal_sent_before_the_request_was_read_reaches_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "operator.sock"
    refusal = {"ok": False, "error": {"kind": "refused", "message": "the node serves at most 3 operator connections"}}
    thread = _answer_without_reading(path, json.dumps(refusal).encode() + b"\n")
    # A request far beyond the socket buffer: its send fails with EPIPE or
    # ECONNRESET once the server has closed, which must not hide the answer.
    with pytest.raises(RefusedOperation, match="at most 3 operator connections"):
        OperatorClient(path, timeout=10).call("ping", padding="x" * (4 << 20))
    thread.join(timeout=10)
