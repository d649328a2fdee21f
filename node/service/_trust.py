"""NodeService's part for trust updates: key rotation and revocation (docs/key-rotation.md).

Announcing this node's own update (checked as a peer will check it, logged,
applied, new keys installed) and accepting the peers' (verified, logged,
applied; the same again changes nothing; a different one under a held
serial is evidence). The checks themselves are node/trust/_updates.py.
"""

from __future__ import annotations

from typing import Any

import structlog

from node.clock import iso
from node.errors import RefusedOperation, TrustUpdateRejected
from node.ids import Country
from node.service._context import ServiceContext
from node.service._rotation import install, pending_signers
from node.trust import peek, verify_update

log = structlog.get_logger("ewx.node")


class TrustUpdating:
    """This node's trust updates and its peers'."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def announce_trust_update(self, envelope: bytes) -> dict[str, Any]:
        """Adopt one of this node's own trust updates, endorsed by its CA, and send it to the peers.

        Checked exactly as a peer will check it, logged as TRUST_UPDATE_SENT
        and applied in one commit; then a granted key waiting as `.next`
        becomes the signing key, and the delivery loops announce the update
        before any alert the new key signs.
        """
        now = self.ctx.clock()
        try:
            v = verify_update(
                envelope, trust=self.ctx.trust, at=now, peer=self.ctx.me, max_skew=self.ctx.max_skew
            )
        except TrustUpdateRejected as exc:
            raise RefusedOperation(f"trust update refused: {exc}") from None
        new_signers = pending_signers(self.ctx.config, v.trust, v.grants)
        with self.ctx.store.transaction() as tx:
            index = tx.append_log(self.ctx.entry("TRUST_UPDATE_SENT", now, peer=None, trust_update=envelope))
            tx.add_trust_update(
                member=self.ctx.me, serial=v.serial, envelope=envelope, log_index=index, at=iso(now)
            )
        self.ctx.trust = v.trust
        install(self.ctx.config, new_signers, retiring=self.ctx.signers)
        self.ctx.signers = {**self.ctx.signers, **new_signers}
        unusable = [
            purpose
            for purpose, signer in self.ctx.signers.items()
            if (entry := self.ctx.trust.key(signer.key_id)) is None or not entry.valid_at(now)
        ]
        log.info(
            "trust_update_announced",
            node=self.ctx.me,
            serial=v.serial,
            granted=list(v.grants),
            revoked_keys=list(v.revoked_keys),
            revoked_certificates=[format(n, "x") for n in v.revoked_certificates],
            now_signing={p: signer.key_id for p, signer in self.ctx.signers.items()},
        )
        if self.ctx.on_outbox is not None:
            for peer in self.ctx.peers:
                self.ctx.on_outbox(peer)
        return {
            "serial": v.serial,
            "granted": list(v.grants),
            "revoked_keys": list(v.revoked_keys),
            "revoked_certificates": [format(n, "x") for n in v.revoked_certificates],
            "signing_keys": {p: signer.key_id for p, signer in self.ctx.signers.items()},
            "unusable_signing_keys": unusable,
        }

    def accept_trust_update(self, peer: Country, envelope: bytes, *, relayed: bool = False) -> int:
        """Verify, log and apply a trust update from `peer`; returns the serial now held of its member.

        Directly (UpdateTrust) only the member itself may hand over its
        update. `relayed` (catch-up through the third node) lets `peer` carry
        another member's: an update is self-authenticating (the member's key
        and its national CA), and the serial chain stops reordering. The same
        update again changes nothing; another under a serial already held is
        kept as evidence and refused; one that skips a serial is refused with
        the serial to resume from.
        """
        message_id: str | None = None
        try:
            member, serial = peek(envelope)
            message_id = f"{member}-trust-{serial}"
            if member != peer and not relayed:
                raise TrustUpdateRejected(
                    f"peer {peer} announced a trust update of {member}: only {member} may"
                )
            if member == self.ctx.me:
                raise TrustUpdateRejected(f"peer {peer} handed over a trust update of this node's own")
            held = self.ctx.trust.serial_of(member)
            if serial <= held:
                kept = next(
                    (e for _, _, e in self.ctx.store.trust_updates(member, after_serial=serial - 1)), None
                )
                if kept == envelope:
                    return held
                self.ctx.store.add_evidence(
                    kind="trust_update_conflict",
                    peer=peer,
                    origin=member,
                    alert_id=message_id,
                    detail=f"a second trust update {serial} of {member}",
                    kept=(kept or b"").hex(),
                    conflicting=envelope,
                    at=iso(self.ctx.clock()),
                )
                raise TrustUpdateRejected(f"{member} already announced a different trust update {serial}")
            now = self.ctx.clock()
            v = verify_update(
                envelope,
                trust=self.ctx.trust,
                at=now,
                peer=None if relayed else peer,
                max_skew=self.ctx.max_skew,
            )
        except TrustUpdateRejected as exc:
            self.ctx.refused(exc, peer=peer, alert_id=message_id, data=envelope)
            raise
        with self.ctx.store.transaction() as tx:
            index = tx.append_log(
                self.ctx.entry("TRUST_UPDATE_RECEIVED", now, peer=peer, trust_update=envelope)
            )
            tx.add_trust_update(
                member=member, serial=v.serial, envelope=envelope, log_index=index, at=iso(now)
            )
        self.ctx.trust = v.trust
        log.info(
            "trust_update_accepted",
            node=self.ctx.me,
            peer=peer,
            member=member,
            serial=v.serial,
            relayed=relayed,
            granted=list(v.grants),
            revoked_keys=list(v.revoked_keys),
            revoked_certificates=[format(n, "x") for n in v.revoked_certificates],
        )
        return v.serial

    def trust_updates_of(self, member: Country, after_serial: int = 0) -> list[tuple[int, bytes]]:
        """`member`'s trust updates this node holds after `after_serial`, in serial order."""
        return [(n, e) for _, n, e in self.ctx.store.trust_updates(member, after_serial=after_serial)]
