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

import mmap
import os
import weakref
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final, overload

from node.errors import BundleError, FramingError
from node.files import open_bounded
from node.ids import Country
from node.message import frame, member, pb, read_varint, records, timestamp, varint

MAGIC: Final = b"EWXBUNDLE1\n"
FORMAT_VERSION: Final = 1
MAX_BUNDLE_BYTES: Final = 4 << 30
"""A log of a million alerts is well under this; a wrong path (a pipe, a
device) is refused before anything is read."""
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
    entries: Sequence[bytes]
    """The entries in log order: a list when built in memory, BundleEntries when read from a file."""
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


_ENTRY_TAG: Final = bytes([2 << 3 | 2])
"""BundleRecord's `entry` field (number 2, length-delimited) as it opens a record."""


_READ_AHEAD: Final = 1 << 20
"""Bytes read from the file at once while the entries are iterated."""


class BundleEntries(Sequence[bytes]):
    """A bundle file's entries, read from the file when they are asked for.

    Only where each entry lies is held, 12 bytes an entry: an audit of a
    million entries would otherwise hold the quarter of a gigabyte they fill,
    and half as much again in Python's per-object overhead (405 bytes an entry
    held, measured, for 257 on disk). The file stays open, so
    what is read is the file read_bundle framed even if it is renamed or
    removed since; each read checks its size and modification time, so an
    audit never mixes two versions of a file rewritten in place (a BundleError
    naming it).
    """

    __slots__ = ("__weakref__", "_descriptor", "_held", "_lengths", "_path", "_stamp", "_starts")

    def __init__(self, path: Path, descriptor: int) -> None:
        self._path = path
        self._descriptor = descriptor
        self._stamp = _stamp(os.fstat(descriptor))
        self._starts = array("q")
        self._lengths = array("I")
        self._held: dict[int, bytes] = {}
        """Entries whose record holds more than the entry field (not as write_bundle writes
        them, but legal protobuf): kept in memory rather than located in the file."""
        weakref.finalize(self, os.close, descriptor)

    def _add(self, start: int, length: int) -> None:
        self._starts.append(start)
        self._lengths.append(length)

    def _hold(self, entry: bytes) -> None:
        self._held[len(self._starts)] = entry
        self._add(-1, 0)

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("bundle entry index out of range")
        self._check_unchanged()
        held = self._held.get(index)
        if held is not None:
            return held
        return self._pread(self._starts[index], self._lengths[index], index)

    def __iter__(self) -> Iterator[bytes]:
        self._check_unchanged()
        chunk, chunk_start = b"", 0
        for index, (start, length) in enumerate(zip(self._starts, self._lengths, strict=True)):
            held = self._held.get(index)
            if held is not None:
                yield held
                continue
            offset = start - chunk_start
            if offset < 0 or offset + length > len(chunk):
                # Entries lie one after the other: one read serves the next thousands.
                chunk, chunk_start, offset = self._pread(start, max(length, _READ_AHEAD), index), start, 0
                if length > len(chunk):
                    self._changed(f"entry {index} is cut short")
            yield chunk[offset : offset + length]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=False))

    __hash__ = None  # type: ignore[assignment]  # a sequence compared by its items, as a list is

    def __repr__(self) -> str:
        return f"BundleEntries({str(self._path)!r}, {len(self)} entries)"

    def _pread(self, start: int, length: int, index: int) -> bytes:
        try:
            data = os.pread(self._descriptor, length, start)
        except OSError as exc:
            raise BundleError(
                f"log bundle {self._path}: cannot read it again: {exc.strerror or exc}"
            ) from None
        if len(data) < self._lengths[index]:
            self._changed(f"entry {index} is cut short")
        return data

    def _check_unchanged(self) -> None:
        if _stamp(os.fstat(self._descriptor)) != self._stamp:
            self._changed("its size or modification time is not what it was")

    def _changed(self, why: str) -> None:
        raise BundleError(f"{self._path} changed since it was read ({why}); read it again")


def _stamp(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_size, info.st_mtime_ns)


def _records(data: bytes | mmap.mmap) -> Iterator[tuple[int, pb.BundleRecord]]:
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
    with (
        open_bounded(path, MAX_BUNDLE_BYTES, what="log bundle", error=BundleError, magic=MAGIC) as (
            stream,
            info,
        ),
        mmap.mmap(stream.fileno(), info.st_size, access=mmap.ACCESS_READ) as data,
    ):
        # The entries read from a descriptor of their own, open for as long as they are used.
        entries = BundleEntries(path, os.dup(stream.fileno()))
        return _read_records(path, data, entries, progress)


def _read_records(
    path: Path, data: mmap.mmap, entries: BundleEntries, progress: Callable[[int], None] | None
) -> Bundle:
    told = 0
    header: pb.BundleHeader | None = None
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
            entry = record.entry
            length, begin = read_varint(data, pos)
            if length == len(_ENTRY_TAG) + len(varint(len(entry))) + len(entry):
                # The record is the entry field and nothing else: the entry is its tail.
                entries._add(begin + length - len(entry), len(entry))
            else:
                entries._hold(bytes(entry))
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
