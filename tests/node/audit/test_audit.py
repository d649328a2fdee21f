"""Offline audit of exported logs (node/audit/_verify.py, SPEC section 6).

One real federation for the module: three NodeServices over real stores,
envelopes moved by hand (direct deliveries, one relay, one alert left in
flight), then each log exported with node.audit.export_bundle. Each test
damages copies of those bundles the way an attacker or a fault would, writes
them back with node.audit.write_bundle (re-signing the checkpoint with the
node's real log key where the damage should not show as a root mismatch) and
checks that the audit names exactly the expected entries and kinds.

The log layout the scenario produces (indexes are looked up, not assumed):

    KR: SENT A1, RCPT US A1, RCPT JP A1, RECV US-ACK, SENT A2, RCPT US A2,
        RCPT JP A2, RECV JP-ACK, SENT A3, RCPT JP A3, RCPT US A3, SENT A4 (to JP, in flight)
    US: RECV A1, SENT US-ACK, RCPT KR, RCPT JP, RECV A2, RECV JP-ACK (relayed by KR), RECV A3
    JP: RECV A1, RECV US-ACK, RECV A2, SENT JP-ACK, RCPT KR, RCPT US, RECV A3
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.audit import (
    KINDS,
    Bundle,
    Finding,
    Report,
    read_bundle,
    verify_bundles,
    verify_loaded,
    write_bundle,
)
from node.crypto import (
    PAYLOAD_ALERT,
    PAYLOAD_RECEIPT,
    Checkpoint,
    KeyPurpose,
    Signer,
    cosign,
    leaf_hash,
    root_from_leaf_hashes,
    sign_checkpoint,
)
from node.errors import BundleError
from node.ids import COUNTRIES, Country, KeyId
from node.message import encode
from node.pki import init_federation
from node.trust import Trust
from node.wire import ewx_pb2 as pb
from tests.support.audit_factories import ThreeNodes

INFO: dict[str, Any] = {
    "category": "EXPORT_CONTROL",
    "urgency": "IMMEDIATE",
    "severity": "SEVERE",
    "certainty": "OBSERVED",
    "headline": "China export licensing on gallium",
    "items": [{"hs_code": "811292", "hs_edition": "HS2022"}],
    "supply_impact": "ABOVE_60",
}


@dataclass
class Fed:
    """The exported federation and what the tests need to forge entries."""

    root: Path
    trust: Trust
    paths: dict[Country, Path]
    bundles: dict[Country, Bundle]
    signers: dict[Country, dict[KeyPurpose, Signer]]

    def find(self, cc: Country, kind: int, alert_id: str, peer: Country | None = None) -> int:
        """Index of the entry of `kind` about `alert_id` (and from `peer`) in cc's original log."""
        for index, data in enumerate(self.bundles[cc].entries):
            entry = pb.LogEntry.FromString(data)
            if entry.kind != kind:
                continue
            if kind == pb.RECEIPT_RECEIVED:
                body = pb.ReceiptBody.FromString(entry.receipt.receipt)
                if body.alert_id == alert_id and pb.Country.Name(entry.peer) == peer:
                    return index
            elif pb.Alert.FromString(entry.alert.alert).alert_id == alert_id:
                return index
        raise LookupError(f"no {kind} entry for {alert_id} in {cc}")

    def entries(self, cc: Country) -> list[bytes]:
        """A fresh copy of cc's entries."""
        return list(self.bundles[cc].entries)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Fed:
    root = tmp_path_factory.mktemp("audit") / "fed"
    init_federation(root)
    with ThreeNodes(root) as nodes:
        expires = datetime.now(UTC) + timedelta(days=30)
        info = {**INFO, "expires": expires}
        nodes.publish("KR", msg_type="ALERT", info=info, alert_id="KR-A1")
        nodes.deliver("KR", "US", "JP")
        nodes.publish("US", msg_type="ACK", reference=("KR", "KR-A1"), reason="RECEIVED", alert_id="US-ACK")
        nodes.deliver("US", "KR", "JP")
        nodes.publish(
            "KR",
            msg_type="UPDATE",
            reference=("KR", "KR-A1"),
            alert_id="KR-A2",
            info={**info, "severity": "EXTREME"},
        )
        nodes.deliver("KR", "US", "JP")
        nodes.publish(
            "JP", msg_type="ACK", reference=("KR", "KR-A1"), reason="UNDER_REVIEW", alert_id="JP-ACK"
        )
        nodes.deliver("JP", "KR")
        nodes.deliver("JP", "US", via="KR")  # catch-up through the third node
        nodes.publish(
            "KR", msg_type="ALERT", info={**info, "headline": "Germanium export licensing"}, alert_id="KR-A3"
        )
        nodes.deliver("KR", "JP", "US")
        nodes.publish("KR", msg_type="ALERT", info=info, recipients=["JP"], alert_id="KR-A4")  # in flight
        paths = nodes.export(root)
    return Fed(
        root=root,
        trust=nodes.trust(),
        paths=paths,
        bundles={cc: read_bundle(p) for cc, p in paths.items()},
        signers=nodes.signers(),
    )


