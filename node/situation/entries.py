"""The log entries an alert's situation is folded from: signed alerts and receipts as one log holds them.

The node reads its own log through these (node/service/_views.py) and the
auditor reads exported logs through them (node/audit/_replay.py), so both see
the same thing in the same entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from node.crypto import digest
from node.ids import Country
from node.message import (
    Alert,
    DecodeFailure,
    Receipt,
    alert_from_bytes,
    from_timestamp,
    parse_canonical,
    pb,
    receipt_from_bytes,
)
from node.message import member as _member

__all__ = ["AlertEntry", "ReceiptEntry", "read_entry"]

_SENT: Final = pb.ALERT_SENT
_RECEIVED: Final = pb.ALERT_RECEIVED
_RECEIPT: Final = pb.RECEIPT_RECEIVED


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """A signed alert in `node`'s log: sent by it, or received from `peer`."""

    node: Country
    index: int
    logged_at: datetime
    sent: bool
    peer: Country | None
    alert: Alert
    digest: bytes


@dataclass(frozen=True, slots=True)
class ReceiptEntry:
    """A recipient's (`peer`'s) signed receipt, in the origin's (`node`'s) log."""

    node: Country
    index: int
    logged_at: datetime
    peer: Country
    receipt: Receipt


def read_entry(node: Country, index: int, data: bytes) -> AlertEntry | ReceiptEntry | None:
    """Decode one entry the audit found usable; None if it still does not decode."""
    try:
        entry = parse_canonical(pb.LogEntry, data, what="log entry")
        logged_at = from_timestamp(entry.logged_at, field="logged_at")
        peer = _member(entry.peer)
        if entry.kind == _RECEIPT:
            if peer is None:
                return None
            receipt = receipt_from_bytes(bytes(entry.receipt.receipt))
            return ReceiptEntry(node=node, index=index, logged_at=logged_at, peer=peer, receipt=receipt)
        if entry.kind not in (_SENT, _RECEIVED):
            return None
        payload = bytes(entry.alert.alert)
        alert = alert_from_bytes(payload)
    except DecodeFailure:
        return None
    return AlertEntry(
        node=node,
        index=index,
        logged_at=logged_at,
        sent=entry.kind == _SENT,
        peer=peer,
        alert=alert,
        digest=digest(payload),
    )
