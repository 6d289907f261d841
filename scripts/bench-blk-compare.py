#!/usr/bin/env python3
"""uvirtio blk against qemu-storage-daemon, side by side, in one run.

Measures 4 KiB random reads on one queue at queue depth 1 and 32 with
`uvirtio bench blk` against null (no I/O) vhost-user-blk backends:
  - uvirtio blk (default: queue threads poll an empty ring 32 us before sleeping)
  - uvirtio blk --poll-us=0 (no polling; --no-uvirtio-nopoll drops it)
  - qemu-storage-daemon, export in the main loop (does not poll)
  - qemu-storage-daemon, export in an iothread (adaptive polling;
    --no-with-qsd-iothread drops it)

The backend runs pinned to one CPU and the bench client to another. Only one
backend process is alive at a time, because a polling backend would take the
backend CPU from the others. Runs go round-robin across backends, so a noisy
stretch of the (shared) machine spoils one run of every backend rather than
every run of one. Per (backend, queue depth) it reports medians over the runs.

Needs qemu-storage-daemon and, unless --no-plot, gnuplot. Python stdlib only.
usage: scripts/bench-blk-compare.py [--quick] [options]   (--help)
"""

import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROG = "bench-blk-compare"
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
QDS = (1, 32)
SIZE = 1 << 30  # the null disks' capacity; qsd wants it as an integer


class Failure(Exception):
    """A run could not go on; the message is the one line printed."""


