"""The node service: publishing, receiving, receipts, witnessing, trust updates, views.

Owns NodeService and the transactions it composes from the checks and the
store (`_service`, with `_state`, `_trust`, `_views`, `_witnessing`,
`_rejoin`), the link table the gateway writes (`_links`), the message
lifecycle rules (`_lifecycle`), key rotation at the node (`_rotation`),
the log export (`_export`), and backup and restore of the store
(`_backup`). Knows nothing of gRPC: the gateway calls its methods.

May import: every node package below the operator API and the CLI.
"""

from node.service._backup import (
    Restored,
    StoreCheck,
    backup_store,
    check_backup,
    check_store_file,
    node_is_running,
    restore_store,
)
from node.service._context import Observer
from node.service._export import export_bundle
from node.service._links import LinkState
from node.service._receiving import StreamTurn
from node.service._rejoin import HeldByPeer
from node.service._rotation import next_key_path, node_trust, prepare_rotation
from node.service._service import NodeService
from node.service._stores import open_node_store, read_node_store
from node.service._views import micros

__all__ = [
    "HeldByPeer",
    "LinkState",
    "NodeService",
    "Observer",
    "Restored",
    "StoreCheck",
    "StreamTurn",
    "backup_store",
    "check_backup",
    "check_store_file",
    "export_bundle",
    "micros",
    "next_key_path",
    "node_is_running",
    "node_trust",
    "open_node_store",
    "prepare_rotation",
    "read_node_store",
    "restore_store",
]
