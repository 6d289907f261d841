#!/usr/bin/env python3
"""`uvirtio bench blk` end to end, against `uvirtio blk --backend=null` (and
qemu-storage-daemon when installed) on temporary sockets: --json counts
exactly the requests asked for, a read/write mix has both, several queues
work, a failing disk's errors are counted and the first one described, a bad
option gives one line and exit 2, and a backend killed mid-run gives a clear
message and a non-zero exit, not a crash. Nothing here asserts on timing.
TAP output.

usage: bench_blk.py UVIRTIO_EXECUTABLE
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend_util import wait_for_socket  # noqa: E402

exe = os.path.abspath(sys.argv[1])
results = []
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                   "WARNING: ThreadSanitizer")


def check(name, ok, detail=""):
    results.append((name, bool(ok), detail, None))


def skip(name, why):
    results.append((name, True, "", why))


def clean(stderr):
    """No sanitizer report in a process's stderr."""
    return not any(m in stderr for m in SANITIZER_MARKS)


tainted = []  # (what, stderr) of every process that printed a sanitizer report


def note(what, stderr):
    if not clean(stderr):
        tainted.append((what, stderr[-2000:]))
    return stderr


def bench(args, timeout=120):
    p = subprocess.run([exe, "bench", "blk"] + args, capture_output=True, text=True,
                       timeout=timeout)
    note("bench blk " + " ".join(args), p.stderr)
    return p


