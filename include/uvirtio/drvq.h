/* SPDX-License-Identifier: MIT */
/*
 * The driver side of a virtqueue, shaped after the Linux virtqueue API: add
 * buffers with a token, kick (prepare and notify apart, so callers batch),
 * collect used buffers, and switch used-buffer callbacks on and off.
 *
 * One API for both layouts: the features given to uvirtio_drvq_create()
 * choose the split ring or the packed ring (VIRTIO_F_RING_PACKED), and
 * VIRTIO_F_IN_ORDER (descriptors handed out in ring order, used entries that
 * cover a batch) and VIRTIO_F_NOTIFICATION_DATA (see
 * uvirtio_drvq_notification_data()) are honoured on both.
 *
 * The used ring (split) or the used descriptors (packed) are written by the
 * device and are hostile input: an id outside the queue or not in flight, a
 * length larger than the buffer, or a used index running ahead of what was
 * made available breaks the queue, and every call then returns -EIO.
 * Bookkeeping (free list, tokens, lengths) lives in private memory, never in
 * the shared ring, so a device cannot corrupt it.
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

#include "uvirtio/api.h"
#include "uvirtio/dma.h"

struct uvirtio_drvq;
typedef int (*uvirtio_drvq_notify_fn)(void *opaque, unsigned index);

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). A zeroed one is
 * safe to destroy. */
struct uvirtio_drvq {
	UVIRTIO_OPAQUE(512);
};

/**
 * uvirtio_drvq_ring_bytes() - bytes of shared memory the ring of @num entries
 * takes in the layout @features choose: split (descriptors, avail and used
 * rings with event fields) or, with VIRTIO_F_RING_PACKED, packed (descriptor
 * ring, driver and device event suppression areas).
 */
UVIRTIO_API
size_t uvirtio_drvq_ring_bytes(unsigned num, uint64_t features);

/**
 * uvirtio_drvq_create() - allocate a queue's ring in @dma and initialise it.
 * @q:            the queue, owned by the caller.
 * @dma:          shared memory for the ring, tables and buffers; must outlive @q.
 * @index:        queue number (passed to the notify callback).
 * @num:          size: split, a power of two from 1 to 32768; packed, any
 *                number from 1 to 32768.
 * @features:     negotiated features; VIRTIO_F_RING_PACKED (layout),
 *                VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
 *                VIRTIO_F_IN_ORDER and VIRTIO_F_NOTIFICATION_DATA are honoured.
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
UVIRTIO_API
int uvirtio_drvq_create(struct uvirtio_drvq *q, struct uvirtio_dma *dma, unsigned index,
			unsigned num, uint64_t features, unsigned indirect_max);

/**
 * uvirtio_drvq_destroy() - free the ring and private state. The device must
 * no longer use the ring (reset it first); tokens still in flight are
 * forgotten (take them with uvirtio_drvq_detach_unused() first).
 */
UVIRTIO_API
void uvirtio_drvq_destroy(struct uvirtio_drvq *q);

/** uvirtio_drvq_set_notify() - the function uvirtio_drvq_notify() calls. */
UVIRTIO_API
void uvirtio_drvq_set_notify(struct uvirtio_drvq *q, uvirtio_drvq_notify_fn fn, void *opaque);

/**
 * uvirtio_drvq_add() - make one buffer available to the device.
 * @out, @n_out: readable parts (device reads), host pointers into @q's dma memory.
 * @in, @n_in:   writable parts (device writes), likewise.
 * @token:       non-NULL; given back by uvirtio_drvq_get() with the used length.
 *
 * Uses an indirect table when INDIRECT_DESC was negotiated and the buffer has
 * more than one part; falls back to direct descriptors when the table cannot
 * be had (too many parts for it) and they fit. Packed: the head descriptor's
 * flags are stored last, with release, so the device never sees half a chain.
 * IN_ORDER: descriptors (and packed buffer ids) are used in ring order.
 *
 * Return: 0; -ENOSPC when the ring has no room; -ENOMEM when an indirect table
 * was needed, could not be had, and direct descriptors do not fit either;
 * -EINVAL for no parts, a NULL token, or a total length over 4 GiB; -EFAULT
 * for a part outside the dma memory; -EIO when the queue is broken.
 */
UVIRTIO_API
int uvirtio_drvq_add(struct uvirtio_drvq *q, const struct iovec *out, unsigned n_out,
		     const struct iovec *in, unsigned n_in, void *token);

/**
 * uvirtio_drvq_kick_prepare() - whether the device wants a notification for
 * the buffers added since the last call (split: NO_NOTIFY, or avail_event
 * with EVENT_IDX; packed: the device area's ENABLE/DISABLE, or DESC with
 * EVENT_IDX). Split from uvirtio_drvq_notify() so the notification, which
 * may be slow, can happen outside the caller's lock.
 */
