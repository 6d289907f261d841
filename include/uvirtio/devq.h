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
 * Both layouts sit behind this one API, chosen by the features given to
 * uvirtio_devq_setup(): the split ring, and the packed ring
 * (VIRTIO_F_RING_PACKED). VIRTIO_F_IN_ORDER and VIRTIO_F_NOTIFICATION_DATA
 * work with either.
 *
 * Packed ring conventions: the three ring addresses are the descriptor ring
 * (@desc), the driver event suppression area (@avail, "driver area") and the
 * device event suppression area (@used, "device area"). An index is given
 * with its wrap counter in one 16-bit value: bits 0-14 the index (< num),
 * bit 15 the wrap counter, as vhost-user's VRING_BASE does; both counters
 * start at 1, so a fresh packed queue is at 0x8000 / 0x8000.
 *
 * Thread rules: a queue is used by one thread at a time (pop, push and the
 * notification calls); the driver runs concurrently on the other side.
 */
#ifndef UVIRTIO_DEVQ_H
#define UVIRTIO_DEVQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_ring.h>

#include "uvirtio/api.h"
#include "uvirtio/memory.h"

/* The largest indirect table accepted, in descriptors. */
#define UVIRTIO_INDIRECT_MAX 32768u

/* A request: one descriptor chain, as host iovecs. */
struct uvirtio_req {
	/* The request's handle: give it back to uvirtio_devq_push(). Split: the
	 * chain's head index. Packed: a device-side handle < num, NOT the
	 * driver's buffer id (which is kept inside the queue and never used
	 * to index memory). */
	uint16_t id;
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

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). A zeroed one is
 * a reset queue: safe to set up or to reset. */
struct uvirtio_devq {
	UVIRTIO_OPAQUE(256);
};

/**
 * uvirtio_devq_setup() - attach @q to a ring in guest memory.
 * @q:        the queue, owned by the caller; its previous state is dropped
 *            (as by uvirtio_devq_reset(), which also frees its memory).
 * @mem:      guest memory; must outlive the queue's use.
 * @num:      queue size: split, a power of two, 1 to 32768; packed, 1 to
 *            32768.
 * @desc, @avail, @used: guest addresses of the three parts of the ring
 *            (packed: descriptor ring, driver area, device area).
 * @features: negotiated features; VIRTIO_F_RING_PACKED chooses the layout;
 *            VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
 *            VIRTIO_F_IN_ORDER and VIRTIO_F_NOTIFICATION_DATA are honoured.
 *
 * The queue starts ready at index 0 (packed: 0x8000, both wrap counters 1)
 * with notifications enabled. The broken callback, if any, is kept. A packed
 * or IN_ORDER queue allocates per-request state (at most about 20 bytes per
 * entry); only uvirtio_devq_reset() (or the next setup) frees it, so an owner
 * must reset a queue before forgetting it. A split queue without IN_ORDER
 * allocates nothing.
 *
 * Return: 0; -EINVAL for a bad size or a ring part misaligned in guest or in
 * host memory; -EFAULT when a ring part is not inside one memory region;
 * -ENOMEM when the per-request state cannot be allocated. On error the
 * queue is left reset (not ready).
 */
UVIRTIO_API
int uvirtio_devq_setup(struct uvirtio_devq *q, const struct uvirtio_mem *mem, unsigned num,
		       uint64_t desc, uint64_t avail, uint64_t used, uint64_t features);

/**
 * uvirtio_devq_set_broken_cb() - call @fn(@q, @opaque) once when @q breaks.
 * It runs on the thread that found the fault, with no lock of this module held.
 */
UVIRTIO_API
void uvirtio_devq_set_broken_cb(struct uvirtio_devq *q, uvirtio_devq_broken_fn fn, void *opaque);

/**
 * uvirtio_devq_set_index() - the queue's number, as log lines name it
 * (include/uvirtio/log.h); 0 until set. A reset keeps it. The device core
 * sets it for its queues.
 */
UVIRTIO_API
void uvirtio_devq_set_index(struct uvirtio_devq *q, unsigned index);

/**
 * uvirtio_devq_set_indices() - resume a ring at a known position (vhost-user
 * SET_VRING_BASE, restore): @next_avail is the next avail slot to take and
 * @used_idx the next used slot. Packed: each is index | wrap counter << 15.
 * Requests in flight and completions held back (IN_ORDER) are forgotten.
 *
 * Return: 0; -EINVAL for a packed index >= the queue size (nothing changed).
 */
UVIRTIO_API
int uvirtio_devq_set_indices(struct uvirtio_devq *q, uint16_t next_avail, uint16_t used_idx);

