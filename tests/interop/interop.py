#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Interop: uvirtio's vhost-user front-end against real vhost-user blk
backends, qemu-storage-daemon (a device nobody here wrote) and `uvirtio blk`.

For each backend, serving a file image with two queues: the client
(blk_io.c) writes a pattern on every queue, verifies it, stops and restarts a
ring, resets and renegotiates with fewer features and verifies again; the
image file is then read here, so the data is checked where it landed; a
second connection verifies it once more; `uvirtio check` prints its report.
A check qemu-storage-daemon fails is printed with its reason: it fails the
test unless listed in QSD_KNOWN below with why that is qemu's behaviour.

Then the lifecycle (blk_lifecycle.c): queue reset with writes in flight
and a resize from 16 to 64 entries, suspend with writes in flight and
resume, and a move of the suspended device to a second backend process on
the same image, all with verified I/O. qemu-storage-daemon (QEMU 7.2)
cannot stop a ring with requests in flight (see QSD_LIFECYCLE_KNOWN): that
run's failure is printed with the reason, and the lifecycle runs again with
the client letting its requests finish first, which must pass.

TAP on stdout. Usage: interop.py --uvirtio EXE --client EXE --lifecycle-client EXE
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REGION = 1 << 20
REGIONS = 2

# Checks qemu-storage-daemon (QEMU 7.2) fails, with the reason each is its
# behaviour rather than a bug in the check. Filled from `uvirtio check`
# runs; every entry is printed when it occurs.
QSD_KNOWN = {
    "config_values_sane":
        "QEMU 7.2's export offers VIRTIO_BLK_F_SIZE_MAX with size_max 0 in its config "
        "(as read by the check), a limit no segment can meet",
    "hostile_chain_longer_than_queue":
        "it serves a request whose indirect table is longer than the queue "
        "(the spec's limit for a chain, 2.7.5.3.1)",
    "hostile_nested_indirect":
        "it serves a request with INDIRECT set inside an indirect table, which the driver "
        "must not do, instead of refusing it",
}

# What qemu-storage-daemon (QEMU 7.2, libvhost-user) does when a ring is
# stopped with requests in flight, matched in its log.
QSD_LIFECYCLE_KNOWN = {
    "Error writing eventfd: Bad file descriptor":
        "libvhost-user answers GET_VRING_BASE at once without waiting for the ring's "
        "requests in flight and closes the ring's call fd; when such a request completes it "
        "signals the closed fd and vu_panic()s, dropping the connection (the spec has a "
        "stopped ring use no buffer; QEMU's own front-end does not wait either)",
}

results = []


def tap(ok, name, detail=None, skip=None):
    results.append(ok)
    line = f"{'ok' if ok else 'not ok'} {len(results)} - {name}"
    if skip:
        line += f" # SKIP {skip}"
    print(line, flush=True)
    for d in (detail or "").splitlines():
        print(f"#   {d}", flush=True)


def pattern(region, length=REGION):
    return bytes(((i * 31 + region * 7 + (i >> 9)) & 0xFF) for i in range(length))


