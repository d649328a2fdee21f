"""Signing binds domain and payload type; verification is over exact bytes."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import PAYLOAD_ALERT, PAYLOAD_RECEIPT, Signer, key_id_for, pae, verify_signature

SEED = bytes(range(32))
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
SIGNER = Signer(key_id=key_id_for("KR", "alert", KEY.public_key()), private_key=KEY)


def test_pae_known_answer() -> None:
    assert pae("t", b"ab") == b"EWXv1 1 t 2 ab"
    assert pae(PAYLOAD_ALERT, b"") == b"EWXv1 37 application/vnd.ewx.alert.v1+protobuf 0 "


def test_signature_known_answer_with_fixed_seed() -> None:
    # Ed25519 is deterministic: this pins the exact bytes signed (domain, type, lengths).
    assert SIGNER.key_id == "KR-alert-56475aa75463474c"
    assert SIGNER.sign(PAYLOAD_ALERT, b"hello").hex() == (
        "71b88157141ed343e6db3e1f2d394bcc484cf200b96a8817fd6684931b78b141"
        "13434fa372b3e998b6f4379e308d05e6e94c5cf07875dc6c5395ca4cf82c680a"
    )


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=512), flip=st.integers(min_value=0))
def test_any_altered_byte_breaks_the_signature(payload: bytes, flip: int) -> None:
    signature = SIGNER.sign(PAYLOAD_ALERT, payload)
    public = KEY.public_key()
    assert verify_signature(public, PAYLOAD_ALERT, payload, signature)
    if payload:
        i = flip % len(payload)
        altered = payload[:i] + bytes([payload[i] ^ 0x01]) + payload[i + 1 :]
        assert not verify_signature(public, PAYLOAD_ALERT, altered, signature)
    bad_sig = bytes([signature[0] ^ 0x80]) + signature[1:]
    assert not verify_signature(public, PAYLOAD_ALERT, payload, bad_sig)


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=256))
def test_payload_type_is_bound(payload: bytes) -> None:
    signature = SIGNER.sign(PAYLOAD_ALERT, payload)
    assert not verify_signature(KEY.public_key(), PAYLOAD_RECEIPT, payload, signature)


def test_wrong_length_signature_is_refused_not_raised() -> None:
    assert not verify_signature(KEY.public_key(), PAYLOAD_ALERT, b"x", b"short")


def test_key_ids_differ_by_owner_purpose_and_key() -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    ids = {
        key_id_for("KR", "alert", KEY.public_key()),
        key_id_for("US", "alert", KEY.public_key()),
        key_id_for("KR", "log", KEY.public_key()),
        key_id_for("KR", "alert", other),
    }
    assert len(ids) == 4
