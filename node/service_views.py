"""NodeService's part for the operator's views: alerts, one alert, status."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from node import limits
from node.clock import iso
from node.convert import alert_from_bytes
from node.errors import RefusedOperation
from node.ews.bands import exposure_summary
from node.ids import Country
from node.models import Alert
from node.service_state import ServiceState
from node.store import StoredAlert
from node.wire import ewx_pb2 as pb


class Views(ServiceState):
    """What `ewx alert list`, `alert show` and `status` show."""

    def _decode(self, stored: StoredAlert) -> Alert:
        return alert_from_bytes(pb.SignedAlert.FromString(stored.envelope).alert)

    def list_alerts(self) -> list[dict[str, Any]]:
        """Own and received alerts with their delivery and acknowledgement state."""
        now = self.clock()
        rows = self.store.alerts()
        decoded = [(row, self._decode(row)) for row in rows]
        followups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row, alert in decoded:
            for ref in alert.references:
                followups.setdefault((ref.origin, ref.alert_id), []).append(
                    {
                        "origin": row.origin,
                        "alert_id": row.alert_id,
                        "msg_type": alert.msg_type,
                        "reason": alert.reason,
                    }
                )
        exposures = self.store.exposures()
        outbox: dict[tuple[str, str], dict[str, Any]] = {}
        for ob in self.store.outbox():
            outbox[(ob.alert_id, ob.recipient)] = {
                "seq": ob.seq,
                "delivered_at": ob.delivered_at,
                "attempts": ob.attempts,
                "last_error": ob.last_error,
            }
        result = []
        for row, alert in decoded:
            follow = followups.get((row.origin, row.alert_id), [])
            state = "active"
            if any(f["msg_type"] == "CANCEL" for f in follow):
                state = "cancelled"
            elif any(f["msg_type"] == "UPDATE" for f in follow):
                state = "updated"
            elif alert.info is not None and alert.info.expires <= now:
                state = "expired"
            item: dict[str, Any] = {
                "alert_id": row.alert_id,
                "origin": row.origin,
                "msg_type": alert.msg_type,
                "status": alert.status,
                "sent": iso(alert.sent),
                "direction": "sent" if row.via is None else "received",
                "via": row.via,
                "received_at": row.received_at,
                "log_index": row.log_index,
                "digest": row.digest.hex(),
                "state": state,
                "references": [{"origin": r.origin, "alert_id": r.alert_id} for r in alert.references],
                "acknowledged_by": sorted({f["origin"] for f in follow if f["msg_type"] == "ACK"}),
                "responses": follow,
                "deliveries": {
                    d.recipient: {"seq": d.seq, **outbox.get((row.alert_id, d.recipient), {})}
                    if row.via is None
                    else {"seq": d.seq}
                    for d in alert.deliveries
                },
            }
            if alert.info is not None:
                item.update(
                    category=alert.info.category,
                    severity=alert.info.severity,
                    headline=alert.info.headline,
                    expires=iso(alert.info.expires),
                    items=[i.hs_code for i in alert.info.items],
                )
            if alert.reason is not None:
                item["reason"] = alert.reason
            if row.via is not None and alert.info is not None:
                kept = exposures.get((row.origin, row.alert_id))
                item["local_exposure"] = exposure_summary(json.loads(kept) if kept else None)
            result.append(item)
        return result

    def show(self, origin: Country, alert_id: str) -> dict[str, Any]:
        """One stored alert in full, as JSON-ready data."""
        stored = self.store.alert(origin, alert_id)
        if stored is None:
            raise RefusedOperation(f"no alert {alert_id} from {origin} is known to {self.me}")
        data: dict[str, Any] = self._decode(stored).model_dump(mode="json", exclude_none=True)
        data["digest"] = stored.digest.hex()
        data["log_index"] = stored.log_index
        if stored.via is not None and "info" in data:
            kept = self.store.exposure(origin, alert_id)
            # This node's own data, shown here only: it is in no message and no log entry.
            data["local_exposure"] = json.loads(kept) if kept else None
        return data

    def alert_scope(self, origin: str, alert_id: str) -> tuple[list[str], list[str]] | None:
        """A stored alert's HS codes and source countries, None if it has no info block."""
        stored = self.store.alert(origin, alert_id)  # type: ignore[arg-type]
        if stored is None:
            return None
        info = self._decode(stored).info
        if info is None:
            return None
        return [i.hs_code for i in info.items], list(info.source_countries)

    def record_exposure(self, origin: str, alert_id: str, body: str) -> None:
        """Keep the local exposure computed for a peer alert."""
        self.store.set_exposure(origin, alert_id, body, iso(self.clock()))  # type: ignore[arg-type]

    def _signing_key_status(self, now: datetime) -> dict[str, Any]:
        """Per purpose: the key this node signs with, until when, and whether to rotate it soon."""
        keys: dict[str, Any] = {}
        for purpose, signer in self.signers.items():
            entry = self.trust.key(signer.key_id)
            if entry is None:
                continue
            ends = min(entry.not_after, entry.revoked_from or entry.not_after)
            days_left = (ends - now).total_seconds() / 86400
            keys[purpose] = {
                "key_id": signer.key_id,
                "valid_until": iso(ends),
                "days_left": round(days_left, 1),
                "usable": entry.valid_at(now),
                "expiring_soon": days_left < limits.CERTIFICATE_WARNING_DAYS,
            }
        return keys

    def status(self) -> dict[str, Any]:
        """Per peer: reachability, sequences, backlog; and the log's size and root."""
        now = self.clock()
        peers: dict[str, Any] = {}
        cosigned = self.store.cosigned()
        for peer in self.peers:
            backlog = self.store.backlog(peer)
            link = self.links[peer]
            oldest = None
            if backlog.oldest is not None:
                oldest = (now - datetime.fromisoformat(backlog.oldest.created_at)).total_seconds()
            peers[peer] = {
                "reachable": link.reachable,
                "last_ok": iso(link.last_ok) if link.last_ok else None,
                "last_error": link.last_error or (backlog.oldest.last_error if backlog.oldest else None),
                "last_seq_sent": self.store.last_seq(self.me, peer),
                "last_seq_delivered": backlog.last_delivered,
                "last_seq_received": self.store.last_seq(peer, self.me),
                "backlog": backlog.waiting,
                "oldest_undelivered_seconds": oldest,
                "last_checkpoint_cosigned": cosigned.get(peer),
            }
        certificate = self.certificate_in_use() if self.certificate_in_use else self.config.tls_certificate()
        days_left = (certificate.not_valid_after_utc - now).total_seconds() / 86400
        return {
            "node": self.me,
            "time": iso(now),
            "certificate": {
                "not_after": iso(certificate.not_valid_after_utc),
                "days_left": round(days_left, 1),
                "expiring_soon": days_left < limits.CERTIFICATE_WARNING_DAYS,
            },
            "signing_keys": self._signing_key_status(now),
            "log": {
                "size": self.store.log_size,
                "root": self.store.log_root().hex(),
                "published_size": min((cosigned.get(p, 0) for p in self.peers), default=0),
            },
            "evidence": self.store.count("evidence"),
            "trust_updates": {member: self.trust.serial_of(member) for member in self.trust.countries},
            "peers": peers,
        }
