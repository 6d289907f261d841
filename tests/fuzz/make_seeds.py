#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus for the fuzz targets: tests/fuzz/corpus/<target>/<name>.

Each seed is a small well-formed input (a valid ring, a buffer that crosses
regions, an indirect table, a hostile used entry, ...), so the fuzzer starts
deep in the code instead of spending its first minutes finding a ring that
set-up accepts. The layouts are the ones documented at the top of each
fuzz_*.c; change both together. Run it again after changing a layout:

    python3 tests/fuzz/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# linux/virtio_ring.h
DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4


def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


# --- fuzz_devq_split ------------------------------------------------------

DEV_OPS = {
    "pop_push": 0, "pop_hold": 1, "push_held": 2, "needs_notify": 3,
    "enable_notify": 4, "disable_notify": 5, "push_bad_id": 6, "pop_push_full": 7, "stop": 8,
}
DEV_INDIRECT, DEV_EVENT_IDX, DEV_WRITE_IN, DEV_SET_INDICES, DEV_IN_ORDER = 1, 2, 4, 8, 0x10
GUEST_SIZE = 16384


class Guest:
    """Guest memory seen from host offset 0 (region 0 maps it there)."""

    def __init__(self, base):
        self.base = base
        self.mem = bytearray()

    def put(self, guest_addr, data):
        off = guest_addr - self.base
        if len(self.mem) < off + len(data):
            self.mem.extend(bytes(off + len(data) - len(self.mem)))
        self.mem[off:off + len(data)] = data

    def desc(self, table, i, addr, length, flags, nxt=0):
        self.put(table + 16 * i, u64(addr) + u32(length) + u16(flags) + u16(nxt))

    def avail(self, ring, num, heads, flags=0, start=0):
        """Make heads available from slot start on; avail->idx follows them."""
        for k, h in enumerate(heads):
            self.put(ring + 4 + 2 * ((start + k) % num), u16(h))
        self.put(ring, u16(flags) + u16((start + len(heads)) & 0xFFFF))


def devq_seed(num, flags, regions, desc, avail, used, ops, guest, iov_cap=64,
              indices=(0, 0)):
    """regions: up to 4 (guest, size, host_off); ring parts: (region, offset)."""
    out = u8(num.bit_length() - 1) + u8(flags) + u8(iov_cap - 1) + u8(len(regions) - 1)
    regions = list(regions) + [(0, 0, 0)] * (4 - len(regions))
    for ga, size, host_off in regions:
        # fuzz_devq_split.c: size = 1 + raw % (GUEST_SIZE - host_off)
        out += u64(ga) + u16((size - 1) % 65536) + u16(host_off)
    for sel, off in (desc, avail, used):
        out += u8(sel) + u16(off)
    out += u16(indices[0]) + u16(indices[1])
    out += u8(len(ops)) + b"".join(u8(DEV_OPS[o]) + u16(a) for o, a in ops)
    return out + bytes(guest.mem)


def devq_seeds():
    G = 0x10000
    DESC, AVAIL, USED, DATA = 0x0, 0x400, 0x800, 0x1000
    one = [(G, GUEST_SIZE, 0)]
    parts = dict(desc=(0, DESC), avail=(0, AVAIL), used=(0, USED))
    seeds = {}

    # One readable and one writable descriptor.
    g = Guest(G)
    g.desc(G + DESC, 0, G + DATA, 64, DESC_F_NEXT, 1)
    g.desc(G + DESC, 1, G + DATA + 0x100, 128, DESC_F_WRITE)
    g.avail(G + AVAIL, 4, [0])
    seeds["chain"] = devq_seed(4, 0, one, ops=[("pop_push", 16), ("needs_notify", 0),
                                                ("enable_notify", 0)], guest=g, **parts)

    # An indirect table of two readable and one writable descriptor.
    g = Guest(G)
    g.desc(G + DESC, 0, G + 0x2000, 48, DESC_F_INDIRECT)
    g.desc(G + 0x2000, 0, G + DATA, 16, DESC_F_NEXT, 1)
    g.desc(G + 0x2000, 1, G + DATA + 0x10, 32, DESC_F_NEXT, 2)
    g.desc(G + 0x2000, 2, G + DATA + 0x100, 512, DESC_F_WRITE)
    g.avail(G + AVAIL, 8, [0])
    seeds["indirect"] = devq_seed(8, DEV_INDIRECT, one, ops=[("pop_push_full", 0)],
                                  guest=g, **parts)

    # Three chains with EVENT_IDX, held and pushed as a batch; the device
    # writes into what it pops.
    g = Guest(G)
    for i in range(3):
        g.desc(G + DESC, 2 * i, G + DATA + 0x100 * i, 8, DESC_F_NEXT, 2 * i + 1)
        g.desc(G + DESC, 2 * i + 1, G + DATA + 0x100 * i + 0x40, 64, DESC_F_WRITE)
    g.avail(G + AVAIL, 16, [0, 2, 4])
    g.put(G + AVAIL + 4 + 2 * 16, u16(1))  # used_event
    ops = [("disable_notify", 0), ("pop_hold", 8), ("pop_hold", 9), ("push_held", 0),
           ("needs_notify", 0), ("enable_notify", 0), ("pop_push", 4), ("needs_notify", 0)]
    seeds["event_idx_batch"] = devq_seed(16, DEV_EVENT_IDX | DEV_WRITE_IN, one, ops=ops,
                                         guest=g, **parts)

    # A buffer that crosses from one region into the next: two iovecs.
    g = Guest(G)
    g.desc(G + DESC, 0, G + 0x1F00, 0x200, DESC_F_WRITE)
    g.avail(G + AVAIL, 2, [0])
    two = [(G, 0x2000, 0), (G + 0x2000, 0x2000, 0x2000)]
    seeds["two_regions"] = devq_seed(2, 0, two, ops=[("pop_push", 0x200)], guest=g, **parts)

    # Resumed near the 16-bit wrap of the avail index.
    g = Guest(G)
    for i in range(4):
        g.desc(G + DESC, i, G + DATA + 0x40 * i, 16, DESC_F_WRITE)
    g.avail(G + AVAIL, 4, [3, 2, 1], start=0xFFFE)
    seeds["wrap"] = devq_seed(4, DEV_SET_INDICES, one, ops=[("pop_push", 1), ("push_bad_id", 0)],
                              guest=g, indices=(0xFFFE, 0xFFF0), **parts)
    seeds["stop"] = devq_seed(4, DEV_SET_INDICES, one, ops=[("pop_push", 1), ("stop", 0)],
                              guest=g, indices=(0xFFFE, 0xFFF0), **parts)

    # IN_ORDER: four writable buffers in ring order, held, pushed back to
    # front (odd argument), some at full length so runs coalesce.
    g = Guest(G)
    for i in range(4):
        g.desc(G + DESC, i, G + DATA + 0x40 * i, 16, DESC_F_WRITE)
    g.avail(G + AVAIL, 8, [0, 1, 2, 3])
    ops = [("pop_hold", 16), ("pop_hold", 16), ("pop_hold", 3), ("pop_hold", 16),
           ("push_held", 1), ("needs_notify", 0)]
    seeds["in_order"] = devq_seed(8, DEV_IN_ORDER, one, ops=ops, guest=g, **parts)
    return seeds


