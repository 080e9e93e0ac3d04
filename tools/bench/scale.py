#!/usr/bin/env python3
"""Config at scale: how long a big config takes to load and go live, and what it costs in memory.

Two commands:

  scale.py generate --out DIR [--routes 10000] [--clusters 1000] ...
      writes a config directory (listener.yaml, clusters.yaml, routes.yaml) and prints the last
      route of the table as JSON.

  scale.py run --sluice BIN --echo BIN [--config-scale BIN] [--workdir DIR]
      the benchmark (tools/bench/scale.sh builds the binaries and calls it): starts three
      sluice-echo upstreams and several short-lived `sluice --config-dir DIR --workers 2` processes,
      all on 127.0.0.1, and prints a Markdown report. See docs/benchmarks.md, "Config at scale".

Everything it starts it stops; every wait is bounded.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# --- the generated config ----------------------------------------------------------------------


def route_path(vhost, index, kind):
    # Paths of different kinds never overlap, so each route is the only one its request matches.
    if kind == "exact":
        return f"/v{vhost}/e{index}/status"
    if kind == "prefix":
        return f"/v{vhost}/p{index}/"
    return f"/v{vhost}/re{index}/[0-9]+"


def route_kind(index, regex_every):
    """Mixed kinds: one regex every `regex_every` routes, then 2 prefix routes to 1 exact."""
    if regex_every and index % regex_every == regex_every // 2:
        return "regex"
    return "exact" if index % 3 == 0 else "prefix"


def generate(out, routes, clusters, vhosts, regexes, endpoints, ports, listen_port, change=False):
    """Writes the config directory `out`; returns the table's last route (kind, host, path,
    cluster)."""
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.endswith(".yaml"):
            os.unlink(os.path.join(out, name))
    vhosts = max(1, min(vhosts, routes))
    per_vhost = [routes // vhosts + (1 if v < routes % vhosts else 0) for v in range(vhosts)]
    # `regexes` in all, spread evenly over the table.
    regex_every = max(1, routes // regexes) if regexes else 0

    with open(os.path.join(out, "listener.yaml"), "w") as f:
        f.write(
            "kind: Listener\nname: scale\naddress: 127.0.0.1\n"
            f"port: {listen_port}\nroute_config: scale\n"
        )

    lines = []
    for c in range(clusters):
        lines.append(f"- kind: Cluster\n  name: svc-{c:04d}\n  connect_timeout: 1s\n  endpoints:\n")
        for e in range(endpoints):
            lines.append(f"    - {{address: 127.0.0.1, port: {ports[e % len(ports)]}}}\n")
    with open(os.path.join(out, "clusters.yaml"), "w") as f:
        f.write("".join(lines))

    lines = ["kind: RouteConfiguration\nname: scale\nvirtual_hosts:\n"]
    n = 0
    last = None
    changed_vhost = vhosts // 2
    for v in range(vhosts):
        lines.append(f"  - name: vh{v}\n    domains: [svc{v}.example.com]\n    routes:\n")
        for i in range(per_vhost[v]):
            kind = route_kind(n, regex_every)
            # The last route of the table is an exact path: a request for it passes every route
            # of its virtual host.
            if v == vhosts - 1 and i == per_vhost[v] - 1:
                kind = "exact"
            path = route_path(v, n, kind)
            # The reload's change: one route in the middle of the table gets another path.
            if change and v == changed_vhost and i == 0:
                path = path.replace(f"/v{v}/", f"/v{v}/changed-", 1)
            cluster = f"svc-{n % clusters:04d}"
            key = {"exact": "path", "prefix": "prefix", "regex": "regex"}[kind]
            lines.append(
                f"      - {{name: r{n}, match: {{{key}: '{path}'}}, route: {{cluster: {cluster}}}}}\n"
            )
            last = {"kind": kind, "host": f"svc{v}.example.com", "path": path, "cluster": cluster}
            n += 1
    with open(os.path.join(out, "routes.yaml"), "w") as f:
        f.write("".join(lines))
    return last


# --- processes ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process with its output in a log file; stop() ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, args, log_path, read_line=False):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.first_line = None
        if read_line:
            self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
            self.first_line = self.p.stdout.readline().strip()
        else:
            self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def http_get(port, path, host="localhost", timeout=5):
    """(status, body) of a GET to 127.0.0.1:port, or (0, error text)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def metrics(admin):
    out = {}
    status, text = http_get(admin, "/metrics")
    if status != 200:
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def wait_for(check, timeout, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None


def memory_kib(pid):
    """VmRSS and RssAnon of `pid`, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                out[key] = int(value.split()[0])
    return out


LOAD_RE = re.compile(
    r"loaded \S+ \((\d+) files\) in ([\d.]+) ms: read ([\d.]+) ms, parse ([\d.]+) ms, "
    r"validate ([\d.]+) ms"
)
GEN_RE = re.compile(
    r"generation (\d+): compiled in ([\d.]+) ms, live on (\d+) workers in ([\d.]+) ms "
    r"\((\d+) routes, (\d+) clusters, (\d+) listeners\)"
)


class Sluice:
    def __init__(self, binary, config_dir, workdir, name, workers):
        self.admin = free_port()
        self.config_dir = config_dir
        self.proc = Proc(
            [binary, "--config-dir", config_dir, "--workers", str(workers), "--admin",
             f"127.0.0.1:{self.admin}"],
            os.path.join(workdir, f"{name}.log"),
        )
        self.started = time.monotonic()
        self.generations = 0

    def wait_ready(self, timeout=60):
        ok = wait_for(lambda: http_get(self.admin, "/ready", timeout=1)[0] == 200, timeout)
        if not ok:
            raise RuntimeError(f"sluice not ready after {timeout}s:\n{self.proc.text()[-3000:]}")
        return time.monotonic() - self.started

    def wait_generation(self, n, timeout=60):
        """Waits until generation `n` is live on every worker (its log line; no /metrics scrape,
        whose transient memory would show in RSS); returns its timings."""

        def line():
            text = self.proc.text()
            for g in GEN_RE.finditer(text):
                if int(g.group(1)) == n:
                    return text, g
            return None

        found = wait_for(line, timeout)
        if not found:
            raise RuntimeError(f"generation {n} not live after {timeout}s:\n{self.proc.text()[-3000:]}")
        text, g = found
        load = list(LOAD_RE.finditer(text[: g.start()]))[-1]
        return {
            "compile_ms": float(g.group(2)),
            "publish_ms": float(g.group(4)),
            "routes": int(g.group(5)),
            "clusters": int(g.group(6)),
            "load_ms": float(load.group(2)),
            "read_ms": float(load.group(3)),
            "parse_ms": float(load.group(4)),
            "validate_ms": float(load.group(5)),
        }

    def check_metrics(self, n, timings):
        """The metrics must agree with the log line of generation `n`, the last one."""
        m = metrics(self.admin)
        prefix = "sluice_server_config_"
        for hist, key in (("compile", "compile_ms"), ("publish", "publish_ms")):
            count = m.get(f"{prefix}{hist}_seconds_count")
            total = m.get(f"{prefix}{hist}_seconds_sum", 0) * 1e3
            if count != n:
                raise RuntimeError(f"{prefix}{hist}_seconds_count is {count}, expected {n}")
            timings.setdefault("sums", {})[hist] = total
        if m.get("sluice_server_generation_live") != n:
            raise RuntimeError("sluice_server_generation_live is not the last generation")

    def reload(self):
        self.proc.p.send_signal(signal.SIGHUP)

    def memory(self):
        return memory_kib(self.proc.p.pid)

    def stop(self):
        self.proc.stop()


def swap_config(src, dst):
    """Replaces the YAML files of `dst` with those of `src`, each by an atomic rename."""
    for name in sorted(os.listdir(src)):
        tmp = os.path.join(dst, f".{name}.tmp")
        shutil.copyfile(os.path.join(src, name), tmp)
        os.rename(tmp, os.path.join(dst, name))


def proxied_get(port, host, path):
    """Status and x-echo-name of one request through the proxy (raw HTTP/1.1, fresh connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    status = int(head.split(" ", 2)[1]) if head.startswith("HTTP/1.1 ") else 0
    name = re.search(r"(?im)^x-echo-name:\s*(\S+)", head)
    return status, name.group(1) if name else None


# --- the benchmark -----------------------------------------------------------------------------


def run(args):
    workdir = args.workdir or tempfile.mkdtemp(prefix="sluice-scale.")
    os.makedirs(workdir, exist_ok=True)
    procs = []
    report = []

    def say(line=""):
        report.append(line)
        print(line, flush=True)

    try:
        echos = []
        for i in range(args.endpoints):
            p = Proc([args.echo, "--listen", "127.0.0.1:0", "--name", f"echo{i}"],
                     os.path.join(workdir, f"echo{i}.log"), read_line=True)
            procs.append(p)
            m = re.search(r":(\d+)$", p.first_line or "")
            if not m:
                raise RuntimeError(f"sluice-echo did not start: {p.first_line!r}")
            echos.append(int(m.group(1)))

        listen = free_port()
        dirs = {}
        lasts = {}

        def gen(name, routes, clusters, change=False):
            d = os.path.join(workdir, name)
            lasts[name] = generate(d, routes, clusters, args.vhosts, args.regexes, args.endpoints,
                                   echos, listen, change)
            dirs[name] = d

        gen("minimal", 1, 1)
        gen("full", args.routes, args.clusters)
        gen("full-changed", args.routes, args.clusters, change=True)
        gen("clusters-only", args.few, args.clusters)
        gen("routes-only", args.routes, args.few)
        size = sum(os.path.getsize(os.path.join(dirs["full"], f)) for f in os.listdir(dirs["full"]))

        say(f"# Config at scale: {args.routes} routes, {args.clusters} clusters")
        say()
        say(f"{args.routes} routes in {args.vhosts} virtual hosts ({args.regexes} regex, the rest "
            f"2:1 prefix:exact), {args.clusters} static clusters of {args.endpoints} endpoints on "
            f"127.0.0.1; {size / 1e6:.1f} MB of YAML; sluice --workers {args.workers}; "
            f"{args.repeat} run(s) each.")
        say()

        # 1. Cold start with the big config, then a SIGHUP reload with one route changed.
        starts = []
        for r in range(args.repeat):
            live = os.path.join(workdir, f"live-{r}")
            shutil.rmtree(live, ignore_errors=True)
            shutil.copytree(dirs["full"], live)
            s = Sluice(args.sluice, live, workdir, f"sluice-cold-{r}", args.workers)
            procs.append(s.proc)
            ready = s.wait_ready()
            first = s.wait_generation(1)
            time.sleep(0.2)
            mem_first = s.memory()
            s.check_metrics(1, first)
            last = lasts["full"]
            status, echo = proxied_get(listen, last["host"], last["path"])
            swap_config(dirs["full-changed"], live)
            t = time.monotonic()
            s.reload()
            second = s.wait_generation(2)
            reload_wall = time.monotonic() - t
            time.sleep(0.2)
            mem_second = s.memory()
            s.check_metrics(2, second)
            # The histogram sums of the two generations, less the first's, give the second's.
            for hist, key in (("compile", "compile_ms"), ("publish", "publish_ms")):
                metric = second["sums"][hist] - first["sums"][hist]
                if abs(metric - second[key]) > 0.1:
                    raise RuntimeError(f"{hist}: metric {metric:.2f} ms, log {second[key]} ms")
            metrics(s.admin)
            mem_scraped = s.memory()
            changed = lasts["full-changed"]
            status2, _ = proxied_get(listen, changed["host"], changed["path"])
            starts.append({"ready_s": ready, "first": first, "second": second,
                           "reload_wall_s": reload_wall, "mem_first": mem_first,
                           "mem_second": mem_second, "mem_scraped": mem_scraped,
                           "last_status": status, "last_echo": echo,
                           "after_reload_status": status2})
            s.stop()

        def col(f):
            return " / ".join(f(x) for x in starts)

        def ms(phase, key):
            return col(lambda x: "%.1f" % x[phase][key])

        def mib(key):
            return col(lambda x: "%.1f" % (x[key]["VmRSS"] / 1024))

        last, changed = lasts["full"], lasts["full-changed"]
        say("| | initial load | SIGHUP reload (one route changed) |")
        say("| --- | --- | --- |")
        for label, key in (("read files", "read_ms"), ("parse YAML -> protos", "parse_ms"),
                           ("validate", "validate_ms"), ("compile", "compile_ms"),
                           ("live on every worker, from compile start", "publish_ms")):
            say("| %s, ms | %s | %s |" % (label, ms("first", key), ms("second", key)))
        say("| start to /ready, ms | %s | |" % col(lambda x: "%.0f" % (1e3 * x["ready_s"])))
        say("| SIGHUP to live (wall clock, polled), ms | | %s |"
            % col(lambda x: "%.0f" % (1e3 * x["reload_wall_s"])))
        say("| RSS after, MiB | %s | %s |" % (mib("mem_first"), mib("mem_second")))
        say("| RSS after one /metrics scrape, MiB | | %s |" % mib("mem_scraped"))
        say()
        say("Times are the proxy's own, from its log lines (`loaded ...`, `generation N: ...`); "
            "the sluice_server_config_{compile,publish}_seconds histograms agree with them "
            "(checked to 0.1 ms for the reload).")
        say()
        say("The table's last route (%s %s on %s -> %s): %s; the changed route after the reload: "
            "%s." % (last["kind"], last["path"], last["host"], last["cluster"],
                     col(lambda x: "%s from %s" % (x["last_status"], x["last_echo"])),
                     col(lambda x: str(x["after_reload_status"]))))
        say()

        # 2. Memory: minimal config, then SIGHUP to each variant, in a fresh process each.
        rows = []
        for variant in ("clusters-only", "routes-only", "full"):
            samples = []
            for r in range(args.repeat):
                live = os.path.join(workdir, f"mem-{variant}-{r}")
                shutil.rmtree(live, ignore_errors=True)
                shutil.copytree(dirs["minimal"], live)
                s = Sluice(args.sluice, live, workdir, f"sluice-mem-{variant}-{r}", args.workers)
                procs.append(s.proc)
                s.wait_ready()
                s.wait_generation(1)
                time.sleep(0.2)
                before = s.memory()
                swap_config(dirs[variant], live)
                s.reload()
                g = s.wait_generation(2)
                time.sleep(0.2)
                after = s.memory()
                samples.append((before, after, g))
                s.stop()
            rows.append((variant, samples))

        say("RSS of a proxy started with a minimal config (1 route, 1 cluster), then reloaded "
            "with SIGHUP to the variant (median of the runs):")
        say()
        say("| variant | routes | clusters | RSS before, MiB | RSS after, MiB | delta, KiB |")
        say("| --- | --- | --- | --- | --- | --- |")
        deltas = {}
        for variant, samples in rows:
            d = sorted(a["VmRSS"] - b["VmRSS"] for b, a, _ in samples)[len(samples) // 2]
            b = sorted(x[0]["VmRSS"] for x in samples)[len(samples) // 2]
            a = sorted(x[1]["VmRSS"] for x in samples)[len(samples) // 2]
            g = samples[0][2]
            deltas[variant] = (g["routes"], g["clusters"], d)
            say(f"| {variant} | {g['routes']} | {g['clusters']} | {b / 1024:.1f} | {a / 1024:.1f} "
                f"| {d} |")
        say()
        # delta = routes * r + clusters * c, from the two one-sided variants.
        r1, c1, d1 = deltas["clusters-only"]
        r2, c2, d2 = deltas["routes-only"]
        det = r1 * c2 - r2 * c1
        per_route = (d1 * c2 - d2 * c1) * 1024 / det
        per_cluster = (r1 * d2 - r2 * d1) * 1024 / det
        rf, cf, df = deltas["full"]
        say(f"Solved from the two one-sided variants: **{per_cluster:,.0f} bytes per cluster** "
            f"({args.endpoints} endpoints each) and **{per_route:,.0f} bytes per route**; they "
            f"predict {(rf * per_route + cf * per_cluster) / 1024:,.0f} KiB for the full config, "
            f"measured {df:,} KiB.")

        if args.config_scale:
            out = subprocess.run(
                [args.config_scale, "--workers", str(args.workers), "--repeat", "5",
                 dirs["full"], dirs["clusters-only"], dirs["routes-only"]],
                capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"config_scale failed:\n{out.stderr}")
            heap = {}
            for line, name in zip(out.stdout.splitlines(), ("full", "clusters-only", "routes-only")):
                heap[name] = json.loads(line)
            say()
            say("Heap accounting (`//tools/bench:config_scale`: the same steps in one process, "
                "glibc mallinfo2 bytes in use; metric cells for %d workers and the main thread; "
                "times are medians of 5):" % args.workers)
            say()
            say("| variant | parse, ms | validate, ms | compile first / again, ms | parsed config "
                "(transient), KiB | generation, KiB | of it /config_dump, KiB | metrics and pool "
                "keys, KiB |")
            say("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for name, h in heap.items():
                say("| %s | %.0f | %.1f | %.1f / %.1f | %.0f | %.0f | %.0f | %.0f |" % (
                    name, h["parse_ms"], h["validate_ms"], h["compile_first_ms"], h["compile_ms"],
                    h["heap_parsed"] / 1024, h["heap_generation"] / 1024,
                    h["heap_generation_config_copy"] / 1024, h["heap_metrics"] / 1024))

            def kept(h):
                return h["heap_generation"] + h["heap_metrics"]

            a, b = heap["clusters-only"], heap["routes-only"]
            det = a["routes"] * b["clusters"] - b["routes"] * a["clusters"]
            per_route = (kept(a) * b["clusters"] - kept(b) * a["clusters"]) / det
            per_cluster = (a["routes"] * kept(b) - b["routes"] * kept(a)) / det
            f = heap["full"]
            say()
            say("Kept per cluster (generation + metrics, solved from the one-sided variants): "
                "**%s bytes**; per route: **%s bytes**; predicted for the full config %s KiB, "
                "measured %s KiB." % (
                    format(round(per_cluster), ","), format(round(per_route), ","),
                    format(round((f["routes"] * per_route + f["clusters"] * per_cluster) / 1024),
                           ","),
                    format(round(kept(f) / 1024), ",")))
    finally:
        for p in reversed(procs):
            p.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}", file=sys.stderr)
    if args.report:
        with open(args.report, "w") as f:
            f.write("\n".join(report) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    def shape(p):
        p.add_argument("--routes", type=int, default=10000)
        p.add_argument("--clusters", type=int, default=1000)
        p.add_argument("--vhosts", type=int, default=20)
        p.add_argument("--regexes", type=int, default=20, help="regex routes in all")
        p.add_argument("--endpoints", type=int, default=3, help="endpoints per cluster")

    g = sub.add_parser("generate", help="write a config directory")
    shape(g)
    g.add_argument("--out", required=True)
    g.add_argument("--ports", default="8081,8082,8083", help="endpoint ports on 127.0.0.1")
    g.add_argument("--listen", type=int, default=8080)
    g.add_argument("--change", action="store_true", help="the reload variant: one route changed")

    r = sub.add_parser("run", help="the benchmark")
    shape(r)
    r.add_argument("--sluice", required=True)
    r.add_argument("--echo", required=True)
    r.add_argument("--config-scale", help="the //tools/bench:config_scale binary (heap accounting)")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--few", type=int, default=10,
                   help="routes and clusters of the one-sided memory variants")
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--workdir")
    r.add_argument("--keep", action="store_true", help="keep the work directory")
    r.add_argument("--report", help="also write the report to this file")

    args = ap.parse_args()
    if args.command == "generate":
        ports = [int(p) for p in args.ports.split(",")]
        last = generate(args.out, args.routes, args.clusters, args.vhosts, args.regexes,
                        args.endpoints, ports, args.listen, args.change)
        print(json.dumps(last))
    else:
        run(args)


if __name__ == "__main__":
    main()