# ------------------------------------------------------------------ helpers
_counter = itertools.count()


def rebuild(
    fed: Fed,
    out: Path,
    cc: Country,
    entries: Sequence[bytes],
    *,
    resign: bool = True,
    size: int | None = None,
    checkpoint: str | None = None,
) -> Path:
    """Write cc's bundle with `entries`; the checkpoint re-signed with cc's log key unless given."""
    original = fed.bundles[cc]
    if checkpoint is None:
        checkpoint = sign_log(fed, cc, entries) if resign else original.checkpoint
    buffer = io.BytesIO()
    write_bundle(
        buffer,
        node=cc,
        log_origin=original.log_origin,
        entries=iter(entries),
        size=len(entries) if size is None else size,
        checkpoint=checkpoint,
        exported_at=original.exported_at,
    )
    path = out / f"{cc}-{next(_counter)}.ewxlog"
    path.write_bytes(buffer.getvalue())
    return path


def sign_log(
    fed: Fed,
    cc: Country,
    entries: Sequence[bytes],
    *,
    root: bytes | None = None,
    key: Ed25519PrivateKey | None = None,
) -> str:
    origin = fed.bundles[cc].log_origin
    cp = Checkpoint(
        origin=origin,
        size=len(entries),
        root_hash=root or root_from_leaf_hashes([leaf_hash(e) for e in entries]),
    )
    return sign_checkpoint(cp, name=origin, private_key=key or fed.signers[cc]["log"].private_key)


def errors(report: Report) -> list[tuple[str, int | None, str]]:
    return sorted(
        ((f.node, f.index, f.kind) for f in report.findings if f.severity == "error"),
        key=lambda t: (COUNTRIES.index(t[0]), -1 if t[1] is None else t[1], t[2]),
    )


def infos(report: Report) -> list[tuple[str, int | None, str]]:
    return [(f.node, f.index, f.kind) for f in report.findings if f.severity == "info"]


def _any(value: int) -> Any:
    """An int where the pb2 stubs want an enum type (tests write values no node writes)."""
    return value


def entry_of(data: bytes) -> pb.LogEntry:
    return pb.LogEntry.FromString(data)


def alert_of(data: bytes) -> pb.Alert:
    return pb.Alert.FromString(entry_of(data).alert.alert)


def signed_entry(
    kind: Any, alert: pb.Alert, signer: Signer, *, peer: Country | None, logged_at: datetime | None = None
) -> bytes:
    """A log entry holding `alert` signed by `signer`, as a node would write it."""
    payload = encode(alert)
    entry = pb.LogEntry(
        kind=kind,
        alert=pb.SignedAlert(
            alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload)
        ),
    )
    entry.logged_at.FromDatetime(logged_at or datetime.now(UTC))
    if peer is not None:
        entry.peer = _pb_country(peer)
    return encode(entry)


def _pb_country(cc: Country) -> Any:
    return pb.Country.Value(cc)


def verify(fed: Fed, *paths: Path, trust: Trust | None = None) -> Report:
    return verify_bundles(list(paths), trust=trust or fed.trust)


# ------------------------------------------------------------------ intact logs
def test_each_intact_log_alone_is_clean(fed: Fed) -> None:
    for cc in COUNTRIES:
        report = verify(fed, fed.paths[cc])
        assert report.findings == []
        assert report.clean
        assert report.nodes == [cc]
        n = len(fed.bundles[cc].entries)
        assert report.to_text().splitlines() == [
            f"{cc}'s log carries no signed checkpoint history: nothing was witnessed",
            f"VERDICT: clean (1 log, {n} entries)",
        ]


@pytest.mark.parametrize("pair", [("KR", "US"), ("US", "JP"), ("JP", "KR")])
def test_two_intact_logs_are_clean(fed: Fed, pair: tuple[Country, Country]) -> None:
    report = verify(fed, *(fed.paths[cc] for cc in pair))
    assert report.clean
    assert errors(report) == []
    expected_info = (
        [("KR", fed.find("KR", pb.ALERT_SENT, "KR-A4"), "undelivered")]
        if "JP" in pair and "KR" in pair
        else []
    )
    assert infos(report) == expected_info


