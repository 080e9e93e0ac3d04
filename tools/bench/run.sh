#!/usr/bin/env bash
# The side-by-side benchmark: the same wrk workload direct to an nginx upstream (the limit), through
# sluice, through HAProxy and through nginx, interleaved (A B C D A B C D ...) in one sitting, with
# the load generator and the upstream pinned to one CPU and the proxy under test to the other.
# Installs what it needs, builds sluice with optimizations, writes tools/bench/results/<time>.md
# (with a PNG chart and the raw data beside it). See docs/benchmarks.md for the method.
#
# Settings (environment):
#   BENCH_CONNS="1 16 64 256"  BENCH_SIZES="12 16k"   keep-alive matrix
#   BENCH_RUNS=5  BENCH_DURATION=5  BENCH_WARMUP=2    runs per point, seconds per run and warm-up
#   BENCH_SYSCALL_DURATION=3                          the separate run that counts system calls
#   BENCH_TARGETS="direct sluice haproxy nginx"
#   BENCH_CLOSE=1  BENCH_UPLOAD=1  BENCH_FEATURES=1  BENCH_SCALING=1  BENCH_PROFILE=1  BENCH_ALLOCS=1
#                                                     0 skips that part
#   BENCH_IDLE_CONNS=10000   memory per idle keep-alive connection, measured with this many (0 skips)
#   BENCH_POOL=1024      idle upstream connections each proxy may keep
#   BENCH_NICE=-20       nice level of wrk, the upstream and the proxies (as root), so that other work
#                        on the machine disturbs the runs less; "" runs them at the default level
#   BENCH_QUIET=15 BENCH_QUIET_WAIT=30   before each run, wait up to QUIET_WAIT s for the machine
#                        to be at most QUIET % busy (other processes), then run anyway
#   BENCH_QUICK=1        a smoke run: 16 connections, 12 B, one 2 s run per point
#   BENCH_SKIP_INSTALL=1 BENCH_SKIP_BUILD=1 BENCH_SLUICE=PATH   use what is there
#   BENCH_KEEP=1         keep the run directory (configs, logs, raw wrk output)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  : "${BENCH_CONNS:=16}" "${BENCH_SIZES:=12}" "${BENCH_RUNS:=1}" "${BENCH_DURATION:=2}"
  : "${BENCH_WARMUP:=1}" "${BENCH_SYSCALL_DURATION:=1}" "${BENCH_IDLE_CONNS:=1000}"
fi
conns_list=${BENCH_CONNS:-1 16 64 256}
sizes=${BENCH_SIZES:-12 16k}
runs=${BENCH_RUNS:-5}
duration=${BENCH_DURATION:-5}
warmup=${BENCH_WARMUP:-2}
syscall_duration=${BENCH_SYSCALL_DURATION:-3}
targets=${BENCH_TARGETS:-direct sluice haproxy nginx}
pool=${BENCH_POOL:-1024}
idle_conns=${BENCH_IDLE_CONNS:-10000}
quiet_max=${BENCH_QUIET:-15}
quiet_wait=${BENCH_QUIET_WAIT:-30}
prio=()
if [ "${BENCH_NICE--20}" != "" ] && [ "$(id -u)" -eq 0 ]; then prio=(nice -n "${BENCH_NICE--20}"); fi
# The Connection: close, upload and feature-cost points.
close_conns=64
upload_conns=16
feature_conns=64
loadgen_cpu=0
proxy_cpu=1
# Where wrk runs and with how many threads (the scaling phase frees it to use both CPUs).
wrk_cpus=$loadgen_cpu
wrk_threads=1

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# --- install, build --------------------------------------------------------------------------
if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
  "$repo/tools/deps/install.sh"
  "$repo/tools/deps/install.sh" "$repo/tools/deps/bench-packages.txt"
