"""Issue 10 (hardening) against running nodes: the operator API and the real `ewx` command.

Each test names the issue's item it covers. Peer-facing cases also have rows
in tests/integration/test_hostile_matrix.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.errors import UsageError
from node.ids import Country
from node.operator import OperatorClient
from tests.factories import alert_info, running

Fed = dict[Country, Path]


# ---------------------------------------------------------------- item 3: an empty recipient list
def test_the_operator_api_refuses_an_empty_recipient_list(federation: Fed) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            client = OperatorClient(nodes["KR"].config.operator_socket)
            store = nodes["KR"].service.store
            with pytest.raises(UsageError, match="recipient list is empty"):
                await asyncio.to_thread(
                    client.call, "publish", msg_type="ALERT", info=alert_info(), recipients=[]
                )
            assert store.log_size == 0 and store.count("outbox") == 0

    asyncio.run(scenario())
