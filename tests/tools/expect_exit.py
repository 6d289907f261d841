#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs a command that must be refused, and checks how it was refused.

    expect_exit.py --status N --stderr REGEX [--timeout S] -- CMD [ARGS...]

Passes only if CMD exited by itself (not killed by a signal: a crash is never
a refusal) with exactly status N, printed nothing on stdout, and printed one
line on stderr that matches REGEX (Python re.search). Exit 0 on pass, 1 on
fail, with what differed on stdout.
"""
import argparse
import re
import signal
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--status", type=int, required=True)
    ap.add_argument("--stderr", required=True, help="regex the one stderr line must match")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"FAIL: {' '.join(cmd)} still running after {args.timeout:.0f} s")
        return 1
    problems = []
    if p.returncode < 0:
        problems.append(f"killed by signal {signal.Signals(-p.returncode).name}")
    elif p.returncode != args.status:
        problems.append(f"exit status {p.returncode}, expected {args.status}")
    err = p.stderr.splitlines()
    if len(err) != 1:
        problems.append(f"{len(err)} lines on stderr, expected one")
    if not re.search(args.stderr, p.stderr):
        problems.append(f"stderr does not match /{args.stderr}/")
    if p.stdout:
        problems.append("printed on stdout")
    print(f"command: {' '.join(cmd)}")
    print(f"exit {p.returncode}; stderr: {p.stderr.rstrip()}")
    if p.stdout:
        print(f"stdout: {p.stdout.rstrip()[:2000]}")
    if problems:
        print("FAIL: " + "; ".join(problems))
        return 1
    print("ok: refused as documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
