"""The main job: `ewx demo` end to end, with the real early-warning engine, exits 0 on a clean audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.node.cli.test_cli import ewx

pytestmark = pytest.mark.slow


def test_the_demo_detects_publishes_and_audits_clean(tmp_path: Path) -> None:
    run = ewx("demo", "--dir", str(tmp_path / "demo"))
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
    for country in ("KR", "US", "JP"):
        assert (tmp_path / "demo" / f"{country}.ewxlog").is_file()
    assert (tmp_path / "demo" / "replay.html").is_file()
