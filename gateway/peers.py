"""Clients to the peers, and the delivery loop that drains the durable outbox.

One loop per peer pushes that peer's undelivered alerts in sequence order.
A receipt is verified and logged before the next alert goes; a failure backs
off exponentially with full jitter up to the configured cap, and the outbox
(in the store) survives restarts, so an alert raised while a peer is down is
delivered when it returns.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError, Message
from grpc import aio

from gateway import rpc
from gateway.delivery_window import BATCH, DeliveryWindow
from gateway.status_map import (
    EXPECTED_SEQ_TRAILER,
    REASON_TRAILER,
    WITNESS_CHECKPOINT_TRAILER,
    WITNESS_SIZE_TRAILER,
)
from gateway.tasks import being_cancelled, cancel_and_wait
from gateway.tls import channel_credentials, channel_options
from node.digits import ascii_int
from node.errors import InboundRejected, Malformed, RefusedOperation, TrustUpdateRejected
from node.ids import Country
from node.limits import (
    MAX_CATCHUP_ITEM_OVERHEAD,
    MAX_CATCHUP_PAGE,
    MAX_CATCHUP_TRUST_UPDATES,
    MAX_ENVELOPE_BYTES,
    MAX_TRUST_UPDATE_BYTES,
    MAX_WITNESS_CHECKPOINT_TRAILER,
)
from node.service import HeldByPeer, LinkState, NodeService
from node.wire import ewx_pb2 as pb

log = structlog.get_logger("ewx.gateway")

BACKOFF_START_SECONDS: Final = 0.2
UNREACHABLE: Final = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
"""A call's codes that say the peer was not reached (any other is the peer's answer)."""
PULL_PAUSE_CHECK_SECONDS: Final = 0.5
M = TypeVar("M", bound=Message)


def _identity(data: bytes) -> bytes:
    return data


class PeerClient:
    """An mTLS channel to one peer with typed calls.

    `renew` swaps in a new channel when the node's certificate is reloaded:
    calls made from then on use the new credentials, and the old channel
    closes once its calls in flight have finished (each has a deadline).
    """

    def __init__(
        self, *, service: NodeService, peer: Country, credentials: grpc.ChannelCredentials | None = None
    ) -> None:
        self.peer = peer
        self._service = service
        self._retiring: dict[asyncio.Task[None], aio.Channel] = {}
        if credentials is None:
            credentials = channel_credentials(config=service.config, trust=service.trust, peer=peer)
        self._open(credentials)

    def _open(self, credentials: grpc.ChannelCredentials) -> None:
        """A new channel with `credentials`, and every call bound to it."""
        self._channel = aio.secure_channel(
            self._service.config.peers[self.peer].address, credentials, options=channel_options(self.peer)
        )
        self._deliver = self._channel.unary_unary(
            rpc.DELIVER, request_serializer=_identity, response_deserializer=_identity
        )
        self._catch_up = self._channel.unary_stream(
            rpc.CATCH_UP, request_serializer=_identity, response_deserializer=_identity
        )
        self._deliver_stream = self._channel.stream_stream(
            rpc.DELIVER_STREAM, request_serializer=_identity, response_deserializer=_identity
        )
        self._add_checkpoint = self._channel.unary_unary(
            rpc.ADD_CHECKPOINT, request_serializer=_identity, response_deserializer=_identity
        )
        self._update_trust = self._channel.unary_unary(
            rpc.UPDATE_TRUST, request_serializer=_identity, response_deserializer=_identity
        )

    async def deliver(self, envelope: bytes, *, checkpoint: str) -> tuple[bytes, str]:
        """Deliver one envelope with our latest cosigned `checkpoint`; returns the peer's
        SignedReceipt bytes and the checkpoint it gossips back.

        Both directions gossip the latest cosigned checkpoint (SPEC section 5),
        so views of each log are compared at no extra round trip. The caller
        takes both into the store (DeliveryLoop, one turn of its thread).
        """
        request = pb.DeliverRequest(envelope=envelope, checkpoint=checkpoint)
        reply = self.answer(
            pb.DeliverResponse,
            await self._deliver(request.SerializeToString(), timeout=self._deadline),
            what="deliver",
        )
        return bytes(reply.receipt), reply.checkpoint

    def open_delivery_stream(self) -> aio.StreamStreamCall[bytes, bytes]:
        """A DeliverStream call (DeliveryWindow writes DeliverRequests and reads the answers),
        with the same deadline as every other call: a window is delivered within it."""
        return self._deliver_stream(None, timeout=self._deadline)

    async def add_checkpoint(self, body: str) -> str:
        """Ask the peer to witness our log; returns its cosignature line."""
        reply = await self._add_checkpoint(
            pb.WitnessRequest(body=body).SerializeToString(), timeout=self._deadline
        )
        return self.answer(pb.WitnessResponse, reply, what="witness").cosignature

    async def update_trust(self, envelope: bytes) -> int:
        """Announce one of our trust updates; returns the serial of ours the peer now holds."""
        reply = await self._update_trust(
            pb.TrustUpdateRequest(update=envelope).SerializeToString(), timeout=self._deadline
        )
        return self.answer(pb.TrustUpdateResponse, reply, what="trust update").held_serial

    async def catch_up(
        self, *, origin: Country, after_seq: int, max_count: int = 0, trust_after: int = 0
    ) -> tuple[list[bytes], list[bytes]]:
        """The peer's page of `origin`'s alerts addressed to us after `after_seq`,
        after `origin`'s trust updates beyond `trust_after`: (updates, envelopes)."""
        request = pb.CatchUpRequest(
            origin=origin, after_seq=after_seq, max_count=max_count, trust_after=trust_after, batched=True
        )
        call = self._catch_up(request.SerializeToString(), timeout=self._deadline)
        updates: list[bytes] = []
        envelopes: list[bytes] = []
        # A peer that ignores max_count, or streams large items, is cut off here:
        # what a page may hold is known before it is read.
        most = max_count or MAX_CATCHUP_PAGE
        budget = most * (MAX_ENVELOPE_BYTES + MAX_CATCHUP_ITEM_OVERHEAD) + MAX_CATCHUP_TRUST_UPDATES * (
            MAX_TRUST_UPDATE_BYTES + MAX_CATCHUP_ITEM_OVERHEAD
        )
        received = 0
        async for data in call:
            received += len(data)
            item = self.answer(pb.CatchUpItem, data, what="catch-up")
            if sum(map(bool, (item.trust_update, item.envelope, item.envelopes))) > 1:
                call.cancel()
                raise Malformed(
                    f"{self.peer}'s catch-up item carries more than one of envelope, trust_update "
                    "and envelopes; page refused whole"
                )
            if item.trust_update:
                updates.append(bytes(item.trust_update))
            elif item.envelopes:
                envelopes.extend(bytes(envelope) for envelope in item.envelopes)
            else:
                envelopes.append(bytes(item.envelope))
            if len(envelopes) > most or len(updates) > MAX_CATCHUP_TRUST_UPDATES or received > budget:
                call.cancel()
                raise Malformed(
                    f"{self.peer}'s catch-up page goes beyond what was asked ({most} alerts, "
                    f"{MAX_CATCHUP_TRUST_UPDATES} trust updates, {budget} bytes); refused whole"
                )
        return updates, envelopes

    @property
    def _deadline(self) -> float:
        return self._service.config.rpc_deadline_seconds

    def answer(self, message_type: type[M], data: bytes, *, what: str) -> M:
        """A peer's reply, decoded; Malformed (never DecodeError) if it is not one."""
        try:
            return message_type.FromString(data)
        except DecodeError:
            raise Malformed(f"{self.peer}'s {what} answer is not a valid protobuf message") from None

    def renew(self, credentials: grpc.ChannelCredentials) -> None:
        """Make new calls over a new channel with `credentials`; retire the old one.

        The old channel accepts no new calls and is closed once the calls in
        flight on it are done (at most the configured RPC deadline: every
        call has it).
        """
        old = self._channel
        self._open(credentials)
        task = asyncio.get_running_loop().create_task(
            old.close(self._deadline), name=f"retire-channel-{self.peer}"
        )
        self._retiring[task] = old
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def close(self) -> None:
        """Close the channel, and at once any channel still being retired."""
        await self._channel.close(None)
        retiring, self._retiring = self._retiring, {}
        await cancel_and_wait(*retiring)  # not suppress(CancelledError): a stop cancelled here stays so
        for channel in retiring.values():
            await channel.close(None)


