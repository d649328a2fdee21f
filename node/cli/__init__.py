"""The `ewx` command line of the node: one module per command group.

`_main` assembles the parser from the groups and runs a command; only it
imports them. Shared by every group: `_common` (exit codes, configuration,
operator client, output, --out/--force) and `_alert_fields` (the flags that
shape an alert, shared with `ewx ews approve`). The groups: `_pki` (`ewx pki
init/show/ca/csr/sign`), `_rotation` (`ewx pki rotate/endorse/announce`: keys
rotated and revoked), `_alerts` (`ewx alert`), `_trilateral` (`ewx watchlist`, `ewx policy`), `_node`
(`ewx status`, `ewx node rejoin/first-start`), `_health` (`ewx health`, the
node's probe), `_backup` (`ewx backup`, `ewx restore`), `_store` (`ewx store
migrate`), `_outbox` (`ewx outbox`), `_audit` (`ewx log export`, `ewx audit`);
`ewx ews` is node/ews/cli.py. The gateway adds `serve` and `demo` (gateway/cli.py).

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
