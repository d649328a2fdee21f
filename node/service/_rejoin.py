"""NodeService's part for this node's own history as its peers hold it (issue 10, item 2).

A node started on a store that lost its history (a volume that did not
mount, a wrong path) would hand out alert ids and sequence numbers its
peers already hold, and they would record its next alerts as equivocation.
So the node asks its peers what they hold of it (gateway/peers.py,
check_history), keeps what shows history beyond the store, and refuses to
publish until the operator restores a backup (another store file, without
that note) or re-joins: `ewx node rejoin` recovers the node's own alerts
from the peers, each verified as signed by this node's key, and stores them
as its own past, so ids and sequences continue after the highest one.

The exchange log cannot be recovered that way: the peers hold only its
checkpoints. The log starts again from empty under the same origin (SPEC
section 5 gives a node one log), with the recovered alerts as its first
entries. The peers' witnesses hold the old log's size, which the new log
does not extend; the node records that size per peer and does not ask those
peers to witness the new log (which they would refuse, or at one size keep
as proof of a fork). Witnessing of the new log needs a log epoch the spec
does not have yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from node.checks import VerifiedAlert, verify_alert
from node.clock import iso
from node.errors import InboundRejected, RefusedOperation
from node.files import GENESIS_FILE
from node.ids import Country
from node.message import encode, pb
from node.service._context import ServiceContext
from node.service._views import listing_keys
from node.store import Tx

log = structlog.get_logger("ewx.node")


@dataclass(frozen=True, slots=True)
class HeldByPeer:
    """What one peer answered to a re-join: its witnessed size of our log, our alerts it holds."""

    witness_size: int
    """The size of this node's log the peer last cosigned (0: none)."""
    envelopes: Sequence[bytes]
    """This node's own signed alerts addressed to the peer beyond the store's last sequence there, in order."""


