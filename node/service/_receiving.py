"""The node service's part for receiving: verify, durably store and receipt the peers' messages.

Pure verification lives in node/checks/_inbound.py and storage primitives in
node/store/_store.py; this part composes them into transactions, one alert
(a Deliver, answered with a receipt only after its commit) or a page of them
(catch-up and relay, one commit per page), and keeps equivocation evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from google.protobuf.message import DecodeError

from node import limits
from node.checks import Verdict, VerifiedAlert, signature_check, verify_alert
from node.clock import iso
from node.crypto import (
    INBOUND_MIN_PARALLEL,
    PAYLOAD_RECEIPT,
    SignatureCheck,
    digest,
    page_verdicts,
)
from node.errors import (
    Equivocation,
    InboundRejected,
    OutOfSequence,
    RefusedOperation,
    WatchlistConflict,
)
from node.ids import Country
from node.message import (
    Alert,
    MsgType,
    Receipt,
    encode,
    member,
    pb,
    receipt_to_bytes,
)
from node.service._context import ServiceContext
from node.service._log_runs import Position, log_run
from node.service._views import listing_keys, scope_of
from node.store import StoredAlert, Tx
from node.trilateral import WATCHLIST_TYPES, FindingKind

log = structlog.get_logger("ewx.node")


@dataclass(frozen=True, slots=True)
class _Conflict:
    """Two different signed alerts for one position or id (see _store_inbound)."""

    detail: str
    kept: StoredAlert | None
    alert: Alert
    conflicting: bytes


@dataclass(frozen=True, slots=True)
class StreamTurn:
    """What receive_in_order made of a delivery stream's turn."""

    receipts: list[bytes]
    """SignedReceipt bytes of the envelopes taken, in order, after their commit."""
    refusal: InboundRejected | None
    """The refusal of the envelope after them, already logged; None when all were taken."""


@dataclass(frozen=True, slots=True)
class PageStored:
    """What receive_many made of a page."""

    stored: int
    """New alerts stored (one already held counts nothing)."""
    stopped_by: str | None = None
    """Why it stopped before the page's end, as the refusal's reason code (an
    envelope refused, an alert out of sequence, an equivocation, a watchlist
    conflict; each logged); None when it took the whole page."""

    @property
    def complete(self) -> bool:
        """Whether the whole page was taken."""
        return self.stopped_by is None


class _Taken:
    """What one commit of received alerts took: their exposure checks, handed over at
    once after it, and its log events, one an origin after it (node/service/_log_runs.py):
    an `alert_received` for a commit of one envelope (a Deliver, a stream's turn of one),
    else (`summarized`: a page, a stream's turn of many) an `alerts_received`.
    """

    __slots__ = ("_runs", "summarized", "to_check")

    def __init__(self, *, summarized: bool) -> None:
        self.summarized = summarized
        self._runs: dict[Country, tuple[Position, Position, int]] = {}
        """Per origin: the first and last alert stored, and how many."""
        self.to_check: list[tuple[Country, str, tuple[list[str], list[str]]]] = []
        """The peer alerts stored, with their scopes, for the exposure check after the commit."""

    def hand_over(self, tx: Tx, hook: Callable[[list[Any]], None] | None) -> None:
        """Within the transaction: `hook(to_check)` once it commits, if there is any."""
        to_check = self.to_check
        if hook is not None and to_check:
            tx.after_commit(lambda: hook(to_check))

    def add(self, origin: Country, alert_id: str, seq: int, log_index: int) -> None:
        stored = Position(alert_id, seq, log_index)
        first, _, count = self._runs.get(origin, (stored, stored, 0))
        self._runs[origin] = (first, stored, count + 1)

    def log(self, events: Any, *, node: Country, peer: Country) -> None:
        """After the commit: what it stored."""
        for origin, (first, last, count) in self._runs.items():
            log_run(
                events,
                one="alert_received",
                many="alerts_received",
                first=first,
                last=last,
                count=count,
                single=not self.summarized,
                node=node,
                peer=peer,
                origin=origin,
            )


