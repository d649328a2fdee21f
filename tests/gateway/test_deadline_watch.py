"""A serving node logs `ack_overdue` once when an acknowledgement becomes overdue (issue 13, item 2)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from gateway.runtime import NodeRuntime
from node.config import NodeConfig
from tests.support.factories import alert_info, make_federation, wait_for


def test_an_overdue_acknowledgement_is_logged_once_with_the_peer_and_the_alert(tmp_path: Path) -> None:
    configs = make_federation(tmp_path / "fed", ack_deadline_minutes={"EXTREME": 0.02})  # 1.2 s

    async def scenario() -> None:
        runtime = NodeRuntime(NodeConfig.load(configs["KR"]))
        runtime.deadline_watch_seconds = 0.2
        with structlog.testing.capture_logs() as logs:
            await runtime.start()
            try:
                published = await runtime.service.call(
                    runtime.service.publish, msg_type="ALERT", info=alert_info(severity="EXTREME")
                )

                def overdue() -> list[dict[str, object]]:
                    return [e for e in logs if e.get("event") == "ack_overdue"]

                await wait_for(lambda: len(overdue()) == 2, timeout=15)  # US and JP, neither running
                await asyncio.sleep(1.0)  # five more watches: nothing is logged twice
            finally:
                await runtime.stop()
        events = overdue()
        assert sorted(str(e["peer"]) for e in events) == ["JP", "US"]
        for event in events:
            assert event["alert_id"] == published.alert.alert_id and event["origin"] == "KR"
            assert event["node"] == "KR" and event["severity"] == "EXTREME" and event["log_level"] == "warning"

    asyncio.run(scenario())
