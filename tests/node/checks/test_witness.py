"""Tests for node/checks/_witness.py: the add-checkpoint body, the witness's checks, the log side.

Keys come from a real development federation (node.pki.init_federation),
so the log and witness keys, names and trust entries are the ones a node
uses. Each refusal is tested for its class and reason; the property tests
check that parsing only ever refuses with WitnessMalformed and that an honest
log's growth is always witnessed.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.checks import (
    MAX_PROOF_LINES,
    MAX_REQUEST_BYTES,
    CheckpointSignatureInvalid,
    InconsistentCheckpoint,
    SizeMismatch,
    UnknownLog,
    Witnessed,
    WitnessMalformed,
    WitnessRejected,
    WitnessRequestBody,
    WitnessState,
    add_cosignature,
    build_request,
    cosigned_by,
    parse_request,
    verify_witness_cosignature,
    witness,
)
from node.config import NodeConfig
from node.crypto import (
    EMPTY_ROOT,
    SIG_TYPE_ED25519,
    Checkpoint,
    KeyPurpose,
    NoteSignature,
    Signer,
    consistency_proof,
    cosign,
    leaf_hash,
    note_key_hash,
    open_checkpoint,
    parse_signed_note,
    root_from_leaf_hashes,
    sign_checkpoint,
    verify_cosignature,
)
from node.errors import InboundRejected, NoteError
from node.ids import COUNTRIES, Country
from node.pki import init_federation
from node.trust import Trust, log_origin, witness_name

NOW = int(time.time())
KR_ORIGIN = log_origin("KR")


@dataclass(frozen=True)
class Fed:
    trust: Trust
    signers: dict[Country, dict[KeyPurpose, Signer]]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Fed:
    root: Path = tmp_path_factory.mktemp("witness") / "fed"
    trust_path = init_federation(root)
    trust = Trust.load(trust_path)
    signers = {cc: NodeConfig.load(root / cc / "node.toml").load_signers(trust) for cc in COUNTRIES}
    return Fed(trust=trust, signers=signers)


# ------------------------------------------------------------------ helpers
def leaves(n: int, tag: bytes = b"") -> list[bytes]:
    return [leaf_hash(tag + i.to_bytes(4, "big")) for i in range(n)]


def checkpoint(hashes: list[bytes], cc: Country = "KR") -> Checkpoint:
    return Checkpoint(origin=log_origin(cc), size=len(hashes), root_hash=root_from_leaf_hashes(hashes))


def signed(fed: Fed, cp: Checkpoint, *, by: Country = "KR", purpose: KeyPurpose = "log") -> str:
    return sign_checkpoint(cp, name=cp.origin, private_key=fed.signers[by][purpose].private_key)


def request(fed: Fed, hashes: list[bytes], old: int, *, cc: Country = "KR") -> str:
    """The body an honest log `cc` sends for its tree `hashes`, from `old`."""
    note = signed(fed, checkpoint(hashes, cc), by=cc)
    return build_request(old_size=old, proof=consistency_proof(old, hashes), signed_checkpoint=note)


def state_of(hashes: list[bytes]) -> WitnessState:
    return WitnessState(origin=KR_ORIGIN, size=len(hashes), root_hash=root_from_leaf_hashes(hashes))


def run(
    fed: Fed,
    body: str,
    state: WitnessState | None,
    *,
    me: Country = "US",
    log_node: Country = "KR",
    now: int = NOW,
    previous_note: str | None = None,
) -> Witnessed:
    return witness(
        body,
        me=me,
        log_node=log_node,
        state=state,
        trust=fed.trust,
        signer=fed.signers[me]["witness"],
        now=now,
        previous_note=previous_note,
    )


def assert_cosigned(fed: Fed, result: Witnessed, *, me: Country = "US", now: int = NOW) -> None:
    key = fed.signers[me]["witness"].private_key.public_key()
    assert (
        verify_cosignature(result.cosignature, result.checkpoint, name=witness_name(me), public_key=key)
        == now
    )
    assert (
        verify_witness_cosignature(
            result.cosignature, witness_node=me, trust=fed.trust, checkpoint=result.checkpoint
        )
        == now
    )


# ------------------------------------------------------------------ request body
def test_request_round_trip(fed: Fed) -> None:
    hashes = leaves(13)
    note = signed(fed, checkpoint(hashes))
    proof = consistency_proof(5, hashes)
    body = build_request(old_size=5, proof=proof, signed_checkpoint=note)
    lines = body.split("\n")
    assert lines[0] == "old 5"
    assert lines[1 : 1 + len(proof)] == [base64.b64encode(h).decode() for h in proof]
    assert lines[1 + len(proof)] == ""
    assert body.endswith("\n\n" + note)
    assert parse_request(body) == WitnessRequestBody(old_size=5, proof=tuple(proof), note_text=note)


def test_request_round_trip_first_checkpoint(fed: Fed) -> None:
    note = signed(fed, checkpoint(leaves(3)))
    body = build_request(old_size=0, proof=[], signed_checkpoint=note)
    assert body == "old 0\n\n" + note
    assert parse_request(body) == WitnessRequestBody(old_size=0, proof=(), note_text=note)


def test_request_carries_extra_signatures(fed: Fed) -> None:
    """C2SP: the submitted checkpoint MAY include multiple signatures."""
    cp = checkpoint(leaves(3))
    note = signed(fed, cp)
    cosigned = add_cosignature(note, run(fed, "old 0\n\n" + note, None, me="JP").cosignature)
    assert (
        parse_request(build_request(old_size=0, proof=[], signed_checkpoint=cosigned)).note_text == cosigned
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"old_size": -1}, "old_size"),
        ({"old_size": True}, "old_size"),
        ({"old_size": 0, "proof": [bytes(32)]}, "empty proof"),
        ({"proof": [bytes(31)]}, "31 bytes"),
        ({"proof": [bytes(32)] * (MAX_PROOF_LINES + 1)}, "over the limit"),
        ({"signed_checkpoint": "not a note"}, "newline"),
    ],
)
def test_build_request_refuses_what_parse_would(fed: Fed, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "old_size": 1,
        "proof": [],
        "signed_checkpoint": signed(fed, checkpoint(leaves(1))),
    }
    args.update(kwargs)
    # A bad argument is the caller's bug (ValueError); a note that does not parse is a NoteError.
    with pytest.raises((ValueError, NoteError), match=message):
        build_request(**args)  # type: ignore[arg-type]


def _noncanonical_hash_line() -> str:
    line = base64.b64encode(bytes(32)).decode()  # "AAAA...A=": the last A carries 2 unused bits
    assert line.endswith("A=")
    return line[:-2] + "B="


MALFORMED: list[tuple[str, str, str]] = [
    # (id, body with {note} for a valid signed note, expected message fragment)
    ("no-old-line", "new 0\n\n{note}", "does not start with an 'old <size>' line"),
    ("empty", "", "does not start with an 'old <size>' line"),
    ("blank-first", "\n\n{note}", "does not start with an 'old <size>' line"),
    ("old-no-space", "old\t0\n\n{note}", "does not start with an 'old <size>' line"),
    ("old-leading-zero", "old 01\n\n{note}", "leading zeros"),
    ("old-negative", "old -1\n\n{note}", "leading zeros"),
    ("old-plus", "old +1\n\n{note}", "leading zeros"),
    ("old-empty", "old \n\n{note}", "leading zeros"),
    ("old-trailing-space", "old 1 \n\n{note}", "leading zeros"),
    ("old-arabic-digits", "old \u0663\n\n{note}", "leading zeros"),
    ("old-too-large", f"old {2**63}\n\n{{note}}", "over"),
    ("no-blank-line", "old 0\n", "no blank line"),
    ("proof-not-base64", "old 1\n!!!!\n\n{note}", "line 1 is not valid base64"),
    ("proof-noncanonical", f"old 1\n{_noncanonical_hash_line()}\n\n{{note}}", "line 1 is not canonical"),
    ("proof-short-hash", f"old 1\n{base64.b64encode(bytes(31)).decode()}\n\n{{note}}", "31 bytes"),
    ("proof-long-hash", f"old 1\n{base64.b64encode(bytes(33)).decode()}\n\n{{note}}", "33 bytes"),
    ("proof-trailing-space", f"old 1\n{base64.b64encode(bytes(32)).decode()} \n\n{{note}}", "base64"),
    (
        "too-many-proof-lines",
        "old 1\n" + (base64.b64encode(bytes(32)).decode() + "\n") * (MAX_PROOF_LINES + 1) + "\n{note}",
        "over the limit of 64",
    ),
    ("old-zero-with-proof", f"old 0\n{base64.b64encode(bytes(32)).decode()}\n\n{{note}}", "old size is 0"),
    ("no-checkpoint", "old 0\n\n", "no checkpoint"),
    ("note-unsigned", "old 0\n\nexample/log\n1\n", "checkpoint note"),
    ("note-garbage", "old 0\n\nhello\n\nworld\n", "checkpoint note"),
    ("note-no-final-newline", "old 0\n\n{note_cut}", "does not end with a newline"),
    ("note-control-char", "old 0\n\n\x00{note}", "control character"),
    ("too-large", "old 0\n\n" + "a" * MAX_REQUEST_BYTES, "limit"),
    ("too-large-utf8", "old 0\n\n" + "\u00e9" * (MAX_REQUEST_BYTES // 2), "bytes, over"),
    ("surrogate", "old 0\n\n\ud800", "surrogate"),
]


@pytest.mark.parametrize(("body", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_bodies(fed: Fed, body: str, message: str) -> None:
    note = signed(fed, checkpoint(leaves(1)))
    text = body.replace("{note_cut}", note[:-1]).replace("{note}", note)
    with pytest.raises(WitnessMalformed, match=message) as info:
        parse_request(text)
    assert info.value.reason == "witness_malformed"
    # And the witness refuses it the same way, before looking at anything else.
    with pytest.raises(WitnessMalformed):
        run(fed, text, state_of(leaves(1)))


def test_parse_request_refuses_bytes() -> None:
    with pytest.raises(WitnessMalformed, match="must be text"):
        parse_request(b"old 0\n\n")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet="old 0123456789\n\u2014ABCab+/=", max_size=200),
        st.builds(
            lambda old, lines, rest: f"old {old}\n" + "".join(x + "\n" for x in lines) + "\n" + rest,
            st.integers(min_value=-1, max_value=2**64),
            st.lists(
                st.one_of(
                    st.text(max_size=50),
                    st.binary(min_size=30, max_size=34).map(lambda b: base64.b64encode(b).decode()),
                ),
                max_size=4,
            ),
            st.text(max_size=200),
        ),
    )
)
def test_parse_request_only_raises_malformed(body: str) -> None:
    try:
        parsed = parse_request(body)
    except WitnessMalformed:
        return
    # Whatever parses is a well-formed request that builds back to itself.
    assert (
        build_request(old_size=parsed.old_size, proof=parsed.proof, signed_checkpoint=parsed.note_text)
        == body
    )


# ------------------------------------------------------------------ accepted
def test_first_checkpoint_accepted_and_cosigned(fed: Fed) -> None:
    hashes = leaves(7)
    body = request(fed, hashes, 0)
    result = run(fed, body, None)
    assert result.state == state_of(hashes)
    assert result.checkpoint == checkpoint(hashes)
    assert result.note_text == parse_request(body).note_text
    assert result.cosignature.startswith(f"\u2014 {witness_name('US')} ")
    assert result.cosignature.endswith("\n")
    assert result.cosignature.count("\n") == 1
    assert_cosigned(fed, result)


def test_first_checkpoint_of_the_empty_tree(fed: Fed) -> None:
    result = run(fed, request(fed, [], 0), None)
    assert result.state == WitnessState(origin=KR_ORIGIN, size=0, root_hash=EMPTY_ROOT)
    # From an empty state, growth needs no proof (every tree extends the empty one).
    grown = run(fed, request(fed, leaves(4), 0), result.state)
    assert grown.state == state_of(leaves(4))


def test_growth_with_valid_proof_accepted(fed: Fed) -> None:
    hashes = leaves(21)
    for old in (1, 2, 4, 5, 8, 16, 20):
        result = run(fed, request(fed, hashes, old), state_of(hashes[:old]))
        assert result.state == state_of(hashes)
        assert_cosigned(fed, result)


def test_unchanged_checkpoint_accepted_and_cosigned_again(fed: Fed) -> None:
    hashes = leaves(9)
    first = run(fed, request(fed, hashes, 0), None, now=NOW - 60)
    again = run(fed, request(fed, hashes, 9), first.state)
    assert again.state == first.state
    assert_cosigned(fed, again)
    assert again.cosignature != first.cosignature  # a fresh timestamp


def test_each_peer_witnesses_as_itself(fed: Fed) -> None:
    result = run(fed, request(fed, leaves(3), 0), None, me="JP")
    assert result.cosignature.startswith(f"\u2014 {witness_name('JP')} ")
    assert_cosigned(fed, result, me="JP")
    # A US log witnessed by KR.
    us = run(fed, request(fed, leaves(3), 0, cc="US"), None, me="KR", log_node="US")
    assert us.state.origin == log_origin("US")
    assert_cosigned(fed, us, me="KR")


# ------------------------------------------------------------------ refused
def test_size_mismatch_reports_witness_size(fed: Fed) -> None:
    hashes = leaves(10)
    with pytest.raises(SizeMismatch) as info:
        run(fed, request(fed, hashes, 3), state_of(hashes[:6]))
    assert info.value.witness_size == 6
    assert info.value.reason == "size_mismatch"
    assert isinstance(info.value, InboundRejected)


def test_size_mismatch_without_state_reports_zero(fed: Fed) -> None:
    hashes = leaves(10)
    with pytest.raises(SizeMismatch) as info:
        run(fed, request(fed, hashes, 4), None)
    assert info.value.witness_size == 0


def test_size_mismatch_when_log_asks_from_zero(fed: Fed) -> None:
    """C2SP: a log without information MAY ask with old 0 to learn the witness's size."""
    hashes = leaves(10)
    with pytest.raises(SizeMismatch) as info:
        run(fed, request(fed, hashes, 0), state_of(hashes[:7]))
    assert info.value.witness_size == 7


