"""EWX federation edge: the mTLS gRPC server for peers, clients to peers,
peer authentication, inbound mapping to statuses, delivery and catch-up.

Depends on `node` (the core); `node` never imports this package.
"""

# Before anything imports grpc: gRPC core reads its settings once, at import (gateway/grpc_env.py).
from gateway import grpc_env as _grpc_env  # noqa: F401 - imported for its effect
