"""Every benchmark in one run, each figure beside the machine's floor measured in the same run.

    python bench/run.py [--size quick|medium|full] [--store sqlite|postgresql|both] [--json FILE]
                        [--check BASELINE.json]
    python -m bench ...                        (the same, from the repository's root)

Runs bench/propagation.py, catchup.py, publish_groups.py, audit.py, scan.py,
operator_listing.py, node_memory.py and slow_link.py at the sizes of --size
(full: the sizes of the README's full-size table, 11-16 minutes on 2 cores
on SQLite; medium: its two-store table, 7-9 minutes with both stores;
quick: small ones, 70-110 s on SQLite, 3-4 minutes with both), each in a
child process of its own (their peak-memory figures are per process, and
the benches patch classes and environment variables), and the floors of
bench/floors.py in child processes just before and just after the benches
that stand on them (the mean of both readings is used, since other load on
the machine moves them). Prints a
Markdown table (figure, target, measured, floor, ratio of measured to
floor) and, with --json, writes every figure, floor and ratio with the
machine, the date, the size and the store.

--store says which node store the benches that run nodes or open their
store use (STORE_BENCHES: propagation, catch-up, operator listing, node
memory, slow link): SQLite (data_dir/ewx.sqlite3), PostgreSQL (a fresh
database per node on a server this run starts from the pgserver wheel,
bench/postgres.py, with PostgreSQL's durable defaults), or both, each such
bench run once on each, one after the other. The audit and the scan use no
node store: they run once, and the table marks them store-independent.
With both, the table has a SQLite and a PostgreSQL column. Default: sqlite
at the quick size (the CI guard's baseline is SQLite's, and it stays
fast); both at medium (the README's two-store table); sqlite at full (the
README's full-size table: at the rates measured at medium, PostgreSQL's
catch-up of 100,000 and its fill of 1,000,000 log entries alone would take
most of an hour, an estimate; `--size full --store both` asks for it).

--check BASELINE.json compares each guarded ratio with the baseline's and
exits 1 when one is worse by more than --factor in this run and again when
its bench is run once more (never absolute times: a ratio to a floor
measured in the same run carries over between machines and between loads,
a time does not), or when a bench fails. --combine makes a baseline from
several runs' JSON, each ratio their median. bench/README.md says what each
figure and ratio means.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.*, run as a script

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "propagation": {"samples": 200, "warmup": 20},
        "catchup": {"alerts": 3000},
        "publish_groups": {"alerts": 2000, "publishers": 64},
        "audit": {"entries": 30_000, "raw_seconds": 1.0},
        "scan": {"codes": 800, "partners": 30, "months": 36},
        "operator_listing": {"alerts": 2000, "delivers": 100},
        "node_memory": {"entries": 20_000, "seconds": 3.0},
        # 4,000: at 1,000 KR's start-up and the window's first flight were most of the run
        # (about 400/s whatever the window), so the guard could not see the window's rate.
        "slow_link": {"alerts": 4000, "one_by_one": 10, "loss": 0.01},
    },
    "medium": {
        "propagation": {"samples": 500, "warmup": 50},
        "catchup": {"alerts": 10_000},
        "publish_groups": {"alerts": 5000, "publishers": 64},
        "audit": {"entries": 200_000, "raw_seconds": 2.0},
        "scan": {"codes": 2000, "partners": 30, "months": 48},
        "operator_listing": {"alerts": 5000, "delivers": 200},
        "node_memory": {"entries": 50_000, "seconds": 5.0},
        "slow_link": {"alerts": 5000, "one_by_one": 20, "loss": 0.01},
    },
    "full": {
        "propagation": {"samples": 1000, "warmup": 50},
        "catchup": {"alerts": 100_000},
        "publish_groups": {"alerts": 20_000, "publishers": 64},
        "audit": {"entries": 1_000_000, "raw_seconds": 3.0},
        "scan": {"codes": 4000, "partners": 30, "months": 60},
        "operator_listing": {"alerts": 20_000, "delivers": 300},
        "node_memory": {"entries": 1_000_000, "seconds": 10.0},
        "slow_link": {"alerts": 20_000, "one_by_one": 40, "loss": 0.01},
    },
}
BENCHES = tuple(SIZES["full"])
STORE_BENCHES = ("propagation", "catchup", "publish_groups", "operator_listing", "node_memory", "slow_link")
"""The benches that run nodes or open a node's store: run on each store of --store."""
SQLITE, POSTGRESQL, ANY_STORE = "sqlite", "postgresql", "-"
"""A row's `store`: ANY_STORE for the benches that use no node store (audit, scan)."""
STORE_NAMES = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}
STORE_DEFAULT = {"quick": SQLITE, "medium": "both", "full": SQLITE}
"""--store's default per size (the module's docstring says why)."""
FLOOR_SECONDS = {"quick": 1.0, "medium": 2.0, "full": 2.0}
"""How long each floor's timed loop runs."""


