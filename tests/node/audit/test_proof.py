"""Self-contained inclusion proofs (node/audit/_proof.py, C2SP tlog-proof): round trips and tampering."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.audit import DEFECTS, HEADER, Bundle, check_proof, parse_proof, prove, read_bundle
from node.crypto import (
    Checkpoint,
    inclusion_proof,
    leaf_hash,
    parse_checkpoint,
    parse_signed_note,
    sign_checkpoint,
)
from node.errors import ProofError
from node.message import encode
from node.trust import log_origin
from node.wire import ewx_pb2 as pb
from tests.support.audit_factories import Scenario, build_scenario, rewrite, signed_checkpoint, with_history

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def scn(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("proof") / "fed")


def index_of(bundle: Bundle, alert_id: str) -> int:
    for index, data in enumerate(bundle.entries):
        entry = pb.LogEntry.FromString(data)
        if entry.kind != pb.RECEIPT_RECEIVED and pb.Alert.FromString(entry.alert.alert).alert_id == alert_id:
            return index
    raise LookupError(alert_id)


def defect(text: str, scn: Scenario, **kwargs: Any) -> str:
    with pytest.raises(ProofError) as exc:
        check_proof(text, trust=scn.trust, **kwargs)
    assert exc.value.defect in DEFECTS
    assert str(exc.value).startswith(exc.value.defect + ": ")
    return exc.value.defect


def reassemble(entry: bytes, index: int, proof: list[bytes], checkpoint: str) -> str:
    lines = [HEADER, "extra " + base64.b64encode(entry).decode(), f"index {index}"]
    lines += [base64.b64encode(h).decode() for h in proof]
    return "\n".join(lines) + "\n\n" + checkpoint


def ewx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


# ------------------------------------------------------------------ round trips
def test_proof_of_a_sent_alert_round_trips(scn: Scenario) -> None:
    bundle = scn.bundles["KR"]
    text = prove(bundle, "KR-A1")
    result = check_proof(text, trust=scn.trust)
    assert (result.node, result.log_origin, result.index, result.size) == ("KR", log_origin("KR"), 0, 18)
    assert (result.kind, result.origin, result.alert_id, result.msg_type) == (
        "ALERT_SENT",
        "KR",
        "KR-A1",
        "ALERT",
    )
    assert result.peer is None
    assert result.cosigned_by == {}
    assert result.log_key_id.startswith("KR-log-")
    assert result.alert_key_id.startswith("KR-alert-")
    assert "VALID: KR ALERT KR-A1 is entry #0 of KR's log" in result.to_text()
    assert json.loads(json.dumps(result.to_json()))["valid"] is True


def test_proof_of_a_received_alert_round_trips(scn: Scenario) -> None:
    bundle = scn.bundles["US"]
    text = prove(bundle, "JP-ACK1", origin="JP")
    result = check_proof(text, trust=scn.trust)
    assert (result.node, result.kind, result.peer, result.origin) == ("US", "ALERT_RECEIVED", "KR", "JP")
    assert result.index == index_of(bundle, "JP-ACK1")


def test_proof_text_follows_tlog_proof(scn: Scenario) -> None:
    bundle = scn.bundles["KR"]
    index = index_of(bundle, "KR-E1")
    text = prove(bundle, "KR-E1")
    head, checkpoint = text.split("\n\n", 1)
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "extra " + base64.b64encode(bundle.entries[index]).decode()
    assert lines[2] == f"index {index}"
    hashes = [leaf_hash(e) for e in bundle.entries]
    assert lines[3:] == [base64.b64encode(h).decode() for h in inclusion_proof(index, hashes)]
    assert checkpoint == bundle.checkpoint
    assert parse_proof(text) == (bundle.entries[index], index, inclusion_proof(index, hashes), checkpoint)


def test_prove_picks_the_latest_cosigned_history_checkpoint_covering_the_entry(scn: Scenario) -> None:
    bundle = scn.bundles["KR"]
    index = index_of(bundle, "KR-A2")  # 7
    entries = list(bundle.entries)
    too_small = signed_checkpoint(scn, "KR", entries, size=index, cosigners=("US", "JP"))
    covering = signed_checkpoint(scn, "KR", entries, size=index + 2, cosigners=("US", "JP"))
    later = signed_checkpoint(scn, "KR", entries, size=index + 4, cosigners=("US",))
    uncosigned = signed_checkpoint(scn, "KR", entries, size=index + 6)
    history = [too_small, covering, later, uncosigned]
    text = prove(with_history(bundle, history), "KR-A2")
    assert text.endswith("\n\n" + later)
    result = check_proof(text, trust=scn.trust)
    assert result.size == index + 4
    assert list(result.cosigned_by) == ["US"]
    assert result.cosigned_by["US"].timestamp() == int(scn.exported_at.timestamp())
    text = prove(with_history(bundle, [too_small, covering]), "KR-A2")
    assert check_proof(text, trust=scn.trust, min_cosigners=2).cosigned_by.keys() == {"US", "JP"}
    # Nothing cosigned covers the entry: the export checkpoint.
    text = prove(with_history(bundle, [too_small, uncosigned]), "KR-A2")
    assert text.endswith("\n\n" + bundle.checkpoint)
    assert defect(text, scn, min_cosigners=1) == "too_few_cosignatures"


def test_prove_refuses_an_unknown_alert(scn: Scenario) -> None:
    with pytest.raises(ProofError) as exc:
        prove(scn.bundles["KR"], "NO-SUCH")
    assert exc.value.defect == "not_found"
    with pytest.raises(ProofError):
        prove(scn.bundles["JP"], "US-B1")  # never addressed to JP
    with pytest.raises(ProofError):
        prove(scn.bundles["KR"], "KR-A1", origin="US")
    assert not issubclass(ProofError, ValueError)  # one error tree: node.errors (issue 11, item 3)


# ------------------------------------------------------------------ tampering
@pytest.fixture(scope="module")
def good(scn: Scenario) -> tuple[bytes, int, list[bytes], str]:
    return parse_proof(prove(scn.bundles["KR"], "KR-A2"))


def test_flipped_entry_byte(scn: Scenario, good: tuple[bytes, int, list[bytes], str]) -> None:
    entry, index, proof, checkpoint = good
    for position in (0, len(entry) // 2, len(entry) - 1):
        flipped = bytearray(entry)
        flipped[position] ^= 0x01
        assert defect(reassemble(bytes(flipped), index, proof, checkpoint), scn) == "bad_inclusion"


def test_wrong_index(scn: Scenario, good: tuple[bytes, int, list[bytes], str]) -> None:
    entry, index, proof, checkpoint = good
    for wrong in (index - 1, index + 1, 18, 10**6):
        assert defect(reassemble(entry, wrong, proof, checkpoint), scn) == "bad_inclusion"


def test_truncated_or_padded_proof(scn: Scenario, good: tuple[bytes, int, list[bytes], str]) -> None:
    entry, index, proof, checkpoint = good
    assert defect(reassemble(entry, index, proof[:-1], checkpoint), scn) == "bad_inclusion"
    assert defect(reassemble(entry, index, [], checkpoint), scn) == "bad_inclusion"
    assert defect(reassemble(entry, index, [*proof, proof[0]], checkpoint), scn) == "bad_inclusion"
    swapped = [proof[1], proof[0], *proof[2:]]
    assert defect(reassemble(entry, index, swapped, checkpoint), scn) == "bad_inclusion"


def test_checkpoint_signed_by_another_key(scn: Scenario, good: tuple[bytes, int, list[bytes], str]) -> None:
    entry, index, proof, checkpoint = good
    cp = parse_checkpoint(parse_signed_note(checkpoint).body)
    origin = log_origin("KR")
    for key in (
        Ed25519PrivateKey.generate(),
        scn.signers["US"]["log"].private_key,
        scn.signers["KR"]["alert"].private_key,
    ):
        forged = sign_checkpoint(cp, name=origin, private_key=key)
        assert defect(reassemble(entry, index, proof, forged), scn) == "bad_checkpoint_signature"


def test_proof_against_another_logs_checkpoint(
    scn: Scenario, good: tuple[bytes, int, list[bytes], str]
) -> None:
    entry, index, proof, _ = good
    for other in ("US", "JP"):
        assert defect(reassemble(entry, index, proof, scn.bundles[other].checkpoint), scn) == "bad_inclusion"


def test_a_tampered_cosignature(scn: Scenario) -> None:
    bundle = scn.bundles["KR"]
    note = signed_checkpoint(scn, "KR", list(bundle.entries), cosigners=("US", "JP"))
    text = prove(with_history(bundle, [note]), "KR-A1")
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    name, sig = last.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 0x01
    tampered = text.replace(last, f"{name} {base64.b64encode(bytes(raw)).decode()}")
    assert defect(tampered, scn) == "bad_cosignature"


def test_malformed_texts(scn: Scenario, good: tuple[bytes, int, list[bytes], str]) -> None:
    entry, index, proof, checkpoint = good
    text = reassemble(entry, index, proof, checkpoint)
    assert defect("", scn) == "malformed"
    assert defect(text.replace(HEADER, "c2sp.org/tlog-proof@v2"), scn) == "malformed"
    assert defect(text.replace(f"index {index}", f"index 0{index}"), scn) == "malformed"
    assert defect(text.split("\n", 2)[0] + "\n" + text.split("\n", 2)[2], scn) == "no_entry"
    assert defect(text.replace("extra ", "extra !"), scn) == "malformed"
    assert defect(text.split("\n\n")[0], scn) == "malformed"
    assert defect(reassemble(entry, index, proof, "not a note\n"), scn) == "bad_checkpoint"
    assert defect(reassemble(entry, index, proof, "not\n\na note\n"), scn) == "bad_checkpoint"


def test_checkpoint_of_a_log_outside_the_federation(
    scn: Scenario, good: tuple[bytes, int, list[bytes], str]
) -> None:
    entry, index, proof, checkpoint = good
    cp = parse_checkpoint(parse_signed_note(checkpoint).body)
    foreign = Checkpoint(origin="ewx.cn.node/log", size=cp.size, root_hash=cp.root_hash)
    note = sign_checkpoint(foreign, name=foreign.origin, private_key=Ed25519PrivateKey.generate())
    assert defect(reassemble(entry, index, proof, note), scn) == "unknown_log"


def _forged_log(scn: Scenario, tmp_path: Path, change: Any) -> Bundle:
    """KR's log with one entry changed by `change`, under a valid KR checkpoint over the result."""
    entries = list(scn.bundles["KR"].entries)
    index = index_of(scn.bundles["KR"], "KR-A1")
    entries[index] = change(pb.LogEntry.FromString(entries[index]))
    return read_bundle(rewrite(scn, tmp_path / "KR.ewxlog", "KR", entries))


