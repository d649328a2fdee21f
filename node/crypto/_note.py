"""C2SP signed notes, transparency log checkpoints and cosignatures (Ed25519).

Three public formats, implemented as pure functions over text:

- c2sp.org/signed-note: a UTF-8 text ending in a newline, a blank line, then
  one or more lines ``— <key name> base64(key ID || signature)``. Ed25519
  note signatures (type 0x01) sign the text exactly.
- c2sp.org/tlog-checkpoint: a note whose text is the log origin, the tree
  size in decimal and the base64 root hash, one per line, then optional
  extension lines.
- c2sp.org/tlog-cosignature, ``cosignature/v1`` (type 0x04): a witness's
  note signature over ``"cosignature/v1\\ntime <t>\\n" || checkpoint text``,
  carrying ``key ID || u64 big-endian t || Ed25519 signature``.

Parsing is strict and fails closed with :class:`NoteError` naming the defect:
a note is evidence that may end up in an audit, so anything that two
implementations could read differently is refused rather than repaired.
Verification follows the signed-note rules: signatures by unknown keys (a
different name or key ID) are ignored, so keys can rotate and cosignatures
can ride along; a note is accepted for a key only if a signature by that key
verifies and none by that key fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from node.errors import NoteError

__all__ = [
    "COSIGNATURE_V1_HEADER",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "MAX_TREE_SIZE",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "Checkpoint",
    "NoteError",
    "NoteSignature",
    "SignedNote",
    "cosign",
    "cosignature_message",
    "note_key_hash",
    "open_checkpoint",
    "parse_checkpoint",
    "parse_signature_line",
    "parse_signed_note",
    "sign_checkpoint",
    "verify_cosignature",
    "verify_note_signature",
]

SIG_TYPE_ED25519: Final = 0x01
"""Signature type byte of plain Ed25519 note signatures (c2sp.org/signed-note)."""

SIG_TYPE_COSIGNATURE_V1: Final = 0x04
"""Signature type byte of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature)."""

MAX_NOTE_BYTES: Final = 16 * 1024
"""Largest note accepted, in UTF-8 bytes: a checkpoint with 16 Ed25519
signatures is well under 2 KiB, so this only bounds the work a peer can cause."""

MAX_SIGNATURES: Final = 16
"""Most signature lines accepted in one note: the minimum signed-note says a
verifier MUST accept; we need three (the log and two peer witnesses)."""

MAX_TREE_SIZE: Final = 2**63 - 1
"""Largest tree size a checkpoint may state: it must fit a signed 64-bit
integer, as the node stores sizes in SQLite."""

MAX_TIMESTAMP: Final = 2**63 - 1
"""Largest cosignature timestamp (c2sp.org/tlog-cosignature: MUST NOT exceed 2^63 - 1)."""

COSIGNATURE_V1_HEADER: Final = b"cosignature/v1\n"
"""Domain separation line that starts every cosignature/v1 signed message."""

_EM_DASH: Final = "\u2014"
_SIG_LINE_PREFIX: Final = _EM_DASH + " "
_KEY_HASH_BYTES: Final = 4
_ED25519_SIG_BYTES: Final = 64
_TIMESTAMP_BYTES: Final = 8
_HASH_BYTES: Final = 32

# ASCII decimal with no leading zeros ("0" alone for the empty tree), per
# tlog-checkpoint; re.ASCII keeps int() from accepting other scripts' digits.
_DECIMAL_RE: Final = re.compile(r"0|[1-9][0-9]*", re.ASCII)
# Control characters other than newline are forbidden anywhere in a note.
_CONTROL_RE: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64decode_strict(value: str, what: str) -> bytes:
    """Decode standard, padded base64 (RFC 4648 section 4), refusing any other spelling.

    Python's decoder tolerates non-zero padding bits, so the result is
    re-encoded and compared: one value, one spelling, or two parties could
    hold different texts for the same signature.
    """
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(decoded).decode("ascii") != value:
        raise NoteError(f"{what} is not canonical base64")
    return decoded


def _check_text_line(value: str, what: str) -> None:
    if not value:
        raise NoteError(f"{what} is empty")
    if "\n" in value or _CONTROL_RE.search(value):
        raise NoteError(f"{what} contains a newline or control character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8") from exc


def _check_key_name(name: str) -> None:
    """Enforce the signed-note key name rule: non-empty, no Unicode spaces, no '+'.

    Spaces would make the signature line ambiguous; '+' separates the fields
    of a verifier key string.
    """
    _check_text_line(name, "key name")
    for ch in name:
        if ch.isspace() or ch == "+":
            raise NoteError(f"key name contains {'a plus sign' if ch == '+' else 'a space'}")


def note_key_hash(name: str, public_key: Ed25519PublicKey, sig_type: int) -> bytes:
    """Return the 4-byte key ID ``SHA-256(name || 0x0A || sig_type || raw public key)[:4]``.

    Use :data:`SIG_TYPE_ED25519` for note (log) signatures and
    :data:`SIG_TYPE_COSIGNATURE_V1` for cosignatures: the type byte keeps the
    two kinds of signature by one key apart.
    """
    _check_key_name(name)
    if not 0 <= sig_type <= 0xFF:
        raise NoteError(f"signature type {sig_type} is not a byte")
    material = name.encode("utf-8") + b"\n" + bytes([sig_type]) + _raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:_KEY_HASH_BYTES]


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a note, decoded but not verified."""

    name: str
    """The key name after the em dash."""
    key_hash: bytes
    """The 4-byte key ID that, with the name, selects the verifying key."""
    signature: bytes
    """Everything after the key ID: the raw signature of the signature type."""

    def line(self) -> str:
        """Return the signature line, ``— <name> base64(key_hash || signature)\\n``."""
        encoded = base64.b64encode(self.key_hash + self.signature).decode("ascii")
        return f"{_SIG_LINE_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A parsed signed note: the signed text and its (unverified) signatures."""

    body: str
    """The note text, including its final newline but not the blank line."""
    signatures: tuple[NoteSignature, ...]
    """Signature lines in the order they appeared."""

    def text(self) -> str:
        """Return the note in wire form (text, blank line, signature lines)."""
        return self.body + "\n" + "".join(sig.line() for sig in self.signatures)


