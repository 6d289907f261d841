#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Interop: DPDK 22.11's testpmd as the vhost-user front-end (net_virtio_user,
a virtio-net driver nobody here wrote) of `uvirtio net`, split and packed
rings (packed_vq=0, 1).

txonly   `uvirtio net --backend=tap` on a tap in a network namespace of the
         test's own; testpmd sends for a while (--forward-mode=txonly). Every
         frame testpmd counts as sent (TX-packets of `stop`) must be written
         into the tap: the tap's rx_packets (frames written into its fd)
         must equal it, and so must the backend's own count.
rxonly   the same, testpmd --forward-mode=rxonly; the test sends N frames on
         the tap from inside the namespace (AF_PACKET): the kernel queues them
         to the tap's fd, the backend reads them (the tap's tx_packets) and
         hands them to testpmd, whose RX-packets must be exactly N. The test
         sends in batches no larger than the tap's queue and waits for the
         backend to read each batch, so the tap never drops one (its
         tx_dropped must stay 0).
io       `uvirtio net --backend=reflect`, testpmd --forward-mode=io started
         with one burst (`start tx_first`): frames go round between the two.

txonly and rxonly each run twice on one backend process: a second testpmd
connects after the first quit. --queues=2 gives both sides two queue pairs.

No traffic leaves the namespace: the tap has no address, IPv6 is off on it
(no autoconf frame), and the frames the test sends on it go to its reader
(the backend) only: UDP to the discard port of 198.18.0.2 (RFC 2544's
benchmark range), each from its own source port so that a multi-queue tap
spreads them over its queues.

--peer=dpdk runs txonly and rxonly with a second testpmd as the backend
(net_vhost), which proves this harness (the driving of testpmd over its
stdin, the parsing of its counters) against DPDK alone. --self-test checks
the parsers on canned output.

TAP on stdout. Exit 0 pass, 1 fail; a missing testpmd, or not being root
(network namespaces), is a skip, and with CI=true a missing testpmd fails
(scripts/install-deps.sh installs dpdk-dev).

Usage: net_dpdk.py --uvirtio EXE [--scenario txonly,rxonly,io] [--ring split,packed]
                   [--queues N] [--frames N] [--keep]
       net_dpdk.py --peer=dpdk
       net_dpdk.py --self-test
