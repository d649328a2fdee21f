"""A running node: the core, the federation server, the peer loops, the operator API.

`ewx serve` runs one NodeRuntime until SIGTERM or SIGINT, then stops in
order: stop accepting operator and peer calls (in-flight calls get a short
grace period to finish their commit and receipt), stop the delivery loops,
close the channels, close the store.

SIGHUP, or a change of the TLS certificate or key file (polled every
TLS_POLL_SECONDS), reloads the node's TLS identity without a restart
(`NodeRuntime.reload_tls`): new handshakes on the federation port and new
channels to the peers use it. A reload that fails a check keeps the
identity in use and logs `tls_reload_failed`; it never stops the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, Final, ParamSpec

import structlog
from grpc import aio
from grpc_health.v1 import _async as health_aio  # the asyncio servicer; `health.aio` re-exports it
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway import grpc_env, rpc, tls
from gateway.metrics import NodeMetrics
from gateway.peers import DeliveryLoop, PeerClient, check_history, get_cosigned, pull, rejoin
from gateway.server import FederationServicer
from gateway.tasks import being_cancelled, cancel_and_wait, woken_within
from node import limits
from node.clock import Clock, utc_now
from node.config import NodeConfig
from node.errors import ConfigError, StoreInUse, StoreUnavailable, UsageError
from node.ews.exposure import ExposureWorker
from node.files import DataDirLock
from node.ids import Country
from node.limits import DEADLINE_WATCH_SECONDS, MAX_GRPC_MESSAGE_BYTES
from node.operator import OperatorServer
from node.service import NodeService
from node.store import StoreThread

P = ParamSpec("P")

log = structlog.get_logger("ewx.gateway")

PULL_INTERVAL_SECONDS: Final = 5.0
STOP_GRACE_SECONDS: Final = 2.0
CONNECTION_IDLE_MS: Final = 5 * 60 * 1000
"""A peer connection with no call for this long is closed by the server."""
TAKEOVER_LISTEN_WAIT_SECONDS: Final = STOP_GRACE_SECONDS + 3.0
"""How long a standby that just took the lease waits, beyond one `lease_poll_seconds`, for
the listen addresses the former active may still hold (below, `_wait_for_listeners`)."""
LISTEN_POLL_SECONDS: Final = 0.05
PEER_HEALTH_POLL_SECONDS: Final = 1.0
"""How often each peer's health name is brought up to date from its link."""
TLS_POLL_SECONDS: Final = 2.0
"""How often the TLS files are looked at (stat only). A change is acted on once
the files have stayed the same for one more poll, so a certificate and key
renamed into place one after the other are read as a pair."""


@contextlib.contextmanager
def _survive(task: str, node: str) -> Iterator[None]:
    """Keep a background loop alive through one failed round (a bug, a broken peer).

    A loop that died would stop delivery or witnessing silently until a
    restart; the round is logged with its traceback and the loop goes on at
    its next turn. Its own cancellation still ends it; a CancelledError out of a
    call cancelled under it (grpc.aio raises one) is a failed round too.
    """
    try:
        yield
    except asyncio.CancelledError:
        if being_cancelled():
            raise
        log.error("background_round_failed", node=node, task=task, error="a call was cancelled")
    except Exception:
        log.exception("background_round_failed", node=node, task=task)


