"""Ending helper tasks, and waiting in them, without swallowing the caller's own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> list[tuple[asyncio.Task[Any], BaseException]]:
    """Cancel `tasks` and wait until each has ended; returns those that had failed, with
    their exceptions (raised by none of them here), for a caller that logs them.

    `with suppress(CancelledError): await task` also swallows the
    CancelledError meant for the caller when the caller is cancelled during
    that wait: a delivery loop cancelled by the node's stop while its window
    was ending its tasks went on delivering, and the stop waited for it
    forever. asyncio.wait raises the caller's cancellation and none of the
    tasks' own outcomes.
    """
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    return [(task, exc) for task in tasks if not task.cancelled() and (exc := task.exception()) is not None]


def being_cancelled() -> bool:
    """Whether the running task itself was asked to stop (Task.cancel), as against a
    CancelledError raised out of something it awaited: grpc.aio raises CancelledError from
    a call that was cancelled under the task, and a loop that let that end it would stop
    without a word while its node runs on."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def woken_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; whether it was set.

    Not `asyncio.wait_for(event.wait(), ...)`: on Python 3.11 it returns the inner
    result instead of raising when its task is cancelled between the event being set
    and the task resuming (tests/gateway/test_tasks.py: the first three loop turns),
    so a node's stop that cancelled a pull loop just as a gap woke it
    waited for that loop forever (the PostgreSQL CI pass hung 120 s in the hostile
    matrix's "sequence gap" row). `asyncio.timeout` lets the cancellation through.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
