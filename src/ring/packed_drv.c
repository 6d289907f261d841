// SPDX-License-Identifier: MIT
/*
 * Packed virtqueue, driver side (spec 2.8; drvq.c checks the arguments and
 * calls here).
 *
 * One descriptor ring, written by both sides in ring order. We make a
 * buffer available by writing its descriptors at next_avail with AVAIL set
 * to our avail wrap counter and USED to its inverse; the device marks a used
 * descriptor by setting both to its wrap counter, at the next used position,
 * with the buffer id of the buffer it used. A used descriptor stands for the
 * whole buffer, so we advance by the descriptors that buffer held, which we
 * keep privately per buffer id (the device only echoes the id).
 *
 * Memory ordering with the device (packed_dev.c names the same pairs):
 *  - we write a chain's other descriptors first and its head's flags last,
 *    with release; the device acquire-loads the head's flags;
 *  - we acquire-load a descriptor's flags before reading its id and length;
 *    the device release-stores the flags after writing them;
 *  - around event suppression each side stores its area, then loads the
 *    other's, with a full barrier between (ring_mb).
 *
 * IN_ORDER (spec, packed virtqueues, "In-order"; issue 6): buffer ids are the positions of
 * the buffers' heads, so ids and positions both run in ring order; the
 * device may write one used descriptor for a batch, at the batch's first
 * position, with the id of its last buffer, and skip the descriptors of the
 * whole batch. We complete the batch's buffers one per get.
 */
#include <errno.h>
#include <string.h>

#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "drvq_priv.h"
#include "ring_access.h"

#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)
#define WRAP_BIT (1u << VRING_PACKED_EVENT_F_WRAP_CTR)

size_t packed_drv_ring_bytes(unsigned num)
{
	/* Descriptor ring (16-byte aligned), then the driver and device areas
	 * (4 bytes each, 4-byte aligned). */
	return 16ull * num + 2 * sizeof(struct vring_packed_desc_event);
}

void packed_drv_init(struct drvq *q, char *ring)
{
	unsigned num = q->num;

	q->packed_desc = (struct vring_packed_desc *)ring;
	q->driver_event = (struct vring_packed_desc_event *)(ring + 16ull * num);
	q->device_event = q->driver_event + 1;
	uvirtio_dma_addr(q->dma, q->packed_desc, 1, &q->desc_addr);
	uvirtio_dma_addr(q->dma, q->driver_event, 1, &q->avail_addr);
	uvirtio_dma_addr(q->dma, q->device_event, 1, &q->used_addr);

	/* spec, packed virtqueues: both wrap counters start at 1; the zeroed ring then holds
	 * no available and no used descriptor. */
	q->avail_wrap = true;
	q->used_wrap = true;
	q->event_flags = VRING_PACKED_EVENT_FLAG_ENABLE;
	for (unsigned i = 0; i + 1 < num; i++)
		q->next[i] = (uint16_t)(i + 1);
	q->free_head = 0;
}

/* The AVAIL/USED bits that make a descriptor available in the lap @wrap. */
static uint16_t avail_flags(bool wrap)
{
	return (uint16_t)(wrap ? F_AVAIL : F_USED);
}

/* spec 2.8.1: a descriptor is used in the lap @wrap when AVAIL and USED both
 * equal the used wrap counter. */
static bool is_used(uint16_t flags, bool wrap)
{
	bool avail = flags & F_AVAIL, used = flags & F_USED;

	return avail == used && used == wrap;
}

static void advance(uint16_t *pos, bool *wrap, unsigned by, unsigned num)
{
	unsigned p = *pos + by;

	if (p >= num) {
		p -= num;
		*wrap = !*wrap;
	}
	*pos = (uint16_t)p;
}

static void write_fields(struct vring_packed_desc *d, uint64_t addr, uint32_t len, uint16_t id)
{
	ring_store32(&d->len, len);
	ring_store16(&d->id, id);
	__atomic_store_n(&d->addr, htole64(addr), __ATOMIC_RELAXED);
}

