#!/usr/bin/env python3
"""Boot the Debian kernel under QEMU (TCG) with a vhost-user-blk disk served by
a backend on the host, run scenarios inside the guest and take the guest's own
verdict from the serial console.

    python3 run.py --backend=qsd --test=data
    python3 run.py --backend=uvirtio --uvirtio=build/tools/uvirtio --test=readonly
    python3 run.py --backend=uvirtio --uvirtio=build/tools/uvirtio --test=data --ring=packed

Tests (each one backend process, one or more boots):
    data        boot `write` (mkfs, files, remounts, 3 driver rebinds), then a
                second QEMU on the same backend process boots `verify`
    multiqueue  backend and device with 2 queues, 2 vCPUs, I/O on both queues
    readonly    read-only backend over a host-filled image; writes must fail

--ring=packed gives QEMU's device packed=on and has the guest check, at every
bind of virtio_blk, that VIRTIO_F_RING_PACKED (bit 34) was negotiated;
--ring=split (the default) gives packed=off and checks that it was not.

Exit status: 0 pass, 1 fail, 77 skip (QEMU, kernel or busybox not installed).
With CI=true (CI sets it; so does .ci/run) a missing tool fails instead: CI
installs every one (scripts/install-deps.sh). An error of the harness itself
(an exception, a file of the project's own missing) always fails.
UVIRTIO_QEMU and UVIRTIO_QSD name other QEMU and qemu-storage-daemon binaries
(the harness's negative control points UVIRTIO_QEMU at one that does not exist).
"""

import argparse
import ctypes
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import initramfs  # noqa: E402

QEMU = os.environ.get("UVIRTIO_QEMU") or "qemu-system-x86_64"
QSD = os.environ.get("UVIRTIO_QSD") or "qemu-storage-daemon"
VERDICT = re.compile(r"UVIRTIO-GUEST-RESULT: (PASS|FAIL) ([A-Za-z0-9_-]+)(?::\s*(.*))?")
GUEST_MEM = "512M"
TAIL = 40
SKIP = 77


