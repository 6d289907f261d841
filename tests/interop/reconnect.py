#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reconnect: uvirtio's blk driver over the vhost-user front-end (with
reconnect on) keeps writes in flight while the backend is killed with
SIGKILL and started again on the same socket and image; every request must
complete exactly once with success, and every block must hold the pattern of
its last write, read back through the driver (blk_reconnect.c) and here in
the image file. The client must also have seen requests in flight when the
connection went (a "LOST n" line with n > 0), or the kill proved nothing.

Backends: qemu-storage-daemon (QEMU 7.2's offers no INFLIGHT_SHMFD:
protocol features 0x8f2b) and `uvirtio blk` (offers it). Without INFLIGHT_SHMFD the front-end leaves a ring with
requests in flight stopped and the client has the blk driver reset it and
add them again (uvirtio_blk_drv_resubmit()); with it the restarted backend
resubmits from the region and nothing is added again. Either way the case
must pass; its title says which path ran. `uvirtio blk` runs split and
packed (qemu-storage-daemon has no packed ring), each with INFLIGHT_SHMFD and
with it turned off in the front-end (the resubmit path).

Then a backend that never comes back: the client's bounded wait ends, its
requests fail, and it exits with the front-end's reason, in bounded time.

TAP on stdout; exit 0 pass, 1 fail, 77 when nothing could run.
Usage: reconnect.py --uvirtio EXE --client EXE [--backend qsd|uvirtio|both] [--kills N]
"""
import argparse
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import backend_util  # noqa: E402

QSD = os.environ.get("UVIRTIO_QSD") or "qemu-storage-daemon"
BLOCK = 4096
IMG_BYTES = 64 << 20

results = []
children = []


class Interrupted(Exception):
    """SIGTERM/SIGINT (meson's time-out): unwinds so every child is killed."""


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def tap(ok, name, detail=None, skip=None, todo=None):
    results.append(ok or bool(todo) or bool(skip))
    line = f"{'ok' if ok else 'not ok'} {len(results)} - {name}"
    if skip:
        line += f" # SKIP {skip}"
    elif todo:
        line += f" # TODO {todo}"
    print(line, flush=True)
    for d in (detail or "").splitlines():
        print(f"#   {d}", flush=True)


def block_pattern(block, pass_no):
    return bytes(((i * 31 + block * 7 + pass_no * 13 + (i >> 9)) & 0xFF) for i in range(BLOCK))


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, preexec_fn=backend_util.die_with_parent, **kw)
    children.append(p)
    return p


def kill_all():
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()