# --- fuzz_devq_packed -----------------------------------------------------

DEVP_OPS = dict(DEV_OPS, note=9, has_avail=10)
DEVP_NOTIF_DATA = 0x20
PDESC_F_AVAIL, PDESC_F_USED = 1 << 7, 1 << 15


def pdesc(g, ring, i, addr, length, buf_id, flags, lap=1):
    """A packed descriptor made available in the lap whose wrap counter is lap."""
    flags |= PDESC_F_AVAIL if lap else PDESC_F_USED
    g.put(ring + 16 * i, u64(addr) + u32(length) + u16(buf_id) + u16(flags))


def devq_packed_seed(num, flags, regions, desc, driver, device, ops, guest, iov_cap=64,
                     indices=(0x8000, 0x8000)):
    """As devq_seed, for fuzz_devq_packed.c: the size byte is the size itself."""
    out = u8(num) + u8(flags) + u8(iov_cap - 1) + u8(len(regions) - 1)
    regions = list(regions) + [(0, 0, 0)] * (4 - len(regions))
    for ga, size, host_off in regions:
        out += u64(ga) + u16((size - 1) % 65536) + u16(host_off)
    for sel, off in (desc, driver, device):
        out += u8(sel) + u16(off)
    out += u16(indices[0]) + u16(indices[1])
    out += u8(len(ops)) + b"".join(u8(DEVP_OPS[o]) + u16(a) for o, a in ops)
    return out + bytes(guest.mem)


def devq_packed_seeds():
    G = 0x10000
    DESC, DRIVER, DEVICE, DATA, TABLE = 0x0, 0x400, 0x410, 0x1000, 0x2000
    one = [(G, GUEST_SIZE, 0)]
    parts = dict(desc=(0, DESC), driver=(0, DRIVER), device=(0, DEVICE))
    seeds = {}

    # One readable and one writable descriptor, chained.
    g = Guest(G)
    pdesc(g, G + DESC, 1, G + DATA + 0x100, 128, 0, DESC_F_WRITE)
    pdesc(g, G + DESC, 0, G + DATA, 64, 0, DESC_F_NEXT)
    seeds["chain"] = devq_packed_seed(4, 0, one, ops=[("pop_push", 16), ("needs_notify", 0),
                                                       ("enable_notify", 0)], guest=g, **parts)

    # An indirect table of two readable and one writable descriptor.
    g = Guest(G)
    pdesc(g, G + DESC, 0, G + TABLE, 48, 5, DESC_F_INDIRECT)
    g.put(G + TABLE, u64(G + DATA) + u32(16) + u16(0) + u16(0))
    g.put(G + TABLE + 16, u64(G + DATA + 0x10) + u32(32) + u16(0) + u16(0))
    g.put(G + TABLE + 32, u64(G + DATA + 0x100) + u32(512) + u16(0) + u16(DESC_F_WRITE))
    seeds["indirect"] = devq_packed_seed(8, DEV_INDIRECT, one, ops=[("pop_push_full", 0)],
                                         guest=g, **parts)

    # IN_ORDER with EVENT_IDX: three buffers held and pushed back to front;
    # the driver asks for an event at descriptor 2.
    g = Guest(G)
    for i in range(3):
        pdesc(g, G + DESC, i, G + DATA + 0x40 * i, 16, i, DESC_F_WRITE)
    g.put(G + DRIVER, u16(0x8002) + u16(2))
    ops = [("disable_notify", 0), ("pop_hold", 1), ("pop_hold", 1), ("pop_hold", 4),
           ("push_held", 1), ("needs_notify", 0), ("enable_notify", 0), ("has_avail", 0)]
    seeds["in_order_event_idx"] = devq_packed_seed(
        4, DEV_IN_ORDER | DEV_EVENT_IDX | DEV_WRITE_IN, one, ops=ops, guest=g, **parts)

    # Resumed at descriptor 3 in lap 0: a chain across the ring's end.
    g = Guest(G)
    pdesc(g, G + DESC, 0, G + DATA + 0x40, 16, 9, DESC_F_WRITE, lap=1)
    pdesc(g, G + DESC, 3, G + DATA, 16, 9, DESC_F_NEXT, lap=0)
    seeds["wrap"] = devq_packed_seed(4, DEV_SET_INDICES, one,
                                     ops=[("pop_push", 1), ("push_bad_id", 3), ("stop", 0)],
                                     guest=g, indices=(0x0003, 0x0003), **parts)

    # Notification data, good and past the ring.
    g = Guest(G)
    pdesc(g, G + DESC, 0, G + DATA, 16, 0, 0)
    seeds["notification_data"] = devq_packed_seed(
        4, DEVP_NOTIF_DATA, one, ops=[("note", 0x8001), ("note", 0x0004), ("pop_push", 0)],
        guest=g, **parts)
    return seeds


