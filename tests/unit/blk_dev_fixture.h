/* SPDX-License-Identifier: MIT */
/* Fixtures of the virtio-blk device tests (test_blk_dev.c,
 * test_blk_dev_queues.c): the blk device on loopback beside a driver that
 * builds raw requests, and the test's own view of the image. */
#ifndef UVIRTIO_TESTS_BLK_DEV_FIXTURE_H
#define UVIRTIO_TESTS_BLK_DEV_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/driver.h"
#include "uvirtio/loopback.h"

#define IMAGE_SIZE (4u << 20)
#define SECTORS (IMAGE_SIZE / 512)
#define WAIT_MS 20000 /* a hang guard, not a measurement */

#define ALL_BLK_FEATURES                                                                        \
	(UVIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |               \
	 UVIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | UVIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |              \
	 UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |               \
	 UVIRTIO_BIT(VIRTIO_BLK_F_MQ) | UVIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |                     \
	 UVIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) | UVIRTIO_BIT(VIRTIO_BLK_F_RO) |                \
	 UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC))

struct env {
	struct uvirtio_loopback *lb;
	struct uvirtio_blk_dev blk;
	struct uvirtio_driver drv;
	struct uvirtio_transport *t;
	struct uvirtio_dma *dma;
	char path[64];
	int fd; /* the test's own view of the image */
	/* Per queue, a header and a status byte that only that queue's
	 * requests use: a buffer that moved from one queue thread to another
	 * would be synchronised only through the ring, which TSan cannot see
	 * across the loopback's two mappings of guest memory. */
	struct virtio_blk_outhdr *hdr[4];
	uint8_t *st[4];
	bool have_blk, have_drv;
};

/* The device on a loopback with @cfg (a file backend without a path gets a
 * new image of IMAGE_SIZE, open as e->fd), a driver with @wanted features
 * and @nq queues of @sizes (NULL: the largest), DRIVER_OK. env_start_with:
 * the largest queues; env_start: every feature, cfg->num_queues queues.
 * Return: 0 or a negative errno (env_stop() cleans up either way). */
int env_start_sized(struct env *e, struct uvirtio_blk_dev_config *cfg, uint64_t wanted,
		    unsigned nq, const unsigned *sizes);
int env_start_with(struct env *e, struct uvirtio_blk_dev_config *cfg, uint64_t wanted,
		   unsigned nq);
int env_start(struct env *e, struct uvirtio_blk_dev_config *cfg);
void env_stop(struct env *e);

/* Shared memory of @n bytes, 4096-aligned. */
void *dalloc(struct env *e, size_t n);
/* A new request header in shared memory. */
struct virtio_blk_outhdr *make_hdr(struct env *e, uint32_t type, uint64_t sector);

/* Wait for one used buffer on queue @qi. Return: 1, or what went wrong. */
int wait_one(struct env *e, unsigned qi, void **token, uint32_t *len);
/* Make one request available on queue @qi and wait for it.
 * Return: the used length, or a negative errno. */
long run(struct env *e, unsigned qi, const struct iovec *out, unsigned nout,
	 const struct iovec *in, unsigned nin);
/* A read (IN) or write (OUT) of @len bytes at @buf, with queue @qi's own
 * header and status byte; the status in @status. */
long rw(struct env *e, unsigned qi, uint32_t type, uint64_t sector, void *buf, size_t len,
	uint8_t *status);
/* A request of @type with @nseg segments and nothing else. */
long segments(struct env *e, uint32_t type, const struct virtio_blk_discard_write_zeroes *segs,
	      unsigned nseg, uint8_t *status);
struct virtio_blk_discard_write_zeroes seg(uint64_t sector, uint32_t num, uint32_t flags);

void fill(void *p, size_t len, unsigned seed);
/* Whether the image holds @want (or zeroes) at byte @off. */
bool file_is(struct env *e, uint64_t off, const void *want, size_t len);
bool file_is_zero(struct env *e, uint64_t off, size_t len);
struct uvirtio_blk_dev_stats stats(struct env *e);

#endif
