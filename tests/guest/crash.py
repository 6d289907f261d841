#!/usr/bin/env python3
"""Kill the vhost-user-blk backend of a running Linux guest (QEMU 7.2, TCG)
with SIGKILL, again and again, and restart it on the same socket while the
guest writes and verifies the disk; the guest must see no I/O error and its
final verify pass no mismatch.

    python3 crash.py --backend=qsd
    python3 crash.py --backend=uvirtio --uvirtio=build/tools/uvirtio [--ring=packed]
    python3 crash.py --backend=uvirtio --uvirtio=build/tools/uvirtio --kills=20 --seed=S

QEMU's disk is `-chardev socket,id=c0,path=SOCK,reconnect=1 -device
vhost-user-blk-pci,chardev=c0,...`: when the backend dies QEMU stops the
device and tries the socket again every second; the guest's requests stall
meanwhile and must complete once a restarted backend took the device over.
The guest scenario `crash` runs `migload -t 4` (migload.c): 4 threads of
4 KiB O_DIRECT random writes with a read-back check of a random written
block after each, on --blocks blocks of vda, until the host writes the stop
mark into block 0; then a verify pass of every block.

The kills (--kills, default 5): each waits until the guest made progress
since the last restart (two new `migload: progress` lines, 512 writes), then
a random delay in [0, --max-delay] s, then SIGKILL; the socket file the dead
backend leaves must be taken over by the restarted one (a fresh socket at
the same path) after a random pause in [--min-pause, --max-pause] s. The
delays come from --seed (random by default, printed; the same seed gives the
same delays, not the same instants of the guest's I/O).

After the last restart and progress past it, the host writes the stop mark;
the guest requires 0 errors, 0 mismatches and no "I/O error" in its kernel
log, and prints `migload: result ... gens G`; the host requires the PASS
verdict and both counts 0, and after the VM and the backend stopped reads
the image: every block 1..--blocks must be zeroes or the exact content of
the generation its header names, and the hash of those generations must be
the guest's G (the image holds what the guest last wrote, no more, no less).

--break (the red checks): `no-restart` kills the backend once and never
restarts it (the guest's I/O watchdog must report the stall), `readonly`
restarts the backend with a read-only export (writes must fail), `corrupt`
flips a byte of a written block in the image before the stop mark (the
guest's verify must find it, unless the guest rewrote that block before it
saw the mark), `host-corrupt` the same after the VM stopped (the host's
check of the image must find it).

Exit status: 0 pass, 1 fail, 77 skip (QEMU, kernel or busybox not installed;
in CI a failure, as run.py's).
"""

import argparse
import os
import random
import re
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migrate  # noqa: E402
import run  # noqa: E402
from run import Backend, Boot, Failure, QEMU, QSD  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))
import record_vhost  # noqa: E402

BS = migrate.BS
PROGRESS_EVERY = 256  # migload's PROGRESS
MAGIC = 0x6d69676c6f616431  # migload's MAGIC
M64 = (1 << 64) - 1
GENS = re.compile(r"migload: result .* gens ([0-9a-f]{16})")
# A kernel line (blk_print_req_error's "I/O error, dev vda, ...", "Buffer
# I/O error on dev vda, ..."), not the guest's own progress lines.
IO_ERROR = re.compile(r"^(?!.*uvirtio-guest:).*I/O error")


