"""`ewx status` reads well (issue 14, item 8): plain link errors, and what each side cosigned of the other's log."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from node.ids import Country
from tests.node.cli.test_cli import ewx

pytestmark = pytest.mark.slow


def test_status_names_a_down_peer_in_plain_words_and_the_cosigned_checkpoints(
    federation: dict[Country, Path],
) -> None:
    from tests.support.factories import alert_info, running, wait_for

    kr = str(federation["KR"])

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:  # US and JP are not running
            nodes["KR"].service.publish(msg_type="ALERT", info=alert_info())
            await wait_for(lambda: nodes["KR"].service.link("US").reachable is False)
            text = (await asyncio.to_thread(ewx, "status", "--config", kr)).stdout
            assert re.search(
                r"  US: UNREACHABLE since \d\d:\d\dZ: connection refused; sent 1 delivered 0", text
            ), text
            assert "US has cosigned none of our log; we have cosigned none of US's" in text
            data = json.loads((await asyncio.to_thread(ewx, "status", "--config", kr, "--json")).stdout)
            us = data["peers"]["US"]
            assert (
                us["problem"] == "connection refused" and "Connection refused" in us["last_error"]
            )  # raw kept
            assert us["down_since"] is not None and us["our_log_cosigned"] is None

        async with running(*federation.values()) as nodes:
            service = nodes["KR"].service
            await wait_for(lambda: service.status().peers["US"].our_log_cosigned is not None, timeout=20)
            await wait_for(lambda: service.status().peers["JP"].their_log_cosigned is not None, timeout=20)
            text = (await asyncio.to_thread(ewx, "status", "--config", kr)).stdout
            assert re.search(r"  US: reachable; sent 1 delivered 1", text), text
            assert re.search(
                r"US cosigned our log up to \d+; we cosigned US's up to \d+ \(root [0-9a-f]{12}\)", text
            )
            peers = json.loads((await asyncio.to_thread(ewx, "status", "--config", kr, "--json")).stdout)[
                "peers"
            ]
            assert peers["JP"]["their_log_cosigned"]["size"] >= 1 and peers["JP"]["down_since"] is None

    asyncio.run(scenario())
