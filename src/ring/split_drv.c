// SPDX-License-Identifier: MIT
/*
 * Split virtqueue, driver side (drvq.c checks the arguments and calls here).
 *
 * Memory ordering with the device (the pairs are named in split_dev.c too):
 *  - we write descriptors and the avail entry, then release-store avail->idx;
 *  - we acquire-load used->idx before reading the used entries it covers;
 *  - around notification suppression each side stores, then loads the other's
 *    field, with a full barrier between (ring_mb).
 *
 * IN_ORDER (spec, split virtqueues, "In-order"): descriptors are handed out in ring order,
 * x, x+1, ... wrapping at the end of the table, so the buffers in flight hold
 * one run of descriptors, from the oldest buffer's head up to free_head. The
 * device may write one used entry for a batch, at the batch's first used
 * slot, naming the head of its last buffer, and advance used->idx by the
 * batch's buffers; we complete the batch's buffers one per get.
 */
#include <errno.h>
#include <string.h>

#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "drvq_priv.h"
#include "ring_access.h"

static size_t used_offset(unsigned num)
{
	size_t avail_end = 16ull * num + 6 + 2ull * num;

	return (avail_end + 3) & ~(size_t)3;
}

size_t split_drv_ring_bytes(unsigned num)
{
	return used_offset(num) + 6 + 8ull * num;
}

