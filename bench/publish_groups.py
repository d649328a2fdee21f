"""Publish at the origin under load: group commit (issue 15, item 2; node/service/_group.py).

KR runs as in `ewx serve` (NodeRuntime, its store on its own thread, the peers
down so that nothing else competes for the store), and `publishers` tasks
publish through NodeService.publish_grouped, the path the operator API takes
(without the unix socket). Each waiting publish joins the next group: one
transaction, one durable commit for all of it, each answered after the commit.
Printed beside it: the same alerts published one at a time (one commit each),
and the store's bare commit rate, measured in the same run.

On PostgreSQL (--store postgresql) KR's store is a database of the benches'
server (bench/postgres.py, durable defaults), and the bare commit rate is that
server's (bench/floors.py).

Usage: python bench/publish_groups.py [--alerts N] [--publishers P] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.postgres import STORES, put_on_store
from bench.served_logs import as_served
from gateway.local_nodes import assign_free_ports
from gateway.runtime import NodeRuntime
from node.config import NodeConfig
from node.logs import configure
from node.pki import init_federation
from node.store import Store
from tests.support.factories import alert_info


def commit_rate(folder: Path, n: int = 2000) -> float:
    """Bare durable commits a second on this disk: one log entry each."""
    store = Store(folder / "commits.sqlite3")
    try:
        start = time.perf_counter()
        for i in range(n):
            with store.transaction() as tx:
                tx.append_log(b"entry %d" % i)
        return n / (time.perf_counter() - start)
    finally:
        store.close()


async def publish_rates(config: Path, alerts: int, publishers: int) -> dict[str, Any]:
    runtime = NodeRuntime(NodeConfig.load(config))
    await runtime.start()
    try:
        service = runtime.service
        info = alert_info()

        async def one_at_a_time(n: int) -> float:
            start = time.perf_counter()
            for _ in range(n):
                await service.call(service.publish, msg_type="ALERT", status="TEST", info=info)
            return n / (time.perf_counter() - start)

        async def grouped(n: int) -> float:
            left = n

            async def publisher() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await service.publish_grouped(msg_type="ALERT", status="TEST", info=info)

            start = time.perf_counter()
            await asyncio.gather(*(publisher() for _ in range(publishers)))
            return n / (time.perf_counter() - start)

        await one_at_a_time(100)  # warm
        serial = await one_at_a_time(alerts)
        before = len(service._groups.sizes)
        together = await grouped(alerts)
        sizes = service._groups.sizes[before:]
        return {
            "serial": serial,
            "grouped": together,
            "mean_group": sum(sizes) / max(1, len(sizes)),
            "groups": len(sizes),
        }
    finally:
        await runtime.stop()


def run(alerts: int = 5000, publishers: int = 64, store: str = "sqlite") -> dict[str, Any]:
    """Measure with `alerts` alerts each way; the figures: serial and grouped (alerts/s),
    mean_group, groups (commits of the grouped run), and, on SQLite, commits (bare commits/s)."""
    root = Path(tempfile.mkdtemp(prefix="ewx-bench-groups-"))
    try:
        init_federation(root / "fed")
        configs = assign_free_ports(root / "fed", outbox_retry_max_seconds=30.0)
        put_on_store(configs, store, "publish_groups")
        with as_served(root):
            figures = asyncio.run(publish_rates(configs["KR"], alerts, publishers))
        if store == "sqlite":
            figures["commits"] = commit_rate(root)
        figures["publishers"] = publishers
        return figures
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--publishers", type=int, default=64)
    parser.add_argument("--store", choices=STORES, default="sqlite", help="KR's store (default sqlite)")
    args = parser.parse_args()
    configure(level="warning", stream=sys.stderr)
    f = run(args.alerts, args.publishers, args.store)
    if "commits" in f:
        print(f"bare commits:               {f['commits']:,.0f}/s")
    print(f"publish, one at a time:     {f['serial']:,.0f} alerts/s (one commit each)")
    print(
        f"publish, {f['publishers']} at once, grouped: {f['grouped']:,.0f} alerts/s"
        f" ({f['groups']} commits, {f['mean_group']:.1f} publishes each)"
    )


if __name__ == "__main__":
    main()