"""
import argparse
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import backend_util  # noqa: E402

TESTPMD = os.environ.get("UVIRTIO_TESTPMD") or "dpdk-testpmd"
PROMPT = re.compile(r"testpmd> ")
# How long testpmd forwards between `start` and `stop` (not asserted on).
FORWARD_SECONDS = 3
# The frames rxonly sends, and the largest batch sent before waiting for the
# backend to read it: well under the tap's queue, txqueuelen frames (1000 for
# `ip tuntap add`; a reader that holds still gets the first 1000 of 2000, the
# rest count as tx_dropped). The other way there is no queue to overflow: a
# write into the tap's fd is counted in its rx_packets as it is made.
RX_FRAMES = 1000
RX_BATCH = 100
# Waits on a condition (a count to reach a value, a line to appear): the
# longest a test waits before it reports what it saw. Never an assertion.
WAIT = 60

results = []


class Interrupted(BaseException):
    """SIGTERM/SIGINT (meson's timeout): unwinds so every process is killed
    and the namespace deleted."""


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def tap(ok, name, detail=None, skip=None):
    results.append(ok)
    line = f"{'ok' if ok else 'not ok'} {len(results)} - {name}"
    if skip:
        line += f" # SKIP {skip}"
    print(line, flush=True)
    # The detail says what was seen: printed for a failure only.
    for d in ("" if ok else detail or "").splitlines():
        print(f"#   {d}", flush=True)


# --- what testpmd and the backend print --------------------------------------

FWD_STATS = re.compile(
    r"Accumulated forward statistics for all ports\+*\s*\n"
    r"\s*RX-packets:\s*(\d+)\s+RX-dropped:\s*(\d+)\s+RX-total:\s*(\d+)\s*\n"
    r"\s*TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)\s+TX-total:\s*(\d+)")
PORT_STATS = re.compile(
    r"NIC statistics for port 0\s+#+\s*\n"
    r"\s*RX-packets:\s*(\d+).*\n(?:.*\n)*?"
    r"\s*TX-packets:\s*(\d+)")
STREAM = re.compile(
    r"Forward Stats for RX Port=\s*0/Queue=\s*(\d+) -> TX Port=\s*0/Queue=\s*(\d+) -+\s*\n"
    r"\s*RX-packets:\s*(\d+)\s+TX-packets:\s*(\d+)")
COUNTERS = re.compile(r"^uvirtio net: counters\b(.*)$", re.M)


def parse_forward_stats(text):
    """The totals of `stop`'s "Accumulated forward statistics" block: a dict
    of rx, rx_dropped, tx, tx_dropped; None without exactly one block."""
    blocks = FWD_STATS.findall(text)
    if len(blocks) != 1:
        return None
    rx, rxd, _, tx, txd, _ = (int(x) for x in blocks[0])
    return {"rx": rx, "rx_dropped": rxd, "tx": tx, "tx_dropped": txd}


def parse_streams(text, queues):
    """Per queue, (RX-packets, TX-packets) of `stop`'s stream blocks (testpmd
    prints them with more than one stream, and leaves out a stream that
    moved nothing): a list of @queues pairs."""
    got = [[0, 0] for _ in range(queues)]
    for rxq, txq, rx, tx in STREAM.findall(text):
        if int(rxq) < queues:
            got[int(rxq)][0] += int(rx)
        if int(txq) < queues:
            got[int(txq)][1] += int(tx)
    return [tuple(g) for g in got]


def parse_port_stats(text):
    """(RX-packets, TX-packets) of `show port stats 0`; None if absent."""
    m = PORT_STATS.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_counters(text):
    """The last "uvirtio net: counters" line of @text as a dict of every
    NAME=NUMBER (or NAME: NUMBER) in it; None without such a line."""
    lines = COUNTERS.findall(text)
    if not lines:
        return None
    return {k: int(v) for k, v in re.findall(r"([A-Za-z_][\w.\-]*)\s*[=:]\s*(\d+)", lines[-1])}


# --- testpmd over its stdin --------------------------------------------------

class Testpmd:
    """dpdk-testpmd in interactive mode, driven over a pipe on its stdin
    (it exits when stdin ends, so the pipe stays open until `quit`)."""

    def __init__(self, name, cores, prefix, vdev, mode, log, queues=1):
        self.name = name
        self.prefix = prefix
        self.queues = queues
        # stdbuf: testpmd's printf output to a pipe would wait in stdio's
        # buffer until exit, after the prompt that follows it.
        cmd = ["stdbuf", "-o0", TESTPMD, *cores, "--no-pci", "--no-huge", "-m", "1024",
               f"--file-prefix={prefix}", f"--vdev={vdev}", "--", "-i",
               "--total-num-mbufs=16384", f"--forward-mode={mode}"]
        if queues > 1:
            cmd += [f"--rxq={queues}", f"--txq={queues}"]
        self.out = backend_util.Output(cmd, stdin=subprocess.PIPE, log=log)

    def wait_ready(self):
        """True once testpmd prompts (its port configured and started)."""
        return self.out.wait_for(PROMPT, 0, WAIT) is not None

    def text(self):
        return self.out.text()

    def cmd(self, line, seconds=WAIT):
        """Send @line, wait for the next prompt: the output in between, or
        None (testpmd exited, or no prompt within @seconds)."""
        start = len(self.out.text())
        try:
            self.out.proc.stdin.write((line + "\n").encode())
            self.out.proc.stdin.flush()
        except OSError:
            return None
        m = self.out.wait_for(PROMPT, start, seconds)
        return self.out.text()[start:m.start()] if m else None

    def quit(self):
        """`quit`, then its exit status (SIGKILL if it does not exit)."""
        try:
            self.out.proc.stdin.write(b"quit\n")
            self.out.proc.stdin.close()
        except OSError:
            pass
        try:
            self.out.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            pass
        return self.close()

    def close(self):
        rc = self.out.stop(grace=5)
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        return rc

    def port_stats(self):
        out = self.cmd("show port stats 0")
        return parse_port_stats(out or "")


def wait_count(read, want, seconds=WAIT):
    """Poll read() until it returns @want, or it has not changed for 10 s, or
    @seconds pass: the last value read. A count still moving (frames in a
    ring) is waited for; the comparison is the caller's."""
    deadline = time.monotonic() + seconds
    last, since = read(), time.monotonic()
    while last != want and time.monotonic() < deadline and time.monotonic() - since < 10:
        time.sleep(0.2)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


