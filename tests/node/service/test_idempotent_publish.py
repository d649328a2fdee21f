"""A publish retried with its idempotency key returns the first alert and publishes nothing new."""

from __future__ import annotations

from pathlib import Path

from node.config import NodeConfig
from node.service import NodeService
from tests.support.factories import alert_info, make_federation


def test_the_same_key_gives_the_same_alert_even_after_a_restart(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    config = NodeConfig.load(fed["KR"])
    service = NodeService.open(config)
    first = service.publish(msg_type="ALERT", info=alert_info(), idempotency_key="ews-approve:D-1")
    size = service.store.log_size
    # A retry after a lost reply: other fields (a fresh default expiry) may differ.
    retry = service.publish(
        msg_type="ALERT", info=alert_info(headline="Retried"), idempotency_key="ews-approve:D-1"
    )
    assert retry.alert.alert_id == first.alert.alert_id and retry.digest == first.digest
    assert service.store.log_size == size and len(service.store.outbox()) == 2
    other = service.publish(msg_type="ALERT", info=alert_info(), idempotency_key="ews-approve:D-2")
    assert other.alert.alert_id != first.alert.alert_id
    service.close()
    service = NodeService.open(config)
    assert service.publish(msg_type="ALERT", info=alert_info(), idempotency_key="ews-approve:D-1").log_index == (
        first.log_index
    )
    without = service.publish(msg_type="ALERT", info=alert_info())
    assert without.alert.alert_id not in {first.alert.alert_id, other.alert.alert_id}
    service.close()
