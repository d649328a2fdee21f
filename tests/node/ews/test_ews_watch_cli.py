"""A peer's policy report as the trigger of this node's scan, and the watchlist in the review (issue 12),
with the real CLI against three real nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.node.cli.test_cli import cli_cluster, ewx, wait_until
from tests.support.ews_factories import FLOW_HEADER, flow_rows, write_csv

pytestmark = pytest.mark.slow

MODERATE_PARTNERS = {"CN": 6000.0, "JP": 3000.0, "DE": 1000.0}
"""CN holds some 60% of Korea's import value of gallium: exposed, and a policy move alone is MODERATE."""
MODERATE = "D-811292-202307-MODERATE"
SEVERE = "D-811292-202307-SEVERE"


def _scan(config: str, *extra: str) -> dict[str, Any]:
    return json.loads(ewx("ews", "scan", "--config", config, "--json", *extra).stdout)


def _events(config: str) -> list[dict[str, Any]]:
    return json.loads(ewx("ews", "event", "list", "--config", config, "--json").stdout)


def _watchlist(config: str) -> dict[str, Any]:
    return json.loads(ewx("watchlist", "show", "--config", config, "--json").stdout)


def test_a_peers_report_triggers_the_scan_and_a_watchlist_pair_steps_its_severity(tmp_path: Path) -> None:
    with cli_cluster(tmp_path) as nodes:
        kr, us, jp = (str(nodes[c]) for c in ("KR", "US", "JP"))
        write_csv(tmp_path / "kr.csv", FLOW_HEADER, flow_rows(partners=MODERATE_PARTNERS))
        ewx("ews", "ingest", "--config", kr, str(tmp_path / "kr.csv"))
        quiet = _scan(kr)
        assert quiet["detections"] == [] and quiet["node"]["reachable"] is True
        assert _events(kr) == []  # Korea's own events do not hold the move

        # Japan's mission reports China's July 2023 announcement; an exercise report rides along.
        move = ["--country", "CN", "--measure", "EXPORT_LICENSING", "--hs", "8112.92", "--stage", "ANNOUNCED",
                "--announced", "2023-07-03", "--effective", "2023-08-01", "--source", "MISSION_REPORT"]  # fmt: skip
        report = ewx("policy", "report", "--config", jp, *move).stdout.strip()
        drill = ewx("policy", "report", "--config", jp, *move, "--status", "EXERCISE").stdout.strip()
        wait_until(
            lambda: (
                {report, drill}
                <= {r["alert_id"] for r in json.loads(ewx("policy", "list", "--config", kr, "--json").stdout)}
            )
        )

        scan = _scan(kr)
        assert scan["policy_reports"]["taken"] == [f"JP/{report}"]
        assert scan["policy_reports"]["added"] == 1 and scan["node"]["not_policy_events"] == 1
        (found,) = scan["detections"]
        assert found["detection_id"] == MODERATE and found["rule"] == "exposure+policy"
        assert found["evidence"]["policy_event"]["reported_by"] == ["JP"]
        assert (found["watchlist"], found["watchlist_version"]) == (False, 0)
        (event,) = _events(kr)
        assert event["country"] == "CN" and event["hs_codes"] == "811292"
        assert event["reports"] == [{"origin": "JP", "alert_id": report, "peer": True}]
        listed = ewx("ews", "event", "list", "--config", kr).stdout
        assert f"reported by JP {report}" in listed

        # The same report again adds nothing: no event, no new data version.
        again = _scan(kr)
        assert again["policy_reports"]["taken"] == [] and again["policy_reports"]["held"] == 1
        assert again["data_version"] == scan["data_version"] and len(_events(kr)) == 1
        assert [d["detection_id"] for d in again["detections"]] == [MODERATE]

        # From the review, Korea proposes the pair for the watchlist.
        review = ewx("ews", "review", "--config", kr).stdout
        assert "watchlist: none in force" in review
        proposed = ewx("ews", "propose-watch", MODERATE, "--config", kr)
        proposal = proposed.stdout.strip()
        assert proposal.startswith("KR-") and "add 811292:CN (POLICY_RISK)" in proposed.stderr
        (pending,) = _watchlist(kr)["pending"]
        assert pending["alert_id"] == proposal and pending["version"] == 1
        assert pending["add"] == [{"hs_code": "811292", "country": "CN", "reason": "POLICY_RISK"}]
        assert f"pending: version 1 KR {proposal}" in ewx("watchlist", "show", "--config", kr).stdout
        # Again (a retry): the same pending proposal, not a rival version 1.
        twice = ewx("ews", "propose-watch", MODERATE, "--config", kr)
        assert twice.stdout.strip() == proposal and "already proposed" in twice.stderr
        assert len(_watchlist(kr)["pending"]) == 1
        other = ewx(
            "ews", "propose-watch", MODERATE, "--config", kr, "--reason", "STRATEGIC_ITEM", check=False
        )
        assert (
            other.returncode == 1
            and f"already proposed in version 1 (KR {proposal}), pending" in other.stderr
        )

        for config in (us, jp):
            wait_until(lambda config=config: _watchlist(config)["pending"])
            ewx("watchlist", "accept", "--config", config, proposal)
        wait_until(lambda: _watchlist(kr)["current"]["version"] == 1)

        # On the watchlist in force, the detection a peer's report triggered is one step higher.
        stepped = _scan(kr)
        (found,) = stepped["detections"]
        assert found["detection_id"] == SEVERE and found["new"] is True
        assert (found["watchlist"], found["watchlist_version"]) == (True, 1)
        assert found["evidence"]["watchlist_step"] == {"from": "MODERATE", "steps": 1}
        assert stepped["watchlist"]["version"] == 1
        text = ewx("ews", "scan", "--config", kr).stdout
        assert "watchlist v1: on it (811292:CN), MODERATE +1 (report by JP)" in text
        assert (
            "policy reports from the node: 1 announcement (and 1 exercise, test or rumoured, not taken), "
            "0 new; watchlist version 1 (1 pairs)"
        ) in text
        explained = ewx("ews", "explain", SEVERE, "--config", kr).stdout
        assert "MODERATE raised 1 step(s) to SEVERE" in explained and "reproduced" in explained

        on_it = ewx("ews", "propose-watch", SEVERE, "--config", kr, check=False)
        assert on_it.returncode == 1 and "already on watchlist version 1 (as 811292:CN" in on_it.stderr
        unknown = ewx("ews", "propose-watch", "D-811292-202001-SEVERE", "--config", kr, check=False)
        assert unknown.returncode == 1 and "no detection D-811292-202001-SEVERE" in unknown.stderr

    # The nodes are stopped: the scan goes on with what the store holds, and says so.
    offline = ewx("ews", "scan", "--config", kr, "--json")
    data = json.loads(offline.stdout)
    assert "note: node is not running" in offline.stderr and "watchlist version 1" in offline.stderr
    assert data["node"]["reachable"] is False and data["policy_reports"] is None
    assert [d["detection_id"] for d in data["detections"]] == [SEVERE]
    assert (
        "node not running: no new policy reports; watchlist version 1"
        in ewx("ews", "scan", "--config", kr).stdout
    )
