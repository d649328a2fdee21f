"""Catch-up: from the origin after a restart, and relayed by the third node while the origin is down."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest
import structlog
import tomli_w

from gateway.peers import PeerClient
from node.ids import Country
from node.service import NodeService
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info, running, wait_for
from tests.support.ports import next_port


def holds(service, alert_ids: list[str]) -> bool:  # type: ignore[no-untyped-def]
    return all(service.store.alert("KR", a) is not None for a in alert_ids)


def test_relay_through_the_third_node_while_the_origin_is_down(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"], federation["US"]) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            both = [kr.publish(msg_type="ALERT", info=alert_info()).alert.alert_id for _ in range(3)]
            only_us = kr.publish(msg_type="ALERT", info=alert_info(), recipients=["US"]).alert.alert_id
            await wait_for(lambda: holds(us, [*both, only_us]))
        # KR is gone now; JP comes up and has never heard of these alerts.
        async with running(federation["US"], federation["JP"]) as nodes:
            jp = nodes["JP"].service
            await wait_for(lambda: holds(jp, both), timeout=15)
            assert jp.store.alert("KR", only_us) is None  # never reaches a node it was not addressed to
            relayed = [pb.LogEntry.FromString(e) for _, e in jp.store.log_entries()]
            assert {pb.Country.Name(e.peer) for e in relayed if e.kind == pb.ALERT_RECEIVED} == {"US"}
            assert jp.store.last_seq("KR", "JP") == 3
        # When KR returns, its outbox delivers to JP: stored once, receipted, drained.
        async with running(*federation.values()) as nodes:
            kr, jp = nodes["KR"].service, nodes["JP"].service
            await wait_for(lambda: all(r.delivered_at for r in kr.store.outbox("JP")))
            assert jp.store.count("alerts") == 3

    asyncio.run(scenario())


def _unreachable(config: Path, peer: Country) -> None:
    """Point `config`'s node at a closed port for `peer`: it can no longer push there."""
    document = tomllib.loads(config.read_text())
    closed = next_port()  # nothing listens there, and no other test will
    document["peers"][peer]["address"] = f"127.0.0.1:{closed}"
    config.write_text(tomli_w.dumps(document))


def test_a_restarted_receiver_pulls_what_it_missed_from_the_origin(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            kr = nodes["KR"].service
            ids = [
                kr.publish(msg_type="ALERT", info=alert_info(), recipients=["US"]).alert.alert_id
                for _ in range(5)
            ]
        # KR's pushes to US cannot arrive now: only US's pull from KR can bring them.
        _unreachable(federation["KR"], "US")
        with structlog.testing.capture_logs() as logs:
            async with running(federation["KR"], federation["US"]) as nodes:
                us = nodes["US"].service
                await wait_for(lambda: holds(us, ids))
                assert us.store.last_seq("KR", "US") == 5
                # The pull logs once its pages are done, after the store has them:
                # stopping the nodes before that would cancel the log line, not the pull.
                await wait_for(lambda: any(e["event"] == "caught_up" and e["node"] == "US" for e in logs))
        pulled = [e for e in logs if e["event"] == "caught_up" and e["node"] == "US"]
        assert pulled and pulled[0]["peer"] == "KR" and pulled[0]["relay"] is False
        assert sum(e["stored"] for e in pulled) == 5

    asyncio.run(scenario())


def test_the_next_page_is_asked_for_while_one_is_stored(
    federation: dict[Country, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 55 alerts in pages of 10, KR's pushes cut off: the pull alone brings them, in order,
    # and asks for page k+1 before page k is stored (one page ahead, never more).
    data = tomllib.loads(federation["US"].read_text())
    data["catchup_page_requested"] = 10
    federation["US"].write_text(tomli_w.dumps(data))
    events: list[tuple[str, int]] = []
    real_catch_up, real_store_page = PeerClient.catch_up, NodeService.store_page

    async def catch_up(self: PeerClient, *, origin: Country, after_seq: int, **more: Any) -> Any:
        if self.peer == "KR" and origin == "KR":  # US's pull of KR's alerts, as US asks
            events.append(("asked", after_seq))
        return await real_catch_up(self, origin=origin, after_seq=after_seq, **more)

    async def store_page(self: NodeService, envelopes: Any, *, peer: Country, direct: bool) -> int:
        stored = await real_store_page(self, envelopes, peer=peer, direct=direct)
        events.append(("stored", len(envelopes)))
        return stored

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            kr = nodes["KR"].service
            ids = [
                kr.publish(msg_type="ALERT", info=alert_info(), recipients=["US"]).alert.alert_id
                for _ in range(55)
            ]
        _unreachable(federation["KR"], "US")
        monkeypatch.setattr(PeerClient, "catch_up", catch_up)
        monkeypatch.setattr(NodeService, "store_page", store_page)
        async with running(federation["KR"], federation["US"]) as nodes:
            us = nodes["US"].service
            await wait_for(lambda: us.store.last_seq("KR", "US") == 55, timeout=30)
            assert [a.alert_id for a in us.store.alerts() if a.origin == "KR"] == ids

    asyncio.run(scenario())
    asked = [after for kind, after in events if kind == "asked"]
    assert asked[:6] == [0, 10, 20, 30, 40, 50]
    # Page k+1 was asked for before page k was stored: the first request after 10
    # comes before the first page's store ended.
    assert events.index(("asked", 10)) < events.index(("stored", 10))
