#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn vhost-user sessions recorded by record_vhost.py into fuzz seeds.

    vhost_seeds.py backend  LOG.jsonl OUT   # fuzz_vhost_backend: the front-end's messages
    vhost_seeds.py frontend LOG.jsonl OUT   # fuzz_vhost_frontend: the backend's replies

The input layouts are the ones documented at the top of fuzz_vhost_backend.c
and fuzz_vhost_frontend.c; change them together. tests/fuzz/recorded/README.md says how the committed
logs were recorded.

fuzz_vhost_backend: the recorded memory table describes QEMU's memory (512 MiB
at QEMU's own virtual addresses), which the fuzzer does not have. So the
front-end's memory messages are rewritten to the fuzzer's guest memfd
(GUEST_SIZE bytes): region 0 of SET_MEM_TABLE, and the first region
ADD_MEM_REG adds, become guest-physical 0 / user address UVA_BASE / offset 0
over all of the memfd but one 4 KiB page per further region, which each get
one page at the end (REM_MEM_REG follows the same mapping). The rings'
addresses in SET_VRING_ADDR are moved to the fuzzer's fixed slots (ring r at
r * RING_SLOT: descriptors +0, avail or driver area +16 KiB, used or device
area +20 KiB). Fds become the fuzzer's kinds: the memory fd its guest memfd,
SET_VRING_KICK/CALL eventfds the fuzzer's kick/call eventfd of that ring (so
its kicks reach the ring), the back-end channel a socket. Guest memory itself
is not recorded: after each SET_STATUS with DRIVER_OK the seed puts four blk
requests (a read, a write, GET_ID and a flush) in each started ring, at the
position the ring starts from, and kicks it.

fuzz_vhost_frontend: the seed answers each request the front-end sent with
the reply the recorded backend gave it, byte for byte (a custom reply), and
a request that got none with nothing. The fuzzer's front-end runs the blk
driver's probe and remove, which send the requests of `uvirtio bench blk`'s
session in the same order (its I/O travels through the rings, not messages).
"""
import json
import struct
import sys

GUEST_SIZE = 128 * 1024
RING_SLOT = 32 * 1024
DATA_AT = 64 * 1024
UVA_BASE = 0x7F0000000000
PAGE = 4096

GET_FEATURES, SET_FEATURES, SET_MEM_TABLE, SET_LOG_BASE = 1, 2, 5, 6
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE = 8, 9, 10
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
SET_BACKEND_REQ_FD, ADD_MEM_REG, REM_MEM_REG, SET_STATUS = 21, 37, 38, 39
RING_PACKED = 34

# fuzz_vhost_backend's fd kinds and ops
FD_GUEST, FD_KICK, FD_CALL, FD_EVENTFD, FD_MEMFD, FD_PIPE, FD_SOCKET, FD_NULL = range(8)
OP_MSG, OP_KICK, OP_POKE = 0, 11, 12


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Memory:
    """QEMU's regions, as the session names them, onto the guest memfd."""

    def __init__(self, entries):
        seen = []
        for e in entries:
            if e.get("from") != "front-end":
                continue
            p = bytes.fromhex(e.get("payload", ""))
            if e["request"] == ADD_MEM_REG and len(p) >= 40:
                key = p[8:32]
                if key not in seen:
                    seen.append(key)
            if e["request"] == SET_MEM_TABLE and len(p) >= 8:
                n = struct.unpack_from("<I", p)[0]
                for i in range(min(n, 8)):
                    key = p[8 + 32 * i:8 + 32 * i + 24]
                    if len(key) == 24 and key not in seen:
                        seen.append(key)
        self.slots = {}
        extra = max(len(seen) - 1, 0)
        for i, key in enumerate(seen):
            if i == 0:
                gpa, size = 0, GUEST_SIZE - extra * PAGE
            else:
                gpa, size = GUEST_SIZE - (extra - i + 1) * PAGE, PAGE
            self.slots[key] = (gpa, size, UVA_BASE + gpa, gpa)

    def region(self, raw):
        """A 32-byte region rewritten (gpa, size, uva, offset)."""
        slot = self.slots.get(raw[:24])
        return struct.pack("<QQQQ", *slot) if slot else raw


