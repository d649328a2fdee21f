"""A bench's in-process node logs as `ewx serve` does by default.

bench/run.py's children, and each bench's main, turn the logs down to errors so
their own output stays readable; a node run in the bench's process then skipped
a cost every serving node pays (a received alert's event was ~15% of the store's
thread, docs/performance.md). Within `as_served`, it pays it: events at the
default level, one JSON line each, into a file of the bench's folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from node.logs import DEFAULT_LEVEL, configure


@contextmanager
def as_served(folder: Path) -> Iterator[Path]:
    """Log at `ewx serve`'s default level into folder/in-process-node.log (yielded); the
    configuration before is put back after."""
    saved = structlog.get_config()
    path = folder / "in-process-node.log"
    with path.open("a", encoding="utf-8") as out:
        configure(level=DEFAULT_LEVEL, stream=out)
        try:
            yield path
        finally:
            structlog.configure(**saved)
