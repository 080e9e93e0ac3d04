#!/usr/bin/env bash
# Config at scale: a generated config of 10,000 routes and 1,000 clusters loaded by sluice
# (--config-dir, 2 workers), then reloaded with SIGHUP with one route changed: the loader's, the
# compile and the publish times (from the proxy's own log line and metrics), time to ready, RSS
# before and after, memory per cluster and per route, and a request through the table's last
# route. Everything runs on 127.0.0.1 and is stopped at the end. See docs/benchmarks.md.
#
# Settings (environment): SCALE_ROUTES=10000 SCALE_CLUSTERS=1000 SCALE_REPEAT=3 SCALE_WORKERS=2
#   SCALE_SKIP_BUILD=1 (use what bazel-bin holds)  SCALE_KEEP=1 (keep the work directory)
#   SCALE_REPORT=FILE (also write the Markdown report there)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

targets=(//proxy/server:sluice //tools/echo:sluice-echo //tools/bench:config_scale)
if [ "${SCALE_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && bazel build -c opt "${targets[@]}")
fi
bin="$(cd "$repo" && bazel info -c opt bazel-bin 2>/dev/null)"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-scale.XXXXXX")
# Copies, so that a rebuild in this work tree during the run cannot swap a binary under us.
mkdir -p "$work/bin"
for b in proxy/server/sluice tools/echo/sluice-echo tools/bench/config_scale; do
  [ -x "$bin/$b" ] || { echo "scale: no binary at $bin/$b" >&2; exit 1; }
  cp "$bin/$b" "$work/bin/"
done

args=(run --sluice "$work/bin/sluice" --echo "$work/bin/sluice-echo"
  --config-scale "$work/bin/config_scale" --workdir "$work/run"
  --routes "${SCALE_ROUTES:-10000}" --clusters "${SCALE_CLUSTERS:-1000}"
  --repeat "${SCALE_REPEAT:-3}" --workers "${SCALE_WORKERS:-2}")
[ "${SCALE_KEEP:-0}" = 1 ] && args+=(--keep)
[ -n "${SCALE_REPORT:-}" ] && args+=(--report "$SCALE_REPORT")
status=0
python3 "$here/scale.py" "${args[@]}" || status=$?
[ "${SCALE_KEEP:-0}" = 1 ] || rm -rf "$work"
exit "$status"
