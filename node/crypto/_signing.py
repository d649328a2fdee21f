"""Ed25519 signing over exact bytes, with a domain separator and payload type.

What is signed is a pre-authentication encoding in the manner of DSSE:

    PAE(type, body) = "EWXv1" SP len(type) SP type SP len(body) SP body

with lengths in ASCII decimal. Binding the payload type means an alert
signature can never be replayed as a receipt signature (or the reverse), and
the "EWXv1" domain keeps these signatures apart from any other use of the
same key. Signatures are checked over the bytes as received, before any
parsing; protobuf is never re-serialized to check one (SPEC section 4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

from node.ids import Country, Digest, KeyId

DOMAIN: Final = b"EWXv1"
PAYLOAD_ALERT: Final = "application/vnd.ewx.alert.v1+protobuf"
PAYLOAD_RECEIPT: Final = "application/vnd.ewx.receipt.v1+protobuf"
PAYLOAD_TRUST_UPDATE: Final = "application/vnd.ewx.trust-update.v1+protobuf"

KeyPurpose = Literal["alert", "log", "witness"]
"""`alert` signs alerts and receipts; `log` signs checkpoints; `witness`
cosigns peers' checkpoints (SPEC section 5, notes/tlog-design.md)."""

KEY_PURPOSES: Final[tuple[KeyPurpose, ...]] = ("alert", "log", "witness")
SIGNATURE_BYTES: Final = 64
PUBLIC_KEY_BYTES: Final = 32


def pae(payload_type: str, payload: bytes) -> bytes:
    """The exact bytes an Ed25519 signature covers."""
    type_bytes = payload_type.encode("ascii")
    return b"%s %d %s %d %s" % (DOMAIN, len(type_bytes), type_bytes, len(payload), payload)


def digest(payload: bytes) -> Digest:
    """SHA-256 of signed bytes: how alerts are referenced and receipted."""
    return Digest(hashlib.sha256(payload).digest())


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_for(country: Country, purpose: KeyPurpose, public_key: Ed25519PublicKey) -> KeyId:
    """A key id that names its owner and purpose and pins the key itself.

    The hash part makes ids of different keys differ even when an operator
    reuses a label, so a rotated key can never be mistaken for its predecessor.
    """
    fingerprint = hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]
    return KeyId(f"{country}-{purpose}-{fingerprint}")


@dataclass(frozen=True, slots=True)
class Signer:
    """A private signing key with its id; the only object that signs."""

    key_id: KeyId
    private_key: Ed25519PrivateKey

    @classmethod
    def of(cls, country: Country, purpose: KeyPurpose, private_key: Ed25519PrivateKey) -> Signer:
        """`country`'s signer for `purpose` with this key, under the id the key pins."""
        return cls(key_id=key_id_for(country, purpose, private_key.public_key()), private_key=private_key)

    def sign(self, payload_type: str, payload: bytes) -> bytes:
        """Sign `payload` as `payload_type`."""
        return self.private_key.sign(pae(payload_type, payload))


def verify_signature(
    public_key: Ed25519PublicKey | bytes, payload_type: str, payload: bytes, signature: bytes
) -> bool:
    """True iff `signature` is valid over PAE(payload_type, payload) under `public_key` (the
    key, or its 32 raw bytes).

    Every alert, receipt and trust-update signature, at a node and in the audit,
    is checked here, with libsodium (PyNaCl), not OpenSSL (`cryptography`, which
    signs): it verifies twice as fast on one core (18,000 against 9,400 a
    second on the project's machine, bench/floors.py), so every figure bound by
    verification moves with it, and it is stricter. It refuses a small-order
    public key or R and a non-canonical encoding of either, where OpenSSL takes,
    under the identity point as public key, one all-zero signature (R the
    identity, S = 0) for every message (tests/node/crypto/test_verify.py). A
    signature by a real key verifies the same under both.
    """
    if len(signature) != SIGNATURE_BYTES:
        return False
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    if len(raw) != PUBLIC_KEY_BYTES:
        return False
    try:
        # libsodium's "signed message" form: the signature, then the bytes it covers.
        crypto_sign_open(signature + pae(payload_type, payload), raw)
    except CryptoError:
        return False
    return True
