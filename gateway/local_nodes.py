"""Local nodes as `ewx serve` processes on 127.0.0.1: what `ewx demo` and the tests start.

Each node is a real child process with its own data directory and operator
socket; `assign_free_ports` points a development federation's configs at
ports free right now.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import tomli_w

from node.config import NodeConfig
from node.errors import ConfigError, EwxError
from node.ids import COUNTRIES, Country
from node.operator import OperatorClient

START_TIMEOUT_SECONDS = 20.0
"""How long a node may take to serve its peers after it was started."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assign_free_ports(
    root: Path,
    countries: tuple[Country, ...] = COUNTRIES,
    *,
    port_source: Callable[[], int] = _free_port,
    **settings: float | str,
) -> dict[Country, Path]:
    """Rewrite each node.toml under `root` to use ports free right now (and any `settings`).

    `port_source` gives each port; the default asks the kernel for one free now
    (tests running in parallel pass their own, tests/support/ports.py).
    """
    ports = {cc: port_source() for cc in countries}
    paths: dict[Country, Path] = {}
    for cc in countries:
        path = root / cc / "node.toml"
        data = tomllib.loads(path.read_text())
        data["listen"] = f"127.0.0.1:{ports[cc]}"
        for peer in data["peers"]:
            data["peers"][peer]["address"] = f"127.0.0.1:{ports[peer]}"
        data.update(settings)
        path.write_text(tomli_w.dumps(data))
        paths[cc] = path
    return paths


@dataclass
class NodeProcess:
    """One `ewx serve` child process and its operator client."""

    country: Country
    config: Path
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]

    @classmethod
    def start(cls, country: Country, config: Path) -> NodeProcess:
        """Start `ewx serve --config config`; its log goes beside the config."""
        log_file = (config.parent / "node.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=log_file,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
        )
        return cls(country, config, process, log_file)

    @property
    def client(self) -> OperatorClient:
        """Operator client for this node."""
        return OperatorClient(NodeConfig.load(self.config).operator_socket)

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Block until the node serves its peers (not just its operator socket), or fail."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise EwxError(
                    f"{self.country} node exited with {self.process.returncode}; "
                    f"see {self.config.parent / 'node.log'}"
                )
            with contextlib.suppress(ConfigError):  # socket not there yet
                if self.client.call("ping").get("serving"):
                    return
            if time.monotonic() > deadline:
                raise EwxError(f"{self.country} node did not start within {timeout:.0f}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; kill only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode
