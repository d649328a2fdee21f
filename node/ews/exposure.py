"""A peer's alert against this node's own data: how exposed is this country to the same risk?

When a peer's ALERT or UPDATE arrives, the node looks at its own imports of
the alert's HS codes (a 4-digit code covers its 6-digit lines) over the
trailing months up to its newest data: the share of the alert's source
countries in import value, the HHI of all partners, and the recent trend of
the imports from those sources (the last three months against the three
before). The figures stay at home; the bands (node/ews/bands.py) are what an
analyst may choose to send back in a RESPONSE.

`local_exposure` is the computation over an open store; `ExposureWorker`
runs it off the event loop for every peer alert the node stores.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import structlog

from node.errors import EwxError
from node.ews import bands
from node.ews.store import EWS_FILE, EwsStore

log = structlog.get_logger("ewx.ews")

TREND_MONTHS: Final = 3
RETRY_SECONDS: Final = 30.0
MAX_BATCH: Final = 1000
"""Most peer alerts checked in one opening of the early-warning store."""
MAX_QUEUED: Final = 1000
"""Peer alerts just stored that wait in memory for their check; beyond, the store is swept."""


def local_exposure(
    store: EwsStore, *, hs_codes: list[str], sources: list[str], months: int = 12, now: datetime | None = None
) -> dict[str, Any]:
    """This node's own exposure to `sources` on `hs_codes`, with figures and bands."""
    items = []
    no_data = []
    codes = _checkable(hs_codes)
    if store.db.execute("SELECT NOT EXISTS (SELECT 1 FROM flows)").fetchone() == (True,):
        # No trade data at all: every code has none, without a query per code.
        return no_data_exposure(hs_codes=codes, sources=sources, now=now, data_version=store.data_version())
    for code in codes:
        row = store.db.execute(
            f"""
            WITH matched AS (SELECT * FROM flows WHERE hs_code = ? OR (length(?) = 4 AND substr(hs_code, 1, 4) = ?)),
                 last AS (SELECT max(month) AS last FROM matched),
                 recent AS (SELECT m.* FROM matched m, last WHERE m.month > last.last - {months}),
                 partners AS (SELECT partner, sum(value) AS value FROM recent GROUP BY partner),
                 total AS (SELECT sum(value) AS value FROM partners)
            SELECT (SELECT last FROM last),
                   coalesce((SELECT sum(value) FROM partners WHERE partner IN (SELECT unnest(?))), 0)
                       / nullif((SELECT value FROM total), 0),
                   (SELECT sum(value * value) FROM partners) / nullif((SELECT value FROM total) ^ 2, 0),
                   (SELECT arg_max(partner, value) FROM partners),
                   (SELECT sum(quantity) FROM recent, last WHERE partner IN (SELECT unnest(?))
                      AND month > last.last - {TREND_MONTHS}),
                   (SELECT sum(quantity) FROM recent, last WHERE partner IN (SELECT unnest(?))
                      AND month <= last.last - {TREND_MONTHS} AND month > last.last - {2 * TREND_MONTHS}),
                   (SELECT list(DISTINCT hs_code ORDER BY hs_code) FROM recent)
            """,
            [code, code, code, sources, sources, sources],
        ).fetchone()
        if row is None or row[0] is None or row[1] is None:
            no_data.append(code)
            continue
        last, share, hhi, top, recent_q, prior_q, matched = row
        change = (recent_q or 0.0) / prior_q - 1 if prior_q else None
        first = int(last) - months + 1
        items.append(
            {
                "hs_code": code,
                "lines": list(matched),
                "window": {"first": _month(first), "last": _month(int(last))},
                "share": round(float(share), 4),
                "share_band": bands.share_band(float(share)),
                "hhi": round(float(hhi or 0.0), 4),
                "hhi_band": bands.hhi_band(float(hhi or 0.0)),
                "top_partner": top,
                "trend_change": None if change is None else round(change, 4),
                "trend": bands.trend_band(change),
            }
        )
    return _exposure(items, no_data, sources=sources, now=now, data_version=store.data_version())