def stores_of(choice: str) -> tuple[str, ...]:
    """The stores --store names."""
    return (SQLITE, POSTGRESQL) if choice == "both" else (choice,)


def runs_of(benches: list[str], stores: tuple[str, ...]) -> list[tuple[str, str]]:
    """(bench, store) in the order they run: a store bench on each store in turn, the others once."""
    return [(b, s) for b in benches for s in (stores if b in STORE_BENCHES else (ANY_STORE,))]


def run_id(bench: str, store: str) -> str:
    """A run's key in the JSON's figures, floors and seconds: the bench's name on SQLite (and for
    the store-independent benches), `name@postgresql` on PostgreSQL."""
    return bench if store in (SQLITE, ANY_STORE) else f"{bench}@{store}"


def floors_of(bench: str, size: str, postgresql: bool = False) -> tuple[str, dict[str, Any]] | None:
    """The floors (child name and arguments) a bench's ratios stand on; None: it measures its own.
    With `postgresql` (a run with the PostgreSQL store) they include its durable commit rate."""
    seconds = FLOOR_SECONDS[size]
    if bench in ("propagation", "catchup", "publish_groups"):
        params: dict[str, Any] = {"seconds": seconds, "calls": 300 if size == "quick" else 1000}
        if postgresql:
            params["postgresql"] = True
        return "floors", params
    if bench == "scan":
        return "duckdb_floors", {**SIZES[size]["scan"], "seconds": seconds}
    return None


CHILD_TIMEOUT = {"quick": 300.0, "medium": 1200.0, "full": 3600.0}
"""Seconds a bench may take before it is stopped and the run fails."""
FACTOR = 2.5
"""--check's default: how much worse than the baseline a ratio may be before the run fails (bench/README.md)."""


# ------------------------------------------------------------------ child processes
def child(name: str, params: dict[str, Any], out: Path) -> None:
    """In a child process: run one bench (or the floors) and write its figures to `out`."""
    from node.logs import configure

    configure(level="error")
    if name == "floors":
        from bench import floors

        one, every = floors.verify_rates(params["seconds"])
        figures = {
            "verify_one": one,
            "verify_all": every,
            "commit_rate": floors.sqlite_commit_rate(params["seconds"]),
            "rtt_ms": floors.grpc_round_trip(params["calls"]) * 1000,
        }
        if params.get("postgresql"):
            figures["pg_commit_rate"] = floors.postgres_commit_rate(params["seconds"])
    elif name == "duckdb_floors":
        from bench import floors

        load, group = floors.duckdb_rates(**params)
        figures = {"load_floor": load, "groupby_floor": group}
    else:
        figures = importlib.import_module(f"bench.{name}").run(**params)
    out.write_text(json.dumps(figures))


