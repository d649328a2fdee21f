"""Reading the node's input files: bounded, with one style of error message.

Every file the node or its tools read from an operator (config, trust file,
certificates, requests, trust updates) has a size limit, checked by reading
one byte past it, so a wrong path to a huge file is refused without reading
it all into memory.
"""

from __future__ import annotations

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