def die(msg):
    print("%s: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


def backends(args):
    """(key, label, argv builder) for each backend in round-robin order."""
    uv = os.path.abspath(args.uvirtio)
    out = [("uvirtio", "uvirtio blk",
            lambda s: [uv, "blk", "--backend=null", "--size=1G", "--socket-path=" + s])]
    if args.uvirtio_nopoll:
        out.append(("uvirtio-nopoll", "uvirtio blk, no polling",
                    lambda s: [uv, "blk", "--backend=null", "--size=1G", "--poll-us=0",
                               "--socket-path=" + s]))

    def qsd(s, iothread):
        argv = [args.qsd]
        if iothread:
            argv += ["--object", "iothread,id=io0"]
        export = ("type=vhost-user-blk,id=e0,node-name=disk,addr.type=unix,addr.path=%s,"
                  "writable=on,num-queues=1" % s)
        if iothread:
            export += ",iothread=io0"
        return argv + ["--blockdev", "driver=null-co,node-name=disk,size=%d" % SIZE,
                       "--export", export]

    out.append(("qsd", "qemu-storage-daemon", lambda s: qsd(s, False)))
    if args.with_qsd_iothread:
        out.append(("qsd-iothread", "qemu-storage-daemon, iothread", lambda s: qsd(s, True)))
    return out


class Backend:
    """One backend process, pinned, listening on its own socket."""

    def __init__(self, argv, cpu, sock, errpath):
        self.argv = ["taskset", "-c", str(cpu)] + argv
        self.sock = sock
        self.errpath = errpath
        self.errf = open(errpath, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.errf, stderr=self.errf)

    def stderr_tail(self):
        try:
            with open(self.errpath, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else "(no output)"
        except OSError:
            return "(no output)"

    def wait_ready(self, timeout=10.0):
        """Waits until the socket accepts a connection (closed again at once)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise Failure("backend exited with status %d before listening: %s (%s)"
                              % (self.proc.returncode, self.stderr_tail(), " ".join(self.argv)))
            if os.path.exists(self.sock):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(self.sock)
                    return
                except OSError:
                    pass
                finally:
                    s.close()
            time.sleep(0.02)
        raise Failure("backend did not listen on %s within %.0f s (%s)"
                      % (self.sock, timeout, " ".join(self.argv)))

    def cpu_seconds(self):
        """User + system CPU time of the whole process (all its threads) so far."""
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errf.close()
        return self.proc.returncode


def bench(args, sock, qd, cpu):
    argv = ["taskset", "-c", str(cpu), os.path.abspath(args.uvirtio), "bench", "blk",
            "--socket-path=" + sock, "--rw=randread", "--bs=4096", "--queues=1",
            "--iodepth=%d" % qd, "--runtime=%g" % args.runtime, "--ramp=%g" % args.ramp,
            "--cpus=%d" % cpu, "--json", "--no-progress"]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=args.runtime + args.ramp + 60)
    except subprocess.TimeoutExpired:
        raise Failure("bench did not finish in time: " + " ".join(argv))
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise Failure("bench exited with status %d: %s" % (p.returncode, err[-1] if err else "(no output)"))
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise Failure("bench printed no JSON: " + " ".join(argv))


def cpu_times():
    """{cpu number: (busy, total)} in clock ticks, from /proc/stat."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *v = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    v = [int(x) for x in v]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    out[int(name[3:])] = (sum(v[:8]) - idle, sum(v[:8]))
    except (OSError, ValueError):
        pass
    return out


def busy_pct(a, b, cpu):
    if cpu not in a or cpu not in b or b[cpu][1] <= a[cpu][1]:
        return None
    return 100 * (b[cpu][0] - a[cpu][0]) / (b[cpu][1] - a[cpu][1])


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def tool_version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=10)
        out = p.stdout.decode(errors="replace").strip().splitlines()
        return out[0] if out else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def fmt_iops(v):
    if v >= 1e6:
        return "%.2f M" % (v / 1e6)
    if v >= 1e3:
        return "%.1f k" % (v / 1e3)
    return "%.0f" % v


def fmt_us(v):
    return "%.1f" % v if v >= 10 else "%.2f" % v


def summarize(raw, keys):
    """Medians (and IOPS spread) per (backend, qd) from the raw runs."""
    med = []
    for key in keys:
        for qd in QDS:
            rr = [r for r in raw if r["backend"] == key and r["iodepth"] == qd]
            rs = [r["result"]["total"] for r in rr]
            cpus = [r["backend_cpu_pct"] for r in rr if r.get("backend_cpu_pct") is not None]
            if not rs:
                continue
            iops = [r["iops"] for r in rs]
            lat = lambda k: statistics.median(r["lat_us"][k] for r in rs)
            med.append({"backend": key, "iodepth": qd, "runs": len(rs),
                        "iops": statistics.median(iops), "iops_min": min(iops),
                        "iops_max": max(iops), "p50_us": lat("p50"), "p99_us": lat("p99"),
                        "mean_us": lat("mean"), "p99_9_us": lat("p99_9"),
                        "backend_cpu_pct": statistics.median(cpus) if cpus else None,
                        "errors": sum(r.get("errors", 0) for r in rs)})
    return med


def find(med, key, qd):
    for m in med:
        if m["backend"] == key and m["iodepth"] == qd:
            return m
    return None


def ratios(med, keys):
    """uvirtio (each variant) against qsd (each variant): IOPS uv/qsd and p99 qsd/uv,
    so that above 1 means uvirtio is better in both."""
    out = []
    for uv in [k for k in keys if k.startswith("uvirtio")]:
        for q in [k for k in keys if k.startswith("qsd")]:
            r = {"uvirtio": uv, "qsd": q}
            for qd in QDS:
                a, b = find(med, uv, qd), find(med, q, qd)
                if a and b and b["iops"] > 0 and a["p99_us"] > 0:
                    r["iops_qd%d" % qd] = a["iops"] / b["iops"]
                    r["p99_qd%d" % qd] = b["p99_us"] / a["p99_us"]
            out.append(r)
    return out


def markdown(med, rat, labels, runs, runtime):
    lines = ["Medians of %d run%s of %g s per backend and queue depth "
             "(4 KiB random reads, 1 queue, null backends):" % (runs, "" if runs == 1 else "s", runtime),
             "",
             "| backend | QD | IOPS | IOPS min–max | p50 µs | p99 µs | mean µs | backend CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for m in med:
        cpu = "%.0f%%" % m["backend_cpu_pct"] if m.get("backend_cpu_pct") is not None else "?"
        lines.append("| %s | %d | %s | %s–%s | %s | %s | %s | %s |" % (
            labels[m["backend"]], m["iodepth"], fmt_iops(m["iops"]), fmt_iops(m["iops_min"]),
            fmt_iops(m["iops_max"]), fmt_us(m["p50_us"]), fmt_us(m["p99_us"]), fmt_us(m["mean_us"]), cpu))
    lines += ["",
              "Ratios (above 1: uvirtio better). IOPS: uvirtio / qsd; p99: qsd / uvirtio.",
              "",
              "| uvirtio | against | IOPS QD32 | IOPS QD1 | p99 QD1 | p99 QD32 |",
              "|---|---|---|---|---|---|"]
    for r in rat:
        cell = lambda k: "%.2f×" % r[k] if k in r else "–"
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            labels[r["uvirtio"]], labels[r["qsd"]], cell("iops_qd32"), cell("iops_qd1"),
            cell("p99_qd1"), cell("p99_qd32")))
    return "\n".join(lines) + "\n"


