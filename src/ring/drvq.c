// SPDX-License-Identifier: MIT
/*
 * Driver-side virtqueue: the public API. Checks the caller's arguments, owns
 * the allocations, and hands each call to the layout the features chose
 * (split_drv.c or packed_drv.c).
 */
#include <stdlib.h>
#include <string.h>

#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "drvq_priv.h"

#define DEFAULT_INDIRECT_MAX 64u

size_t uvirtio_drvq_ring_bytes(unsigned num, uint64_t features)
{
	if (features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED))
		return packed_drv_ring_bytes(num);
	return split_drv_ring_bytes(num);
}

int uvirtio_drvq_create(struct uvirtio_drvq *public_q, struct uvirtio_dma *dma, unsigned index,
			unsigned num, uint64_t features, unsigned indirect_max)
{
	struct drvq *q = drvq_of(public_q);
	bool packed = features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	uint64_t ring_addr = 0;
	char *ring;

	memset(q, 0, sizeof(*q));
	/* spec: a split queue's size is a power of two, a packed one's need
	 * not be; both are at most 32768. */
	if (!num || num > UVIRTIO_QUEUE_SIZE_MAX || (!packed && (num & (num - 1))))
		return -EINVAL;

	ring = uvirtio_dma_alloc(dma, uvirtio_drvq_ring_bytes(num, features), 4096);
	q->next = calloc(num, sizeof(*q->next));
	q->slots = calloc(num, sizeof(*q->slots));
	if (!ring || !q->next || !q->slots) {
		uvirtio_dma_free(dma, ring);
		free(q->next);
		free(q->slots);
		q->next = NULL;
		q->slots = NULL;
		return -ENOMEM;
	}

	q->dma = dma;
	q->index = index;
	q->num = (uint16_t)num; /* 32768 fits */
	q->event_idx = features & UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	q->packed = packed;
	q->in_order = features & UVIRTIO_BIT(VIRTIO_F_IN_ORDER);
	q->notification_data = features & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA);
	q->ring_mem = ring;
	uvirtio_dma_guest_range(dma, &q->dma_guest_addr, &q->dma_size);
	/* The area is one mapping: its base is where the ring's guest
	 * address says the ring sits. */
	uvirtio_dma_addr(dma, ring, 1, &ring_addr);
	q->dma_base = (const char *)ring - (ring_addr - q->dma_guest_addr);

	if (features & UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)) {
		unsigned max = indirect_max ? indirect_max : DEFAULT_INDIRECT_MAX;

		/* No device accepts a longer table (devq.h), and lengths stay in 32 bits. */
		if (max > UVIRTIO_INDIRECT_MAX)
			max = UVIRTIO_INDIRECT_MAX;
		/* spec 2.7.5.3.1: no chain is longer than the queue, an indirect
		 * table's descriptors included. */
		if (max > num)
			max = num;

		/* Split and packed descriptors are both 16 bytes. */
		q->indirect_pool = uvirtio_dma_alloc(dma, (size_t)num * max * sizeof(struct vring_desc), 16);
		if (q->indirect_pool)
			q->indirect_max = max;
	}

	q->num_free = (uint16_t)num;
	if (packed)
		packed_drv_init(q, ring);
	else
		split_drv_init(q, ring);
	return 0;
}

void uvirtio_drvq_destroy(struct uvirtio_drvq *public_q)
{
	struct drvq *q = drvq_of(public_q);

	if (!q->dma)
		return;
	uvirtio_dma_free(q->dma, q->indirect_pool);
	uvirtio_dma_free(q->dma, q->ring_mem);
	free(q->next);
	free(q->slots);
	memset(q, 0, sizeof(*q));
}

void uvirtio_drvq_set_notify(struct uvirtio_drvq *public_q, uvirtio_drvq_notify_fn fn, void *opaque)
{
	struct drvq *q = drvq_of(public_q);

	q->notify = fn;
	q->notify_opaque = opaque;
}

int uvirtio_drvq_add(struct uvirtio_drvq *public_q, const struct iovec *out, unsigned n_out,
		     const struct iovec *in, unsigned n_in, void *token)
{
	struct drvq *q = drvq_of(public_q);
	unsigned total = n_out + n_in;
	uint64_t in_len = 0, all_len = 0;

	if (q->broken)
		return -EIO;
	if (!token || total == 0 || total < n_out)
		return -EINVAL;
	for (unsigned k = 0; k < total; k++) {
		size_t len = k < n_out ? out[k].iov_len : in[k - n_out].iov_len;

		if (len > UINT32_MAX)
			return -EINVAL;
		all_len += len;
		if (k >= n_out)
			in_len += len;
	}
	/* spec: a descriptor chain is at most 4 GiB in total. */
	if (all_len > UINT32_MAX)
		return -EINVAL;
	if (q->num_free == 0)
		return -ENOSPC;
	if (q->packed)
		return packed_drv_add(q, out, n_out, in, n_in, token, (uint32_t)in_len);
	return split_drv_add(q, out, n_out, in, n_in, token, (uint32_t)in_len);
}

