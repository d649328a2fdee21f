"""Before pytest-timeout fails a hung test, print what each asyncio task awaits.

pytest-timeout prints the threads' stacks, and a hung node test shows only its main
thread in the selector: the task that never ended is invisible there. A few seconds
before the timeout this prints every task of every running event loop with its stack.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
from typing import Any

LEAD_SECONDS = 3.0  # printed this long before pytest-timeout fails the test


def dump_tasks(out: Any = None) -> str:
    """Every task of every running event loop, with where each is suspended."""
    text = io.StringIO()
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    for loop in loops:
        tasks = asyncio.all_tasks(loop)
        text.write(f"~~~~~~~~ asyncio tasks of {loop!r}: {len(tasks)} ~~~~~~~~\n")
        for task in sorted(tasks, key=lambda t: t.get_name()):
            text.write(f"-- {task!r} (cancelling={task.cancelling()})\n")
            task.print_stack(limit=12, file=text)
    dumped = text.getvalue()
    print(dumped, file=out or sys.stderr, flush=True)
    return dumped


def start_timer(timeout: float) -> threading.Timer | None:
    """A daemon timer that dumps the tasks LEAD_SECONDS before `timeout`; None if too short."""
    if timeout <= 2 * LEAD_SECONDS:
        return None
    timer = threading.Timer(timeout - LEAD_SECONDS, dump_tasks)
    timer.daemon = True
    timer.name = "asyncio-task-dump"
    timer.start()
    return timer
