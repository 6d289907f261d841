#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""libuvirtio.so exports exactly the reviewed list, and only public API.

Rules, one TAP test each:
  1. the exported set (`nm -D --defined-only`) equals abi/libuvirtio.symbols;
  2. every exported symbol starts with `uvirtio_`;
  3. every exported symbol carries the version script's node (UVIRTIO_0.1);
  4. every function a public header declares (not static inline) is marked
     UVIRTIO_API;
  5. every header in include/uvirtio/ with a UVIRTIO_API declaration is in
     meson.build's public_headers (so the map, the man pages and the
     documentation check see it);
  6. every exported symbol is documented in its header (tools/gen-man.py's
     reading of the kernel-doc comments).

usage: abi_symbols.py NM LIBUVIRTIO.so SYMBOLS_LIST INCLUDE_DIR GEN_MAN HEADER...
"""
import glob
import importlib.util
import os
import re
import subprocess
import sys

VERSION = "UVIRTIO_0.1"
HOW_TO_UPDATE = (
    "  If the change is intended, update abi/libuvirtio.symbols in the same commit\n"
    "  (nm -D --defined-only build/libuvirtio.so | awk '$2 != \"A\" {sub(/@.*/, \"\", $3); print $3}'\n"
    "  | LC_ALL=C sort > abi/libuvirtio.symbols)\n"
    "  so that review sees the ABI change; docs/ARCHITECTURE.md, \"Exported symbols\".")

# A top-level function declaration in a header: a line that starts with its
# type (or UVIRTIO_API), up to the name and the opening parenthesis.
DECL = re.compile(r"^((?:UVIRTIO_API\s+)?(?:static inline\s+)?[a-z][^;(){}#\n]*?\b(uvirtio_\w+)\()", re.M)


def exported(nm, lib):
    """name -> version of every symbol the library defines in .dynsym."""
    out = subprocess.run([nm, "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, sym = parts[1], parts[2]
        name, _, version = sym.partition("@")
        if kind == "A" and re.fullmatch(r"UVIRTIO_[0-9.]+", name):
            continue  # the version node itself
        syms[name] = version.lstrip("@")
    return syms


def declarations(headers):
    """(header, line, name, marked) for every non-inline declaration."""
    found = []
    for h in headers:
        with open(h) as f:
            src = f.read()
        for m in DECL.finditer(src):
            text = m.group(1)
            if "static inline" in text or text.startswith("typedef"):
                continue
            found.append((h, src.count("\n", 0, m.start()) + 1, m.group(2), text.startswith("UVIRTIO_API")))
    return found


def documented(gen_man, headers):
    spec = importlib.util.spec_from_file_location("gen_man", gen_man)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = set()
    for h in headers:
        with open(h) as f:
            names |= {m.group(3) for m in mod.DOC.finditer(f.read())}
    return names


def main():
    nm, lib, list_path, include_dir, gen_man = sys.argv[1:6]
    headers = sys.argv[6:]
    root = os.path.dirname(os.path.dirname(os.path.realpath(include_dir)))

    def shown(path):
        return os.path.relpath(os.path.realpath(path), root)
    syms = exported(nm, lib)
    with open(list_path) as f:
        listed = [l.strip() for l in f if l.strip()]
    results = []

    added = sorted(set(syms) - set(listed))
    removed = sorted(set(listed) - set(syms))
    why = []
    if added:
        why.append("exported but not in %s (added): %s" % (shown(list_path), " ".join(added)))
    if removed:
        why.append("in %s but not exported (removed): %s" % (shown(list_path), " ".join(removed)))
    if listed != sorted(set(listed)):
        why.append("%s is not sorted and unique" % shown(list_path))
    if why:
        why.append(HOW_TO_UPDATE)
    results.append(("libuvirtio.so exports exactly abi/libuvirtio.symbols (%d symbols)" % len(syms), why))

    foreign = sorted(n for n in syms if not n.startswith("uvirtio_"))
    results.append(("every exported symbol starts with uvirtio_",
                    ["exported outside the uvirtio_ namespace: " + " ".join(foreign)] if foreign else []))

    unversioned = sorted(n for n, v in syms.items() if v != VERSION)
    results.append(("every exported symbol has version %s (the version script was applied)" % VERSION,
                    ["not in version %s: %s" % (VERSION, " ".join(unversioned))] if unversioned else []))

    decls = declarations(headers)
    unmarked = ["%s:%d: %s() is declared without UVIRTIO_API" % (shown(h), line, n)
                for h, line, n, marked in decls if not marked]
    if unmarked:
        unmarked.append("  A public function needs UVIRTIO_API on the line before its declaration;"
                        " an internal one belongs in a header under src/.")
    results.append(("every function a public header declares is marked UVIRTIO_API", unmarked))

    given = {os.path.realpath(h) for h in headers}
    unlisted = []
    for h in sorted(glob.glob(os.path.join(include_dir, "*.h"))):
        with open(h) as f:
            if re.search(r"^UVIRTIO_API\b", f.read(), re.M) and os.path.realpath(h) not in given:
                unlisted.append("%s declares UVIRTIO_API functions but is not in public_headers (meson.build)" % shown(h))
    results.append(("every header with UVIRTIO_API declarations is in public_headers", unlisted))

    docs = documented(gen_man, headers)
    undoc = sorted(n for n in syms if n not in docs)
    results.append(("every exported symbol is documented in its header",
                    ["exported without a kernel-doc comment in its header: " + " ".join(undoc)] if undoc else []))

    bad = 0
    for i, (name, why) in enumerate(results, 1):
        print(("not ok" if why else "ok") + " %d - %s" % (i, name))
        for line in why:
            print("# " + line.replace("\n", "\n# "))
        bad += bool(why)
    print("1..%d" % len(results))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
