#!/usr/bin/env python3
"""Helpers for tools/bench/run.sh: free ports, config templates, run metadata, and the report.

  bench.py ports N                         N free TCP ports on 127.0.0.1
  bench.py render TEMPLATE OUT ARG...      fill @KEY@ from KEY=VALUE or KEY<FILE (file contents)
  bench.py meta OUT KEY=VALUE...           machine, versions and settings as JSON
  bench.py idle PORT N READY_FILE          N keep-alive connections, one request each, then idle
  bench.py scrape URL                      GET URL once a second until killed
  bench.py report RUN_DIR OUT.md OUT.png   the markdown results and the chart from raw.jsonl
  bench.py jwt DIR COUNT                   an RS256 key set, a token, and COUNT tokens for wrk
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict

TARGET_ORDER = ["direct", "sluice", "haproxy", "nginx"]
TARGET_LABEL = {"direct": "direct (wrk -> upstream)", "sluice": "sluice", "haproxy": "HAProxy",
                "nginx": "nginx"}
SIZE_LABEL = {"12": "12 B", "16k": "16 KiB"}
MODE_LABEL = {"keepalive": "keep-alive", "close": "Connection: close", "upload": "1 MiB upload"}


def cmd_ports(args):
    socks = []
    for _ in range(int(args[0])):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def cmd_render(args):
    template, out, pairs = args[0], args[1], args[2:]
    values = {}
    for pair in pairs:
        m = re.match(r"^([A-Z0-9_]+)([=<])(.*)$", pair, re.S)
        if not m:
            sys.exit(f"render: bad argument {pair!r} (KEY=VALUE or KEY<FILE)")
        key, op, value = m.groups()
        if op == "<":
            with open(value) as f:
                value = f.read().rstrip("\n")
        values[key] = value
    with open(template) as f:
        text = f.read()

    def fill(m):
        if m.group(1) not in values:
            sys.exit(f"render: {template} needs @{m.group(1)}@")
        return values[m.group(1)]

    text = re.sub(r"@([A-Z0-9_]+)@", fill, text)
    with open(out, "w") as f:
        f.write(text)


def cmd_idle(args):
    """Opens N connections, sends one request on each and reads its answer, then keeps them all
    open and idle until killed, so the proxy's memory per idle keep-alive connection shows."""
    port, n, ready = int(args[0]), int(args[1]), args[2]
    request = b"GET /12 HTTP/1.1\r\nHost: bench\r\n\r\n"
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("idle: the proxy closed a connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        want = int(m.group(1)) if m else 0
        while len(body) < want:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("idle: the proxy closed a connection")
            body += chunk
        conns.append(s)
    with open(ready, "w") as f:
        f.write(f"{len(conns)}\n")
    signal.pause()


def cmd_scrape(args):
    """One long-lived process, so the load generator's CPU is not disturbed by a process start
    every second (which a curl loop would be)."""
    import urllib.request
    while True:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(args[0], timeout=5) as response:
                response.read()
        except OSError:
            pass
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def run(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def first_match(pattern, text):
    m = re.search(pattern, text)
    return m.group(1) if m else ""


def cmd_meta(args):
    out, pairs = args[0], args[1:]
    meta = dict(p.split("=", 1) for p in pairs)
    repo = meta["repo"]
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    debian = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else ""
    rev = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    dirty = run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no", "--", "proxy",
                 "common", "api", "third_party", "bazel", "WORKSPACE", "BUILD.bazel", ".bazelrc"])
    meta.update({
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024),
        "kernel": platform.release(),
        "debian": debian,
        "sluice_rev": rev + (" (with uncommitted changes)" if dirty else ""),
        "nginx": run(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": first_match(r"version (\S+)", run(["haproxy", "-v"])),
        "wrk": first_match(r"wrk (\S+)", run(["wrk", "-v"])),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    })
    with open(out, "w") as f:
        json.dump(meta, f, indent=1)


# --- report ------------------------------------------------------------------------------------


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0, unit=""):
    if x is None:
        return "-"
    if digits == 0:
        return f"{x:,.0f}{unit}"
    return f"{x:,.{digits}f}{unit}"


def fmt_range(xs, digits=0):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt(xs[0], digits)
    return f"{fmt(median(xs), digits)} ({fmt(min(xs), digits)}-{fmt(max(xs), digits)})"


def ratio(a, b):
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def base_target(target):
    return target.split("+")[0]


