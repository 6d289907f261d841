#!/usr/bin/env python3
"""Boot the Debian kernel under QEMU (TCG) with a virtio-net-pci device on a
vhost-user-net backend (`uvirtio net`), run a net scenario in the guest and
check its verdict and what the host saw.

    python3 net.py --uvirtio=build/tools/uvirtio --test=net [--ring=packed]
    python3 net.py --uvirtio=build/tools/uvirtio --test=reflect
    python3 net.py --netdev=tap --test=net      # QEMU's own tap netdev, no uvirtio
    python3 net.py --uvirtio=build/tools/uvirtio --test=crash [--kills=3] [--seed=N]
    python3 net.py --uvirtio=build/tools/uvirtio --test=migrate [--rounds=5] [--ring=packed]

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
    crash    `uvirtio net --backend=tap` as for net, QEMU's chardev with
             reconnect=1; during a --mib MiB upload and a download,
             --kills SIGKILLs of the backend each (at seeded random byte
             counts the peer reports, with progress between kills), each
             followed after a random pause by a new backend on the same
             socket and tap: it must take the stale socket file over and
             attach the tap's queues, the TCP transfers must survive with
             the same sha256 on both ends, and pings after the last restart
             must all be answered
    migrate  `uvirtio net --backend=tap` as for crash, without reconnect:
             --rounds (5) TCP transfers of --mib (192) MiB, uploads and
             downloads in turn, each with a live migration of the guest to
             a new QEMU with a new backend process on the same tap at a
             seeded random 2-20% of it (migrate.py's precopy settings); at
             each switch the transfer still runs, the source's backend has
             detached its tap queues and the destination's attached its own,
             and the transfer goes on through the destination

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
import random
import re
import signal
import socket
import subprocess
import sys
import threading
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

    def __init__(self, netns, workdir, nettool=None, reflect=None, progress=0):
        self.log = os.path.join(workdir, "peer.log")
        self.out = open(self.log, "w")
        self.err = open(os.path.join(workdir, "peer.err"), "w")
        cmd = netns.exec() + [sys.executable, os.path.join(HERE, "netpeer.py")]
        if reflect:
            cmd.append(f"--reflect={reflect}")
        else:
            cmd += [f"--addr={HOST_ADDR}", f"--port={PORT}", f"--nettool={nettool}"]
            if progress:
                cmd.append(f"--progress={progress}")
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

    def progress(self, name):
        """(bytes, record) of connection `name` so far: its last progress
        line, and its record once the connection ended (else None)."""
        got, ended = 0, None
        with open(self.log) as f:
            for line in f:
                words = line.split()
                if len(words) == 4 and words[0] == "progress" and words[1] == name:
                    got = max(got, int(words[3]))
                elif line.startswith("{"):
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue  # a line still being written
                    if r.get("name") == name:
                        got, ended = max(got, r["bytes"]), r
        return got, ended

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


def host_nettool(workdir):
    """nettool built for the host (netpeer.py's stream generator)."""
    nettool = os.path.join(workdir, "nettool-host")
    with open(nettool, "wb") as f:
        f.write(initramfs.build_helper(workdir, "nettool"))
    os.chmod(nettool, 0o755)
    return nettool


def test_net(args, workdir):
    netns = Netns()
    peer = None
    backend = None
    try:
        netns.create()
        nettool = host_nettool(workdir)
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


# --- crash: `uvirtio net` killed and restarted under the running guest -------

PROGRESS_STEP = 256 << 10   # the peer's progress lines (netpeer.py --progress)
RESUMED = 1 << 20           # progress after a restart before the next kill
CRASH_TRANSFERS = ["crash-up", "crash-down"]


class NetBackend:
    """One incarnation of `uvirtio net --backend=tap` in the namespace, with
    its output in a log of its own (backend.log, backend-1.log, ...)."""

    def __init__(self, args, workdir, netns, sock, index, tap, qemu_sock=None, record=None,
                 state=None):
        """qemu_sock, record: UVIRTIO_GUEST_RECORD's proxy (run.py's
        recorder) on qemu_sock, logging into record/backend-INDEX/; it is
        killed with the backend, so that QEMU sees its connection end as it
        would without the proxy (which only half-closes it when the backend
        goes). state: its --state-file (every incarnation of the crash test
        has the same one: packed rings resume from it)."""
        self.index = index
        self.recorder = None
        self.name = f"uvirtio net #{index}"
        self.errlog = os.path.join(workdir, "backend.log" if index == 0
                                   else f"backend-{index}.log")
        cmd = netns.exec() + [args.uvirtio, "net", f"--socket-path={sock}", "--backend=tap",
                              f"--queues={args.queues}", f"--mac={MAC}", f"--tap={tap}"]
        if state:
            cmd.append(f"--state-file={state}")
        cmd += args.backend_arg
        print(f"net: backend #{index}: " + " ".join(cmd), flush=True)
        self.err = open(self.errlog, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=subprocess.STDOUT, preexec_fn=run.die_with_parent)
        if record:
            self.qemu_sock = qemu_sock
            self.recorder = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "..", "fuzz", "record_vhost.py"),
                 f"--listen={qemu_sock}", f"--backend={sock}",
                 f"--out={os.path.join(record, f'backend-{index}')}"],
                stdin=subprocess.DEVNULL, preexec_fn=run.die_with_parent)

    def log_text(self):
        with open(self.errlog, errors="replace") as f:
            return f.read()

    def wait_serving(self, timeout=30.0):
        """Until it says it serves (after its listen()); `ip netns exec`
        must have exec'd it, or the SIGKILL would hit `ip`."""
        deadline = time.monotonic() + timeout
        while "uvirtio net: serving" not in self.log_text():
            if self.proc.poll() is not None:
                raise Failure(f"{self.name} exited with status {self.proc.returncode} while "
                              f"starting: {run.tail(self.errlog, 5).strip()}")
            if time.monotonic() > deadline:
                raise Failure(f"{self.name} did not start serving within {timeout:.0f} s")
            time.sleep(0.05)
        with open(f"/proc/{self.proc.pid}/comm") as f:
            comm = f.read().strip()
        if comm != "uvirtio":
            raise Failure(f"harness: process {self.proc.pid} is {comm!r}, not uvirtio")
        while self.recorder and not listening_on(self.recorder.pid, self.qemu_sock):
            if self.recorder.poll() is not None or time.monotonic() > deadline:
                raise Failure("the recording proxy did not start")
            time.sleep(0.05)

    def counters(self, timeout=5.0):
        """Its counters now (SIGUSR1 has it print them), as a dict."""
        before = self.log_text().count("uvirtio net: counters")
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Complete lines only: the last one may still be being written.
            lines = [line for line in self.log_text().splitlines()
                     if line.startswith("uvirtio net: counters")
                     and re.search(r"rx_dropped=\d+$", line)]
            if len(lines) > before:
                return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise Failure(f"{self.name} printed no counters on SIGUSR1")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait()
        self.err.close()
        if self.recorder:
            self.recorder.kill()
            self.recorder.wait()
        if rc != -signal.SIGKILL:
            raise Failure(f"{self.name} exited with status {rc} before the SIGKILL")

    def stop(self):
        if self.recorder:
            run.stop(self.recorder, "record_vhost.py")
        if self.err.closed:
            return
        alive = self.proc.poll() is None
        rc = run.stop(self.proc, self.name)
        self.err.close()
        counters = [line for line in run.tail(self.errlog, 200).splitlines()
                    if line.startswith("uvirtio net: counters")]
        if counters:
            print(f"net: backend #{self.index} at its end: {counters[-1]}", flush=True)
        if alive and rc not in (0, -signal.SIGTERM):
            raise Failure(f"{self.name} exited with status {rc} on SIGTERM")


