"""Early-warning ingest and scan at the size of Korea's monitored item list (SPEC section 9).

4,000 HS-6 codes x 30 partners x 60 monthly periods = 7.2 million flow rows,
written as one CSV in the plain layout, then `ingest_file` (every row
validated, stored in the node's DuckDB file) and `scan` (every indicator of
every code and month, the rules, the drafts). One code in a hundred has a
dominant partner whose volume collapses in the last year, so the rules have
something to find. Prints the time and rows/s of each step and the peak
resident memory of the process.

Targets (issue 9): ingest plus full scan under 10 s on 2 cores; scan peak
memory under 1 GB. SPEC section 9 asks for the scan under 30 s.

    .venv/bin/python bench/scan.py [--codes 4000] [--partners 30] [--months 60]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.countries import ISO_3166_ALPHA2
from node.ews.ingest import ingest_file
from node.ews.scan import scan
from node.ews.store import EwsStore
from node.ews.thresholds import Thresholds


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_flows(path: Path, *, codes: int, partners: int, months: int) -> int:
    """The bench's CSV, made by DuckDB itself (fast, and deterministic by setseed)."""
    countries = sorted(ISO_3166_ALPHA2)[:partners]
    db = duckdb.connect()
    db.execute("SELECT setseed(0.42)")
    db.execute(
        "CREATE TABLE partners AS SELECT * FROM (SELECT unnest(?) AS partner, generate_subscripts(?, 1) AS rank)",
        [countries, countries],
    )
    db.execute(
        f"""
        COPY (
            SELECT strftime(DATE '2020-01-01' + INTERVAL (m) MONTH, '%Y-%m') AS period,
                   CAST(100000 + h * 17 AS VARCHAR) AS hs_code, p.partner,
                   round(q * (4 + random() * 0.2), 2) AS import_value_usd, round(q, 1) AS quantity, 'kg' AS unit
            FROM (SELECT h, m, p.partner,
                         (CASE WHEN h % 100 = 0 AND p.rank = 1 THEN 40000 ELSE 1000 / p.rank END)
                         * (0.9 + random() * 0.2)
                         * (CASE WHEN h % 100 = 0 AND p.rank = 1 AND m >= {months - 12} THEN 0.1 ELSE 1 END) AS q
                  FROM range({codes}) a(h), range({months}) b(m), partners p) x
            JOIN partners p USING (partner)
        ) TO '{path}' (HEADER)
        """
    )
    return codes * partners * months


def run(codes: int = 4000, partners: int = 30, months: int = 60) -> dict[str, float]:
    """Write the flows, ingest and scan them; the figures: rows, csv_mb, peak_before_mb
    (peak RSS once the CSV is written), ingest_seconds, ingest_rate (rows stored/s),
    added, scan_seconds, scan_rate (flow rows/s), months (code-months), detections,
    after_ingest_mb and peak_mb (peak RSS)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "flows.csv"
        rows = write_flows(data, codes=codes, partners=partners, months=months)
        figures: dict[str, float] = {
            "rows": rows,
            "csv_mb": data.stat().st_size / 1e6,
            "peak_before_mb": peak_mb(),
        }
        store = EwsStore.open(folder)
        started = time.perf_counter()
        report = ingest_file(store, data)
        ingested = time.perf_counter() - started
        before_scan = peak_mb()
        started = time.perf_counter()
        result = scan(store, Thresholds())
        scanned = time.perf_counter() - started
        figures.update(
            ingest_seconds=ingested,
            ingest_rate=report.added / ingested,
            added=report.added,
            scan_seconds=scanned,
            scan_rate=rows / scanned,
            months=result.months,
            detections=len(result.detections),
            after_ingest_mb=before_scan,
            peak_mb=peak_mb(),
        )
        store.close()
    return figures


def report(figures: dict[str, float]) -> None:
    ingested, scanned = figures["ingest_seconds"], figures["scan_seconds"]
    print(
        f"data: {int(figures['rows']):,} flow rows, {figures['csv_mb']:.0f} MB CSV"
        f" (peak so far {figures['peak_before_mb']:.0f} MB)"
    )
    print(
        f"ingest: {ingested:.2f} s, {figures['ingest_rate']:,.0f} rows/s ({int(figures['added']):,} rows stored)"
    )
    print(
        f"scan:   {scanned:.2f} s, {figures['scan_rate']:,.0f} flow rows/s, {int(figures['months']):,} code-months, "
        f"{int(figures['detections'])} detections"
    )
    print(f"ingest + scan: {ingested + scanned:.2f} s (target < 10 s; SPEC: scan < 30 s)")
    print(
        f"peak resident memory: {figures['peak_mb']:.0f} MB (after ingest {figures['after_ingest_mb']:.0f} MB;"
        " target < 1024 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codes", type=int, default=4000)
    parser.add_argument("--partners", type=int, default=30)
    parser.add_argument("--months", type=int, default=60)
    args = parser.parse_args()
    report(run(args.codes, args.partners, args.months))


if __name__ == "__main__":
    main()
