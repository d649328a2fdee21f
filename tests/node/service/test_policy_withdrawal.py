"""A node withdraws its own policy report with a CANCEL, once; a withdrawn report is no policy event."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import NodeConfig
from node.errors import RefusedOperation
from node.service import NodeService
from tests.support.factories import make_federation

MOVE = {
    "country": "CN",
    "measure": "EXPORT_LICENSING",
    "hs_codes": ["811292"],
    "hs_edition": "HS2022",
    "stage": "ANNOUNCED",
    "announced": "2023-07-03",
    "effective": "2023-08-01",
    "source": "MISSION_REPORT",
}


def test_a_report_is_withdrawn_once_and_then_is_no_policy_event(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    service = NodeService.open(NodeConfig.load(fed["JP"]))
    try:
        report = service.report_policy(MOVE).alert.alert_id
        assert [e.alert_id for e in service.policy_events()] == [report]
        withdrawal = service.publish(msg_type="CANCEL", reference=("JP", report), reason="ISSUED_IN_ERROR")
        with pytest.raises(RefusedOperation, match=f"already withdrew its report {report}"):
            service.publish(msg_type="CANCEL", reference=("JP", report), reason="ISSUED_IN_ERROR")
        (listed,) = service.policy_reports()
        assert listed["withdrawn_by"] == withdrawal.alert.alert_id
        assert service.policy_events() == []
    finally:
        service.close()
