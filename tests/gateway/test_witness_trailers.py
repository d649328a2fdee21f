"""The size-mismatch answer carries the log's signed checkpoint, within gRPC's metadata budget."""

from __future__ import annotations

import base64

from gateway.status_map import WITNESS_CHECKPOINT_TRAILER, WITNESS_SIZE_TRAILER, trailers_for
from node import limits
from node.checks import SizeMismatch


def _mismatch(note: str | None) -> dict[str, str]:
    exc = SizeMismatch("old size 0, but I cosigned 7", witness_size=7)
    exc.witness_note = note
    return dict(trailers_for(exc))


def test_the_checkpoint_travels_base64_beside_the_size() -> None:
    note = "kr.node.ewx/log\n7\nAAAA\n\n— kr.node.ewx/log abc=\n"
    sent = _mismatch(note)
    assert sent[WITNESS_SIZE_TRAILER] == "7"
    assert base64.b64decode(sent[WITNESS_CHECKPOINT_TRAILER]).decode() == note


def test_a_checkpoint_too_long_for_a_trailer_is_left_out_not_sent_to_fail_the_call() -> None:
    sent = _mismatch("x" * limits.MAX_WITNESS_CHECKPOINT_TRAILER)
    assert WITNESS_CHECKPOINT_TRAILER not in sent and sent[WITNESS_SIZE_TRAILER] == "7"
    assert WITNESS_CHECKPOINT_TRAILER not in _mismatch(None)
