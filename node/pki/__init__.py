"""The federation's certificates: development PKI, CA and node certificates, requests.

Owns `ewx pki init` (a development federation), the national CA, node
certificate requests and signing, and the checks a node certificate must
pass before the node uses it (`_pki`).

May import: node's shared modules, node.crypto, node.trust.
"""

from node.errors import CertificateNotValidNow
from node.pki._pki import (
    MAX_NODE_CERT_DAYS,
    NODE_CERT_VALIDITY,
    PUBLIC_FILE_MODE,
    check_node_csr,
    check_node_tls,
    create_national_ca,
    create_node_request,
    init_federation,
    issue_node_certificate,
    load_certificate_file,
    load_ec_private_key,
    load_ed25519_private_key,
    load_national_ca,
    node_alt_names,
    node_csr,
    node_subject,
    parse_countries,
    public_key_fingerprint,
    read_csr_file,
    read_private_key_pem,
    sign_node_csr,
    write_new_file,
    write_private_key,
    write_public_file,
)

__all__ = [
    "MAX_NODE_CERT_DAYS",
    "NODE_CERT_VALIDITY",
    "PUBLIC_FILE_MODE",
    "CertificateNotValidNow",
    "check_node_csr",
    "check_node_tls",
    "create_national_ca",
    "create_node_request",
    "init_federation",
    "issue_node_certificate",
    "load_certificate_file",
    "load_ec_private_key",
    "load_ed25519_private_key",
    "load_national_ca",
    "node_alt_names",
    "node_csr",
    "node_subject",
    "parse_countries",
    "public_key_fingerprint",
    "read_csr_file",
    "read_private_key_pem",
    "sign_node_csr",
    "write_new_file",
    "write_private_key",
    "write_public_file",
]