def in_child(name: str, params: dict[str, Any], *, timeout: float) -> dict[str, float]:
    """Run `child` in a fresh interpreter; its output goes to stderr, indented."""
    with tempfile.TemporaryDirectory(prefix="ewx-bench-run-") as tmp:
        out = Path(tmp) / "figures.json"
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", name, json.dumps(params), str(out)]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        timed_out = threading.Event()

        def stop() -> None:  # the bench and the nodes it started: its own process group
            if proc.poll() is None:
                timed_out.set()
                os.killpg(proc.pid, signal.SIGKILL)

        watchdog = threading.Timer(timeout, stop)
        watchdog.start()
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                print(f"    | {line.rstrip()}", file=sys.stderr, flush=True)
            code = proc.wait()
        except BaseException:  # interrupted: leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            watchdog.cancel()
        if code != 0 or not out.exists():
            why = f"stopped after {timeout:.0f} s" if timed_out.is_set() else f"exit code {code}"
            raise BenchFailed(f"{name} failed ({why})")
        figures: dict[str, float] = json.loads(out.read_text())
        return figures


class BenchFailed(Exception):
    """A bench exited with an error or ran out of time."""


# ------------------------------------------------------------------ the table
@dataclass
class Row:
    """One line of the table."""

    key: str
    figure: str
    target: str
    measured: float
    shown: str
    """The measured value as the table prints it."""
    floor: str = ""
    """What the ratio divides by, with its value, as the table prints it."""
    floor_value: float | None = None
    ratio: float | None = None
    better: str = "higher"
    """Which way the ratio improves: "higher" (a rate) or "lower" (a time)."""
    guard: bool = True
    """Whether --check compares this ratio."""
    bench: str = ""
    """The bench that measured it."""
    store: str = ANY_STORE
    """The node store it was measured on (SQLITE, POSTGRESQL), ANY_STORE if its bench uses none."""


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def mean(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: (a[k] + b[k]) / 2 for k in a}