def parse_perf_counts(path):
    """{event: count} from a perf stat -x, file."""
    counts = {}
    if not os.path.exists(path):
        return counts
    for line in open(path).read().splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[0].strip().isdigit():
            counts[fields[2]] = int(fields[0])
    return counts


def parse_syscalls(path):
    """Total calls and calls by name from a perf stat -x, or strace -c file."""
    total, by_name = None, {}
    if not os.path.exists(path):
        return None, {}
    with open(path) as f:
        lines = f.read().splitlines()
    if path.endswith(".perf"):
        for line in lines:
            if not line or line.startswith("#"):
                continue
            fields = line.split(",")
            if len(fields) < 3 or not fields[0].strip().isdigit():
                continue
            value, event = int(fields[0]), fields[2]
            if event == "raw_syscalls:sys_enter":
                total = value
            elif event.startswith("syscalls:sys_enter_") and value:
                by_name[event[len("syscalls:sys_enter_"):]] = value
    else:
        for line in lines:
            fields = line.split()
            if len(fields) >= 5 and re.match(r"^[\d.]+$", fields[0]):
                name = fields[-1]
                calls = int(fields[3])
                if name == "total":
                    total = calls
                else:
                    by_name[name] = calls
    return total, by_name


class Run:
    def __init__(self, rec, clk_tck):
        self.rec = rec
        w = rec.get("wrk") or {}
        self.ok = bool(w)
        self.requests = w.get("requests", 0)
        secs = w.get("duration_us", 0) / 1e6
        self.rps = self.requests / secs if secs else None
        self.p50 = w.get("p50_us", 0) / 1000 if w else None
        self.p99 = w.get("p99_us", 0) / 1000 if w else None
        self.non2xx = w.get("non2xx", 0)
        self.sock_errors = sum(w.get(k, 0) for k in ("err_connect", "err_read", "err_write",
                                                     "err_timeout"))
        ticks = rec.get("proxy_ticks")
        self.cpu_us = ticks * 1e6 / clk_tck / self.requests if ticks is not None and self.requests else None
        self.proxy_busy = ticks / clk_tck / secs if ticks is not None and secs else None
        self.rss_mib = rec["rss_kb"] / 1024 if rec.get("rss_kb") is not None else None
        self.accepts = rec.get("upstream_accepts")
        self.cpu0_busy = rec["cpu0_busy"] / rec["cpu0_total"] if rec.get("cpu0_total") else None
        # CPU time that neither the proxy (CPU 1) nor wrk and the upstream (CPU 0) used: other
        # processes on the machine, which make a run less trustworthy.
        self.foreign1 = self.foreign0 = None
        if rec.get("cpu1_total"):
            self.foreign1 = max(0, rec["cpu1_busy"] - (ticks or 0)) / rec["cpu1_total"]
        if rec.get("cpu0_total") and rec.get("wrk_ticks") is not None:
            used = rec["wrk_ticks"] + rec.get("upstream_ticks", 0)
            self.foreign0 = max(0, rec["cpu0_busy"] - used) / rec["cpu0_total"]
        self.quiet_waited = rec.get("quiet_waited", 0)


class Point:
    """All runs of one target at one point."""

    def __init__(self, runs):
        self.runs = runs
        self.rps = [r.rps for r in runs]
        self.p50 = [r.p50 for r in runs]
        self.p99 = [r.p99 for r in runs]
        self.cpu_us = [r.cpu_us for r in runs]
        self.rss = [r.rss_mib for r in runs]
        self.accepts = [r.accepts for r in runs]
        self.non2xx = sum(r.non2xx for r in runs)
        self.sock_errors = sum(r.sock_errors for r in runs)
        self.cpu0_busy = [r.cpu0_busy for r in runs]
        self.proxy_busy = [r.proxy_busy for r in runs]
        self.foreign0 = [r.foreign0 for r in runs if r.foreign0 is not None]
        self.foreign1 = [r.foreign1 for r in runs if r.foreign1 is not None]
        self.quiet_waited = sum(r.quiet_waited for r in runs)
        self.syscalls = None  # (per request, {name: per request})
        self.allocs = None  # (per request, {function: per request})