class NodeRuntime:
    """Everything one node runs, started and stopped together."""

    def __init__(
        self, config: NodeConfig, *, clock: Clock = utc_now, tls_poll_seconds: float = TLS_POLL_SECONDS
    ) -> None:
        self.config = config
        self._clock = clock
        self._tls_poll_seconds = tls_poll_seconds
        self._local_health: aio.Server | None = None
        self.deadline_watch_seconds = DEADLINE_WATCH_SECONDS
        """How often to look for acknowledgements that became overdue (a test shortens it)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[PeerClient] = []
        self._loops: dict[str, DeliveryLoop] = {}
        self.port: int | None = None
        self.lease_lost = asyncio.Event()
        """Set when a PostgreSQL store's lease is gone: the node must stop (`serve` does)."""

    async def start(self) -> None:
        """Open the store and start serving; returns once everything listens.

        The data directory's lock is taken first, then the operator socket:
        a second node started on the same data directory refuses before it
        opens the store, touches the port or the peers. If any step fails,
        whatever already started is stopped again.
        """
        self._lock = DataDirLock.acquire(self.config.data_dir)
        self.store_thread = StoreThread(self.config.node_id)
        try:
            self.service, took_over = await self._open_service()
        except BaseException:
            self.store_thread.close()
            self._lock.release()
            raise
        self.service.store_thread = self.store_thread
        self.metrics = NodeMetrics(self.service)
        self.service.observer = self.metrics
        try:
            # an empty store waits for a peer's word (issue 10, item 2)
            await self.service.call(self.service.check_store_at_start)
            if took_over:
                await self._wait_for_listeners()
        except BaseException:
            await self.service.call(self.service.close)
            self.store_thread.close()
            self._lock.release()
            raise
        self._operator = OperatorServer(
            self.service,
            extra={
                "recheck_exposure": self._recheck_exposure,
                "ews_scanned": self._ews_scanned,
                "rejoin": self._rejoin,
                "first_start": self._first_start,
            },
        )
        self._server = aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
                # HTTP/2 bounds each connection as admission bounds each peer:
                # a connection cannot hold more streams than a peer may have
                # calls, and one left idle is closed (peers reconnect at once).
                ("grpc.max_concurrent_streams", self.config.peer_max_concurrent_calls),
                ("grpc.max_connection_idle_ms", CONNECTION_IDLE_MS),
                # Before authentication: a connection that does not finish its
                # handshake soon is closed, and there are only so many at once.
                ("grpc.server_handshake_timeout_ms", limits.FEDERATION_HANDSHAKE_TIMEOUT_MS),
                ("grpc.max_allowed_incoming_connections", limits.MAX_FEDERATION_CONNECTIONS),
                ("grpc.max_connection_age_ms", limits.MAX_CONNECTION_AGE_MS),
                ("grpc.max_connection_age_grace_ms", limits.CONNECTION_AGE_GRACE_MS),
                # gRPC sets SO_REUSEPORT by default: a second node on this port
                # would share it, and peers would reach either one at random.
                ("grpc.so_reuseport", 0),
            ]
        )
        try:
            await self._operator.start(self.config.operator_socket)
            await self._start_federation()
            if self.config.metrics_listen is not None:
                self.metrics.start(self.config.metrics_listen)
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
            log_size=self.service.log_size,
            certificate_serial=self.tls.identity.serial,
            certificate_not_after=self.tls.identity.not_after.isoformat(),
            tls13_only=grpc_env.TLS13_ONLY,
        )

    async def _open_service(self) -> tuple[NodeService, bool]:
        """Open the store, and with it the service; a PostgreSQL store whose lease another
        process holds (the active of an active/standby pair) is waited for: this process
        is the standby, serving nothing, until the lease is free (issue 16, item 3).
        Returns the service and whether it waited (a takeover)."""
        waiting_since: float | None = None
        while True:
            try:
                service = await self.store_thread.run(NodeService.open, self.config, clock=self._clock)
            except StoreInUse as exc:
                if self.config.store is None:
                    raise
                if waiting_since is None:
                    waiting_since = asyncio.get_running_loop().time()
                    log.info(
                        "store_lease_waiting",
                        node=self.config.node_id,
                        store=self.config.store_place,
                        reason=str(exc),
                    )
                await asyncio.sleep(self.config.store.lease_poll_seconds)
                continue
            if waiting_since is not None:
                log.warning(
                    "store_lease_taken",
                    node=self.config.node_id,
                    store=self.config.store_place,
                    waited_seconds=round(asyncio.get_running_loop().time() - waiting_since, 3),
                )
            return service, waiting_since is not None

    async def _wait_for_listeners(self) -> None:
        """After a takeover, wait until the former active has let go of the listen addresses.

        The lease is free as soon as the database ends the active's connection, but the
        active learns it only at its next check (its `lease_poll_seconds`), and then stops:
        until it does, a pair on one host (docs/postgresql.md, the same `listen`) finds the
        federation port (and `metrics_listen`) still bound, and binding now would fail and
        end this process too, leaving no one to serve. An address still busy after the
        bound is left to the bind below, which says so.
        """
        store = self.config.store
        poll = store.lease_poll_seconds if store is not None else 0.0
        addresses = [a for a in (self.config.listen, self.config.metrics_listen) if a is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + poll + TAKEOVER_LISTEN_WAIT_SECONDS
        busy = [a for a in addresses if _address_in_use(a)]
        if not busy:
            return
        began = loop.time()
        log.info("takeover_listen_waiting", node=self.config.node_id, addresses=busy)
        while busy and loop.time() < deadline:
            await asyncio.sleep(LISTEN_POLL_SECONDS)
            busy = [a for a in busy if _address_in_use(a)]
        log.info(
            "takeover_listen_free" if not busy else "takeover_listen_still_busy",
            node=self.config.node_id,
            addresses=busy,
            waited_seconds=round(loop.time() - began, 3),
        )

    async def _watch_lease_forever(self, poll_seconds: float) -> None:
        """Stop serving as soon as the PostgreSQL store's lease is gone.

        The lease is the store connection's own advisory lock, so a process
        without it can no longer write; but it would still answer peers and its
        operator from what it last knew while another process has become the
        active. Checked every `poll_seconds` ([store] lease_poll_seconds) by a round trip on that
        connection; `serve` then stops the node and exits non-zero, and the
        supervisor's restart makes it the standby.
        """
        while True:
            await asyncio.sleep(poll_seconds)
            if not await self.service.call(self.service.holds_store):
                log.error(
                    "store_lease_lost",
                    node=self.service.me,
                    store=self.config.store_place,
                    reason="the connection to the store's database is gone",
                )
                self.lease_lost.set()
                return

    async def _start_federation(self) -> None:
        service = self.service
        self._server.add_generic_rpc_handlers([FederationServicer(service).handler()])
        self._health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._start_tls()
        try:
            self.port = self._server.add_secure_port(self.config.listen, self.tls.server_credentials())
        except RuntimeError as exc:
            problem = _bind_problem(self.config.listen, exc)
            raise ConfigError(f"cannot listen on {self.config.listen}: {problem}") from None
        if self.config.grpc_reflection:  # off by default: a peer need not learn the schema this way
            reflection.enable_server_reflection(
                (
                    rpc.SERVICE_NAME,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                self._server,
            )
        await self._server.start()
        await self._start_local_health()
        for name in ("", rpc.SERVICE_NAME, *(peer_health_name(peer) for peer in service.peers)):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._pull_wake = {peer: asyncio.Event() for peer in service.peers}
        loop = asyncio.get_running_loop()
        # The service calls these from the store's thread, after a commit; the
        # events and queues they touch belong to the loop.
        service.on_gap = _on_loop(loop, self._on_gap)
        for peer in service.peers:
            client = PeerClient(
                service=service, peer=peer, credentials=self.tls.channel_credentials(service.trust, peer)
            )
            self._clients.append(client)
            delivery = DeliveryLoop(service=service, client=client)
            delivery.on_delivered = self.metrics.delivered
            self._loops[peer] = delivery
            self._tasks.append(asyncio.create_task(delivery.run(), name=f"deliver-{peer}"))
            self._tasks.append(asyncio.create_task(self._pull_forever(client), name=f"pull-{peer}"))
        service.on_outbox = _on_loop(loop, lambda peer: self._loops[peer].wake())
        await self._start_exposure_checks()
        self._tasks.append(asyncio.create_task(self._checkpoint_forever(), name="checkpoints"))
        self._tasks.append(asyncio.create_task(self._peer_health_forever(), name="peer-health"))
        self._tasks.append(asyncio.create_task(self._watch_tls_forever(), name="tls-watch"))
        self._tasks.append(asyncio.create_task(self._watch_deadlines_forever(), name="deadline-watch"))
        if self.config.store is not None:  # a SQLite file has no lease
            watch = self._watch_lease_forever(self.config.store.lease_poll_seconds)
            self._tasks.append(asyncio.create_task(watch, name="lease-watch"))

    async def _start_local_health(self) -> None:
        """The same health service on a local unix socket (0600) and nothing else there.

        On the federation port it answers peers only, whose certificates come
        from their CAs; the node's own host (a container HEALTHCHECK, `ewx
        health`, a load balancer's agent) holds none, so it asks here.
        """
        path = self.config.health_socket
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a node that died: the data directory's lock says none runs
        server = aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        old = os.umask(0o177)
        try:
            server.add_insecure_port(f"unix:{path}")
            await server.start()
        finally:
            os.umask(old)
        path.chmod(0o600)
        self._local_health = server

    async def _start_exposure_checks(self) -> None:
        """Every peer ALERT and UPDATE stored is checked against this node's own data (SPEC 7)."""
        service = self.service
        worker = ExposureWorker(
            data_dir=self.config.data_dir,
            months=self.config.ews.history,
            lookup=lambda alerts: service.call(service.alert_scopes, alerts),
            record=lambda exposures: service.call(service.record_exposures, exposures),
            unchecked=lambda after, limit: service.call(
                service.peer_alerts, without_exposure=True, after_index=after, limit=limit
            ),
            everything=lambda after, limit: service.call(
                service.peer_alerts, without_exposure=False, after_index=after, limit=limit
            ),
            node=service.me,
        )
        self._exposure = worker
        loop = asyncio.get_running_loop()
        service.on_peer_alerts = _on_loop(loop, worker.submit_many)
        self._tasks.append(
            asyncio.create_task(self._survive_forever("exposure", worker.run), name="exposure")
        )

    async def _ews_scanned(self, args: dict[str, Any]) -> dict[str, bool]:
        """`ewx ews scan` says what it found, for the metrics (the scan runs in its own process)."""
        seconds, detections = args.get("seconds"), args.get("detections")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < 86400
            or not isinstance(detections, dict)
            or not all(
                isinstance(k, str) and type(v) is int and 0 <= v < 10**9 for k, v in detections.items()
            )
        ):
            raise UsageError("ews_scanned needs 'seconds' (0 to 86400) and 'detections' {severity: count}")
        self.metrics.scanned(float(seconds), detections)
        return {"recorded": True}

    async def _recheck_exposure(self, _args: dict[str, Any]) -> dict[str, int]:
        """After new early-warning data: check every stored peer ALERT and UPDATE again."""
        queued = await self.service.call(self.service.count_peer_alerts)
        self._exposure.recheck_all()
        return {"queued": queued}

    async def _rejoin(self, _args: dict[str, Any]) -> dict[str, Any]:
        """`ewx node rejoin`: recover this node's own alerts from its peers (gateway/peers.py)."""
        return await rejoin(self._clients, self.service)

    async def _first_start(self, _args: dict[str, Any]) -> dict[str, Any]:
        """`ewx node first-start`: publish before any peer has answered (NodeService.declare_first_start)."""
        return await self.service.call(self.service.declare_first_start)

    async def _survive_forever(self, task: str, run: Callable[[], Awaitable[None]]) -> None:
        while True:
            with _survive(task, self.service.me):
                await run()

    # ------------------------------------------------------------ TLS identity
    def _start_tls(self) -> None:
        """Load and check the TLS identity; ConfigError unless it is sound (expiry only warns)."""
        self._tls_files = tls.file_state(self.config)
        self.tls, problem = tls.NodeTls.load(self.config, self.service.trust, at=self._clock())
        self.service.certificate_in_use = lambda: self.tls.identity.certificate
        identity = self.tls.identity
        if problem is not None:
            log.error(
                "tls_certificate_not_valid",
                node=self.service.me,
                serial=identity.serial,
                not_after=identity.not_after.isoformat(),
                error=problem,
            )
        if not grpc_env.TLS13_ONLY:
            log.warning(
                "tls13_not_enforced",
                node=self.service.me,
                reason=f"grpc was imported before gateway.tls set {grpc_env.CIPHER_SUITES_VARIABLE} (gateway/grpc_env.py)",
            )

    def reload_tls(self, trigger: str) -> bool:
        """Reload the TLS certificate and key from their files; True if the node switched to them.

        On success new handshakes and new channels to the peers use the new
        identity (connections already open keep theirs) and `tls_reloaded`
        names the new serial and expiry. On any failed check the identity in
        use stays, `tls_reload_failed` says why, and False is returned.
        """
        me = self.service.me
        before = self.tls.identity
        self._tls_files = tls.file_state(self.config)
        try:
            identity = self.tls.reload(self.service.trust, at=self._clock())
        except Exception as exc:  # a reload never takes the node down, whatever went wrong
            log.error(
                "tls_reload_failed",
                node=me,
                trigger=trigger,
                error=str(exc) if isinstance(exc, ConfigError) else f"unexpected {exc!r}",
                certificate=str(self.config.tls.certificate),
                private_key=str(self.config.tls.private_key),
                serial_in_use=before.serial,
                not_after_in_use=before.not_after.isoformat(),
            )
            return False
        if identity is None:
            log.info("tls_unchanged", node=me, trigger=trigger, serial=before.serial)
            return False
        for client in self._clients:
            client.renew(self.tls.channel_credentials(self.service.trust, client.peer))
        log.info(
            "tls_reloaded",
            node=me,
            trigger=trigger,
            serial=identity.serial,
            not_after=identity.not_after.isoformat(),
            previous_serial=before.serial,
        )
        return True

    async def _watch_tls_forever(self) -> None:
        """Reload when the TLS files changed and then stayed the same for one poll."""
        seen = self._tls_files
        while True:
            await asyncio.sleep(self._tls_poll_seconds)
            now = tls.file_state(self.config)
            if now == seen and now != self._tls_files:
                self.reload_tls("file_change")
            seen = now

    async def _watch_deadlines_forever(self) -> None:
        """Log each acknowledgement once, when it becomes overdue (node/situation/deadlines.py)."""
        while True:
            await asyncio.sleep(self.deadline_watch_seconds)
            with _survive("deadline-watch", self.service.me):
                for due in await self.service.call(self.service.watch_deadlines):
                    log.warning(
                        "ack_overdue",
                        node=self.service.me,
                        peer=due.recipient,
                        origin=due.origin,
                        alert_id=due.alert_id,
                        severity=due.severity,
                        due=due.due.isoformat(),
                    )

    async def _peer_health_forever(self) -> None:
        """Each peer's health name: NOT_SERVING once it has been unreachable for
        `peer_unhealthy_after_seconds`, SERVING again once a call gets through."""
        started = self._clock()
        patience = timedelta(seconds=self.config.peer_unhealthy_after_seconds)
        shown: dict[Country, bool] = {}
        while True:
            await asyncio.sleep(min(PEER_HEALTH_POLL_SECONDS, patience.total_seconds()))
            now = self._clock()
            for peer in self.service.peers:
                link = self.service.link(peer)
                healthy = link.reachable is not False or now - (link.last_ok or started) < patience
                if shown.get(peer, True) != healthy:
                    status = (
                        health_pb2.HealthCheckResponse.SERVING
                        if healthy
                        else health_pb2.HealthCheckResponse.NOT_SERVING
                    )
                    await self._health.set(peer_health_name(peer), status)
                    log.info(
                        "peer_health",
                        node=self.service.me,
                        peer=peer,
                        serving=healthy,
                        last_error=link.last_error,
                    )
                shown[peer] = healthy

    async def _checkpoint_forever(self) -> None:
        """Sign a checkpoint at the configured cadence while the log grows, and
        have both peers witness it; a peer that is down catches up later."""
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_seconds)
            with _survive("checkpoints", self.service.me):
                await self.service.call(self.service.issue_checkpoint)
                await asyncio.gather(*(get_cosigned(client, self.service) for client in self._clients))

    async def _pull_forever(self, client: PeerClient) -> None:
        """Catch up from this peer now, then every few seconds (unless its pushes arrive in
        order) or when woken (a gap in them).

        Alerts of the third node are relayed through this peer only while
        the third node itself is unreachable.
        """
        wake = self._pull_wake[client.peer]
        link = self.service.link(client.peer)
        checked = False
        woken = True  # at start: pull
        while True:
            wake.clear()
            with _survive(f"pull-{client.peer}", self.service.me):
                # At start, and again whenever the peer is reached after it was
                # not: a node that could reach no peer at start must not go on
                # believing its store holds all its history (issue 10, item 2).
                if not checked:
                    checked = await check_history(client, self.service)
                # Not the periodic pull while the peer's pushes arrive in order: it would
                # fetch what the peer has in flight, store it a second time as duplicates
                # pushed after, and pause the peer's window (a third of a 150 ms link's
                # work went so, issue 15). A gap in its pushes wakes this loop (_on_gap).
                if woken or not link.is_pushing(time.monotonic(), PULL_INTERVAL_SECONDS):
                    await pull(client, self.service)
                if link.reachable is False:
                    checked = False
                for origin in self.service.peers:
                    if origin != client.peer and self.service.link(origin).reachable is False:
                        await pull(client, self.service, origin=origin)
            woken = await woken_within(wake, PULL_INTERVAL_SECONDS)

    def _on_gap(self, origin: Country) -> None:
        """A delivery showed we lack earlier alerts of `origin`: pull now."""
        if origin in self._pull_wake:
            self._pull_wake[origin].set()

    async def stop(self) -> None:
        """Stop in order and close the store; safe to call once after start."""
        self.metrics.stop()
        await self._operator.close()
        await self._server.stop(STOP_GRACE_SECONDS)
        if self._local_health is not None:
            await self._local_health.stop(None)
            with contextlib.suppress(FileNotFoundError):
                self.config.health_socket.unlink()
        # A stop that is itself cancelled meanwhile stays cancelled; a loop that had
        # ended in a failure is told, and the store is closed all the same.
        for task, exc in await cancel_and_wait(*self._tasks):
            log.error("task_failed", node=self.service.me, task=task.get_name(), error=repr(exc))
        for client in self._clients:
            await client.close()
        await self.service.call(self.service.close)
        self.store_thread.close()
        self._lock.release()
        log.info("node_stopped", node=self.service.me)


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[P, object]) -> Callable[P, None]:
    """`callback`, made safe to call from the store's thread: it runs on `loop`, soon after.

    It runs after a commit (Tx.after_commit): once the loop is closed (the node stops)
    there is nothing left to wake, and raising there would fail a committed publish, or
    every publish of its group, to its caller.
    """

    def schedule(*args: P.args, **kwargs: P.kwargs) -> None:
        with contextlib.suppress(RuntimeError):  # "Event loop is closed"
            loop.call_soon_threadsafe(functools.partial(callback, *args, **kwargs))

    return schedule


