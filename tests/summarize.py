#!/usr/bin/env python3
"""Counts every test case of a `make check` run and prints `N passed, N failed`.

TAP programs count one per test case (from the TAP lines meson kept in each
build's testlog.json); other meson tests and each fuzzer count one each.
Usage: summarize.py TESTLOG.json... [--fuzz RESULTS.txt]
"""
import json
import re
import sys

passed = failed = skipped = 0
lines = []


def tally(label, p, f, s):
    global passed, failed, skipped
    passed += p
    failed += f
    skipped += s
    lines.append(f"  {label:<44} {p:5d} passed {f:3d} failed {s:3d} skipped")


args = sys.argv[1:]
fuzz = None
if "--fuzz" in args:
    i = args.index("--fuzz")
    fuzz = args[i + 1]
    del args[i:i + 2]

for path in args:
    build = path.split("/")[0]
    try:
        with open(path) as fh:
            entries = [json.loads(l) for l in fh if l.strip()]
    except FileNotFoundError:
        tally(f"{build}: no test log (build failed?)", 0, 1, 0)
        continue
    for e in entries:
        name = f"{build}: {e['name']}"
        out = e.get("stdout") or ""
        oks = [m.group(0) for m in re.finditer(r"^(not ok|ok) \d+[^\n]*", out, re.M)]
        if e.get("protocol") == "tap" or oks:
            p = sum(1 for l in oks if l.startswith("ok") and "# SKIP" not in l)
            s = sum(1 for l in oks if l.startswith("ok") and "# SKIP" in l)
            f = sum(1 for l in oks if l.startswith("not ok"))
            plan = re.search(r"^1\.\.(\d+)", out, re.M)
            # A program that died mid-way leaves cases unreported: count them.
            if plan and int(plan.group(1)) > p + s + f:
                f += int(plan.group(1)) - (p + s + f)
            if e["result"] not in ("OK", "SKIP") and f == 0:
                f = 1
            tally(name, p, f, s)
        elif e["result"] == "SKIP":
            tally(name, 0, 0, 1)
        else:
            # EXPECTEDFAIL: a should_fail test (a refused bad flag) that failed as it must.
            ok = e["result"] in ("OK", "EXPECTEDFAIL")
            tally(name, int(ok), int(not ok), 0)

if fuzz:
    try:
        with open(fuzz) as fh:
            for l in fh:
                name, result = l.split()
                tally(f"fuzz: {name}", int(result == "ok"), int(result != "ok"), 0)
    except FileNotFoundError:
        tally("fuzz: no results (build failed?)", 0, 1, 0)

print("\n".join(lines))
# Skipped cases are neither passed nor failed: say so, then the line CI reads.
if skipped:
    print(f"{skipped} skipped (not counted as passed)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
