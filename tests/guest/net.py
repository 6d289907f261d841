#!/usr/bin/env python3
"""Boot the Debian kernel under QEMU (TCG) with a virtio-net-pci device on a
vhost-user-net backend (`uvirtio net`), run a net scenario in the guest and
check its verdict and what the host saw.

    python3 net.py --uvirtio=build/tools/uvirtio --test=net [--ring=packed]
    python3 net.py --uvirtio=build/tools/uvirtio --test=reflect
    python3 net.py --netdev=tap --test=net      # QEMU's own tap netdev, no uvirtio

Tests:
    net      `uvirtio net --backend=tap` on a multi-queue tap in a network
             namespace the test makes (and always deletes), with the host peer
             (netpeer.py) on 10.77.0.1 in it: 100 pings, a --mib MiB TCP
             transfer each way, virtio_net unbound during a download and
             bound again, `ethtool -L eth0 combined 1` and `2` with traffic
             after each (pinned per cpu: each tx queue carries it)
    reflect  `uvirtio net --backend=reflect`: raw frames (AF_PACKET) come back
             with the MACs swapped, counted in the guest (sent == received),
             also after a rebind and on each queue count

Checked on the host as well as in the guest: every transfer the guest reports
("xfer NAME up|down BYTES SHA256") must be one the peer recorded, complete,
with the same size and sha256; every set of negotiated features the guest
prints has VERSION_1 (32), MRG_RXBUF (15) and MQ (22), and RING_PACKED (34)
iff --ring=packed.

--netdev=tap gives QEMU `-netdev tap,...,vhost=off` on the same tap (QEMU
runs in the namespace): the guest scenario and the host plumbing without
uvirtio; for reflect, netpeer.py --reflect=tap0 swaps the MACs there.

Exit status: 0 pass, 1 fail, 77 skip (QEMU, kernel, busybox, ethtool or ip
not installed; not root); with CI=true a missing tool fails instead.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import initramfs  # noqa: E402
import run  # noqa: E402
from run import Failure  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HOST_ADDR = "10.77.0.1"
GUEST_ADDR = "10.77.0.2/24"
PORT = 5201
MAC = "52:54:00:12:34:56"
FEATURES = {"VERSION_1": 32, "MRG_RXBUF": 15, "MQ": 22}
RING_PACKED = 34


class Netns:
    """A network namespace with a multi-queue tap0 at HOST_ADDR, up; deleted
    by delete() on every path (the caller's finally)."""

    def __init__(self):
        self.name = f"uvirtio-guestnet-{os.getpid()}"
        self.made = False

    def ip(self, *words):
        cmd = ["ip"] + list(words)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if r.returncode != 0:
            raise Failure(f"{' '.join(cmd)}: exit {r.returncode}: {r.stdout.strip()}")

    def create(self):
        self.ip("netns", "add", self.name)
        self.made = True
        self.ip("-n", self.name, "link", "set", "lo", "up")
        self.ip("-n", self.name, "tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue")
        self.ip("-n", self.name, "addr", "add", f"{HOST_ADDR}/24", "dev", "tap0")
        self.ip("-n", self.name, "link", "set", "tap0", "up")
        print(f"net: namespace {self.name}: tap0 {HOST_ADDR}/24 (multi_queue)", flush=True)

    def exec(self):
        return ["ip", "netns", "exec", self.name]

    def delete(self):
        if self.made:
            r = subprocess.run(["ip", "netns", "del", self.name], stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                print(f"net: namespace {self.name} deleted", flush=True)
            else:
                print(f"net: ip netns del {self.name} failed ({r.returncode})", flush=True)
            self.made = False


class Peer:
    """netpeer.py in the namespace; its JSON records go to peer.log."""

    def __init__(self, netns, workdir, nettool=None, reflect=None):
        self.log = os.path.join(workdir, "peer.log")
        self.out = open(self.log, "w")
        self.err = open(os.path.join(workdir, "peer.err"), "w")
        cmd = netns.exec() + [sys.executable, os.path.join(HERE, "netpeer.py")]
        if reflect:
            cmd.append(f"--reflect={reflect}")
        else:
            cmd += [f"--addr={HOST_ADDR}", f"--port={PORT}", f"--nettool={nettool}"]
        print("net: peer: " + " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.err, preexec_fn=run.die_with_parent)

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"the peer exited with status {self.proc.returncode} "
                              f"while starting: {run.tail(self.err.name)}")
            with open(self.log) as f:
                if "ready" in f.read():
                    return
            time.sleep(0.05)
        raise Failure(f"the peer did not listen within {timeout:.0f} s")

    def records(self):
        out = []
        with open(self.log) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    out.append(json.loads(line))
        return out

    def stop(self):
        rc = run.stop(self.proc, "netpeer.py")
        self.out.close()
        self.err.close()
        return rc


def check_features(lines, ring, queues):
    """Every `features WHEN BITS` line of the guest: the bits net needs (MQ
    with more than one queue pair), and RING_PACKED iff the ring is packed."""
    seen = 0
    for line in lines:
        m = re.search(r"uvirtio-guest: features (\S+) ([01]+)\s*$", line)
        if not m:
            continue
        when, bits = m.groups()
        seen += 1
        want = dict(FEATURES, RING_PACKED=RING_PACKED)
        for name, bit in want.items():
            has = len(bits) > bit and bits[bit] == "1"
            expect = {"RING_PACKED": ring == "packed", "MQ": queues > 1}.get(name, True)
            if has != expect:
                raise Failure(f"features {when}: {name} (bit {bit}) is "
                              f"{'set' if has else 'clear'} in {bits}")
        print(f"net: features {when}: VERSION_1, MRG_RXBUF set, MQ "
              f"{'set' if queues > 1 else 'clear'}, RING_PACKED "
              f"{'set' if ring == 'packed' else 'clear'}", flush=True)
    if seen == 0:
        raise Failure("the guest printed no features")
    return seen


def check_transfers(lines, records, expected):
    """Each `xfer NAME DIR BYTES SHA` of the guest against the peer's record
    of the same connection; `expected` names must all be there."""
    by_name = {}
    for r in records:
        by_name.setdefault(r["name"], []).append(r)
    got = set()
    for line in lines:
        m = re.search(r"uvirtio-guest: xfer (\S+) (up|down) (\d+) ([0-9a-f]{64})", line)
        if not m:
            continue
        name, way, size, sha = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        recs = by_name.get(name, [])
        if len(recs) != 1:
            raise Failure(f"transfer {name}: the peer recorded {len(recs)} connections")
        r = recs[0]
        if r["op"] != ("PUT" if way == "up" else "GET"):
            raise Failure(f"transfer {name}: the peer saw a {r['op']}")
        if not r["complete"] or r["bytes"] != size:
            raise Failure(f"transfer {name}: the peer's record is {r}, the guest's {size} bytes")
        if r["sha256"] != sha:
            raise Failure(f"transfer {name} ({way}): sha256 {r['sha256']} on the host, "
                          f"{sha} in the guest")
        got.add(name)
        print(f"net: transfer {name} {way} {size} bytes: sha256 {sha[:16]}... on both sides",
              flush=True)
    missing = [n for n in expected if n not in got]
    if missing:
        raise Failure(f"transfers the guest did not report: {' '.join(missing)}")
    # The download cut by the unbind (the guest checked it stopped short): once
    # the peer's retransmissions met the rebound guest's reset, it is recorded.
    for r in by_name.get("cut", []):
        if r["complete"]:
            raise Failure(f"the peer completed the download the unbind cut: {r}")
        print(f"net: the cut download on the host: {r['bytes']} bytes sent, "
              f"{r.get('error', 'no error')}", flush=True)
    return len(got)


def net_transfers(queues):
    """The transfers the net scenario makes: c2-* are those after `ethtool -L
    eth0 combined QUEUES`, one per tx queue (cpu)."""
    return (["big-up", "big-down", "rebind-up", "rebind-down", "c1-up", "c1-down"]
            + [f"c2-{way}-cpu{q}" for way in ("up", "down") for q in range(queues)])


def net_devices(args, backend, netns):
    """QEMU's net device arguments and the command prefix QEMU runs under."""
    vectors = args.vectors
    if vectors is None:
        # QEMU 7.2 under TCG dies of a NULL dereference when vhost-user-net
        # starts with MSI-X (virtio_pci_set_guest_notifiers, vhost_net_start;
        # with DPDK's vhost backend too): INTx there. The tap netdev has MSI-X.
        vectors = 0 if args.netdev == "uvirtio" else 2 * args.queues + 2
    dev = (f"virtio-net-pci,netdev=n0,mq={'on' if args.queues > 1 else 'off'},"
           f"vectors={vectors},mac={MAC},"
           f"packed={'on' if args.ring == 'packed' else 'off'}")
    if args.netdev == "tap":
        return (["-netdev", f"tap,id=n0,ifname=tap0,script=no,downscript=no,"
                 f"queues={args.queues},vhost=off", "-device", dev], netns.exec())
    return (["-chardev", f"socket,id=c0,path={backend.qemu_sock}",
             "-netdev", f"vhost-user,id=n0,chardev=c0,queues={args.queues}", "-device", dev],
            [])


def start_backend(args, workdir, mode, netns):
    sock = os.path.join(workdir, "vhost-user-net.sock")
    cmd = [args.uvirtio, "net", f"--socket-path={sock}", f"--backend={mode}",
           f"--queues={args.queues}", f"--mac={MAC}"]
    if mode == "tap":
        cmd = netns.exec() + cmd + ["--tap=tap0"]
    cmd += args.backend_arg
    backend = run.Backend(args, workdir, None, args.queues, False, cmd=cmd, sock=sock,
                          name="uvirtio net")
    backend.wait_ready()
    return backend


def stop_backend(backend):
    if backend is None:
        return
    backend.stop()
    counters = [line for line in run.tail(backend.errlog, 200).splitlines()
                if line.startswith("uvirtio net: counters")]
    for line in counters:
        print(f"net: backend {line}", flush=True)


def boot(args, workdir, backend, scenario, params, devices, prefix):
    """One boot of `scenario` (2 vCPUs, the device's queue pairs); its console
    lines. run.run_boot shows the console and QEMU's stderr on a failure."""
    params = dict(params, queues=args.queues)
    b = run.Boot(args, workdir, backend, scenario, args.queues, 2, params, 1,
                 devices=devices, prefix=prefix)
    try:
        return run.run_boot(b, backend)
    finally:
        print(f"net: boot {scenario} took {b.took or 0:.1f} s", flush=True)


def test_net(args, workdir):
    netns = Netns()
    peer = None
    backend = None
    try:
        netns.create()
        nettool = os.path.join(workdir, "nettool-host")
        with open(nettool, "wb") as f:
            f.write(initramfs.build_helper(workdir, "nettool"))
        os.chmod(nettool, 0o755)
        peer = Peer(netns, workdir, nettool)
        peer.wait_ready()
        if args.netdev == "uvirtio":
            backend = start_backend(args, workdir, "tap", netns)
        devices, prefix = net_devices(args, backend, netns)
        params = {"addr": GUEST_ADDR, "peer": HOST_ADDR, "port": PORT, "mib": args.mib}
        lines = boot(args, workdir, backend, "net", params, devices, prefix)
        check_features(lines, args.ring, args.queues)
        n = check_transfers(lines, peer.records(), net_transfers(args.queues))
        print(f"net: {n} transfers checked against the peer's records", flush=True)
    finally:
        try:
            stop_backend(backend)
        finally:
            if peer:
                peer.stop()
            netns.delete()


def test_reflect(args, workdir):
    # uvirtio's reflect backend needs no tap and no namespace: the frames go
    # no further than its rings. --netdev=tap has netpeer.py --reflect do the
    # same on the tap in a namespace.
    netns = Netns()
    peer = None
    backend = None
    try:
        if args.netdev == "uvirtio":
            backend = start_backend(args, workdir, "reflect", None)
        else:
            netns.create()
            peer = Peer(netns, workdir, reflect="tap0")
            peer.wait_ready()
        devices, prefix = net_devices(args, backend, netns)
        lines = boot(args, workdir, backend, "reflect", {"frames": args.frames}, devices,
                     prefix)
        check_features(lines, args.ring, args.queues)
        counts = [m.groups() for m in (re.search(
            r"uvirtio-guest: reflect (.*): nettool: reflect sent (\d+) received (\d+) "
            r"duplicates (\d+) bad (\d+)", line) for line in lines) if m]
        want = [str(args.frames), str(args.frames), "500"] + ["500"] * args.queues
        if [c[1] for c in counts] != want:
            raise Failure(f"the guest's reflect runs sent {[c[1] for c in counts]}, "
                          f"expected {want}")
        for when, sent, received, dups, bad in counts:
            if received != sent or dups != "0" or bad != "0":
                raise Failure(f"reflect {when}: sent {sent}, received {received}, "
                              f"{dups} duplicates, {bad} bad")
        print(f"net: {len(counts)} reflect runs: every frame sent came back once", flush=True)
    finally:
        try:
            stop_backend(backend)
        finally:
            if peer:
                peer.stop()
            netns.delete()


TESTS = {"net": test_net, "reflect": test_reflect}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--test", required=True, choices=sorted(TESTS))
    ap.add_argument("--netdev", default="uvirtio", choices=["uvirtio", "tap"],
                    help="the device's backend: `uvirtio net` over vhost-user, or QEMU's tap")
    ap.add_argument("--uvirtio", help="the uvirtio executable (--netdev=uvirtio)")
    ap.add_argument("--mib", type=int, default=64, help="MiB of the big transfer each way")
    ap.add_argument("--frames", type=int, default=2000, help="raw frames of `reflect`")
    ap.add_argument("--queues", type=int, default=2, help="queue pairs of the device and "
                    "the backend (2; the guest has 2 vCPUs)")
    ap.add_argument("--vectors", type=int, help="the device's MSI-X vectors (default: "
                    "2*queues+2 with --netdev=tap, 0 (INTx) with uvirtio: QEMU 7.2 under TCG "
                    "crashes with MSI-X on vhost-user-net, see README.md)")
    ap.add_argument("--backend-arg", action="append", default=[],
                    help="extra argument for `uvirtio net`")
    run.common_options(ap)
    ap.set_defaults(timeout=600.0)
    args = ap.parse_args()

    if os.geteuid() != 0 and (args.test == "net" or args.netdev == "tap"):
        msg = "needs root (ip netns, tap)"
        if run.in_ci():
            print(f"net: FAIL: {msg}", flush=True)
            return 1
        print(f"net: SKIP: {msg}", flush=True)
        return run.SKIP
    rc = run.prepare(args, [run.QEMU, "ip"], need_uvirtio=args.netdev == "uvirtio", prog="net")
    if rc is not None:
        return rc
    print(f"net: netdev {args.netdev}", flush=True)
    name = args.test + ("_packed" if args.ring == "packed" else "")
    return run.execute(args, name, lambda workdir: TESTS[args.test](args, workdir),
                       ["backend.log", "peer.log", "peer.err"], prog="net")


if __name__ == "__main__":
    sys.exit(main())
