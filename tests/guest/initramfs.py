#!/usr/bin/env python3
"""Build the guest initramfs: busybox, the virtio (blk, net) and ext2 modules,
ethtool with its shared libraries, three small static helpers (rawwrite,
nettool, migload) and the scenario script (init).

    python3 initramfs.py [--kernel-version=VER] OUT.cpio.gz

run.py imports build_cached() and keeps one archive per kernel version and
content hash, so an edit to init or a helper's .c rebuilds it.
"""

import argparse
import glob
import gzip
import hashlib
import os
import re
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUSYBOX = "/bin/busybox"
# `ethtool -L eth0 combined N` for the net scenarios (Debian package ethtool),
# dynamically linked: its libraries (ldd) come along.
ETHTOOL = "/usr/sbin/ethtool"
# Static helpers compiled from tests/guest/NAME.c into /bin/NAME.
HELPERS = ["rawwrite", "nettool", "migload"]

# What the guest needs; modules.dep supplies everything these depend on.
# ext4 serves "ext2" (CONFIG_EXT4_USE_FOR_EXT2), which busybox mke2fs makes;
# crc32c_generic is requested through the crypto API, not modules.dep.
# virtio_net brings failover and net_failover (modules.dep).
WANTED_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4"]


class MissingTool(Exception):
    """A package the README installs (the kernel, busybox-static, QEMU) is
    missing: the test is skipped, except in CI, where it fails."""


class HarnessError(Exception):
    """Something of the project's own is wrong (a file missing, a helper that
    does not compile): always a failure, never a skip."""


def find_kernel(kernel=None):
    """Return (vmlinuz path, version) of the given or the newest Debian 6.1 kernel."""
    if kernel is None:
        found = sorted(glob.glob("/boot/vmlinuz-6.1.0-*-amd64"))
        if not found:
            found = sorted(glob.glob("/boot/vmlinuz-*"))
        if not found:
            raise MissingTool("no kernel in /boot")
        kernel = found[-1]
    if not os.access(kernel, os.R_OK):
        raise MissingTool(f"{kernel} is not readable")
    version = os.path.basename(kernel)[len("vmlinuz-"):]
    if not os.path.isdir(f"/lib/modules/{version}"):
        raise MissingTool(f"no /lib/modules/{version} for {kernel}")
    return kernel, version


def module_order(version, wanted=WANTED_MODULES):
    """Paths of the wanted modules and their dependencies, each after what it needs."""
    moddir = f"/lib/modules/{version}"
    deps = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()

    def name_of(path):
        base = os.path.basename(path)
        return re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base).replace("-", "_")

    by_name = {name_of(p): p for p in deps}
    order = []

    def visit(path):
        if path in order:
            return
        # modules.dep lists every dependency, indirect ones too, but not in
        # load order: visit each one's own dependencies first.
        for dep in deps[path]:
            visit(dep)
        order.append(path)

    for name in wanted:
        if name not in by_name:
            raise MissingTool(f"module {name} not in {moddir}/modules.dep")
        visit(by_name[name])
    return [os.path.join(moddir, p) for p in order]


def read_module(path):
    """A module's bytes, uncompressed: busybox insmod takes only plain .ko files."""
    if path.endswith(".ko"):
        with open(path, "rb") as f:
            return f.read()
    if path.endswith(".ko.xz"):
        import lzma
        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".ko.gz"):
        with gzip.open(path) as f:
            return f.read()
    if path.endswith(".ko.zst"):
        return subprocess.run(["zstd", "-dc", path], check=True,
                              stdout=subprocess.PIPE).stdout
    raise HarnessError(f"unknown module format: {path}")


