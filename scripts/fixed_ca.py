"""A deterministic, self-signed Ed25519 CA certificate for generated test data.

Ed25519 signatures are deterministic, so with a fixed key, serial and dates
the certificate bytes are reproducible; the vector and golden generators
(and their drift tests) rely on that.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID


def fixed_ca_pem(
    key: Ed25519PrivateKey, *, common_name: str, serial_label: str, not_before: datetime, not_after: datetime
) -> str:
    """PEM of a CA certificate (path length 0, keyCertSign and cRLSign) self-signed by `key`."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(serial_label.encode()).digest()[:8], "big"))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, None)
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
