"""Process-wide settings for the test run, applied before any test module imports grpc."""

from __future__ import annotations

import os

# A test starts a process as another user (tests/integration/test_operator.py)
# while gRPC's threads run; gRPC's fork handlers are not safe then and crashed
# the child before its exec (SIGSEGV) now and again. The node itself never forks.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
