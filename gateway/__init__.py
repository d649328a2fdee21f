"""EWX federation edge: the mTLS gRPC server for peers, clients to peers,
peer authentication, inbound mapping to statuses, delivery and catch-up.

Depends on `node` (the core); `node` never imports this package.
"""