int packed_drv_add(struct drvq *q, const struct iovec *out, unsigned n_out,
		   const struct iovec *in, unsigned n_in, void *token, uint32_t in_len)
{
	unsigned total = n_out + n_in, ndescs;
	bool indirect, indirect_refused, wrap = q->avail_wrap;
	uint16_t head = q->next_avail, pos = head, id, head_flags = 0, last = head;

	indirect = drvq_use_indirect(q, total, &indirect_refused);
	if (!indirect && total > q->num_free)
		return indirect_refused ? -ENOMEM : -ENOSPC;
	/* IN_ORDER: the id is the head's position, free because the buffers
	 * in flight hold one run of positions ending just before it. */
	id = q->in_order ? head : q->free_head;

	if (indirect) {
		struct vring_packed_desc *table =
			q->packed_indirect_pool + (size_t)id * q->indirect_max;
		uint64_t addr;

		for (unsigned k = 0; k < total; k++) {
			const struct iovec *part = k < n_out ? &out[k] : &in[k - n_out];

			if (drvq_dma_addr(q, part->iov_base, part->iov_len, &addr))
				return -EFAULT;
			/* spec, packed indirect descriptors: a table has no NEXT
			 * and its ids are ignored. */
			table[k] = (struct vring_packed_desc){
				.addr = htole64(addr),
				.len = htole32((uint32_t)part->iov_len),
				.flags = htole16(k < n_out ? 0 : VRING_DESC_F_WRITE),
			};
		}
		drvq_dma_addr(q, table, total * sizeof(*table), &addr);
		write_fields(&q->packed_desc[head], addr, total * (uint32_t)sizeof(*table), id);
		head_flags = (uint16_t)(VRING_DESC_F_INDIRECT | avail_flags(wrap));
		ndescs = 1;
		advance(&pos, &wrap, 1, q->num);
	} else {
		/* Every part checked before any descriptor is written: a
		 * descriptor written for a failed add would look available
		 * once a later, shorter add makes the position before it
		 * available (found by fuzz_drvq_packed). */
		for (unsigned k = 0; k < total; k++) {
			const struct iovec *part = k < n_out ? &out[k] : &in[k - n_out];
			uint64_t addr;

			if (drvq_dma_addr(q, part->iov_base, part->iov_len, &addr))
				return -EFAULT;
		}
		for (unsigned k = 0; k < total; k++) {
			const struct iovec *part = k < n_out ? &out[k] : &in[k - n_out];
			uint16_t flags = avail_flags(wrap);
			uint64_t addr = 0;

			drvq_dma_addr(q, part->iov_base, part->iov_len, &addr);
			if (k >= n_out)
				flags |= VRING_DESC_F_WRITE;
			if (k + 1 < total)
				flags |= VRING_DESC_F_NEXT;
			/* Every descriptor carries the id; the device takes it
			 * from the chain's last one (spec, packed
			 * "Scatter-Gather Support"). */
			write_fields(&q->packed_desc[pos], addr, (uint32_t)part->iov_len, id);
			if (k == 0)
				head_flags = flags;
			else
				ring_store16(&q->packed_desc[pos].flags, flags);
			last = pos;
			advance(&pos, &wrap, 1, q->num);
		}
		ndescs = total;
	}

	q->slots[id] = (struct uvirtio_drvq_slot){
		.token = token,
		.in_len = in_len,
		.ndescs = (uint16_t)ndescs,
		.last = last,
	};
	if (!q->in_order)
		q->free_head = q->next[id];
	q->num_free -= (uint16_t)ndescs;
	q->next_avail = pos;
	q->avail_wrap = wrap;
	q->num_added += ndescs;

	/* Release pairs with the device's acquire load of the head's flags:
	 * everything above, the rest of the chain included, is visible before
	 * the head turns available. */
	ring_store16_release(&q->packed_desc[head].flags, head_flags);
	return 0;
}

bool packed_drv_kick_prepare(struct drvq *q)
{
	uint16_t new = q->next_avail, old = (uint16_t)(new - q->num_added), flags, event;
	bool lost = q->num_added >= q->num;
	uint32_t area;

	/* Orders the head flags' store before loading the device area; pairs
	 * with the barrier in the device's enable_notify, so one of us sees
	 * the other: no buffer left unnoticed. */
	ring_mb();
	q->num_added = 0;
	/* One load, so flags and off_wrap are from the same write. */
	area = le32toh(__atomic_load_n((uint32_t *)q->device_event, __ATOMIC_RELAXED));
	event = (uint16_t)(area & 0xffff);
	flags = (uint16_t)(area >> 16);
	/* spec, packed event suppression: DESC only counts with EVENT_IDX; a reserved value or a
	 * DESC we did not negotiate asks for nothing we can honour: notify. */
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !q->event_idx)
		return flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	/* A ring's worth added without a kick: the window is lost; kick. */
	if (lost)
		return true;
	/* The event offset is in this lap if its wrap counter is ours, else in
	 * the previous one: count it from there (may go below 0, mod 2^16). */
	{
		bool event_wrap = event & WRAP_BIT;
		uint16_t off = (uint16_t)(event & ~WRAP_BIT);

		if (event_wrap != q->avail_wrap)
			off = (uint16_t)(off - q->num);
		return vring_need_event(off, new, old);
	}
}

/* The driver area's off_wrap: where we want the next used notification. */
static void set_event(struct drvq *q, uint16_t pos, bool wrap)
{
	ring_store16(&q->driver_event->off_wrap, (uint16_t)(pos | (wrap ? WRAP_BIT : 0)));
}

static void set_event_flags(struct drvq *q, uint16_t flags)
{
	if (q->event_flags == flags)
		return;
	q->event_flags = flags;
	ring_store16(&q->driver_event->flags, flags);
}

/* IN_ORDER: a used descriptor for @id, which is not the oldest buffer (the
 * one at last_used): the device used every buffer up to it. */
