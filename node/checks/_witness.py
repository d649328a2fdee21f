"""Witnessing a peer's exchange log: the pure core (C2SP tlog-witness, tlog-cosignature).

SPEC section 5 and ``notes/tlog-design.md`` ("For three nodes"): every node
cosigns the checkpoints of the other two logs, but only after checking that
each new checkpoint extends the last one it cosigned for that log. A node
then cannot rewrite its history, or show its two peers different histories,
without one of them refusing and keeping transferable proof.

This module holds the decisions and nothing else: no I/O, no gRPC, no clock,
no store. The gRPC layer carries the C2SP ``add-checkpoint`` request body
unchanged in ``WitnessRequest.body`` and maps the refusals below to status
codes; the service persists :attr:`Witnessed.state` atomically *before* it
returns the cosignature (C2SP tlog-witness: otherwise two concurrent requests
can roll the witness back).

Witness side: :func:`parse_request`, :func:`witness`, :class:`WitnessState`.
Log side: :func:`build_request`, :func:`add_cosignature`,
:func:`verify_witness_cosignature`, :func:`cosigned_by`.

Refusals, each an :class:`~node.errors.InboundRejected` with a stable
``reason`` (C2SP HTTP status and gRPC code in brackets):

- :class:`WitnessMalformed` ``witness_malformed`` (400, INVALID_ARGUMENT)
- :class:`UnknownLog` ``unknown_log`` (404, NOT_FOUND)
- :class:`CheckpointSignatureInvalid` ``checkpoint_signature_invalid`` (403, PERMISSION_DENIED)
- :class:`SizeMismatch` ``size_mismatch`` (409, ABORTED; ``witness_size``)
- :class:`InconsistentCheckpoint` ``inconsistent_checkpoint`` (422 or 409,
  FAILED_PRECONDITION; ``evidence`` when it proves a fork)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.crypto import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    MAX_TIMESTAMP,
    MAX_TREE_SIZE,
    SIG_TYPE_ED25519,
    Checkpoint,
    SignedNote,
    Signer,
    check_text,
    cosign,
    note_key_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_signature_line,
    parse_signed_note,
    raw_public_key,
    verify_consistency,
    verify_cosignature,
    verify_note_signature,
)
from node.errors import (
    CheckpointSignatureInvalid,
    InconsistentCheckpoint,
    MerkleProofError,
    NoteError,
    SizeMismatch,
    UnknownLog,
    WitnessMalformed,
    WitnessRejected,
)
from node.ids import Country
from node.trust import Trust, log_origin, witness_name

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "CheckpointSignatureInvalid",
    "InconsistentCheckpoint",
    "SizeMismatch",
    "UnknownLog",
    "WitnessMalformed",
    "WitnessRejected",
    "WitnessRequestBody",
    "WitnessState",
    "Witnessed",
    "add_cosignature",
    "build_request",
    "cosigned_by",
    "parse_request",
    "verify_witness_cosignature",
    "witness",
]

MAX_PROOF_LINES: Final = 64
"""Most consistency proof lines accepted in a request. C2SP tlog-witness lets
a client send at most 63, and no consistency proof within a tree of at most
2^63 - 1 leaves is longer; the bound only caps the work a peer can cause."""

MAX_REQUEST_BYTES: Final = 16 * 1024
"""Largest request body accepted, in UTF-8 bytes, old line and proof included.
A three-node checkpoint with its proof is under 4 KiB; the signed note inside
is also bounded by :data:`node.crypto.MAX_NOTE_BYTES` (the same 16 KiB)."""

_OLD_PREFIX: Final = "old "
# ASCII decimal with no leading zeros ("0" alone), as tlog-witness requires;
# re.ASCII keeps other scripts' digits out (int() would accept them).
_DECIMAL_RE: Final = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_MAX_ECHO: Final = 80


# ------------------------------------------------------------------ refusals


def _echo(text: str) -> str:
    """Quote peer-supplied text in a message, bounded so a refusal stays small."""
    shown = text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "..."
    return repr(shown)


# ------------------------------------------------------------------ request body
@dataclass(frozen=True, slots=True)
class WitnessRequestBody:
    """A parsed C2SP tlog-witness add-checkpoint request body."""

    old_size: int
    """Size of the last checkpoint the log believes this witness cosigned (0: none)."""
    proof: tuple[bytes, ...]
    """Consistency proof from ``old_size`` to the checkpoint's size: 32-byte hashes."""
    note_text: str
    """The signed checkpoint note, as sent (syntax checked, signatures not verified)."""