def test_rollback_refused(fed: Fed) -> None:
    hashes = leaves(10)
    note = signed(fed, checkpoint(hashes[:5]))
    body = build_request(old_size=8, proof=[], signed_checkpoint=note)
    with pytest.raises(InconsistentCheckpoint, match="rollback") as info:
        run(fed, body, state_of(hashes[:8]))
    assert info.value.reason == "inconsistent_checkpoint"
    assert info.value.evidence is None  # a stale checkpoint alone proves nothing
    assert info.value.refused_note == note


def test_fork_at_same_size_keeps_both_notes(fed: Fed) -> None:
    hashes = leaves(6)
    first = run(fed, request(fed, hashes, 0), None)
    kept = add_cosignature(first.note_text, first.cosignature)
    forked = leaves(6, tag=b"fork")
    body = request(fed, forked, 6)
    with pytest.raises(InconsistentCheckpoint, match="different root") as info:
        run(fed, body, first.state, previous_note=kept)
    assert info.value.evidence == (kept, parse_request(body).note_text)
    # Both notes are validly signed by KR's log key: transferable proof.
    old_note, new_note = info.value.evidence
    assert parse_signed_note(old_note).body.split("\n")[1] == parse_signed_note(new_note).body.split("\n")[1]


def test_fork_evidence_without_stored_note_names_the_cosigned_checkpoint(fed: Fed) -> None:
    hashes = leaves(6)
    state = state_of(hashes)
    body = request(fed, leaves(6, tag=b"fork"), 6)
    with pytest.raises(InconsistentCheckpoint) as info:
        run(fed, body, state)
    assert info.value.evidence == (checkpoint(hashes).body_text(), parse_request(body).note_text)
    # A stored note that is not the state's checkpoint is not quoted as if it were.
    with pytest.raises(InconsistentCheckpoint) as info:
        run(fed, body, state, previous_note=signed(fed, checkpoint(leaves(5))))
    assert info.value.evidence is not None
    assert info.value.evidence[0] == checkpoint(hashes).body_text()