def trailer(error: aio.AioRpcError, key: str) -> str | None:
    """One trailing metadata value of a failed call."""
    metadata: Any = error.trailing_metadata() or ()  # aio.Metadata; the stubs predate it
    return next((str(v) for k, v in metadata if k == key), None)


def witness_note(error: aio.AioRpcError) -> str | None:
    """The signed checkpoint a witness sent with its size mismatch, or None if absent or not a note's text."""
    value = trailer(error, WITNESS_CHECKPOINT_TRAILER)
    if value is None or len(value) > MAX_WITNESS_CHECKPOINT_TRAILER:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def describe(error: aio.AioRpcError) -> str:
    """A one-line description of a failed call, safe to show the operator."""
    reason = trailer(error, REASON_TRAILER)
    code = error.code().name if error.code() else "UNKNOWN"
    detail = error.details() or ""
    return f"{code}{f' ({reason})' if reason else ''}: {detail}"[:300]


class DeliveryLoop:
    """Drains the outbox towards one peer until stopped."""

    def __init__(self, *, service: NodeService, client: PeerClient) -> None:
        self._service = service
        self._client = client
        self._wake = asyncio.Event()
        self._wake.set()  # drain whatever survived the last run
        self._failures = 0
        self._streaming = True
        """Whether the peer answers DeliverStream; False after it said UNIMPLEMENTED (an older node)."""
        self._trust_held = 0
        """The highest of our trust updates the peer is known to hold (0: not known yet)."""
        self.on_delivered: Callable[[Country, float], None] | None = None
        """Set by the runtime: a delivery's receipt verified and logged, after that many seconds."""

    @property
    def peer(self) -> Country:
        """The peer this loop delivers to."""
        return self._client.peer

    def wake(self) -> None:
        """New work for this peer was committed."""
        self._wake.set()

    def _backoff(self) -> float:
        cap = self._service.config.outbox_retry_max_seconds
        return random.uniform(0, min(cap, BACKOFF_START_SECONDS * 2 ** min(self._failures, 20)))  # noqa: S311

    async def run(self) -> None:
        """Deliver in sequence order; back off on failure; sleep when idle.

        New work wakes an idle loop at once, but never cuts a backoff short:
        a peer that is down is not hammered once per new alert.
        """
        while True:
            if self._failures:
                await asyncio.sleep(self._backoff())
            else:
                await self._wake.wait()
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                if being_cancelled():
                    raise  # the node stops
                # A call was cancelled under the loop, not the loop itself: a failed
                # round like any other, or the outbox to this peer would wait for a restart.
                self._failures += 1
                log.error(
                    "delivery_round_failed",
                    node=self._service.me,
                    peer=self.peer,
                    error="a call was cancelled",
                )
            except Exception:
                # A bug or a peer's answer nobody foresaw: the outbox is durable,
                # so log it and try again after a backoff rather than stop delivering.
                self._failures += 1
                log.exception("delivery_round_failed", node=self._service.me, peer=self.peer)

    async def drain(self) -> bool:
        """Deliver everything pending; True when the outbox is empty."""
        service = self._service
        link = service.link(self.peer)
        announced = False  # our trust updates are offered once a drain, before any alert
        while True:
            # One turn of the store's thread a round, not three: on one alert in
            # flight each turn is a hand-off to the thread and back (issue 15).
            trust_held = None if announced else self._trust_held
            updates, batch, checkpoint = await service.call(_next_round, service, self.peer, trust_held)
            if updates:
                if not await self._announce_trust(updates):
                    return False
                announced = True
                continue
            announced = True
            if not batch:
                break
            if link.is_pulling(time.monotonic()):
                # The peer is catching up by pages; pushing the same alerts one
                # by one would only compete with it. Look again shortly.
                asyncio.get_running_loop().call_later(PULL_PAUSE_CHECK_SECONDS, self.wake)
                return False
            if len(batch) > 1 and self._streaming and service.config.delivery_window > 1:
                # More than one waiting: a window of them in flight on one stream
                # (over a 150 ms round trip, one at a time is 7 alerts a second).
                delivered = await self._deliver_window(link, head=batch[0][:2])
                if delivered is None:
                    self._streaming = False
                elif not delivered:
                    return False
                continue
            for seq, alert_id, envelope in batch:
                try:
                    began = time.monotonic()
                    receipt, gossiped = await self._client.deliver(envelope, checkpoint=checkpoint)
                    await service.call(_take_delivery, service, self.peer, receipt, gossiped)
                    if self.on_delivered is not None:
                        self.on_delivered(self.peer, time.monotonic() - began)
                except aio.AioRpcError as exc:
                    await self._fail(seq, alert_id, describe(exc))
                    return False
                except InboundRejected as exc:
                    await self._fail(seq, alert_id, f"bad receipt ({exc.reason}): {exc}")
                    return False
                self._failures = 0
                link.succeeded(service.clock())
        self._failures = 0  # nothing left to deliver: the next alert goes out at once
        return True

    async def _deliver_window(self, link: LinkState, head: tuple[int, str]) -> bool | None:
        """What is pending, with up to `delivery_window` in flight on one stream (DeliveryWindow).

        True when what was sent was all answered; False after a failure,
        recorded as a Deliver's would be against the first alert left
        unanswered (the retry starts there, and the peer stores a repeated
        one once), or against `head`, the first pending, if none was sent;
        None when the peer has no DeliverStream.
        """
        service = self._service
        window = DeliveryWindow(
            service=service, client=self._client, link=link, on_delivered=self.on_delivered
        )
        try:
            await window.run()
        except aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                log.info("delivery_stream_unavailable", node=service.me, peer=self.peer, error=describe(exc))
                return None
            await self._fail(*(window.first_unanswered() or head), describe(exc))
            return False
        except InboundRejected as exc:
            await self._fail(*(window.first_unanswered() or head), f"bad receipt ({exc.reason}): {exc}")
            return False
        self._failures = 0
        return True

    async def _announce_trust(self, updates: list[tuple[int, bytes]]) -> bool:
        """Send the peer our trust updates it lacks (`updates`: serial, envelope, in order), before
        any alert a new key signs."""
        service = self._service
        for serial, envelope in updates:
            try:
                self._trust_held = max(self._trust_held, await self._client.update_trust(envelope))
            except aio.AioRpcError as exc:
                expected = trailer(exc, EXPECTED_SEQ_TRAILER)
                if (
                    exc.code() == grpc.StatusCode.FAILED_PRECONDITION
                    and (held := ascii_int(expected or "")) is not None
                ):
                    # The peer lacks an earlier one: start again from there.
                    self._trust_held = held - 1
                await self._fail(None, f"{service.me}-trust-{serial}", describe(exc))
                return False
            except Malformed as exc:
                await self._fail(None, f"{service.me}-trust-{serial}", str(exc))
                return False
        return True

    async def _fail(self, seq: int | None, message_id: str, error: str) -> None:
        """Count a failed delivery; `seq` None for a trust update (it has no outbox row)."""
        self._failures += 1
        self._service.link(self.peer).failed(self._service.clock(), error)
        if seq is not None:
            await self._service.call(self._service.record_failure, self.peer, seq, error)
        log.warning(
            "delivery_failed",
            node=self._service.me,
            peer=self.peer,
            alert_id=message_id,  # or <CC>-trust-<serial> for a trust update
            seq=seq,
            error=error,
            attempt=self._failures,
        )