def test_three_intact_logs_are_clean_with_one_alert_in_flight(fed: Fed) -> None:
    report = verify(fed, *fed.paths.values())
    total = sum(len(b.entries) for b in fed.bundles.values())
    assert report.clean
    assert report.nodes == ["KR", "US", "JP"]
    assert report.entries == total
    a4 = fed.find("KR", pb.ALERT_SENT, "KR-A4")
    assert infos(report) == [("KR", a4, "undelivered")]
    text = report.to_text().splitlines()
    assert [line.split("'")[0] for line in text[:3]] == ["KR", "US", "JP"]  # what was witnessed, per log
    assert text[3].startswith(f"KR #{a4} undelivered (info): KR-A4 seq 4 to JP")
    assert text[-1] == f"VERDICT: clean (3 logs, {total} entries)"
    doc = report.to_json()
    assert doc["verdict"] == "clean"
    assert doc["errors"] == 0
    assert doc["info"] == 1
    assert set(doc["nodes"]) == {"KR", "US", "JP"}
    assert doc["nodes"]["KR"]["checkpoint_verified"] is True
    assert doc["nodes"]["US"]["entries"] == len(fed.bundles["US"].entries)
    assert doc["findings"][0]["kind"] == "undelivered"
    json.dumps(doc)  # JSON-ready


def test_bundle_order_does_not_matter(fed: Fed) -> None:
    forward = verify(fed, fed.paths["KR"], fed.paths["US"], fed.paths["JP"])
    backward = verify(fed, fed.paths["JP"], fed.paths["US"], fed.paths["KR"])
    assert forward.findings == backward.findings
    assert backward.nodes == ["KR", "US", "JP"]


# ------------------------------------------------------------------ damaged bytes
@pytest.mark.parametrize(
    ("where", "kind"),
    [
        ("signature", "bad_alert_signature"),
        ("headline", "bad_alert_signature"),
        ("first byte", "malformed_entry"),
    ],
)
def test_one_flipped_byte_names_the_entry(fed: Fed, tmp_path: Path, where: str, kind: str) -> None:
    index = fed.find("KR", pb.ALERT_SENT, "KR-A4")
    entries = fed.entries("KR")
    data = bytearray(entries[index])
    if where == "signature":
        offset = bytes(data).find(entry_of(entries[index]).alert.signature) + 10
    elif where == "headline":
        offset = bytes(data).find(b"gallium")
    else:
        offset = 0
    data[offset] ^= 0xFF
    entries[index] = bytes(data)
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries, resign=False))
    assert errors(report) == [("KR", None, "root_mismatch"), ("KR", index, kind)]
    assert not report.clean
    assert report.to_text().splitlines()[-1] == "VERDICT: 2 findings"


def test_unknown_entry_key(fed: Fed, tmp_path: Path) -> None:
    index = fed.find("KR", pb.ALERT_SENT, "KR-A4")
    entries = fed.entries("KR")
    entry = entry_of(entries[index])
    entry.alert.key_id = "KR-alert-0000000000000000"
    entries[index] = encode(entry)
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries))
    assert errors(report) == [("KR", index, "unknown_key")]


def test_alert_signed_with_a_log_key(fed: Fed, tmp_path: Path) -> None:
    index = fed.find("KR", pb.ALERT_SENT, "KR-A4")
    entries = fed.entries("KR")
    log_key = fed.signers["KR"]["log"]
    entries[index] = signed_entry(pb.ALERT_SENT, alert_of(entries[index]), log_key, peer=None)
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries))
    assert errors(report) == [("KR", index, "bad_alert_signature")]


def test_alert_signed_by_another_member(fed: Fed, tmp_path: Path) -> None:
    """A KR alert carrying a valid US signature is not KR's alert."""
    index = fed.find("KR", pb.ALERT_SENT, "KR-A4")
    entries = fed.entries("KR")
    entries[index] = signed_entry(
        pb.ALERT_SENT, alert_of(entries[index]), fed.signers["US"]["alert"], peer=None
    )
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries))
    assert errors(report) == [("KR", index, "bad_alert_signature")]


def test_signed_garbage_is_malformed(fed: Fed, tmp_path: Path) -> None:
    """A valid signature over bytes that are no alert: the schema check still applies."""
    entries = fed.entries("JP")
    entry = pb.LogEntry(
        kind=pb.ALERT_RECEIVED,
        peer=pb.KR,
        alert=pb.SignedAlert(
            alert=b"\x12\x03abc\xff",
            key_id=fed.signers["KR"]["alert"].key_id,
            signature=fed.signers["KR"]["alert"].sign(PAYLOAD_ALERT, b"\x12\x03abc\xff"),
        ),
    )
    entry.logged_at.FromDatetime(datetime.now(UTC))
    entries.append(encode(entry))
    report = verify(fed, rebuild(fed, tmp_path, "JP", entries))
    assert errors(report) == [("JP", len(entries) - 1, "malformed_entry")]


