"""The machine's floors: what the hardware and the libraries give before any EWX code runs.

Each figure bench/run.py reports is divided by one of these, measured in the
same run, next to the figure (in the same child process, just before and
just after its bench), so that the ratio says how close the code comes to
what the machine allows, whatever the machine and whatever else it runs:

- `verify_rates`: raw Ed25519 verifications per second, a tight loop of
  libsodium's verify (crypto_sign_open, what node/crypto's verify_signature
  runs) over PAE-wrapped payloads of an alert's size, on one core and on
  every core at once (one process per core), with bench/audit.py's loop;
  `openssl_verify_rate` the same loop with `cryptography`'s (OpenSSL), the
  floor SPEC section 9 names, which EWX verified with until 2026-12-05;
- `sqlite_commit_rate`: durable single-row commits per second, an INSERT and
  a COMMIT of about an alert's size in a loop, SQLite in WAL mode with
  synchronous=FULL (the node's settings) in a temporary directory beside the
  benches' own data directories;
- `postgres_commit_rate`: the same loop on the benches' PostgreSQL server
  (bench/postgres.py: its durable defaults, fsync and synchronous_commit on),
  over its unix socket with psycopg in autocommit mode and an explicit BEGIN
  and COMMIT, as the node's PostgreSQL store writes: three round trips and
  one WAL flush a commit;
- `grpc_round_trip`: the median time of a unary gRPC call over loopback with
  the federation's real mTLS (TLS 1.3, client certificate required) carrying
  an alert-sized request and a receipt-sized reply, client and server in
  this process;
- `duckdb_rates`: DuckDB's own rates on bench/scan.py's CSV at the same size
  (written afresh: it is deterministic), with the early-warning store's
  threads and memory limit: `CREATE TABLE AS SELECT * FROM read_csv` into a
  fresh file, and one GROUP BY code and month over every row of that table.

Run alone it prints them: python bench/floors.py [--seconds S] [--postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.*, run as a script

import gateway  # noqa: F401 - before grpc: gRPC core reads its settings at import (gateway/grpc_env.py)
from bench.audit import openssl_verify_rate, raw_rates
from node.crypto import PAYLOAD_ALERT, pae, raw_public_key

ALERT_BYTES = 1500
"""About the size of a signed alert envelope."""
RECEIPT_BYTES = 300


def verify_sample(n: int = 64) -> list[tuple[bytes, bytes, bytes]]:
    """(raw public key, PAE bytes, signature) of `n` alert-sized payloads under three keys."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    sample = []
    for i in range(n):
        key = keys[i % 3]
        message = pae(PAYLOAD_ALERT, os.urandom(ALERT_BYTES - 100))
        sample.append((raw_public_key(key.public_key()), message, key.sign(message)))
    return sample


def verify_rates(seconds: float = 1.0, workers: int | None = None) -> tuple[float, float]:
    """(one core, all cores at once) raw Ed25519 verifications per second."""
    workers = workers or len(os.sched_getaffinity(0))
    return raw_rates(verify_sample(), workers=workers, seconds=seconds)


def openssl_verify(seconds: float = 1.0) -> float:
    """One core's raw Ed25519 verifications per second with `cryptography` (OpenSSL)."""
    return openssl_verify_rate(verify_sample(), seconds)


def sqlite_commit_rate(seconds: float = 1.0, folder: Path | None = None) -> float:
    """Durable single-row commits per second (WAL, synchronous=FULL)."""
    with tempfile.TemporaryDirectory(prefix="ewx-floor-", dir=folder) as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        # warm up: the WAL file exists and has grown once
        rate = _commit_rate(db.execute, "INSERT INTO t (body) VALUES (?)", seconds)
        db.close()
        return rate


def postgres_commit_rate(seconds: float = 1.0) -> float:
    """Durable single-row commits per second on the benches' PostgreSQL server (a fresh database)."""
    from bench import postgres

    url = postgres.server().fresh_database("floor")
    with postgres.connect(url) as db:
        db.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL)")
        # warm up: the statements are prepared, the table has pages
        return _commit_rate(db.execute, "INSERT INTO t (body) VALUES (%s)", seconds)


def _commit_rate(execute: Callable[..., object], insert: str, seconds: float) -> float:
    """One row of an alert's size a transaction, committed, for `seconds`, after 20 to warm up."""
    body = os.urandom(ALERT_BYTES)

    def commit_one() -> None:
        execute("BEGIN")
        execute(insert, (body,))
        execute("COMMIT")

    for _ in range(20):
        commit_one()
    count, start = 0, time.perf_counter()
    while True:
        commit_one()
        count += 1
        now = time.perf_counter()
        if now - start >= seconds:
            return count / (now - start)


