"""Operator listings beside peer traffic (issue 10, item 7): a page's cost, and a Deliver's while pages are read.

The issue measured `ewx alert list` over 20,000 alerts at 0.9 s and 11 MB, on
the event loop, while a peer's Deliver took 925 ms instead of 1 ms. In one run
this:

1. makes a development federation and publishes --alerts alerts at KR
   (directly through its NodeService: the store is what is measured);
2. starts KR (a real NodeRuntime: gRPC over mTLS, the operator socket) and
   times one-alert Delivers from US, one after the other, with nothing else
   running: the baseline;
3. times the same Delivers while a thread pages through every alert over the
   operator socket, again and again, at --page alerts a page (default the
   largest, OPERATOR_PAGE_MAX), and reports each page's time and size as the CLI receives it.

With --store postgresql KR's store is a database on the benches' PostgreSQL
server (bench/postgres.py, durable defaults) instead of its SQLite file.

It prints the figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script

from bench.postgres import STORES, put_on_store
from gateway import rpc
from gateway.local_nodes import assign_free_ports
from gateway.runtime import NodeRuntime
from node import limits
from node.config import NodeConfig
from node.logs import configure
from node.operator import OperatorClient
from node.pki import init_federation
from node.service import NodeService
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info, alert_payload, envelope, peer_channel


def fill(config: Path, n: int) -> None:
    service = NodeService.open(NodeConfig.load(config))
    info = alert_info()
    for _ in range(n):
        service.publish(msg_type="ALERT", status="TEST", info=info, recipients=["JP"])
    service.close()


def pages(path: Path, page_size: int, stop: threading.Event, timings: list[tuple[float, int]]) -> None:
    client = OperatorClient(path)
    while not stop.is_set():
        after = None
        while not stop.is_set():
            start = time.perf_counter()
            args = {"limit": page_size, **({"after": after} if after else {})}
            page = client.call("list", **args)
            timings.append((time.perf_counter() - start, len(page["alerts"])))
            if not page["more"]:
                break
            after = page["next"]


async def delivers(fed: dict[str, Path], first_seq: int, n: int) -> list[float]:
    took = []
    async with peer_channel(fed["KR"], fed["US"]) as channel:
        deliver = channel.unary_unary(rpc.DELIVER)
        for seq in range(first_seq, first_seq + n):
            payload = alert_payload("US", {"KR": seq}, alert_id=f"US-B-{seq}")
            request = pb.DeliverRequest(envelope=envelope(fed["US"], payload)).SerializeToString()
            start = time.perf_counter()
            await deliver(request, timeout=10)
            took.append(time.perf_counter() - start)
    return took


def stats(seconds: list[float]) -> dict[str, float]:
    """n, p50, p99 and max, in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return {"n": len(ms), "p50": statistics.median(ms), "p99": p99, "max": ms[-1]}


def summary(name: str, figures: dict[str, float], prefix: str) -> str:
    n, p50, p99, top = (figures[f"{prefix}_{k}"] for k in ("n", "p50", "p99", "max"))
    return f"{name}: n={n:.0f} p50={p50:.2f} ms p99={p99:.2f} ms max={top:.2f} ms"


async def measure(alerts: int, n: int, page_size: int, store: str = "sqlite") -> dict[str, float]:
    root = Path(tempfile.mkdtemp())
    try:
        init_federation(root / "fed")
        fed = assign_free_ports(root / "fed")
        put_on_store(fed, store, "operator")
        start = time.perf_counter()
        fill(fed["KR"], alerts)
        print(f"published {alerts} alerts at KR in {time.perf_counter() - start:.1f} s", flush=True)
        runtime = NodeRuntime(NodeConfig.load(fed["KR"]))
        await runtime.start()
        try:
            alone = await delivers(fed, 1, n)
            stop, timings = threading.Event(), list[tuple[float, int]]()
            lister = threading.Thread(
                target=pages, args=(runtime.config.operator_socket, page_size, stop, timings)
            )
            lister.start()
            try:
                while not timings:  # noqa: ASYNC110 - the lister has begun its first page
                    await asyncio.sleep(0.01)
                during = await delivers(fed, n + 1, n)
            finally:
                stop.set()
                await asyncio.to_thread(lister.join)
        finally:
            await runtime.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, float] = {"page_size": page_size}
    for prefix, values in (("alone", alone), ("during", during), ("page", [t for t, _ in timings])):
        figures.update({f"{prefix}_{k}": v for k, v in stats(values).items()})
    figures.update(pages=len(timings), paged_alerts=sum(c for _, c in timings))
    return figures


def run(
    alerts: int = 20_000, delivers: int = 300, page: int = limits.OPERATOR_PAGE_MAX, store: str = "sqlite"
) -> dict[str, float]:
    """Measure at these sizes, the nodes on `store`; the figures (milliseconds): alone_* (a Deliver with
    nothing else running: n, p50, p99, max), during_* (while pages are read), page_*
    (one page over the operator socket), and pages and paged_alerts read meanwhile."""
    return asyncio.run(measure(alerts, delivers, page, store))


def report(figures: dict[str, float]) -> None:
    print(summary("Deliver, nothing else running", figures, "alone"))
    print(summary(f"Deliver, while pages of {figures['page_size']:.0f} were read", figures, "during"))
    print(summary("one page over the operator socket", figures, "page"))
    print(f"pages read meanwhile: {figures['pages']:.0f} ({figures['paged_alerts']:.0f} alerts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000, help="alerts stored at KR (default 20,000)")
    parser.add_argument(
        "--delivers", type=int, default=300, help="Delivers timed in each phase (default 300)"
    )
    parser.add_argument(
        "--page",
        type=int,
        default=limits.OPERATOR_PAGE_MAX,
        help="alerts a page (default: the largest allowed)",
    )
    parser.add_argument("--store", choices=STORES, default="sqlite", help="the nodes' store (default sqlite)")
    args = parser.parse_args()
    configure(level="warning")
    report(run(args.alerts, args.delivers, args.page, args.store))


if __name__ == "__main__":
    main()