def listening_on(pid, path):
    """Whether process `pid` holds a listening unix socket bound to `path`
    (/proc/PID/net/unix is its network namespace's table)."""
    try:
        with open(f"/proc/{pid}/net/unix") as f:
            table = f.read().splitlines()[1:]
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    for row in table:
        w = row.split()
        # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000: listening
        if len(w) >= 8 and w[7] == path and int(w[3], 16) & 0x10000 \
                and f"socket:[{w[6]}]" in fds:
            return True
    return False


def refused(path):
    """connect() to `path` is refused: nobody listens on the file."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def tap_queues(netns):
    """The queues attached to tap0 in the namespace (its tx-N in sysfs;
    tun counts only attached, enabled queues), or None without a tap0."""
    r = subprocess.run(netns.exec() + ["ls", "/sys/class/net/tap0/queues"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, universal_newlines=True)
    if r.returncode != 0:
        return None
    return sum(1 for w in r.stdout.split() if w.startswith("tx-"))


def stop_all(procs):
    """Stop every one of `procs` (backends, QEMUs); the first Failure of a
    stop, or None, for the caller to raise once all are stopped."""
    failed = None
    for p in procs:
        try:
            p.stop()
        except Failure as e:
            failed = failed or e
    return failed


def serving_backend(b, queues, when):
    """The checks on the one backend left on tap0 after traffic moved
    through it: it holds `queues` tun queues of tap0 (all attached, given
    tap_queues), and its counters show frames both ways; what it moved."""
    fds = tap_fds(b.proc.pid)
    if fds != queues:
        raise Failure(f"{when}: {b.name} holds {fds} tun queue(s) of tap0, not {queues}")
    c = b.counters()
    if c["tx_packets"] == 0 or c["rx_packets"] == 0:
        raise Failure(f"{when}: {b.name} moved no frames: {c}")
    return f"{b.name} moved tx_packets={c['tx_packets']} rx_packets={c['rx_packets']}"


def tap_fds(pid, tap="tap0"):
    """How many of process `pid`'s fds are tun queues of `tap`, attached or
    detached (tun's fdinfo names the interface of both: only the count of
    queues in sysfs, tap_queues, tells attached ones)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    if f"iff:\t{tap}\n" in f.read():
                        n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def wait_transfer(peer, name, target, limit, check, why):
    """Until transfer `name` has passed `target` bytes by the peer's count
    or ended; (bytes, record or None). Failure after `limit` s in which its
    byte count did not move (with why() in the message), or when the peer
    gave it up; check() is called on every poll and may raise."""
    last, since = None, time.monotonic()
    while True:
        check()
        got, ended = peer.progress(name)
        if ended and not ended["complete"]:
            raise Failure(f"{name}: the peer gave the connection up: {ended}")
        if got >= target or ended:
            return got, ended
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > limit:
            raise Failure(f"{name}: no progress for {limit:.0f} s at {got} bytes ({why()})")
        time.sleep(0.05)


