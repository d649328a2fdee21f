"""The node service's part for what goes out: the outbox, the peers' receipts, catch-up served.

The gateway drains `pending` towards each peer and hands back each receipt
(`accept_receipt`, verified and logged before the outbox row is marked);
`catch_up` serves a peer the page of an origin's alerts addressed to it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import structlog

from node import limits
from node.checks import verify_receipt
from node.clock import iso
from node.crypto import (
    PAYLOAD_ALERT,
)
from node.errors import (
    SchemaViolation,
)
from node.ids import Country
from node.message import (
    Receipt,
    encode,
    pb,
)
from node.service._context import ServiceContext
from node.service._log_runs import Position, log_run

log = structlog.get_logger("ewx.node")


class Outbox:
    """What goes out to each peer: the outbox, the peers' receipts for it, catch-up pages served."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def accept_receipt(self, peer: Country, envelope: bytes) -> Receipt:
        """Verify and log `peer`'s receipt for one of our alerts; idempotent."""
        return self.accept_receipts(peer, [envelope])[0]

    def accept_receipts(self, peer: Country, envelopes: Sequence[bytes]) -> list[Receipt]:
        """Verify and log `peer`'s receipts for our alerts, in one commit; idempotent.

        All or nothing: a receipt that fails its checks refuses the whole call
        (SchemaViolation or the verification's refusal) and logs none of them.
        """
        now = self.ctx.clock()
        receipts = [
            verify_receipt(envelope, trust=self.ctx.trust, receiver=peer, origin=self.ctx.me, now=now).receipt
            for envelope in envelopes
        ]
        logged: list[tuple[Receipt, int]] = []
        with self.ctx.store.transaction() as tx:
            for receipt, envelope in zip(receipts, envelopes, strict=True):
                row = tx.outbox_row(peer, receipt.seq)
                own = tx.alert(self.ctx.me, receipt.alert_id)
                if row is None or own is None or row.alert_id != receipt.alert_id:
                    raise SchemaViolation(
                        f"receipt from {peer} names {receipt.alert_id} at sequence "
                        f"{receipt.seq}, which {self.ctx.me} never sent there"
                    )
                if own.digest != receipt.alert_digest:
                    raise SchemaViolation(f"receipt from {peer} for {receipt.alert_id} has another digest")
                if row.delivered_at is not None:
                    continue
                index = tx.append_log(self.ctx.entry("RECEIPT_RECEIVED", now, peer=peer, receipt=envelope))
                tx.mark_delivered(
                    recipient=peer, seq=receipt.seq, receipt=envelope, log_index=index, at=iso(now)
                )
                logged.append((receipt, index))
        _log_receipts(logged, node=self.ctx.me, peer=peer)
        if self.ctx.on_receipt is not None:
            for receipt, _ in logged:
                self.ctx.on_receipt(peer, receipt)
        return receipts

    def pending(self, peer: Country, limit: int = 100, *, after_seq: int = 0) -> list[tuple[int, str, bytes]]:
        """(seq, alert id, envelope) of own alerts `peer` has not receipted yet, above `after_seq`."""
        rows = self.ctx.store.pending(self.ctx.me, peer, limit, after_seq=after_seq)
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
        signer = self.ctx.signers["alert"]
        now = functools.cache(self.ctx.clock)
        out: list[bytes] = []
        renewed: list[tuple[str, bytes]] = []
        for alert_id, envelope in alerts:
            outer = pb.SignedAlert.FromString(envelope)
            entry = None if outer.key_id == signer.key_id else self.ctx.trust.key(outer.key_id)
            if entry is None or entry.valid_at(now()):
                out.append(envelope)  # signed by the current key, or one still valid
                continue
            current = self.ctx.trust.key(signer.key_id)
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
                node=self.ctx.me,
                alert_id=alert_id,
                old_key=outer.key_id,
                new_key=signer.key_id,
                reason="revoked" if entry.revoked_at(now()) else "expired",
            )
        if renewed and self.ctx.store.writable:  # else the node keeps them when it delivers
            with self.ctx.store.transaction() as tx:
                for alert_id, fresh in renewed:
                    tx.replace_envelope(self.ctx.me, alert_id, fresh)
        return out

    def record_failure(self, peer: Country, seq: int, error: str) -> None:
        """Note a failed delivery attempt in the outbox (shown by status)."""
        self.ctx.store.record_failure(recipient=peer, seq=seq, error=error)

    def undelivered(self, peer: Country) -> list[bytes]:
        """Every own signed alert `peer` has not receipted, in sequence order (offline transfer)."""
        envelopes: list[bytes] = []
        after = 0
        while page := self.ctx.store.pending(self.ctx.me, peer, limits.MAX_CATCHUP_PAGE, after_seq=after):
            envelopes.extend(self._deliverable([(alert_id, env) for _, alert_id, env in page]))
            after = page[-1][0]
        return envelopes

    def catch_up(self, *, requester: Country, origin: Country, after_seq: int, limit: int) -> list[bytes]:
        """Signed alerts of `origin` addressed to `requester`, after `after_seq`.

        Only alerts addressed to the requester are ever returned: an alert
        never reaches a node it was not addressed to (SPEC section 4). With
        `origin` the requester itself: its own alerts addressed to this node,
        after `after_seq` towards this node.
        """
        page = max(1, min(limit or limits.MAX_CATCHUP_PAGE, limits.MAX_CATCHUP_PAGE))
        if origin == requester and origin != self.ctx.me:
            # The requester's own alerts addressed to this node: it signed them, so
            # nothing reaches a node that did not already have it. A node on an
            # empty store learns from this what it sent before (issue 10, item 2).
            own = self.ctx.store.envelopes_for(
                origin=origin, recipient=self.ctx.me, after_seq=after_seq, limit=page
            )
            return [env for _, _, env in own]
        found = self.ctx.store.envelopes_for(
            origin=origin, recipient=requester, after_seq=after_seq, limit=page
        )
        if origin != self.ctx.me:
            return [env for _, _, env in found]  # relayed as signed: only the origin may re-sign
        return self._deliverable([(alert_id, env) for _, alert_id, env in found])


def _log_receipts(logged: Sequence[tuple[Receipt, int]], *, node: Country, peer: Country) -> None:
    """One event a commit (node/service/_log_runs.py): `receipt_logged` for one receipt, else
    one `receipts_logged`. A window's answers are taken a commit at a time: a line a receipt
    was 20,000 lines for 20,000 alerts over the 150 ms link (issue 15; no CPU saving could be
    told from the host's noise, the receipt's verify dominates). Its seqs rise but may skip one
    receipted before, which the count shows."""
    if not logged:
        return
    first, last = (Position(r.alert_id, r.seq, index) for r, index in (logged[0], logged[-1]))
    log_run(
        log,
        one="receipt_logged",
        many="receipts_logged",
        first=first,
        last=last,
        count=len(logged),
        single=True,
        node=node,
        peer=peer,
    )