/**
 * uvirtio_devq_stop() - stop the queue: it is no longer ready, pop finds
 * nothing and push writes nothing. Indices are kept (see
 * uvirtio_devq_next_avail()); a later setup starts afresh. With IN_ORDER,
 * completions pushed but held back behind an earlier request still in
 * flight are dropped: the driver never sees them.
 */
UVIRTIO_API
void uvirtio_devq_stop(struct uvirtio_devq *q);

/**
 * uvirtio_devq_reset() - forget the ring and every index, as a device reset
 * or queue reset does, and free the queue's per-request state (held IN_ORDER
 * completions are dropped). The broken callback is kept. Safe on a zeroed
 * or already reset queue.
 */
UVIRTIO_API
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
UVIRTIO_API
int uvirtio_devq_pop(struct uvirtio_devq *q, struct uvirtio_req *req);

/**
 * uvirtio_devq_unpop() - give back, unused, the request popped last: the
 * next pop returns the same chain again (as QEMU's virtqueue_unpop). For a
 * device that took more buffers than a packet needed (a virtio-net rx path
 * reading a packet of unknown size). Several may be given back, the most
 * recent first. The request's iovecs must not be used afterwards.
 * @id: the request's id from uvirtio_devq_pop().
 * Return: 0; -EINVAL when no request is in flight, or (packed, IN_ORDER)
 * @id is not the one popped last; -EIO when the queue is broken. Split
 * without IN_ORDER keeps no per-request record: there the caller's promise
 * that @id was popped last is all there is.
 */
UVIRTIO_API
int uvirtio_devq_unpop(struct uvirtio_devq *q, uint16_t id);

/**
 * uvirtio_devq_push() - give one request back as used, and publish it.
 * @id:  the request's id from uvirtio_devq_pop() (packed: the device-side
 *       handle, not the driver's buffer id).
 * @len: bytes written into the request's writable iovecs.
 *
 * Packed: the used descriptor goes at the used index, in completion order,
 * and the index advances by the request's descriptor count. IN_ORDER: the
 * completion is held until every request popped before it was pushed, then
 * published in pop order; a run of consecutive completions whose len equals
 * their writable length becomes one used entry (split: id of its last head,
 * idx advanced by the run's length; packed: one descriptor with the last
 * buffer's id, index advanced by the run's descriptors); a shorter (or
 * longer) len ends a run with that request's own entry.
 *
 * Return: 0; -EINVAL for an id outside the queue, or (packed, or IN_ORDER)
 * one not in flight; -EIO when the queue is broken; -ESHUTDOWN when it is
 * stopped (nothing is written to guest memory in either case).
 */
UVIRTIO_API
int uvirtio_devq_push(struct uvirtio_devq *q, uint16_t id, uint32_t len);

/**
 * uvirtio_devq_push_batch() - give @n requests back and publish them with
 * one index update, so the driver sees them all at once (packed: the first
 * used descriptor's flags are written last).
 *
 * Return: 0, or as uvirtio_devq_push() (also -EINVAL for an id given twice,
 * packed or IN_ORDER); on error nothing is published.
 */
UVIRTIO_API
int uvirtio_devq_push_batch(struct uvirtio_devq *q, const struct uvirtio_used *elems, unsigned n);

/**
 * uvirtio_devq_needs_notify() - after pushing, whether the driver asked to
 * be notified: VRING_AVAIL_F_NO_INTERRUPT without EVENT_IDX, used_event with
 * it; packed: the driver area's flags (ENABLE, DISABLE, or DESC with
 * EVENT_IDX: whether the descriptor it names was used since the last call).
 * Call once per batch pushed; it records what was signalled.
 */
UVIRTIO_API
bool uvirtio_devq_needs_notify(struct uvirtio_devq *q);

/**
 * uvirtio_devq_disable_notify() - ask the driver not to kick (NO_NOTIFY, or
 * with EVENT_IDX leaving avail_event behind; packed: the device area's flags
 * DISABLE) while the device is polling.
 */
UVIRTIO_API
void uvirtio_devq_disable_notify(struct uvirtio_devq *q);

/**
 * uvirtio_devq_enable_notify() - ask the driver to kick again (packed: the
 * device area's flags ENABLE, or with EVENT_IDX DESC at the next descriptor
 * to take). A device must
 * call it, and pop again when it returns true, before it sleeps waiting for
 * a kick: only this call orders its request before re-reading the ring.
 *
 * Return: true when buffers became available meanwhile: the caller must pop
 * again instead of waiting, or it may sleep on a kick that never comes.
 */
UVIRTIO_API
bool uvirtio_devq_enable_notify(struct uvirtio_devq *q);