class Receiving:
    """Verifying and storing the peers' messages, one or a page at a time, with their receipts."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def receive(self, envelope: bytes, *, peer: Country, direct: bool = True) -> bytes:
        """Verify, durably store and receipt one signed alert from `peer`.

        Returns the SignedReceipt bytes, only after the commit. The same alert
        delivered again returns the same receipt and stores nothing new.
        Raises an InboundRejected subclass, having stored nothing (except
        equivocation evidence), and logs the refusal.
        """
        turn = self.receive_in_order([envelope], peer=peer, direct=direct)
        if turn.refusal is not None:
            raise turn.refusal
        return turn.receipts[0]

    def receive_many(
        self,
        envelopes: Sequence[bytes],
        *,
        peer: Country,
        direct: bool,
        verdict: Callable[[int], Verdict | None] | None = None,
    ) -> PageStored:
        """Catch-up: verify and store a page of alerts in order, in one commit.

        One durable commit per page instead of per alert. Stops at the first
        refusal (logged; an equivocation is kept as evidence), keeping what
        came before it. `verdict(i)`, the signature verdicts of a caller that
        started them ahead (store_page), else they are started here for a
        page big enough.
        """
        now = self.ctx.clock()
        if verdict is None:
            verdict = self.verdicts_ahead(envelopes)
        # Once a page rather than once an alert: max_skew is computed from the
        # config, and the module's lazy logger binds anew on every call.
        skew, events = self.ctx.max_skew, log.bind()
        stored, stopped_by = 0, None
        conflict: _Conflict | None = None
        taken = _Taken(summarized=True)
        # Each alert is stored once verified rather than after the whole page:
        # no page of decoded alerts stays alive, so the garbage collector's
        # passes stay short.
        with self.ctx.store.transaction() as tx:
            for i, envelope in enumerate(envelopes):
                try:
                    known = verdict(i) if verdict is not None else None
                    v = self._verify(envelope, peer=peer, direct=direct, now=now, known=known, max_skew=skew)
                except InboundRejected as exc:
                    stopped_by = exc.reason
                    break
                before = tx.appended_count
                try:
                    outcome = self._store_inbound(
                        tx, v, peer=peer, now=now, with_receipt=False, events=events, taken=taken
                    )
                except (OutOfSequence, WatchlistConflict) as exc:
                    self.ctx.refused(exc, peer=peer, alert_id=v.alert.alert_id)
                    stopped_by = exc.reason
                    break
                if isinstance(outcome, _Conflict):
                    conflict, stopped_by = outcome, Equivocation.reason
                    break
                stored += tx.appended_count - before
            taken.hand_over(tx, self.ctx.on_peer_alerts)
        taken.log(events, node=self.ctx.me, peer=peer)  # committed
        if conflict is not None:
            self._equivocation(conflict, peer=peer, now=now)
        return PageStored(stored=stored, stopped_by=stopped_by)

    def receive_in_order(
        self,
        envelopes: Sequence[bytes],
        *,
        peer: Country,
        direct: bool = True,
        verdict: Callable[[int], Verdict | None] | None = None,
    ) -> StreamTurn:
        """Envelopes checked, stored and receipted in order, in one commit, up to the first
        refusal: a delivery stream's turn, and `receive` (a turn of one).

        Returns the receipts of those stored (or held already), given only
        after the commit, and the refusal that stopped the turn (logged, and
        for an equivocation its evidence kept) for the caller to answer with;
        nothing of the refused envelope is stored. `verdict(i)`: signature
        verdicts started ahead, off the store's thread (verdicts_ahead).
        """
        now = self.ctx.clock()
        receipts: list[bytes] = []
        refusal: InboundRejected | None = None
        conflict: _Conflict | None = None
        gap_from: Country | None = None
        # A turn of many alerts is logged as a page is, not an event an alert
        # (6-11% of a stream turn's CPU, issue 15).
        taken = _Taken(summarized=len(envelopes) > 1)
        with self.ctx.store.transaction() as tx:
            for i, envelope in enumerate(envelopes):
                try:
                    known = verdict(i) if verdict is not None else None
                    v = self._verify(envelope, peer=peer, direct=direct, now=now, known=known)
                except InboundRejected as exc:  # _verify logged it
                    refusal = exc
                    break
                try:
                    outcome = self._store_inbound(tx, v, peer=peer, now=now, taken=taken)
                except (WatchlistConflict, OutOfSequence) as exc:
                    self.ctx.refused(exc, peer=peer, alert_id=v.alert.alert_id)
                    if isinstance(exc, OutOfSequence) and exc.expected < (v.alert.seq_for(self.ctx.me) or 0):
                        gap_from = v.alert.origin
                    refusal = exc
                    break
                if isinstance(outcome, _Conflict):
                    conflict = outcome
                    break
                if outcome is None:  # with_receipt: a receipt always comes back, so this is a bug
                    raise RuntimeError(f"storing {v.alert.alert_id} from {peer} gave no receipt")
                receipts.append(outcome)
            taken.hand_over(tx, self.ctx.on_peer_alerts)
        taken.log(log, node=self.ctx.me, peer=peer)  # committed
        if receipts and direct:  # committed: the peer's pushes reach us in order (LinkState.is_pushing)
            self.ctx.links[peer].pushed_at = time.monotonic()
        if conflict is not None:
            refusal = self._equivocation(conflict, peer=peer, now=now)
        if gap_from is not None and self.ctx.on_gap is not None:
            self.ctx.on_gap(gap_from)
        return StreamTurn(receipts=receipts, refusal=refusal)

    def verdicts_ahead(self, envelopes: Sequence[bytes]) -> Callable[[int], Verdict | None] | None:
        """For a big page: its signatures verified in other processes while this one
        decodes and stores (half the work of a page is Ed25519). The workers get
        public keys, not trust: verify_alert still resolves each key, here, and
        uses a verdict only for the very check it makes. verdict(i) is None
        from the first envelope that step 2 refuses or whose key is unknown."""
        if len(envelopes) < INBOUND_MIN_PARALLEL:
            return None
        checks: list[SignatureCheck] = []
        for envelope in envelopes:
            check = signature_check(envelope, trust=self.ctx.trust)
            if check is None:
                break
            checks.append(check)
        holds = page_verdicts(checks)
        if holds is None:
            return None

        def verdict(i: int) -> Verdict | None:
            return Verdict(checks[i], holds(i)) if i < len(checks) else None

        return verdict

    def _verify(
        self,
        envelope: bytes,
        *,
        peer: Country,
        direct: bool,
        now: datetime,
        known: Verdict | None = None,
        max_skew: timedelta | None = None,
    ) -> VerifiedAlert:
        try:
            return verify_alert(
                envelope,
                trust=self.ctx.trust,
                me=self.ctx.me,
                peer=peer,
                direct=direct,
                now=now,
                max_skew=self.ctx.max_skew if max_skew is None else max_skew,
                known=known,
            )
        except InboundRejected as exc:
            self.ctx.refused(exc, peer=peer, alert_id=exc.alert_id, data=envelope)
            raise

    def _store_inbound(
        self,
        tx: Tx,
        v: VerifiedAlert,
        *,
        peer: Country,
        now: datetime,
        taken: _Taken,
        with_receipt: bool = True,
        events: Any = None,
    ) -> bytes | _Conflict | None:
        """Within `tx`: the receipt (new or the one given before), or the conflict found.

        Catch-up stores without a receipt (`with_receipt` False; nobody waits
        for one) and saves the signing. Raises OutOfSequence before writing.
        `events`: the logger, bound once for a page (default: bound per event).
        `taken`: the commit's account of what it stored (its exposure checks handed
        over at once, its log events after the commit).
        """
        if events is None:
            events = log
        alert = v.alert
        seq = alert.seq_for(self.ctx.me)
        if seq is None:  # verify_alert checked the recipient: a bug if ever seen
            raise RuntimeError(f"{alert.alert_id} has no sequence for {self.ctx.me}")
        existing = tx.alert(alert.origin, alert.alert_id)
        if existing is not None and existing.digest == v.digest and existing.received_at is not None:
            events.info("duplicate_delivery", node=self.ctx.me, peer=peer, alert_id=alert.alert_id)
            if existing.receipt is not None:
                return existing.receipt
            # Stored by catch-up, which signs no receipt; the first push asks for
            # one. Every field comes from the store, so it is the same receipt
            # whenever it is signed (Ed25519 is deterministic).
            late = self._receipt_for(
                v, log_index=existing.log_index, received_at=datetime.fromisoformat(existing.received_at)
            )
            tx.set_receipt(alert.origin, alert.alert_id, late)
            return late
        canonical = encode(pb.SignedAlert(alert=v.payload, key_id=v.key_id, signature=v.signature))
        conflict = self._conflict(tx, v, existing)
        if conflict is not None:
            return _Conflict(detail=conflict[0], kept=conflict[1], alert=alert, conflicting=canonical)
        expected = tx.last_seq(alert.origin, self.ctx.me) + 1
        if seq != expected:
            raise OutOfSequence(
                f"sequence {seq} from {alert.origin} is not the next one, expected {expected}",
                alert_id=alert.alert_id,
                expected=expected,
            )
        if alert.msg_type in WATCHLIST_TYPES:
            self._check_watchlist(tx, v)
        index = tx.append_log(self.ctx.entry("ALERT_RECEIVED", now, peer=peer, envelope=canonical))
        receipt = self._receipt_for(v, log_index=index, received_at=now) if with_receipt else None
        tx.insert_alert(
            origin=alert.origin,
            alert_id=alert.alert_id,
            digest=v.digest,
            envelope=canonical,
            msg_type=alert.msg_type,
            sent=iso(alert.sent),
            log_index=index,
            positions=[(d.recipient, d.seq) for d in alert.deliveries],
            listing=listing_keys(alert),
            via=peer,
            received_at=iso(now),
            receipt=receipt,
        )
        observer, delay = self.ctx.observer, (now - alert.sent).total_seconds()
        tx.after_commit(lambda: observer.received(peer, delay))
        if self.ctx.on_peer_alerts is not None and alert.info is not None:
            # its scope with it: the worker need not read the alert back on this thread;
            # handed over with the rest of the commit's (_Taken.hand_over)
            taken.to_check.append((alert.origin, alert.alert_id, scope_of(alert.info)))
        taken.add(alert.origin, alert.alert_id, seq, index)  # logged after the commit
        return receipt

    def _check_watchlist(self, tx: Tx, v: VerifiedAlert) -> None:
        """Refuse a proposal or vote that breaks the watchlist for good; take it into the ledger after commit.

        Only what no message still in flight could mend is refused (a vote on a
        proposal not held yet is not: it may have overtaken it on another link).
        """
        ledger, origin, alert = self.ctx.watchlist, v.alert.origin, v.alert
        if alert.msg_type == MsgType.WATCHLIST_VOTE and alert.references:
            # The ledger holds watchlist messages only (an entry per alert would cost memory
            # per log entry); what a vote names is looked up in the store instead.
            ref = alert.references[0]
            named = tx.alert(ref.origin, ref.alert_id)
            if named is not None and named.msg_type != MsgType.WATCHLIST_PROPOSAL:
                raise WatchlistConflict(
                    f"{FindingKind.VOTE_NOT_ON_PROPOSAL.value}: {ref.origin} {ref.alert_id} is a "
                    f"{named.msg_type}, not a proposal",
                    alert_id=alert.alert_id,
                )
        findings = ledger.check(origin, v.digest, alert)
        if findings:
            raise WatchlistConflict(
                "; ".join(f"{f.kind}: {f.detail}" for f in findings), alert_id=alert.alert_id
            )
        tx.after_commit(lambda: ledger.add(origin, v.digest, alert))

    def _equivocation(self, c: _Conflict, *, peer: Country, now: datetime) -> Equivocation:
        """Keep the conflicting alert as evidence, raise it to the operator."""
        self.ctx.store.add_evidence(
            kind="equivocation",
            peer=peer,
            origin=c.alert.origin,
            alert_id=c.alert.alert_id,
            detail=c.detail,
            kept=c.kept.alert_id if c.kept else "",
            conflicting=c.conflicting,
            at=iso(now),
        )
        log.error(
            "equivocation",
            node=self.ctx.me,
            peer=peer,
            origin=c.alert.origin,
            alert_id=c.alert.alert_id,
            detail=c.detail,
        )
        exc = Equivocation(c.detail, alert_id=c.alert.alert_id)
        self.ctx.refused(exc, peer=peer, alert_id=c.alert.alert_id)
        return exc

    def _conflict(
        self, tx: Tx, v: VerifiedAlert, existing: StoredAlert | None
    ) -> tuple[str, StoredAlert | None] | None:
        alert = v.alert
        if existing is not None and existing.digest != v.digest:
            return (f"{alert.origin} signed two different alerts with id {alert.alert_id}", existing)
        for d in alert.deliveries:
            held = tx.position(alert.origin, d.recipient, d.seq)
            if held is not None and held[1] != v.digest:
                return (
                    f"{alert.origin} signed two different alerts for sequence {d.seq} towards "
                    f"{d.recipient}: {held[0]} and {alert.alert_id}",
                    tx.alert(alert.origin, held[0]),
                )
        return None

    def _receipt_for(self, v: VerifiedAlert, *, log_index: int, received_at: datetime) -> bytes:
        seq = v.alert.seq_for(self.ctx.me)
        if seq is None:  # verify_alert checked the recipient: a bug if ever seen
            raise RuntimeError(f"{v.alert.alert_id} has no sequence for {self.ctx.me}")
        return self._sign_receipt(
            Receipt(
                schema_version=limits.SCHEMA_VERSION,
                receiver=self.ctx.me,
                origin=v.alert.origin,
                alert_id=v.alert.alert_id,
                seq=seq,
                alert_digest=v.digest,
                log_index=log_index,
                received_at=received_at,
            )
        )

    def _sign_receipt(self, receipt: Receipt) -> bytes:
        payload = receipt_to_bytes(receipt)
        signer = self.ctx.signers["alert"]
        return encode(
            pb.SignedReceipt(
                receipt=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_RECEIPT, payload)
            )
        )

    def import_transfer(
        self, *, origin: Country, recipient: Country, envelopes: Sequence[bytes]
    ) -> dict[str, int]:
        """Store alerts carried by hand from `origin`, with the network path's checks.

        Returns counts of new and already-held alerts; importing twice stores
        nothing the second time.
        """
        if recipient != self.ctx.me:
            raise RefusedOperation(f"this transfer is for {recipient}, not {self.ctx.me}")
        if origin not in self.ctx.peers:
            raise RefusedOperation(f"{origin} is not a peer of {self.ctx.me}")
        stored = 0
        for start in range(0, len(envelopes), limits.MAX_CATCHUP_PAGE):
            page = envelopes[start : start + limits.MAX_CATCHUP_PAGE]
            stored += self.receive_many(page, peer=origin, direct=False).stored
        held = self.ctx.store.last_seq(origin, self.ctx.me)
        refused = sum(1 for env in envelopes if not self._holds(env))
        log.info(
            "transfer_imported",
            node=self.ctx.me,
            origin=origin,
            stored=stored,
            offered=len(envelopes),
            refused=refused,
        )
        return {"offered": len(envelopes), "stored": stored, "refused": refused, "last_seq": held}

    def _holds(self, envelope: bytes) -> bool:
        """Whether this exact signed alert is stored here (by its digest)."""
        try:
            payload = pb.SignedAlert.FromString(envelope).alert
            alert = pb.Alert.FromString(payload)
        except DecodeError:
            return False
        origin = member(alert.origin)
        if origin is None:  # not a federation member's alert: refused by the checks, never stored
            return False
        stored = self.ctx.store.alert(origin, alert.alert_id)
        return stored is not None and stored.digest == digest(payload)
