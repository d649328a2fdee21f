"""Regenerate the golden exported logs in tests/goldens/ (intact and tampered).

A real three-node federation is built in a temporary folder from fixed
Ed25519 seeds (alert, log and witness key of each country, deterministic
Ed25519 CA certificates in the trust file), three NodeServices
(tests/support/audit_factories.ThreeNodes) run a fixed scenario on one ticking clock
(2023-08-01T00:00:00Z, one second later on every read) with envelopes and
witness requests moved by hand, and each log is exported with
node.service.export_bundle at a fixed time. Ed25519 signing is
deterministic, so every byte is reproducible; tests/node/audit/test_goldens.py
regenerates into a temporary folder and fails if the committed files drift.

Each tampered set is the three intact logs with one of them damaged the way an
attacker or a fault would, named after its defect. Where the damage needs a
new signature (the export checkpoint over the tampered entries, a forked
checkpoint) the real keys sign it, so only the intended defect shows. The
findings each set must produce are written down here by hand, from the
defect, not taken from the audit: expected.json is the specification the
audit is tested against.

`--check` compares instead of writing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tomli_w  # noqa: E402

from node.audit import Bundle, read_bundle, write_bundle  # noqa: E402
from node.checks import add_cosignature, verify_witness_cosignature  # noqa: E402
from node.clock import iso  # noqa: E402
from node.crypto import (  # noqa: E402
    KEY_PURPOSES,
    PAYLOAD_ALERT,
    PAYLOAD_RECEIPT,
    Checkpoint,
    NoteSignature,
    Signer,
    cosign,
    digest,
    key_id_for,
    leaf_hash,
    pae,
    parse_checkpoint,
    parse_signed_note,
    raw_public_key,
    root_from_leaf_hashes,
    sign_checkpoint,
)
from node.ids import COUNTRIES, Country, peers_of  # noqa: E402
from node.message import (  # noqa: E402
    Alert,
    alert_to_bytes,
    encode,
    timestamp,
)
from node.pki import write_private_key  # noqa: E402
from node.trust import FORMAT, KeyEntry, Member, Trust, log_origin, witness_name  # noqa: E402
from node.wire import ewx_pb2 as pb  # noqa: E402
from scripts.fixed_ca import fixed_ca_pem  # noqa: E402
from tests.support.audit_factories import POLICY_MOVE, WATCHLIST_V1, ThreeNodes, TickClock  # noqa: E402

OUT = ROOT / "tests" / "goldens"
START = datetime(2023, 8, 1, tzinfo=UTC)
"""The scenario's clock starts here and reads one second later each time."""
EXPORTED_AT = datetime(2023, 8, 1, 1, 0, tzinfo=UTC)
"""Every log is exported at this instant, an hour after the start."""
LATE_EXPORT = datetime(2023, 8, 2, tzinfo=UTC)
"""JP's export for key_outside_validity: after its log key's validity ended."""
KEYS_NOT_BEFORE = datetime(2023, 1, 1, tzinfo=UTC)
KEYS_NOT_AFTER = datetime(2033, 1, 1, tzinfo=UTC)
SHORT_KEY: tuple[Country, str] = ("JP", "log")
SHORT_KEY_NOT_AFTER = datetime(2023, 8, 1, 12, 0, tzinfo=UTC)
"""JP's log key is valid only until noon on the scenario's day: the scenario and
the regular export fall inside, the late export does not."""
FEDERATION = "ewx-goldens"

INFO: dict[str, Any] = {
    "category": "EXPORT_CONTROL",
    "urgency": "IMMEDIATE",
    "severity": "SEVERE",
    "certainty": "OBSERVED",
    "expires": START + timedelta(days=30),
    "headline": "Export licensing on gallium",
    "items": [{"hs_code": "811292", "hs_edition": "HS2022"}],
    "source_countries": ["CN"],
    "supply_impact": "ABOVE_60",
}

SENT, RECEIVED, RECEIPT = pb.ALERT_SENT, pb.ALERT_RECEIVED, pb.RECEIPT_RECEIVED

Finding = tuple[Country, int | None, str]


# ------------------------------------------------------------------ keys and federation
def _seed(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"ewx golden {label}".encode()).digest())


def _signer(cc: Country, purpose: str) -> Signer:
    key = _seed(f"{cc} {purpose}")
    return Signer(key_id=key_id_for(cc, purpose, key.public_key()), private_key=key)  # type: ignore[arg-type]


def _ca_pem(country: Country) -> str:
    return fixed_ca_pem(
        _seed(f"{country} ca"),
        common_name=f"EWX {country} golden CA",
        serial_label=f"golden {country}",
        not_before=KEYS_NOT_BEFORE,
        not_after=KEYS_NOT_AFTER,
    )


