"""Delivery over a Seoul-Washington link: 150 ms round trip, 1% loss (issue 15, item 3).

KR queues N alerts for US while it is down, then KR and US run as real `ewx
serve` processes whose links to each other go through the project's delaying
TCP proxy (tests/support/proxy.py: 75 ms each way; each chunk lost with the
given probability and resent 200 ms late, the later ones waiting behind it,
as TCP recovers a lost segment; optionally a connection reset after a chunk
with another probability, a far harsher fault that tests/federation's fault
tests use). The clock runs from KR's start
until KR holds US's receipt for every alert; US must then hold all N, at
sequences 1..N (nothing lost, nothing reordered: a gap would have been
refused). Measured with KR's `delivery_window` at its default (a window of
alerts in flight on one DeliverStream) and at 1 (one Deliver at a time, as
before the window), on fewer alerts since that one is slow.

Target: 1,000 alerts/s over the 150 ms link, nothing lost, order kept;
one in flight gives about 1/RTT, 7 alerts/s.

With --store postgresql each node's store is a database on the benches'
PostgreSQL server (bench/postgres.py, durable defaults).

Usage: python bench/slow_link.py [--alerts N] [--one-by-one N] [--loss P] [--resets P]
                                 [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script

from bench.postgres import STORES, put_on_store
from gateway.local_nodes import NodeProcess, assign_free_ports
from node.config import NodeConfig
from node.limits import DELIVERY_WINDOW
from node.logs import configure
from node.operator import OperatorClient
from node.pki import init_federation
from node.service import NodeService, read_node_store
from tests.support.factories import alert_info
from tests.support.proxy import ProxyThread

ONE_WAY_SECONDS = 0.075
RESEND_SECONDS = 0.2
"""Linux's smallest TCP retransmission timeout: when a lost chunk arrives after all."""


def _through_proxies(configs: dict[str, Path], proxies: ProxyThread, loss: float, resets: float) -> None:
    """Point KR's and US's addresses of each other at delaying, lossy proxies."""
    ports = {cc: int(NodeConfig.load(path).listen.rsplit(":", 1)[1]) for cc, path in configs.items()}
    for a, b in (("KR", "US"), ("US", "KR")):
        link = proxies.add(ports[b], name=f"{a}->{b}")
        link.delay(ONE_WAY_SECONDS)
        link.lose(loss, resend_after=RESEND_SECONDS)
        link.reset_every(probability=resets)
        data = tomllib.loads(configs[a].read_text())
        data["peers"][b]["address"] = link.address
        configs[a].write_text(tomli_w.dumps(data))


def _queue(config: Path, n: int) -> None:
    service = NodeService.open(NodeConfig.load(config))
    info = alert_info()
    try:
        for _ in range(n):
            service.publish(msg_type="ALERT", status="TEST", info=info, recipients=["US"])
    finally:
        service.close()


def measure(alerts: int, *, window: int, loss: float, resets: float = 0.0, store: str = "sqlite") -> float:
    """Alerts/s from KR to US over the slow link with KR's `delivery_window` = `window`."""
    tmp = Path(tempfile.mkdtemp(prefix="ewx-slowlink-"))
    try:
        init_federation(tmp / "fed")
        configs = assign_free_ports(tmp / "fed", outbox_retry_max_seconds=0.5)
        put_on_store(configs, store, f"slowlink_{window}")
        data = tomllib.loads(configs["KR"].read_text())
        data["delivery_window"] = window
        configs["KR"].write_text(tomli_w.dumps(data))
        _queue(configs["KR"], alerts)
        with ProxyThread() as proxies:
            _through_proxies(configs, proxies, loss, resets)
            us = NodeProcess.start("US", configs["US"])
            kr: NodeProcess | None = None
            try:
                us.wait_ready()
                start = time.perf_counter()
                kr = NodeProcess.start("KR", configs["KR"])
                kr.wait_ready()
                # KR's backlog read from its store beside it, not by `ewx status`: a status
                # folds up to 500 open alerts (limits.SITUATION_ALERTS_MAX), ~50 ms of KR's
                # CPU each, and polled every 20 ms it took 40% of KR's samples (py-spy).
                kr_store = read_node_store(NodeConfig.load(configs["KR"]))
                try:
                    while kr_store.backlog("US").waiting > 0:
                        time.sleep(0.02)
                    took = time.perf_counter() - start
                finally:
                    kr_store.close()
                held = OperatorClient(NodeConfig.load(configs["US"]).operator_socket).call("status")
                got = held["peers"]["KR"]["last_seq_received"]
                if got != alerts:
                    raise AssertionError(f"US holds KR's alerts up to {got}, not {alerts}")
            finally:
                if kr is not None:
                    kr.stop()
                us.stop()
        return alerts / took
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(
    alerts: int = 20_000, one_by_one: int = 40, loss: float = 0.01, resets: float = 0.0, store: str = "sqlite"
) -> dict[str, float]:
    """The figures: windowed (alerts/s with the default window), one_by_one (alerts/s with
    a window of 1), rtt_ms, loss, resets, and the sizes."""
    windowed = measure(alerts, window=DELIVERY_WINDOW, loss=loss, resets=resets, store=store)
    single = measure(one_by_one, window=1, loss=loss, resets=resets, store=store)
    return {
        "alerts": alerts,
        "one_by_one_alerts": one_by_one,
        "window": DELIVERY_WINDOW,
        "rtt_ms": 2 * ONE_WAY_SECONDS * 1000,
        "loss": loss,
        "resets": resets,
        "windowed": windowed,
        "one_by_one": single,
    }


def report(figures: dict[str, float]) -> None:
    rtt, loss, resets = figures["rtt_ms"], figures["loss"], figures.get("resets", 0.0)
    faults = f"{loss:.0%} loss" + (f", {resets:.1%} of chunks reset" if resets else "")
    print(
        f"KR -> US over a {rtt:.0f} ms round trip, {faults}: "
        f"{figures['windowed']:,.0f} alerts/s with {figures['window']:.0f} in flight "
        f"({figures['alerts']:,.0f} alerts; target 1,000/s), nothing lost, order kept"
    )
    print(
        f"  one Deliver at a time:  {figures['one_by_one']:,.1f} alerts/s "
        f"({figures['one_by_one_alerts']:.0f} alerts; 1/RTT = {1000 / rtt:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000, help="alerts delivered with the window")
    parser.add_argument("--one-by-one", type=int, default=40, help="alerts delivered one Deliver at a time")
    parser.add_argument(
        "--loss", type=float, default=0.01, help="probability a chunk is lost (resent 200 ms late)"
    )
    parser.add_argument("--resets", type=float, default=0.0, help="probability of a reset after each chunk")
    parser.add_argument("--store", choices=STORES, default="sqlite", help="the nodes' store (default sqlite)")
    args = parser.parse_args()
    configure(level="error")
    report(run(args.alerts, args.one_by_one, args.loss, args.resets, args.store))


if __name__ == "__main__":
    main()
