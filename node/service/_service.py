"""The node's core behaviour: publish, receive, receipts; with its parts, the whole node.

Pure verification lives in node/checks/_inbound.py and storage primitives in
node/store/_sqlite.py; this module composes them into transactions. It knows nothing
of gRPC: the gateway calls `receive`, `accept_receipt`, `pending` and
`catch_up`, and the operator API calls the rest.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import structlog
from cryptography import x509
from google.protobuf.message import DecodeError
from pydantic import ValidationError

from node import limits
from node.checks import Verdict, VerifiedAlert, signature_check, verify_alert, verify_receipt
from node.clock import Clock, iso, utc_now
from node.config import NodeConfig
from node.crypto import (
    INBOUND_MIN_PARALLEL,
    PAYLOAD_ALERT,
    PAYLOAD_RECEIPT,
    KeyPurpose,
    SignatureCheck,
    Signer,
    digest,
    page_verdicts,
)
from node.errors import (
    Equivocation,
    InboundRejected,
    OutOfSequence,
    RefusedOperation,
    SchemaViolation,
    UsageError,
)
from node.ids import Country, Digest, peers_of
from node.message import (
    SEVERE_OR_WORSE,
    Alert,
    Receipt,
    alert_to_bytes,
    encode,
    member,
    receipt_to_bytes,
    timestamp,
)
from node.service._lifecycle import check_lifecycle
from node.service._links import LinkState
from node.service._rejoin import Rejoining
from node.service._rotation import install_pending_keys, trust_with_updates
from node.service._trust import TrustUpdating
from node.service._views import Views, listing_keys, listing_keys_of
from node.service._witnessing import Witnessing
from node.store import STORE_FILE, Store, StoredAlert, StoreThread, Tx
from node.trust import Trust, describe_validation_error
from node.wire import ewx_pb2 as pb

log = structlog.get_logger("ewx.node")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Conflict:
    """Two different signed alerts for one position or id (see _store_inbound)."""

    detail: str
    kept: StoredAlert | None
    alert: Alert
    conflicting: bytes


@dataclass(frozen=True, slots=True)
class PageStored:
    """What receive_many made of a page."""

    stored: int
    """New alerts stored (one already held counts nothing)."""
    complete: bool
    """False when it stopped before the page's end: a refusal, an alert out of
    sequence or an equivocation, each logged."""


def _shifted(verdict: Callable[[int], Verdict | None], start: int, i: int) -> Verdict | None:
    """A page's verdict function, for the part of it that begins at `start`."""
    return verdict(start + i)


@dataclass(frozen=True, slots=True)
class Published:
    """An alert this node signed, logged and queued."""

    alert: Alert
    digest: Digest
    log_index: int


