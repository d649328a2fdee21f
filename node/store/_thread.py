"""The one thread a running node's store is used from; the event loop awaits it.

SQLite's connection and the in-memory Merkle levels beside it belong to one
thread (Store refuses every other). While that thread was the event loop, a
catch-up page of a thousand alerts held the loop for as long as its commit
took, and a peer's Deliver waited behind it (issue 11, item 5). Now the loop
hands each store call to this thread and goes on answering: calls run one at
a time, in the order they were handed over, as they did on the loop.

A call whose awaiting task is cancelled (a deadline, the node stopping) still
runs to its end in the thread: a transaction is never cut off half-way, and
what it committed is there for the peer's retry to find.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class StoreThread:
    """A single worker thread; `run` calls a function there and awaits its result."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"ewx-store-{name}", initializer=self._note_thread
        )
        self._ident: int | None = None

    def _note_thread(self) -> None:
        self._ident = threading.get_ident()

    async def run(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(*args, **kwargs)` on the store's thread, after every call handed over before it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(work, *args, **kwargs))

    def wait_for(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(*args, **kwargs)` on the store's thread, blocking the caller until it is done.

        For code that may block, off the loop or in a test on it (a test's
        call waits as a call on the loop used to); the node itself awaits `run`.
        Called from the store's own thread (a function handed over that itself
        waits for the store), it runs at once: handing it to the one worker
        that is busy with the caller would wait forever.
        """
        if threading.get_ident() == self._ident:
            return work(*args, **kwargs)
        return self._executor.submit(work, *args, **kwargs).result()

    def close(self) -> None:
        """Wait for the calls handed over so far, then end the thread."""
        self._executor.shutdown(wait=True)
