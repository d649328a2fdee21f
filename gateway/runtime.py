"""A running node: the core, the federation server, the peer loops, the operator API.

`ewx serve` runs one NodeRuntime until SIGTERM or SIGINT, then stops in
order: stop accepting operator and peer calls (in-flight calls get a short
grace period to finish their commit and receipt), stop the delivery loops,
close the channels, close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Final

import structlog
from grpc import aio
from grpc_health.v1 import _async as health_aio  # the asyncio servicer; `health.aio` re-exports it
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import rpc
from gateway.peers import DeliveryLoop, PeerClient, get_cosigned, pull
from gateway.server import FederationServicer
from gateway.tls import server_credentials
from node.config import NodeConfig
from node.errors import ConfigError
from node.ids import Country
from node.limits import MAX_GRPC_MESSAGE_BYTES
from node.operator import OperatorServer
from node.service import Clock, NodeService, utc_now

log = structlog.get_logger("ewx.gateway")

PULL_INTERVAL_SECONDS: Final = 5.0
STOP_GRACE_SECONDS: Final = 2.0


class NodeRuntime:
    """Everything one node runs, started and stopped together."""

    def __init__(self, config: NodeConfig, *, clock: Clock = utc_now) -> None:
        self.config = config
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[PeerClient] = []
        self._loops: dict[str, DeliveryLoop] = {}
        self.port: int | None = None

    async def start(self) -> None:
        """Open the store and start serving; returns once everything listens.

        The operator socket is claimed first: a second node started on the
        same data directory refuses before it touches the port or the peers.
        If any step fails, whatever already started is stopped again.
        """
        self.service = NodeService.open(self.config, clock=self._clock)
        self._operator = OperatorServer(self.service)
        self._server = aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
            ]
        )
        try:
            await self._operator.start(self.config.operator_socket)
            await self._start_federation()
            self._operator.serving = True
        except BaseException:
            await self.stop()
            raise
        log.info(
            "node_started",
            node=self.service.me,
            listen=self.config.listen,
            port=self.port,
            operator_socket=str(self.config.operator_socket),
            log_size=self.service.store.log_size,
        )

    async def _start_federation(self) -> None:
        service = self.service
        self._server.add_generic_rpc_handlers([FederationServicer(service).handler()])
        self._health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        try:
            self.port = self._server.add_secure_port(
                self.config.listen, server_credentials(config=self.config, trust=service.trust)
            )
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {self.config.listen}: {exc}") from None
        await self._server.start()
        for name in ("", rpc.SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._pull_wake = {peer: asyncio.Event() for peer in service.peers}
        service.on_gap = self._on_gap
        for peer in service.peers:
            client = PeerClient(service=service, peer=peer)
            self._clients.append(client)
            loop = DeliveryLoop(service=service, client=client)
            self._loops[peer] = loop
            self._tasks.append(asyncio.create_task(loop.run(), name=f"deliver-{peer}"))
            self._tasks.append(asyncio.create_task(self._pull_forever(client), name=f"pull-{peer}"))
        service.on_outbox = lambda peer: self._loops[peer].wake()
        self._tasks.append(asyncio.create_task(self._checkpoint_forever(), name="checkpoints"))

    async def _checkpoint_forever(self) -> None:
        """Sign a checkpoint at the configured cadence while the log grows, and
        have both peers witness it; a peer that is down catches up later."""
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_seconds)
            self.service.issue_checkpoint()
            await asyncio.gather(*(get_cosigned(client, self.service) for client in self._clients))

    async def _pull_forever(self, client: PeerClient) -> None:
        """Catch up from this peer now, then every few seconds or when woken.

        Alerts of the third node are relayed through this peer only while
        the third node itself is unreachable.
        """
        wake = self._pull_wake[client.peer]
        while True:
            wake.clear()
            await pull(client, self.service)
            for origin in self.service.peers:
                if origin != client.peer and self.service.links[origin].reachable is False:
                    await pull(client, self.service, origin=origin)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=PULL_INTERVAL_SECONDS)

    def _on_gap(self, origin: Country) -> None:
        """A delivery showed we lack earlier alerts of `origin`: pull now."""
        if origin in self._pull_wake:
            self._pull_wake[origin].set()

    async def stop(self) -> None:
        """Stop in order and close the store; safe to call once after start."""
        await self._operator.close()
        await self._server.stop(STOP_GRACE_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self._clients:
            await client.close()
        self.service.close()
        log.info("node_stopped", node=self.service.me)


async def serve(config: NodeConfig) -> None:
    """Run a node until SIGTERM or SIGINT, then stop cleanly."""
    runtime = NodeRuntime(config)
    await runtime.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await runtime.stop()
