#!/usr/bin/env python3
"""The vhost-user backend conventions (QEMU docs/interop/vhost-user.rst):
the JSON description that management tools read names a binary of type
"block" (or "net"), and that binary, run with --print-capabilities and no
subcommand, prints VHostUserBackendCapabilitiesBlock JSON (for net, whose
capabilities vhost-user.json does not define: its type and a list of names).

usage: vhost_user_json.py DESCRIPTION.json UVIRTIO_EXECUTABLE [block|net]
"""
import json
import os
import subprocess
import sys
import tempfile


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    desc_path, exe = sys.argv[1], os.path.abspath(sys.argv[2])
    kind = sys.argv[3] if len(sys.argv) > 3 else "block"
    program = "uvirtio-blk" if kind == "block" else "uvirtio-net"
    with open(desc_path) as f:
        desc = json.load(f)
    if desc.get("type") != kind:
        fail("description type is %r, not %r" % (desc.get("type"), kind))
    if not isinstance(desc.get("description"), str) or not desc["description"]:
        fail("description has no 'description' string")
    binary = desc.get("binary", "")
    if not os.path.isabs(binary) or os.path.basename(binary) != program:
        fail("binary %r is not an absolute path to %s" % (binary, program))

    # Run it the way a management tool does: the installed name, no subcommand.
    with tempfile.TemporaryDirectory() as d:
        link = os.path.join(d, program)
        os.symlink(exe, link)
        out = subprocess.run([link, "--print-capabilities"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        fail("%s --print-capabilities exited %d: %s" % (program, out.returncode, out.stderr.strip()))
    caps = json.loads(out.stdout)
    if kind == "net":
        if caps.get("type") != "net" or not isinstance(caps.get("features"), list) or \
                not all(isinstance(x, str) for x in caps["features"]):
            fail("net capabilities %r are not a type and a list of names" % caps)
        print("ok: %s names %s; it prints %s" % (os.path.basename(desc_path), binary, json.dumps(caps)))
        return
    if caps.get("type") != "block":
        fail("capabilities type is %r" % caps.get("type"))
    features = caps.get("features")
    if not isinstance(features, list) or set(features) - {"read-only", "blk-file"}:
        fail("capabilities features %r are not VHostUserBackendBlockFeature values" % features)
    for want in ("read-only", "blk-file"):
        if want not in features:
            fail("capabilities do not list %r, which uvirtio blk supports" % want)
    print("ok: %s names %s; it prints %s" % (os.path.basename(desc_path), binary, json.dumps(caps)))


main()