def vhost_user_net(args, sock, reconnect=False):
    """QEMU's arguments for the guest's virtio-net-pci on a vhost-user
    backend at `sock` (INTx unless --vectors: see net_devices)."""
    return ["-chardev", f"socket,id=c0,path={sock}{',reconnect=1' if reconnect else ''}",
            "-netdev", f"vhost-user,id=n0,chardev=c0,queues={args.queues}",
            "-device", f"virtio-net-pci,netdev=n0,mq={'on' if args.queues > 1 else 'off'},"
            f"vectors={args.vectors or 0},mac={MAC},"
            f"packed={'on' if args.ring == 'packed' else 'off'}"]


def kill_points(rng, size, kills):
    """One byte count per kill, each at random in its own equal slot of
    5%..90% of the transfer, so that there is progress between kills."""
    lo, hi = 0.05 * size, 0.9 * size
    slot = (hi - lo) / kills
    return [int(lo + slot * (i + rng.random())) for i in range(kills)]


def end_qemu():
    """SIGTERM to this process's QEMU children: a failed crash test need not
    wait for the guest's or the boot's time-out."""
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if stat[stat.rindex(")") + 2:].split()[1] == me and comm.startswith("qemu-system"):
            print(f"net: ending QEMU (pid {pid})", flush=True)
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass


