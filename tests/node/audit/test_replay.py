"""Replay of exported logs (node/audit/_replay.py, SPEC section 6): timelines, states, text, HTML, CLI.

One real exchange for the module (tests/support/audit_factories.py): an alert with two
ACKs (one relayed), a RESPONSE, a CONSULT, an UPDATE, a CANCEL of the new
version, an alert whose expiry passed before the export with an ERROR about
it, and an alert still active; and the same with the trilateral part after it
(three watchlist versions, superseded, in force and rejected, and two policy
reports) for the watchlist's history and the policy moves (issue 12).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from node.audit import (
    EVENT_KINDS,
    STATES,
    VERSION_STATES,
    Bundle,
    Finding,
    Replay,
    Report,
    VersionReplay,
    read_bundle,
    render_html,
    replay,
)
from node.cli import build_parser
from node.crypto import PAYLOAD_ALERT, digest
from node.ids import COUNTRIES
from node.message import Alert, alert_to_bytes, encode, timestamp
from node.trust import Trust
from node.wire import ewx_pb2 as pb
from tests.support.audit_factories import Scenario, build_scenario, rewrite

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def scn(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("replay") / "fed")


@pytest.fixture(scope="module")
def rep(scn: Scenario) -> Replay:
    return replay([scn.bundles[cc] for cc in COUNTRIES], trust=scn.trust)


def kinds(rep: Replay, alert_id: str) -> list[tuple[str, str]]:
    return [(e.kind, e.node) for e in rep.alert(alert_id).events]


def index_of(bundle: Bundle, alert_id: str) -> int:
    for index, data in enumerate(bundle.entries):
        entry = pb.LogEntry.FromString(data)
        if entry.kind != pb.RECEIPT_RECEIVED and pb.Alert.FromString(entry.alert.alert).alert_id == alert_id:
            return index
    raise LookupError(alert_id)


def ewx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


# ------------------------------------------------------------------ states
def test_the_audit_is_clean_and_every_alert_is_replayed(rep: Replay) -> None:
    assert rep.clean
    assert rep.verdict() == "VERDICT: clean (3 logs, 48 entries)"
    assert rep.nodes == ["KR", "US", "JP"]
    assert rep.left_out == []
    assert [(a.origin, a.alert_id, a.msg_type) for a in rep.alerts] == [
        ("KR", "KR-A1", "ALERT"),
        ("KR", "KR-A2", "UPDATE"),
        ("KR", "KR-E1", "ALERT"),
        ("US", "US-B1", "ALERT"),
    ]


def test_states(rep: Replay) -> None:
    states = {a.alert_id: a.state for a in rep.alerts}
    assert states == {"KR-A1": "updated", "KR-A2": "cancelled", "KR-E1": "expired", "US-B1": "active"}
    assert set(states.values()) <= set(STATES)
    a1, a2 = rep.alert("KR-A1"), rep.alert("KR-A2")
    assert a1.superseded_by == ["KR-A2"]
    assert a2.supersedes == "KR-A1"
    assert (a2.cancelled_by, a2.cancel_reason) == ("KR-X2", "SITUATION_RESOLVED")
    assert a2.severity == "EXTREME"
    assert rep.alert("KR-E1").expired
    assert not rep.alert("US-B1").expired


def test_acknowledgements_responses_consultations_errors(rep: Replay) -> None:
    a1 = rep.alert("KR-A1")
    assert a1.acknowledged_by == {"US": "RECEIVED", "JP": "UNDER_REVIEW"}
    assert a1.responded_by == ["US"]
    assert a1.consulted_by == ["JP"]
    assert a1.errors_by == {}
    assert rep.alert("KR-E1").errors_by == {"US": "NOT_UNDERSTOOD"}
    assert rep.alert("US-B1").acknowledged_by == {}


def test_deliveries_with_receiver_index_and_receipt(rep: Replay, scn: Scenario) -> None:
    a1 = rep.alert("KR-A1")
    assert a1.delivered_to == ["US", "JP"]
    us = a1.deliveries["US"]
    assert (us.seq, us.relayed_by, us.receiver_index) == (1, None, index_of(scn.bundles["US"], "KR-A1"))
    assert us.receipt_index == 1  # KR's second entry: US's receipt
    assert us.received_at is not None and us.received_at > a1.sent  # type: ignore[operator]
    b1 = rep.alert("US-B1")
    assert b1.delivered_to == ["KR"]
    assert list(b1.deliveries) == ["KR"]


def test_relayed_ack_is_shown_as_relayed(rep: Replay) -> None:
    at_us = [e for e in rep.alert("KR-A1").events if e.kind == "ACK" and e.node == "US" and e.actor == "JP"]
    assert len(at_us) == 1
    assert "relayed by KR" in at_us[0].detail
    assert at_us[0].message == "JP-ACK1"


def test_event_order_of_the_first_alert(rep: Replay) -> None:
    assert kinds(rep, "KR-A1") == [
        ("RAISED", "KR"),
        ("DELIVERED", "US"),
        ("RECEIPT", "KR"),
        ("DELIVERED", "JP"),
        ("RECEIPT", "KR"),
        ("ACK", "US"),  # US sends its ACK
        ("ACK", "KR"),  # ... KR receives it
        ("RECEIPT", "US"),
        ("ACK", "JP"),  # JP receives US's ACK
        ("RECEIPT", "US"),
        ("ACK", "JP"),  # JP sends its own ACK
        ("ACK", "KR"),
        ("RECEIPT", "JP"),
        ("ACK", "US"),  # relayed by KR
        ("RECEIPT", "JP"),
        ("RESPONSE", "US"),
        ("RESPONSE", "KR"),
        ("RECEIPT", "US"),
        ("RESPONSE", "JP"),
        ("RECEIPT", "US"),
        ("CONSULT", "JP"),
        ("CONSULT", "KR"),
        ("RECEIPT", "JP"),
        ("CONSULT", "US"),
        ("RECEIPT", "JP"),
        ("UPDATE", "KR"),
        ("UPDATE", "US"),
        ("UPDATE", "JP"),
    ]
    events = rep.alert("KR-A1").events
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert all(e.kind in EVENT_KINDS for a in rep.alerts for e in a.events)


def test_event_order_of_the_update_cancel_and_expiry(rep: Replay, scn: Scenario) -> None:
    assert kinds(rep, "KR-A2") == [
        ("UPDATE", "KR"),
        ("DELIVERED", "US"),
        ("RECEIPT", "KR"),
        ("DELIVERED", "JP"),
        ("RECEIPT", "KR"),
        ("CANCEL", "KR"),
        ("CANCEL", "US"),
        ("RECEIPT", "KR"),
        ("CANCEL", "JP"),
        ("RECEIPT", "KR"),
    ]
    cancel = rep.alert("KR-A2").events[5]
    assert (cancel.index, cancel.message, cancel.actor) == (
        index_of(scn.bundles["KR"], "KR-X2"),
        "KR-X2",
        "KR",
    )
    assert "SITUATION_RESOLVED" in cancel.detail
    e1 = rep.alert("KR-E1").events
    assert [e.kind for e in e1][-1] == "EXPIRED"
    assert e1[-1].index is None
    assert e1[-1].time == rep.alert("KR-E1").expires
    assert "ERROR" in [e.kind for e in e1]


def test_the_event_time_and_index_come_from_the_log(rep: Replay, scn: Scenario) -> None:
    raised = rep.alert("KR-A1").events[0]
    entry = pb.LogEntry.FromString(scn.bundles["KR"].entries[raised.index or 0])
    assert raised.index == 0
    assert raised.time == entry.logged_at.ToDatetime().replace(tzinfo=raised.time.tzinfo)


# ------------------------------------------------------------------ fewer logs, damaged logs
def test_one_log_replays_what_it_can_prove(scn: Scenario) -> None:
    r = replay([scn.bundles["US"]], trust=scn.trust)
    assert r.clean
    a1 = r.alert("KR-A1")
    assert a1.delivered_to == ["US"]  # JP's log and KR's receipts are not given
    assert a1.acknowledged_by == {"US": "RECEIVED", "JP": "UNDER_REVIEW"}  # JP's ACK was relayed to US
    assert a1.state == "updated"
    assert r.alert("KR-A2").state == "cancelled"  # US holds KR's signed CANCEL
    assert r.alert("US-B1").delivered_to == ["KR"]  # KR's receipt in US's log proves it


def test_a_forged_entry_moves_no_state(scn: Scenario, tmp_path: Path) -> None:
    entries = list(scn.bundles["JP"].entries)
    index = index_of(scn.bundles["JP"], "JP-ACK1")
    entry = pb.LogEntry.FromString(entries[index])
    alert = pb.Alert.FromString(entry.alert.alert)
    alert.reason = pb.ACTION_TAKEN  # the signature no longer covers these bytes
    entry.alert.alert = encode(alert)
    entries[index] = encode(entry)
    r = replay([read_bundle(rewrite(scn, tmp_path / "JP.ewxlog", "JP", entries))], trust=scn.trust)
    assert not r.clean
    assert ("JP", index, "bad_alert_signature") in [(f.node, f.index, f.kind) for f in r.report.findings]
    # JP's ACK is left out, and with it the receipts for an ACK this log no longer holds as sent.
    assert r.left_out == [("JP", index), ("JP", index + 1), ("JP", index + 2)]
    kinds_left = {(f.index, f.kind) for f in r.report.findings}
    assert {(index + 1, "receipt_mismatch"), (index + 2, "receipt_mismatch")} <= kinds_left
    assert r.alert("KR-A1").acknowledged_by == {"US": "RECEIVED"}
    assert "Findings:" in r.to_text()
    assert r.to_text().splitlines()[-1] == "VERDICT: 5 findings"  # and two sequence gaps at JP-C1


# ------------------------------------------------------------------ reports
def test_text_report(rep: Replay) -> None:
    text = rep.to_text()
    lines = text.splitlines()
    assert lines[0] == "EWX replay of 3 logs: KR (18 entries), US (17 entries), JP (13 entries)"
    assert lines[-1] == "VERDICT: clean (3 logs, 48 entries)"
    headings = [line for line in lines if re.match(r"^(ALERT|UPDATE) ", line)]
    assert headings == [
        "ALERT KR-A1 from KR: updated (superseded by KR-A2)",
        "UPDATE KR-A2 from KR: cancelled (SITUATION_RESOLVED, by KR-X2)",
        f"ALERT KR-E1 from KR: expired (at {rep.alert('KR-E1').to_json()['expires']})",
        "ALERT US-B1 from US: active",
    ]
    assert "  acknowledged by: US (RECEIVED), JP (UNDER_REVIEW)" in lines
    block = rep.alert("KR-A1").to_text()
    assert block in text
    times = [line.split()[0] for line in block.splitlines() if re.match(r"^  \d{4}-", line)]
    assert times == sorted(times)
    assert len(times) == len(rep.alert("KR-A1").events)
    assert re.search(
        r"KR #0 +RAISED +KR raised it to US \(seq 1\), JP \(seq 1\): SEVERE EXPORT_CONTROL", text
    )
    assert "delivered to US (seq 1), direct from KR" in text


def test_json_report(rep: Replay) -> None:
    data = json.loads(json.dumps(rep.to_json()))
    assert data["verdict"] == "clean"
    assert data["audit"]["verdict"] == "clean"
    by_id = {a["alert_id"]: a for a in data["alerts"]}
    assert {k: v["state"] for k, v in by_id.items()} == {
        "KR-A1": "updated",
        "KR-A2": "cancelled",
        "KR-E1": "expired",
        "US-B1": "active",
    }
    assert by_id["KR-A1"]["deliveries"]["US"]["direct"] is True
    assert by_id["KR-A1"]["events"][0]["kind"] == "RAISED"
    assert by_id["KR-A1"]["events"][0]["time"].endswith("Z")


def test_html_page(rep: Replay) -> None:
    page = render_html(rep)
    assert page.startswith("<!DOCTYPE html>")
    for a in rep.alerts:
        assert a.alert_id in page
    for cc in COUNTRIES:
        assert f"<th>{cc}</th>" in page
    assert "VERDICT: clean (3 logs, 48 entries)" in page
    assert 'class="ev k-raised"' in page and 'class="ev k-cancel"' in page and 'class="ev k-expired"' in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert "<link" not in page.lower() and "<img" not in page.lower() and "@import" not in page
    assert "Findings" not in page


def test_html_escapes_every_value_and_lists_findings(rep: Replay) -> None:
    evil = "<script>alert(1)</script> & \"quoted\" 'x'"
    report = Report(
        findings=[Finding(node="KR", index=3, kind="bad_alert_signature", detail=evil)],
        nodes=rep.report.nodes,
        entries=rep.report.entries,
        logs=rep.report.logs,
    )
    damaged = Replay(report=report, as_of=rep.as_of, nodes=rep.nodes, alerts=rep.alerts, left_out=[("KR", 3)])
    page = render_html(damaged)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot; &#x27;x&#x27;" in page
    assert "<h2>Findings</h2>" in page
    assert 'header class="findings"' in page
    assert "VERDICT: 1 finding" in page


def test_one_log_page_marks_the_missing_columns(scn: Scenario) -> None:
    page = render_html(replay([scn.bundles["KR"]], trust=scn.trust))
    assert "<th>KR</th>" in page
    assert '<th>US <span class="absent">(log not given)</span></th>' in page


# ------------------------------------------------------------------ CLI
def test_cli_help_mentions_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    for command, wanted in (
        ("replay", "--html"),
        ("prove", "--origin"),
        ("check-proof", "--trust"),
    ):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["audit", command, "--help"])
        assert exc.value.code == 0
        assert wanted in capsys.readouterr().out


def test_cli_replay_clean_writes_report_and_page(scn: Scenario, tmp_path: Path) -> None:
    page = tmp_path / "replay.html"
    logs = [str(scn.paths[cc]) for cc in COUNTRIES]
    result = ewx("audit", "replay", *logs, "--trust", str(scn.trust_path), "--html", str(page))
    assert result.returncode == 0, result.stderr
    expected = replay([read_bundle(scn.paths[cc]) for cc in COUNTRIES], trust=scn.trust).to_text()
    assert result.stdout == expected + "\n"
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_replay_findings_exit_1_with_json(scn: Scenario, tmp_path: Path) -> None:
    entries = list(scn.bundles["KR"].entries)
    entries[0] = entries[0][:-1] + bytes([entries[0][-1] ^ 1])
    damaged = rewrite(scn, tmp_path / "KR.ewxlog", "KR", entries)
    result = ewx(
        "audit", "replay", str(damaged), str(scn.paths["US"]), "--trust", str(scn.trust_path), "--json"
    )
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["verdict"] == "findings"
    assert {"node": "KR", "index": 0} in data["left_out"]


def test_cli_replay_unreadable_input_exit_2(scn: Scenario, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.ewxlog"
    garbage.write_bytes(b"not a bundle")
    result = ewx("audit", "replay", str(garbage), "--trust", str(scn.trust_path))
    assert result.returncode == 2
    assert "bad magic" in result.stderr
    missing = ewx("audit", "replay", str(tmp_path / "missing"), "--trust", str(scn.trust_path))
    assert missing.returncode == 2


# ------------------------------------------------------------------ the watchlist and policy moves (issue 12)
@pytest.fixture(scope="module")
def tri_scn(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("replay-trilateral") / "fed", trilateral=True)


@pytest.fixture(scope="module")
def tri(tri_scn: Scenario) -> Replay:
    return replay([tri_scn.bundles[cc] for cc in COUNTRIES], trust=tri_scn.trust)


def version(r: Replay, alert_id: str) -> VersionReplay:
    (found,) = [v for v in r.trilateral.versions if v.alert_id == alert_id]
    return found


def watch_kinds(v: VersionReplay, *wanted: str) -> list[tuple[str, str]]:
    return [(e.kind, e.node) for e in v.events if e.kind in wanted]


def test_trilateral_messages_make_no_alerts(tri: Replay) -> None:
    assert tri.clean
    assert [a.alert_id for a in tri.alerts] == ["KR-A1", "KR-A2", "KR-E1", "US-B1"]


def test_the_watchlist_history(tri: Replay, tri_scn: Scenario) -> None:
    ids = tri_scn.ids
    t = tri.trilateral
    assert t.complete
    assert [(v.version, v.alert_id, v.state) for v in t.versions] == [
        (1, ids["v1"], "superseded"),
        (2, ids["v2"], "in_force"),
        (3, ids["v3"], "rejected"),
    ]
    assert {v.state for v in t.versions} <= set(VERSION_STATES)
    v1, v2, v3 = t.versions
    assert v1.superseded_by == ids["v2"]
    assert v2.predecessor == f"KR {ids['v1']}"
    assert v1.signers == v2.signers == ["KR", "US", "JP"]
    assert v3.signers == ["US"] and v3.rejections == {"KR": "INSUFFICIENT_EVIDENCE"}
    assert [f"{p.hs_code}:{p.country}" for p in v3.remove] == ["282560:CN"]
    assert t.current.version == 2 and t.current.digest == v2.digest
    assert [f"{p.hs_code}:{p.country}" for p in t.current.pairs] == ["250410:CN", "282560:CN", "811292:CN"]
    assert t.current_line().startswith("version 2 in force (HS2022, since ")


def test_watchlist_events_proposed_voted_in_force_superseded(tri: Replay, tri_scn: Scenario) -> None:
    v1, v2, v3 = tri.trilateral.versions
    assert watch_kinds(v1, "PROPOSED", "ACCEPT", "REJECT") == [
        ("PROPOSED", "KR"),
        ("ACCEPT", "US"),  # US sends its ACCEPT
        ("ACCEPT", "KR"),  # ... KR and JP log it
        ("ACCEPT", "JP"),
        ("ACCEPT", "JP"),  # JP's own, the last signature
        ("ACCEPT", "KR"),
        ("ACCEPT", "US"),  # relayed by KR
    ]
    # Each node holds version 1 in force from the entry of the last signature in its log.
    in_force = [e for e in v1.events if e.kind == "IN_FORCE"]
    assert [(e.node, e.index) for e in in_force] == [
        (cc, index_of(tri_scn.bundles[cc], tri_scn.ids["v1_jp"])) for cc in ("JP", "KR", "US")
    ]
    relayed = [e for e in v1.events if e.kind == "ACCEPT" and e.node == "US" and e.actor == "JP"]
    assert "relayed by KR" in relayed[0].detail
    # ... and superseded where version 2 came into force.
    superseded = [(e.node, e.index) for e in v1.events if e.kind == "SUPERSEDED"]
    assert superseded == [(e.node, e.index) for e in v2.events if e.kind == "IN_FORCE"]
    assert len(superseded) == 3
    assert watch_kinds(v3, "PROPOSED", "REJECT", "IN_FORCE") == [
        ("PROPOSED", "US"),
        ("REJECT", "KR"),
        ("REJECT", "US"),
        ("REJECT", "JP"),
    ]
    assert "INSUFFICIENT_EVIDENCE" in next(e for e in v3.events if e.kind == "REJECT").detail
    receipts = [e for e in v1.events if e.kind == "RECEIPT"]
    assert len(receipts) == 6  # the proposal and the two ACCEPTs, each receipted by two peers
    for v in tri.trilateral.versions:
        assert [e.sort_key() for e in v.events] == sorted(e.sort_key() for e in v.events)
        assert all(e.kind in EVENT_KINDS for e in v.events)


def test_policy_moves(tri: Replay, tri_scn: Scenario) -> None:
    report, rumour = tri.trilateral.policy
    assert (report.origin, report.alert_id, report.state) == ("US", tri_scn.ids["report"], "reported")
    m = report.move
    assert (m.country, m.measure, m.hs_codes, m.stage) == (
        "CN",
        "EXPORT_LICENSING",
        ["282560", "811292"],
        "IN_FORCE",
    )
    assert (m.announced.isoformat(), m.effective and m.effective.isoformat()) == ("2023-07-03", "2023-08-01")
    assert report.watched == ["282560:CN", "811292:CN"]
    assert [(e.kind, e.node) for e in report.events] == [
        ("POLICY", "US"),
        ("DELIVERED", "KR"),
        ("RECEIPT", "US"),
        ("DELIVERED", "JP"),
        ("RECEIPT", "US"),
    ]
    assert (rumour.origin, rumour.move.stage, rumour.move.effective, rumour.watched) == (
        "JP",
        "RUMOURED",
        None,
        ["250410:CN"],
    )


def test_a_withdrawn_report(tri_scn: Scenario, tmp_path: Path) -> None:
    """A CANCEL by its origin that references a report withdraws it (a peer's, stored on receipt)."""
    kr = tri_scn.bundles["KR"]
    report_at = index_of(kr, tri_scn.ids["report"])
    report = pb.LogEntry.FromString(kr.entries[report_at])
    last = max(
        d.seq
        for data in kr.entries
        if (entry := pb.LogEntry.FromString(data)).kind == pb.ALERT_RECEIVED
        for alert in [pb.Alert.FromString(entry.alert.alert)]
        if alert.origin == pb.US
        for d in alert.deliveries
        if d.recipient == pb.KR
    )
    at = pb.LogEntry.FromString(kr.entries[-1]).logged_at.ToDatetime(tzinfo=UTC) + timedelta(seconds=1)
    cancel = alert_to_bytes(
        Alert.model_validate(
            {
                "schema_version": 1,
                "alert_id": "US-W-X1",
                "origin": "US",
                "sent": at,
                "status": "ACTUAL",
                "msg_type": "CANCEL",
                "deliveries": [{"recipient": "KR", "seq": last + 1}],
                "references": [
                    {"origin": "US", "alert_id": tri_scn.ids["report"], "digest": digest(report.alert.alert)}
                ],
                "reason": "ISSUED_IN_ERROR",
            }
        )
    )
    signer = tri_scn.signers["US"]["alert"]
    entry = pb.LogEntry(kind=pb.ALERT_RECEIVED, logged_at=timestamp(at), peer=pb.US)
    entry.alert.CopyFrom(
        pb.SignedAlert(alert=cancel, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, cancel))
    )
    entries = [*kr.entries, encode(entry)]
    r = replay([read_bundle(rewrite(tri_scn, tmp_path / "KR.ewxlog", "KR", entries))], trust=tri_scn.trust)
    (withdrawn,) = [p for p in r.trilateral.policy if p.alert_id == tri_scn.ids["report"]]
    assert (withdrawn.state, withdrawn.withdrawn_by, withdrawn.withdraw_reason) == (
        "withdrawn",
        "US-W-X1",
        "ISSUED_IN_ERROR",
    )
    assert withdrawn.events[-1].kind == "CANCEL"
    assert [a.alert_id for a in r.alerts] == ["KR-A1", "KR-A2", "KR-E1", "US-B1"]  # no phantom alert
    assert (
        f"POLICY_REPORT {tri_scn.ids['report']} from US: withdrawn (ISSUED_IN_ERROR, by US-W-X1)"
        in r.to_text()
    )


