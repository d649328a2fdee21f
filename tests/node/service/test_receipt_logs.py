"""A sender logs one event a commit of receipts, not one a receipt (issue 15: a line a receipt of a window)."""

from __future__ import annotations

from pathlib import Path

import structlog

from node.config import NodeConfig
from node.service import NodeService
from tests.support.factories import alert_info, make_federation


def test_receipts_taken_in_one_commit_are_logged_as_one_event(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    kr, us = (NodeService.open(NodeConfig.load(fed[cc])) for cc in ("KR", "US"))
    try:
        for _ in range(4):
            kr.publish(msg_type="ALERT", status="TEST", info=alert_info(), recipients=["US"])
        pending = kr.pending("US")
        receipts = us.receive_in_order([env for _, _, env in pending], peer="KR").receipts
        ids = [alert_id for _, alert_id, _ in pending]
        size = kr.store.log_size
        with structlog.testing.capture_logs() as logs:
            kr.accept_receipts("US", receipts[:3])
            kr.accept_receipts("US", receipts[1:3])  # held already: nothing new, nothing logged
            kr.accept_receipts("US", receipts[3:])
        events = [e for e in logs if e["event"] in ("receipts_logged", "receipt_logged")]
        assert [
            (e["event"], e.get("count"), e.get("first_alert_id"), e.get("last_alert_id")) for e in events
        ] == [
            ("receipts_logged", 3, ids[0], ids[2]),
            ("receipt_logged", None, None, None),
        ]
        assert (events[0]["seqs"], events[0]["log_indexes"]) == ("1-3", f"{size}-{size + 2}")
        assert (events[1]["alert_id"], events[1]["seq"], events[1]["log_index"]) == (ids[3], 4, size + 3)
        assert {(e["node"], e["peer"]) for e in events} == {("KR", "US")}
        assert kr.store.log_size == size + 4 and not kr.pending("US")
    finally:
        kr.close()
        us.close()
