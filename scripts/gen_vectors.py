"""Regenerate the signed-envelope test vectors in tests/vectors/envelopes/.

Everything is derived from fixed Ed25519 seeds and fixed times, and Ed25519
signing is deterministic, so the output is byte-for-byte reproducible;
tests/node/checks/test_vectors.py regenerates into a temporary folder and fails if
the committed files drift. Negative vectors are named after their defect.

`--check` compares instead of writing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node import limits  # noqa: E402
from node.crypto import PAYLOAD_ALERT, PAYLOAD_RECEIPT, Signer, digest, key_id_for, raw_public_key  # noqa: E402
from node.ids import COUNTRIES, Country  # noqa: E402
from node.message import Alert, Receipt, alert_to_bytes, encode, receipt_to_bytes  # noqa: E402  # noqa: E402
from node.wire import ewx_pb2 as pb  # noqa: E402
from scripts.fixed_ca import fixed_ca_pem  # noqa: E402

OUT = ROOT / "tests" / "vectors" / "envelopes"
SENT = datetime(2023, 8, 1, 0, 0, tzinfo=UTC)
VERIFY_AT = SENT + timedelta(minutes=1)
NOT_BEFORE = datetime(2023, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2033, 1, 1, tzinfo=UTC)


def _seed(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"ewx test vector {label}".encode()).digest())


def _ca_pem(country: Country) -> str:
    return fixed_ca_pem(
        _seed(f"{country} ca"),
        common_name=f"EWX {country} test vector CA",
        serial_label=country,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
    )


def signer(country: Country) -> Signer:
    key = _seed(f"{country} alert")
    return Signer(key_id=key_id_for(country, "alert", key.public_key()), private_key=key)


def trust_json() -> bytes:
    members = {}
    for cc in COUNTRIES:
        s = signer(cc)
        members[cc] = {
            "ca_certificate": _ca_pem(cc),
            "keys": [
                {
                    "key_id": s.key_id,
                    "purpose": "alert",
                    "public_key": base64.b64encode(raw_public_key(s.private_key.public_key())).decode(),
                    "not_before": "2023-01-01T00:00:00Z",
                    "not_after": "2033-01-01T00:00:00Z",
                }
            ],
        }
    return (
        json.dumps(
            {"format": "ewx-federation/1", "federation": "ewx-test-vectors", "members": members},
            indent=2,
            sort_keys=True,
        ).encode()
        + b"\n"
    )


def payload(
    origin: Country = "KR", recipients: dict[Country, int] | None = None, **overrides: object
) -> bytes:
    fields: dict[str, object] = {
        "schema_version": 1,
        "alert_id": "KR-20230801-0001",
        "origin": origin,
        "sent": SENT,
        "status": "EXERCISE",
        "msg_type": "ALERT",
        "deliveries": [{"recipient": r, "seq": q} for r, q in (recipients or {"US": 1, "JP": 1}).items()],
        "info": {
            "category": "EXPORT_CONTROL",
            "urgency": "IMMEDIATE",
            "severity": "SEVERE",
            "certainty": "OBSERVED",
            "effective": SENT,
            "expires": SENT + timedelta(days=180),
            "headline": "Export licensing for gallium and germanium items",
            "items": [
                {"hs_code": "811292", "hs_edition": "HS2022"},
                {"hs_code": "282560", "hs_edition": "HS2022"},
            ],
            "source_countries": ["CN"],
            "affected_countries": ["KR", "US", "JP"],
            "supply_impact": "ABOVE_60",
            "expected_duration_days": 180,
        },
    }
    fields.update(overrides)
    return alert_to_bytes(Alert.model_validate(fields))


def envelope(
    body: bytes,
    by: Country = "KR",
    *,
    payload_type: str = PAYLOAD_ALERT,
    key_id: str | None = None,
    signature: bytes | None = None,
) -> bytes:
    s = signer(by)
    return encode(
        pb.SignedAlert(
            alert=body,
            key_id=key_id or s.key_id,
            signature=signature if signature is not None else s.sign(payload_type, body),
        )
    )


def vectors() -> dict[str, tuple[bytes, str]]:
    """file name -> (bytes, expected outcome when US verifies it from KR at VERIFY_AT)."""
    good = payload()
    valid = envelope(good)
    bad_sig = bytearray(valid)
    bad_sig[-1] ^= 0x01
    oversized = pb.SignedAlert.FromString(valid)
    oversized.key_id = "K" * limits.MAX_ENVELOPE_BYTES
    receipt_body = receipt_to_bytes(
        Receipt(
            schema_version=1,
            receiver="US",
            origin="KR",
            alert_id="KR-20230801-0001",
            seq=1,
            alert_digest=digest(good),
            log_index=0,
            received_at=VERIFY_AT,
        )
    )
    us = signer("US")
    proposal = payload(
        alert_id="KR-20230801-0003",
        msg_type="WATCHLIST_PROPOSAL",
        info=None,
        watchlist={
            "version": 1,
            "hs_edition": "HS2022",
            "add": [
                {"hs_code": "282560", "country": "CN", "reason": "SUPPLY_CONCENTRATION"},
                {"hs_code": "811292", "country": "CN", "reason": "SUPPLY_CONCENTRATION"},
            ],
        },
    )
    move = {
        "country": "CN",
        "measure": "EXPORT_LICENSING",
        "hs_codes": ["282560", "811292"],
        "hs_edition": "HS2022",
        "stage": "ANNOUNCED",
        "announced": date(2023, 7, 3),
        "effective": date(2023, 8, 1),
        "source": "MISSION_REPORT",
    }
    report = payload(alert_id="KR-20230801-0004", msg_type="POLICY_REPORT", info=None, policy=move)
    # A national 10-digit tariff line, which the models refuse: built on the proto.
    national = pb.Alert.FromString(report)
    national.policy.hs_codes[1] = "8112920010"
    return {
        "envelope_valid.bin": (valid, "accept"),
        "envelope_bad_signature.bin": (bytes(bad_sig), "BadSignature"),
        "envelope_wrong_origin.bin": (
            envelope(payload(origin="JP", recipients={"US": 1, "KR": 1})),
            "SenderMismatch",
        ),
        "envelope_signed_by_other_peer.bin": (envelope(good, by="JP"), "SenderMismatch"),
        "envelope_unknown_key.bin": (envelope(good, key_id="KR-alert-0000000000000000"), "UnknownKey"),
        "envelope_payload_type_receipt.bin": (envelope(good, payload_type=PAYLOAD_RECEIPT), "BadSignature"),
        "envelope_smuggled_field.bin": (envelope(good + b"\xfa\x01\x0aACME Corp."), "SchemaViolation"),
        "envelope_not_canonical.bin": (envelope(b"\x08\x01" + good), "SchemaViolation"),
        "envelope_not_addressed.bin": (envelope(payload(recipients={"JP": 1})), "NotAddressed"),
        "envelope_from_the_future.bin": (
            envelope(payload(sent=VERIFY_AT + timedelta(hours=1), alert_id="KR-20230801-0002")),
            "FromTheFuture",
        ),
        "envelope_oversized.bin": (encode(oversized), "TooLarge"),
        "envelope_truncated.bin": (valid[: len(valid) // 2], "Malformed"),
        # The trilateral layer (docs/trilateral.md): the same envelope, three more bodies.
        "watchlist_proposal_valid.bin": (envelope(proposal), "accept"),
        "watchlist_vote_valid.bin": (
            envelope(
                payload(
                    origin="JP",
                    recipients={"KR": 1, "US": 1},
                    alert_id="JP-20230801-0001",
                    msg_type="WATCHLIST_VOTE",
                    info=None,
                    references=[{"origin": "KR", "alert_id": "KR-20230801-0003", "digest": digest(proposal)}],
                    vote={"version": 1, "decision": "ACCEPT"},
                ),
                by="JP",
            ),
            "SenderMismatch",  # delivered by KR, signed by JP: a relay must say so
        ),
        "policy_report_valid.bin": (envelope(report), "accept"),
        "policy_report_national_tariff_line.bin": (envelope(encode(national)), "SchemaViolation"),
        "receipt_valid.bin": (
            encode(
                pb.SignedReceipt(
                    receipt=receipt_body, key_id=us.key_id, signature=us.sign(PAYLOAD_RECEIPT, receipt_body)
                )
            ),
            "receipt",
        ),
    }


def write(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "federation.json").write_bytes(trust_json())
    expected = {}
    for name, (data, outcome) in vectors().items():
        (dest / name).write_bytes(data)
        expected[name] = outcome
    (dest / "expected.json").write_text(
        json.dumps(
            {"verify_as": "US", "peer": "KR", "at": VERIFY_AT.isoformat(), "outcomes": expected},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


def drift() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        fresh = {p.name: p.read_bytes() for p in Path(tmp).iterdir()}
    committed = (
        {p.name: p.read_bytes() for p in OUT.iterdir() if p.name != "README.md"} if OUT.exists() else {}
    )
    return sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    if parser.parse_args().check:
        changed = drift()
        print("vectors drifted: " + ", ".join(changed) if changed else "vectors are fresh")
        return 1 if changed else 0
    write(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