def test_an_entry_whose_alert_signature_fails(scn: Scenario, tmp_path: Path) -> None:
    def resign_nothing(entry: pb.LogEntry) -> bytes:
        alert = pb.Alert.FromString(entry.alert.alert)
        alert.status = pb.EXERCISE
        entry.alert.alert = encode(alert)
        return encode(entry)

    bundle = _forged_log(scn, tmp_path, resign_nothing)
    assert defect(prove(bundle, "KR-A1"), scn) == "bad_alert_signature"


def test_an_entry_in_the_wrong_log(scn: Scenario, tmp_path: Path) -> None:
    def as_received(entry: pb.LogEntry) -> bytes:
        entry.kind = pb.ALERT_RECEIVED
        entry.peer = pb.US
        return encode(entry)

    bundle = _forged_log(scn, tmp_path, as_received)
    assert defect(prove(bundle, "KR-A1"), scn) == "misattributed"


def test_an_entry_by_an_unknown_key(scn: Scenario, tmp_path: Path) -> None:
    def other_key(entry: pb.LogEntry) -> bytes:
        entry.alert.key_id = "KR-alert-0000000000000000"
        return encode(entry)

    bundle = _forged_log(scn, tmp_path, other_key)
    assert defect(prove(bundle, "KR-A1"), scn) == "unknown_key"


