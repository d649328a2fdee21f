"""mTLS credentials for the federation port and for the clients to each peer.

Each country is its own root of trust (SPEC section 2): the server accepts
client certificates from the peers' national CAs only, and the client to a
peer trusts that one peer's CA only, with the peer's node name as the TLS
target, so a certificate from the other peer's CA cannot impersonate it.

**TLS 1.3 only.** grpcio's Python API has no minimum-version option
(grpc/grpc#37305; the Python PRs #43045, #43074 and #43080 are not merged).
gRPC core does read its TLS 1.2 cipher list from the documented environment
variable GRPC_SSL_CIPHER_SUITES, once, when grpc is first imported, and that
list never touches TLS 1.3 (BoringSSL's ssl.h: "TLS 1.3 ciphers do not
participate in this mechanism"; OpenSSL likewise keeps TLS 1.3 suites apart).
gateway/grpc_env.py sets it to a single suite, ECDHE-PSK-CHACHA20-POLY1305,
which needs a pre-shared key that gRPC never configures: no TLS 1.2
handshake can agree on a suite, in either direction, whatever the
certificates, while TLS 1.3 is untouched. The package's `__init__` imports
that module, so the variable is set before any gateway module can import
grpc; `TLS13_ONLY` records whether that held in this process. tests/gateway/test_tls_version.py shows a
TLS 1.2 client refused and a normal one on TLS 1.3.

**Reload.** `NodeTls` holds the node's certificate and key in use. The
server's credentials come from `grpc.dynamic_ssl_server_credentials`, whose
fetcher gRPC calls before each new handshake: after `NodeTls.reload` has
checked new files, the next handshake uses them, and connections already
open keep theirs. Clients get new channels (gateway/peers.py
`PeerClient.renew`). A reload that fails any check leaves everything as it
was.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509

from node.config import NodeConfig, TlsCredentials
from node.ids import Country
from node.pki import CertificateNotValidNow
from node.trust import Trust, node_dns_name

if TYPE_CHECKING:
    import grpc


# ------------------------------------------------------------ the identity
@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """One checked certificate and its key, as gRPC takes them."""

    credentials: TlsCredentials
    certificate: x509.Certificate

    @property
    def serial(self) -> str:
        """The certificate's serial number in lowercase hex (as the trust file's revocations)."""
        return format(self.certificate.serial_number, "x")

    @property
    def not_after(self) -> datetime:
        """The certificate's last valid instant (UTC)."""
        return self.certificate.not_valid_after_utc


FileState = tuple[tuple[int, int, int, int] | None, ...]
"""(device, inode, size, mtime in ns) of the certificate and the key file; None if missing."""


def file_state(config: NodeConfig) -> FileState:
    """What the TLS files look like on disk now, to notice a renewal by polling.

    `os.stat` follows symbolic links, so a secret store that swaps a link
    to a new file is noticed as well as a file renamed into place.
    """
    states: list[tuple[int, int, int, int] | None] = []
    for path in (config.tls.certificate, config.tls.private_key):
        try:
            status = os.stat(path)
        except OSError:
            states.append(None)
        else:
            states.append((status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns))
    return tuple(states)


def read_identity(config: NodeConfig, trust: Trust, *, at: datetime) -> TlsIdentity:
    """Read the TLS files named by `config` and check them (node.pki.check_node_tls).

    Raises ConfigError naming the file and the defect, or its subclass
    CertificateNotValidNow when the only defect is the time: then
    `exc.identity` holds the otherwise sound identity.
    """
    credentials = config.read_tls_credentials()  # refuses a TLS key others can read
    try:
        certificate = config.check_tls(credentials, trust, at=at)
    except CertificateNotValidNow as exc:
        certificate = x509.load_pem_x509_certificate(credentials.certificate_chain)
        raise _TimeInvalid(str(exc), TlsIdentity(credentials, certificate)) from None
    return TlsIdentity(credentials, certificate)


class _TimeInvalid(CertificateNotValidNow):
    def __init__(self, message: str, identity: TlsIdentity) -> None:
        super().__init__(message)
        self.identity = identity


def _peer_roots(config: NodeConfig, trust: Trust) -> bytes:
    return trust.ca_bundle_pem([peer for peer in config.peers if peer in trust.countries])


