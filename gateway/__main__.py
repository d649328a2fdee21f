"""`python -m gateway` runs the `ewx` command."""

from gateway.cli import main

raise SystemExit(main())
