"""Committed golden logs (tests/goldens/) audit to exactly their expected findings.

The goldens are three real exported logs (KR, US, JP) of a fixed scenario, and
one set per defect in which one of the three is damaged, named after the
defect; scripts/gen_goldens.py builds them byte-for-byte from fixed seeds and
writes, by hand from each defect, the error findings the audit must report
(tests/goldens/expected.json, described in tests/goldens/README.md). Here:
the intact set is clean, each tampered set yields exactly its findings and at
least its defect's own kind, the real CLI agrees, and the committed files have
not drifted from their generator.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.audit import KINDS, Report, read_bundle, verify_bundles
from node.ids import COUNTRIES
from node.trust import Trust

ROOT = Path(__file__).resolve().parents[3]
GOLDENS = ROOT / "tests" / "goldens"
TRUST_FILE = GOLDENS / "federation.json"
TRUST = Trust.load(TRUST_FILE)
EXPECTED: dict[str, list[list[Any]]] = json.loads((GOLDENS / "expected.json").read_text())
TAMPERED = [name for name in EXPECTED if name != "intact"]

REQUIRED: dict[str, list[set[str]]] = {
    "flipped_byte": [{"bad_alert_signature", "malformed_entry"}, {"root_mismatch"}],
    "dropped_entry": [{"sequence_gap", "sent_not_received"}],
    "swapped_entries": [{"sequence_reorder"}],
    "injected_entry": [{"received_not_sent", "bad_alert_signature"}],
    "forged_receipt": [{"bad_receipt_signature"}],
    "rewritten_tail": [{"not_append_only"}],
    "fork_shown_to_one_peer": [{"checkpoint_equivocation"}],
    "bad_cosignature": [{"bad_cosignature"}],
    "key_outside_validity": [{"expired_key"}],
    "watchlist_fork": [{"watchlist_fork"}],
    "watchlist_vote_unknown_proposal": [{"watchlist_vote_unknown_proposal"}],
    "watchlist_unsigned_in_force": [{"watchlist_unsigned_in_force"}, {"bad_alert_signature"}],
}
"""What each defect must show at the least: one kind out of every set."""

MISSED: dict[str, str] = {}
"""Sets whose findings the audit does not (yet) report, with what is missing;
their test is a strict xfail. Empty: the audit reports every golden exactly."""


def _logs(name: str) -> list[Path]:
    return [GOLDENS / name / f"{cc}.ewxlog" for cc in COUNTRIES]


def _audit(*paths: Path) -> Report:
    return verify_bundles(list(paths), trust=TRUST, workers=1)


def _order(finding: list[Any]) -> tuple[int, int, str]:
    node, index, kind = finding
    return (COUNTRIES.index(node), -1 if index is None else index, kind)


def _errors(findings: list[dict[str, Any]]) -> list[list[Any]]:
    """[node, index, kind] of the error findings, in expected.json's order."""
    rows = [[f["node"], f["index"], f["kind"]] for f in findings if f["severity"] == "error"]
    return sorted(rows, key=_order)


def _tampered_params() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=MISSED[name]))
        if name in MISSED
        else name
        for name in TAMPERED
    ]


# ------------------------------------------------------------------ the committed files
def test_every_golden_set_is_committed_and_specified() -> None:
    folders = {p.name for p in GOLDENS.iterdir() if p.is_dir()}
    assert folders == set(EXPECTED)
    assert set(TAMPERED) == set(REQUIRED)
    for name in EXPECTED:
        assert sorted(p.name for p in (GOLDENS / name).iterdir()) == sorted(p.name for p in _logs(name))
    for name, findings in EXPECTED.items():
        assert findings == sorted(findings, key=_order), name
        assert all(kind in KINDS for _, _, kind in findings), name


@pytest.mark.parametrize("name", TAMPERED)
def test_each_tampered_set_damages_exactly_one_log(name: str) -> None:
    changed = [
        cc
        for cc, path, intact in zip(COUNTRIES, _logs(name), _logs("intact"), strict=True)
        if path.read_bytes() != intact.read_bytes()
    ]
    assert len(changed) == 1
    assert (GOLDENS / name / f"{changed[0]}.ewxlog").stat().st_size < 8 * 1024