# --- fuzz_drvq_split ------------------------------------------------------

DRV_OPS = {
    "add": 0, "get": 1, "get_loop": 2, "serve": 3, "poke_used": 4, "set_used_idx": 5,
    "poke_byte": 6, "enable_cb": 7, "enable_cb_delayed": 8, "disable_cb": 9, "kick": 10,
}
DRV_INDIRECT, DRV_EVENT_IDX = 1, 2


def drv_add(outs, ins):
    """Parts as (offset, length) into the data area, readable then writable."""
    b = u8(DRV_OPS["add"]) + u8(len(outs)) + u8(len(ins))
    for off, length in outs + ins:
        b += u8(0) + u16(off) + u16(length)
    return b


def drv_op(name, *args):
    return u8(DRV_OPS[name]) + b"".join(args)


def drvq_seed(num, features, ops, indirect_max=0, page=0x100):
    return u8(num.bit_length() - 1) + u8(features) + u8(indirect_max) + u32(page) + b"".join(ops)


def drvq_seeds():
    serve = lambda n, length: drv_op("serve", u8(n - 1), u8(0), u32(length))
    seeds = {}
    seeds["honest_device"] = drvq_seed(8, DRV_INDIRECT | DRV_EVENT_IDX, [
        drv_add([(0, 64)], [(128, 256)]),
        drv_op("kick", u8(1)),
        serve(1, 100),
        drv_op("get"),
        drv_add([(512, 16)], []),
        drv_add([], [(1024, 32), (2048, 32)]),
        drv_add([(0, 8), (8, 8)], [(16, 8)]),
        serve(2, 20),
        drv_op("enable_cb"),
        drv_op("get_loop"),
        drv_op("disable_cb"),
        serve(1, 7),
        drv_op("enable_cb_delayed"),
        drv_op("get_loop"),
    ])
    seeds["direct_full"] = drvq_seed(4, 0, [
        drv_add([(0, 16), (16, 16)], [(32, 16)]),
        drv_add([(64, 16)], [(80, 16)]),  # only one descriptor left: -ENOSPC
        drv_op("kick", u8(0)),
        serve(1, 16),
        drv_op("get"),
        drv_add([(64, 16)], [(80, 16)]),
    ])
    seeds["hostile_used"] = drvq_seed(4, DRV_EVENT_IDX, [
        drv_add([(0, 64)], [(64, 64)]),
        drv_add([], [(256, 8)]),
        drv_op("poke_used", u8(0), u32(0), u32(65)),  # longer than the buffer
        drv_op("set_used_idx", u16(1)),
        drv_op("get"),
        drv_op("get"),
    ])
    return seeds


# --- fuzz_memory ----------------------------------------------------------

MEM_OPS = {"add": 0, "remove": 2, "translate": 3, "ptr": 5, "find": 6, "bulk": 7}


def num(v):
    """fuzz_input.h in_num(): a tag byte picks the width."""
    for tag, width in ((0, 1), (1, 2), (2, 4), (3, 8)):
        if v < 1 << (8 * width):
            return u8(tag) + v.to_bytes(width, "little")
    raise ValueError(v)


def region(guest, size, host, fd=0xFF, fd_offset=0):
    return num(guest) + num(size) + num(host) + u8(fd) + num(fd_offset)


def mem_seeds():
    op = lambda name: u8(MEM_OPS[name])
    seeds = {}
    seeds["adjacent"] = b"".join([
        op("add"), region(0x1000, 0x1000, 0x7F0000000000),
        op("add"), region(0x2000, 0x1000, 0x7F0000100000),
        op("add"), region(0x1800, 0x100, 0x7F0000200000),  # overlaps: -EINVAL
        op("translate"), num(0x1800), num(0x1000), u8(4),
        op("translate"), num(0x1800), num(0x1000), u8(1),  # needs two: -ENOBUFS
        op("ptr"), num(0x1FF0), num(0x10),
        op("find"), num(0x2FFF),
        op("remove"), u8(3), u16(0),
        op("translate"), num(0x1800), num(0x1000), u8(4),  # now a hole: -EFAULT
    ])
    seeds["full_map"] = b"".join([
        op("bulk"), u8(255), region(0x100000, 0x1000, 0x10000000), u8(0),
        op("bulk"), u8(255), region(0x200000, 0x1000, 0x20000000), u8(1),
        op("translate"), num(0x100800), num(0x20000), u8(16),
    ])
    seeds["top_of_memory"] = b"".join([
        op("add"), region(0xFFFFFFFFFFFFF000, 0x1000, 0x10000),
        op("add"), region(0xFFFFFFFFFFFFF000, 0x2000, 0x10000),  # overflows: -EINVAL
        op("translate"), num(0xFFFFFFFFFFFFFFF0), num(0x10), u8(1),
        op("translate"), num(0xFFFFFFFFFFFFFFF0), num(0x11), u8(1),
    ])
    return seeds


