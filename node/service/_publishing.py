"""The node service's part for publishing: sign, log and queue one of this node's messages.

Atomically or not at all: the id, the sequence number towards each
recipient, the log entry, the stored alert and its outbox rows commit
together. The lifecycle rules are node/service/_lifecycle.py.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import structlog
from pydantic import ValidationError

from node import limits
from node.clock import iso
from node.crypto import (
    PAYLOAD_ALERT,
    digest,
)
from node.errors import (
    InboundRejected,
    RefusedOperation,
    UsageError,
)
from node.ids import Country, Digest
from node.message import (
    SEVERE_OR_WORSE,
    Alert,
    MsgType,
    alert_to_bytes,
    encode,
    pb,
)
from node.service._context import ServiceContext
from node.service._lifecycle import check_lifecycle
from node.service._rejoin import Rejoining
from node.service._views import listing_keys
from node.store import Tx
from node.trilateral import WATCHLIST_TYPES
from node.trust import describe_validation_error

log = structlog.get_logger("ewx.node")

JOINT: Final = frozenset({MsgType.WATCHLIST_PROPOSAL, MsgType.WATCHLIST_VOTE})
"""Message types that go to every peer: the watchlist is signed by all three members."""


@dataclass(frozen=True, slots=True)
class Published:
    """An alert this node signed, logged and queued."""

    alert: Alert
    digest: Digest
    log_index: int

    def to_json(self) -> dict[str, Any]:
        """What the operator API answers a publish with."""
        return {
            "alert_id": self.alert.alert_id,
            "digest": self.digest.hex(),
            "log_index": self.log_index,
            "deliveries": {d.recipient: d.seq for d in self.alert.deliveries},
        }


class Publishing:
    """Signing, logging and queueing this node's own messages."""

    def __init__(self, ctx: ServiceContext, history: Rejoining) -> None:
        self.ctx = ctx
        self.history = history

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
        watchlist: dict[str, Any] | None = None,
        vote: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
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
        now = self.ctx.clock()
        self.history.refuse_if_history_missing()
        # Only None means "both peers": an explicit empty list is a caller's
        # mistake (an empty variable) and must never widen the audience.
        if recipients is not None and not recipients:
            raise UsageError("the recipient list is empty; name at least one peer, or omit it for both")
        targets = self.ctx.peers if recipients is None else tuple(recipients)
        if msg_type in JOINT and set(targets) != set(self.ctx.peers):
            # All three sign a version, so every member must see every proposal and vote.
            raise UsageError(f"a {msg_type} goes to every peer; leave the recipients out")
        unknown = [r for r in targets if r not in self.ctx.peers]
        if unknown:
            raise UsageError(f"recipient {', '.join(unknown)} is not a peer of {self.ctx.me}")
        try:
            # Peers would refuse it, and it would block the outbox behind it.
            self.ctx.trust.resolve_key(self.ctx.signers["alert"].key_id, purpose="alert", at=now)
        except InboundRejected as exc:
            raise RefusedOperation(f"this node cannot sign alerts now: {exc}; rotate its alert key") from None
        if idempotency_key is not None:
            first = self._published_under(idempotency_key)
            if first is not None:
                return first
        with self.ctx.store.transaction() as tx:
            if alert_id is None:
                alert_id = self._automatic_id(tx, now)
            elif tx.alert(self.ctx.me, alert_id) is not None:
                raise RefusedOperation(
                    f"alert id {alert_id}, chosen by the operator, is already used by {self.ctx.me}; "
                    "leave the id out for a new one"
                )
            references = [self._reference(tx, *reference)] if reference else []
            if reference:
                check_lifecycle(tx, me=self.ctx.me, msg_type=msg_type, reference=reference)
            fields: dict[str, Any] = {
                "schema_version": limits.SCHEMA_VERSION,
                "alert_id": alert_id,
                "origin": self.ctx.me,
                "sent": now,
                "status": status,
                "msg_type": msg_type,
                "deliveries": [{"recipient": r, "seq": tx.last_seq(self.ctx.me, r) + 1} for r in targets],
                "references": references,
                "info": info,
                "reason": reason,
                "response": response,
                "consult": consult,
                "watchlist": watchlist,
                "vote": vote,
                "policy": policy,
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
                    key_id=self.ctx.signers["alert"].key_id,
                    signature=self.ctx.signers["alert"].sign(PAYLOAD_ALERT, payload),
                )
            )
            if len(envelope) > limits.MAX_ENVELOPE_BYTES:
                raise UsageError(
                    f"signed alert is {len(envelope)} bytes, at most {limits.MAX_ENVELOPE_BYTES}"
                )
            index = tx.append_log(self.ctx.entry("ALERT_SENT", now, peer=None, envelope=envelope))
            dig = digest(payload)
            tx.insert_alert(
                origin=self.ctx.me,
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
            # Told once it is durable: in a group (publish_grouped) that is at the
            # group's commit, after the others of the group, not when this part ends.
            tx.after_commit(functools.partial(self._published, alert, dig, index, targets))
        return Published(alert=alert, digest=dig, log_index=index)

    def _published(self, alert: Alert, dig: Digest, index: int, targets: tuple[Country, ...]) -> None:
        log.info(
            "alert_published",
            node=self.ctx.me,
            alert_id=alert.alert_id,
            msg_type=alert.msg_type,
            recipients=list(targets),
            log_index=index,
        )
        if alert.msg_type in WATCHLIST_TYPES:  # the ledger holds watchlist messages only, as when it is loaded
            self.ctx.watchlist.add(self.ctx.me, dig, alert)
        if self.ctx.on_outbox is not None:
            for recipient in targets:
                self.ctx.on_outbox(recipient)

    def _published_under(self, key: str) -> Published | None:
        alert_id = self.ctx.store.idempotent(key)
        if alert_id is None:
            return None
        stored = self.ctx.store.alert(self.ctx.me, alert_id)
        if stored is None:  # the key and the alert are committed together
            raise RefusedOperation(
                f"idempotency key {key!r} names alert {alert_id}, which {self.ctx.me} lacks"
            )
        log.info("publish_repeated", node=self.ctx.me, alert_id=alert_id, idempotency_key=key)
        return Published(alert=self.ctx.decode(stored), digest=stored.digest, log_index=stored.log_index)

    def _automatic_id(self, tx: Tx, now: datetime) -> str:
        """`<CC>-YYYYMMDD-NNNNNN` from a counter in the store, committed with the alert (a
        random suffix collides at high rates); numbers an operator took with --id are skipped."""
        while True:
            candidate = f"{self.ctx.me}-{now:%Y%m%d}-{tx.next_number('alert_number'):06d}"
            if tx.alert(self.ctx.me, candidate) is None:
                return candidate

    def _reference(self, tx: Tx, origin: Country, alert_id: str) -> dict[str, Any]:
        stored = tx.alert(origin, alert_id)
        if stored is None:
            raise RefusedOperation(f"no alert {alert_id} from {origin} is known to {self.ctx.me}")
        return {"origin": origin, "alert_id": alert_id, "digest": stored.digest}

    def _check_consultable(self, tx: Tx, alert: Alert) -> None:
        ref = alert.references[0]
        stored = tx.alert(ref.origin, ref.alert_id)
        info = None if stored is None else self.ctx.decode(stored).info
        if info is None or info.severity not in SEVERE_OR_WORSE:
            raise RefusedOperation("CONSULT may only reference a SEVERE or EXTREME alert")
