"""Look at a node's federation port with Python's own TLS client, not gRPC's.

A handshake made here is independent of everything the node's gRPC stack
chose: the version it negotiates and the certificate it presents are what
any peer would see.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from node.config import NodeConfig, split_address
from node.trust import Trust, node_dns_name


@dataclass(frozen=True)
class Handshake:
    """What one completed handshake showed."""

    version: str
    cipher: str
    serial: int
    """The serial number of the certificate the node presented."""


def handshake(target: Path, *, client: Path, maximum: ssl.TLSVersion | None = None) -> Handshake:
    """A TLS handshake with the node of config `target`, as the node of config `client`.

    Trusts only the target's national CA and checks its node name, presents
    the client node's certificate, offers ALPN h2 as gRPC does, and caps the
    protocol at `maximum` if given. Raises ssl.SSLError (or OSError) if the
    handshake fails.
    """
    target_config = NodeConfig.load(target)
    client_config = NodeConfig.load(client)
    trust = Trust.load(target_config.trust_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=trust.ca_bundle_pem([target_config.node_id]).decode("ascii"))
    context.load_cert_chain(client_config.tls.certificate, client_config.tls.private_key)
    context.set_alpn_protocols(["h2"])
    if maximum is not None:
        context.maximum_version = maximum
    host, port = split_address(target_config.listen)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=node_dns_name(target_config.node_id)) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        version, cipher = tls.version(), tls.cipher()
        assert der is not None and version is not None and cipher is not None
        return Handshake(
            version=version, cipher=cipher[0], serial=x509.load_der_x509_certificate(der).serial_number
        )
