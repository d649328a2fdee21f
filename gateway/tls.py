"""mTLS credentials for the federation port and for the clients to each peer.

Each country is its own root of trust (SPEC section 2): the server accepts
client certificates from the peers' national CAs only, and the client to a
peer trusts that one peer's CA only, with the peer's node name as the TLS
target, so a certificate from the other peer's CA cannot impersonate it.
"""

from __future__ import annotations

import grpc

from node.config import NodeConfig
from node.identity import node_dns_name
from node.ids import Country
from node.trust import Trust


def server_credentials(*, config: NodeConfig, trust: Trust) -> grpc.ServerCredentials:
    """Server credentials that require a client certificate from a peer's CA."""
    peer_cas = trust.ca_bundle_pem([p for p in config.peers if p in trust.countries])
    tls = config.read_tls_credentials()  # refuses a TLS key others can read
    return grpc.ssl_server_credentials(
        [(tls.private_key, tls.certificate_chain)],
        root_certificates=peer_cas,
        require_client_auth=True,
    )


def channel_credentials(*, config: NodeConfig, trust: Trust, peer: Country) -> grpc.ChannelCredentials:
    """Client credentials to one peer: its CA only, and our own certificate."""
    tls = config.read_tls_credentials()
    return grpc.ssl_channel_credentials(
        root_certificates=trust.ca_bundle_pem([peer]),
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )


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
