"""`ewx health`: the probe a container's HEALTHCHECK runs (issue 14, item 1)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from gateway.local_nodes import NodeProcess, assign_free_ports
from node.cli._health import check_federation_port, probe_address
from node.config import NodeConfig
from node.pki import init_federation
from tests.node.cli.test_cli import ewx
from tests.support.ports import next_port


def _variant(config: Path, name: str, **changes: str) -> Path:
    """A copy of `config` beside it with some keys changed (paths stay relative to the same folder)."""
    data = tomllib.loads(config.read_text())
    data.update(changes)
    path = config.parent / name
    path.write_text(tomli_w.dumps(data))
    return path


@pytest.fixture
def fed(tmp_path: Path) -> dict[str, Path]:
    init_federation(tmp_path / "fed")
    return dict(assign_free_ports(tmp_path / "fed", port_source=next_port))


@pytest.mark.slow
def test_healthy_node_then_stopped_then_the_wrong_certificate(fed: dict[str, Path]) -> None:
    kr, us = NodeProcess.start("KR", fed["KR"]), NodeProcess.start("US", fed["US"])
    try:
        kr.wait_ready()
        us.wait_ready()
        ok = ewx("health", "--config", str(fed["KR"]))
        assert "ok   operator" in ok.stdout and "ok   federation" in ok.stdout
        assert "TLS 1.3 as kr.node.ewx, client certificate required" in ok.stdout
        # The standard grpc.health.v1 service, on the local health socket (0600), with each peer's link.
        socket_path = NodeConfig.load(fed["KR"]).health_socket
        assert f"ok   grpc-health: unix:{socket_path}: node SERVING; peers: US " in ok.stdout, ok.stdout
        assert socket_path.stat().st_mode & 0o777 == 0o600
        report = json.loads(ewx("health", "--json", env={"EWX_CONFIG": str(fed["KR"])}).stdout)
        assert report["healthy"] is True and [c["check"] for c in report["checks"]] == [
            "operator",
            "federation",
            "grpc-health",
        ]

        # KR's config, but the port is US's: the server there is not KR.
        impostor = _variant(fed["KR"], "wrong-port.toml", listen=NodeConfig.load(fed["US"]).listen)
        wrong = ewx("health", "--config", str(impostor), check=False)
        assert wrong.returncode == 1
        assert "ok   operator" in wrong.stdout
        assert "FAIL federation" in wrong.stdout and "not this node's" in wrong.stdout
    finally:
        kr.stop()
        us.stop()
    down = ewx("health", "--config", str(fed["KR"]), "--timeout", "2", check=False)
    assert down.returncode == 1 and "UNHEALTHY" in down.stdout
    assert "FAIL operator: node is not running" in down.stdout and "FAIL federation" in down.stdout
    assert "FAIL grpc-health: unix:" in down.stdout
    assert not NodeConfig.load(fed["KR"]).health_socket.exists()  # removed at a clean stop


def test_bad_timeout_is_a_usage_error(fed: dict[str, Path]) -> None:
    for value in ("0", "-1", "nan", "301", "soon"):
        result = ewx("health", "--config", str(fed["KR"]), "--timeout", value, check=False)
        assert result.returncode == 2, (value, result.stderr)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:7401", ("127.0.0.1", 7401)),
        ("[::]:7401", ("::1", 7401)),
        ("[::1]:7402", ("::1", 7402)),
        ("kr.node.ewx:7401", ("kr.node.ewx", 7401)),
    ],
)
def test_a_wildcard_listen_address_is_probed_on_the_loopback(listen: str, expected: tuple[str, int]) -> None:
    assert probe_address(listen) == expected


@pytest.fixture
def lax_server(fed: dict[str, Path]) -> Iterator[int]:
    """A TLS 1.3 server with KR's certificate that does NOT ask for a client certificate and answers HTTP/2."""
    config = NodeConfig.load(fed["KR"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(config.tls.certificate, config.tls.private_key)
    context.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        with raw, context.wrap_socket(raw, server_side=True) as tls:
            tls.recv(64)
            tls.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an HTTP/2 SETTINGS frame

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
        thread.join(timeout=10)


def test_a_port_that_serves_a_client_without_a_certificate_is_unhealthy(
    fed: dict[str, Path], lax_server: int
) -> None:
    config = NodeConfig.load(_variant(fed["KR"], "lax.toml", listen=f"127.0.0.1:{lax_server}"))
    check = check_federation_port(config, timeout=5)
    assert not check.ok and "mutual TLS not enforced" in check.detail