def test_entry_layouts_no_node_writes(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("US")
    n = len(entries)
    received = entry_of(entries[0])
    no_peer = pb.LogEntry()
    no_peer.CopyFrom(received)
    no_peer.ClearField("peer")
    sent_with_peer = pb.LogEntry()
    sent_with_peer.CopyFrom(entry_of(entries[fed.find("US", pb.ALERT_SENT, "US-ACK")]))
    sent_with_peer.peer = pb.KR
    unknown_kind = pb.LogEntry()
    unknown_kind.CopyFrom(received)
    unknown_kind.kind = _any(9)
    unknown_field = encode(received) + b"\xa0\x06\x01"  # field 100, varint 1
    entries += [encode(no_peer), encode(sent_with_peer), encode(unknown_kind), unknown_field]
    report = verify(fed, rebuild(fed, tmp_path, "US", entries))
    assert errors(report) == [("US", n + i, "malformed_entry") for i in range(4)]


# ------------------------------------------------------------------ the tree and the checkpoint
def test_header_size_mismatch(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("KR")
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries, size=len(entries) + 1))
    assert errors(report) == [("KR", None, "size_mismatch")]


def test_root_mismatch_with_a_validly_signed_checkpoint(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("KR")
    checkpoint = sign_log(fed, "KR", entries, root=b"\x07" * 32)
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries, checkpoint=checkpoint))
    assert errors(report) == [("KR", None, "root_mismatch")]
    assert report.to_json()["nodes"]["KR"]["checkpoint_verified"] is True


def test_checkpoint_with_a_tampered_signature(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("KR")
    body, _, line = sign_log(fed, "KR", entries).rpartition("\n\n")
    name, encoded = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    checkpoint = f"{body}\n\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries, checkpoint=checkpoint))
    assert errors(report) == [("KR", None, "bad_checkpoint_signature")]
    assert report.to_json()["nodes"]["KR"]["checkpoint_verified"] is False


def test_checkpoint_signed_by_an_unknown_key(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("KR")
    checkpoint = sign_log(fed, "KR", entries, key=Ed25519PrivateKey.generate())
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries, checkpoint=checkpoint))
    assert errors(report) == [("KR", None, "unknown_key")]


def test_checkpoint_signed_by_another_nodes_log_key(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("KR")
    checkpoint = sign_log(fed, "KR", entries, key=fed.signers["US"]["log"].private_key)
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries, checkpoint=checkpoint))
    assert errors(report) == [("KR", None, "unknown_key")]


def test_checkpoint_that_is_no_note(fed: Fed, tmp_path: Path) -> None:
    report = verify(fed, rebuild(fed, tmp_path, "KR", fed.entries("KR"), checkpoint="not a note"))
    assert errors(report) == [("KR", None, "bad_checkpoint_signature")]