/**
 * uvirtio_devq_has_avail() - whether the driver has made a buffer available
 * that uvirtio_devq_pop() would take: one relaxed load of the avail index
 * (packed: of the next descriptor's flags), for a device that polls its ring. pop() still does the ordered read and
 * every check. False on a broken or stopped queue.
 */
UVIRTIO_API
bool uvirtio_devq_has_avail(const struct uvirtio_devq *q);

/**
 * uvirtio_devq_note_notification() - record the data of an available buffer
 * notification (VIRTIO_F_NOTIFICATION_DATA). @data: the 32 bits the driver
 * sent; bits 0-15 (the queue index) are not checked here. Split: bits 16-31
 * are the new avail index, anything goes. Packed: bits 16-30 the offset of
 * the next available descriptor, bit 31 its wrap counter. Only a hint: pop
 * never trusts it, and malformed data does not break the queue.
 *
 * Return: 0 (recorded, see uvirtio_devq_notified_avail()); -EINVAL for a
 * packed offset >= the queue size (ignored); -EPERM when
 * VIRTIO_F_NOTIFICATION_DATA was not negotiated.
 */
UVIRTIO_API
int uvirtio_devq_note_notification(struct uvirtio_devq *q, uint32_t data);

/**
 * uvirtio_devq_notified_avail() - bits 16-31 of the last notification data
 * recorded by uvirtio_devq_note_notification() (split: avail index; packed:
 * offset | wrap << 15). Return: true and *@avail set, or false if none was
 * recorded since setup.
 */
UVIRTIO_API
bool uvirtio_devq_notified_avail(const struct uvirtio_devq *q, uint16_t *avail);

/**
 * uvirtio_devq_next_avail() - the next avail slot the device will take
 * (split: the free-running avail index; packed: index | wrap << 15).
 */
UVIRTIO_API
uint16_t uvirtio_devq_next_avail(const struct uvirtio_devq *q);

/**
 * uvirtio_devq_used_index() - the next used slot the device will write,
 * also what the driver has been shown (split: the free-running used index;
 * packed: index | wrap << 15). IN_ORDER completions held back are not in it.
 */
UVIRTIO_API
uint16_t uvirtio_devq_used_index(const struct uvirtio_devq *q);

/**
 * uvirtio_devq_size() - the queue size given to uvirtio_devq_setup(), or 0
 * for a queue that was reset (or never set up). Stopping keeps it.
 */
UVIRTIO_API
unsigned uvirtio_devq_size(const struct uvirtio_devq *q);

/**
 * uvirtio_devq_is_ready() - whether @q is set up and serving: true from a
 * successful uvirtio_devq_setup() until it is stopped, reset or broken.
 */
UVIRTIO_API
bool uvirtio_devq_is_ready(const struct uvirtio_devq *q);

/**
 * uvirtio_devq_is_packed() - whether @q was set up with the packed layout
 * (VIRTIO_F_RING_PACKED); false after a reset.
 */
UVIRTIO_API
bool uvirtio_devq_is_packed(const struct uvirtio_devq *q);

/**
 * uvirtio_devq_broken_cb() - the broken callback set with
 * uvirtio_devq_set_broken_cb(), for an owner that moves a queue and keeps
 * its callback. @opaque: if not NULL, set to the callback's argument.
 * Return: the callback, or NULL when none is set.
 */
UVIRTIO_API
uvirtio_devq_broken_fn uvirtio_devq_broken_cb(const struct uvirtio_devq *q, void **opaque);

/** uvirtio_devq_is_broken() - whether a driver fault has broken @q. */
UVIRTIO_API
bool uvirtio_devq_is_broken(const struct uvirtio_devq *q);

/** uvirtio_devq_broken_reason() - the rule the driver broke, or NULL. */
UVIRTIO_API
const char *uvirtio_devq_broken_reason(const struct uvirtio_devq *q);

/** uvirtio_req_init() - point @req at caller storage for @cap iovecs. */
static inline void uvirtio_req_init(struct uvirtio_req *req, struct iovec *iov, unsigned cap)
{
	req->iov = iov;
	req->iov_cap = cap;
	req->n_out = req->n_in = 0;
	req->out_len = req->in_len = 0;
	req->id = 0;
}

/*
 * Inflight tracking (vhost-user INFLIGHT_SHMFD; docs/inflight.md). A queue
 * given an area of shared memory that outlives the process records there
 * every request it pops and clears it when the request's used entry is
 * published, in an order that leaves the area consistent whatever
 * instruction the process dies at. A new process that attaches the same
 * area resumes the ring from it: the requests still marked are popped
 * again, oldest first, before any new one. The layout is the one DPDK and
 * QEMU's libvhost-user use (per queue: a header, then one descriptor state
 * per ring entry, 64-byte aligned). IN_ORDER queues are not tracked.
 */