def test_unchanged_size_with_proof_refused(fed: Fed) -> None:
    hashes = leaves(6)
    note = signed(fed, checkpoint(hashes))
    body = build_request(old_size=6, proof=[bytes(32)], signed_checkpoint=note)
    with pytest.raises(InconsistentCheckpoint, match="proof") as info:
        run(fed, body, state_of(hashes))
    assert info.value.evidence is None


@pytest.mark.parametrize("defect", ["flipped", "dropped", "extra", "wrong-old-tree"])
def test_bad_proof_refused(fed: Fed, defect: str) -> None:
    hashes = leaves(13)
    proof = consistency_proof(5, hashes)
    state = state_of(hashes[:5])
    if defect == "flipped":
        proof[0] = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    elif defect == "dropped":
        proof = proof[:-1]
    elif defect == "extra":
        proof = [*proof, bytes(32)]
    else:  # an honest proof, but from a tree this witness never cosigned
        state = state_of(leaves(5, tag=b"other"))
    note = signed(fed, checkpoint(hashes))
    body = build_request(old_size=5, proof=proof, signed_checkpoint=note)
    with pytest.raises(InconsistentCheckpoint, match="consistency proof") as info:
        run(fed, body, state)
    assert info.value.evidence is None
    assert info.value.refused_note == note


