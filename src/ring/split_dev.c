// SPDX-License-Identifier: MIT
/*
 * Split virtqueue, device side.
 *
 * Memory ordering with the driver (each pair named at both ends):
 *  - avail: the driver writes descriptors and the avail ring entry, then
 *    release-stores avail->idx; we acquire-load avail->idx before reading
 *    anything it covers.
 *  - used: we write used ring entries, then release-store used->idx; the
 *    driver acquire-loads used->idx before reading the entries.
 *  - notifications: each side stores its index and then loads the other's
 *    suppression field (used_event/avail_event/flags); a full barrier between
 *    the store and the load on both sides guarantees that at least one of them
 *    sees the other's latest value, so no notification is lost.
 */
#include <errno.h>
#include <stddef.h>

#include "uvirtio/devq.h"
#include "uvirtio/virtio_spec.h"
#include "devq_priv.h"
#include "ring_access.h"

static bool is_pow2(unsigned n)
{
	return n && !(n & (n - 1));
}

int split_dev_setup(struct devq *q, const struct uvirtio_mem *mem, unsigned num,
		    uint64_t desc, uint64_t avail, uint64_t used)
{
	/* spec, split virtqueues: the queue size is a power of 2, at most 32768. */
	if (!is_pow2(num) || num > UVIRTIO_QUEUE_SIZE_MAX)
		return -EINVAL;
	/* spec, virtqueue part alignment: descriptors 16, avail 2, used 4. */
	if (desc % 16 || avail % 2 || used % 4)
		return -EINVAL;

	/* The event fields sit one entry past each ring; the sizes always count
	 * them so that turning EVENT_IDX on never reaches outside the checks. */
	q->desc = uvirtio_mem_ptr(mem, desc, 16ull * num);
	q->avail = uvirtio_mem_ptr(mem, avail, 6ull + 2ull * num);
	q->used = uvirtio_mem_ptr(mem, used, 6ull + 8ull * num);
	if (!q->desc || !q->avail || !q->used) {
		q->desc = NULL;
		q->avail = NULL;
		q->used = NULL;
		return -EFAULT;
	}
	/* A front-end chooses where regions are mapped (vhost-user mmap
	 * offsets); the atomic ring accesses need the host side aligned too. */
	if ((uintptr_t)q->desc % 16 || (uintptr_t)q->avail % 2 || (uintptr_t)q->used % 4) {
		q->desc = NULL;
		q->avail = NULL;
		q->used = NULL;
		return -EINVAL;
	}
	return 0;
}

bool split_dev_has_avail(const struct devq *q)
{
	if (q->broken || !q->avail)
		return false;
	return q->last_avail != q->avail_seen || ring_load16(&q->avail->idx) != q->last_avail;
}

static uint16_t ring_mask(const struct devq *q)
{
	return (uint16_t)(q->num - 1);
}

/* Walks one chain into req. Every value comes from a single read of the
 * descriptor into local memory (desc_read_once) and is checked before use. */
