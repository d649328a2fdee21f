"""Own alert ids are unique per origin however fast alerts are raised, and survive restarts."""

from __future__ import annotations

import re
from pathlib import Path

from node.config import NodeConfig
from node.service import NodeService
from tests.support.factories import alert_info, make_federation


def test_ids_are_unique_sequential_and_survive_a_restart(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    config = NodeConfig.load(fed["KR"])
    info = alert_info()
    service = NodeService.open(config)
    ids = [service.publish(msg_type="ALERT", info=info).alert.alert_id for _ in range(300)]
    service.close()
    service = NodeService.open(config)
    ids.append(service.publish(msg_type="ALERT", info=info).alert.alert_id)
    service.close()
    assert len(set(ids)) == len(ids) == 301
    assert all(re.fullmatch(r"KR-\d{8}-\d{6}", i) for i in ids)
    assert [int(i.rsplit("-", 1)[1]) for i in ids] == list(range(1, 302))
