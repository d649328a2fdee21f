"""EWX federation edge: the mTLS gRPC server for peers, clients to peers,
peer authentication, inbound mapping to statuses, delivery and catch-up.

Depends on `node` (the core); `node` never imports this package.
"""

# Before anything imports grpc: gRPC reads its TLS 1.2 cipher list once, at import.
from gateway import tls_policy as _tls_policy  # noqa: F401