class Guest(migrate.Vm):
    """The QEMU process of the guest, its disk on a reconnecting chardev; no
    QMP: the guest powers off after its verdict."""

    def __init__(self, args, workdir, sock):
        self.index = 1
        devices = ["-chardev", f"socket,id=c0,path={sock},reconnect=1",
                   "-device", "vhost-user-blk-pci,chardev=c0,num-queues=1,"
                   f"packed={'on' if args.ring == 'packed' else 'off'}"]
        self.boot = Boot(args, workdir, None, "crash", 1, args.cpus,
                         {"blocks": args.blocks, "threads": args.threads,
                          "watchdog": args.watchdog}, 1, devices=devices)
        cmd = self.boot.cmd
        print(f"crash: QEMU: {' '.join(cmd)}", flush=True)
        self.lines = []
        self.logf = open(self.boot.log, "w")
        self.errf = open(self.boot.errlog, "wb")
        self.proc = run.subprocess.Popen(cmd, stdin=run.subprocess.DEVNULL,
                                         stdout=run.subprocess.PIPE, stderr=self.errf,
                                         preexec_fn=run.die_with_parent)
        self.reader = threading.Thread(target=self.boot._read,
                                       args=(self.proc, self.logf, self.lines), daemon=True)
        self.reader.start()
        self.qmp = None

    def crashed(self):
        """migrate.Vm's oops/panic/virtio_ring check, plus a verdict (the
        guest's I/O watchdog, a failed migload) and a kernel I/O error."""
        line = super().crashed()
        if line:
            return line
        for line in list(self.lines):
            m = run.VERDICT.search(line)
            if m:
                return f"the guest's verdict: {m.group(0)}"
            if IO_ERROR.search(line):
                return f"the guest's kernel: {line.strip()}"
        return None


class Recorder:
    """UVIRTIO_GUEST_RECORD=DIR for the crash test: record_vhost.py's relay
    and log (DIR/conn-N.jsonl, one file per QEMU connection, so one per
    backend process), run in this process, in front of every backend in turn.
    Unlike record_vhost.py's serve() it shuts the other connection down both
    ways as soon as one side ends: with the half-close that serve() does when
    the backend dies, QEMU 7.2 never reconnected (seen here, with both
    backends), so run.py's recorder cannot serve this test; and it waits
    for the backend to be up instead of closing QEMU's connection."""

    def __init__(self, listen, backend, out):
        os.makedirs(out, exist_ok=True)
        self.listen, self.backend, self.out = listen, backend, out
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(listen)
        self.ls.listen(4)
        self.n = 0
        threading.Thread(target=self._accept, daemon=True).start()
        print(f"crash: recording every vhost-user message into {out} (proxy {listen})",
              flush=True)

    def _accept(self):
        while True:
            try:
                conn, _ = self.ls.accept()
            except OSError:
                return
            self.n += 1
            threading.Thread(target=self._serve, daemon=True,
                             args=(conn, os.path.join(self.out, f"conn-{self.n}.jsonl"))).start()

    def _serve(self, conn, path):
        log = record_vhost.Log(path)
        # QEMU connects to the proxy at once, the backend may not be up yet:
        # closing QEMU's connection then would fail its device set-up for
        # good (QEMU 7.2 does not retry a set-up whose GET_FEATURES got an
        # end-of-file), so wait for the backend as long as a restart takes.
        deadline = time.monotonic() + 30
        while True:
            be = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                be.connect(self.backend)
                break
            except OSError as e:
                be.close()
                if time.monotonic() > deadline:
                    log.write({"error": f"cannot connect to the backend: {e}"})
                    conn.close()
                    log.close()
                    return
                time.sleep(0.05)
        ended = threading.Event()

        def side(src, dst, who):
            record_vhost.relay(src, dst, who, log)
            ended.set()

        ts = [threading.Thread(target=side, args=a, daemon=True)
              for a in ((conn, be, "front-end"), (be, conn, "back-end"))]
        for t in ts:
            t.start()
        ended.wait()
        for s in (conn, be):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in ts:
            t.join(5)
        conn.close()
        be.close()
        log.close()

    def close(self):
        self.ls.close()
        try:
            os.unlink(self.listen)
        except OSError:
            pass


def fnv64(gens):
    h = 0xcbf29ce484222325
    for g in gens:
        for b in struct.pack("<Q", g):
            h = ((h ^ b) * 0x100000001b3) & M64
    return h


