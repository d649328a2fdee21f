"""The `ewx health` check of the standard gRPC health service, on the node's local health socket.

Here and not in node/cli/_health.py because node/ never imports gRPC;
gateway/cli.py adds it to `ewx health`. The runtime serves the health
service there (gateway/runtime.py `_start_local_health`).
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.cli._health import Check
from node.config import NodeConfig

_SERVING = health_pb2.HealthCheckResponse.SERVING


def check_health_service(config: NodeConfig, *, timeout: float) -> Check:
    """`grpc.health.v1.Health/Check` for the node (service "") and each peer's link; healthy iff the node is SERVING."""
    from gateway.runtime import peer_health_name

    target = f"unix:{config.health_socket}"
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            node = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            peers = {
                peer: stub.Check(health_pb2.HealthCheckRequest(service=peer_health_name(peer)), timeout=timeout)
                for peer in config.peer_countries
            }
        except grpc.RpcError as exc:
            code = exc.code().name if isinstance(exc, grpc.Call) and exc.code() else "UNKNOWN"
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            return Check("grpc-health", ok=False, detail=f"{target}: {code}: {details}")
    name = health_pb2.HealthCheckResponse.ServingStatus.Name
    links = ", ".join(f"{peer} {name(answer.status)}" for peer, answer in peers.items())
    return Check(
        "grpc-health",
        ok=node.status == _SERVING,
        detail=f"{target}: node {name(node.status)}; peers: {links}",
    )
