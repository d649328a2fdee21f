#!/usr/bin/env bash
# Set everything up (a virtualenv in .venv with the package and its dev tools)
# and run the whole check: generated code fresh, ruff, mypy, then every test.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "== generated protobuf code"
.venv/bin/python scripts/gen_protos.py --check
echo "== ruff"
.venv/bin/ruff check node gateway tests bench scripts
echo "== mypy"
.venv/bin/mypy node gateway
echo "== pytest (one worker per core: pytest-xdist)"
.venv/bin/python -m pytest -n auto "$@"
echo "== benchmark regression guard (ratios, quick size)"
.venv/bin/python bench/run.py --size quick --check bench/baseline-quick.json