def check_image(image, blocks, guest_hash):
    """Every block of [1, blocks] zeroes or migload's content of the
    generation in its header; the generations' hash the guest's."""
    tail_words = [(i * 0x9e3779b97f4a7c15) & M64 for i in range(3, BS // 8)]
    gens = []
    bad = []
    with open(image, "rb") as f:
        f.seek(BS)
        for b in range(1, blocks + 1):
            data = f.read(BS)
            if len(data) < BS:
                data = data.ljust(BS, b"\0")
            if not data.strip(b"\0"):
                gens.append(0)
                continue
            magic, blk, gen = struct.unpack_from("<QQQ", data)
            c = ((blk * 0x100000001b3) ^ (gen << 20)) & M64
            want = struct.pack("<QQQ", MAGIC, b, gen) + struct.pack(
                f"<{len(tail_words)}Q", *(c ^ w for w in tail_words))
            if data != want:
                bad.append(f"block {b} (header magic {magic:#x} block {blk} gen {gen})")
            gens.append(gen)
    if bad:
        raise Failure(f"the image after the VM stopped: {len(bad)} block(s) not a whole "
                      f"generation of themselves, e.g. {', '.join(bad[:3])}")
    got = fnv64(gens)
    if got != guest_hash:
        raise Failure(f"the image's generations hash to {got:016x}, the guest's table to "
                      f"{guest_hash:016x}: the image does not hold what the guest last wrote")
    print(f"crash: image checked on the host: {sum(1 for g in gens if g)} written blocks, "
          f"each its last generation (gens {got:016x})", flush=True)


def corrupt_one(image, blocks):
    with open(image, "r+b") as f:
        for b in range(1, blocks + 1):
            f.seek(b * BS)
            data = f.read(BS)
            if data.strip(b"\0"):
                f.seek(b * BS + 100)
                f.write(bytes([data[100] ^ 0xFF]))
                f.flush()
                os.fsync(f.fileno())
                print(f"crash: --break: flipped a byte of block {b} in the image",
                      flush=True)
                return
    raise Failure("--break: no written block to corrupt")


def is_socket(path):
    try:
        return (os.stat(path).st_mode & 0o170000) == 0o140000
    except OSError:
        return False


def listening(path):
    """Whether a process listens on the unix socket `path`: a socket in
    /proc/net/unix bound to it with __SO_ACCEPTCON (flag 0x10000); a stale
    socket file has none. No connection is made (it would be a front-end)."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                return True
    return False


def test_crash(args, workdir, image):
    run.make_image(image, args.image_mib)
    sock = os.path.join(workdir, "vhost-user-blk.sock")
    rng = random.Random(args.seed)
    backends = []  # every backend process started, the live one last
    recorder = None
    guest = None
    state = {"n": 0}

    def start_backend(read_only=False):
        state["n"] += 1
        n = state["n"]
        stale = is_socket(sock)
        # UVIRTIO_GUEST_RECORD: this test's Recorder, not run.py's.
        record = os.environ.pop("UVIRTIO_GUEST_RECORD", None)
        try:
            b = Backend(args, workdir, image, queues=1, read_only=read_only, sock=sock,
                        log=f"backend{n}.log")
        finally:
            if record is not None:
                os.environ["UVIRTIO_GUEST_RECORD"] = record
        backends.append(b)
        if not stale:
            b.wait_ready()
        else:
            # The dead one's socket file is still there: wait for a listener.
            deadline = time.monotonic() + 20
            while not listening(sock):
                if b.proc.poll() is not None:
                    out = run.tail(b.errlog).strip()
                    raise Failure(f"the restarted backend {b.name} exited with status "
                                  f"{b.proc.returncode} next to the stale socket file "
                                  f"{sock}; it printed: {out or '(nothing)'}")
                if time.monotonic() > deadline:
                    raise Failure(f"the restarted backend {b.name} made no new socket at "
                                  f"{sock} in 20 s (no listener on the stale socket file)")
                time.sleep(0.05)
            print(f"crash: backend {n} took over the stale socket file", flush=True)
        return b

    def alive():
        return [(guest.proc, "QEMU"), (backends[-1].proc, backends[-1].name)]

    def wait_progress(what, since):
        want = since + 2 * PROGRESS_EVERY
        return migrate.wait_for(f"guest progress past {want} writes ({what})",
                                lambda: (guest.progress() or 0) >= want and guest.progress(),
                                args.timeout, alive(), guest)

    try:
        b = start_backend()
        qemu_sock = sock
        if os.environ.get("UVIRTIO_GUEST_RECORD"):
            qemu_sock = os.path.join(workdir, "record-proxy.sock")
            recorder = Recorder(qemu_sock, sock, os.environ["UVIRTIO_GUEST_RECORD"])
        guest = Guest(args, workdir, qemu_sock)
        got = wait_progress("the load started", -2 * PROGRESS_EVERY + 1)
        print(f"crash: load running ({got} writes)", flush=True)
        kills = 1 if args.break_ == "no-restart" else args.kills
        for k in range(1, kills + 1):
            delay = rng.uniform(0, args.max_delay)
            pause = rng.uniform(args.min_pause, args.max_pause)
            time.sleep(delay)
            b = backends[-1]
            b.check_alive(f"before kill {k}")
            at = guest.progress() or 0
            b.proc.kill()
            b.proc.wait()
            b.err.close()
            stale = is_socket(sock)
            if listening(sock):
                raise Failure(f"something still listens on {sock} after kill {k}")
            print(f"crash: kill {k}/{kills}: SIGKILL {b.name} (pid {b.proc.pid}) "
                  f"{delay:.2f} s after the guest's progress, at ~{at} writes; "
                  f"stale socket file left: {'yes' if stale else 'no'}", flush=True)
            if args.break_ == "no-restart":
                print("crash: --break=no-restart: the backend stays dead", flush=True)
                migrate.wait_for("the guest to notice the dead backend", lambda: False,
                                 args.timeout, [(guest.proc, "QEMU")], guest)
            time.sleep(pause)
            start_backend(read_only=args.break_ == "readonly")
            t0 = time.monotonic()
            got = wait_progress(f"after restart {k}", at)
            print(f"crash: restart {k}: after a {pause:.2f} s pause; the guest went on, "
                  f"{got} writes after {time.monotonic() - t0:.1f} s", flush=True)
        if args.break_ == "corrupt":
            corrupt_one(image, args.blocks)
        fd = os.open(image, os.O_WRONLY)
        try:
            os.pwrite(fd, migrate.STOP_MARK.ljust(BS, b"\0"), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        print("crash: stop mark written", flush=True)
        deadline = time.monotonic() + args.timeout
        while guest.proc.poll() is None:
            crash = migrate.Vm.crashed(guest)
            if crash:
                raise Failure(f"the guest crashed during its verify: {crash}")
            if time.monotonic() > deadline:
                raise Failure(f"no power-off {args.timeout:.0f} s after the stop mark")
            time.sleep(0.2)
        guest.reader.join(5)
        lines = guest.lines
        results = [m for m in (migrate.RESULT.search(x) for x in lines) if m]
        verdicts = [m for m in (run.VERDICT.search(x) for x in lines) if m]
        ioerrs = [x.strip() for x in lines if IO_ERROR.search(x)]
        if ioerrs:
            raise Failure(f"{len(ioerrs)} I/O error line(s) on the console, first: {ioerrs[0]}")
        if len(results) != 1:
            why = f" (the guest says: {verdicts[0].group(0)})" if verdicts else ""
            raise Failure(f"{len(results)} migload result lines on the console{why}")
        r = results[0]
        print(f"crash: guest: {r.string.strip()}", flush=True)
        writes, blocks, errors, mism = (int(r.group(i)) for i in (1, 3, 4, 5))
        if errors or mism:
            raise Failure(f"the guest's load and verify: {errors} errors, {mism} mismatches")
        if writes == 0 or blocks == 0:
            raise Failure("the guest wrote nothing")
        if len(verdicts) != 1:
            raise Failure(f"{len(verdicts)} verdict lines on the console")
        if verdicts[0].group(1) != "PASS":
            raise Failure(f"guest says FAIL: {verdicts[0].group(3)}")
        if run.guest_value(lines, "ring") != args.ring:
            raise Failure(f"guest reports ring {run.guest_value(lines, 'ring')}, "
                          f"expected {args.ring}")
        if guest.proc.returncode != 0:
            raise Failure(f"QEMU exited with status {guest.proc.returncode}")
        m = next((m for m in (GENS.search(x) for x in lines) if m), None)
        if not m:
            raise Failure("the result line has no gens hash")
        guest.stop()
        guest = None
        backends[-1].check_alive("at the guest's power-off")
        backends[-1].stop()
        if args.break_ == "host-corrupt":
            corrupt_one(image, args.blocks)
        check_image(image, args.blocks, int(m.group(1), 16))
    finally:
        if guest is not None:
            guest.stop()
        for b in backends:
            if b.proc.poll() is None:
                try:
                    b.stop()
                except Failure as e:
                    print(f"crash: {e}", flush=True)
            if not b.err.closed:
                b.err.close()
        if recorder is not None:
            recorder.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--backend", default="uvirtio", choices=["uvirtio", "qsd"])
    ap.add_argument("--uvirtio", help="the uvirtio executable (--backend=uvirtio)")
    ap.add_argument("--kills", type=int, default=5, help="SIGKILLs of the backend")
    ap.add_argument("--seed", type=int, help="seed of the delays and pauses (default: random)")
    ap.add_argument("--max-delay", type=float, default=2.0,
                    help="a kill comes up to this many seconds after the guest's progress")
    ap.add_argument("--min-pause", type=float, default=0.1,
                    help="seconds at least between a kill and the restart")
    ap.add_argument("--max-pause", type=float, default=1.5,
                    help="seconds at most between a kill and the restart")
    ap.add_argument("--image-mib", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=4096,
                    help="4 KiB blocks the load writes (after block 0)")
    ap.add_argument("--threads", type=int, default=4, help="the guest's writer threads")
    ap.add_argument("--cpus", type=int, default=1, help="the guest's vCPUs")
    ap.add_argument("--watchdog", type=int, default=30,
                    help="the guest's I/O watchdog: seconds without a completion")
    ap.add_argument("--break", dest="break_", default="none",
                    choices=["none", "no-restart", "readonly", "corrupt", "host-corrupt"],
                    help="a red check (see above)")
    ap.add_argument("--backend-arg", action="append", default=[],
                    help="extra argument for `uvirtio blk`")
    run.common_options(ap)
    args = ap.parse_args()
    if args.backend == "qsd" and args.ring == "packed":
        ap.error("qemu-storage-daemon (libvhost-user) has no packed-ring inflight "
                 "tracking: --backend=qsd is --ring=split only")
    if args.blocks + 1 > (args.image_mib << 20) // BS:
        ap.error("--blocks does not fit in the image")
    if args.kills < 1:
        ap.error("--kills must be at least 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)

    rc = run.prepare(args, [QEMU] + ([QSD] if args.backend == "qsd" else []),
                     need_uvirtio=args.backend == "uvirtio", prog="crash")
    if rc is not None:
        return rc
    print(f"crash: backend {args.backend}, {args.kills} kills, seed {args.seed} "
          f"(repeat with --seed={args.seed})", flush=True)

    def body(workdir):
        image = os.path.join(workdir, "disk.img")
        try:
            test_crash(args, workdir, image)
        finally:
            if os.path.exists(image):
                os.unlink(image)

    logs = ["boot1-crash.console.log", "boot1-crash.qemu.log"] + [
        f"backend{i}.log" for i in range(1, args.kills + 2)]
    return run.execute(args, "crash", body, logs, prog="crash")


if __name__ == "__main__":
    sys.exit(main())