fi
for tool in wrk nginx haproxy taskset curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is missing (tools/deps/install.sh tools/deps/bench-packages.txt)"
done
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs: the load generator and upstream on one, the proxy on the other"

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
sluice_bin=${BENCH_SLUICE:-}
if [ -z "$sluice_bin" ]; then
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    (cd "$repo" && bazel build -c opt //proxy/server:sluice)
  fi
  sluice_bin="$(cd "$repo" && bazel info -c opt bazel-bin 2>/dev/null)/proxy/server/sluice"
fi
[ -x "$sluice_bin" ] || die "no sluice binary at $sluice_bin"
# A copy, so that a rebuild in this work tree during the run cannot swap the binary under us.
mkdir -p "$run_dir/bin"
cp "$sluice_bin" "$run_dir/bin/sluice"

# --- processes -------------------------------------------------------------------------------
pids=()      # everything started here, stopped on exit
probes=0     # whether the malloc uprobes (allocation counts) are defined
scraper=""   # the /metrics scraper while it runs
idle_client=""  # the idle-connections client while it runs
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  [ -z "$scraper" ] || kill "$scraper" 2>/dev/null || true
  [ -z "$idle_client" ] || kill "$idle_client" 2>/dev/null || true
  [ "$probes" = 0 ] || perf probe -q -d 'sluice_bench:*' 2>/dev/null || true
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  # Whatever else still runs in the background of this script (wrk, perf, samplers).
  local -a rest
  mapfile -t rest < <(jobs -p)
  [ ${#rest[@]} -eq 0 ] || kill "${rest[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
    log "run directory kept: $run_dir"
  else
    rm -rf "$run_dir"
  fi
  exit "$status"
}
trap cleanup INT TERM EXIT

bench_py() { python3 "$here/bench.py" "$@"; }
t="$here/templates"

declare -A port admin main_pid
read -r -a free < <(bench_py ports 40)
next_port() { port_out=${free[0]}; free=("${free[@]:1}"); }

wait_http() {  # URL PID [HEADER]: until URL answers 2xx, or fail if PID died
  local -a header=()
  [ -z "${3:-}" ] || header=(-H "$3")
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "${header[@]}" "$1" && return 0
    kill -0 "$2" 2>/dev/null || die "process $2 exited before $1 answered (logs in $run_dir)"
    sleep 0.1
  done
  die "$1 did not answer within 10s (logs in $run_dir)"
}

start_upstream() {
  local d="$run_dir/upstream"
  mkdir -p "$d/tmp"
  next_port; port[upstream]=$port_out
  next_port; admin[upstream]=$port_out
  bench_py render "$t/upstream-nginx.conf" "$d/nginx.conf" DIR="$d" PORT="${port[upstream]}" \
    STATUS_PORT="${admin[upstream]}" KIB="$(printf 'x%.0s' $(seq 1 1024))"
  taskset -c "$loadgen_cpu" "${prio[@]}" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
  pids+=($!); main_pid[upstream]=$!
  wait_http "http://127.0.0.1:${port[upstream]}/12" "${main_pid[upstream]}"
  port[direct]=${port[upstream]}
}

start_sluice() {  # NAME ROUTES_TEMPLATE [WORKERS [CPUS [CLUSTER_TEMPLATE]]]
  local d="$run_dir/$1" workers=${3:-1} cpus=${4:-$proxy_cpu} cluster=${5:-sluice-cluster.yaml}
  mkdir -p "$d/conf"
  next_port; port[$1]=$port_out
  next_port; admin[$1]=$port_out
  bench_py render "$t/sluice-listener.yaml" "$d/conf/listener.yaml" PORT="${port[$1]}"
  bench_py render "$t/$cluster" "$d/conf/cluster.yaml" POOL="$pool" \
    UPSTREAM_PORT="${port[upstream]}"
  bench_py render "$t/$2" "$d/conf/routes.yaml" "JWKS<$run_dir/jwt/jwks.json"
  taskset -c "$cpus" "${prio[@]}" "$run_dir/bin/sluice" --config-dir "$d/conf" --workers "$workers" \
    --admin "127.0.0.1:${admin[$1]}" --log-level warn >"$d/sluice.log" 2>&1 &
  pids+=($!); main_pid[$1]=$!
  wait_http "http://127.0.0.1:${admin[$1]}/ready" "${main_pid[$1]}"
  wait_http "http://127.0.0.1:${port[$1]}/12" "${main_pid[$1]}" "$(credential "$1")"
}

credential() {  # TARGET: the header a request to it needs, if any
  case "$1" in
    *+apikey) echo "x-api-key: bench-api-key-0123456789abcdef" ;;
    *+jwt | *+jwt-uncached) echo "Authorization: Bearer $(cat "$run_dir/jwt/token.txt")" ;;
  esac
}

