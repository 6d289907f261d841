#!/usr/bin/env python3
"""`uvirtio net` as a person meets it: each mistake (a bad MAC, an MTU out of
range, a tap that cannot be opened: not root, no /dev/net/tun, the name taken)
gives one clear line and a non-zero exit; a front-end asking for more queue
pairs than --queues is named in the backend's log; GET_QUEUE_NUM counts pairs;
SIGUSR1 and the exit print the counters; SIGTERM stops it cleanly. TAP output.

The tap cases run in a network namespace this script makes and removes; no
traffic is sent. As root only (CI is root); otherwise those cases are skipped,
each with its reason.

usage: cli_net.py UVIRTIO_EXECUTABLE
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend_util import stop, wait_for_socket  # noqa: E402

exe = os.path.abspath(sys.argv[1])
results = []

VERSION = 0x1
NEED_REPLY = 0x8
GET_FEATURES, SET_OWNER, SET_VRING_NUM, NET_SET_MTU = 1, 3, 8, 20
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
F_PROTOCOL_FEATURES = 1 << 30
PF_MQ, PF_REPLY_ACK, PF_NET_MTU = 1 << 0, 1 << 3, 1 << 4


def check(name, ok, detail=""):
    results.append((name, ok, detail, False))


def skip(name, why):
    results.append((name, True, why, True))


def run(args, prefix=(), **kw):
    return subprocess.run(list(prefix) + [exe, "net"] + args, capture_output=True, text=True,
                          timeout=30, **kw)


def one_line_error(p, must_contain, status=None):
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    ok = p.returncode != 0 and len(lines) == 1 and must_contain in lines[0]
    if status is not None:
        ok = ok and p.returncode == status
    return ok, "exit %d: %r" % (p.returncode, p.stderr)


def request(s, req, payload=b"", flags=VERSION, reply=False):
    s.sendall(struct.pack("<III", req, flags, len(payload)) + payload)
    if not reply:
        return None
    hdr = s.recv(12, socket.MSG_WAITALL)
    _, _, size = struct.unpack("<III", hdr)
    return s.recv(size, socket.MSG_WAITALL)


def u64(b):
    return struct.unpack("<Q", b)[0]


def serve(args):
    return subprocess.Popen([exe, "net"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def usage_errors(sock):
    for name, args, want in [
            ("bad_mac", ["--mac=52:54:00:12:34"], "--mac"),
            ("multicast_mac", ["--mac=01:00:5e:00:00:01"], "multicast"),
            ("mtu_too_small", ["--mtu=67"], "--mtu"),
            ("mtu_too_large", ["--mtu=65536"], "--mtu"),
            ("queues_zero", ["--queues=0"], "--queues"),
            ("queues_over_16", ["--queues=17"], "--queues"),
            ("bad_backend", ["--backend=pcap"], "--backend"),
            ("tap_needs_name", ["--backend=tap"], "--tap=NAME"),
            ("frame_size_not_gen", ["--backend=null", "--frame-size=100"], "--backend=gen"),
            ("frame_size_too_small", ["--backend=gen", "--frame-size=10"], "--frame-size")]:
        check(name + "_one_line", *one_line_error(run(["--socket-path=" + sock] + args), want, 2))
    check("no_socket_one_line", *one_line_error(run(["--backend=null"]), "--socket-path", 2))


def tap_errors(sock):
    if os.geteuid() != 0:
        for name in ("tap_not_root", "tap_no_dev_net_tun", "tap_name_in_use"):
            skip(name, "needs root to make a network namespace")
        return
    ns = "uvnetcli%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        inns = ["ip", "netns", "exec", ns]
        setpriv = shutil.which("setpriv")
        if setpriv:
            check("tap_not_root", *one_line_error(
                run(["--socket-path=" + sock, "--tap=uvt0"],
                    prefix=inns + [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]),
                "needs root or CAP_NET_ADMIN", 1))
        else:
            check("tap_not_root", False, "setpriv (util-linux) not found")
        # A mount namespace where /dev/net is empty.
        check("tap_no_dev_net_tun", *one_line_error(
            run(["--socket-path=" + sock, "--tap=uvt0"],
                prefix=["unshare", "-m", "sh", "-c",
                        'mount -t tmpfs none /dev/net && exec "$@"', "sh"]),
            "no /dev/net/tun", 1))
        # "lo" exists in every namespace and is not a tap.
        check("tap_name_in_use", *one_line_error(
            run(["--socket-path=" + sock, "--tap=lo"], prefix=inns), "the name is in use", 1))
        # A tap made beforehand, as the tests and operators do, is taken.
        subprocess.run(["ip", "-n", ns, "tuntap", "add", "dev", "uvt1", "mode", "tap",
                        "multi_queue"], check=True)
        server = subprocess.Popen(inns + [exe, "net", "--socket-path=" + sock, "--tap=uvt1",
                                          "--queues=2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            check("serves_existing_multiqueue_tap", wait_for_socket(sock, server))
        finally:
            rc = stop(server)
            check("tap_server_sigterm_exits_zero", rc == 0, "exit %s" % rc)
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def front_end(sock):
    server = serve(["--socket-path=" + sock, "--backend=reflect", "--queues=2", "--mtu=1500"])
    try:
        up = wait_for_socket(sock, server)
        check("serves_reflect_on_socket", up)
        if not up:
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        # wait_for_socket's probe was a connection of its own: the backend
        # serves one at a time, so retry until this one is the served one.
        deadline = time.monotonic() + 10
        while True:
            try:
                s.connect(sock)
                feats = u64(request(s, GET_FEATURES, reply=True))
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                time.sleep(0.05)
        check("offers_protocol_features", bool(feats & F_PROTOCOL_FEATURES), hex(feats))
        pf = u64(request(s, GET_PROTOCOL_FEATURES, reply=True))
        check("offers_mq_and_net_mtu", (pf & PF_MQ) and (pf & PF_NET_MTU), hex(pf))
        request(s, SET_PROTOCOL_FEATURES, struct.pack("<Q", pf & (PF_MQ | PF_REPLY_ACK | PF_NET_MTU)))
        pairs = u64(request(s, GET_QUEUE_NUM, reply=True))
        check("get_queue_num_counts_pairs", pairs == 2, "GET_QUEUE_NUM said %d" % pairs)
        request(s, SET_OWNER)
        # QEMU's host_mtu reaches the backend as NET_SET_MTU (REPLY_ACK: 0 is success).
        ack = u64(request(s, NET_SET_MTU, struct.pack("<Q", 1400), flags=VERSION | NEED_REPLY,
                          reply=True))
        check("net_set_mtu_in_range_accepted", ack == 0, "ack %d" % ack)
        ack = u64(request(s, NET_SET_MTU, struct.pack("<Q", 40), flags=VERSION | NEED_REPLY,
                          reply=True))
        check("net_set_mtu_below_68_refused", ack != 0, "ack %d" % ack)
        # Ring 4 is the rx ring of a third pair: --queues=2 has two.
        ack = u64(request(s, SET_VRING_NUM, struct.pack("<II", 4, 256), flags=VERSION | NEED_REPLY,
                          reply=True))
        check("ring_beyond_pairs_refused", ack != 0, "ack %d" % ack)
        s.close()

        os.kill(server.pid, signal.SIGUSR1)
        time.sleep(0.5)
        rc = stop(server)
        err = server.stderr.read()
        check("sigterm_exits_zero", rc == 0, "exit %s: %s" % (rc, err))
        check("log_names_pairs_beyond_queues",
              "asks for more queue pairs than the 2 this device serves" in err, err)
        check("counters_on_sigusr1_and_exit", err.count("uvirtio net: counters tx_packets=") == 2, err)
        check("socket_removed_on_exit", not os.path.exists(sock))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def man_page_lists_every_option():
    """Every option `uvirtio net --help` names is in the man page."""
    import re
    page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "man",
                        "uvirtio-net.1")
    with open(page) as f:
        man = f.read().replace("\\-", "-")
    helptext = run(["--help"]).stdout
    opts = sorted(set(re.findall(r"--[a-z][a-z-]*", helptext)))
    missing = [o for o in opts if o not in man]
    check("man_page_lists_every_option", opts and not missing, "missing: %s" % missing)


def capabilities():
    p = run(["--print-capabilities"])
    check("print_capabilities_type_net", p.returncode == 0 and '"type": "net"' in p.stdout, p.stdout)


with tempfile.TemporaryDirectory() as d:
    sock = os.path.join(d, "net.sock")
    usage_errors(sock)
    capabilities()
    man_page_lists_every_option()
    tap_errors(sock)
    front_end(sock)

print("1..%d" % len(results))
for i, (name, ok, detail, skipped) in enumerate(results, 1):
    if skipped:
        print("ok %d - %s # SKIP %s" % (i, name, detail))
    else:
        print("%s %d - %s%s" % ("ok" if ok else "not ok", i, name, "" if ok else " # " + detail))
sys.exit(0 if all(ok for _, ok, _, _ in results) else 1)
