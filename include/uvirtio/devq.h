/* SPDX-License-Identifier: MIT */
/*
 * The device side of a virtqueue: take the chains a driver made available,
 * give them back as used, and decide when each side must be notified.
 *
 * Everything in the rings is written by the driver and is hostile input: each
 * descriptor is read once into local memory and validated before use, a chain
 * is bounded by the queue size, and a queue whose driver breaks a rule is
 * marked broken (the device core then sets DEVICE_NEEDS_RESET). A broken
 * queue never spins and never touches guest memory again until it is set up
 * anew.
 *
 * Thread rules: a queue is used by one thread at a time (pop, push and the
 * notification calls); the driver runs concurrently on the other side.
 */
#ifndef UVIRTIO_DEVQ_H
#define UVIRTIO_DEVQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_ring.h>

#include "uvirtio/memory.h"

/* The largest indirect table accepted, in descriptors. */
#define UVIRTIO_INDIRECT_MAX 32768u

/* A request: one descriptor chain, as host iovecs. */
struct uvirtio_req {
	uint16_t id;       /* head index; give it back to uvirtio_devq_push() */
	unsigned n_out;    /* readable iovecs: iov[0 .. n_out) */
	unsigned n_in;     /* writable iovecs: iov[n_out .. n_out + n_in) */
	uint32_t out_len;  /* bytes readable */
	uint32_t in_len;   /* bytes writable */
	struct iovec *iov; /* caller's storage, at least iov_cap entries */
	unsigned iov_cap;
};

/* One used element, as a device completes it. */
struct uvirtio_used {
	uint32_t id;
	uint32_t len; /* bytes the device wrote into the writable part */
};

struct uvirtio_devq;
typedef void (*uvirtio_devq_broken_fn)(struct uvirtio_devq *q, void *opaque);

struct uvirtio_devq {
	/* Set by uvirtio_devq_setup(); read-only afterwards. */
	const struct uvirtio_mem *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t num;
	bool event_idx;
	bool indirect;
	bool ready;

	/* Device-private state, never read back from shared memory. */
	uint16_t last_avail;     /* next avail slot to take */
	uint16_t avail_seen;     /* avail->idx as last read */
	uint16_t used_idx;       /* next used slot, also the published used->idx */
	uint16_t signalled_used; /* used_idx when the driver was last notified */
	bool signalled_used_valid;
	bool notify_enabled;
	uint32_t inflight;       /* popped and not yet pushed */

	bool broken;
	const char *broken_reason;
	uvirtio_devq_broken_fn on_broken;
	void *on_broken_opaque;
};

/**
 * uvirtio_devq_setup() - attach @q to a split ring in guest memory.
 * @q:        the queue, owned by the caller; its previous state is dropped.
 * @mem:      guest memory; must outlive the queue's use.
 * @num:      queue size: a power of two, 1 to 32768.
 * @desc, @avail, @used: guest addresses of the three parts of the ring.
 * @features: negotiated features; VIRTIO_RING_F_EVENT_IDX and
 *            VIRTIO_RING_F_INDIRECT_DESC are honoured.
 *
 * The queue starts ready at index 0 with notifications enabled. The broken
 * callback, if any, is kept.
 *
 * Return: 0; -EINVAL for a bad size or a ring part misaligned in guest or in
 * host memory; -EFAULT when a ring part is not inside one memory region.
 */
int uvirtio_devq_setup(struct uvirtio_devq *q, const struct uvirtio_mem *mem, unsigned num,
		       uint64_t desc, uint64_t avail, uint64_t used, uint64_t features);

/**
 * uvirtio_devq_set_broken_cb() - call @fn(@q, @opaque) once when @q breaks.
 * It runs on the thread that found the fault, with no lock of this module held.
 */
void uvirtio_devq_set_broken_cb(struct uvirtio_devq *q, uvirtio_devq_broken_fn fn, void *opaque);

/**
 * uvirtio_devq_set_indices() - resume a ring at a known position (vhost-user
 * SET_VRING_BASE, restore): @next_avail is the next avail slot to take and
 * @used_idx the next used slot.
 */
void uvirtio_devq_set_indices(struct uvirtio_devq *q, uint16_t next_avail, uint16_t used_idx);

