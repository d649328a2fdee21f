"""Progress bars for the long commands: `ewx audit verify` and `replay`, `ewx ews ingest`, `ewx log export`.

A bar is drawn on standard error, and only when standard error is a terminal
and the command was not given --quiet; otherwise nothing at all is written,
so a pipe, a log file or `--json` on standard output never has a bar mixed
in. It shows only once the work has run for `DELAY_SECONDS` (quick commands
print nothing; $EWX_PROGRESS_DELAY sets another delay, 0 in the tests) and
is cleared when the work ends, before the command prints its result.

tqdm draws it (pyproject.toml says why: no dependencies, a few milliseconds
to import), imported here only when a bar is shown, so `ewx --help` and a
piped command never load it. The pure code (node/audit, node/ews/ingest.py,
node/service/_export.py) knows nothing of it: each long function takes a
`progress` callable, told how many units were done since its last call, and
`progress_bar` gives the `Bar` to pass, or None when silent (so their loops
do no extra work).

A command group imports this module as it does node/cli/_common.py
(tests/test_layering.py, CLI_SHARED).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, NoReturn

if TYPE_CHECKING:
    from tqdm import tqdm

DELAY_SECONDS: Final = 0.5
"""A bar appears only after this long: a command done sooner prints no bar."""
DELAY_ENV: Final = "EWX_PROGRESS_DELAY"
"""Environment variable: seconds before a bar appears (default DELAY_SECONDS)."""
QUIET_HELP: Final = "no progress bar"


def add_quiet(p: argparse.ArgumentParser) -> None:
    """--quiet, for a command that shows a progress bar on a terminal."""
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def shown(args: argparse.Namespace) -> bool:
    """Whether a bar is drawn: standard error is a terminal and --quiet was not given."""
    if getattr(args, "quiet", False):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


def _delay() -> float:
    value = os.environ.get(DELAY_ENV, "").strip()
    try:
        return max(0.0, float(value)) if value else DELAY_SECONDS
    except ValueError:
        return DELAY_SECONDS


class Bar:
    """A drawn bar, and the `progress` callable the pure code is given.

    `stages` name the parts of the work in order, each with its number of
    units (a log of an audit, say): the bar is labelled with the stage the
    count has reached, and with `finishing` once the count is full while the
    command still works (the checks after the last entry).
    """

    def __init__(
        self,
        bar: tqdm[NoReturn],
        stages: Sequence[tuple[str, int]],
        finishing: str | None,
        *,
        delay: float = 0.0,
    ) -> None:
        self._bar = bar
        self._shows_at = time.monotonic() + delay
        self._ends: list[tuple[int, str]] = []
        end = 0
        for label, units in stages:
            end += units
            self._ends.append((end, label))
        self._stage = -1
        self._finishing = finishing
        self._relabel()

    def __call__(self, done: int) -> None:
        """`done` more units are done."""
        self._bar.update(done)
        if self._ends or self._finishing:
            self._relabel()

    def set_total(self, total: int) -> None:
        """The number of units, once known (`ewx log export` learns it from the store)."""
        self._bar.total = total
        self._bar.refresh()

    def _relabel(self) -> None:
        n, total, last = self._bar.n, self._bar.total, len(self._ends)
        stage = next((i for i, (end, _label) in enumerate(self._ends) if n < end), last)
        if stage == last and self._finishing and total is not None and n >= total:
            stage = last + 1
        if stage == self._stage:
            return
        self._stage = stage
        # Drawn at once (tqdm would wait for the next update, and after the last
        # there is none), unless the bar is still in its delay.
        refresh = time.monotonic() >= self._shows_at
        if stage < last:
            self._bar.set_description_str(self._ends[stage][1], refresh=refresh)
        elif stage > last and self._finishing:
            self._bar.set_description_str(self._finishing, refresh=refresh)


@contextmanager
def progress_bar(
    args: argparse.Namespace,
    *,
    total: int | None,
    unit: str,
    label: str = "",
    stages: Sequence[tuple[str, int]] = (),
    finishing: str | None = None,
    in_bytes: bool = False,
) -> Iterator[Bar | None]:
    """A bar on standard error for the block's work, or None when none is shown (`shown`).

    `total` units (None: not known yet, `Bar.set_total`), counted in `unit`
    (bytes, scaled to kB, MB, ..., with `in_bytes`); labelled `label`, or by
    `stages` and `finishing` (`Bar`). The bar is closed and cleared at the
    end of the block, whether or not the work succeeded.
    """
    if not shown(args):
        yield None
        return
    from tqdm import tqdm

    delay = _delay()
    drawn: tqdm[NoReturn] = tqdm(
        total=total,
        desc=label or (stages[0][0] if stages else ""),
        unit=unit,
        unit_scale=in_bytes,
        unit_divisor=1024 if in_bytes else 1000,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        delay=delay,
        mininterval=0.2,
    )
    try:
        yield Bar(drawn, stages, finishing, delay=delay)
    finally:
        drawn.close()
