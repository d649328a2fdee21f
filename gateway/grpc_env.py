"""gRPC core settings that must be in the environment before grpc is imported.

gRPC core reads these once, when grpc is first imported; `gateway/__init__.py`
imports this module (which imports nothing of grpc) so that they are set
before any gateway module imports grpc.

- TLS 1.3 only. GRPC_SSL_CIPHER_SUITES governs TLS 1.2 and below only (TLS
  1.3 suites do not take part). A single PSK suite, which gRPC never
  configures, leaves no TLS 1.2 handshake possible in either direction
  (gateway/tls.py has the sources).
- No fork handlers. The node never uses gRPC in a forked child; it starts
  processes only by fork-and-exec (the signature pools' forkserver). gRPC's
  fork handlers are not safe while its threads run and crashed such a child
  before its exec now and again (SIGSEGV), so they are off.
"""

from __future__ import annotations

import os
import sys
from typing import Final

CIPHER_SUITES_VARIABLE: Final = "GRPC_SSL_CIPHER_SUITES"
TLS12_CIPHER_SUITES: Final = "ECDHE-PSK-CHACHA20-POLY1305"
"""The only TLS 1.2 suite offered or accepted: a PSK suite, which gRPC cannot
negotiate, so only TLS 1.3 remains (see the module docstring)."""


def _apply_tls13_policy() -> bool:
    """Set gRPC's TLS 1.2 cipher list; True if gRPC core will read this value."""
    effective = "grpc" not in sys.modules or os.environ.get(CIPHER_SUITES_VARIABLE) == TLS12_CIPHER_SUITES
    os.environ[CIPHER_SUITES_VARIABLE] = TLS12_CIPHER_SUITES
    return effective


FORK_SUPPORT_VARIABLE: Final = "GRPC_ENABLE_FORK_SUPPORT"

TLS13_ONLY: Final = _apply_tls13_policy()
"""True when grpc was not yet imported as this module set the cipher list (or
the process started with it already set): peers then talk TLS 1.3 only."""

os.environ[FORK_SUPPORT_VARIABLE] = "false"