def _write_federation(root: Path) -> None:
    """Key files (0600), <CC>/node.toml files and federation.json under `root`."""
    root.mkdir(parents=True)
    members: dict[Country, Member] = {}
    for index, cc in enumerate(COUNTRIES):
        folder = root / cc
        for part in ("keys", "tls", "data"):
            (folder / part).mkdir(parents=True)
        keys: list[KeyEntry] = []
        for purpose in KEY_PURPOSES:
            signer = _signer(cc, purpose)
            write_private_key(folder / "keys" / f"{purpose}.key", signer.private_key)
            short = (cc, purpose) == SHORT_KEY
            keys.append(
                KeyEntry(
                    key_id=signer.key_id,
                    owner=cc,
                    purpose=purpose,
                    public_key=raw_public_key(signer.private_key.public_key()),
                    not_before=KEYS_NOT_BEFORE,
                    not_after=SHORT_KEY_NOT_AFTER if short else KEYS_NOT_AFTER,
                )
            )
        ca_pem = _ca_pem(cc)
        # NodeConfig wants TLS files; the gateway is never started, so the CA
        # certificate and key stand in for the node's.
        (folder / "tls" / "node.pem").write_text(ca_pem)
        write_private_key(folder / "tls" / "node.key", _seed(f"{cc} ca"))
        config = {
            "node_id": cc,
            "listen": f"127.0.0.1:{7401 + index}",
            "data_dir": "data",
            "trust_file": "../federation.json",
            "tls": {"certificate": "tls/node.pem", "private_key": "tls/node.key"},
            "keys": {purpose: f"keys/{purpose}.key" for purpose in KEY_PURPOSES},
            "peers": {p: {"address": f"127.0.0.1:{7401 + COUNTRIES.index(p)}"} for p in peers_of(cc)},
        }
        (folder / "node.toml").write_text(tomli_w.dumps(config))
        members[cc] = Member(ca_certificate=ca_pem, keys=tuple(keys))
    trust = Trust(format=FORMAT, federation=FEDERATION, members=members)
    (root / "federation.json").write_bytes(trust.to_json())


# ------------------------------------------------------------------ the scenario
def _run_scenario(fed: Path, out: Path) -> dict[str, str]:
    """Run the scenario over the federation in `fed` and export every log to out/<CC>.ewxlog
    (JP also late, to out/JP.late.ewxlog). The ids the nodes chose: proposal, votes, report."""
    with ThreeNodes(fed, clock=TickClock(START)) as nodes:
        nodes.publish("KR", msg_type="ALERT", info=INFO, alert_id="KR-A1")
        nodes.deliver("KR", "US", "JP")
        nodes.publish("US", msg_type="ACK", reference=("KR", "KR-A1"), reason="RECEIVED", alert_id="US-ACK1")
        nodes.deliver("US", "KR", "JP")
        nodes.publish(
            "JP", msg_type="ACK", reference=("KR", "KR-A1"), reason="UNDER_REVIEW", alert_id="JP-ACK1"
        )
        nodes.deliver("JP", "KR", "US")
        # The watchlist agreement: KR proposes version 1, US and JP accept it.
        ids = {"proposal": nodes.propose("KR", add=WATCHLIST_V1, hs_edition="HS2022")}
        nodes.deliver("KR", "US", "JP")
        ids["us_vote"] = nodes.vote("US", "KR", ids["proposal"], "ACCEPT")
        nodes.deliver("US", "KR", "JP")
        ids["jp_vote"] = nodes.vote("JP", "KR", ids["proposal"], "ACCEPT")
        nodes.deliver("JP", "KR", "US")
        ids["report"] = nodes.report("US", POLICY_MOVE)
        nodes.deliver("US", "KR", "JP")
        nodes.checkpoint_round()
        nodes.publish(
            "US",
            msg_type="RESPONSE",
            reference=("KR", "KR-A1"),
            response={"measures": ["STOCKPILE_RELEASE"], "assistance": "OFFERED"},
            alert_id="US-R1",
        )
        nodes.deliver("US", "KR", "JP")
        nodes.checkpoint_round()
        # The tail: logged after the last cosigned checkpoint.
        nodes.publish(
            "KR",
            msg_type="UPDATE",
            reference=("KR", "KR-A1"),
            info={**INFO, "severity": "EXTREME"},
            alert_id="KR-A2",
        )
        nodes.deliver("KR", "US", "JP")
        nodes.publish(
            "KR", msg_type="CANCEL", reference=("KR", "KR-A2"), reason="SITUATION_RESOLVED", alert_id="KR-X3"
        )
        nodes.deliver("KR", "US", "JP")
    nodes.export(out, now=EXPORTED_AT)
    nodes.export(out, now=LATE_EXPORT, nodes=["JP"], suffix=".late")
    return ids


