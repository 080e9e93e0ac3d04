#!/usr/bin/env bash
# The quickstart: installs missing Debian packages, builds, and runs sluice-cp on a copy of
# examples/quickstart/. Prints what to try; Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
tools/deps/install.sh
bazel build //control-plane:sluice-cp //tools/sluicectl
bin=$(bazel info bazel-bin 2>/dev/null)

config_dir=${SLUICE_QUICKSTART_DIR:-$HOME/.cache/sluice/quickstart}
mkdir -p "$config_dir"
cp "$repo"/examples/quickstart/*.yaml "$config_dir"/

pids=()
cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  echo "quickstart: stopped"
}
trap cleanup INT TERM EXIT

"$bin/control-plane/sluice-cp" --config-dir "$config_dir" &
pids+=($!)

ctl="$bin/tools/sluicectl/sluicectl"
for _ in $(seq 1 50); do
  "$ctl" status >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "quickstart: sluice-cp failed to start (ports 18000-18002 in use?)"; exit 1; }
  sleep 0.2
done

cat <<EOT

Sluice control plane is serving $config_dir
  ADS for proxies      127.0.0.1:18000
  management API       127.0.0.1:18001   (sluicectl)
  metrics              http://127.0.0.1:18002/metrics

Try, in another terminal, in $repo:
  bazel-bin/tools/sluicectl/sluicectl status
  bazel-bin/tools/sluicectl/sluicectl get all
  bazel-bin/tools/sluicectl/sluicectl get routes -o yaml
  bazel-bin/tools/sluicectl/sluicectl validate examples/quickstart
  curl -s http://127.0.0.1:18002/metrics | grep sluice_cp_
  # edit $config_dir/clusters.yaml (add an endpoint), then run status again:
  # a new version is published; a broken edit is reported and the last good version keeps serving.

Press Ctrl-C to stop.
EOT
wait "${pids[0]}"
