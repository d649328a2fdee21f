"""One-hop propagation across three nodes (SPEC section 9): p50 and p99.

KR runs in this process; US and JP run as separate `ewx serve` processes, all
on 127.0.0.1 with real mTLS and a durable store: SQLite (WAL,
synchronous=FULL), or with --store postgresql a database each on the
benches' PostgreSQL server (bench/postgres.py, durable defaults). Each
sample publishes one ALERT at KR and takes two readings:

- stored: when the second peer's Deliver reply reaches KR. A peer replies
  only after it verified and durably committed the alert, so this is an
  upper bound on "raised at KR, verified and durably stored at US and JP"
  (SPEC section 9) that only adds the reply's trip back over loopback;
- logged: when KR has also verified and durably logged both receipts.

Usage: python bench/propagation.py [--samples N] [--warmup N] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script

from bench.postgres import STORES, put_on_store
from bench.served_logs import as_served
from gateway.local_nodes import NodeProcess, assign_free_ports
from gateway.peers import PeerClient
from gateway.runtime import NodeRuntime
from node.config import NodeConfig
from node.logs import configure
from node.message import Receipt
from node.pki import init_federation
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info


def _time_replies(replies: dict[str, list[float]]) -> None:
    """Record when each Deliver reply arrives (bench-only instrumentation)."""
    original = PeerClient.deliver

    async def deliver(self: PeerClient, envelope: bytes, *, checkpoint: str) -> tuple[bytes, str]:
        receipt, gossiped = await original(self, envelope, checkpoint=checkpoint)
        body = pb.ReceiptBody.FromString(pb.SignedReceipt.FromString(receipt).receipt)
        replies.setdefault(body.alert_id, []).append(time.perf_counter())
        return receipt, gossiped

    PeerClient.deliver = deliver  # type: ignore[method-assign]


async def measure(kr_config: Path, samples: int, warmup: int) -> tuple[list[float], list[float]]:
    replies: dict[str, list[float]] = {}
    _time_replies(replies)
    runtime = NodeRuntime(NodeConfig.load(kr_config))
    await runtime.start()
    service = runtime.service
    done: dict[str, asyncio.Event] = {}
    receipts: dict[str, int] = {}

    loop = asyncio.get_running_loop()

    def on_receipt(_peer: str, receipt: Receipt) -> None:  # on the store's thread, after the commit
        receipts[receipt.alert_id] = receipts.get(receipt.alert_id, 0) + 1
        if receipts[receipt.alert_id] == 2:
            loop.call_soon_threadsafe(done[receipt.alert_id].set)

    service.on_receipt = on_receipt
    info = alert_info()
    stored, logged = [], []
    try:
        for i in range(warmup + samples):
            alert_id = f"KR-BENCH-{i:06d}"
            done[alert_id] = asyncio.Event()
            start = time.perf_counter()
            await service.call(service.publish, msg_type="ALERT", status="TEST", info=info, alert_id=alert_id)
            await asyncio.wait_for(done[alert_id].wait(), timeout=10)
            if i >= warmup:
                logged.append((time.perf_counter() - start) * 1000)
                stored.append((max(replies[alert_id]) - start) * 1000)
    finally:
        await runtime.stop()
    return stored, logged


def _percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": statistics.median(values), "p99": values[int(len(values) * 0.99) - 1], "max": values[-1]}


def run(samples: int = 1000, warmup: int = 50, store: str = "sqlite") -> dict[str, float]:
    """Measure at these sizes, the nodes on `store`; the figures in milliseconds: stored_p50, stored_p99,
    stored_max (the second peer's reply at KR) and logged_* (both receipts logged at KR)."""
    root = Path(tempfile.mkdtemp(prefix="ewx-bench-"))
    init_federation(root / "fed")
    configs = assign_free_ports(root / "fed")
    put_on_store(configs, store, "propagation")
    peers = [NodeProcess.start(cc, configs[cc]) for cc in ("US", "JP")]
    try:
        for peer in peers:
            peer.wait_ready()
        with as_served(root):
            stored, logged = asyncio.run(measure(configs["KR"], samples, warmup))
    finally:
        for peer in peers:
            peer.stop()
        shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, float] = {"samples": len(stored)}
    for name, values in (("stored", stored), ("logged", logged)):
        figures.update({f"{name}_{k}": v for k, v in _percentiles(values).items()})
    return figures


def report(figures: dict[str, float]) -> None:
    print(f"one-hop propagation KR -> US+JP, {figures['samples']:.0f} samples:")
    for name, key in (("stored at both peers", "stored"), ("receipts logged at KR", "logged")):
        print(
            f"  {name:<22} p50 {figures[key + '_p50']:.2f} ms   p99 {figures[key + '_p99']:.2f} ms"
            f"   max {figures[key + '_max']:.2f} ms"
        )
    print("  target (SPEC section 9): p50 <= 3 ms, p99 <= 15 ms")
    print("  (checkpoints are signed and cosigned every second meanwhile, as configured by default)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--store", choices=STORES, default="sqlite", help="the nodes' store (default sqlite)")
    args = parser.parse_args()
    configure(level="warning")
    report(run(args.samples, args.warmup, args.store))


if __name__ == "__main__":
    main()