# --- fuzz_blk_req ---------------------------------------------------------

BLK_T = {"in": 0, "out": 1, "flush": 4, "get_id": 8, "discard": 11, "write_zeroes": 13}


def blk_hdr(kind, sector):
    return u32(BLK_T[kind] if isinstance(kind, str) else kind) + u32(0) + u64(sector)


def blk_seg(sector, num, flags=0):
    return u64(sector) + u32(num) + u32(flags)


def blk_req(outs, ins):
    """outs: readable iovecs as bytes; ins: writable iovec lengths."""
    data = u8(len(outs)) + u8(len(ins))
    for o in outs:
        data += u16(len(o)) + o
    for n in ins:
        data += u16(n)
    return data


def blk_dev(flags=0, capacity=1 << 20, dseg=4, wseg=4, features=(1 << 64) - 1):
    return u8(flags) + num(capacity) + u8(dseg) + u8(wseg) + u64(features)


def blk_seeds():
    seeds = {}
    seeds["read_write"] = blk_dev() + b"".join([
        blk_req([blk_hdr("in", 8)], [512, 1]),
        blk_req([blk_hdr("out", 8)[:5], blk_hdr("out", 8)[5:], bytes(range(256)) * 2], [1]),
        blk_req([blk_hdr("flush", 0)], [1]),
        blk_req([blk_hdr("get_id", 0)], [7, 1]),
    ])
    seeds["discard_write_zeroes"] = blk_dev() + b"".join([
        blk_req([blk_hdr("discard", 0), blk_seg(0, 8) + blk_seg(16, 8)], [1]),
        blk_req([blk_hdr("write_zeroes", 0) + blk_seg(0, 8, 1)], [1]),
        blk_req([blk_hdr("write_zeroes", 0), blk_seg(0, 8, 2)], [1]),  # unknown flag
        blk_req([blk_hdr("discard", 0)], [1]),  # no segment
    ])
    seeds["malformed"] = blk_dev(flags=1) + b"".join([
        blk_req([blk_hdr("in", 0)[:12]], [512, 1]),  # short header
        blk_req([blk_hdr("in", 0)], []),  # no status byte
        blk_req([blk_hdr("in", (1 << 64) - 1)], [1024, 1]),  # sector + length overflows
        blk_req([blk_hdr("in", 0), bytes(512)], [512, 1]),  # readable data in a read
        blk_req([blk_hdr("out", 0), bytes(513)], [1]),  # not a multiple of 512
        blk_req([blk_hdr(99, 0)], [0, 1]),  # unknown type
    ])
    # An image in a memfd (flags bit 2) of 16 sectors and a 100-byte tail:
    # data the model checks, requests at and over the last sector.
    image = 16 * 512 + 100
    seeds["image"] = blk_dev(flags=4, capacity=image) + b"".join([
        blk_req([blk_hdr("out", 3), bytes(range(256)) * 4], [1]),
        blk_req([blk_hdr("in", 2)], [700, 500, 1]),
        blk_req([blk_hdr("in", 15)], [512, 1]),
        blk_req([blk_hdr("in", 15)], [1024, 1]),  # past the last sector
        blk_req([blk_hdr("out", 16), bytes(512)], [1]),  # past the last sector
        blk_req([blk_hdr("write_zeroes", 0), blk_seg(2, 3, 1) + blk_seg(14, 2)], [1]),
        blk_req([blk_hdr("discard", 0), blk_seg(5, 1)], [1]),
        blk_req([blk_hdr("discard", 0), blk_seg(5, 1) + blk_seg(1, 1, 1)], [1]),  # unmap
        blk_req([blk_hdr("in", 0)], [512 * 8, 1]),
        blk_req([blk_hdr("get_id", 0)], [30, 1]),
    ])
    seeds["image_read_only"] = blk_dev(flags=5, capacity=image) + b"".join([
        blk_req([blk_hdr("out", 3), bytes(512)], [1]),
        blk_req([blk_hdr("write_zeroes", 0), blk_seg(2, 3)], [1]),
        blk_req([blk_hdr("in", 3)], [512, 1]),
    ])
    return seeds


# --- fuzz_vhost_msg -------------------------------------------------------

# src/transport/vhost_msg.h
VU = {
    "GET_FEATURES": 1, "SET_FEATURES": 2, "SET_OWNER": 3, "SET_MEM_TABLE": 5,
    "SET_VRING_NUM": 8, "SET_VRING_ADDR": 9, "SET_VRING_BASE": 10, "GET_VRING_BASE": 11,
    "SET_VRING_KICK": 12, "SET_VRING_CALL": 13, "GET_PROTOCOL_FEATURES": 15,
    "SET_PROTOCOL_FEATURES": 16, "GET_QUEUE_NUM": 17, "SET_VRING_ENABLE": 18,
    "SET_BACKEND_REQ_FD": 21, "GET_CONFIG": 24, "RESET_DEVICE": 34, "GET_MAX_MEM_SLOTS": 36,
    "ADD_MEM_REG": 37, "REM_MEM_REG": 38, "SET_STATUS": 39, "GET_STATUS": 40,
    "SET_LOG_BASE": 6, "SET_LOG_FD": 7, "GET_INFLIGHT_FD": 31, "SET_INFLIGHT_FD": 32,
}
VU_NEED_REPLY, VU_REPLY = 1, 2
VU_FD_MEMFD, VU_FD_EVENTFD, VU_FD_GUEST, VU_FD_PIPE = 0, 1, 2, 3
VU_PF_ALL = (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 16)
VU_RING_FEATURES = (1 << 32) | (1 << 29) | (1 << 28) | (1 << 30)  # bit 30: protocol features
VU_GPA, VU_UVA = 0x10000, 0x7F0000000000