def no_data_exposure(
    *, hs_codes: list[str], sources: list[str], now: datetime | None = None, data_version: int = 0
) -> dict[str, Any]:
    """What `local_exposure` finds on a node without trade data: no figures for any code.

    The worker gives it without opening DuckDB when the node has no
    early-warning file: an in-memory store and two queries per code cost
    138 ms of CPU per peer alert to find nothing (docs/performance.md).
    """
    return _exposure([], _checkable(hs_codes), sources=sources, now=now, data_version=data_version)


def _checkable(hs_codes: list[str]) -> list[str]:
    """The codes an exposure is computed for: HS-4 and HS-6 digit codes, each once, in order."""
    return [c for c in dict.fromkeys(hs_codes) if c.isascii() and c.isdigit() and len(c) in (4, 6)]


def _exposure(
    items: list[dict[str, Any]],
    no_data: list[str],
    *,
    sources: list[str],
    now: datetime | None,
    data_version: int,
) -> dict[str, Any]:
    return {
        "sources": sources,
        "computed_at": (now or datetime.now(UTC)).isoformat(),
        "data_version": data_version,
        "items": items,
        "no_data": no_data,
        "share_band": bands.widest([i["share_band"] for i in items], bands.SHARE_ORDER),
        "hhi_band": bands.widest([i["hhi_band"] for i in items], bands.HHI_ORDER),
    }


