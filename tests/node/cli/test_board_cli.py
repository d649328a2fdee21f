"""`ewx board`, overdue acknowledgements in `status` and `alert list`, and `alert export --format cap`
(issue 13), run as an operator runs them against real nodes; and the deadline watch across restarts."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from node.config import NodeConfig
from node.pki import init_federation
from node.service import NodeService
from tests.node.cli.test_cli import ewx
from tests.support.factories import alert_info, alert_payload, envelope, make_federation, running, wait_for

XSD = Path(__file__).parents[1] / "situation" / "data" / "CAP-v1.2.xsd"
SCHEMA = xmlschema.XMLSchema10(str(XSD), allow="local")  # never the network

DEADLINE_MINUTES = 0.1
"""EXTREME alerts are to be acknowledged within 6 seconds: time enough for US on a busy machine, short for the test."""
HEADLINE = "Gallium export licences tightened"
OTHER_HEADLINE = "Graphite shipments delayed at ports"


def cap_valid(document: str | bytes) -> bool:
    data = document.encode("utf-8") if isinstance(document, str) else document
    SCHEMA.validate(io.BytesIO(data))  # raises, naming what is wrong
    return True


async def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ewx ...` in a worker thread, so the nodes on this event loop go on answering it."""
    return await asyncio.to_thread(ewx, *args, check=check)