def test_cosignatures(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("KR")
    checkpoint = sign_log(fed, "KR", entries)
    cp = Checkpoint(
        origin=fed.bundles["KR"].log_origin,
        size=len(entries),
        root_hash=root_from_leaf_hashes([leaf_hash(e) for e in entries]),
    )
    line = cosign(
        cp,
        name="ewx.jp.node/witness",
        private_key=fed.signers["JP"]["witness"].private_key,
        timestamp=1_800_000_000,
    )
    good = verify(fed, rebuild(fed, tmp_path, "KR", entries, checkpoint=checkpoint + line))
    assert good.findings == []
    name, encoded = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    bad_line = f"{name} {base64.b64encode(bytes(raw)).decode()}\n"
    bad = verify(fed, rebuild(fed, tmp_path, "KR", entries, checkpoint=checkpoint + bad_line))
    assert errors(bad) == [("KR", None, "bad_cosignature")]
    # Issue 10, item 9: a flipped byte in the key hash made the line count for nothing.
    raw = bytearray(base64.b64decode(encoded))
    raw[0] ^= 0x01
    hash_line = f"{name} {base64.b64encode(bytes(raw)).decode()}\n"
    flipped = verify(fed, rebuild(fed, tmp_path, "KR", entries, checkpoint=checkpoint + hash_line))
    assert errors(flipped) == [("KR", None, "bad_cosignature")]
    assert "key hash matches no witness key of JP" in str(flipped.findings)


def _with_key_validity(trust: Trust, cc: Country, purpose: str, not_before: str, not_after: str) -> Trust:
    doc = json.loads(trust.to_json())
    for key in doc["members"][cc]["keys"]:
        if key["purpose"] == purpose:
            key["not_before"], key["not_after"] = not_before, not_after
    return Trust.parse(json.dumps(doc).encode())


def test_expired_alert_key(fed: Fed) -> None:
    trust = _with_key_validity(fed.trust, "KR", "alert", "2020-01-01T00:00:00Z", "2020-06-01T00:00:00Z")
    report = verify(fed, fed.paths["KR"], trust=trust)
    sent = [fed.find("KR", pb.ALERT_SENT, a) for a in ("KR-A1", "KR-A2", "KR-A3", "KR-A4")]
    assert errors(report) == [("KR", i, "expired_key") for i in sent]
    # At US, KR's alerts were received, and KR's receipt logged, under the expired key too.
    at_us = verify(fed, fed.paths["US"], trust=trust)
    signed_by_kr = sorted(
        [fed.find("US", pb.ALERT_RECEIVED, a) for a in ("KR-A1", "KR-A2", "KR-A3")]
        + [fed.find("US", pb.RECEIPT_RECEIVED, "US-ACK", "KR")]
    )
    assert errors(at_us) == [("US", i, "expired_key") for i in signed_by_kr]


def test_log_key_not_yet_valid_at_export(fed: Fed) -> None:
    trust = _with_key_validity(fed.trust, "JP", "log", "2090-01-01T00:00:00Z", "2091-01-01T00:00:00Z")
    report = verify(fed, fed.paths["JP"], trust=trust)
    assert errors(report) == [("JP", None, "expired_key")]


# ------------------------------------------------------------------ dropped, swapped, duplicated
def test_dropped_received_entry(fed: Fed, tmp_path: Path) -> None:
    a2 = fed.find("US", pb.ALERT_RECEIVED, "KR-A2")
    a3 = fed.find("US", pb.ALERT_RECEIVED, "KR-A3")
    entries = fed.entries("US")
    del entries[a2]
    us = rebuild(fed, tmp_path, "US", entries)
    assert errors(verify(fed, us)) == [("US", a3 - 1, "sequence_gap")]
    both = verify(fed, fed.paths["KR"], us)
    assert errors(both) == [
        ("KR", fed.find("KR", pb.ALERT_SENT, "KR-A2"), "sent_not_received"),
        ("KR", fed.find("KR", pb.RECEIPT_RECEIVED, "KR-A3", "US"), "receipt_mismatch"),  # index moved
        ("US", a3 - 1, "sequence_gap"),
    ]


def test_dropped_sent_entry(fed: Fed, tmp_path: Path) -> None:
    a3 = fed.find("KR", pb.ALERT_SENT, "KR-A3")
    a4 = fed.find("KR", pb.ALERT_SENT, "KR-A4")
    receipts = sorted(fed.find("KR", pb.RECEIPT_RECEIVED, "KR-A3", cc) for cc in ("US", "JP"))
    entries = fed.entries("KR")
    del entries[a3]
    kr = rebuild(fed, tmp_path, "KR", entries)
    report = verify(fed, kr, fed.paths["US"], fed.paths["JP"])
    assert errors(report) == [
        ("KR", receipts[0] - 1, "receipt_mismatch"),
        ("KR", receipts[1] - 1, "receipt_mismatch"),
        ("KR", a4 - 1, "sequence_gap"),
        ("US", fed.find("US", pb.ALERT_RECEIVED, "KR-A3"), "received_not_sent"),
        ("JP", fed.find("JP", pb.ALERT_RECEIVED, "KR-A3"), "received_not_sent"),
    ]
    assert infos(report) == [("KR", a4 - 1, "undelivered")]


def test_swapped_entries(fed: Fed, tmp_path: Path) -> None:
    a2 = fed.find("KR", pb.ALERT_SENT, "KR-A2")
    a3 = fed.find("KR", pb.ALERT_SENT, "KR-A3")
    entries = fed.entries("KR")
    entries[a2], entries[a3] = entries[a3], entries[a2]
    report = verify(fed, rebuild(fed, tmp_path, "KR", entries))
    # Seq 2 now follows seq 3 in both of KR's streams (to US and to JP).
    assert errors(report) == [("KR", a3, "sequence_reorder")] * 2
    details = sorted(f.detail for f in report.findings)
    assert details == ["KR->JP seq 2 logged after seq 3", "KR->US seq 2 logged after seq 3"]
    line = report.to_text().splitlines()[1]  # after the log's witnessing line
    assert line == f"KR #{a3} sequence_reorder: KR->US seq 2 logged after seq 3"


def test_sent_and_receipted_but_not_in_the_receivers_log(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("US")
    assert entries.pop() == fed.bundles["US"].entries[fed.find("US", pb.ALERT_RECEIVED, "KR-A3")]
    us = rebuild(fed, tmp_path, "US", entries)
    assert errors(verify(fed, us)) == []
    report = verify(fed, fed.paths["KR"], us)
    assert errors(report) == [("KR", fed.find("KR", pb.ALERT_SENT, "KR-A3"), "sent_not_received")]


def test_duplicated_alert_and_receipt(fed: Fed, tmp_path: Path) -> None:
    us = fed.entries("US")
    us.append(us[fed.find("US", pb.ALERT_RECEIVED, "KR-A1")])
    assert errors(verify(fed, rebuild(fed, tmp_path, "US", us))) == [("US", len(us) - 1, "duplicate")]
    kr = fed.entries("KR")
    kr.append(kr[fed.find("KR", pb.RECEIPT_RECEIVED, "KR-A1", "JP")])
    assert errors(verify(fed, rebuild(fed, tmp_path, "KR", kr))) == [("KR", len(kr) - 1, "duplicate")]


# ------------------------------------------------------------------ forged and injected
def test_forged_receipt(fed: Fed, tmp_path: Path) -> None:
    index = fed.find("KR", pb.RECEIPT_RECEIVED, "KR-A2", "US")
    entries = fed.entries("KR")
    entry = entry_of(entries[index])
    forger = Signer(key_id=KeyId(entry.receipt.key_id), private_key=Ed25519PrivateKey.generate())
    entry.receipt.signature = forger.sign(PAYLOAD_RECEIPT, entry.receipt.receipt)
    entries[index] = encode(entry)
    kr = rebuild(fed, tmp_path, "KR", entries)
    assert errors(verify(fed, kr)) == [("KR", index, "bad_receipt_signature")]
    all_three = verify(fed, kr, fed.paths["US"], fed.paths["JP"])
    assert errors(all_three) == [("KR", index, "bad_receipt_signature")]


def test_receipt_signed_by_the_wrong_member(fed: Fed, tmp_path: Path) -> None:
    """JP's valid signature on a receipt logged as US's."""
    index = fed.find("KR", pb.RECEIPT_RECEIVED, "KR-A2", "US")
    entries = fed.entries("KR")
    entry = entry_of(entries[index])
    jp = fed.signers["JP"]["alert"]
    entry.receipt.key_id = jp.key_id
    entry.receipt.signature = jp.sign(PAYLOAD_RECEIPT, entry.receipt.receipt)
    entries[index] = encode(entry)
    assert errors(verify(fed, rebuild(fed, tmp_path, "KR", entries))) == [
        ("KR", index, "bad_receipt_signature")
    ]


def test_receipt_for_another_sequence(fed: Fed, tmp_path: Path) -> None:
    index = fed.find("KR", pb.RECEIPT_RECEIVED, "KR-A2", "US")
    entries = fed.entries("KR")
    entry = entry_of(entries[index])
    body = pb.ReceiptBody.FromString(entry.receipt.receipt)
    body.seq = 7
    us = fed.signers["US"]["alert"]
    entry.receipt.receipt = encode(body)
    entry.receipt.signature = us.sign(PAYLOAD_RECEIPT, entry.receipt.receipt)
    entries[index] = encode(entry)
    assert errors(verify(fed, rebuild(fed, tmp_path, "KR", entries))) == [("KR", index, "receipt_mismatch")]


def test_injected_alert_signed_by_the_right_key(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("US")
    alert = alert_of(entries[fed.find("US", pb.ALERT_RECEIVED, "KR-A3")])
    alert.alert_id = "KR-INJECTED"
    del alert.deliveries[:]
    alert.deliveries.add(recipient=pb.US, seq=4)  # the next one towards US: no gap
    entries.append(signed_entry(pb.ALERT_RECEIVED, alert, fed.signers["KR"]["alert"], peer="KR"))
    us = rebuild(fed, tmp_path, "US", entries)
    assert errors(verify(fed, us)) == []  # one log cannot tell
    assert errors(verify(fed, fed.paths["KR"], us)) == [("US", len(entries) - 1, "received_not_sent")]


def test_two_alerts_at_one_sequence_position(fed: Fed, tmp_path: Path) -> None:
    entries = fed.entries("US")
    a3 = fed.find("US", pb.ALERT_RECEIVED, "KR-A3")
    alert = alert_of(entries[a3])
    alert.alert_id = "KR-OTHER"
    alert.info.headline = "Something else at the same position"
    del alert.deliveries[:]
    alert.deliveries.add(recipient=pb.US, seq=3)  # A3's position
    entries.append(signed_entry(pb.ALERT_RECEIVED, alert, fed.signers["KR"]["alert"], peer="KR"))
    us = rebuild(fed, tmp_path, "US", entries)
    assert errors(verify(fed, us)) == [("US", len(entries) - 1, "equivocation")]
    # With KR's log it is also an alert KR never logged as sent; the position
    # conflict with KR's own A3 is not reported a second time.
    assert errors(verify(fed, fed.paths["KR"], us)) == [
        ("US", len(entries) - 1, "equivocation"),
        ("US", len(entries) - 1, "received_not_sent"),
    ]


def _kr_a1_told_to_jp_as(
    fed: Fed, tmp_path: Path, edit: Callable[[pb.Alert], None]
) -> tuple[Path, int, pb.Alert]:
    """JP's log with its KR-A1 entry replaced by `edit` of that alert, validly signed by KR
    and logged at the same time: the rebuilt log, the entry's index and the alert."""
    entries = fed.entries("JP")
    index = fed.find("JP", pb.ALERT_RECEIVED, "KR-A1")
    alert = alert_of(entries[index])
    edit(alert)
    entries[index] = signed_entry(
        pb.ALERT_RECEIVED,
        alert,
        fed.signers["KR"]["alert"],
        peer="KR",
        logged_at=entry_of(entries[index]).logged_at.ToDatetime(tzinfo=UTC),
    )
    return rebuild(fed, tmp_path, "JP", entries), index, alert


def test_two_alerts_at_one_sequence_position_in_two_logs(fed: Fed, tmp_path: Path) -> None:
    """JP's log holds, where KR-A1 was, another validly signed KR alert at A1's seq towards
    JP: each log alone is consistent; together the position holds two alerts."""

    def elsewhere(alert: pb.Alert) -> None:
        alert.alert_id = "KR-ELSEWHERE"
        alert.info.headline = "Another story at A1's position towards Japan"

    jp, index, alert = _kr_a1_told_to_jp_as(fed, tmp_path, elsewhere)
    assert errors(verify(fed, jp)) == []
    report = verify(fed, fed.paths["KR"], jp)
    # Found once, at the alert's first delivery: an entry already found is not found again.
    first = alert.deliveries[0]
    (conflict,) = [f for f in report.findings if f.kind == "equivocation"]
    assert (conflict.node, conflict.index) == ("JP", index)
    assert conflict.detail == (
        f"KR alert KR-ELSEWHERE has seq {first.seq} towards {pb.Country.Name(first.recipient)}, "
        f"but KR #{fed.find('KR', pb.ALERT_SENT, 'KR-A1')} holds KR-A1 at that position"
    )
    assert ("JP", index, "received_not_sent") in errors(report)
    # KR holds JP's receipt for A1, which JP's log now lacks.
    assert ("KR", fed.find("KR", pb.ALERT_SENT, "KR-A1"), "sent_not_received") in errors(report)


def test_one_alert_id_told_differently_to_two_peers(fed: Fed, tmp_path: Path) -> None:
    def retold(alert: pb.Alert) -> None:
        alert.info.headline = "A different story for Japan"

    jp, index, _ = _kr_a1_told_to_jp_as(fed, tmp_path, retold)
    assert errors(verify(fed, jp)) == []
    # Without KR's log: US and JP hold two validly signed versions of KR-A1.
    assert errors(verify(fed, fed.paths["US"], jp)) == [("JP", index, "equivocation")]
    # With KR's log: JP's version differs from what KR logged as sent.
    report = verify(fed, fed.paths["KR"], fed.paths["US"], jp)
    assert errors(report) == [("JP", index, "content_mismatch")]


def test_alert_in_a_log_it_does_not_belong_to(fed: Fed, tmp_path: Path) -> None:
    us = fed.entries("US")
    a4 = alert_of(fed.bundles["KR"].entries[fed.find("KR", pb.ALERT_SENT, "KR-A4")])  # to JP only
    us.append(signed_entry(pb.ALERT_RECEIVED, a4, fed.signers["KR"]["alert"], peer="KR"))
    us.append(signed_entry(pb.ALERT_SENT, a4, fed.signers["KR"]["alert"], peer=None))
    report = verify(fed, rebuild(fed, tmp_path, "US", us))
    assert errors(report) == [("US", len(us) - 2, "misattributed"), ("US", len(us) - 1, "misattributed")]


# ------------------------------------------------------------------ input errors and the report
def test_two_logs_of_one_node_are_refused(fed: Fed) -> None:
    with pytest.raises(BundleError, match="two logs of KR"):
        verify(fed, fed.paths["KR"], fed.paths["KR"])


def test_unreadable_bundle_is_a_bundle_error(fed: Fed, tmp_path: Path) -> None:
    junk = tmp_path / "junk.ewxlog"
    junk.write_bytes(b"not a bundle")
    with pytest.raises(BundleError):
        verify(fed, junk)
    with pytest.raises(BundleError):
        verify(fed, tmp_path / "missing.ewxlog")


def test_report_text_and_json() -> None:
    report = Report(
        findings=[
            Finding("KR", 12, "bad_alert_signature", "signature does not verify"),
            Finding("US", None, "root_mismatch", "differs"),
            Finding("JP", 3, "undelivered", "in flight", severity="info"),
        ],
        nodes=["KR", "US", "JP"],
        entries=40,
    )
    assert not report.clean
    assert report.to_text().splitlines() == [
        "KR #12 bad_alert_signature: signature does not verify",
        "US log root_mismatch: differs",
        "JP #3 undelivered (info): in flight",
        "VERDICT: 2 findings",
    ]
    doc = report.to_json()
    assert doc["verdict"] == "findings"
    assert doc["nodes"]["KR"] == {"errors": 1, "info": 0}
    assert doc["nodes"]["JP"] == {"errors": 0, "info": 1}
    assert doc["findings"][1] == {
        "node": "US",
        "index": None,
        "kind": "root_mismatch",
        "severity": "error",
        "detail": "differs",
    }


# ------------------------------------------------------------------ never raises
def _mutations(fed: Fed) -> st.SearchStrategy[bytes]:
    real = [e for b in fed.bundles.values() for e in b.entries]

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(real)))
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)

    @st.composite
    def signed_junk(draw: st.DrawFn) -> bytes:
        """Arbitrary payloads under valid KR signatures: reach the decoders."""
        kind: Any = draw(st.sampled_from([pb.ALERT_SENT, pb.ALERT_RECEIVED, pb.RECEIPT_RECEIVED, 0, 7]))
        payload = draw(st.binary(max_size=200))
        signer = fed.signers[draw(st.sampled_from(COUNTRIES))]["alert"]
        entry = pb.LogEntry(kind=kind, peer=_any(draw(st.integers(0, 5))))
        if draw(st.booleans()):
            entry.logged_at.seconds = draw(st.integers(-(2**40), 2**40))
            entry.logged_at.nanos = draw(st.integers(0, 999_999_999))
        if kind == pb.RECEIPT_RECEIVED:
            entry.receipt.CopyFrom(
                pb.SignedReceipt(
                    receipt=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_RECEIPT, payload)
                )
            )
        else:
            entry.alert.CopyFrom(
                pb.SignedAlert(
                    alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload)
                )
            )
        return encode(entry)

    return st.one_of(st.binary(max_size=300), st.sampled_from(real), mutated(), signed_junk())


