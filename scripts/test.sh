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
# A whole-run cap well past the suite's 6 minutes: a test that leaves a thread
# nothing will end (once, a deadlocked store worker after pytest-timeout failed
# its test) makes the interpreter wait forever at exit; fail then, with a word.
run_pytest() {
    local status=0
    timeout --kill-after=30 1800 .venv/bin/python -m pytest -n auto "$@" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "pytest did not end within 30 minutes: a test or a thread it left behind hangs" >&2
    fi
    [ "$status" -eq 0 ] || exit "$status"
}
echo "== pytest (one worker per core: pytest-xdist)"
EWX_TEST_STORE=sqlite run_pytest "$@"
# The integration, hostile-input and fault suites again with every node on a
# PostgreSQL database: each worker starts its own server from the pgserver
# wheel in a temporary folder (tests/support/postgres.py); sqlite_only tests
# are skipped.
echo "== pytest on PostgreSQL (EWX_TEST_STORE=postgresql: tests/federation, tests/node/store)"
EWX_TEST_STORE=postgresql run_pytest tests/federation tests/node/store "$@"
echo "== benchmark regression guard (ratios, quick size)"
.venv/bin/python bench/run.py --size quick --check bench/baseline-quick.json