/**
 * uvirtio_devq_inflight_size() - the bytes of one queue's area for a ring
 * of @num entries (1 .. 32768), split or @packed; 0 for a bad @num.
 */
UVIRTIO_API
size_t uvirtio_devq_inflight_size(unsigned num, bool packed);

/**
 * uvirtio_devq_set_inflight() - give @q the area @area of @size bytes
 * (NULL: track nothing). The area stays the caller's and must stay mapped
 * while attached; kept by uvirtio_devq_reset() and setup, like the dirty
 * log. Not while the queue's thread runs. Takes effect at the next
 * uvirtio_devq_resume_inflight().
 */
UVIRTIO_API
void uvirtio_devq_set_inflight(struct uvirtio_devq *q, void *area, size_t size);

/**
 * uvirtio_devq_resume_inflight() - after uvirtio_devq_setup() and
 * uvirtio_devq_set_indices(), start tracking into the attached area. An area
 * never used (all zeroes) is initialized and the ring starts where it was
 * set. An area a previous process left is checked against the ring and
 * taken as the truth: the indices come from it (split: from the used index
 * in guest memory and the requests marked; packed: from the area alone,
 * whatever base the front-end sent), and the requests it marks are popped
 * again first, in the order they were first popped.
 *
 * Return: the number of requests to pop again (0 or more); 0 without an
 * area; -EOPNOTSUPP for an IN_ORDER queue (not tracked); -EINVAL when the
 * queue is not set up or the area is smaller than uvirtio_devq_inflight_size();
 * -EINVAL too for an area not 8-byte aligned (its counters are atomic);
 * -ENOMEM; -EBADMSG when the area's contents do not fit the ring (another
 * ring's, or garbage): it is then initialized afresh, nothing is popped
 * again, the ring starts where it was set, and one line says why.
 */
UVIRTIO_API
int uvirtio_devq_resume_inflight(struct uvirtio_devq *q);

/*
 * Dirty page logging (vhost-user live migration, docs/ARCHITECTURE.md
 * "Dirty logging"). While a queue has a log whose area is active, every
 * guest page the device writes through it is marked in the area's bitmap
 * (one bit per 4 KiB guest-physical page: bit gpa / 4096, byte bit / 8, an
 * atomic OR) before the used index that exposes it is published: the
 * writable part of each pushed request up to its used length, the split
 * used ring entries and used->idx (at the address given to
 * uvirtio_devq_set_dirty_log()), the packed descriptors written back. Pages
 * past the bitmap's end are not marked.
 */
#define UVIRTIO_DIRTY_PAGE_SHIFT 12

/* A bitmap in memory the owner mapped; @size in bytes. */
struct uvirtio_dirty_log_area {
	uint8_t *bits;
	uint64_t size;
};

/* Shared by the queues that log into it and the thread that switches it.
 * Zeroed: no area, nothing logged. Fields are the ring layer's. */
struct uvirtio_dirty_log {
	struct uvirtio_dirty_log_area *active; /* atomic; NULL: not logging */
	uint32_t users;                        /* atomic: pushes using active */
};

/**
 * uvirtio_devq_set_dirty_log() - make @q log into @log (NULL: never), the
 * used ring (split) at guest address @used_log_gpa. Kept by
 * uvirtio_devq_reset() and setup. May be called while another thread uses
 * the queue (atomic stores): the next push sees it.
 */
UVIRTIO_API
void uvirtio_devq_set_dirty_log(struct uvirtio_devq *q, struct uvirtio_dirty_log *log,
				uint64_t used_log_gpa);

/**
 * uvirtio_dirty_log_switch() - make @area (NULL: stop logging) the active
 * area of @log, and return the previous one once no push can still be
 * marking it: the caller may then unmap it. Bits a push marked are in the
 * old area (if it had loaded it) or the new one, never lost. Waits (yields)
 * while pushes are inside their marking section; never call it from a
 * queue's thread in the middle of a push.
 */
UVIRTIO_API
struct uvirtio_dirty_log_area *uvirtio_dirty_log_switch(struct uvirtio_dirty_log *log,
							struct uvirtio_dirty_log_area *area);

/**
 * uvirtio_dirty_log_mark() - mark the pages of [@gpa, @gpa + @len) in
 * @area (a range that wraps stops at the top of the address space).
 */
UVIRTIO_API
void uvirtio_dirty_log_mark(const struct uvirtio_dirty_log_area *area, uint64_t gpa, uint64_t len);

#endif
