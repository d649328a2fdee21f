"""A node's resident memory with N entries in its exchange log, and its start-up time (SPEC section 9).

The target: a node's resident memory stays under 200 MB with 1,000,000 log
entries (issue 15, item 4). In one run this:

1. fills KR's exchange log, in a development federation (node.pki), to
   exactly --entries entries, through KR's own NodeService in this process:
   - 98% are US's and JP's signed alerts, taken by NodeService.receive_many
     in pages of node.limits.MAX_CATCHUP_PAGE as a catch-up takes them (one
     commit a page, every signature verified in the node's verifying pool,
     every alert decoded and checked, gapless sequences): ALERT_RECEIVED
     entries. A generator process (niced) builds them on pb2 directly and
     signs them with the peers' own alert keys, a few chunks ahead of the
     receiving. Their content: ALERTs (70%), UPDATEs of the origin's own
     alerts (15%), ACKs of the other peer's (15%), 85% addressed to both
     peers, on a dozen stories (headline, HS codes, source countries), sent
     over the 30 days since the federation was made;
   - 2% are KR's own ALERTs, published with NodeService.publish to both
     peers, and each peer's signed receipt for them taken by
     NodeService.accept_receipt: ALERT_SENT and RECEIPT_RECEIVED entries,
     spread through the log; their outbox rows are delivered;
   - each received ALERT and UPDATE gets its exposure row, as the running
     node's exposure worker records one for every peer alert it stores:
     the body is node.ews.exposure.local_exposure's on the node's (empty)
     early-warning data for the alert's codes and sources, computed once
     per story; the rows are inserted a chunk at a time on a second
     connection (SQL, the store's own statement).
   Durability is off while filling (PRAGMA synchronous=OFF on the filling
   connections, on PostgreSQL synchronous_commit=off; the node serves with
   its own durable commits). The fill is the node's
   receive path, about 200 us of one core an alert (decoding and checking
   with the models, storing), so 1,000,000 entries take about 4 minutes on
   the shared 2-core machine (237 s with it mostly quiet, 365 s beside a
   test run); the quick size's 20,000 take 6-7 s. `ewx audit verify`
   finds such a log clean (--audit);
2. starts KR as a real `ewx serve` process (gateway/local_nodes.py
   NodeProcess), its peers not running (unreachable: its delivery, pull and
   witness loops back off and retry; peers started on empty stores would
   make this a catch-up, and peers holding what KR holds would triple the
   fill), and times its start until it serves its peers (`ping` says
   serving): `start_seconds`;
3. serves for --seconds while a client does ordinary operator work over the
   operator socket in rounds every 0.5 s (a publish to both peers,
   `status`, one page of OPERATOR_PAGE_MAX alerts of `list`, walking
   through the log), and samples the node's /proc/PID/status every 0.1 s:
   `steady_mb` is the median VmRSS over the serving, `peak_mb` the node's
   VmHWM at its end (start-up included). Processes the node started (its
   verifying pool, if a page started one) are sampled apart (`children_mb`);
4. (unless --no-pending) deletes the exposure rows and starts KR again:
   the state of a node whose exposure checks lag behind what it stored (a
   catch-up stores thousands of alerts a second; with trade data the check
   runs DuckDB queries per HS code, docs/performance.md), where the start
   queues every unchecked peer alert (gateway/runtime.py): `pending_*`;
5. does steps 2-3 for a node with --baseline-entries entries (a fresh
   federation): `baseline_*`, and `per_entry_bytes` = (steady - baseline
   steady) / (entries - baseline entries), what the node holds in memory
   per log entry (at the quick size within the noise).

Measured at 1,000,000 entries on 2026-12-04 (commit 78abbb1; the machine
shared with test runs): peak 113 MB, steady 106 MB, against 110 and 105 MB
for the node with 1,000 entries: about 1 byte an entry. Start 4.0 s (1.6 s
on a quiet machine; 0.8 s of it the start's query for peer alerts without
an exposure, gateway/runtime.py), 0.8 s for the small node. On the same
store with the code before 4b4a09a (node/crypto MerkleLevels: every leaf
hash and subtree root in memory): peak 176 MB, steady 169-170 MB, 66 bytes
an entry, start 4.1-4.6 s. With its 832,785 exposure checks pending: peak
334 MB, steady 330 MB at start (about 270 bytes a pending check: the
start's list of them and the exposure worker's queue).

With --store postgresql KR's store (and every node's) is a database on the
benches' PostgreSQL server (bench/postgres.py, durable defaults): the node's
memory is then the node process's alone, the server's own processes (its
shared buffers, its backends) are not in it, and `store_mb` is the
database's size (pg_database_size).

MB are 10^6 bytes (/proc reports KiB). It prints its figures and asserts
nothing.

Usage: python bench/node_memory.py [--entries N] [--seconds S] [--baseline-entries N]
                                   [--no-pending] [--audit] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script

from google.protobuf.timestamp_pb2 import Timestamp

from bench import postgres
from bench.procs import descendants
from gateway.local_nodes import NodeProcess, assign_free_ports
from node import limits
from node.config import NodeConfig
from node.crypto import PAYLOAD_ALERT, PAYLOAD_RECEIPT, Signer
from node.ews.exposure import local_exposure
from node.ews.store import EwsStore
from node.logs import configure
from node.message import encode
from node.pki import init_federation
from node.service import NodeService
from node.store import STORE_FILE
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info

TARGET_MB = 200.0
OWN_SHARE = 0.02
"""The part of the log that is KR's own alerts (ALERT_SENT) and the peers' receipts for them."""
PAGE = limits.MAX_CATCHUP_PAGE
"""Alerts of each peer in one chunk: one receive_many page, one commit."""
BOTH_EVERY = 20
BOTH_OF = 17
"""An alert is addressed to both peers when its number in the chunk, modulo BOTH_EVERY, is below BOTH_OF (85%)."""
HISTORY = timedelta(days=30)
"""How long before the fill the federation was made; the peers' alerts were sent over that time."""
SAMPLE_SECONDS = 0.1
ROUND_SECONDS = 0.5
"""One round of operator work (publish, status, a page) starts this often."""
DAY_US = 86_400_000_000

