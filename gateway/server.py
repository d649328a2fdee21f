"""The federation server: what a peer may call on this node, and nothing else.

Each call first maps the peer's verified client certificate to a node id
(step 1 of SPEC section 4), then hands the exact request bytes to the node's
core, which runs the remaining checks in order. A refusal becomes one status
from gateway/status_map.py plus the `ewx-reason` trailer; anything unexpected
becomes INTERNAL with a correlation id that is logged, never the exception.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError
from grpc import aio

from gateway import rpc
from gateway.admission import PeerAdmission
from gateway.status_map import status_for, trailers_for
from node.errors import InboundRejected, Malformed, TooLarge, UnauthenticatedPeer
from node.identity import node_id_from_certificate
from node.ids import Country
from node.limits import MAX_CATCHUP_PAGE, MAX_ENVELOPE_BYTES, MAX_TRUST_UPDATE_BYTES
from node.service import NodeService
from node.wire import ewx_pb2 as pb

log = structlog.get_logger("ewx.gateway")

T = TypeVar("T")

PULL_PAUSE_SECONDS = 1.0
"""After a peer asks for a page of our alerts, our pushes to it pause this long."""

_WRAPPER_OVERHEAD = 4
"""Tag and length bytes DeliverRequest adds around an envelope of legal size."""


class FederationServicer:
    """Handlers for the `ewx.v1.Federation` service over one NodeService."""

    def __init__(self, service: NodeService) -> None:
        self._service = service
        config = service.config
        self._admission = PeerAdmission(
            rate_per_second=config.peer_rate_per_second,
            burst=config.peer_burst,
            max_concurrent=config.peer_max_concurrent_calls,
        )

    def peer_of(self, context: aio.ServicerContext[Any, Any]) -> Country:
        """Step 1: the peer's node id from its verified TLS client certificate."""
        auth = context.auth_context()
        certs = list(auth.get("x509_pem_cert") or [])
        if not certs:
            raise UnauthenticatedPeer("no client certificate")
        return node_id_from_certificate(
            certs[0], trust=self._service.trust, allowed=self._service.peers, at=self._service.clock()
        )

    async def _guarded(
        self, context: aio.ServicerContext[Any, Any], method: str, work: Callable[[Country], Awaitable[T]]
    ) -> T:
        peer: Country | None = None
        try:
            peer = self.peer_of(context)
            with self._admission.admit(peer):
                return await work(peer)
        except InboundRejected as exc:
            if not exc.logged:  # refused before the core saw it
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
            # Step 2 starts here: never parse a request that cannot hold a legal envelope.
            if len(request) > MAX_ENVELOPE_BYTES + _WRAPPER_OVERHEAD:
                raise TooLarge(
                    f"deliver request is {len(request)} bytes, at most {MAX_ENVELOPE_BYTES} for the envelope"
                )
            parsed = _parse(pb.DeliverRequest, request, what="deliver request")
            receipt = self._service.receive(parsed.envelope, peer=peer, direct=True)
            self._service.check_gossip(peer, parsed.checkpoint)
            return pb.DeliverResponse(
                receipt=receipt, checkpoint=self._service.gossip_checkpoint()
            ).SerializeToString()

        return await self._guarded(context, "Deliver", work)

    async def catch_up(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
        """CatchUp: the origin's alerts addressed to the caller, in sequence order."""

        async def work(peer: Country) -> list[bytes]:
            req = _parse(pb.CatchUpRequest, request, what="catch-up request")
            if req.origin not in (pb.KR, pb.US, pb.JP):
                raise Malformed("catch-up request names no federation member as origin")
            page = self._service.catch_up(
                requester=peer,
                origin=pb.Country.Name(req.origin),  # type: ignore[arg-type]
                after_seq=req.after_seq,
                limit=min(req.max_count or MAX_CATCHUP_PAGE, MAX_CATCHUP_PAGE),
            )
            if len(page) == MAX_CATCHUP_PAGE and req.origin == pb.Country.Value(self._service.me):
                # A full page: the peer is far behind on our alerts and catching
                # up by pages, so hold our one-by-one pushes for a moment. (A
                # short page is the usual race with a push; pushes go on.)
                self._service.links[peer].note_pulling(time.monotonic(), PULL_PAUSE_SECONDS)
            return page

        for envelope in await self._guarded(context, "CatchUp", work):
            yield pb.CatchUpItem(envelope=envelope).SerializeToString()

    async def add_checkpoint(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        """AddCheckpoint: witness the caller's own log (C2SP tlog-witness)."""

        async def work(peer: Country) -> bytes:
            body = _parse(pb.WitnessRequest, request, what="witness request").body
            cosignature = self._service.witness(peer, body)
            return pb.WitnessResponse(cosignature=cosignature).SerializeToString()

        return await self._guarded(context, "AddCheckpoint", work)

    async def update_trust(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        """UpdateTrust: the caller's own key rotation or revocation, checked and applied."""

        async def work(peer: Country) -> bytes:
            if len(request) > MAX_TRUST_UPDATE_BYTES + _WRAPPER_OVERHEAD:
                raise TooLarge(f"trust update request is {len(request)} bytes, at most {MAX_TRUST_UPDATE_BYTES}")
            update = _parse(pb.TrustUpdateRequest, request, what="trust update request").update
            held = self._service.accept_trust_update(peer, update)
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
                "CatchUp": grpc.unary_stream_rpc_method_handler(self.catch_up),
                "AddCheckpoint": grpc.unary_unary_rpc_method_handler(self.add_checkpoint),
                "UpdateTrust": grpc.unary_unary_rpc_method_handler(self.update_trust),
            },
        )


def _parse(message_type: type[T], data: bytes, *, what: str) -> T:
    message = message_type()
    try:
        message.ParseFromString(data)  # type: ignore[attr-defined]
    except DecodeError:
        raise Malformed(f"{what} is not a valid protobuf message") from None
    return message
