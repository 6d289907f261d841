#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Interop: uvirtio's vhost-user front-end against real vhost-user blk
backends, qemu-storage-daemon (a device nobody here wrote) and `uvirtio blk`.

For each backend, serving a file image with two queues: the client
(blk_io.c) writes a pattern on every queue, verifies it, stops and restarts a
ring, resets and renegotiates with fewer features and verifies again; the
image file is then read here, so the data is checked where it landed; a
second connection verifies it once more; `uvirtio check` prints its report,
which must match KNOWN_CHECK_FAILURES below exactly: every listed check fails
in the listed way (each printed with its reason), no other check fails, and a
listed check that passes is an "unexpected pass" that fails the test until
the list is updated. --self-test checks that judge on canned reports.

Then the lifecycle (blk_lifecycle.c): queue reset with writes in flight
and a resize from 16 to 64 entries, suspend with writes in flight and
resume, and a move of the suspended device to a second backend process on
the same image, all with verified I/O. qemu-storage-daemon (QEMU 7.2)
cannot stop a ring with requests in flight (see QSD_IN_FLIGHT_RACE): that
run may pass or fail, but only in the listed ways, and the lifecycle runs
again with the client letting its requests finish first, which must pass.
With --strict (CI) the lifecycle client also fails on a request used after
a suspend was presented.

TAP on stdout. Usage: interop.py --uvirtio EXE --client EXE --lifecycle-client EXE [--strict]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import backend_util  # noqa: E402

QSD = os.environ.get("UVIRTIO_QSD") or "qemu-storage-daemon"
REGION = 1 << 20
REGIONS = 2

# Every check a backend is expected to fail, by `uvirtio check`'s check name:
# (a regex its FAIL line must match, why that is the backend's behaviour).
# A listed check that fails otherwise, or passes, fails the test ("unexpected
# pass": update the list); a check not listed that fails, fails the test.
KNOWN_CHECK_FAILURES = {
    "uvirtio": {},
    "qsd": {
        "config_values_sane": (
            r"size_max is 0 with SIZE_MAX",
            "QEMU 7.2's export offers VIRTIO_BLK_F_SIZE_MAX with size_max 0 in its config "
            "(as read by the check), a limit no segment can meet"),
        "hostile_chain_longer_than_queue": (
            r"indirect chain of \d+ descriptors, queue size \d+: completed the invalid request",
            "it serves a request whose indirect table is longer than the queue "
            "(the spec's limit for a chain, 2.7.5.3.1)"),
        "hostile_header_short": (
            r"hung on a request header of \d+ bytes: no used entry, no DEVICE_NEEDS_RESET",
            "QEMU 7.2's vhost-user-blk export drops a request whose header is too short "
            "(it logs 'virtio-blk request outhdr too short' and frees the element unpushed): "
            "no used entry, no closed connection, and without protocol feature STATUS no "
            "DEVICE_NEEDS_RESET can reach the front-end"),
        "hostile_nested_indirect": (
            r"completed the invalid request with OK",
            "it serves a request with INDIRECT set inside an indirect table, which the driver "
            "must not do, instead of refusing it"),
    },
}

