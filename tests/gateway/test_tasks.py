"""cancel_and_wait and woken_within: helper tasks end, and a task's own cancellation is never swallowed."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

from gateway.tasks import cancel_and_wait, woken_within


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


async def _wait_for_style(event: asyncio.Event, seconds: float) -> bool:
    """The pattern woken_within replaced."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def _stopped_as_woken(wait: object, turns: int) -> bool:
    """A pull-shaped loop is woken, and `turns` loop turns later cancelled by a stop:
    whether the stop ended it (or it went on, waiting again)."""

    async def scenario() -> bool:
        wake = asyncio.Event()
        rounds: list[bool] = []

        async def pull_forever() -> None:
            while True:
                wake.clear()
                rounds.append(await wait(wake, 3600))  # type: ignore[operator]

        task = asyncio.create_task(pull_forever())
        await asyncio.sleep(0)  # waiting now
        wake.set()  # a gap in the peer's pushes ...
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()  # ... and the node stops
        done, _ = await asyncio.wait([task], timeout=0.2)
        if not done:
            task.uncancel()
            task.cancel()
            await asyncio.wait([task])
            return False
        return task.cancelled()

    return asyncio.run(scenario())


def test_a_loop_woken_in_the_turn_it_is_cancelled_still_ends() -> None:
    assert all(_stopped_as_woken(woken_within, turns) for turns in range(6))
    # The wait_for pattern lost the cancellation in one of these turns (Python 3.11):
    # the stop then waited for the loop forever.
    assert not all(_stopped_as_woken(_wait_for_style, turns) for turns in range(6))


def test_woken_within_tells_a_wake_from_a_timeout() -> None:
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, event.set)
        woken = await woken_within(event, 5)
        event.clear()
        return woken, await woken_within(event, 0.01)

    assert asyncio.run(scenario()) == (True, False)


def test_the_hang_dump_names_each_task_and_where_it_waits() -> None:
    """tests/support/task_dump.py, which a hung test prints before pytest-timeout fails it."""
    import io

    from tests.support.task_dump import dump_tasks

    async def waits_forever(event: asyncio.Event) -> None:
        await event.wait()

    async def scenario() -> str:
        event = asyncio.Event()
        task = asyncio.create_task(waits_forever(event), name="pull-KR")
        await asyncio.sleep(0)
        # The dump runs in another thread while the loop runs, as on a timeout.
        dumped = await asyncio.to_thread(dump_tasks, io.StringIO())
        event.set()
        await task
        return dumped

    dumped = asyncio.run(scenario())
    assert "pull-KR" in dumped and "waits_forever" in dumped and "cancelling=0" in dumped


def test_a_client_closed_ends_the_channels_it_retired(federation: dict[str, Path]) -> None:
    """PeerClient.close after two renewals: every retired channel closed, none left to retire,
    at once although a call is in flight on the first (a retired channel alone waits for
    its calls up to the RPC deadline: US is not running, so this one never ends by itself)."""
    import grpc

    from gateway.peers import PeerClient
    from gateway.tls import NodeTls
    from node.config import NodeConfig
    from node.service import NodeService

    config = NodeConfig.load(federation["KR"])
    service = NodeService.open(config)
    try:

        async def scenario() -> list[object]:
            tls, _ = NodeTls.load(config, service.trust, at=datetime.now(UTC))
            client = PeerClient(
                service=service, peer="US", credentials=tls.channel_credentials(service.trust, "US")
            )
            first = client._channel
            in_flight = asyncio.ensure_future(client._deliver(b"", timeout=3600, wait_for_ready=True))
            for _ in range(2):
                client.renew(tls.channel_credentials(service.trust, "US"))
            retired = list(client._retiring.values())
            assert first in retired and len(retired) == 2
            async with asyncio.timeout(config.rpc_deadline_seconds / 2):  # not the deadline's wait
                await client.close()
            assert client._retiring == {}
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                await in_flight
            assert in_flight.done()
            return [channel.get_state() for channel in (*retired, client._channel)]

        states = asyncio.run(scenario())
        assert {state.name for state in states} == {"SHUTDOWN"}  # type: ignore[attr-defined]
    finally:
        service.close()
