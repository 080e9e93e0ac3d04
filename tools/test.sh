#!/usr/bin/env bash
# Runs every test of the repository: installs missing Debian packages, builds everything,
# runs `bazel test //...` (never from cached results) and ends with the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/deps/install.sh || { echo "0 passed, 1 failed"; exit 1; }
# Tests always run: a result cached from an earlier run (the disk cache is shared between
# checkouts) would prove nothing about this machine and this moment.
bazel test --nocache_test_results //... "$@"
bazel_status=$?
tools/ci/test_summary.py
summary_status=$?
# Bazel exits 4 when there are no tests to run; anything else non-zero is a failure.
if [ "$summary_status" -ne 0 ] || { [ "$bazel_status" -ne 0 ] && [ "$bazel_status" -ne 4 ]; }; then
  exit 1
fi