void split_drv_init(struct drvq *q, char *ring)
{
	unsigned num = q->num;

	q->desc = (struct vring_desc *)ring;
	q->avail = (struct vring_avail *)(ring + 16ull * num);
	q->used = (struct vring_used *)(ring + used_offset(num));
	uvirtio_dma_addr(q->dma, q->desc, 1, &q->desc_addr);
	uvirtio_dma_addr(q->dma, q->avail, 1, &q->avail_addr);
	uvirtio_dma_addr(q->dma, q->used, 1, &q->used_addr);

	/* The free list starts in ring order; with IN_ORDER it stays a ring
	 * (the last descriptor links to 0: spec, split "In-order") and is never spliced. */
	for (unsigned i = 0; i < num; i++)
		q->next[i] = (uint16_t)((i + 1) & (num - 1));
	q->free_head = 0;
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
static int write_chain(struct drvq *q, struct vring_desc *table, const struct iovec *out,
		       unsigned n_out, const struct iovec *in, unsigned n_in, uint16_t *last)
{
	unsigned total = n_out + n_in;
	uint16_t i = table ? 0 : q->free_head;

	for (unsigned k = 0; k < total; k++) {
		const struct iovec *part = k < n_out ? &out[k] : &in[k - n_out];
		uint16_t flags = k < n_out ? 0 : VRING_DESC_F_WRITE;
		uint16_t next = table ? (uint16_t)(k + 1) : q->next[i];
		uint64_t addr;

		if (drvq_dma_addr(q, part->iov_base, part->iov_len, &addr))
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

int split_drv_add(struct drvq *q, const struct iovec *out, unsigned n_out,
		  const struct iovec *in, unsigned n_in, void *token, uint32_t in_len)
{
	unsigned total = n_out + n_in;
	bool indirect, indirect_refused;
	uint16_t head, last = 0; /* set by write_chain(); -O3 cannot see it */
	int ret;

	indirect = drvq_use_indirect(q, total, &indirect_refused);
	if (!indirect && total > q->num_free)
		return indirect_refused ? -ENOMEM : -ENOSPC;

	head = q->free_head;
	if (indirect) {
		struct vring_desc *table = q->indirect_pool + (size_t)head * q->indirect_max;
		uint64_t table_addr = 0;

		ret = write_chain(q, table, out, n_out, in, n_in, &last);
		if (ret)
			return ret;
		drvq_dma_addr(q, table, total * sizeof(*table), &table_addr);
		write_desc(&q->desc[head], table_addr, total * (uint32_t)sizeof(*table),
			   VRING_DESC_F_INDIRECT, 0);
		last = head;
		q->num_free--;
	} else {
		ret = write_chain(q, NULL, out, n_out, in, n_in, &last);
		if (ret)
			return ret;
		q->num_free -= (uint16_t)total;
	}
	q->free_head = q->next[last];

	q->slots[head] = (struct uvirtio_drvq_slot){
		.token = token,
		.in_len = in_len,
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

bool split_drv_kick_prepare(struct drvq *q)
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

static void free_chain(struct drvq *q, uint16_t head)
{
	struct uvirtio_drvq_slot *s = &q->slots[head];

	/* IN_ORDER: the oldest run of descriptors comes free, which is where
	 * the ring-ordered free list already continues. Otherwise the chain's
	 * private links still run head .. last; splice it in front of the
	 * free list. */
	if (!q->in_order) {
		q->next[s->last] = q->free_head;
		q->free_head = head;
	}
	q->num_free += s->ndescs;
	s->token = NULL;
}

/* IN_ORDER: the head of the oldest buffer in flight (the run in flight ends
 * just before free_head). */
static uint16_t oldest_head(const struct drvq *q)
{
	return (uint16_t)((q->free_head + q->num_free) & (q->num - 1));
}

/* IN_ORDER: a used entry for @id, which is not the oldest buffer: the device
 * used every buffer up to it. Counts them; there must be no more than the
 * used entries the device published. */
static int start_batch(struct drvq *q, uint16_t id, uint32_t used_len)
{
	uint16_t h = oldest_head(q), bufs = 1;

	/* Bounded by the buffers in flight: @id is one of them (checked), and
	 * the walk can only visit heads in flight. */
	while (h != id) {
		h = (uint16_t)((h + q->slots[h].ndescs) & (q->num - 1));
		if (!q->slots[h].token || ++bufs > q->num)
			return drvq_broken(q, "used id not in flight");
	}
	/* spec, split "In-order": the used index advances by the batch's buffers. */
	if (bufs > (uint16_t)(q->used_seen - q->last_used))
		return drvq_broken(q, "used batch beyond the used index");
	drvq_batch_start(q, id, used_len);
	return 0;
}

int split_drv_get(struct drvq *q, void **token, uint32_t *len)
{
	/* Set on every path that reaches their use; gcc with ASan cannot see
	 * that batch_pending is set whenever the first block is skipped. */
	struct uvirtio_drvq_slot *s = NULL;
	uint32_t id = 0, used_len = 0;
	int ret;

	if (!q->batch_pending) {
		const struct vring_used_elem *e;

		if (q->last_used == q->used_seen) {
			/* Acquire pairs with the device's release store of used->idx. */
			uint16_t idx = ring_load16_acquire(&q->used->idx);

			if ((uint16_t)(idx - q->last_used) > (uint16_t)(q->avail_idx - q->last_used))
				return drvq_broken(q, "used index ahead of the buffers made available");
			q->used_seen = idx;
			if (idx == q->last_used)
				return 0;
		}

		/* Each field read once; the checks below see only the copies. */
		e = &q->used->ring[q->last_used & (q->num - 1)];
		id = ring_load32(&e->id);
		used_len = ring_load32(&e->len);
		ret = drvq_check_used(q, id, used_len);
		if (ret)
			return ret;
		s = &q->slots[id];
		if (q->in_order && id != oldest_head(q)) {
			ret = start_batch(q, (uint16_t)id, used_len);
			if (ret)
				return ret;
		}
	}

	if (q->batch_pending) {
		/* The next buffer of the batch, in order. */
		id = oldest_head(q);
		s = &q->slots[id];
		used_len = drvq_batch_next_len(q, (uint16_t)id);
	}

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

void split_drv_disable_cb(struct drvq *q)
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

static bool arm_cb(struct drvq *q, uint16_t event, uint16_t pending_allowed)
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
	 * push, miss our request, and we would miss its push: a lost wake-up.
	 * (An IN_ORDER batch being handed out is counted in used->idx.) */
	ring_mb();
	return (uint16_t)(ring_load16(&q->used->idx) - q->last_used) <= pending_allowed;
}

bool split_drv_enable_cb(struct drvq *q)
{
	return arm_cb(q, q->last_used, 0);
}

bool split_drv_enable_cb_delayed(struct drvq *q)
{
	uint16_t bufs = (uint16_t)((uint16_t)(q->avail_idx - q->last_used) * 3 / 4);

	return arm_cb(q, (uint16_t)(q->last_used + bufs), bufs);
}

void *split_drv_detach_unused(struct drvq *q)
{
	/* The device is reset: a batch it announced no longer matters. */
	q->batch_pending = false;
	for (unsigned k = 0; k < q->num; k++) {
		/* IN_ORDER takes the oldest first, so what stays in flight is
		 * still one run ending at free_head. */
		uint16_t i = q->in_order ? oldest_head(q) : (uint16_t)k;
		void *token = q->slots[i].token;

		if (!token) {
			if (q->in_order)
				return NULL;
			continue;
		}
		free_chain(q, i);
		/* Take the entry back out of the avail ring, as if never added. */
		q->avail_idx--;
		ring_store16(&q->avail->idx, q->avail_idx);
		return token;
	}
	return NULL;
}