def watch_board(config: Path, *, boards: int = 2, timeout: float = 30.0) -> tuple[int, str, str, float]:
    """`ewx board --watch --interval 1` with its output in a pipe (not a tty): read it until `boards`
    boards are out (and ~2.5 s at least), then Ctrl-C. Exit code, stdout, stderr, seconds watched."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "board", "--config", str(config), "--watch", "--interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None and process.stderr is not None
    chunks: list[bytes] = []
    fd = process.stdout.fileno()
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(fd, 4096), b"")), daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            out = b"".join(chunks)
            if out.count(b"\f") >= boards and time.monotonic() - started >= 2.5:
                break
            if process.poll() is not None:
                break
            time.sleep(0.05)
        watched = time.monotonic() - started
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    return code, b"".join(chunks).decode("utf-8"), process.stderr.read().decode("utf-8"), watched


@pytest.mark.slow
def test_board_status_list_and_cap_export_show_the_overdue_acknowledgement(tmp_path: Path) -> None:
    """KR raises an EXTREME alert to US and JP; US acknowledges it in time, JP never does."""
    configs = make_federation(
        tmp_path / "fed",
        outbox_retry_max_seconds=0.5,
        ack_deadline_minutes={"EXTREME": DEADLINE_MINUTES, "SEVERE": 60},
    )
    kr_config, jp_config = str(configs["KR"]), str(configs["JP"])

    async def scenario() -> None:
        async with running(configs["KR"], configs["US"], configs["JP"]) as nodes:
            kr, us, jp = nodes["KR"].service, nodes["US"].service, nodes["JP"].service
            published = kr.publish(
                msg_type="ALERT",
                info=alert_info(
                    severity="EXTREME",
                    headline=HEADLINE,
                    items=[
                        {"hs_code": "811292", "hs_edition": "HS2022"},
                        {"hs_code": "282590", "hs_edition": "HS2022"},
                    ],
                    source_countries=["CN"],
                ),
            )
            alert_id, sent = published.alert.alert_id, published.alert.sent
            key = f"KR/{alert_id}"
            await wait_for(lambda: us.store.alert("KR", alert_id) is not None, timeout=5)
            ack_id = us.publish(msg_type="ACK", reference=("KR", alert_id), reason="RECEIVED").alert.alert_id
            response_id = us.publish(
                msg_type="RESPONSE",
                reference=("KR", alert_id),
                response={"measures": ["STOCKPILE_RELEASE"], "assistance": "OFFERED"},
            ).alert.alert_id
            other_id = us.publish(  # MODERATE has no deadline here: nobody owes an ACK of it
                msg_type="ALERT",
                recipients=["KR"],
                info=alert_info(
                    severity="MODERATE",
                    category="LOGISTICS",
                    headline=OTHER_HEADLINE,
                    items=[{"hs_code": "250410", "hs_edition": "HS2022"}],
                ),
            ).alert.alert_id

            def kr_holds_everything() -> bool:
                listed = {a.alert_id: a for a in kr.list_alerts()}
                mine = listed.get(alert_id)
                return (
                    mine is not None
                    and mine.acknowledged_by == ("US",)
                    and all(d.delivered_at for d in mine.deliveries.values())
                    and {response_id, other_id} <= listed.keys()
                )

            await wait_for(kr_holds_everything, timeout=15)
            await wait_for(lambda: jp.store.alert("KR", alert_id) is not None, timeout=15)
            # past the deadline (measured from the alert's signed sent time)
            wait = (sent + timedelta(minutes=DEADLINE_MINUTES) - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(0.0, wait) + 0.5)

            html_file = tmp_path / "board.html"
            feed = tmp_path / "feed"
            feed.mkdir()
            (feed / "notes.txt").write_text("not a feed file\n")
            (feed / "JP-gone.xml").write_text("<old/>\n")  # a feed file of no active alert: stale
            watching = asyncio.create_task(asyncio.to_thread(watch_board, configs["KR"]))
            (
                text,
                as_json,
                with_html,
                status_text,
                status_json,
                listing,
                listing_json,
                jp_status,
                jp_status_json,
                us_status_json,
            ) = await asyncio.gather(
                run("board", "--config", kr_config),
                run("board", "--config", kr_config, "--json"),
                run("board", "--config", kr_config, "--html", str(html_file)),
                run("status", "--config", kr_config),
                run("status", "--config", kr_config, "--json"),
                run("alert", "list", "--config", kr_config),
                run("alert", "list", "--config", kr_config, "--json"),
                run("status", "--config", jp_config),
                run("status", "--config", jp_config, "--json"),
                run("status", "--config", str(configs["US"]), "--json"),
            )
            watched = await watching

            # ---- the text board: by HS code and source, US acknowledged, JP overdue
            lines = text.stdout.splitlines()
            assert lines[0].startswith("EWX situation at KR, ")
            assert lines[1].startswith("open alerts 2 (KR 1, US 1, JP 0); overdue acks 1; consultations 0")
            assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
            for heading in ("811292 from CN", "282590 from CN"):  # two items, one source: in both groups
                at = lines.index(heading)
                assert lines[at + 1].startswith(f"  EXTREME  {key}") and lines[at + 1].endswith(HEADLINE)
                assert lines[at + 2].startswith("    US ack; JP ACK OVERDUE "), lines[at + 2]
            at = lines.index("250410 from CN")
            assert lines[at + 1].startswith(f"  MODERATE US/{other_id}") and OTHER_HEADLINE in lines[at + 1]
            assert lines[at + 2] == "    KR* delivered"
            assert lines[at + 3].startswith("    our exposure: ")  # KR's own exposure to a peer alert
            overdue_lines = lines[lines.index("Overdue acknowledgements") + 1 :]
            assert overdue_lines[0].startswith("  JP  EXTREME  due ") and overdue_lines[0].endswith(f" {key}")
            assert f"  US  responded to {key} ({response_id})" in lines
            assert "Watchlist version 0" in lines and "  no watchlist in force" in lines

            # ---- --json: JP in `overdue`, US on time
            board = json.loads(as_json.stdout)
            assert [(d["recipient"], d["origin"], d["alert_id"], d["status"]) for d in board["overdue"]] == [
                ("JP", "KR", alert_id, "overdue")
            ]
            row = next(a for a in board["alerts"] if a["alert_id"] == alert_id)
            assert row["recipients"]["US"]["acknowledged"] == "RECEIVED"
            assert row["recipients"]["US"]["ack_status"] == "on_time"
            assert (
                row["recipients"]["JP"]["acknowledged"] is None
                and row["recipients"]["JP"]["delivered"] is True
            )
            assert row["recipients"]["US"]["responded"] is True and row["direction"] == "sent"
            assert {"hs_code": "811292", "country": "CN", "alerts": [key]} in board["groups"]
            assert board["open_by_origin"] == {"KR": 1, "US": 1, "JP": 0}

            # ---- --html FILE: the page, and the text board still on stdout
            page = html_file.read_text()
            assert HEADLINE in page and "JP ACK OVERDUE" in page and "<script" not in page.lower()
            assert with_html.stdout.startswith("EWX situation at KR")

            # ---- status: the overdue line for JP; JP's own status says it owes the ACK
            assert f"    JP OVERDUE ACKS (1): {key}" in status_text.stdout.splitlines()
            assert "US OVERDUE ACKS" not in status_text.stdout and "THIS NODE OWES" not in status_text.stdout
            status = json.loads(status_json.stdout)
            assert status["peers"]["JP"]["overdue_acks"] == [key]
            assert status["peers"]["US"]["overdue_acks"] == [] and status["overdue_acks"] == []
            assert f"  THIS NODE OWES ACKS (1): {key} (ewx alert ack ID)" in jp_status.stdout.splitlines()
            assert json.loads(jp_status_json.stdout)["overdue_acks"] == [key]
            assert json.loads(us_status_json.stdout)["overdue_acks"] == []  # US acknowledged in time

            # ---- alert list: + for US, ! for JP, 80 columns
            rows = listing.stdout.splitlines()
            assert rows[0].split()[:3] == ["ID", "BY", "TYPE"] and rows[-1].startswith(
                "peers: + acknowledged"
            )
            assert all(len(line) <= 80 for line in rows), [line for line in rows if len(line) > 80]
            mine = next(line for line in rows if line.startswith(alert_id))
            assert " US+ JP! " in mine and "EXTREME" in mine
            listed = {a["alert_id"]: a for a in json.loads(listing_json.stdout)["alerts"]}
            assert {d["recipient"]: d["status"] for d in listed[alert_id]["acks"]} == {
                "US": "on_time",
                "JP": "overdue",
            }
            assert listed[alert_id]["overdue"] == ["JP"]
            assert listed[other_id]["acks"] == []  # no deadline for MODERATE in this federation

            # ---- --watch in a pipe: boards one after the other, a form feed between them, Ctrl-C ends it
            code, out, err, seconds = watched
            assert code == 0, err
            assert seconds < 25, "fewer than two boards in time"
            boards = [b for b in out.split("\f\n") if b.strip()]
            assert len(boards) >= 2 and all(b.startswith("EWX situation at KR, ") for b in boards)
            assert all("JP ACK OVERDUE" in b for b in boards)
            assert "\x1b[" not in out  # no terminal: no redraw sequences

            # ---- bad flags: exit 2, naming the flag
            bad = await asyncio.gather(
                run("board", "--config", kr_config, "--watch", "--interval", "0", check=False),
                run("board", "--config", kr_config, "--watch", "--interval", "nan", check=False),
                run("board", "--config", kr_config, "--watch", "--json", check=False),
            )
            for done in bad[:2]:
                assert done.returncode == 2 and "argument --interval:" in done.stderr, done.stderr
                assert done.stdout == ""
            assert bad[2].returncode == 2 and "--watch" in bad[2].stderr and "--json" in bad[2].stderr
            assert bad[2].stdout == ""

            # ---- CAP 1.2: the alert, US's ACK, not the RESPONSE; the feed directory
            export = ("alert", "export", "--format", "cap", "--config", kr_config)
            (
                cap_alert,
                cap_ack,
                cap_response,
                first_feed,
                both,
                unknown,
                unknown_named,
            ) = await asyncio.gather(
                run(*export, alert_id),
                run(*export, ack_id, "--origin", "US"),
                run(*export, response_id, "--origin", "US", check=False),
                run(*export, "--all", "--out", str(feed)),
                run(*export, alert_id, "--all", "--out", str(tmp_path / "never"), check=False),
                run(*export, "KR-NOPE", check=False),
                run(*export, "KR-NOPE", "--origin", "KR", check=False),
            )
            assert cap_valid(cap_alert.stdout)
            assert f"<identifier>{alert_id}</identifier>" in cap_alert.stdout
            assert "<msgType>Alert</msgType>" in cap_alert.stdout and HEADLINE in cap_alert.stdout
            assert cap_valid(cap_ack.stdout)
            assert "<msgType>Ack</msgType>" in cap_ack.stdout and f",{alert_id}," in cap_ack.stdout
            assert cap_response.returncode == 1 and "CAP" in cap_response.stderr and cap_response.stdout == ""
            assert both.returncode == 2 and "--all" in both.stderr and not (tmp_path / "never").exists()
            assert unknown.returncode == 1 and "KR-NOPE" in unknown.stderr
            assert unknown_named.returncode == 1 and "KR-NOPE" in unknown_named.stderr

            files = {p.name for p in feed.iterdir()}
            assert files == {f"KR-{alert_id}.xml", f"US-{other_id}.xml", "notes.txt"}
            assert "wrote 2 CAP documents" in first_feed.stdout and "removed 1" in first_feed.stdout
            for name in files - {"notes.txt"}:
                assert cap_valid((feed / name).read_bytes())
            assert (feed / f"KR-{alert_id}.xml").read_text() == cap_alert.stdout  # the same document

            # ---- KR cancels: its feed file goes, the others stay; nobody owes an ACK any more
            kr.publish(msg_type="CANCEL", reference=("KR", alert_id), reason="SITUATION_RESOLVED")
            second_feed, after_cancel = await asyncio.gather(
                run(*export, "--all", "--out", str(feed)),
                run("status", "--config", kr_config, "--json"),
            )
            assert {p.name for p in feed.iterdir()} == {f"US-{other_id}.xml", "notes.txt"}
            assert "wrote 1 CAP documents" in second_feed.stdout and "removed 1" in second_feed.stdout
            assert (feed / "notes.txt").read_text() == "not a feed file\n"
            assert json.loads(after_cancel.stdout)["peers"]["JP"]["overdue_acks"] == []

    asyncio.run(scenario())


class Clock:
    """A clock the test sets."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_watch_deadlines_returns_each_overdue_ack_once_even_across_restarts(tmp_path: Path) -> None:
    """The default deadlines (EXTREME 15 min, SEVERE 60 min), on a clock the test moves."""
    init_federation(tmp_path / "fed")
    config = NodeConfig.load(tmp_path / "fed" / "KR" / "node.toml")
    start = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(start)

    def overdue(found: list[Any]) -> list[tuple[str, str, str, datetime]]:
        return sorted((d.alert_id, d.recipient, d.status, d.due) for d in found)

    service = NodeService.open(config, clock=clock)
    try:
        assert service.watch_deadlines() == []  # the first watch of a store starts from now
        first = service.publish(msg_type="ALERT", info=alert_info(severity="EXTREME")).alert.alert_id
        clock.now = start + timedelta(minutes=5)
        withdrawn = service.publish(msg_type="ALERT", info=alert_info(severity="EXTREME")).alert.alert_id
        clock.now = start + timedelta(minutes=10)
        service.publish(msg_type="CANCEL", reference=("KR", withdrawn), reason="ISSUED_IN_ERROR")
        assert service.watch_deadlines() == []  # nothing due yet

        clock.now = start + timedelta(minutes=16)
        due = start + timedelta(minutes=15)
        assert overdue(service.watch_deadlines()) == [
            (first, "JP", "overdue", due),
            (first, "US", "overdue", due),
        ]  # and not the cancelled one: closed before its deadline, it needs no ACK
        clock.now = start + timedelta(minutes=17)
        assert service.watch_deadlines() == []  # still overdue, but returned once already
        clock.now = start + timedelta(minutes=25)
        assert service.watch_deadlines() == []  # the cancelled one's deadline passed too: not due
    finally:
        service.close()

    service = NodeService.open(config, clock=clock)
    try:
        clock.now = start + timedelta(minutes=26)
        assert service.watch_deadlines() == []  # the restart does not repeat the first one
        second = service.publish(msg_type="ALERT", info=alert_info(severity="SEVERE")).alert.alert_id
        assert service.watch_deadlines() == []
    finally:
        service.close()

    clock.now = start + timedelta(minutes=26 + 61)  # SEVERE's hour passes while the node is down
    service = NodeService.open(config, clock=clock)
    try:
        found = service.watch_deadlines()
        assert overdue(found) == [
            (second, "JP", "overdue", start + timedelta(minutes=26 + 60)),
            (second, "US", "overdue", start + timedelta(minutes=26 + 60)),
        ]  # fell due while down: returned now, and only it
        assert service.watch_deadlines() == []
        # both are overdue still, as the board and status show them
        listed = {a.alert_id: a for a in service.list_alerts()}
        assert listed[first].overdue == ("US", "JP") and listed[second].overdue == ("US", "JP")
    finally:
        service.close()


