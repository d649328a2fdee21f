"""The store's listing queries (issue 10, item 7): every filter is answered through an index."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.store import ALERT_STATES, AlertFilter, Store

pytestmark = pytest.mark.sqlite_only("SQLite's own query plans, of a SQLite store file")

FILTERS = [
    AlertFilter(limit=100),
    AlertFilter(limit=100, after=41),
    AlertFilter(limit=100, origin="US", after=41),
    AlertFilter(limit=100, since_us=1_700_000_000_000_000),
    AlertFilter(limit=100, alert_id="KR-20261202-000001"),
    *(AlertFilter(limit=100, state=state) for state in ALERT_STATES),
    AlertFilter(limit=100, origin="KR", since_us=1, state="expired", after=7),
]


@pytest.mark.parametrize("query", FILTERS, ids=repr)
def test_every_listing_query_searches_an_index_and_never_scans_the_table(
    tmp_path: Path, query: AlertFilter
) -> None:
    store = Store(tmp_path / "ewx.sqlite3")
    statements: list[str] = []
    store._conn.raw.set_trace_callback(statements.append)  # the statements exactly as SQLite ran them
    store.alert_page(query, now_us=1_800_000_000_000_000)
    store._conn.raw.set_trace_callback(None)
    assert statements
    for statement in statements:
        plan = [str(row[3]) for row in store._conn.execute("EXPLAIN QUERY PLAN " + statement)]
        assert not [step for step in plan if step.startswith("SCAN")], (statement, plan)
        assert all("INDEX" in step for step in plan if step.startswith("SEARCH")), (statement, plan)
        if query.alert_id is None:  # in log order straight from the index: no sort of the matches
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (statement, plan)
    store.close()