class Rejoining:
    """Own history held by peers: detection, the refusal to publish, recovery."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def verify_own(self, peer: Country, envelope: bytes) -> VerifiedAlert:
        """One of this node's own alerts as `peer` returned it, verified as `peer` verified it.

        Signed by this node's key, addressed to the peer, handed over directly:
        a peer cannot make this node stop publishing, or take on a past, with
        alerts it cannot sign. Raises InboundRejected.
        """
        return verify_alert(
            envelope,
            trust=self.ctx.trust,
            me=peer,
            peer=self.ctx.me,
            direct=True,
            now=self.ctx.clock(),
            max_skew=self.ctx.max_skew,
        )

    def refuse_if_history_missing(self) -> None:
        """Refuse to sign while a peer holds more of this node's history than its store.

        A store that lost its history (a volume that did not mount, a wrong
        path) would hand out ids and sequence numbers its peers already
        hold; they would record the new alerts as equivocation.
        """
        missing = self.ctx.store.history_missing()
        if not missing:
            created = self.ctx.store.history_unchecked()
            if created is not None:
                raise RefusedOperation(
                    f"{self.ctx.me}'s store was empty when it started at {created} and no peer has yet said what it holds "
                    f"of {self.ctx.me}; publishing waits until one answers, so that a store that lost its history "
                    "cannot use an id or sequence twice. If this is the first start of a new federation and no "
                    "peer is up yet, run `ewx node first-start --yes`"
                )
            return
        held = "; ".join(f"{peer} holds {what}" for peer, what in missing.items())
        raise RefusedOperation(
            f"{self.ctx.me}'s store lacks history its peers hold ({held}); publishing is refused so that no "
            f"id or sequence is used twice. Restore the data directory from a backup and restart, "
            f"or run `ewx node rejoin` to recover this node's alerts from its peers"
        )

    def note_history_missing(self, peer: Country, held: str, *, evidence: str) -> None:
        """`peer` showed history of this node beyond the store: keep it, log it, refuse publishing from now on.

        `evidence` names the kind of proof (own_alert: signed by this node's
        key; witness_size: the size the peer says it cosigned).
        """
        before = self.ctx.store.history_missing().get(peer, "")
        if held in before:
            return
        with self.ctx.store.transaction() as tx:
            tx.set_history_missing(peer, evidence, held)
        log.error(
            "own_history_missing",
            node=self.ctx.me,
            peer=peer,
            reason=evidence,
            held=held,
            log_size=self.ctx.store.log_size,
            message_id=None,
        )

    def own_alert_beyond(self, peer: Country, envelopes: Sequence[bytes]) -> str | None:
        """What `peer` returned of this node's own alerts beyond the store, as text; None if nothing.

        Only an alert signed by this node's own key counts: a peer cannot
        make this node stop publishing by claiming alerts it cannot sign.
        """
        local = self.ctx.store.last_seq(self.ctx.me, peer)
        for envelope in envelopes:
            try:
                v = self.verify_own(peer, envelope)
            except InboundRejected as exc:
                log.warning(
                    "own_alert_unverifiable",
                    node=self.ctx.me,
                    peer=peer,
                    reason=exc.reason,
                    alert_id=exc.alert_id,
                    error=str(exc),
                )
                continue
            seq = v.alert.seq_for(peer)
            if seq is not None and seq > local:
                return (
                    f"{self.ctx.me}'s own signed alerts towards {peer} from sequence {seq} on "
                    f"(the first {v.alert.alert_id}), beyond this store's last sequence {local}"
                )
        return None

    def take_history_answer(self, peer: Country, envelopes: Sequence[bytes]) -> str | None:
        """`peer`'s answer to the history check (our own alerts it holds after our last sequence):
        kept as history missing if it shows any, and the store need wait for a peer no longer.
        Returns what it showed, as own_alert_beyond does."""
        held = self.own_alert_beyond(peer, envelopes)
        if held is not None:
            self.note_history_missing(peer, held, evidence="own_alert")
        self.history_answered(peer)
        return held

    def check_store_at_start(self) -> None:
        """At `ewx serve`: a store of a new federation (GENESIS file), or an empty one that must ask first.

        An empty log is also what a node sees when its volume did not mount;
        until a peer has said what it holds of this node, publishing waits.
        The GENESIS file, written by `ewx pki init`, is taken into the store
        once and removed, so a later empty directory is not taken for one.
        """
        now = iso(self.ctx.clock())
        marker = self.ctx.config.data_dir / GENESIS_FILE
        if marker.is_file():
            with self.ctx.store.transaction() as tx:
                tx.set_genesis(now)
            marker.unlink()
            log.info("store_genesis", node=self.ctx.me, data_dir=str(self.ctx.config.data_dir))
            return
        if (
            self.ctx.store.log_size > 0
            or self.ctx.store.genesis() is not None
            or self.ctx.store.history_unchecked()
        ):
            return
        with self.ctx.store.transaction() as tx:
            tx.set_history_unchecked(now)
        log.warning(
            "history_unchecked",
            node=self.ctx.me,
            data_dir=str(self.ctx.config.data_dir),
            peers=list(self.ctx.peers),
        )

    def history_answered(self, peer: Country) -> None:
        """`peer` has said what it holds of this node: a store created empty need wait no longer."""
        if self.ctx.store.history_unchecked() is None:
            return
        with self.ctx.store.transaction() as tx:
            tx.clear_history_unchecked()
        log.info("history_confirmed", node=self.ctx.me, peer=peer)

    def declare_first_start(self) -> dict[str, Any]:
        """`ewx node first-start`: the operator states no peer holds history of this node (a new federation)."""
        created = self.ctx.store.history_unchecked()
        if created is None:
            raise RefusedOperation(
                f"{self.ctx.me}'s store is not waiting for its peers' word on its history; nothing to declare"
            )
        with self.ctx.store.transaction() as tx:
            tx.clear_history_unchecked()
        log.warning(
            "first_start_declared", node=self.ctx.me, store_created=created, log_size=self.ctx.store.log_size
        )
        return {"store_created": created}

    def rejoin(self, held: Mapping[Country, HeldByPeer]) -> dict[str, Any]:
        """Take this node's own alerts back from what every peer holds, and continue after them.

        All or nothing, in one commit: every peer must have answered, every
        alert must verify as this node's own, each peer's sequences must run
        on without a gap from the store's last one, and no two alerts may
        claim one id or one position. The recovered alerts are stored as sent
        and delivered (the peers hold them; nothing is sent again), each
        logged as sent; the peers' witnessed sizes of the old log are kept
        (see the module docstring); the history-missing note is cleared.
        Raises RefusedOperation naming what does not fit.
        """
        missing = self.ctx.store.history_missing()
        if not missing:
            raise RefusedOperation(
                f"no peer has shown history of {self.ctx.me} beyond its store; there is nothing to re-join"
            )
        absent = [p for p in self.ctx.peers if p not in held]
        if absent:
            raise RefusedOperation(
                f"re-join needs every peer's answer, and {', '.join(absent)} gave none; "
                "an alert only that peer holds would otherwise have its sequence used again"
            )
        alerts: dict[str, VerifiedAlert] = {}
        for peer in self.ctx.peers:
            for v in self._contiguous_own(peer, held[peer].envelopes):
                kept = alerts.setdefault(v.alert.alert_id, v)
                if kept.digest != v.digest:
                    raise RefusedOperation(
                        f"the peers hold two different alerts of {self.ctx.me} with id {v.alert.alert_id}; "
                        "re-join would take on an equivocation: restore a backup instead"
                    )
        now = self.ctx.clock()
        ordered = sorted(alerts.values(), key=lambda v: (v.alert.sent, v.alert.alert_id))
        with self.ctx.store.transaction() as tx:
            for v in ordered:
                if self._already_held(tx, v):
                    continue
                canonical = encode(pb.SignedAlert(alert=v.payload, key_id=v.key_id, signature=v.signature))
                index = tx.append_log(self.ctx.entry("ALERT_SENT", now, peer=None, envelope=canonical))
                tx.insert_alert(
                    origin=self.ctx.me,
                    alert_id=v.alert.alert_id,
                    digest=v.digest,
                    envelope=canonical,
                    msg_type=v.alert.msg_type,
                    sent=iso(v.alert.sent),
                    log_index=index,
                    positions=[(d.recipient, d.seq) for d in v.alert.deliveries],
                    listing=listing_keys(v.alert),
                )
            for peer in self.ctx.peers:
                if held[peer].witness_size > 0:
                    tx.set_old_log_size(peer, held[peer].witness_size)
            tx.clear_history_missing()
            tx.clear_history_unchecked()
        last = {peer: self.ctx.store.last_seq(self.ctx.me, peer) for peer in self.ctx.peers}
        old_sizes = {peer: held[peer].witness_size for peer in self.ctx.peers}
        log.warning(
            "node_rejoined",
            node=self.ctx.me,
            recovered=len(ordered),
            last_seq=last,
            old_log_sizes=old_sizes,
            log_size=self.ctx.store.log_size,
            at=iso(now),
            was_missing=missing,
        )
        return {"recovered": len(ordered), "last_seq": last, "old_log_sizes": old_sizes}

    def _contiguous_own(self, peer: Country, envelopes: Sequence[bytes]) -> list[VerifiedAlert]:
        """`peer`'s answer verified, each alert the next sequence towards it; RefusedOperation if not."""
        expected = self.ctx.store.last_seq(self.ctx.me, peer) + 1
        out: list[VerifiedAlert] = []
        for envelope in envelopes:
            try:
                v = self.verify_own(peer, envelope)
            except InboundRejected as exc:
                raise RefusedOperation(
                    f"{peer} returned an alert that does not verify as {self.ctx.me}'s own ({exc.reason}: {exc})"
                ) from None
            seq = v.alert.seq_for(peer)
            if seq != expected:
                raise RefusedOperation(
                    f"{peer} returned {self.ctx.me}'s alert {v.alert.alert_id} at sequence {seq} towards it, "
                    f"expected {expected}: its answer has a gap"
                )
            expected += 1
            out.append(v)
        return out

    def _already_held(self, tx: Tx, v: VerifiedAlert) -> bool:
        """Whether the store holds this very alert; RefusedOperation if it holds another in its place."""
        existing = tx.alert(self.ctx.me, v.alert.alert_id)
        if existing is not None:
            if existing.digest == v.digest:
                return True
            raise RefusedOperation(
                f"{self.ctx.me} already used id {v.alert.alert_id} for another alert since its history was lost; "
                "re-join cannot take both: restore a backup"
            )
        for d in v.alert.deliveries:
            taken = tx.position(self.ctx.me, d.recipient, d.seq)
            if taken is not None and taken[1] != v.digest:
                raise RefusedOperation(
                    f"{self.ctx.me} already used sequence {d.seq} towards {d.recipient} for {taken[0]} since its "
                    f"history was lost, and {v.alert.alert_id} holds it; restore a backup"
                )
        return False
