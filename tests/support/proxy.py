"""A small asyncio TCP proxy for fault tests: one instance per directed link.

A `LinkProxy` listens on 127.0.0.1 (port 0 by default) and forwards every
connection to one target port. While a test runs it can:

- `cut()`: reset every open connection (RST) and answer each new one with an
  immediate reset, so gRPC sees UNAVAILABLE at once rather than a deadline;
- `drop()`: black-hole the link: connections stay open but every byte is
  discarded both ways (a partition that packets fall into); `restore()`
  then resets those connections so the peers reconnect on a clean stream;
- `restore()`: forward normally again;
- `delay(seconds)` or `delay(up=..., down=...)`: add latency to each
  direction (0.06 is a trans-Pacific hop), preserving byte order;
- `lose(p, resend_after=0.2)`: each chunk is lost with probability `p` and
  arrives `resend_after` seconds late, the later ones waiting behind it: what
  TCP makes of a lost segment (resent after its retransmission timeout, 200 ms
  at least on Linux, and delivered in order), where a reset would be a far
  harsher fault than packet loss;
- `reset_every(n_bytes)` or `reset_every(probability=p)`: reset a connection
  after it carried `n_bytes` (both directions counted), or after any chunk
  with probability `p`, so resets land at arbitrary points of a call:
  before the request, or after the request but before the reply.

"Up" is client to target, "down" is target to client.

Use it inside a test's event loop (`async with LinkProxy(port) as p:`), or,
when the programs under test are separate processes and the test blocks,
in a `ProxyThread`, which runs its own loop in a daemon thread and closes
every proxy when its `with` block ends. The control methods are plain
synchronous calls that are safe from any thread; called from another
thread they return once the change has taken effect on the proxy's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")

UP: Literal["up"] = "up"
DOWN: Literal["down"] = "down"
Direction = Literal["up", "down"]

_CHUNK = 65536
_CONNECT_TIMEOUT = 5.0


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Abort a stream's transport so the kernel sends RST, not FIN."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class ProxyStats:
    """What a proxy did, for assertions that the fault really happened."""

    accepted: int = 0
    refused: int = 0
    """Connections answered with an immediate reset while cut."""
    resets: int = 0
    """Open connections reset by cut(), restore() after drop(), or reset_every."""
    bytes_up: int = 0
    bytes_down: int = 0
    dropped_bytes: int = 0
    lost: int = 0
    """Chunks lost and resent late by lose()."""


class _Connection:
    """One proxied client connection and its upstream."""

    def __init__(self, proxy: LinkProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.carried = 0
        self.dropped = False  # saw drop(): its byte stream has holes, reset it on restore
        self.closed = False
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.stats.resets += 1
        _rst(self.client)
        _rst(self.upstream)
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def close(self) -> None:
        """A clean close after one side finished (FIN both ways)."""
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.close()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


class LinkProxy:
    """Forward connections on 127.0.0.1:`port` to `target_host`:`target_port`, with faults."""

    def __init__(
        self, target_port: int, *, target_host: str = "127.0.0.1", name: str = "", seed: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.name = name or f"->{target_port}"
        self.port = 0
        """The listening port, once started."""
        self.stats = ProxyStats()
        self._mode: Literal["open", "cut", "drop"] = "open"
        self._delay: dict[Direction, float] = {UP: 0.0, DOWN: 0.0}
        self._reset_bytes: int | None = None
        self._reset_probability = 0.0
        self._loss = (0.0, 0.0)
        """(probability a chunk is lost, seconds until it is resent)."""
        self._rng = random.Random(seed)  # reproducible reset and loss points
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"LinkProxy({self.name}, :{self.port} -> {self.target[1]}, {self._mode})"

    # ------------------------------------------------------------ lifecycle
    async def start(self, port: int = 0) -> LinkProxy:
        """Listen on 127.0.0.1:`port` (0: any free port); `self.port` is then set."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop listening and reset every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.reset()
        tasks = [t for conn in self._connections for t in conn.tasks]
        self._connections.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LinkProxy:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def address(self) -> str:
        """`127.0.0.1:port` to give a client instead of the target's address."""
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------ faults (thread-safe)
    def cut(self) -> None:
        """Reset every open connection and refuse new ones (each is reset on accept)."""
        self._on_loop(self._cut)

    def drop(self) -> None:
        """Black-hole the link: keep connections open, discard every byte both ways."""
        self._on_loop(self._drop)

    def restore(self) -> None:
        """Forward normally again; connections that lost bytes to drop() are reset."""
        self._on_loop(self._restore)

    def delay(
        self, seconds: float | None = None, *, up: float | None = None, down: float | None = None
    ) -> None:
        """Latency per direction: `delay(0.06)` both ways, or `delay(up=..., down=...)`."""
        if seconds is not None:
            up = down = seconds
        if up is not None:
            self._delay[UP] = max(0.0, up)
        if down is not None:
            self._delay[DOWN] = max(0.0, down)

    def lose(self, probability: float, *, resend_after: float = 0.2) -> None:
        """Lose each chunk with `probability`: it arrives `resend_after` s late, in order."""
        self._loss = (probability, max(0.0, resend_after))

    def reset_every(self, n_bytes: int | None = None, *, probability: float = 0.0) -> None:
        """Reset a connection once it carried `n_bytes`, or after each chunk with `probability`.

        `reset_every()` with neither turns resets off.
        """
        self._reset_bytes = n_bytes
        self._reset_probability = probability

    def _cut(self) -> None:
        self._mode = "cut"
        for conn in list(self._connections):
            conn.reset()

    def _drop(self) -> None:
        self._mode = "drop"
        for conn in self._connections:
            conn.dropped = True

    def _restore(self) -> None:
        self._mode = "open"
        for conn in list(self._connections):
            if conn.dropped:
                conn.reset()

    def _on_loop(self, action: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:  # not started yet: just set the state
            action()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
            return

        async def run() -> None:
            action()

        asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10)

    # ------------------------------------------------------------ forwarding
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "cut":
            self.stats.refused += 1
            _rst(writer)
            return
        self.stats.accepted += 1
        conn = _Connection(self, writer)
        conn.dropped = self._mode == "drop"
        self._connections.add(conn)
        try:
            if conn.dropped:  # a black hole: nothing reaches the target
                conn.tasks = [asyncio.create_task(self._discard(reader))]
            else:
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection(*self.target), _CONNECT_TIMEOUT
                    )
                except (OSError, TimeoutError):
                    conn.reset()  # target down: the client sees a reset, as it would directly
                    return
                conn.upstream = up_writer
                if conn.closed:  # cut while connecting
                    _rst(up_writer)
                    return
                conn.tasks = [
                    asyncio.create_task(self._pump(conn, reader, up_writer, UP)),
                    asyncio.create_task(self._pump(conn, up_reader, writer, DOWN)),
                ]
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            conn.close()
        finally:
            self._connections.discard(conn)

    async def _discard(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(_CHUNK):
            self.stats.dropped_bytes += len(data)

    async def _pump(
        self, conn: _Connection, src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: Direction
    ) -> None:
        """Forward `src` to `dst` in order, each chunk after the direction's delay; EOF likewise."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        writer = asyncio.create_task(self._write(conn, queue, dst, direction))
        try:
            while data := await src.read(_CHUNK):
                if conn.dropped or self._mode == "drop":
                    conn.dropped = True
                    self.stats.dropped_bytes += len(data)
                else:
                    due = loop.time() + self._delay[direction]
                    probability, resend_after = self._loss
                    if probability and self._rng.random() < probability:
                        self.stats.lost += 1
                        due += resend_after  # the writer keeps order: later chunks wait behind it
                    queue.put_nowait((due, data))
            queue.put_nowait((loop.time() + self._delay[direction], b""))
            await writer
        except OSError:
            conn.reset()
        finally:
            writer.cancel()

    async def _write(
        self,
        conn: _Connection,
        queue: asyncio.Queue[tuple[float, bytes]],
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await queue.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if conn.closed:
                    return
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()  # half-close, as the source did
                    return
                if conn.dropped:
                    continue
                dst.write(data)
                await dst.drain()
                if direction == UP:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                conn.carried += len(data)
                if (self._reset_bytes is not None and conn.carried >= self._reset_bytes) or (
                    self._reset_probability and self._rng.random() < self._reset_probability
                ):
                    conn.reset()
                    return
        except OSError:
            conn.reset()


class ProxyThread:
    """An event loop in a daemon thread that runs LinkProxies while the test blocks.

    `with ProxyThread() as proxies: link = proxies.add(target_port)`; leaving
    the block closes every proxy, stops the loop and joins the thread.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="link-proxies", daemon=True)
        self.proxies: list[LinkProxy] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the proxies' loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def add(self, target_port: int, *, name: str = "", seed: int = 0) -> LinkProxy:
        """Start a proxy towards `target_port` on this thread's loop."""
        proxy = LinkProxy(target_port, name=name, seed=seed)
        self.call(proxy.start())
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        """Close every proxy, stop the loop, join the thread; safe to call twice."""
        if not self._thread.is_alive():
            if not self._loop.is_running():
                self._loop.close()
            return
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                self.call(proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
