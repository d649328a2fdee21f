"""Ports for test nodes that no other test, worker or outgoing connection can take meanwhile.

`assign_free_ports`' default binds port 0 and releases it for the node to bind
later; in between, a parallel pytest-xdist worker's bind(0) or any outgoing
connection's source port may take it, and the node then fails to start. Test
ports come instead from below the kernel's ephemeral range (which bind(0) and
outgoing connections draw from), each xdist worker from its own slice, in
turn, skipping any port still bound.
"""

from __future__ import annotations

import itertools
import os
import socket

LOW, HIGH = 10_000, 32_000
"""Below Linux's default ephemeral range (32768-60999): nothing picks these on its own."""

SLICES = 8
"""Room for up to eight workers (`pytest -n 8`); worker gwN takes slice N modulo this."""


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0) % SLICES
    width = (HIGH - LOW) // SLICES
    return range(LOW + index * width, LOW + (index + 1) * width)


_candidates = itertools.cycle(_slice())


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC's server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def next_port() -> int:
    """The next port of this worker's slice that nothing holds now."""
    for _ in range(len(_slice())):
        port = next(_candidates)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {_slice()}")
