"""Committed signed-envelope vectors verify as documented and match their generator."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path

import pytest

from node import errors
from node.checks import verify_alert, verify_receipt
from node.trust import Trust

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "tests" / "vectors" / "envelopes"
EXPECTED = json.loads((VECTORS / "expected.json").read_text())
TRUST = Trust.load(VECTORS / "federation.json")
AT = datetime.fromisoformat(EXPECTED["at"])
ALERT_VECTORS = {k: v for k, v in EXPECTED["outcomes"].items() if not k.startswith("receipt_")}


ACCEPTED_IDS = {
    "envelope_valid.bin": "KR-20230801-0001",
    "watchlist_proposal_valid.bin": "KR-20230801-0003",
    "policy_report_valid.bin": "KR-20230801-0004",
}


@pytest.mark.parametrize(("name", "outcome"), ALERT_VECTORS.items(), ids=ALERT_VECTORS.keys())
def test_envelope_vector(name: str, outcome: str) -> None:
    data = (VECTORS / name).read_bytes()
    if outcome == "accept":
        verified = verify_alert(data, trust=TRUST, me="US", peer="KR", direct=True, now=AT)
        assert verified.alert.alert_id == ACCEPTED_IDS[name]
        assert verified.signer == "KR"
        return
    with pytest.raises(getattr(errors, outcome)):
        verify_alert(data, trust=TRUST, me="US", peer="KR", direct=True, now=AT)


def test_receipt_vector() -> None:
    verified = verify_receipt(
        (VECTORS / "receipt_valid.bin").read_bytes(), trust=TRUST, receiver="US", origin="KR", now=AT
    )
    valid = verify_alert(
        (VECTORS / "envelope_valid.bin").read_bytes(), trust=TRUST, me="US", peer="KR", direct=True, now=AT
    )
    assert verified.receipt.alert_digest == valid.digest
    with pytest.raises(errors.SenderMismatch):
        verify_receipt(
            (VECTORS / "receipt_valid.bin").read_bytes(), trust=TRUST, receiver="JP", origin="KR", now=AT
        )


def test_vectors_match_their_generator() -> None:
    spec = importlib.util.spec_from_file_location("gen_vectors", ROOT / "scripts" / "gen_vectors.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.drift() == [], "run: python scripts/gen_vectors.py"


def test_the_vote_vector_is_jps_own_and_verifies_when_relayed() -> None:
    data = (VECTORS / "watchlist_vote_valid.bin").read_bytes()
    verified = verify_alert(data, trust=TRUST, me="US", peer="KR", direct=False, now=AT)
    assert (verified.signer, verified.alert.msg_type) == ("JP", "WATCHLIST_VOTE")
    assert verified.alert.vote is not None and verified.alert.vote.decision == "ACCEPT"