def peer_health_name(peer: Country) -> str:
    """The gRPC health service name of one peer's link: `ewx.v1.Federation/<CC>`."""
    return f"{rpc.SERVICE_NAME}/{peer}"


def _address_in_use(listen: str) -> bool:
    """Whether another socket listens on `listen` (host:port) now; a port 0 or an address
    this host cannot bind is not "in use" (the real bind reports it)."""
    try:
        if int(listen.rpartition(":")[2]) == 0:
            return False
        error = _bind_error(listen)
    except (OSError, ValueError):
        return False
    return error is not None and error.errno == errno.EADDRINUSE


def _bind_problem(listen: str, exc: RuntimeError) -> str:
    """Why gRPC could not bind `listen` ("address in use" above all), found by binding it once more."""
    try:
        error = _bind_error(listen)
    except (OSError, ValueError):
        return f"not an address this host can listen on ({exc})"
    if error is None:
        return str(exc)
    if error.errno == errno.EADDRINUSE:
        return "address in use (is another node running on this port?)"
    return error.strerror or str(error)


def _bind_error(listen: str) -> OSError | None:
    """Bind each address `listen` (host:port) resolves to, as gRPC and the metrics server
    do (SO_REUSEADDR, so a port in TIME_WAIT binds), and let go at once: the first bind's
    error, or None. A name that does not resolve raises (OSError, ValueError)."""
    host, _, port = listen.rpartition(":")
    infos = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM)
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as bind_error:
                return bind_error
    return None


