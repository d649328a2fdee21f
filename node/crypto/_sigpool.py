"""Ed25519 verification in worker processes, shared by the audit and inbound catch-up.

Verifying signatures is the largest cost of an audit (node/audit/_verify.py) and
about half that of a catch-up page (NodeService.receive_many): some 110 us
of one core each. Both hand it to a pool of processes in the same way:

- `SignatureCheck` and `verify_signatures`: what a worker does, over plain
  picklable values: raw Ed25519 over PAE(type, payload) with a public key
  given as bytes. Workers hold no trust state: which key is valid for what,
  and when (trust, validity, revocation), is decided in the calling process
  (for inbound alerts by verify_alert, which takes a verdict from here only
  for exactly the check it would make itself).
- `pool_context`: how workers start (a forkserver).
- `ChunkedRunner`: feeds items to a pool in chunks as a caller adds them,
  hands the outcomes back in order, and finishes in-process should the pool
  break.
- `page_verdicts`: the inbound side's long-lived pool, its threshold and its
  fallback.

The pool's workers start from a forkserver, which imports the main module
afresh in each worker, as Python's multiprocessing does outside plain fork:
a script that verifies in a pool must guard its entry point with
`if __name__ == "__main__":` (the `ewx` command and the benches do).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Final, Generic, NamedTuple, TypeVar

import structlog

from node.crypto._signing import verify_signature
from node.digits import ascii_int

__all__ = [
    "INBOUND_MIN_PARALLEL",
    "INBOUND_WORKERS_ENV",
    "ChunkedRunner",
    "SignatureCheck",
    "available_cpus",
    "exit_with_parent",
    "page_verdicts",
    "pool_context",
    "verify_signatures",
]

log = structlog.get_logger("ewx.node")

In = TypeVar("In")
Out = TypeVar("Out")


class SignatureCheck(NamedTuple):
    """One Ed25519 check: raw 32-byte public key, payload type, signed bytes, signature."""

    public_key: bytes
    payload_type: str
    payload: bytes
    signature: bytes


def verify_signatures(checks: Sequence[SignatureCheck]) -> list[bool]:
    """Verify each check (PAE of node.signing); True where the signature holds.

    Pure and over picklable values only, so a caller may split `checks` into
    chunks and run them in other processes.
    """
    return [verify_signature(c.public_key, c.payload_type, c.payload, c.signature) for c in checks]


def available_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def exit_with_parent() -> None:
    """Pool initializer: end this worker as soon as the process that started it dies.

    A ProcessPoolExecutor worker otherwise outlives a parent killed with
    SIGKILL, waiting on a queue whose write end it holds itself, and keeps
    the forkserver alive with it: every node killed -9 and restarted would
    leave a worker, the forkserver and its resource tracker behind. multiprocessing gives each worker a sentinel
    of the process that asked for it (the node, not the forkserver).
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def pool_context(preload: str) -> multiprocessing.context.BaseContext:
    """forkserver: workers are forked from a clean single-threaded server process.

    Plain fork would be cheaper to start, but pools are started inside
    processes with other threads (gRPC's, a test runner's), and a forked
    child can inherit a lock one of them held and deadlock. The inputs are
    plain picklable values by design, so nothing needs inheriting; the server
    preloads `preload` (the module whose function the workers run) once, so
    each worker starts in milliseconds. One forkserver serves a process: the
    first pool to start it decides what it preloads, and a worker imports
    what else it needs on its first task.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([preload])
    return context


def _unusable(exc: BaseException) -> BrokenProcessPool:
    """A pool that could not take a chunk, as the BrokenProcessPool the runner's callers handle."""
    broken = BrokenProcessPool(f"the pool could not take work: {exc}")
    broken.__cause__ = exc
    return broken


