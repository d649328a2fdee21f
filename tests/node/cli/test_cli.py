"""The real `ewx` CLI against three real `ewx serve` processes."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.local_nodes import NodeProcess, assign_free_ports
from node.audit import MAGIC
from tests.support.ports import next_port

pytestmark = pytest.mark.slow


def ewx(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: PLW1510 - the exit code is the point of most tests
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"ewx {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@contextlib.contextmanager
def cli_cluster(tmp_path: Path, **settings: Any) -> Iterator[dict[str, Path]]:
    """Three `ewx serve` processes on a federation made by `ewx pki init`; `settings` go into each node.toml."""
    fed = tmp_path / "fed"
    ewx("pki", "init", "--out", str(fed))
    configs = assign_free_ports(fed, port_source=next_port, **settings)
    nodes = {cc: NodeProcess.start(cc, path) for cc, path in configs.items()}
    try:
        for node in nodes.values():
            node.wait_ready()
        yield dict(configs)
    finally:
        for node in nodes.values():
            node.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Path]]:
    with cli_cluster(tmp_path) as configs:
        yield configs


def wait_until(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def listed(config: Path) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(ewx("alert", "list", "--config", str(config), "--json").stdout)["alerts"]


def test_raise_ack_list_status_export_and_audit(cluster: dict[str, Path], tmp_path: Path) -> None:
    raised = ewx(
        "alert",
        "raise",
        "--config",
        str(cluster["KR"]),
        "--hs",
        "8112.92,282560",
        "--category",
        "EXPORT_CONTROL",
        "--severity",
        "SEVERE",
        "--source-country",
        "CN",
        "--headline",
        "Export licensing for gallium and germanium",
    )
    alert_id = raised.stdout.strip()
    assert alert_id.startswith("KR-") and "\n" not in alert_id  # only the id on stdout

    us_view = wait_until(lambda: [a for a in listed(cluster["US"]) if a["alert_id"] == alert_id])
    assert us_view[0]["origin"] == "KR" and us_view[0]["direction"] == "received"

    ack_id = ewx("alert", "ack", alert_id, env={"EWX_CONFIG": str(cluster["US"])}).stdout.strip()
    assert ack_id.startswith("US-")
    kr_view = wait_until(
        lambda: [
            a for a in listed(cluster["KR"]) if a["alert_id"] == alert_id and a["acknowledged_by"] == ["US"]
        ]
    )
    assert {r for r, d in kr_view[0]["deliveries"].items() if d["delivered_at"]} == {"US", "JP"}

    status = json.loads(ewx("status", "--config", str(cluster["KR"]), "--json").stdout)
    assert status["peers"]["US"]["last_seq_sent"] == 1
    assert status["peers"]["US"]["last_seq_received"] == 1
    assert status["peers"]["JP"]["backlog"] == 0
    assert status["certificate"]["expiring_soon"] is False and status["certificate"]["days_left"] > 300

    # export while running, then audit all three logs
    wait_until(
        lambda: all(
            json.loads(ewx("status", "--config", str(c), "--json").stdout)["peers"][p]["backlog"] == 0
            for c in cluster.values()
            for p in ("KR", "US", "JP")
            if not str(c).endswith(f"/{p}/node.toml")
        )
    )
    logs = []
    for cc, config in cluster.items():
        out = tmp_path / f"{cc}.ewxlog"
        ewx("log", "export", "--config", str(config), "--out", str(out))
        assert out.read_bytes().startswith(MAGIC)
        logs.append(str(out))
    trust = str(cluster["KR"].parent.parent / "federation.json")
    verdict = ewx("audit", "verify", *logs, "--trust", trust, "--json")
    assert json.loads(verdict.stdout)["findings"] == []

    # one changed byte inside an entry of KR's log is found and named
    data = bytearray(Path(logs[0]).read_bytes())
    data[len(MAGIC) + 60] ^= 0x01
    Path(logs[0]).write_bytes(bytes(data))
    tampered = ewx("audit", "verify", *logs, "--trust", trust, "--json", check=False)
    assert tampered.returncode == 1
    findings = json.loads(tampered.stdout)["findings"]
    assert any(f["node"] == "KR" and f["index"] == 0 for f in findings), findings


def test_usage_errors_exit_2_and_refusals_exit_1(cluster: dict[str, Path]) -> None:
    bad_flag = ewx("alert", "raise", "--config", str(cluster["KR"]), "--severity", "HUGE", check=False)
    assert bad_flag.returncode == 2 and "invalid choice" in bad_flag.stderr
    bad_hs = ewx(
        "alert",
        "raise",
        "--config",
        str(cluster["KR"]),
        "--hs",
        "8112921000",
        "--category",
        "OTHER",
        "--severity",
        "MINOR",
        "--source-country",
        "CN",
        "--headline",
        "x",
        check=False,
    )
    assert bad_hs.returncode == 2
    assert "8112921000" in bad_hs.stderr and "4 or 6 digits" in bad_hs.stderr
    unknown = ewx("alert", "ack", "KR-NOPE", "--config", str(cluster["US"]), check=False)
    assert unknown.returncode == 1 and "KR-NOPE" in unknown.stderr
    # named in full, the reference goes straight to the node, which refuses it the same way
    named = ewx("alert", "ack", "KR-NOPE", "--origin", "KR", "--config", str(cluster["US"]), check=False)
    assert named.returncode == 1 and "no alert KR-NOPE from KR" in named.stderr
    no_config = ewx("status", check=False, env={"EWX_CONFIG": ""})
    assert no_config.returncode == 2 and "--config" in no_config.stderr


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    fed = tmp_path / "fed"
    ewx("pki", "init", "--out", str(fed), "--countries", "KR,US,JP")
    configs = assign_free_ports(fed, port_source=next_port)
    node = NodeProcess.start("KR", configs["KR"])
    node.wait_ready()
    node.process.send_signal(signal.SIGTERM)
    assert node.process.wait(timeout=15) == 0
    node.log_file.close()
    log = (configs["KR"].parent / "node.log").read_text()
    assert '"event": "node_stopped"' in log
    assert not (configs["KR"].parent / "data" / "operator.sock").exists()


def _command_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand the parser knows, found by walking it (none can be forgotten)."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            undescribed = [c.dest for c in action._choices_actions if not c.help]
            assert undescribed == [], f"no one-line help for: {' '.join(prefix)} {undescribed}"
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*prefix, name))


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import build_parser

    paths = list(_command_paths(build_parser()))
    assert ("pki", "rotate") in paths and ("pki", "sign") in paths and ("serve",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*path, "--help"])
        assert done.value.code == 0, path
        shown = capsys.readouterr().out
        assert shown.startswith(f"usage: ewx {' '.join(path)}".rstrip()), path
        assert "options:" in shown, path
    # And through the installed entry point, as an operator runs it.
    assert "usage: ewx" in ewx("--help").stdout


def test_pki_show_lists_what_a_node_trusts(tmp_path: Path) -> None:
    fed = tmp_path / "fed"
    ewx("pki", "init", "--out", str(fed))
    view = json.loads(ewx("pki", "show", "--config", str(fed / "KR" / "node.toml"), "--json").stdout)
    assert set(view["members"]) == {"KR", "US", "JP"}
    assert view["members"]["KR"]["trusted_by_this_node_for_tls"] is False
    assert view["members"]["US"]["trusted_by_this_node_for_tls"] is True
    for member in view["members"].values():
        assert sorted(k["purpose"] for k in member["keys"]) == ["alert", "log", "witness"]
        assert all(k["valid_now"] for k in member["keys"])
    text = ewx("pki", "show", "--trust", str(fed / "federation.json")).stdout
    assert "federation ewx-dev" in text and "KR-alert-" in text


def test_raise_fills_defaults_and_update_keeps_the_alerts_own_values() -> None:
    from gateway.cli import build_parser
    from node.cli import RAISE_DEFAULTS

    raised = build_parser().parse_args(
        [
            "alert",
            "raise",
            "--hs",
            "811292",
            "--category",
            "OTHER",
            "--severity",
            "MINOR",
            "--source-country",
            "CN",
            "--headline",
            "x",
        ]
    )
    assert {name: getattr(raised, name) for name in RAISE_DEFAULTS} == RAISE_DEFAULTS
    updated = build_parser().parse_args(["alert", "update", "KR-1"])
    assert all(getattr(updated, name) is None for name in RAISE_DEFAULTS)  # None: carried over unchanged


def test_alert_list_pages_and_filters_and_bad_flags_exit_2(federation: dict[str, Path]) -> None:
    """issue 10, item 7: a page at a time, with its cursor; every bad flag value named, exit 2."""
    import asyncio

    from tests.support.factories import alert_info, running

    config = str(federation["KR"])

    def rows(*flags: str) -> list[str]:
        lines = ewx("alert", "list", "--config", config, *flags).stdout.splitlines()
        if lines and lines[0] != "no alerts":
            assert lines[0].split()[:3] == ["ID", "BY", "TYPE"]
            assert sum(line.startswith("peers: + acknowledged") for line in lines) == 1  # the legend
            assert all(len(line) <= 80 for line in lines)  # fits an 80-column terminal
            lines = [line for line in lines[1:] if not line.startswith("peers: ")]
        return lines

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            service = nodes["KR"].service
            ids = [service.publish(msg_type="ALERT", info=alert_info()).alert.alert_id for _ in range(3)]
            cancel = service.publish(msg_type="CANCEL", reference=("KR", ids[0]), reason="ISSUED_IN_ERROR")

            first = await asyncio.to_thread(rows, "--limit", "2")
            assert [line.split()[0] for line in first[:2]] == ids[:2]
            assert first[2].startswith("more: ewx alert list --after ")
            cursor = first[2].split()[5]
            rest = await asyncio.to_thread(rows, "--after", cursor)
            assert [line.split()[0] for line in rest] == [ids[2], cancel.alert.alert_id]  # and no "more"

            page = json.loads(
                (
                    await asyncio.to_thread(
                        ewx, "alert", "list", "--config", config, "--json", "--limit", "2"
                    )
                ).stdout
            )
            assert [a["alert_id"] for a in page["alerts"]] == ids[:2]
            assert page["more"] is True and page["next"] == cursor

            cancelled = await asyncio.to_thread(rows, "--state", "cancelled")
            assert len(cancelled) == 1 and cancelled[0].split()[0] == ids[0] and " cancelled " in cancelled[0]
            assert await asyncio.to_thread(rows, "--origin", "us") == ["no alerts"]
            assert len(await asyncio.to_thread(rows, "--since", "1d")) == 4
            assert await asyncio.to_thread(rows, "--since", "2999-01-01T00:00:00Z") == ["no alerts"]

            for flag, value in [
                ("--limit", "0"),
                ("--limit", "1001"),
                ("--limit", "５"),
                ("--after", "abc"),
                ("--after", "-1"),
                ("--since", "yesterday"),
                ("--since", "99999999999d"),
                ("--since", "2026-01-01T00:00:00"),
                ("--state", "gone"),
                ("--origin", "XX"),
            ]:
                done = await asyncio.to_thread(
                    ewx, "alert", "list", "--config", config, flag, value, check=False
                )
                assert done.returncode == 2 and f"argument {flag}:" in done.stderr, (flag, value, done.stderr)
                assert done.stdout == ""

    asyncio.run(scenario())
