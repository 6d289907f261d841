#!/usr/bin/env python3
"""`uvirtio check` end to end against `uvirtio blk --socket-path` (a file
image, writable and --read-only): every check is printed once with PASS, FAIL
or N/A, the summary line counts them, the exit code is 1 exactly when one
failed, --json says the same, and a backend that is not there gives one clear
line and a non-zero exit. TAP output, one line per check and run.

A check that finds a known bug of our own backend is reported as TAP TODO
(KNOWN_BACKEND_BUGS): the failure stays visible, and once the bug is fixed
the "ok # TODO" tells to drop it from the list.

usage: check_cli.py UVIRTIO_EXECUTABLE
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend_util import serve_blk, wait_for_socket  # noqa: E402

exe = os.path.abspath(sys.argv[1])
results = []  # (name, ok, detail, todo)

# Our backend's known deviations, found by these checks (not fixed here).
KNOWN_BACKEND_BUGS = {}

# What a writable file backend with two queues cannot be checked for, and
# what a read-only one with one queue cannot.
NA_WRITABLE = {"io_read_only_refuses_writes"}
NA_READ_ONLY = {"io_multi_segment_verified", "io_discard", "io_write_zeroes_reads_zeroes",
                "multi_queue_concurrent_verified"}


def check(name, ok, detail="", todo=None):
    results.append((name, ok, detail, todo))


def run_check(args, timeout=240):
    return subprocess.run([exe, "check"] + args, capture_output=True, text=True, timeout=timeout)


LINE = re.compile(r"^(PASS|FAIL|N/A)\s+(\w+): (.*)$")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) not applicable$")


def all_names():
    p = run_check(["--list"])
    return [l.split()[0] for l in p.stdout.splitlines() if l.strip()]


def served(image, extra, sock):
    return serve_blk(exe, sock, extra + [image])


def verify_run(tag, p, names, expected_na):
    """One TAP line per check, then the summary and the exit code."""
    lines = p.stdout.splitlines()
    seen = {}
    for l in lines:
        m = LINE.match(l)
        if m:
            seen.setdefault(m.group(2), []).append((m.group(1), m.group(3)))
    for n in names:
        got = seen.get(n, [])
        if len(got) != 1:
            check("%s_%s" % (tag, n), False, "printed %d times" % len(got))
            continue
        verdict, detail = got[0]
        if n in KNOWN_BACKEND_BUGS:
            check("%s_%s" % (tag, n), verdict == "PASS", detail, todo=KNOWN_BACKEND_BUGS[n])
        elif n in expected_na:
            check("%s_%s_not_applicable" % (tag, n), verdict == "N/A", "%s: %s" % (verdict, detail))
        else:
            check("%s_%s" % (tag, n), verdict == "PASS", "%s: %s" % (verdict, detail))
    extra = set(seen) - set(names)
    check("%s_prints_only_listed_checks" % tag, not extra, repr(sorted(extra)))
    counts = [sum(1 for v in seen.values() for x in v if x[0] == w) for w in ("PASS", "FAIL", "N/A")]
    m = SUMMARY.match(lines[-1]) if lines else None
    check("%s_summary_counts_the_lines" % tag, bool(m) and [int(g) for g in m.groups()] == counts,
          repr(lines[-1:]) + " vs " + repr(counts))
    check("%s_exit_code_is_1_exactly_when_a_check_failed" % tag,
          p.returncode == (1 if counts[1] else 0), "exit %d, %d failed" % (p.returncode, counts[1]))
    check("%s_nothing_on_stderr" % tag, p.stderr == "", repr(p.stderr))


with tempfile.TemporaryDirectory() as d:
    names = all_names()
    check("list_names_every_check", len(names) >= 20 and len(set(names)) == len(names), repr(names))

    image = os.path.join(d, "disk.img")
    with open(image, "wb") as f:
        f.truncate(16 << 20)

    for tag, extra, na in (("file", ["--queues=2"], NA_WRITABLE), ("read_only", ["--read-only"], NA_READ_ONLY)):
        sock = os.path.join(d, tag + ".sock")
        server = served(image, extra, sock)
        try:
            up = wait_for_socket(sock, server)
            check("%s_backend_up" % tag, up)
            if up:
                verify_run(tag, run_check(["--socket-path=" + sock]), names, na)
                if tag == "file":
                    p = run_check(["--socket-path=" + sock, "--json",
                                   "--only=io_read_write_verified,io_read_only_refuses_writes"])
                    try:
                        j = json.loads(p.stdout)
                        ok = ([c["name"] for c in j["checks"]] ==
                              ["io_read_write_verified", "io_read_only_refuses_writes"] and
                              [c["result"] for c in j["checks"]] == ["pass", "n/a"] and
                              (j["passed"], j["failed"], j["not_applicable"]) == (1, 0, 1) and
                              p.returncode == 0)
                    except (ValueError, KeyError, TypeError) as e:
                        ok = False
                    check("json_only_runs_the_named_checks", ok, p.stdout + p.stderr)
            check("%s_backend_survived" % tag, server.poll() is None, server.stderr.read()
                  if server.poll() is not None else "")
        finally:
            server.terminate()
            server.wait(timeout=20)
        # A sanitizer build of the backend reports and may carry on.
        log = server.stderr.read() if server.stderr and not server.stderr.closed else ""
        check("%s_backend_no_sanitizer_report" % tag,
              "Sanitizer" not in log and "runtime error" not in log, log[-2000:])

    # A backend that is not there: one line naming the socket, exit 1.
    gone = os.path.join(d, "nobody.sock")
    p = run_check(["--socket-path=" + gone])
    err = [l for l in p.stderr.splitlines() if l.strip()]
    check("absent_backend_one_line_nonzero_exit",
          p.returncode == 1 and len(err) == 1 and gone in err[0] and "no such socket" in err[0]
          and p.stdout == "", repr((p.returncode, p.stderr, p.stdout)))

    # Usage errors: one line, exit 2.
    for args in (["--timeout-ms=0", "--socket-path=x"], ["--offset=3", "--socket-path=x"],
                 ["--only=no_such_check", "--socket-path=x"], [], ["--socket-path=x", "extra"],
                 ["--bogus"]):
        p = run_check(args)
        err = [l for l in p.stderr.splitlines() if l.strip()]
        check("usage_error_exit_2_%s" % "_".join(re.sub(r"\W", "", a) for a in args),
              p.returncode == 2 and len(err) == 1, repr((p.returncode, p.stderr)))

print("1..%d" % len(results))
for i, (name, ok, detail, todo) in enumerate(results, 1):
    line = "%s %d - %s" % ("ok" if ok else "not ok", i, name)
    if todo:
        line += " # TODO known backend bug: %s; %s" % (todo, detail)
    elif not ok:
        line += " # " + detail.replace("\n", " | ")
    print(line)
sys.exit(0 if all(ok or todo for _, ok, _, todo in results) else 1)