@pytest.fixture(scope="module")
def entry_strategy(fed: Fed) -> st.SearchStrategy[bytes]:
    return _mutations(fed)


def test_verify_loaded_never_raises(fed: Fed, entry_strategy: st.SearchStrategy[bytes]) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        nodes = data.draw(st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=3, unique=True))
        bundles = []
        for cc in nodes:
            original = fed.bundles[cc]
            entries = data.draw(st.lists(entry_strategy, max_size=12))
            checkpoint = data.draw(
                st.one_of(
                    st.just(original.checkpoint), st.text(max_size=200), st.just(sign_log(fed, cc, entries))
                )
            )
            bundles.append(
                replace(
                    original,
                    entries=entries,
                    checkpoint=checkpoint,
                    declared_size=data.draw(st.integers(0, 2**64 - 1)),
                )
            )
        report = verify_loaded(bundles, trust=fed.trust)
        assert all(f.kind in KINDS for f in report.findings)
        assert report.entries == sum(len(b.entries) for b in bundles)
        report.to_text()
        json.dumps(report.to_json())

    check()


def test_a_history_cosignature_with_a_flipped_key_hash_is_a_finding(fed: Fed) -> None:
    """Issue 10, item 9: matched by key hash only, such a line used to count for nothing."""
    from node.audit import history_findings

    entries = fed.entries("KR")
    cp = Checkpoint(
        origin=fed.bundles["KR"].log_origin,
        size=len(entries),
        root_hash=root_from_leaf_hashes([leaf_hash(e) for e in entries]),
    )
    note = sign_log(fed, "KR", entries)
    line = cosign(
        cp,
        name="ewx.us.node/witness",
        private_key=fed.signers["US"]["witness"].private_key,
        timestamp=1_800_000_000,
    )
    name, encoded = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[0] ^= 0x01
    flipped = f"{name} {base64.b64encode(bytes(raw)).decode()}\n"
    trust = fed.trust
    good = history_findings(replace(fed.bundles["KR"], entries=entries, history=[note + line]), trust=trust)
    bad = history_findings(replace(fed.bundles["KR"], entries=entries, history=[note + flipped]), trust=trust)
    assert "bad_cosignature" not in {f.kind for f in good}
    assert [f.detail for f in bad if f.kind == "bad_cosignature"] == [
        f"US's cosignature on checkpoint {cp.size} names no witness key of theirs (key hash)"
    ]


