"""The federation server: what a peer may call on this node, and nothing else.

Each call first maps the peer's verified client certificate to a node id
(step 1 of SPEC section 4), then hands the exact request bytes to the node's
core, which runs the remaining checks in order. A refusal becomes one status
from gateway/status_map.py plus the `ewx-reason` trailer; anything unexpected
becomes INTERNAL with a correlation id that is logged, never the exception.

Limits are enforced before any work (node.toml, defaults in node/limits.py):
per-peer rate and calls in flight (gateway/admission.py), request sizes
before parsing, and for the CatchUp stream a cap on open streams per peer,
a page of at most `catchup_page_served` alerts, and a cancellation of any
stream whose client stops reading (`stream_stall_seconds`) or that stays
open past `stream_max_seconds`, so a slow client cannot hold the node's
resources.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

import grpc
import structlog
from cryptography import x509
from google.protobuf.message import DecodeError
from grpc import aio

from gateway import rpc
from gateway.admission import PeerAdmission, StreamStalled, StreamTooLong
from gateway.status_map import REASON_TRAILER, STORE_FULL, status_for, trailers_for
from gateway.tasks import cancel_and_wait
from node.checks import Verdict
from node.errors import InboundRejected, Malformed, StoreFull, TooLarge, UnauthenticatedPeer
from node.ids import Country
from node.limits import (
    MAX_CATCHUP_ITEM_BYTES,
    MAX_CATCHUP_TRUST_UPDATES,
    MAX_DELIVERY_WINDOW,
    MAX_ENVELOPE_BYTES,
    MAX_TRUST_UPDATE_BYTES,
    STORE_TURN_ALERTS,
)
from node.message import member
from node.service import NodeService, StreamTurn
from node.trust import Trust, node_id_from_certificate
from node.wire import ewx_pb2 as pb

log = structlog.get_logger("ewx.gateway")

T = TypeVar("T")

PULL_PAUSE_SECONDS = 1.0
"""After a peer asks for a page of our alerts, our pushes to it pause this long."""

MAX_POSITION: Final = 2**63 - 1
"""The largest sequence or serial a request may name: SQLite's integers are signed 64-bit."""
_WRAPPER_OVERHEAD = 4
"""Tag and length bytes DeliverRequest adds around an envelope of legal size."""

_KNOWN_PEERS_KEPT: Final = 16
"""Authenticated client certificates remembered (each peer's current one, and a
few more across certificate reloads); only ever certificates that passed."""


@dataclass(frozen=True, slots=True)
class _KnownPeer:
    """A client certificate that passed every check of node_id_from_certificate.

    Its checks (1)-(4) and (6), as numbered in its docstring, depend only on
    the certificate, the trust and the allowed peers, so they hold again for
    the same three. Only (5), the validity of the certificate and of its CA,
    and (7), revocation, depend on the time: `authenticated` makes those two
    again, in that order, on every call.
    """

    trust: Trust
    allowed: tuple[Country, ...]
    country: Country
    serial: int
    valid_from: datetime
    valid_until: datetime

    def authenticated(self, *, trust: Trust, allowed: tuple[Country, ...], at: datetime) -> bool:
        """Whether the full check would pass again at `at` (False: run it, and let it say why)."""
        return (
            trust is self.trust
            and allowed == self.allowed
            and self.valid_from <= at <= self.valid_until
            and trust.certificate_revocation(self.country, self.serial, at=at) is None
        )