# ------------------------------------------------------------------ reading and rewriting logs
@dataclass
class Fed:
    """The intact exported logs, to look entries up in and damage copies of."""

    trust: Trust
    bundles: dict[Country, Bundle]
    raw: dict[Country, bytes]
    late_jp: bytes
    ids: dict[str, str]
    """The ids the nodes chose for the watchlist proposal and votes and the policy report."""

    def find(self, cc: Country, kind: int, alert_id: str, peer: Country | None = None) -> int:
        """Index of the entry of `kind` about `alert_id` (a receipt: from `peer`) in cc's intact log."""
        for index, data in enumerate(self.bundles[cc].entries):
            entry = pb.LogEntry.FromString(data)
            if entry.kind != kind:
                continue
            if kind == RECEIPT:
                body = pb.ReceiptBody.FromString(entry.receipt.receipt)
                if body.alert_id == alert_id and pb.Country.Name(entry.peer) == peer:
                    return index
            elif pb.Alert.FromString(entry.alert.alert).alert_id == alert_id:
                return index
        raise LookupError(f"no entry of kind {kind} for {alert_id} in {cc}'s log")

    def history_sizes(self, cc: Country) -> list[int]:
        return [parse_checkpoint(parse_signed_note(n).body).size for n in self.bundles[cc].history]

    def seqs(self) -> Seqs:
        """The next sequence number of every stream, after the intact logs."""
        last: dict[tuple[str, str], int] = {}
        for bundle in self.bundles.values():
            for data in bundle.entries:
                entry = pb.LogEntry.FromString(data)
                if entry.kind == RECEIPT:
                    continue
                alert = pb.Alert.FromString(entry.alert.alert)
                origin = pb.Country.Name(alert.origin)
                for d in alert.deliveries:
                    key = (origin, pb.Country.Name(d.recipient))
                    last[key] = max(last.get(key, 0), d.seq)
        return Seqs(last)

    def last_logged(self, cc: Country) -> datetime:
        return pb.LogEntry.FromString(self.bundles[cc].entries[-1]).logged_at.ToDatetime(tzinfo=UTC)


class Seqs:
    """Sequence numbers for messages appended to the intact logs: each stream's next, in turn."""

    def __init__(self, last: dict[tuple[str, str], int]) -> None:
        self.last = dict(last)

    def deliveries(self, origin: str, *recipients: str) -> list[dict[str, Any]]:
        """One delivery per recipient, each the next in its stream from `origin`."""
        out = []
        for recipient in recipients:
            seq = self.last[(origin, recipient)] = self.last.get((origin, recipient), 0) + 1
            out.append({"recipient": recipient, "seq": seq})
        return out


OTHER_VOTERS: tuple[tuple[Country, Country], ...] = (("KR", "US"), ("US", "KR"))
"""JP's peers, each with the other: who votes on what JP proposes, and to whom."""


def _message(fields: dict[str, Any]) -> bytes:
    """The canonical bytes of an alert with the envelope fields every message carries."""
    return alert_to_bytes(Alert.model_validate({"schema_version": 1, "status": "ACTUAL", **fields}))


def _entry(
    kind: pb.EntryKind,
    *,
    at: datetime,
    payload: bytes,
    signer: Country,
    peer: Country | None = None,
    signature: bytes | None = None,
) -> bytes:
    """A log entry holding `payload`, signed with `signer`'s real alert key unless `signature` is given."""
    key = _signer(signer, "alert")
    entry = pb.LogEntry(kind=kind, logged_at=timestamp(at), peer=peer or "COUNTRY_UNSPECIFIED")
    entry.alert.CopyFrom(
        pb.SignedAlert(
            alert=payload,
            key_id=key.key_id,
            signature=key.sign(PAYLOAD_ALERT, payload) if signature is None else signature,
        )
    )
    return encode(entry)


def _ref(origin: Country, alert_id: str, payload: bytes) -> dict[str, Any]:
    return {"origin": origin, "alert_id": alert_id, "digest": digest(payload)}


def _checkpoint(cc: Country, entries: list[bytes]) -> Checkpoint:
    root = root_from_leaf_hashes([leaf_hash(e) for e in entries])
    return Checkpoint(origin=log_origin(cc), size=len(entries), root_hash=root)


def _sign(cc: Country, cp: Checkpoint) -> str:
    return sign_checkpoint(cp, name=log_origin(cc), private_key=_signer(cc, "log").private_key)


def _write(
    bundle: Bundle,
    *,
    entries: list[bytes] | None = None,
    history: list[str] | None = None,
    witnessed: list[tuple[Country, str]] | None = None,
    checkpoint: str | None = None,
) -> bytes:
    """The bundle with the given parts replaced; new entries get an export checkpoint
    re-signed over them with the node's real log key, unless one is given."""
    cc = bundle.node
    if entries is None:
        entries = bundle.entries
    elif checkpoint is None:
        checkpoint = _sign(cc, _checkpoint(cc, entries))
    out = io.BytesIO()
    write_bundle(
        out,
        node=cc,
        log_origin=bundle.log_origin,
        entries=iter(entries),
        size=len(entries),
        checkpoint=bundle.checkpoint if checkpoint is None else checkpoint,
        exported_at=bundle.exported_at,
        history=bundle.history if history is None else history,
        witnessed=bundle.witnessed if witnessed is None else witnessed,
    )
    return out.getvalue()


# ------------------------------------------------------------------ the defects
@dataclass(frozen=True)
class Defect:
    """One tampered set: which log is damaged, how, and what the audit must find."""

    name: str
    node: Country
    description: str
    build: Callable[[Fed], tuple[bytes, list[Finding]]]
    """The damaged log's bytes and the expected error findings over the three logs."""