def plot(med, keys, labels, out_png, gnuplot, title_note):
    colours = ["#1f5fa8", "#7fa7d6", "#c0392b", "#e59866", "#555555", "#999999"]
    n = len(keys)
    blocks, clauses = [], []
    ranges = []
    for panel, (field, fmt) in enumerate((("iops", fmt_iops), ("p99_us", fmt_us))):
        vals = [m[field] for m in med if m[field] > 0] or [1]
        # Log axes with room above the tallest bar for the key and the labels.
        ranges.append("[%g:%g]" % (min(vals) / 3, max(vals) * 40))
        for j, key in enumerate(keys):
            rows = []
            for i, qd in enumerate(QDS):
                m = find(med, key, qd)
                if m and m[field] > 0:
                    rows.append("%d %g \"%s\"" % (i * (n + 1) + j, m[field], fmt(m[field]).replace(" ", "")))
            blocks.append("$d%d_%d << EOD\n%s\nEOD" % (panel, j, "\n".join(rows) if rows else "NaN NaN \"\""))
    xt = ", ".join('"QD%d" %g' % (qd, i * (n + 1) + (n - 1) / 2) for i, qd in enumerate(QDS))
    for panel in range(2):
        c = []
        for j, key in enumerate(keys):
            c.append('$d%d_%d using 1:2 with boxes lc rgb "%s" title "%s"'
                     % (panel, j, colours[j % len(colours)], labels[key]))
            c.append('$d%d_%d using 1:2:3 with labels offset 0,0.7 font ",8" notitle' % (panel, j))
        clauses.append(", \\\n     ".join(c))
    script = "\n".join(blocks) + """
set terminal pngcairo size 1100,520 font "sans,10"
set output "%s"
set termoption noenhanced
set multiplot layout 1,2 title "uvirtio bench blk: 4 KiB random read, 1 queue, null backends (%s)"
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set logscale y
set xrange [-1:%g]
set xtics (%s)
set key top left
set title "IOPS (median, higher is better)"
set yrange %s
set format y "%%.0s%%c"
plot %s
set title "p99 latency in µs (median, lower is better)"
set yrange %s
set format y "%%g"
plot %s
unset multiplot
""" % (out_png, title_note, 2 * (n + 1) - 1, xt, ranges[0], clauses[0], ranges[1], clauses[1])
    p = subprocess.run([gnuplot], input=script.encode(), capture_output=True)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise Failure("gnuplot failed: %s" % (err[-1] if err else "status %d" % p.returncode))