async def serve(config: NodeConfig) -> None:
    """Run a node until SIGTERM or SIGINT, then stop cleanly; SIGHUP reloads the TLS identity."""
    runtime = NodeRuntime(config)
    loop = asyncio.get_running_loop()

    def on_hangup() -> None:
        # Caught from the start, so an early SIGHUP cannot kill the node (its
        # default action); before the identity is loaded there is nothing to reload.
        if runtime.port is not None:
            runtime.reload_tls("SIGHUP")

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # A standby waits in start() for its store's lease, for as long as the active lives:
    # SIGTERM must end that wait too.
    starting = asyncio.create_task(runtime.start(), name="start")
    asked_to_stop = asyncio.create_task(stopping.wait(), name="stop-signal")
    await asyncio.wait((starting, asked_to_stop), return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        await cancel_and_wait(starting)
        log.info("node_stopped", node=config.node_id, before="serving")
        return
    starting.result()  # a start that failed raises here
    lease_lost = asyncio.create_task(runtime.lease_lost.wait(), name="lease-lost")
    await asyncio.wait((asked_to_stop, lease_lost), return_when=asyncio.FIRST_COMPLETED)
    await cancel_and_wait(asked_to_stop, lease_lost)
    await runtime.stop()
    if runtime.lease_lost.is_set():
        raise StoreUnavailable(
            f"{config.node_id} lost the lease of its store {config.store_place} and stopped serving"
            " (another process may hold it now); start it again to wait as the standby"
        )
