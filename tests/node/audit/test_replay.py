"""Replay of exported logs (node/audit/_replay.py, SPEC section 6): timelines, states, text, HTML, CLI.

One real exchange for the module (tests/support/audit_factories.py): an alert with two
ACKs (one relayed), a RESPONSE, a CONSULT, an UPDATE, a CANCEL of the new
version, an alert whose expiry passed before the export with an ERROR about
it, and an alert still active.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from node.audit import EVENT_KINDS, STATES, Bundle, Finding, Replay, Report, read_bundle, render_html, replay
from node.cli import build_parser
from node.ids import COUNTRIES
from node.message import encode
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