def _next_round(
    service: NodeService, peer: Country, trust_held: int | None
) -> tuple[list[tuple[int, bytes]], list[tuple[int, str, bytes]], str]:
    """What a delivery round needs of the store, in one turn of its thread: our trust updates
    after `trust_held` (None: not looked for) if there are any (they go first, and the batch
    is read in the round after them: reading it re-signs what waits under a key the peer is
    about to learn is revoked), else the next batch pending for `peer` and the checkpoint to
    gossip with it (it changes at the checkpoint cadence, not per alert)."""
    updates = [] if trust_held is None else service.trust_updates_of(service.me, trust_held)
    if updates:
        return updates, [], ""
    return [], service.pending(peer, BATCH), service.gossip_checkpoint()


def _take_delivery(service: NodeService, peer: Country, receipt: bytes, gossiped: str) -> None:
    """A Deliver's answer in one turn of the store's thread: the peer's gossip, then its receipt."""
    service.check_gossip(peer, gossiped)
    service.accept_receipt(peer, receipt)


async def pull(client: PeerClient, service: NodeService, *, origin: Country | None = None) -> int:
    """Fetch `origin`'s alerts addressed to us that we lack, from this peer, in order.

    With `origin` None (or the peer itself) this is catch-up from the origin:
    pushing is the normal path, and this closes the gap after this node was
    down; it doubles as the link's liveness probe. With another origin it is
    relay: the third node serves only signed alerts addressed to us, each
    verified against its origin's signature like any other (SPEC section 4).
    Pages of at most MAX_CATCHUP_PAGE are stored in turns of the store's
    thread, and the next page is asked for while one is stored; no more than
    that is asked ahead (backpressure).
    Returns how many new alerts were stored.
    """
    peer = client.peer
    source = origin or peer
    direct = source == peer
    try:
        return await _pull_pages(client, service, source=source, direct=direct)
    finally:
        if direct:
            service.link(peer).catching_up = None


