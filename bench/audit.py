"""Audit verify throughput (SPEC section 9): signature checks/s against the raw Ed25519 rate.

The targets: `ewx audit verify` checks signatures at no less than 80% of the
machine's raw Ed25519 verify rate using all cores, measured in the same run,
and 1,000,000 log entries take under 2 minutes on 2 cores.

In one run it:

1. generates a realistic 3-node federation (node.pki.init_federation: real
   keys and trust file) and logs totalling --entries entries, content drawn
   from a fixed seed: ALERTs, UPDATEs of the origin's own alerts and ACKs of
   received ones, most to both peers, some to one. Each alert is an
   ALERT_SENT in its origin's log, an ALERT_RECEIVED in each recipient's log
   and a RECEIPT_RECEIVED per recipient back in the origin's log, with valid
   signatures, gapless sequences and receipts naming the receiver's real log
   index, so the audit is clean (the last alert may be left in flight, an
   info finding). Bundles are written with node.audit.write_bundle and a
   checkpoint signed with each node's log key; signing runs on all cores;
2. measures the raw Ed25519 verify rate, a tight loop of libsodium's verify
   (the one node/crypto runs) over PAE-wrapped payloads taken from those logs,
   on one core and on all cores (one process per core, all at once), and
   OpenSSL's (`cryptography`, SPEC section 9's reference) on one core;
3. runs `ewx audit verify` on the three bundles as a child process (the real
   CLI: start-up, reading and reporting count), with EWX_AUDIT_WORKERS set
   from --workers, and reports its wall time, entries/s, signature checks/s,
   their ratio to the raw all-core rate, and the peak RSS of the auditor
   (os.wait4's rusage, in a launcher started before the bundles are
   generated) and of each of its worker processes (VmHWM, sampled from
   /proc while the audit runs), with the CPU time each used;
4. measures the raw rates again; the ratio uses the mean of both readings,
   since other load on the machine moves them.

Every signed entry is a signature check the audit establishes. An alert sits
in three logs with the same signature over the same bytes; the audit
verifies such identical checks once, so it computes fewer Ed25519
verifications than it establishes checks: both rates are printed.

It prints its figures and never asserts on timing.

Usage: python bench/audit.py [--entries N] [--workers N] [--seed N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.procs, run as a script

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.timestamp_pb2 import Timestamp
from nacl.bindings import crypto_sign_open

from bench.procs import descendants
from node.audit import write_bundle
from node.config import NodeConfig
from node.crypto import (
    PAYLOAD_ALERT,
    PAYLOAD_RECEIPT,
    Checkpoint,
    Signer,
    leaf_hash,
    pae,
    raw_public_key,
    root_from_leaf_hashes,
    sign_checkpoint,
)
from node.ids import COUNTRIES, Country
from node.message import encode
from node.pki import init_federation
from node.trust import log_origin
from node.wire import ewx_pb2 as pb

TARGET_RATIO = 0.8
TARGET_SECONDS_PER_MILLION = 120.0
RAW_SAMPLE = 512
"""Signed payloads from the generated logs that the raw-rate loop cycles through."""

HEADLINES = (
    "Export licensing required for gallium and germanium products",
    "Port congestion delays rare earth magnet shipments",
    "Smelter outage cuts refined cobalt output",
    "Typhoon closes container terminals for several days",
    "New export quotas announced on graphite anode material",
    "Fab fire halts production of automotive microcontrollers",
    "Drought lowers river levels on a key barge route",
    "Price spike in high purity quartz after mine closure",
)
HS_CODES = ("811292", "282590", "850511", "810520", "854231", "250410", "2846", "381800", "280461")
CATEGORIES = ("EXPORT_CONTROL", "PRODUCTION_OUTAGE", "LOGISTICS", "NATURAL_HAZARD", "SUPPLY_DROP")
SEVERITIES = ("MODERATE", "SEVERE", "EXTREME")
SOURCES = ("CN", "CD", "AU", "CL", "ZA", "ID", "ZZ")
BANDS = ("FROM_10_TO_30", "FROM_30_TO_60", "ABOVE_60")
DAY = 86_400_000_000
"""Microseconds."""


# ------------------------------------------------------------------ generating the logs
@dataclass
class Generated:
    """What `generate` wrote."""

    trust: Path
    bundles: list[Path]
    entries: dict[Country, int]
    alerts: int
    signatures: int
    """Distinct signed objects (alerts and receipts): the Ed25519 verifications a
    clean audit that verifies identical checks once must compute."""
    sample: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    """(raw public key, PAE bytes, signature) of some of them, for the raw-rate loop."""
    seconds: float = 0.0


_SIGNERS: dict[Country, Signer] = {}
"""The alert signers, set before the signing pool forks (private keys do not pickle)."""


def _sign_chunk(chunk: Sequence[tuple[Country, str, bytes]]) -> list[bytes]:
    return [_SIGNERS[cc].sign(payload_type, payload) for cc, payload_type, payload in chunk]


def _timestamp(micros: int) -> Timestamp:
    return Timestamp(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


def _alert(
    rng: random.Random,
    *,
    origin: Country,
    alert_id: str,
    sent: int,
    deliveries: Sequence[tuple[Country, int]],
    msg_type: str,
    reference: tuple[Country, str, bytes] | None,
) -> bytes:
    """Canonical bytes of a valid alert, built on pb2 directly (the models would be 10x slower)."""
    msg = pb.Alert(
        schema_version=1,
        alert_id=alert_id,
        origin=pb.Country.Value(origin),
        sent=_timestamp(sent),
        status=pb.ACTUAL,
        msg_type=pb.MsgType.Value(msg_type),
        deliveries=[pb.Delivery(recipient=pb.Country.Value(r), seq=s) for r, s in deliveries],
    )
    if reference is not None:
        ref_origin, ref_id, ref_digest = reference
        msg.references.append(
            pb.AlertRef(origin=pb.Country.Value(ref_origin), alert_id=ref_id, digest=ref_digest)
        )
    if msg_type == "ACK":
        msg.reason = pb.ReasonCode.Value(rng.choice(("RECEIVED", "UNDER_REVIEW", "ACTION_TAKEN")))
    else:
        codes = rng.sample(HS_CODES, rng.randint(1, 3))
        msg.info.CopyFrom(
            pb.Info(
                category=pb.Category.Value(rng.choice(CATEGORIES)),
                urgency=pb.Urgency.Value(rng.choice(("IMMEDIATE", "EXPECTED", "FUTURE"))),
                severity=pb.Severity.Value(rng.choice(SEVERITIES)),
                certainty=pb.Certainty.Value(rng.choice(("OBSERVED", "LIKELY", "POSSIBLE"))),
                effective=_timestamp(sent + DAY),
                expires=_timestamp(sent + rng.randint(30, 180) * DAY),
                headline=rng.choice(HEADLINES),
                items=[pb.Item(hs_code=c, hs_edition=pb.HS2022) for c in codes],
                source_countries=sorted(rng.sample(SOURCES, rng.randint(1, 2))),
                affected_countries=["KR", "US", "JP"],
                supply_impact=pb.ImpactBand.Value(rng.choice(BANDS)),
                expected_duration_days=rng.randint(7, 365),
            )
        )
    return encode(msg)


def _receipt(
    *, receiver: Country, origin: Country, alert_id: str, seq: int, digest: bytes, index: int, at: int
) -> bytes:
    return encode(
        pb.ReceiptBody(
            schema_version=1,
            receiver=pb.Country.Value(receiver),
            origin=pb.Country.Value(origin),
            alert_id=alert_id,
            seq=seq,
            alert_digest=digest,
            log_index=index,
            received_at=_timestamp(at),
        )
    )


def generate(out: Path, *, entries: int, seed: int = 1, workers: int | None = None) -> Generated:
    """A clean 3-node federation under `out` whose logs total `entries` entries.

    The logs are planned first (payloads and log positions, no signatures),
    then every distinct payload is signed once, in a process pool unless
    `workers` is 1, then the entries are assembled and the bundles written.
    """
    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    trust_path = init_federation(out / "fed", now=now)
    signers = {cc: NodeConfig.load(out / "fed" / cc / "node.toml").load_signers() for cc in COUNTRIES}
    rng = random.Random(seed)
    # Per log, its entries as (kind, logged_at in µs, peer number, payload position).
    plans: dict[Country, list[tuple[int, int, int, int]]] = {cc: [] for cc in COUNTRIES}
    payloads: list[tuple[Country, str, bytes]] = []
    """Every signed payload once: (signer, payload type, bytes)."""
    next_seq = {(o, r): 1 for o in COUNTRIES for r in COUNTRIES if o != r}
    own: dict[Country, list[tuple[Country, str, bytes]]] = {cc: [] for cc in COUNTRIES}
    received: dict[Country, list[tuple[Country, str, bytes]]] = {cc: [] for cc in COUNTRIES}
    clock = int((now + timedelta(minutes=1)).timestamp()) * 1_000_000
    total = alerts = 0
    while total < entries:
        origin = COUNTRIES[alerts % 3] if rng.random() < 0.7 else rng.choice(COUNTRIES)
        peers = [c for c in COUNTRIES if c != origin]
        recipients = peers if rng.random() < 0.85 else [rng.choice(peers)]
        roll = rng.random()
        reference: tuple[Country, str, bytes] | None = None
        msg_type = "ALERT"
        if roll < 0.2 and received[origin]:
            msg_type, reference = "ACK", rng.choice(received[origin][-50:])
        elif roll < 0.35 and own[origin]:
            msg_type, reference = "UPDATE", rng.choice(own[origin][-50:])
        alerts += 1
        alert_id = f"{origin}-{alerts:09d}"
        clock += rng.randint(4_000, 20_000)  # logged_at runs forward in every log
        deliveries = []
        for r in recipients:
            deliveries.append((r, next_seq[(origin, r)]))
            next_seq[(origin, r)] += 1
        payload = _alert(
            rng,
            origin=origin,
            alert_id=alert_id,
            sent=clock,
            deliveries=deliveries,
            msg_type=msg_type,
            reference=reference,
        )
        digest = hashlib.sha256(payload).digest()
        if msg_type == "ALERT":
            own[origin].append((origin, alert_id, digest))
        alert_ref = len(payloads)
        payloads.append((origin, PAYLOAD_ALERT, payload))
        steps: list[tuple[Country, int, int, int]] = [(origin, pb.ALERT_SENT, 0, alert_ref)]
        for r, seq in deliveries:
            index = len(plans[r])  # where r logs it: this alert adds nothing else to r's log
            body = _receipt(
                receiver=r,
                origin=origin,
                alert_id=alert_id,
                seq=seq,
                digest=digest,
                index=index,
                at=clock + 3000,
            )
            steps.append((r, pb.ALERT_RECEIVED, pb.Country.Value(origin), alert_ref))
            steps.append((origin, pb.RECEIPT_RECEIVED, pb.Country.Value(r), len(payloads)))
            payloads.append((r, PAYLOAD_RECEIPT, body))
            received[r].append((origin, alert_id, digest))
        # Cut at exactly `entries`: the last alert may stay in flight (info findings only).
        for cc, kind, peer, ref in steps[: entries - total]:
            plans[cc].append((kind, clock + 1000 * kind, peer, ref))
        total += min(len(steps), entries - total)

    _SIGNERS.update({cc: signers[cc]["alert"] for cc in COUNTRIES})
    workers = workers or len(os.sched_getaffinity(0))
    if workers == 1:
        signatures = _sign_chunk(payloads)
    else:
        chunks = [payloads[i : i + 5000] for i in range(0, len(payloads), 5000)]
        # fork: the workers inherit the private keys, which do not pickle (the bench has no threads).
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            signatures = [s for part in pool.map(_sign_chunk, chunks) for s in part]
    _SIGNERS.clear()
    key_ids = {cc: signers[cc]["alert"].key_id for cc in COUNTRIES}
    raw_keys = {cc: raw_public_key(signers[cc]["alert"].private_key.public_key()) for cc in COUNTRIES}

    paths = []
    exported = datetime.fromtimestamp((clock + 60_000_000) / 1_000_000, UTC)
    for cc, plan in plans.items():
        data = []
        for kind, at, peer, ref in plan:
            signer, _, payload = payloads[ref]
            entry = pb.LogEntry(kind=kind, logged_at=_timestamp(at), peer=peer)
            if kind == pb.RECEIPT_RECEIVED:
                entry.receipt.CopyFrom(
                    pb.SignedReceipt(receipt=payload, key_id=key_ids[signer], signature=signatures[ref])
                )
            else:
                entry.alert.CopyFrom(
                    pb.SignedAlert(alert=payload, key_id=key_ids[signer], signature=signatures[ref])
                )
            data.append(encode(entry))
        origin = log_origin(cc)
        root = root_from_leaf_hashes([leaf_hash(e) for e in data])
        checkpoint = sign_checkpoint(
            Checkpoint(origin=origin, size=len(data), root_hash=root),
            name=origin,
            private_key=signers[cc]["log"].private_key,
        )
        path = out / f"{cc}.ewxlog"
        with path.open("wb") as f:
            write_bundle(
                f,
                node=cc,
                log_origin=origin,
                entries=iter(data),
                size=len(data),
                checkpoint=checkpoint,
                exported_at=exported,
            )
        paths.append(path)
    step = max(1, len(payloads) // RAW_SAMPLE)
    sample = [
        (raw_keys[cc], pae(payload_type, payload), signatures[i])
        for i, (cc, payload_type, payload) in list(enumerate(payloads))[::step][:RAW_SAMPLE]
    ]
    return Generated(
        trust=trust_path,
        bundles=paths,
        entries={cc: len(plan) for cc, plan in plans.items()},
        alerts=alerts,
        signatures=len(payloads),
        sample=sample,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------------ the raw Ed25519 rate
def verify_loop(sample: Sequence[tuple[bytes, bytes, bytes]], seconds: float) -> float:
    """Verifications per second of one core: a tight loop of libsodium's verify
    (crypto_sign_open, as node/crypto's verify_signature calls it) over signed messages
    built before the loop."""
    work = [(signature + message, pk) for pk, message, signature in sample]
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for signed, pk in work:
            crypto_sign_open(signed, pk)
        done += len(work)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def openssl_verify_rate(sample: Sequence[tuple[bytes, bytes, bytes]], seconds: float) -> float:
    """The same loop with `cryptography`'s Ed25519PublicKey.verify (OpenSSL): the rate SPEC
    section 9 names as the floor (about 9,400 a second on one core), which EWX no longer
    verifies with (node/crypto/_signing.py); reported beside, for comparison."""
    keys = {pk: Ed25519PublicKey.from_public_bytes(pk) for pk, _, _ in sample}
    work = [(keys[pk], message, signature) for pk, message, signature in sample]
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for key, message, signature in work:
            key.verify(signature, message)
        done += len(work)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def raw_rates(
    sample: Sequence[tuple[bytes, bytes, bytes]], *, workers: int, seconds: float
) -> tuple[float, float]:
    """(one core, `workers` cores at once) raw verify rates, per second."""
    one = verify_loop(sample, seconds)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        list(pool.map(verify_loop, [sample[:8]] * workers, [0.05] * workers))  # all started
        rates = list(pool.map(verify_loop, [sample] * workers, [seconds] * workers))
    return one, sum(rates)


# ------------------------------------------------------------------ the audit
@dataclass
class Audit:
    """One run of `ewx audit verify`."""

    wall: float
    exit_code: int
    verdict: str
    maxrss_kib: int
    """Peak RSS of the auditor process (os.wait4 in the launcher)."""
    cpu: float
    """User + system CPU seconds of the auditor process."""
    workers: dict[int, tuple[int, float]]
    """Each worker process: (peak RSS KiB, CPU seconds), as last sampled."""


def _sample(pid: int) -> tuple[int, float] | None:
    """(VmHWM KiB, CPU seconds) of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return hwm, (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


_LAUNCHER = """
import json, os, subprocess, sys
argv, env = json.loads(sys.stdin.readline())
proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
print(json.dumps({"pid": proc.pid}), flush=True)
output = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"status": status, "maxrss": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime, "output": output}), flush=True)
"""


def start_launcher() -> subprocess.Popen[str]:
    """A small process that will start the auditor: started before the bundles are generated.

    A child's peak RSS (ru_maxrss) counts the memory of the process it was
    forked from, up to its exec: started from this process after generating a
    million entries (641 MiB), the auditor's figure would be at least that. The
    launcher is forked while this process is small, and forks the auditor itself.
    """
    return subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def run_audit(generated: Generated, *, workers: int, launcher: subprocess.Popen[str]) -> Audit:
    """`ewx audit verify` on the generated bundles, a child of `launcher`, watched from /proc."""
    argv = [sys.executable, "-m", "gateway", "audit", "verify", "--trust", str(generated.trust)]
    argv += [str(p) for p in generated.bundles]
    env = {**os.environ, "EWX_AUDIT_WORKERS": str(workers)}
    seen: dict[int, tuple[int, float]] = {}
    assert launcher.stdin is not None and launcher.stdout is not None
    start = time.perf_counter()
    launcher.stdin.write(json.dumps([argv, env]) + "\n")
    launcher.stdin.flush()
    pid = json.loads(launcher.stdout.readline())["pid"]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.25):
            for child in descendants(pid, below_children=True):
                sample = _sample(child)
                if sample is not None:
                    seen[child] = sample

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    done = json.loads(launcher.stdout.readline())
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    launcher.wait()
    output = done["output"]
    return Audit(
        wall=wall,
        exit_code=os.waitstatus_to_exitcode(done["status"]),
        verdict=(output.strip().splitlines() or ["(no output)"])[-1],
        maxrss_kib=done["maxrss"],
        cpu=done["cpu"],
        workers=seen,
    )


# ------------------------------------------------------------------ the report
def run(
    entries: int = 1_000_000,
    workers: int | None = None,
    seed: int = 1,
    raw_seconds: float = 3.0,
    keep: Path | None = None,
) -> dict[str, float]:
    """Generate, measure the raw rates, audit, measure them again; the figures:
    entries, alerts, signatures (distinct), bundle_mib, generate_seconds, cores,
    raw_one and raw_all (raw verify rates, mean of before and after), wall (audit
    seconds), checks_rate and verify_rate (per second), ratio (checks_rate / raw_all),
    per_million (seconds), exit_code, maxrss_mib (auditor), worker_peak_mib,
    worker_count, cpu and worker_cpu (seconds), bench_maxrss_mib (this process)."""
    workers = workers or len(os.sched_getaffinity(0))
    cores = len(os.sched_getaffinity(0))

    launcher = start_launcher()
    with tempfile.TemporaryDirectory(prefix="ewx-bench-audit-") as tmp:
        out = keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        print(f"generating {entries:,} entries (seed {seed}) in {out} ...", flush=True)
        gen = generate(out, entries=entries, seed=seed, workers=workers)
        total = sum(gen.entries.values())
        size = sum(p.stat().st_size for p in gen.bundles)
        print(
            f"  {gen.alerts:,} alerts, {total:,} entries "
            f"({', '.join(f'{cc} {n:,}' for cc, n in gen.entries.items())}), "
            f"{gen.signatures:,} distinct signatures, {size / 2**20:.0f} MiB of bundles, "
            f"in {gen.seconds:.1f} s",
            flush=True,
        )

        print(f"raw Ed25519 verify rate ({raw_seconds:g} s loops) ...", flush=True)
        one_before, all_before = raw_rates(gen.sample, workers=cores, seconds=raw_seconds)
        print(f"  before: 1 core {one_before:,.0f}/s, {cores} cores {all_before:,.0f}/s", flush=True)
        openssl_one = openssl_verify_rate(gen.sample, raw_seconds)

        print(f"ewx audit verify, {workers} worker processes ...", flush=True)
        audit = run_audit(gen, workers=workers, launcher=launcher)
        print(f"  {audit.verdict} (exit code {audit.exit_code})", flush=True)

        one_after, all_after = raw_rates(gen.sample, workers=cores, seconds=raw_seconds)
        print(f"  after:  1 core {one_after:,.0f}/s, {cores} cores {all_after:,.0f}/s", flush=True)

    raw = (all_before + all_after) / 2
    checks_rate = total / audit.wall
    return {
        "entries": total,
        "alerts": gen.alerts,
        "signatures": gen.signatures,
        "bundle_mib": size / 2**20,
        "generate_seconds": gen.seconds,
        "cores": cores,
        "raw_one": (one_before + one_after) / 2,
        "openssl_one": openssl_one,
        "raw_all": raw,
        "wall": audit.wall,
        "checks_rate": checks_rate,
        "verify_rate": gen.signatures / audit.wall,
        "ratio": checks_rate / raw,
        "per_million": audit.wall * 1_000_000 / total,
        "exit_code": audit.exit_code,
        "maxrss_mib": audit.maxrss_kib / 1024,
        "worker_peak_mib": max((rss for rss, _ in audit.workers.values()), default=0) / 1024,
        "worker_count": len(audit.workers),
        "cpu": audit.cpu,
        "worker_cpu": sum(cpu for _, cpu in audit.workers.values()),
        "bench_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def report(figures: dict[str, float]) -> None:
    one, raw, cores = figures["raw_one"], figures["raw_all"], int(figures["cores"])
    wall, total, ratio = figures["wall"], int(figures["entries"]), figures["ratio"]
    checks_rate, verify_rate, per_million = (
        figures["checks_rate"],
        figures["verify_rate"],
        figures["per_million"],
    )
    print()
    print(f"raw verify rate, 1 core:          {one:,.0f}/s")
    print(f"raw verify rate, {cores} cores:         {raw:,.0f}/s  ({raw / one:.2f}x one core)")
    if "openssl_one" in figures:
        print(f"  OpenSSL's (SPEC's reference), 1 core: {figures['openssl_one']:,.0f}/s")
    print(f"audit wall time:                  {wall:.1f} s for {total:,} entries")
    print(f"audit entries/s:                  {checks_rate:,.0f}")
    print(f"audit signature checks/s:         {checks_rate:,.0f}  (every entry carries one signature)")
    print(
        f"  Ed25519 verifications computed: {int(figures['signatures']):,} ({verify_rate:,.0f}/s, "
        f"{verify_rate / raw:.2f} of raw): an alert's check is identical in all three logs"
    )
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"ratio to raw all-core rate:       {ratio:.2f}  ({verdict} the {TARGET_RATIO} target)")
    verdict = "meets" if per_million < TARGET_SECONDS_PER_MILLION else "MISSES"
    print(
        f"time per 1,000,000 entries:       {per_million:.1f} s  "
        f"({verdict} the {TARGET_SECONDS_PER_MILLION:.0f} s target)"
    )
    print(
        f"peak RSS:                         auditor {figures['maxrss_mib']:.0f} MiB, largest worker "
        f"{figures['worker_peak_mib']:.0f} MiB ({int(figures['worker_count'])} workers)"
    )
    print(
        f"CPU:                              auditor {figures['cpu']:.1f} s, workers {figures['worker_cpu']:.1f} s, "
        f"sum {figures['cpu'] + figures['worker_cpu']:.1f} s over {wall:.1f} s wall"
    )
    print(f"bench peak RSS (this process):    {figures['bench_maxrss_mib']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--entries", type=int, default=1_000_000, help="log entries in all (default 1,000,000)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="verifying processes (default: CPUs)",
    )
    parser.add_argument("--seed", type=int, default=1, help="content seed (default 1)")
    parser.add_argument("--raw-seconds", type=float, default=3.0, help="length of each raw-rate loop")
    parser.add_argument("--keep", type=Path, help="write the federation and bundles here and keep them")
    args = parser.parse_args()
    report(run(args.entries, args.workers, args.seed, args.raw_seconds, args.keep))


if __name__ == "__main__":
    main()
