#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fail on any #include between folders that docs/ARCHITECTURE.md does not allow.

Usage: check-include-edges.py SOURCE_ROOT [--build-dir DIR]

The allowed edges are the block between `include-edges:begin` and
`include-edges:end` in docs/ARCHITECTURE.md, one line per folder:

    FOLDER -> FOLDER, FOLDER   # why

A folder is a node; a file belongs to the longest node that is a prefix of
its directory (a file in no node is an error). An include within one node is
always allowed. Every .c/.h under src/, tools/, bench/, tests/ and examples/
is read: each `#include "..."` is resolved as the compiler resolves it without
-I flags (the including file's directory, then include/), and `<uvirtio/...>`
is include/uvirtio. An include that resolves to nothing is an error too: it
would be found through some -I, and the edge it makes would be hidden.

With --build-dir (a meson build with compile_commands.json), a second
opinion: every translation unit of that build is preprocessed again with its
own flags and -H, and each parent -> child edge of the tree the compiler
prints is checked the same way, so an edge made through -I shows.

Exit 0 when every edge is allowed; 1 naming FILE:LINE and the edge otherwise.
"""
import json
import os
import re
import shlex
import subprocess
import sys

SCANNED = ("src", "tools", "bench", "tests", "examples")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*(["<])([^">]+)[">]')
LINE_RE = re.compile(r"^\s*([^#\s][^-]*?)\s*->\s*([^#]*?)\s*(?:#.*)?$")


def read_edges(root):
    path = os.path.join(root, "docs", "ARCHITECTURE.md")
    nodes, edges, inside, errors = set(), set(), False, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if "include-edges:begin" in line:
                inside = True
                continue
            if "include-edges:end" in line:
                inside = False
                continue
            if not inside or not line.strip() or line.strip().startswith(("#", "```")):
                continue
            m = LINE_RE.match(line)
            if not m:
                errors.append(f"docs/ARCHITECTURE.md:{n}: not FOLDER -> FOLDER, ...: {line.rstrip()}")
                continue
            src = m.group(1).strip()
            nodes.add(src)
            for dst in (d.strip() for d in m.group(2).split(",")):
                if dst and dst != "(none)":
                    nodes.add(dst)
                    edges.add((src, dst))
    if not nodes:
        errors.append("docs/ARCHITECTURE.md: no include-edges:begin/end block")
    return nodes, edges, errors


def node_of(rel, nodes):
    d = os.path.dirname(rel)
    best = None
    for n in nodes:
        if d == n or d.startswith(n + "/"):
            if best is None or len(n) > len(best):
                best = n
    return best


def resolve(root, rel, kind, name):
    """The repository-relative path #include names, or None."""
    if kind == "<":
        if name.startswith("uvirtio/"):
            return os.path.join("include", name)
        return ""  # a system header: no edge
    for base in (os.path.dirname(rel), "include"):
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def scan(root):
    """(file, line, included file or None, text) for every quoted include."""
    for top in SCANNED:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "build")))
            for fn in sorted(filenames):
                if not fn.endswith((".c", ".h")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fn), root)
                with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE_RE.match(line)
                        if m:
                            yield rel, n, resolve(root, rel, m.group(1), m.group(2)), m.group(2)


def check(rel, where, target, nodes, edges, used, problems):
    a, b = node_of(rel, nodes), node_of(target, nodes)
    if a is None:
        problems.append(f"{where}: {os.path.dirname(rel)} is no folder of the edge list")
    elif b is None:
        problems.append(f"{where}: includes {target}, in no folder of the edge list")
    elif a != b:
        if (a, b) in edges:
            used.add((a, b))
        else:
            problems.append(f"{where}: edge {a} -> {b} ({target}) is not allowed")


def compiler_edges(root, build_dir):
    """(file, included file) for each parent -> child the compiler sees."""
    with open(os.path.join(build_dir, "compile_commands.json"), encoding="utf-8") as f:
        units = json.load(f)
    root = os.path.realpath(root)
    seen = set()
    for u in units:
        cwd = u["directory"]
        args = u["arguments"] if "arguments" in u else shlex.split(u["command"])
        src = os.path.realpath(os.path.join(cwd, u["file"]))
        if not src.startswith(root + "/"):
            continue
        cmd, skip = [], False
        for a in args:
            if skip:
                skip = False
                continue
            if a in ("-o", "-MF", "-MQ", "-MT"):
                skip = True
                continue
            if a in ("-c", "-MD", "-MMD") or a.startswith("-fsanitize"):
                continue
            cmd.append(a)
        cmd += ["-E", "-H", "-o", os.devnull]
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if r.returncode:
            yield os.path.relpath(src, root), None
            continue
        stack = [src]
        for line in r.stderr.splitlines():
            m = re.match(r"^(\.+) (.*)$", line)
            if not m:
                continue
            depth, path = len(m.group(1)), os.path.realpath(os.path.join(cwd, m.group(2)))
            del stack[depth:]
            parent = stack[-1]
            stack.append(path)
            if parent.startswith(root + "/") and path.startswith(root + "/"):
                edge = (os.path.relpath(parent, root), os.path.relpath(path, root))
                if edge not in seen:
                    seen.add(edge)
                    yield edge


def main(argv):
    args = argv[1:]
    build_dir = None
    if "--build-dir" in args:
        i = args.index("--build-dir")
        build_dir = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root = args[0]
    nodes, edges, problems = read_edges(root)
    used = set()
    for rel, n, target, name in scan(root):
        if target == "":
            continue
        if target is None:
            problems.append(f"{rel}:{n}: #include \"{name}\" resolves to no file "
                            "(from the file's folder or include/): name it by its path")
            continue
        check(rel, f"{rel}:{n}", target, nodes, edges, used, problems)
    if build_dir:
        for rel, target in compiler_edges(root, build_dir):
            if target is None:
                problems.append(f"{rel}: the compiler of {build_dir} cannot preprocess it")
                continue
            check(rel, f"{rel} (compiler, {build_dir})", target, nodes, edges, used, problems)
    for p in problems:
        print(p)
    for a, b in sorted(edges - used):
        print(f"note: allowed edge {a} -> {b} is not used", file=sys.stderr)
    if problems:
        print(f"{len(problems)} include edge(s) not in docs/ARCHITECTURE.md's list")
        return 1
    print(f"include edges: {len(used)} of {len(edges)} allowed edges used, none other")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
