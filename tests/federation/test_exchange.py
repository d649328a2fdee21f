"""Three real nodes exchange signed alerts over mutual TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.ids import Country
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info, running, wait_for


def delivered(service, peer: Country | None = None) -> bool:  # type: ignore[no-untyped-def]
    rows = service.store.outbox(peer)
    return bool(rows) and all(r.delivered_at for r in rows)


def test_alert_reaches_both_peers_and_receipts_come_back(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(*federation.values()) as nodes:
            kr, us, jp = (nodes[c].service for c in ("KR", "US", "JP"))
            published = kr.publish(msg_type="ALERT", info=alert_info())
            alert_id = published.alert.alert_id
            await wait_for(lambda: delivered(kr))

            for peer in (us, jp):
                stored = peer.store.alert("KR", alert_id)
                assert stored is not None
                assert stored.digest == published.digest
                # stored verbatim: the signed bytes are the ones KR signed
                sent = kr.store.alert("KR", alert_id)
                assert (
                    pb.SignedAlert.FromString(stored.envelope).alert
                    == pb.SignedAlert.FromString(sent.envelope).alert
                )
            # KR logged one ALERT_SENT and one RECEIPT_RECEIVED per peer
            kinds = [pb.LogEntry.FromString(e).kind for _, e in kr.store.log_entries()]
            assert kinds == [pb.ALERT_SENT, pb.RECEIPT_RECEIVED, pb.RECEIPT_RECEIVED]
            listed = {a.alert_id: a.to_json() for a in kr.list_alerts()}[alert_id]
            assert all(d["delivered_at"] for d in listed["deliveries"].values())

            ack = us.publish(msg_type="ACK", reference=("KR", alert_id), reason="RECEIVED")
            await wait_for(lambda: delivered(us))
            assert kr.store.alert("US", ack.alert.alert_id) is not None
            assert jp.store.alert("US", ack.alert.alert_id) is not None
            listed = {a.alert_id: a.to_json() for a in kr.list_alerts()}[alert_id]
            assert listed["acknowledged_by"] == ["US"]

    asyncio.run(scenario())


def test_peer_that_was_down_gets_its_alert_after_restart(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"], federation["US"]) as nodes:
            kr = nodes["KR"].service
            published = kr.publish(msg_type="ALERT", info=alert_info())
            await wait_for(lambda: delivered(kr, "US"))
            await asyncio.sleep(0.3)
            jp_rows = kr.store.outbox("JP")
            assert len(jp_rows) == 1 and jp_rows[0].delivered_at is None
            assert jp_rows[0].attempts >= 1 and jp_rows[0].last_error
            assert kr.status().peers["JP"].backlog == 1
            async with running(federation["JP"]) as late:
                jp = late["JP"].service
                await wait_for(lambda: delivered(kr, "JP"))
                assert jp.store.alert("KR", published.alert.alert_id) is not None
                assert kr.status().peers["JP"].backlog == 0

    asyncio.run(scenario())


def test_outbox_survives_a_sender_restart(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            published = nodes["KR"].service.publish(msg_type="ALERT", info=alert_info())
        async with running(*federation.values()) as nodes:
            kr = nodes["KR"].service
            await wait_for(lambda: delivered(kr))
            for peer in ("US", "JP"):
                assert nodes[peer].service.store.alert("KR", published.alert.alert_id) is not None

    asyncio.run(scenario())


def test_an_empty_outbox_ends_the_backoff(federation: dict[Country, Path]) -> None:
    """After failures, once nothing is left to deliver the next alert must not wait out a backoff."""
    from gateway.peers import DeliveryLoop, PeerClient
    from node.config import NodeConfig
    from node.service import NodeService

    async def scenario() -> None:
        service = NodeService.open(NodeConfig.load(federation["KR"]))
        client = PeerClient(service=service, peer="US")
        loop = DeliveryLoop(service=service, client=client)
        loop._failures = 5  # as after a peer was down
        assert await loop.drain() is True
        assert loop._failures == 0
        await client.close()
        service.close()

    asyncio.run(scenario())