STORIES = (
    (
        "Export licensing required for gallium and germanium products",
        "EXPORT_CONTROL",
        ("811292", "282590"),
        ("CN",),
    ),
    ("Port congestion delays rare earth magnet shipments", "LOGISTICS", ("850511",), ("CN",)),
    ("Smelter outage cuts refined cobalt output", "PRODUCTION_OUTAGE", ("810520",), ("CD", "ZA")),
    (
        "Typhoon closes container terminals for several days",
        "NATURAL_HAZARD",
        ("854231", "850511"),
        ("CN", "ID"),
    ),
    (
        "New export quotas announced on graphite anode material",
        "EXPORT_CONTROL",
        ("250410", "381800"),
        ("CN",),
    ),
    ("Fab fire halts production of automotive microcontrollers", "PRODUCTION_OUTAGE", ("854231",), ("ZZ",)),
    ("Drought lowers river levels on a key barge route", "LOGISTICS", ("2846", "280461"), ("CL",)),
    ("Price spike in high purity quartz after mine closure", "SUPPLY_DROP", ("280461",), ("AU", "CL")),
    ("Rare earth separation plant suspends output", "PRODUCTION_OUTAGE", ("2846",), ("CN", "AU")),
    ("Lithium brine permits frozen pending review", "SUPPLY_DROP", ("282590",), ("CL",)),
    ("Tungsten concentrate shipments held at the border", "EXPORT_CONTROL", ("811292",), ("CN",)),
    ("Cobalt hydroxide exports suspended for four months", "EXPORT_CONTROL", ("810520", "282590"), ("CD",)),
)
"""(headline, category, HS codes, source countries) of the peers' alerts."""


# ------------------------------------------------------------------ the peers' alerts (generator process)
_GEN: dict[str, Any] = {}
"""The generator process's signers and times, set by _start_generator."""


def _start_generator(configs: dict[str, str], first_sent_us: int, step_us: int) -> None:
    configure(level="error")
    os.nice(10)  # the node's receiving and its verifying pool come first; this one runs ahead in their gaps
    _GEN["signers"] = {cc: NodeConfig.load(Path(p)).load_signers()["alert"] for cc, p in configs.items()}
    _GEN["first_sent_us"], _GEN["step_us"] = first_sent_us, step_us


