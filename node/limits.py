"""Every limit of the wire and the schema, defined once (SPEC sections 3 and 4).

Models, the inbound pipeline, the gateway's gRPC options and the tests all read
these names; nothing else spells these numbers. (The bounds within which an
operator may set an operational limit live with the setting, in node/config.py.)

Two kinds of limit live here:

- **Federation limits** (the schema and the envelope: sizes, counts, lengths,
  the expiry window) are the same at every node and are *not* settings. A
  node that refused an alert the SPEC allows would stall that origin's
  gapless sequence for good, and one that accepted more would take what its
  peers refuse, so neither loosening nor tightening them is safe. node.toml
  refuses every name in FEDERATION_LIMITS.
- **Operational limits** (rate, burst, calls and streams in flight, deadlines,
  clock skew, catch-up page) only bound the work one node does. The values
  here are the defaults; node.toml may set each within the bounds
  node/config.py checks at load, documented there and in deploy/README.md.
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
"""A serialized SignedTrustUpdate (node/trust/_updates.py): a few keys and revocations."""

MAX_IDEMPOTENCY_KEY_CHARS = 200
"""An operator's idempotency key for a publish (kept at home, never sent)."""

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

# The trilateral watchlist and policy-move reports (issue 12, docs/trilateral.md).
MAX_WATCH_CHANGE_PAIRS = 64
"""Pairs one watchlist proposal adds and removes together (a pair is ~16 bytes on the wire)."""
MAX_WATCHLIST_PAIRS = 512
"""Pairs one watchlist version may hold; a proposal that would exceed it is invalid."""
MAX_WATCHLIST_VERSION = 2**32 - 1
"""The highest version number (a uint32 on the wire)."""
MAX_POLICY_CODES = 32
"""HS codes one policy-move report names (the early-warning store takes as many per event)."""
MIN_POLICY_YEAR, MAX_POLICY_YEAR = 1990, 2099
"""The years a policy move's dates may fall in (the early-warning store's date range)."""
MAX_POLICY_DATE_LEAD = timedelta(days=1)
"""A report's announced day is at most this long after its sent day (time zones), never later:
a move is reported after it surfaces."""
WATCHLIST_SEVERITY_STEPS = 1
"""Default: severity steps a detection gains when a report on a watchlist pair triggered it."""
MAX_WATCHLIST_SEVERITY_STEPS = 3
"""Ceiling of that setting: MINOR to EXTREME."""

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a sent time may be before the alert is refused."""

MAX_WITNESS_CHECKPOINT_TRAILER = 4096
"""Longest `ewx-witness-checkpoint` trailer (base64 of the log's signed checkpoint a witness returns
with a size mismatch): far above a checkpoint with its cosignatures (~700 characters), well under
gRPC's 8 KiB metadata limit. A witness omits a longer one; a log refuses it."""

MAX_CATCHUP_TRUST_UPDATES = 256
"""Most trust updates one CatchUp page carries (served so; a requester refuses more)."""

MAX_CATCHUP_ITEM_OVERHEAD = 32
"""Bytes a CatchUpItem adds around its envelope or update (field tags and lengths), generously."""

MAX_CATCHUP_ITEM_BYTES = 60 * 1024
"""Most bytes of envelopes one batched CatchUpItem carries (CatchUpRequest.batched):
under MAX_GRPC_MESSAGE_BYTES with room for the item's framing, so at least seven of
the largest envelopes, and dozens of the usual ~1 KiB ones, go as one stream message."""

MAX_CATCHUP_PAGE = 1000
"""Most alerts one CatchUp call streams, and the most a node asks for: the
default and the ceiling of `catchup_page_served` and `catchup_page_requested`
(a page is built in memory: at most 1000 x 8 KiB per open stream)."""

PUBLISH_GROUP_MAX = 200
"""Most publishes that wait together taken into one transaction and one durable commit
(node/service/_group.py); their own store turn is about as long as STORE_TURN_ALERTS'."""

STORE_TURN_ALERTS = 100
"""Most alerts of a catch-up page stored in one commit, one turn of the store's
thread (NodeService.store_page): a Deliver that arrives meanwhile waits for one
such turn, not for the page. Ten commits of 100 rows took 15 ms against 14 ms
for one commit of 1,000 with synchronous=FULL on the development host."""

PEER_UNHEALTHY_AFTER_SECONDS = 30.0
"""Default `peer_unhealthy_after_seconds`: a peer unreachable longer is NOT_SERVING in the health service."""

RPC_DEADLINE_SECONDS = 10.0
"""Default deadline the gateway sets on every call to a peer (`rpc_deadline_seconds`)."""

MAX_RPC_DEADLINE_SECONDS = 300.0
"""Ceiling of `rpc_deadline_seconds`: a call to a peer never waits longer."""

MAX_OPERATOR_REQUEST_BYTES = 64 * 1024
"""One JSON request on the operator socket."""

# The operator socket and its listings (issue 10, items 6 and 7): the CLI's
# socket must stay usable however many alerts the node holds and whatever
# another local process does to it, so every reply is bounded and every
# connection is counted and timed.
OPERATOR_PAGE_DEFAULT = 100
"""Alerts one `list` reply carries when the request names no `limit`."""

OPERATOR_PAGE_MAX = 1000
"""Most alerts one `list` reply may carry (about 1.5 MB of JSON at most); the
caller pages on with the reply's cursor."""

MAX_OPERATOR_CONNECTIONS = 32
"""Operator connections served at once; one more is answered with a short
refusal and closed, so a flood of idle connections cannot hold the node's
descriptors and lock the CLI out for good."""

