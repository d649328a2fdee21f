"""One case per inbound rejection (SPEC section 4), against a real node over mTLS.

Each case asserts the gRPC status, the `ewx-reason` trailer, the structured
log event, and that the receiving node stored nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import structlog
from grpc import aio

from gateway import rpc
from node.config import NodeConfig
from node.identity import node_dns_name
from node.ids import Country
from node.limits import MAX_ENVELOPE_BYTES
from node.trust import Trust
from node.wire import ewx_pb2 as pb
from tests.factories import alert_payload, envelope, make_federation, running


@dataclass
class Outcome:
    code: grpc.StatusCode
    reason: str | None
    receipt: bytes | None
    details: str


async def deliver_as(
    *, target: Path, client: Path | None, request: bytes, client_fed: Path | None = None
) -> Outcome:
    """Call Deliver on the node of `target` presenting the TLS identity of `client`."""
    target_cfg = NodeConfig.load(target)
    trust = Trust.load(target_cfg.trust_file)
    root = trust.ca_bundle_pem([target_cfg.node_id])
    if client is None:
        creds = grpc.ssl_channel_credentials(root_certificates=root)
    else:
        cfg = NodeConfig.load(client)
        creds = grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=cfg.tls.private_key.read_bytes(),
            certificate_chain=cfg.tls.certificate.read_bytes(),
        )
    options = [
        ("grpc.ssl_target_name_override", node_dns_name(target_cfg.node_id)),
        ("grpc.max_send_message_length", 1 << 20),
    ]
    async with aio.secure_channel(target_cfg.listen, creds, options=options) as channel:
        call = channel.unary_unary(rpc.DELIVER)
        try:
            reply = await call(request, timeout=5)
        except aio.AioRpcError as exc:
            reason = dict(exc.trailing_metadata() or ()).get("ewx-reason")
            return Outcome(exc.code(), reason, None, exc.details() or "")
        return Outcome(grpc.StatusCode.OK, None, bytes(pb.DeliverResponse.FromString(reply).receipt), "")


def wrap(env: bytes) -> bytes:
    return pb.DeliverRequest(envelope=env).SerializeToString()


Fed = dict[Country, Path]
Case = Callable[[Fed], bytes]


def _valid(fed: Fed) -> bytes:
    return wrap(envelope(fed["KR"], alert_payload("KR", {"US": 1, "JP": 1})))


def _bad_signature(fed: Fed) -> bytes:
    env = pb.SignedAlert.FromString(envelope(fed["KR"], alert_payload("KR", {"US": 1})))
    env.signature = bytes(64 - 1) + b"\x01"
    return wrap(env.SerializeToString())


def _unknown_key(fed: Fed) -> bytes:
    return wrap(envelope(fed["KR"], alert_payload("KR", {"US": 1}), key_id="KR-alert-0000000000000000"))


def _oversized(fed: Fed) -> bytes:
    env = pb.SignedAlert.FromString(envelope(fed["KR"], alert_payload("KR", {"US": 1})))
    env.key_id = "x" * (MAX_ENVELOPE_BYTES + 1)
    return wrap(env.SerializeToString())


def _garbage(_fed: Fed) -> bytes:
    return wrap(b"\xff\xff\xff\xff not a protobuf")


def _schema_violation(fed: Fed) -> bytes:
    alert = pb.Alert.FromString(alert_payload("KR", {"US": 1}))
    alert.info.headline = "Details at https://example.com/gallium"
    payload = alert.SerializeToString(deterministic=True)
    return wrap(envelope(fed["KR"], payload))


def _smuggled_field(fed: Fed) -> bytes:
    # a validly signed alert carrying an unknown field (data smuggling)
    payload = alert_payload("KR", {"US": 1}) + b"\xfa\x01\x0bACME Corp."
    return wrap(envelope(fed["KR"], payload))


def _not_addressed(fed: Fed) -> bytes:
    return wrap(envelope(fed["KR"], alert_payload("KR", {"JP": 1})))


def _origin_claims_other(fed: Fed) -> bytes:
    # signed with KR's key, but the content claims JP as origin
    return wrap(envelope(fed["KR"], alert_payload("JP", {"US": 1})))


def _from_the_future(fed: Fed) -> bytes:
    sent = datetime.now(UTC) + timedelta(hours=2)
    return wrap(envelope(fed["KR"], alert_payload("KR", {"US": 1}, sent=sent)))


def _out_of_sequence(fed: Fed) -> bytes:
    return wrap(envelope(fed["KR"], alert_payload("KR", {"US": 2})))


CASES: list[tuple[str, str | None, Case, grpc.StatusCode, str | None]] = [
    # name, client identity, request, status, reason trailer
    ("no client certificate", None, _valid, grpc.StatusCode.UNAVAILABLE, None),
    ("certificate from a foreign CA", "rogue", _valid, grpc.StatusCode.UNAVAILABLE, None),
    (
        "valid peer relaying another origin's alert as its own",
        "JP",
        _valid,
        grpc.StatusCode.PERMISSION_DENIED,
        "sender_mismatch",
    ),
    (
        "content claims another origin than the signer",
        "KR",
        _origin_claims_other,
        grpc.StatusCode.PERMISSION_DENIED,
        "sender_mismatch",
    ),
    ("bad signature", "KR", _bad_signature, grpc.StatusCode.UNAUTHENTICATED, "bad_signature"),
    ("unknown key", "KR", _unknown_key, grpc.StatusCode.UNAUTHENTICATED, "unknown_key"),
    ("oversized envelope", "KR", _oversized, grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large"),
    ("garbage envelope", "KR", _garbage, grpc.StatusCode.INVALID_ARGUMENT, "malformed"),
    ("schema violation", "KR", _schema_violation, grpc.StatusCode.INVALID_ARGUMENT, "schema_violation"),
    ("unknown field smuggled", "KR", _smuggled_field, grpc.StatusCode.INVALID_ARGUMENT, "schema_violation"),
    ("not addressed to this node", "KR", _not_addressed, grpc.StatusCode.PERMISSION_DENIED, "not_addressed"),
    (
        "sent time beyond the clock skew",
        "KR",
        _from_the_future,
        grpc.StatusCode.FAILED_PRECONDITION,
        "from_the_future",
    ),
    ("sequence gap", "KR", _out_of_sequence, grpc.StatusCode.FAILED_PRECONDITION, "out_of_sequence"),
]


@pytest.mark.parametrize(("name", "client", "make", "status", "reason"), CASES, ids=[c[0] for c in CASES])
def test_rejection(
    tmp_path: Path,
    federation: Fed,
    name: str,
    client: str | None,
    make: Case,
    status: grpc.StatusCode,
    reason: str | None,
) -> None:
    rogue = make_federation(tmp_path / "rogue") if client == "rogue" else None
    client_path = None if client is None else (rogue["KR"] if rogue else federation[client])  # type: ignore[index]

    async def scenario() -> None:
        async with running(federation["US"]) as nodes:
            us = nodes["US"].service
            before = (us.store.log_size, us.store.count("alerts"), us.store.count("positions"))
            with structlog.testing.capture_logs() as logs:
                outcome = await deliver_as(
                    target=federation["US"], client=client_path, request=make(federation)
                )
            assert outcome.code == status, outcome.details
            assert outcome.reason == reason
            assert (us.store.log_size, us.store.count("alerts"), us.store.count("positions")) == before
            if reason is not None:
                events = [e for e in logs if e["event"] == "inbound_rejected"]
                assert events, logs
                assert events[0]["reason"] == reason
                assert events[0]["peer"] in {"KR", "JP"}
                assert outcome.details  # the peer is told what was wrong
            else:
                # UNAVAILABLE would also be what a dead server gives: prove the
                # handshake refused this client while the node served a real peer.
                control = await deliver_as(
                    target=federation["US"], client=federation["KR"], request=_valid(federation)
                )
                assert control.code == grpc.StatusCode.OK

    asyncio.run(scenario())


def test_replayed_envelope_is_stored_once_and_answered_with_the_same_receipt(federation: Fed) -> None:
    async def scenario() -> None:
        async with running(federation["US"]) as nodes:
            us = nodes["US"].service
            request = _valid(federation)
            first = await deliver_as(target=federation["US"], client=federation["KR"], request=request)
            assert first.code == grpc.StatusCode.OK
            size = us.store.log_size
            second = await deliver_as(target=federation["US"], client=federation["KR"], request=request)
            assert second.code == grpc.StatusCode.OK
            assert second.receipt == first.receipt
            assert us.store.log_size == size == 1
            assert us.store.count("alerts") == 1

    asyncio.run(scenario())


def test_equivocation_is_refused_and_kept_as_evidence(federation: Fed) -> None:
    async def scenario() -> None:
        async with running(federation["US"]) as nodes:
            us = nodes["US"].service
            one = wrap(envelope(federation["KR"], alert_payload("KR", {"US": 1}, alert_id="KR-A")))
            other = wrap(envelope(federation["KR"], alert_payload("KR", {"US": 1}, alert_id="KR-B")))
            assert (
                await deliver_as(target=federation["US"], client=federation["KR"], request=one)
            ).code == grpc.StatusCode.OK
            with structlog.testing.capture_logs() as logs:
                outcome = await deliver_as(target=federation["US"], client=federation["KR"], request=other)
            assert outcome.code == grpc.StatusCode.ALREADY_EXISTS
            assert outcome.reason == "equivocation"
            assert us.store.log_size == 1 and us.store.count("alerts") == 1
            evidence = us.store.evidence()
            assert len(evidence) == 1 and evidence[0]["alert_id"] == "KR-B"
            assert any(e["event"] == "equivocation" for e in logs)

    asyncio.run(scenario())


def test_a_flooding_peer_is_refused_while_the_other_is_served(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", peer_rate_per_second=1.0, peer_burst=5)

    async def scenario() -> None:
        async with running(fed["US"]) as nodes:
            us = nodes["US"].service
            codes = []
            with structlog.testing.capture_logs() as logs:
                for seq in range(1, 9):
                    request = wrap(
                        envelope(fed["KR"], alert_payload("KR", {"US": seq}, alert_id=f"KR-F{seq}"))
                    )
                    outcome = await deliver_as(target=fed["US"], client=fed["KR"], request=request)
                    codes.append((outcome.code, outcome.reason))
            assert codes[:5] == [(grpc.StatusCode.OK, None)] * 5
            assert set(codes[5:]) == {(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")}
            assert us.store.last_seq("KR", "US") == 5  # nothing of the refused calls was stored
            assert any(e["event"] == "inbound_rejected" and e["reason"] == "rate_limited" for e in logs)
            served = await deliver_as(
                target=fed["US"],
                client=fed["JP"],
                request=wrap(envelope(fed["JP"], alert_payload("JP", {"US": 1}))),
            )
            assert served.code == grpc.StatusCode.OK  # JP's budget is its own

    asyncio.run(scenario())
