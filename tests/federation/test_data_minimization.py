"""Data minimization (issue 5, item 7): nothing a node keeps for itself leaves it.

Marker values (`MARKER-<hex>`, unique per run) are put into everything the
US node keeps for itself and that is not a SPEC section 3 field:

- its configuration: the folder of its data, keys, certificates and trust
  file, its operator socket's path, and a peer's address string;
- its store: a row of local notes and a row of evidence, and the text of a
  delivery failure the outbox keeps (it names the peer's address);
- its data directory: a file of analyst notes beside the store;
- the operator's inputs that are not section 3 fields: an unknown publish
  argument, a reference to an alert id that does not exist, a `show` of one.

Then every RPC a peer can call is called, as a peer over real mutual TLS on
127.0.0.1, on the happy path and on the refusal paths: Deliver (accepted,
replayed, equivocating, refused at each check), CatchUp (own alerts and
relay, refused), AddCheckpoint (cosigned and refused), UpdateTrust (applied
and refused) and the standard health service (Check and Watch). TLS hides
the bytes on the wire, so what is scanned is what the peer's gRPC stack
decodes: every response message, the initial and trailing metadata, and the
status details. The node's own calls to a peer are scanned too: a recording
stand-in for KR, with KR's real TLS identity, keeps every request and its
metadata that the US node sends (deliveries, witness requests, catch-up
requests).

None of the markers may appear in any of those bytes; each must be present
in what the node keeps (so the test can fail), and the scanned bytes must
hold what the node does publish (so the scan saw real content).

Indicator data (the national trade figures a detection reads) joins this
test when the node starts keeping it: put markers in it like the others.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio
from grpc_health.v1 import health_pb2

from gateway import rpc
from node.checks import build_request
from node.config import NodeConfig
from node.crypto import Checkpoint, sign_checkpoint
from node.errors import EwxError
from node.operator import OperatorClient
from node.service import NodeService, prepare_rotation
from node.trust import Trust, endorse_update, log_origin
from node.wire import ewx_pb2 as pb
from tests.support.factories import (
    alert_info,
    alert_payload,
    envelope,
    make_federation,
    peer_channel,
    running,
    wait_for,
)

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"


def marker() -> str:
    return f"MARKER-{secrets.token_hex(8)}"


class Wire:
    """Every byte a peer's gRPC stack decoded from the node, and every byte it sent a peer."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.calls: list[str] = []

    def add(self, *parts: Any) -> None:
        for part in parts:
            if isinstance(part, bytes):
                self.chunks.append(part)
            elif isinstance(part, str):
                self.chunks.append(part.encode())
            elif part is not None:  # metadata: (key, value) pairs
                for key, value in part:
                    self.add(key, value)

    async def call(
        self, channel: aio.Channel, method: str, request: bytes, *, stream: bool = False
    ) -> list[bytes]:
        """Call `method` and keep everything that came back: messages, metadata, status."""
        self.calls.append(method)
        replies: list[bytes] = []
        if stream:
            call: Any = channel.unary_stream(method)(request, timeout=5)
        else:
            call = channel.unary_unary(method)(request, timeout=5)
        try:
            if stream:
                while (item := await call.read()) is not aio.EOF:
                    replies.append(bytes(item))
            else:
                replies.append(bytes(await call))
        except aio.AioRpcError as exc:
            self.add(exc.details() or "", exc.initial_metadata(), exc.trailing_metadata())
            return replies
        self.add(
            *replies, await call.initial_metadata(), await call.trailing_metadata(), await call.details()
        )
        return replies

    def holds(self, text: str) -> bool:
        needle = text.encode()
        return any(needle in chunk for chunk in self.chunks)


async def _stand_in(config: NodeConfig, wire: Wire) -> aio.Server:
    """KR's listen address served by a recorder with KR's TLS identity: every
    request the US node sends KR lands in `wire`, and is refused."""

    def recorder(stream: bool) -> Any:
        async def unary(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
            wire.add(request, context.invocation_metadata())
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in")
            raise AssertionError("unreachable")

        async def streaming(request: bytes, context: aio.ServicerContext[Any, Any]) -> None:
            wire.add(request, context.invocation_metadata())
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in")

        return (
            grpc.unary_stream_rpc_method_handler(streaming)
            if stream
            else grpc.unary_unary_rpc_method_handler(unary)
        )

    methods = {
        name: recorder(method.server_streaming) for name, method in rpc.SERVICE.methods_by_name.items()
    }
    server = aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(rpc.SERVICE_NAME, methods)])
    trust = Trust.load(config.trust_file)
    credentials = grpc.ssl_server_credentials(
        [(config.tls.private_key.read_bytes(), config.tls.certificate.read_bytes())],
        root_certificates=trust.ca_bundle_pem([c for c in trust.countries if c != config.node_id]),
        require_client_auth=True,
    )
    server.add_secure_port(config.listen, credentials)
    await server.start()
    return server