bool uvirtio_drvq_kick_prepare(struct uvirtio_drvq *public_q)
{
	struct drvq *q = drvq_of(public_q);

	return q->packed ? packed_drv_kick_prepare(q) : split_drv_kick_prepare(q);
}

int uvirtio_drvq_notify(struct uvirtio_drvq *public_q)
{
	struct drvq *q = drvq_of(public_q);

	if (q->broken)
		return -EIO;
	return q->notify ? q->notify(q->notify_opaque, q->index) : 0;
}

int uvirtio_drvq_kick(struct uvirtio_drvq *q)
{
	return uvirtio_drvq_kick_prepare(q) ? uvirtio_drvq_notify(q) : 0;
}

uint16_t uvirtio_drvq_avail_index(const struct uvirtio_drvq *public_q)
{
	const struct drvq *q = drvq_of_const(public_q);

	if (q->packed)
		return (uint16_t)(q->next_avail | (q->avail_wrap ? 0x8000u : 0));
	return q->avail_idx;
}

uint16_t uvirtio_drvq_used_index(const struct uvirtio_drvq *public_q)
{
	const struct drvq *q = drvq_of_const(public_q);

	if (q->packed)
		return (uint16_t)(q->last_used | (q->used_wrap ? 0x8000u : 0));
	return q->last_used;
}

uint32_t uvirtio_drvq_notification_data(const struct uvirtio_drvq *public_q)
{
	const struct drvq *q = drvq_of_const(public_q);

	/* Both encodings are the avail index as uvirtio_drvq_avail_index()
	 * gives it: packed's offset in bits 0-14 and wrap counter in bit 15
	 * land in bits 16-30 and 31. */
	return ((uint32_t)uvirtio_drvq_avail_index(public_q) << 16) | (q->index & 0xffffu);
}

int uvirtio_drvq_get(struct uvirtio_drvq *public_q, void **token, uint32_t *len)
{
	struct drvq *q = drvq_of(public_q);

	if (q->broken)
		return -EIO;
	return q->packed ? packed_drv_get(q, token, len) : split_drv_get(q, token, len);
}

void uvirtio_drvq_disable_cb(struct uvirtio_drvq *public_q)
{
	struct drvq *q = drvq_of(public_q);

	if (q->packed)
		packed_drv_disable_cb(q);
	else
		split_drv_disable_cb(q);
}

bool uvirtio_drvq_enable_cb(struct uvirtio_drvq *public_q)
{
	struct drvq *q = drvq_of(public_q);

	return q->packed ? packed_drv_enable_cb(q) : split_drv_enable_cb(q);
}

bool uvirtio_drvq_enable_cb_delayed(struct uvirtio_drvq *public_q)
{
	struct drvq *q = drvq_of(public_q);

	if (!q->event_idx)
		return uvirtio_drvq_enable_cb(public_q);
	return q->packed ? packed_drv_enable_cb_delayed(q)
			 : split_drv_enable_cb_delayed(q);
}

void *uvirtio_drvq_detach_unused(struct uvirtio_drvq *public_q)
{
	struct drvq *q = drvq_of(public_q);

	return q->packed ? packed_drv_detach_unused(q) : split_drv_detach_unused(q);
}

unsigned uvirtio_drvq_num_free(const struct uvirtio_drvq *q)
{
	return drvq_of_const(q)->num_free;
}

bool uvirtio_drvq_is_broken(const struct uvirtio_drvq *q)
{
	return drvq_of_const(q)->broken;
}

const char *uvirtio_drvq_broken_reason(const struct uvirtio_drvq *q)
{
	return drvq_of_const(q)->broken_reason;
}

unsigned uvirtio_drvq_size(const struct uvirtio_drvq *q)
{
	return drvq_of_const(q)->num;
}

uint64_t uvirtio_drvq_features(const struct uvirtio_drvq *public_q)
{
	const struct drvq *q = drvq_of_const(public_q);
	uint64_t f = 0;

	if (q->packed)
		f |= UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	if (q->event_idx)
		f |= UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	if (q->indirect_max)
		f |= UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	if (q->in_order)
		f |= UVIRTIO_BIT(VIRTIO_F_IN_ORDER);
	if (q->notification_data)
		f |= UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA);
	return f;
}

bool uvirtio_drvq_is_packed(const struct uvirtio_drvq *q)
{
	return drvq_of_const(q)->packed;
}

void uvirtio_drvq_ring(const struct uvirtio_drvq *public_q, struct uvirtio_drvq_ring *r)
{
	const struct drvq *q = drvq_of_const(public_q);

	*r = (struct uvirtio_drvq_ring){ .desc = q->desc_addr, .avail = q->avail_addr,
					 .used = q->used_addr };
	if (q->packed) {
		r->desc_host = q->packed_desc;
		r->avail_host = q->driver_event;
		r->used_host = q->device_event;
	} else {
		r->desc_host = q->desc;
		r->avail_host = q->avail;
		r->used_host = q->used;
	}
}

struct uvirtio_dma *uvirtio_drvq_dma(const struct uvirtio_drvq *q)
{
	return drvq_of_const(q)->dma;
}