start_haproxy() {  # NAME VARIANT (bare, routes20, accesslog, lb, hc, hash)
  local d="$run_dir/$1" routes="=" glog="" dlog="" u="${port[upstream]}"
  local backend="server s1 127.0.0.1:$u"
  # The balancer and health-check rows: the same three endpoints as sluice's.
  case "$2" in
    lb) backend="balance leastconn
    server s1 127.0.0.1:$u
    server s2 127.0.0.2:$u
    server s3 127.0.0.3:$u" ;;
    hash) backend="balance source
    hash-type consistent
    server s1 127.0.0.1:$u
    server s2 127.0.0.2:$u
    server s3 127.0.0.3:$u" ;;
    hc) backend="option httpchk GET /12
    server s1 127.0.0.1:$u check inter 1s maxconn 100000
    server s2 127.0.0.2:$u check inter 1s maxconn 100000
    server s3 127.0.0.3:$u check inter 1s maxconn 100000" ;;
  esac
  mkdir -p "$d"
  next_port; port[$1]=$port_out
  next_port; admin[$1]=$port_out
  [ "$2" = routes20 ] && routes="<$t/haproxy-routes20.cfg"
  if [ "$2" = accesslog ]; then
    glog="log stdout format raw local0"
    dlog="log global
    log-format '{\"time\":\"%tr\",\"client\":\"%ci\",\"method\":\"%HM\",\"path\":\"%HP\",\"status\":%ST,\"bytes\":%B,\"duration_ms\":%Ta,\"upstream\":\"%si:%sp\",\"upstream_ms\":%Tr}'"
  fi
  bench_py render "$t/haproxy.cfg" "$d/haproxy.cfg" DIR="$d" PORT="${port[$1]}" \
    ADMIN_PORT="${admin[$1]}" UPSTREAM_PORT="${port[upstream]}" "ROUTES$routes" \
    GLOBAL_LOG="$glog" DEFAULTS_LOG="$dlog" BACKEND="$backend"
  # -db: stay in the foreground, one process. With the access log on, stdout is the log file.
  taskset -c "$proxy_cpu" "${prio[@]}" haproxy -db -f "$d/haproxy.cfg" >"$d/access.log" 2>"$d/haproxy.log" &
  pids+=($!); main_pid[$1]=$!
  wait_http "http://127.0.0.1:${port[$1]}/12" "${main_pid[$1]}"
}

start_nginx() {  # NAME VARIANT (bare, routes20, accesslog)
  local d="$run_dir/$1" locations="$t/nginx-bare.conf" access="access_log off;"
  mkdir -p "$d/tmp"
  next_port; port[$1]=$port_out
  next_port; admin[$1]=$port_out
  [ "$2" = routes20 ] && locations="$t/nginx-routes20.conf"
  if [ "$2" = accesslog ]; then
    bench_py render "$t/nginx-json-log.conf" "$d/json-log.conf" DIR="$d"
    access="<$d/json-log.conf"
  else
    access="=$access"
  fi
  bench_py render "$t/nginx.conf" "$d/nginx.conf" DIR="$d" PORT="${port[$1]}" \
    ADMIN_PORT="${admin[$1]}" UPSTREAM_PORT="${port[upstream]}" POOL="$pool" \
    "LOCATIONS<$locations" "ACCESS_LOG$access"
  taskset -c "$proxy_cpu" "${prio[@]}" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
  pids+=($!); main_pid[$1]=$!
  wait_http "http://127.0.0.1:${port[$1]}/12" "${main_pid[$1]}"
}

