"""The federation trust file, who a peer is, and signed changes to the trust.

Owns the trust file and its key lookups by purpose and validity (`_trust`),
node identities and certificate checks (`_identity`) and trust updates: key
rotation and revocation messages, signed and endorsed (`_updates`).

May import: node's shared modules, node.crypto, node.message.
"""

from node.trust._identity import (
    NODE_URI_PREFIX,
    ca_country,
    log_origin,
    node_dns_name,
    node_id_from_certificate,
    node_uri,
    witness_name,
)
from node.trust._trust import (
    FEDERATION_NAME,
    FORMAT,
    MAX_TRUST_FILE_BYTES,
    KeyEntry,
    Member,
    RevocationReason,
    Trust,
    describe_validation_error,
)
from node.trust._updates import (
    CertificateRevocation,
    Grant,
    KeyRevocation,
    build_update,
    describe,
    endorse_update,
    peek,
    replay,
    sign_update,
    summarize,
    verify_update,
)

__all__ = [
    "FEDERATION_NAME",
    "FORMAT",
    "MAX_TRUST_FILE_BYTES",
    "NODE_URI_PREFIX",
    "CertificateRevocation",
    "Grant",
    "KeyEntry",
    "KeyRevocation",
    "Member",
    "RevocationReason",
    "Trust",
    "build_update",
    "ca_country",
    "describe",
    "describe_validation_error",
    "endorse_update",
    "log_origin",
    "node_dns_name",
    "node_id_from_certificate",
    "node_uri",
    "peek",
    "replay",
    "sign_update",
    "summarize",
    "verify_update",
    "witness_name",
]