def load(run_dir):
    meta = json.load(open(os.path.join(run_dir, "meta.json")))
    clk = int(meta.get("clk_tck", 100))
    recs = [json.loads(l) for l in open(os.path.join(run_dir, "raw.jsonl")) if l.strip()]
    groups = defaultdict(list)
    syscalls = {}
    allocs = {}
    idle = {}
    for rec in recs:
        key = (rec["mode"], rec["conns"], rec["size"], rec["target"])
        if rec["phase"] in ("main", "feature", "scaling"):
            groups[(rec["phase"],) + key].append(Run(rec, clk))
        elif rec["phase"] == "syscalls" and rec.get("syscalls_file"):
            total, by_name = parse_syscalls(os.path.join(run_dir, "syscalls", rec["syscalls_file"]))
            reqs = (rec.get("wrk") or {}).get("requests", 0)
            if total is not None and reqs:
                syscalls[key] = (total / reqs, {k: v / reqs for k, v in by_name.items()})
        elif rec["phase"] == "allocs" and rec.get("allocs_file"):
            counts = parse_perf_counts(os.path.join(run_dir, "allocs", rec["allocs_file"]))
            reqs = (rec.get("wrk") or {}).get("requests", 0)
            if counts and reqs:
                allocs[key] = (sum(counts.values()) / reqs,
                               {k.split(":")[-1]: v / reqs for k, v in counts.items()})
        elif rec["phase"] == "idle":
            idle[rec["target"]] = rec
    points = {k: Point(v) for k, v in groups.items()}
    for key, value in syscalls.items():
        if ("main",) + key in points:
            points[("main",) + key].syscalls = value
    for key, value in allocs.items():
        if ("main",) + key in points:
            points[("main",) + key].allocs = value
    meta["idle"] = idle
    meta["allocs"] = allocs
    return meta, points


def point_keys(points, phase):
    """(mode, conns, size) in the order the run measured them."""
    seen = []
    for k in points:
        if k[0] == phase and k[1:4] not in seen:
            seen.append(k[1:4])
    return seen


def targets_at(points, phase, key):
    present = [k[4] for k in points if k[0] == phase and k[1:4] == key]
    return [t for t in TARGET_ORDER if t in present] + [t for t in present if t not in TARGET_ORDER]


def point_label(key):
    mode, conns, size = key
    return f"{conns} conns, {SIZE_LABEL.get(size, size)}, {MODE_LABEL.get(mode, mode)}"