start_target() {  # NAME: sluice, haproxy, nginx or one of them with +routes20 / +accesslog
  local base=${1%%+*} variant=bare
  [ "$1" = "$base" ] || variant=${1#*+}
  case "$base" in
    sluice)
      case "$variant" in
        routes20) start_sluice "$1" sluice-routes20.yaml ;;
        lb) start_sluice "$1" sluice-routes.yaml 1 "$proxy_cpu" sluice-cluster-lb.yaml ;;
        hash) start_sluice "$1" sluice-routes-hash.yaml 1 "$proxy_cpu" sluice-cluster-maglev.yaml ;;
        hc) start_sluice "$1" sluice-routes.yaml 1 "$proxy_cpu" sluice-cluster-hc.yaml ;;
        apikey) start_sluice "$1" sluice-routes-apikey.yaml ;;
        jwt | jwt-uncached) start_sluice "$1" sluice-routes-jwt.yaml ;;
        rbac) start_sluice "$1" sluice-routes-rbac.yaml ;;
        # The scaling phase: one or two workers, free to run on both CPUs.
        w1) start_sluice "$1" sluice-routes.yaml 1 "$loadgen_cpu,$proxy_cpu" ;;
        w2) start_sluice "$1" sluice-routes.yaml 2 "$loadgen_cpu,$proxy_cpu" ;;
        *) start_sluice "$1" sluice-routes.yaml ;;
      esac
      ;;
    haproxy) start_haproxy "$1" "$variant" ;;
    nginx) start_nginx "$1" "$variant" ;;
    *) die "unknown target $1" ;;
  esac
}

# A process and its children: nginx's CPU time and memory are its master's and worker's.
tree_pids() {  # PID
  echo "$1"
  pgrep -P "$1" || true
}
# The processes whose CPU time and memory count as the proxy's.
proxy_pids() {  # TARGET
  local name=${1%%+metrics}
  [ "$name" = direct ] && return 0
  tree_pids "${main_pid[$name]}"
}
cpu_ticks() {  # PID...: utime + stime, all threads
  local total=0 p f
  for p in "$@"; do
    read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
rss_kb() {  # PID...
  local total=0 p v
  for p in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
    total=$((total + v))
  done
  echo "$total"
}
cpu_line() {  # N: "busy total" jiffies of CPU N ("": all CPUs)
  awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}
# Before a run: wait (a while) until what else runs on the machine has calmed down.
quiet_busy=0 quiet_waited=0
wait_quiet() {
  local b0 t0 b1 t1 tenths=0
  while :; do
    read -r b0 t0 < <(cpu_line "")
    sleep 0.5
    read -r b1 t1 < <(cpu_line "")
    quiet_busy=$((t1 > t0 ? 100 * (b1 - b0) / (t1 - t0) : 0))
    [ "$quiet_busy" -le "$quiet_max" ] && break
    tenths=$((tenths + 5))
    if [ "$tenths" -ge $((quiet_wait * 10)) ]; then
      log "machine still ${quiet_busy}% busy after ${quiet_wait}s; running anyway"
      break
    fi
  done
  quiet_waited=$((tenths / 10))
}
upstream_accepts() {
  curl -sf "http://127.0.0.1:${admin[upstream]}/" | awk 'NR == 3 {print $1}'
}

wrk_args() {  # MODE CONNS SIZE TARGET: prints the URL and options
  local path=/$3 script="$run_dir/report.lua" extra=()
  case "$1" in
    close) extra=(-H "Connection: close") ;;
    upload) path=/upload script="$run_dir/upload.lua" ;;
  esac
  case "$4" in
    *+apikey | *+jwt) extra+=(-H "$(credential "$4")") ;;
    *+jwt-uncached) script="$run_dir/jwt-uncached.lua" ;;
  esac
  printf '%s\n' "-t$wrk_threads" "-c$2" --latency --timeout 5s -s "$script" "${extra[@]}" \
    "http://127.0.0.1:${port[${4%%+metrics}]}$path"
}

metrics_url() {  # TARGET (with +metrics)
  local name=${1%%+metrics}
  case "$name" in
    nginx) echo "http://127.0.0.1:${admin[$name]}/" ;;  # stub_status: no Prometheus exporter built in
    *) echo "http://127.0.0.1:${admin[$name]}/metrics" ;;
  esac
}
start_scraper() {  # TARGET: one scrape a second while the target is measured
  case "$1" in
    *+metrics)
      local url
      url=$(metrics_url "$1")
      taskset -c "$loadgen_cpu" "${prio[@]}" python3 "$here/bench.py" scrape "$url" &
      scraper=$!
      ;;
  esac
}
stop_scraper() {
  [ -z "$scraper" ] && return 0
  kill "$scraper" 2>/dev/null || true
  wait "$scraper" 2>/dev/null || true
  scraper=""
}

raw="$run_dir/raw.jsonl"
seq_no=0