# --- the frames rxonly sends, from inside the namespace ----------------------

def inject(dev, count, batch):
    """Runs inside the namespace (`ip netns exec NS net_dpdk.py --inject`):
    send @count Ethernet frames on @dev with an AF_PACKET socket, in batches
    of @batch, waiting after each until the tap's reader (the backend) has
    read all sent so far (tx_packets), at most WAIT s in all. Prints
    "sent N" and exits 0, or 1 when the reader fell behind."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    eth = bytes.fromhex("020000000001" "020000000002" "0800")

    def frame(n):
        payload = b"uvirtio-net-dpdk" + struct.pack("!I", n)
        udp = struct.pack("!HHHH", 1024 + n % 60000, 9, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
        words = sum(struct.unpack("!10H", ip))
        words = (words & 0xFFFF) + (words >> 16)
        csum = ~((words & 0xFFFF) + (words >> 16)) & 0xFFFF
        return eth + ip[:10] + struct.pack("!H", csum) + ip[12:] + udp

    def stat(name):
        with open(f"/sys/class/net/{dev}/statistics/{name}") as f:
            return int(f.read())

    base = stat("tx_packets")
    deadline = time.monotonic() + WAIT
    sent = 0
    while sent < count:
        for _ in range(min(batch, count - sent)):
            s.send(frame(sent))
            sent += 1
        while stat("tx_packets") - base < sent:
            if time.monotonic() > deadline or stat("tx_dropped"):
                print(f"sent {sent}, the tap's reader read {stat('tx_packets') - base}, "
                      f"tx_dropped {stat('tx_dropped')}", flush=True)
                return 1
            time.sleep(0.01)
    print(f"sent {sent}", flush=True)
    return 0


# --- the backends ------------------------------------------------------------

class UvirtioNet:
    """`uvirtio net` in the namespace (its tap backend) or beside it (reflect)."""

    def __init__(self, args, sock, log, backend, ns=None, dev=None):
        cmd = [args.uvirtio, "net", f"--socket-path={sock}", f"--backend={backend}",
               f"--queues={args.queues}"]
        if dev:
            cmd.append(f"--tap={dev}")
        if ns:
            cmd = ["ip", "netns", "exec", ns.name] + cmd
        self.out = backend_util.Output(cmd, log=log)

    def wait_serving(self):
        """True once it prints that it serves (listens on its socket)."""
        return self.out.wait_for(re.compile(r"uvirtio net: serving"), 0, WAIT) is not None

    def counters(self):
        """SIGUSR1, then the counters line it prints: a dict, or None."""
        start = len(self.out.text())
        if self.out.proc.poll() is not None:
            return None
        self.out.proc.send_signal(signal.SIGUSR1)
        m = self.out.wait_for(COUNTERS, start, WAIT)
        return parse_counters(self.out.text()[m.start():m.end()]) if m else None

    def stop(self):
        """SIGTERM: (exit status, output, counters of its exit line)."""
        rc = self.out.stop(grace=20)
        text = self.out.text()
        return rc, text, parse_counters(text)


# The backend's counters (struct uvirtio_net_dev_stats): frames it took
# from the driver's tx queue and passed on, frames it gave the driver on its
# rx queue. Every other counter counts a frame dropped or refused (by reason).
FROM_DRIVER = "tx_packets"
TO_DRIVER = "rx_packets"


def counter(c, name):
    """Counter @name of counters dict @c, or None."""
    return c.get(name) if c else None


def delta(c0, c, name):
    """How much counter @name grew from @c0 to @c, or None."""
    a, b = counter(c0, name), counter(c, name)
    return None if a is None or b is None else b - a


def drops(c0, c):
    """Every drop or error counter that grew from @c0 to @c: {name: by}
    (None when a counters line is missing)."""
    if c0 is None or c is None:
        return None
    return {k: v - c0.get(k, 0) for k, v in c.items()
            if not k.endswith(("_packets", "_bytes")) and v != c0.get(k, 0)}


def finish_backend(title, backend, want_from_driver=None, want_to_driver=None):
    rc, text, c = backend.stop()
    clean = rc == 0 and "Sanitizer" not in text and "runtime error" not in text
    tap(clean, f"{title}: uvirtio net exits 0 on SIGTERM with no sanitizer report",
        f"exit {rc}\n{text[-3000:]}")
    if want_from_driver is None and want_to_driver is None:
        return
    got_from, got_to = counter(c, FROM_DRIVER), counter(c, TO_DRIVER)
    ok = c is not None and (want_from_driver is None or got_from == want_from_driver) and \
        (want_to_driver is None or got_to == want_to_driver)
    tap(ok, f"{title}: the counters uvirtio net prints at exit agree "
        f"(from the driver {want_from_driver}, to the driver {want_to_driver})",
        f"counters {c} (from the driver {got_from}, to the driver {got_to})\n"
        f"{text[-2000:]}")


def unique(tag):
    return f"uvn{os.getpid()}{tag}"


def testpmd_vdev(sock, packed, queues):
    return f"net_virtio_user0,path={sock},queues={queues},packed_vq={packed},mrg_rxbuf=1"


def forward(tp, seconds, first="start"):
    """`start` (or `start tx_first`), forward @seconds, `stop`: the forward
    totals, with "queues" per queue (RX, TX), or None."""
    if tp.cmd(first) is None:
        return None
    time.sleep(seconds)
    return stop_stats(tp)


def stop_stats(tp):
    """`stop`: its totals, with "queues" per queue (RX, TX), or None."""
    out = tp.cmd("stop") or ""
    st = parse_forward_stats(out)
    if st is not None:
        st["queues"] = parse_streams(out, tp.queues)
    return st


def per_queue(st, i):
    """What a title adds with more than one queue: each queue's RX (@i 0) or
    TX (@i 1) count."""
    qs = st["queues"]
    return f" (per queue {[q[i] for q in qs]})" if len(qs) > 1 else ""


def scenario_tap(args, tmp, mode, packed):
    """txonly or rxonly against `uvirtio net --backend=tap` in a namespace:
    two testpmd connections one after the other to the same backend process
    (the second finds the device as the first left it, reset)."""
    ring = "packed" if packed else "split"
    title = f"{mode} {ring}" + (f" {args.queues} queues" if args.queues > 1 else "")
    dev = f"uvt{os.getpid() % 100000}"
    backend = ns = None
    run = {"tp": None}
    log = open(os.path.join(tmp, f"{mode}-{ring}.log"), "w+")
    try:
        ns = backend_util.Netns(unique(f"{mode[0]}{packed}"))
        ns.add_tap(dev)
        sock = os.path.join(tmp, f"{mode}-{ring}.sock")
        backend = UvirtioNet(args, sock, log, "tap", ns, dev)
        if not backend.wait_serving():
            tap(False, f"{title}: uvirtio net --backend=tap serves", backend.out.text()[-3000:])
            return
        want = None
        for conn in (1, 2):
            t = title if conn == 1 else f"{title}, second connection"
            want = tap_connection(args, t, mode, packed, ns, dev, backend, sock, log, run, conn)
            if want is None:
                return
        b, backend = backend, None
        finish_backend(title, b, *want)
    finally:
        # Processes first, the namespace last, whatever a report raises.
        try:
            if run["tp"]:
                run["tp"].close()
            if backend:
                finish_backend(title, backend)
        finally:
            if ns:
                ns.delete()
            log.close()


def tap_connection(args, title, mode, packed, ns, dev, backend, sock, log, run, conn):
    """One testpmd session on the tap backend (run["tp"] while it lives):
    (frames from the driver, frames to the driver) the backend counted in
    all, for its exit line; None when the scenario cannot go on."""
    rx0, tx0 = ns.stat(dev, "rx_packets"), ns.stat(dev, "tx_packets")
    c0 = backend.counters()
    tp = run["tp"] = Testpmd("testpmd", ["-l", "0-1"], unique(f"{mode[0]}{packed}{conn}"),
                             testpmd_vdev(sock, packed, args.queues), mode, log, args.queues)
    if not tp.wait_ready():
        tap(False, f"{title}: testpmd connects to uvirtio net and starts its port",
            f"testpmd:\n{tp.text()[-3000:]}\nbackend:\n{backend.out.text()[-3000:]}")
        return None
    if mode == "txonly":
        st = forward(tp, FORWARD_SECONDS)
        if st is None:
            tap(False, f"{title}: testpmd forwards and reports its totals", tp.text()[-3000:])
            return None
        # Frames testpmd put on the ring before `stop` may still be on
        # their way to the tap: wait for the count to settle.
        got = wait_count(lambda: ns.stat(dev, "rx_packets") - rx0, st["tx"])
        tap(st["tx"] > 0 and got == st["tx"],
            f"{title}: the tap received (rx_packets) every frame testpmd sent: "
            f"{got} of {st['tx']}{per_queue(st, 1)}",
            f"testpmd totals {st}; tap rx_packets grew by {got}\n"
            f"backend:\n{backend.out.text()[-2000:]}")
        c = backend.counters()
        sent, bad = delta(c0, c, FROM_DRIVER), drops(c0, c)
        tap(sent == st["tx"] and bad == {},
            f"{title}: uvirtio net counts {sent} frames from the driver, testpmd sent "
            f"{st['tx']}; no drop or error counted", f"counters before {c0}, after {c}\n"
            f"grew: {bad}")
    else:
        if tp.cmd("start") is None:
            tap(False, f"{title}: testpmd starts forwarding", tp.text()[-3000:])
            return None
        carrier = wait_count(lambda: int(ns.run("cat", f"/sys/class/net/{dev}/carrier",
                                                check=False).stdout or 0), 1)
        p = ns.run(sys.executable, os.path.abspath(__file__), "--inject", dev,
                   str(args.frames), check=False, timeout=WAIT + 30)
        tap(p.returncode == 0, f"{title}: {args.frames} frames sent on the tap, each read "
            "by the backend, none dropped", f"carrier {carrier}\n{p.stdout}{p.stderr}")
        # Frames the backend read may still be on their way to testpmd.
        seen = wait_count(lambda: (tp.port_stats() or (None, None))[0], args.frames)
        st = stop_stats(tp)
        if st is None:
            tap(False, f"{title}: testpmd reports its totals", tp.text()[-3000:])
            return None
        read = ns.stat(dev, "tx_packets") - tx0
        dropped = ns.stat(dev, "tx_dropped")
        tap(st["rx"] == args.frames,
            f"{title}: testpmd received every frame sent on the tap: {st['rx']} of "
            f"{args.frames}{per_queue(st, 0)}",
            f"testpmd totals {st}, port stats said {seen}; the backend read {read} from "
            f"the tap, tap tx_dropped {dropped}\nbackend:\n{backend.out.text()[-2000:]}")
        if args.queues > 1:
            each = [q[0] for q in st["queues"]]
            tap(all(each), f"{title}: the tap spread the frames over its queues and "
                f"every queue brought some to testpmd: {each}")
        tap(read == args.frames and dropped == 0,
            f"{title}: the tap queued exactly the test's frames (tx_packets {read}, "
            f"tx_dropped {dropped})")
        c = backend.counters()
        got, bad = delta(c0, c, TO_DRIVER), drops(c0, c)
        tap(got == args.frames and bad == {},
            f"{title}: uvirtio net counts {got} frames to the driver, {args.frames} sent; "
            "no drop or error counted", f"counters before {c0}, after {c}\ngrew: {bad}")
    rc = tp.quit()
    run["tp"] = None
    tap(rc == 0, f"{title}: testpmd quits (exit {rc})", tp.text()[-2000:])
    alive = backend.out.proc.poll() is None
    tap(alive, f"{title}: uvirtio net still serves after testpmd quit",
        backend.out.text()[-2000:])
    if not alive:
        return None
    return (counter(c, FROM_DRIVER) if mode == "txonly" else None,
            counter(c, TO_DRIVER) if mode == "rxonly" else None)


def scenario_io(args, tmp, packed):
    """io forwarding against `uvirtio net --backend=reflect`."""
    ring = "packed" if packed else "split"
    title = f"io {ring}" + (f" {args.queues} queues" if args.queues > 1 else "")
    backend = tp = None
    log = open(os.path.join(tmp, f"io-{ring}.log"), "w+")
    try:
        sock = os.path.join(tmp, f"io-{ring}.sock")
        backend = UvirtioNet(args, sock, log, "reflect")
        if not backend.wait_serving():
            tap(False, f"{title}: uvirtio net --backend=reflect serves", backend.out.text()[-3000:])
            return
        c0 = backend.counters()
        tp = Testpmd("testpmd", ["-l", "0-1"], unique(f"i{packed}"),
                     testpmd_vdev(sock, packed, args.queues), "io", log, args.queues)
        if not tp.wait_ready():
            tap(False, f"{title}: testpmd connects to uvirtio net and starts its port",
                f"testpmd:\n{tp.text()[-3000:]}\nbackend:\n{backend.out.text()[-3000:]}")
            return
        st = forward(tp, FORWARD_SECONDS, "start tx_first")
        if st is None:
            tap(False, f"{title}: testpmd forwards and reports its totals", tp.text()[-3000:])
            return
        # Frames testpmd put on the ring before `stop` may still be on their
        # way round: wait for the backend's count to settle.
        wait_count(lambda: delta(c0, backend.counters(), FROM_DRIVER), st["tx"])
        c = backend.counters()
        frm, to, bad = delta(c0, c, FROM_DRIVER), delta(c0, c, TO_DRIVER), drops(c0, c)
        # Every frame sent comes back (the reflector holds a frame until the
        # driver has an rx buffer for it), and every one received was sent
        # again (io), except those on the way when forwarding stopped:
        # RX <= reflected = taken from the driver = TX.
        ok = st["rx"] > 0 and frm == st["tx"] and to == frm and st["rx"] <= to and bad == {}
        tap(ok, f"{title}: frames go round: testpmd sent {st['tx']}{per_queue(st, 1)}, "
            f"received {st['rx']}; "
            f"uvirtio net took {frm}, reflected {to}",
            f"testpmd totals {st}; counters {c}, grew: {bad}\n"
            f"{backend.out.text()[-2000:]}")
        rc = tp.quit()
        tap(rc == 0, f"{title}: testpmd quits (exit {rc})", tp.text()[-2000:])
        tp = None
        b, backend = backend, None
        finish_backend(title, b)
    finally:
        if tp:
            tp.close()
        if backend:
            finish_backend(title, backend)
        log.close()


def scenario_dpdk_peer(args, tmp, mode, packed):
    """The harness against DPDK alone: testpmd's net_vhost as the backend."""
    ring = "packed" if packed else "split"
    title = f"dpdk peer {mode} {ring}" + (f" {args.queues} queues" if args.queues > 1 else "")
    sock = os.path.join(tmp, f"vhost-{mode}-{ring}.sock")
    log = open(os.path.join(tmp, f"vhost-{mode}-{ring}.log"), "w+")
    other = "rxonly" if mode == "txonly" else "txonly"
    vh = fe = None
    try:
        vh = Testpmd("vhost", ["--lcores=0@0,1@0"], unique(f"v{mode[0]}{packed}"),
                     f"net_vhost0,iface={sock},queues={args.queues},client=0", other, log,
                     args.queues)
        if not vh.wait_ready():
            tap(False, f"{title}: testpmd net_vhost starts", vh.text()[-3000:])
            return
        fe = Testpmd("virtio-user", ["--lcores=0@1,1@1"], unique(f"u{mode[0]}{packed}"),
                     testpmd_vdev(sock, packed, args.queues), mode, log, args.queues)
        if not fe.wait_ready():
            tap(False, f"{title}: testpmd net_virtio_user connects", fe.text()[-3000:])
            return
        # The receiver starts first and stops last; between the two stops
        # it takes what is still in the ring.
        rx, tx = (vh, fe) if mode == "txonly" else (fe, vh)
        if rx.cmd("start") is None or tx.cmd("start") is None:
            tap(False, f"{title}: both start forwarding", vh.text()[-2000:] + fe.text()[-2000:])
            return
        time.sleep(FORWARD_SECONDS)
        st_tx = stop_stats(tx)
        if st_tx is None:
            tap(False, f"{title}: the sender reports its totals", tx.text()[-3000:])
            return
        wait_count(lambda: (rx.port_stats() or (None, None))[0], st_tx["tx"])
        st_rx = stop_stats(rx)
        ok = st_rx is not None and st_tx["tx"] > 0 and st_rx["rx"] == st_tx["tx"]
        tap(ok, f"{title}: {'virtio-user' if mode == 'txonly' else 'vhost'} sent "
            f"{st_tx['tx']}, the other received {st_rx and st_rx['rx']}",
            f"sender {st_tx}, receiver {st_rx}")
        for t in (fe, vh):
            rc = t.quit()
            tap(rc == 0, f"{title}: testpmd {t.name} quits (exit {rc})",
                t.text()[-2000:])
        vh = fe = None
    finally:
        for t in (fe, vh):
            if t:
                t.close()
        log.close()


