/* SPDX-License-Identifier: MIT */
/*
 * Private to the blk device, which is three files:
 *   blk_req.c      looking at a request (no threads, no I/O: fuzzable) and
 *                  serving one synchronously;
 *   blk_backend.c  what a backend (a file or block device, or nothing at
 *                  all) does outside io_uring: opening and sizing the image,
 *                  synchronous reads and writes, and discard and write
 *                  zeroes, which the spec lets a device do synchronously;
 *   blk.c          queue threads over io_uring, device ops, set-up.
 */
#ifndef UVIRTIO_BLK_PRIV_H
#define UVIRTIO_BLK_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/blk_dev.h"

/* Shared between the blk files but not part of the library's interface. */
#define BLK_HIDDEN __attribute__((visibility("hidden")))

#define BLK_SECTOR 512u

struct uvirtio_blk_queue; /* one per queue, with its thread (blk.c) */

struct blk_dev {
	struct uvirtio_device dev;     /* uvirtio_blk_dev_device() hands it out */
	struct virtio_blk_config config; /* config space, little-endian */
	struct uvirtio_device_ops ops;   /* per device: features and queue count vary */

	/* Set at init, read-only afterwards. */
	enum uvirtio_blk_backend backend;
	uint64_t capacity;             /* in 512-byte sectors */
	bool read_only, direct, poll;
	uint64_t poll_ns; /* 0: no polling before a sleep */
	bool is_block_device;
	int fd;                        /* the image; -1 for the null backend */
	int buffered_fd;               /* with direct: the image without O_DIRECT */
	unsigned direct_align;         /* with direct: iovec alignment O_DIRECT needs */
	unsigned seg_max;
	uint8_t initial_wce;
	char serial[VIRTIO_BLK_ID_BYTES];

	/* The write cache is on: read by queue threads, written by the control
	 * thread (start, config writes, reset). Accessed atomically. */
	bool writeback;

	struct uvirtio_blk_queue *queues;
};
UVIRTIO_OPAQUE_FITS(struct blk_dev, struct uvirtio_blk_dev);

static inline struct blk_dev *blk_dev_of(struct uvirtio_blk_dev *p)
{
	return (struct blk_dev *)p;
}

static inline const struct blk_dev *blk_dev_of_const(const struct uvirtio_blk_dev *p)
{
	return (const struct blk_dev *)p;
}


#define BLK_HDR_LEN ((uint32_t)sizeof(struct virtio_blk_outhdr))
#define BLK_SEG_LEN ((uint32_t)sizeof(struct virtio_blk_discard_write_zeroes))
/* Bounds the segment scratch array of a DISCARD / WRITE_ZEROES request. */
#define BLK_DISCARD_SEG_LIMIT 256u

/* What a request asks the device to do: answer at once, or do I/O. */
enum blk_action { ANSWER, DO_READ, DO_WRITE, DO_FLUSH, DO_DISCARD };

/* What looking at a request decided. */
struct blk_parsed {
	uint32_t type;
	uint8_t *status;     /* the last writable byte; NULL when there is none */
	uint8_t answer;      /* with ANSWER: the status to write */
	uint32_t used;       /* with ANSWER: the used length */
	struct iovec *data;  /* DO_READ / DO_WRITE: the data part of req->iov */
	unsigned ndata;
	uint64_t off;        /* bytes */
	uint32_t len;        /* bytes of data */
	unsigned nsegs;      /* DO_DISCARD: segments copied out of guest memory */
};

/* For tests (tests/support/devices_internal.h): the ops table the device
 * gave the device core. */
BLK_HIDDEN const struct uvirtio_device_ops *blk_dev_ops(const struct uvirtio_blk_dev *blk);

/* Whether feature @bit was negotiated. */
BLK_HIDDEN bool blk_has(const struct blk_dev *blk, unsigned bit);

/* Look at @req: check it against every rule, copy its header and segments
 * (into @segs, BLK_DISCARD_SEG_LIMIT entries) out of guest memory once, and
 * trim req->iov to the data part. Writes guest memory only for GET_ID,
 * inside the writable iovecs. Counts the request's type in @st. */
BLK_HIDDEN enum blk_action blk_parse(struct blk_dev *blk, struct uvirtio_req *req,
				     struct blk_parsed *p,
				     struct virtio_blk_discard_write_zeroes *segs,
				     struct uvirtio_blk_dev_stats *st);

/* Write the status byte blk_parse() decided (for ANSWER) and count it.
 * Return: the used length. */
BLK_HIDDEN uint32_t blk_write_status(struct blk_parsed *p, struct uvirtio_blk_dev_stats *st);

/* A request whose work ended with @err (0 or a negative errno), having
 * written @data bytes of its writable part: write its status, count it.
 * Return: the used length. */
BLK_HIDDEN uint32_t blk_finish(struct blk_parsed *p, struct uvirtio_blk_dev_stats *st, int err,
			       uint32_t data);

/* Discard or write zeroes @p's segments, durably in writethrough mode.
 * Return: 0 or a negative errno. */
BLK_HIDDEN int blk_do_discard(struct blk_dev *blk, struct blk_parsed *p,
			      const struct virtio_blk_discard_write_zeroes *segs);

/* Whether the write cache is on (a queue thread asks; the control thread
 * switches it). */
BLK_HIDDEN bool blk_writeback(const struct blk_dev *blk);

/* Backends. */

/* Open @cfg's image into @blk (fd, buffered_fd, capacity, block sizes).
 * Return: 0 or a negative errno (see uvirtio_blk_dev_init()). */
BLK_HIDDEN int blk_backend_open(struct blk_dev *blk, const struct uvirtio_blk_dev_config *cfg,
		     uint32_t *logical, uint32_t *physical);

/* Close what blk_backend_open() opened. */
BLK_HIDDEN void blk_backend_close(struct blk_dev *blk);

/* Whether O_DIRECT can take this transfer as it is: every iovec's address
 * and length, and the offset, aligned to what the device needs. */
BLK_HIDDEN bool blk_backend_direct_ok(const struct blk_dev *blk, const struct iovec *iov, unsigned n,
			   uint64_t off);

/* Read (@write false) or write @len bytes at @off with @iov (rewritten as it
 * goes). Return: 0, or a negative errno (-EIO for an end of file). */
BLK_HIDDEN int blk_backend_rw_sync(struct blk_dev *blk, bool write, struct iovec *iov, unsigned n,
			uint64_t off, uint32_t len, bool dsync, struct uvirtio_blk_dev_stats *st);

/* fdatasync the image. Return: 0 or a negative errno. */
BLK_HIDDEN int blk_backend_flush_sync(struct blk_dev *blk);

/* Discard (@type VIRTIO_BLK_T_DISCARD) or zero (VIRTIO_BLK_T_WRITE_ZEROES)
 * @n checked segments. Return: 0 or a negative errno. */
BLK_HIDDEN int blk_backend_discard_sync(struct blk_dev *blk, uint32_t type,
			     const struct virtio_blk_discard_write_zeroes *segs, unsigned n);

/* A counter only its queue's thread writes, read by any thread. */
static inline void blk_count(uint64_t *counter, uint64_t n)
{
	__atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

#endif