def test_size_zero_checkpoint_with_nonempty_root_refused(fed: Fed) -> None:
    cp = Checkpoint(origin=KR_ORIGIN, size=0, root_hash=bytes(32))
    body = build_request(old_size=0, proof=[], signed_checkpoint=signed(fed, cp))
    with pytest.raises(InconsistentCheckpoint, match="empty tree"):
        run(fed, body, None)


@pytest.mark.parametrize(
    ("by", "purpose"), [("US", "log"), ("JP", "log"), ("KR", "witness"), ("KR", "alert")]
)
def test_checkpoint_signed_by_wrong_key(fed: Fed, by: Country, purpose: KeyPurpose) -> None:
    note = signed(fed, checkpoint(leaves(4)), by=by, purpose=purpose)
    with pytest.raises(CheckpointSignatureInvalid) as info:
        run(fed, build_request(old_size=0, proof=[], signed_checkpoint=note), None)
    assert info.value.reason == "checkpoint_signature_invalid"


def test_tampered_checkpoint_refused(fed: Fed) -> None:
    """A signature by the trusted key over other text fails, even beside a valid one."""
    cp = checkpoint(leaves(4))
    note = signed(fed, cp)
    other = signed(fed, checkpoint(leaves(5)))
    # Same name and key ID, signature over another checkpoint.
    bad_line = other.split("\n\n", 1)[1]
    tampered = note + bad_line
    with pytest.raises(CheckpointSignatureInvalid):
        run(fed, build_request(old_size=0, proof=[], signed_checkpoint=tampered), None)
    # The body changed under the signature.
    body_swapped = checkpoint(leaves(5)).body_text() + "\n" + note.split("\n\n", 1)[1]
    with pytest.raises(CheckpointSignatureInvalid):
        run(fed, build_request(old_size=0, proof=[], signed_checkpoint=body_swapped), None)