class Failure(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM/SIGINT (meson's timeout): unwinds so every process is killed."""


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def die_with_parent():
    """preexec_fn: the child gets SIGKILL if run.py dies, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def tail(path, n=TAIL):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"({e})\n"


def stop(proc, name, grace=5.0):
    """Stop a child politely, then not; return its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            print(f"run: {name} ignored SIGTERM; killing it", flush=True)
            proc.kill()
            proc.wait()
    return proc.returncode


class Backend:
    """The vhost-user backend process and its socket."""

    def __init__(self, args, workdir, image, queues, read_only, cmd=None, sock=None,
                 name=None, log="backend.log", shared=False):
        """cmd, sock, name: another backend's command line, socket and name
        (net.py's `uvirtio net`); by default the blk backend of args.backend.
        log: its output's file in workdir; shared: another backend process
        has the same image open (migrate.py), so qemu-storage-daemon must
        not lock it."""
        self.sock = sock or os.path.join(workdir, "vhost-user-blk.sock")
        self.errlog = os.path.join(workdir, log)
        if cmd is None:
            cmd = self.blk_cmd(args, image, queues, read_only, shared)
        self.name = name or os.path.basename(cmd[0])
        print("run: backend: " + " ".join(cmd), flush=True)
        self.err = open(self.errlog, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.stopped_by_us = False
        # UVIRTIO_GUEST_RECORD=DIR: QEMU talks to the backend through
        # tests/fuzz/record_vhost.py, which logs every message into DIR
        # (the fuzzers' seeds are made from such logs).
        self.qemu_sock = self.sock
        self.recorder = None
        record = os.environ.get("UVIRTIO_GUEST_RECORD")
        if record:
            self.qemu_sock = os.path.join(workdir, "record-proxy.sock")
            rec = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz",
                               "record_vhost.py")
            self.recorder = subprocess.Popen(
                [sys.executable, rec, f"--listen={self.qemu_sock}", f"--backend={self.sock}",
                 f"--out={record}"], stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def blk_cmd(self, args, image, queues, read_only, shared=False):
        if args.backend == "uvirtio":
            cmd = [args.uvirtio, "blk", f"--socket-path={self.sock}", f"--queues={queues}"]
            if read_only:
                cmd.append("--read-only")
            return cmd + args.backend_arg + [image]
        return [QSD,
                "--blockdev", f"driver=file,node-name=disk,filename={image}"
                + (",locking=off" if shared else ""),
                "--export", "type=vhost-user-blk,id=e0,node-name=disk,"
                f"addr.type=unix,addr.path={self.sock},"
                f"writable={'off' if read_only else 'on'},num-queues={queues}"]

    def wait_ready(self, timeout=20.0):
        """Until the socket accepts; without connecting, which would be a front-end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive("while starting")
            if all(os.path.exists(p) for p in (self.sock, self.qemu_sock)):
                try:
                    st = os.stat(self.sock)
                    if (st.st_mode & 0o170000) == 0o140000:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise Failure(f"backend socket {self.sock} not there after {timeout:.0f} s")

    def check_alive(self, when):
        if self.proc.poll() is not None:
            raise Failure(f"backend {self.name} exited with status {self.proc.returncode} {when}")

    def stop(self):
        """Stop it; a backend that was alive and stops on SIGTERM is fine."""
        alive = self.proc.poll() is None
        if self.recorder:
            stop(self.recorder, "record_vhost.py")
        rc = stop(self.proc, self.name)
        self.err.close()
        if alive and rc not in (0, -signal.SIGTERM):
            raise Failure(f"backend {self.name} exited with status {rc} on SIGTERM")
        return rc


class Boot:
    """One QEMU run of one scenario; its console goes to a log file."""

    def __init__(self, args, workdir, backend, scenario, queues, cpus, params, index,
                 devices=None, prefix=()):
        """devices: QEMU's device arguments (default: the vhost-user-blk disk
        on `backend` with `queues` queues); prefix: a command QEMU runs under
        (net.py's `ip netns exec NS`)."""
        self.scenario = scenario
        self.log = os.path.join(workdir, f"boot{index}-{scenario}.console.log")
        self.errlog = os.path.join(workdir, f"boot{index}-{scenario}.qemu.log")
        append = ["console=ttyS0", "panic=-1", f"uvirtio.scenario={scenario}",
                  f"uvirtio.ring={args.ring}"]
        append += [f"uvirtio.{k}={v}" for k, v in params.items()]
        append += args.append
        if devices is None:
            devices = [
                "-chardev", f"socket,id=char0,path={backend.qemu_sock}",
                "-device", f"vhost-user-blk-pci,chardev=char0,num-queues={queues},"
                f"packed={'on' if args.ring == 'packed' else 'off'}"]
        self.cmd = list(prefix) + [
            QEMU, "-nodefaults", "-display", "none", "-monitor", "none",
            "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", str(cpus),
            "-m", GUEST_MEM,
            # vhost-user needs guest RAM the backend can map: a shared memfd.
            "-object", f"memory-backend-memfd,id=mem,size={GUEST_MEM},share=on",
            "-numa", "node,memdev=mem",
            "-kernel", args.kernel, "-initrd", args.initrd,
            "-append", " ".join(append),
        ] + devices + ["-serial", "stdio", "-no-reboot"]
        self.verbose = args.verbose
        self.timeout = args.timeout
        self.ring = args.ring
        self.took = None

    def run(self):
        """Boot, wait for the power-off; return (verdict, reason, console lines)."""
        print(f"run: boot {self.scenario}: {' '.join(self.cmd)}", flush=True)
        start = time.monotonic()
        lines = []
        with open(self.log, "w") as logf, open(self.errlog, "wb") as errf:
            proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=errf,
                                    preexec_fn=die_with_parent)
            reader = threading.Thread(target=self._read, args=(proc, logf, lines),
                                      daemon=True)
            reader.start()
            try:
                proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                raise Failure(f"boot {self.scenario}: no power-off after {self.timeout} s")
            finally:
                stop(proc, QEMU)
                reader.join(5)
        took = self.took = time.monotonic() - start
        if proc.returncode != 0:
            raise Failure(f"boot {self.scenario}: QEMU exited with status {proc.returncode}")
        verdicts = [m for m in (VERDICT.search(line) for line in lines) if m]
        if not verdicts:
            raise Failure(f"boot {self.scenario}: no verdict line on the console")
        if len(verdicts) > 1:
            raise Failure(f"boot {self.scenario}: {len(verdicts)} verdict lines")
        v = verdicts[0]
        if v.group(2) != self.scenario:
            raise Failure(f"boot {self.scenario}: verdict is for scenario {v.group(2)}")
        if v.group(1) != "PASS":
            raise Failure(f"boot {self.scenario}: guest says FAIL: {v.group(3)}")
        ring = guest_value(lines, "ring")
        if ring != self.ring:
            raise Failure(f"boot {self.scenario}: guest reports ring {ring}, expected {self.ring}")
        print(f"run: boot {self.scenario}: PASS in {took:.1f} s", flush=True)
        return lines

    def _read(self, proc, logf, lines):
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            logf.write(line + "\n")
            logf.flush()
            lines.append(line)
            if self.verbose or "uvirtio-guest:" in line or "UVIRTIO-GUEST-RESULT" in line:
                print(f"[{self.scenario}] {line}", flush=True)


def guest_value(lines, key):
    """The value of a `uvirtio-guest: KEY VALUE` progress line."""
    for line in lines:
        m = re.search(r"uvirtio-guest: " + re.escape(key) + r" (\S+)", line)
        if m:
            return m.group(1)
    return None


def swap_header(pages):
    """Page 0 of a Linux swap area (mkswap's): version 1, last page, no bad
    pages, and the SWAPSPACE2 magic at the end of the page."""
    page = bytearray(4096)
    struct.pack_into("<III", page, 1024, 1, pages - 1, 0)
    page[1036:1052] = os.urandom(16)
    page[4096 - 10:] = b"SWAPSPACE2"
    return bytes(page)


def make_image(path, mib, pattern_mib=0, swap=False):
    """A sparse image of `mib` MiB whose first `pattern_mib` MiB are random bytes
    (starting with a swap header if `swap`). Return the sha256 of those bytes."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(pattern_mib):
            chunk = os.urandom(1 << 20)
            if i == 0 and swap:
                chunk = swap_header(pattern_mib * 256) + chunk[4096:]
            h.update(chunk)
            f.write(chunk)
        f.truncate(mib << 20)
    return h.hexdigest()


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_data(args, workdir, image):
    make_image(image, args.image_mib) if not args.image else None
    backend = Backend(args, workdir, image, queues=1, read_only=False)
    try:
        backend.wait_ready()
        boot = Boot(args, workdir, backend, "write", 1, 1, {}, 1)
        lines = run_boot(boot, backend)
        manifest = guest_value(lines, "manifest-sha256")
        if not manifest:
            raise Failure("the write boot printed no manifest-sha256")
        # A second front-end on the same backend process, after the first left.
        backend.check_alive("after the first QEMU left")
        boot = Boot(args, workdir, backend, "verify", 1, 1, {"manifest": manifest}, 2)
        run_boot(boot, backend)
    finally:
        backend.stop()


def test_multiqueue(args, workdir, image):
    make_image(image, args.image_mib) if not args.image else None
    backend = Backend(args, workdir, image, queues=2, read_only=False)
    try:
        backend.wait_ready()
        boot = Boot(args, workdir, backend, "multiqueue", 2, 2, {"queues": 2}, 1)
        run_boot(boot, backend)
    finally:
        backend.stop()


def test_readonly(args, workdir, image):
    mib = 16
    if args.image:
        expect = hashlib.sha256()
        with open(image, "rb") as f:
            expect.update(f.read(mib << 20))
        expect = expect.hexdigest()
    else:
        expect = make_image(image, args.image_mib, pattern_mib=mib, swap=True)
    before = file_sha(image)
    backend = Backend(args, workdir, image, queues=1, read_only=True)
    try:
        backend.wait_ready()
        boot = Boot(args, workdir, backend, "readonly", 1, 1,
                    {"sha256": expect, "mib": mib}, 1)
        run_boot(boot, backend)
    finally:
        backend.stop()
    if file_sha(image) != before:
        raise Failure("the image changed although the backend was read-only")
    print("run: image unchanged on the host", flush=True)


def run_boot(boot, backend):
    try:
        return boot.run()
    except Failure:
        print(f"run: last {TAIL} lines of the console ({boot.log}):", flush=True)
        sys.stdout.write(tail(boot.log))
        print(f"run: QEMU stderr ({boot.errlog}):", flush=True)
        sys.stdout.write(tail(boot.errlog, 20))
        raise
    finally:
        # QEMU and the backend both gone is worse news than the guest's verdict.
        if backend is not None and backend.proc.poll() is not None:
            backend.check_alive(f"during boot {boot.scenario}")


TESTS = {"data": test_data, "multiqueue": test_multiqueue, "readonly": test_readonly}


def common_options(ap):
    """The options every guest test shares (run.py's and net.py's)."""
    ap.add_argument("--ring", default="split", choices=["split", "packed"],
                    help="the device's ring layout (QEMU packed=off|on)")
    ap.add_argument("--kernel", help="default: the newest /boot/vmlinuz-6.1.0-*-amd64")
    ap.add_argument("--cache-dir", help="where built initramfs archives are kept "
                    "(default: $TMPDIR/uvirtio-guest-cache)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per boot")
    ap.add_argument("--append", action="append", default=[],
                    help="extra kernel command line word, e.g. uvirtio.queues=3 "
                    "(later words override the test's)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--verbose", action="store_true", help="echo every console line")


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def prepare(args, tools, need_uvirtio, prog="run"):
    """Signal handlers, the tools, kernel and initramfs (args.kernel,
    args.initrd, args.kernel_version), the uvirtio executable. Return None to
    go on, or the exit status (77 skip, 1 fail)."""
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for tool in tools:
            if not shutil.which(tool):
                raise initramfs.MissingTool(f"{tool} not installed")
        args.kernel, args.kernel_version = initramfs.find_kernel(args.kernel)
        cache = args.cache_dir or os.path.join(tempfile.gettempdir(),
                                               f"uvirtio-guest-cache-{os.getuid()}")
        args.initrd = initramfs.build_cached(cache, args.kernel_version)
    except initramfs.MissingTool as e:
        if in_ci():
            print(f"{prog}: FAIL: {e}; CI installs it (scripts/install-deps.sh), so in CI "
                  "a missing tool is a failure, not a skip", flush=True)
            return 1
        print(f"{prog}: SKIP: {e}", flush=True)
        return SKIP
    except initramfs.HarnessError as e:
        print(f"{prog}: FAIL: harness error: {e}", flush=True)
        return 1
    if need_uvirtio:
        if not args.uvirtio or not os.access(args.uvirtio, os.X_OK):
            print(f"{prog}: FAIL: --uvirtio={args.uvirtio} is not an executable", flush=True)
            return 1
        args.uvirtio = os.path.abspath(args.uvirtio)
    return None


def execute(args, name, body, logs, prog="run", cleanup=None):
    """Run body(workdir) in a fresh work directory: a Failure or a signal is a
    FAIL, the tails of the `logs` (names in the work directory) are shown on
    failure, the directory is kept on failure or with --keep; cleanup(workdir)
    runs last on every path. Return the exit status."""
    workdir = tempfile.mkdtemp(prefix=f"uvirtio-guest-{name}-")
    print(f"{prog}: test {name}, ring {args.ring}, kernel {args.kernel_version}, "
          f"initramfs {args.initrd}, work dir {workdir}", flush=True)
    start = time.monotonic()
    ok = False
    try:
        body(workdir)
        ok = True
    except Failure as e:
        print(f"{prog}: FAIL: {e}", flush=True)
    except Interrupted as e:
        print(f"{prog}: FAIL: interrupted by {e}", flush=True)
    finally:
        if not ok:
            for log in logs:
                path = os.path.join(workdir, log)
                if os.path.exists(path):
                    print(f"{prog}: {log} ({path}):", flush=True)
                    sys.stdout.write(tail(path))
        if cleanup:
            cleanup(workdir)
        if args.keep or not ok:
            print(f"{prog}: logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    took = time.monotonic() - start
    print(f"{prog}: {name}: {'PASS' if ok else 'FAIL'} in {took:.1f} s", flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--test", required=True, choices=sorted(TESTS))
    ap.add_argument("--backend", default="uvirtio", choices=["uvirtio", "qsd"])
    ap.add_argument("--uvirtio", help="the uvirtio executable (--backend=uvirtio)")
    ap.add_argument("--image", help="use this image instead of a fresh 64 MiB one")
    ap.add_argument("--image-mib", type=int, default=64)
    ap.add_argument("--backend-arg", action="append", default=[],
                    help="extra argument for `uvirtio blk`, e.g. --inject-fault=drop-completion "
                    "(a fault_injection build; tests/negative)")
    common_options(ap)
    args = ap.parse_args()

    rc = prepare(args, [QEMU] + ([QSD] if args.backend == "qsd" else []),
                 need_uvirtio=args.backend == "uvirtio")
    if rc is not None:
        return rc
    print(f"run: backend {args.backend}", flush=True)

    def body(workdir):
        image = os.path.abspath(args.image) if args.image else os.path.join(workdir, "disk.img")
        try:
            TESTS[args.test](args, workdir, image)
        finally:
            # The image is large and the logs tell more: it never stays.
            if not args.image and os.path.exists(image):
                os.unlink(image)

    return execute(args, args.test, body, ["backend.log"])


if __name__ == "__main__":
    sys.exit(main())