def _parse_signature_line(line: str, where: str) -> NoteSignature:
    if not line.startswith(_SIG_LINE_PREFIX):
        raise NoteError(f"{where} does not start with an em dash and a space")
    fields = line[len(_SIG_LINE_PREFIX) :].split(" ")
    if len(fields) != 2:
        raise NoteError(f"{where} is not '— <key name> <base64 signature>'")
    name, encoded = fields
    try:
        _check_key_name(name)
    except NoteError as exc:
        raise NoteError(f"{where}: {exc}") from None
    raw = _b64decode_strict(encoded, f"{where} signature")
    # A key ID and at least one signature byte (signed-note: 4+n bytes).
    if len(raw) <= _KEY_HASH_BYTES:
        raise NoteError(f"{where} signature is too short ({len(raw)} bytes)")
    return NoteSignature(name=name, key_hash=raw[:_KEY_HASH_BYTES], signature=raw[_KEY_HASH_BYTES:])


def parse_signature_line(line: str) -> NoteSignature:
    """Parse one signature line, ending in a newline, as :func:`cosign` returns it.

    Raises :class:`NoteError` if the line is malformed.
    """
    if not line.endswith("\n") or line.count("\n") != 1:
        raise NoteError("a signature line must be exactly one line ending in a newline")
    if _CONTROL_RE.search(line):
        raise NoteError("signature line contains a control character")
    return _parse_signature_line(line[:-1], "signature line")


def _decode_note(text: str | bytes) -> str:
    """Check size and encoding before anything else looks at the note."""
    if isinstance(text, bytes | bytearray | memoryview):
        if len(text) > MAX_NOTE_BYTES:
            raise NoteError(f"note is {len(text)} bytes, over the {MAX_NOTE_BYTES}-byte limit")
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"note is not valid UTF-8 (byte {exc.start})") from None
    return check_text(text, limit=MAX_NOTE_BYTES, what="note", error=NoteError)


def check_text(text: object, *, limit: int, what: str, error: type[Exception]) -> str:
    """`text` if it is a str of at most `limit` UTF-8 bytes; else `error` naming `what`.

    Shared by every text input of the C2SP formats (notes here, witness
    requests in node/checks/_witness.py).
    """
    if not isinstance(text, str):
        raise error(f"{what} must be text, got {type(text).__name__}")
    # Every character is at least one UTF-8 byte: refuse huge input unencoded.
    if len(text) > limit:
        raise error(f"{what} is over the {limit}-byte limit")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise error(f"{what} is not valid UTF-8 (it holds an unpaired surrogate)") from None
    if size > limit:
        raise error(f"{what} is {size} bytes, over the {limit}-byte limit")
    return text