# One wrk run against TARGET; appends a JSON line to raw.jsonl.
measure() {  # PHASE TARGET MODE CONNS SIZE RUN SECONDS
  local phase=$1 target=$2 mode=$3 conns=$4 size=$5 run=$6 secs=$7
  local -a args ppids
  local out c0 c1 c0b c1b t0 t1 u0 u1 a0 a1 rss_file rss_pid="" wrk_json rss ticks=null accepts
  local wrk_ticks
  local -a c0e c1e upids
  mapfile -t args < <(wrk_args "$mode" "$conns" "$size" "$target")
  mapfile -t ppids < <(proxy_pids "$target")
  mapfile -t upids < <(tree_pids "${main_pid[upstream]}")
  seq_no=$((seq_no + 1))
  out="$run_dir/wrk/$seq_no-$phase-$target-$mode-c$conns-$size-r$run.txt"
  rss_file="$out.rss"
  wait_quiet
  start_scraper "$target"
  a0=$(upstream_accepts)
  u0=$(cpu_ticks "${upids[@]}")
  read -r c0b c0 < <(cpu_line "$loadgen_cpu")
  read -r c1b c1 < <(cpu_line "$proxy_cpu")
  [ ${#ppids[@]} -eq 0 ] || t0=$(cpu_ticks "${ppids[@]}")
  if [ ${#ppids[@]} -gt 0 ]; then
    (sleep "$(awk -v s="$secs" 'BEGIN {print s / 2}')"; rss_kb "${ppids[@]}" >"$rss_file") &
    rss_pid=$!
  fi
  taskset -c "$wrk_cpus" "${prio[@]}" /usr/bin/time -f '%U %S' -o "$out.time" \
    wrk -d "${secs}s" "${args[@]}" >"$out" 2>&1 || true
  [ ${#ppids[@]} -eq 0 ] || t1=$(cpu_ticks "${ppids[@]}")
  u1=$(cpu_ticks "${upids[@]}")
  read -r -a c0e < <(cpu_line "$loadgen_cpu")
  read -r -a c1e < <(cpu_line "$proxy_cpu")
  a1=$(upstream_accepts)
  [ -z "$rss_pid" ] || wait "$rss_pid" || true
  stop_scraper
  wrk_json=$(sed -n 's/^BENCH-JSON //p' "$out")
  [ -n "$wrk_json" ] || { wrk_json=null; log "wrk printed no totals: $out"; }
  rss=$(cat "$rss_file" 2>/dev/null || echo null)
  [ ${#ppids[@]} -eq 0 ] || ticks=$((t1 - t0))
  # The stub_status request that reads the counter after the run is itself one accept.
  accepts=$((a1 - a0 - 1))
  wrk_ticks=$(awk -v hz="$(getconf CLK_TCK)" 'END {printf "%d", ($1 + $2) * hz + 0.5}' "$out.time")
  printf '{"phase":"%s","target":"%s","mode":"%s","conns":%s,"size":"%s","run":%s,"seconds":%s,"wrk":%s,"proxy_ticks":%s,"rss_kb":%s,"upstream_accepts":%s,"upstream_ticks":%s,"wrk_ticks":%s,"quiet_busy":%s,"quiet_waited":%s,"cpu0_busy":%s,"cpu0_total":%s,"cpu1_busy":%s,"cpu1_total":%s,"file":"%s"}\n' \
    "$phase" "$target" "$mode" "$conns" "$size" "$run" "$secs" "$wrk_json" "$ticks" "$rss" \
    "$accepts" "$((u1 - u0))" "$wrk_ticks" "$quiet_busy" "$quiet_waited" "$((c0e[0] - c0b))" "$((c0e[1] - c0))" "$((c1e[0] - c1b))" "$((c1e[1] - c1))" \
    "$(basename "$out")" >>"$raw"
  if [ "$run" -gt 0 ]; then
    log "$(printf '%-8s %-17s %-9s c=%-3s %-4s run %s: %s' "$phase" "$target" "$mode" "$conns" "$size" "$run" \
      "$(sed -n 's/^Requests\/sec: *//p' "$out") req/s")"
  fi
}

# System calls per request: a separate run with the proxy's syscalls counted by perf (tracepoints,
# little overhead), or by strace -c where perf cannot attach (strace slows the proxy a lot).
syscall_tool=none
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -o /dev/null -- true 2>/dev/null; then
  syscall_tool=perf
elif command -v strace >/dev/null; then
  syscall_tool=strace
fi
perf_events="raw_syscalls:sys_enter"
for s in read readv recvfrom recvmsg recvmmsg write writev sendto sendmsg sendmmsg sendfile64 splice \
  epoll_wait epoll_pwait epoll_ctl poll ppoll select pselect6 accept accept4 connect close shutdown \
  socket setsockopt getsockopt getsockname getpeername ioctl fcntl futex brk mmap munmap mprotect \
  madvise openat newfstatat fstat statx lseek pread64 pwrite64 clock_gettime gettimeofday getpid \
  gettid rt_sigprocmask rt_sigaction sched_yield nanosleep clock_nanosleep timerfd_settime eventfd2 \
  pipe2 dup dup2 dup3 getrusage times uname kill tgkill; do
  if [ -d "/sys/kernel/tracing/events/syscalls/sys_enter_$s" ] ||
    [ -d "/sys/kernel/debug/tracing/events/syscalls/sys_enter_$s" ]; then
    perf_events+=",syscalls:sys_enter_$s"
  fi
done

measure_syscalls() {  # TARGET MODE CONNS SIZE
  local target=$1 counter file p tid
  local -a ppids tids=()
  [ "$syscall_tool" = none ] && return 0
  mapfile -t ppids < <(proxy_pids "$target")
  [ ${#ppids[@]} -gt 0 ] || return 0
  file="$run_dir/syscalls/$target-$2-c$3-$4.$syscall_tool"
  if [ "$syscall_tool" = perf ]; then
    perf stat -x, -o "$file" -e "$perf_events" -p "$(IFS=,; echo "${ppids[*]}")" &
  else
    for p in "${ppids[@]}"; do
      for tid in /proc/"$p"/task/*; do tids+=(-p "${tid##*/}"); done
    done
    strace -c -f -o "$file" "${tids[@]}" 2>/dev/null &
  fi
  counter=$!
  sleep 0.5
  measure syscalls "$target" "$2" "$3" "$4" 1 "$syscall_duration"
  kill -INT "$counter" 2>/dev/null || true
  wait "$counter" 2>/dev/null || true
  # Tie the count to the run measure() just recorded.
  sed -i '$ s|}$|,"syscalls_file":"'"$(basename "$file")"'"}|' "$raw"
}

# A flat CPU profile of the proxy at one point (perf record, no call graphs: the builds have no
# frame pointers).
profile() {  # TARGET MODE CONNS SIZE
  local target=$1 rec file
  local -a ppids
  mapfile -t ppids < <(proxy_pids "$target")
  file="$run_dir/profiles/$target.perf"
  perf record -q -F 2000 -o "$file.data" -p "$(IFS=,; echo "${ppids[*]}")" >/dev/null 2>&1 &
  rec=$!
  sleep 0.5
  measure profile "$target" "$2" "$3" "$4" 1 "$duration"
  kill -INT "$rec" 2>/dev/null || true
  wait "$rec" 2>/dev/null || true
  {
    perf report -i "$file.data" --stdio --no-children --sort dso 2>/dev/null | grep -v '^#' |
      grep -v '^$' | head -6
    echo
    perf report -i "$file.data" --stdio --no-children --sort dso,symbol --percent-limit 1 \
      2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
  } | sed -E 's/[[:space:]]+$//; s/([[:space:]]+-)+$//; s/ {3,}/  /g' >"$file" || true
}

# Heap allocations per request: a separate run with libc's allocation functions counted by perf
# through uprobes (every call traps, so this run is slow and only its counts are used).
alloc_funcs="malloc calloc realloc posix_memalign aligned_alloc"
alloc_events=""
allocs() {  # TARGET MODE CONNS SIZE
  local target=$1 counter file
  local -a ppids
  mapfile -t ppids < <(proxy_pids "$target")
  [ ${#ppids[@]} -gt 0 ] || return 0
  file="$run_dir/allocs/$target-$2-c$3-$4.perf"
  perf stat -x, -o "$file" -e "$alloc_events" -p "$(IFS=,; echo "${ppids[*]}")" &
  counter=$!
  sleep 0.5
  measure allocs "$target" "$2" "$3" "$4" 1 "$syscall_duration"
  kill -INT "$counter" 2>/dev/null || true
  wait "$counter" 2>/dev/null || true
  sed -i '$ s|}$|,"allocs_file":"'"$(basename "$file")"'"}|' "$raw"
}
define_alloc_probes() {
  local libc f
  libc=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')
  [ -n "$libc" ] || return 1
  perf probe -q -d 'sluice_bench:*' 2>/dev/null || true
  probes=1
  for f in $alloc_funcs; do
    if perf probe -q -x "$libc" -a "sluice_bench:$f=$f" 2>/dev/null; then
      alloc_events+="${alloc_events:+,}sluice_bench:$f"
    fi
  done
  [ -n "$alloc_events" ]
}

# Memory per idle keep-alive connection: the RSS of a fresh proxy process before and after
# IDLE_CONNS connections that each made one request and then stay open.
idle_memory() {  # BASE (sluice, haproxy, nginx)
  local target=$1+idle ready="$run_dir/idle-$1.ready" client r0 r1 n
  local -a ppids
  start_target "$target"
  mapfile -t ppids < <(proxy_pids "$target")
  r0=$(rss_kb "${ppids[@]}")
  taskset -c "$loadgen_cpu" python3 "$here/bench.py" idle "${port[$target]}" "$idle_conns" "$ready" &
  client=$!
  idle_client=$client
  for _ in $(seq 1 1200); do
    [ -s "$ready" ] && break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.1
  done
  if [ -s "$ready" ]; then
    sleep 1
    r1=$(rss_kb "${ppids[@]}")
    n=$(cat "$ready")
    printf '{"phase":"idle","target":"%s","mode":"idle","conns":%s,"size":"12","run":1,"rss0_kb":%s,"rss1_kb":%s}\n' \
      "$1" "$n" "$r0" "$r1" >>"$raw"
    log "idle     $1: RSS $r0 KiB -> $r1 KiB with $n idle keep-alive connections"
  else
    log "idle     $1: the client did not get $idle_conns connections up"
  fi
  kill "$client" "${main_pid[$target]}" 2>/dev/null || true
  wait "$client" "${main_pid[$target]}" 2>/dev/null || true
  idle_client=""
}

# One point: warm-up, then RUNS rounds of all TARGETS in the same order, then the syscall runs.
point() {  # MODE CONNS SIZE TARGET...
  local mode=$1 conns=$2 size=$3 target r
  shift 3
  for target in "$@"; do measure warmup "$target" "$mode" "$conns" "$size" 0 "$warmup"; done
  for r in $(seq 1 "$runs"); do
    for target in "$@"; do measure main "$target" "$mode" "$conns" "$size" "$r" "$duration"; done
  done
  for target in "$@"; do measure_syscalls "$target" "$mode" "$conns" "$size"; done
}

# --- the run ---------------------------------------------------------------------------------
mkdir -p "$run_dir/wrk" "$run_dir/syscalls" "$run_dir/profiles" "$run_dir/allocs"
cp "$here/wrk/report.lua" "$run_dir/report.lua"
cat "$here/wrk/upload.lua" "$here/wrk/report.lua" >"$run_dir/upload.lua"
# RS256 tokens for the JWT rows: 8192, twice what a worker caches, so that each one verifies.
mkdir -p "$run_dir/jwt"
bench_py jwt "$run_dir/jwt" 8192
cat "$run_dir/jwt/tokens.lua" "$here/wrk/report.lua" >"$run_dir/jwt-uncached.lua"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
start_upstream
read -r -a main_targets <<<"$targets"
for target in "${main_targets[@]}"; do
  [ "$target" = direct ] || start_target "$target"
done
bench_py meta "$run_dir/meta.json" stamp="$stamp" repo="$repo" sluice="$run_dir/bin/sluice" \
  conns="$conns_list" sizes="$sizes" runs="$runs" duration="$duration" warmup="$warmup" \
  syscall_duration="$syscall_duration" syscall_tool="$syscall_tool" pool="$pool" \
  nice="${prio[*]}" quiet_max="$quiet_max" quiet_wait="$quiet_wait" \
  targets="$targets" loadgen_cpu="$loadgen_cpu" proxy_cpu="$proxy_cpu" \
  clk_tck="$(getconf CLK_TCK)" close_conns="$close_conns" upload_conns="$upload_conns" \
  idle_conns="$idle_conns" alloc_funcs="$alloc_funcs" \
  feature_conns="$feature_conns"
log "run directory $run_dir; upstream :${port[upstream]}; syscalls counted with $syscall_tool"

if [ "$idle_conns" -gt 0 ]; then
  for target in "${main_targets[@]}"; do
    [ "$target" = direct ] || idle_memory "$target"
  done
fi

for size in $sizes; do
  for conns in $conns_list; do point keepalive "$conns" "$size" "${main_targets[@]}"; done
done
if [ "${BENCH_CLOSE:-1}" = 1 ]; then point close "$close_conns" 12 "${main_targets[@]}"; fi
if [ "${BENCH_UPLOAD:-1}" = 1 ]; then point upload "$upload_conns" 12 "${main_targets[@]}"; fi

if [ "${BENCH_FEATURES:-1}" = 1 ]; then
  feature_targets=()
  for base in sluice haproxy nginx; do
    [[ " ${main_targets[*]} " == *" $base "* ]] || continue
    start_target "$base+routes20"
    feature_targets+=("$base" "$base+routes20" "$base+metrics")
    # Balancing over three endpoints, consistent hashing, and health checking (nginx's open
    # source build has no active health checks, so these rows compare sluice and HAProxy).
    if [ "$base" != nginx ]; then
      for v in lb hash hc; do
        start_target "$base+$v"
        feature_targets+=("$base+$v")
      done
    fi
    # Access control: sluice only (the others would need scripting or an enterprise module).
    if [ "$base" = sluice ]; then
      for v in apikey jwt jwt-uncached rbac; do
        start_target "$base+$v"
        feature_targets+=("$base+$v")
      done
    fi
    # sluice has no access log yet: its row says so instead of measuring something else.
    if [ "$base" != sluice ]; then
      start_target "$base+accesslog"
      feature_targets+=("$base+accesslog")
    fi
  done
  for target in "${feature_targets[@]}"; do
    measure fwarmup "$target" keepalive "$feature_conns" 12 0 "$warmup"
  done
  for r in $(seq 1 "$runs"); do
    for target in "${feature_targets[@]}"; do
      measure feature "$target" keepalive "$feature_conns" 12 "$r" "$duration"
    done
  done
fi

# Two workers against one: both sluice processes and wrk (two threads) free to use both CPUs,
# the upstream still on CPU 0. The machine has no spare core for the load generator, so the
# report judges scaling by the CPU each request costs the proxy (see docs/benchmarks.md).
if [ "${BENCH_SCALING:-1}" = 1 ] && [[ " ${main_targets[*]} " == *" sluice "* ]]; then
  start_target sluice+w1
  start_target sluice+w2
  wrk_cpus="$loadgen_cpu,$proxy_cpu"
  wrk_threads=2
  for target in direct sluice+w1 sluice+w2; do
    measure swarmup "$target" keepalive "$feature_conns" 12 0 "$warmup"
  done
  for r in $(seq 1 "$runs"); do
    for target in direct sluice+w1 sluice+w2; do
      measure scaling "$target" keepalive "$feature_conns" 12 "$r" "$duration"
    done
  done
  wrk_cpus=$loadgen_cpu
  wrk_threads=1
fi

if [ "${BENCH_ALLOCS:-1}" = 1 ] && [ "$syscall_tool" = perf ]; then
  if define_alloc_probes; then
    for target in "${main_targets[@]}"; do
      [ "$target" = direct ] || allocs "$target" keepalive "$feature_conns" 12
    done
    perf probe -q -d 'sluice_bench:*' 2>/dev/null || true
    probes=0
  else
    log "perf cannot put uprobes on libc's malloc here: no allocation counts"
  fi
fi

if [ "${BENCH_PROFILE:-1}" = 1 ] && command -v perf >/dev/null; then
  for target in "${main_targets[@]}"; do
    [ "$target" = direct ] || profile "$target" keepalive 64 12
  done
fi

results="$here/results"
mkdir -p "$results"
cp "$raw" "$results/$stamp.jsonl"
bench_py report "$run_dir" "$results/$stamp.md" "$results/$stamp.png"
log "results: $results/$stamp.md"
