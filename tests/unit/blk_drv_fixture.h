/* SPDX-License-Identifier: MIT */
/* Fixtures of the virtio-blk driver tests (test_blk_drv.c, test_blk_drv_io.c):
 * a small disk in memory served on the loopback device thread, the real blk
 * device on a temporary image, and a worker that keeps many requests in
 * flight on one queue. */
#ifndef UVIRTIO_TESTS_BLK_DRV_FIXTURE_H
#define UVIRTIO_TESTS_BLK_DRV_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/loopback.h"

/* A small disk in memory. It answers as a well-behaved device unless told
 * to break one rule. */

#define MD_SECTORS 2048u /* 1 MiB */
#define MD_QSIZE 64u
#define MD_IOV 160u

enum md_mode {
	MD_HONEST,
	MD_HOLD,           /* keep every request until reset or released */
	MD_BAD_STATUS,     /* status byte 7, which no spec version defines */
	MD_STATUS_IOERR,
	MD_STATUS_UNSUPP,
	MD_LEN_TOO_LONG,   /* used length one past the writable part */
	MD_LEN_SHORT,      /* used length that stops before the status byte */
	MD_ID_UNSUBMITTED, /* used id of a head that is not in flight */
	MD_UNSUPP_ONE_BYTE, /* UNSUPP, counting only the status byte as written */
};

struct md_held {
	uint16_t id;
	uint16_t queue;
	uint32_t in_len;
	uint8_t *status;
};

struct memdisk {
	struct uvirtio_device dev;
	struct uvirtio_device_ops ops;
	struct virtio_blk_config config;
	enum md_mode mode;
	unsigned char data[MD_SECTORS * 512];
	struct iovec iov[MD_IOV];
	struct md_held held[2 * MD_QSIZE];
	unsigned nheld;
	/* Counted as taken, by type. */
	unsigned reads, writes, flushes, discards, write_zeroes, get_ids;
	unsigned max_segments; /* most data segments seen in one request */
};

struct env {
	struct uvirtio_loopback *lb;
	struct memdisk *md;
	struct uvirtio_transport *t;
};

struct async_ctx {
	struct uvirtio_blk_drv *b;
	unsigned queue;
	unsigned char *buf; /* this thread's area: NREQ * 4096 bytes */
	unsigned done, errors;
	int result;
};

#define NREQ 48u

#define DISK_BYTES (4u << 20)

struct real {
	struct uvirtio_loopback *lb;
	struct uvirtio_blk_dev *dev;
	struct uvirtio_transport *t;
	char path[64];
	int fd; /* the image, for pread */
};

/* The memdisk behind a loopback, started with @mode and MD_FEATURES plus
 * @extra_features offered. */
int env_start(struct env *e, uint64_t extra_features, enum md_mode mode);
void env_stop(struct env *e);

/* For uvirtio_loopback_run_on_device(): complete every held request OK,
 * say the device needs a reset, set the mode (@arg: enum md_mode *), copy
 * the whole memdisk into @arg (a struct memdisk). */
int md_release(struct uvirtio_device *dev, void *arg);
int md_needs_reset(struct uvirtio_device *dev, void *arg);
int md_set_mode(struct uvirtio_device *dev, void *arg);
int md_snapshot(struct uvirtio_device *dev, void *arg);

extern const struct uvirtio_blk_drv_opts two_queues;

void fill(unsigned char *p, size_t n, unsigned seed);
bool all_zero(const unsigned char *p, size_t n);

/* A request callback counting into the struct async_ctx in its opaque. */
void count_done(struct uvirtio_blk_drv_req *req);
/* A thread (@arg: struct async_ctx): writes NREQ 4 KiB blocks at once, then
 * reads them back the same way; the outcome in ->result. */
void *async_worker(void *arg);
/* One async_worker on each of queues 0 and 1 of @b, each with its own
 * buffer filled from @seed + queue, run to the end. 0 once both ran (their
 * outcomes in c[i].result; -ECANCELED for one that did not run), else a
 * negative errno. */
int async_run_two_queues(struct uvirtio_blk_drv *b, struct async_ctx c[2], unsigned seed);

/* The real blk device on loopback: a file backend gets a new image of
 * DISK_BYTES, already unlinked. */
int real_start(struct real *r, struct uvirtio_blk_dev_config cfg);
void real_stop(struct real *r);
/* Whether the image holds @p at @sector. */
bool file_has(struct real *r, uint64_t sector, const void *p, size_t len);

#endif
