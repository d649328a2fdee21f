"""Offline transfer: `ewx outbox export` at the origin, `ewx outbox import` at the peer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.cli import main as ewx
from node.ids import Country
from node.message import MAGIC, read_transfer, write_transfer
from tests.support.factories import alert_info, alert_payload, envelope, running, wait_for


def test_export_import_is_checked_idempotent_and_later_receipted(
    federation: dict[Country, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transfer = tmp_path / "kr-to-us.ewxoutbox"

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            kr = nodes["KR"].service
            ids = [kr.publish(msg_type="ALERT", info=alert_info()).alert.alert_id for _ in range(3)]
            code = await asyncio.to_thread(
                ewx,
                [
                    "outbox",
                    "export",
                    "--config",
                    str(federation["KR"]),
                    "--peer",
                    "US",
                    "--out",
                    str(transfer),
                ],
            )
            assert code == 0
        assert len(read_transfer(transfer).envelopes) == 3

        async with running(federation["US"]) as nodes:
            us = nodes["US"].service
            imported = ["outbox", "import", str(transfer), "--config", str(federation["US"])]
            assert await asyncio.to_thread(ewx, imported) == 0
            assert all(us.store.alert("KR", a) for a in ids)
            size = us.store.log_size
            assert await asyncio.to_thread(ewx, imported) == 0  # twice: nothing changes
            assert us.store.log_size == size == 3
            assert "imported 0 new of 3" in capsys.readouterr().out

            garbage = tmp_path / "garbage"
            garbage.write_bytes(MAGIC + b"\xff\xff\xff\xff\x0f")
            assert (
                await asyncio.to_thread(
                    ewx, ["outbox", "import", str(garbage), "--config", str(federation["US"])]
                )
                == 2
            )
            assert us.store.log_size == 3

        # KR comes back: its pushes are duplicates at US, answered with the stored receipts.
        async with running(federation["KR"], federation["US"]) as nodes:
            kr = nodes["KR"].service
            await wait_for(lambda: all(r.delivered_at for r in kr.store.outbox("US")))
            assert nodes["US"].service.store.log_size == 3

    asyncio.run(scenario())


def test_a_tampered_transfer_stores_nothing_from_the_bad_alert_on(
    federation: dict[Country, Path], tmp_path: Path
) -> None:
    transfer = tmp_path / "t.ewxoutbox"

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            for _ in range(2):
                nodes["KR"].service.publish(msg_type="ALERT", info=alert_info(), recipients=["US"])
        assert (
            ewx(
                [
                    "outbox",
                    "export",
                    "--config",
                    str(federation["KR"]),
                    "--peer",
                    "US",
                    "--out",
                    str(transfer),
                ]
            )
            == 0
        )
        data = bytearray(transfer.read_bytes())
        data[-5] ^= 0x01  # inside the second envelope's signature
        transfer.write_bytes(bytes(data))
        async with running(federation["US"]) as nodes:
            us = nodes["US"].service
            code = await asyncio.to_thread(
                ewx, ["outbox", "import", str(transfer), "--config", str(federation["US"])]
            )
            assert code == 1  # one alert refused: the operator is told
            assert us.store.last_seq("KR", "US") == 1  # the first alert, not the forged second
            assert us.store.count("alerts") == 1

    asyncio.run(scenario())


def test_an_envelope_of_no_federation_member_is_refused_not_an_internal_error(
    federation: dict[Country, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10, item 14: an alert whose origin is no known country once read as "internal error"."""
    from node.wire import ewx_pb2 as pb

    transfer = tmp_path / "stranger.ewxoutbox"
    payload = pb.Alert.FromString(alert_payload("KR", {"US": 1}))
    payload.origin = 99  # a Country value the schema does not have
    write_transfer(
        transfer,
        origin="KR",
        recipient="US",
        envelopes=[envelope(federation["KR"], payload.SerializeToString(deterministic=True))],
    )

    async def scenario() -> None:
        async with running(federation["US"]) as nodes:
            code = await asyncio.to_thread(
                ewx, ["outbox", "import", str(transfer), "--config", str(federation["US"])]
            )
            captured = capsys.readouterr()
            assert code == 1, captured
            assert "internal error" not in captured.err + captured.out
            assert "1 alerts failed the checks" in captured.err
            assert nodes["US"].service.store.count("alerts") == 0

    asyncio.run(scenario())