OPERATOR_IDLE_SECONDS = 30.0
"""Longest an operator connection may take to send a whole request line, or
to take a reply, before the node closes it."""

MAX_EVIDENCE_LISTED = 1000
"""Newest evidence rows one `evidence` reply carries; the reply says how many there are."""

SITUATION_ALERTS_MAX = 500
"""Newest open alerts the situation board, the overdue counts of `ewx status` and a metrics
scrape fold (each one fold over the entries naming it); the board says when more are open."""

MAX_VERSIONS_SHOWN = 32
"""Earlier versions of an updated alert the board folds for its consultations and responses."""

DEADLINE_WATCH_SECONDS = 15.0
"""How often a serving node looks for acknowledgements that became overdue (one log event each)."""

PEER_RATE_PER_SECOND = 2000.0
"""Default sustained calls a second one peer may make (token bucket refill)."""

PEER_BURST = 4000
"""Default bucket size: how many calls a peer may make at once after a quiet spell."""

PEER_MAX_CONCURRENT_CALLS = 64
"""Default calls one peer may have in flight at once; more wait for none, they are refused."""

PEER_MAX_CONCURRENT_STREAMS = 4
"""Default server streams (CatchUp) one peer may hold open at once; each also
counts as a call in flight. A node pulls from a peer one page at a time."""

STREAM_MAX_SECONDS = 30.0
"""Default longest a server stream may stay open before the node cancels it
(`stream_max_seconds`); above the peers' RPC deadline, so an honest pull
always finishes first."""

STREAM_STALL_SECONDS = 10.0
"""Default longest one streamed message may wait for the client to take it
(`stream_stall_seconds`); a client that stops reading is cancelled then."""

MIN_DURATION_SECONDS = 0.1
"""Floor of every configurable deadline and duration: below it nothing works."""

MAX_STREAM_SECONDS = 3600.0
"""Ceiling of `stream_max_seconds` and `stream_stall_seconds`."""

CERTIFICATE_WARNING_DAYS = 30
"""`ewx status` flags the node's TLS certificate this many days before it expires."""

# The federation port before any peer is known (issue 10, item 6): idle TCP
# connections must not exhaust the node's descriptors or lock peers out for long.
FEDERATION_HANDSHAKE_TIMEOUT_MS = 5_000
"""A connection that has not finished its TLS handshake by then is closed
(gRPC's default is 120 s, so 20,000 idle connections outlived any descriptor limit)."""

MAX_FEDERATION_CONNECTIONS = 256
"""Open connections to the federation port, authenticated or not; one more is
closed at once. Two peers need a handful; far below a 1,024-descriptor limit."""

MAX_CONNECTION_AGE_MS = 15 * 60 * 1000
"""Every federation connection is closed after this long (peers reconnect at
once), so a stream whose request body never completes is not held forever."""

CONNECTION_AGE_GRACE_MS = 60 * 1000
"""Calls in flight when a connection reaches its age may finish within this."""


FEDERATION_LIMITS: dict[str, int] = {
    "max_envelope_bytes": MAX_ENVELOPE_BYTES,
    "max_receipt_bytes": MAX_RECEIPT_BYTES,
    "max_trust_update_bytes": MAX_TRUST_UPDATE_BYTES,
    "max_grpc_message_bytes": MAX_GRPC_MESSAGE_BYTES,
    "max_alert_id_chars": MAX_ALERT_ID_CHARS,
    "max_headline_chars": MAX_HEADLINE_CHARS,
    "max_items": MAX_ITEMS,
    "max_countries": MAX_COUNTRIES,
    "max_coded_list": MAX_CODED_LIST,
    "max_references": MAX_REFERENCES,
    "max_duration_days": MAX_DURATION_DAYS,
    "max_expiry_days": MAX_EXPIRY.days,
    "max_watch_change_pairs": MAX_WATCH_CHANGE_PAIRS,
    "max_watchlist_pairs": MAX_WATCHLIST_PAIRS,
    "max_policy_codes": MAX_POLICY_CODES,
}
"""Limits fixed for the whole federation, by the name an operator might try in
node.toml; node/config.py refuses each one, naming its fixed value."""

MAX_REPORTED_PROBLEMS = 50
"""An ingest's refusal names this many bad rows and counts the rest (node/errors.py IngestRefused)."""

UNIX_SOCKET_PATH_MAX = 107
"""Bytes in a unix socket's path (Linux's sun_path holds 108 with the closing NUL):
node/config.py refuses a longer operator socket, or a data folder that makes one, at load."""

DELIVERY_WINDOW = 2048
"""Default of `delivery_window`: alerts a sender keeps in flight on one
DeliverStream before it waits for their receipts (gateway/delivery_window.py).
What must be in flight is the rate times the round trip plus the longest
stall of the link: a lost segment holds everything behind it until it is
resent. Over a 150 ms round trip with 1% of chunks resent 200 ms late
(bench/slow_link.py, 2026-12-07), 512 in flight carried 720-800 alerts/s,
1,024 960/s and 2,048 1,050-1,110/s, about what the two nodes' CPU allows
with no loss at all; one in flight carries about 7. A slow peer is not sent
more than it answers in time (DeliveryWindow._time_to_send). A receiver
reads no further ahead than MAX_DELIVERY_WINDOW (gateway/server.py): beyond
it gRPC's flow control holds the sender back."""

MAX_DELIVERY_WINDOW = 4096
"""Ceiling of `delivery_window`, and how far a receiver reads a DeliverStream ahead."""
