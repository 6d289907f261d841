/* SPDX-License-Identifier: MIT */
/*
 * Between drvq.c (the public driver-side queue API, which checks arguments
 * and picks the layout) and the two layouts' implementations, split_drv.c
 * and packed_drv.c. Not installed.
 */
#ifndef UVIRTIO_DRVQ_PRIV_H
#define UVIRTIO_DRVQ_PRIV_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "uvirtio/drvq.h"
#include "../log/log_priv.h"

/* Private state of a buffer in flight, per head (split) or buffer id (packed). */
struct uvirtio_drvq_slot {
	void *token;     /* NULL when the head / id is free */
	uint32_t in_len; /* writable bytes: the most a device may report */
	uint16_t ndescs; /* ring descriptors held (1 when indirect) */
	uint16_t last;   /* last ring descriptor of the chain */
};

/* The queue behind a struct uvirtio_drvq (drvq.h). */
struct drvq {
	struct uvirtio_dma *dma;
	/* The DMA area's window, cached at create: the add path translates
	 * every part, and uvirtio_dma_addr() is a call into the memory layer
	 * (bench ring: 8% per buffer, split batch 16, indirect). */
	const char *dma_base;
	uint64_t dma_guest_addr;
	size_t dma_size;
	unsigned index; /* queue number, given to the notify callback */
	uint16_t num;
	bool event_idx;
	bool packed;            /* VIRTIO_F_RING_PACKED: the packed layout */
	bool in_order;          /* VIRTIO_F_IN_ORDER */
	bool notification_data; /* VIRTIO_F_NOTIFICATION_DATA (the caller sends it) */

	/* The ring, in shared memory. Split: descriptor table, avail and used
	 * rings. Packed: descriptor ring, driver area (our event suppression,
	 * at avail_addr) and device area (the device's, at used_addr). */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vring_packed_desc *packed_desc;
	struct vring_packed_desc_event *driver_event;
	struct vring_packed_desc_event *device_event;
	uint64_t desc_addr, avail_addr, used_addr; /* guest addresses */
	void *ring_mem;

	/* Indirect tables: one per head (split) or buffer id (packed),
	 * indirect_max descriptors each, so a buffer in flight owns its table
	 * and nothing is allocated per add. */
	union {
		struct vring_desc *indirect_pool;
		struct vring_packed_desc *packed_indirect_pool;
	};
	unsigned indirect_max; /* 0: no indirect descriptors */

	/* Private state. */
	uint16_t *next; /* split: free-list and chain links, mirrored from the
			 * ring; packed: free list of buffer ids */
	struct uvirtio_drvq_slot *slots;
	uint16_t free_head;   /* split: first free descriptor; packed: first free id */
	uint16_t num_free;    /* ring descriptors free */
	uint16_t avail_idx;   /* split: shadow of avail->idx */
	uint16_t avail_flags; /* split: shadow of avail->flags */
	uint32_t num_added;   /* made available since the last kick_prepare
			       * (split: buffers; packed: descriptors) */
	uint16_t last_used;   /* split: next used slot to read; packed: position
			       * of the next used descriptor */
	uint16_t used_seen;   /* split: used->idx as last read */

	/* Packed: the next position to make available and the wrap counters
	 * (both start at 1), and the shadow of the driver area's flags. */
	uint16_t next_avail;
	bool avail_wrap, used_wrap;
	uint16_t event_flags;

	/* IN_ORDER: a used entry covering a batch, being handed out buffer by
	 * buffer: the id it named (the batch's last buffer) and its length. */
	bool batch_pending;
	uint16_t batch_id;
	uint32_t batch_len;

	bool broken;
	const char *broken_reason;

	uvirtio_drvq_notify_fn notify;
	void *notify_opaque;
};
UVIRTIO_OPAQUE_FITS(struct drvq, struct uvirtio_drvq);

static inline struct drvq *drvq_of(struct uvirtio_drvq *q)
{
	return (struct drvq *)q;
}

static inline const struct drvq *drvq_of_const(const struct uvirtio_drvq *q)
{
	return (const struct drvq *)q;
}

/* Marks @q broken for the first rule the device broke, and logs it with the
 * queue's index and @value (what @what names); always -EIO. */