async def _pull_pages(client: PeerClient, service: NodeService, *, source: Country, direct: bool) -> int:
    """pull's loop over the pages (see pull).

    The next page is asked for while this one is stored: a page's alerts run
    from `after` + 1 in sequence order, so the next one starts after them.
    Should the store end elsewhere (a refusal, or pushes that stored part of
    the page meanwhile) that request is dropped and the next asked from
    where the store is. At most two pages are held: one stored, one coming.
    """
    peer = client.peer
    stored = 0

    def fetch(after: int) -> asyncio.Task[tuple[list[bytes], list[bytes]]]:
        return asyncio.create_task(
            client.catch_up(
                origin=source,
                after_seq=after,
                max_count=service.config.catchup_page_requested,
                trust_after=service.trust.serial_of(source),
            ),
            name=f"catch-up-page-{peer}-{source}",
        )

    coming: asyncio.Task[tuple[list[bytes], list[bytes]]] | None = None
    try:
        after = await service.call(service.last_seq, source, service.me)
        coming = fetch(after)
        while True:
            updates, page = await coming
            coming = None
            for update in updates:
                await service.call(service.accept_trust_update, peer, update, relayed=not direct)
            if not page:
                break
            expected = after + len(page)
            coming = fetch(expected)  # trust updates taken first: it asks from the serial now held
            stored += await service.store_page(page, peer=peer, direct=direct)
            # Pushes from the origin may have stored part of this page meanwhile;
            # what counts is progress. None at all means a refusal: stop, not spin.
            reached = await service.call(service.last_seq, source, service.me)
            if reached <= after:
                break
            if direct:
                service.link(peer).caught_up_to(after + 1, reached)  # shown by `ewx status`
            if reached != expected:
                await cancel_and_wait(coming)
                coming = fetch(reached)
            after = reached
    except aio.AioRpcError as exc:
        if direct:
            service.link(peer).failed(service.clock(), describe(exc))
        return stored
    except (Malformed, TrustUpdateRejected) as exc:  # a refused update is logged by the core too
        log.warning(
            "catch_up_failed", node=service.me, peer=peer, origin=source, reason=exc.reason, error=str(exc)
        )
        if direct:
            service.link(peer).failed(service.clock(), str(exc))
        return stored
    finally:
        if coming is not None:
            await cancel_and_wait(coming)
    if direct:
        service.link(peer).succeeded(service.clock())
    if stored:
        log.info("caught_up", node=service.me, peer=peer, origin=source, stored=stored, relay=not direct)
    return stored


