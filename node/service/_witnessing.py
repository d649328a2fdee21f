"""NodeService's part for the exchange log's checkpoints (SPEC section 5).

Signing checkpoints at a cadence, asking the peers to witness them and
keeping their cosignatures, witnessing the peers' logs (C2SP tlog-witness,
verify and persist before cosigning), and comparing the checkpoints peers
gossip on every delivery with what this node witnessed.
"""

from __future__ import annotations

import structlog

from node.checks import (
    SizeMismatch,
    WitnessState,
    add_cosignature,
    open_log_checkpoint,
    verify_witness_cosignature,
)
from node.checks import build_request as build_witness_request
from node.checks import witness as witness_checkpoint
from node.clock import iso
from node.crypto import EMPTY_ROOT, Checkpoint, sign_checkpoint
from node.digits import is_ascii_digits
from node.errors import BadSignature, InboundRejected, Malformed, NoteError, RefusedOperation
from node.ids import Country
from node.service._context import ServiceContext
from node.service._rejoin import Rejoining

log = structlog.get_logger("ewx.node")


class Witnessing:
    """Checkpoints, cosignatures, witnessing and gossip."""

    def __init__(self, ctx: ServiceContext, history: Rejoining) -> None:
        self.ctx = ctx
        self.history = history

    def issue_checkpoint(self) -> tuple[int, str] | None:
        """Sign a checkpoint of the log if it grew since the last one; (size, note)."""
        size = self.ctx.store.log_size
        latest = self.ctx.store.latest_checkpoint()
        if size == 0 or (latest is not None and latest[0] >= size):
            return None
        root = self.ctx.store.log_root()
        origin = self.ctx.config.log_origin
        note = sign_checkpoint(
            Checkpoint(origin=origin, size=size, root_hash=root),
            name=origin,
            private_key=self.ctx.signers["log"].private_key,
        )
        with self.ctx.store.transaction() as tx:
            tx.add_checkpoint(size=size, root=root, note=note, at=iso(self.ctx.clock()))
        log.info("checkpoint_signed", node=self.ctx.me, size=size, root=root.hex())
        return size, note

    def witness_request(self, peer: Country, *, old_size: int | None = None) -> tuple[int, str] | None:
        """(size, C2SP add-checkpoint body) asking `peer` to cosign our latest checkpoint.

        None when there is nothing new for that peer to cosign. `old_size`
        overrides what we believe the peer last cosigned (after it said so).
        """
        latest = self.ctx.store.latest_checkpoint()
        if latest is None or self.ctx.store.old_log_size(peer) is not None:
            # The peer's witness holds the log lost before a re-join, which this
            # one does not extend: it would refuse, or at one size keep a fork.
            return None
        size, _root, note = latest
        old = self.ctx.store.cosigned().get(peer, 0) if old_size is None else old_size
        if old >= size and old_size is None:
            return None
        if old > size:
            raise RefusedOperation(f"{peer} claims to have cosigned size {old}, beyond our log ({size})")
        proof = self.ctx.store.consistency_proof(old, size)
        return size, build_witness_request(old_size=old, proof=proof, signed_checkpoint=note)

    def history_probe(self, peer: Country) -> tuple[int, str]:
        """(old size, add-checkpoint body) asking `peer` to cosign again what it last cosigned of our log.

        The peer answers with its own size when it differs (size_mismatch),
        which is how a node on a store that lost its history learns that the
        peer cosigned more of its log than the store holds. An unchanged
        checkpoint is cosigned again and changes nothing at the peer; on an
        empty store the probe is the empty tree, which every log extends.
        """
        old = self.ctx.store.cosigned().get(peer, 0)
        stored = self.ctx.store.checkpoint_at(old) if old else None
        if stored is not None:
            note = stored[1]
        else:
            old = 0
            origin = self.ctx.config.log_origin
            note = sign_checkpoint(
                Checkpoint(origin=origin, size=0, root_hash=EMPTY_ROOT),
                name=origin,
                private_key=self.ctx.signers["log"].private_key,
            )
        return old, build_witness_request(old_size=old, proof=[], signed_checkpoint=note)

    def proves_own_size(self, note: str | None, size: int) -> bool:
        """Whether `note` is this node's checkpoint at `size`, signed by one of its own log keys."""
        opened = None if note is None else open_log_checkpoint(note, node=self.ctx.me, trust=self.ctx.trust)
        return opened is not None and opened[0].size == size

    def check_witness_size(self, peer: Country, witness_size: int, note: str | None) -> bool:
        """Whether `peer`'s size of our log is within the store; if proven beyond, note the history as missing.

        A size beyond the store counts only with `note`, the checkpoint at that
        size signed by our own log key, which the peer keeps from cosigning it:
        a peer's bare word could otherwise stop this node publishing.
        """
        size = self.ctx.store.log_size
        if witness_size <= size or witness_size == self.ctx.store.old_log_size(peer):
            return True  # within the store, or the lost log's size, which a re-join took note of
        if not self.proves_own_size(note, witness_size):
            log.warning(
                "witness_size_unproven",
                node=self.ctx.me,
                peer=peer,
                reason="no_signed_checkpoint" if note is None else "bad_signed_checkpoint",
                message_id=f"{self.ctx.me}-checkpoint-{witness_size}",
                witness_size=witness_size,
                log_size=size,
            )
            return False
        self.history.note_history_missing(
            peer,
            f"a checkpoint of {self.ctx.me}'s log at size {witness_size} that it cosigned, "
            f"beyond this store's log of {size} entries",
            evidence="witness_size",
        )
        return False

    def record_cosignature(self, peer: Country, size: int, cosignature: str) -> None:
        """Verify `peer`'s cosignature on our checkpoint at `size` and keep it."""
        stored = self.ctx.store.checkpoint_at(size)
        if stored is None:
            raise RefusedOperation(f"no own checkpoint at size {size}")
        root, note = stored
        try:
            cosigned_note = add_cosignature(note, cosignature)
        except NoteError as exc:
            raise Malformed(
                f"cosignature from {peer} on checkpoint {size} is not a signature line: {exc}"
            ) from None
        checkpoint = Checkpoint(origin=self.ctx.config.log_origin, size=size, root_hash=root)
        if (
            verify_witness_cosignature(
                cosigned_note, witness_node=peer, trust=self.ctx.trust, checkpoint=checkpoint
            )
            is None
        ):
            raise BadSignature(f"cosignature from {peer} on checkpoint {size} does not verify")
        with self.ctx.store.transaction() as tx:
            tx.set_checkpoint_note(size, cosigned_note)
            tx.set_cosigned(peer, size, iso(self.ctx.clock()))
        log.info("checkpoint_cosigned", node=self.ctx.me, peer=peer, size=size)

    def witness(self, peer: Country, body: str) -> str:
        """Act as witness for `peer`'s log: verify, persist, then cosign.

        The new state is committed before the cosignature is returned, so a
        crash can never let this witness cosign two inconsistent checkpoints.
        """
        held = self.ctx.store.witness_state(peer)
        state = None if held is None else WitnessState(origin=held[0], size=held[1], root_hash=held[2])
        try:
            result = witness_checkpoint(
                body,
                log_node=peer,
                state=state,
                trust=self.ctx.trust,
                signer=self.ctx.signers["witness"],
                me=self.ctx.me,
                now=int(self.ctx.clock().timestamp()),
                previous_note=None if held is None else held[3],
            )
        except InboundRejected as exc:
            if isinstance(exc, SizeMismatch) and held is not None and held[1] == exc.witness_size:
                exc.witness_note = held[3]
            evidence = getattr(exc, "evidence", None)
            if evidence:
                self.ctx.store.add_evidence(
                    kind="checkpoint_fork",
                    peer=peer,
                    origin=peer,
                    alert_id=None,
                    detail=str(exc),
                    kept=evidence[0],
                    conflicting=evidence[1].encode(),
                    at=iso(self.ctx.clock()),
                )
                log.error("checkpoint_fork", node=self.ctx.me, peer=peer, detail=str(exc))
            log.warning(
                "witness_refused",
                node=self.ctx.me,
                peer=peer,
                reason=exc.reason,
                message_id=_checkpoint_id(body),
                error=str(exc),
            )
            exc.logged = True
            raise
        new = result.state
        with self.ctx.store.transaction() as tx:
            tx.set_witness_state(
                log_node=peer,
                origin=new.origin,
                size=new.size,
                root=new.root_hash,
                note=add_cosignature(result.note_text, result.cosignature),
                at=iso(self.ctx.clock()),
            )
        log.info("checkpoint_witnessed", node=self.ctx.me, peer=peer, size=new.size)
        return result.cosignature

    def gossip_checkpoint(self) -> str:
        """Our latest checkpoint with its cosignatures, carried on every delivery and receipt.

        None after a re-join: the peers hold checkpoints of the lost log
        under the same origin, and one of the new log at a size they
        witnessed would read to them as a split view.
        """
        latest = self.ctx.store.latest_checkpoint()
        if latest is None or self.ctx.store.rejoined():
            return ""
        return latest[2]

    def check_gossip(self, peer: Country, note: str) -> None:
        """Compare a peer's gossiped checkpoint with what this node witnessed of its log.

        Never refuses the call that carried it: a conflict is kept as evidence
        (a split view: the peer showed two different trees of one size) and
        raised to the operator; an unverifiable note is logged and ignored.
        The same note gossiped again is not checked again (it rides on every
        delivery, so this is on the hot path).
        """
        if not note or self.ctx.gossip_seen.get(peer) == note:
            return
        opened = open_log_checkpoint(note, node=peer, trust=self.ctx.trust)
        if opened is None:
            log.warning("gossip_unverifiable", node=self.ctx.me, peer=peer)
            return
        checkpoint = opened[0]
        self.ctx.gossip_seen[peer] = note
        for root, kept in self.ctx.store.witnessed_at(peer, checkpoint.size):
            if root != checkpoint.root_hash:
                detail = f"{peer} gossiped a checkpoint at size {checkpoint.size} with another root than it had cosigned"
                self.ctx.store.add_evidence(
                    kind="split_view",
                    peer=peer,
                    origin=peer,
                    alert_id=None,
                    detail=detail,
                    kept=kept,
                    conflicting=note.encode(),
                    at=iso(self.ctx.clock()),
                )
                log.error("split_view", node=self.ctx.me, peer=peer, size=checkpoint.size)
                return


def _checkpoint_id(body: str) -> str | None:
    """`<origin>@<size>` of the checkpoint a witness request claims, for the log (unverified)."""
    note = body.partition("\n\n")[2].splitlines()
    if len(note) < 2 or not is_ascii_digits(note[1]):
        return None
    return f"{note[0][:80]}@{note[1][:20]}"