static inline int drvq_broken_at(struct drvq *q, const char *why, const char *what,
				 unsigned long long value)
{
	if (!q->broken) {
		q->broken = true;
		q->broken_reason = why;
		if (what)
			uvirtio_log(UVIRTIO_LOG_ERR, "queue %u: %s (%s %llu); the queue is broken",
				    q->index, why, what, value);
		else
			uvirtio_log(UVIRTIO_LOG_ERR, "queue %u: %s; the queue is broken", q->index, why);
	}
	return -EIO;
}

static inline int drvq_broken(struct drvq *q, const char *why)
{
	return drvq_broken_at(q, why, NULL, 0);
}

/* uvirtio_dma_addr() over the cached window: the guest address of the host
 * range [@p, @p + @len), or -EFAULT when it is not wholly inside the area. */
static inline int drvq_dma_addr(const struct drvq *q, const void *p, size_t len, uint64_t *addr)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)q->dma_base;

	/* Unsigned wrap makes a pointer below the base a huge offset. */
	if (off > q->dma_size || len > q->dma_size - off)
		return -EFAULT;
	*addr = q->dma_guest_addr + off;
	return 0;
}

/* Whether a buffer of @total parts goes into an indirect table; sets
 * *refused when it wanted one but has more parts than a table holds. */
static inline bool drvq_use_indirect(const struct drvq *q, unsigned total, bool *refused)
{
	*refused = false;
	if (!q->indirect_max || total < 2)
		return false;
	if (total <= q->indirect_max)
		return true;
	*refused = true;
	return false;
}

/*
 * A used entry the device wrote, as the copies read once from the ring: the
 * id must name a buffer in flight, the length no more than it can hold.
 * Returns 0, or -EIO with the queue broken for the rule that failed.
 */
static inline int drvq_check_used(struct drvq *q, uint32_t id, uint32_t used_len)
{
	if (id >= q->num)
		return drvq_broken_at(q, "used id out of range", "id", id);
	if (!q->slots[id].token)
		return drvq_broken_at(q, "used id not in flight", "id", id);
	if (used_len > q->slots[id].in_len)
		return drvq_broken_at(q, "used length larger than the buffer", "length", used_len);
	return 0;
}

/* IN_ORDER: the device used every buffer up to @id (checked by the layout)
 * and wrote @used_len for @id alone; get() hands them out one at a time. */
static inline void drvq_batch_start(struct drvq *q, uint16_t id, uint32_t used_len)
{
	q->batch_pending = true;
	q->batch_id = id;
	q->batch_len = used_len;
}

/* The length of the batch's next buffer, @id (the oldest in flight): only
 * its last buffer has a length from the device, the others report all they
 * could hold (the device side only batches those). Ends the batch at its
 * last buffer. */
static inline uint32_t drvq_batch_next_len(struct drvq *q, uint16_t id)
{
	if (id == q->batch_id) {
		q->batch_pending = false;
		return q->batch_len;
	}
	return q->slots[id].in_len;
}

/* Each layout: the ring laid out in @ring (zeroed), private state allocated
 * by drvq.c; add() gets checked arguments (@in_len: writable bytes, the whole
 * buffer fits 32 bits) on a queue that is not broken. */
size_t split_drv_ring_bytes(unsigned num);
void split_drv_init(struct drvq *q, char *ring);
int split_drv_add(struct drvq *q, const struct iovec *out, unsigned n_out,
		  const struct iovec *in, unsigned n_in, void *token, uint32_t in_len);
bool split_drv_kick_prepare(struct drvq *q);
int split_drv_get(struct drvq *q, void **token, uint32_t *len);
void split_drv_disable_cb(struct drvq *q);
bool split_drv_enable_cb(struct drvq *q);
bool split_drv_enable_cb_delayed(struct drvq *q);
void *split_drv_detach_unused(struct drvq *q);

size_t packed_drv_ring_bytes(unsigned num);
void packed_drv_init(struct drvq *q, char *ring);
int packed_drv_add(struct drvq *q, const struct iovec *out, unsigned n_out,
		   const struct iovec *in, unsigned n_in, void *token, uint32_t in_len);
bool packed_drv_kick_prepare(struct drvq *q);
int packed_drv_get(struct drvq *q, void **token, uint32_t *len);
void packed_drv_disable_cb(struct drvq *q);
bool packed_drv_enable_cb(struct drvq *q);
bool packed_drv_enable_cb_delayed(struct drvq *q);
void *packed_drv_detach_unused(struct drvq *q);

#endif