def _month(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


Scope = tuple[list[str], list[str]]
"""What a peer alert's exposure is checked over: its HS codes and its source countries
(node/service/_views.py scope_of)."""

Sweep = Callable[[int, int], Awaitable[Sequence[tuple[str, str, int]]]]
"""`sweep(after_index, limit)`: the next page of stored peer alerts to check, as (origin,
id, log index) in log order (Store.peer_alerts)."""


class ExposureWorker:
    """Checks each stored peer alert against the node's own data, in batches, off the loop.

    `lookup(alerts)` gives the HS codes and source countries of each (origin,
    alert id) that has an info block; `record([(origin, alert_id, json_text)])`
    keeps a batch's results in the node's store, in one transaction that need
    not wait for the disk (an exposure can be computed again: Store.set_exposures).
    Both are awaited on the store's own thread, once a batch: a peer alert in
    flight on its own used to wait behind two turns of that thread and a
    durable commit of its predecessor's exposure. A store held by a long ingest
    is waited for in the worker thread, never on the loop.

    What waits to be checked is in the store, not in memory: alerts just
    stored are queued (at most MAX_QUEUED); beyond that, and at start, the
    worker sweeps the store page by page (`unchecked`: peer alerts without an
    exposure row; `everything`: all of them, for a recheck). A catch-up of a
    million alerts once held a million queued ids, 270 bytes each.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        months: int,
        lookup: Callable[[list[tuple[str, str]]], Awaitable[dict[tuple[str, str], Scope]]],
        record: Callable[[list[tuple[str, str, str]]], Awaitable[None]],
        unchecked: Sweep,
        everything: Sweep,
        node: str,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._data_dir = data_dir
        self._months = months
        self._lookup = lookup
        self._record = record
        self._sweeps = {"unchecked": unchecked, "everything": everything}
        self._node = node
        self._max_queued = max_queued
        self._queue: asyncio.Queue[tuple[str, str, Scope | None]] = asyncio.Queue()
        self._sweep_due: str | None = "unchecked"  # what was stored before this start
        self._woken = asyncio.Event()
        self._stopping = threading.Event()

    def submit(self, origin: str, alert_id: str, scope: Scope | None = None) -> None:
        """Queue one alert (called from the loop, after its commit); past MAX_QUEUED, a sweep.

        With its `scope` (HS codes, source countries) when the caller has it, as the
        receiving node does: `lookup` then need not read the alert back from the store,
        on the store's own thread (0.70 s of the 7.85 s it was busy in a catch-up of 20,000)."""
        self.submit_many([(origin, alert_id, scope)])

    def submit_many(self, alerts: Iterable[tuple[str, str, Scope | None]]) -> None:
        """`submit` for each (origin, alert id, scope) of one commit, with one wake-up."""
        for alert in alerts:
            if self._queue.qsize() >= self._max_queued:
                self._sweep_due = self._sweep_due or "unchecked"
                break  # the sweep finds the rest in the store
            self._queue.put_nowait(alert)
        self._woken.set()

    def recheck_all(self) -> None:
        """Check every stored peer alert again (after new early-warning data), by a sweep."""
        self._sweep_due = "everything"
        self._woken.set()

    async def run(self) -> None:
        """Work the queue and the sweeps until cancelled, a batch per opening of the store.

        A catch-up stores a thousand peer alerts in one commit; they are checked
        together, not with a thousand openings of the early-warning file.
        """
        try:
            await self._work()
        finally:  # cancelled (the node stops): a batch in its thread ends at the next alert
            self._stopping.set()

    async def _work(self) -> None:
        while True:
            if self._sweep_due is not None:
                kind, self._sweep_due = self._sweep_due, None
                await self._sweep(self._sweeps[kind])
                continue
            if self._queue.empty():
                self._woken.clear()
                await self._woken.wait()
                continue
            batch = [self._queue.get_nowait()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            await self._check(batch)

    async def _sweep(self, page: Sweep) -> None:
        after = -1
        while rows := await page(after, MAX_BATCH):
            await self._check([(origin, alert_id, None) for origin, alert_id, _ in rows])
            after = rows[-1][2]

    async def _check(self, batch: list[tuple[str, str, Scope | None]]) -> None:
        wanted = {(origin, alert_id): scope for origin, alert_id, scope in batch if scope is not None}
        unknown = [
            key for key in dict.fromkeys((o, a) for o, a, s in batch if s is None) if key not in wanted
        ]
        if unknown:
            wanted.update(await self._lookup(unknown))
        if not wanted:
            return
        try:
            results = await asyncio.to_thread(self._compute, wanted)
        except EwxError as exc:
            log.warning("exposure_deferred", node=self._node, alerts=len(wanted), error=str(exc))
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._retry)
            return
        if results:
            await self._record(
                [
                    (origin, alert_id, json.dumps(result, sort_keys=True))
                    for (origin, alert_id), result in results.items()
                ]
            )
        # An event an alert only where this node imports the alert's codes: a catch-up of
        # 100,000 peer alerts into a node without trade data for them wrote 100,000 lines
        # saying so, from a thread that takes the GIL from the store's (issue 15).
        exposed = 0
        for (origin, alert_id), result in results.items():
            if result["share_band"] is None:
                continue
            exposed += 1
            log.info(
                "exposure_checked",
                node=self._node,
                origin=origin,
                alert_id=alert_id,
                share_band=result["share_band"],
                hhi_band=result["hhi_band"],
            )
        if results:
            log.info("exposures_checked", node=self._node, alerts=len(results), exposed=exposed)

    def _retry(self) -> None:
        """After a deferral: what is still unchecked is in the store; sweep it."""
        self._sweep_due = self._sweep_due or "unchecked"
        self._woken.set()

    def _compute(self, wanted: dict[tuple[str, str], Scope]) -> dict[tuple[str, str], dict[str, Any]]:
        if not (self._data_dir / EWS_FILE).exists():
            return {
                key: no_data_exposure(hs_codes=codes, sources=sources)
                for key, (codes, sources) in wanted.items()
            }
        with EwsStore.open(self._data_dir, read_only=True) as store:
            results = {}
            for key, (codes, sources) in wanted.items():
                if self._stopping.is_set():
                    break
                results[key] = local_exposure(store, hs_codes=codes, sources=sources, months=self._months)
            return results