static int walk_chain(struct devq *q, uint16_t head, struct uvirtio_req *req)
{
	const struct vring_desc *table = q->desc;
	unsigned table_size = q->num;
	unsigned steps = 0, n_iov = 0;
	uint64_t total = 0, out_len = 0;
	bool in_indirect = false, seen_writable = false;
	unsigned n_out = 0;
	uint16_t idx = head;

	for (;;) {
		struct desc_copy d;
		int n;

		/* spec: descriptor indices are less than the queue (or table) size. */
		if (idx >= table_size)
			return devq_broken_at(q, "descriptor index out of range", "descriptor %u, %s size %u",
					      idx, in_indirect ? "table" : "queue", table_size);
		/* spec: a chain is no longer than the queue size. A chain that would
		 * be longer must revisit an index: this also catches every loop. */
		if (++steps > table_size)
			return devq_broken(q, in_indirect ? "indirect descriptor chain loops"
							   : "descriptor chain longer than the queue (loop)");

		d = desc_read_once(&table[idx]);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* spec: the driver MUST NOT set INDIRECT unless INDIRECT_DESC
			 * was negotiated. */
			if (!q->indirect)
				return devq_broken(q, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
			/* spec: the driver MUST NOT set INDIRECT within an indirect table. */
			if (in_indirect)
				return devq_broken(q, "nested indirect descriptor");
			/* spec: the driver MUST NOT set INDIRECT and NEXT together. */
			if (d.flags & VRING_DESC_F_NEXT)
				return devq_broken(q, "indirect descriptor with NEXT set");
			if (d.len == 0 || d.len % sizeof(struct vring_desc))
				return devq_broken_at(q, "indirect table length not a non-zero multiple of 16",
						      "descriptor %u length %u", idx, d.len);
			if (d.len / sizeof(struct vring_desc) > UVIRTIO_INDIRECT_MAX)
				return devq_broken_at(q, "indirect table too long", "descriptor %u length %u", idx, d.len);
			/* spec: a chain is no longer than the queue size, and
			 * the descriptors of an indirect table count (2.7.5.3.1):
			 * those before this one and the table's. */
			if (steps - 1 + d.len / sizeof(struct vring_desc) > q->num)
				return devq_broken(q, "descriptor chain longer than the queue (indirect)");
			table = uvirtio_mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return devq_broken_at(q, "indirect table outside guest memory",
						      "descriptor %u addr %#llx length %u", idx,
						      (unsigned long long)d.addr, d.len);
			table_size = d.len / sizeof(struct vring_desc);
			in_indirect = true;
			steps = 0;
			idx = 0;
			continue;
		}

		if (d.flags & VRING_DESC_F_WRITE) {
			seen_writable = true;
		} else if (seen_writable) {
			/* spec: readable descriptors come before writable ones. */
			return devq_broken_at(q, "readable descriptor after a writable one", "descriptor %u", idx);
		}

		total += d.len;
		/* The used element reports lengths in 32 bits. */
		if (total > UINT32_MAX)
			return devq_broken_at(q, "descriptor chain longer than 4 GiB",
					      "descriptor %u length %u brings the chain to %llu bytes", idx,
					      d.len, (unsigned long long)total);

		n = uvirtio_mem_translate(q->mem, d.addr, d.len, req->iov + n_iov,
					  req->iov_cap - n_iov);
		if (n == -ENOBUFS)
			return devq_broken(q, "descriptor chain needs more iovecs than the device allows");
		if (n < 0)
			return devq_broken_at(q, "buffer outside guest memory",
					      "descriptor %u addr %#llx length %u", idx,
					      (unsigned long long)d.addr, d.len);
		n_iov += (unsigned)n;
		if (!seen_writable) {
			n_out += (unsigned)n;
			out_len += d.len;
		}

		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		idx = d.next;
	}

	req->id = head;
	req->n_out = n_out;
	req->n_in = n_iov - n_out;
	req->out_len = (uint32_t)out_len;
	req->in_len = (uint32_t)(total - out_len);
	return 1;
}

/*
 * Logging: the first @len bytes of the writable part of the chain at @head,
 * read again from the descriptor table at push time. A second read is
 * harmless on a split ring: the device never writes descriptors, so they are
 * as the driver made them available, and the driver may not change them
 * before the used entry is published (spec 2.7.13.1). A driver that does
 * anyway gets only its own pages marked otherwise than written (its memory
 * at the destination may be stale): every index and address is checked as
 * the pop did, and nothing but log bits is written. It also marks requests
 * popped before logging was turned on, which nothing recorded.
 */
void split_dev_log_chain(struct devq *q, const struct uvirtio_dirty_log_area *a, uint16_t head,
			 uint32_t len)
{
	const struct vring_desc *table = q->desc;
	unsigned table_size = q->num, steps = 0;
	bool in_indirect = false;
	uint16_t idx = head;

	while (len) {
		struct desc_copy d;

		if (idx >= table_size || ++steps > table_size)
			return;
		d = desc_read_once(&table[idx]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect || !d.len || d.len % sizeof(struct vring_desc) ||
			    d.len / sizeof(struct vring_desc) > UVIRTIO_INDIRECT_MAX)
				return;
			table = uvirtio_mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return;
			table_size = d.len / sizeof(struct vring_desc);
			in_indirect = true;
			steps = 0;
			idx = 0;
			continue;
		}
		if (d.flags & VRING_DESC_F_WRITE) {
			uint32_t l = d.len < len ? d.len : len;

			uvirtio_dirty_log_mark(a, d.addr, l);
			len -= l;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return;
		idx = d.next;
	}
}

int split_dev_walk(struct devq *q, uint16_t head, struct uvirtio_req *req)
{
	return walk_chain(q, head, req);
}

/* Finds the next available chain and walks it into req, without taking it:
 * devq.c does its bookkeeping, then split_dev_consume(). */
int split_dev_peek(struct devq *q, struct uvirtio_req *req, struct devq_popped *p)
{
	uint16_t head;
	int ret;

	if (q->last_avail == q->avail_seen) {
		/* Acquire pairs with the driver's release store of avail->idx:
		 * the ring entries and descriptors it covers are visible now. */
		uint16_t avail = ring_load16_acquire(&q->avail->idx);

		/* spec: the driver makes at most queue-size buffers available
		 * beyond what the device has taken. */
		if ((uint16_t)(avail - q->last_avail) > q->num)
			return devq_broken_at(q, "avail index more than the queue size ahead",
					      "avail idx %u, last taken %u, queue size %u", avail,
					      q->last_avail, q->num);
		q->avail_seen = avail;
		if (avail == q->last_avail)
			return 0;
	}

	head = ring_load16(&q->avail->ring[q->last_avail & ring_mask(q)]);
	ret = walk_chain(q, head, req);
	if (ret < 0)
		return ret;
	p->buf_id = req->id;
	p->ndesc = 1;
	return 1;
}

