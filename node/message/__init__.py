"""The message: SPEC section 3's schema, its canonical bytes, and the files framed from them.

Owns the alert and receipt models and their rules, the bodies of the
trilateral watchlist and policy-report types among them (`_models`, the headline
grammar in `_plaintext`), the one canonical byte form of what is signed and
the strict decoders of outside bytes (`_convert`), the record framing of
bundles and transfers (`_framing`) and the offline outbox transfer file
(`_transfer`). With the gateway, the only importer of the generated protobuf
code in node/wire/: the rest of node/ takes it from here as `pb`
(tests/test_layering.py holds it so).

May import: node's shared modules (errors, ids, limits, files, ...) and node/wire.
"""

from node.errors import DecodeFailure  # re-exported: the decoders here raise it
from node.message._convert import (
    alert_from_bytes,
    alert_to_bytes,
    encode,
    from_timestamp,
    member,
    parse_canonical,
    receipt_from_bytes,
    receipt_to_bytes,
    timestamp,
)
from node.message._framing import frame, read_varint, records, varint
from node.message._models import (
    SEVERE_OR_WORSE,
    WATCH_REASONS_FOR,
    Alert,
    AlertRef,
    Info,
    Item,
    MsgType,
    PolicyMove,
    Receipt,
    WatchlistChange,
    WatchlistVote,
    WatchPair,
    enum_names,
    hs_code_problem,
)
from node.message._plaintext import not_plain
from node.message._transfer import MAGIC, read_transfer, write_transfer
from node.wire import ewx_pb2 as pb

__all__ = [
    "MAGIC",
    "SEVERE_OR_WORSE",
    "WATCH_REASONS_FOR",
    "Alert",
    "AlertRef",
    "DecodeFailure",
    "Info",
    "Item",
    "MsgType",
    "PolicyMove",
    "Receipt",
    "WatchPair",
    "WatchlistChange",
    "WatchlistVote",
    "alert_from_bytes",
    "alert_to_bytes",
    "encode",
    "enum_names",
    "frame",
    "from_timestamp",
    "hs_code_problem",
    "member",
    "not_plain",
    "parse_canonical",
    "pb",
    "read_transfer",
    "read_varint",
    "receipt_from_bytes",
    "receipt_to_bytes",
    "records",
    "timestamp",
    "varint",
    "write_transfer",
]
