"""The trilateral layer across three real nodes: the joint watchlist and policy-move reports (issue 12).

The real `ewx` CLI against three `ewx serve` processes (items 1, 2 and 4), and
hostile watchlist and report messages delivered straight to a running node
over mTLS (item 5).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.config import NodeConfig
from node.crypto import PAYLOAD_ALERT, digest
from node.message import encode
from node.wire import ewx_pb2 as pb
from tests.federation.test_hostile_matrix import (
    deliver_as,
    first_proposal,
    identity_of,
    policy_move,
    stored,
    trilateral_payload,
    wrap,
)
from tests.node.cli.test_cli import cli_cluster, ewx, wait_until
from tests.support.factories import make_federation, running

pytestmark = pytest.mark.slow

FIRST = ["811292:CN", "282590:CN", "2504.10:CN"]
"""Gallium and germanium (unwrought, oxides) and natural graphite, from China."""


def _watchlist(config: Path) -> dict[str, Any]:
    return json.loads(ewx("watchlist", "show", "--config", str(config), "--json").stdout)


def _reports(config: Path) -> list[dict[str, Any]]:
    return json.loads(ewx("policy", "list", "--config", str(config), "--json").stdout)


def test_three_members_agree_a_watchlist_and_share_a_policy_report(tmp_path: Path) -> None:
    with cli_cluster(tmp_path) as nodes:
        kr, us, jp = (str(nodes[c]) for c in ("KR", "US", "JP"))
        adds = [arg for pair in FIRST for arg in ("--add", pair)]
        proposal = ewx("watchlist", "propose", "--config", kr, *adds, "--hs-edition", "HS2022").stdout.strip()
        # The proposal is KR's signature; a version is in force only once all three signed it.
        wait_until(lambda: _watchlist(us)["pending"])
        assert _watchlist(kr)["current"]["version"] == 0
        ewx("watchlist", "accept", "--config", us, proposal)
        refused = ewx("watchlist", "accept", "--config", kr, proposal, check=False)
        assert refused.returncode == 1 and "own proposal" in refused.stderr
        wait_until(lambda: _watchlist(jp)["pending"] and "US" in _watchlist(jp)["pending"][0]["signers"])
        ewx("watchlist", "accept", "--config", jp, proposal)
        for config in (kr, us, jp):
            wait_until(lambda config=config: _watchlist(config)["current"]["version"] == 1)
            current = _watchlist(config)["current"]
            assert sorted(f"{p['hs_code']}:{p['country']}" for p in current["pairs"]) == [
                "250410:CN",
                "282590:CN",
                "811292:CN",
            ]
        shown = ewx("watchlist", "show", "--config", kr).stdout
        assert "watchlist version 1 (HS2022)" in shown and "811292" in shown

        # Version 2, rejected by one member: version 1 stays in force.
        second = ewx(
            "watchlist",
            "propose",
            "--config",
            us,
            "--remove",
            "2504.10:CN",
            "--remove-reason",
            "RISK_SUBSIDED",
        ).stdout.strip()
        wait_until(lambda: any(v["alert_id"] == second for v in _watchlist(jp)["pending"]))
        ewx("watchlist", "reject", "--config", jp, second, "--reason", "INSUFFICIENT_EVIDENCE")
        history = json.loads(ewx("watchlist", "history", "--config", jp, "--json").stdout)
        assert [(v["version"], v["state"]) for v in history["versions"]] == [(1, "in_force"), (2, "rejected")]
        assert _watchlist(jp)["current"]["version"] == 1

        # Japan's mission reports China's July 2023 announcement; Korea and the US hold it.
        report = ewx(
            "policy", "report", "--config", jp, "--country", "CN", "--measure", "EXPORT_LICENSING",
            "--hs", "8112.92", "--hs", "282590", "--stage", "ANNOUNCED", "--announced", "2023-07-03",
            "--effective", "2023-08-01", "--source", "MISSION_REPORT",
        ).stdout.strip()  # fmt: skip
        for config in (kr, us):
            wait_until(lambda config=config: any(r["alert_id"] == report for r in _reports(config)))
        (held,) = [r for r in _reports(kr) if r["alert_id"] == report]
        assert held["direction"] == "received" and held["origin"] == "JP"
        assert held["hs_codes"] == ["282590", "811292"] and held["stage"] == "ANNOUNCED"

        # Both kinds are in the exchange log like alerts: the audit of the three logs is clean.
        bundles = []
        for cc, config in nodes.items():
            out = tmp_path / f"{cc}.ewxlog"
            ewx("log", "export", "--config", str(config), "--out", str(out))
            bundles.append(str(out))
        verified = ewx(
            "audit", "verify", "--trust", str(tmp_path / "fed" / "federation.json"), "--json", *bundles
        )
        assert json.loads(verified.stdout)["errors"] == 0


# ---------------------------------------------------------------- hostile input (item 5)
def _envelope(config: Path, payload: bytes) -> bytes:
    signer = NodeConfig.load(config).load_signers()["alert"]
    return encode(
        pb.SignedAlert(alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload))
    )


def _accept(version: int) -> pb.WatchlistVote:
    return pb.WatchlistVote(version=version, decision=pb.ACCEPT)


def test_an_acceptance_for_another_version_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    kr = identity_of(fed["KR"])
    proposal = first_proposal()
    ref = pb.AlertRef(origin=pb.KR, alert_id="KR-H-1", digest=digest(proposal))

    async def scenario() -> None:
        async with running(fed["US"]) as nodes:
            us = nodes["US"].service
            ok = await deliver_as(fed["US"], kr, wrap(_envelope(fed["KR"], proposal)))
            assert ok.code == grpc.StatusCode.OK, ok
            jp = identity_of(fed["JP"])
            # JP's acceptance names KR's version-1 proposal but votes for version 2: a
            # replay of a vote onto another version. (The rows that need no stored
            # proposal are in the hostile-input matrix, test_hostile_matrix.py.)
            before = stored(us)
            replayed = trilateral_payload("JP", 1, pb.WATCHLIST_VOTE, references=[ref], vote=_accept(2))
            outcome = await deliver_as(fed["US"], jp, wrap(_envelope(fed["JP"], replayed)))
            assert (outcome.code, outcome.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "watchlist_conflict",
            )
            assert "version" in outcome.details, outcome.details
            assert stored(us) == before  # nothing stored, nothing receipted
            # JP's honest vote at that sequence position is taken: KR and JP have signed
            # version 1, which waits for the US's own signature.
            honest = trilateral_payload("JP", 1, pb.WATCHLIST_VOTE, references=[ref], vote=_accept(1))
            assert (
                await deliver_as(fed["US"], jp, wrap(_envelope(fed["JP"], honest)))
            ).code == grpc.StatusCode.OK
            assert us.watchlist_state().versions[0].signers == ("KR", "JP")
            # The node goes on serving: the next message in KR's sequence is taken.
            report = trilateral_payload("KR", 2, pb.POLICY_REPORT, policy=policy_move())
            taken = await deliver_as(fed["US"], kr, wrap(_envelope(fed["KR"], report)))
            assert taken.code == grpc.StatusCode.OK, taken
            assert [r["alert_id"] for r in us.policy_reports()] == ["KR-H-2"]
            assert us.watchlist_state().versions[0].alert_id == "KR-H-1"
            # A vote naming a message that is no proposal (KR's report): refused, nothing stored.
            before = stored(us)
            on_report = pb.AlertRef(origin=pb.KR, alert_id="KR-H-2", digest=digest(report))
            stray = trilateral_payload("JP", 2, pb.WATCHLIST_VOTE, references=[on_report], vote=_accept(1))
            outcome = await deliver_as(fed["US"], jp, wrap(_envelope(fed["JP"], stray)))
            assert (outcome.code, outcome.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "watchlist_conflict",
            )
            assert "vote_not_on_proposal" in outcome.details and "POLICY_REPORT" in outcome.details
            assert stored(us) == before

    asyncio.run(scenario())