def test_one_log_holds_what_its_node_held_in_force(tri_scn: Scenario) -> None:
    r = replay([tri_scn.bundles["JP"]], trust=tri_scn.trust)
    assert not r.trilateral.complete
    assert r.trilateral.current.version == 2
    for v in r.trilateral.versions:
        assert {e.node for e in v.events if e.kind in ("IN_FORCE", "SUPERSEDED")} <= {"JP"}


def test_a_vote_that_does_not_verify_keeps_the_version_out_of_force_at_that_node(
    tri_scn: Scenario, tmp_path: Path
) -> None:
    jp = tri_scn.bundles["JP"]
    at = index_of(jp, tri_scn.ids["v1_us"])
    entries = list(jp.entries)
    entry = pb.LogEntry.FromString(entries[at])
    entry.alert.signature = bytes([entry.alert.signature[0] ^ 1]) + entry.alert.signature[1:]
    entries[at] = encode(entry)
    damaged = read_bundle(rewrite(tri_scn, tmp_path / "JP.ewxlog", "JP", entries))
    r = replay([tri_scn.bundles["KR"], tri_scn.bundles["US"], damaged], trust=tri_scn.trust)
    v1 = version(r, tri_scn.ids["v1"])
    assert v1.state == "superseded"  # KR's and US's logs hold US's valid ACCEPT
    assert [e.node for e in v1.events if e.kind == "IN_FORCE"] == ["KR", "US"]  # JP's log does not
    assert ("JP", at) in r.left_out
    assert "watchlist_unsigned_in_force" in {f.kind for f in r.report.findings}


