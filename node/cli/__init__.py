"""The `ewx` command line of the node: one module per command group.

`_common` (exit codes, configuration, operator client, output), `_alert_fields`
(the flags that shape an alert, shared with `ewx ews approve`), `_main` (the
parser and the node, alert, log, audit, outbox and pki commands),
`_rotation` (`ewx pki rotate/endorse/announce/revoke`), `_health` (`ewx
health`, the node's probe), `_backup` (`ewx backup`, `ewx restore`); `ewx ews` is
node/ews/cli.py. The gateway adds `serve` and `demo` (gateway/cli.py).

May import: all of node/.
"""

from node.cli._alert_fields import RAISE_DEFAULTS
from node.cli._common import EXIT_OK, EXIT_USAGE, load_config
from node.cli._main import Subcommands, build_parser, main, run

__all__ = [
    "EXIT_OK",
    "EXIT_USAGE",
    "RAISE_DEFAULTS",
    "Subcommands",
    "build_parser",
    "load_config",
    "main",
    "run",
]
