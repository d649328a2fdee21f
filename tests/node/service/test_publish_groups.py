"""Group commit of concurrent publishes (issue 15, item 2; node/service/_group.py): the
publishes waiting together share one transaction and one durable commit, one that
fails is undone alone, and none is answered before the commit (or at all if it fails)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from node.crypto import MerkleLevels, leaf_hash
from node.errors import StoreFull, UsageError
from node.ids import Country
from tests.support.factories import alert_info, running


def _commits(store: Any) -> list[str]:
    """Every COMMIT the store's SQLite connection runs from now on (SQLite's own trace)."""
    seen: list[str] = []
    store._conn.raw.set_trace_callback(lambda sql: seen.append(sql) if sql.strip() == "COMMIT" else None)
    return seen


def _log_is_whole(store: Any) -> None:
    """The log's entries run 0..n-1 and the store's root is theirs: no part of an undone
    publish left an entry, a gap or a stale frontier behind."""
    levels = MerkleLevels()
    for expected, (index, entry) in enumerate(store.log_entries()):
        assert index == expected
        levels.append(leaf_hash(entry))
    assert (store.log_size, store.log_root()) == (levels.size, levels.root())


@pytest.mark.sqlite_only("counts the SQLite connection's COMMITs")
def test_concurrent_publishes_share_commits_and_each_is_answered_with_its_own_alert(
    federation: dict[Country, Path],
) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].runtime.service
            store = service.ctx.store
            commits = await service.call(_commits, store)
            published = await asyncio.gather(
                *(
                    service.publish_grouped(msg_type="ALERT", status="TEST", info=alert_info())
                    for _ in range(120)
                )
            )
            sizes = service._groups.sizes
            assert sum(sizes) == 120 and max(sizes) > 1, sizes
            assert len(commits) < 120  # shared: fewer durable commits than publishes
            ids = [p.alert.alert_id for p in published]
            assert len(set(ids)) == 120
            for peer in ("US", "JP"):
                seqs = sorted(d.seq for p in published for d in p.alert.deliveries if d.recipient == peer)
                assert seqs == list(range(1, 121))  # gapless per recipient
            stored = await service.call(lambda: {a.alert_id for a in store.alerts()})
            assert set(ids) <= stored
            await service.call(_log_is_whole, store)

    asyncio.run(scenario())


def test_a_publish_refused_in_a_group_is_undone_alone(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].runtime.service
            store = service.ctx.store
            bad = alert_info(headline="x" * 10_000)  # refused inside the transaction
            requests = [
                service.publish_grouped(
                    msg_type="ALERT", status="TEST", info=bad if i % 3 == 1 else alert_info()
                )
                for i in range(30)
            ]
            outcomes = await asyncio.gather(*requests, return_exceptions=True)
            refused = [o for o in outcomes if isinstance(o, BaseException)]
            good = [o for o in outcomes if not isinstance(o, BaseException)]
            assert len(refused) == 10 and all(isinstance(o, UsageError) for o in refused), refused
            assert max(service._groups.sizes) > 1
            assert sorted(d.seq for p in good for d in p.alert.deliveries if d.recipient == "US") == list(
                range(1, 21)
            )
            assert sorted(p.log_index for p in good) == list(range(20))
            await service.call(_log_is_whole, store)
            stored = await service.call(lambda: [a.alert_id for a in store.alerts()])
            assert sorted(stored) == sorted(p.alert.alert_id for p in good)

    asyncio.run(scenario())


@pytest.mark.sqlite_only("fills the SQLite file with max_page_count")
def test_a_group_whose_commit_fails_answers_every_publish_with_the_failure(
    federation: dict[Country, Path],
) -> None:
    def fill(store: Any) -> None:
        (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
        store._conn.execute(f"PRAGMA max_page_count = {pages}")

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].runtime.service
            store = service.ctx.store
            await service.publish_grouped(msg_type="ALERT", status="TEST", info=alert_info())
            size = store.log_size
            await service.call(fill, store)
            outcomes = await asyncio.gather(
                *(
                    service.publish_grouped(msg_type="ALERT", status="TEST", info=alert_info())
                    for _ in range(40)
                ),
                return_exceptions=True,
            )
            assert all(isinstance(o, StoreFull) for o in outcomes), outcomes
            assert store.log_size == size
            await service.call(lambda: store._conn.execute("PRAGMA max_page_count = 1073741823"))
            again = await service.publish_grouped(msg_type="ALERT", status="TEST", info=alert_info())
            assert again.log_index == size  # nothing of the failed groups took an index
            await service.call(_log_is_whole, store)

    asyncio.run(scenario())


def test_the_operator_api_publishes_in_groups(federation: dict[Country, Path]) -> None:
    from node.operator import OperatorClient

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].runtime.service
            client = OperatorClient(nodes["KR"].config.operator_socket)

            def publish() -> dict[str, Any]:
                return dict(client.call("publish", msg_type="ALERT", status="TEST", info=alert_info()))

            replies = await asyncio.gather(*(asyncio.to_thread(publish) for _ in range(16)))
            assert len({r["alert_id"] for r in replies}) == 16
            assert sum(service._groups.sizes) == 16  # every one went through the groups

    asyncio.run(scenario())