class Killer(threading.Thread):
    """During each crash transfer, --kills times: wait until the peer has
    seen the transfer pass the next kill point (and move on since the last
    restart), SIGKILL the backend, check what it left (the stale socket file,
    tap0 with its queues detached), pause, start a new backend on the same
    socket and tap, and once traffic moves again check that it took over
    the socket file and attached the tap's queues."""

    def __init__(self, args, workdir, netns, peer, sock, backend, rng, size, record):
        """record: (the socket QEMU connects to, UVIRTIO_GUEST_RECORD's
        directory or None, the --state-file or None), for each new backend."""
        super().__init__(name="killer", daemon=True)
        self.args, self.workdir, self.netns, self.peer = args, workdir, netns, peer
        self.record = record
        self.sock, self.rng, self.size = sock, rng, size
        self.backends = [backend]
        self.kills = 0
        self.error = None
        self.quit = threading.Event()     # the main thread: stop now
        self.idle = threading.Event()     # this one: done, no more changes
        self.release = threading.Event()  # the main thread: the backends are stopped

    def run(self):
        try:
            for name in CRASH_TRANSFERS:
                self.transfer(name)
        except Failure as e:
            if not self.quit.is_set():  # else: stopped, the main thread knows why
                self.error = e
        except Exception as e:  # noqa: BLE001 - the harness's own error is a FAIL too
            self.error = Failure(f"harness error in the killer: {e!r}")
        if self.error and not self.quit.is_set():
            print(f"net: killer: {self.error}", flush=True)
            end_qemu()
        self.idle.set()
        # The backends this thread started get SIGKILL when it ends
        # (PR_SET_PDEATHSIG follows the thread that forked them): it lives on
        # until the main thread has stopped them.
        self.release.wait()

    def finish(self):
        """Stop it (the main thread): once it is idle, the backends can be
        stopped; then it may end."""
        self.quit.set()
        self.idle.wait(60)

    def wait_progress(self, name, target, limit):
        """Until `name` has passed `target` bytes or ended (wait_transfer)."""
        def check():
            if self.quit.is_set():
                raise Failure("stopped")

        def why():
            b = self.backends[-1]
            return (f"{b.name}: {'alive' if b.proc.poll() is None else 'exited'}, "
                    f"its log: {run.tail(b.errlog, 3).strip() or '(empty)'}")
        return wait_transfer(self.peer, name, target, limit, check, why)

    def transfer(self, name):
        points = kill_points(self.rng, self.size, self.args.kills)
        print(f"net: {name}: kills planned at {', '.join(map(str, points))} bytes", flush=True)
        floor = 0
        # The first transfer starts once the guest booted: the boot's limit.
        limit = self.args.timeout if name == CRASH_TRANSFERS[0] else self.args.stall
        for point in points:
            got, ended = self.wait_progress(name, max(point, floor), limit)
            limit = self.args.stall
            if ended:
                raise Failure(f"{name} ended ({got} bytes) before kill {self.kills + 1}: "
                              "a larger --mib gives the kills room")
            at = self.crash(name, got)
            # (--no-restart: no backend, no progress: it fails here)
            got, ended = self.wait_progress(name, at + RESUMED, self.args.stall)
            self.check_restarted(name, got, ended)
            floor = got + RESUMED

    def crash(self, name, got):
        """Kill the backend at `got` bytes of `name`, check what it left,
        start the next one; return the transfer's bytes at the restart."""
        b = self.backends[-1]
        before = b.counters()
        if not listening_on(b.proc.pid, self.sock):
            raise Failure(f"{b.name} does not listen on {self.sock}")
        stale = os.lstat(self.sock)
        b.kill()
        self.kills += 1
        k = self.kills
        print(f"net: kill {k}: SIGKILL to {b.name} (pid {b.proc.pid}) at {got} bytes of "
              f"{name}; it had moved tx_packets={before['tx_packets']} "
              f"rx_packets={before['rx_packets']}", flush=True)
        try:
            st = os.lstat(self.sock)
        except FileNotFoundError:
            raise Failure(f"kill {k}: the socket file {self.sock} is gone: nothing stale to "
                          "take over")
        if (st.st_mode & 0o170000) != 0o140000 or \
                (st.st_ino, st.st_ctime_ns) != (stale.st_ino, stale.st_ctime_ns):
            raise Failure(f"kill {k}: {self.sock} is not the killed process's socket file")
        if not refused(self.sock):
            raise Failure(f"kill {k}: connect() to the killed process's socket file "
                          "was not refused")
        queues = tap_queues(self.netns)
        if queues is None:
            raise Failure(f"kill {k}: tap0 is gone from the namespace")
        print(f"net: kill {k}: the stale socket file is left (connect() refused); "
              f"tap0 still there ({queues} tx queue(s) in its sysfs: tun keeps one "
              "with none attached)", flush=True)
        if self.args.no_restart:
            return got
        pause = self.rng.uniform(0.1, 2.0)
        if self.quit.wait(pause):
            raise Failure("stopped")
        nb = NetBackend(self.args, self.workdir, self.netns, self.sock, k,
                        self.args.restart_tap or "tap0", *self.record)
        self.backends.append(nb)
        nb.wait_serving()
        at, _ = self.peer.progress(name)
        st = os.lstat(self.sock)
        if (st.st_mode & 0o170000) != 0o140000 or st.st_ctime_ns == stale.st_ctime_ns \
                or not listening_on(nb.proc.pid, self.sock):
            raise Failure(f"restart {k}: {nb.name} serves, but does not listen on a new "
                          f"socket file at {self.sock}")
        print(f"net: restart {k}: {nb.name} (pid {nb.proc.pid}) took the stale socket file "
              f"over after a pause of {pause:.2f} s: it listens on a new one at the same "
              f"path; {name} at {at} bytes", flush=True)
        return at

    def check_restarted(self, name, got, ended):
        """Traffic moved again through the newest backend: tap0 has all its
        queues back and the new process counted frames both ways."""
        b = self.backends[-1]
        deadline = time.monotonic() + self.args.stall
        while (queues := tap_queues(self.netns)) != self.args.queues:
            if time.monotonic() > deadline:
                raise Failure(f"restart {b.index}: tap0 has {queues} queue(s) attached, "
                              f"not {self.args.queues}")
            if self.quit.wait(0.1):
                raise Failure("stopped")
        moved = serving_backend(b, self.args.queues, f"restart {b.index}")
        print(f"net: restart {b.index}: {name} moved on to {got} bytes"
              f"{' (ended)' if ended else ''}; tap0 has {queues} queues attached, all "
              f"{b.name}'s; {moved}", flush=True)


