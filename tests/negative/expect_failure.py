#!/usr/bin/env python3
"""A negative control: run a detector against a faulty blk device and pass
only if the detector caught the fault.

    expect_failure.py --expect REGEX [--fault SPEC] [--backend UVIRTIO]
                      [--timeout S] -- DETECTOR ARGS...

With --backend, `UVIRTIO blk --inject-fault=SPEC --socket-path={sock} {image}`
(a fault_injection build) serves a fresh scratch image first; {sock} and
{image} in the detector's arguments name them. Without it the detector sets
its device up in-process, and SPEC reaches it as UVIRTIO_BLK_FAULT.

Passes when all of these hold, and says which did not otherwise:
  - the detector exited with a failure status (not 0, not 77, not killed
    by a signal, no sanitizer report): it failed, it did not crash;
  - its output (stdout and stderr) matches REGEX: it named the symptom;
  - the fault struck (the device's "injected fault" line on stderr, the
    backend's or the detector's), so the failure is the fault's;
  - it finished within --timeout seconds (default 300): a detector that
    only a global time-out stops has not caught anything.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from backend_util import stop, wait_for_socket  # noqa: E402

STRUCK = re.compile(r"uvirtio: injected fault \S+")
CRASH = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|"
                   r"runtime error:|Segmentation fault|core dumped")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--expect", required=True, help="regex the detector's output must match")
    ap.add_argument("--fault", help="the fault, NAME[@N][:BYTES]")
    ap.add_argument("--backend", help="a uvirtio executable to serve the faulty device with")
    ap.add_argument("--backend-arg", action="append", default=[], help="more `uvirtio blk` arguments")
    ap.add_argument("--image-mib", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("detector", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.detector[1:] if args.detector[:1] == ["--"] else args.detector
    if not cmd:
        ap.error("no detector command after --")
    if cmd[0].endswith(".py"):
        cmd = [sys.executable] + cmd

    with tempfile.TemporaryDirectory(prefix="uvirtio-negative-") as d:
        sock = os.path.join(d, "blk.sock")
        image = os.path.join(d, "disk.img")
        with open(image, "wb") as f:
            f.truncate(args.image_mib << 20)
        cmd = [a.replace("{sock}", sock).replace("{image}", image) for a in cmd]
        env = dict(os.environ)
        env.pop("UVIRTIO_BLK_FAULT", None)
        backend = None
        backend_log = os.path.join(d, "backend.log")
        if args.backend:
            bcmd = [args.backend, "blk", f"--socket-path={sock}"] + args.backend_arg
            if args.fault:
                bcmd.append(f"--inject-fault={args.fault}")
            bcmd.append(image)
            print("# backend: " + " ".join(bcmd), flush=True)
            with open(backend_log, "wb") as log:
                backend = subprocess.Popen(bcmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if not wait_for_socket(sock, backend):
                stop(backend)
                print(open(backend_log, errors="replace").read())
                print("FAIL: the faulty backend did not come up")
                return 1
        elif args.fault:
            env["UVIRTIO_BLK_FAULT"] = args.fault

        print("# detector: " + " ".join(cmd), flush=True)
        start = time.monotonic()
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors="replace", env=env, timeout=args.timeout)
            rc, out = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            rc = None
            out = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")) + \
                  ((e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or ""))
        took = time.monotonic() - start
        if backend:
            stop(backend)
            blog = open(backend_log, errors="replace").read()
        else:
            blog = ""
        sys.stdout.write("".join("# " + line + "\n" for line in (out + blog).splitlines()))

        problems = []
        if rc is None:
            problems.append(f"the detector did not finish within {args.timeout:.0f} s (only a time-out "
                            "stopped it)")
        elif rc < 0:
            problems.append(f"the detector was killed by signal {-rc}")
        elif rc == 0:
            problems.append("the detector passed: the fault went unnoticed")
        elif rc == 77:
            # A skip stays a skip (meson counts it; CI makes it fatal).
            print("SKIP: the detector skipped")
            return 77
        if CRASH.search(out):
            problems.append("the detector crashed or a sanitizer reported: " + CRASH.search(out).group(0))
        if not STRUCK.search(out + blog):
            problems.append("the fault never struck (no 'injected fault' line): the control proves nothing")
        if not re.search(args.expect, out):
            problems.append(f"its output does not match /{args.expect}/")
        if problems:
            for pr in problems:
                print("FAIL: " + pr)
            return 1
        m = re.search(args.expect, out)
        line = out[out.rfind("\n", 0, m.start()) + 1:out.find("\n", m.end()) if "\n" in out[m.end():] else len(out)]
        print(f"PASS: caught in {took:.1f} s (exit {rc}): {line.strip()}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
