"""Method paths of the federation service, taken from the generated descriptor.

We register handlers and make client calls from these paths instead of
generated `_pb2_grpc` stubs: the stubs would import `ewx.v1` at a path that
does not exist inside our packages, and rewriting generated code is what the
project refuses to do. The service's shape stays defined once, in the proto.
"""

from __future__ import annotations

from typing import Final

from node.wire import ewx_pb2 as pb

SERVICE: Final = pb.DESCRIPTOR.services_by_name["Federation"]
SERVICE_NAME: Final[str] = SERVICE.full_name


def method_path(name: str) -> str:
    """'/ewx.v1.Federation/<name>' for a method the proto declares."""
    if name not in SERVICE.methods_by_name:
        raise KeyError(f"the federation service has no method {name}")
    return f"/{SERVICE_NAME}/{name}"


DELIVER: Final = method_path("Deliver")
CATCH_UP: Final = method_path("CatchUp")
ADD_CHECKPOINT: Final = method_path("AddCheckpoint")
UPDATE_TRUST: Final = method_path("UpdateTrust")
DELIVER_STREAM: Final = method_path("DeliverStream")