def ring_uvas(r):
    base = UVA_BASE + r * RING_SLOT
    return base, base + 16 * 1024, base + 20 * 1024


def fd_kind(req, payload, fd):
    kind = fd.get("kind")
    ring = payload[0] & 3 if payload else 0
    if kind == "memfd" and req in (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG):
        return FD_GUEST
    if kind == "eventfd" and req == SET_VRING_KICK:
        return FD_KICK | ring << 3
    if kind == "eventfd" and req == SET_VRING_CALL:
        return FD_CALL | ring << 3
    if kind == "eventfd":
        return FD_EVENTFD
    if kind == "memfd":
        return FD_MEMFD | min(fd.get("size", 0) // PAGE, 31) << 3
    if kind == "socket":
        return FD_SOCKET
    if kind == "pipe":
        return FD_PIPE
    return FD_NULL


def poke(off, data):
    out = b""
    for i in range(0, len(data), 255):
        chunk = data[i:i + 255]
        out += bytes([OP_POKE]) + (off + i).to_bytes(3, "little") + bytes([len(chunk)]) + chunk
    return out


# virtio-blk request types (linux/virtio_blk.h) and descriptor flags
BLK_T_IN, BLK_T_OUT, BLK_T_FLUSH, BLK_T_GET_ID = 0, 1, 4, 8
D_NEXT, D_WRITE = 1, 2


def blk_requests(r, num, base, packed):
    """Pokes that make four blk requests (a read, a write, GET_ID, a flush)
    available in ring r where it starts; b"" if they do not fit there."""
    if not num:
        return b""
    slot = r * RING_SLOT
    out = b""
    chains = []
    for i, (typ, sector, data, write) in enumerate([(BLK_T_IN, 0, 512, True),
                                                    (BLK_T_OUT, 1, 512, False),
                                                    (BLK_T_GET_ID, 0, 20, True),
                                                    (BLK_T_FLUSH, 0, 0, False)]):
        at = DATA_AT + r * 8192 + i * 2048
        out += poke(at, struct.pack("<IIQ", typ, 0, sector))
        if not write and data:
            out += poke(at + 512, bytes((sector * 7 + k) & 0xFF for k in range(data)))
        chain = [(at, 16, 0)]
        if data:
            chain.append((at + 512, data, D_WRITE if write else 0))
        chain.append((at + 1536, 1, D_WRITE))
        chains.append(chain)
    total = sum(len(c) for c in chains)
    if not packed:
        if total > num:
            return b""
        desc, heads = b"", []
        for chain in chains:
            heads.append(len(desc) // 16)
            for k, (addr, ln, fl) in enumerate(chain):
                last = k + 1 == len(chain)
                nxt = 0 if last else len(desc) // 16 + 1
                desc += struct.pack("<QIHH", addr, ln, fl | (0 if last else D_NEXT), nxt)
        avail = slot + 16 * 1024
        out += poke(slot, desc)
        for i, head in enumerate(heads):
            out += poke(avail + 4 + 2 * ((base + i) % num), struct.pack("<H", head))
        out += poke(avail + 2, struct.pack("<H", (base + len(heads)) & 0xFFFF))
        return out
    pos, wrap = base & 0x7FFF, (base >> 15) & 1
    if pos + total > num:
        return b""
    avail_bits = (1 << 7) if wrap else (1 << 15)
    for buf_id, chain in enumerate(chains):
        descs = []
        for k, (addr, ln, fl) in enumerate(chain):
            fl |= 0 if k + 1 == len(chain) else D_NEXT
            descs.append(struct.pack("<QIHH", addr, ln, buf_id, fl | avail_bits))
        # The head's flags last, as a driver makes a chain available.
        for k in range(len(descs) - 1, -1, -1):
            out += poke(slot + 16 * (pos + k), descs[k])
        pos += len(descs)
    return out


def backend_seed(entries):
    mem = Memory(entries)
    # The device byte: writable, queue threads poll; two queues when the
    # session set a ring up beyond the first.
    two = any(e.get("from") == "front-end" and e.get("request") == SET_VRING_NUM and
              bytes.fromhex(e["payload"])[:4] != bytes(4) for e in entries)
    out = bytearray([2 if two else 0])
    packed = False
    rings = {}  # index -> {"num", "base", "started"}
    for e in entries:
        if e.get("from") != "front-end" or "request" not in e:
            continue
        req, flags = e["request"], e["flags"]
        p = bytearray(bytes.fromhex(e["payload"]))
        if req == SET_MEM_TABLE and len(p) >= 8:
            n = struct.unpack_from("<I", p)[0]
            for i in range(min(n, 8)):
                o = 8 + 32 * i
                p[o:o + 32] = mem.region(bytes(p[o:o + 32]))
        elif req in (ADD_MEM_REG, REM_MEM_REG) and len(p) >= 40:
            p[8:40] = mem.region(bytes(p[8:40]))
        elif req == SET_VRING_ADDR and len(p) >= 40:
            r = struct.unpack_from("<I", p)[0]
            struct.pack_into("<QQQ", p, 8, ring_uvas(r)[0], ring_uvas(r)[2], ring_uvas(r)[1])
        elif req == SET_FEATURES and len(p) >= 8:
            packed = bool(struct.unpack_from("<Q", p)[0] >> RING_PACKED & 1)
        elif req in (SET_VRING_NUM, SET_VRING_BASE) and len(p) >= 8:
            r, v = struct.unpack_from("<II", p)
            ring = rings.setdefault(r, {"num": 0, "base": 0, "started": False})
            ring["num" if req == SET_VRING_NUM else "base"] = v
        elif req == SET_VRING_KICK and len(p) >= 8:
            rings.setdefault(p[0], {"num": 0, "base": 0, "started": False})["started"] = True
        kinds = [fd_kind(req, p, fd) for fd in e["fds"]]
        out += bytes([OP_MSG, req & 0xFF, flags & 0xFF]) + struct.pack("<H", len(p))
        out += bytes([len(kinds)] + kinds) + p
        if req == SET_STATUS and len(p) >= 8 and p[0] & 4:
            for r, ring in sorted(rings.items()):
                if ring["started"] and r < 4:
                    pk = blk_requests(r, ring["num"], ring["base"], packed)
                    if pk:
                        out += pk + bytes([OP_KICK, r | 0x80])  # kick, wait for it
    return bytes(out)


def frontend_seed(entries):
    # the two driver bytes, features and protocol features as offered by
    # default (xor 0), one queue; then the replies.
    out = bytearray([0, 0]) + bytes(16) + bytes([0])
    msgs = [e for e in entries if "request" in e]
    for i, e in enumerate(msgs):
        if e["from"] != "front-end":
            continue
        nxt = msgs[i + 1] if i + 1 < len(msgs) else None
        if nxt and nxt["from"] == "back-end" and nxt["request"] == e["request"]:
            p = bytes.fromhex(nxt["payload"])
            out += bytes([1, 0, nxt["flags"] & 0xFF]) + struct.pack("<H", len(p)) + bytes([0]) + p
        else:
            out += bytes([0])
    return bytes(out)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("backend", "frontend"):
        sys.exit(__doc__)
    entries = load(sys.argv[2])
    data = backend_seed(entries) if sys.argv[1] == "backend" else frontend_seed(entries)
    with open(sys.argv[3], "wb") as f:
        f.write(data)
    print(f"{sys.argv[3]}: {len(data)} bytes from {len(entries)} messages")


if __name__ == "__main__":
    main()