async def _round_trips(calls: int) -> list[float]:
    import grpc
    from grpc import aio

    from node.config import NodeConfig
    from node.pki import init_federation
    from node.trust import Trust, node_dns_name

    with tempfile.TemporaryDirectory(prefix="ewx-floor-grpc-") as tmp:
        init_federation(Path(tmp) / "fed")
        server_config = NodeConfig.load(Path(tmp) / "fed" / "US" / "node.toml")
        client_config = NodeConfig.load(Path(tmp) / "fed" / "KR" / "node.toml")
        trust = Trust.load(server_config.trust_file)
        served, presented = server_config.read_tls_credentials(), client_config.read_tls_credentials()
    reply = os.urandom(RECEIPT_BYTES)

    async def echo(_request: bytes, _context: object) -> bytes:
        return reply

    server = aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "bench.Floor", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            )
        ]
    )
    credentials = grpc.ssl_server_credentials(
        [(served.private_key, served.certificate_chain)],
        root_certificates=trust.ca_bundle_pem(["KR"]),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    channel_credentials = grpc.ssl_channel_credentials(
        root_certificates=trust.ca_bundle_pem(["US"]),
        private_key=presented.private_key,
        certificate_chain=presented.certificate_chain,
    )
    options = [("grpc.ssl_target_name_override", node_dns_name("US"))]
    took = []
    try:
        async with aio.secure_channel(f"127.0.0.1:{port}", channel_credentials, options=options) as channel:
            call = channel.unary_unary(
                "/bench.Floor/Echo", request_serializer=None, response_deserializer=None
            )
            request = os.urandom(ALERT_BYTES)
            for i in range(calls + 20):  # the first 20 warm the connection up
                start = time.perf_counter()
                await call(request, timeout=10)
                if i >= 20:
                    took.append(time.perf_counter() - start)
    finally:
        await server.stop(None)
    return took


def grpc_round_trip(calls: int = 300) -> float:
    """Median seconds of a unary mTLS gRPC call over loopback."""
    return statistics.median(asyncio.run(_round_trips(calls)))


def _rate(rows: int, seconds: float, step: Callable[[], object]) -> float:
    """Rows per second of `step` over `rows` rows, repeated for at least `seconds` (at least once)."""
    done, start = 0, time.perf_counter()
    while True:
        step()
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return rows * done / elapsed


def duckdb_rates(codes: int, partners: int, months: int, seconds: float = 1.0) -> tuple[float, float]:
    """(CSV load, GROUP BY) rows per second in DuckDB on bench/scan.py's flows at this size."""
    import duckdb

    from bench.scan import write_flows
    from node.ews.store import MEMORY_LIMIT

    with tempfile.TemporaryDirectory(prefix="ewx-floor-duckdb-") as tmp:
        data = Path(tmp) / "flows.csv"
        rows = write_flows(data, codes=codes, partners=partners, months=months)
        db = duckdb.connect(
            str(Path(tmp) / "floor.duckdb"), config={"threads": 2, "memory_limit": MEMORY_LIMIT}
        )
        try:
            load = _rate(
                rows,
                seconds,
                lambda: db.execute(
                    f"CREATE OR REPLACE TABLE flows AS SELECT * FROM read_csv('{data}', header = true)"
                ),
            )
            group = _rate(
                rows,
                seconds,
                lambda: db.execute(
                    "SELECT count(*) FROM (SELECT hs_code, period, sum(import_value_usd), sum(quantity)"
                    " FROM flows GROUP BY hs_code, period)"
                ).fetchone(),
            )
        finally:
            db.close()
    return load, group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each timed loop")
    parser.add_argument(
        "--postgresql", action="store_true", help="also PostgreSQL's durable commit (starts a server)"
    )
    args = parser.parse_args()
    one, every = verify_rates(args.seconds)
    print(
        f"raw Ed25519 verify:   {one:,.0f}/s on one core, {every:,.0f}/s on {len(os.sched_getaffinity(0))} cores"
        " (libsodium, as EWX verifies)"
    )
    print(
        f"  with cryptography (OpenSSL, SPEC section 9's reference): {openssl_verify(args.seconds):,.0f}/s on one core"
    )
    print(
        f"SQLite durable commit: {sqlite_commit_rate(args.seconds):,.0f}/s (WAL, synchronous=FULL, one row each)"
    )
    if args.postgresql:
        print(
            f"PostgreSQL durable commit: {postgres_commit_rate(args.seconds):,.0f}/s"
            " (fsync and synchronous_commit on, unix socket, BEGIN + INSERT + COMMIT)"
        )
    print(f"gRPC unary mTLS loopback round trip: {grpc_round_trip() * 1000:.3f} ms (median)")
    load, group = duckdb_rates(4000, 30, 60, args.seconds)
    print(f"DuckDB on bench/scan.py's 7.2M flows: CSV load {load:,.0f} rows/s, GROUP BY {group:,.0f} rows/s")


if __name__ == "__main__":
    main()