def test_crash(args, workdir):
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"net: crash: seed {seed} (--seed={seed} replays the kill points and pauses), "
          f"{args.kills} kill(s) per transfer", flush=True)
    rng = random.Random(seed)
    netns = Netns()
    peer = None
    killer = None
    first = None
    try:
        netns.create()
        nettool = host_nettool(workdir)
        peer = Peer(netns, workdir, nettool, progress=PROGRESS_STEP)
        peer.wait_ready()
        sock = os.path.join(workdir, "vhost-user-net.sock")
        # UVIRTIO_GUEST_RECORD=DIR: every backend behind a proxy of its own
        # (DIR/backend-N/conn-M.jsonl), QEMU connected to the proxy's socket.
        record = os.environ.get("UVIRTIO_GUEST_RECORD")
        qemu_sock = os.path.join(workdir, "record-proxy.sock") if record else sock
        state = None if args.no_state_file else os.path.join(workdir, "net.state")
        first = NetBackend(args, workdir, netns, sock, 0, "tap0", qemu_sock, record, state)
        first.wait_serving()
        devices = vhost_user_net(args, qemu_sock, reconnect=True)
        killer = Killer(args, workdir, netns, peer, sock, first, rng, args.mib << 20,
                        (qemu_sock, record, state))
        killer.start()
        params = {"addr": GUEST_ADDR, "peer": HOST_ADDR, "port": PORT, "mib": args.mib}
        boot_error = None
        try:
            lines = boot(args, workdir, None, "netcrash", params, devices, [])
        except Failure as e:
            boot_error = e
        finally:
            killer.finish()
        # The killer's failure first: it is the cause (it ended QEMU).
        if killer.error:
            raise killer.error
        if boot_error:
            raise boot_error
        want = 2 * args.kills
        if killer.kills != want:
            raise Failure(f"{killer.kills} kills, {want} planned")
        check_features(lines, args.ring, args.queues)
        n = check_transfers(lines, peer.records(), CRASH_TRANSFERS)
        print(f"net: {n} transfers survived {want} kills and restarts of uvirtio net; "
              "20 pings after the last restart answered", flush=True)
        last = killer.backends[-1]
        if last.proc.poll() is not None:
            raise Failure(f"{last.name} exited with status {last.proc.returncode}")
    finally:
        try:
            if killer is not None:
                killer.finish()
            failed = stop_all(killer.backends if killer else [first] if first else [])
            if killer is not None:
                killer.release.set()
                killer.join(10)
            if failed:
                raise failed
        finally:
            if peer:
                peer.stop()
            netns.delete()


