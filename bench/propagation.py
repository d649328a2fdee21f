"""One-hop propagation across three nodes (SPEC section 9): p50 and p99.

KR runs in this process; US and JP run as separate `ewx serve` processes, all
on 127.0.0.1 with real mTLS and durable SQLite (WAL, synchronous=FULL). Each
sample publishes one ALERT at KR and stops the clock when *both* peers'
signed receipts are back and logged at KR. A receipt is only given after the
receiver verified and durably committed the alert, so this is an upper bound
on "raised at KR, verified and durably stored at US and JP" (it includes the
receipts' trip back and KR's own commit of them).

Usage: python bench/propagation.py [--samples N] [--warmup N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.factories when run as a script

from gateway.demo import NodeProcess, assign_free_ports
from gateway.runtime import NodeRuntime
from node.config import NodeConfig
from node.logs import configure
from node.models import Receipt
from node.pki import init_federation
from tests.factories import alert_info


async def measure(kr_config: Path, samples: int, warmup: int) -> list[float]:
    runtime = NodeRuntime(NodeConfig.load(kr_config))
    await runtime.start()
    service = runtime.service
    done: dict[str, asyncio.Event] = {}
    receipts: dict[str, int] = {}

    def on_receipt(_peer: str, receipt: Receipt) -> None:
        receipts[receipt.alert_id] = receipts.get(receipt.alert_id, 0) + 1
        if receipts[receipt.alert_id] == 2:
            done[receipt.alert_id].set()

    service.on_receipt = on_receipt
    info = alert_info()
    latencies = []
    try:
        for i in range(warmup + samples):
            alert_id = f"KR-BENCH-{i:06d}"
            done[alert_id] = asyncio.Event()
            start = time.perf_counter()
            service.publish(msg_type="ALERT", status="TEST", info=info, alert_id=alert_id)
            await asyncio.wait_for(done[alert_id].wait(), timeout=10)
            if i >= warmup:
                latencies.append((time.perf_counter() - start) * 1000)
    finally:
        await runtime.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    configure(level="warning")
    root = Path(tempfile.mkdtemp(prefix="ewx-bench-"))
    init_federation(root / "fed")
    configs = assign_free_ports(root / "fed")
    peers = [NodeProcess.start(cc, configs[cc]) for cc in ("US", "JP")]
    try:
        for peer in peers:
            peer.wait_ready()
        latencies = asyncio.run(measure(configs["KR"], args.samples, args.warmup))
    finally:
        for peer in peers:
            peer.stop()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"one-hop propagation KR -> US+JP, {len(latencies)} samples (receipts back at KR):")
    print(f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   max {latencies[-1]:.2f} ms")
    print("  target (SPEC section 9): p50 <= 3 ms, p99 <= 15 ms")
    print("  note: checkpoints and cosigning (issue 3) are not running yet")


if __name__ == "__main__":
    main()