async def get_cosigned(client: PeerClient, service: NodeService) -> bool:
    """Have the peer witness our latest checkpoint; True if it cosigned (or had nothing new).

    On a size mismatch the peer tells us the size it last cosigned (C2SP
    tlog-witness 409, here ABORTED with the `ewx-witness-size` trailer), and
    one retry with a proof from that size follows. The call tells the link's
    health too: while a peer's pushes reach us our log grows and is witnessed
    each interval, but the periodic pull, the link's other probe, waits.
    """
    peer = client.peer
    request = await service.call(service.witness_request, peer)
    for _attempt in range(2):
        if request is None:
            return True
        size, body = request
        try:
            cosignature = await client.add_checkpoint(body)
            service.link(peer).succeeded(service.clock())
            await service.call(service.record_cosignature, peer, size, cosignature)
            return True
        except aio.AioRpcError as exc:
            witness_size = trailer(exc, WITNESS_SIZE_TRAILER)
            if exc.code() == grpc.StatusCode.ABORTED and (old := ascii_int(witness_size or "")) is not None:
                if not await service.call(service.check_witness_size, peer, old, witness_note(exc)):
                    return False
                request = await service.call(service.witness_request, peer, old_size=old)
                continue
            if exc.code() in UNREACHABLE:
                service.link(peer).failed(service.clock(), describe(exc))
            log.warning("witness_failed", node=service.me, peer=peer, size=size, error=describe(exc))
            return False
        except (InboundRejected, RefusedOperation) as exc:
            log.warning("witness_failed", node=service.me, peer=peer, size=size, error=str(exc))
            return False
    return False


