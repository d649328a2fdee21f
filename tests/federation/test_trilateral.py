"""The trilateral layer across three real nodes: the joint watchlist and policy-move reports (issue 12).

The real `ewx` CLI against three `ewx serve` processes (items 1, 2 and 4), and
hostile watchlist and report messages delivered straight to a running node
over mTLS (item 5).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.config import NodeConfig
from node.crypto import PAYLOAD_ALERT, digest
from node.ids import Country, peers_of
from node.message import encode
from node.wire import ewx_pb2 as pb
from tests.federation.test_hostile_matrix import deliver_as, identity_of, stored, wrap
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
        verified = ewx("audit", "verify", "--trust", str(tmp_path / "fed" / "federation.json"), "--json", *bundles)
        assert json.loads(verified.stdout)["errors"] == 0


# ---------------------------------------------------------------- hostile input (item 5)
def _payload(origin: Country, seq: int, msg_type: int, **body: Any) -> bytes:
    sent = datetime.now(UTC)
    alert = pb.Alert(
        schema_version=1,
        alert_id=f"{origin}-H-{seq}",
        origin=pb.Country.Value(origin),
        status=pb.ACTUAL,
        msg_type=msg_type,
        deliveries=[pb.Delivery(recipient=pb.Country.Value(p), seq=seq) for p in peers_of(origin)],
        **body,
    )
    alert.sent.FromDatetime(sent.replace(tzinfo=None))
    return encode(alert)


def _envelope(config: Path, payload: bytes) -> bytes:
    signer = NodeConfig.load(config).load_signers()["alert"]
    return encode(
        pb.SignedAlert(alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload))
    )


def _accept(version: int) -> pb.WatchlistVote:
    return pb.WatchlistVote(version=version, decision=pb.ACCEPT)


def _move(**overrides: Any) -> pb.PolicyMove:
    fields: dict[str, Any] = {
        "country": "CN",
        "measure": pb.EXPORT_LICENSING,
        "hs_codes": ["811292"],
        "hs_edition": pb.HS2022,
        "stage": pb.ANNOUNCED,
        "announced": pb.CalendarDate(year=2023, month=7, day=3),
        "source": pb.MISSION_REPORT,
    }
    fields.update(overrides)
    return pb.PolicyMove(**fields)


def test_hostile_watchlist_and_policy_messages_are_refused_and_store_nothing(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    kr = identity_of(fed["KR"])
    proposal = _payload(
        "KR",
        1,
        pb.WATCHLIST_PROPOSAL,
        watchlist=pb.WatchlistChange(
            version=1,
            hs_edition=pb.HS2022,
            add=[pb.WatchPair(hs_code="811292", country="CN", reason=pb.SUPPLY_CONCENTRATION)],
        ),
    )
    ref = pb.AlertRef(origin=pb.KR, alert_id="KR-H-1", digest=digest(proposal))

    async def scenario() -> None:
        async with running(fed["US"]) as nodes:
            us = nodes["US"].service
            ok = await deliver_as(fed["US"], kr, wrap(_envelope(fed["KR"], proposal)))
            assert ok.code == grpc.StatusCode.OK, ok
            jp = identity_of(fed["JP"])
            cases: dict[str, tuple[Country, bytes, grpc.StatusCode, str, str]] = {
                "a vote by the proposer on its own proposal": (
                    "KR",
                    _payload("KR", 2, pb.WATCHLIST_VOTE, references=[ref], vote=_accept(1)),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "schema_violation",
                    "another origin",
                ),
                "an acceptance for another version than the proposal's": (
                    "JP",
                    _payload("JP", 1, pb.WATCHLIST_VOTE, references=[ref], vote=_accept(2)),
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "watchlist_conflict",
                    "version",
                ),
                "a report with an unknown measure code": (
                    "KR",
                    _payload("KR", 2, pb.POLICY_REPORT, policy=_move(measure=42)),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "schema_violation",
                    "measure",
                ),
                "a report with a national 10-digit tariff line": (
                    "KR",
                    _payload("KR", 2, pb.POLICY_REPORT, policy=_move(hs_codes=["8112920010"])),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "schema_violation",
                    "hs_codes",
                ),
            }
            for name, (by, payload, code, reason, named) in cases.items():
                before = stored(us)
                who = kr if by == "KR" else jp
                outcome = await deliver_as(fed["US"], who, wrap(_envelope(fed[by], payload)))
                assert (outcome.code, outcome.reason) == (code, reason), (name, outcome.details)
                assert named in outcome.details, (name, outcome.details)
                assert stored(us) == before, name  # nothing stored, nothing receipted
            # The node goes on serving: the next message in KR's sequence is taken.
            report = _payload("KR", 2, pb.POLICY_REPORT, policy=_move())
            taken = await deliver_as(fed["US"], kr, wrap(_envelope(fed["KR"], report)))
            assert taken.code == grpc.StatusCode.OK, taken
            assert [r["alert_id"] for r in us.policy_reports()] == ["KR-H-2"]
            assert us.watchlist_state().versions[0].alert_id == "KR-H-1"

    asyncio.run(scenario())
