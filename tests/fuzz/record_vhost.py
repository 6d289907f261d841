#!/usr/bin/env python3
"""Record vhost-user sessions: a unix-socket proxy between a front-end (QEMU,
or `uvirtio bench blk`) and a backend (`uvirtio blk`), which passes every
message on unchanged, fds included, and logs it.

    record_vhost.py --listen PROXY.sock --backend BACKEND.sock --out DIR

Each front-end connection gets DIR/conn-N.jsonl, one JSON object a line per
message in the order the proxy saw them:

    {"from": "front-end" | "back-end", "request": 5, "flags": 1, "size": 40,
     "payload": "<hex>", "fds": [{"kind": "memfd", "size": 536870912}, ...]}

"kind" is what /proc/self/fd says the fd is (eventfd, memfd, socket, pipe,
file, other); "size" is given for memfds and files. A stream that ends inside
a message gets a last line {"from": ..., "truncated": "<hex>"}.

tests/fuzz/vhost_seeds.py turns the logs into seeds for fuzz_vhost_backend
and fuzz_vhost_frontend. tests/guest/run.py puts this proxy in front of its
backend when UVIRTIO_GUEST_RECORD=DIR is set.
"""

import argparse
import array
import json
import os
import signal
import socket
import stat
import struct
import sys
import threading

HDR = struct.Struct("<III")
MAX_FDS = 253  # SCM_MAX_FD: whatever the peer sends, the proxy takes it


def fd_kind(fd):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return {"kind": "other"}
    if target == "anon_inode:[eventfd]":
        return {"kind": "eventfd"}
    if target.startswith("socket:"):
        return {"kind": "socket"}
    if target.startswith("pipe:"):
        return {"kind": "pipe"}
    try:
        st = os.fstat(fd)
    except OSError:
        return {"kind": "other"}
    if target.startswith("/memfd:"):
        return {"kind": "memfd", "size": st.st_size}
    if stat.S_ISREG(st.st_mode):
        return {"kind": "file", "size": st.st_size}
    return {"kind": "other"}


def recv_exact(sock, n, fds):
    """n bytes (b"" at a clean end); fds that came with them are appended."""
    buf = b""
    while len(buf) < n:
        data, anc, _flags, _addr = sock.recvmsg(n - len(buf),
                                                socket.CMSG_SPACE(MAX_FDS * 4))
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(cdata[:len(cdata) - len(cdata) % a.itemsize])
                fds.extend(a)
        if not data:
            return buf
        buf += data
    return buf


class Log:
    def __init__(self, path):
        self.f = open(path, "w")
        self.lock = threading.Lock()

    def write(self, obj):
        with self.lock:
            self.f.write(json.dumps(obj) + "\n")
            self.f.flush()

    def close(self):
        self.f.close()


def relay(src, dst, who, log):
    """Pass src's messages to dst until src ends; log each one."""
    try:
        while True:
            fds = []
            hdr = recv_exact(src, HDR.size, fds)
            if len(hdr) < HDR.size:
                if hdr:
                    log.write({"from": who, "truncated": hdr.hex()})
                break
            request, flags, size = HDR.unpack(hdr)
            payload = recv_exact(src, size, fds) if size else b""
            entry = {"from": who, "request": request, "flags": flags, "size": size,
                     "payload": payload.hex(), "fds": [fd_kind(fd) for fd in fds]}
            if len(payload) < size:
                entry["truncated"] = True
            log.write(entry)
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
            try:
                dst.sendmsg([hdr + payload], anc)
            finally:
                for fd in fds:
                    os.close(fd)
            if len(payload) < size:
                break
    except OSError as e:
        log.write({"from": who, "error": str(e)})
    finally:
        # The other side sees this one end, as it would without the proxy.
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(conn, backend_path, path):
    log = Log(path)
    be = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        be.connect(backend_path)
    except OSError as e:
        log.write({"error": f"cannot connect to the backend: {e}"})
        conn.close()
        log.close()
        return
    t = threading.Thread(target=relay, args=(be, conn, "back-end", log), daemon=True)
    t.start()
    relay(conn, be, "front-end", log)
    t.join()
    conn.close()
    be.close()
    log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="the socket the front-end connects to")
    ap.add_argument("--backend", required=True, help="the backend's listening socket")
    ap.add_argument("--out", required=True, help="directory for conn-N.jsonl")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(args.listen):
        os.unlink(args.listen)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(args.listen)
    ls.listen(4)
    n = 0
    try:
        while True:
            conn, _ = ls.accept()
            n += 1
            threading.Thread(target=serve, daemon=True,
                             args=(conn, args.backend,
                                   os.path.join(args.out, f"conn-{n}.jsonl"))).start()
    finally:
        ls.close()
        os.unlink(args.listen)


if __name__ == "__main__":
    main()
