/*
 * rawwrite: issue one write to a block device and print how it ended, for the
 * guest's readonly scenario. Built static and put in the initramfs.
 *
 *   rawwrite setrw-pwrite DEV   BLKROSET 0 (as blockdev --setrw), then a 4 KiB
 *                               O_DIRECT pwrite at offset 0
 *   rawwrite mmap-msync DEV     a shared writable mapping of the first 4 KiB,
 *                               dirtied and written back with msync(MS_SYNC)
 *
 * Prints "rawwrite: <op>: ok" or "rawwrite: <op>: <ERRNO-NAME> (<message>)"
 * and exits 0 only when the write succeeded.
 *
 * On a disk with VIRTIO_BLK_F_RO, Linux 6.1 refuses both itself: pwrite with
 * EPERM (blkdev_write_iter checks bdev_read_only(), which BLKROSET 0 cannot
 * clear because set_disk_ro() marked the whole disk) and a shared writable
 * mapping with EINVAL. Neither reaches the device; the guest's readonly
 * scenario uses swap to send the device writes it must refuse itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *errno_name(int e)
{
	switch (e) {
	case EIO: return "EIO";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EROFS: return "EROFS";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOSPC: return "ENOSPC";
	default: return "OTHER";
	}
}

static int report(const char *op, int err)
{
	if (err == 0) {
		printf("rawwrite: %s: ok\n", op);
		return 0;
	}
	printf("rawwrite: %s: %s (%s)\n", op, errno_name(err), strerror(err));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: rawwrite setrw-pwrite|mmap-msync DEV\n");
		return 2;
	}
	const char *op = argv[1];
	if (strcmp(op, "setrw-pwrite") == 0) {
		int fd = open(argv[2], O_RDWR | O_DIRECT);
		if (fd < 0)
			return report("open", errno);
		int ro = 0;
		if (ioctl(fd, BLKROSET, &ro) < 0)
			return report("BLKROSET", errno);
		void *buf;
		if (posix_memalign(&buf, 4096, 4096) != 0)
			return report(op, ENOMEM);
		memset(buf, 0x5a, 4096);
		ssize_t n = pwrite(fd, buf, 4096, 0);
		return report(op, n == 4096 ? 0 : n < 0 ? errno : EIO);
	}
	if (strcmp(op, "mmap-msync") == 0) {
		int fd = open(argv[2], O_RDWR);
		if (fd < 0)
			return report("open", errno);
		unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			return report("mmap", errno);
		for (int i = 0; i < 4096; i++)
			p[i] ^= 0xff;
		return report(op, msync(p, 4096, MS_SYNC) < 0 ? errno : 0);
	}
	fprintf(stderr, "rawwrite: unknown operation %s\n", op);
	return 2;
}
