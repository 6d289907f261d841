// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "blk_priv.h"

/* Written when the filesystem can neither zero nor punch a range. */
static const char zeroes[65536];

static int open_image(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int blk_backend_open(struct blk_dev *blk, const struct uvirtio_blk_dev_config *cfg,
		     uint32_t *logical, uint32_t *physical)
{
	int flags = cfg->read_only ? O_RDONLY : O_RDWR;
	uint64_t bytes = 0;
	struct stat st;
	int fd;

	*logical = *physical = BLK_SECTOR;
	blk->fd = blk->buffered_fd = -1;
	if (cfg->backend == UVIRTIO_BLK_BACKEND_NULL) {
		blk->capacity = cfg->null_capacity / BLK_SECTOR;
		return 0;
	}
	if (cfg->backend != UVIRTIO_BLK_BACKEND_FILE || !cfg->path)
		return -EINVAL;
	/* A read-only image opened for writing fails here with EACCES or
	 * EROFS: the caller learns it must ask for read_only. */
	fd = open_image(cfg->path, flags | (cfg->direct ? O_DIRECT : 0));
	if (fd < 0)
		return fd;
	blk->fd = fd;
	if (fstat(fd, &st) < 0)
		goto fail_errno;
	if (S_ISBLK(st.st_mode)) {
		int lbs = 0;
		unsigned pbs = 0;

		blk->is_block_device = true;
		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0 || ioctl(fd, BLKSSZGET, &lbs) < 0 ||
		    ioctl(fd, BLKPBSZGET, &pbs) < 0)
			goto fail_errno;
		if (lbs >= (int)BLK_SECTOR)
			*logical = (uint32_t)lbs;
		if (pbs >= *logical)
			*physical = pbs;
	} else if (S_ISREG(st.st_mode)) {
		bytes = (uint64_t)st.st_size;
	} else {
		blk_backend_close(blk);
		return -EINVAL;
	}
	blk->capacity = bytes / BLK_SECTOR;
	if (cfg->direct) {
		/* A request whose buffers O_DIRECT cannot take goes through a
		 * second, buffered descriptor of the same file. */
		blk->direct_align = *logical;
		fd = open_image(cfg->path, flags);
		if (fd < 0) {
			blk_backend_close(blk);
			return fd;
		}
		blk->buffered_fd = fd;
	}
	return 0;

fail_errno:
	fd = -errno;
	blk_backend_close(blk);
	return fd;
}

void blk_backend_close(struct blk_dev *blk)
{
	if (blk->fd >= 0)
		close(blk->fd);
	if (blk->buffered_fd >= 0)
		close(blk->buffered_fd);
	blk->fd = blk->buffered_fd = -1;
}

bool blk_backend_direct_ok(const struct blk_dev *blk, const struct iovec *iov, unsigned n,
			   uint64_t off)
{
	uintptr_t mask = blk->direct_align - 1;

	if (off & mask)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & mask)
			return false;
	return true;
}

/* Drop @bytes from the front of an iovec array. */
static void advance(struct iovec **iov, unsigned *n, size_t bytes)
{
	while (*n && bytes >= (*iov)->iov_len) {
		bytes -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n && bytes) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + bytes;
		(*iov)->iov_len -= bytes;
	}
}

int blk_backend_rw_sync(struct blk_dev *blk, bool write, struct iovec *iov, unsigned n,
			uint64_t off, uint32_t len, bool dsync, struct uvirtio_blk_dev_stats *st)
{
	int fd = blk->fd;
	uint32_t done = 0;

	if (blk->backend == UVIRTIO_BLK_BACKEND_NULL)
		return 0;
	if (blk->direct && !blk_backend_direct_ok(blk, iov, n, off)) {
		fd = blk->buffered_fd;
		blk_count(&st->direct_fallbacks, 1);
	}
	while (done < len) {
		/* The kernel takes at most IOV_MAX iovecs a call; the rest go
		 * round again as a short transfer would. */
		int cnt = n > IOV_MAX ? IOV_MAX : (int)n;
		ssize_t got = write ? pwritev2(fd, iov, cnt, (off_t)(off + done), dsync ? RWF_DSYNC : 0)
				    : preadv(fd, iov, cnt, (off_t)(off + done));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EINVAL && fd == blk->fd && blk->direct) {
			fd = blk->buffered_fd;
			blk_count(&st->direct_fallbacks, 1);
			continue;
		}
		if (got < 0)
			return -errno;
		/* The image shrank under us: the sectors asked for are gone. */
		if (got == 0)
			return -EIO;
		done += (uint32_t)got;
		advance(&iov, &n, (size_t)got);
	}
	return 0;
}

int blk_backend_flush_sync(struct blk_dev *blk)
{
	if (blk->backend == UVIRTIO_BLK_BACKEND_NULL)
		return 0;
	return fdatasync(blk->fd) < 0 ? -errno : 0;
}

static int write_zeroes_by_hand(int fd, uint64_t off, uint64_t len)
{
	while (len) {
		size_t chunk = len < sizeof(zeroes) ? (size_t)len : sizeof(zeroes);
		ssize_t got = pwrite(fd, zeroes, chunk, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		off += (uint64_t)got;
		len -= (uint64_t)got;
	}
	return 0;
}

static int file_range(struct blk_dev *blk, uint32_t type, bool unmap, uint64_t off,
		      uint64_t len)
{
	/* fallocate goes through the buffered descriptor when there is one:
	 * the hand-written fallback's buffer is not aligned for O_DIRECT. */
	int fd = blk->buffered_fd >= 0 ? blk->buffered_fd : blk->fd;

	if (type == VIRTIO_BLK_T_DISCARD) {
		/* Discard is a hint: a filesystem that cannot punch holes keeps
		 * the data, which the spec allows. */
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 &&
		    errno != EOPNOTSUPP)
			return -errno;
		return 0;
	}
	/* A punched hole reads back as zeroes, so it serves a write zeroes
	 * that allows unmapping; ZERO_RANGE keeps the blocks allocated. */
	if (unmap && !fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return 0;
	if (!fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	return write_zeroes_by_hand(fd, off, len);
}

int blk_backend_discard_sync(struct blk_dev *blk, uint32_t type,
			     const struct virtio_blk_discard_write_zeroes *segs, unsigned n)
{
	if (blk->backend == UVIRTIO_BLK_BACKEND_NULL)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		/* The segments were checked against the capacity already. */
		uint64_t off = le64toh(segs[i].sector) * BLK_SECTOR;
		uint64_t len = (uint64_t)le32toh(segs[i].num_sectors) * BLK_SECTOR;
		bool unmap = le32toh(segs[i].flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		int ret;

		if (!len)
			continue;
		if (blk->is_block_device) {
			uint64_t range[2] = { off, len };

			ret = ioctl(blk->fd, type == VIRTIO_BLK_T_DISCARD ? BLKDISCARD : BLKZEROOUT,
				    range) < 0 ? -errno : 0;
			if (ret == -EOPNOTSUPP && type == VIRTIO_BLK_T_DISCARD)
				ret = 0;
		} else {
			ret = file_range(blk, type, unmap, off, len);
		}
		if (ret)
			return ret;
	}
	return 0;
}
