// SPDX-License-Identifier: MIT
/*
 * Split virtqueue, driver side.
 *
 * Memory ordering with the device (the pairs are named in split_dev.c too):
 *  - we write descriptors and the avail entry, then release-store avail->idx;
 *  - we acquire-load used->idx before reading the used entries it covers;
 *  - around notification suppression each side stores, then loads the other's
 *    field, with a full barrier between (ring_mb).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "ring_access.h"

#define DEFAULT_INDIRECT_MAX 64u

static int queue_broken(struct uvirtio_drvq *q, const char *why)
{
	if (!q->broken) {
		q->broken = true;
		q->broken_reason = why;
	}
	return -EIO;
}

static size_t used_offset(unsigned num)
{
	size_t avail_end = 16ull * num + 6 + 2ull * num;

	return (avail_end + 3) & ~(size_t)3;
}

size_t uvirtio_drvq_ring_bytes(unsigned num)
{
	return used_offset(num) + 6 + 8ull * num;
}

int uvirtio_drvq_create(struct uvirtio_drvq *q, struct uvirtio_dma *dma, unsigned index,
			unsigned num, uint64_t features, unsigned indirect_max)
{
	char *ring;

	memset(q, 0, sizeof(*q));
	if (!num || (num & (num - 1)) || num > UVIRTIO_QUEUE_SIZE_MAX)
		return -EINVAL;

	ring = uvirtio_dma_alloc(dma, uvirtio_drvq_ring_bytes(num), 4096);
	q->next = calloc(num, sizeof(*q->next));
	q->slots = calloc(num, sizeof(*q->slots));
	if (!ring || !q->next || !q->slots) {
		uvirtio_dma_free(dma, ring);
		free(q->next);
		free(q->slots);
		return -ENOMEM;
	}

	q->dma = dma;
	q->index = index;
	q->num = (uint16_t)num;
	q->event_idx = features & UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	q->ring_mem = ring;
	q->desc = (struct vring_desc *)ring;
	q->avail = (struct vring_avail *)(ring + 16ull * num);
	q->used = (struct vring_used *)(ring + used_offset(num));
	uvirtio_dma_addr(dma, q->desc, 1, &q->desc_addr);
	uvirtio_dma_addr(dma, q->avail, 1, &q->avail_addr);
	uvirtio_dma_addr(dma, q->used, 1, &q->used_addr);

	if (features & UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)) {
		unsigned max = indirect_max ? indirect_max : DEFAULT_INDIRECT_MAX;

		/* No device accepts a longer table (devq.h), and lengths stay in 32 bits. */
		if (max > UVIRTIO_INDIRECT_MAX)
			max = UVIRTIO_INDIRECT_MAX;
		/* spec 2.7.5.3.1: no chain is longer than the queue, an indirect
		 * table's descriptors included. */
		if (max > num)
			max = num;

		q->indirect_pool = uvirtio_dma_alloc(dma, (size_t)num * max * sizeof(struct vring_desc), 16);
		if (q->indirect_pool)
			q->indirect_max = max;
	}

	for (unsigned i = 0; i + 1 < num; i++)
		q->next[i] = (uint16_t)(i + 1);
	q->free_head = 0;
	q->num_free = (uint16_t)num; /* 32768 fits */
	return 0;
}

void uvirtio_drvq_destroy(struct uvirtio_drvq *q)
{
	if (!q->dma)
		return;
	uvirtio_dma_free(q->dma, q->indirect_pool);
	uvirtio_dma_free(q->dma, q->ring_mem);
	free(q->next);
	free(q->slots);
	memset(q, 0, sizeof(*q));
}

void uvirtio_drvq_set_notify(struct uvirtio_drvq *q, uvirtio_drvq_notify_fn fn, void *opaque)
{
	q->notify = fn;
	q->notify_opaque = opaque;
}

static void write_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		       uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

/* Writes the parts of a buffer as a chain: into the ring following the free
 * list (table == NULL), or into an indirect table at 0, 1, 2, ...
 * Nothing private changes here, so a failure leaves the queue as it was. */