# The lifecycle with requests in flight at the queue reset and the suspend,
# against qemu-storage-daemon (QEMU 7.2, libvhost-user): libvhost-user answers
# GET_VRING_BASE at once without waiting for the ring's requests in flight and
# closes the ring's call fd. Whether one of them is still in flight then is a
# race with the disk, so this run may pass; when it fails it must fail in one
# of these ways (matched in the client's output and the backend's log), each
# of which the spec forbids a stopped ring to do.
QSD_IN_FLIGHT_RACE = {
    "Error writing eventfd: Bad file descriptor":
        "a request completed after GET_VRING_BASE: it signals the closed call fd and "
        "vu_panic()s, dropping the connection",
    "after the suspend was presented":
        "a request was used after GET_VRING_BASE returned (the suspend was presented), "
        "which --strict fails",
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
    return backend_util.stop(proc, grace=20)


def backend_cmd(kind, args, sock, img, queues=2):
    if kind == "uvirtio":
        return [args.uvirtio, "blk", f"--socket-path={sock}", f"--queues={queues}", img]
    # locking=off: a move has two daemons on one image for a moment.
    return [QSD,
            "--blockdev", f"driver=file,node-name=disk,filename={img},locking=off",
            "--export", "type=vhost-user-blk,id=e0,node-name=disk,addr.type=unix,"
            f"addr.path={sock},writable=on,num-queues={queues}"]


def run_client(args, sock, *extra):
    p = subprocess.run([args.client, f"--socket-path={sock}", f"--regions={REGIONS}", *extra],
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


CHECK_LINE = re.compile(r"^(PASS|FAIL|N/A)\s+([a-z0-9_]+):\s*(.*)$")


def judge_check_report(kind, rc, out):
    """Holds `uvirtio check`'s report against KNOWN_CHECK_FAILURES[kind];
    returns (ok, what to print)."""
    known = KNOWN_CHECK_FAILURES[kind]
    seen = {}
    for line in out.splitlines():
        m = CHECK_LINE.match(line)
        if m:
            seen[m.group(2)] = (m.group(1), m.group(3))
    problems, notes = [], []
    if rc < 0:
        problems.append(f"uvirtio check was killed by signal {-rc}")
    elif rc not in (0, 1):
        problems.append(f"uvirtio check exited {rc} (0: all passed, 1: a check failed)")
    if not seen:
        problems.append("no PASS/FAIL/N/A line in the report")
    for name, (verdict, detail) in seen.items():
        if verdict != "FAIL":
            continue
        if name not in known:
            problems.append(f"{name} failed, not a known failure of this backend: {detail}")
        elif not re.search(known[name][0], detail):
            problems.append(f"{name} failed differently than known (/{known[name][0]}/): "
                            f"{detail}")
        else:
            notes.append(f"known failure {name}: {known[name][1]}")
    for name in known:
        if name not in seen:
            problems.append(f"{name}: known to fail but did not run")
        elif seen[name][0] != "FAIL":
            problems.append(f"{name}: unexpected pass ({seen[name][0]}); the backend no longer "
                            "fails it: update KNOWN_CHECK_FAILURES in tests/interop/interop.py")
    failed = any(v == "FAIL" for v, _ in seen.values())
    if rc == 1 and not failed:
        problems.append("uvirtio check exited 1 but reported no FAIL")
    if rc == 0 and failed:
        problems.append("uvirtio check exited 0 although a check failed")
    text = out + "".join(f"\n{n}" for n in notes) + "".join(f"\nPROBLEM: {p}" for p in problems)
    return not problems, text


def check_report(args, kind, sock):
    """Runs `uvirtio check`; returns (ok, detail)."""
    p = subprocess.run([args.uvirtio, "check", f"--socket-path={sock}"],
                       capture_output=True, text=True, timeout=600)
    return judge_check_report(kind, p.returncode, p.stdout + p.stderr)


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

    # --strict: the client fails on a request used after a suspend was presented.
    strict = ["--strict"] if args.strict else []

    # Requests in flight at the queue reset and the suspend.
    b = Backend(args, kind, tmp, img, "a")
    if not b.ok:
        tap(False, f"{name}: serves for the lifecycle test", b.stop()[1])
        return
    rc, out = client(b.sock, *strict)
    alive = b.proc.poll() is None
    rc_b, text = b.stop()
    title = (f"{name}: queue reset and resize, suspend/resume, with requests in flight, "
             "verified I/O")
    if kind == "qsd":
        race = [why for sign, why in QSD_IN_FLIGHT_RACE.items() if sign in out + text]
        if rc == 0 and alive:
            tap(True, title + " # passed: no request was in flight at the stop this time "
                "(a race, see QSD_IN_FLIGHT_RACE)")
        elif rc != 0 and race:
            tap(True, title + " # failed as known, see below",
                out + text + f"\nqemu-storage-daemon fails this: {race[0]}")
            rc = None
        else:
            tap(False, title + " (not one of the known ways, QSD_IN_FLIGHT_RACE)", out + text)
            rc = None
    else:
        tap(rc == 0 and alive, title, out + text if rc or not alive else None)
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
        rc, out = client(b1.sock, "--quiesce", f"--move-to={b2.sock}", *strict)
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


def self_test():
    """The judge on canned reports: each way a report can be wrong is caught."""
    good = ("PASS  a: x\nFAIL  config_values_sane: size_max is 0 with SIZE_MAX (...)\n"
            "FAIL  hostile_chain_longer_than_queue: indirect chain of 19 descriptors, queue "
            "size 16: completed the invalid request with OK\n"
            "FAIL  hostile_nested_indirect: completed the invalid request with OK, used length 1\n"
            "FAIL  hostile_header_short: hung on a request header of 8 bytes: no used entry, "
            "no DEVICE_NEEDS_RESET and the connection still open after 5000 ms\n")
    cases = [
        ("qsd's known failures as known", "qsd", 1, good, True),
        ("a new failure", "qsd", 1, good + "FAIL  io_flush: IOERR\n", False),
        ("a known check failing differently", "qsd", 1,
         good.replace("size_max is 0", "capacity is 0"), False),
        ("an unexpected pass", "qsd", 1,
         good.replace("FAIL  hostile_nested_indirect", "PASS  hostile_nested_indirect"), False),
        ("a known check that did not run", "qsd", 1,
         "\n".join(good.splitlines()[:-2]), False),
        ("a crash", "qsd", -11, good, False),
        ("uvirtio blk failing anything", "uvirtio", 1, "PASS  a: x\nFAIL  b: y\n", False),
        ("uvirtio blk passing all", "uvirtio", 0, "PASS  a: x\nN/A   b: y\n", True),
        ("exit 1 with no FAIL", "uvirtio", 1, "PASS  a: x\n", False),
        ("an empty report", "uvirtio", 0, "", False),
    ]
    for title, kind, rc, out, want in cases:
        ok, text = judge_check_report(kind, rc, out)
        tap(ok == want, f"judge: {title} is {'accepted' if want else 'refused'}",
            None if ok == want else text)
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uvirtio", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--lifecycle-client", required=True)
    ap.add_argument("--backend", choices=["uvirtio", "qsd", "both"], default="both")
    ap.add_argument("--no-check", action="store_true", help="leave out `uvirtio check`")
    ap.add_argument("--strict", action="store_true",
                    help="the lifecycle client fails on anything the spec forbids (CI runs this)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the report judge on canned reports, then exit")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    kinds = ["uvirtio", "qsd"] if args.backend == "both" else [args.backend]
    print(f"# {len(kinds)} backend(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="uvirtio-interop-") as tmp:
        for kind in kinds:
            if kind == "qsd" and not shutil.which(QSD):
                tap(True, "qemu-storage-daemon interop", skip="qemu-storage-daemon not installed")
                continue
            one_backend(args, kind, tmp)
            lifecycle(args, kind, tmp)
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