# --- migrate: the running guest moved between two QEMUs, each with its own
# `uvirtio net` on the same multi-queue tap ----------------------------------

def migrate_transfers(rounds):
    """The netmigrate guest's transfers: one per migration, up and down in turn."""
    return [f"mig{i}-{'up' if i % 2 else 'down'}" for i in range(1, rounds + 1)]


def test_migrate(args, workdir):
    """--rounds ping-pong live migrations (migrate.py's migrate_once: low
    bandwidth until --sync-rounds dirty syncs, then raised), one during each
    of the guest's --mib MiB transfers, uploads and downloads in turn,
    started at a seeded random 2-20% of it. Each round: a new `uvirtio net`
    on a socket of its own and on tap0, a new QEMU -incoming on it; at the
    switch the transfer must still be running; then the source's backend
    must have detached its tap queues (QEMU stopped its rings) and the
    destination's attached its own, the transfer must move on through the
    destination, and the source QEMU and its backend are stopped."""
    import migrate
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    size = args.mib << 20
    plan = [(name, int(size * rng.uniform(0.02, 0.2))) for name in migrate_transfers(args.rounds)]
    print(f"net: migrate: seed {seed} (--seed={seed} replays the points), {args.rounds} "
          f"migrations at " + ", ".join(f"{n} {p}" for n, p in plan), flush=True)
    netns = Netns()
    peer = None
    procs = []  # backends and QEMUs still running, stopped in finally
    vms = []
    params = {"addr": GUEST_ADDR, "peer": HOST_ADDR, "port": PORT, "mib": args.mib,
              "rounds": args.rounds}

    def backend(n):
        b = NetBackend(args, workdir, netns, os.path.join(workdir, f"vhost-user-net{n}.sock"),
                       n, "tap0")
        procs.append(b)
        b.wait_serving()
        return b

    def vm(n, b, incoming=None):
        boot = run.Boot(args, workdir, None, "netmigrate", args.queues, 2, params, n,
                        devices=vhost_user_net(args, os.path.join(
                            workdir, f"vhost-user-net{n}.sock")))
        v = migrate.Vm(args, workdir, None, n, incoming, boot=boot)
        procs.append(v)
        vms.append(v)
        v.connect()
        return v

    def guest_check(v, b):
        def check():
            crash = v.crashed()
            if crash:
                raise Failure(f"the guest crashed on QEMU {v.index}: {crash}")
            for p, what in ((v.proc, f"QEMU {v.index}"), (b.proc, b.name)):
                if p.poll() is not None:
                    raise Failure(f"{what} exited with status {p.returncode}")
        return check

    def why(b):
        return lambda: f"{b.name}'s log: {run.tail(b.errlog, 3).strip() or '(empty)'}"

    try:
        netns.create()
        peer = Peer(netns, workdir, host_nettool(workdir), progress=PROGRESS_STEP)
        peer.wait_ready()
        sb = backend(0)
        src = vm(0, sb)
        for rnd, (name, point) in enumerate(plan, 1):
            # A transfer starts once the guest booted (the first) or made the
            # stream's sha256 (192 MiB through sha256sum under TCG): the
            # boot's limit for its first byte, --stall once it runs.
            wait_transfer(peer, name, 1, args.timeout, guest_check(src, sb), why(sb))
            got, ended = wait_transfer(peer, name, point, args.stall, guest_check(src, sb),
                                       why(sb))
            if ended:
                raise Failure(f"{name} ended ({got} bytes) before migration {rnd}: a larger "
                              "--mib gives the migrations room")
            db = backend(rnd)
            uri = os.path.join(workdir, f"migrate{rnd}.sock")
            dst = vm(rnd, db, incoming=uri)
            print(f"net: migration {rnd}: QEMU {src.index} -> {rnd} at {got} bytes of {name}",
                  flush=True)
            migrate.migrate_once(args, src, dst, uri, rnd)
            status = dst.qmp.cmd("query-status")["status"]
            if status != "running":
                raise Failure(f"round {rnd}: destination is {status} after the migration")
            at, ended = peer.progress(name)
            if ended:
                raise Failure(f"round {rnd}: {name} ended ({at} bytes) before the switch-over "
                              "was seen: a larger --mib gives the migration room")
            # Both backends hold args.queues tun queues of tap0 now; the
            # source's must have been detached when QEMU stopped its rings,
            # else the kernel would spread frames over queues nobody reads.
            queues = tap_queues(netns)
            if queues != args.queues or tap_fds(sb.proc.pid) != args.queues:
                raise Failure(f"round {rnd}: tap0 has {queues} queue(s) attached after the "
                              f"switch, {args.queues} expected: the stopped source's "
                              f"{sb.name} did not detach its {tap_fds(sb.proc.pid)}")
            src.qmp.cmd("quit")
            src.stop()
            procs.remove(src)
            sb.stop()
            procs.remove(sb)
            got, ended = wait_transfer(peer, name, at + RESUMED, args.stall,
                                       guest_check(dst, db), why(db))
            queues = tap_queues(netns)
            if queues != args.queues:
                raise Failure(f"round {rnd}: tap0 has {queues} queue(s) attached, "
                              f"{args.queues} expected")
            moved = serving_backend(db, args.queues, f"round {rnd}")
            print(f"net: migration {rnd}: {name} moved on to {got} bytes"
                  f"{' (ended)' if ended else ''} through QEMU {rnd}; the source's backend had "
                  f"detached its tap queues, {db.name} attached its {queues}; {moved}",
                  flush=True)
            src, sb = dst, db
        try:
            src.proc.wait(args.timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"the guest did not power off within {args.timeout:.0f} s of "
                          "the last migration")
        src.reader.join(5)
        verdicts = [m for m in (run.VERDICT.search(x) for x in src.lines) if m]
        if len(verdicts) != 1 or verdicts[0].group(2) != "netmigrate":
            raise Failure(f"{len(verdicts)} netmigrate verdict lines on the last console")
        if verdicts[0].group(1) != "PASS":
            raise Failure(f"guest says FAIL: {verdicts[0].group(3)}")
        if src.proc.returncode != 0:
            raise Failure(f"the last QEMU exited with status {src.proc.returncode}")
        if sb.proc.poll() is not None:
            raise Failure(f"{sb.name} exited with status {sb.proc.returncode} before the "
                          "guest's power-off")
        lines = [x for v in vms for x in v.lines]
        check_features(lines, args.ring, args.queues)
        n = check_transfers(lines, peer.records(), migrate_transfers(args.rounds))
        print(f"net: {n} transfers survived {args.rounds} live migrations; 20 pings after the "
              "last one answered", flush=True)
    except Failure as e:
        raise migrate.with_guest_crash(e, vms)
    finally:
        try:
            failed = stop_all(reversed(procs))
            if failed:
                raise failed
        finally:
            if peer:
                peer.stop()
            netns.delete()