def parse_signed_note(text: str | bytes) -> SignedNote:
    """Parse a C2SP signed note without verifying any signature.

    Checks, in order: at most :data:`MAX_NOTE_BYTES` of valid UTF-8; no
    control characters but newline; a final newline; a blank line before the
    signatures (the last one in the note, as signed-note says); one to
    :data:`MAX_SIGNATURES` signature lines, each an em dash, a space, a key
    name without spaces or '+', a space and canonical base64 of at least five
    bytes. Raises :class:`NoteError` naming the first defect found.
    """
    note = _decode_note(text)
    control = _CONTROL_RE.search(note)
    if control is not None:
        raise NoteError(f"note contains control character U+{ord(control.group()):04X}")
    if not note.endswith("\n"):
        raise NoteError("note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line between its text and its signatures")
    body, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signature lines, over the limit of {MAX_SIGNATURES}")
    signatures = tuple(_parse_signature_line(line, f"signature line {i + 1}") for i, line in enumerate(lines))
    return SignedNote(body=body, signatures=signatures)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A transparency log checkpoint (c2sp.org/tlog-checkpoint): a tree head.

    Construction checks every field, so any ``Checkpoint`` serializes to a
    body that :func:`parse_checkpoint` reads back identically.
    """

    origin: str
    """The log's unique identity, e.g. ``ewx.example/kr/log``; non-empty, one line."""
    size: int
    """Number of leaves in the tree, 0 to :data:`MAX_TREE_SIZE`."""
    root_hash: bytes
    """The RFC 6962 root hash of the tree at ``size``: 32 bytes."""
    extensions: tuple[str, ...] = ()
    """Optional extension lines (non-empty, opaque; tlog-checkpoint advises against them)."""

    def __post_init__(self) -> None:
        """Refuse fields that could not be written as a valid checkpoint."""
        _check_text_line(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("checkpoint size must be an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is outside [0, {MAX_TREE_SIZE}]")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_BYTES:
            raise NoteError(f"checkpoint root hash must be {_HASH_BYTES} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extensions must be a tuple of lines")
        for i, line in enumerate(self.extensions):
            _check_text_line(line, f"checkpoint extension line {i + 1}")

    def body_text(self) -> str:
        """Return the note text: origin, size, base64 root, extensions, each ending in a newline."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines)

    def body(self) -> bytes:
        """Return the note text as the exact UTF-8 bytes that signatures cover."""
        return self.body_text().encode("utf-8")


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note text (the body of a signed note, not the whole note).

    Raises :class:`NoteError` unless the text is at least three non-empty
    newline-terminated lines: a non-empty origin, a decimal size without
    leading zeros, canonical base64 of a 32-byte root, then non-empty
    extension lines.
    """
    if not isinstance(body, str):
        raise NoteError(f"checkpoint text must be str, got {type(body).__name__}")
    if not body.endswith("\n"):
        raise NoteError("checkpoint text does not end with a newline")
    if _CONTROL_RE.search(body):
        raise NoteError("checkpoint text contains a control character")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(f"checkpoint text has {len(lines)} lines, needs origin, size and root hash")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise NoteError("checkpoint origin line is empty")
    if not _DECIMAL_RE.fullmatch(size_text):
        raise NoteError("checkpoint size is not a decimal number without leading zeros")
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise NoteError(f"checkpoint size is over {MAX_TREE_SIZE}")
    root_hash = _b64decode_strict(root_text, "checkpoint root hash")
    if len(root_hash) != _HASH_BYTES:
        raise NoteError(f"checkpoint root hash is {len(root_hash)} bytes, not {_HASH_BYTES}")
    for i, line in enumerate(extensions):
        if not line:
            raise NoteError(f"checkpoint extension line {i + 1} is empty")
    return Checkpoint(origin=origin, size=size, root_hash=root_hash, extensions=tuple(extensions))


def _sign_line(name: str, key_hash: bytes, signature: bytes) -> str:
    return NoteSignature(name=name, key_hash=key_hash, signature=signature).line()


def sign_checkpoint(cp: Checkpoint, *, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``cp`` as a log and return the whole signed note.

    The result is the checkpoint text, a blank line and one Ed25519 note
    signature line (type 0x01) by ``name``; tlog-checkpoint says ``name``
    should equal the origin. Cosignature lines from :func:`cosign` can be
    appended to the result as they arrive.
    """
    key_hash = note_key_hash(name, private_key.public_key(), SIG_TYPE_ED25519)
    signature = private_key.sign(cp.body())
    return cp.body_text() + "\n" + _sign_line(name, key_hash, signature)


def _verify_ed25519(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    if len(signature) != _ED25519_SIG_BYTES:
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def verify_note_signature(note: SignedNote, *, name: str, public_key: Ed25519PublicKey) -> bool:
    """Return True iff ``note`` carries a valid Ed25519 signature by ``(name, public_key)``.

    Signatures by other names or key IDs are ignored (signed-note: MUST
    ignore unknown keys). If a signature line matches the name and key ID but
    fails to verify, the result is False even when another one verifies:
    signed-note says such a note SHOULD be rejected, since a known key's bad
    signature means the note was tampered with or the key is misused.
    """
    key_hash = note_key_hash(name, public_key, SIG_TYPE_ED25519)
    message = note.body.encode("utf-8")
    matching = [s for s in note.signatures if s.name == name and s.key_hash == key_hash]
    if not matching:
        return False
    return all(_verify_ed25519(public_key, s.signature, message) for s in matching)


def open_checkpoint(
    text: str | bytes, *, name: str, public_key: Ed25519PublicKey, origin: str | None = None
) -> tuple[Checkpoint, SignedNote]:
    """Parse a signed checkpoint, verify the log's signature, then parse the body.

    The signature is checked before the checkpoint text is interpreted, so an
    unsigned body is never acted on. ``origin`` (default: ``name``) must match
    the checkpoint's origin line, binding the note to the log it claims to
    be from. Returns the checkpoint and the parsed note (whose other
    signature lines may be cosignatures). Raises :class:`NoteError`.
    """
    note = parse_signed_note(text)
    if not verify_note_signature(note, name=name, public_key=public_key):
        raise NoteError(f"checkpoint has no valid signature by log key {name!r}")
    cp = parse_checkpoint(note.body)
    expected_origin = name if origin is None else origin
    if cp.origin != expected_origin:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not {expected_origin!r}")
    return cp, note


def cosignature_message(cp: Checkpoint, timestamp: int) -> bytes:
    """Return the exact bytes a cosignature/v1 signs for ``cp`` at ``timestamp``.

    ``"cosignature/v1\\n" || "time <timestamp>\\n" || checkpoint text``
    (c2sp.org/tlog-cosignature, Ed25519 signed message).
    """
    _check_timestamp(timestamp)
    return COSIGNATURE_V1_HEADER + b"time %d\n" % timestamp + cp.body()


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise NoteError("cosignature timestamp must be an int")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is outside [0, 2^63 - 1]")


def cosign(cp: Checkpoint, *, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """Cosign ``cp`` as witness ``name`` at POSIX ``timestamp``; return one signature line.

    The line is ``— <name> base64(key ID || u64be timestamp || Ed25519
    signature)\\n`` with the key ID of type 0x04. The witness key must be its
    own key, never the log key: cosignature/v1 does not commit to the
    cosigner's name. Append the line to the log's signed note.
    """
    key_hash = note_key_hash(name, private_key.public_key(), SIG_TYPE_COSIGNATURE_V1)
    signature = private_key.sign(cosignature_message(cp, timestamp))
    return _sign_line(name, key_hash, timestamp.to_bytes(_TIMESTAMP_BYTES, "big") + signature)


def verify_cosignature(
    note_or_line: SignedNote | str, cp: Checkpoint, *, name: str, public_key: Ed25519PublicKey
) -> int | None:
    """Return the timestamp of a valid cosignature/v1 of ``cp`` by ``(name, public_key)``, else None.

    ``note_or_line`` is either a signed note (parsed, or as text) whose body
    must be exactly ``cp``'s text, or a single signature line as returned by
    :func:`cosign`. Lines by other names or key IDs are ignored; if a
    matching line is malformed or fails to verify, the result is None (as
    for :func:`verify_note_signature`). With several valid matching lines,
    the latest timestamp is returned. Raises :class:`NoteError` only if the
    note or line itself cannot be parsed.
    """
    if isinstance(note_or_line, SignedNote):
        note = note_or_line
    elif note_or_line.startswith(_SIG_LINE_PREFIX) and note_or_line.count("\n") == 1:
        line = parse_signature_line(note_or_line)
        return _verify_cosignature_lines((line,), cp, name=name, public_key=public_key)
    else:
        note = parse_signed_note(note_or_line)
    if note.body != cp.body_text():
        # The cosignatures in this note are over another checkpoint.
        return None
    return _verify_cosignature_lines(note.signatures, cp, name=name, public_key=public_key)


def _verify_cosignature_lines(
    signatures: tuple[NoteSignature, ...], cp: Checkpoint, *, name: str, public_key: Ed25519PublicKey
) -> int | None:
    key_hash = note_key_hash(name, public_key, SIG_TYPE_COSIGNATURE_V1)
    matching = [s for s in signatures if s.name == name and s.key_hash == key_hash]
    if not matching:
        return None
    timestamps: list[int] = []
    for sig in matching:
        if len(sig.signature) != _TIMESTAMP_BYTES + _ED25519_SIG_BYTES:
            return None
        timestamp = int.from_bytes(sig.signature[:_TIMESTAMP_BYTES], "big")
        if timestamp > MAX_TIMESTAMP:
            return None
        message = cosignature_message(cp, timestamp)
        if not _verify_ed25519(public_key, sig.signature[_TIMESTAMP_BYTES:], message):
            return None
        timestamps.append(timestamp)
    return max(timestamps)