def rows_for(
    name: str, f: dict[str, float], floors: dict[str, float] | None, store: str = SQLITE
) -> list[Row]:
    """The table's rows for one bench's figures `f` (measured on `store`) and the floors around it.
    On PostgreSQL the commits in a floor are PostgreSQL's durable commits."""
    cores = len(os.sched_getaffinity(0))
    on_pg = store == POSTGRESQL
    if name == "propagation":
        assert floors is not None
        commit = floors["pg_commit_rate"] if on_pg else floors["commit_rate"]
        hop = floors["rtt_ms"] + 2000 / commit + 1000 / floors["verify_one"]
        floor = f"RTT + 2 {'PostgreSQL ' if on_pg else ''}commits + 1 verify: {hop:.2f} ms"
        n = f"{f['samples']:.0f} samples"
        return [
            Row(
                "propagation.p50",
                f"one-hop propagation p50, KR → stored at US and JP ({n})",
                "≤ 3 ms (SPEC); 2 ms (issue 15)",
                f["stored_p50"],
                f"{f['stored_p50']:.2f} ms",
                floor,
                hop,
                f["stored_p50"] / hop,
                "lower",
            ),
            Row(
                "propagation.p99",
                f"one-hop propagation p99 ({n})",
                "≤ 15 ms (SPEC); 8 ms (issue 15)",
                f["stored_p99"],
                f"{f['stored_p99']:.2f} ms",
                floor,
                hop,
                f["stored_p99"] / hop,
                "lower",
                guard=False,
            ),
        ]
    if name == "publish_groups":
        assert floors is not None
        commit = floors["pg_commit_rate"] if on_pg else floors["commit_rate"]
        return [
            Row(
                "publish.grouped",
                f"publish at the origin, {f['publishers']:.0f} publishers at once, group commit"
                f" ({f['mean_group']:.0f} a commit)",
                "10,000/s (issue 15)",
                f["grouped"],
                _rate(f["grouped"]),
                f"{STORE_NAMES[store]} durable commits: {_rate(commit)}",
                commit,
                f["grouped"] / commit,
                guard=False,  # new: guarded once a baseline holds it
            ),
        ]
    if name == "catchup":
        assert floors is not None
        one, every = floors["verify_one"], floors["verify_all"]
        commit = floors["pg_commit_rate"] if on_pg else floors["commit_rate"]
        return [
            Row(
                "catchup.publish",
                "publish at the origin, sustained, one durable commit each",
                "10,000/s (issue 15)",
                f["published"],
                _rate(f["published"]),
                f"{STORE_NAMES[store]} durable commits: {_rate(commit)}",
                commit,
                f["published"] / commit,
            ),
            Row(
                "catchup.catch_up",
                f"catch-up of {f['alerts']:,.0f} alerts after restart",
                "100,000 in < 30 s (SPEC); 10 s (issue 15)",
                f["catch_up_rate"],
                f"{f['catch_up_seconds']:.1f} s = {_rate(f['catch_up_rate'])}",
                f"raw verify, {cores} cores: {_rate(every)}",
                every,
                f["catch_up_rate"] / every,
            ),
            Row(
                "catchup.inbound",
                "inbound receive_many, full verification, durable (verifying pool)",
                "≥ 5,000/s and > 0.5 × raw 1 core (SPEC); 0.7 × raw all cores (issue 15)",
                f["inbound"],
                _rate(f["inbound"]),
                f"raw verify, {cores} cores: {_rate(every)}",
                every,
                f["inbound"] / every,
            ),
            Row(
                "catchup.inbound_alone",
                "inbound receive_many in one process (EWX_INBOUND_WORKERS=0)",
                "> 0.5 × raw 1 core (SPEC)",
                f["alone"],
                _rate(f["alone"]),
                f"raw verify, 1 core: {_rate(one)}",
                one,
                f["alone"] / one,
            ),
        ]
    if name == "audit":
        raw = f["raw_all"]
        floor = f"raw verify, {f['cores']:.0f} cores: {_rate(raw)}"
        ideal = 1_000_000 / raw
        n = f"{f['entries']:,.0f} entries"
        return [
            Row(
                "audit.checks",
                f"audit signature checks ({n}, exit code {f['exit_code']:.0f})",
                "≥ 0.8 × raw all cores (SPEC)",
                f["checks_rate"],
                _rate(f["checks_rate"]),
                floor,
                raw,
                f["checks_rate"] / raw,
            ),
            Row(
                "audit.verifications",
                f"audit Ed25519 verifications computed ({f['signatures']:,.0f})",
                "0.8 × raw all cores (issue 15)",
                f["verify_rate"],
                _rate(f["verify_rate"]),
                floor,
                raw,
                f["verify_rate"] / raw,
            ),
            Row(
                "audit.per_million",
                f"audit time per 1,000,000 entries (from {n})",
                "< 120 s on 2 cores (SPEC); 40 s (issue 15)",
                f["per_million"],
                f"{f['per_million']:.1f} s",
                f"1,000,000 raw verifications on {f['cores']:.0f} cores: {ideal:.1f} s",
                ideal,
                f["per_million"] / ideal,
                "lower",
                guard=False,  # the inverse of audit.checks
            ),
            Row(
                "audit.memory",
                f"auditor peak memory ({n})",
                "400 MiB at 1,000,000 entries (issue 15)",
                f["maxrss_mib"],
                f"{f['maxrss_mib']:.0f} MiB (largest worker {f['worker_peak_mib']:.0f} MiB)",
                guard=False,
            ),
        ]
    if name == "scan":
        assert floors is not None
        f = {**f, **floors}
        n = f"{f['rows']:,.0f} flow rows"
        return [
            Row(
                "scan.ingest",
                f"early-warning ingest, every row validated and stored ({n})",
                "ingest + scan < 10 s at 7.2M rows (issue 9)",
                f["ingest_rate"],
                f"{f['ingest_seconds']:.2f} s = {_rate(f['ingest_rate'])}",
                f"DuckDB CSV load into a table: {_rate(f['load_floor'])}",
                f["load_floor"],
                f["ingest_rate"] / f["load_floor"],
            ),
            Row(
                "scan.scan",
                f"early-warning full scan ({n}, {f['detections']:.0f} detections)",
                "< 30 s at 7.2M rows (SPEC)",
                f["scan_rate"],
                f"{f['scan_seconds']:.2f} s = {_rate(f['scan_rate'])}",
                f"DuckDB GROUP BY code, month: {_rate(f['groupby_floor'])}",
                f["groupby_floor"],
                f["scan_rate"] / f["groupby_floor"],
            ),
            Row(
                "scan.total",
                "early-warning ingest + scan",
                "< 10 s at 7.2M rows (issue 9)",
                f["ingest_seconds"] + f["scan_seconds"],
                f"{f['ingest_seconds'] + f['scan_seconds']:.2f} s",
                guard=False,
            ),
            Row(
                "scan.memory",
                "early-warning peak resident memory (whole process)",
                "< 1 GB (issue 9)",
                f["peak_mb"],
                f"{f['peak_mb']:.0f} MB",
                guard=False,
            ),
        ]
    if name == "operator_listing":
        return [
            Row(
                "operator.deliver",
                f"a peer's Deliver p50 while pages of {f['page_size']:.0f} are listed",
                "no operator request holds the loop (issue 10, item 7)",
                f["during_p50"],
                f"{f['during_p50']:.2f} ms (p99 {f['during_p99']:.1f} ms)",
                f"Deliver p50, nothing else running: {f['alone_p50']:.2f} ms",
                f["alone_p50"],
                f["during_p50"] / f["alone_p50"],
                "lower",
            ),
            Row(
                "operator.page",
                f"one page of {f['page_size']:.0f} alerts over the operator socket, p50",
                "-",
                f["page_p50"],
                f"{f['page_p50']:.0f} ms",
                guard=False,
            ),
        ]
    if name == "node_memory":
        n = f"{f['entries']:,.0f} log entries"
        small = f"a node with {f['baseline_entries']:,.0f} entries"
        target = "< 200 MB at 1,000,000 entries (SPEC)"
        return [
            Row(
                "node.peak",
                f"node peak resident memory (VmHWM), start-up and serving ({n})",
                target,
                f["peak_mb"],
                f"{f['peak_mb']:.0f} MB",
                f"{small}: {f['baseline_peak_mb']:.0f} MB",
                f["baseline_peak_mb"],
                f["peak_mb"] / f["baseline_peak_mb"],
                "lower",
                guard=False,
            ),
            Row(
                "node.steady",
                f"node resident memory while serving, median VmRSS ({n})",
                target,
                f["steady_mb"],
                f"{f['steady_mb']:.0f} MB ({f['per_entry_bytes']:.0f} bytes/entry over the small node)",
                f"{small}: {f['baseline_steady_mb']:.0f} MB",
                f["baseline_steady_mb"],
                f["steady_mb"] / f["baseline_steady_mb"],
                "lower",
                guard=False,
            ),
            *(
                [
                    Row(
                        "node.pending",
                        f"node resident memory while serving, {f['pending_exposures']:,.0f} peer alerts'"
                        f" exposure checks pending at start ({n})",
                        target,
                        f["pending_steady_mb"],
                        f"{f['pending_steady_mb']:.0f} MB (peak {f['pending_peak_mb']:.0f} MB)",
                        f"{small}: {f['baseline_steady_mb']:.0f} MB",
                        f["baseline_steady_mb"],
                        f["pending_steady_mb"] / f["baseline_steady_mb"],
                        "lower",
                        guard=False,
                    )
                ]
                if "pending_exposures" in f
                else []
            ),
            Row(
                "node.start",
                f"node start-up until it serves its peers ({n})",
                "-",
                f["start_seconds"],
                f"{f['start_seconds']:.1f} s (log filled in {f['fill_seconds']:.0f} s)",
                f"{small}: {f['baseline_start_seconds']:.1f} s",
                f["baseline_start_seconds"],
                f["start_seconds"] / f["baseline_start_seconds"],
                "lower",
                guard=False,
            ),
        ]
    if name == "slow_link":
        rtt = f["rtt_ms"]
        one = 1000 / rtt
        link = f"over a {rtt:.0f} ms round trip, {f['loss']:.0%} loss"
        floor = f"1/RTT (one in flight): {one:.1f}/s"
        return [
            Row(
                "slowlink.window",
                f"delivery KR → US {link}, {f['window']:.0f} in flight ({f['alerts']:,.0f} alerts)",
                "1,000/s, nothing lost, order kept (issue 15)",
                f["windowed"],
                _rate(f["windowed"]),
                floor,
                one,
                f["windowed"] / one,
                guard=False,
            ),
            Row(
                "slowlink.single",
                f"delivery KR → US {link}, one Deliver at a time ({f['one_by_one_alerts']:.0f} alerts)",
                "-",
                f["one_by_one"],
                f"{f['one_by_one']:.1f}/s",
                floor,
                one,
                f["one_by_one"] / one,
                guard=False,
            ),
        ]
    raise ValueError(name)