void split_dev_consume(struct devq *q)
{
	q->last_avail++;
	/* With EVENT_IDX, a device that wants kicks keeps avail_event at the
	 * next slot it will look at. This store has no barrier after it: before
	 * sleeping a device must call enable_notify(), which has one. */
	if (q->event_idx && q->notify_enabled)
		ring_store16(&q->used->ring[q->num], q->last_avail);
}

/* Logging: the used ring's bytes [off, off + len) at its logged address. */
static void log_used(struct devq *q, const struct uvirtio_dirty_log_area *a, uint64_t off,
		     uint64_t len)
{
	uint64_t base = __atomic_load_n(&q->log_used, __ATOMIC_RELAXED), gpa;

	/* A base near the top wraps: marked up to the top, never around. */
	if (__builtin_add_overflow(base, off, &gpa))
		return;
	uvirtio_dirty_log_mark(a, gpa, len);
}

/* One used entry at w->idx; with IN_ORDER one entry may stand for @count
 * buffers (the driver completes every buffer up to @id). */
void split_dev_used_put(struct devq *q, struct used_writer *w, uint16_t id, uint32_t len,
			uint16_t count)
{
	struct vring_used_elem *e = &q->used->ring[w->idx & ring_mask(q)];

	ring_store32(&e->id, id);
	ring_store32(&e->len, len);
	/* Logging: the entry, after its stores and before used_end's release
	 * publishes it. One at a time: with IN_ORDER the next entry may be
	 * several slots on. */
	if (w->log)
		log_used(q, w->log,
			 offsetof(struct vring_used, ring) + (uint64_t)(w->idx & ring_mask(q)) * sizeof(*e),
			 sizeof(*e));
	w->idx = (uint16_t)(w->idx + count);
	w->advanced += count;
	w->n++;
}

void split_dev_used_end(struct devq *q, struct used_writer *w)
{
	uint16_t idx = w->idx;

	/* The idx field, marked before the release below publishes it (the
	 * entries were marked as they were written, in used_put). */
	if (w->log)
		log_used(q, w->log, offsetof(struct vring_used, idx), sizeof(uint16_t));
	/* Release pairs with the driver's acquire load of used->idx: the
	 * entries above, and our writes into the buffers, are visible first. */
	ring_store16_release(&q->used->idx, idx);
	/* And once more after the store: a front-end that read and cleared
	 * the bit between the mark above and the store would otherwise send
	 * the page without it. (The data pages need no second mark: they were
	 * written before their first.) */
	if (w->log)
		log_used(q, w->log, offsetof(struct vring_used, idx), sizeof(uint16_t));
	/* 65536 pushes since the last notification make signalled_used look
	 * recent: forget it, so the next needs_notify notifies (as vhost does). */
	if ((uint16_t)(idx - q->signalled_used) < (uint16_t)(idx - q->used_idx) ||
	    w->advanced >= 65536)
		q->signalled_used_valid = false;
	q->used_idx = idx;
}

bool split_dev_needs_notify(struct devq *q)
{
	uint16_t old, new;
	bool valid;

	if (!q->ready || q->broken)
		return false;
	/* Orders our used->idx store before the load of the driver's
	 * suppression field; pairs with the barrier in the driver's
	 * enable_cb between its used_event store and its used->idx load. */
	ring_mb();

	if (!q->event_idx)
		return !(ring_load16(&q->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);

	old = q->signalled_used;
	new = q->used_idx;
	valid = q->signalled_used_valid;
	q->signalled_used = new;
	q->signalled_used_valid = true;
	if (!valid)
		return true;
	return vring_need_event(ring_load16(&q->avail->ring[q->num]), new, old);
}

void split_dev_disable_notify(struct devq *q)
{
	if (!q->ready || !q->notify_enabled)
		return;
	q->notify_enabled = false;
	/* With EVENT_IDX, leaving avail_event where it is suppresses kicks:
	 * the driver has already passed it. */
	if (!q->event_idx)
		ring_store16(&q->used->flags, VRING_USED_F_NO_NOTIFY);
}

bool split_dev_enable_notify(struct devq *q)
{
	if (!q->ready || q->broken)
		return false;
	q->notify_enabled = true;
	if (q->event_idx)
		ring_store16(&q->used->ring[q->num], q->last_avail);
	else
		ring_store16(&q->used->flags, 0);
	/* Orders the store above before re-reading avail->idx; pairs with the
	 * barrier in the driver's kick_prepare between its avail->idx store and
	 * its load of our suppression field. */
	ring_mb();
	return ring_load16_acquire(&q->avail->idx) != q->last_avail;
}