class FederationServicer:
    """Handlers for the `ewx.v1.Federation` service over one NodeService."""

    def __init__(self, service: NodeService) -> None:
        self._service = service
        config = service.config
        self._admission = PeerAdmission(
            rate_per_second=config.peer_rate_per_second,
            burst=config.peer_burst,
            max_concurrent=config.peer_max_concurrent_calls,
            max_streams=config.peer_max_concurrent_streams,
        )
        self._known_peers: dict[bytes, _KnownPeer] = {}

    def peer_of(self, context: aio.ServicerContext[Any, Any]) -> Country:
        """Step 1: the peer's node id from its verified TLS client certificate.

        Every call is checked, but the certificate's signature by its national
        CA (about 0.2 ms, the costliest check on a delivery) is verified once
        per certificate and trust: see _KnownPeer.
        """
        auth = context.auth_context()
        certs = list(auth.get("x509_pem_cert") or [])
        if not certs:
            raise UnauthenticatedPeer("no client certificate")
        pem: bytes = certs[0]
        trust, allowed, at = self._service.trust, self._service.peers, self._service.clock()
        known = self._known_peers.get(pem)
        if known is not None and known.authenticated(trust=trust, allowed=allowed, at=at):
            return known.country
        country = node_id_from_certificate(pem, trust=trust, allowed=allowed, at=at)
        self._remember(pem, country, trust=trust, allowed=allowed)
        return country

    def _remember(self, pem: bytes, country: Country, *, trust: Trust, allowed: tuple[Country, ...]) -> None:
        """Keep a certificate that just passed, with the times its validity allows."""
        certificate = x509.load_pem_x509_certificate(pem)
        ca = trust.ca_certificate(country)
        self._known_peers.pop(pem, None)
        while len(self._known_peers) >= _KNOWN_PEERS_KEPT:
            del self._known_peers[next(iter(self._known_peers))]  # the oldest
        self._known_peers[pem] = _KnownPeer(
            trust=trust,
            allowed=allowed,
            country=country,
            serial=certificate.serial_number,
            valid_from=max(certificate.not_valid_before_utc, ca.not_valid_before_utc),
            valid_until=min(certificate.not_valid_after_utc, ca.not_valid_after_utc),
        )

    async def _guarded(
        self,
        context: aio.ServicerContext[Any, Any],
        method: str,
        work: Callable[[Country], Awaitable[T]],
        *,
        stream: bool = False,
    ) -> T:
        peer: Country | None = None
        try:
            peer = self.peer_of(context)
            with self._admission.admit(peer, stream=stream):
                return await work(peer)
        except InboundRejected as exc:
            if not exc.logged:  # refused before the core saw it
                self._service.observer.refused(peer or "unauthenticated", exc.reason)
                log.warning(
                    "inbound_rejected",
                    node=self._service.me,
                    peer=peer or context.peer(),
                    reason=exc.reason,
                    alert_id=exc.alert_id,
                    method=method,
                    error=str(exc),
                )
            context.set_trailing_metadata(trailers_for(exc))
            await context.abort(status_for(exc), str(exc))
        except aio.AbortError:
            raise
        except StoreFull as exc:
            status, reason = STORE_FULL
            log.error("store_full", node=self._service.me, peer=peer, method=method, error=str(exc))
            context.set_trailing_metadata(((REASON_TRAILER, reason),))
            await context.abort(status, "store is full; nothing was written; retry later")
        except Exception:
            correlation = uuid.uuid4().hex
            log.exception(
                "internal_error", node=self._service.me, peer=peer, method=method, correlation_id=correlation
            )
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error, correlation id {correlation}")
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    async def deliver(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        """Deliver: verify, durably store, then answer with the signed receipt."""

        async def work(peer: Country) -> bytes:
            parsed = _deliver_request(request)
            return await self._service.call(_receive_delivery, self._service, parsed, peer)

        return await self._guarded(context, "Deliver", work)

    async def deliver_stream(
        self, requests: AsyncIterator[bytes], context: aio.ServicerContext[Any, Any]
    ) -> None:
        """DeliverStream: many Delivers in flight, checked, stored and answered in order.

        Requests are read ahead (at most MAX_DELIVERY_WINDOW waiting) while the
        ones already here are stored in turns of the store's thread, each turn
        all that had arrived (up to STORE_TURN_ALERTS) in one commit; each is
        answered after that commit. The first refusal ends the stream with a
        Deliver's status and trailers, after the answers of what came before
        it. The stream holds one of the peer's stream slots and lives at most
        `stream_max_seconds`.
        """

        async def work(peer: Country) -> None:
            deadline = asyncio.get_running_loop().time() + self._service.config.stream_max_seconds
            arrived: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_DELIVERY_WINDOW)
            reader = asyncio.create_task(_read_into(requests, arrived))
            try:
                while (raw := await self._next_request(arrived, reader, deadline)) is not None:
                    turn: list[pb.DeliverRequest] = []
                    refusal: InboundRejected | None = None
                    while True:
                        try:
                            turn.append(_deliver_request(raw))
                        except InboundRejected as exc:  # the ones before it are still taken
                            refusal = exc
                            break
                        if len(turn) >= STORE_TURN_ALERTS or arrived.empty():
                            break
                        raw = arrived.get_nowait()
                    if turn:
                        answers, stopped_by = await self._store_turn(turn, peer)
                        for answer in answers:
                            await self._write(context, answer, deadline)
                        refusal = stopped_by or refusal
                    if refusal is not None:
                        raise refusal
            finally:
                await cancel_and_wait(reader)  # a client gone ends its reads with an error: nothing to answer

        await self._guarded(context, "DeliverStream", work, stream=True)

    async def _next_request(
        self, arrived: asyncio.Queue[bytes], reader: asyncio.Task[None], deadline: float
    ) -> bytes | None:
        """The next request of a delivery stream; None once the client has sent its last."""
        if not arrived.empty():
            return arrived.get_nowait()
        if reader.done():
            return None
        getter = asyncio.ensure_future(arrived.get())
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        done, _ = await asyncio.wait({getter, reader}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        if reader in done:
            return arrived.get_nowait() if not arrived.empty() else None
        raise self._too_long()

    def _too_long(self) -> StreamTooLong:
        seconds = self._service.config.stream_max_seconds
        return StreamTooLong(f"stream open longer than {seconds:g} s, this node's limit")

    async def _store_turn(
        self, turn: list[pb.DeliverRequest], peer: Country
    ) -> tuple[list[bytes], InboundRejected | None]:
        """One turn of a delivery stream: the DeliverResponses of what was taken, and the refusal
        that stopped it (None when all were)."""
        service = self._service
        envelopes = [request.envelope for request in turn]
        verdict = await asyncio.to_thread(service.verdicts_ahead, envelopes)
        taken, gossip = await service.call(
            _receive_turn, service, envelopes, turn[-1].checkpoint, peer, verdict
        )
        answers = [
            pb.DeliverResponse(receipt=r, checkpoint=gossip).SerializeToString() for r in taken.receipts
        ]
        return answers, taken.refusal

    async def catch_up(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> None:
        """CatchUp: the origin's alerts addressed to the caller, in sequence order.

        The whole stream, not just the store query, holds one of the peer's
        call and stream slots, so the cap on open streams bounds what a peer
        can make this node hold.
        """

        async def work(peer: Country) -> None:
            deadline = asyncio.get_running_loop().time() + self._service.config.stream_max_seconds
            req = _parse(pb.CatchUpRequest, request, what="catch-up request")
            origin = member(req.origin)
            if origin is None:
                raise Malformed("catch-up request names no federation member as origin")
            for name in ("after_seq", "trust_after"):  # uint64 on the wire; the store counts below 2^63
                if getattr(req, name) > MAX_POSITION:
                    raise Malformed(f"catch-up request's {name} is beyond {MAX_POSITION}")
            served = self._service.config.catchup_page_served
            limit = min(req.max_count or served, served)
            service = self._service
            page = await service.call(
                service.catch_up, requester=peer, origin=origin, after_seq=req.after_seq, limit=limit
            )
            # The origin's trust updates the caller lacks go first: alerts its
            # new keys signed verify only once they are known (relay included).
            updates = (
                []
                if origin == peer
                else await service.call(service.trust_updates_of, origin, req.trust_after)
            )
            updates = updates[:MAX_CATCHUP_TRUST_UPDATES]  # the rest on the next page
            for _, update in updates:
                await self._write(context, pb.CatchUpItem(trust_update=update).SerializeToString(), deadline)
            if len(page) == limit and req.origin == pb.Country.Value(self._service.me):
                # A full page: the peer is far behind on our alerts and catching
                # up by pages, so hold our one-by-one pushes for a moment. (A
                # short page is the usual race with a push; pushes go on.)
                self._service.link(peer).note_pulling(
                    time.monotonic(), PULL_PAUSE_SECONDS, to_seq=req.after_seq + len(page)
                )
            for item in alert_items(page, batched=req.batched):
                await self._write(context, item, deadline)

        await self._guarded(context, "CatchUp", work, stream=True)

    async def _write(self, context: aio.ServicerContext[Any, Any], message: bytes, deadline: float) -> None:
        """Write one streamed message, or cancel a client that stalls or overstays.

        gRPC's flow control makes the write wait while the client takes
        nothing; the wait is bounded by `stream_stall_seconds` and by what is
        left of `stream_max_seconds`.
        """
        config = self._service.config
        remaining = deadline - asyncio.get_running_loop().time()
        stall = config.stream_stall_seconds
        try:
            async with asyncio.timeout(max(0.0, min(stall, remaining))):
                await context.write(message)
        except TimeoutError:
            if remaining <= stall:
                raise self._too_long() from None
            raise StreamStalled(f"client read nothing for {stall:g} s; stream cancelled") from None

    async def add_checkpoint(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        """AddCheckpoint: witness the caller's own log (C2SP tlog-witness)."""

        async def work(peer: Country) -> bytes:
            body = _parse(pb.WitnessRequest, request, what="witness request").body
            cosignature = await self._service.call(self._service.witness, peer, body)
            return pb.WitnessResponse(cosignature=cosignature).SerializeToString()

        return await self._guarded(context, "AddCheckpoint", work)

    async def update_trust(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        """UpdateTrust: the caller's own key rotation or revocation, checked and applied."""

        async def work(peer: Country) -> bytes:
            if len(request) > MAX_TRUST_UPDATE_BYTES + _WRAPPER_OVERHEAD:
                raise TooLarge(
                    f"trust update request is {len(request)} bytes, at most {MAX_TRUST_UPDATE_BYTES}"
                )
            update = _parse(pb.TrustUpdateRequest, request, what="trust update request").update
            held = await self._service.call(self._service.accept_trust_update, peer, update)
            return pb.TrustUpdateResponse(held_serial=held).SerializeToString()

        return await self._guarded(context, "UpdateTrust", work)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The generic handler that registers exactly the federation methods.

        Requests arrive as raw bytes (no deserializer) so sizes are checked on
        the exact bytes before anything is parsed.
        """
        return grpc.method_handlers_generic_handler(
            rpc.SERVICE_NAME,
            {
                "Deliver": grpc.unary_unary_rpc_method_handler(self.deliver),
                "DeliverStream": grpc.stream_stream_rpc_method_handler(self.deliver_stream),
                "CatchUp": grpc.unary_stream_rpc_method_handler(self.catch_up),
                "AddCheckpoint": grpc.unary_unary_rpc_method_handler(self.add_checkpoint),
                "UpdateTrust": grpc.unary_unary_rpc_method_handler(self.update_trust),
            },
        )


_ENVELOPE_FRAMING: Final = 4
"""Bytes a repeated-bytes field adds around one envelope: its tag and a length of at most
three bytes (an envelope is far below 2 MiB)."""


def alert_items(page: Sequence[bytes], *, batched: bool) -> Iterator[bytes]:
    """A catch-up page's alerts as serialized CatchUpItems, in order: one an item, or for a
    request that says `batched` as many consecutive ones as fit MAX_CATCHUP_ITEM_BYTES.

    Each stream message costs both ends a turn of their event loop and of gRPC (20,000
    alerts one an item were 1.7 s of a catching-up node's loop, and as much of the
    origin's); a batched item carries dozens.
    """
    if not batched:
        for envelope in page:
            yield pb.CatchUpItem(envelope=envelope).SerializeToString()
        return
    chunk: list[bytes] = []
    size = 0
    for envelope in page:
        framed = len(envelope) + _ENVELOPE_FRAMING
        if chunk and size + framed > MAX_CATCHUP_ITEM_BYTES:
            yield pb.CatchUpItem(envelopes=chunk).SerializeToString()
            chunk, size = [], 0
        chunk.append(envelope)
        size += framed
    if chunk:
        yield pb.CatchUpItem(envelopes=chunk).SerializeToString()


def _receive_turn(
    service: NodeService,
    envelopes: list[bytes],
    checkpoint: str,
    peer: Country,
    verdict: Callable[[int], Verdict | None] | None,
) -> tuple[StreamTurn, str]:
    """A delivery stream's turn on the store's thread: the envelopes stored in one commit,
    the peer's gossip compared, and ours to send back."""
    taken = service.receive_in_order(envelopes, peer=peer, verdict=verdict)
    if taken.receipts:
        service.check_gossip(peer, checkpoint)
    return taken, service.gossip_checkpoint()


async def _read_into(requests: AsyncIterator[bytes], arrived: asyncio.Queue[bytes]) -> None:
    """Read a delivery stream's requests ahead; waits while MAX_DELIVERY_WINDOW of them wait."""
    async for raw in requests:
        await arrived.put(raw)


def _deliver_request(raw: bytes) -> pb.DeliverRequest:
    """Step 2 starts here: never parse a request that cannot hold a legal envelope."""
    if len(raw) > MAX_ENVELOPE_BYTES + _WRAPPER_OVERHEAD:
        raise TooLarge(f"deliver request is {len(raw)} bytes, at most {MAX_ENVELOPE_BYTES} for the envelope")
    return _parse(pb.DeliverRequest, raw, what="deliver request")


def _receive_delivery(service: NodeService, request: pb.DeliverRequest, peer: Country) -> bytes:
    """Store one delivered envelope and compare gossip: the DeliverResponse, in one turn of the store's thread."""
    receipt = service.receive(request.envelope, peer=peer, direct=True)
    service.check_gossip(peer, request.checkpoint)
    return pb.DeliverResponse(receipt=receipt, checkpoint=service.gossip_checkpoint()).SerializeToString()


def _parse(message_type: type[T], data: bytes, *, what: str) -> T:
    message = message_type()
    try:
        message.ParseFromString(data)  # type: ignore[attr-defined]
    except DecodeError:
        raise Malformed(f"{what} is not a valid protobuf message") from None
    return message