def test_unknown_signatures_are_ignored(fed: Fed) -> None:
    cp = checkpoint(leaves(4))
    note = signed(fed, cp)
    stranger = NoteSignature(
        name="someone.else/log", key_hash=b"\x01\x02\x03\x04", signature=bytes(64)
    ).line()
    result = run(fed, build_request(old_size=0, proof=[], signed_checkpoint=note + stranger), None)
    assert result.state == state_of(leaves(4))


def test_signed_note_that_is_not_a_checkpoint(fed: Fed) -> None:
    """The text is interpreted only after the signature verifies, then refused as malformed."""
    key = fed.signers["KR"]["log"].private_key
    text = f"{KR_ORIGIN}\nnot-a-size\nroot\n"
    key_hash = note_key_hash(KR_ORIGIN, key.public_key(), SIG_TYPE_ED25519)
    note = (
        text
        + "\n"
        + NoteSignature(name=KR_ORIGIN, key_hash=key_hash, signature=key.sign(text.encode())).line()
    )
    with pytest.raises(WitnessMalformed, match="checkpoint: "):
        run(fed, build_request(old_size=0, proof=[], signed_checkpoint=note), None)


def test_another_nodes_log_refused(fed: Fed) -> None:
    """KR presents US's log, validly signed by US: JP must not cosign it as KR's peer."""
    body = request(fed, leaves(4), 0, cc="US")
    with pytest.raises(UnknownLog) as info:
        run(fed, body, None, me="JP", log_node="KR")
    assert info.value.reason == "unknown_log"
    # Unknown origin is judged before the signature (C2SP: 404 before 403).
    note = signed(fed, Checkpoint(origin="example.com/log", size=1, root_hash=leaves(1)[0]))
    with pytest.raises(UnknownLog, match=re.escape("example.com/log")):
        run(fed, build_request(old_size=0, proof=[], signed_checkpoint=note), None)


