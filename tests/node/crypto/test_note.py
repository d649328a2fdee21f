"""Tests for node/crypto/_note.py: signed notes, checkpoints and cosignatures.

Known answers come from fixed Ed25519 seeds (Ed25519 is deterministic, so a
changed byte anywhere in the format shows up here), from the Go reference
implementation's documented example note, and from the C2SP
tlog-cosignature example line. Negative cases are named after their defect.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Checkpoint,
    NoteSignature,
    SignedNote,
    cosign,
    cosignature_message,
    note_key_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_signature_line,
    parse_signed_note,
    sign_checkpoint,
    verify_cosignature,
    verify_note_signature,
)
from node.errors import NoteError

LOG_NAME = "ewx.example/kr/log"
WITNESS_NAME = "ewx.example/us/witness"
LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
ROOT_B64 = "fKo0Xb2JKmZFTWxlEuo8PqPw0+whvj/C4jdXBf049nI="
CP = Checkpoint(origin=LOG_NAME, size=5, root_hash=base64.b64decode(ROOT_B64))
TIMESTAMP = 1764000000

# Committed known answers: sign_checkpoint(CP) with LOG_KEY, and
# cosign(CP, at TIMESTAMP) with WITNESS_KEY. They must never change.
SIGNED_CP = (
    "ewx.example/kr/log\n"
    "5\n"
    "fKo0Xb2JKmZFTWxlEuo8PqPw0+whvj/C4jdXBf049nI=\n"
    "\n"
    "— ewx.example/kr/log Ego3gYf7Hzi0qVfgT7HIMsLx/2uOhhV8LdOG3fdKZ/vUQ/dPz3EMeWAv2ErnNdDhTI4DsK8+fX0Rtxf"
    "IgCKdl6kvlA4=\n"
)
COSIG_LINE = (
    "— ewx.example/us/witness 7RcS9wAAAABpJIEAKMBaYeRiI2y+ZkM6sIjIW3OihOj2wAxQMeHQc/jyjtLaKhYsSn0uc+Qm"
    "nDcTdJA5Nu1Ns/2RQbrJsewKnaSZBQ==\n"
)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _sig_line(name: str, payload: bytes) -> str:
    return f"— {name} {base64.b64encode(payload).decode()}\n"


# ------------------------------------------------------------ known answers


def test_known_answer_signed_checkpoint() -> None:
    assert sign_checkpoint(CP, name=LOG_NAME, private_key=LOG_KEY) == SIGNED_CP
    assert CP.body() == b"ewx.example/kr/log\n5\nfKo0Xb2JKmZFTWxlEuo8PqPw0+whvj/C4jdXBf049nI=\n"


def test_known_answer_cosignature() -> None:
    assert cosign(CP, name=WITNESS_NAME, private_key=WITNESS_KEY, timestamp=TIMESTAMP) == COSIG_LINE


def test_key_hash_definition() -> None:
    for sig_type in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1):
        want = hashlib.sha256(LOG_NAME.encode() + b"\n" + bytes([sig_type]) + _raw(LOG_KEY)).digest()[:4]
        assert note_key_hash(LOG_NAME, LOG_KEY.public_key(), sig_type) == want
    with pytest.raises(NoteError, match="not a byte"):
        note_key_hash(LOG_NAME, LOG_KEY.public_key(), 256)


def test_go_reference_note() -> None:
    # The example of golang.org/x/mod/sumdb/note (the reference signed-note
    # implementation): its key, text and signed note, byte for byte.
    skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    text = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
    )
    line = (
        "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ry"
        "yBwJnAM=\n"
    )
    seed = base64.b64decode(skey.split("+", 4)[4])
    assert seed[0] == SIG_TYPE_ED25519
    key = Ed25519PrivateKey.from_private_bytes(seed[1:])
    key_hash = note_key_hash("PeterNeumann", key.public_key(), SIG_TYPE_ED25519)
    assert key_hash.hex() == "c74f20a3"
    ours = NoteSignature(name="PeterNeumann", key_hash=key_hash, signature=key.sign(text.encode()))
    assert ours.line() == line
    note = parse_signed_note(text + "\n" + line)
    assert note.body == text
    assert note.text() == text + "\n" + line
    assert verify_note_signature(note, name="PeterNeumann", public_key=key.public_key())


def test_c2sp_cosignature_example_layout() -> None:
    # The example line of c2sp.org/tlog-cosignature, cosigning a checkpoint
    # at "time 1679315147": key ID (4) || u64 big-endian time || 64-byte sig.
    line = (
        "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oy"
        "in1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
    )
    sig = parse_signature_line(line)
    assert sig.name == "witness.example.com/w1"
    assert len(sig.key_hash) == 4
    assert len(sig.signature) == 8 + 64
    assert int.from_bytes(sig.signature[:8], "big") == 1679315147


def test_cosignature_layout() -> None:
    sig = parse_signature_line(COSIG_LINE)
    want_hash = hashlib.sha256(WITNESS_NAME.encode() + b"\n\x04" + _raw(WITNESS_KEY)).digest()[:4]
    assert sig.key_hash == want_hash
    assert sig.signature[:8] == TIMESTAMP.to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1764000000\n" + CP.body()
    assert cosignature_message(CP, TIMESTAMP) == message
    WITNESS_KEY.public_key().verify(sig.signature[8:], message)


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "cp",
    [
        CP,
        Checkpoint(origin="o", size=0, root_hash=hashlib.sha256(b"").digest()),
        Checkpoint(origin="ünïcode origin with spaces", size=2**63 - 1, root_hash=bytes(32)),
        Checkpoint(origin=LOG_NAME, size=7, root_hash=bytes(range(32)), extensions=("ext 1", "— ext 2")),
    ],
    ids=["plain", "empty-tree", "unicode-max-size", "extensions"],
)
def test_checkpoint_round_trip(cp: Checkpoint) -> None:
    text = sign_checkpoint(cp, name=LOG_NAME, private_key=LOG_KEY)
    note = parse_signed_note(text)
    assert note.text() == text
    assert parse_signed_note(text.encode()) == note
    assert parse_checkpoint(note.body) == cp
    assert verify_note_signature(note, name=LOG_NAME, public_key=LOG_KEY.public_key())
    opened, _ = open_checkpoint(text, name=LOG_NAME, public_key=LOG_KEY.public_key(), origin=cp.origin)
    assert opened == cp


def test_cosignature_round_trip() -> None:
    cosigned = SIGNED_CP + COSIG_LINE
    note = parse_signed_note(cosigned)
    witness = WITNESS_KEY.public_key()
    assert verify_cosignature(note, CP, name=WITNESS_NAME, public_key=witness) == TIMESTAMP
    assert verify_cosignature(cosigned, CP, name=WITNESS_NAME, public_key=witness) == TIMESTAMP
    assert verify_cosignature(COSIG_LINE, CP, name=WITNESS_NAME, public_key=witness) == TIMESTAMP
    # The log signature still verifies beside the cosignature, and each is
    # ignored by the other's verifier (different key ID type byte).
    assert verify_note_signature(note, name=LOG_NAME, public_key=LOG_KEY.public_key())
    assert not verify_note_signature(note, name=WITNESS_NAME, public_key=witness)
    assert verify_cosignature(note, CP, name=LOG_NAME, public_key=LOG_KEY.public_key()) is None
    cp, opened = open_checkpoint(cosigned, name=LOG_NAME, public_key=LOG_KEY.public_key())
    assert verify_cosignature(opened, cp, name=WITNESS_NAME, public_key=witness) == TIMESTAMP


def test_cosignature_rejections() -> None:
    witness = WITNESS_KEY.public_key()
    # Wrong key: same name, other key -> another key ID, so ignored.
    assert verify_cosignature(COSIG_LINE, CP, name=WITNESS_NAME, public_key=OTHER_KEY.public_key()) is None
    # Wrong name for the right key.
    assert verify_cosignature(COSIG_LINE, CP, name="ewx.example/jp/witness", public_key=witness) is None
    # Altered time: the signature covers "time <t>", so any change breaks it.
    sig = parse_signature_line(COSIG_LINE)
    later = (TIMESTAMP + 1).to_bytes(8, "big")
    altered = _sig_line(WITNESS_NAME, sig.key_hash + later + sig.signature[8:])
    assert verify_cosignature(altered, CP, name=WITNESS_NAME, public_key=witness) is None
    # Above 2^63 - 1, refused before any signature check.
    huge = _sig_line(WITNESS_NAME, sig.key_hash + b"\xff" * 8 + sig.signature[8:])
    assert verify_cosignature(huge, CP, name=WITNESS_NAME, public_key=witness) is None
    # Truncated signature by the known key.
    short = _sig_line(WITNESS_NAME, sig.key_hash + sig.signature[:-1])
    assert verify_cosignature(short, CP, name=WITNESS_NAME, public_key=witness) is None
    # Another checkpoint: a different size or root.
    other = Checkpoint(origin=LOG_NAME, size=6, root_hash=CP.root_hash)
    assert verify_cosignature(COSIG_LINE, other, name=WITNESS_NAME, public_key=witness) is None
    # A note whose body is not the checkpoint being checked.
    other_note = sign_checkpoint(other, name=LOG_NAME, private_key=LOG_KEY) + COSIG_LINE
    assert verify_cosignature(other_note, CP, name=WITNESS_NAME, public_key=witness) is None
    # A good cosignature next to a bad one by the same key: reject.
    note = SIGNED_CP + COSIG_LINE + altered
    assert verify_cosignature(note, CP, name=WITNESS_NAME, public_key=witness) is None
    # Malformed input is an error, not a silent None.
    with pytest.raises(NoteError):
        verify_cosignature("— " + WITNESS_NAME + " !!!\n", CP, name=WITNESS_NAME, public_key=witness)
    for bad_time in (-1, 2**63):
        with pytest.raises(NoteError, match="timestamp"):
            cosign(CP, name=WITNESS_NAME, private_key=WITNESS_KEY, timestamp=bad_time)


def test_note_signature_rejections() -> None:
    log = LOG_KEY.public_key()
    note = parse_signed_note(SIGNED_CP)
    assert not verify_note_signature(note, name=LOG_NAME, public_key=OTHER_KEY.public_key())
    assert not verify_note_signature(note, name="ewx.example/jp/log", public_key=log)
    tampered = SignedNote(body=note.body.replace("\n5\n", "\n6\n"), signatures=note.signatures)
    assert not verify_note_signature(tampered, name=LOG_NAME, public_key=log)
    # Unknown signers are ignored (key rotation, cosigners)...
    other_line = sign_checkpoint(CP, name="ewx.example/jp/log", private_key=OTHER_KEY).split("\n\n")[1]
    assert verify_note_signature(parse_signed_note(SIGNED_CP + other_line), name=LOG_NAME, public_key=log)
    # ...but a failing signature by the known key rejects the note.
    good = note.signatures[0]
    broken = NoteSignature(name=LOG_NAME, key_hash=good.key_hash, signature=bytes(64))
    assert not verify_note_signature(SignedNote(note.body, (good, broken)), name=LOG_NAME, public_key=log)
    with pytest.raises(NoteError, match="no valid signature"):
        open_checkpoint(SIGNED_CP, name=LOG_NAME, public_key=OTHER_KEY.public_key())
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(SIGNED_CP, name=LOG_NAME, public_key=log, origin="ewx.example/us/log")


# ----------------------------------------------------------- malformed notes

_BODY, _SIG = SIGNED_CP.split("\n\n")
_BODY += "\n"
_B64 = _SIG.split(" ")[2][:-1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(_BODY + _SIG, "no blank line", id="missing-blank-line"),
        pytest.param(SIGNED_CP[:-1], "does not end with a newline", id="no-final-newline"),
        pytest.param(_BODY + "\n", "no signature lines", id="no-signature-lines"),
        pytest.param(b"\xff" + SIGNED_CP.encode(), "not valid UTF-8", id="non-utf8-bytes"),
        pytest.param("x\ud800\n\n" + _SIG, "not valid UTF-8", id="unpaired-surrogate"),
        pytest.param(SIGNED_CP.replace("\n", "\r\n", 1), "control character U\\+000D", id="carriage-return"),
        pytest.param(_BODY.replace("5", "5\t") + "\n" + _SIG, "control character", id="tab"),
        pytest.param(SIGNED_CP + _SIG * MAX_SIGNATURES, "17 signature lines", id="too-many-signatures"),
        pytest.param("x" * MAX_NOTE_BYTES + "\n\n" + _SIG, "limit", id="too-large-text"),
        pytest.param(("é" * (MAX_NOTE_BYTES // 2) + "\n\n" + _SIG), "bytes, over", id="too-large-utf8"),
        pytest.param(("x" * MAX_NOTE_BYTES + "\n\n" + _SIG).encode(), "limit", id="too-large-bytes"),
        pytest.param(_BODY + "\n- " + _SIG[2:], "em dash", id="hyphen-not-em-dash"),
        pytest.param(_BODY + "\n—" + _SIG[2:], "em dash", id="no-space-after-dash"),
        pytest.param(_BODY + "\n—  " + _B64 + "\n", "key name is empty", id="empty-key-name"),
        pytest.param(_BODY + "\n" + _SIG.replace("kr/log", "kr+log"), "plus sign", id="plus-in-key-name"),
        pytest.param(_BODY + "\n" + _SIG.replace("kr/log", "kr\u00a0log"), "a space", id="nbsp-in-key-name"),
        pytest.param(_BODY + "\n" + _SIG[:-1] + " extra\n", "not '— <key name>", id="extra-field"),
        pytest.param(_BODY + "\n" + _SIG.replace(_B64, "!" + _B64[1:]), "not valid base64", id="bad-base64"),
        pytest.param(_BODY + "\n" + _SIG.replace(_B64, _B64[:-1]), "not valid base64", id="missing-padding"),
        pytest.param(
            _BODY + "\n" + _SIG.replace(_B64, _B64[:-2] + "B="), "not canonical", id="nonzero-pad-bits"
        ),
        pytest.param(_BODY + "\n" + f"— {LOG_NAME} AAAAAA==\n", "too short", id="signature-too-short"),
        pytest.param("", "does not end with a newline", id="empty"),
        pytest.param("\n", "no blank line", id="only-newline"),
    ],
)
def test_malformed_note_is_rejected(text: str | bytes, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_signed_note(text)


def test_sixteen_signatures_are_accepted() -> None:
    note = parse_signed_note(SIGNED_CP + _SIG * (MAX_SIGNATURES - 1))
    assert len(note.signatures) == MAX_SIGNATURES


def test_last_blank_line_separates_signatures() -> None:
    # signed-note: the text may hold empty lines; the last one separates.
    note = parse_signed_note("a\n\nb\n\n" + _SIG)
    assert note.body == "a\n\nb\n"
    # So a signature line before a later blank line is part of the text,
    # which then is no checkpoint.
    note = parse_signed_note(SIGNED_CP + "\n" + _SIG)
    assert note.body == SIGNED_CP
    with pytest.raises(NoteError):
        parse_checkpoint(note.body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(f"{LOG_NAME}\n05\n{ROOT_B64}\n", "leading zeros", id="size-leading-zero"),
        pytest.param(f"{LOG_NAME}\n-1\n{ROOT_B64}\n", "decimal", id="size-negative"),
        pytest.param(f"{LOG_NAME}\n+1\n{ROOT_B64}\n", "decimal", id="size-plus-sign"),
        pytest.param(f"{LOG_NAME}\n 1\n{ROOT_B64}\n", "decimal", id="size-space"),
        pytest.param(f"{LOG_NAME}\n1_0\n{ROOT_B64}\n", "decimal", id="size-underscore"),
        pytest.param(f"{LOG_NAME}\n\u0661\n{ROOT_B64}\n", "decimal", id="size-arabic-digit"),
        pytest.param(f"{LOG_NAME}\n\n{ROOT_B64}\n", "decimal", id="size-empty"),
        pytest.param(f"{LOG_NAME}\n{2**63}\n{ROOT_B64}\n", "over", id="size-too-large"),
        pytest.param(
            f"{LOG_NAME}\n5\n{base64.b64encode(bytes(31)).decode()}\n", "31 bytes", id="root-31-bytes"
        ),
        pytest.param(
            f"{LOG_NAME}\n5\n{base64.b64encode(bytes(33)).decode()}\n", "33 bytes", id="root-33-bytes"
        ),
        pytest.param(f"{LOG_NAME}\n5\n{ROOT_B64[:-1]}\n", "base64", id="root-bad-base64"),
        pytest.param(f"{LOG_NAME}\n5\n{ROOT_B64[:-2]}J=\n", "canonical", id="root-noncanonical"),
        pytest.param(f"{LOG_NAME}\n5\n", "needs origin, size and root", id="missing-root"),
        pytest.param(f"\n5\n{ROOT_B64}\n", "origin line is empty", id="empty-origin"),
        pytest.param(f"{LOG_NAME}\n5\n{ROOT_B64}\n\n", "extension line 1 is empty", id="empty-extension"),
        pytest.param(f"{LOG_NAME}\n5\n{ROOT_B64}", "newline", id="no-final-newline"),
        pytest.param(f"{LOG_NAME}\r\n5\n{ROOT_B64}\n", "control", id="carriage-return"),
    ],
)
def test_malformed_checkpoint_is_rejected(body: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_checkpoint(body)


def test_checkpoint_constructor_checks_fields() -> None:
    root = bytes(32)
    with pytest.raises(NoteError, match="origin"):
        Checkpoint(origin="a\nb", size=1, root_hash=root)
    with pytest.raises(NoteError, match="origin is empty"):
        Checkpoint(origin="", size=1, root_hash=root)
    with pytest.raises(NoteError, match="outside"):
        Checkpoint(origin="o", size=-1, root_hash=root)
    with pytest.raises(NoteError, match="int"):
        Checkpoint(origin="o", size=True, root_hash=root)
    with pytest.raises(NoteError, match="32 bytes"):
        Checkpoint(origin="o", size=1, root_hash=bytes(31))
    with pytest.raises(NoteError, match="extension line 1 is empty"):
        Checkpoint(origin="o", size=1, root_hash=root, extensions=("",))
    with pytest.raises(NoteError, match="key name"):
        sign_checkpoint(CP, name="has space", private_key=LOG_KEY)


# ------------------------------------------------------------------ fuzzing


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_parse_arbitrary_input_raises_only_note_error(data: str | bytes) -> None:
    with contextlib.suppress(NoteError):
        parse_signed_note(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_notes_raise_only_note_error(data: st.DataObject) -> None:
    # Arbitrary input rarely gets past the first checks; mutating a valid
    # cosigned checkpoint reaches the signature and checkpoint parsers.
    raw = bytearray((SIGNED_CP + COSIG_LINE).encode())
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        pos = data.draw(st.integers(0, len(raw) - 1), label="position")
        raw[pos] = data.draw(st.integers(0, 255), label="byte")
    try:
        note = parse_signed_note(bytes(raw))
    except NoteError:
        return
    try:
        cp = parse_checkpoint(note.body)
    except NoteError:
        return
    # Whatever parsed must re-serialize to exactly the bytes it came from.
    assert note.text().encode() == bytes(raw)
    assert cp.body_text() == note.body
    verify_note_signature(note, name=LOG_NAME, public_key=LOG_KEY.public_key())
    verify_cosignature(note, cp, name=WITNESS_NAME, public_key=WITNESS_KEY.public_key())


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_checkpoint_arbitrary_text_raises_only_note_error(body: str) -> None:
    with contextlib.suppress(NoteError):
        parse_checkpoint(body)


_LINE_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(
    origin=_LINE_TEXT,
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE_TEXT, max_size=3),
    timestamp=st.integers(0, 2**63 - 1),
)
def test_random_checkpoints_round_trip(
    origin: str, size: int, root: bytes, extensions: list[str], timestamp: int
) -> None:
    cp = Checkpoint(origin=origin, size=size, root_hash=root, extensions=tuple(extensions))
    text = sign_checkpoint(cp, name=LOG_NAME, private_key=LOG_KEY)
    text += cosign(cp, name=WITNESS_NAME, private_key=WITNESS_KEY, timestamp=timestamp)
    cp2, note = open_checkpoint(text, name=LOG_NAME, public_key=LOG_KEY.public_key(), origin=origin)
    assert cp2 == cp
    assert verify_cosignature(note, cp, name=WITNESS_NAME, public_key=WITNESS_KEY.public_key()) == timestamp
