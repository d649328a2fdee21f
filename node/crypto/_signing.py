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

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
    public_key: Ed25519PublicKey, payload_type: str, payload: bytes, signature: bytes
) -> bool:
    """True iff `signature` is valid over PAE(payload_type, payload)."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        public_key.verify(signature, pae(payload_type, payload))
    except InvalidSignature:
        return False
    return True
