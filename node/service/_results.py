"""What the operator's views answer, as types: a listed alert, one alert in full, the node's status.

Each is a frozen dataclass with `to_json()`, the one place its JSON shape
(the operator API's reply, `--json` output) is written; the views
(node/service/_views.py) build them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.ids import Country
from node.message import Alert
from node.situation.deadlines import AckDue


@dataclass(frozen=True, slots=True)
class Followup:
    """A message that names a listed alert: an UPDATE, CANCEL, ACK, ERROR, RESPONSE or CONSULT."""

    origin: Country
    alert_id: str
    msg_type: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "alert_id": self.alert_id,
            "msg_type": self.msg_type,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """One recipient's position of an alert, and for an own alert what its outbox row says."""

    seq: int
    delivered_at: str | None = None
    attempts: int | None = None
    last_error: str | None = None
    outbox: bool = False
    """Whether the outbox row was found (an own alert): only then are the other fields shown."""

    def to_json(self) -> dict[str, Any]:
        if not self.outbox:
            return {"seq": self.seq}
        return {
            "seq": self.seq,
            "delivered_at": self.delivered_at,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class ListedAlert:
    """One row of `ewx alert list`: an own or received alert with its state and who answered it."""

    alert_id: str
    origin: Country
    msg_type: str
    status: str
    sent: str
    via: Country | None
    received_at: str | None
    log_index: int
    digest: str
    state: str
    references: tuple[tuple[Country, str], ...]
    responses: tuple[Followup, ...]
    deliveries: dict[Country, DeliveryState]
    category: str | None = None
    severity: str | None = None
    headline: str | None = None
    expires: str | None = None
    items: tuple[str, ...] = ()
    reason: str | None = None
    local_exposure: str | None = None
    """This node's own exposure to a received alert with info, in one line of bands (computed at home)."""
    acks: tuple[AckDue, ...] = ()
    """Each recipient's acknowledgement against the deadline of its severity (ALERT and UPDATE)."""
    flags: tuple[str, ...] = ()
    """What a duty officer should look at: `ack_after_cancel:<CC>` (an ACK signed after the CANCEL)."""
    consultation_open: bool = False

    @property
    def overdue(self) -> tuple[Country, ...]:
        """The recipients whose acknowledgement is overdue now."""
        return tuple(d.recipient for d in self.acks if d.status == "overdue")

    @property
    def direction(self) -> str:
        """'sent' for this node's own alerts, 'received' for a peer's."""
        return "sent" if self.via is None else "received"

    @property
    def acknowledged_by(self) -> tuple[Country, ...]:
        """The members that acknowledged it, sorted."""
        return tuple(sorted({f.origin for f in self.responses if f.msg_type == "ACK"}))

    def to_json(self) -> dict[str, Any]:
        """The operator socket's row; the info keys only for an alert with info."""
        item: dict[str, Any] = {
            "alert_id": self.alert_id,
            "origin": self.origin,
            "msg_type": self.msg_type,
            "status": self.status,
            "sent": self.sent,
            "direction": self.direction,
            "via": self.via,
            "received_at": self.received_at,
            "log_index": self.log_index,
            "digest": self.digest,
            "state": self.state,
            "references": [{"origin": o, "alert_id": a} for o, a in self.references],
            "acknowledged_by": list(self.acknowledged_by),
            "responses": [f.to_json() for f in self.responses],
            "deliveries": {r: d.to_json() for r, d in self.deliveries.items()},
        }
        if self.severity is not None:
            item.update(
                category=self.category,
                severity=self.severity,
                headline=self.headline,
                expires=self.expires,
                items=list(self.items),
            )
        if self.reason is not None:
            item["reason"] = self.reason
        if self.via is not None and self.severity is not None:
            item["local_exposure"] = self.local_exposure
        if self.msg_type in ("ALERT", "UPDATE"):
            item["acks"] = [d.to_json() for d in self.acks]
            item["overdue"] = list(self.overdue)
            item["flags"] = list(self.flags)
            item["consultation_open"] = self.consultation_open
        return item


@dataclass(frozen=True, slots=True)
class AlertDetail:
    """`ewx alert show`: one stored alert in full."""

    alert: Alert
    digest: str
    log_index: int
    received: bool
    local_exposure: dict[str, Any] | None = None
    """This node's exposure to a received alert with info, as computed; it is in no message."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.alert.model_dump(mode="json", exclude_none=True)
        data["digest"] = self.digest
        data["log_index"] = self.log_index
        if self.received and "info" in data:
            data["local_exposure"] = self.local_exposure
        return data


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One peer as `ewx status` shows it."""

    reachable: bool | None
    last_ok: str | None
    last_error: str | None
    last_seq_sent: int
    last_seq_delivered: int
    last_seq_received: int
    backlog: int
    oldest_undelivered_seconds: float | None
    last_checkpoint_cosigned: int | None
    overdue_acks: tuple[str, ...] = ()
    """`origin/alert_id` of every open alert this peer has not acknowledged by its deadline."""
    down_since: str | None = None
    """When calls to the peer started failing, while they still do."""
    problem: str | None = None
    """last_error in plain words (node/service/_links.py plain_error)."""
    our_log_cosigned: dict[str, Any] | None = None
    """The newest checkpoint of this node's log the peer cosigned: size, at."""
    their_log_cosigned: dict[str, Any] | None = None
    """The newest checkpoint of the peer's log this node cosigned: size, root."""
    catch_up: dict[str, Any] | None = None
    """A catch-up in progress: from_peer (this node pulling: first_seq, at_seq) and
    peer_from_us (the peer pulling our alerts: at_seq of all we sent it)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "catch_up": self.catch_up,
            "down_since": self.down_since,
            "problem": self.problem,
            "our_log_cosigned": self.our_log_cosigned,
            "their_log_cosigned": self.their_log_cosigned,
            "overdue_acks": list(self.overdue_acks),
            "reachable": self.reachable,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
            "last_seq_sent": self.last_seq_sent,
            "last_seq_delivered": self.last_seq_delivered,
            "last_seq_received": self.last_seq_received,
            "backlog": self.backlog,
            "oldest_undelivered_seconds": self.oldest_undelivered_seconds,
            "last_checkpoint_cosigned": self.last_checkpoint_cosigned,
        }


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """`ewx status`: the certificate, signing keys, the log, evidence, history, trust, and each peer."""

    node: Country
    time: str
    certificate_not_after: str
    certificate_days_left: float
    certificate_expiring_soon: bool
    signing_keys: dict[str, Any]
    log_size: int
    log_root: str
    published_size: int
    checkpoint_at: str | None
    """When the newest checkpoint of this node's log was signed (None: none yet)."""
    evidence: int
    history_missing: dict[Country, str]
    history_unchecked_since: str | None
    trust_updates: dict[Country, int]
    overdue_acks: tuple[str, ...] = ()
    """`origin/alert_id` of every open peer alert this node has not acknowledged by its deadline."""
    peers: dict[Country, PeerStatus] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "time": self.time,
            "certificate": {
                "not_after": self.certificate_not_after,
                "days_left": self.certificate_days_left,
                "expiring_soon": self.certificate_expiring_soon,
            },
            "signing_keys": self.signing_keys,
            "log": {
                "size": self.log_size,
                "root": self.log_root,
                "published_size": self.published_size,
                "checkpoint_at": self.checkpoint_at,
            },
            "evidence": self.evidence,
            # A peer holds own history the store lacks: publishing is refused (issue 10, item 2).
            "history_missing": self.history_missing,
            "history_unchecked_since": self.history_unchecked_since,
            "trust_updates": self.trust_updates,
            "overdue_acks": list(self.overdue_acks),
            "peers": {p: s.to_json() for p, s in self.peers.items()},
        }