def test_own_log_not_witnessed(fed: Fed) -> None:
    with pytest.raises(UnknownLog, match="own log"):
        run(fed, request(fed, leaves(2), 0), None, me="KR", log_node="KR")


def test_log_key_must_be_valid_at_now(fed: Fed) -> None:
    with pytest.raises(CheckpointSignatureInvalid, match="no log key"):
        run(fed, request(fed, leaves(2), 0), None, now=0)


def test_refusals_are_distinct_inbound_rejections() -> None:
    classes: list[type[InboundRejected]] = [
        WitnessMalformed,
        UnknownLog,
        CheckpointSignatureInvalid,
        SizeMismatch,
        InconsistentCheckpoint,
    ]
    reasons = [c.reason for c in classes]
    assert reasons == [
        "witness_malformed",
        "unknown_log",
        "checkpoint_signature_invalid",
        "size_mismatch",
        "inconsistent_checkpoint",
    ]
    assert all(issubclass(c, WitnessRejected) and issubclass(c, InboundRejected) for c in classes)


def test_caller_mistakes_are_value_errors(fed: Fed) -> None:
    body = request(fed, leaves(2), 0)
    with pytest.raises(ValueError, match="now"):
        run(fed, body, None, now=-1)
    with pytest.raises(ValueError, match="not a witness key"):
        witness(
            body,
            me="US",
            log_node="KR",
            state=None,
            trust=fed.trust,
            signer=fed.signers["US"]["log"],
            now=NOW,
        )
    with pytest.raises(ValueError, match="not a witness key"):
        witness(
            body,
            me="US",
            log_node="KR",
            state=None,
            trust=fed.trust,
            signer=fed.signers["JP"]["witness"],
            now=NOW,
        )
    other = WitnessState(origin=log_origin("JP"), size=0, root_hash=EMPTY_ROOT)
    with pytest.raises(ValueError, match="witness state"):
        run(fed, body, other)


# ------------------------------------------------------------------ log side
def test_log_collects_cosignatures_from_both_peers(fed: Fed) -> None:
    hashes = leaves(11)
    cp = checkpoint(hashes)
    note = signed(fed, cp)
    body = build_request(old_size=0, proof=[], signed_checkpoint=note)
    us = run(fed, body, None, me="US", now=NOW - 5)
    jp = run(fed, body, None, me="JP", now=NOW - 3)
    assert cosigned_by(note, trust=fed.trust, checkpoint=cp) == {}
    one = add_cosignature(note, us.cosignature)
    assert one == note + us.cosignature
    both = add_cosignature(one, jp.cosignature)
    assert parse_signed_note(both).body == cp.body_text()
    assert len(parse_signed_note(both).signatures) == 3
    assert cosigned_by(both, trust=fed.trust, checkpoint=cp) == {"US": NOW - 5, "JP": NOW - 3}
    assert cosigned_by(parse_signed_note(both), trust=fed.trust, checkpoint=cp) == {
        "US": NOW - 5,
        "JP": NOW - 3,
    }
    assert verify_witness_cosignature(both, witness_node="US", trust=fed.trust, checkpoint=cp) == NOW - 5
    assert verify_witness_cosignature(both, witness_node="KR", trust=fed.trust, checkpoint=cp) is None
    # A cosignature counts only for the checkpoint it covers.
    other = checkpoint(leaves(12))
    assert verify_witness_cosignature(both, witness_node="US", trust=fed.trust, checkpoint=other) is None
    # The log's own signature still verifies: the note stays valid for the log key.
    key = fed.signers["KR"]["log"].private_key.public_key()
    assert open_checkpoint(both, name=KR_ORIGIN, public_key=key)[0] == cp


