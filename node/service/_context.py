"""What every part of the node service shares: one small context, passed to each.

The parts (publishing, receiving, the outbox and receipts, witnessing, trust
updates, views, the own history held by peers) are objects of their own, each
holding this context; NodeService (node/service/_service.py) builds them over
one context and answers for them. The context holds the node's state and the
three helpers more than one part needs: the bytes of a log entry, the log
line of a refusal, and an alert decoded from its stored envelope.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from cryptography import x509

from node.clock import Clock, utc_now
from node.config import NodeConfig
from node.crypto import KeyPurpose, Signer
from node.errors import InboundRejected
from node.ids import Country, peers_of
from node.message import Alert, Receipt, alert_from_bytes, encode, pb, timestamp
from node.service._links import LinkState
from node.store import Store, StoredAlert
from node.trilateral import WATCHLIST_TYPES, WatchlistLedger
from node.trust import Trust

log = structlog.get_logger("ewx.node")


class Observer(Protocol):
    """What the service tells whoever measures it (the gateway's metrics), after the fact."""

    def refused(self, peer: str, reason: str) -> None:
        """A peer's message or call was refused for `reason` (an InboundRejected reason code);
        `peer` is the member, or "unauthenticated" for a caller no certificate names."""

    def received(self, peer: Country, delay_seconds: float) -> None:
        """A new alert from `peer` was durably stored, `delay_seconds` after its origin sent it."""


class _Unobserved:
    def refused(self, peer: str, reason: str) -> None:
        return None

    def received(self, peer: Country, delay_seconds: float) -> None:
        return None


@dataclass(slots=True)
class ServiceContext:
    """One node's state: configuration, trust, signers, store, clock, links, and the gateway's hooks."""

    config: NodeConfig
    trust: Trust
    """Replaced, never changed in place, when a trust update is applied."""
    signers: dict[KeyPurpose, Signer]
    store: Store
    clock: Clock = utc_now
    on_outbox: Callable[[Country], None] | None = None
    """Set by the gateway: wakes its delivery loop towards one peer."""
    on_gap: Callable[[Country], None] | None = None
    """Set by the gateway: a delivery revealed alerts from this origin we lack; pull them."""
    on_receipt: Callable[[Country, Receipt], None] | None = None
    """Called after a peer's receipt was verified and durably logged."""
    on_peer_alerts: Callable[[list[tuple[Country, str, tuple[list[str], list[str]]]]], None] | None = None
    """Called after peers' ALERTs or UPDATEs were durably stored (those of one commit at
    once: a catch-up page's thousand are one call, not a thousand wake-ups of the loop),
    each (origin, alert id) with its scope (HS codes, source countries): the runtime
    checks them against this node's own data (node/ews/exposure.py)."""
    certificate_in_use: Callable[[], x509.Certificate] | None = None
    """Set by the gateway: the TLS certificate it serves now, which after a failed
    reload is not the one in the file; status reports this one."""
    links: dict[Country, LinkState] = field(default_factory=dict)
    gossip_seen: dict[Country, str] = field(default_factory=dict)
    """The last checkpoint note each peer gossiped, compared only when it changes."""
    observer: Observer = field(default_factory=_Unobserved)
    """Set by the gateway to count refusals and stored alerts (gateway/metrics.py)."""
    watchlist: WatchlistLedger = field(init=False)
    """The watchlist proposals and votes this node holds (node/trilateral), in log order:
    loaded from the store when the service opens, added to after each commit."""

    def __post_init__(self) -> None:
        for peer in self.peers:
            self.links.setdefault(peer, LinkState())
        self.watchlist = WatchlistLedger(members=frozenset(self.trust.members))
        for stored in self.store.alerts_by_type(WATCHLIST_TYPES):
            self.watchlist.add(stored.origin, stored.digest, self.decode(stored))

    @property
    def me(self) -> Country:
        """This node's id."""
        return self.config.node_id

    @property
    def peers(self) -> tuple[Country, ...]:
        """The peers this node is configured to talk to."""
        return tuple(p for p in peers_of(self.me) if p in self.config.peers)

    @property
    def max_skew(self) -> timedelta:
        """Allowed clock skew for incoming sent times."""
        return timedelta(seconds=self.config.max_clock_skew_seconds)

    def entry(
        self,
        kind: str,
        now: datetime,
        *,
        peer: Country | None,
        envelope: bytes | None = None,
        receipt: bytes | None = None,
        trust_update: bytes | None = None,
    ) -> bytes:
        """One log entry's bytes: these exact bytes are stored and hashed."""
        entry = pb.LogEntry(kind=kind, logged_at=timestamp(now), peer=peer or "COUNTRY_UNSPECIFIED")
        if envelope is not None:
            entry.alert.ParseFromString(envelope)
        if receipt is not None:
            entry.receipt.ParseFromString(receipt)
        if trust_update is not None:
            entry.trust_update = trust_update
        return encode(entry)

    def refused(
        self, exc: InboundRejected, *, peer: Country, alert_id: str | None, data: bytes | None = None
    ) -> None:
        """Log a refusal once, naming the peer, the reason and the message.

        An envelope refused before its id could be read (garbage, truncated,
        an unknown key, a bad signature) is named by `message_digest`, the
        SHA-256 of the bytes received, so an operator can match it with the
        sender's records. (A request the gateway refuses before it reaches
        the core, as too large say, has none.)
        """
        named = exc.alert_id or alert_id
        self.observer.refused(peer, exc.reason)
        log.warning(
            "inbound_rejected",
            node=self.me,
            peer=peer,
            reason=exc.reason,
            alert_id=named,
            # Only where no id could be read: otherwise the id names the message.
            message_digest=hashlib.sha256(data).hexdigest() if data is not None and not named else None,
            error=str(exc),
        )
        exc.logged = True

    @staticmethod
    def decode(stored: StoredAlert) -> Alert:
        """The alert of a stored envelope (verified when it was stored)."""
        return alert_from_bytes(pb.SignedAlert.FromString(stored.envelope).alert)