def test_a_vote_on_a_proposal_no_log_holds_shows_an_unknown_version() -> None:
    goldens = REPO / "tests" / "goldens"
    r = replay(
        [read_bundle(goldens / "watchlist_vote_unknown_proposal" / f"{cc}.ewxlog") for cc in COUNTRIES],
        trust=Trust.load(goldens / "federation.json"),
    )
    unknown = [v for v in r.trilateral.versions if v.state == "unknown"]
    assert [(v.origin, v.alert_id, v.version) for v in unknown] == [("KR", "KR-W9", 2)]
    assert [(e.kind, e.node, e.message) for e in unknown[0].events] == [("ACCEPT", "JP", "JP-V9")]
    assert "unknown (only voted on" in unknown[0].state_line()
    assert not any(a.alert_id == "KR-W9" for a in r.alerts)


def test_trilateral_text_json_and_html(tri: Replay, tri_scn: Scenario) -> None:
    text = tri.to_text()
    assert "Watchlist: version 2 in force (HS2022, since" in text
    assert f"WATCHLIST v1 {tri_scn.ids['v1']} from KR: superseded (by {tri_scn.ids['v2']}" in text
    assert f"WATCHLIST v3 {tri_scn.ids['v3']} from US: rejected (KR: INSUFFICIENT_EVIDENCE)" in text
    assert (
        "CN EXPORT_LICENSING on 282560, 811292 (HS2022): IN_FORCE, announced 2023-07-03, "
        "effective 2023-08-01, source OFFICIAL_GAZETTE"
    ) in text
    assert "Policy moves: 2 reports" in text
    assert re.search(r"IN_FORCE +version 1 in force at JP", text)
    data = json.loads(json.dumps(tri.to_json()))
    assert data["watchlist"]["current"]["version"] == 2
    assert [v["state"] for v in data["watchlist"]["versions"]] == ["superseded", "in_force", "rejected"]
    assert data["watchlist"]["versions"][0]["superseded_by"] == tri_scn.ids["v2"]
    assert [p["measure"] for p in data["policy_reports"]] == ["EXPORT_LICENSING", "EXPORT_BAN"]
    assert data["policy_reports"][0]["hs_codes"] == ["282560", "811292"]
    assert data["policy_reports"][0]["announced"] == "2023-07-03"
    page = render_html(tri)
    assert "<h2>Watchlist</h2>" in page and "<h2>Policy moves</h2>" in page
    for kind in ("proposed", "accept", "reject", "in_force", "superseded", "policy"):
        assert f'class="ev k-{kind}"' in page, kind
    assert '<td class="s-in_force">' in page and '<td class="s-rejected">' in page
    assert "watchlist v2" in page and "EXPORT_BAN" in page
    assert "<script" not in page.lower()
    timeline = [e.kind for _, e in tri.timeline()]
    assert {"PROPOSED", "IN_FORCE", "POLICY"} <= set(timeline)
    assert set(timeline) <= set(EVENT_KINDS)