def vu_fd(kind):
    """An fd kind, or (VU_FD_MEMFD, pages)."""
    return u8(kind[0]) + u8(kind[1]) if isinstance(kind, tuple) else u8(kind)


def vu_req(name, payload=b"", flags=0, fds=()):
    """fuzz_vhost_msg.c: request, flags, size, fds (kinds), payload."""
    return (u8(0) + u8(VU[name]) + u8(flags) + u16(len(payload)) + u8(len(fds))
            + b"".join(vu_fd(k) for k in fds) + payload)


def vu_state(index, num):
    return u32(index) + u32(num)


def vu_region(gpa, size, uva, offset=0):
    return u64(gpa) + u64(size) + u64(uva) + u64(offset)


def vu_guest():
    """A split ring of 4 at offsets 0 (desc), 0x100 (avail), 0x200 (used):
    one writable buffer made available."""
    g = Guest(VU_GPA)
    g.desc(VU_GPA, 0, VU_GPA + 0x1000, 64, DESC_F_WRITE)
    g.avail(VU_GPA + 0x100, 4, [0])
    g.put(VU_GPA + 0x200, bytes(8 + 8 * 4))
    return bytes(g.mem)


def vu_realize():
    """QEMU 7.2 vhost-user-blk realize."""
    return b"".join([
        vu_req("GET_FEATURES"), vu_req("GET_PROTOCOL_FEATURES"),
        vu_req("SET_PROTOCOL_FEATURES", u64(VU_PF_ALL)), vu_req("GET_QUEUE_NUM"),
        vu_req("GET_MAX_MEM_SLOTS"),
        vu_req("SET_BACKEND_REQ_FD", flags=VU_NEED_REPLY, fds=[VU_FD_PIPE]),
        vu_req("SET_OWNER"), vu_req("GET_CONFIG", u32(0) + u32(0) + u32(0)),
    ])


def vu_start(mem):
    """QEMU 7.2 vhost_dev_start with one ring, then a kick and a stop."""
    ring = [
        vu_req("SET_VRING_NUM", vu_state(0, 4)), vu_req("SET_VRING_BASE", vu_state(0, 0)),
        vu_req("SET_VRING_ADDR", u32(0) + u32(0) + u64(VU_UVA) + u64(VU_UVA + 0x200)
               + u64(VU_UVA + 0x100) + u64(0)),
        vu_req("SET_VRING_KICK", u64(0), fds=[VU_FD_EVENTFD]),
        vu_req("SET_VRING_CALL", u64(0), fds=[VU_FD_EVENTFD]),
        vu_req("SET_VRING_ENABLE", vu_state(0, 1)),
    ]
    return b"".join([
        vu_req("SET_FEATURES", u64(VU_RING_FEATURES)), vu_req("GET_STATUS"),
        vu_req("SET_STATUS", u64(0xB), flags=VU_NEED_REPLY),
        mem, *ring,
        vu_req("GET_STATUS"), vu_req("SET_STATUS", u64(0xF), flags=VU_NEED_REPLY),
        u8(6) + u8(0),  # the driver kicks ring 0
        vu_req("SET_STATUS", u64(0), flags=VU_NEED_REPLY),
        vu_req("SET_VRING_ENABLE", vu_state(0, 0)), vu_req("GET_VRING_BASE", vu_state(0, 0)),
    ])


