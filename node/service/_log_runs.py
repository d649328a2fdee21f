"""One log event a commit for what it took in sequence order: alerts received, receipts logged.

A catch-up page, a delivery stream's turn and a window's receipts each take one
origin's positions in rising order, so the first and last (alert id, seq, log index)
and the count name every one of them; `ewx alert show` has each. An event each was
~15% of the store's thread in a catch-up (issue 15) and a line an alert for the
operator. One definition of the events' fields, so a log pipeline reads both alike.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Position(NamedTuple):
    """Where one taken alert (or its receipt) lies: its id, its seq, its log entry."""

    alert_id: str
    seq: int
    log_index: int


def log_run(
    events: Any,
    *,
    one: str,
    many: str,
    first: Position,
    last: Position,
    count: int,
    single: bool,
    **context: Any,
) -> None:
    """Log `count` positions from `first` to `last`: as event `one` naming it when there is one
    and `single` (a commit of one), else as event `many` with the count and the ranges."""
    if single and count == 1:
        events.info(one, **context, alert_id=last.alert_id, seq=last.seq, log_index=last.log_index)
        return
    events.info(
        many,
        **context,
        count=count,
        first_alert_id=first.alert_id,
        last_alert_id=last.alert_id,
        seqs=f"{first.seq}-{last.seq}",
        log_indexes=f"{first.log_index}-{last.log_index}",
    )
