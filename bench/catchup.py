"""Catch-up after an outage, and the sustained inbound rate (SPEC section 9).

1. KR publishes N alerts to JP while JP is offline (KR runs as a real `ewx
   serve` process once they are queued). JP then starts, in this process,
   and the clock runs until JP holds all N, in order: pulled from KR in
   pages of up to node.limits.MAX_CATCHUP_PAGE, one durable commit per page,
   while KR's outbox pushes as well (duplicates are stored once).
2. The sustained inbound rate with full verification and durable logging:
   JP's catch-up rate above, and a direct measurement of
   NodeService.receive_many over pages of the same alerts into a fresh
   store, beside this machine's raw Ed25519 verify rate on one core,
   measured in the same run. receive_many is measured twice: as the node
   runs it (a page's signatures verified in a pool of CPUs - 1 processes,
   node/crypto/_sigpool.py) and in the node's process alone ($EWX_INBOUND_WORKERS=0).

Targets: catch-up of 100,000 alerts within 30 s of restart; at least 5,000
alerts/s inbound, i.e. over half the single-core raw verify rate.

On PostgreSQL (--store postgresql) each node, and each fresh store of the
receive_many measurements, is a database of its own on the benches' server
(bench/postgres.py, durable defaults).

Usage: python bench/catchup.py [--alerts N] [--store sqlite|postgresql]
       EWX_INBOUND_WORKERS=0 python bench/catchup.py   (catch-up without the verifying pool)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script


from bench.postgres import STORES, fresh_store_table, put_on_store
from bench.served_logs import as_served
from gateway.local_nodes import NodeProcess, assign_free_ports
from gateway.runtime import NodeRuntime
from node.config import NodeConfig, StoreConfig
from node.crypto import INBOUND_WORKERS_ENV, available_cpus
from node.logs import configure
from node.pki import init_federation
from node.service import NodeService
from tests.support.factories import alert_info


def raw_verify_rate(seconds: float = 2.0) -> float:
    """One core's raw Ed25519 verifications per second, as bench/floors.py measures them
    (libsodium, the verify node/crypto runs)."""
    from bench.audit import verify_loop
    from bench.floors import verify_sample

    return verify_loop(verify_sample(), seconds)


def publish(config: Path, n: int) -> float:
    service = NodeService.open(NodeConfig.load(config))
    info = alert_info()
    start = time.perf_counter()
    for _ in range(n):
        service.publish(msg_type="ALERT", status="TEST", info=info, recipients=["JP"])
    elapsed = time.perf_counter() - start
    service.close()
    return n / elapsed


async def catch_up(config: Path, n: int) -> float:
    runtime = NodeRuntime(NodeConfig.load(config))
    start = time.perf_counter()
    await runtime.start()
    try:
        service = runtime.service
        while await service.call(service.last_seq, "KR", "JP") < n:  # noqa: ASYNC110 - polling is the measurement
            await asyncio.sleep(0.05)
        return time.perf_counter() - start
    finally:
        await runtime.stop()


def sent_to_jp(kr_config: Path, n: int) -> list[bytes]:
    kr = NodeService.open(NodeConfig.load(kr_config))
    envelopes = kr.catch_up(requester="JP", origin="KR", after_seq=0, limit=n)
    while len(envelopes) < n:
        more = kr.catch_up(requester="JP", origin="KR", after_seq=len(envelopes), limit=1000)
        if not more:
            break
        envelopes += more
    kr.close()
    return envelopes[:n]


def receive_rate(envelopes: list[bytes], jp_config: Path, data_dir: Path, store: str = "sqlite") -> float:
    table = fresh_store_table(store, f"catchup_{data_dir.name}")
    fresh = NodeConfig.load(jp_config).model_copy(
        update={"data_dir": data_dir, "store": None if table is None else StoreConfig(url=table["url"])}
    )
    jp = NodeService.open(fresh)
    start = time.perf_counter()
    for i in range(0, len(envelopes), 1000):
        jp.receive_many(envelopes[i : i + 1000], peer="KR", direct=True)
    elapsed = time.perf_counter() - start
    jp.close()
    return len(envelopes) / elapsed


def run(alerts: int = 100_000, store: str = "sqlite") -> dict[str, float]:
    """Measure with `alerts` alerts, the nodes on `store`; the figures: published (alerts/s at KR, one commit
    each), catch_up_seconds, catch_up_rate (alerts/s), inbound (receive_many alerts/s,
    with the pool unless the caller set $EWX_INBOUND_WORKERS), alone (in one process)
    and raw (this bench's own raw Ed25519 verify rate on one core)."""
    tmp = Path(tempfile.mkdtemp(prefix="ewx-catchup-"))
    try:
        with as_served(tmp):
            init_federation(tmp / "fed")
            configs = assign_free_ports(tmp / "fed", outbox_retry_max_seconds=1.0)
            put_on_store(configs, store, "catchup")
            print(f"publishing {alerts} alerts at KR for JP (JP offline) ...", flush=True)
            published = publish(configs["KR"], alerts)
            envelopes = sent_to_jp(configs["KR"], min(alerts, 20_000))
            # Before the catch-up starts this process's pool (and with none started).
            # The caller's own setting (EWX_INBOUND_WORKERS=0: catch-up without the
            # pool) is put back for what follows.
            callers = os.environ.get(INBOUND_WORKERS_ENV)
            os.environ[INBOUND_WORKERS_ENV] = "0"
            alone = receive_rate(envelopes, configs["JP"], tmp / "jp-alone", store)
            if callers is None:
                del os.environ[INBOUND_WORKERS_ENV]
            else:
                os.environ[INBOUND_WORKERS_ENV] = callers
            kr = NodeProcess.start("KR", configs["KR"])
            try:
                kr.wait_ready()
                took = asyncio.run(catch_up(configs["JP"], alerts))
            finally:
                kr.stop()
            raw = raw_verify_rate()
            inbound = receive_rate(envelopes, configs["JP"], tmp / "jp-pool", store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "alerts": alerts,
        "published": published,
        "catch_up_seconds": took,
        "catch_up_rate": alerts / took,
        "inbound": inbound,
        "alone": alone,
        "raw": raw,
    }


def report(figures: dict[str, float]) -> None:
    callers = os.environ.get(INBOUND_WORKERS_ENV)
    alerts, took, raw = int(figures["alerts"]), figures["catch_up_seconds"], figures["raw"]
    inbound, alone = figures["inbound"], figures["alone"]
    print(f"publish at KR:            {figures['published']:,.0f} alerts/s (one durable commit each)")
    print(
        f"catch-up of {alerts:,} alerts: {took:.1f} s from JP's start (target: under 30 s for 100,000)"
        f" = {alerts / took:,.0f} alerts/s"
    )
    print(
        f"inbound receive_many:     {inbound:,.0f} alerts/s with full verification and durable logging"
        + (
            f" (${INBOUND_WORKERS_ENV}={callers}: as the caller set it)"
            if callers is not None
            else f" (signatures verified in a pool beside the node's process, {available_cpus()} CPUs)"
        )
    )
    print(f"  in one process:         {alone:,.0f} alerts/s (${INBOUND_WORKERS_ENV}=0)")
    print(
        f"raw Ed25519 verify:       {raw:,.0f}/s on one core; inbound/raw = {inbound / raw:.2f},"
        f" in one process {alone / raw:.2f} (target: at least 5,000/s and over 0.5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--store", choices=STORES, default="sqlite", help="the nodes' store (default sqlite)")
    args = parser.parse_args()
    configure(level="error")
    report(run(args.alerts, args.store))


if __name__ == "__main__":
    main()