async def check_history(client: PeerClient, service: NodeService) -> bool:
    """Ask the peer what it holds of this node's own history; True once it has answered.

    Two questions, over RPCs the peer serves anyway: its size of our log (a
    witness request for what it last cosigned, which it answers with its own
    size when that differs) and our own alerts addressed to it beyond our
    last sequence there (CatchUp with ourselves as origin). Either beyond
    the store puts the node in the history-missing state (NodeService
    .take_history_answer), in which it refuses to publish.
    """
    peer = client.peer
    old, body = await service.call(service.history_probe, peer)
    try:
        await client.add_checkpoint(body)
    except aio.AioRpcError as exc:
        witness_size = ascii_int(trailer(exc, WITNESS_SIZE_TRAILER) or "")
        if exc.code() == grpc.StatusCode.ABORTED and witness_size is not None:
            await service.call(service.check_witness_size, peer, witness_size, witness_note(exc))
        elif exc.code() in UNREACHABLE:
            return False
        else:  # a refusal is an answer too, but not one about our history: the next turn asks again
            log.warning(
                "history_check_failed", node=service.me, peer=peer, step="witness", error=describe(exc)
            )
            return False
    except Malformed as exc:
        log.warning("history_check_failed", node=service.me, peer=peer, step="witness", error=str(exc))
        return False
    try:
        _updates, page = await client.catch_up(
            origin=service.me, after_seq=await service.call(service.last_seq, service.me, peer), max_count=1
        )
    except aio.AioRpcError as exc:
        log.warning("history_check_failed", node=service.me, peer=peer, step="catch_up", error=describe(exc))
        return False
    except Malformed as exc:
        log.warning("history_check_failed", node=service.me, peer=peer, step="catch_up", error=str(exc))
        return False
    held = await service.call(service.take_history_answer, peer, page)
    log.info(
        "history_checked", node=service.me, peer=peer, witness_old_size=old, own_alert_beyond=held is not None
    )
    return True


