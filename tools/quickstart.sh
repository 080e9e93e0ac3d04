#!/usr/bin/env bash
# The quickstart: installs missing Debian packages, builds, and runs the whole system on
# loopback: sluice-cp on a copy of examples/quickstart/, two sluice-echo upstreams (8081, 8082)
# and the sluice proxy (8080, admin 9901) configured by the control plane. Prints what to try;
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
tools/deps/install.sh
bazel build //control-plane:sluice-cp //tools/sluicectl //proxy/server:sluice //tools/echo:sluice-echo
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

"$bin/tools/echo/sluice-echo" --listen 127.0.0.1:8081 --name echo-1 &
pids+=($!)
"$bin/tools/echo/sluice-echo" --listen 127.0.0.1:8082 --name echo-2 &
pids+=($!)
"$bin/proxy/server/sluice" --xds 127.0.0.1:18000 --node-id quickstart --node-group default \
  --admin 127.0.0.1:9901 &
proxy=$!
pids+=($proxy)
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:9901/ready >/dev/null 2>&1 && break
  kill -0 "$proxy" 2>/dev/null || { echo "quickstart: sluice failed to start (ports 8080, 9901 in use?)"; exit 1; }
  sleep 0.1
done
curl -sf http://127.0.0.1:9901/ready >/dev/null || { echo "quickstart: sluice did not become ready"; exit 1; }

cat <<EOT

Sluice is running on loopback:
  proxy                http://127.0.0.1:8080/        (listener "public")
  proxy admin          http://127.0.0.1:9901/ready   /metrics /config_dump /clusters
  upstreams            sluice-echo on 127.0.0.1:8081 (echo-1) and 127.0.0.1:8082 (echo-2)
  control plane        ADS 127.0.0.1:18000, management 127.0.0.1:18001, metrics :18002
  config directory     $config_dir

Try, in another terminal, in $repo:
  curl -i http://127.0.0.1:8080/hello          # through the proxy to an echo upstream
  curl -s http://127.0.0.1:8080/healthz        # a direct response from the proxy
  curl -i http://127.0.0.1:8080/v0/users       # a redirect to /api/users
  curl -s http://127.0.0.1:9901/metrics | grep sluice_http_downstream_rq_total
  bazel-bin/tools/sluicectl/sluicectl status
  bazel-bin/tools/sluicectl/sluicectl get all
  bazel-bin/tools/sluicectl/sluicectl get routes -o yaml
  bazel-bin/tools/sluicectl/sluicectl validate examples/quickstart
  curl -s http://127.0.0.1:18002/metrics | grep sluice_cp_
  # edit $config_dir/clusters.yaml (add an endpoint), then run status again:
  # a new version is published; a broken edit is reported and the last good version keeps serving.

Press Ctrl-C to stop.
EOT
wait -n "${pids[@]}"