def chart(points, png, run_dir):
    gnuplot = shutil.which("gnuplot")
    keys = [k for k in point_keys(points, "main") if k[0] == "keepalive"]
    sizes = []
    for k in keys:
        if k[2] not in sizes:
            sizes.append(k[2])
    if not gnuplot or not keys:
        return False
    targets = [t for t in TARGET_ORDER if any(k[4] == t for k in points)]
    datafiles = {}
    for size in sizes:
        for t in targets:
            path = os.path.join(run_dir, f"chart-{size}-{t}.dat")
            with open(path, "w") as f:
                for (mode, conns, sz) in sorted((k for k in keys if k[2] == size), key=lambda k: k[1]):
                    p = points.get(("main", mode, conns, sz, t))
                    if not p or median(p.rps) is None:
                        continue
                    rps = [x for x in p.rps if x is not None]
                    p99 = [x for x in p.p99 if x is not None]
                    f.write(f"{conns} {median(rps):.1f} {min(rps):.1f} {max(rps):.1f} "
                            f"{median(p99):.3f} {min(p99):.3f} {max(p99):.3f}\n")
            datafiles[(size, t)] = path
    colors = {"direct": "#777777", "sluice": "#1f77b4", "haproxy": "#d62728", "nginx": "#2ca02c"}
    script = [
        f"set terminal pngcairo size {560 * len(sizes)},760 font 'sans,10'",
        f"set output '{png}'",
        f"set multiplot layout 2,{len(sizes)} columnsfirst",
        "set logscale x 2", "set xtics (1,4,16,64,256)", "set grid", "set key below horizontal",
        "set xrange [0.8:320]", "set xlabel 'connections'", "set format y '%.0s%c'",
    ]
    for size in sizes:
        for what, col, title in (("rps", 2, "requests/s (median, min-max)"),
                                 ("p99", 5, "p99 latency, ms (median, min-max)")):
            script.append(f"set title '{title}, {SIZE_LABEL.get(size, size)} responses, keep-alive'")
            script.append("set logscale y" if what == "p99" else "unset logscale y")
            script.append("set format y '%g'" if what == "p99" else "set format y '%.0s%c'")
            script.append("set yrange [*:*]" if what == "p99" else "set yrange [0:*]")
            plots = []
            for t in targets:
                if (size, t) not in datafiles:
                    continue
                plots.append(f"'{datafiles[(size, t)]}' using 1:{col}:{col + 1}:{col + 2} with yerrorlines "
                             f"lw 2 pt 7 lc rgb '{colors.get(t, '#000000')}' title '{TARGET_LABEL.get(t, t)}'")
            script.append("plot " + ", ".join(plots))
    script.append("unset multiplot")
    gp = os.path.join(run_dir, "chart.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    return subprocess.run([gnuplot, gp]).returncode == 0


def cmd_report(args):
    run_dir, out_md, out_png = args
    meta, points = load(run_dir)
    lines = []
    w = lines.append
    w(f"# Benchmark run {meta['stamp']}")
    w("")
    w("Written by `tools/bench/run.sh`; the method is in [docs/benchmarks.md](../../../docs/benchmarks.md). "
      "Medians over the runs, min-max in parentheses; ratios are of medians from this run.")
    w("")
    w(f"- machine: {meta['cpu']}, {meta['cores']} cores, {meta['mem_gib']} GiB, Linux {meta['kernel']}, "
      f"Debian {meta['debian']}")
    w(f"- sluice {meta['sluice_rev']} (`bazel build -c opt`); {meta['nginx']}; HAProxy {meta['haproxy']}; "
      f"wrk {meta['wrk']}")
    w(f"- wrk (1 thread) and the upstream nginx on CPU {meta['loadgen_cpu']}, the proxy under test on CPU "
      f"{meta['proxy_cpu']} (one worker/thread); {meta['runs']} runs of {meta['duration']} s per point after "
      f"a {meta['warmup']} s warm-up, targets interleaved; system calls counted with {meta['syscall_tool']} in a "
      f"separate {meta['syscall_duration']} s run; idle upstream connections per proxy: {meta['pool']}")
    end_load = open("/proc/loadavg").read().split()[:3]
    w(f"- load average at the start {' '.join(meta['loadavg_start'])}, at the end {' '.join(end_load)}")
    w(f"- wrk, the upstream and the proxies ran at `{meta.get('nice') or 'the default priority'}`; before "
      f"each run the harness waited up to {meta.get('quiet_wait')} s for the machine to be at most "
      f"{meta.get('quiet_max')}% busy")
    for cpu, attr in (("0", "foreign0"), ("1", "foreign1")):
        xs = [f for p in points.values() for f in getattr(p, attr)]
        if xs:
            w(f"- CPU {cpu} time used by other processes during measured runs: median {median(xs) * 100:.1f}%, "
              f"max {max(xs) * 100:.1f}% (0 on a quiet machine)")
    waited = sum(p.quiet_waited for p in points.values())
    if waited:
        w(f"- waited {waited} s in all for the machine to calm down before runs")
    w("")
    if os.path.exists(out_png):
        os.remove(out_png)
    if chart(points, out_png, run_dir):
        w(f"![requests/s and p99 by connections]({os.path.basename(out_png)})")
        w("")

    # The point the targets are stated at.
    key = ("keepalive", int(meta.get("feature_conns", 64)), "12")
    if any(k[0] == "main" and k[1:4] == key for k in points):
        w(f"## {point_label(key)}")
        w("")
        ts = targets_at(points, "main", key)
        ps = {t: points[("main",) + key + (t,)] for t in ts}
        hap = median(ps["haproxy"].rps) if "haproxy" in ps else None
        hap_cpu = median(ps["haproxy"].cpu_us) if "haproxy" in ps else None
        hap_sys = ps["haproxy"].syscalls[0] if "haproxy" in ps and ps["haproxy"].syscalls else None
        direct = median(ps["direct"].rps) if "direct" in ps else None
        w("| | " + " | ".join(TARGET_LABEL.get(t, t) for t in ts) + " |")
        w("| --- |" + " --- |" * len(ts))
        rows = [
            ("requests/s", lambda p: fmt_range(p.rps)),
            ("vs HAProxy", lambda p: ratio(median(p.rps), hap)),
            ("vs direct", lambda p: ratio(median(p.rps), direct)),
            ("p50 ms", lambda p: fmt_range(p.p50, 2)),
            ("p99 ms", lambda p: fmt_range(p.p99, 2)),
            ("proxy CPU us/request", lambda p: fmt_range(p.cpu_us, 1)),
            ("CPU/request vs HAProxy", lambda p: ratio(median(p.cpu_us), hap_cpu)),
            ("one-core ceiling, req/s (1 s / CPU per request)",
             lambda p: fmt(1e6 / median(p.cpu_us)) if median(p.cpu_us) else "-"),
            ("proxy CPU busy", lambda p: fmt(median(p.proxy_busy) * 100 if median(p.proxy_busy) is not None
                                            else None, 0, "%")),
            ("CPU 0 (wrk + upstream) busy", lambda p: fmt(median(p.cpu0_busy) * 100, 0, "%")),
            ("syscalls/request", lambda p: fmt(p.syscalls[0], 2) if p.syscalls else "-"),
            ("syscalls vs HAProxy", lambda p: ratio(p.syscalls[0], hap_sys) if p.syscalls else "-"),
            ("heap allocations/request", lambda p: fmt(p.allocs[0], 2) if p.allocs else "-"),
            ("proxy RSS MiB", lambda p: fmt(median(p.rss), 1)),
            ("upstream connections opened per run", lambda p: fmt(median(p.accepts))),
            ("non-2xx / socket errors", lambda p: f"{p.non2xx} / {p.sock_errors}"),
        ]
        for name, f in rows:
            w(f"| {name} | " + " | ".join(f(ps[t]) for t in ts) + " |")
        w("")

    w("## All points")
    w("")
    w("| point | target | requests/s | vs HAProxy | vs direct | p50 ms | p99 ms | CPU us/req | proxy busy "
      "| CPU 0 busy | syscalls/req | RSS MiB | upstream conns opened | non-2xx | socket errors |")
    w("| --- " * 15 + "|")
    for key in point_keys(points, "main"):
        ts = targets_at(points, "main", key)
        ps = {t: points[("main",) + key + (t,)] for t in ts}
        hap = median(ps["haproxy"].rps) if "haproxy" in ps else None
        direct = median(ps["direct"].rps) if "direct" in ps else None
        for t in ts:
            p = ps[t]
            busy = median(p.proxy_busy)
            w(f"| {point_label(key)} | {TARGET_LABEL.get(t, t)} | {fmt_range(p.rps)} | {ratio(median(p.rps), hap)} "
              f"| {ratio(median(p.rps), direct)} | {fmt_range(p.p50, 2)} | {fmt_range(p.p99, 2)} "
              f"| {fmt_range(p.cpu_us, 1)} | {fmt(busy * 100 if busy is not None else None, 0, '%')} "
              f"| {fmt(median(p.cpu0_busy) * 100, 0, '%')} "
              f"| {fmt(p.syscalls[0], 2) if p.syscalls else '-'} | {fmt(median(p.rss), 1)} "
              f"| {fmt(median(p.accepts))} | {p.non2xx} | {p.sock_errors} |")
    w("")

    # System calls by name at every point that has them.
    names = defaultdict(float)
    for p in points.values():
        if p.syscalls:
            for n, v in p.syscalls[1].items():
                names[n] = max(names[n], v)
    shown = [n for n, v in sorted(names.items(), key=lambda kv: -kv[1]) if v >= 0.01][:10]
    if shown:
        w("## System calls per request, by call")
        w("")
        w("Counted in the separate run. \"other\" is the total less the calls shown: calls below 0.01 "
          "per request everywhere and calls the harness does not name.")
        w("")
        w("| point | target | total | " + " | ".join(shown) + " | other |")
        w("| --- " * (4 + len(shown)) + "|")
        for key in point_keys(points, "main"):
            for t in targets_at(points, "main", key):
                p = points[("main",) + key + (t,)]
                if not p.syscalls:
                    continue
                w(f"| {point_label(key)} | {TARGET_LABEL.get(t, t)} | {p.syscalls[0]:.2f} | "
                  + " | ".join(f"{p.syscalls[1].get(n, 0):.2f}" for n in shown)
                  + f" | {p.syscalls[0] - sum(p.syscalls[1].get(n, 0) for n in shown):.2f} |")
        w("")

    if meta["allocs"]:
        w("## Heap allocations per request")
        w("")
        w("Calls of libc's " + ", ".join(f"`{f}`" for f in meta.get("alloc_funcs", "").split())
          + " by the proxy, counted by `perf stat` on uprobes in a separate run (each call traps, so "
          "that run's speed means nothing). A proxy with its own pools (HAProxy, nginx) allocates "
          "from them without calling libc; this counts what reaches libc.")
        w("")
        w("| point | target | calls/request | by function |")
        w("| --- | --- | --- | --- |")
        for k, (total, by_function) in meta["allocs"].items():
            by = ", ".join(f"{n} {v:.2f}" for n, v in sorted(by_function.items(), key=lambda kv: -kv[1])
                           if v >= 0.005)
            w(f"| {point_label(k[:3])} | {TARGET_LABEL.get(k[3], k[3])} | {total:.2f} | {by or '-'} |")
        w("")

    if meta.get("idle"):
        w(f"## Memory per idle keep-alive connection")
        w("")
        w("Fresh processes before any load: RSS before and with the connections open, each having made "
          "one request (`bench.py idle`).")
        w("")
        w("| target | connections | RSS before MiB | RSS with them MiB | KiB per connection |")
        w("| --- | --- | --- | --- | --- |")
        for t in TARGET_ORDER:
            r = meta["idle"].get(t)
            if not r or not r["conns"]:
                continue
            w(f"| {TARGET_LABEL.get(t, t)} | {r['conns']:,} | {r['rss0_kb'] / 1024:.1f} | {r['rss1_kb'] / 1024:.1f} "
              f"| {(r['rss1_kb'] - r['rss0_kb']) / r['conns']:.2f} |")
        w("")

    fkeys = point_keys(points, "feature")
    if fkeys:
        key = fkeys[0]
        w(f"## Feature cost ({point_label(key)})")
        w("")
        w("Each feature on its own against the same proxy without it, measured interleaved in one phase. "
          "20 routes: 5 exact, 7 prefix, 5 regex, a method and a header condition before the route that "
          "matches (`templates/*routes20*`). Metrics: one scrape a second during the run (sluice and "
          "HAProxy: Prometheus `/metrics`; nginx has no Prometheus exporter built in, so its `stub_status`). "
          "Access log: one JSON line per request to a file. Least request, consistent hashing and health "
          "checks: three endpoints (the upstream nginx on 127.0.0.1-3); hashing on the client address "
          "(sluice MAGLEV with `hash_policy: source_ip`, HAProxy `balance source` + `hash-type consistent`); "
          "health checks `GET /12` every second on each endpoint plus, for sluice, outlier detection and "
          "circuit breakers (HAProxy: `check inter 1s`, `maxconn` per server). "
          "Access control (sluice only): an API key in `x-api-key` looked up among consumers; a JWT "
          "(RS256, 2048-bit key, issuer and audience checked, a claim forwarded) either the same on "
          "every request (verified once, then from the worker's token cache) or a new one on every "
          "request (8,192 tokens in turn, twice the cache: every request verifies a signature); RBAC "
          "rules a request passes two deny rules (path regex, address blocks) to reach its allow rule.")
        w("")
        w("| feature | proxy | requests/s | vs bare | p99 ms | vs bare | CPU us/req | vs bare |")
        w("| --- " * 8 + "|")
        bases = [t for t in ("sluice", "haproxy", "nginx")
                 if ("feature",) + key + (t,) in points]
        for variant, label in (("", "bare"), ("routes20", "20 routes incl. regexes"),
                               ("metrics", "/metrics scraped every second"),
                               ("accesslog", "JSON access log"),
                               ("lb", "least request, 3 endpoints"),
                               ("hash", "consistent hash, 3 endpoints"),
                               ("hc", "health checks + breakers, 3 endpoints"),
                               ("apikey", "API key (SHA-256, consumer lookup)"),
                               ("jwt", "JWT RS256, same token (cached)"),
                               ("jwt-uncached", "JWT RS256, a new token every request"),
                               ("rbac", "RBAC, 3 rules (regex, CIDR, method)")):
            for b in bases:
                bare = points[("feature",) + key + (b,)]
                t = b if not variant else f"{b}+{variant}"
                p = points.get(("feature",) + key + (t,))
                if p is None:
                    if variant == "accesslog" and b == "sluice":
                        w(f"| {label} | {TARGET_LABEL[b]} | n/a (no access log yet) | | | | | |")
                    continue
                w(f"| {label} | {TARGET_LABEL[b]} | {fmt_range(p.rps)} | {ratio(median(p.rps), median(bare.rps))} "
                  f"| {fmt_range(p.p99, 2)} | {ratio(median(p.p99), median(bare.p99))} "
                  f"| {fmt_range(p.cpu_us, 1)} | {ratio(median(p.cpu_us), median(bare.cpu_us))} |")
        w("")

    skeys = point_keys(points, "scaling")
    if skeys:
        key = skeys[0]
        w(f"## One worker and two ({point_label(key)}, nothing pinned)")
        w("")
        w("sluice with `--workers 1` and `--workers 2`, both free to run on both CPUs, and wrk with two "
          "threads on both CPUs (the upstream stays on CPU 0). Here the load generator and the upstream "
          "share the two cores with the proxy, so requests/s cannot show what a second worker adds; the "
          "CPU each request costs the proxy can. Capacity is the proxy's CPUs (1 or 2) divided by its CPU "
          "per request: what it would serve with its cores to itself, if the cost per request held. "
          "Scaling is two workers' capacity over one's; it stays near 2.00x when the workers share "
          "nothing (no locks, no shared cache lines).")
        w("")
        w("| target | requests/s | p99 ms | proxy CPU us/req | proxy CPUs busy | capacity, req/s | scaling |")
        w("| --- " * 7 + "|")
        cap1 = None
        for t, cores in (("direct", None), ("sluice+w1", 1), ("sluice+w2", 2)):
            p = points.get(("scaling",) + key + (t,))
            if p is None:
                continue
            label = {"direct": TARGET_LABEL["direct"], "sluice+w1": "sluice, 1 worker",
                     "sluice+w2": "sluice, 2 workers"}[t]
            cpu = median(p.cpu_us)
            cap = cores * 1e6 / cpu if cores and cpu else None
            if cores == 1:
                cap1 = cap
            w(f"| {label} | {fmt_range(p.rps)} | {fmt_range(p.p99, 2)} | {fmt_range(p.cpu_us, 1)} "
              f"| {fmt(median(p.proxy_busy), 2)} | {fmt(cap)} "
              f"| {ratio(cap, cap1) if cores == 2 else ('1.00x' if cores == 1 else '-')} |")
        w("")

    profiles = sorted(f for f in os.listdir(os.path.join(run_dir, "profiles"))
                      if f.endswith(".perf") and os.path.getsize(os.path.join(run_dir, "profiles", f)))
    if profiles:
        w("## Where the proxy's CPU goes (64 conns, 12 B, keep-alive)")
        w("")
        w("`perf record -F 2000` over one run, self time by binary and symbol, entries above 1%.")
        for f in profiles:
            w("")
            w(f"{TARGET_LABEL.get(f[:-5], f[:-5])}:")
            w("")
            w("```")
            w(open(os.path.join(run_dir, "profiles", f)).read().rstrip())
            w("```")
        w("")

    with open(out_md, "w") as f:
        f.write("\n".join(lines))


def cmd_jwt(args):
    """jwt DIR COUNT: an RSA key's JWKS (DIR/jwks.json), one token (DIR/token.txt) and a wrk script
    that sends COUNT distinct tokens in turn (DIR/tokens.lua), all RS256, valid for a day."""
    import base64
    import json
    import time
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    out, count = args[0], int(args[1])

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def uint(n):
        return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    with open(f"{out}/jwks.json", "w") as f:
        json.dump({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "bench",
                             "n": uint(pub.n), "e": uint(pub.e)}]}, f, separators=(",", ":"))
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
    exp = int(time.time()) + 86400

    def token(i):
        claims = {"iss": "https://idp.bench", "aud": "bench", "sub": f"user-{i}", "exp": exp,
                  "scope": "orders:read orders:write"}
        data = f"{header}.{b64(json.dumps(claims, separators=(',', ':')).encode())}"
        sig = key.sign(data.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{data}.{b64(sig)}"

    with open(f"{out}/token.txt", "w") as f:
        f.write(token(0) + "\n")
    with open(f"{out}/tokens.lua", "w") as f:
        f.write("-- Every request carries the next of these tokens: more than a worker caches.\n")
        f.write("local tokens = {\n")
        for i in range(count):
            f.write(f'"{token(i + 1)}",\n')
        f.write("}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n"
                '  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i]})\nend\n')


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    commands = {"ports": cmd_ports, "render": cmd_render, "meta": cmd_meta, "idle": cmd_idle, "scrape": cmd_scrape,
                "report": cmd_report, "jwt": cmd_jwt}
    if sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