@pytest.mark.parametrize("name", TAMPERED)
def test_expected_findings_name_the_defect(name: str) -> None:
    kinds = {kind for _, _, kind in EXPECTED[name]}
    for alternatives in REQUIRED[name]:
        assert kinds & alternatives, f"{name}: expected.json lacks any of {sorted(alternatives)}"


# ------------------------------------------------------------------ the audit
def test_intact_set_is_clean() -> None:
    report = _audit(*_logs("intact"))
    assert report.findings == []
    assert report.clean
    assert report.nodes == list(COUNTRIES)
    assert all(log.checkpoint_verified for log in report.logs)
    # What was witnessed, in the report: each log's newest checkpoint, cosigned by both peers.
    text = report.to_text().splitlines()
    for log, line in zip(report.logs, text, strict=False):
        w = log.witnessing
        assert w.newest_size is not None and w.newest_root is not None
        assert w.cosigned_up_to == dict.fromkeys((c for c in COUNTRIES if c != log.node), w.newest_size)
        peers = ", ".join(f"{c} up to {w.newest_size}" for c in COUNTRIES if c != log.node)
        assert (
            line
            == f"{log.node}'s newest checkpoint: size {w.newest_size}, root {w.newest_root[:16]}; cosigned by {peers}"
        )
        json_view = report.to_json()["nodes"][log.node]["witnessed"]
        assert json_view["newest_checkpoint"] == {"size": w.newest_size, "root": w.newest_root}
    for path in _logs("intact"):
        assert _audit(path).findings == [], path.name


@pytest.mark.parametrize("name", _tampered_params())
def test_tampered_set_yields_exactly_its_findings(name: str) -> None:
    report = _audit(*_logs(name))
    found = _errors(report.to_json()["findings"])
    kinds = {kind for _, _, kind in found}
    for alternatives in REQUIRED[name]:
        assert kinds & alternatives, f"{name}: the audit reports none of {sorted(alternatives)}: {found}"
    assert found == EXPECTED[name]
    assert not report.clean


def test_flipped_byte_is_named_at_the_flipped_entry() -> None:
    """The signature finding sits at the entry whose byte was flipped, in the damaged log."""
    (node, index, _), *_ = [f for f in EXPECTED["flipped_byte"] if f[2] == "bad_alert_signature"]
    intact = (GOLDENS / "intact" / f"{node}.ewxlog").read_bytes()
    damaged = (GOLDENS / "flipped_byte" / f"{node}.ewxlog").read_bytes()
    assert len(intact) == len(damaged)
    assert sum(a != b for a, b in zip(intact, damaged, strict=True)) == 1
    before = read_bundle(GOLDENS / "intact" / f"{node}.ewxlog").entries
    after = read_bundle(GOLDENS / "flipped_byte" / f"{node}.ewxlog").entries
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [index]


def test_the_cli_reports_a_tampered_set() -> None:
    name = "rewritten_tail"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "audit",
            "verify",
            *map(str, _logs(name)),
            "--trust",
            str(TRUST_FILE),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "findings"
    assert _errors(report["findings"]) == EXPECTED[name]
    assert report["errors"] == len(EXPECTED[name])


# ------------------------------------------------------------------ drift
def test_goldens_match_their_generator() -> None:
    spec = importlib.util.spec_from_file_location("gen_goldens", ROOT / "scripts" / "gen_goldens.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen  # dataclasses look their module up while the script loads
    try:
        spec.loader.exec_module(gen)
        assert gen.drift() == [], "run: python scripts/gen_goldens.py"
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("name", ["intact", "rewritten_tail", "fork_shown_to_one_peer"])
def test_each_log_is_hashed_once_for_its_root_its_history_and_what_peers_witnessed(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three passes over a million entries were ~7 s of the auditor's CPU: the roots the
    # checkpoint checks compare are taken in the one pass that hashes the tree.
    import node.audit._checkpoints as checkpoints

    bundles = [read_bundle(p) for p in _logs(name)]
    assert any(b.history for b in bundles) and any(b.witnessed for b in bundles)
    hashed = 0
    real = checkpoints.leaf_hash

    def counted(entry: bytes) -> bytes:
        nonlocal hashed
        hashed += 1
        return real(entry)

    monkeypatch.setattr(checkpoints, "leaf_hash", counted)
    report = verify_bundles(_logs(name), trust=TRUST)
    assert hashed == sum(len(b.entries) for b in bundles)
    assert _errors([f.to_json() for f in report.findings]) == sorted(EXPECTED[name], key=_order)
