"""CatchUp items: many alerts to a stream message when the requester asks (`batched`).

The server's packing (alert_items) as a pure function, and both kinds of request
against a real node over mTLS: a requester that does not ask (an older node) gets
one alert an item, the same alerts in the same order.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway import rpc
from gateway.server import alert_items
from node.ids import Country
from node.limits import MAX_CATCHUP_ITEM_BYTES, MAX_ENVELOPE_BYTES, MAX_GRPC_MESSAGE_BYTES
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info, peer_channel, running

pages = st.lists(st.binary(min_size=1, max_size=MAX_ENVELOPE_BYTES), max_size=120)


@given(pages)
def test_a_batched_page_is_the_same_alerts_in_order_in_items_that_fit_a_grpc_message(
    page: list[bytes],
) -> None:
    items = [pb.CatchUpItem.FromString(raw) for raw in alert_items(page, batched=True)]
    assert [bytes(e) for item in items for e in item.envelopes] == page
    assert all(not item.envelope and not item.trust_update for item in items)
    for raw, item in zip(alert_items(page, batched=True), items, strict=True):
        assert len(raw) <= MAX_GRPC_MESSAGE_BYTES
        if len(item.envelopes) > 1:  # a lone envelope always goes, whatever its size
            assert sum(len(e) for e in item.envelopes) <= MAX_CATCHUP_ITEM_BYTES
    # no item could have taken the next one's first envelope as well
    for item, after in itertools.pairwise(items):
        held = sum(len(e) + 4 for e in item.envelopes)
        assert held + len(after.envelopes[0]) + 4 > MAX_CATCHUP_ITEM_BYTES


@given(pages)
def test_an_unbatched_page_is_one_alert_an_item(page: list[bytes]) -> None:
    items = [pb.CatchUpItem.FromString(raw) for raw in alert_items(page, batched=False)]
    assert [bytes(item.envelope) for item in items] == page
    assert all(not item.envelopes for item in items)


def test_a_node_serves_a_page_batched_to_who_asks_and_one_by_one_to_who_does_not(
    federation: dict[Country, Path],
) -> None:
    async def items(channel: object, *, batched: bool) -> list[pb.CatchUpItem]:
        request = pb.CatchUpRequest(origin=pb.KR, batched=batched).SerializeToString()
        call = channel.unary_stream(rpc.CATCH_UP)(request, timeout=20)  # type: ignore[attr-defined]
        return [pb.CatchUpItem.FromString(raw) async for raw in call]

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            kr = nodes["KR"].service
            for _ in range(300):
                kr.publish(msg_type="ALERT", info=alert_info(), recipients=["US"])
            async with peer_channel(federation["KR"], federation["US"]) as channel:
                single = await items(channel, batched=False)
                batched = await items(channel, batched=True)
        assert len(single) == 300 and all(item.envelope for item in single)
        assert [bytes(e) for item in batched for e in item.envelopes] == [bytes(i.envelope) for i in single]
        assert len(batched) < 30, f"{len(batched)} items for 300 alerts of about 1 KiB"

    asyncio.run(scenario())