def _flipped_byte(fed: Fed) -> tuple[bytes, list[Finding]]:
    i = fed.find("US", RECEIVED, "KR-X3")
    entries = list(fed.bundles["US"].entries)
    data = bytearray(entries[i])
    signature = pb.LogEntry.FromString(entries[i]).alert.signature
    data[bytes(data).find(signature) + 32] ^= 0x01
    entries[i] = bytes(data)
    # No new checkpoint: the stored one still pins the original bytes.
    damaged = _write(fed.bundles["US"], entries=entries, checkpoint=fed.bundles["US"].checkpoint)
    return damaged, [
        ("KR", fed.find("KR", SENT, "KR-X3"), "sent_not_received"),
        ("US", None, "root_mismatch"),
        ("US", i, "bad_alert_signature"),
    ]


def _dropped_entry(fed: Fed) -> tuple[bytes, list[Finding]]:
    a2 = fed.find("US", RECEIVED, "KR-A2")
    x3 = fed.find("US", RECEIVED, "KR-X3")
    entries = list(fed.bundles["US"].entries)
    del entries[a2]
    return _write(fed.bundles["US"], entries=entries), [
        ("KR", fed.find("KR", SENT, "KR-A2"), "sent_not_received"),
        # US's receipt for KR-X3 names the index X3 had before the drop.
        ("KR", fed.find("KR", RECEIPT, "KR-X3", "US"), "receipt_mismatch"),
        ("US", x3 - 1, "sequence_gap"),
    ]


def _swapped_entries(fed: Fed) -> tuple[bytes, list[Finding]]:
    a2 = fed.find("KR", SENT, "KR-A2")
    x3 = fed.find("KR", SENT, "KR-X3")
    entries = list(fed.bundles["KR"].entries)
    entries[a2], entries[x3] = entries[x3], entries[a2]
    # Seq 2 now follows seq 3 in both of KR's streams (to US and to JP).
    return _write(fed.bundles["KR"], entries=entries), [
        ("KR", x3, "sequence_reorder"),
        ("KR", x3, "sequence_reorder"),
    ]


def _injected_entry(fed: Fed) -> tuple[bytes, list[Finding]]:
    entries = list(fed.bundles["JP"].entries)
    last = pb.LogEntry.FromString(entries[-1])
    at = last.logged_at.ToDatetime(tzinfo=UTC) + timedelta(seconds=1)
    alert = Alert.model_validate(
        {
            "schema_version": 1,
            "alert_id": "KR-X9",
            "origin": "KR",
            "sent": at,
            "status": "ACTUAL",
            "msg_type": "CANCEL",
            "deliveries": fed.seqs().deliveries("KR", "JP"),
            "references": [
                {"origin": "KR", "alert_id": "KR-A1", "digest": _alert_digest(fed, "KR", "KR-A1")}
            ],
            "reason": "ISSUED_IN_ERROR",
        }
    )
    payload = alert_to_bytes(alert)
    kr = _signer("KR", "alert")
    entry = pb.LogEntry(kind="ALERT_RECEIVED", logged_at=timestamp(at), peer="KR")
    entry.alert.CopyFrom(
        pb.SignedAlert(alert=payload, key_id=kr.key_id, signature=kr.sign(PAYLOAD_ALERT, payload))
    )
    entries.append(encode(entry))
    return _write(fed.bundles["JP"], entries=entries), [("JP", len(entries) - 1, "received_not_sent")]


def _alert_digest(fed: Fed, cc: Country, alert_id: str) -> bytes:
    entry = pb.LogEntry.FromString(fed.bundles[cc].entries[fed.find(cc, SENT, alert_id)])
    return digest(entry.alert.alert)


def _forged_receipt(fed: Fed) -> tuple[bytes, list[Finding]]:
    i = fed.find("KR", RECEIPT, "KR-A2", "US")
    entries = list(fed.bundles["KR"].entries)
    entry = pb.LogEntry.FromString(entries[i])
    # Signed by a key that is not US's, under US's key id.
    entry.receipt.signature = _seed("forger").sign(pae(PAYLOAD_RECEIPT, entry.receipt.receipt))
    entries[i] = encode(entry)
    return _write(fed.bundles["KR"], entries=entries), [("KR", i, "bad_receipt_signature")]


def _rewritten_tail(fed: Fed) -> tuple[bytes, list[Finding]]:
    newest = fed.history_sizes("KR")[-1]
    # KR cuts its log back to before the last entry its newest cosigned
    # checkpoint covers (US's RESPONSE) and everything after it.
    entries = list(fed.bundles["KR"].entries)[: newest - 1]
    return _write(fed.bundles["KR"], entries=entries), [
        ("KR", None, "not_append_only"),
        # Each witness cosigned KR's checkpoint at that size, which the entries no longer reach.
        ("KR", None, "checkpoint_equivocation"),
        ("KR", None, "checkpoint_equivocation"),
        ("US", fed.find("US", SENT, "US-R1"), "sent_not_received"),
        ("US", fed.find("US", RECEIVED, "KR-A2"), "received_not_sent"),
        ("US", fed.find("US", RECEIVED, "KR-X3"), "received_not_sent"),
        ("JP", fed.find("JP", RECEIVED, "KR-A2"), "received_not_sent"),
        ("JP", fed.find("JP", RECEIVED, "KR-X3"), "received_not_sent"),
    ]


