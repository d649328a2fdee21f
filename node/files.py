"""The node's files: bounded reads with one style of error message, atomic writes.

Every file the node or its tools read from an operator (config, trust file,
certificates, requests, trust updates) has a size limit, checked by reading
one byte past it, so a wrong path to a huge file is refused without reading
it all into memory.
"""

from __future__ import annotations

import os
from pathlib import Path

from node.errors import EwxError


def read_bounded(path: Path, limit: int, *, what: str, error: type[EwxError]) -> bytes:
    """The bytes of `path`, at most `limit`; `error` naming `what` and the path otherwise."""
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise error(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} {path}: larger than {limit} bytes")
    return data


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


def sync_directory(directory: Path) -> None:
    """fsync a folder, so that renames and new files in it survive a crash."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
