#!/usr/bin/env bash
# Ceph's s3-tests selection (tests/s3tests/selection.txt) against a fresh `mailcrate serve` and
# against moto's server, in one run; prints both pass counts (and, with --show-failures, what
# failed where). CI runs the mailcrate half as tests/s3tests/test_s3tests.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.s3tests.runner --target both "$@"
