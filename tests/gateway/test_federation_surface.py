"""The federation port serves the federation service and gRPC health, and nothing else (issue 5 item 4).

Reflection is not enabled, so a peer cannot list services either; the
operator API is a unix socket and never on this port.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2

from gateway import rpc
from node.ids import Country
from node.wire import ewx_pb2 as pb
from tests.support.factories import peer_channel, running

FEDERATION_METHODS = {"Deliver", "DeliverStream", "CatchUp", "AddCheckpoint", "UpdateTrust"}


def test_the_wire_contract_declares_only_the_federation_methods() -> None:
    assert set(rpc.SERVICE.methods_by_name) == FEDERATION_METHODS
    assert [s.full_name for s in pb.DESCRIPTOR.services_by_name.values()] == ["ewx.v1.Federation"]


def test_anything_else_is_unimplemented_and_health_answers(federation: dict[Country, Path]) -> None:
    async def scenario() -> None:
        async with running(federation["KR"]), peer_channel(federation["KR"], federation["US"]) as channel:
            for path in (
                "/ewx.v1.Operator/Publish",
                "/ewx.v1.Federation/ListAlerts",
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            ):
                try:
                    await channel.unary_unary(path)(b"", timeout=5)
                    raise AssertionError(f"{path} answered")
                except aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNIMPLEMENTED, (path, exc.code())
            reply = await channel.unary_unary("/grpc.health.v1.Health/Check")(
                health_pb2.HealthCheckRequest(service="").SerializeToString(), timeout=5
            )
            assert (
                health_pb2.HealthCheckResponse.FromString(reply).status
                == health_pb2.HealthCheckResponse.SERVING
            )

    asyncio.run(scenario())
