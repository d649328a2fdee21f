"""The node's files: bounded reads with one style of error message, atomic writes.

Every file the node or its tools read from an operator (config, trust file,
certificates, requests, trust updates, bundles, transfers) has a size limit.
`read_bounded` judges the file before reading it (a regular file, its size,
its magic) and still reads one byte past the limit, so a wrong path to a
device, a FIFO or a huge file is refused without reading it into memory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from node.errors import ConfigError, EwxError, RefusedOperation, UsageError

GENESIS_FILE: Final = "GENESIS"
"""Written into each data directory by `ewx pki init`: the store started there
is the first of a new federation and need not wait for its peers' word on
its history (node/service/_rejoin.py). Taken into the store and removed at the
first `ewx serve`."""

LOCK_FILE: Final = "node.lock"
"""In the data directory: held (flock, exclusive) by the one node that runs on it."""


@contextlib.contextmanager
def open_bounded(
    path: Path, limit: int, *, what: str, error: type[EwxError], magic: bytes | None = None
) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """`path` open for reading, positioned after `magic`, with its stat; judged as `read_bounded` judges it.

    For a reader that takes the file a part at a time (a log bundle): what it
    reads past `limit` is its own check, the stat's size is judged here.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise error(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise error(f"{what} {path}: cannot read it: not a regular file ({_file_type(info.st_mode)})")
    with os.fdopen(descriptor, "rb") as stream:
        if info.st_size > limit:
            raise error(f"{what} {path}: larger than {limit} bytes ({info.st_size} bytes)")
        os.set_blocking(descriptor, True)
        try:
            if magic is not None and stream.read(len(magic)) != magic:
                raise error(f"{path} is not an EWX {what} (bad magic)")
        except OSError as exc:
            raise error(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
        yield stream, info


def read_bounded(
    path: Path, limit: int, *, what: str, error: type[EwxError], magic: bytes | None = None
) -> bytes:
    """The bytes of `path`, at most `limit`; `error` naming `what` and the path otherwise.

    Judged before the bytes are read: the path must be a regular file (a device
    such as /dev/zero, a FIFO that would block, or a folder is refused), no
    larger than `limit` by its size, and begin with `magic` when one is given, so
    a wrong path costs one stat and a few bytes, never a read of gigabytes.
    """
    with open_bounded(path, limit, what=what, error=error, magic=magic) as (stream, _):
        try:
            # One byte past the limit: a file that grew since the stat is still caught.
            data = (magic or b"") + stream.read(limit + 1 - len(magic or b""))
        except OSError as exc:
            raise error(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} {path}: larger than {limit} bytes")
    return data


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace `path` with `data` so that no reader ever sees a partial file.

    The bytes go to a new temporary file beside `path` (created with `mode`,
    never looser), are flushed to disk, and are renamed over `path`; the
    folder is synced so that the rename itself survives a crash.
    """
    directory = path.parent
    temporary = directory / f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_directory(directory)


EXPORT_FILE_MODE: Final = 0o644
"""Exported files (log bundles, outbox transfers) are for handing on: readable, not writable, by others."""


def check_output_target(path: Path, *, force: bool, if_exists: str = "give --force to replace it") -> None:
    """Refuse an output path that is not, or would not be, a plain file this writer may create.

    A device, a folder, a FIFO or a socket at `path` (or behind a symbolic
    link there) is refused: `/dev/full` must not be replaced by a file. An
    existing regular file is replaced only with `force`.
    """
    try:
        target = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise UsageError(f"{path} is a dangling symbolic link; give the real path") from None
        if not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: no folder {path.parent}") from None
        return
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(target.st_mode):
        kind = "a folder" if stat.S_ISDIR(target.st_mode) else "not a regular file"
        raise UsageError(f"cannot write {path}: it is {kind}")
    if not force:
        raise RefusedOperation(f"{path} already exists; {if_exists}")


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool = False, mode: int = EXPORT_FILE_MODE) -> Iterator[BinaryIO]:
    """A binary stream whose bytes appear at `path` all at once, or not at all.

    The bytes go to a new file with a unique name beside `path`, created with
    O_EXCL and O_NOFOLLOW (tempfile.mkstemp), so nothing planted there can be
    followed or reused; it is flushed and fsynced, then renamed to `path`:
    without `force` by a hard link that fails if `path` appeared meanwhile,
    with `force` over the old file. On any failure the temporary file is
    removed. OSErrors (a missing or unwritable folder, a full disk) become a
    UsageError naming `path`; the target is checked by check_output_target.
    """
    check_output_target(path, force=force)
    directory = path.parent
    try:
        descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc} (in {directory})") from None
    temporary = Path(name)
    try:
        try:
            with os.fdopen(descriptor, "wb") as stream:
                os.fchmod(stream.fileno(), mode)
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            _publish(temporary, path, force=force)
            sync_directory(directory)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path, *, force: bool = False, mode: int = 0o600) -> Iterator[Path]:
    """A new empty file beside `path`, for a writer that needs a path (SQLite); it appears at `path` whole, or not at all.

    As atomic_output, for writers that open the file themselves: the file is
    made with O_EXCL and `mode` (default 0600: owner only), the caller writes
    it through the path it is given, and on success it is fsynced and
    renamed to `path` (without `force`, by a hard link that fails if `path`
    appeared meanwhile). On any failure, or if the process is killed first,
    nothing appears at `path`; only a kill leaves the hidden
    `.NAME.*.part` file behind. OSErrors become a UsageError naming `path`.
    """
    check_output_target(path, force=force)
    directory = path.parent
    try:
        descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc} (in {directory})") from None
    temporary = Path(name)
    try:
        try:
            try:
                os.fchmod(descriptor, mode)
            finally:
                os.close(descriptor)
            yield temporary
            fsync_file(temporary)
            _publish(temporary, path, force=force)
            sync_directory(directory)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk (opened read-only: fsync needs no write access)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _publish(temporary: Path, path: Path, *, force: bool) -> None:
    if force:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path, follow_symlinks=False)
    except FileExistsError:
        raise RefusedOperation(f"{path} already exists; give --force to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # A filesystem without hard links: check once more, then rename.
        check_output_target(path, force=False)
        os.replace(temporary, path)


def sync_directory(directory: Path) -> None:
    """fsync a folder, so that renames and new files in it survive a crash."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class DataDirLock:
    """An exclusive `flock` on `<data_dir>/node.lock`, held for a running node's lifetime.

    A second node on the same data directory (a second `ewx serve`, a copy of
    the unit file) would share the store and hand out receipts and checkpoints
    of one log twice; it refuses at start instead. The kernel drops the lock
    when the process ends, however it ends, so a crashed node leaves none.
    """

    def __init__(self, descriptor: int, path: Path) -> None:
        self._descriptor: int | None = descriptor
        self.path = path

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Create the data directory if need be (0700) and lock it; ConfigError if it cannot be."""
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            raise ConfigError(f"data directory {data_dir} is not a directory") from None
        except OSError as exc:
            raise ConfigError(f"data directory {data_dir}: cannot create it: {exc.strerror or exc}") from None
        if not data_dir.is_dir():
            raise ConfigError(f"data directory {data_dir} is not a directory")
        path = data_dir / LOCK_FILE
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            descriptor = os.open(path, flags, 0o600)
        except OSError as exc:
            raise ConfigError(f"lock file {path}: cannot open it: {exc.strerror or exc}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode("ascii", "replace").strip()
            os.close(descriptor)
            raise ConfigError(
                f"data directory {data_dir} is in use by another node"
                + (f" (pid {holder})" if holder else "")
                + "; one node per data directory"
            ) from None
        except OSError as exc:
            os.close(descriptor)
            raise ConfigError(f"lock file {path}: cannot lock it: {exc.strerror or exc}") from None
        with contextlib.suppress(OSError):  # the pid is for the message above only
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
        return cls(descriptor, path)

    def release(self) -> None:
        """Drop the lock (closing the file drops it); safe to call twice."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
