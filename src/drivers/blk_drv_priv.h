/* SPDX-License-Identifier: MIT */
/*
 * Private to the blk driver, which is two files:
 *   blk.c      probe and remove: negotiating, reading config space, setting
 *              the queues and their request slots up, the buffer helpers,
 *              the cache mode and the getters;
 *   blk_req.c  requests: checking and submitting them, completing them, and
 *              the synchronous calls that wait for one.
 */
#ifndef UVIRTIO_BLK_DRV_PRIV_H
#define UVIRTIO_BLK_DRV_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/blk_drv.h"
#include "uvirtio/dma.h"

/* What a request slot keeps in shared memory: the parts of a request that
 * are not the caller's data. One cache line, so slots share none. */
struct slot_mem {
	struct virtio_blk_outhdr hdr;
	struct virtio_blk_discard_write_zeroes range;
	char id[VIRTIO_BLK_ID_BYTES];
	uint8_t status;
} __attribute__((aligned(64)));

/* Private per-slot state, never in shared memory. */
struct slot {
	struct slot_mem *mem;
	struct uvirtio_blk_drv_req *req; /* NULL: free, or orphaned by a time-out */
	uint32_t in_len;                 /* writable bytes offered: what the device must report */
	uint16_t next_free;
	bool busy;                       /* with the device */
	uint64_t seq;                    /* submission order, for a resubmit */
};

struct uvirtio_blk_drv_queue {
	struct uvirtio_drvq *vq;
	struct slot *slots;
	struct slot_mem *mem;   /* in shared memory, one per slot */
	unsigned nslots;
	uint16_t free_head;
	unsigned nfree;
	unsigned seg_max;       /* data segments per request this queue takes */
	struct iovec *scratch;  /* the chain being added: seg_max + 2 entries */
	int call_fd;            /* the transport's used-buffer fd */
	int epoll_fd;           /* what event_fd gives out: call_fd, config fd, dead_fd */
	uint64_t next_seq;      /* the next slot's seq */
};

struct blk_drv {
	struct uvirtio_driver drv;
	struct uvirtio_transport *t; /* set at probe */
	struct uvirtio_blk_drv_limits limits;
	bool read_only;
	bool writeback;
	unsigned num_queues;
	struct uvirtio_blk_drv_queue *queues;
	int config_fd; /* the transport's config-change fd */
	int dead_fd;   /* an eventfd made readable for good when the device needs a reset */
	bool dead;     /* the device set DEVICE_NEEDS_RESET (atomic) */
};
UVIRTIO_OPAQUE_FITS(struct blk_drv, struct uvirtio_blk_drv);

static inline struct blk_drv *blk_drv_of(struct uvirtio_blk_drv *p)
{
	return (struct blk_drv *)p;
}

static inline const struct blk_drv *blk_drv_of_const(const struct uvirtio_blk_drv *p)
{
	return (const struct blk_drv *)p;
}

static inline struct uvirtio_dma *dma_of(struct blk_drv *b)
{
	return b->t->ops->dma(b->t);
}

static inline bool is_dead(struct blk_drv *b)
{
	return __atomic_load_n(&b->dead, __ATOMIC_ACQUIRE);
}

#endif
