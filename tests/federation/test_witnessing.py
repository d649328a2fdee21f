"""Checkpoints signed at a cadence, witnessed and cosigned by both peers over mTLS."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.checks import cosigned_by
from node.crypto import parse_checkpoint, parse_signed_note
from tests.support.factories import alert_info, make_federation, running, wait_for


def published(service) -> bool:  # type: ignore[no-untyped-def]
    """The newest checkpoint covers the whole log and both peers cosigned it."""
    latest = service.store.latest_checkpoint()
    if latest is None or latest[0] != service.store.log_size:
        return False
    cosigned = service.store.cosigned()
    return all(cosigned.get(p) == latest[0] for p in service.peers)


def test_checkpoints_are_cosigned_by_both_peers(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", checkpoint_interval_seconds=0.1, outbox_retry_max_seconds=0.5)

    async def scenario() -> None:
        async with running(*fed.values()) as nodes:
            kr = nodes["KR"].service
            for _ in range(3):
                kr.publish(msg_type="ALERT", info=alert_info())
            await wait_for(
                lambda: all(published(n.service) for n in nodes.values() if n.service.store.log_size)
            )
            size, _root, note = kr.store.latest_checkpoint()
            checkpoint = parse_checkpoint(parse_signed_note(note).body)
            assert checkpoint.size == size == kr.store.log_size
            assert set(cosigned_by(note, trust=kr.trust, checkpoint=checkpoint)) == {"US", "JP"}
            # each peer persisted what it cosigned of KR's log
            for peer in ("US", "JP"):
                state = nodes[peer].service.store.witness_state("KR")
                assert state is not None and state[1] == size
            assert kr.status().peers["US"].last_checkpoint_cosigned == size
            assert kr.status().published_size == size

    asyncio.run(scenario())


def test_a_peer_that_was_down_catches_the_witness_up(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", checkpoint_interval_seconds=0.1, outbox_retry_max_seconds=0.3)

    async def scenario() -> None:
        async with running(fed["KR"], fed["US"]) as nodes:
            kr = nodes["KR"].service
            kr.publish(msg_type="ALERT", info=alert_info())
            await wait_for(lambda: kr.store.cosigned().get("US", 0) >= 2)
            assert "JP" not in kr.store.cosigned()  # JP is down: KR keeps working
            kr.publish(msg_type="ALERT", info=alert_info())
            async with running(fed["JP"]) as late:
                jp = late["JP"].service

                def witnessed_by_jp() -> bool:
                    # JP may take KR's alerts by catch-up before KR's pushes reach it; each push
                    # then brings a receipt that grows KR's log again. So: KR's outbox to JP
                    # empty, its newest checkpoint cosigned by both, and JP holding that size.
                    if kr.status().peers["JP"].backlog or not published(kr):
                        return False
                    state = jp.store.witness_state("KR")
                    return state is not None and state[1] == kr.store.log_size

                await wait_for(witnessed_by_jp, timeout=15)

    asyncio.run(scenario())


def test_a_forked_checkpoint_is_refused_and_kept_as_evidence(tmp_path: Path) -> None:
    """KR shows US a checkpoint of size n, then another tree of the same size."""
    from node.checks import InconsistentCheckpoint, build_request
    from node.crypto import Checkpoint, sign_checkpoint
    from node.trust import log_origin

    fed = make_federation(tmp_path / "fed", checkpoint_interval_seconds=3600)

    async def scenario() -> None:
        async with running(fed["KR"], fed["US"]) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            kr.publish(msg_type="ALERT", info=alert_info())
            kr.issue_checkpoint()
            request = kr.witness_request("US")
            assert request is not None
            size, body = request
            kr.record_cosignature("US", size, us.witness("KR", body))
            forged = sign_checkpoint(
                Checkpoint(origin=log_origin("KR"), size=size, root_hash=bytes(32)),
                name=log_origin("KR"),
                private_key=kr.signers["log"].private_key,
            )
            try:
                us.witness("KR", build_request(old_size=size, proof=[], signed_checkpoint=forged))
            except InconsistentCheckpoint:
                pass
            else:
                raise AssertionError("a fork was cosigned")
            evidence = us.store.evidence()
            assert [e["kind"] for e in evidence] == ["checkpoint_fork"]
            assert us.store.witness_state("KR")[1] == size  # state unchanged

    asyncio.run(scenario())
