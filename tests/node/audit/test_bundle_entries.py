"""A bundle read from a file keeps where its entries lie, not the entries (node/audit/_bundle.py).

The audit reads each entry from the file when it needs it; these tests hold
that what it reads is exactly what write_bundle wrote, that a file rewritten
in place is refused instead of mixed with what was framed, and that a record
not as write_bundle writes it (legal protobuf) still reads.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.audit import read_bundle, write_bundle
from node.audit._bundle import MAGIC, BundleEntries
from node.errors import BundleError
from node.message import frame, pb, varint

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _write(path: Path, entries: list[bytes]) -> None:
    out = io.BytesIO()
    write_bundle(
        out,
        node="KR",
        log_origin="ewx.example/KR",
        entries=iter(entries),
        size=len(entries),
        checkpoint="a checkpoint\n",
        exported_at=AT,
    )
    path.write_bytes(out.getvalue())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=60))
def test_entries_read_back_as_written(tmp_path_factory: pytest.TempPathFactory, entries: list[bytes]) -> None:
    path = tmp_path_factory.mktemp("b") / "KR.ewxlog"
    _write(path, entries)
    bundle = read_bundle(path)
    assert isinstance(bundle.entries, BundleEntries)
    assert len(bundle.entries) == len(entries)
    assert list(bundle.entries) == entries
    assert [bundle.entries[i] for i in range(len(entries))] == entries
    assert bundle.entries[1:-1:2] == entries[1:-1:2]
    if entries:
        assert bundle.entries[-1] == entries[-1]
    assert bundle.entries == entries and entries == bundle.entries


def test_entries_past_one_read_ahead_cross_chunks(tmp_path: Path) -> None:
    # 700 entries of 3,000 bytes fill two of the iterator's 1 MiB reads and a part.
    entries = [bytes([i % 251]) * 3000 for i in range(700)]
    path = tmp_path / "KR.ewxlog"
    _write(path, entries)
    assert list(read_bundle(path).entries) == entries


def test_out_of_range_index_is_an_index_error(tmp_path: Path) -> None:
    path = tmp_path / "KR.ewxlog"
    _write(path, [b"a", b"b"])
    entries = read_bundle(path).entries
    with pytest.raises(IndexError):
        entries[2]
    with pytest.raises(IndexError):
        entries[-3]


def test_a_removed_file_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "KR.ewxlog"
    _write(path, [b"first", b"second"])
    bundle = read_bundle(path)
    path.unlink()
    assert list(bundle.entries) == [b"first", b"second"]


def test_a_file_rewritten_in_place_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "KR.ewxlog"
    _write(path, [b"first", b"second"])
    bundle = read_bundle(path)
    with path.open("r+b") as f:  # same inode, other bytes
        f.seek(-40, os.SEEK_END)
        f.write(b"x" * 10)
    os.utime(path, ns=(0, 1))
    with pytest.raises(BundleError, match="changed since it was read"):
        list(bundle.entries)
    with pytest.raises(BundleError, match="changed since it was read"):
        bundle.entries[0]


def test_a_record_with_more_than_the_entry_still_reads(tmp_path: Path) -> None:
    # Legal protobuf write_bundle never writes: the entry field twice (the last one counts).
    good = io.BytesIO()
    _write(tmp_path / "tmp", [b"one", b"three"])
    data = (tmp_path / "tmp").read_bytes()
    doubled = (
        pb.BundleRecord(entry=b"lost").SerializeToString() + pb.BundleRecord(entry=b"two").SerializeToString()
    )
    first = frame(pb.BundleRecord(entry=b"one"))
    at = data.index(first) + len(first)
    good.write(data[:at] + varint(len(doubled)) + doubled + data[at:])
    path = tmp_path / "KR.ewxlog"
    path.write_bytes(good.getvalue())
    entries = read_bundle(path).entries
    assert list(entries) == [b"one", b"two", b"three"]
    assert entries[1] == b"two"
    assert data.startswith(MAGIC)