class ChunkedRunner(Generic[In, Out]):
    """Runs `work` over items as they are added, in-process or in chunks in a pool.

    Items are kept until `min_parallel` were added; then `start()` gives a
    pool (None: stay in-process), which takes them in chunks of `chunk`, and
    later chunks as they fill. At most `in_flight` chunks are queued, so the
    caller runs ahead of the pool only by that much (their items are copies).
    Outcomes come back in the order items were added. Should the pool break
    (a worker killed, say), `on_broken` is told and the rest runs in this
    process. `owned`: close() shuts the pool down (else it outlives this runner).
    `steal`: while the caller waits for the oldest chunk, it runs the newest
    ones the pool has not begun itself (for a caller that has nothing else to
    do then, on a machine where the pool has fewer processes than cores).
    `on_ready`: told how many outcomes are ready, each time more are (a
    progress report; in-process, the items then run a chunk at a time, and
    with no pool to come, as each chunk fills). `keep`: what is kept of each
    chunk's outcomes as they arrive, in order (the caller's compact form of
    them; default: the outcomes as they are).
    """

    def __init__(
        self,
        work: Callable[[list[In]], list[Out]],
        *,
        start: Callable[[], Executor | None] | None,
        min_parallel: int,
        chunk: int,
        in_flight: int,
        on_broken: Callable[[BrokenProcessPool], None],
        owned: bool = True,
        steal: bool = False,
        on_ready: Callable[[int], None] | None = None,
        keep: Callable[[list[Out]], list[Out]] | None = None,
    ) -> None:
        self._work = work
        self._keep = keep
        self._start = start
        """Until the pool starts: one pool a runner, and none again should it break."""
        self._min_parallel = max(1, min_parallel)
        self._chunk = max(1, chunk)
        self._max_in_flight = max(1, in_flight)
        self._on_broken = on_broken
        self._owned = owned
        self._steal = steal
        self._on_ready = on_ready
        self._waiting: list[In] = []
        self.added = 0
        """How many items were added."""
        self._pool: Executor | None = None
        self._in_flight: deque[tuple[list[In], Future[list[Out]]]] = deque()
        self._outcomes: list[Out] = []

    def close(self) -> None:
        """Shut an owned pool down; queued chunks are dropped."""
        if self._pool is not None and self._owned:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def add(self, item: In) -> int:
        """Queue one item; returns its position in `outcomes()`."""
        self._waiting.append(item)
        self.added += 1
        if self._pool is None:
            if self._start is not None and self.added >= self._min_parallel:
                start, self._start = self._start, None
                self._pool = start()
                self._submit()
            elif (
                self._start is None
                and self._on_ready is not None
                and not self._in_flight
                and len(self._waiting) >= self._chunk
            ):
                self._take(self._work(self._waiting))
                self._waiting = []
                self._on_ready(len(self._outcomes))
        elif len(self._waiting) >= self._chunk:
            self._submit()
        return self.added - 1

    def _submit(self, *, final: bool = False) -> None:
        while self._pool is not None and (len(self._waiting) >= self._chunk or (final and self._waiting)):
            chunk, self._waiting = self._waiting[: self._chunk], self._waiting[self._chunk :]
            try:
                future = self._pool.submit(self._work, chunk)
            except (BrokenProcessPool, RuntimeError, OSError) as exc:
                # Broken, or it could not start a worker: the spawn refused (a script
                # under forkserver without a main-module guard raised RuntimeError here
                # on every page, each turned into an internal error), or shut down.
                self._broken(exc if isinstance(exc, BrokenProcessPool) else _unusable(exc))
                self._waiting = chunk + self._waiting
                return
            self._in_flight.append((chunk, future))
            while len(self._in_flight) > self._max_in_flight:
                self._collect()

    def _collect(self) -> None:
        if self._steal:
            self._run_newest_while_waiting()
        chunk, future = self._in_flight.popleft()
        try:
            outcomes = future.result()
        except BrokenProcessPool as exc:
            self._broken(exc)
            outcomes = self._work(chunk)
        self._take(outcomes)
        if self._on_ready is not None:
            self._on_ready(len(self._outcomes))

    def _take(self, outcomes: list[Out]) -> None:
        self._outcomes.extend(outcomes if self._keep is None else self._keep(outcomes))

    def _run_newest_while_waiting(self) -> None:
        oldest = self._in_flight[0][1]
        for position in range(len(self._in_flight) - 1, 0, -1):
            if oldest.done():
                return
            chunk, future = self._in_flight[position]
            # cancel() succeeds only for a chunk no worker has taken yet.
            if future.cancel():
                done: Future[list[Out]] = Future()
                done.set_result(self._work(chunk))
                self._in_flight[position] = (chunk, done)

    def _broken(self, exc: BrokenProcessPool) -> None:
        if self._pool is not None:
            self._on_broken(exc)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def outcomes(self, needed: int | None = None) -> list[Out]:
        """The outcomes, in the order the items were added: at least the first
        `needed` (default: all), waiting for the pool as long as it takes."""
        needed = self.added if needed is None else needed
        self._submit(final=True)
        while len(self._outcomes) < needed and self._in_flight:
            self._collect()
        if len(self._outcomes) < needed:
            if self._on_ready is None:
                self._take(self._work(self._waiting))
            else:
                for start in range(0, len(self._waiting), self._chunk):
                    self._take(self._work(self._waiting[start : start + self._chunk]))
                    self._on_ready(len(self._outcomes))
            self._waiting = []
        return self._outcomes