def wait_socket(path, proc, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def backend_cmd(kind, args, sock, img, queues=2):
    if kind == "uvirtio":
        return [args.uvirtio, "blk", f"--socket-path={sock}", f"--queues={queues}", img]
    # locking=off: a move has two daemons on one image for a moment.
    return [shutil.which("qemu-storage-daemon"),
            "--blockdev", f"driver=file,node-name=disk,filename={img},locking=off",
            "--export", "type=vhost-user-blk,id=e0,node-name=disk,addr.type=unix,"
            f"addr.path={sock},writable=on,num-queues={queues}"]


def run_client(args, sock, *extra):
    p = subprocess.run([args.client, f"--socket-path={sock}", f"--regions={REGIONS}", *extra],
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def check_report(args, kind, sock):
    """Runs `uvirtio check`; returns (ok, detail)."""
    p = subprocess.run([args.uvirtio, "check", f"--socket-path={sock}"],
                       capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    if p.returncode == 0:
        return True, out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    if kind == "qsd" and failed:
        unknown = [f for f in failed if not any(f.split()[1].rstrip(":") == k for k in QSD_KNOWN)]
        for f in failed:
            name = f.split()[1].rstrip(":")
            if name in QSD_KNOWN:
                out += f"\nqemu-storage-daemon fails {name}: {QSD_KNOWN[name]}"
        return not unknown, out
    return False, out


def one_backend(args, kind, tmp):
    sock = os.path.join(tmp, f"{kind}.sock")
    img = os.path.join(tmp, f"{kind}.img")
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    log = open(os.path.join(tmp, f"{kind}.log"), "w+")
    proc = subprocess.Popen(backend_cmd(kind, args, sock, img), stdout=log, stderr=subprocess.STDOUT)
    name = "uvirtio blk" if kind == "uvirtio" else "qemu-storage-daemon"
    try:
        if not wait_socket(sock, proc):
            log.seek(0)
            tap(False, f"{name}: serves on {sock}", log.read())
            return
        rc, out = run_client(args, sock)
        tap(rc == 0, f"{name}: front-end writes on 2 queues, verifies, restarts a ring, "
            "resets and renegotiates, verifies", out)
        with open(img, "rb") as f:
            data = f.read((REGIONS + 1) * REGION)
        bad = [r for r in range(REGIONS + 1)
               if data[r * REGION:(r + 1) * REGION] != pattern(r)]
        tap(rc == 0 and not bad, f"{name}: the image file holds what the front-end wrote",
            f"regions differing: {bad}" if bad else None)
        rc, out = run_client(args, sock, "--verify-only")
        tap(rc == 0, f"{name}: a second connection reads the same data", out)
        if not args.no_check:
            ok, out = check_report(args, kind, sock)
            tap(ok, f"{name}: uvirtio check", out)
        tap(proc.poll() is None, f"{name}: still serving after all of it")
    finally:
        rc = stop(proc)
        log.seek(0)
        text = log.read()
        log.close()
        if kind == "uvirtio":
            clean = rc == 0 and "Sanitizer" not in text
            tap(clean, f"{name}: exits 0 on SIGTERM with no sanitizer report",
                f"exit {rc}\n{text[-3000:]}" if not clean else None)


def lifecycle_pattern(seed):
    return bytes(((i * 31 + seed * 7 + (i >> 9)) & 0xFF) for i in range(4096))


class Backend:
    """One backend process serving @img on its own socket."""

    def __init__(self, args, kind, tmp, img, tag):
        self.sock = os.path.join(tmp, f"{kind}-{tag}.sock")
        self.log = open(os.path.join(tmp, f"{kind}-{tag}.log"), "w+")
        self.proc = subprocess.Popen(backend_cmd(kind, args, self.sock, img, queues=1),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.ok = wait_socket(self.sock, self.proc)

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        rc = stop(self.proc)
        text = self.text()
        self.log.close()
        return rc, text


def lifecycle(args, kind, tmp):
    name = "uvirtio blk" if kind == "uvirtio" else "qemu-storage-daemon"
    img = os.path.join(tmp, f"{kind}-lifecycle.img")
    with open(img, "wb") as f:
        f.truncate(64 << 20)

    def client(sock, *extra):
        p = subprocess.run([args.lifecycle_client, f"--socket-path={sock}", *extra],
                           capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout + p.stderr

    def image_holds_64_blocks():
        with open(img, "rb") as f:
            data = f.read(64 * 4096)
        bad = [i for i in range(64) if data[i * 4096:(i + 1) * 4096] != lifecycle_pattern(20 + i)]
        return not bad, f"blocks differing: {bad}" if bad else None

    # Requests in flight at the queue reset and the suspend.
    b = Backend(args, kind, tmp, img, "a")
    if not b.ok:
        tap(False, f"{name}: serves for the lifecycle test", b.stop()[1])
        return
    rc, out = client(b.sock)
    alive = b.proc.poll() is None
    rc_b, text = b.stop()
    title = (f"{name}: queue reset and resize, suspend/resume, with requests in flight, "
             "verified I/O")
    if rc != 0 and kind == "qsd":
        known = [why for line, why in QSD_LIFECYCLE_KNOWN.items() if line in text]
        if known:
            tap(True, title + " # known qemu-storage-daemon behaviour, see below",
                out + text + f"\nqemu-storage-daemon fails this: {known[0]}")
        else:
            tap(False, title, out + text)
    else:
        tap(rc == 0 and alive, title, out if rc or not alive else None)
        if rc == 0:
            ok, why = image_holds_64_blocks()
            tap(ok, f"{name}: the image holds the 64 blocks written across reset and suspend", why)

    # The same with the client letting its requests finish first, then a
    # move of the suspended device to a second process on the same image.
    b1 = Backend(args, kind, tmp, img, "b")
    b2 = Backend(args, kind, tmp, img, "c")
    try:
        if not (b1.ok and b2.ok):
            tap(False, f"{name}: two backends serve one image", b1.text() + b2.text())
            return
        rc, out = client(b1.sock, "--quiesce", f"--move-to={b2.sock}")
        tap(rc == 0, f"{name}: queue reset, resize, suspend, move to a second process, resume, "
            "verified I/O (requests finished before each stop)", out if rc else None)
        if rc == 0:
            ok, why = image_holds_64_blocks()
            tap(ok, f"{name}: the image holds the 64 blocks written across the move", why)
        tap(b2.proc.poll() is None, f"{name}: the second process still serves after the move")
    finally:
        for x in (b1, b2):
            rc_x, text = x.stop()
            if kind == "uvirtio" and (rc_x != 0 or "Sanitizer" in text):
                tap(False, f"{name}: a lifecycle backend exits 0 with no sanitizer report",
                    f"exit {rc_x}\n{text[-3000:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uvirtio", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--lifecycle-client", required=True)
    ap.add_argument("--backend", choices=["uvirtio", "qsd", "both"], default="both")
    ap.add_argument("--no-check", action="store_true", help="leave out `uvirtio check`")
    args = ap.parse_args()
    kinds = ["uvirtio", "qsd"] if args.backend == "both" else [args.backend]
    print(f"# {len(kinds)} backend(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="uvirtio-interop-") as tmp:
        for kind in kinds:
            if kind == "qsd" and not shutil.which("qemu-storage-daemon"):
                tap(True, "qemu-storage-daemon interop", skip="qemu-storage-daemon not installed")
                continue
            one_backend(args, kind, tmp)
            lifecycle(args, kind, tmp)
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
