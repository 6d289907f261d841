#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every feature bit the commands print has a name: `uvirtio demo` (blk,
rng, lifecycle on every transport) prints no `bitN` in its negotiations.
TAP on stdout. Usage: feature_names.py UVIRTIO"""
import re
import subprocess
import sys

RUNS = [["demo", "--size=8"], ["demo", "rng", "--bytes=4096"]] + [
    ["demo", "lifecycle", f"--transport={t}"] for t in ("mmio", "pci", "vhost-user", "loopback")]

uvirtio = sys.argv[1]
bad = 0
for i, args in enumerate(RUNS, 1):
    p = subprocess.run([uvirtio, *args], capture_output=True, text=True, timeout=300)
    unnamed = sorted(set(re.findall(r"\bbit\d+\b", p.stdout)))
    ok = p.returncode == 0 and not unnamed and re.search(r"0x[0-9a-f]+ \(", p.stdout)
    bad += not ok
    print(f"{'ok' if ok else 'not ok'} {i} - uvirtio {' '.join(args)} names every feature bit"
          + ("" if ok else f" # exit {p.returncode}, unnamed: {' '.join(unnamed) or 'none'}"))
print(f"1..{len(RUNS)}")
sys.exit(1 if bad else 0)
