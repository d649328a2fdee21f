"""NodeService: one national node, built from its parts over one shared context.

Each part is an object of its own module holding the ServiceContext
(node/service/_context.py): publishing (`_publishing`), receiving
(`_receiving`), the outbox and receipts (`_outbox`), witnessing
(`_witnessing`), trust updates (`_trust`), the operator's views (`_views`),
the own history held by peers (`_rejoin`) and the watchlist and policy
reports (`_trilateral`). NodeService opens the store,
builds the parts, and answers for them with their own methods, so the
gateway and the operator API see one object and each behaviour is written
once, in its part. It knows nothing of gRPC.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar

from cryptography import x509

from node import limits
from node.checks import Verdict
from node.clock import Clock, utc_now
from node.config import NodeConfig
from node.crypto import KeyPurpose, Signer
from node.ids import Country
from node.message import Receipt
from node.service._context import Observer, ServiceContext
from node.service._group import PublishGroups
from node.service._links import LinkState
from node.service._outbox import Outbox
from node.service._publishing import Published, Publishing
from node.service._receiving import Receiving
from node.service._rejoin import Rejoining
from node.service._rotation import install_pending_keys, trust_with_updates
from node.service._stores import open_node_store, read_node_store
from node.service._trilateral import Trilateral
from node.service._trust import TrustUpdating
from node.service._views import BoardSnapshot, Views, listing_keys_of
from node.service._witnessing import Witnessing
from node.store import Store, StoreThread
from node.trust import Trust

P = ParamSpec("P")
T = TypeVar("T")
V = TypeVar("V")


class _Shared(Generic[V]):
    """An attribute of NodeService that is the context's: read and set there, seen by every part."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, service: NodeService, owner: type | None = None) -> V:
        value: V = getattr(service.ctx, self._name)
        return value

    def __set__(self, service: NodeService, value: V) -> None:
        setattr(service.ctx, self._name, value)


def _shifted(verdict: Callable[[int], Verdict | None], start: int, i: int) -> Verdict | None:
    """A page's verdict function, for the part of it that begins at `start`."""
    return verdict(start + i)