def _kept_by(config: NodeConfig, config_path: Path) -> str:
    """Everything the node keeps for itself, as text: its config, its store, its data directory."""
    parts = [config_path.read_text(), str(config.operator_socket)]
    with sqlite3.connect(config.data_dir / "ewx.sqlite3") as db:
        parts.extend(db.iterdump())
    for path in sorted(config.data_dir.rglob("*")):
        parts.append(str(path))
        if path.is_file() and path.suffix == ".txt":
            parts.append(path.read_text())
    return "\n".join(parts)


def _kr_checkpoint_request(kr: NodeConfig) -> bytes:
    """A first checkpoint of KR's log, signed with KR's log key, as a witness request."""
    origin = log_origin("KR")
    note = sign_checkpoint(
        Checkpoint(origin=origin, size=1, root_hash=bytes(range(32))),
        name=origin,
        private_key=kr.load_signers()["log"].private_key,
    )
    return pb.WitnessRequest(
        body=build_request(old_size=0, proof=[], signed_checkpoint=note)
    ).SerializeToString()


def _kr_trust_update(kr_path: Path, kr: NodeConfig) -> bytes:
    """KR's key rotation, endorsed by KR's national CA, as a trust-update request."""
    ca_dir = kr_path.parent / "ca"
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    request = prepare_rotation(kr, now=datetime.now(UTC), purposes=["witness"])
    endorsed = endorse_update(
        request,
        ca_key=ca_key,
        ca_certificate=x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes()),
    )
    return pb.TrustUpdateRequest(update=endorsed).SerializeToString()


def _operator(service_config: NodeConfig, op: str, **args: Any) -> Any:
    try:
        return OperatorClient(service_config.operator_socket).call(op, **args)
    except EwxError as exc:
        return str(exc)


@pytest.mark.sqlite_only("dumps ewx.sqlite3 and writes a local note into it with sqlite3")
@pytest.mark.timeout(60)
def test_nothing_the_node_keeps_for_itself_leaves_it(short_tmp: Path) -> None:
    markers = {
        "config folder": marker(),
        "operator socket path": marker(),
        "peer address": marker(),
        "store: local note": marker(),
        "store: evidence detail": marker(),
        "data directory file": marker(),
        "operator: unknown publish argument": marker(),
        "operator: reference to no alert": marker(),
        "operator: show of no alert": marker(),
    }
    fed = make_federation(short_tmp / f"fed-{markers['config folder']}", checkpoint_interval_seconds=0.2)
    us_path, kr_path, jp_path = fed["US"], fed["KR"], fed["JP"]
    document = tomllib.loads(us_path.read_text())
    socket_dir = Path(tempfile.mkdtemp(prefix=f"{markers['operator socket path']}-"))
    document["operator_socket"] = str(socket_dir / "op.sock")
    document["peers"]["JP"]["address"] = f"jp-{markers['peer address']}.invalid:7403"
    us_path.write_text(tomli_w.dumps(document))
    us_config, kr = NodeConfig.load(us_path), NodeConfig.load(kr_path)
    wire = Wire()

    async def scenario() -> None:
        stand_in = await _stand_in(kr, wire)
        try:
            async with running(us_path) as nodes:
                us: NodeService = nodes["US"].service
                await _keep_local_things(us, us_config, markers)
                published = await asyncio.to_thread(
                    OperatorClient(us_config.operator_socket).call,
                    "publish",
                    msg_type="ALERT",
                    status="EXERCISE",
                    info=alert_info(),
                )
                # the node's own calls to KR reach the recorder: a delivery, a witness request
                await wait_for(lambda: us.store.log_size >= 1 and us.store.latest_checkpoint() is not None)
                await wait_for(lambda: wire.holds(published["alert_id"]) and wire.holds("old 0\n"))
                async with peer_channel(us_path, kr_path) as as_kr, peer_channel(us_path, jp_path) as as_jp:
                    await _every_peer_call(wire, as_kr, as_jp, kr_path=kr_path, jp_path=jp_path, kr=kr)
                kept = _kept_by(us_config, us_path)
        finally:
            await stand_in.stop(None)
        for where, value in markers.items():
            if not where.startswith("operator:"):  # operator inputs are refused, so never kept
                assert value in kept, f"the test did not plant its {where} marker"
            assert not wire.holds(value), f"the {where} marker left the node"
        # the scan saw real content: what the node does publish is there
        assert wire.holds(published["alert_id"])
        assert wire.holds(alert_info()["headline"])
        assert wire.holds(log_origin("US"))
        assert set(wire.calls) >= {
            rpc.DELIVER,
            rpc.CATCH_UP,
            rpc.ADD_CHECKPOINT,
            rpc.UPDATE_TRUST,
            HEALTH_CHECK,
            HEALTH_WATCH,
        }

    asyncio.run(scenario())