# ---------------------------------------------------------------- acknowledgement deadlines (issue 13)
def _statuses(rep: Replay) -> dict[tuple[str, str], str]:
    return {(d.recipient, d.alert_id): d.status for d in rep.acks}


def test_replay_reports_per_peer_acknowledgements_late_or_never(scn: Scenario, rep: Replay) -> None:
    statuses = _statuses(rep)  # default deadlines: SEVERE 60 minutes, EXTREME 15
    assert statuses[("US", "KR-A1")] == statuses[("JP", "KR-A1")] == "on_time"
    assert statuses[("KR", "US-B1")] == "overdue"  # addressed to KR only; never acknowledged, still open
    assert statuses[("US", "KR-A2")] == "not_due"  # cancelled seconds after, before its deadline
    assert statuses[("US", "KR-E1")] == "not_due"  # expired before its deadline
    assert [d.alert_id for d in rep.acks_by_peer()["KR"]["overdue"]] == ["US-B1"]
    text = rep.to_text()
    assert "Acknowledgement deadlines (EXTREME 15 min, SEVERE 60 min, MODERATE 1440 min)" in text
    assert "KR never acknowledged US/US-B1" in text
    data = rep.to_json()
    assert [d["alert_id"] for d in data["acknowledgements"]["KR"]["overdue"]] == ["US-B1"]
    assert "<h2>Acknowledgement deadlines</h2>" in render_html(rep)
    # A deadline of 0.01 minute: the scenario's acknowledgements, seconds after the alert, are late.
    strict = replay([scn.bundles[cc] for cc in COUNTRIES], trust=scn.trust, deadline_minutes={"SEVERE": 0.01})
    (late,) = [d for d in strict.acks if (d.recipient, d.alert_id) == ("US", "KR-A1")]
    assert late.status == "late" and late.late_by is not None and late.late_by.total_seconds() > 0
    assert f"US acknowledged KR/KR-A1 late by {late.late_by}" in strict.to_text()
    assert not replay([scn.bundles[cc] for cc in COUNTRIES], trust=scn.trust, deadline_minutes={}).acks


def test_replay_cli_takes_the_deadlines_and_refuses_bad_ones(scn: Scenario) -> None:
    logs = [str(scn.paths[cc]) for cc in COUNTRIES]
    done = ewx(
        "audit", "replay", *logs, "--trust", str(scn.trust_path), "--json", "--ack-deadlines", "SEVERE=0.01"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["acknowledgements"]["US"]["late"][0]["alert_id"] == "KR-A1"
    bad = ewx("audit", "replay", *logs, "--trust", str(scn.trust_path), "--ack-deadlines", "SEVERE=-1")
    assert bad.returncode == 2 and "argument --ack-deadlines" in bad.stderr and bad.stdout == ""