class Backend:
    """One backend process on @sock and @img; restartable after a SIGKILL."""

    def __init__(self, args, kind, sock, img, log):
        self.args, self.kind, self.sock, self.img, self.log = args, kind, sock, img, log
        self.proc = None

    def cmd(self):
        if self.kind == "uvirtio":
            return [self.args.uvirtio, "blk", f"--socket-path={self.sock}", "--queues=1", self.img]
        return [QSD, "--blockdev", f"driver=file,node-name=disk,filename={self.img},locking=off",
                "--export", "type=vhost-user-blk,id=e0,node-name=disk,addr.type=unix,"
                f"addr.path={self.sock},writable=on,num-queues=1"]

    def start(self):
        # The killed process left its socket file: a new one binds afresh.
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = spawn(self.cmd(), stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if os.path.exists(self.sock):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Client:
    """The client with its stdout read line by line in a thread."""

    def __init__(self, args, sock, *extra):
        self.proc = spawn([args.client, f"--socket-path={sock}", *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait_line(self, prefix, seconds):
        """True once a line starting with @prefix came; False when the
        client ended or @seconds passed first."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                return False
            if line is None:
                self.q.put(None)
                return False
            self.lines.append(line)
            if line.startswith(prefix):
                return True

    def finish(self, seconds):
        """The exit status (None on time-out, the client then killed) and
        every line it printed."""
        end = time.monotonic() + seconds
        while self.wait_line("\0", max(0.0, end - time.monotonic())):
            pass
        try:
            rc = self.proc.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.t.join(5)
        while not self.q.empty():
            line = self.q.get()
            if line is not None:
                self.lines.append(line)
        return rc, "\n".join(self.lines)


def image_holds(img, nblocks, pass_no):
    with open(img, "rb") as f:
        data = f.read(nblocks * BLOCK)
    bad = [b for b in range(nblocks)
           if data[b * BLOCK:(b + 1) * BLOCK] != block_pattern(b, pass_no)]
    return not bad, f"blocks differing from pass {pass_no}: {bad[:16]}" if bad else None


def kills_case(args, kind, tmp, packed=False, no_inflight=False):
    name = "uvirtio blk" if kind == "uvirtio" else "qemu-storage-daemon"
    name += ", packed ring" if packed else ", split ring"
    name += ", INFLIGHT_SHMFD turned off" if no_inflight else ""
    sock = os.path.join(tmp, f"{kind}-{os.getpid()}.sock")
    img = os.path.join(tmp, f"{kind}.img")
    with open(img, "wb") as f:
        f.truncate(IMG_BYTES)
    log = open(os.path.join(tmp, f"{kind}.log"), "w+")
    be = Backend(args, kind, sock, img, log)
    title = (f"{name}: SIGKILL x{args.kills} under {args.depth} writes in flight, restarted on "
             "the same socket: every request completes once, every block verified")
    try:
        if not be.start():
            log.seek(0)
            tap(False, f"{name}: serves on {sock}", log.read())
            return
        cl = Client(args, sock, f"--kills={args.kills}", f"--blocks={args.blocks}",
                    f"--depth={args.depth}", "--reconnect-timeout-ms=30000", "--run-timeout-ms=240000",
                    *(["--packed"] if packed else []),
                    *(["--no-inflight"] if no_inflight else []))
        problems = []
        if not cl.wait_line("READY", 60):
            problems.append("the client never had writes in flight")
        for k in range(1, args.kills + 1):
            if problems:
                break
            time.sleep(random.uniform(0.05, 0.4))
            be.kill9()
            time.sleep(random.uniform(0.0, 0.3))
            if not be.start():
                problems.append(f"{name} did not start again after kill {k}")
                break
            if not cl.wait_line(f"RECONNECTED {k}", 60):
                problems.append(f"no reconnect after kill {k}")
        rc, out = cl.finish(300)
        inflight = "offered 1, in use 1" in out
        lost = [int(x.split()[1]) for x in out.splitlines() if x.startswith("LOST ")]
        final = [int(x.split()[1]) for x in out.splitlines() if x.startswith("FINAL_PASS ")]
        if rc != 0:
            problems.append(f"client exit {rc}")
        want_ring = "# ring: packed" if packed else "# ring: split"
        if want_ring not in out:
            problems.append(f"the client did not say \"{want_ring}\"")
        if len(lost) < args.kills:
            problems.append(f"the client saw {len(lost)} losses of {args.kills}")
        if not any(n > 0 for n in lost):
            problems.append("no request was in flight when the connection went (LOST 0)")
        if not problems and final:
            ok, why = image_holds(img, args.blocks, final[0])
            if not ok:
                problems.append(f"the image file: {why}")
        elif not problems:
            problems.append("no FINAL_PASS line")
        log.seek(0)
        detail = "\n".join(problems) + "\n" + out + "\n--- backend log\n" + log.read()[-3000:]
        summary = "\n".join(x for x in out.splitlines()
                            if x.split(" ")[0] in ("LOST", "RECONNECTED", "RESUBMITTED", "PASS")
                            or "INFLIGHT_SHMFD" in x)
        how = ("INFLIGHT_SHMFD: the backend resubmits" if inflight
               else "no INFLIGHT_SHMFD: the driver resets the ring and adds again")
        tap(not problems, f"{title} ({how})", detail if problems else summary)
    finally:
        if be.proc is not None:
            backend_util.stop(be.proc, grace=10)
        log.close()


def never_back_case(args, tmp):
    """qsd killed for good: the bounded wait must end with a clear error."""
    sock = os.path.join(tmp, f"gone-{os.getpid()}.sock")
    img = os.path.join(tmp, "gone.img")
    with open(img, "wb") as f:
        f.truncate(IMG_BYTES)
    log = open(os.path.join(tmp, "gone.log"), "w+")
    be = Backend(args, "qsd", sock, img, log)
    title = ("qemu-storage-daemon killed and never restarted: the reconnect gives up after its "
             "bounded wait, the requests fail, the client ends with the reason")
    try:
        if not be.start():
            log.seek(0)
            tap(False, f"qemu-storage-daemon: serves on {sock}", log.read())
            return
        cl = Client(args, sock, "--kills=1", f"--blocks={args.blocks}", f"--depth={args.depth}",
                    "--reconnect-timeout-ms=1500")
        ready = cl.wait_line("READY", 60)
        be.kill9()
        start = time.monotonic()
        # Bounded: 1.5 s of reconnect attempts, then the failure; 60 s is a
        # hang, not a slow machine.
        rc, out = cl.finish(60)
        took = time.monotonic() - start
        ok = (ready and rc == 1 and "did not come back in 1500 ms" in out
              and "RECONNECTED" not in out)
        tap(ok, title, None if ok else f"ready {ready}, exit {rc} after {took:.1f} s\n{out}")
    finally:
        if be.proc is not None and be.proc.poll() is None:
            backend_util.stop(be.proc, grace=10)
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uvirtio", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--backend", choices=["uvirtio", "qsd", "both"], default="both")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=32)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kinds = ["qsd", "uvirtio"] if args.backend == "both" else [args.backend]
    have_qsd = shutil.which(QSD) is not None
    try:
        with tempfile.TemporaryDirectory(prefix="uvirtio-reconnect-") as tmp:
            for kind in kinds:
                if kind == "qsd" and not have_qsd:
                    tap(False, "qemu-storage-daemon reconnect",
                        skip="qemu-storage-daemon not installed")
                    continue
                kills_case(args, kind, tmp)
                if kind == "uvirtio":
                    kills_case(args, kind, tmp, packed=True)
                    kills_case(args, kind, tmp, no_inflight=True)
                    kills_case(args, kind, tmp, packed=True, no_inflight=True)
            if "qsd" in kinds and have_qsd:
                never_back_case(args, tmp)
    except Interrupted as e:
        tap(False, f"interrupted ({e})")
    finally:
        kill_all()
    print(f"1..{len(results)}")
    if results and all(results) and not have_qsd and args.backend == "qsd":
        return 77
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
