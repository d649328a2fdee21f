"""Every limit of the wire and the schema, defined once (SPEC sections 3 and 4).

Models, the inbound pipeline, the gateway's gRPC options and the tests all read
these names; nothing else spells the numbers.
"""

from __future__ import annotations

from datetime import timedelta

SCHEMA_VERSION = 1
"""The only alert and receipt schema version this code writes and accepts."""

MAX_ENVELOPE_BYTES = 8 * 1024
"""The whole serialized SignedAlert (SPEC section 3)."""

MAX_RECEIPT_BYTES = 1024
"""A serialized SignedReceipt; receipts are small and fixed in shape."""

MAX_TRUST_UPDATE_BYTES = 8 * 1024
"""A serialized SignedTrustUpdate (node/trust_updates.py): a few keys and revocations."""

MAX_GRPC_MESSAGE_BYTES = 64 * 1024
"""gRPC's own cap on any request. Above MAX_ENVELOPE_BYTES on purpose, so an
oversized envelope reaches the inbound checks and gets a precise, logged
refusal instead of a bare transport error."""

MAX_ALERT_ID_CHARS = 64
MAX_HEADLINE_CHARS = 140
MIN_ITEMS, MAX_ITEMS = 1, 32
MAX_COUNTRIES = 16
"""Per list: source countries, affected countries."""
MAX_CODED_LIST = 16
"""Per list of coded values: measures, sectors."""
MAX_REFERENCES = 1
MAX_DURATION_DAYS = 3650
MAX_EXPIRY = timedelta(days=365)
"""Expires is at most this long after sent."""

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a sent time may be before the alert is refused."""

MAX_CATCHUP_PAGE = 1000
"""Most alerts one CatchUp call streams."""

RPC_DEADLINE_SECONDS = 10.0
"""Deadline the gateway sets on every call to a peer."""

MAX_OPERATOR_REQUEST_BYTES = 64 * 1024
"""One JSON request on the operator socket."""

PEER_RATE_PER_SECOND = 2000.0
"""Default sustained calls a second one peer may make (token bucket refill)."""

PEER_BURST = 4000
"""Default bucket size: how many calls a peer may make at once after a quiet spell."""

PEER_MAX_CONCURRENT_CALLS = 64
"""Default calls one peer may have in flight at once; more wait for none, they are refused."""

CERTIFICATE_WARNING_DAYS = 30
"""`ewx status` flags the node's TLS certificate this many days before it expires."""
