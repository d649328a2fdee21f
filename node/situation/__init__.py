"""The situation an alert is in, as the logs prove it: state, deadlines, the board, and CAP 1.2 export.

Owns what issue 13 adds around the alert lifecycle (docs/situation.md):
- `entries`: a log entry as the fold reads it (a signed alert sent or
  received, a receipt), for the node's own log and for exported logs alike;
- `state`: `fold`, the one function from log entries to every alert's state
  (active, updated, cancelled, expired, unknown) and, per recipient and
  member, delivery, acknowledgement, error, responses and consultations;
  the node's views and `ewx audit replay` both call it;
- `settings` and `deadlines`: acknowledgement deadlines per severity, and
  each recipient's acknowledgement against them;
- `board`: the situation board as JSON, and its text and HTML renderings;
- `cap`: one message as an OASIS CAP 1.2 document (docs/cap.md).

No store, no clock, no I/O: the service feeds it its own log's entries, the
audit the exported ones.

May import: node's shared modules, node.message, node.crypto, node.trilateral.
"""

from node.situation.board import BoardAlert, PolicyNote, build_board, render_html, render_text
from node.situation.cap import CAP_NAMESPACE, cap_filename, to_cap
from node.situation.deadlines import AckDue, ack_dues
from node.situation.entries import AlertEntry, ReceiptEntry, read_entry
from node.situation.settings import (
    ACK_STATUSES,
    DEFAULT_ACK_DEADLINE_MINUTES,
    deadlines_from_minutes,
    parse_deadlines,
)
from node.situation.state import ALERT_STATES, AlertFold, AlertState, Answer, Delivery, fold

__all__ = [
    "ACK_STATUSES",
    "ALERT_STATES",
    "CAP_NAMESPACE",
    "DEFAULT_ACK_DEADLINE_MINUTES",
    "AckDue",
    "AlertEntry",
    "AlertFold",
    "AlertState",
    "Answer",
    "BoardAlert",
    "Delivery",
    "PolicyNote",
    "ReceiptEntry",
    "ack_dues",
    "build_board",
    "cap_filename",
    "deadlines_from_minutes",
    "fold",
    "parse_deadlines",
    "read_entry",
    "render_html",
    "render_text",
    "to_cap",
]