def vu_seeds():
    guest = vu_guest()
    head = u16(len(guest)) + guest
    region = vu_region(VU_GPA, 65536, VU_UVA)
    add_mem = vu_req("ADD_MEM_REG", u64(0) + region, flags=VU_NEED_REPLY, fds=[VU_FD_GUEST])
    mem_table = vu_req("SET_MEM_TABLE", u32(1) + u32(0) + region, flags=VU_NEED_REPLY,
                       fds=[VU_FD_GUEST])
    seeds = {}
    seeds["qemu_realize_start_add_mem_reg"] = head + vu_realize() + vu_start(add_mem)
    seeds["qemu_realize_start_mem_table"] = head + vu_realize() + vu_start(mem_table)
    # Restart at the returned index after a guest reset, then RESET_DEVICE.
    seeds["qemu_restart"] = (head + vu_realize() + vu_start(add_mem)
                             + vu_start(b"") + vu_req("RESET_DEVICE"))
    # Hostile: a region larger than its file, two fds for one region,
    # an unknown request with a reply wanted, a REPLY flag.
    seeds["hostile"] = head + b"".join([
        vu_req("SET_MEM_TABLE", u32(1) + u32(0) + vu_region(VU_GPA, 1 << 20, VU_UVA),
               flags=VU_NEED_REPLY, fds=[(VU_FD_MEMFD, 1)]),
        vu_req("SET_MEM_TABLE", u32(1) + u32(0) + region, fds=[VU_FD_GUEST, VU_FD_EVENTFD]),
        u8(0) + u8(99) + u8(VU_NEED_REPLY) + u16(0) + u8(0),
        vu_req("GET_FEATURES", flags=VU_REPLY),
    ])
    # Live migration: a log (one page covers 128 MiB of guest addresses),
    # LOG_ALL turned on with the ring running, the used ring logged, the log
    # replaced, then hostile logs (past the fd, wrapping, no fd, two fds)
    # and a log address that wraps.
    log_addr = (u32(0) + u32(1) + u64(VU_UVA) + u64(VU_UVA + 0x200) + u64(VU_UVA + 0x100)
                + u64(VU_GPA + 0x200))
    seeds["migration_dirty_log"] = head + vu_realize().replace(
        u64(VU_PF_ALL), u64(VU_PF_ALL | 1 << 1)) + b"".join([
        vu_req("SET_FEATURES", u64(VU_RING_FEATURES)),
        add_mem,
        vu_req("SET_VRING_NUM", vu_state(0, 4)), vu_req("SET_VRING_BASE", vu_state(0, 0)),
        vu_req("SET_VRING_ADDR", log_addr[:4] + u32(0) + log_addr[8:]),
        vu_req("SET_VRING_KICK", u64(0), fds=[VU_FD_EVENTFD]),
        vu_req("SET_VRING_CALL", u64(0), fds=[VU_FD_EVENTFD]),
        vu_req("SET_VRING_ENABLE", vu_state(0, 1)),
        vu_req("SET_STATUS", u64(0xF), flags=VU_NEED_REPLY),
        vu_req("SET_LOG_BASE", u64(4096) + u64(0), fds=[(VU_FD_MEMFD, 1)]),
        vu_req("SET_FEATURES", u64(VU_RING_FEATURES | 1 << 26), flags=VU_NEED_REPLY),
        vu_req("SET_VRING_ADDR", log_addr, flags=VU_NEED_REPLY),
        u8(6) + u8(0),  # the driver kicks ring 0
        vu_req("SET_LOG_BASE", u64(4096) + u64(0), fds=[(VU_FD_MEMFD, 2)]),
        vu_req("SET_LOG_FD", fds=[VU_FD_EVENTFD]),
        vu_req("SET_LOG_BASE", u64(8192) + u64(4096), fds=[(VU_FD_MEMFD, 1)]),
        vu_req("SET_LOG_BASE", u64((1 << 64) - 1) + u64(16), fds=[(VU_FD_MEMFD, 1)]),
        vu_req("SET_LOG_BASE", u64(4096) + u64(0)),
        vu_req("SET_LOG_BASE", u64(4096) + u64(0), fds=[(VU_FD_MEMFD, 1), VU_FD_EVENTFD]),
        vu_req("SET_VRING_ADDR", log_addr[:-8] + u64((1 << 64) - 8), flags=VU_NEED_REPLY),
        vu_req("SET_FEATURES", u64(VU_RING_FEATURES), flags=VU_NEED_REPLY),
        vu_req("SET_STATUS", u64(0), flags=VU_NEED_REPLY),
        vu_req("GET_VRING_BASE", vu_state(0, 0)),
    ])
    seeds.update(vu_inflight_seeds(region, add_mem))
    return seeds


# Inflight tracking (INFLIGHT_SHMFD, protocol feature bit 12): the payload
# of GET_INFLIGHT_FD and SET_INFLIGHT_FD (vhost_msg.h struct
# vhost_user_inflight, 24 bytes with its tail padding), and a split area as
# vhost-user.rst lays it out: per queue a 16-byte header (features, version,
# desc_num, last_batch_head, used_idx), 16 bytes per head (inflight, 5 bytes
# padding, next, counter), rounded up to 64 bytes.
VU_PF_INFLIGHT = 1 << 12
# INDIRECT_DESC and EVENT_IDX, as devq_inflight.c ring_features() records them
VU_AREA_FEATURES = (1 << 28) | (1 << 29)
VU_AREA_AT = 0x2000  # where an area in the guest memfd lies (GPA VU_GPA + 0x2000)


def vu_inflight(size=0, offset=0, queues=1, queue_size=4):
    return u64(size) + u64(offset) + u16(queues) + u16(queue_size) + u32(0)


def vu_split_area(num, used_idx=0, marked=(), version=1, features=VU_AREA_FEATURES):
    """marked: (head, counter) pairs with inflight = 1."""
    area = bytearray(u64(features) + u16(version) + u16(num) + u16(0) + u16(used_idx)
                     + bytes(16 * num))
    for head, counter in marked:
        area[16 + 16 * head:32 + 16 * head] = u8(1) + bytes(5) + u16(0) + u64(counter)
    return bytes(area) + bytes(-len(area) % 64)