def _cells(r: Row) -> str:
    ratio = "-" if r.ratio is None else f"{r.ratio:.3g}"
    return f"{r.shown} | {r.floor or '-'} | {ratio}"


def table(rows: list[Row]) -> str:
    """The rows of one store (and the store-independent ones): figure, target, measured, floor, ratio."""
    lines = ["| figure | target | measured | floor | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.figure} | {r.target} | {_cells(r)} |")
    return "\n".join(lines)


INDEPENDENT = "store-independent"
"""The PostgreSQL column's measured cell of a row whose bench uses no node store."""


def table_both(rows: list[Row]) -> str:
    """SQLite's and PostgreSQL's rows side by side: measured, floor and ratio on each store; a
    store-independent row's figures in the SQLite column, `store-independent` in the other."""
    on_pg = {r.key: r for r in rows if r.store == POSTGRESQL}
    lines = [
        "| figure | target | SQLite | floor | ratio | PostgreSQL | floor | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    shown = set()
    for r in rows:
        if r.store == POSTGRESQL:
            continue
        pg = on_pg.get(r.key)
        other = INDEPENDENT + " | - | -" if r.store == ANY_STORE else (_cells(pg) if pg else "- | - | -")
        lines.append(f"| {r.figure} | {r.target} | {_cells(r)} | {other} |")
        shown.add(r.key)
    for r in rows:  # measured on PostgreSQL only
        if r.store == POSTGRESQL and r.key not in shown:
            lines.append(f"| {r.figure} | {r.target} | - | - | - | {_cells(r)} |")
    return "\n".join(lines)


def row_store(row: dict[str, Any]) -> str:
    """A JSON row's store; rows written before the store was recorded were measured on SQLite."""
    if "store" in row:
        return str(row["store"])
    return SQLITE if row.get("bench") in STORE_BENCHES else ANY_STORE


def row_id(row: dict[str, Any]) -> str:
    return run_id(row["key"], row_store(row))


# ------------------------------------------------------------------ the check
def check(result: dict[str, Any], baseline: dict[str, Any], factor: float) -> dict[str, str]:
    """The guarded ratios worse than the baseline's by more than `factor`: key -> description."""
    before = {row_id(r): r for r in baseline["rows"]}
    regressed = {}
    print(f"\nratios against {baseline_name(baseline)}, failing beyond x{factor:g} worse:")
    for row in result["rows"]:
        key = row_id(row)
        old = before.get(key)
        if not row["guard"] or row["ratio"] is None:
            continue
        if old is None or old["ratio"] is None:
            print(f"  {key:<34} {row['ratio']:.3g}   (not in the baseline)")
            continue
        # >1: worse than the baseline by that factor, whichever way the ratio improves.
        worse = old["ratio"] / row["ratio"] if row["better"] == "higher" else row["ratio"] / old["ratio"]
        verdict = "REGRESSED" if worse > factor else "ok"
        print(
            f"  {key:<34} {row['ratio']:.3g} against {old['ratio']:.3g}"
            f"  ({f'{worse:.2f}x worse' if worse > 1 else f'{1 / worse:.2f}x better'})  {verdict}"
        )
        if worse > factor:
            regressed[key] = (
                f"{key}: ratio {row['ratio']:.3g} against {old['ratio']:.3g} in the baseline"
                f" ({worse:.2f}x worse, more than x{factor:g}): {row['figure']}"
            )
    return regressed


def baseline_name(baseline: dict[str, Any]) -> str:
    runs = baseline.get("combined_from")
    if runs:
        return f"the baseline ({baseline['size']}, median of {len(runs)} runs, {runs[0]} to {runs[-1]})"
    return f"the baseline ({baseline['size']}, {baseline['date']})"


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result whose every ratio is the median of those of `results` (a baseline)."""
    if len({r["size"] for r in results}) != 1:
        raise SystemExit("bench/run.py: --combine takes runs of one size")
    combined = dict(results[-1])
    combined["combined_from"] = [r["date"] for r in results]
    rows = []
    for last in results[-1]["rows"]:
        ratios = [r["ratio"] for res in results for r in res["rows"] if row_id(r) == row_id(last)]
        if last["ratio"] is None:
            rows.append(last)
        else:
            rows.append({**last, "ratio": statistics.median(ratios), "ratios": ratios})
    combined["rows"] = rows
    return combined


# ------------------------------------------------------------------ the run
def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def run_all(
    size: str,
    runs: list[tuple[str, str]],
    say: Callable[[str], None],
    *,
    postgresql: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every (bench, store) of `runs` at `size`, with the floors around those that need them;
    `postgresql`: the server's settings, when a run is on PostgreSQL (its server is up)."""
    timeout = CHILD_TIMEOUT[size]
    benches = list(dict.fromkeys(name for name, _ in runs))
    on_pg = any(store == POSTGRESQL for _, store in runs)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": size,
        "stores": [s for s in (SQLITE, POSTGRESQL) if any(store == s for _, store in runs)],
        "commit": commit(),
        "machine": machine(),
        "sizes": {name: SIZES[size][name] for name in benches},
        "floor_readings": [],
        "figures": {},
        "floors": {},
        "seconds": {},
        "rows": [],
        "failed": {},
    }
    if postgresql is not None:
        result["postgresql"] = postgresql
    started = time.perf_counter()
    last: tuple[tuple[str, dict[str, Any]], dict[str, float]] | None = None
    """The floors read after the previous bench: (their child name and arguments, the reading)."""

    def read(kind: str, params: dict[str, Any]) -> dict[str, float]:
        say(f"== {kind} {json.dumps(params)}")
        reading = in_child(kind, params, timeout=timeout)
        result["floor_readings"].append({"kind": kind, **reading})
        return reading

    for name, store in runs:
        needs = floors_of(name, size, postgresql=on_pg)
        key = run_id(name, store)
        params = dict(SIZES[size][name])
        if store != ANY_STORE:
            params["store"] = store
        try:
            before = None
            if needs is not None:
                before = last[1] if last is not None and last[0] == needs else read(*needs)
            say(f"== {name} {json.dumps(params)}")
            t0 = time.perf_counter()
            figures = in_child(name, params, timeout=timeout)
            result["seconds"][key] = time.perf_counter() - t0
            result["figures"][key] = figures
            used, last = None, None
            if needs is not None and before is not None:
                after = read(*needs)
                last = (needs, after)
                used = result["floors"][key] = mean(before, after)
        except BenchFailed as exc:
            say(f"bench/run.py: {exc}")
            result["failed"][key] = str(exc)
            last = None
            continue
        rows = rows_for(name, figures, used, store)
        for row in rows:
            row.bench, row.store = name, store
        result["rows"] += [asdict(r) for r in rows]
        say(table(rows).split("\n", 2)[2])
    result["seconds"]["total"] = time.perf_counter() - started
    result["machine"]["load_average_at_end"] = os.getloadavg()
    return result