UVIRTIO_API
bool uvirtio_drvq_kick_prepare(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_notify() - notify the device through the transport.
 * Return: 0, or the transport's negative errno.
 */
UVIRTIO_API
int uvirtio_drvq_notify(struct uvirtio_drvq *q);

/** uvirtio_drvq_kick() - kick_prepare, then notify if needed. Returns 0 or -errno. */
UVIRTIO_API
int uvirtio_drvq_kick(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_notification_data() - the 32 bits a notification carries when
 * VIRTIO_F_NOTIFICATION_DATA was negotiated: bits 0-15 the queue index;
 * split: bits 16-31 the avail index (the next free avail slot); packed: bits
 * 16-30 the offset of the next descriptor to make available, bit 31 its wrap
 * counter. The caller (driver core) hands it to the transport with the
 * notification; computing it does not depend on the feature.
 *
 * Return: the notification data.
 */
UVIRTIO_API
uint32_t uvirtio_drvq_notification_data(const struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_avail_index() - the driver's next available index, as a
 * device reports it (uvirtio_devq_next_avail()) and vhost-user carries it:
 * split, the free-running avail->idx; packed, bits 0-14 the next position to
 * make available and bit 15 its wrap counter (0x8000 for a fresh queue).
 *
 * Return: the encoded index.
 */
UVIRTIO_API
uint16_t uvirtio_drvq_avail_index(const struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_used_index() - the driver's next used index, encoded as
 * uvirtio_drvq_avail_index() encodes the available one: split, the
 * free-running count of used entries taken; packed, the next used
 * descriptor's position and its wrap counter in bit 15.
 *
 * Return: the encoded index.
 */
UVIRTIO_API
uint16_t uvirtio_drvq_used_index(const struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_get() - collect the next used buffer.
 * @token: set to the buffer's token.
 * @len:   set to the bytes the device wrote.
 *
 * IN_ORDER: a used entry naming a later buffer completes every buffer in
 * flight up to it, in order, one per call; those without an entry of their
 * own report their whole writable length, as Linux does.
 *
 * Return: 1 when a buffer was collected; 0 when none is pending; -EIO when
 * the device wrote a bad used ring (the queue is then broken) or the queue
 * was already broken.
 */
UVIRTIO_API
int uvirtio_drvq_get(struct uvirtio_drvq *q, void **token, uint32_t *len);

/** uvirtio_drvq_disable_cb() - ask the device not to notify of used buffers. */
UVIRTIO_API
void uvirtio_drvq_disable_cb(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_enable_cb() - ask the device to notify again.
 *
 * Return: false when used buffers are already pending: the caller must
 * collect them instead of waiting, because the device may have pushed them
 * before it could see the request and will not notify for them.
 */
UVIRTIO_API
bool uvirtio_drvq_enable_cb(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_enable_cb_delayed() - like enable_cb, but with EVENT_IDX ask
 * for the notification only once about 3/4 of the buffers in flight are used.
 *
 * Return: false when that many are already used (collect them first).
 */
UVIRTIO_API
bool uvirtio_drvq_enable_cb_delayed(struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_detach_unused() - after the device was reset, take back one
 * buffer it never used.
 * Return: its token, or NULL when none is left.
 */
UVIRTIO_API
void *uvirtio_drvq_detach_unused(struct uvirtio_drvq *q);

/** uvirtio_drvq_size() - the queue size given to uvirtio_drvq_create(). */
UVIRTIO_API
unsigned uvirtio_drvq_size(const struct uvirtio_drvq *q);

/**
 * uvirtio_drvq_features() - the ring features @q honours: of those given to
 * uvirtio_drvq_create(), VIRTIO_F_RING_PACKED, VIRTIO_RING_F_EVENT_IDX,
 * VIRTIO_F_IN_ORDER, VIRTIO_F_NOTIFICATION_DATA, and
 * VIRTIO_RING_F_INDIRECT_DESC when its table pool could be allocated.
 */
UVIRTIO_API
uint64_t uvirtio_drvq_features(const struct uvirtio_drvq *q);

/** uvirtio_drvq_is_packed() - whether @q has the packed layout (VIRTIO_F_RING_PACKED). */
UVIRTIO_API
bool uvirtio_drvq_is_packed(const struct uvirtio_drvq *q);

/**
 * struct uvirtio_drvq_ring - where a queue's ring lies in shared memory.
 * @desc, @avail, @used: guest addresses of its three parts (split:
 *     descriptor table, avail ring, used ring; packed: descriptor ring,
 *     driver area, device area), what a transport gives the device.
 * @desc_host, @avail_host, @used_host: the same parts in the driver's
 *     mapping, for a program that watches what the device writes. They are
 *     shared with the device: read them only with single atomic loads, and
 *     never write them.
 */
struct uvirtio_drvq_ring {
	uint64_t desc, avail, used;
	void *desc_host, *avail_host, *used_host;
};

/**
 * uvirtio_drvq_ring() - fill @r with where @q's ring lies (see struct
 * uvirtio_drvq_ring); valid until uvirtio_drvq_destroy().
 */
UVIRTIO_API
void uvirtio_drvq_ring(const struct uvirtio_drvq *q, struct uvirtio_drvq_ring *r);

/**
 * uvirtio_drvq_dma() - the shared memory @q was created in, which its
 * buffers must come from. Return: the @dma given to uvirtio_drvq_create().
 */
UVIRTIO_API
struct uvirtio_dma *uvirtio_drvq_dma(const struct uvirtio_drvq *q);

/** uvirtio_drvq_num_free() - ring descriptors free. */
UVIRTIO_API
unsigned uvirtio_drvq_num_free(const struct uvirtio_drvq *q);

/** uvirtio_drvq_is_broken() - whether a device fault has broken @q. */
UVIRTIO_API
bool uvirtio_drvq_is_broken(const struct uvirtio_drvq *q);

/** uvirtio_drvq_broken_reason() - the rule the device broke, or NULL. */
UVIRTIO_API
const char *uvirtio_drvq_broken_reason(const struct uvirtio_drvq *q);

#endif
