"""Ed25519 verification with libsodium (node/crypto/_signing.py's verify_signature).

Keys and signatures come from `cryptography` (OpenSSL), which signs; verification
is libsodium's. On every honest signature and every corruption of one the two
must agree; where they differ, on crafted keys and signatures no signer
produces, libsodium must be the one that refuses.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import (
    PAYLOAD_ALERT,
    PAYLOAD_RECEIPT,
    SignatureCheck,
    pae,
    raw_public_key,
    verify_signature,
    verify_signatures,
)

L = 2**252 + 27742317777372353535851937790883648493
"""The order of the Ed25519 base point: S must be below it (RFC 8032 section 5.1.7)."""

SMALL_ORDER_POINTS = [
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",  # the identity
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    )
]
IDENTITY = SMALL_ORDER_POINTS[0]


def _openssl(public: bytes, payload_type: str, payload: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, pae(payload_type, payload))
    except InvalidSignature:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    payload=st.binary(max_size=600),
    corrupt=st.sampled_from(["none", "signature", "payload", "type", "key"]),
    at=st.integers(min_value=0),
)
def test_libsodium_and_openssl_agree_on_every_real_signature_and_its_corruptions(
    seed: bytes, payload: bytes, corrupt: str, at: int
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = raw_public_key(key.public_key())
    signature = key.sign(pae(PAYLOAD_ALERT, payload))
    payload_type = PAYLOAD_ALERT
    if corrupt == "signature":
        i = at % 64
        signature = signature[:i] + bytes([signature[i] ^ (1 << (at % 8))]) + signature[i + 1 :]
    elif corrupt == "payload" and payload:
        i = at % len(payload)
        payload = payload[:i] + bytes([payload[i] ^ 0x01]) + payload[i + 1 :]
    elif corrupt == "type":
        payload_type = PAYLOAD_RECEIPT
    elif corrupt == "key":
        public = raw_public_key(Ed25519PrivateKey.from_private_bytes(bytes(31) + b"\x01").public_key())
    expected = _openssl(public, payload_type, payload, signature)
    assert verify_signature(public, payload_type, payload, signature) is expected
    assert (
        verify_signature(Ed25519PublicKey.from_public_bytes(public), payload_type, payload, signature)
        is expected
    )
    assert expected is (corrupt == "none" or (corrupt == "payload" and not payload))


def test_the_identity_key_verifies_nothing_though_openssl_takes_a_forgery_under_it() -> None:
    # R = the identity, S = 0: [S]B = R + [k]A holds for every message when A is the
    # identity. OpenSSL checks the equation and takes it; a trust file naming such a
    # key would let anyone sign as its owner.
    forged = IDENTITY + bytes(32)
    for message in (b"", b"an alert nobody signed", b"another"):
        assert _openssl(IDENTITY, PAYLOAD_ALERT, message, forged)
        assert not verify_signature(IDENTITY, PAYLOAD_ALERT, message, forged)


def test_a_small_order_key_or_r_is_refused() -> None:
    real = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = raw_public_key(real.public_key())
    signature = real.sign(pae(PAYLOAD_ALERT, b"x"))
    assert verify_signature(public, PAYLOAD_ALERT, b"x", signature)
    for point in SMALL_ORDER_POINTS:
        for s in (bytes(32), signature[32:]):
            assert not verify_signature(point, PAYLOAD_ALERT, b"x", point + s)  # small-order key
            assert not verify_signature(point, PAYLOAD_ALERT, b"x", signature)
        assert not verify_signature(public, PAYLOAD_ALERT, b"x", point + signature[32:])  # small-order R


def test_s_not_below_the_group_order_is_refused_by_both() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    public = raw_public_key(key.public_key())
    signature = key.sign(pae(PAYLOAD_ALERT, b"malleable?"))
    s = int.from_bytes(signature[32:], "little")
    assert s + L < 2**256  # S + L encodes in 32 bytes: the malleated twin of a valid signature
    twin = signature[:32] + (s + L).to_bytes(32, "little")
    assert not _openssl(public, PAYLOAD_ALERT, b"malleable?", twin)
    assert not verify_signature(public, PAYLOAD_ALERT, b"malleable?", twin)


def test_a_key_or_signature_of_the_wrong_length_is_refused_not_raised() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    public = raw_public_key(key.public_key())
    signature = key.sign(pae(PAYLOAD_ALERT, b"x"))
    assert verify_signature(public, PAYLOAD_ALERT, b"x", signature)
    assert not verify_signature(public[:31], PAYLOAD_ALERT, b"x", signature)
    assert not verify_signature(public + b"\x00", PAYLOAD_ALERT, b"x", signature)
    assert not verify_signature(public, PAYLOAD_ALERT, b"x", signature[:63])
    assert not verify_signature(public, PAYLOAD_ALERT, b"x", signature + b"\x00")
    assert not verify_signature(b"", PAYLOAD_ALERT, b"x", b"")


def test_the_pool_function_answers_what_each_check_does() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = raw_public_key(key.public_key())
    checks = []
    for i in range(20):
        payload = bytes([i]) * i
        signature = key.sign(pae(PAYLOAD_ALERT, payload))
        if i % 3 == 1:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        checks.append(SignatureCheck(public if i % 5 else IDENTITY, PAYLOAD_ALERT, payload, signature))
    assert verify_signatures(checks) == [
        verify_signature(c.public_key, c.payload_type, c.payload, c.signature) for c in checks
    ]
    assert verify_signatures(checks) == [i % 3 != 1 and i % 5 != 0 for i in range(20)]