class Backend:
    """A backend process serving on a temporary socket, stopped at exit."""

    def __init__(self, argv, sock):
        self.sock = sock
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.up = wait_for_socket(sock, self.proc, seconds=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return note(" ".join(self.proc.args), self.proc.stderr.read())


def uvirtio_blk(d, name, extra):
    sock = os.path.join(d, name + ".sock")
    return Backend([exe, "blk", "--socket-path=" + sock] + extra, sock)


def json_run(args):
    """Run with --json; the parsed object (stdout must be that alone), or None."""
    p = bench(args + ["--json", "--no-progress"])
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = None
    return p, out


def detail(p):
    return "exit %d, stdout %r, stderr %r" % (p.returncode, p.stdout[-400:], p.stderr[-400:])


with tempfile.TemporaryDirectory() as d:
    # One queue, null backend.
    b = uvirtio_blk(d, "null1", ["--backend=null", "--size=64M"])
    check("null_backend_serves", b.up)
    if b.up:
        p, j = json_run(["--socket-path=" + b.sock, "--ios=5000"])
        check("json_ios_counts_exactly_n_with_no_errors",
              p.returncode == 0 and j is not None and j["ios"] == 5000 and
              j["read"]["ios"] == 5000 and j["write"]["ios"] == 0 and j["errors"] == 0 and
              j["total"]["lat_us"]["p50"] > 0 and clean(p.stderr), detail(p))

        p, j = json_run(["--socket-path=" + b.sock, "--ios=4000", "--rw=randrw",
                         "--rwmixread=50", "--iodepth=8"])
        check("randrw_counts_reads_and_writes",
              p.returncode == 0 and j is not None and j["read"]["ios"] > 0 and
              j["write"]["ios"] > 0 and j["read"]["ios"] + j["write"]["ios"] == 4000 and
              j["errors"] == 0, detail(p))

        p, j = json_run(["--socket-path=" + b.sock, "--ios=3000", "--rw=write", "--bs=64k",
                         "--ramp=1"])
        check("sequential_write_after_ramp_counts_only_measured_requests",
              p.returncode == 0 and j is not None and j["write"]["ios"] == 3000 and
              j["read"]["ios"] == 0 and j["bs"] == 65536, detail(p))

        p = bench(["--socket-path=" + b.sock, "--ios=2000", "--no-progress"])
        check("text_report_has_iops_and_percentiles",
              p.returncode == 0 and "IOPS" in p.stdout and "p99.9" in p.stdout and
              "2000 ios" in p.stdout and "0 errors" in p.stdout, detail(p))

        p = bench(["--socket-path=" + b.sock, "--ios=100", "--queues=2", "--no-progress"])
        check("more_queues_than_the_backend_has_one_line",
              p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and
              "queue" in p.stderr, detail(p))
    check("null_backend_clean", clean(b.stop()))

    # Two queues.
    b = uvirtio_blk(d, "null2", ["--backend=null", "--size=64M", "--queues=2"])
    if b.up:
        p, j = json_run(["--socket-path=" + b.sock, "--ios=10000", "--queues=2", "--iodepth=4"])
        check("two_queues_iodepth_4_counts_exactly_n",
              p.returncode == 0 and j is not None and j["ios"] == 10000 and j["queues"] == 2 and
              j["iodepth"] == 4 and j["errors"] == 0, detail(p))
        p, j = json_run(["--socket-path=" + b.sock, "--ios=2000", "--queues=2", "--iodepth=2",
                         "--poll", "--rw=rw"])
        check("two_queues_busy_polling_counts_exactly_n",
              p.returncode == 0 and j is not None and j["ios"] == 2000 and j["poll"] is True,
              detail(p))
    else:
        check("two_queue_backend_serves", False)
    b.stop()

    # A disk that fails every read: an image shrunk under the server, which
    # answers IOERR for reads past its end.
    image = os.path.join(d, "shrunk.img")
    with open(image, "wb") as f:
        f.truncate(1 << 20)
    b = uvirtio_blk(d, "shrunk", [image])
    if b.up:
        os.truncate(image, 0)
        p, j = json_run(["--socket-path=" + b.sock, "--ios=50", "--rw=read"])
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        check("request_errors_counted_first_one_described_exit_1",
              p.returncode == 1 and j is not None and j["errors"] == 50 and j["ios"] == 0 and
              len(lines) == 1 and "read of 4096 bytes at byte 0" in lines[0] and
              "failed" in lines[0], detail(p))
    else:
        check("file_backend_serves", False)
    b.stop()

    # Bad options: one line on stderr, nothing on stdout, exit 2.
    sock = os.path.join(d, "unused.sock")
    for args in (["--rw=sideways"], ["--bs=1000"], ["--bs=4q"], ["--iodepth=0"],
                 ["--queues=0"], ["--runtime=5", "--ios=10"], ["--rwmixread=101"],
                 ["--cpus=0,x"], ["--queue-size=100"], ["--frobnicate"], ["--ios"],
                 ["stray"], None):
        argv = (["--socket-path=" + sock] + args) if args is not None else ["--rw=read"]
        p = bench(argv)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        name = "bad_option_exits_2_with_one_line_" + (
            "".join(c if c.isalnum() else "_" for c in "_".join(a.lstrip("-") for a in args))
            if args else "no_socket")
        check(name, p.returncode == 2 and len(lines) == 1 and p.stdout == "", detail(p))

    p = bench(["--socket-path=" + os.path.join(d, "nobody.sock"), "--ios=1"])
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    check("no_backend_one_line_exit_1",
          p.returncode == 1 and len(lines) == 1 and "nobody.sock" in lines[0], detail(p))

    # A backend killed mid-run. The first progress line (one a second, a line
    # each when stderr is not a tty) says the run is under way.
    b = uvirtio_blk(d, "victim", ["--backend=null", "--size=64M"])
    if b.up:
        run = subprocess.Popen([exe, "bench", "blk", "--socket-path=" + b.sock, "--runtime=600",
                                "--iodepth=4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        first = run.stderr.readline()
        b.proc.kill()
        b.proc.wait()
        try:
            rest = run.communicate(timeout=60)
            rc = run.returncode
        except subprocess.TimeoutExpired:
            run.kill()
            rest = run.communicate()
            rc = "hung"
        err = note("bench blk (backend killed)", first + rest[1])
        check("backend_killed_mid_run_clear_message_nonzero_exit_no_crash",
              "IOPS" in first and isinstance(rc, int) and rc > 0 and
              "closed the connection" in err and clean(err),
              "exit %s, stderr %r" % (rc, err[-600:]))
    else:
        check("victim_backend_serves", False)
    b.stop()

    # qemu-storage-daemon, a backend nobody here wrote.
    qsd = shutil.which("qemu-storage-daemon")
    if not qsd:
        skip("qemu_storage_daemon_randrw_two_queues", "qemu-storage-daemon not installed")
    else:
        sock = os.path.join(d, "qsd.sock")
        b = Backend([qsd, "--blockdev", "driver=null-co,node-name=disk,size=67108864",
                     "--export", "type=vhost-user-blk,id=e0,node-name=disk,addr.type=unix,"
                     "addr.path=%s,writable=on,num-queues=2" % sock], sock)
        if b.up:
            p, j = json_run(["--socket-path=" + sock, "--ios=4000", "--rw=randrw",
                             "--queues=2", "--iodepth=4"])
            check("qemu_storage_daemon_randrw_two_queues",
                  p.returncode == 0 and j is not None and j["ios"] == 4000 and
                  j["read"]["ios"] > 0 and j["write"]["ios"] > 0 and j["errors"] == 0 and
                  j["capacity"] == 67108864, detail(p))
        else:
            check("qemu_storage_daemon_serves", False, b.stop())
        b.stop()

check("no_sanitizer_report_from_any_process", not tainted,
      "; ".join("%s: %r" % t for t in tainted))

print("1..%d" % len(results))
for i, (name, ok, det, why) in enumerate(results, 1):
    if why:
        print("ok %d - %s # SKIP %s" % (i, name, why))
    else:
        print("%s %d - %s%s" % ("ok" if ok else "not ok", i, name, "" if ok else " # " + det))
sys.exit(0 if all(ok for _, ok, _, _ in results) else 1)