# ------------------------------------------------------------------ inbound pages
INBOUND_MIN_PARALLEL: Final = 100
"""From this many alerts in one page on, receive_many verifies their
signatures in the pool. Measured on 2 cores, one worker, warm pool, pages in
a row: in a quiet hour the pool took a page of 100 in 16 ms against 22 ms
in-process (1,000: 128 ms against 210 ms) and won even at 25; while the host
was busy and the second core shared, it won by 1.2 x at 100 and lost by
5-10 % at 50 and below."""

INBOUND_WORKERS_ENV: Final = "EWX_INBOUND_WORKERS"
"""Environment variable: how many processes verify the signatures of catch-up
pages (default: one less than the CPUs this process may run on; 0 verifies
in the node's own process). Read when the pool starts."""

_INBOUND_CHUNK: Final = 64
"""Most checks per task: about 7 ms of work, so the first verdicts are back
at once and the node's process starts decoding while the pool runs ahead."""

_RETRY_AFTER_SECONDS: Final = 60.0
"""After the pool broke, pages are verified in-process this long before a new pool starts."""


class _InboundPool:
    """The process-wide pool for inbound pages, started on first need, kept for the process.

    It is shared by every NodeService of the process (receive_many runs on
    the store's thread; the lock covers other callers) and reaped by
    concurrent.futures at interpreter exit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._broken_at: float | None = None

    def workers(self) -> int:
        """$EWX_INBOUND_WORKERS, else one process less than the CPUs: the node's own
        process decodes and stores while they verify (and verifies too, when it
        would wait). Zero on one CPU, where a pool cannot win anything."""
        value = os.environ.get(INBOUND_WORKERS_ENV, "").strip()
        if (workers := ascii_int(value)) is not None:
            return workers
        return available_cpus() - 1

    def get(self) -> Executor | None:
        """The pool, started if need be; None while verification stays in-process."""
        with self._lock:
            if self._pool is not None:
                return self._pool
            if self._broken_at is not None and time.monotonic() - self._broken_at < _RETRY_AFTER_SECONDS:
                return None
            workers = self.workers()
            if workers < 1:
                return None
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=pool_context("node.crypto._sigpool"), initializer=exit_with_parent
            )
            return self._pool

    def broken(self, exc: BrokenProcessPool) -> None:
        """Forget a broken pool; the next one starts after a pause."""
        with self._lock:
            self._pool = None
            self._broken_at = time.monotonic()
        log.warning("verify_pool_failed", error=str(exc), retry_after_seconds=_RETRY_AFTER_SECONDS)


_INBOUND = _InboundPool()


def page_verdicts(checks: Sequence[SignatureCheck]) -> Callable[[int], bool] | None:
    """Start verifying a page's checks in the inbound pool; None for a page too small.

    Returns `verdict(i)`: whether checks[i] holds, waiting for the pool as long
    as it takes (the checks are submitted at once, in chunks, and verified in
    order, so the caller can work on the first while the pool does the rest).
    """
    if len(checks) < INBOUND_MIN_PARALLEL:
        return None
    runner: ChunkedRunner[SignatureCheck, bool] = ChunkedRunner(
        verify_signatures,
        start=_INBOUND.get,
        min_parallel=len(checks),
        # Several chunks even for a small page, so that this process can take
        # some while the pool has the first.
        chunk=max(8, min(_INBOUND_CHUNK, len(checks) // 8)),
        in_flight=len(checks),
        on_broken=_INBOUND.broken,
        owned=False,
        steal=True,
    )
    for check in checks:
        runner.add(check)

    def verdict(i: int) -> bool:
        return runner.outcomes(i + 1)[i]

    return verdict
