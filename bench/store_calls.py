"""Where a store's time goes, statement by statement, on SQLite and on PostgreSQL.

For `--alerts` alerts on each store of `--store` (default both), in one
process (EWX_INBOUND_WORKERS=0, nothing else running), through the node's own
code as bench/catchup.py calls it:

- publish: `NodeService.publish` one alert at a time, one durable commit each;
- receive: `NodeService.receive_many` of the same alerts into a fresh store,
  in pages of 1,000 (one commit a page).

Each statement the store sends (node/store/_database.py's execute,
executemany, begin and commit of either database) is counted and timed, and
for each phase it prints the wall time an alert, the part of it spent in the
database driver, the statements an alert, and the statements that cost most.
On PostgreSQL it also times a bare point query (`SELECT ... WHERE key = %s`
on an empty table) back to back and with 100 us of Python work between two
(as the store's statements have between them): the round trip alone.
Not part of bench/run.py; docs/performance.md quotes it.

Usage: python bench/store_calls.py [--alerts N] [--store sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.*, run as a script

from bench import catchup, postgres
from gateway.local_nodes import assign_free_ports
from node.crypto import INBOUND_WORKERS_ENV
from node.logs import configure
from node.pki import init_federation
from node.store import _database

TOP = 8
"""Statements printed per phase."""

_counts: collections.Counter[str] = collections.Counter()
_seconds: collections.defaultdict[str, float] = collections.defaultdict(float)


def _timed(name: str, method: Callable[..., Any], with_sql: bool) -> Callable[..., Any]:
    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            took = time.perf_counter() - start  # before the key: folding a long statement's text takes µs
            key = f"{name} {' '.join(str(args[0]).split())[:100]}" if with_sql and args else name
            _counts[key] += 1
            _seconds[key] += took

    return timed


def instrument() -> None:
    """Count and time every statement of both databases (this process only)."""
    for cls in (_database.SqliteDatabase, _database.PostgresDatabase):
        for name, with_sql in (
            ("execute", True),
            ("executemany", True),
            ("begin_write", False),
            ("commit", False),
        ):
            setattr(cls, name, _timed(name, getattr(cls, name), with_sql))


def phase(label: str, alerts: int, work: Callable[[], object]) -> dict[str, Any]:
    _counts.clear()
    _seconds.clear()
    start = time.perf_counter()
    work()
    wall = time.perf_counter() - start
    top = sorted(_counts, key=lambda k: -_seconds[k])[:TOP]
    return {
        "phase": label,
        "wall_us": wall / alerts * 1e6,
        "driver_us": sum(_seconds.values()) / alerts * 1e6,
        "statements": sum(_counts.values()) / alerts,
        "top": [(k, _counts[k] / alerts, _seconds[k] / alerts * 1e6) for k in top],
    }


def round_trips(n: int = 2000) -> dict[str, float]:
    """Microseconds of a point query on PostgreSQL, back to back and with 100 us of Python between."""
    with postgres.connect(postgres.server().fresh_database("round_trip")) as db:
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BYTEA)")
        query = "SELECT v FROM t WHERE k = %s"
        figures = {}
        for gap_us in (0, 100):
            for _ in range(20):
                db.execute(query, ("x",)).fetchall()
            took = 0.0
            for _ in range(n):
                until = time.perf_counter() + gap_us / 1e6
                while time.perf_counter() < until:
                    pass
                start = time.perf_counter()
                db.execute(query, ("x",)).fetchall()
                took += time.perf_counter() - start
            figures[f"gap_{gap_us}_us"] = took / n * 1e6
    return figures


def run(alerts: int = 2000, store: str = "sqlite") -> dict[str, Any]:
    os.environ[INBOUND_WORKERS_ENV] = "0"
    tmp = Path(tempfile.mkdtemp(prefix="ewx-store-calls-"))
    try:
        init_federation(tmp / "fed")
        configs = assign_free_ports(tmp / "fed")
        postgres.put_on_store(configs, store, "calls")
        published = phase("publish", alerts, lambda: catchup.publish(configs["KR"], alerts))
        envelopes = catchup.sent_to_jp(configs["KR"], alerts)
        received = phase(
            "receive_many", alerts, lambda: catchup.receive_rate(envelopes, configs["JP"], tmp / "jp", store)
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {"store": store, "alerts": alerts, "phases": [published, received]}
    if store == postgres.POSTGRESQL:
        result["round_trip"] = round_trips()
    return result


def report(result: dict[str, Any]) -> None:
    print(f"\n{result['store']}, {result['alerts']:,} alerts, one process:")
    for p in result["phases"]:
        print(
            f"  {p['phase']}: {p['wall_us']:.0f} us an alert, {p['driver_us']:.0f} us of it in the database"
            f" driver, {p['statements']:.1f} statements an alert"
        )
        for key, count, us in p["top"]:
            print(f"    {count:5.2f}/alert {us:7.1f} us/alert  {key}")
    if "round_trip" in result:
        rt = result["round_trip"]
        print(
            f"  a point query's round trip: {rt['gap_0_us']:.0f} us back to back,"
            f" {rt['gap_100_us']:.0f} us with 100 us of Python work between two"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--store", choices=(*postgres.STORES, "both"), default="both")
    args = parser.parse_args()
    configure(level="error")
    instrument()
    for store in postgres.STORES if args.store == "both" else (args.store,):
        report(run(args.alerts, store))


if __name__ == "__main__":
    main()