# ------------------------------------------------------------------ CLI
def test_cli_prove_and_check_proof(scn: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "a1.tlog-proof"
    made = ewx("audit", "prove", "KR-A1", "--log", str(scn.paths["US"]), "--out", str(out), "--origin", "KR")
    assert made.returncode == 0, made.stderr
    assert out.read_text(encoding="utf-8") == prove(scn.bundles["US"], "KR-A1")
    checked = ewx("audit", "check-proof", str(out), "--trust", str(scn.trust_path))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("VALID: KR ALERT KR-A1 is entry #0 of US's log")

    entry, index, proof, checkpoint = parse_proof(out.read_text(encoding="utf-8"))
    bad = tmp_path / "bad.tlog-proof"
    bad.write_text(reassemble(entry, index + 1, proof, checkpoint), encoding="utf-8")
    invalid = ewx("audit", "check-proof", str(bad), "--trust", str(scn.trust_path), "--json")
    assert invalid.returncode == 1, invalid.stderr
    assert json.loads(invalid.stdout)["defect"] == "bad_inclusion"


def test_cli_exit_codes_for_unknown_alerts_and_unreadable_input(scn: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "x.tlog-proof"
    unknown = ewx("audit", "prove", "NO-SUCH", "--log", str(scn.paths["KR"]), "--out", str(out))
    assert unknown.returncode == 1
    assert "not_found" in unknown.stderr
    assert not out.exists()
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xff\xfe not a bundle nor a proof")
    assert ewx("audit", "prove", "KR-A1", "--log", str(garbage), "--out", str(out)).returncode == 2
    assert ewx("audit", "check-proof", str(garbage), "--trust", str(scn.trust_path)).returncode == 2
    assert (
        ewx("audit", "check-proof", str(tmp_path / "missing"), "--trust", str(scn.trust_path)).returncode == 2
    )