def build_helper(workdir, name):
    """Compile a static helper: rawwrite (the writes busybox cannot try:
    BLKROSET, mmap), nettool (a data generator, raw frames) or migload (the
    migration test's write/verify load)."""
    src = os.path.join(HERE, name + ".c")
    out = os.path.join(workdir, name)
    cc = os.environ.get("CC", "cc")
    try:
        subprocess.run([cc, "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, src],
                       check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise HarnessError(f"cannot build a static {name}.c with {cc}: {e}")
    with open(out, "rb") as f:
        return f.read()


def shared_libs(binary):
    """The shared libraries `binary` loads, as (path in the guest, real file):
    what ldd resolves, the dynamic loader included."""
    try:
        out = subprocess.run(["ldd", binary], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise MissingTool(f"ldd {binary} failed: {e}")
    libs = []
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append((m.group(1).lstrip("/"), os.path.realpath(m.group(1))))
        elif "=>" in line and "not found" in line:
            raise MissingTool(f"{binary} needs a library that is missing: {line.strip()}")
    return libs


class Cpio:
    """A 'newc' cpio archive, written without root (device nodes included)."""

    def __init__(self):
        self.parts = []
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.parts.append(hdr + name_b)
        self.parts.append(b"\0" * (-(len(hdr) + len(name_b)) % 4))
        self.parts.append(data)
        self.parts.append(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def bytes(self):
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def build(out, version):
    """Write the initramfs for kernel `version` to `out` (gzip-compressed cpio)."""
    if not os.access(BUSYBOX, os.X_OK):
        raise MissingTool(f"{BUSYBOX} not installed (busybox-static)")
    if not os.access(ETHTOOL, os.X_OK):
        raise MissingTool(f"{ETHTOOL} not installed (ethtool)")
    modules = module_order(version)
    with open(os.path.join(HERE, "init"), "rb") as f:
        init = f.read()
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        helpers = {name: build_helper(tmp, name) for name in HELPERS}

    a = Cpio()
    dirs = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys",
            "mnt", "tmp", "etc", "lib", "lib/modules"]
    for d in dirs:
        a.dir(d)
    # The kernel opens /dev/console before init runs, so it must exist before
    # devtmpfs is mounted; without it init has no stdout.
    a.chardev("dev/console", 5, 1)
    a.chardev("dev/null", 1, 3)
    a.file("bin/busybox", busybox, 0o755)
    a.symlink("bin/sh", "busybox")
    for name, data in helpers.items():
        a.file("bin/" + name, data, 0o755)
    with open(ETHTOOL, "rb") as f:
        a.file("usr/sbin/ethtool", f.read(), 0o755)
    for guest_path, real in shared_libs(ETHTOOL):
        parts = guest_path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                a.dir(d)
                dirs.append(d)
        with open(real, "rb") as f:
            a.file(guest_path, f.read(), 0o755)
    names = []
    for path in modules:
        name = os.path.basename(path).split(".ko")[0] + ".ko"
        a.file("lib/modules/" + name, read_module(path))
        names.append(name)
    a.file("lib/modules/load-order", ("\n".join(names) + "\n").encode())
    a.file("init", init, 0o755)

    tmp_out = f"{out}.{os.getpid()}.tmp"
    with gzip.open(tmp_out, "wb", compresslevel=6) as f:
        f.write(a.bytes())
    os.replace(tmp_out, out)
    return names


def build_cached(cache_dir, version):
    """Path of an up-to-date initramfs for `version` in cache_dir, built if needed."""
    h = hashlib.sha256()
    for path in ([os.path.join(HERE, "init"), os.path.abspath(__file__), BUSYBOX, ETHTOOL]
                 + [os.path.join(HERE, n + ".c") for n in HELPERS]):
        try:
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        except OSError as e:
            if path == BUSYBOX:
                raise MissingTool(f"{BUSYBOX} not installed (busybox-static): {e}")
            if path == ETHTOOL:
                raise MissingTool(f"{ETHTOOL} not installed (ethtool): {e}")
            raise HarnessError(f"the project's own {path}: {e}")
    os.makedirs(cache_dir, exist_ok=True)
    out = os.path.join(cache_dir, f"initramfs-{version}-{h.hexdigest()[:12]}.cpio.gz")
    if not os.path.exists(out):
        build(out, version)
        # Older builds for this kernel are stale now; an hour's grace for a
        # run from another checkout that may be about to boot one.
        for old in glob.glob(os.path.join(cache_dir, f"initramfs-{version}-*.cpio.gz")):
            try:
                if old != out and os.path.getmtime(old) < time.time() - 3600:
                    os.unlink(old)
            except OSError:
                pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel-version", help="default: the newest kernel in /boot")
    ap.add_argument("out")
    args = ap.parse_args()
    try:
        version = args.kernel_version or find_kernel()[1]
        names = build(args.out, version)
    except MissingTool as e:
        print(f"initramfs: skipped: {e}", file=sys.stderr)
        return 77
    except HarnessError as e:
        print(f"initramfs: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: kernel {version}, modules: {' '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