TESTS = {"net": test_net, "reflect": test_reflect, "crash": test_crash, "migrate": test_migrate}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--test", required=True, choices=sorted(TESTS))
    ap.add_argument("--netdev", default="uvirtio", choices=["uvirtio", "tap"],
                    help="the device's backend: `uvirtio net` over vhost-user, or QEMU's tap")
    ap.add_argument("--uvirtio", help="the uvirtio executable (--netdev=uvirtio)")
    ap.add_argument("--mib", type=int, help="MiB of the big transfer each way (64; "
                    "migrate: of each transfer, 192)")
    ap.add_argument("--frames", type=int, default=2000, help="raw frames of `reflect`")
    ap.add_argument("--queues", type=int, default=2, help="queue pairs of the device and "
                    "the backend (2; the guest has 2 vCPUs)")
    ap.add_argument("--vectors", type=int, help="the device's MSI-X vectors (default: "
                    "2*queues+2 with --netdev=tap, 0 (INTx) with uvirtio: QEMU 7.2 under TCG "
                    "crashes with MSI-X on vhost-user-net, see README.md)")
    ap.add_argument("--backend-arg", action="append", default=[],
                    help="extra argument for `uvirtio net`")
    ap.add_argument("--kills", type=int, default=3,
                    help="crash: SIGKILLs of `uvirtio net` during each transfer (3)")
    ap.add_argument("--seed", type=int, help="crash, migrate: the seed of the kill or "
                    "migration points and pauses (default: a random one, printed)")
    ap.add_argument("--stall", type=float, default=120.0, help="crash, migrate: seconds "
                    "without progress of a transfer that fail the test (120)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="migrate: live migrations (ping-pong), half during the upload")
    ap.add_argument("--sync-rounds", type=int, default=3, help="migrate: dirty-sync-count "
                    "while active before the bandwidth is raised (and required)")
    ap.add_argument("--bandwidth-mib", type=int, default=32,
                    help="migrate: max-bandwidth (MiB/s) until then")
    ap.add_argument("--downtime-ms", type=int, default=1,
                    help="migrate: downtime-limit until the raise (migrate.py says why 1)")
    ap.add_argument("--migrate-timeout", type=float, default=120.0,
                    help="migrate: seconds per migration")
    ap.add_argument("--ram-kib", type=int, default=512 * 1024 - 8,
                    help="migrate: guest RAM in KiB; not a multiple of 256 KiB, for "
                    "QEMU 7.2's TCG dirty tracking (migrate.py)")
    ap.add_argument("--restart-tap", metavar="NAME", help="crash, negative control: "
                    "restart the backend on another tap (the test must fail)")
    ap.add_argument("--no-restart", action="store_true", help="crash, negative control: "
                    "kill the backend and never start it again (the test must fail)")
    ap.add_argument("--no-state-file", action="store_true", help="crash: no --state-file "
                    "for the backends (packed rings then fail with QEMU 7.2, README.md)")
    run.common_options(ap)
    # migrate.py's settings that net's migration does not vary.
    ap.set_defaults(timeout=600.0, cpu="max", mem="memfd-shared", active_sync=True,
                    verbose_qmp=False)
    args = ap.parse_args()
    if args.mib is None:
        args.mib = 192 if args.test == "migrate" else 64

    if args.test == "crash" and (args.netdev != "uvirtio" or args.kills < 1):
        ap.error("--test=crash kills `uvirtio net`: --netdev=uvirtio and --kills >= 1")
    if args.test == "migrate" and (args.netdev != "uvirtio" or args.rounds < 1):
        ap.error("--test=migrate moves the guest between `uvirtio net` processes: "
                 "--netdev=uvirtio and --rounds >= 1")
    if os.geteuid() != 0 and (args.test in ("net", "crash", "migrate") or args.netdev == "tap"):
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
    logs = ["backend.log"] + [f"backend-{i}.log"
                              for i in range(1, max(2 * args.kills, args.rounds) + 1)]
    return run.execute(args, name, lambda workdir: TESTS[args.test](args, workdir),
                       logs + ["peer.log", "peer.err"], prog="net")


if __name__ == "__main__":
    sys.exit(main())
