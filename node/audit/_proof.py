"""A self-contained, offline-verifiable proof that one alert is in a node's log.

The text follows C2SP tlog-proof (c2sp.org/tlog-proof@v1), with the logged
entry itself in the `extra` line so that the proof needs nothing else but the
federation trust file:

    c2sp.org/tlog-proof@v1
    extra <base64 of the LogEntry bytes, exactly as logged and hashed>
    index <zero-based index of the entry, decimal, no leading zeros>
    <base64 inclusion proof hash, leaf's sibling first>      (zero or more lines)
    <blank line>
    <the log's checkpoint, a C2SP signed note, verbatim, with any cosignatures>

`prove` picks the checkpoint: the latest cosigned one of the bundle's
checkpoint history that covers the entry (when the bundle carries history),
else the checkpoint signed at export. `check_proof` verifies, in order:

1. the text is a tlog-proof with an `extra` line (the entry), an index and
   well-formed proof hashes, then a checkpoint note;
2. the checkpoint's origin is the log of a federation member
   (node.trust.log_origin) and a log key of that member in the trust file
   signed it, valid at the time the checkpoint is known to exist (its latest
   cosignature, else the entry's logged_at);
3. every cosignature line by a peer's witness key (name
   node.trust.witness_name) verifies, with the key valid at the
   cosignature's time; the result names the cosigners;
4. the RFC 6962 inclusion proof of leaf_hash(entry) at the index reaches the
   checkpoint's root at the checkpoint's size;
5. the entry is a canonical ALERT_SENT or ALERT_RECEIVED LogEntry whose
   alert signature verifies with an alert key of the alert's origin, and it
   belongs in that node's log (sent by the node, or received by a recipient).

Any failure raises ProofError naming the defect (`defect`, one of
`DEFECTS`) and what was wrong. The extra data is never trusted by itself: it
counts only once its leaf hash is proven into a signed checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf.message import DecodeError

from node.audit._bundle import Bundle
from node.audit._text import short_hash
from node.clock import iso
from node.crypto import (
    PAYLOAD_ALERT,
    SIG_TYPE_COSIGNATURE_V1,
    Checkpoint,
    SignedNote,
    digest,
    inclusion_proof,
    leaf_hash,
    note_key_hash,
    parse_checkpoint,
    parse_signed_note,
    root_from_leaf_hashes,
    verify_cosignature,
    verify_inclusion,
    verify_note_signature,
    verify_signature,
)
from node.errors import MerkleProofError, NoteError, ProofError
from node.ids import COUNTRIES, Country
from node.message import Alert, DecodeFailure, alert_from_bytes, from_timestamp, member, parse_canonical, pb
from node.trust import KeyEntry, Trust, log_origin, witness_name

__all__ = ["DEFECTS", "HEADER", "ProofError", "ProofResult", "check_proof", "parse_proof", "prove"]

HEADER: Final = "c2sp.org/tlog-proof@v1"
"""The first line of every proof."""

DEFECTS: Final[dict[str, str]] = {
    "malformed": "the text is not a tlog-proof (header, extra, index, hashes, blank line, checkpoint)",
    "no_entry": "the proof carries no entry (no `extra` line)",
    "bad_checkpoint": "the checkpoint is not a well-formed signed note and checkpoint",
    "unknown_log": "the checkpoint's origin is not the log of a federation member",
    "bad_checkpoint_signature": "no log key of the node in the trust file validly signed the checkpoint",
    "expired_key": "a log, witness or alert key used outside its validity",
    "bad_cosignature": "a cosignature by a witness key in the trust file does not verify",
    "too_few_cosignatures": "fewer peers cosigned the checkpoint than required",
    "bad_inclusion": "the inclusion proof of the entry at the index does not reach the checkpoint's root",
    "malformed_entry": "the entry is not a canonical ALERT_SENT or ALERT_RECEIVED log entry with a valid alert",
    "unknown_key": "the alert names a key that is not in the trust file",
    "bad_alert_signature": "the alert signature does not verify or is not by the alert's origin",
    "misattributed": "the alert cannot be in this node's log (not sent by it, not addressed to it)",
    "not_found": "the log holds no entry of that alert (prove only)",
    "no_checkpoint": "the bundle has no checkpoint that matches its entries and covers the entry (prove only)",
}
"""Defect codes (stable strings) and what each means."""

_INDEX_RE: Final = re.compile(r"index (0|[1-9][0-9]*)", re.ASCII)
_MAX_PROOF_HASHES: Final = 64
"""A tree of up to 2^63 leaves needs at most 63 hashes."""
MAX_PROOF_CHARS: Final = 64 * 1024
"""An entry is at most about 9 KiB and a checkpoint note at most 16 KiB."""


# ------------------------------------------------------------------ the result
@dataclass(frozen=True)
class ProofResult:
    """What a valid proof establishes."""

    node: Country
    """Whose log holds the entry."""
    log_origin: str
    index: int
    size: int
    """The size of the checkpointed tree."""
    root: bytes
    log_key_id: str
    cosigned_by: dict[Country, datetime] = field(default_factory=dict)
    """Peers whose witness key cosigned the checkpoint, with the cosignature time."""
    kind: str = ""
    """ALERT_SENT or ALERT_RECEIVED."""
    logged_at: datetime | None = None
    peer: Country | None = None
    """For ALERT_RECEIVED: who handed the alert over."""
    origin: Country | None = None
    alert_id: str = ""
    msg_type: str = ""
    sent: datetime | None = None
    alert_digest: bytes = b""
    alert_key_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "valid": True,
            "node": self.node,
            "log_origin": self.log_origin,
            "index": self.index,
            "size": self.size,
            "root": self.root.hex(),
            "log_key_id": self.log_key_id,
            "cosigned_by": {c: iso(t) for c, t in self.cosigned_by.items()},
            "kind": self.kind,
            "logged_at": None if self.logged_at is None else iso(self.logged_at),
            "peer": self.peer,
            "origin": self.origin,
            "alert_id": self.alert_id,
            "msg_type": self.msg_type,
            "sent": None if self.sent is None else iso(self.sent),
            "alert_digest": self.alert_digest.hex(),
            "alert_key_id": self.alert_key_id,
        }

    def to_text(self) -> str:
        """A short human summary."""
        cosigners = ", ".join(f"{c} at {iso(t)}" for c, t in self.cosigned_by.items()) or "none"
        what = "sent" if self.kind == "ALERT_SENT" else f"received from {self.peer}"
        return "\n".join(
            [
                f"VALID: {self.origin} {self.msg_type} {self.alert_id} is entry #{self.index} of "
                f"{self.node}'s log ({what}, logged {iso(self.logged_at) if self.logged_at else '?'})",
                f"  checkpoint {self.log_origin} size {self.size} root {short_hash(self.root)}, "
                f"signed by {self.log_key_id}",
                f"  cosigned by: {cosigners}",
                f"  alert signed by {self.alert_key_id}, digest {short_hash(self.alert_digest)}",
            ]
        )


# ------------------------------------------------------------------ prove
def _find_entry(bundle: Bundle, alert_id: str, origin: Country | None) -> int:
    found: dict[Country, int] = {}
    for index, data in enumerate(bundle.entries):
        entry = pb.LogEntry()
        try:
            entry.ParseFromString(data)
            if entry.kind not in (pb.ALERT_SENT, pb.ALERT_RECEIVED):
                continue
            alert = pb.Alert.FromString(entry.alert.alert)
        except DecodeError:
            continue  # a damaged entry is simply not the one sought
        alert_origin = member(alert.origin)
        if alert.alert_id != alert_id or alert_origin is None:
            continue
        if origin is None or alert_origin == origin:
            found.setdefault(alert_origin, index)
    if not found:
        whose = f"{origin}'s alert" if origin else "alert"
        raise ProofError("not_found", f"{bundle.node}'s log holds no entry of {whose} {alert_id}")
    if len(found) > 1:
        raise ProofError(
            "not_found",
            f"{alert_id} is an alert id of {', '.join(found)} in {bundle.node}'s log; give origin",
        )
    return next(iter(found.values()))


def _usable_checkpoint(
    note_text: str, origin: str, hashes: list[bytes], index: int
) -> tuple[Checkpoint, int]:
    """(checkpoint, number of signature lines) if it covers `index` and matches the entries."""
    note = parse_signed_note(note_text)
    cp = parse_checkpoint(note.body)
    if cp.origin != origin:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not {origin!r}")
    if not index < cp.size <= len(hashes):
        raise NoteError(f"checkpoint size {cp.size} does not cover entry {index}")
    if root_from_leaf_hashes(hashes[: cp.size]) != cp.root_hash:
        raise NoteError(f"checkpoint root at size {cp.size} does not match the entries")
    return cp, len(note.signatures)


def _choose_checkpoint(bundle: Bundle, hashes: list[bytes], index: int) -> tuple[str, Checkpoint]:
    history: list[str] = list(getattr(bundle, "history", None) or [])
    best: tuple[int, int, str, Checkpoint] | None = None
    for position, text in enumerate(history):
        try:
            cp, lines = _usable_checkpoint(text, bundle.log_origin, hashes, index)
        except NoteError:
            continue
        if lines < 2:
            continue  # not cosigned: only the log's own signature
        rank = (cp.size, position)
        if best is None or rank > best[:2]:
            best = (cp.size, position, text, cp)
    if best is not None:
        return best[2], best[3]
    try:
        cp, _ = _usable_checkpoint(bundle.checkpoint, bundle.log_origin, hashes, index)
    except NoteError as exc:
        raise ProofError("no_checkpoint", f"the export checkpoint of {bundle.node}'s log: {exc}") from None
    return bundle.checkpoint, cp


def prove(bundle: Bundle, alert_id: str, *, origin: Country | None = None) -> str:
    """The tlog-proof text that `alert_id` (of `origin`) is in `bundle`'s log.

    Finds the first ALERT_SENT or ALERT_RECEIVED entry of that alert; with no
    `origin`, the id must belong to one origin in this log. Raises ProofError
    (`not_found`, `no_checkpoint`). Nothing is verified against trust here:
    `check_proof` does that.
    """
    index = _find_entry(bundle, alert_id, origin)
    hashes = [leaf_hash(e) for e in bundle.entries]
    note, cp = _choose_checkpoint(bundle, hashes, index)
    path = inclusion_proof(index, hashes[: cp.size])
    lines = [
        HEADER,
        "extra " + base64.b64encode(bundle.entries[index]).decode("ascii"),
        f"index {index}",
        *(base64.b64encode(h).decode("ascii") for h in path),
    ]
    return "\n".join(lines) + "\n\n" + note


# ------------------------------------------------------------------ check
@dataclass(frozen=True, slots=True)
class _Parsed:
    entry: bytes
    index: int
    proof: list[bytes]
    checkpoint: str


def _b64(value: str, what: str) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError("malformed", f"{what} is not valid base64") from None
    if base64.b64encode(decoded).decode("ascii") != value:
        raise ProofError("malformed", f"{what} is not canonical base64")
    return decoded


def parse_proof(text: str) -> tuple[bytes, int, list[bytes], str]:
    """(entry bytes, index, proof hashes, checkpoint note) of a proof text; ProofError if malformed."""
    p = _parse(text)
    return p.entry, p.index, p.proof, p.checkpoint


def _parse(text: str) -> _Parsed:
    if len(text) > MAX_PROOF_CHARS:
        raise ProofError("malformed", f"proof is over {MAX_PROOF_CHARS} characters")
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise ProofError("malformed", "no blank line between the proof and the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ProofError("malformed", f"first line is not {HEADER!r}")
    rest = lines[1:]
    if not rest or not rest[0].startswith("extra "):
        raise ProofError("no_entry", "no `extra` line: the proof does not carry the entry")
    entry = _b64(rest[0].removeprefix("extra "), "extra data")
    if len(rest) < 2:
        raise ProofError("malformed", "no `index` line")
    match = _INDEX_RE.fullmatch(rest[1])
    if match is None:
        raise ProofError("malformed", "the line after `extra` is not `index N` (decimal, no leading zeros)")
    index = int(match.group(1))
    hash_lines = rest[2:]
    if len(hash_lines) > _MAX_PROOF_HASHES:
        raise ProofError("malformed", f"{len(hash_lines)} proof hashes, more than any tree needs")
    proof: list[bytes] = []
    for i, line in enumerate(hash_lines):
        value = _b64(line, f"proof hash {i + 1}")
        if len(value) != 32:
            raise ProofError("malformed", f"proof hash {i + 1} is {len(value)} bytes, not 32")
        proof.append(value)
    return _Parsed(entry=entry, index=index, proof=proof, checkpoint=checkpoint)


def _log_node(origin: str, trust: Trust) -> Country:
    for cc in trust.countries:
        if log_origin(cc) == origin:
            return cc
    raise ProofError("unknown_log", f"checkpoint origin {origin!r} is not the log of a federation member")


def _log_key(note: SignedNote, node: Country, origin: str, trust: Trust) -> KeyEntry:
    keys = trust.keys_of(node, "log")
    if not keys:
        raise ProofError("bad_checkpoint_signature", f"the trust file lists no log key of {node}")
    for key in keys:
        if verify_note_signature(note, name=origin, public_key=key.verifying_key()):
            return key
    raise ProofError(
        "bad_checkpoint_signature",
        f"the checkpoint carries no valid signature {origin!r} by a log key of {node} in the trust file",
    )


def _cosigners(note: SignedNote, cp: Checkpoint, node: Country, trust: Trust) -> dict[Country, datetime]:
    cosigned: dict[Country, datetime] = {}
    for peer in trust.countries:
        if peer == node:
            continue
        name = witness_name(peer)
        for key in trust.keys_of(peer, "witness"):
            public = key.verifying_key()
            key_hash = note_key_hash(name, public, SIG_TYPE_COSIGNATURE_V1)
            if not any(s.name == name and s.key_hash == key_hash for s in note.signatures):
                continue
            stamp = verify_cosignature(note, cp, name=name, public_key=public)
            if stamp is None:
                raise ProofError(
                    "bad_cosignature", f"cosignature {name!r} by witness key {key.key_id} does not verify"
                )
            try:
                when = datetime.fromtimestamp(stamp, UTC)
            except (OverflowError, OSError, ValueError):
                raise ProofError(
                    "bad_cosignature", f"cosignature {name!r} has an impossible time {stamp}"
                ) from None
            if not key.valid_at(when):
                raise ProofError(
                    "expired_key",
                    f"witness key {key.key_id} is not valid at its cosignature time {iso(when)}",
                )
            if peer not in cosigned or when > cosigned[peer]:
                cosigned[peer] = when
    return cosigned


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: str
    logged_at: datetime
    peer: Country | None
    alert: Alert
    digest: bytes
    key: KeyEntry


def _check_entry(data: bytes, node: Country, trust: Trust) -> _Entry:
    try:
        entry = parse_canonical(pb.LogEntry, data, what="log entry")
    except DecodeFailure as exc:
        raise ProofError("malformed_entry", str(exc)) from None
    if entry.kind not in (pb.ALERT_SENT, pb.ALERT_RECEIVED) or not entry.HasField("alert"):
        raise ProofError(
            "malformed_entry", "the entry is not an ALERT_SENT or ALERT_RECEIVED entry with an alert"
        )
    kind = pb.EntryKind.Name(entry.kind)
    if not entry.HasField("logged_at"):
        raise ProofError("malformed_entry", f"{kind} entry has no logged_at")
    try:
        logged_at = from_timestamp(entry.logged_at, field="logged_at")
    except DecodeFailure as exc:
        raise ProofError("malformed_entry", str(exc)) from None
    peer = member(entry.peer)
    if entry.kind == pb.ALERT_SENT and entry.peer != pb.COUNTRY_UNSPECIFIED:
        raise ProofError("malformed_entry", "ALERT_SENT entry names a peer")
    if entry.kind == pb.ALERT_RECEIVED and (peer is None or peer == node):
        raise ProofError("malformed_entry", f"ALERT_RECEIVED entry names no peer other than {node}")
    signed = entry.alert
    payload = bytes(signed.alert)
    # The signature over the exact bytes, before the alert is parsed (SPEC section 4).
    key = trust.key(signed.key_id)
    if key is None:
        raise ProofError("unknown_key", f"alert key {signed.key_id[:80]!r} is not in the trust file")
    if key.purpose != "alert":
        raise ProofError("bad_alert_signature", f"key {key.key_id} is a {key.purpose} key, not an alert key")
    if not verify_signature(key.verifying_key(), PAYLOAD_ALERT, payload, bytes(signed.signature)):
        raise ProofError("bad_alert_signature", f"the alert signature by {key.key_id} does not verify")
    if not key.valid_at(logged_at):
        raise ProofError("expired_key", f"alert key {key.key_id} is not valid at logged_at {iso(logged_at)}")
    try:
        alert = alert_from_bytes(payload)
    except DecodeFailure as exc:
        raise ProofError("malformed_entry", f"the signed alert does not decode: {exc}") from None
    if alert.origin != key.owner:
        raise ProofError(
            "bad_alert_signature",
            f"alert {alert.alert_id} claims origin {alert.origin}, signed by {key.owner}'s key",
        )
    if entry.kind == pb.ALERT_SENT and alert.origin != node:
        raise ProofError("misattributed", f"ALERT_SENT of {alert.origin}'s alert in {node}'s log")
    if entry.kind == pb.ALERT_RECEIVED and (alert.origin == node or node not in alert.recipients):
        raise ProofError(
            "misattributed", f"{alert.origin}'s alert {alert.alert_id} cannot have been received by {node}"
        )
    return _Entry(kind=kind, logged_at=logged_at, peer=peer, alert=alert, digest=digest(payload), key=key)


def check_proof(text: str, *, trust: Trust, min_cosigners: int = 0) -> ProofResult:
    """Verify a tlog-proof offline against the trust file; ProofError names the first defect.

    `min_cosigners` is how many peers must have cosigned the checkpoint (0: any
    number; the checkpoint signed at export carries no cosignatures).
    """
    # 1. The text.
    p = _parse(text)
    # 2. The checkpoint and the log's signature.
    try:
        note = parse_signed_note(p.checkpoint)
        cp = parse_checkpoint(note.body)
    except NoteError as exc:
        raise ProofError("bad_checkpoint", str(exc)) from None
    node = _log_node(cp.origin, trust)
    key = _log_key(note, node, cp.origin, trust)
    # 3. Cosignatures by the peers' witness keys.
    cosigned = _cosigners(note, cp, node, trust)
    if len(cosigned) < min_cosigners:
        raise ProofError(
            "too_few_cosignatures", f"{len(cosigned)} peers cosigned the checkpoint, {min_cosigners} required"
        )
    # 4. The entry is in the checkpointed tree.
    try:
        verify_inclusion(
            index=p.index, size=cp.size, leaf_hash=leaf_hash(p.entry), proof=p.proof, root=cp.root_hash
        )
    except MerkleProofError as exc:
        raise ProofError("bad_inclusion", f"{exc} ({cp.origin} checkpoint)") from None
    # 5. The entry is an authentic alert that belongs in this log.
    e = _check_entry(p.entry, node, trust)
    # The log key must be valid when the checkpoint is known to have existed.
    when = max(cosigned.values()) if cosigned else e.logged_at
    if not key.valid_at(when):
        raise ProofError("expired_key", f"log key {key.key_id} is not valid at {iso(when)}")
    return ProofResult(
        node=node,
        log_origin=cp.origin,
        index=p.index,
        size=cp.size,
        root=cp.root_hash,
        log_key_id=key.key_id,
        cosigned_by={c: cosigned[c] for c in COUNTRIES if c in cosigned},
        kind=e.kind,
        logged_at=e.logged_at,
        peer=e.peer,
        origin=e.alert.origin,
        alert_id=e.alert.alert_id,
        msg_type=e.alert.msg_type,
        sent=e.alert.sent,
        alert_digest=e.digest,
        alert_key_id=e.key.key_id,
    )
