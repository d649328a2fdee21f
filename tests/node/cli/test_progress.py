"""Progress on the long commands (issue 14 item 5): the callbacks of the pure code, and the bar.

The pure functions (audit, replay, bundle reading, export, ingest) are told
units done since the last call: here they must sum to the whole, log by log.
The bar itself is drawn on standard error only when it is a terminal and
--quiet was not given: checked on the real `ewx audit verify`, once with
standard error a pipe, once a pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import node.audit._bundle as bundle_module
import node.audit._replay as replay_module
import node.audit._verify as verify_module
import node.ews.ingest as ingest_module
import node.service._export as export_module
from node.audit import read_bundle, replay, verify_loaded
from node.cli._progress import Bar
from node.config import NodeConfig
from node.ews.ingest import ingest_file
from node.ews.store import EwsStore
from node.ids import COUNTRIES
from node.service import export_bundle
from tests.support.audit_factories import Scenario, build_scenario
from tests.support.ews_factories import FLOW_HEADER, flow_rows, write_csv


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("progress"))


def _cumulative(calls: list[int]) -> list[int]:
    out, total = [], 0
    for n in calls:
        total += n
        out.append(total)
    return out


def _sizes(scenario: Scenario) -> list[int]:
    return [len(scenario.bundles[cc].entries) for cc in COUNTRIES]


@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "pool"])
def test_the_audit_tells_every_entry_once_log_by_log(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    monkeypatch.setattr(verify_module, "PROGRESS_EVERY", 4)
    bundles = [scenario.bundles[cc] for cc in ("JP", "KR", "US")]  # taken in the federation's order anyway
    calls: list[int] = []
    options = {"workers": 2, "min_parallel": 1} if parallel else {"workers": 1}
    report = verify_loaded(bundles, trust=scenario.trust, progress=calls.append, **options)
    assert all(n > 0 for n in calls) and sum(calls) == sum(_sizes(scenario)) == report.entries
    assert report.to_json() == verify_loaded(bundles, trust=scenario.trust, **options).to_json()


def test_entries_are_told_once_their_checks_are_verified() -> None:
    calls: list[int] = []
    told = verify_module._Progress(calls.append)
    told.mark(0, 0)
    told.mark(4, 3)  # 4 entries decoded, 3 checks added
    told.mark(8, 7)
    assert calls == []
    told.ready(2)
    assert calls == []
    told.ready(3)
    assert calls == [4]
    told.log_done(10, 7)  # the log's last 2 entries need no new check
    assert calls == [4]
    told.ready(7)
    assert calls == [4, 6]
    told.mark(3, 7)  # the next log: its first entries share checks already verified
    assert calls == [4, 6, 3]


def test_the_replay_tells_every_entry_twice_audited_then_replayed(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_module, "PROGRESS_EVERY", 5)
    monkeypatch.setattr(replay_module, "PROGRESS_EVERY", 5)
    bundles = list(scenario.bundles.values())
    calls: list[int] = []
    result = replay(bundles, trust=scenario.trust, progress=calls.append)
    sizes = _sizes(scenario)
    total = sum(sizes)
    assert all(n > 0 for n in calls) and sum(calls) == 2 * total
    assert {total + sizes[0], total + sizes[0] + sizes[1]} <= set(_cumulative(calls))
    assert result.to_json() == replay(bundles, trust=scenario.trust).to_json()


def test_reading_a_bundle_tells_its_bytes(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_module, "PROGRESS_EVERY", 4)
    path = scenario.paths["KR"]
    calls: list[int] = []
    assert read_bundle(path, progress=calls.append) == scenario.bundles["KR"]
    assert len(calls) > 1 and sum(calls) == path.stat().st_size


def test_the_export_tells_its_size_then_every_entry_written(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(export_module, "PROGRESS_EVERY", 4)
    config = NodeConfig.load(scenario.root / "KR" / "node.toml")
    sizes: list[int] = []
    calls: list[int] = []
    size = export_bundle(config, tmp_path / "KR.ewxlog", progress=calls.append, size_known=sizes.append)
    assert sizes == [size] and sum(calls) == size > 4 and max(calls) == 4
    assert len(read_bundle(tmp_path / "KR.ewxlog").entries) == size


def test_an_ingest_tells_the_bytes_of_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ews").mkdir()
    store = EwsStore.open(tmp_path / "ews")
    try:
        csv = write_csv(tmp_path / "flows.csv", FLOW_HEADER, flow_rows())
        calls: list[int] = []
        report = ingest_file(store, csv, progress=calls.append)
        assert report.added == len(flow_rows()) and sum(calls) == csv.stat().st_size
        assert store.db.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)

        monkeypatch.setattr(ingest_module, "PROGRESS_EVERY_LINES", 10)
        header = FLOW_HEADER.split(",")
        lines = [json.dumps(dict(zip(header, row.split(","), strict=True))) for row in flow_rows(seed=3)]
        jsonl = tmp_path / "flows.jsonl"
        jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
        calls.clear()
        ingest_file(store, jsonl, progress=calls.append)
        assert len(calls) > 1 and sum(calls) == jsonl.stat().st_size
    finally:
        store.close()


def test_the_bar_names_the_stage_its_count_has_reached() -> None:
    from tqdm import tqdm

    out = io.StringIO()
    drawn = tqdm(total=10, file=out, mininterval=0)
    bar = Bar(drawn, [("audit KR", 4), ("audit US", 6)], "cross-check")
    assert drawn.desc == "audit KR"
    bar(3)
    assert drawn.desc == "audit KR"
    bar(1)
    assert drawn.desc == "audit US"
    bar(6)
    assert drawn.desc == "cross-check" and drawn.n == 10
    drawn.close()
    later = tqdm(total=None, file=out, mininterval=0)
    unknown = Bar(later, [], "check and store")
    unknown(5)
    unknown.set_total(5)
    assert later.total == 5
    later.close()


# ------------------------------------------------------------------ the real commands
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_and_ingest_draw_on_standard_error_unless_quiet(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    monkeypatch.setenv("EWX_PROGRESS_DELAY", "0")
    config = str(scenario.root / "KR" / "node.toml")
    csv = write_csv(tmp_path / "flows.csv", FLOW_HEADER, flow_rows())
    for quiet in (False, True):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        more = ["--quiet"] if quiet else []
        out = str(tmp_path / f"KR-{quiet}.ewxlog")
        assert main(["log", "export", "--config", config, "--out", out, *more]) == 0
        assert main(["ews", "ingest", str(csv), "--config", config, "--json", *more]) == 0
        printed = capsys.readouterr().out
        assert printed.startswith("exported ") and json.loads(printed[printed.index("[") :])
        drawn = terminal.getvalue()
        if quiet:
            assert drawn == ""
        else:
            assert "export" in drawn and "read flows.csv" in drawn and "check and store flows.csv" in drawn


def _verify(scenario: Scenario, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gateway",
        "audit",
        "verify",
        *(str(scenario.paths[cc]) for cc in COUNTRIES),
        "--trust",
        str(scenario.trust_path),
        "--json",
        *extra,
    ]


_ENV = {**os.environ, "EWX_PROGRESS_DELAY": "0"}


def _on_a_terminal(argv: list[str], tmp_path: Path) -> tuple[int, str, bytes]:
    """Run `argv` with standard error a pseudo-terminal (100 columns): exit code, stdout, what the terminal got."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with (tmp_path / "stdout").open("w+", encoding="utf-8") as stdout:
        process = subprocess.Popen(argv, stdout=stdout, stderr=slave, stdin=subprocess.DEVNULL, env=_ENV)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: the child closed its side
                        break
                    if not chunk:
                        break
                    seen += chunk
                elif process.poll() is not None:
                    break
            code = process.wait(timeout=60)
        finally:
            os.close(master)
            if process.poll() is None:
                process.kill()
        stdout.seek(0)
        return code, stdout.read(), seen


def test_no_bar_when_standard_error_is_not_a_terminal(scenario: Scenario) -> None:
    result = subprocess.run(
        _verify(scenario), check=False, capture_output=True, text=True, timeout=60, env=_ENV
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["clean"] is True


def test_a_bar_on_a_terminal_and_none_with_quiet(scenario: Scenario, tmp_path: Path) -> None:
    code, stdout, terminal = _on_a_terminal(_verify(scenario), tmp_path)
    assert code == 0
    assert json.loads(stdout)["entries"] == sum(_sizes(scenario))  # standard output is the report alone
    text = terminal.decode("utf-8", errors="replace")
    assert "\r" in text and "read KR.ewxlog" in text and "audit KR" in text and " entries" in text
    assert "cross-check" in text  # drawn as the count fills, though no update follows

    code, stdout, terminal = _on_a_terminal(_verify(scenario, "--quiet"), tmp_path)
    assert code == 0 and json.loads(stdout)["clean"] is True
    assert terminal == b""