class NodeTls:
    """The node's TLS identity in use, replaced only by a checked one.

    The server's certificate fetcher runs on gRPC core's threads; everything
    it reads is swapped under one lock.
    """

    def __init__(self, config: NodeConfig, identity: TlsIdentity, *, peer_roots: bytes) -> None:
        self._config = config
        self._identity = identity
        self._peer_roots = peer_roots
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None

    @classmethod
    def load(cls, config: NodeConfig, trust: Trust, *, at: datetime) -> tuple[NodeTls, str | None]:
        """The identity to start with, and a warning if it is not valid at `at`.

        A certificate that is sound but expired (or not yet valid) still
        starts the node, so that the operator keeps `ewx status` and a
        renewal is picked up by `reload`; any other defect raises ConfigError.
        """
        try:
            identity, warning = read_identity(config, trust, at=at), None
        except _TimeInvalid as exc:
            identity, warning = exc.identity, str(exc)
        return cls(config, identity, peer_roots=_peer_roots(config, trust)), warning

    @property
    def identity(self) -> TlsIdentity:
        """The certificate and key in use for new connections."""
        with self._lock:
            return self._identity

    def reload(self, trust: Trust, *, at: datetime) -> TlsIdentity | None:
        """Switch to the certificate and key now on disk, once they pass every check.

        Returns the new identity, or None when the files hold the one in use.
        Raises ConfigError (CertificateNotValidNow for an expired or not yet
        valid certificate) and then changes nothing.
        """
        identity = read_identity(self._config, trust, at=at)
        roots = _peer_roots(self._config, trust)
        with self._lock:
            if identity.credentials == self._identity.credentials and roots == self._peer_roots:
                return None
        configuration = _server_configuration(identity, roots)
        with self._lock:
            self._identity, self._peer_roots, self._pending = identity, roots, configuration
        return identity

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server credentials that require a client certificate from a peer's CA, reloadable."""
        import grpc

        with self._lock:
            initial = _server_configuration(self._identity, self._peer_roots)
        # grpc-stubs type the fetcher's result as never None; grpc documents None as "unchanged".
        fetcher: Callable[[], grpc.ServerCertificateConfiguration] = self._fetch  # type: ignore[assignment]
        return grpc.dynamic_ssl_server_credentials(initial, fetcher, require_client_authentication=True)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate fetcher: the new configuration once after a reload, else None (unchanged)."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def channel_credentials(self, trust: Trust, peer: Country) -> grpc.ChannelCredentials:
        """Client credentials to one peer with the identity in use: its CA only, and our certificate."""
        return _channel_credentials(self.identity.credentials, trust=trust, peer=peer)


def _server_configuration(identity: TlsIdentity, roots: bytes) -> grpc.ServerCertificateConfiguration:
    import grpc

    credentials = identity.credentials
    return grpc.ssl_server_certificate_configuration(
        [(credentials.private_key, credentials.certificate_chain)], root_certificates=roots
    )


def _channel_credentials(
    credentials: TlsCredentials, *, trust: Trust, peer: Country
) -> grpc.ChannelCredentials:
    import grpc

    return grpc.ssl_channel_credentials(
        root_certificates=trust.ca_bundle_pem([peer]),
        private_key=credentials.private_key,
        certificate_chain=credentials.certificate_chain,
    )


# ------------------------------------------------ credentials read once
def channel_credentials(*, config: NodeConfig, trust: Trust, peer: Country) -> grpc.ChannelCredentials:
    """Client credentials to one peer from the files as they are now: its CA only, and our certificate."""
    return _channel_credentials(config.read_tls_credentials(), trust=trust, peer=peer)


def channel_options(peer: Country) -> list[tuple[str, str | int]]:
    """Channel options: the peer's node name as TLS target, message limits."""
    from node.limits import MAX_GRPC_MESSAGE_BYTES

    return [
        ("grpc.ssl_target_name_override", node_dns_name(peer)),
        ("grpc.default_authority", node_dns_name(peer)),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        # Reconnect quickly when a peer comes back; the outbox keeps its own backoff.
        # (min_reconnect_backoff_ms is left at gRPC's default: it is also the
        # shortest time a connection attempt may take, and a TLS handshake over
        # a trans-Pacific link needs more than a few hundred milliseconds.)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