def vu_inflight_seeds(region, add_mem):
    seeds = {}
    realize = vu_realize().replace(u64(VU_PF_ALL), u64(VU_PF_ALL | VU_PF_INFLIGHT))
    features = vu_req("SET_FEATURES", u64(VU_RING_FEATURES))
    part = 128  # 16 + 16 * 4, rounded to 64
    # QEMU 7.2 vhost_dev_prepare_inflight: features, GET_INFLIGHT_FD, then
    # SET_INFLIGHT_FD with the file (here a fresh memfd of one page) before
    # each start; the ring runs in it, is stopped and started again.
    set_fresh = vu_req("SET_INFLIGHT_FD", vu_inflight(part, 0), flags=VU_NEED_REPLY,
                       fds=[(VU_FD_MEMFD, 1)])
    g = vu_guest()
    seeds["inflight_get_set_start_restart"] = (u16(len(g)) + g + realize + features
        + vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 4)) + set_fresh + vu_start(add_mem)
        + features + set_fresh + vu_start(b""))
    # A restart from the area a dead backend left, in the guest memfd so the
    # input's bytes are the area: head 0 (made available by vu_guest())
    # marked in flight, resubmitted at the start; then a packed-layout area
    # and one of another size, both started afresh.
    g = Guest(VU_GPA)
    g.mem.extend(vu_guest())
    g.put(VU_GPA + VU_AREA_AT, vu_split_area(4, marked=[(0, 7)]))
    g.put(VU_GPA + VU_AREA_AT + part, vu_split_area(4, features=VU_AREA_FEATURES | 1 << 34))
    g.put(VU_GPA + VU_AREA_AT + 2 * part, vu_split_area(8))
    set_guest = lambda off: vu_req("SET_INFLIGHT_FD", vu_inflight(part, VU_AREA_AT + off),
                                   flags=VU_NEED_REPLY, fds=[VU_FD_GUEST])
    seeds["inflight_resume_from_dead_backend"] = (u16(len(g.mem)) + bytes(g.mem) + realize
        + features + set_guest(0) + vu_start(add_mem)
        + features + set_guest(part) + vu_start(b"")
        + features + set_guest(2 * part) + vu_start(b""))
    # An area of garbage (with a header that fits, and without), then a
    # fitting area marking more requests than the driver made available.
    g = Guest(VU_GPA)
    g.mem.extend(vu_guest())
    noise = bytes((i * 167 + 13) % 251 for i in range(part))
    g.put(VU_GPA + VU_AREA_AT, noise)
    g.put(VU_GPA + VU_AREA_AT + part, vu_split_area(4)[:16] + noise[16:])
    g.put(VU_GPA + VU_AREA_AT + 2 * part, vu_split_area(4, marked=[(1, 1), (2, 2), (3, 3)]))
    seeds["inflight_garbage_area"] = (u16(len(g.mem)) + bytes(g.mem) + realize
        + features + set_guest(0) + vu_start(add_mem)
        + features + set_guest(part) + vu_start(b"")
        + features + set_guest(2 * part) + vu_start(b""))
    # Hostile: before features, shapes the device does not have (one ring
    # of up to 64), areas short of their parts, past their file, wrapping
    # 2^64, fds that are no file, none or two, payloads of 20 and 28 bytes,
    # SET_INFLIGHT_FD while the ring runs; and without INFLIGHT_SHMFD.
    g = vu_guest()
    bad = lambda payload, fds=((VU_FD_MEMFD, 1),): vu_req("SET_INFLIGHT_FD", payload,
                                                          flags=VU_NEED_REPLY, fds=list(fds))
    ring_start = vu_start(add_mem)
    # The ring runs from SET_STATUS(0xF) on: the hostile requests go in
    # before the kick and the stop that end vu_start().
    tail = b"".join([u8(6) + u8(0), vu_req("SET_STATUS", u64(0), flags=VU_NEED_REPLY),
                     vu_req("SET_VRING_ENABLE", vu_state(0, 0)),
                     vu_req("GET_VRING_BASE", vu_state(0, 0))])
    assert ring_start.endswith(tail)
    running = len(ring_start) - len(tail)
    seeds["inflight_hostile"] = u16(len(g)) + g + realize + b"".join([
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 4)),
        bad(vu_inflight(part, 0)),
        features,
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 0, 4)),
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 2, 4)),
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 0)),
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 32769)),
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 128)),
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 4)[:20]),
        bad(vu_inflight(part, 0, 2, 4)),
        bad(vu_inflight(part, 0, 1, 0)),
        bad(vu_inflight(part, 0, 1, 128)),
        bad(vu_inflight(part - 1, 0)),
        bad(vu_inflight(part, 4096 - 64)),
        bad(vu_inflight(part, (1 << 64) - 100)),
        bad(vu_inflight((1 << 64) - 1, 4096)),
        bad(vu_inflight(part, 0), fds=[VU_FD_PIPE]),
        bad(vu_inflight(part, 0), fds=[VU_FD_EVENTFD]),
        bad(vu_inflight(part, 0), fds=[]),
        bad(vu_inflight(part, 0), fds=[(VU_FD_MEMFD, 1), (VU_FD_MEMFD, 1)]),
        bad(vu_inflight(part, 0)[:20]),
        bad(vu_inflight(part, 0) + bytes(4)),
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 4)),
        ring_start[:running],
        bad(vu_inflight(part, 0)),
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 4)),
        ring_start[running:],
        u8(7),  # the front-end disconnects
        vu_realize(),
        features,
        vu_req("GET_INFLIGHT_FD", vu_inflight(0, 0, 1, 4)),
        bad(vu_inflight(part, 0)),
    ])
    return seeds


# --- fuzz_net_hdr ---------------------------------------------------------

NET_F = {"CSUM": 0, "MAC": 5, "HOST_TSO4": 11, "HOST_TSO6": 12, "HOST_ECN": 13,
         "MRG_RXBUF": 15, "STATUS": 16}
NET_SINK, NET_PACKED, NET_IN_ORDER, NET_INDIRECT, NET_EVENT_IDX = 1, 2, 4, 8, 16
NET_RX_FUZZED = 48


def net_hdr(flags=0, gso=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0, num_buffers=0):
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, csum_start, csum_offset,
                       num_buffers)


