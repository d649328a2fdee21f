#!/usr/bin/env bash
# Set everything up (a virtualenv in .venv with the package) and run `ewx demo`:
# three local nodes, a fresh development PKI, the gallium and germanium
# scenario, and the audit of their logs. Extra arguments go to `ewx demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/ewx demo "$@"
