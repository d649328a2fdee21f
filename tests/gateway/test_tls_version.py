"""SPEC section 2: peers talk mTLS with TLS 1.3, and a `ewx serve` node refuses TLS 1.2.

grpcio has no minimum-version option; gateway/tls.py restricts gRPC core's
TLS 1.2 cipher list (GRPC_SSL_CIPHER_SUITES) to a suite gRPC cannot
negotiate, before grpc is imported. These tests connect with Python's own
`ssl` client, presenting a peer's real certificate, to real node processes.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.grpc_env import CIPHER_SUITES_VARIABLE
from gateway.local_nodes import NodeProcess
from node.ids import Country
from tests.gateway.tls_probe import handshake
from tests.support.factories import alert_info, make_federation

pytestmark = pytest.mark.slow


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def fed(tmp_path: Path) -> dict[Country, Path]:
    return make_federation(tmp_path / "fed", outbox_retry_max_seconds=0.5)


@pytest.fixture
def nodes(fed: dict[Country, Path]) -> Iterator[dict[Country, NodeProcess]]:
    started = {cc: NodeProcess.start(cc, fed[cc]) for cc in ("KR", "US")}
    try:
        for node in started.values():
            node.wait_ready()
        yield started
    finally:
        for node in started.values():
            node.stop()


def test_a_node_speaks_tls13_and_refuses_a_tls12_client(
    fed: dict[Country, Path], nodes: dict[Country, NodeProcess]
) -> None:
    normal = handshake(fed["KR"], client=fed["US"])
    assert normal.version == "TLSv1.3"

    with pytest.raises(ssl.SSLError):
        handshake(fed["KR"], client=fed["US"], maximum=ssl.TLSVersion.TLSv1_2)

    # The node is still serving after the refusal, and two nodes that offer
    # only TLS 1.3 exchange alerts as before.
    assert handshake(fed["KR"], client=fed["US"]).version == "TLSv1.3"
    alert_id = nodes["KR"].client.call("publish", msg_type="ALERT", status="TEST", info=alert_info())[
        "alert_id"
    ]
    wait_until(lambda: any(a["alert_id"] == alert_id for a in nodes["US"].client.alerts()))
    log = (fed["KR"].parent / "node.log").read_text()
    assert "tls13_not_enforced" not in log


def test_without_the_policy_grpc_would_negotiate_tls12(fed: dict[Country, Path]) -> None:
    """What gRPC does by default, documented: a process that imports grpc before
    gateway.tls cannot restrict the cipher list; the node says so in its log."""
    log_path = fed["KR"].parent / "node.log"
    env = {k: v for k, v in os.environ.items() if k != CIPHER_SUITES_VARIABLE}
    code = "import sys, grpc; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"
    log_file = log_path.open("ab")  # NodeProcess.stop closes it
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--config", str(fed["KR"])],
        stdout=log_file,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    node = NodeProcess("KR", fed["KR"], process, log_file)
    try:
        node.wait_ready()
        capped = handshake(fed["KR"], client=fed["US"], maximum=ssl.TLSVersion.TLSv1_2)
        assert capped.version == "TLSv1.2"
        assert handshake(fed["KR"], client=fed["US"]).version == "TLSv1.3"
    finally:
        node.stop()
    assert '"event": "tls13_not_enforced"' in log_path.read_text()