async def _keep_local_things(us: NodeService, config: NodeConfig, markers: dict[str, str]) -> None:
    """Put the markers into the node's store, its data directory and its operator's inputs."""
    with sqlite3.connect(config.data_dir / "ewx.sqlite3") as db:  # a local note, in a table the node keeps
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)", ("analyst_note", markers["store: local note"])
        )
    us.store.add_evidence(
        kind="local_note",
        peer="KR",
        origin="KR",
        alert_id=None,
        detail=markers["store: evidence detail"],
        kept="",
        conflicting=b"",
        at=datetime.now(UTC).isoformat(),
    )
    (config.data_dir / "analyst-notes.txt").write_text(f"supplier mix: {markers['data directory file']}\n")
    # operator inputs that are not section 3 fields, all refused
    for op, args in (
        (
            "publish",
            {
                "msg_type": "ALERT",
                "info": alert_info(),
                "analyst_note": markers["operator: unknown publish argument"],
            },
        ),
        (
            "publish",
            {
                "msg_type": "UPDATE",
                "info": alert_info(),
                "reference": {"origin": "US", "alert_id": markers["operator: reference to no alert"]},
            },
        ),
        ("show", {"origin": "KR", "alert_id": markers["operator: show of no alert"]}),
    ):
        answer = await asyncio.to_thread(_operator, config, op, **args)
        assert isinstance(answer, str), answer  # refused
    # a delivery failure's text, as the outbox keeps it: JP's address does not resolve
    await asyncio.to_thread(
        OperatorClient(config.operator_socket).call,
        "publish",
        msg_type="ALERT",
        info=alert_info(),
        recipients=["JP"],
    )
    await wait_for(
        lambda: any(markers["peer address"] in (row.last_error or "") for row in us.store.outbox("JP"))
    )


async def _every_peer_call(
    wire: Wire, as_kr: aio.Channel, as_jp: aio.Channel, *, kr_path: Path, jp_path: Path, kr: NodeConfig
) -> None:
    """Every RPC a peer can call, on its happy and its refusal paths."""

    def deliver(payload: bytes, by: Path = kr_path) -> bytes:
        return pb.DeliverRequest(envelope=envelope(by, payload)).SerializeToString()

    first = deliver(alert_payload("KR", {"US": 1}, alert_id="KR-M-1"))
    # Deliver: accepted, replayed, equivocating, and refused at each step
    assert await wire.call(as_kr, rpc.DELIVER, first)
    await wire.call(as_kr, rpc.DELIVER, first)
    await wire.call(as_kr, rpc.DELIVER, deliver(alert_payload("KR", {"US": 1}, alert_id="KR-M-2")))
    for request in (
        b"\xff\xff garbage",
        pb.DeliverRequest(envelope=b"\x00" * 9000).SerializeToString(),
        deliver(alert_payload("KR", {"US": 5})),
        deliver(alert_payload("KR", {"JP": 1})),
        deliver(alert_payload("KR", {"US": 2}, sent=datetime.now(UTC) + timedelta(hours=3))),
        deliver(alert_payload("JP", {"US": 1}), jp_path),
    ):
        await wire.call(as_kr, rpc.DELIVER, request)
    await wire.call(as_jp, rpc.DELIVER, deliver(alert_payload("JP", {"US": 1}), jp_path))
    # CatchUp: the node's own alerts, a relay of the third node's, refusals
    for origin in (pb.US, pb.JP, pb.KR):
        await wire.call(
            as_kr, rpc.CATCH_UP, pb.CatchUpRequest(origin=origin).SerializeToString(), stream=True
        )
    assert await wire.call(
        as_jp, rpc.CATCH_UP, pb.CatchUpRequest(origin=pb.US).SerializeToString(), stream=True
    )
    await wire.call(as_kr, rpc.CATCH_UP, b"\xff", stream=True)
    await wire.call(
        as_kr, rpc.CATCH_UP, pb.CatchUpRequest(origin=pb.COUNTRY_UNSPECIFIED).SerializeToString(), stream=True
    )
    # AddCheckpoint: cosigned, then refused (a rollback, garbage)
    assert await wire.call(as_kr, rpc.ADD_CHECKPOINT, _kr_checkpoint_request(kr))
    await wire.call(as_kr, rpc.ADD_CHECKPOINT, _kr_checkpoint_request(kr))
    await wire.call(
        as_kr, rpc.ADD_CHECKPOINT, pb.WitnessRequest(body="old 0\n\nnonsense\n").SerializeToString()
    )
    await wire.call(as_jp, rpc.ADD_CHECKPOINT, b"\xff")
    # UpdateTrust: refused (garbage; another member's update), then applied
    update = _kr_trust_update(kr_path, kr)
    await wire.call(as_kr, rpc.UPDATE_TRUST, b"\xff")
    await wire.call(as_jp, rpc.UPDATE_TRUST, update)  # not JP's to announce
    assert await wire.call(as_kr, rpc.UPDATE_TRUST, update)
    # health: Check (known and unknown services) and Watch
    for service in ("", rpc.SERVICE_NAME, "no.such.Service"):
        await wire.call(
            as_kr, HEALTH_CHECK, health_pb2.HealthCheckRequest(service=service).SerializeToString()
        )
    watch = as_kr.unary_stream(HEALTH_WATCH)(
        health_pb2.HealthCheckRequest(service="").SerializeToString(), timeout=5
    )
    wire.calls.append(HEALTH_WATCH)
    wire.add(bytes(await watch.read()), await watch.initial_metadata())
    watch.cancel()
