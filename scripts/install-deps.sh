#!/bin/sh
# Installs the Debian 12 packages that building and testing uvirtio need,
# if any is missing. Needs root for apt-get (run it as root, or install the
# packages listed below yourself).
set -eu

# liburing: the blk device's file backend. qemu-system-x86, qemu-system-common
# (qemu-storage-daemon), linux-image-amd64 and busybox-static: the tests that
# boot a real Linux guest against `uvirtio blk`. dpdk-dev (dpdk-testpmd):
# testpmd as the front-end of `uvirtio net`; ethtool: the guest net tests
# (`ethtool -L eth0 combined N`, copied into the initramfs); iproute2: their
# network namespaces and taps.
packages="meson ninja-build gcc clang libclang-rt-14-dev pkg-config python3 linux-libc-dev
	liburing-dev qemu-system-x86 qemu-system-common qemu-utils linux-image-amd64 busybox-static
	dpdk-dev ethtool iproute2"
[ "${UVIRTIO_DEPS_EXTRA:-}" ] && packages="$packages $UVIRTIO_DEPS_EXTRA"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "uvirtio: missing Debian packages:$missing; install them as root (apt-get install$missing)" >&2
	exit 1
fi
echo "uvirtio: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