def test_cosignature_by_wrong_witness_key_not_counted(fed: Fed) -> None:
    cp = checkpoint(leaves(3))
    note = signed(fed, cp)
    # JP's witness key under US's witness name: an unknown key for US, ignored.
    line = cosign(
        cp, name=witness_name("US"), private_key=fed.signers["JP"]["witness"].private_key, timestamp=NOW
    )
    assert verify_witness_cosignature(line, witness_node="US", trust=fed.trust, checkpoint=cp) is None
    assert cosigned_by(add_cosignature(note, line), trust=fed.trust, checkpoint=cp) == {}


def test_add_cosignature_keeps_one_line_per_key(fed: Fed) -> None:
    cp = checkpoint(leaves(3))
    note = signed(fed, cp)
    first = run(fed, build_request(old_size=0, proof=[], signed_checkpoint=note), None, now=NOW - 10)
    cosigned = add_cosignature(note, first.cosignature)
    again = run(fed, build_request(old_size=3, proof=[], signed_checkpoint=note), first.state)
    assert add_cosignature(cosigned, first.cosignature) == cosigned
    assert add_cosignature(cosigned, again.cosignature) == cosigned
    # A line under the log's own name and key ID cannot displace the log's signature.
    log_line = parse_signed_note(note).signatures[0]
    forged = NoteSignature(name=log_line.name, key_hash=log_line.key_hash, signature=bytes(64)).line()
    assert add_cosignature(cosigned, forged) == cosigned


def test_add_cosignature_refuses_malformed_input(fed: Fed) -> None:
    note = signed(fed, checkpoint(leaves(3)))
    with pytest.raises(NoteError):
        add_cosignature(note, "not a signature line\n")
    with pytest.raises(NoteError):
        add_cosignature(note, "\u2014 name AAAAAAA=\n\u2014 name AAAAAAA=\n")
    with pytest.raises(NoteError):
        add_cosignature("no signatures\n", run(fed, "old 0\n\n" + note, None).cosignature)
    # The signed-note limit on signature lines holds.
    full = note + "".join(
        NoteSignature(name=f"w{i}", key_hash=b"\x00\x00\x00\x00", signature=bytes(72)).line()
        for i in range(15)
    )
    with pytest.raises(NoteError, match="limit"):
        add_cosignature(full, NoteSignature(name="w99", key_hash=b"\x00" * 4, signature=bytes(72)).line())


# ------------------------------------------------------------------ property
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=0, max_value=70),
    cuts=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=6),
    data=st.data(),
)
def test_honest_growth_is_always_witnessed(fed: Fed, n: int, cuts: list[float], data: st.DataObject) -> None:
    tag = data.draw(st.binary(max_size=8))
    hashes = leaves(n, tag)
    sizes = sorted(round(c * n) for c in cuts)  # m <= n, with repeats (unchanged checkpoints)
    state: WitnessState | None = None
    for size in sizes:
        old = 0 if state is None else state.size
        result = run(fed, request(fed, hashes[:size], old), state)
        assert_cosigned(fed, result)
        state = result.state
    assert state == state_of(hashes[: sizes[-1]])
    assert state == WitnessState(
        origin=checkpoint(hashes[: sizes[-1]]).origin,
        size=sizes[-1],
        root_hash=checkpoint(hashes[: sizes[-1]]).root_hash,
    )
