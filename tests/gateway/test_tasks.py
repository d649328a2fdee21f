"""cancel_and_wait: helper tasks end, and the caller's own cancellation is never swallowed."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.tasks import cancel_and_wait


async def _slow_to_end(ended: list[str]) -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(0.2)  # cleanup that takes a while, as a gRPC call's cancel does
        ended.append("helper")


async def _caller(ended: list[str], *, suppress_style: bool) -> str:
    helper = asyncio.create_task(_slow_to_end(ended))
    await asyncio.sleep(0)
    if suppress_style:  # the pattern this replaced
        helper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await helper
    else:
        await cancel_and_wait(helper)
    await asyncio.sleep(0.5)
    return "went on after being cancelled"


def _cancel_midway(*, suppress_style: bool) -> tuple[bool, list[str]]:
    ended: list[str] = []

    async def scenario() -> bool:
        caller = asyncio.create_task(_caller(ended, suppress_style=suppress_style))
        await asyncio.sleep(0.05)  # the caller is now waiting for its helper to end
        caller.cancel()
        await asyncio.wait([caller])
        return caller.cancelled()

    return asyncio.run(scenario()), ended


def test_a_caller_cancelled_while_its_helpers_end_stays_cancelled() -> None:
    cancelled, _ = _cancel_midway(suppress_style=False)
    assert cancelled
    # And the old pattern indeed swallowed it: the test shows the difference.
    swallowed, _ = _cancel_midway(suppress_style=True)
    assert not swallowed


def test_the_helpers_end_and_their_failures_are_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("a helper's own failure")

    async def scenario() -> None:
        done = asyncio.create_task(fails())
        await asyncio.sleep(0)
        pending = asyncio.create_task(asyncio.sleep(3600))
        failed = await cancel_and_wait(done, pending)
        assert done.done() and pending.cancelled()
        assert [(task, str(exc)) for task, exc in failed] == [(done, "a helper's own failure")]
        assert await cancel_and_wait() == []  # nothing to end

    asyncio.run(scenario())


def test_a_background_round_survives_a_cancelled_call_but_not_its_own_cancellation() -> None:
    from gateway.runtime import _survive

    async def scenario() -> None:
        rounds: list[int] = []
        third = asyncio.Event()

        async def loop() -> None:
            while True:
                with _survive("test", "KR"):
                    rounds.append(len(rounds))
                    if len(rounds) == 1:
                        raise asyncio.CancelledError  # out of a call cancelled under the loop
                    if len(rounds) == 3:
                        third.set()
                    await asyncio.sleep(0.01)

        task = asyncio.create_task(loop())
        await asyncio.wait_for(third.wait(), timeout=5)
        assert not task.done()  # the first round's CancelledError did not end it
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()  # its own cancellation did

    asyncio.run(scenario())


def test_a_wake_scheduled_from_the_store_thread_after_the_loop_closed_is_dropped_not_raised() -> None:
    from gateway.runtime import _on_loop

    loop = asyncio.new_event_loop()
    woken: list[str] = []
    wake = _on_loop(loop, woken.append)
    wake("US")
    loop.run_until_complete(asyncio.sleep(0))
    assert woken == ["US"]
    loop.close()
    wake("JP")  # after a commit, while the node stops: nothing to wake, no error for the publisher
    assert woken == ["US"]
