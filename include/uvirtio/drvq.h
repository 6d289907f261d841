/* SPDX-License-Identifier: MIT */
/*
 * The driver side of a virtqueue, shaped after the Linux virtqueue API: add
 * buffers with a token, kick (prepare and notify apart, so callers batch),
 * collect used buffers, and switch used-buffer callbacks on and off.
 *
 * The used ring is written by the device and is hostile input: an id outside
 * the queue or not in flight, a length larger than the buffer, or a used
 * index running ahead of what was made available breaks the queue, and every
 * call then returns -EIO. Bookkeeping (free list, tokens, lengths) lives in
 * private memory, never in the shared ring, so a device cannot corrupt it.
 *
 * Thread rules: one thread at a time per queue; the device runs concurrently.
 * No call allocates after uvirtio_drvq_create().
 */
#ifndef UVIRTIO_DRVQ_H
#define UVIRTIO_DRVQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_ring.h>

#include "uvirtio/dma.h"

struct uvirtio_drvq;
typedef int (*uvirtio_drvq_notify_fn)(void *opaque, unsigned index);

/* Private per-head state of a buffer in flight. */
struct uvirtio_drvq_slot {
	void *token;     /* NULL when the head is free */
	uint32_t in_len; /* writable bytes: the most a device may report */
	uint16_t ndescs; /* ring descriptors held (1 when indirect) */
	uint16_t last;   /* last ring descriptor of the chain */
};

struct uvirtio_drvq {
	struct uvirtio_dma *dma;
	unsigned index; /* queue number, given to the notify callback */
	uint16_t num;
	bool event_idx;

	/* The ring, in shared memory. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_addr, avail_addr, used_addr; /* guest addresses */
	void *ring_mem;

	/* Indirect tables: one per head, indirect_max descriptors each, so a
	 * head in flight owns its table and nothing is allocated per add. */
	struct vring_desc *indirect_pool;
	unsigned indirect_max; /* 0: no indirect descriptors */

	/* Private state. */
	uint16_t *next; /* free-list and chain links, mirrored from the ring */
	struct uvirtio_drvq_slot *slots;
	uint16_t free_head;
	uint16_t num_free;
	uint16_t avail_idx;       /* shadow of avail->idx */
	uint16_t avail_flags;     /* shadow of avail->flags */
	uint32_t num_added;       /* made available since the last kick_prepare */
	uint16_t last_used;       /* next used slot to read */
	uint16_t used_seen;       /* used->idx as last read */

	bool broken;
	const char *broken_reason;

	uvirtio_drvq_notify_fn notify;
	void *notify_opaque;
};

/**
 * uvirtio_drvq_ring_bytes() - bytes of shared memory a split ring of @num
 * entries takes (descriptors, avail and used rings with event fields).
 */
size_t uvirtio_drvq_ring_bytes(unsigned num);

/**
 * uvirtio_drvq_create() - allocate a queue's ring in @dma and initialise it.
 * @q:            the queue, owned by the caller.
 * @dma:          shared memory for the ring, tables and buffers; must outlive @q.
 * @index:        queue number (passed to the notify callback).
 * @num:          size, a power of two from 1 to 32768.
 * @features:     negotiated features; VIRTIO_RING_F_EVENT_IDX and
 *                VIRTIO_RING_F_INDIRECT_DESC are honoured.
 * @indirect_max: descriptors per indirect table (0 for the default of 64;
 *                at most UVIRTIO_INDIRECT_MAX, and never more than @num: no
 *                chain may be longer than its queue); ignored without
 *                INDIRECT_DESC.
 *                If the table pool cannot be allocated the queue works
 *                without indirect descriptors.
 *
 * Return: 0; -EINVAL for a bad size; -ENOMEM when the ring or private state
 * cannot be allocated.
 */
int uvirtio_drvq_create(struct uvirtio_drvq *q, struct uvirtio_dma *dma, unsigned index,
			unsigned num, uint64_t features, unsigned indirect_max);

