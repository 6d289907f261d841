#!/usr/bin/env python3
"""`uvirtio blk` as a person meets it: each mistake gives one clear line and a
non-zero exit; a served socket is refused to a second server; SIGTERM stops it
cleanly and removes its socket. TAP output.

usage: cli_blk.py UVIRTIO_EXECUTABLE
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend_util import serve_blk, wait_for_socket  # noqa: E402

exe = os.path.abspath(sys.argv[1])
results = []


def check(name, ok, detail=""):
    results.append((name, ok, detail))


def run(args, **kw):
    return subprocess.run([exe, "blk"] + args, capture_output=True, text=True, timeout=30, **kw)


def one_line_error(p, must_contain):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    return p.returncode != 0 and len(lines) == 1 and must_contain in lines[0], repr(p.stderr)


with tempfile.TemporaryDirectory() as d:
    image = os.path.join(d, "disk.img")
    with open(image, "wb") as f:
        f.truncate(1 << 20)
    sock = os.path.join(d, "blk.sock")

    check("missing_image_one_line", *one_line_error(
        run(["--socket-path=" + sock, os.path.join(d, "nope.img")]), "nope.img"))
    check("bad_queues_value_one_line", *one_line_error(
        run(["--socket-path=" + sock, "--queues=many", image]), "--queues"))
    check("bad_backend_value_one_line", *one_line_error(
        run(["--socket-path=" + sock, "--backend=tape", image]), "--backend"))
    check("no_socket_one_line", *one_line_error(run([image]), "--socket-path"))

    notsock = os.path.join(d, "regular-file")
    open(notsock, "w").close()
    check("socket_path_not_a_socket_one_line", *one_line_error(
        run(["--socket-path=" + notsock, image]), "not a socket"))

    ro = os.path.join(d, "ro.img")
    with open(ro, "wb") as f:
        f.truncate(1 << 20)
    os.chmod(ro, 0o444)
    if os.geteuid() != 0:
        check("read_only_image_needs_read_only_flag", *one_line_error(
            run(["--socket-path=" + sock, ro]), "ro.img"))

    # A running server, named the --blk-file way of the conventions.
    server = serve_blk(exe, sock, ["--blk-file=" + image])
    try:
        up = wait_for_socket(sock, server)
        check("serves_blk_file_on_socket", up)
        if up:
            check("socket_path_in_use_one_line", *one_line_error(
                run(["--socket-path=" + sock, image]), "another process"))
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=20)
        check("sigterm_exits_zero", rc == 0, "exit %d: %s" % (rc, server.stderr.read()))
        check("socket_removed_on_exit", not os.path.exists(sock))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

print("1..%d" % len(results))
for i, (name, ok, detail) in enumerate(results, 1):
    print("%s %d - %s%s" % ("ok" if ok else "not ok", i, name, "" if ok else " # " + detail))
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