/**
 * uvirtio_devq_stop() - stop the queue: it is no longer ready, pop finds
 * nothing and push writes nothing. Indices are kept (see
 * uvirtio_devq_next_avail()); a later setup starts afresh.
 */
void uvirtio_devq_stop(struct uvirtio_devq *q);

/**
 * uvirtio_devq_reset() - forget the ring and every index, as a device reset
 * or queue reset does. The broken callback is kept.
 */
void uvirtio_devq_reset(struct uvirtio_devq *q);

/**
 * uvirtio_devq_pop() - take the next available request.
 * @q:   the queue.
 * @req: on entry, iov and iov_cap name the caller's iovec storage; on return
 *       the request's iovecs, which point into guest memory and stay valid
 *       until the request is pushed back or the memory map changes.
 *
 * Return: 1 when a request was taken; 0 when none is available or the queue
 * is stopped; -EIO when the driver's ring is malformed (the queue is then
 * broken, see uvirtio_devq_broken_reason()) or the queue was already broken.
 */
int uvirtio_devq_pop(struct uvirtio_devq *q, struct uvirtio_req *req);

/**
 * uvirtio_devq_push() - give one request back as used, and publish it.
 * @id:  the request's id from uvirtio_devq_pop().
 * @len: bytes written into the request's writable iovecs.
 *
 * Return: 0; -EINVAL for an id outside the queue; -ESHUTDOWN when the queue
 * is stopped or broken (nothing is written to guest memory then).
 */
int uvirtio_devq_push(struct uvirtio_devq *q, uint16_t id, uint32_t len);

/**
 * uvirtio_devq_push_batch() - give @n requests back and publish them with
 * one index update, so the driver sees them all at once.
 *
 * Return: 0, or as uvirtio_devq_push(); on error nothing is published.
 */
int uvirtio_devq_push_batch(struct uvirtio_devq *q, const struct uvirtio_used *elems, unsigned n);

/**
 * uvirtio_devq_needs_notify() - after pushing, whether the driver asked to
 * be notified: VRING_AVAIL_F_NO_INTERRUPT without EVENT_IDX, used_event with
 * it. Call once per batch pushed; it records what was signalled.
 */
bool uvirtio_devq_needs_notify(struct uvirtio_devq *q);

/**
 * uvirtio_devq_disable_notify() - ask the driver not to kick (NO_NOTIFY, or
 * with EVENT_IDX leaving avail_event behind) while the device is polling.
 */
void uvirtio_devq_disable_notify(struct uvirtio_devq *q);

/**
 * uvirtio_devq_enable_notify() - ask the driver to kick again. A device must
 * call it, and pop again when it returns true, before it sleeps waiting for
 * a kick: only this call orders its request before re-reading the ring.
 *
 * Return: true when buffers became available meanwhile: the caller must pop
 * again instead of waiting, or it may sleep on a kick that never comes.
 */
bool uvirtio_devq_enable_notify(struct uvirtio_devq *q);

/**
 * uvirtio_devq_has_avail() - whether the driver has made a buffer available
 * that uvirtio_devq_pop() would take: one relaxed load of the avail index,
 * for a device that polls its ring. pop() still does the ordered read and
 * every check. False on a broken or stopped queue.
 */
bool uvirtio_devq_has_avail(const struct uvirtio_devq *q);

/** uvirtio_devq_next_avail() - the next avail slot the device will take. */
static inline uint16_t uvirtio_devq_next_avail(const struct uvirtio_devq *q)
{
	return q->last_avail;
}

/** uvirtio_devq_is_broken() - whether a driver fault has broken @q. */
static inline bool uvirtio_devq_is_broken(const struct uvirtio_devq *q)
{
	return q->broken;
}

/** uvirtio_devq_broken_reason() - the rule the driver broke, or NULL. */
static inline const char *uvirtio_devq_broken_reason(const struct uvirtio_devq *q)
{
	return q->broken_reason;
}

/** uvirtio_req_init() - point @req at caller storage for @cap iovecs. */
static inline void uvirtio_req_init(struct uvirtio_req *req, struct iovec *iov, unsigned cap)
{
	req->iov = iov;
	req->iov_cap = cap;
	req->n_out = req->n_in = 0;
	req->out_len = req->in_len = 0;
	req->id = 0;
}

#endif
