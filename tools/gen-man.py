#!/usr/bin/env python3
"""Writes a man(3) page for every documented function of the public headers.

The headers are the one source of the API's documentation: each function has
a kernel-doc comment (`/** name() - summary`, `@arg: ...`, `Return: ...`)
right before its prototype. This turns each into OUTDIR/name.3.

usage: gen-man.py OUTDIR HEADER...
       gen-man.py --check HEADER...   fail if a declared function has no page
"""
import os
import re
import sys

DOC = re.compile(r"/\*\*\s*\n?(.*?)\*/\s*\n((?:static inline )?[^;{]*?\b(uvirtio_\w+)\s*\([^;{]*\)\s*[;{])", re.S)


def clean(comment):
    lines = []
    for line in comment.splitlines():
        line = re.sub(r"^\s*\* ?", "", line.rstrip())
        lines.append(line)
    return "\n".join(lines).strip()


def roff(text):
    text = text.replace("\\", "\\\\")
    return "\n".join(("\\&" + l) if l.startswith((".", "'")) else l for l in text.splitlines())


def page(header, name, comment, proto):
    body = clean(comment)
    first, _, rest = body.partition("\n")
    m = re.match(r"\s*(\w+)\(\)\s*(?:/\s*_\w+\(\))?\s*-\s*(.*)", first)
    summary = m.group(2) if m else first
    # The summary may run on over several lines until the first blank line.
    while rest and not rest.startswith("\n") and not rest.startswith("@") and not rest.startswith("Return:"):
        more, _, rest = rest.partition("\n")
        summary += " " + more.strip()
    args, desc, ret = [], [], []
    section = desc
    for line in rest.splitlines():
        a = re.match(r"@(\w+|\.\.\.):\s*(.*)", line)
        if a:
            args.append([a.group(1), a.group(2)])
            section = args
            continue
        if line.startswith("Return:"):
            ret.append(line[len("Return:"):].strip())
            section = ret
            continue
        if section is args:
            if line.startswith(" ") and line.strip():
                args[-1][1] += " " + line.strip()
                continue
            section = desc
        section.append(line)
    proto = re.sub(r"\s+", " ", proto.rstrip(";{").strip()) + ";"
    proto = proto.replace("static inline ", "").replace("UVIRTIO_API ", "")
    out = [
        f'.TH {name} 3 "" "uvirtio" "uvirtio manual"',
        ".SH NAME",
        f"{name} \\- {roff(summary.strip().rstrip('.'))}",
        ".SH SYNOPSIS",
        ".nf",
        f".B #include <uvirtio/{os.path.basename(header)}>",
        ".PP",
        f".B {roff(proto)}",
        ".fi",
        ".PP",
        "Link with \\fI\\-luvirtio\\fP (pkg-config: \\fIuvirtio\\fP).",
    ]
    if args:
        out.append(".SH ARGUMENTS")
        for a, d in args:
            out += [".TP", f".I {a}", roff(d.strip())]
    text = "\n".join(desc).strip()
    if text:
        out.append(".SH DESCRIPTION")
        for para in re.split(r"\n\s*\n", text):
            out += [".PP", roff(re.sub(r"\s*\n\s*", " ", para.strip()))]
    if ret:
        out += [".SH RETURN VALUE", roff(re.sub(r"\s*\n\s*", " ", "\n".join(ret).strip()))]
        out += [".PP", "Errors are negative errno values; the library never sets errno nor prints."]
    out += [".SH SEE ALSO", "The header <uvirtio/" + os.path.basename(header) + ">, docs/ARCHITECTURE.md."]
    return "\n".join(out) + "\n"


def main():
    check = sys.argv[1] == "--check"
    outdir, headers = (None, sys.argv[2:]) if check else (sys.argv[1], sys.argv[2:])
    documented, declared = set(), set()
    for h in headers:
        src = open(h).read()
        declared |= set(re.findall(r"^(?:UVIRTIO_API\s+)?[a-z][^;()#]*?\b(uvirtio_\w+)\(", src, re.M))
        for m in DOC.finditer(src):
            comment, proto, name = m.group(1), m.group(2), m.group(3)
            documented.add(name)
            if not check:
                os.makedirs(outdir, exist_ok=True)
                with open(os.path.join(outdir, name + ".3"), "w") as f:
                    f.write(page(h, name, comment, proto))
    missing = sorted(declared - documented)
    if check:
        for name in missing:
            print(f"not documented in its header: {name}()")
        print(f"{len(documented)} of {len(declared)} public functions documented")
        sys.exit(1 if missing else 0)
    print(f"wrote {len(documented)} man pages to {outdir}")


if __name__ == "__main__":
    main()
