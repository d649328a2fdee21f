"""Every file decoder takes arbitrary bytes and raises only its documented error."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.audit import _bundle as bundle
from node.message import _transfer as transfer
from node.message import frame
from node.wire import ewx_pb2 as pb

FILES = st.binary(max_size=2048)


def _write(data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".bin")  # noqa: SIM115 - closed below
    handle.write(data)
    handle.close()
    return Path(handle.name)


@settings(max_examples=300, deadline=None)
@given(body=FILES, with_magic=st.booleans())
def test_read_bundle_raises_only_bundle_error(body: bytes, with_magic: bool) -> None:
    path = _write((bundle.MAGIC if with_magic else b"") + body)
    try:
        bundle.read_bundle(path)
    except bundle.BundleError:
        pass
    finally:
        path.unlink()


@settings(max_examples=300, deadline=None)
@given(body=FILES, with_magic=st.booleans())
def test_read_transfer_raises_only_transfer_error(body: bytes, with_magic: bool) -> None:
    path = _write((transfer.MAGIC if with_magic else b"") + body)
    try:
        transfer.read_transfer(path)
    except transfer.TransferError:
        pass
    finally:
        path.unlink()


@settings(max_examples=200, deadline=None)
@given(records=st.lists(st.binary(max_size=64), max_size=8))
def test_well_framed_but_arbitrary_records_are_refused_cleanly(records: list[bytes]) -> None:
    framed = b"".join(frame(pb.BundleRecord(entry=r)) for r in records)
    path = _write(bundle.MAGIC + framed)
    try:
        bundle.read_bundle(path)
    except bundle.BundleError as exc:
        assert "header" in str(exc) or "record" in str(exc)
    else:
        raise AssertionError("a bundle without header and checkpoint was accepted")
    finally:
        path.unlink()


def test_bounded_reads_refuse_endless_input_that_stat_calls_empty(tmp_path: Path) -> None:
    """A pipe or device reports size 0; the reader must stop at its limit, not fill memory."""
    from node.errors import UsageError
    from node.files import read_bounded

    with pytest.raises(
        UsageError, match=r"log bundle /dev/zero: cannot read it: not a regular file \(a character device\)"
    ):
        read_bounded(Path("/dev/zero"), 4096, what="log bundle", error=UsageError)
    with pytest.raises(UsageError, match="cannot read it"):
        read_bounded(tmp_path / "missing", 4096, what="log bundle", error=UsageError)
    small = tmp_path / "small"
    small.write_bytes(b"x" * 4096)
    assert read_bounded(small, 4096, what="log bundle", error=UsageError) == b"x" * 4096


def test_bounded_reads_judge_type_size_and_magic_before_reading(tmp_path: Path) -> None:
    """Issue 10, item 10: `audit verify /dev/zero` read 4.25 GB before it said "too large"."""
    import os
    import tracemalloc

    from node.audit import MAGIC, MAX_BUNDLE_BYTES, read_bundle
    from node.errors import BundleError, TransferError
    from node.message import read_transfer

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: opening it for reading would block forever
    with pytest.raises(BundleError, match=r"fifo: cannot read it: not a regular file \(a FIFO\)"):
        read_bundle(fifo)
    with pytest.raises(TransferError, match=r"not a regular file \(a folder\)"):
        read_transfer(tmp_path)
    with pytest.raises(BundleError, match="not a regular file"):
        read_bundle(Path("/dev/zero"))

    huge = tmp_path / "huge.ewxlog"  # sparse: the right magic, then more than the limit
    with huge.open("wb") as out:
        out.write(MAGIC)
        out.truncate(MAX_BUNDLE_BYTES + 1)
    not_a_bundle = tmp_path / "big.bin"  # sparse, under the limit, wrong magic
    with not_a_bundle.open("wb") as out:
        out.truncate(256 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=rf"larger than {MAX_BUNDLE_BYTES} bytes"):
            read_bundle(huge)
        with pytest.raises(BundleError, match="bad magic"):
            read_bundle(not_a_bundle)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes held to refuse files it need not read"