def test_watch_deadlines_does_not_repeat_after_the_clock_steps_back(tmp_path: Path) -> None:
    init_federation(tmp_path / "fed")
    start = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(start)
    service = NodeService.open(NodeConfig.load(tmp_path / "fed" / "KR" / "node.toml"), clock=clock)
    try:
        assert service.watch_deadlines() == []
        service.publish(msg_type="ALERT", info=alert_info(severity="EXTREME"))
        clock.now = start + timedelta(minutes=16)
        assert len(service.watch_deadlines()) == 2  # US and JP
        clock.now = start + timedelta(minutes=14)  # an NTP step back, say
        assert service.watch_deadlines() == []
        clock.now = start + timedelta(minutes=17)
        assert service.watch_deadlines() == []  # "each returned once ever"
    finally:
        service.close()


def test_a_peer_alert_that_arrives_after_its_deadline_is_reported_overdue_once(tmp_path: Path) -> None:
    """Held up on the way, it reaches KR when KR's ACK is already late: the watch that
    follows reports it, though its deadline is older than that watch's window."""
    init_federation(tmp_path / "fed")
    config = NodeConfig.load(tmp_path / "fed" / "KR" / "node.toml")
    start = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(start)
    payload = alert_payload(
        "US",
        {"KR": 1},
        sent=start,
        alert_id="US-LATE-1",
        info=alert_info(severity="EXTREME", expires=start + timedelta(days=30), effective=None),
    )
    held_up = envelope(tmp_path / "fed" / "US" / "node.toml", payload)
    service = NodeService.open(config, clock=clock)
    try:
        assert service.watch_deadlines() == []
        clock.now = start + timedelta(minutes=10)
        assert service.watch_deadlines() == []
        clock.now = start + timedelta(minutes=20)  # KR's ACK was due at 15 minutes
        assert service.watch_deadlines() == []
        clock.now = start + timedelta(minutes=30)
        service.receive(held_up, peer="US", direct=True)
        clock.now = start + timedelta(minutes=31)
        found = service.watch_deadlines()
        assert [(d.alert_id, d.recipient, d.status, d.due) for d in found] == [
            ("US-LATE-1", "KR", "overdue", start + timedelta(minutes=15))
        ]
        clock.now = start + timedelta(minutes=32)
        assert service.watch_deadlines() == []  # once
    finally:
        service.close()