def _fork_shown_to_one_peer(fed: Fed) -> tuple[bytes, list[Finding]]:
    size = fed.history_sizes("KR")[-1]
    entries = list(fed.bundles["KR"].entries)[:size]
    # The other branch: the same tree but its last entry logged a second later.
    last = pb.LogEntry.FromString(entries[-1])
    last.logged_at.FromDatetime(last.logged_at.ToDatetime(tzinfo=UTC) + timedelta(seconds=1))
    entries[-1] = encode(last)
    fork = _checkpoint("KR", entries)
    us = fed.bundles["US"]
    witnessed: list[tuple[Country, str]] = []
    for log_node, note in us.witnessed:
        cp = parse_checkpoint(parse_signed_note(note).body)
        if log_node == "KR" and cp.size == size:
            when = verify_witness_cosignature(note, witness_node="US", trust=fed.trust, checkpoint=cp)
            if when is None:
                raise RuntimeError("US's cosignature on KR's checkpoint does not verify")
            line = cosign(
                fork,
                name=witness_name("US"),
                private_key=_signer("US", "witness").private_key,
                timestamp=when,
            )
            witnessed.append((log_node, add_cosignature(_sign("KR", fork), line)))
        else:
            witnessed.append((log_node, note))
    if witnessed == us.witnessed:
        raise RuntimeError(f"US never witnessed KR's checkpoint at size {size}")
    return _write(us, witnessed=witnessed), [
        # KR showed US and JP different trees at that size, and US's one is not KR's log.
        ("KR", None, "checkpoint_equivocation"),
        ("KR", None, "checkpoint_equivocation"),
    ]


def _bad_cosignature(fed: Fed) -> tuple[bytes, list[Finding]]:
    kr = fed.bundles["KR"]
    history = list(kr.history)
    note = parse_signed_note(history[0])
    lines = []
    for sig in note.signatures:
        if sig.name == witness_name("US"):
            raw = bytearray(sig.signature)
            raw[-1] ^= 0x01  # in the Ed25519 signature, after key id and time
            lines.append(NoteSignature(name=sig.name, key_hash=sig.key_hash, signature=bytes(raw)).line())
        else:
            lines.append(sig.line())
    history[0] = note.body + "\n" + "".join(lines)
    if history[0] == kr.history[0]:
        raise RuntimeError("KR's first checkpoint has no cosignature by US")
    return _write(kr, history=history), [("KR", None, "bad_cosignature")]


def _sent_payload(fed: Fed, cc: Country, alert_id: str) -> bytes:
    return bytes(pb.LogEntry.FromString(fed.bundles[cc].entries[fed.find(cc, SENT, alert_id)]).alert.alert)


def _watchlist_fork(fed: Fed) -> tuple[bytes, list[Finding]]:
    entries = list(fed.bundles["JP"].entries)
    seqs, at = fed.seqs(), fed.last_logged("JP")
    rival = _message(
        {
            "alert_id": "JP-W1B",
            "origin": "JP",
            "sent": at + timedelta(seconds=1),
            "msg_type": "WATCHLIST_PROPOSAL",
            "deliveries": seqs.deliveries("JP", "KR", "US"),
            "watchlist": {
                "version": 1,
                "hs_edition": "HS2022",
                "add": [{"hs_code": "250410", "country": "CN", "reason": "STRATEGIC_ITEM"}],
            },
        }
    )
    entries.append(_entry(SENT, at=at + timedelta(seconds=1), payload=rival, signer="JP"))
    for n, (voter, other) in enumerate(OTHER_VOTERS, start=2):
        vote = _message(
            {
                "alert_id": f"{voter}-V1B",
                "origin": voter,
                "sent": at + timedelta(seconds=n),
                "msg_type": "WATCHLIST_VOTE",
                "deliveries": seqs.deliveries(voter, "JP", other),
                "references": [_ref("JP", "JP-W1B", rival)],
                "vote": {"version": 1, "decision": "ACCEPT"},
            }
        )
        entries.append(_entry(RECEIVED, at=at + timedelta(seconds=n), payload=vote, signer=voter, peer=voter))
    first = len(fed.bundles["JP"].entries)
    return _write(fed.bundles["JP"], entries=entries), [
        # Two versions 1, each signed by all three: the later one is the fork's evidence.
        ("JP", first, "watchlist_fork"),
        # KR's and US's logs hold neither acceptance: only JP's log shows them.
        ("JP", first + 1, "received_not_sent"),
        ("JP", first + 2, "received_not_sent"),
    ]


def _watchlist_vote_unknown_proposal(fed: Fed) -> tuple[bytes, list[Finding]]:
    entries = list(fed.bundles["JP"].entries)
    at = fed.last_logged("JP") + timedelta(seconds=1)
    vote = _message(
        {
            "alert_id": "JP-V9",
            "origin": "JP",
            "sent": at,
            "msg_type": "WATCHLIST_VOTE",
            "deliveries": fed.seqs().deliveries("JP", "KR", "US"),
            "references": [
                {"origin": "KR", "alert_id": "KR-W9", "digest": digest(b"ewx golden: a proposal never made")}
            ],
            "vote": {"version": 2, "decision": "ACCEPT"},
        }
    )
    entries.append(_entry(SENT, at=at, payload=vote, signer="JP"))
    # With all three logs given, nothing can be in flight: no log holds KR-W9.
    return _write(fed.bundles["JP"], entries=entries), [
        ("JP", len(entries) - 1, "watchlist_vote_unknown_proposal")
    ]


