"""Descriptor exhaustion on the federation port (issue 10, item 6).

Idle TCP connections that never start TLS used to stay open for gRPC's default
120 s handshake timeout, without limit; 20,000 of them exhausted the node's
descriptors. Now a handshake must finish within FEDERATION_HANDSHAKE_TIMEOUT_MS
and at most MAX_FEDERATION_CONNECTIONS are open at once (gateway/runtime.py).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import grpc

from node import limits
from node.config import NodeConfig
from node.ids import Country
from node.operator import OperatorClient
from tests.federation.test_hostile_matrix import _signed, deliver_as, identity_of
from tests.support.factories import alert_payload, running

Fed = dict[Country, Path]


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` (EOF) within `seconds`: a deadline, not a measured time."""
    sock.settimeout(seconds)
    try:
        return sock.recv(64) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_are_capped_and_closed_and_peers_get_through(federation: Fed) -> None:
    host, port = NodeConfig.load(federation["US"]).listen.rsplit(":", 1)
    address = (host, int(port))
    handshake = limits.FEDERATION_HANDSHAKE_TIMEOUT_MS / 1000

    async def scenario() -> None:
        async with running(federation["US"]) as nodes:
            idle = [socket.create_connection(address) for _ in range(limits.MAX_FEDERATION_CONNECTIONS)]
            try:
                extra = socket.create_connection(address)  # one past the cap: closed at once
                assert await asyncio.to_thread(_closed_within, extra, handshake / 2)
                extra.close()
                # The node keeps answering its operator meanwhile.
                client = OperatorClient(nodes["US"].config.operator_socket)
                assert (await asyncio.to_thread(client.call, "ping"))["node"] == "US"
                # Every idle one is closed once the handshake time is up (deadline: three times it).
                started = time.monotonic()
                for sock in idle:
                    left = max(0.1, 3 * handshake - (time.monotonic() - started))
                    assert await asyncio.to_thread(_closed_within, sock, left)
            finally:
                for sock in idle:
                    sock.close()
            # With the slots free again, a real peer's Deliver is stored.
            request = _signed(federation, alert_payload("KR", {"US": 1}))
            outcome = await deliver_as(federation["US"], identity_of(federation["KR"]), request)
            assert outcome.code == grpc.StatusCode.OK, outcome
            assert nodes["US"].service.store.last_seq("KR", "US") == 1

    asyncio.run(scenario())
