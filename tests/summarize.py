#!/usr/bin/env python3
"""Counts every test case of a `make check` run and prints `N passed, N failed`.

    summarize.py RESULTS_DIR

RESULTS_DIR is what scripts/check-lib.sh wrote: stages.tsv (one line a stage:
name, ok|failed, seconds, cause), NAME.testlog.json (meson's test log of that
stage), NAME.fuzz.tsv (one line a fuzzer) and NAME.tap (a TAP stream of the
stage's own). TAP programs count one per test
case; other meson tests and each fuzzer count one each. A stage that failed
(it did not configure, build, or run all its tests) counts as one failure,
named with its cause. Every skipped case is listed by name with its reason.
With CI=true, a skip whose reason says a tool is missing ("not installed",
"not found") is a failure: CI installs every tool the README names.

The last lines name what failed, then the line CI reads. Exit 1 when anything
failed.
"""
import json
import os
import re
import sys

MISSING_TOOL = re.compile(r"not installed|not found|missing tool", re.I)


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.rows = []       # (stage, label, passed, failed, skipped)
        self.failures = []   # one line each, for the end
        self.skips = []      # one line each

    def add(self, stage, label, p, f, s):
        self.passed += p
        self.failed += f
        self.skipped += s
        self.rows.append((stage, label, p, f, s))


def tap_cases(out):
    """(passed, failed, skipped lines, failed names) of a TAP stream."""
    p = f = 0
    skips, fails = [], []
    for m in re.finditer(r"^(not ok|ok) +\d+[ \t]*-?[ \t]*([^\n]*)", out, re.M):
        desc = m.group(2)
        if m.group(1) == "not ok":
            f += 1
            fails.append(desc.strip())
        elif re.search(r"#\s*SKIP", desc, re.I):
            skips.append(desc.strip())
        else:
            p += 1
    return p, f, skips, fails


def unreported(out, counted):
    """Cases a TAP stream's plan announced but it never reported (a program
    that died mid-way): a count, or None when it printed no plan."""
    plan = re.search(r"^1\.\.(\d+)", out, re.M)
    return None if not plan else max(0, int(plan.group(1)) - counted)


def skip_reason(text):
    m = re.search(r"#\s*SKIP\S*\s*(.*)", text, re.I)
    return m.group(1).strip() if m else text.strip()


def why_failed(out):
    """The line of a failed program's output that says why, for the summary:
    the last one that says FAIL (the guest tests' verdict), else its last
    line; CI shows the summary and not the logs."""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    said = [line for line in lines if re.search(r"\bFAIL\b", line)]
    line = (said or lines or [""])[-1]
    return f": {line[:300]}" if line else ""


def count_testlog(t, stage, path):
    try:
        with open(path) as fh:
            entries = [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return
    ci = in_ci()
    for e in entries:
        name = e["name"]
        out = e.get("stdout") or ""
        label = f"{stage}: {name}"
        p, f, skips, fails = tap_cases(out)
        if e.get("protocol") == "tap" or p + f + len(skips):
            missing = unreported(out, p + f + len(skips))
            if missing:
                f += missing
                fails.append(f"{missing} case(s) never reported (the program died?)")
            if e["result"] not in ("OK", "SKIP") and f == 0:
                f = 1
                fails.append(f"exited {e.get('returncode')} ({e['result']})")
            kept = 0
            for sk in skips:
                if ci and MISSING_TOOL.search(skip_reason(sk)):
                    f += 1
                    fails.append(f"skipped in CI, a tool is missing: {sk}")
                else:
                    kept += 1
                    t.skips.append(f"{label}: {sk}")
            for x in fails:
                t.failures.append(f"{label}: {x}")
            t.add(stage, name, p, f, kept)
        elif e["result"] == "SKIP":
            why = (out.strip().splitlines() or ["(no reason printed)"])[-1]
            if ci:
                # A whole program that skips in CI skipped because something
                # the README installs is missing: CI installs all of it.
                t.failures.append(f"{label}: skipped in CI: {why}")
                t.add(stage, name, 0, 1, 0)
            else:
                t.skips.append(f"{label}: {why}")
                t.add(stage, name, 0, 0, 1)
        else:
            ok = e["result"] == "OK"
            if not ok:
                t.failures.append(f"{label}: {e['result'].lower()} (exit {e.get('returncode')})"
                                  + why_failed(out))
            t.add(stage, name, int(ok), int(not ok), 0)


def count_fuzz(t, stage, path):
    try:
        with open(path) as fh:
            rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    except FileNotFoundError:
        return
    for row in rows:
        name, result = row[0], row[1]
        cause = row[3] if len(row) > 3 else ""
        ok = result == "ok"
        if not ok:
            t.failures.append(f"{stage}: {name}: {cause}")
        t.add(stage, name, int(ok), int(not ok), 0)


def count_tap(t, stage, path):
    """A stage's own TAP stream (the harness's negative controls)."""
    try:
        with open(path) as fh:
            out = fh.read()
    except FileNotFoundError:
        return
    p, f, skips, fails = tap_cases(out)
    missing = unreported(out, p + f + len(skips))
    if missing is None:
        f += 1
        fails.append("no TAP plan (the program died?)")
    elif missing:
        f += missing
        fails.append(f"{missing} case(s) never reported (the program died?)")
    for x in fails:
        t.failures.append(f"{stage}: {x}")
    for sk in skips:
        t.skips.append(f"{stage}: {sk}")
    t.add(stage, os.path.basename(path), p, f, len(skips))


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    results = argv[1]
    t = Tally()
    stages = []
    try:
        with open(os.path.join(results, "stages.tsv")) as fh:
            stages = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    except FileNotFoundError:
        pass
    if not stages:
        t.failures.append(f"no stage ran ({results}/stages.tsv is empty or missing)")
        t.failed += 1
    times = []
    for row in stages:
        name, status, secs = row[0], row[1], int(row[2])
        cause = row[3] if len(row) > 3 else ""
        before = (t.passed, t.failed)
        count_testlog(t, name, os.path.join(results, f"{name}.testlog.json"))
        count_fuzz(t, name, os.path.join(results, f"{name}.fuzz.tsv"))
        count_tap(t, name, os.path.join(results, f"{name}.tap"))
        if status != "ok":
            t.failures.append(f"stage {name} failed: {cause}")
            t.add(name, "(the stage itself)", 0, 1, 0)
        p, f = t.passed - before[0], t.failed - before[1]
        times.append(f"  {name:<8} {status:<6} {secs // 60:3d} min {secs % 60:02d} s"
                     f"  {p:5d} passed {f:4d} failed")

    for stage, label, p, f, s in t.rows:
        print(f"  {stage + ': ' + label:<60} {p:5d} passed {f:3d} failed {s:3d} skipped")
    print("\nstages:")
    print("\n".join(times))
    total = sum(int(r[2]) for r in stages)
    print(f"  total    {total // 60:10d} min {total % 60:02d} s")
    if t.skips:
        print(f"\nskipped ({len(t.skips)}, not counted as passed):")
        for s in t.skips:
            print(f"  {s}")
    if t.failures:
        print(f"\nfailed ({len(t.failures)}):")
        for f in t.failures:
            print(f"  {f}")
    print(f"{t.passed} passed, {t.failed} failed" + (f", {t.skipped} skipped" if t.skipped else ""))
    return 1 if t.failed or not stages else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