def _check_old_size(old_size: int) -> None:
    if isinstance(old_size, bool) or not isinstance(old_size, int):
        raise ValueError("old_size must be an int")
    if not 0 <= old_size <= MAX_TREE_SIZE:
        raise ValueError(f"old_size {old_size} is outside [0, {MAX_TREE_SIZE}]")


def build_request(*, old_size: int, proof: Sequence[bytes], signed_checkpoint: str) -> str:
    """Return the add-checkpoint body: ``old <n>``, proof lines, a blank line, the note.

    Log side. ``proof`` is the consistency proof from ``old_size`` to the
    checkpoint's size (``node.crypto.consistency_proof``), empty when
    ``old_size`` is 0; ``signed_checkpoint`` is the signed note, possibly
    already carrying cosignatures. Raises ``ValueError`` (a
    :class:`~node.crypto.NoteError` for a bad note) if the result would be
    refused by :func:`parse_request`: that is a bug of the caller, not a
    peer's fault, so none of the witness refusals is raised here.
    """
    _check_old_size(old_size)
    hashes = [bytes(h) for h in proof]
    if len(hashes) > MAX_PROOF_LINES:
        raise ValueError(f"proof has {len(hashes)} hashes, over the limit of {MAX_PROOF_LINES}")
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ValueError(f"proof hash {i} is {len(h)} bytes, not {HASH_SIZE}")
    if old_size == 0 and hashes:
        raise ValueError("a request with old size 0 must carry an empty proof (C2SP tlog-witness)")
    parse_signed_note(signed_checkpoint)
    lines = [f"{_OLD_PREFIX}{old_size}", *(base64.b64encode(h).decode("ascii") for h in hashes)]
    body = "".join(line + "\n" for line in lines) + "\n" + signed_checkpoint
    if len(body.encode("utf-8")) > MAX_REQUEST_BYTES:
        raise ValueError(f"request body is over the {MAX_REQUEST_BYTES}-byte limit")
    return body


def _parse_old_line(line: str) -> int:
    if not line.startswith(_OLD_PREFIX):
        raise WitnessMalformed("request body does not start with an 'old <size>' line")
    digits = line[len(_OLD_PREFIX) :]
    if not _DECIMAL_RE.fullmatch(digits):
        raise WitnessMalformed("old size is not a decimal number without leading zeros")
    # Bounded by the body size, so int() cannot be made to work hard; the
    # range check keeps sizes within what a checkpoint may state.
    old_size = int(digits)
    if old_size > MAX_TREE_SIZE:
        raise WitnessMalformed(f"old size is over {MAX_TREE_SIZE}")
    return old_size


def _parse_proof_line(line: str, number: int) -> bytes:
    where = f"consistency proof line {number}"
    try:
        decoded = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise WitnessMalformed(f"{where} is not valid base64") from None
    # One value, one spelling: Python tolerates non-zero padding bits, so
    # re-encode and compare (as node.note does for every base64 field).
    if base64.b64encode(decoded).decode("ascii") != line:
        raise WitnessMalformed(f"{where} is not canonical base64")
    if len(decoded) != HASH_SIZE:
        raise WitnessMalformed(f"{where} is {len(decoded)} bytes, not a {HASH_SIZE}-byte hash")
    return decoded