def _watchlist_unsigned_in_force(fed: Fed) -> tuple[bytes, list[Finding]]:
    entries = list(fed.bundles["JP"].entries)
    seqs, at = fed.seqs(), fed.last_logged("JP")
    v1 = fed.ids["proposal"]
    second = _message(
        {
            "alert_id": "JP-W2",
            "origin": "JP",
            "sent": at + timedelta(seconds=1),
            "msg_type": "WATCHLIST_PROPOSAL",
            "deliveries": seqs.deliveries("JP", "KR", "US"),
            "references": [_ref("KR", v1, _sent_payload(fed, "KR", v1))],
            "watchlist": {
                "version": 2,
                "hs_edition": "HS2022",
                "add": [{"hs_code": "250410", "country": "CN", "reason": "STRATEGIC_ITEM"}],
            },
        }
    )
    entries.append(_entry(SENT, at=at + timedelta(seconds=1), payload=second, signer="JP"))
    for n, (voter, other) in enumerate(OTHER_VOTERS, start=2):
        fields = {
            "alert_id": f"{voter}-V2",
            "origin": voter,
            "sent": at + timedelta(seconds=n),
            "msg_type": "WATCHLIST_VOTE",
            "deliveries": seqs.deliveries(voter, "JP", other),
            "references": [_ref("JP", "JP-W2", second)],
        }
        # Signed as the REJECT the voter sent, logged as an ACCEPT: the signature fails.
        rejected = _message(
            {**fields, "vote": {"version": 2, "decision": "REJECT", "reject_reason": "OUT_OF_SCOPE"}}
        )
        accepted = _message({**fields, "vote": {"version": 2, "decision": "ACCEPT"}})
        signature = _signer(voter, "alert").sign(PAYLOAD_ALERT, rejected)
        entries.append(
            _entry(
                RECEIVED,
                at=at + timedelta(seconds=n),
                payload=accepted,
                signer=voter,
                peer=voter,
                signature=signature,
            )
        )
    third = _message(
        {
            "alert_id": "JP-W3",
            "origin": "JP",
            "sent": at + timedelta(seconds=4),
            "msg_type": "WATCHLIST_PROPOSAL",
            "deliveries": seqs.deliveries("JP", "KR", "US"),
            "references": [_ref("JP", "JP-W2", second)],
            "watchlist": {
                "version": 3,
                "hs_edition": "HS2022",
                "add": [{"hs_code": "280530", "country": "CN", "reason": "POLICY_RISK"}],
            },
        }
    )
    entries.append(_entry(SENT, at=at + timedelta(seconds=4), payload=third, signer="JP"))
    first = len(fed.bundles["JP"].entries)
    return _write(fed.bundles["JP"], entries=entries), [
        ("JP", first + 1, "bad_alert_signature"),
        ("JP", first + 2, "bad_alert_signature"),
        # JP builds version 3 on a version 2 only JP validly signed.
        ("JP", first + 3, "watchlist_unsigned_in_force"),
    ]


def _key_outside_validity(fed: Fed) -> tuple[bytes, list[Finding]]:
    # Not rewritten: JP's own export a day later, signed with its log key
    # after the key's validity ended.
    return fed.late_jp, [("JP", None, "expired_key")]