static int write_chain(struct uvirtio_drvq *q, struct vring_desc *table, const struct iovec *out,
		       unsigned n_out, const struct iovec *in, unsigned n_in, uint16_t *last)
{
	unsigned total = n_out + n_in;
	uint16_t i = table ? 0 : q->free_head;

	for (unsigned k = 0; k < total; k++) {
		const struct iovec *part = k < n_out ? &out[k] : &in[k - n_out];
		uint16_t flags = k < n_out ? 0 : VRING_DESC_F_WRITE;
		uint16_t next = table ? (uint16_t)(k + 1) : q->next[i];
		uint64_t addr;

		if (uvirtio_dma_addr(q->dma, part->iov_base, part->iov_len, &addr))
			return -EFAULT;
		if (k + 1 < total)
			flags |= VRING_DESC_F_NEXT;
		write_desc(table ? &table[k] : &q->desc[i], addr, (uint32_t)part->iov_len, flags,
			   k + 1 < total ? next : 0);
		*last = i;
		i = next;
	}
	return 0;
}

int uvirtio_drvq_add(struct uvirtio_drvq *q, const struct iovec *out, unsigned n_out,
		     const struct iovec *in, unsigned n_in, void *token)
{
	unsigned total = n_out + n_in;
	uint64_t in_len = 0, all_len = 0;
	bool indirect = false, indirect_refused = false;
	uint16_t head, last;
	int ret;

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
	if (all_len > UINT32_MAX)
		return -EINVAL;
	if (q->num_free == 0)
		return -ENOSPC;

	if (q->indirect_max && total > 1) {
		if (total <= q->indirect_max)
			indirect = true;
		else
			indirect_refused = true;
	}
	if (!indirect && total > q->num_free)
		return indirect_refused ? -ENOMEM : -ENOSPC;

	head = q->free_head;
	if (indirect) {
		struct vring_desc *table = q->indirect_pool + (size_t)head * q->indirect_max;
		uint64_t table_addr = 0;

		ret = write_chain(q, table, out, n_out, in, n_in, &last);
		if (ret)
			return ret;
		uvirtio_dma_addr(q->dma, table, total * sizeof(*table), &table_addr);
		write_desc(&q->desc[head], table_addr, total * (uint32_t)sizeof(*table),
			   VRING_DESC_F_INDIRECT, 0);
		last = head;
		q->num_free--;
		q->free_head = q->next[head];
	} else {
		ret = write_chain(q, NULL, out, n_out, in, n_in, &last);
		if (ret)
			return ret;
		q->num_free -= (uint16_t)total;
		q->free_head = q->next[last];
	}

	q->slots[head] = (struct uvirtio_drvq_slot){
		.token = token,
		.in_len = (uint32_t)in_len,
		.ndescs = indirect ? 1 : (uint16_t)total,
		.last = last,
	};

	ring_store16(&q->avail->ring[q->avail_idx & (q->num - 1)], head);
	q->avail_idx++;
	/* Release pairs with the device's acquire load of avail->idx: the
	 * descriptors and the ring entry above are visible before the index. */
	ring_store16_release(&q->avail->idx, q->avail_idx);
	q->num_added++;
	return 0;
}

bool uvirtio_drvq_kick_prepare(struct uvirtio_drvq *q)
{
	uint16_t new = q->avail_idx, old = (uint16_t)(new - q->num_added);
	bool wrapped = q->num_added >= 65536;

	/* Orders the avail->idx store before loading the device's suppression
	 * field; pairs with the barrier in the device's enable_notify. */
	ring_mb();
	q->num_added = 0;
	/* 65536 adds without a kick make old == new: the event window is lost,
	 * so kick just in case (as Linux does). */
	if (wrapped)
		return true;
	if (q->event_idx)
		return vring_need_event(ring_load16(&q->used->ring[q->num]), new, old);
	return !(ring_load16(&q->used->flags) & VRING_USED_F_NO_NOTIFY);
}

int uvirtio_drvq_notify(struct uvirtio_drvq *q)
{
	if (q->broken)
		return -EIO;
	return q->notify ? q->notify(q->notify_opaque, q->index) : 0;
}

int uvirtio_drvq_kick(struct uvirtio_drvq *q)
{
	return uvirtio_drvq_kick_prepare(q) ? uvirtio_drvq_notify(q) : 0;
}

