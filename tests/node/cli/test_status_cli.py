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
            assert peers["US"]["catch_up"] is None  # none in progress

            # A peer catching up from us, as the CatchUp server notes it for a full page. (This
            # node's own pull is cleared when each pull ends, and the link's probe pulls every few
            # seconds: its line is checked below, without the race.)
            def noting() -> None:
                nodes["KR"].runtime.service.link("JP").note_pulling(time.monotonic(), 30.0, to_seq=1)

            await asyncio.to_thread(nodes["KR"].runtime.store_thread.wait_for, noting)
            text = (await asyncio.to_thread(ewx, "status", "--config", kr)).stdout
            assert "    JP catching up from us: seq 1 of 1 (100%)" in text, text

    asyncio.run(scenario())


def test_the_catch_up_line_says_what_each_side_knows() -> None:
    from node.cli._node import _catch_up_line

    both = {"from_peer": {"first_seq": 1, "at_seq": 2000}, "peer_from_us": {"at_seq": 3000, "of": 20000}}
    assert _catch_up_line("US", both) == (
        "catching up from US: seq 2,000 stored (from 1); US catching up from us: seq 3,000 of 20,000 (15%)"
    )
    assert _catch_up_line("US", {"from_peer": None, "peer_from_us": {"at_seq": 0, "of": 0}}) == (
        "US catching up from us: seq 0 of 0"
    )