async def held_by_peer(client: PeerClient, service: NodeService) -> HeldByPeer:
    """Everything the peer holds of this node beyond the store, for a re-join; RefusedOperation if it cannot say.

    The size it witnessed of our log (its answer to the history probe), and
    our own alerts addressed to it after our last sequence there, page by page.
    """
    peer = client.peer
    old, body = await service.call(service.history_probe, peer)
    witness_size = old
    try:
        await client.add_checkpoint(body)
    except aio.AioRpcError as exc:
        answered = ascii_int(trailer(exc, WITNESS_SIZE_TRAILER) or "")
        if exc.code() != grpc.StatusCode.ABORTED or answered is None:
            raise RefusedOperation(
                f"{peer} did not say what it witnessed of {service.me}'s log: {describe(exc)}"
            ) from None
        if answered > service.log_size and not await service.call(
            service.proves_own_size, witness_note(exc), answered
        ):
            raise RefusedOperation(
                f"{peer} says it witnessed {answered} entries of {service.me}'s log but sends no checkpoint "
                f"of that size signed by {service.me}'s log key"
            ) from None
        witness_size = answered
    except Malformed as exc:
        raise RefusedOperation(f"{peer} did not say what it witnessed of {service.me}'s log: {exc}") from None
    envelopes: list[bytes] = []
    after = await service.call(service.last_seq, service.me, peer)
    while True:
        try:
            _updates, page = await client.catch_up(
                origin=service.me, after_seq=after, max_count=MAX_CATCHUP_PAGE
            )
        except aio.AioRpcError as exc:
            raise RefusedOperation(f"{peer} did not return {service.me}'s alerts: {describe(exc)}") from None
        except Malformed as exc:
            raise RefusedOperation(f"{peer} did not return {service.me}'s alerts: {exc}") from None
        if not page:
            break
        try:
            seq = service.verify_own(peer, page[-1]).alert.seq_for(peer)
        except InboundRejected as exc:
            raise RefusedOperation(
                f"{peer} returned an alert that does not verify as {service.me}'s own ({exc.reason}: {exc})"
            ) from None
        if seq is None or seq <= after:
            raise RefusedOperation(
                f"{peer} answered {service.me}'s alerts after sequence {after} with earlier ones"
            )
        envelopes.extend(page)
        after = seq
    return HeldByPeer(witness_size=witness_size, envelopes=envelopes)


async def rejoin(clients: list[PeerClient], service: NodeService) -> dict[str, Any]:
    """`ewx node rejoin`: ask every peer what it holds of this node, then recover it (NodeService.rejoin)."""
    answers = await asyncio.gather(*(held_by_peer(c, service) for c in clients), return_exceptions=True)
    held: dict[Country, HeldByPeer] = {}
    for client, answer in zip(clients, answers, strict=True):
        if isinstance(answer, RefusedOperation):
            raise RefusedOperation(f"re-join needs every peer's answer: {answer}")
        if isinstance(answer, BaseException):
            raise answer
        held[client.peer] = answer
    return await service.call(service.rejoin, held)
