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
# Exit status 5 (no test selected) passes when EMPTY_OK is set: extra arguments
# (a -k, a path) may select nothing of the second pass's suites.
run_pytest() {
    local status=0
    timeout --kill-after=30 1800 .venv/bin/python -m pytest -n auto "$@" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "pytest did not end within 30 minutes: a test or a thread it left behind hangs" >&2
    fi
    if [ "$status" -eq 5 ] && [ -n "${EMPTY_OK:-}" ]; then
        echo "(no test of these suites selected)"
        status=0
    fi
    [ "$status" -eq 0 ] || exit "$status"
}
echo "== pytest on SQLite (one worker per core: pytest-xdist)"
EWX_TEST_STORE=sqlite run_pytest "$@"
# The exchange, hostile-input and fault suites again with every node on a
# PostgreSQL database: each worker starts its own server from the pgserver
# wheel in a temporary folder (tests/support/postgres.py); sqlite_only tests
# are skipped. Only these, to keep the whole script well under 10 minutes:
# all of tests/federation took 4 min on PostgreSQL on two cores, these 2;
# the store-level tests on PostgreSQL (tests/node/store/test_both_stores.py,
# tests/federation/test_standby.py) ran in the pass above already.
POSTGRESQL_SUITES=(
    tests/federation/test_exchange.py
    tests/federation/test_hostile_matrix.py
    tests/federation/test_faults.py
    tests/federation/test_relay.py
    tests/federation/test_rejoin.py
    tests/federation/test_transfer.py
    tests/federation/test_witnessing.py
    tests/gateway/test_delivery_stream.py
    tests/node/store/test_store_thread.py
)
echo "== pytest on PostgreSQL (EWX_TEST_STORE=postgresql: exchange, hostile input, faults)"
EWX_TEST_STORE=postgresql EMPTY_OK=1 run_pytest "${POSTGRESQL_SUITES[@]}" "$@"
echo "== benchmark regression guard (ratios, quick size)"
.venv/bin/python bench/run.py --size quick --check bench/baseline-quick.json
