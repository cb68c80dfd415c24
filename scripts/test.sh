#!/usr/bin/env bash
# Install the test dependencies (system services included) and run the whole suite:
# lint, format check, then every test against real servers. Fails on any failure and when no
# test ran (pytest exits 5 when it collects nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