def test_a_moved_export_time_is_a_finding(fed: Fed, tmp_path: Path) -> None:
    """Issue 10, item 9: the header's export time was covered by no signature."""
    from node.audit import signed_export_time
    from node.crypto import parse_checkpoint, parse_signed_note

    original = fed.bundles["KR"]
    signed = signed_export_time(parse_checkpoint(parse_signed_note(original.checkpoint).body).extensions)
    assert signed == original.exported_at  # every export signs its own time

    def with_time(at: datetime) -> Path:
        buffer = io.BytesIO()
        write_bundle(
            buffer,
            node="KR",
            log_origin=original.log_origin,
            entries=iter(fed.entries("KR")),
            size=len(original.entries),
            checkpoint=original.checkpoint,
            exported_at=at,
            history=original.history,
            witnessed=original.witnessed,
        )
        path = tmp_path / f"KR-{next(_counter)}.ewxlog"
        path.write_bytes(buffer.getvalue())
        return path

    assert errors(verify(fed, with_time(original.exported_at))) == []
    moved = verify(fed, with_time(original.exported_at + timedelta(days=400)))
    assert errors(moved) == [("KR", None, "export_time_mismatch")]


def test_every_audit_kind_is_described_and_an_undescribed_one_is_refused() -> None:
    from node.audit import KINDS, AuditKind
    from node.audit._verify import _Findings

    assert set(AuditKind) == set(KINDS)
    found = _Findings()
    found.add("KR", 3, "sequence_gap", "seq 4 skipped")
    assert found.items[0].kind is AuditKind.SEQUENCE_GAP
    with pytest.raises(ValueError, match="not_a_kind"):
        found.add("KR", 3, "not_a_kind", "nobody described this")