def parse_request(body: str) -> WitnessRequestBody:
    """Parse an add-checkpoint request body strictly; raise :class:`WitnessMalformed` naming the defect.

    Checks, in order: a ``str`` of at most :data:`MAX_REQUEST_BYTES` UTF-8
    bytes; a first line ``old <size>`` (decimal, no leading zeros, at most
    2^63 - 1); at most :data:`MAX_PROOF_LINES` proof lines, each canonical
    base64 of a 32-byte hash; no proof when the old size is 0 (C2SP: the
    proof MUST be empty then); a blank line; then a syntactically valid
    signed note (:func:`node.crypto.parse_signed_note`). Signatures are not
    verified here: :func:`witness` does that against the trust file.
    """
    body = check_text(body, limit=MAX_REQUEST_BYTES, what="request body", error=WitnessMalformed)
    # The old line and proof lines are never empty, so the first blank line
    # ends the header; everything after it is the note, which has blank lines
    # of its own and is handed to the signed-note parser whole.
    end = body.find("\n\n")
    if end < 0:
        if not body.startswith(_OLD_PREFIX):
            raise WitnessMalformed("request body does not start with an 'old <size>' line")
        raise WitnessMalformed("request body has no blank line before the checkpoint")
    header, note_text = body[:end].split("\n"), body[end + 2 :]
    old_size = _parse_old_line(header[0])
    proof_lines = header[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise WitnessMalformed(
            f"request has {len(proof_lines)} consistency proof lines, over the limit of {MAX_PROOF_LINES}"
        )
    proof = tuple(_parse_proof_line(line, i + 1) for i, line in enumerate(proof_lines))
    if old_size == 0 and proof:
        raise WitnessMalformed("old size is 0 but the request carries a consistency proof")
    if not note_text:
        raise WitnessMalformed("request body has no checkpoint after the blank line")
    try:
        parse_signed_note(note_text)
    except NoteError as exc:
        raise WitnessMalformed(f"checkpoint note: {exc}") from None
    return WitnessRequestBody(old_size=old_size, proof=proof, note_text=note_text)


# ------------------------------------------------------------------ witness side
@dataclass(frozen=True, slots=True)
class WitnessState:
    """What this witness last cosigned for one log: the only state C2SP requires it to keep."""

    origin: str
    """The log's origin line (``node.trust.log_origin`` of the peer)."""
    size: int
    """Tree size of the last cosigned checkpoint."""
    root_hash: bytes
    """Root hash of the last cosigned checkpoint (32 bytes)."""


@dataclass(frozen=True, slots=True)
class Witnessed:
    """The outcome of an accepted request; the caller persists ``state`` before answering."""

    state: WitnessState
    """The new state for this log, to be stored atomically with the check."""
    cosignature: str
    """One cosignature/v1 signature line (ending in a newline): the gRPC answer."""
    checkpoint: Checkpoint
    """The checkpoint that was verified and cosigned."""
    note_text: str
    """The signed note as received; ``add_cosignature(note_text, cosignature)`` is
    what to keep, and to pass back as ``previous_note`` next time."""


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _check_now(now: int) -> None:
    # Checked up front: a bad clock is the caller's bug and must not surface
    # as a NoteError from cosign() that could be mistaken for the peer's fault.
    if isinstance(now, bool) or not isinstance(now, int):
        raise ValueError("now must be an int (POSIX seconds)")
    if not 0 <= now <= MAX_TIMESTAMP:
        raise ValueError(f"now {now} is outside [0, 2^63 - 1]")


def _check_signer(signer: Signer, *, me: Country, trust: Trust) -> None:
    """Refuse to cosign with anything but this node's witness key from the trust file.

    cosignature/v1 does not commit to the signer's name, so cosigning with
    the log key (or a key peers do not know) would produce signatures that are
    either dangerous or useless; this is configuration, hence ValueError.
    """
    raw = raw_public_key(signer.private_key.public_key())
    if not any(entry.public_key == raw for entry in trust.keys_of(me, "witness")):
        raise ValueError(f"signer {signer.key_id} is not a witness key of {me} in the trust file")


def open_log_checkpoint(
    note_text: str, *, node: Country, trust: Trust
) -> tuple[Checkpoint, SignedNote] | None:
    """`node`'s checkpoint from a signed note, if one of its log keys signed it; else None.

    The one way gossip and the audit open a peer's checkpoint: the origin
    must be that node's log, and any of its log keys in the trust file may
    have signed (keys rotate).
    """
    for key in trust.keys_of(node, "log"):
        try:
            return open_checkpoint(note_text, name=log_origin(node), public_key=trust.public_key(key))
        except NoteError:
            continue
    return None


def _verify_log_signature(note: SignedNote, *, name: str, keys: Sequence[Ed25519PublicKey]) -> bool:
    """True iff some trusted key signed the note and no signature by a trusted key fails.

    Signed-note verifiers must ignore unknown keys (so keys can rotate and
    cosignatures ride along) but should reject a note on which a known key's
    signature fails: that is tampering or key misuse, not noise.
    """
    verified = False
    for key in keys:
        key_hash = note_key_hash(name, key, SIG_TYPE_ED25519)
        if not any(s.name == name and s.key_hash == key_hash for s in note.signatures):
            continue
        if not verify_note_signature(note, name=name, public_key=key):
            return False
        verified = True
    return verified


def _previous_text(state: WitnessState, previous_note: str | None) -> str:
    """The best available text of what was cosigned before, for fork evidence.

    The stored note (with the log's signature and ours) is transferable
    proof; it is used only if it really is the state's checkpoint. Otherwise
    the unsigned checkpoint text still names origin, size and root.
    """
    fallback = Checkpoint(origin=state.origin, size=state.size, root_hash=state.root_hash).body_text()
    if previous_note is None:
        return fallback
    try:
        previous = parse_checkpoint(parse_signed_note(previous_note).body)
    except NoteError:
        return fallback
    if (previous.origin, previous.size, previous.root_hash) != (state.origin, state.size, state.root_hash):
        return fallback
    return previous_note


def _check_consistency(
    request: WitnessRequestBody,
    cp: Checkpoint,
    *,
    state: WitnessState | None,
    previous_note: str | None,
) -> None:
    """Check that ``cp`` extends ``state`` (sizes already matched); raise InconsistentCheckpoint."""
    note_text = request.note_text
    old_size = request.old_size
    if cp.size < old_size:
        # C2SP answers 400 here; a validly signed checkpoint below what this
        # witness cosigned is a rollback attempt, so it is refused as such.
        # Not fork evidence by itself: a stale but honest checkpoint looks the same.
        raise InconsistentCheckpoint(
            f"checkpoint size {cp.size} is below the old size {old_size}: rollback refused",
            refused_note=note_text,
        )
    if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
        # The one root a size-0 tree can have; a log that signs another one
        # states something no tree can match (and verify_consistency cannot
        # check it, since it refuses old size 0).
        raise InconsistentCheckpoint(
            "checkpoint of size 0 does not carry the empty tree's root", refused_note=note_text
        )
    if state is None or state.size == 0:
        # Every tree extends the empty tree: nothing to prove, and parse_request
        # already refused a proof with old size 0. A state of size 0 has the
        # empty root (refused above otherwise), so a size-0 repeat is unchanged.
        return
    if cp.size == state.size:
        if cp.root_hash != state.root_hash:
            # Two validly signed checkpoints of one size with different roots:
            # transferable proof that the log forked.
            raise InconsistentCheckpoint(
                f"checkpoint at size {cp.size} has a different root from the one this witness cosigned",
                evidence=(_previous_text(state, previous_note), note_text),
                refused_note=note_text,
            )
        if request.proof:
            raise InconsistentCheckpoint(
                f"checkpoint is unchanged at size {cp.size} but the request carries a proof",
                refused_note=note_text,
            )
        return
    try:
        verify_consistency(
            old_size=state.size,
            new_size=cp.size,
            old_root=state.root_hash,
            new_root=cp.root_hash,
            proof=request.proof,
        )
    except MerkleProofError as exc:
        raise InconsistentCheckpoint(f"consistency proof: {exc}", refused_note=note_text) from None


def witness(
    body: str,
    *,
    me: Country,
    log_node: Country,
    state: WitnessState | None,
    trust: Trust,
    signer: Signer,
    now: int,
    previous_note: str | None = None,
) -> Witnessed:
    """Verify an add-checkpoint request from ``log_node`` and cosign its checkpoint as ``me``.

    ``log_node`` is the peer authenticated by mTLS, never anything the body
    says; ``state`` is what this witness last cosigned of that peer's log
    (None: never); ``signer`` is this node's witness key; ``now`` is the
    cosignature timestamp in POSIX seconds (also the instant at which the
    log key must be valid); ``previous_note`` optionally is the stored
    cosigned note of ``state``, quoted in fork evidence.

    Steps, in C2SP tlog-witness order, each refusal its own class:

    1. parse the body and the note's syntax (:class:`WitnessMalformed`);
    2. the origin line must be ``log_origin(log_node)`` (:class:`UnknownLog`);
    3. a signature by one of ``log_node``'s log keys valid at ``now``, under
       that name, must verify, and none by such a key may fail
       (:class:`CheckpointSignatureInvalid`); only then is the checkpoint
       text interpreted (:class:`WitnessMalformed` if it is not one);
    4. the old size must equal ``state.size`` (0 without state), else
       :class:`SizeMismatch` carrying the witness size;
    5. the checkpoint must extend the state: no rollback, same size only
       with the same root, otherwise a verifying consistency proof
       (:class:`InconsistentCheckpoint`). An unchanged checkpoint is
       cosigned again.

    Returns :class:`Witnessed`; nothing is stored here. Raises
    ``ValueError`` for the caller's own mistakes (a bad ``now``, a signer
    that is not ``me``'s witness key, a state of another log).
    """
    _check_now(now)
    _check_signer(signer, me=me, trust=trust)
    origin = log_origin(log_node)
    if state is not None and state.origin != origin:
        raise ValueError(f"witness state is for {state.origin!r}, not {log_node}'s log {origin!r}")

    request = parse_request(body)
    note = parse_signed_note(request.note_text)  # parse_request has shown it parses

    # The origin is read before the signature is checked only to pick the
    # keys (C2SP answers "unknown log" before "bad signature"); nothing else
    # in the text is acted on until a trusted signature covers it.
    claimed = note.body.split("\n", 1)[0]
    if log_node == me:
        raise UnknownLog("this node does not witness its own log")
    if claimed != origin:
        raise UnknownLog(f"checkpoint origin {_echo(claimed)} is not the log of {log_node} ({origin!r})")

    at = _at(now)
    keys = [trust.public_key(e) for e in trust.keys_of(log_node, "log") if e.valid_at(at)]
    if not keys:
        raise CheckpointSignatureInvalid(f"no log key of {log_node} is valid at {at.isoformat()}")
    if not _verify_log_signature(note, name=origin, keys=keys):
        raise CheckpointSignatureInvalid(
            f"checkpoint has no valid signature by {log_node}'s log key {origin!r}"
        )
    try:
        cp = parse_checkpoint(note.body)
    except NoteError as exc:
        raise WitnessMalformed(f"checkpoint: {exc}") from None

    witness_size = 0 if state is None else state.size
    if request.old_size != witness_size:
        raise SizeMismatch(
            f"old size {request.old_size} does not match this witness's size {witness_size}",
            witness_size=witness_size,
        )
    _check_consistency(request, cp, state=state, previous_note=previous_note)

    cosignature = cosign(cp, name=witness_name(me), private_key=signer.private_key, timestamp=now)
    return Witnessed(
        state=WitnessState(origin=cp.origin, size=cp.size, root_hash=cp.root_hash),
        cosignature=cosignature,
        checkpoint=cp,
        note_text=request.note_text,
    )


# ------------------------------------------------------------------ log side
def add_cosignature(note_text: str, cosignature_line: str) -> str:
    """Append one signature line to a signed note and return the new note.

    Both are parsed first (:class:`~node.crypto.NoteError` if either is
    malformed, or if the note would exceed the signed-note limits). If the
    note already carries a line with the same key name and key ID, the note
    is returned unchanged: a note keeps one signature per key, so repeated
    cosignatures cannot grow it without bound, and a peer cannot replace the
    log's own signature line (or a peer's earlier cosignature) by sending a
    line under that name and key ID. Nothing is verified here: check the
    line with :func:`verify_witness_cosignature` first.
    """
    note = parse_signed_note(note_text)
    line = parse_signature_line(cosignature_line)
    if any(s.name == line.name and s.key_hash == line.key_hash for s in note.signatures):
        return note_text
    if len(note.signatures) >= MAX_SIGNATURES:
        raise NoteError(f"note already has {len(note.signatures)} signature lines, the limit")
    combined = note_text + line.line()
    if len(combined.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteError(f"note with the cosignature would be over the {MAX_NOTE_BYTES}-byte limit")
    return combined


def verify_witness_cosignature(
    note_text: str | SignedNote, *, witness_node: Country, trust: Trust, checkpoint: Checkpoint
) -> int | None:
    """Return the timestamp of a valid cosignature of ``checkpoint`` by ``witness_node``, else None.

    ``note_text`` is a signed note (text or parsed) whose text must be
    exactly ``checkpoint``'s, or a single signature line as the witness
    returned it. A cosignature counts if it is a cosignature/v1 under
    ``witness_name(witness_node)`` by one of that node's witness keys in the
    trust file and the key was valid at the cosignature's own timestamp.
    Lines by other keys are ignored; with several valid ones the latest
    timestamp wins. Raises :class:`~node.crypto.NoteError` only if the note or
    line cannot be parsed.
    """
    note: SignedNote | str = note_text
    if isinstance(note_text, str) and not note_text.startswith("\u2014"):
        note = parse_signed_note(note_text)  # parse once for every key below
    name = witness_name(witness_node)
    best: int | None = None
    for entry in trust.keys_of(witness_node, "witness"):
        timestamp = verify_cosignature(note, checkpoint, name=name, public_key=trust.public_key(entry))
        if timestamp is None or not entry.valid_at(_at(timestamp)):
            continue
        best = timestamp if best is None else max(best, timestamp)
    return best


def cosigned_by(note_text: str | SignedNote, *, trust: Trust, checkpoint: Checkpoint) -> dict[Country, int]:
    """Every federation member with a valid cosignature of ``checkpoint`` in the note, with its timestamp.

    The log's own node is included only if it cosigned its own checkpoint,
    which EWX nodes never do; a quorum check should count the peers.
    """
    note = note_text if isinstance(note_text, SignedNote) else parse_signed_note(note_text)
    found: dict[Country, int] = {}
    for country in trust.countries:
        timestamp = verify_witness_cosignature(note, witness_node=country, trust=trust, checkpoint=checkpoint)
        if timestamp is not None:
            found[country] = timestamp
    return found