def print_result(result: dict[str, Any]) -> None:
    machine_ = result["machine"]
    print(
        f"\n{result['size']} size, {result['date']}, {result['commit']}; {machine_['cores']} cores"
        f" ({machine_['cpu']}), Python {machine_['python']}; load average"
        f" {machine_['load_average_at_start'][0]:.1f} at the start, {machine_['load_average_at_end'][0]:.1f}"
        f" at the end; {result['seconds']['total']:.0f} s"
        + (
            f"; ratio: the median of {len(result['combined_from'])} runs, measured: the last run"
            if "combined_from" in result
            else ""
        )
        + "\n"
    )
    rows = [Row(**{k: v for k, v in r.items() if k != "ratios"}) for r in result["rows"]]
    for r, raw in zip(rows, result["rows"], strict=True):
        r.store = row_store(raw)
    stores = result.get("stores") or [SQLITE]
    pg = result.get("postgresql")
    if pg:
        print(
            f"PostgreSQL: {pg.get('server_version', '?')} from the pgserver wheel, over a unix socket, fsync"
            f" {pg.get('fsync', '?')}, synchronous_commit {pg.get('synchronous_commit', '?')},"
            f" full_page_writes {pg.get('full_page_writes', '?')}, wal_sync_method"
            f" {pg.get('wal_sync_method', '?')}, shared_buffers {pg.get('shared_buffers', '?')}"
            " (bench/postgres.py)\n"
        )
    if len(stores) > 1:
        print(table_both(rows))
    else:
        print(f"node store: {STORE_NAMES[stores[0]]} (the audit's and the scan's rows: {INDEPENDENT})\n")
        print(table(rows))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], json.loads(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        epilog="bench/README.md says what each figure and ratio means.",
    )
    parser.add_argument(
        "--size", choices=tuple(SIZES), default="full", help="quick (CI), medium, or full (default)"
    )
    parser.add_argument(
        "--store",
        choices=(SQLITE, POSTGRESQL, "both"),
        help="the node store of the benches that run nodes (default: both at medium, else sqlite)",
    )
    parser.add_argument("--json", type=Path, help="write the figures, floors and ratios here")
    parser.add_argument(
        "--check",
        type=Path,
        metavar="BASELINE",
        help="exit 1 when a ratio is worse than the baseline's by more than --factor, twice running",
    )
    parser.add_argument(
        "--factor",
        type=float,
        default=FACTOR,
        help=f"how much worse --check lets a ratio be (default {FACTOR})",
    )
    parser.add_argument(
        "--bench", action="append", choices=BENCHES, help="run only this bench (repeatable; default all)"
    )
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="run nothing: print (and with --json write) these runs' JSON with each ratio their median",
    )
    args = parser.parse_args()
    if args.combine:
        result = combine([json.loads(path.read_text()) for path in args.combine])
        print_result(result)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
            print(f"\nwrote {args.json}")
        return
    baseline = json.loads(args.check.read_text()) if args.check else None
    if baseline is not None and baseline["size"] != args.size:
        parser.error(f"{args.check} was measured at size {baseline['size']}, this run is {args.size}")
    benches = [b for b in BENCHES if b in (args.bench or BENCHES)]
    runs = runs_of(benches, stores_of(args.store or STORE_DEFAULT[args.size]))

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        settings = None
        if any(store == POSTGRESQL for _, store in runs):
            from bench import postgres

            say("== starting the benches' PostgreSQL server (bench/postgres.py)")
            stack.callback(postgres.stop)
            settings = postgres.start_for_children().settings()
        result = run_all(args.size, runs, say, postgresql=settings)
        print_result(result)
        regressed = check(result, baseline, args.factor) if baseline is not None else {}
        if regressed and baseline is not None:
            # One load spike on a shared machine must not fail CI: a bench with a
            # regressed ratio runs again, and only a regression seen twice counts.
            again = [
                run
                for run in runs
                if any(
                    r["bench"] == run[0] and row_store(r) == run[1] and row_id(r) in regressed
                    for r in result["rows"]
                )
            ]
            say(f"\n== measuring {', '.join(run_id(*run) for run in again)} again, to confirm")
            confirmation = result["confirmation"] = run_all(args.size, again, say, postgresql=settings)
            print_result(confirmation)
            regressed = {
                k: v for k, v in check(confirmation, baseline, args.factor).items() if k in regressed
            }
            result["failed"].update(confirmation["failed"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"\nwrote {args.json}")
    if result["failed"]:
        print("\nbench failed:\n  " + "\n  ".join(f"{k}: {v}" for k, v in result["failed"].items()))
    if regressed:
        print("\nbenchmark regression, measured twice:\n  " + "\n  ".join(regressed.values()))
    elif baseline is not None:
        print("\nno ratio regressed")
    if regressed or result["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
