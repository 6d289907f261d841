#!/usr/bin/env python3
"""The host-side TCP peer of the guest net tests; net.py runs it in the test's
network namespace (`ip netns exec NS python3 netpeer.py --addr=10.77.0.1 ...`).

    python3 netpeer.py --addr=ADDR --port=PORT --nettool=PATH

It listens on ADDR only and serves one request per connection, each a first
line from the guest:
    PUT NAME                 then data until EOF: replies "OK SHA256 BYTES\\n"
                             (of what it received) and closes
    GET NAME SEED BYTES      sends BYTES bytes of `nettool gen SEED BYTES` (the
                             guest runs the same generator for its expectation)
                             and closes
Every connection, finished or cut, is one JSON line on stdout:
    {"op": "PUT"|"GET", "name": ..., "bytes": N, "sha256": ..., "complete": bool}
"ready" is printed once listening. With --progress=BYTES it also prints
    progress NAME PUT|GET BYTES
each time a connection has received (PUT) or sent (GET) another BYTES bytes
(net.py --test=crash times its kills by them). It stops by itself after --max-connections
connections or --max-seconds, and on SIGTERM.

    python3 netpeer.py --reflect=tap0

instead sends every frame of ethertype 0x88b5 that arrives on tap0 back with
its MACs swapped: what `uvirtio net --backend=reflect` does, for running the
guest's reflect scenario on QEMU's tap netdev (net.py --netdev=tap).
"""

import argparse
import hashlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time

CHUNK = 1 << 16
lock = threading.Lock()
progress_step = 0


def record(**kw):
    with lock:
        sys.stdout.write(json.dumps(kw, sort_keys=True) + "\n")
        sys.stdout.flush()


class Progress:
    """The `progress NAME OP BYTES` lines of one connection (--progress)."""

    def __init__(self, name, op):
        self.name, self.op, self.next = name, op, progress_step

    def at(self, n):
        if progress_step and n >= self.next:
            with lock:
                sys.stdout.write(f"progress {self.name} {self.op} {n}\n")
                sys.stdout.flush()
            self.next = (n // progress_step + 1) * progress_step


def read_line(conn):
    line = b""
    while not line.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            break
        line += b
        if len(line) > 200:
            break
    return line.decode("ascii", "replace").split()


def serve_put(conn, name):
    h = hashlib.sha256()
    n = 0
    complete = False
    progress = Progress(name, "PUT")
    try:
        while True:
            data = conn.recv(CHUNK)
            if not data:
                complete = True
                break
            h.update(data)
            n += len(data)
            progress.at(n)
        conn.sendall(f"OK {h.hexdigest()} {n}\n".encode())
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        record(op="PUT", name=name, bytes=n, sha256=h.hexdigest(), complete=False,
               error=str(e))
        return
    record(op="PUT", name=name, bytes=n, sha256=h.hexdigest(), complete=complete)


def serve_get(conn, name, nettool, seed, count):
    h = hashlib.sha256()
    n = 0
    gen = subprocess.Popen([nettool, "gen", str(seed), str(count)], stdout=subprocess.PIPE)
    progress = Progress(name, "GET")
    try:
        while True:
            data = gen.stdout.read(CHUNK)
            if not data:
                break
            conn.sendall(data)
            h.update(data)
            n += len(data)
            progress.at(n)
        conn.shutdown(socket.SHUT_WR)
        complete = n == count and gen.wait() == 0
        record(op="GET", name=name, bytes=n, sha256=h.hexdigest(), complete=complete)
    except OSError as e:
        record(op="GET", name=name, bytes=n, sha256=h.hexdigest(), complete=False,
               error=str(e))
    finally:
        gen.kill()
        gen.wait()


def serve(conn, nettool, timeout):
    with conn:
        conn.settimeout(timeout)
        try:
            req = read_line(conn)
        except OSError as e:
            record(op="?", name="", bytes=0, sha256="", complete=False, error=str(e))
            return
        if len(req) == 2 and req[0] == "PUT":
            serve_put(conn, req[1])
        elif len(req) == 4 and req[0] == "GET" and req[2].isdigit() and req[3].isdigit():
            serve_get(conn, req[1], nettool, int(req[2]), int(req[3]))
        else:
            record(op="?", name=" ".join(req), bytes=0, sha256="", complete=False,
                   error="bad request")


ETHERTYPE_TEST = 0x88b5
PACKET_OUTGOING = 4


def reflect(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_TEST))
    s.bind((ifname, ETHERTYPE_TEST))
    print("ready", flush=True)
    n = 0
    while True:
        frame, addr = s.recvfrom(65536)
        if addr[2] == PACKET_OUTGOING or len(frame) < 14:
            continue
        s.send(frame[6:12] + frame[0:6] + frame[12:])
        n += 1
        if n % 500 == 0:
            print(f"reflected {n}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--addr")
    ap.add_argument("--port", type=int)
    ap.add_argument("--nettool", help="the host build of tests/guest/nettool.c")
    ap.add_argument("--reflect", metavar="IFACE", help="reflect raw frames on IFACE instead")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds of silence per "
                    "connection before it is given up")
    ap.add_argument("--progress", type=int, default=0, metavar="BYTES",
                    help="print a progress line every BYTES bytes of a connection (0: none)")
    ap.add_argument("--max-connections", type=int, default=64)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    args = ap.parse_args()
    global progress_step
    progress_step = max(0, args.progress)

    def on_term(_signum, _frame):
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    timer = threading.Timer(args.max_seconds, lambda: signal.raise_signal(signal.SIGTERM))
    timer.daemon = True
    timer.start()

    if args.reflect:
        return reflect(args.reflect)
    if not (args.addr and args.port and args.nettool):
        ap.error("--addr, --port and --nettool (or --reflect)")
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.addr, args.port))
    srv.listen(8)
    print("ready", flush=True)
    start = time.monotonic()
    for _ in range(args.max_connections):
        conn, _addr = srv.accept()
        threading.Thread(target=serve, args=(conn, args.nettool, args.timeout),
                         daemon=True).start()
    # The last connections may still be running.
    while threading.active_count() > 2 and time.monotonic() - start < args.max_seconds:
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