static int start_batch(struct drvq *q, uint16_t id, uint32_t used_len)
{
	uint16_t h = q->last_used;
	bool w = q->used_wrap;

	/* Bounded by the buffers in flight: the walk visits only their heads. */
	for (unsigned n = 0; h != id; n++) {
		advance(&h, &w, q->slots[h].ndescs, q->num);
		if (!q->slots[h].token || n >= q->num)
			return drvq_broken(q, "used id not in flight");
	}
	drvq_batch_start(q, id, used_len);
	return 0;
}

/* The buffer at @id is back (used, or detached after a reset): its
 * descriptors are free again. The used descriptor stands for the buffer's
 * whole chain, so last_used moves past all of it. */
static void release(struct drvq *q, uint16_t id)
{
	struct uvirtio_drvq_slot *s = &q->slots[id];

	s->token = NULL;
	q->num_free += s->ndescs;
	advance(&q->last_used, &q->used_wrap, s->ndescs, q->num);
	if (!q->in_order) {
		q->next[id] = q->free_head;
		q->free_head = id;
	}
}

int packed_drv_get(struct drvq *q, void **token, uint32_t *len)
{
	/* Set on every path that reaches their use; gcc with ASan cannot see
	 * that batch_pending is set whenever the first block is skipped. */
	uint16_t id = 0;
	uint32_t used_len = 0;
	int ret;

	if (!q->batch_pending) {
		struct vring_packed_desc *d = &q->packed_desc[q->last_used];
		/* Acquire pairs with the device's release store of the flags:
		 * id and len below are the ones it wrote before them. */
		uint16_t flags = ring_load16_acquire(&d->flags);

		if (!is_used(flags, q->used_wrap))
			return 0;
		/* Each field read once; the checks below see only the copies. */
		id = ring_load16(&d->id);
		used_len = ring_load32(&d->len);
		ret = drvq_check_used(q, id, used_len);
		if (ret)
			return ret;
		if (q->in_order && id != q->last_used) {
			ret = start_batch(q, id, used_len);
			if (ret)
				return ret;
		}
	}

	if (q->batch_pending) {
		/* The batch's next buffer, in order. */
		id = q->last_used;
		used_len = drvq_batch_next_len(q, id);
	}

	*token = q->slots[id].token;
	*len = used_len;
	release(q, id);

	/* With EVENT_IDX and callbacks on, ask for a notification at the next
	 * used descriptor; the barrier makes it visible before we look at the
	 * ring again (pairs with the device's needs_notify). */
	if (q->event_flags == VRING_PACKED_EVENT_FLAG_DESC) {
		set_event(q, q->last_used, q->used_wrap);
		ring_mb();
	}
	return 1;
}

void packed_drv_disable_cb(struct drvq *q)
{
	set_event_flags(q, VRING_PACKED_EVENT_FLAG_DISABLE);
}

bool packed_drv_enable_cb(struct drvq *q)
{
	if (q->event_idx)
		set_event(q, q->last_used, q->used_wrap);
	set_event_flags(q, q->event_idx ? VRING_PACKED_EVENT_FLAG_DESC : VRING_PACKED_EVENT_FLAG_ENABLE);
	/* Orders the stores above before looking at the ring; pairs with the
	 * barrier in the device's needs_notify. Without it the device could
	 * mark a buffer used, miss our request, and we would miss its buffer. */
	ring_mb();
	if (q->batch_pending)
		return false;
	return !is_used(ring_load16(&q->packed_desc[q->last_used].flags), q->used_wrap);
}

bool packed_drv_enable_cb_delayed(struct drvq *q)
{
	/* About 3/4 of the descriptors in flight (Linux counts the same). */
	unsigned bufs = (unsigned)(q->num - q->num_free) * 3 / 4;
	uint16_t pos = q->last_used;
	bool wrap = q->used_wrap;

	advance(&pos, &wrap, bufs, q->num);
	set_event(q, pos, wrap);
	set_event_flags(q, VRING_PACKED_EVENT_FLAG_DESC);
	/* As in enable_cb. */
	ring_mb();
	if (q->batch_pending)
		return false;
	return !is_used(ring_load16(&q->packed_desc[pos].flags), wrap);
}

void *packed_drv_detach_unused(struct drvq *q)
{
	/* The device is reset: a batch it announced no longer matters. */
	q->batch_pending = false;
	for (unsigned k = 0; k < q->num; k++) {
		/* IN_ORDER takes the oldest first, so what stays in flight is
		 * still one run of positions. */
		uint16_t id = q->in_order ? q->last_used : (uint16_t)k;
		void *token = q->slots[id].token;

		if (!token) {
			if (q->in_order)
				return NULL;
			continue;
		}
		/* As if the device had used it: keeps last_used plus the
		 * descriptors in flight equal to next_avail. */
		release(q, id);
		return token;
	}
	return NULL;
}
