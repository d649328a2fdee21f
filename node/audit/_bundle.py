"""The exported log bundle: portable, self-contained, verifiable offline.

Layout (docs/bundle-format.md has the full description):

    magic   b"EWXBUNDLE1\\n"
    records each a varint length, then a serialized ewx.v1.BundleRecord:
            1 header     (format version, node, log origin, size, export time)
            N entries    (LogEntry bytes exactly as logged and hashed)
            H history    (the node's earlier checkpoints with the peers'
                          cosignatures, oldest first)
            W witnessed  (peers' checkpoints this node cosigned, in order)
            1 checkpoint (C2SP signed note over size N and the root, signed
                          with the node's log key at export)

Everything an auditor needs besides the federation trust file is inside:
the signed alerts and receipts embedded in the entries carry their own
signatures, and the checkpoint pins the whole log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

from node.errors import BundleError, FramingError
from node.files import read_bounded
from node.ids import Country
from node.message import frame, member, pb, records, timestamp

MAGIC: Final = b"EWXBUNDLE1\n"
FORMAT_VERSION: Final = 1
MAX_BUNDLE_BYTES: Final = 4 << 30
"""A bundle is read whole; a log of a million alerts is well under this, and a
wrong path (a pipe, a device) is refused instead of filling memory."""
MAX_RECORD_BYTES: Final = 64 * 1024
"""No legal record comes near this; a larger length prefix means corruption."""
PROGRESS_EVERY: Final = 4096
"""Records read between two calls of read_bundle's `progress`, at most."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """One exported log, as read back."""

    node: Country
    log_origin: str
    exported_at: datetime
    entries: list[bytes]
    checkpoint: str
    declared_size: int
    history: list[str] = field(default_factory=list)
    """Earlier checkpoints of this log with their cosignature lines, oldest first."""
    witnessed: list[tuple[Country, str]] = field(default_factory=list)
    """(log node, note with this node's cosignature) of peers' checkpoints it witnessed."""


def write_bundle(
    out: BinaryIO,
    *,
    node: Country,
    log_origin: str,
    entries: Iterator[bytes],
    size: int,
    checkpoint: str,
    exported_at: datetime,
    history: Sequence[str] = (),
    witnessed: Sequence[tuple[Country, str]] = (),
) -> None:
    """Write a bundle to an open binary file."""
    out.write(MAGIC)
    out.write(
        frame(
            pb.BundleRecord(
                header=pb.BundleHeader(
                    format_version=FORMAT_VERSION,
                    node=node,
                    log_origin=log_origin,
                    size=size,
                    exported_at=timestamp(exported_at),
                )
            )
        )
    )
    for entry in entries:
        out.write(frame(pb.BundleRecord(entry=entry)))
    for note in history:
        out.write(frame(pb.BundleRecord(history=note)))
    for log_node, note in witnessed:
        out.write(frame(pb.BundleRecord(witnessed=pb.WitnessedCheckpoint(log_node=log_node, note=note))))
    out.write(frame(pb.BundleRecord(checkpoint=checkpoint)))


EXPORT_TIME_PREFIX: Final = "ewx-exported-at "
"""The export checkpoint's one extension line: the export time, under the log key's signature.

The header's `exported_at` is covered by no signature; the audit holds it to
this line (moving it would make a replay show every alert expired, or hide an
expired key). Bundles written before the line existed carry none."""


def export_time_line(at: datetime) -> str:
    """`ewx-exported-at 2026-12-02T23:41:16.123456Z`: UTC, to the microsecond (as the header keeps it)."""
    return EXPORT_TIME_PREFIX + at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_export_time(extensions: tuple[str, ...]) -> datetime | str | None:
    """The export time the checkpoint's extension line signs, None without one, or why it is bad."""
    lines = [e for e in extensions if e.startswith(EXPORT_TIME_PREFIX)]
    if not lines:
        return None
    if len(lines) > 1:
        return "the checkpoint names its export time more than once"
    try:
        return datetime.strptime(lines[0][len(EXPORT_TIME_PREFIX) :], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=UTC
        )
    except ValueError:
        return f"the checkpoint's export time line {lines[0][:80]!r} is not a UTC time"


def _records(data: bytes) -> Iterator[tuple[int, pb.BundleRecord]]:
    try:
        yield from records(data, len(MAGIC), pb.BundleRecord, max_bytes=MAX_RECORD_BYTES)
    except FramingError as exc:
        raise BundleError(str(exc)) from None


def read_bundle(path: Path, *, progress: Callable[[int], None] | None = None) -> Bundle:
    """Read a bundle; BundleError names what is wrong with its framing.

    Entry contents are not judged here: a damaged entry is an audit finding,
    not an unreadable file.

    `progress`, if given, is called with how many bytes of the file were read
    since its last call, every `PROGRESS_EVERY` records and at the end: the
    calls sum to the file's size when it reads whole.
    """
    data = read_bounded(path, MAX_BUNDLE_BYTES, what="log bundle", error=BundleError, magic=MAGIC)
    told = 0
    header: pb.BundleHeader | None = None
    entries: list[bytes] = []
    history: list[str] = []
    witnessed: list[tuple[Country, str]] = []
    checkpoint: str | None = None
    # The records must come in the documented order: each kind may only
    # follow the kinds before it, and nothing follows the final checkpoint.
    order = {"header": 0, "entry": 1, "history": 2, "witnessed": 3, "checkpoint": 4}
    last = -1
    for count, (pos, record) in enumerate(_records(data), start=1):
        if progress is not None and not count % PROGRESS_EVERY:
            progress(pos - told)
            told = pos
        kind = record.WhichOneof("record")
        rank = order.get(kind or "", -1)
        if (
            rank < last
            or rank == -1
            or checkpoint is not None
            or (rank == 0 and header is not None)
            or (rank > 0 and header is None)
        ):
            raise BundleError(f"{path}: unexpected {kind or 'empty'} record at byte {pos}")
        last = rank
        if kind == "header":
            header = record.header
        elif kind == "entry":
            entries.append(bytes(record.entry))
        elif kind == "history":
            history.append(record.history)
        elif kind == "witnessed":
            log_node = member(record.witnessed.log_node)
            if log_node is None:
                raise BundleError(f"{path}: witnessed record at byte {pos} names no federation member")
            witnessed.append((log_node, record.witnessed.note))
        else:
            checkpoint = record.checkpoint
    if progress is not None:
        progress(len(data) - told)
    if header is None or checkpoint is None:
        raise BundleError(f"{path}: missing {'header' if header is None else 'checkpoint'}")
    if header.format_version != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {header.format_version} is not supported")
    node = member(header.node)
    if node is None:
        raise BundleError(f"{path}: header names no federation member")
    return Bundle(
        node=node,
        log_origin=header.log_origin,
        exported_at=header.exported_at.ToDatetime(tzinfo=UTC),
        entries=entries,
        checkpoint=checkpoint,
        declared_size=header.size,
        history=history,
        witnessed=witnessed,
    )
