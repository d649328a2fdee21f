"""The main job: `ewx demo` end to end, with the real early-warning engine, exits 0 on a clean audit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.node.cli.test_cli import ewx

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only("`ewx demo` makes its own federation, on SQLite")]


def test_the_demo_detects_publishes_and_audits_clean(short_tmp: Path) -> None:
    run = ewx("demo", "--dir", str(short_tmp / "demo"))
    out = run.stdout
    assert "stand-in" not in out
    assert "version 1 is in force at all three nodes, signed by KR, US and JP" in out
    assert "JP's mission reports China's 2023-07-03 announcement" in out
    for detection in (
        "D-310210-202111-EXTREME",
        "D-811292-202307-EXTREME",
        "D-282560-202308-EXTREME",
        "D-380110-202312-EXTREME",
    ):
        assert detection in out
    # Korea's own events lack China's July 2023 move: Japan's report is the trigger, and on a
    # watchlist pair it raises July's gallium detection one step, from SEVERE to EXTREME.
    assert "KR takes 1 policy report of its peers as its own policy event" in out
    assert "reported by JP" in out and "watchlist version 1: 811292:CN is on it" in out
    assert "D-811292-202307-SEVERE" not in out
    assert "the analyst reviews D-811292-202307-EXTREME, D-282560-202308-EXTREME" in out
    assert "(EXTREME, EXPORT_CONTROL, HS 282560, 811292, source CN, impact ABOVE_60" in out
    assert "US's own exposure on HS 811292" in out and "JP's own exposure on HS 282560" in out
    assert "shares its own exposure as a band" in out
    assert "VERDICT: clean (3 logs" in out
    # The peers acknowledge the update too; Korea's board ends the demo with it, the one open alert.
    alert = re.search(r"KR publishes ALERT (KR-\S+) ", out)
    update = re.search(r"\(UPDATE (KR-\S+)\)", out)
    assert alert and update, out
    assert f"UPDATE {update[1]} from KR: active; delivered to JP, US; acknowledged by JP, US" in out
    assert "== Korea's situation board" in out
    board = out.split("== Korea's situation board", 1)[1]
    assert "EWX situation at KR" in board
    assert "open alerts 1 (KR 1, US 0, JP 0); overdue acks 0" in board
    assert f"KR/{update[1]}" in board and "EXTREME" in board and "US ack; JP ack" in board
    # Superseded by the update, the first version is no longer open: not an alert line of its own.
    assert not any(
        line.lstrip().startswith(("EXTREME", "SEVERE")) and f"KR/{alert[1]} " in line
        for line in board.splitlines()
    )
    assert "811292 from CN" in board and "282560 from CN" in board
    assert "Watchlist version 1" in board and "EXPORT_LICENSING ANNOUNCED 2023-07-03" in board
    for country in ("KR", "US", "JP"):
        assert (short_tmp / "demo" / f"{country}.ewxlog").is_file()
    assert (short_tmp / "demo" / "replay.html").is_file()
