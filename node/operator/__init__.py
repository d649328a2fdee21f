"""The operator API: JSON lines over the node's unix socket, and its blocking client.

Owns the server the running node answers the CLI on, its connection and
request limits, and `OperatorClient` (`_operator`).

May import: node's shared modules, node.message, node.trust, node.store, node.config, node.service.
"""

from node.operator._operator import OperatorClient, OperatorServer, parse_cursor

__all__ = [
    "OperatorClient",
    "OperatorServer",
    "parse_cursor",
]