def main():
    ap = argparse.ArgumentParser(
        prog="bench-blk-compare.py",
        description="uvirtio blk against qemu-storage-daemon (null backends), side by side: "
                    "4 KiB random read, 1 queue, QD1 and QD32, medians of round-robin runs.")
    ap.add_argument("--runs", type=int, default=5, help="rounds across all backends (default 5)")
    ap.add_argument("--runtime", type=float, default=5, help="seconds measured per bench (default 5)")
    ap.add_argument("--ramp", type=float, default=1, help="seconds before measuring (default 1)")
    ap.add_argument("--quick", action="store_true", help="1 run of 2 s: for trying the script")
    ap.add_argument("--uvirtio", default=os.path.join(ROOT, "build/tools/uvirtio"),
                    help="the uvirtio binary (default build/tools/uvirtio)")
    ap.add_argument("--qsd", default="qemu-storage-daemon", help="qemu-storage-daemon binary")
    ap.add_argument("--cpus", default="0,1", help="BACKEND,CLIENT CPU numbers (default 0,1)")
    ap.add_argument("--with-qsd-iothread", action=argparse.BooleanOptionalAction, default=True,
                    help="also qsd with its export in an iothread (default on)")
    ap.add_argument("--uvirtio-nopoll", action=argparse.BooleanOptionalAction, default=True,
                    help="also uvirtio blk --poll-us=0 (default on)")
    ap.add_argument("--out-json", default=os.path.join(ROOT, "docs/bench/blk-null.json"),
                    help="raw runs and medians (default docs/bench/blk-null.json)")
    ap.add_argument("--out-png", default=os.path.join(ROOT, "docs/bench/blk-null.png"),
                    help="the plot (default docs/bench/blk-null.png)")
    ap.add_argument("--no-plot", action="store_true", help="no plot (no gnuplot needed)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the markdown tables to FILE")
    args = ap.parse_args()

    if args.quick:
        args.runs, args.runtime = 1, 2
    if args.runs < 1 or args.runtime <= 0 or args.ramp < 0:
        die("--runs must be at least 1, --runtime above 0, --ramp at least 0")
    try:
        cpu_b, cpu_c = (int(x) for x in args.cpus.split(","))
    except ValueError:
        die("--cpus wants BACKEND,CLIENT, two CPU numbers, e.g. 0,1")
    if not (os.path.isfile(args.uvirtio) and os.access(args.uvirtio, os.X_OK)):
        die("%s is not an executable (build first: ninja -C build, or --uvirtio PATH)" % args.uvirtio)
    qsd = shutil.which(args.qsd)
    if not qsd:
        die("%s not found (Debian: apt-get install qemu-system-common)" % args.qsd)
    args.qsd = qsd
    gnuplot = None
    if not args.no_plot:
        gnuplot = shutil.which("gnuplot")
        if not gnuplot:
            die("gnuplot not found (apt-get install gnuplot-nox, or --no-plot)")
    if not shutil.which("taskset"):
        die("taskset not found (util-linux)")

    bes = backends(args)
    keys = [b[0] for b in bes]
    labels = {b[0]: b[1] for b in bes}
    raw, noise = [], []
    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    total = args.runs * len(bes) * len(QDS)
    print("load average before: %s" % (" ".join("%.2f" % x for x in load_before) if load_before else "?"),
          file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="bench-blk-compare.")
    be = None
    try:
        for run in range(1, args.runs + 1):
            for key, label, argv in bes:
                sock = os.path.join(tmp, "%s.%d.sock" % (key, run))
                be = Backend(argv(sock), cpu_b, sock, os.path.join(tmp, "%s.%d.log" % (key, run)))
                be.wait_ready()
                for qd in QDS:
                    cpu0, t0, st0 = be.cpu_seconds(), time.monotonic(), cpu_times()
                    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    res = bench(args, sock, qd, cpu_c)
                    cpu1, t1, st1 = be.cpu_seconds(), time.monotonic(), cpu_times()
                    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    # The backend's CPU use over the whole bench (connection, ramp and
                    # measurement): what polling costs. Whatever else kept the two CPUs
                    # busy meanwhile (busy minus ours) was another process: noise.
                    cpu = 100 * (cpu1 - cpu0) / (t1 - t0) if cpu0 is not None and cpu1 is not None else None
                    client = 100 * (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / (t1 - t0)
                    bb, bc = busy_pct(st0, st1, cpu_b), busy_pct(st0, st1, cpu_c)
                    others = [max(0.0, x - y) for x, y in ((bb, cpu), (bc, client)) if x is not None and y is not None]
                    raw.append({"run": run, "backend": key, "iodepth": qd, "backend_cpu_pct": cpu,
                                "client_cpu_pct": client, "backend_cpu_busy_pct": bb,
                                "client_cpu_busy_pct": bc, "result": res})
                    noise.append(max(others) if others else 0.0)
                    t = res["total"]
                    print("[%d/%d] run %d  %-30s QD%-2d  IOPS %10.0f  p50 %7.2f us  p99 %8.2f us  mean %7.2f us"
                          "  backend CPU %s%s"
                          % (len(raw), total, run, label, qd, t["iops"], t["lat_us"]["p50"],
                             t["lat_us"]["p99"], t["lat_us"]["mean"],
                             "%.0f%%" % cpu if cpu is not None else "?",
                             "  (others used %.0f%% of a CPU meanwhile)" % noise[-1] if noise[-1] >= 10 else ""),
                          file=sys.stderr, flush=True)
                    if be.proc.poll() is not None:
                        raise Failure("%s exited (status %d) during the run: %s"
                                      % (label, be.proc.returncode, be.stderr_tail()))
                rc = be.stop()
                be = None
                if rc not in (0, -signal.SIGTERM):
                    print("%s: note: %s exited with status %d on SIGTERM" % (PROG, label, rc), file=sys.stderr)
    except Failure as e:
        die(str(e))
    except KeyboardInterrupt:
        die("interrupted")
    finally:
        if be is not None:
            be.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    load_after = loadavg()
    print("load average after: %s" % (" ".join("%.2f" % x for x in load_after) if load_after else "?"),
          file=sys.stderr)
    noisy = sum(1 for x in noise if x >= 10)
    print("other processes on CPUs %d,%d: median %.0f%%, at most %.0f%% of a CPU; %d of %d benches above 10%%"
          % (cpu_b, cpu_c, statistics.median(noise), max(noise), noisy, len(noise)), file=sys.stderr)
    med = summarize(raw, keys)
    rat = ratios(med, keys)
    md = markdown(med, rat, labels, args.runs, args.runtime)

    commit = None
    try:
        p = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, timeout=10)
        commit = p.stdout.decode().strip() or None
    except (OSError, subprocess.TimeoutExpired):
        pass
    doc = {
        "benchmark": "bench-blk-compare",
        "started": started,
        "command": " ".join([os.path.relpath(sys.argv[0], os.getcwd())] + sys.argv[1:]),
        "parameters": {"runs": args.runs, "runtime_s": args.runtime, "ramp_s": args.ramp, "rw": "randread",
                       "bs": 4096, "queues": 1, "iodepths": list(QDS), "backend_cpu": cpu_b,
                       "client_cpu": cpu_c, "null_size": SIZE},
        "backends": [{"key": k, "label": lb, "argv": ["taskset", "-c", str(cpu_b)] + a("SOCKET")}
                     for k, lb, a in bes],
        "machine": {"nproc": os.cpu_count(), "kernel": os.uname().release,
                    "load_before": load_before, "load_after": load_after,
                    "others_cpu_pct_median": statistics.median(noise), "others_cpu_pct_max": max(noise),
                    "noisy_benches": noisy},
        "versions": {"uvirtio": commit, "qemu_storage_daemon": tool_version([args.qsd, "--version"])},
        "medians": med,
        "ratios": rat,
        "runs": raw,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out_json)), exist_ok=True)
    with open(args.out_json, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote %s" % args.out_json, file=sys.stderr)
    if gnuplot:
        os.makedirs(os.path.dirname(os.path.abspath(args.out_png)), exist_ok=True)
        try:
            plot(med, keys, labels, args.out_png, gnuplot,
                 "medians of %d x %g s" % (args.runs, args.runtime))
        except Failure as e:
            die(str(e))
        print("wrote %s" % args.out_png, file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