DEFECTS: tuple[Defect, ...] = (
    Defect(
        "flipped_byte",
        "US",
        "One bit of the Ed25519 signature inside US's last entry (ALERT_RECEIVED of KR-X3) is "
        "flipped, and the export checkpoint is left as it was. The recomputed root no longer "
        "matches the signed checkpoint, the entry's signature fails (so the entry is left out), "
        "and KR's log then holds a receipted KR-X3 that US's log lacks.",
        _flipped_byte,
    ),
    Defect(
        "dropped_entry",
        "US",
        "US's ALERT_RECEIVED of KR-A2 is deleted and the export checkpoint re-signed over the "
        "shorter log with US's real log key (the entry lies after US's last cosigned "
        "checkpoint). The KR->US sequence jumps from 1 to 3, KR holds US's receipt for KR-A2 "
        "that US's log lacks, and US's receipt for KR-X3 names an index that moved.",
        _dropped_entry,
    ),
    Defect(
        "swapped_entries",
        "KR",
        "KR's ALERT_SENT of KR-A2 and of KR-X3 trade places; export checkpoint re-signed. Both "
        "of KR's streams (to US and to JP) now log seq 2 after seq 3.",
        _swapped_entries,
    ),
    Defect(
        "injected_entry",
        "JP",
        "An ALERT_RECEIVED of KR-X9 (a CANCEL of KR-A1 as issued in error, validly signed with "
        "KR's real alert key, next in the KR->JP sequence) is appended to JP's log; export "
        "checkpoint re-signed. Every signature holds; only the cross-log check can tell that "
        "KR never sent it.",
        _injected_entry,
    ),
    Defect(
        "forged_receipt",
        "KR",
        "The signature of US's receipt for KR-A2 in KR's log is replaced by one from a key "
        "that is not US's (under US's key id); export checkpoint re-signed.",
        _forged_receipt,
    ),
    Defect(
        "rewritten_tail",
        "KR",
        "KR cuts its log back to before US's RESPONSE (dropping it, KR-A2, KR-X3 and their "
        "receipts) and signs a new export checkpoint over the shorter log. Its history still "
        "holds its newest checkpoint, cosigned by US and JP, one entry beyond the rewritten "
        "log; both witnesses' records of that checkpoint disagree with the entries too, and "
        "the alerts KR sent or receipted are in its peers' logs but not in KR's.",
        _rewritten_tail,
    ),
    Defect(
        "fork_shown_to_one_peer",
        "US",
        "KR's log as exported, but US's witnessed list holds, in place of KR's newest "
        "checkpoint, one of a different tree at the same size (its last entry logged a second "
        "later), signed with KR's real log key and cosigned by US only. JP witnessed the real "
        "one: KR showed its peers two histories.",
        _fork_shown_to_one_peer,
    ),
    Defect(
        "bad_cosignature",
        "KR",
        "One bit of US's cosignature on KR's first history checkpoint is flipped.",
        _bad_cosignature,
    ),
    Defect(
        "key_outside_validity",
        "JP",
        "JP's log key is valid until 2023-08-01T12:00:00Z; this JP log was exported (and its "
        "checkpoint signed) on 2023-08-02, after the key's validity ended. The entries are "
        "those of the intact log.",
        _key_outside_validity,
    ),
    Defect(
        "watchlist_fork",
        "JP",
        "Appended to JP's log: JP's own proposal of another version 1 (JP-W1B, adding 250410:CN), "
        "and acceptances of it by KR (KR-V1B) and US (US-V1B), each validly signed with its "
        "member's real alert key and next in its sequences; export checkpoint re-signed. Two "
        "versions 1, each signed by all three members, are a fork: nothing is in force. KR's and "
        "US's logs hold neither acceptance (the other logs are intact, so only JP's shows the "
        "fork); JP's proposal, never receipted, is only in flight (info).",
        _watchlist_fork,
    ),
    Defect(
        "watchlist_vote_unknown_proposal",
        "JP",
        "Appended to JP's log: JP's ACCEPT (JP-V9, validly signed) of KR's proposal KR-W9 of "
        "version 2, which no log holds; export checkpoint re-signed. The acceptance of an "
        "unknown proposal is an error: with every member's log given nothing can still be in "
        "flight, and JP's own log shows JP accepting a proposal it did not hold (a receiver's "
        "log alone would call such a vote info: the proposal may be on its way).",
        _watchlist_vote_unknown_proposal,
    ),
    Defect(
        "watchlist_unsigned_in_force",
        "JP",
        "Appended to JP's log: JP's proposal of version 2 (JP-W2) on the agreed version 1, KR's "
        "and US's votes on it (KR-V2, US-V2), signed by each as a REJECT but logged rewritten "
        "into an ACCEPT, and JP's proposal of version 3 (JP-W3) on version 2; export checkpoint "
        "re-signed. The rewritten votes' signatures fail, so they sign nothing: JP proposed "
        "version 3 on a version that its own log shows signed by JP alone.",
        _watchlist_unsigned_in_force,
    ),
)


# ------------------------------------------------------------------ output
def _order(finding: Finding) -> tuple[int, int, str]:
    node, index, kind = finding
    return (COUNTRIES.index(node), -1 if index is None else index, kind)


def _describe_entry(data: bytes) -> str:
    entry = pb.LogEntry.FromString(data)
    kind = pb.EntryKind.Name(entry.kind)
    if entry.kind == RECEIPT:
        body = pb.ReceiptBody.FromString(entry.receipt.receipt)
        return f"{kind} from {pb.Country.Name(entry.peer)} for {body.alert_id} (seq {body.seq})"
    alert = pb.Alert.FromString(entry.alert.alert)
    seqs = ", ".join(f"{pb.Country.Name(d.recipient)} seq {d.seq}" for d in alert.deliveries)
    where = f" from {pb.Country.Name(entry.peer)}" if entry.kind == RECEIVED else ""
    return f"{kind}{where} {alert.alert_id} ({pb.MsgType.Name(alert.msg_type)}; {seqs})"


def _scenario_text(fed: Fed) -> str:
    pairs = ", ".join(f"{p['hs_code']}:{p['country']}" for p in WATCHLIST_V1)
    move = POLICY_MOVE
    return (
        "Three NodeServices on one clock (2023-08-01T00:00:00Z, one second later per read), "
        "deliveries and witnessing by hand: KR raises KR-A1 to US and JP; US and JP acknowledge "
        "it (US-ACK1, JP-ACK1); KR proposes version 1 of the joint watchlist "
        f"({fed.ids['proposal']}: {pairs}, HS2022) and US and JP accept it ({fed.ids['us_vote']}, "
        f"{fed.ids['jp_vote']}), so it is in force; US reports a policy move ({fed.ids['report']}: "
        f"{move['country']} {move['measure']} on {', '.join(move['hs_codes'])}, {move['stage']}, "
        f"announced {move['announced']}, effective {move['effective']}, {move['source']}); every "
        "node signs a checkpoint, cosigned by both peers; US answers KR-A1 with a RESPONSE "
        "(US-R1); a second round of cosigned checkpoints; then, after the last cosigned "
        "checkpoint, KR sends an UPDATE (KR-A2) and a CANCEL of it (KR-X3). Every log is "
        f"exported at {iso(EXPORTED_AT)}. The intact logs:"
    )