class NodeService:
    """One national node's state and behaviour, over its own store."""

    config: _Shared[NodeConfig] = _Shared()
    trust: _Shared[Trust] = _Shared()
    signers: _Shared[dict[KeyPurpose, Signer]] = _Shared()
    store: _Shared[Store] = _Shared()
    clock: _Shared[Clock] = _Shared()
    links: _Shared[dict[Country, LinkState]] = _Shared()
    on_outbox: _Shared[Callable[[Country], None] | None] = _Shared()
    on_gap: _Shared[Callable[[Country], None] | None] = _Shared()
    on_receipt: _Shared[Callable[[Country, Receipt], None] | None] = _Shared()
    on_peer_alerts: _Shared[
        Callable[[list[tuple[Country, str, tuple[list[str], list[str]]]]], None] | None
    ] = _Shared()
    certificate_in_use: _Shared[Callable[[], x509.Certificate] | None] = _Shared()
    observer: _Shared[Observer] = _Shared()

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.store_thread: StoreThread | None = None
        """Set by the runtime: the thread that opened the store, which every call to
        it must run on (`call`). None for a service used from one thread alone."""
        self.history = Rejoining(ctx)
        self.publishing = Publishing(ctx, self.history)
        self.receiving = Receiving(ctx)
        self.outbox = Outbox(ctx)
        self.witnessing = Witnessing(ctx, self.history)
        self.trust_updates = TrustUpdating(ctx)
        self.views = Views(ctx)
        self.trilateral = Trilateral(ctx, self.publishing)
        self._answer_for_the_exchange()
        self._answer_for_the_operator()

    def _answer_for_the_exchange(self) -> None:
        """What the gateway calls, each the part's own method."""
        receiving, outbox, witnessing = self.receiving, self.outbox, self.witnessing
        trust_updates, history = self.trust_updates, self.history
        self.receive = receiving.receive
        self.receive_many = receiving.receive_many
        self.receive_in_order = receiving.receive_in_order
        self.verdicts_ahead = receiving.verdicts_ahead
        self.accept_receipt = outbox.accept_receipt
        self.accept_receipts = outbox.accept_receipts
        self.pending = outbox.pending
        self.record_failure = outbox.record_failure
        self.undelivered = outbox.undelivered
        self.catch_up = outbox.catch_up
        self.issue_checkpoint = witnessing.issue_checkpoint
        self.witness_request = witnessing.witness_request
        self.history_probe = witnessing.history_probe
        self.proves_own_size = witnessing.proves_own_size
        self.check_witness_size = witnessing.check_witness_size
        self.record_cosignature = witnessing.record_cosignature
        self.witness = witnessing.witness
        self.gossip_checkpoint = witnessing.gossip_checkpoint
        self.check_gossip = witnessing.check_gossip
        self.accept_trust_update = trust_updates.accept_trust_update
        self.trust_updates_of = trust_updates.trust_updates_of
        self.verify_own = history.verify_own
        self.take_history_answer = history.take_history_answer
        self.check_store_at_start = history.check_store_at_start
        self.alert_scopes = self.views.alert_scopes
        self.record_exposures = self.views.record_exposures

    def board_snapshot(self) -> BoardSnapshot:
        """The store-thread half of `ewx board`: the watchlist in force and the policy reports."""
        return self.views.board_snapshot(self.trilateral.policy_reports())

    def _answer_for_the_operator(self) -> None:
        """What the operator API and the CLI call, each the part's own method."""
        views, history, trilateral = self.views, self.history, self.trilateral
        self.publish = self.publishing.publish
        self._groups = PublishGroups(store=self.ctx.store, publish=self.publishing.publish, on_store_thread=self.call)
        self.import_transfer = self.receiving.import_transfer
        self.announce_trust_update = self.trust_updates.announce_trust_update
        self.alert_page = views.alert_page
        self.list_alerts = views.list_alerts
        self.evidence = views.evidence
        self.show = views.show
        self.status_snapshot = views.status_snapshot
        self.status = views.status
        self.status_from = views.status_from
        self.board_from = views.board_from
        self.cap_document = views.cap_document
        self.newly_overdue = views.newly_overdue
        self.watch_deadlines = views.watch_deadlines
        self.declare_first_start = history.declare_first_start
        self.rejoin = history.rejoin
        self.watchlist_state = trilateral.watchlist_state
        self.propose_watchlist = trilateral.propose_watchlist
        self.vote_watchlist = trilateral.vote_watchlist
        self.report_policy = trilateral.report_policy
        self.policy_reports = trilateral.policy_reports
        self.policy_events = trilateral.policy_events

    @classmethod
    def open(cls, config: NodeConfig, *, clock: Clock = utc_now, beside_the_node: bool = False) -> NodeService:
        """Load trust and keys, open the node's store.

        `beside_the_node`: for a command that reads while the node may run (`ewx
        outbox export`): the store is opened as read_node_store opens it (on
        PostgreSQL without the lease, read-only), and nothing is installed.
        """
        store = read_node_store(config) if beside_the_node else open_node_store(config)
        try:
            if not beside_the_node:
                store.fill_listing_keys(listing_keys_of)  # a store from before the listing columns
            # The trust file, amended by the members' updates this node holds
            # (node/service/_rotation.py); keys rotated since the file was written are
            # only known from those.
            trust = trust_with_updates(config, config.load_trust(), store)
            if not beside_the_node:
                install_pending_keys(config, trust)
            signers = config.load_signers(trust)
        except BaseException:
            store.close()
            raise
        return cls(ServiceContext(config=config, trust=trust, signers=signers, store=store, clock=clock))

    def close(self) -> None:
        """Close the store."""
        self.ctx.store.close()

    def holds_store(self) -> bool:
        """Whether this process still holds its store: a PostgreSQL store's lease (a round trip
        on the store's connection; gone with the connection); a SQLite file is always held."""
        return self.ctx.store.alive()

    async def call(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(*args, **kwargs)` on the store's thread, awaited; directly if it has none.

        Everything that reads or writes the store goes through here from the
        event loop, so no commit holds the loop that answers the peers.
        """
        if self.store_thread is None:
            return work(*args, **kwargs)
        return await self.store_thread.run(work, *args, **kwargs)

    async def publish_grouped(self, **fields: Any) -> Published:
        """`publish` from the event loop, in a group with the publishes waiting beside it: one
        durable commit for all of them (node/service/_group.py), each answered after it."""
        published: Published = await self._groups.publish(fields)
        return published

    async def store_page(self, envelopes: Sequence[bytes], *, peer: Country, direct: bool) -> int:
        """Catch-up from the event loop: a page stored in turns of the store's thread.

        The page's signatures are verified ahead in the inbound pool, started
        off the store's thread; then at most limits.STORE_TURN_ALERTS alerts
        are stored per turn (receive_many, one commit each), so a Deliver or a
        witness request handed to the thread meanwhile waits for one turn, not
        for the whole page. Stops where receive_many stopped; returns how many
        new alerts were stored.
        """
        verdict = await asyncio.to_thread(self.receiving.verdicts_ahead, envelopes)
        stored = 0
        turn = limits.STORE_TURN_ALERTS
        for start in range(0, len(envelopes), turn):
            part = await self.call(
                self.receiving.receive_many,
                envelopes[start : start + turn],
                peer=peer,
                direct=direct,
                verdict=None if verdict is None else functools.partial(_shifted, verdict, start),
            )
            stored += part.stored
            if not part.complete:
                break
        return stored

    @property
    def me(self) -> Country:
        """This node's id."""
        return self.ctx.me

    @property
    def peers(self) -> tuple[Country, ...]:
        """The peers this node is configured to talk to."""
        return self.ctx.peers

    @property
    def log_size(self) -> int:
        """Entries in this node's exchange log."""
        return self.ctx.store.log_size

    def last_seq(self, origin: Country, recipient: Country) -> int:
        """Highest sequence position this node holds from `origin` towards `recipient`, 0 if none."""
        return self.ctx.store.last_seq(origin, recipient)

    def link(self, peer: Country) -> LinkState:
        """What is known of the link to `peer`: the gateway records each call's outcome there."""
        return self.ctx.links[peer]

    def peer_alerts(
        self, *, without_exposure: bool, after_index: int = -1, limit: int = 1000
    ) -> list[tuple[Country, str, int]]:
        """A page of peers' ALERTs and UPDATEs, in log order (see Store.peer_alerts)."""
        return self.ctx.store.peer_alerts(
            without_exposure=without_exposure, after_index=after_index, limit=limit
        )

    def count_peer_alerts(self) -> int:
        """How many peers' ALERTs and UPDATEs are stored."""
        return self.ctx.store.count_peer_alerts()