@dataclass(slots=True)
class NodeService(Rejoining, Witnessing, TrustUpdating, Views):
    """One national node's state and behaviour, over its own store.

    This module holds the core (publish, receive, receipts, what the gateway
    asks for); checkpoints and witnessing, trust updates, the operator's
    views and the own history held by peers (re-join) are parts in their own
    modules (node/service_*.py).
    """

    config: NodeConfig
    trust: Trust
    signers: dict[KeyPurpose, Signer]
    store: Store
    clock: Clock = utc_now
    on_outbox: Callable[[Country], None] | None = None
    """Set by the gateway: wakes its delivery loop towards one peer."""
    on_gap: Callable[[Country], None] | None = None
    """Set by the gateway: a delivery revealed alerts from this origin we lack; pull them."""
    on_receipt: Callable[[Country, Receipt], None] | None = None
    """Called after a peer's receipt was verified and durably logged."""
    on_peer_alert: Callable[[Country, str], None] | None = None
    """Called after a peer's ALERT or UPDATE was durably stored: the runtime checks
    it against this node's own data (node/ews/exposure.py)."""
    certificate_in_use: Callable[[], x509.Certificate] | None = None
    """Set by the gateway: the TLS certificate it serves now, which after a failed
    reload is not the one in the file; status reports this one."""
    store_thread: StoreThread | None = None
    """Set by the runtime: the thread that opened the store, which every call to
    it must run on (`call`). None for a service used from one thread alone."""
    links: dict[Country, LinkState] = field(default_factory=dict)
    _gossip_seen: dict[Country, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for peer in self.peers:
            self.links.setdefault(peer, LinkState())

    @classmethod
    def open(cls, config: NodeConfig, *, clock: Clock = utc_now) -> NodeService:
        """Load trust and keys, open the store in the data directory."""
        store = Store(config.data_dir / STORE_FILE)
        try:
            store.fill_listing_keys(listing_keys_of)  # a store from before the listing columns
            # The trust file, amended by the members' updates this node holds
            # (node/service/_rotation.py); keys rotated since the file was written are
            # only known from those.
            trust = trust_with_updates(config, config.load_trust(), store)
            install_pending_keys(config, trust)
            signers = config.load_signers(trust)
        except BaseException:
            store.close()
            raise
        return cls(config=config, trust=trust, signers=signers, store=store, clock=clock)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    async def call(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(*args, **kwargs)` on the store's thread, awaited; directly if it has none.

        Everything that reads or writes the store goes through here from the
        event loop, so no commit holds the loop that answers the peers.
        """
        if self.store_thread is None:
            return work(*args, **kwargs)
        return await self.store_thread.run(work, *args, **kwargs)

    @property
    def me(self) -> Country:
        """This node's id."""
        return self.config.node_id

    @property
    def peers(self) -> tuple[Country, ...]:
        """The peers this node is configured to talk to."""
        return tuple(p for p in peers_of(self.me) if p in self.config.peers)

    @property
    def log_size(self) -> int:
        """Entries in this node's exchange log."""
        return self.store.log_size

    def last_seq(self, origin: Country, recipient: Country) -> int:
        """Highest sequence position this node holds from `origin` towards `recipient`, 0 if none."""
        return self.store.last_seq(origin, recipient)

    def link(self, peer: Country) -> LinkState:
        """What is known of the link to `peer`: the gateway records each call's outcome there."""
        return self.links[peer]

    def peer_alerts(self, *, without_exposure: bool) -> list[tuple[Country, str]]:
        """Peers' ALERTs and UPDATEs by origin and id, in log order (see Store.peer_alerts)."""
        return self.store.peer_alerts(without_exposure=without_exposure)

    @property
    def max_skew(self) -> timedelta:
        """Allowed clock skew for incoming sent times."""
        return timedelta(seconds=self.config.max_clock_skew_seconds)

    # ------------------------------------------------------------ publishing
    def publish(
        self,
        *,
        msg_type: str,
        status: str = "ACTUAL",
        recipients: Sequence[Country] | None = None,
        reference: tuple[Country, str] | None = None,
        info: dict[str, Any] | None = None,
        reason: str | None = None,
        response: dict[str, Any] | None = None,
        consult: dict[str, Any] | None = None,
        alert_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Published:
        """Sign, log and queue one message of any type; atomically or not at all.

        With an `idempotency_key`, a request that repeats the key of one
        already published returns that alert and publishes nothing: a retry
        after a lost reply is safe.

        Raises UsageError for a schema violation (naming the field) and
        RefusedOperation when the reference or the id does not fit the store.
        """
        now = self.clock()
        self._refuse_if_history_missing()
        # Only None means "both peers": an explicit empty list is a caller's
        # mistake (an empty variable) and must never widen the audience.
        if recipients is not None and not recipients:
            raise UsageError("the recipient list is empty; name at least one peer, or omit it for both")
        targets = self.peers if recipients is None else tuple(recipients)
        unknown = [r for r in targets if r not in self.peers]
        if unknown:
            raise UsageError(f"recipient {', '.join(unknown)} is not a peer of {self.me}")
        try:
            # Peers would refuse it, and it would block the outbox behind it.
            self.trust.resolve_key(self.signers["alert"].key_id, purpose="alert", at=now)
        except InboundRejected as exc:
            raise RefusedOperation(f"this node cannot sign alerts now: {exc}; rotate its alert key") from None
        if idempotency_key is not None:
            first = self._published_under(idempotency_key)
            if first is not None:
                return first
        with self.store.transaction() as tx:
            if alert_id is None:
                alert_id = self._automatic_id(tx, now)
            elif tx.alert(self.me, alert_id) is not None:
                raise RefusedOperation(
                    f"alert id {alert_id}, chosen by the operator, is already used by {self.me}; "
                    "leave the id out for a new one"
                )
            references = [self._reference(tx, *reference)] if reference else []
            if reference:
                check_lifecycle(tx, me=self.me, msg_type=msg_type, reference=reference)
            fields: dict[str, Any] = {
                "schema_version": limits.SCHEMA_VERSION,
                "alert_id": alert_id,
                "origin": self.me,
                "sent": now,
                "status": status,
                "msg_type": msg_type,
                "deliveries": [{"recipient": r, "seq": tx.last_seq(self.me, r) + 1} for r in targets],
                "references": references,
                "info": info,
                "reason": reason,
                "response": response,
                "consult": consult,
            }
            try:
                alert = Alert.model_validate(fields)
            except ValidationError as exc:
                raise UsageError(describe_validation_error(exc)) from None
            if msg_type == "CONSULT":
                self._check_consultable(tx, alert)
            payload = alert_to_bytes(alert)
            envelope = encode(
                pb.SignedAlert(
                    alert=payload,
                    key_id=self.signers["alert"].key_id,
                    signature=self.signers["alert"].sign(PAYLOAD_ALERT, payload),
                )
            )
            if len(envelope) > limits.MAX_ENVELOPE_BYTES:
                raise UsageError(
                    f"signed alert is {len(envelope)} bytes, at most {limits.MAX_ENVELOPE_BYTES}"
                )
            index = tx.append_log(self._entry("ALERT_SENT", now, peer=None, envelope=envelope))
            dig = digest(payload)
            tx.insert_alert(
                origin=self.me,
                alert_id=alert_id,
                digest=dig,
                envelope=envelope,
                msg_type=msg_type,
                sent=iso(now),
                log_index=index,
                positions=[(d.recipient, d.seq) for d in alert.deliveries],
                listing=listing_keys(alert),
            )
            for d in alert.deliveries:
                tx.queue(recipient=d.recipient, seq=d.seq, alert_id=alert_id, created_at=iso(now))
            if idempotency_key is not None:
                tx.remember(idempotency_key, alert_id, iso(now))
        log.info(
            "alert_published",
            node=self.me,
            alert_id=alert_id,
            msg_type=msg_type,
            recipients=list(targets),
            log_index=index,
        )
        if self.on_outbox is not None:
            for recipient in targets:
                self.on_outbox(recipient)
        return Published(alert=alert, digest=dig, log_index=index)

    def _published_under(self, key: str) -> Published | None:
        alert_id = self.store.idempotent(key)
        if alert_id is None:
            return None
        stored = self.store.alert(self.me, alert_id)
        if stored is None:  # the key and the alert are committed together
            raise RefusedOperation(f"idempotency key {key!r} names alert {alert_id}, which {self.me} lacks")
        log.info("publish_repeated", node=self.me, alert_id=alert_id, idempotency_key=key)
        return Published(alert=self._decode(stored), digest=stored.digest, log_index=stored.log_index)

    def _automatic_id(self, tx: Tx, now: datetime) -> str:
        """`<CC>-YYYYMMDD-NNNNNN` from a counter in the store, committed with the alert (a
        random suffix collides at high rates); numbers an operator took with --id are skipped."""
        while True:
            candidate = f"{self.me}-{now:%Y%m%d}-{tx.next_number('alert_number'):06d}"
            if tx.alert(self.me, candidate) is None:
                return candidate

    def _reference(self, tx: Tx, origin: Country, alert_id: str) -> dict[str, Any]:
        stored = tx.alert(origin, alert_id)
        if stored is None:
            raise RefusedOperation(f"no alert {alert_id} from {origin} is known to {self.me}")
        return {"origin": origin, "alert_id": alert_id, "digest": stored.digest}

    def _check_consultable(self, tx: Tx, alert: Alert) -> None:
        ref = alert.references[0]
        stored = tx.alert(ref.origin, ref.alert_id)
        info = None if stored is None else self._decode(stored).info
        if info is None or info.severity not in SEVERE_OR_WORSE:
            raise RefusedOperation("CONSULT may only reference a SEVERE or EXTREME alert")

    def _entry(
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

    # ------------------------------------------------------------ receiving
    def receive(self, envelope: bytes, *, peer: Country, direct: bool = True) -> bytes:
        """Verify, durably store and receipt one signed alert from `peer`.

        Returns the SignedReceipt bytes, only after the commit. The same alert
        delivered again returns the same receipt and stores nothing new.
        Raises an InboundRejected subclass, having stored nothing (except
        equivocation evidence), and logs the refusal.
        """
        now = self.clock()
        verified = self._verify(envelope, peer=peer, direct=direct, now=now)
        try:
            with self.store.transaction() as tx:
                outcome = self._store_inbound(tx, verified, peer=peer, now=now)
        except OutOfSequence as exc:
            self._refused(exc, peer=peer, alert_id=verified.alert.alert_id)
            if exc.expected < (verified.alert.seq_for(self.me) or 0) and self.on_gap is not None:
                self.on_gap(verified.alert.origin)
            raise
        if isinstance(outcome, _Conflict):
            raise self._equivocation(outcome, peer=peer, now=now)
        if outcome is None:  # with_receipt: a receipt always comes back, so this is a bug
            raise RuntimeError(f"storing {verified.alert.alert_id} from {peer} gave no receipt")
        return outcome

    async def store_page(self, envelopes: Sequence[bytes], *, peer: Country, direct: bool) -> int:
        """Catch-up from the event loop: a page stored in turns of the store's thread.

        The page's signatures are verified ahead in the inbound pool, started
        off the store's thread; then at most limits.STORE_TURN_ALERTS alerts
        are stored per turn (receive_many, one commit each), so a Deliver or a
        witness request handed to the thread meanwhile waits for one turn, not
        for the whole page. Stops where receive_many stopped; returns how many
        new alerts were stored.
        """
        verdict = await asyncio.to_thread(self._verdicts_ahead, envelopes)
        stored = 0
        turn = limits.STORE_TURN_ALERTS
        for start in range(0, len(envelopes), turn):
            part = await self.call(
                self.receive_many,
                envelopes[start : start + turn],
                peer=peer,
                direct=direct,
                verdict=None if verdict is None else functools.partial(_shifted, verdict, start),
            )
            stored += part.stored
            if not part.complete:
                break
        return stored

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
        now = self.clock()
        if verdict is None:
            verdict = self._verdicts_ahead(envelopes)
        # Once a page rather than once an alert: max_skew is computed from the
        # config, and the module's lazy logger binds anew on every call.
        skew, events = self.max_skew, log.bind()
        stored, complete = 0, False
        conflict: _Conflict | None = None
        # Each alert is stored once verified rather than after the whole page:
        # no page of decoded alerts stays alive, so the garbage collector's
        # passes stay short.
        with self.store.transaction() as tx:
            for i, envelope in enumerate(envelopes):
                try:
                    known = verdict(i) if verdict is not None else None
                    v = self._verify(envelope, peer=peer, direct=direct, now=now, known=known, max_skew=skew)
                except InboundRejected:
                    break
                before = tx.appended_count
                try:
                    outcome = self._store_inbound(
                        tx, v, peer=peer, now=now, with_receipt=False, events=events
                    )
                except OutOfSequence as exc:
                    self._refused(exc, peer=peer, alert_id=v.alert.alert_id)
                    break
                if isinstance(outcome, _Conflict):
                    conflict = outcome
                    break
                stored += tx.appended_count - before
            else:
                complete = True
        if conflict is not None:
            self._equivocation(conflict, peer=peer, now=now)
        return PageStored(stored=stored, complete=complete)

    def _verdicts_ahead(self, envelopes: Sequence[bytes]) -> Callable[[int], Verdict | None] | None:
        """For a big page: its signatures verified in other processes while this one
        decodes and stores (half the work of a page is Ed25519). The workers get
        public keys, not trust: verify_alert still resolves each key, here, and
        uses a verdict only for the very check it makes. verdict(i) is None
        from the first envelope that step 2 refuses or whose key is unknown."""
        if len(envelopes) < INBOUND_MIN_PARALLEL:
            return None
        checks: list[SignatureCheck] = []
        for envelope in envelopes:
            check = signature_check(envelope, trust=self.trust)
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
                trust=self.trust,
                me=self.me,
                peer=peer,
                direct=direct,
                now=now,
                max_skew=self.max_skew if max_skew is None else max_skew,
                known=known,
            )
        except InboundRejected as exc:
            self._refused(exc, peer=peer, alert_id=exc.alert_id, data=envelope)
            raise

    def _refused(
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

    def _store_inbound(
        self,
        tx: Tx,
        v: VerifiedAlert,
        *,
        peer: Country,
        now: datetime,
        with_receipt: bool = True,
        events: Any = None,
    ) -> bytes | _Conflict | None:
        """Within `tx`: the receipt (new or the one given before), or the conflict found.

        Catch-up stores without a receipt (`with_receipt` False; nobody waits
        for one) and saves the signing. Raises OutOfSequence before writing.
        `events`: the logger, bound once for a page (default: bound per event).
        """
        if events is None:
            events = log
        alert = v.alert
        seq = alert.seq_for(self.me)
        if seq is None:  # verify_alert checked the recipient: a bug if ever seen
            raise RuntimeError(f"{alert.alert_id} has no sequence for {self.me}")
        existing = tx.alert(alert.origin, alert.alert_id)
        if existing is not None and existing.digest == v.digest and existing.received_at is not None:
            events.info("duplicate_delivery", node=self.me, peer=peer, alert_id=alert.alert_id)
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
        expected = tx.last_seq(alert.origin, self.me) + 1
        if seq != expected:
            raise OutOfSequence(
                f"sequence {seq} from {alert.origin} is not the next one, expected {expected}",
                alert_id=alert.alert_id,
                expected=expected,
            )
        index = tx.append_log(self._entry("ALERT_RECEIVED", now, peer=peer, envelope=canonical))
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
        if self.on_peer_alert is not None and alert.info is not None:
            hook, origin, alert_id = self.on_peer_alert, alert.origin, alert.alert_id
            tx.after_commit(lambda: hook(origin, alert_id))
        events.info(
            "alert_received",
            node=self.me,
            peer=peer,
            origin=alert.origin,
            alert_id=alert.alert_id,
            seq=seq,
            log_index=index,
        )
        return receipt

    def _equivocation(self, c: _Conflict, *, peer: Country, now: datetime) -> Equivocation:
        """Keep the conflicting alert as evidence, raise it to the operator."""
        self.store.add_evidence(
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
            node=self.me,
            peer=peer,
            origin=c.alert.origin,
            alert_id=c.alert.alert_id,
            detail=c.detail,
        )
        exc = Equivocation(c.detail, alert_id=c.alert.alert_id)
        self._refused(exc, peer=peer, alert_id=c.alert.alert_id)
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
        seq = v.alert.seq_for(self.me)
        if seq is None:  # verify_alert checked the recipient: a bug if ever seen
            raise RuntimeError(f"{v.alert.alert_id} has no sequence for {self.me}")
        return self._sign_receipt(
            Receipt(
                schema_version=limits.SCHEMA_VERSION,
                receiver=self.me,
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
        signer = self.signers["alert"]
        return encode(
            pb.SignedReceipt(
                receipt=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_RECEIPT, payload)
            )
        )

    # ------------------------------------------------------------ receipts
    def accept_receipt(self, peer: Country, envelope: bytes) -> Receipt:
        """Verify and log `peer`'s receipt for one of our alerts; idempotent."""
        now = self.clock()
        verified = verify_receipt(envelope, trust=self.trust, receiver=peer, origin=self.me, now=now)
        receipt = verified.receipt
        with self.store.transaction() as tx:
            row = tx.outbox_row(peer, receipt.seq)
            own = tx.alert(self.me, receipt.alert_id)
            if row is None or own is None or row.alert_id != receipt.alert_id:
                raise SchemaViolation(
                    f"receipt from {peer} names {receipt.alert_id} at sequence "
                    f"{receipt.seq}, which {self.me} never sent there"
                )
            if own.digest != receipt.alert_digest:
                raise SchemaViolation(f"receipt from {peer} for {receipt.alert_id} has another digest")
            if row.delivered_at is not None:
                return receipt
            index = tx.append_log(self._entry("RECEIPT_RECEIVED", now, peer=peer, receipt=envelope))
            tx.mark_delivered(recipient=peer, seq=receipt.seq, receipt=envelope, log_index=index, at=iso(now))
        log.info(
            "receipt_logged",
            node=self.me,
            peer=peer,
            alert_id=receipt.alert_id,
            seq=receipt.seq,
            log_index=index,
        )
        if self.on_receipt is not None:
            self.on_receipt(peer, receipt)
        return receipt

    # ------------------------------------------------------------ for the gateway
    def pending(self, peer: Country, limit: int = 100) -> list[tuple[int, str, bytes]]:
        """(seq, alert id, envelope) of own alerts `peer` has not receipted yet."""
        rows = self.store.pending(self.me, peer, limit)
        envelopes = self._deliverable([(alert_id, env) for _, alert_id, env in rows])
        return [(seq, alert_id, env) for (seq, alert_id, _), env in zip(rows, envelopes, strict=True)]

    def _deliverable(self, alerts: Sequence[tuple[str, bytes]]) -> list[bytes]:
        """Own (alert id, envelope)s as they can be delivered now: re-signed where their key no longer may sign.

        An alert waits in the outbox while its peer is down; if its key
        expires or is revoked meanwhile, the peer would refuse it for good and
        the gapless sequence would stop there. The alert's signed bytes stay
        the same (so its digest, receipts and references hold); only the
        signature is renewed, under the node's current alert key, and kept,
        in one commit for the batch. The log keeps the envelope as first
        signed. The clock is read only if an alert is signed by another key
        than the current one.
        """
        signer = self.signers["alert"]
        now = functools.cache(self.clock)
        out: list[bytes] = []
        renewed: list[tuple[str, bytes]] = []
        for alert_id, envelope in alerts:
            outer = pb.SignedAlert.FromString(envelope)
            entry = None if outer.key_id == signer.key_id else self.trust.key(outer.key_id)
            if entry is None or entry.valid_at(now()):
                out.append(envelope)  # signed by the current key, or one still valid
                continue
            current = self.trust.key(signer.key_id)
            if current is None or not current.valid_at(now()):
                out.append(envelope)  # nothing better to offer; the peer will say what is wrong
                continue
            payload = bytes(outer.alert)
            fresh = encode(
                pb.SignedAlert(
                    alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload)
                )
            )
            out.append(fresh)
            renewed.append((alert_id, fresh))
            log.warning(
                "alert_re_signed",
                node=self.me,
                alert_id=alert_id,
                old_key=outer.key_id,
                new_key=signer.key_id,
                reason="revoked" if entry.revoked_at(now()) else "expired",
            )
        if renewed:
            with self.store.transaction() as tx:
                for alert_id, fresh in renewed:
                    tx.replace_envelope(self.me, alert_id, fresh)
        return out

    def record_failure(self, peer: Country, seq: int, error: str) -> None:
        """Note a failed delivery attempt in the outbox (shown by status)."""
        self.store.record_failure(recipient=peer, seq=seq, error=error)

    def undelivered(self, peer: Country) -> list[bytes]:
        """Every own signed alert `peer` has not receipted, in sequence order (offline transfer)."""
        envelopes: list[bytes] = []
        after = 0
        while page := self.store.pending(self.me, peer, limits.MAX_CATCHUP_PAGE, after_seq=after):
            envelopes.extend(self._deliverable([(alert_id, env) for _, alert_id, env in page]))
            after = page[-1][0]
        return envelopes

    def import_transfer(
        self, *, origin: Country, recipient: Country, envelopes: Sequence[bytes]
    ) -> dict[str, int]:
        """Store alerts carried by hand from `origin`, with the network path's checks.

        Returns counts of new and already-held alerts; importing twice stores
        nothing the second time.
        """
        if recipient != self.me:
            raise RefusedOperation(f"this transfer is for {recipient}, not {self.me}")
        if origin not in self.peers:
            raise RefusedOperation(f"{origin} is not a peer of {self.me}")
        stored = 0
        for start in range(0, len(envelopes), limits.MAX_CATCHUP_PAGE):
            page = envelopes[start : start + limits.MAX_CATCHUP_PAGE]
            stored += self.receive_many(page, peer=origin, direct=False).stored
        held = self.store.last_seq(origin, self.me)
        refused = sum(1 for env in envelopes if not self._holds(env))
        log.info(
            "transfer_imported",
            node=self.me,
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
        stored = self.store.alert(origin, alert.alert_id)
        return stored is not None and stored.digest == digest(payload)

    def catch_up(self, *, requester: Country, origin: Country, after_seq: int, limit: int) -> list[bytes]:
        """Signed alerts of `origin` addressed to `requester`, after `after_seq`.

        Only alerts addressed to the requester are ever returned: an alert
        never reaches a node it was not addressed to (SPEC section 4). With
        `origin` the requester itself: its own alerts addressed to this node,
        after `after_seq` towards this node.
        """
        page = max(1, min(limit or limits.MAX_CATCHUP_PAGE, limits.MAX_CATCHUP_PAGE))
        if origin == requester and origin != self.me:
            # The requester's own alerts addressed to this node: it signed them, so
            # nothing reaches a node that did not already have it. A node on an
            # empty store learns from this what it sent before (issue 10, item 2).
            own = self.store.envelopes_for(origin=origin, recipient=self.me, after_seq=after_seq, limit=page)
            return [env for _, _, env in own]
        found = self.store.envelopes_for(origin=origin, recipient=requester, after_seq=after_seq, limit=page)
        if origin != self.me:
            return [env for _, _, env in found]  # relayed as signed: only the origin may re-sign
        return self._deliverable([(alert_id, env) for _, alert_id, env in found])