/**
 * uvirtio_drvq_destroy() - free the ring and private state. The device must
 * no longer use the ring (reset it first); tokens still in flight are
 * forgotten (take them with uvirtio_drvq_detach_unused() first).
 */
void uvirtio_drvq_destroy(struct uvirtio_drvq *q);

/** uvirtio_drvq_set_notify() - the function uvirtio_drvq_notify() calls. */
void uvirtio_drvq_set_notify(struct uvirtio_drvq *q, uvirtio_drvq_notify_fn fn, void *opaque);

/**
 * uvirtio_drvq_add() - make one buffer available to the device.
 * @out, @n_out: readable parts (device reads), host pointers into @q's dma memory.
 * @in, @n_in:   writable parts (device writes), likewise.
 * @token:       non-NULL; given back by uvirtio_drvq_get() with the used length.
 *
 * Uses an indirect table when INDIRECT_DESC was negotiated and the buffer has
 * more than one part; falls back to direct descriptors when the table cannot
 * be had (too many parts for it) and they fit.
 *
 * Return: 0; -ENOSPC when the ring has no room; -ENOMEM when an indirect table
 * was needed, could not be had, and direct descriptors do not fit either;
 * -EINVAL for no parts, a NULL token, or a total length over 4 GiB; -EFAULT
 * for a part outside the dma memory; -EIO when the queue is broken.
 */
int uvirtio_drvq_add(struct uvirtio_drvq *q, const struct iovec *out, unsigned n_out,
		     const struct iovec *in, unsigned n_in, void *token);

/**
 * uvirtio_drvq_kick_prepare() - whether the device wants a notification for
 * the buffers added since the last call (NO_NOTIFY, or avail_event with
 * EVENT_IDX). Split from uvirtio_drvq_notify() so the notification, which
 * may be slow, can happen outside the caller's lock.
 */
bool uvirtio_drvq_kick_prepare(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_notify() - notify the device through the transport.
 * Return: 0, or the transport's negative errno.
 */
int uvirtio_drvq_notify(struct uvirtio_drvq *q);

/** uvirtio_drvq_kick() - kick_prepare, then notify if needed. Returns 0 or -errno. */
int uvirtio_drvq_kick(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_get() - collect the next used buffer.
 * @token: set to the buffer's token.
 * @len:   set to the bytes the device wrote.
 *
 * Return: 1 when a buffer was collected; 0 when none is pending; -EIO when
 * the device wrote a bad used ring (the queue is then broken) or the queue
 * was already broken.
 */
int uvirtio_drvq_get(struct uvirtio_drvq *q, void **token, uint32_t *len);

/** uvirtio_drvq_disable_cb() - ask the device not to notify of used buffers. */
void uvirtio_drvq_disable_cb(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_enable_cb() - ask the device to notify again.
 *
 * Return: false when used buffers are already pending: the caller must
 * collect them instead of waiting, because the device may have pushed them
 * before it could see the request and will not notify for them.
 */
bool uvirtio_drvq_enable_cb(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_enable_cb_delayed() - like enable_cb, but with EVENT_IDX ask
 * for the notification only once about 3/4 of the buffers in flight are used.
 *
 * Return: false when that many are already used (collect them first).
 */
bool uvirtio_drvq_enable_cb_delayed(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_detach_unused() - after the device was reset, take back one
 * buffer it never used.
 * Return: its token, or NULL when none is left.
 */
void *uvirtio_drvq_detach_unused(struct uvirtio_drvq *q);

/** uvirtio_drvq_num_free() - ring descriptors free. */
static inline unsigned uvirtio_drvq_num_free(const struct uvirtio_drvq *q)
{
	return q->num_free;
}

/** uvirtio_drvq_is_broken() - whether a device fault has broken @q. */
static inline bool uvirtio_drvq_is_broken(const struct uvirtio_drvq *q)
{
	return q->broken;
}

/** uvirtio_drvq_broken_reason() - the rule the device broke, or NULL. */
static inline const char *uvirtio_drvq_broken_reason(const struct uvirtio_drvq *q)
{
	return q->broken_reason;
}

#endif
