"""The store on its own thread: the loop answers peers while a catch-up page is stored (issue 11, item 5)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import rpc
from node.config import NodeConfig
from node.crypto import PAYLOAD_ALERT
from node.errors import StoreError
from node.ids import Country
from node.message import encode
from node.store import StoreThread
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_payload, make_federation, peer_channel, running, wait_for

PAGE = 1_000


@pytest.fixture
def federation(tmp_path: Path) -> dict[Country, Path]:
    return make_federation(tmp_path / "fed")


def _signed(config: Path, origin: Country, seqs: range) -> list[bytes]:
    signer = NodeConfig.load(config).load_signers()["alert"]
    sent = datetime.now(UTC)
    envelopes = []
    for seq in seqs:
        payload = alert_payload(origin, {"US": seq}, sent=sent, alert_id=f"{origin}-P-{seq}")
        envelopes.append(
            encode(
                pb.SignedAlert(
                    alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload)
                )
            )
        )
    return envelopes


def test_a_deliver_is_answered_between_the_turns_of_a_page_being_stored(
    federation: dict[Country, Path],
) -> None:
    page = _signed(federation["KR"], "KR", range(1, PAGE + 1))
    first, second = _signed(federation["JP"], "JP", range(1, 3))

    async def scenario() -> None:
        async with (
            running(federation["US"]) as nodes,
            peer_channel(federation["US"], federation["JP"]) as channel,
        ):
            us = nodes["US"]
            deliver = channel.unary_unary(rpc.DELIVER)

            async def delivered(envelope: bytes) -> pb.DeliverResponse:
                reply = await deliver(pb.DeliverRequest(envelope=envelope).SerializeToString(), timeout=30)
                return pb.DeliverResponse.FromString(reply)

            await delivered(first)  # the channel's handshake, before the page
            storing = asyncio.create_task(us.runtime.service.store_page(page, peer="KR", direct=True))
            await wait_for(lambda: us.service.store.last_seq("KR", "US") > 0, timeout=30)
            assert not storing.done()
            reply = await delivered(second)
            assert await storing == PAGE

            receipt = pb.ReceiptBody.FromString(pb.SignedReceipt.FromString(reply.receipt).receipt)
            assert receipt.alert_id == "JP-P-2"
            # The Deliver was stored while the page was: its entry sits between
            # the page's first and last ones in US's log.
            received = {
                pb.Alert.FromString(pb.LogEntry.FromString(e).alert.alert).alert_id: index
                for index, e in us.service.store.log_entries()
                if pb.LogEntry.FromString(e).kind == pb.ALERT_RECEIVED
            }
            assert received["KR-P-1"] < received["JP-P-2"] < received[f"KR-P-{PAGE}"]

    asyncio.run(scenario())


def test_a_running_nodes_store_refuses_a_call_from_another_thread(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["US"]) as nodes:
            service = nodes["US"].runtime.service
            with pytest.raises(StoreError, match="not the one that opened it"):
                service.store.last_seq("KR", "US")
            assert await service.call(service.store.last_seq, "KR", "US") == 0

    asyncio.run(scenario())


def test_waiting_for_the_store_from_its_own_thread_runs_at_once() -> None:
    # A clock patched by a test to read the real one through the store thread
    # (tests/support/factories.py's OnStoreThread) was called on that thread by
    # the deadline watch: the one worker waited for itself and the node hung.
    thread = StoreThread("test")

    def inner() -> str:
        return threading.current_thread().name

    def outer() -> str:
        return thread.wait_for(inner)

    caller = concurrent.futures.ThreadPoolExecutor(1)
    done = caller.submit(thread.wait_for, outer)
    try:
        assert done.result(timeout=10).startswith("ewx-store-test")
        # And from any other thread it still runs on the store's thread, in turn.
        assert thread.wait_for(inner).startswith("ewx-store-test")
    finally:
        if not done.done():
            # Unblock the deadlocked worker (its inner call is still queued) so
            # the failure is reported instead of hanging the run at exit.
            thread._executor.shutdown(wait=False, cancel_futures=True)
        caller.shutdown(wait=True)
        thread.close()