def _timestamp(micros: int) -> Timestamp:
    return Timestamp(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


def _both_before(i: int) -> int:
    """How many of a chunk's first `i` alerts of one origin go to both peers."""
    return (i // BOTH_EVERY) * BOTH_OF + min(i % BOTH_EVERY, BOTH_OF)


@dataclass
class Chunk:
    """One chunk of the peers' alerts to KR, as the generator made it."""

    envelopes: dict[str, list[bytes]]
    """Per origin (US, JP), its signed alerts in its sequence order towards KR."""
    scopes: list[tuple[str, str, int]]
    """(origin, alert id, story) of each ALERT and UPDATE: its exposure row."""


def make_chunk(k: int, count: int, seed: int) -> Chunk:
    """Chunk `k`: its first `count` alerts (of 2 x PAGE), US's and JP's interleaved in time."""
    rng = random.Random(seed * 1_000_003 + k)
    signers: dict[str, Signer] = _GEN["signers"]
    envelopes: dict[str, list[bytes]] = {"US": [], "JP": []}
    scopes: list[tuple[str, str, int]] = []
    own: dict[str, list[tuple[str, bytes, int]]] = {"US": [], "JP": []}
    """Each origin's ALERTs and UPDATEs so far in the chunk: (id, digest, story), for its UPDATEs."""
    ackable: dict[str, list[tuple[str, str, bytes]]] = {"US": [], "JP": []}
    """Per origin, the other peer's ALERTs and UPDATEs addressed to it, not acknowledged yet."""
    for n in range(count):
        origin, other = ("US", "JP") if n % 2 == 0 else ("JP", "US")
        i = n // 2
        both = i % BOTH_EVERY < BOTH_OF
        deliveries = [pb.Delivery(recipient=pb.KR, seq=k * PAGE + i + 1)]
        if both:
            seq = k * _both_before(PAGE) + _both_before(i) + 1
            deliveries.append(pb.Delivery(recipient=pb.Country.Value(other), seq=seq))
        sent = _GEN["first_sent_us"] + (2 * PAGE * k + n) * _GEN["step_us"]
        alert_id = f"{origin}-B{k:05d}-{i:04d}"
        msg = pb.Alert(
            schema_version=limits.SCHEMA_VERSION,
            alert_id=alert_id,
            origin=pb.Country.Value(origin),
            sent=_timestamp(sent),
            status=pb.ACTUAL,
            deliveries=deliveries,
        )
        roll = rng.random()
        story = rng.randrange(len(STORIES))
        if roll < 0.15 and ackable[origin]:
            ref_origin, ref_id, ref_digest = ackable[origin].pop(rng.randrange(len(ackable[origin])))
            msg.msg_type = pb.ACK
            msg.references.append(
                pb.AlertRef(origin=pb.Country.Value(ref_origin), alert_id=ref_id, digest=ref_digest)
            )
            msg.reason = pb.ReasonCode.Value(rng.choice(("RECEIVED", "UNDER_REVIEW", "ACTION_TAKEN")))
        else:
            msg.msg_type = pb.ALERT
            if roll < 0.3 and own[origin]:
                ref_id, ref_digest, story = rng.choice(own[origin][-50:])
                msg.msg_type = pb.UPDATE
                msg.references.append(
                    pb.AlertRef(origin=pb.Country.Value(origin), alert_id=ref_id, digest=ref_digest)
                )
            headline, category, codes, sources = STORIES[story]
            msg.info.CopyFrom(
                pb.Info(
                    category=pb.Category.Value(category),
                    urgency=pb.Urgency.Value(rng.choice(("IMMEDIATE", "EXPECTED", "FUTURE"))),
                    severity=pb.Severity.Value(rng.choice(("MODERATE", "SEVERE", "EXTREME"))),
                    certainty=pb.Certainty.Value(rng.choice(("OBSERVED", "LIKELY", "POSSIBLE"))),
                    effective=_timestamp(sent + DAY_US),
                    expires=_timestamp(sent + rng.randint(30, 180) * DAY_US),
                    headline=headline,
                    items=[pb.Item(hs_code=c, hs_edition=pb.HS2022) for c in codes],
                    source_countries=list(sources),
                    affected_countries=["KR", "US", "JP"],
                    supply_impact=pb.ImpactBand.Value(
                        rng.choice(("FROM_10_TO_30", "FROM_30_TO_60", "ABOVE_60"))
                    ),
                    expected_duration_days=rng.randint(7, 365),
                )
            )
        payload = encode(msg)
        digest = hashlib.sha256(payload).digest()
        signer = signers[origin]
        envelopes[origin].append(
            encode(
                pb.SignedAlert(
                    alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload)
                )
            )
        )
        if msg.msg_type != pb.ACK:
            own[origin].append((alert_id, digest, story))
            scopes.append((origin, alert_id, story))
            if both:
                ackable[other].append((origin, alert_id, digest))
    return Chunk(envelopes=envelopes, scopes=scopes)


# ------------------------------------------------------------------ filling KR's log
@dataclass
class Filled:
    """What `fill` wrote."""

    entries: int
    received: int
    own: int
    exposures: int
    seconds: float
    receive_seconds: float
    store_mb: float


def _exposure_bodies(config: NodeConfig) -> list[str]:
    """Each story's exposure as the node's exposure worker records it with no early-warning file."""
    store = EwsStore.in_memory()
    try:
        return [
            json.dumps(
                local_exposure(store, hs_codes=list(codes), sources=list(sources), months=config.ews.history),
                sort_keys=True,
            )
            for _, _, codes, sources in STORIES
        ]
    finally:
        store.close()


def _receipt(signer: Signer, *, receiver: str, alert_id: str, seq: int, digest: bytes, index: int) -> bytes:
    """`receiver`'s signed receipt for KR's alert (index: a position in the receiver's log, which is not checked here)."""
    now = datetime.now(UTC)
    body = encode(
        pb.ReceiptBody(
            schema_version=limits.SCHEMA_VERSION,
            receiver=pb.Country.Value(receiver),
            origin=pb.KR,
            alert_id=alert_id,
            seq=seq,
            alert_digest=digest,
            log_index=index,
            received_at=_timestamp(int(now.timestamp() * 1_000_000)),
        )
    )
    return encode(
        pb.SignedReceipt(receipt=body, key_id=signer.key_id, signature=signer.sign(PAYLOAD_RECEIPT, body))
    )


def fill(configs: dict[str, Path], entries: int, *, made: datetime, seed: int = 1) -> Filled:
    """Fill KR's log to exactly `entries` entries (see the module's docstring)."""
    started = time.perf_counter()
    own_alerts = round(entries * OWN_SHARE / 3)
    received = entries - 3 * own_alerts
    chunks = -(-received // (2 * PAGE))
    first_sent = made + timedelta(minutes=1)
    step_us = max(1, int((datetime.now(UTC) - first_sent).total_seconds() * 1_000_000) // max(1, received))
    peer_signers = {cc: NodeConfig.load(configs[cc]).load_signers()["alert"] for cc in ("US", "JP")}
    kr_config = NodeConfig.load(configs["KR"])
    bodies = _exposure_bodies(kr_config)
    info = alert_info()
    generator = ProcessPoolExecutor(
        1,
        mp_context=mp.get_context("forkserver"),
        initializer=_start_generator,
        initargs=(
            {cc: str(configs[cc]) for cc in ("US", "JP")},
            int(first_sent.timestamp() * 1_000_000),
            step_us,
        ),
    )
    ahead: deque[Future[Chunk]] = deque()

    def submit(k: int) -> None:
        if k < chunks:
            ahead.append(generator.submit(make_chunk, k, min(2 * PAGE, received - 2 * PAGE * k), seed))

    service = NodeService.open(kr_config)
    exposures = _exposures_connection(kr_config)
    receive_seconds, stored, published, exposed = 0.0, 0, 0, 0
    try:
        # bench-only: durability off while filling
        if kr_config.store is None:
            service.store._conn.execute("PRAGMA synchronous=OFF")
        else:
            service.store._conn.execute("SET synchronous_commit = off")
        for k in range(3):
            submit(k)
        for k in range(chunks):
            chunk = ahead.popleft().result()
            submit(k + 3)
            t0 = time.perf_counter()
            for origin in ("US", "JP"):
                page = chunk.envelopes[origin]
                result = service.receive_many(page, peer=origin, direct=True)
                if not result.complete or result.stored != len(page):
                    raise RuntimeError(
                        f"chunk {k} from {origin}: stored {result.stored} of {len(page)}: {result}"
                    )
                stored += result.stored
            receive_seconds += time.perf_counter() - t0
            rows = [(o, a, bodies[s], datetime.now(UTC).isoformat()) for o, a, s in chunk.scopes]
            if kr_config.store is None:
                exposures.execute("BEGIN IMMEDIATE")
                exposures.executemany(
                    "INSERT OR REPLACE INTO exposures (origin, alert_id, body, computed_at) VALUES (?, ?, ?, ?)",
                    rows,
                )
                exposures.execute("COMMIT")
            else:
                exposures.execute("BEGIN")
                exposures.cursor().executemany(
                    "INSERT INTO exposures (origin, alert_id, body, computed_at) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (origin, alert_id) DO UPDATE SET body = excluded.body,"
                    " computed_at = excluded.computed_at",
                    rows,
                )
                exposures.execute("COMMIT")
            exposed += len(chunk.scopes)
            # KR's own alerts, spread through the log, each receipted by both peers.
            while published < own_alerts * (k + 1) // chunks:
                alert = service.publish(msg_type="ALERT", status="ACTUAL", info=info)
                for d in alert.alert.deliveries:
                    receipt = _receipt(
                        peer_signers[d.recipient],
                        receiver=d.recipient,
                        alert_id=alert.alert.alert_id,
                        seq=d.seq,
                        digest=alert.digest,
                        index=d.seq - 1,
                    )
                    service.accept_receipt(d.recipient, receipt)
                published += 1
            if k % 50 == 49:
                print(f"  {service.log_size:,} entries, {time.perf_counter() - started:.0f} s", flush=True)
        size = service.log_size
    finally:
        exposures.close()
        service.close()
        generator.shutdown(cancel_futures=True)
    if size != entries:
        raise RuntimeError(f"filled {size} entries, not {entries}")
    return Filled(
        entries=size,
        received=stored,
        own=published,
        exposures=exposed,
        seconds=time.perf_counter() - started,
        receive_seconds=receive_seconds,
        store_mb=_store_mb(kr_config),
    )


def _exposures_connection(config: NodeConfig) -> Any:
    """A second connection to the node's store, for the exposure rows, durability off."""
    if config.store is None:
        exposures = sqlite3.connect(config.data_dir / STORE_FILE, isolation_level=None)
        exposures.execute("PRAGMA synchronous=OFF")
        return exposures
    return postgres.connect(config.store.url, durable=False)


def _store_mb(config: NodeConfig) -> float:
    """The store's size on disk: the SQLite file and its side files, or the PostgreSQL database."""
    if config.store is not None:
        return postgres.database_mb(config.store.url)
    store = config.data_dir / STORE_FILE
    return sum(p.stat().st_size for p in store.parent.glob(store.name + "*")) / 1e6


# ------------------------------------------------------------------ the node's memory
def _kib(status: str, field: str) -> int:
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith(field)), 0)


class Sampler:
    """VmRSS of a process (and the sum of its descendants') every SAMPLE_SECONDS, in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int, int]] = []
        """(time, VmRSS KiB of the process, VmRSS KiB of its descendants together)."""
        self.hwm_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> tuple[int, int] | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        children = 0
        for pid in descendants(self.pid):
            try:
                children += _kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS:")
            except OSError:
                continue
        rss = _kib(status, "VmRSS:")
        self.hwm_kib = max(self.hwm_kib, _kib(status, "VmHWM:"))
        self.samples.append((time.perf_counter(), rss, children))
        return rss, children

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _serve(node: NodeProcess, seconds: float) -> dict[str, float]:
    """Ordinary operator work in rounds for `seconds`; what the node did meanwhile."""
    client = node.client
    info = alert_info()
    after: str | None = None
    rounds = listed = 0
    deadline = time.perf_counter() + seconds
    while (now := time.perf_counter()) < deadline:
        client.call("publish", msg_type="ALERT", status="TEST", info=info)
        status = client.call("status")
        page = client.call("list", limit=limits.OPERATOR_PAGE_MAX, **({"after": after} if after else {}))
        listed += len(page["alerts"])
        after = page["next"] if page["more"] else None
        rounds += 1
        time.sleep(max(0.0, now + ROUND_SECONDS - time.perf_counter()))
    return {"rounds": rounds, "listed": listed, "status_log_size": float(status["log"]["size"])}


def measure_node(configs: dict[str, Path], seconds: float) -> dict[str, float]:
    """Start KR, time its start, serve for `seconds`, and read its memory."""
    started = time.perf_counter()
    node = NodeProcess.start("KR", configs["KR"])
    sampler = Sampler(node.process.pid)
    try:
        node.wait_ready(timeout=600)
        ready = time.perf_counter()
        at_ready = sampler.sample()
        served = _serve(node, seconds)
        sampler.sample()
    finally:
        sampler.stop()
        node.stop()
    window = [(rss, kids) for t, rss, kids in sampler.samples if t >= ready]
    return {
        "start_seconds": ready - started,
        "ready_mb": (at_ready[0] if at_ready else 0) * 1024 / 1e6,
        "peak_mb": sampler.hwm_kib * 1024 / 1e6,
        "steady_mb": statistics.median(rss for rss, _ in window) * 1024 / 1e6,
        "steady_max_mb": max(rss for rss, _ in window) * 1024 / 1e6,
        "steady_min_mb": min(rss for rss, _ in window) * 1024 / 1e6,
        "children_mb": max(kids for _, kids in window) * 1024 / 1e6,
        "samples": len(window),
        **served,
    }


def _federation(root: Path, store: str) -> tuple[dict[str, Path], datetime]:
    made = (datetime.now(UTC) - HISTORY).replace(microsecond=0)
    init_federation(root, now=made)
    configs = dict(assign_free_ports(root, outbox_retry_max_seconds=5.0))
    postgres.put_on_store(configs, store, f"memory_{root.name}")
    return configs, made


def _audit(configs: dict[str, Path], root: Path) -> dict[str, float]:
    """`ewx log export` of KR's log and `ewx audit verify` on it."""
    bundle = root / "KR.ewxlog"
    gateway = [sys.executable, "-m", "gateway"]
    subprocess.run(
        [*gateway, "log", "export", "--config", str(configs["KR"]), "--out", str(bundle), "--quiet"],
        check=True,
    )
    start = time.perf_counter()
    audit = subprocess.run(
        [*gateway, "audit", "verify", "--trust", str(root / "federation.json"), "--quiet", str(bundle)],
        check=False,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    lines = audit.stdout.strip().splitlines()
    print(
        f"  ewx audit verify: exit code {audit.returncode}, {took:.1f} s: {lines[-1] if lines else audit.stderr}"
    )
    return {"audit_exit_code": audit.returncode, "audit_seconds": took}


# ------------------------------------------------------------------ the run
def _forget_exposures(config: Path) -> int:
    """Delete KR's exposure rows: every peer ALERT and UPDATE waits for its check again."""
    node = NodeConfig.load(config)
    if node.store is not None:
        with postgres.connect(node.store.url) as pg:
            return int(pg.execute("DELETE FROM exposures").rowcount)
    db = sqlite3.connect(node.data_dir / STORE_FILE)
    try:
        with db:
            return db.execute("DELETE FROM exposures").rowcount
    finally:
        db.close()


def run(
    entries: int = 1_000_000,
    seconds: float = 10.0,
    baseline_entries: int = 1000,
    pending: bool = True,
    audit: bool = False,
    store: str = "sqlite",
) -> dict[str, float]:
    """Fill, start, serve and measure (the nodes on `store`), then (`pending`) again with every exposure check
    pending, then the same at `baseline_entries`; the figures: entries, fill_seconds,
    receive_seconds, received, own_alerts, exposures, store_mb, start_seconds, ready_mb,
    peak_mb, steady_mb (median VmRSS while serving), steady_min_mb, steady_max_mb,
    children_mb, samples, rounds, listed, pending_* (the same with the exposures
    forgotten) and pending_exposures, baseline_* (the same at the baseline's size),
    per_entry_bytes, and with `audit` audit_exit_code and audit_seconds. MB are 10^6 bytes."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ewx-bench-memory-") as tmp:
        for prefix, n in (("", entries), ("baseline_", baseline_entries)):
            root = Path(tmp) / f"fed-{n}"
            configs, made = _federation(root, store)
            print(f"filling KR's log to {n:,} entries ...", flush=True)
            filled = fill(configs, n, made=made)
            print(
                f"  {filled.received:,} peer alerts received, {filled.own:,} own alerts published and receipted,"
                f" {filled.exposures:,} exposures; {filled.store_mb:.0f} MB of store, in {filled.seconds:.1f} s"
                f" (receive_many {filled.receive_seconds:.1f} s)",
                flush=True,
            )
            print(f"starting KR on {n:,} entries, serving {seconds:g} s ...", flush=True)
            node = _measured(configs, seconds)
            if prefix:
                figures.update({f"{prefix}{k}": v for k, v in node.items()})
                figures[f"{prefix}entries"] = filled.entries
                continue
            figures.update(
                entries=filled.entries,
                fill_seconds=filled.seconds,
                receive_seconds=filled.receive_seconds,
                received=filled.received,
                own_alerts=filled.own,
                exposures=filled.exposures,
                store_mb=filled.store_mb,
                **node,
            )
            if audit:
                figures.update(_audit(configs, root))
            if pending:
                forgotten = _forget_exposures(configs["KR"])
                print(f"starting KR again with {forgotten:,} exposure checks pending ...", flush=True)
                figures.update({f"pending_{k}": v for k, v in _measured(configs, seconds).items()})
                figures["pending_exposures"] = forgotten
    extra = figures["entries"] - figures["baseline_entries"]
    figures["per_entry_bytes"] = (
        (figures["steady_mb"] - figures["baseline_steady_mb"]) * 1e6 / extra if extra else 0.0
    )
    return figures


def _measured(configs: dict[str, Path], seconds: float) -> dict[str, float]:
    node = measure_node(configs, seconds)
    print(
        f"  serving after {node['start_seconds']:.1f} s; peak {node['peak_mb']:.0f} MB,"
        f" steady {node['steady_mb']:.0f} MB",
        flush=True,
    )
    return node


# ------------------------------------------------------------------ the report
def report(figures: dict[str, float]) -> None:
    n = int(figures["entries"])
    print()
    print(
        f"fill:            {n:,} entries in {figures['fill_seconds']:.1f} s ({n / figures['fill_seconds']:,.0f}/s;"
        f" receive_many {figures['receive_seconds']:.1f} s), {figures['store_mb']:.0f} MB of store"
    )
    print(f"start:           serving after {figures['start_seconds']:.1f} s")
    verdict = "meets" if max(figures["peak_mb"], figures["steady_mb"]) < TARGET_MB else "MISSES"
    print(
        f"node memory:     peak {figures['peak_mb']:.0f} MB (VmHWM), steady {figures['steady_mb']:.0f} MB"
        f" (median VmRSS of {figures['samples']:.0f} samples over {figures['rounds']:.0f} rounds,"
        f" {figures['steady_min_mb']:.0f}-{figures['steady_max_mb']:.0f} MB)"
        f"  ({verdict} the {TARGET_MB:.0f} MB target)"
    )
    print(
        f"                 at serving {figures['ready_mb']:.0f} MB; its child processes {figures['children_mb']:.0f} MB"
    )
    b = int(figures["baseline_entries"])
    print(
        f"baseline:        {b:,} entries: start {figures['baseline_start_seconds']:.1f} s,"
        f" peak {figures['baseline_peak_mb']:.0f} MB, steady {figures['baseline_steady_mb']:.0f} MB"
    )
    print(f"per log entry:   {figures['per_entry_bytes']:.0f} bytes of steady RSS")
    if "pending_exposures" in figures:
        verdict = (
            "meets" if max(figures["pending_peak_mb"], figures["pending_steady_mb"]) < TARGET_MB else "MISSES"
        )
        print(
            f"checks pending:  {figures['pending_exposures']:,.0f} peer alerts' exposure checks queued at start:"
            f" start {figures['pending_start_seconds']:.1f} s, peak {figures['pending_peak_mb']:.0f} MB,"
            f" steady {figures['pending_steady_mb']:.0f} MB  ({verdict} the {TARGET_MB:.0f} MB target)"
        )
    if "audit_exit_code" in figures:
        print(
            f"audit:           exit code {figures['audit_exit_code']:.0f} in {figures['audit_seconds']:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="log entries (default 1,000,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of serving sampled (default 10)")
    parser.add_argument(
        "--baseline-entries", type=int, default=1000, help="the small node's log entries (default 1,000)"
    )
    parser.add_argument(
        "--no-pending", action="store_true", help="skip the start with every exposure check pending"
    )
    parser.add_argument("--audit", action="store_true", help="also export KR's log and audit it")
    parser.add_argument(
        "--store", choices=postgres.STORES, default="sqlite", help="the nodes' store (default sqlite)"
    )
    args = parser.parse_args()
    configure(level="error")
    report(
        run(args.entries, args.seconds, args.baseline_entries, not args.no_pending, args.audit, args.store)
    )


if __name__ == "__main__":
    main()
