#!/usr/bin/env bash
# Runs every test of the repository: installs missing Debian packages, builds everything,
# runs `bazel test //...` and ends with the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/deps/install.sh || { echo "0 passed, 1 failed"; exit 1; }
bazel test //... "$@"
bazel_status=$?
tools/ci/test_summary.py
summary_status=$?
# Bazel exits 4 when there are no tests to run; anything else non-zero is a failure.
if [ "$summary_status" -ne 0 ] || { [ "$bazel_status" -ne 0 ] && [ "$bazel_status" -ne 4 ]; }; then
  exit 1
fi