static void free_chain(struct uvirtio_drvq *q, uint16_t head)
{
	struct uvirtio_drvq_slot *s = &q->slots[head];

	/* The chain's private links still run head .. last; splice it in front
	 * of the free list. */
	q->next[s->last] = q->free_head;
	q->free_head = head;
	q->num_free += s->ndescs;
	s->token = NULL;
}

int uvirtio_drvq_get(struct uvirtio_drvq *q, void **token, uint32_t *len)
{
	const struct vring_used_elem *e;
	struct uvirtio_drvq_slot *s;
	uint32_t id, used_len;

	if (q->broken)
		return -EIO;
	if (q->last_used == q->used_seen) {
		/* Acquire pairs with the device's release store of used->idx. */
		uint16_t idx = ring_load16_acquire(&q->used->idx);

		if ((uint16_t)(idx - q->last_used) > (uint16_t)(q->avail_idx - q->last_used))
			return queue_broken(q, "used index ahead of the buffers made available");
		q->used_seen = idx;
		if (idx == q->last_used)
			return 0;
	}

	e = &q->used->ring[q->last_used & (q->num - 1)];
	id = ring_load32(&e->id);
	used_len = ring_load32(&e->len);
	if (id >= q->num)
		return queue_broken(q, "used id out of range");
	s = &q->slots[id];
	if (!s->token)
		return queue_broken(q, "used id not in flight");
	if (used_len > s->in_len)
		return queue_broken(q, "used length larger than the buffer");

	*token = s->token;
	*len = used_len;
	free_chain(q, (uint16_t)id);
	q->last_used++;

	/* With EVENT_IDX and callbacks on, ask for a notification at the next
	 * entry; the barrier makes it visible before we look at used->idx again. */
	if (q->event_idx && !(q->avail_flags & VRING_AVAIL_F_NO_INTERRUPT)) {
		ring_store16(&q->avail->ring[q->num], q->last_used);
		ring_mb();
	}
	return 1;
}

void uvirtio_drvq_disable_cb(struct uvirtio_drvq *q)
{
	if (q->avail_flags & VRING_AVAIL_F_NO_INTERRUPT)
		return;
	q->avail_flags |= VRING_AVAIL_F_NO_INTERRUPT;
	/* With EVENT_IDX the device ignores the flag: put used_event behind
	 * everything so it is not crossed until the index wraps. */
	if (q->event_idx)
		ring_store16(&q->avail->ring[q->num], (uint16_t)(q->last_used - 1));
	else
		ring_store16(&q->avail->flags, q->avail_flags);
}

static bool arm_cb(struct uvirtio_drvq *q, uint16_t event, uint16_t pending_allowed)
{
	if (q->avail_flags & VRING_AVAIL_F_NO_INTERRUPT) {
		q->avail_flags &= (uint16_t)~VRING_AVAIL_F_NO_INTERRUPT;
		if (!q->event_idx)
			ring_store16(&q->avail->flags, q->avail_flags);
	}
	if (q->event_idx)
		ring_store16(&q->avail->ring[q->num], event);
	/* Orders the store above before re-reading used->idx; pairs with the
	 * barrier in the device's needs_notify. Without it the device could
	 * push, miss our request, and we would miss its push: a lost wake-up. */
	ring_mb();
	return (uint16_t)(ring_load16(&q->used->idx) - q->last_used) <= pending_allowed;
}

bool uvirtio_drvq_enable_cb(struct uvirtio_drvq *q)
{
	return arm_cb(q, q->last_used, 0);
}

bool uvirtio_drvq_enable_cb_delayed(struct uvirtio_drvq *q)
{
	uint16_t bufs = (uint16_t)((uint16_t)(q->avail_idx - q->last_used) * 3 / 4);

	if (!q->event_idx)
		return uvirtio_drvq_enable_cb(q);
	return arm_cb(q, (uint16_t)(q->last_used + bufs), bufs);
}

void *uvirtio_drvq_detach_unused(struct uvirtio_drvq *q)
{
	for (unsigned i = 0; i < q->num; i++) {
		void *token = q->slots[i].token;

		if (!token)
			continue;
		free_chain(q, (uint16_t)i);
		/* Take the entry back out of the avail ring, as if never added. */
		q->avail_idx--;
		ring_store16(&q->avail->idx, q->avail_idx);
		return token;
	}
	return NULL;
}