def _readme(fed: Fed, expected: dict[str, list[Finding]]) -> str:
    lines = [
        "# Golden exported logs",
        "",
        "Generated by `scripts/gen_goldens.py` (do not edit; run `python scripts/gen_goldens.py`",
        "to regenerate, `--check` to compare). `tests/node/audit/test_goldens.py` audits every set",
        "against `expected.json` and fails if these files drift from their generator.",
        "",
        "`federation.json` is the trust file (fixed-seed Ed25519 keys, deterministic CA",
        "certificates). Keys are valid 2023-01-01 to 2033-01-01, except JP's log key, valid",
        "only until 2023-08-01T12:00:00Z. Audit a set with:",
        "",
        "    ewx audit verify tests/goldens/<set>/*.ewxlog --trust tests/goldens/federation.json",
        "",
        "## Scenario",
        "",
        textwrap.fill(_scenario_text(fed), 88),
        "",
    ]
    for cc in COUNTRIES:
        sizes = ", ".join(str(s) for s in fed.history_sizes(cc))
        lines += [f"### {cc} (cosigned checkpoints at sizes {sizes})", ""]
        lines += [f"    #{i:<2} {_describe_entry(e)}" for i, e in enumerate(fed.bundles[cc].entries)]
        lines.append("")
    lines += [
        "## Sets",
        "",
        "Each folder holds `KR.ewxlog`, `US.ewxlog` and `JP.ewxlog`; in a tampered set one of",
        "them differs from `intact/`. Findings are `node #index kind` (`log` for the whole log),",
        "errors only, as `expected.json` lists them.",
        "",
        "### intact",
        "",
        "The three logs as exported. Clean: no findings at all.",
        "",
    ]
    for defect in DEFECTS:
        lines += [f"### {defect.name} ({defect.node}'s log)", "", textwrap.fill(defect.description, 88), ""]
        for node, index, kind in expected[defect.name]:
            lines.append(f"- {node} {'log' if index is None else f'#{index}'} {kind}")
        lines.append("")
    return "\n".join(lines)


def _expected_json(expected: dict[str, list[Finding]]) -> str:
    """{set: [[node, index or null, kind], ...]}, one finding per line."""
    blocks = []
    for name, findings in expected.items():
        rows = ",\n".join(f"    {json.dumps(list(f))}" for f in findings)
        blocks.append(f"  {json.dumps(name)}: [\n{rows}\n  ]" if findings else f"  {json.dumps(name)}: []")
    return "{\n" + ",\n".join(blocks) + "\n}\n"


def write(dest: Path) -> None:
    """Build the federation in a temporary folder and write every golden file to `dest`."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _write_federation(work / "fed")
        exports = work / "exports"
        exports.mkdir()
        ids = _run_scenario(work / "fed", exports)
        trust_bytes = (work / "fed" / "federation.json").read_bytes()
        fed = Fed(
            trust=Trust.parse(trust_bytes),
            bundles={cc: read_bundle(exports / f"{cc}.ewxlog") for cc in COUNTRIES},
            raw={cc: (exports / f"{cc}.ewxlog").read_bytes() for cc in COUNTRIES},
            late_jp=(exports / "JP.late.ewxlog").read_bytes(),
            ids=ids,
        )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "federation.json").write_bytes(trust_bytes)
    expected: dict[str, list[Finding]] = {"intact": []}
    sets: dict[str, dict[Country, bytes]] = {"intact": dict(fed.raw)}
    for defect in DEFECTS:
        damaged, findings = defect.build(fed)
        if damaged == fed.raw[defect.node]:
            raise RuntimeError(f"{defect.name}: the log was not changed")
        sets[defect.name] = {**fed.raw, defect.node: damaged}
        expected[defect.name] = sorted(findings, key=_order)
    for name, logs in sets.items():
        (dest / name).mkdir(exist_ok=True)
        for cc, data in logs.items():
            (dest / name / f"{cc}.ewxlog").write_bytes(data)
    (dest / "expected.json").write_text(_expected_json(expected))
    (dest / "README.md").write_text(_readme(fed, expected))


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def drift() -> list[str]:
    """The golden files that differ from (or are missing in) a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        fresh = _files(Path(tmp))
    committed = _files(OUT)
    return sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with tests/goldens/ instead of writing")
    from node.logs import configure

    configure(level="error")  # the services' event log is noise here
    if parser.parse_args().check:
        changed = drift()
        print("goldens drifted: " + ", ".join(changed) if changed else "goldens are fresh")
        return 1 if changed else 0
    write(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