def self_test():
    """The parsers on canned output: each way the output can be wrong is
    caught."""
    stop_out = """
  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 256            TX-dropped: 116327072     TX-total: 116327328
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 7              RX-dropped: 1             RX-total: 8
  TX-packets: 256            TX-dropped: 116327072     TX-total: 116327328
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++
"""
    streams_out = """
  ------- Forward Stats for RX Port= 0/Queue= 0 -> TX Port= 0/Queue= 0 -------
  RX-packets: 0              TX-packets: 379904         TX-dropped: 58419584

  ------- Forward Stats for RX Port= 0/Queue= 2 -> TX Port= 0/Queue= 2 -------
  RX-packets: 5              TX-packets: 353472         TX-dropped: 58446016
"""
    port_out = """
  ######################## NIC statistics for port 0  ########################
  RX-packets: 1000       RX-missed: 0          RX-bytes:  60000
  RX-errors: 0
  RX-nombuf:  0
  TX-packets: 12         TX-errors: 0          TX-bytes:  720
"""
    cases = [
        ("forward totals", parse_forward_stats(stop_out),
         {"rx": 7, "rx_dropped": 1, "tx": 256, "tx_dropped": 116327072}),
        ("per queue", parse_streams(streams_out, 3), [(0, 379904), (0, 0), (5, 353472)]),
        ("no totals block", parse_forward_stats(stop_out.split("+++")[0]), None),
        ("two totals blocks", parse_forward_stats(stop_out + stop_out), None),
        ("port stats", parse_port_stats(port_out), (1000, 12)),
        ("no port stats", parse_port_stats("Invalid port 0"), None),
        ("counters", parse_counters("x\nuvirtio net: counters tx_packets=5 rx_packets=6 "
                                    "rx_dropped=0\n"),
         {"tx_packets": 5, "rx_packets": 6, "rx_dropped": 0}),
        ("a drop counted", drops({"rx_packets": 1, "rx_dropped": 0, "tx_bad_gso": 2},
                                 {"rx_packets": 9, "rx_dropped": 3, "tx_bad_gso": 2}),
         {"rx_dropped": 3}),
        ("no drop counted", drops({"rx_packets": 1, "rx_bytes": 60, "rx_dropped": 0},
                                  {"rx_packets": 9, "rx_bytes": 540, "rx_dropped": 0}), {}),
        ("the last counters line", parse_counters(
            "uvirtio net: counters rx=1\nuvirtio net: counters rx=2\n"), {"rx": 2}),
        ("no counters line", parse_counters("uvirtio net: serving on s\n"), None),
    ]
    for title, got, want in cases:
        tap(got == want, f"parse: {title}", f"got {got}, want {want}")
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uvirtio", help="the uvirtio command (for --peer=uvirtio)")
    ap.add_argument("--peer", choices=["uvirtio", "dpdk"], default="uvirtio",
                    help="the backend: `uvirtio net`, or testpmd's net_vhost (the harness alone)")
    ap.add_argument("--scenario", default="txonly,rxonly,io",
                    help="comma-separated: txonly, rxonly, io (io: uvirtio only)")
    ap.add_argument("--ring", default="split,packed", help="comma-separated: split, packed")
    ap.add_argument("--queues", type=int, default=1,
                    help="queue pairs (uvirtio net --queues, testpmd --rxq/--txq)")
    ap.add_argument("--frames", type=int, default=RX_FRAMES, help="frames rxonly sends")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--self-test", action="store_true", help="check the parsers, then exit")
    ap.add_argument("--inject", nargs=2, metavar=("DEV", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.inject:
        return inject(args.inject[0], int(args.inject[1]), RX_BATCH)
    if args.self_test:
        return self_test()
    scenarios = args.scenario.split(",")
    rings = args.ring.split(",")
    if set(scenarios) - {"txonly", "rxonly", "io"} or set(rings) - {"split", "packed"}:
        ap.error("--scenario takes txonly, rxonly, io; --ring takes split, packed")
    if args.peer == "uvirtio" and not (args.uvirtio and os.access(args.uvirtio, os.X_OK)):
        ap.error(f"--uvirtio={args.uvirtio} is not an executable")

    missing = None
    if not shutil.which(TESTPMD):
        missing = f"{TESTPMD} not installed (Debian package dpdk-dev)"
    elif args.peer == "uvirtio" and not shutil.which("ip"):
        missing = "ip not installed (Debian package iproute2)"
    elif os.geteuid() != 0:
        missing = "needs root: network namespaces, and testpmd's vdevs"
    if missing:
        ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
        if ci and "not installed" in missing:
            tap(False, f"testpmd interop: {missing}; CI installs it (scripts/install-deps.sh)")
        else:
            tap(True, "testpmd interop", skip=missing)
        print(f"1..{len(results)}")
        return 0 if all(results) else 1

    tmp = tempfile.mkdtemp(prefix="uvirtio-net-dpdk-")
    print(f"# peer {args.peer}, scenarios {scenarios}, rings {rings}, logs in {tmp}", flush=True)
    try:
        for ring in rings:
            packed = 1 if ring == "packed" else 0
            for s in scenarios:
                t0 = time.monotonic()
                if args.peer == "dpdk":
                    if s == "io":
                        continue
                    scenario_dpdk_peer(args, tmp, s, packed)
                elif s == "io":
                    scenario_io(args, tmp, packed)
                else:
                    scenario_tap(args, tmp, s, packed)
                print(f"# {s} {ring}: {time.monotonic() - t0:.1f} s", flush=True)
    except Interrupted as e:
        tap(False, f"interrupted by {e}")
    finally:
        if not args.keep and all(results):
            shutil.rmtree(tmp, ignore_errors=True)
        elif not all(results):
            print(f"# logs kept in {tmp}", flush=True)
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