def net_frame(length, hdr=None, parts=1, cuts=(), short=False, huge=False):
    """One tx chain as fuzz_net_hdr.c reads it."""
    shape = (parts - 1) | (8 if short else 0) | (16 if huge else 0)
    data = u8(shape) + u16(length)
    if short:
        return data + u8(length)
    eth = bytes([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 0x02, 0, 0, 0x11, 0x22, 0x33, 0x08, 0x00])
    data += (hdr if hdr is not None else net_hdr()) + eth
    return data + b"".join(u16(c) for c in cuts)


def net_seed(mode, features, frames, rx=None):
    rx = rx if rx is not None else [200] * NET_RX_FUZZED
    data = u8(mode) + u32(sum(1 << NET_F[f] for f in features))
    if not mode & NET_SINK:
        data += bytes(rx)
    return data + u8(len(frames)) + b"".join(frames)


def net_seeds():
    base = ["MAC", "STATUS", "MRG_RXBUF"]
    offl = base + ["CSUM", "HOST_TSO4", "HOST_TSO6", "HOST_ECN"]
    return {
        "reflect_split": net_seed(0, base, [net_frame(60), net_frame(1500, parts=3, cuts=(5, 700))]),
        "reflect_mrg_short_rx": net_seed(NET_EVENT_IDX, base, [net_frame(2000), net_frame(400)],
                                         rx=[3, 40, 10, 100] * 12),
        "reflect_packed_no_mrg": net_seed(NET_PACKED | NET_IN_ORDER | NET_INDIRECT, ["MAC"],
                                          [net_frame(1000), net_frame(100, parts=5, cuts=(1, 6, 11, 13)),
                                           net_frame(5, short=True)],
                                          rx=[20, 100, 200, 31] * 12),
        "reflect_bad_headers": net_seed(0, ["MAC"], [
            net_frame(100, net_hdr(flags=1, csum_start=34, csum_offset=16)),
            net_frame(100, net_hdr(gso=1, gso_size=50)),
            net_frame(100, net_hdr(num_buffers=1)),
            net_frame(100, net_hdr(flags=0x80)),
            net_frame(0)]),
        "sink_offloads": net_seed(NET_SINK, offl, [
            net_frame(2000, net_hdr(flags=1, gso=1, gso_size=1448, csum_start=34, csum_offset=16)),
            net_frame(2000, net_hdr(flags=1, gso=4 | 0x80, gso_size=1428, csum_start=54,
                                    csum_offset=16)),
            net_frame(100, net_hdr(flags=1, csum_start=34, csum_offset=65)),
            net_frame(100, net_hdr(gso=1, gso_size=0, flags=1, csum_start=34, csum_offset=16)),
            net_frame(100, net_hdr(gso=3, gso_size=50))]),
        "reflect_mrg_eight_frames": net_seed(NET_IN_ORDER, base, [
            net_frame(60 + 250 * i, net_hdr(num_buffers=i), parts=8,
                      cuts=tuple(range(3, 3 + 7 * (9 + i), 9 + i)))
            for i in range(8)], rx=[b % 256 for b in range(7, 7 + 48 * 37, 37)]),
        "sink_huge": net_seed(NET_SINK | NET_PACKED, base, [net_frame(1, huge=True),
                                                            net_frame(2, huge=True, parts=2, cuts=(30000,))]),
    }


# --- fuzz_devq_inflight ---------------------------------------------------
# flags (0x01 packed, 0x02 indirect), crash point (1-5, 0 never), crash at
# its Nth time - 1, byte flips {u16 offset, u8 xor}, then steps: bits 0-1
# 0 add, 1 pop, 2 push what is held, 3 take what is used; bits 2-7 how many - 1.

def ifl_steps():
    add = lambda n: 0 | (n - 1) << 2
    pop = lambda n: 1 | (n - 1) << 2
    return bytes([add(4), pop(3), 2, 3, add(4), pop(2), pop(2), 2, 3] * 6)


def inflight_seeds():
    seeds = {}
    for flags, name in ((0, "split"), (1, "packed"), (2, "split-indirect"),
                        (3, "packed-indirect")):
        seeds[f"{name}-no-crash"] = bytes([flags, 0, 0, 0]) + ifl_steps()
        for point in range(1, 6):
            seeds[f"{name}-crash{point}"] = bytes([flags, point, 3, 0]) + ifl_steps()
        # The version byte and a state byte flipped after the death.
        seeds[f"{name}-crash2-spoiled"] = (bytes([flags, 2, 2, 2]) + struct.pack("<HB", 8, 0x40)
                                           + struct.pack("<HB", 16 + 16 * 3, 0x03) + ifl_steps())
    return seeds


def main():
    for target, seeds in (("fuzz_devq_split", devq_seeds()),
                          ("fuzz_devq_packed", devq_packed_seeds()),
                          ("fuzz_drvq_split", drvq_seeds()),
                          ("fuzz_memory", mem_seeds()),
                          ("fuzz_blk_req", blk_seeds()),
                          ("fuzz_vhost_msg", vu_seeds()),
                          ("fuzz_net_hdr", net_seeds()),
                          ("fuzz_devq_inflight", inflight_seeds())):
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        # Generated seeds are rewritten; regression-* files are inputs a
        # fuzzer once crashed on, kept by hand, and stay.
        for old in os.listdir(d):
            if not old.startswith("regression-"):
                os.remove(os.path.join(d, old))
        for name, data in sorted(seeds.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
