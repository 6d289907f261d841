// SPDX-License-Identifier: MIT
/*
 * Packed virtqueue, device side.
 *
 * One ring of descriptors that both sides write: the driver marks a
 * descriptor available (AVAIL = its wrap counter, USED = the inverse), the
 * device overwrites descriptors in completion order with used ones (AVAIL =
 * USED = its wrap counter). Indices here carry their wrap counter in bit 15
 * (see devq.h).
 *
 * Memory ordering with the driver (each pair named at both ends):
 *  - avail: the driver writes a chain's descriptors, then release-stores the
 *    first one's flags; we acquire-load those flags before reading anything
 *    of the chain.
 *  - used: we write a used descriptor's id and len (and, in a batch, every
 *    other descriptor of the batch), then release-store the first one's
 *    flags; the driver acquire-loads the flags before reading the rest.
 *  - notifications: each side stores to its event suppression area (or its
 *    descriptors) and then loads the other's; a full barrier between the
 *    store and the load on both sides guarantees that at least one of them
 *    sees the other's latest value, so no notification is lost.
 */
#include <errno.h>
#include <stddef.h>

#include "uvirtio/devq.h"
#include "uvirtio/virtio_spec.h"
#include "devq_priv.h"
#include "ring_access.h"

#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)

int packed_dev_setup(struct devq *q, const struct uvirtio_mem *mem, unsigned num,
		     uint64_t desc, uint64_t driver, uint64_t device)
{
	/* spec, packed virtqueues: up to 2^15 entries, any number. */
	if (num == 0 || num > 32768u)
		return -EINVAL;
	/* spec, packed structure alignment: descriptor ring 16, the two event
	 * suppression areas 4. */
	if (desc % 16 || driver % 4 || device % 4)
		return -EINVAL;

	q->pdesc = uvirtio_mem_ptr(mem, desc, 16ull * num);
	q->driver_event = uvirtio_mem_ptr(mem, driver, sizeof(struct vring_packed_desc_event));
	q->device_event = uvirtio_mem_ptr(mem, device, sizeof(struct vring_packed_desc_event));
	if (!q->pdesc || !q->driver_event || !q->device_event) {
		q->pdesc = NULL;
		q->driver_event = NULL;
		q->device_event = NULL;
		return -EFAULT;
	}
	/* The atomic accesses need the host side aligned too (vhost-user
	 * front-ends choose the mmap offsets). */
	if ((uintptr_t)q->pdesc % 16 || (uintptr_t)q->driver_event % 4 ||
	    (uintptr_t)q->device_event % 4) {
		q->pdesc = NULL;
		q->driver_event = NULL;
		q->device_event = NULL;
		return -EINVAL;
	}
	return 0;
}

bool packed_dev_has_avail(const struct devq *q)
{
	uint16_t at = q->last_avail;

	if (q->broken || !q->pdesc)
		return false;
	return pdesc_is_avail(ring_load16(&q->pdesc[packed_idx(at)].flags), packed_wrap(at));
}

/* One element of a buffer into req: the readable-before-writable rule, the
 * 4 GiB total, and the translation. */
/* Records a writable range for logging (devq_priv.h, struct
 * devq_log_ranges): a few stores, on every pop. */
static void record_writable(struct devq_log_ranges *w, uint64_t addr, uint32_t len)
{
	unsigned last = w->n - 1u;
	uint64_t lo, hi;

	if (!len)
		return;
	if (w->n && !w->covering && w->gpa[last] + w->len[last] == addr) {
		w->len[last] += len; /* contiguous: one range */
		return;
	}
	if (w->n < DEVQ_LOG_RANGES) {
		w->gpa[w->n] = addr;
		w->len[w->n++] = len;
		return;
	}
	/* Full: the last range covers this one too. A translated range never
	 * wraps (uvirtio_mem_translate checked it), so neither does hi. */
	lo = w->gpa[last] < addr ? w->gpa[last] : addr;
	hi = w->gpa[last] + w->len[last] > addr + len ? w->gpa[last] + w->len[last] : addr + len;
	w->gpa[last] = lo;
	w->len[last] = hi - lo;
	w->covering = true;
}

static int take_element(struct devq *q, struct uvirtio_req *req, uint64_t addr,
			uint32_t len, bool writable, bool *seen_writable, uint64_t *total,
			unsigned *n_iov, unsigned *n_out, uint64_t *out_len,
			struct devq_log_ranges *w)
{
	int n;

	if (writable) {
		*seen_writable = true;
	} else if (*seen_writable) {
		/* spec: the driver places device-writable elements after the
		 * device-readable ones. */
		return devq_broken(q, "readable descriptor after a writable one");
	}
	*total += len;
	/* The used descriptor reports lengths in 32 bits. */
	if (*total > UINT32_MAX)
		return devq_broken_at(q, "descriptor chain longer than 4 GiB",
				      "element length %u brings the buffer to %llu bytes", len,
				      (unsigned long long)*total);
	n = uvirtio_mem_translate(q->mem, addr, len, req->iov + *n_iov, req->iov_cap - *n_iov);
	if (n == -ENOBUFS)
		return devq_broken(q, "descriptor chain needs more iovecs than the device allows");
	if (n < 0)
		return devq_broken_at(q, "buffer outside guest memory", "element addr %#llx length %u",
				      (unsigned long long)addr, len);
	*n_iov += (unsigned)n;
	if (!*seen_writable) {
		*n_out += (unsigned)n;
		*out_len += len;
	} else {
		record_writable(w, addr, len);
	}
	return 0;
}

/* An indirect table: its descriptors are sequential (no NEXT walking) and
 * only WRITE is meaningful in them. Every entry is read once. */
static int walk_indirect(struct devq *q, struct uvirtio_req *req, const struct pdesc_copy *d,
			 bool *seen_writable, uint64_t *total, unsigned *n_iov, unsigned *n_out,
			 uint64_t *out_len, struct devq_log_ranges *w)
{
	const struct vring_packed_desc *table;
	uint32_t count;

	/* spec: the driver MUST NOT set INDIRECT unless INDIRECT_DESC was
	 * negotiated. */
	if (!q->indirect)
		return devq_broken(q, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
	if (d->len == 0 || d->len % sizeof(struct vring_packed_desc))
		return devq_broken_at(q, "indirect table length not a non-zero multiple of 16", "length %u",
				      d->len);
	count = d->len / sizeof(struct vring_packed_desc);
	if (count > UVIRTIO_INDIRECT_MAX)
		return devq_broken_at(q, "indirect table too long", "length %u", d->len);
	/* spec: a list is no longer than the queue size; the table's
	 * descriptors count. */
	if (count > q->num)
		return devq_broken(q, "descriptor chain longer than the queue (indirect)");
	table = uvirtio_mem_ptr(q->mem, d->addr, d->len);
	if (!table)
		return devq_broken_at(q, "indirect table outside guest memory", "addr %#llx length %u",
				      (unsigned long long)d->addr, d->len);

	for (uint32_t i = 0; i < count; i++) {
		struct pdesc_copy e = pdesc_read_once(&table[i]);
		int ret;

		/* spec: the driver MUST NOT set any flag but WRITE within an
		 * indirect table; INDIRECT there would nest (the others are
		 * reserved and ignored, as the spec tells the device). */
		if (e.flags & VRING_DESC_F_INDIRECT)
			return devq_broken(q, "nested indirect descriptor");
		ret = take_element(q, req, e.addr, e.len, e.flags & VRING_DESC_F_WRITE,
				   seen_writable, total, n_iov, n_out, out_len, w);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Finds the next available buffer and walks it into req without taking it. */
int packed_dev_peek(struct devq *q, struct uvirtio_req *req, struct devq_popped *p)
{
	return packed_dev_peek_in(q, q->pdesc, q->last_avail, req, p);
}

/* Walks the buffer at @at of @ring into req. Every descriptor field is read
 * once (pdesc_read_once*) and checked before use; while tracking, the
 * copies read are kept for the inflight area (ifl_chain()). */
int packed_dev_peek_in(struct devq *q, const struct vring_packed_desc *ring, uint16_t at,
		       struct uvirtio_req *req, struct devq_popped *p)
{
	uint16_t pos = packed_idx(at);
	bool wrap = packed_wrap(at);
	unsigned ndesc = 0, n_iov = 0, n_out = 0;
	uint64_t total = 0, out_len = 0;
	bool seen_writable = false;
	struct pdesc_copy *chain = q->ifl ? ifl_chain(q) : NULL;
	uint16_t buf_id = 0;
	uint16_t flags;

	/* Acquire pairs with the driver's release store of the first
	 * descriptor's flags: it writes the rest of the chain before, so every
	 * descriptor of the chain is visible once this one is available. */
	flags = ring_load16_acquire(&ring[pos].flags);
	if (!pdesc_is_avail(flags, wrap))
		return 0;

	for (;;) {
		struct pdesc_copy d;
		int ret;

		/* spec: a list is no longer than the queue size. */
		if (ndesc + 1 > q->num)
			return devq_broken(q, "descriptor chain longer than the queue");
		/* The driver can make available only descriptors the device has
		 * given back: with those still in flight, at most num. */
		if (q->inflight_desc + ndesc + 1 > q->num)
			return devq_broken(q, "more descriptors available than the queue size");

		/* The first descriptor's flags are the ones loaded above, not
		 * fetched again: a driver rewriting them meanwhile cannot make
		 * the checks below see other flags than the one that made it
		 * available. */
		if (ndesc == 0) {
			d = pdesc_read_once_but_flags(&ring[pos], flags);
		} else {
			d = pdesc_read_once(&ring[pos]);
			/* spec: AVAIL and USED are set correctly in every
			 * descriptor of a list, not just the first. */
			if (!pdesc_is_avail(d.flags, wrap))
				return devq_broken_at(q, "descriptor in a chain not marked available (bad AVAIL/USED flags)",
						      "descriptor %u flags %#x", pos, d.flags);
		}
		if (chain)
			chain[ndesc] = d;
		ndesc++;
		/* The buffer id is in the last descriptor of the list. */
		buf_id = d.id;

		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* spec: the driver MUST NOT set INDIRECT and NEXT together,
			 * nor put an indirect descriptor in a list linked by NEXT. */
			if (d.flags & VRING_DESC_F_NEXT)
				return devq_broken(q, "indirect descriptor with NEXT set");
			if (ndesc > 1)
				return devq_broken(q, "indirect descriptor in a chain");
			ret = walk_indirect(q, req, &d, &seen_writable, &total, &n_iov, &n_out,
					    &out_len, &p->w);
		} else {
			ret = take_element(q, req, d.addr, d.len, d.flags & VRING_DESC_F_WRITE,
					   &seen_writable, &total, &n_iov, &n_out, &out_len, &p->w);
		}
		if (ret < 0)
			return ret;

		/* A list continues across the ring's end, in the next lap. */
		if (++pos == q->num) {
			pos = 0;
			wrap = !wrap;
		}
		if (!(d.flags & VRING_DESC_F_NEXT) || (d.flags & VRING_DESC_F_INDIRECT))
			break;
	}

	req->n_out = n_out;
	req->n_in = n_iov - n_out;
	req->out_len = (uint32_t)out_len;
	req->in_len = (uint32_t)(total - out_len);
	p->buf_id = buf_id;
	p->ndesc = (uint16_t)ndesc;
	return 1;
}

/* The device area's one 32-bit word: off_wrap in the low half, flags in the
 * high half (little-endian layout of struct vring_packed_desc_event). One
 * store, so the driver never sees DESC with a stale offset. */
static void store_device_event(struct devq *q, uint16_t off_wrap, uint16_t flags)
{
	ring_store32(q->device_event, (uint32_t)off_wrap | (uint32_t)flags << 16);
}

void packed_dev_consume(struct devq *q, uint16_t ndesc)
{
	unsigned pos = packed_idx(q->last_avail) + ndesc;
	bool wrap = packed_wrap(q->last_avail);

	/* ndesc <= num, so one lap at most. */
	if (pos >= q->num) {
		pos -= q->num;
		wrap = !wrap;
	}
	q->last_avail = packed_encode(pos, wrap);
	/* With EVENT_IDX, a device that wants kicks keeps the event offset at
	 * the next descriptor it will look at. No barrier here: before
	 * sleeping a device calls enable_notify(), which has one. */
	if (q->event_idx && q->notify_enabled)
		store_device_event(q, q->last_avail, VRING_PACKED_EVENT_FLAG_DESC);
}

/* One used descriptor at w->idx for a buffer (IN_ORDER: a batch) that took
 * @ndesc ring descriptors; the next one goes @ndesc further on. */
void packed_dev_used_put(struct devq *q, struct used_writer *w, uint16_t id, uint32_t len,
			 uint16_t ndesc)
{
	unsigned pos = packed_idx(w->idx);
	bool wrap = packed_wrap(w->idx);
	struct vring_packed_desc *d = &q->pdesc[pos];
	/* spec: a used descriptor has AVAIL and USED both equal to the device's
	 * wrap counter; WRITE says whether the device wrote anything. */
	uint16_t flags = (uint16_t)((wrap ? F_AVAIL | F_USED : 0) | (len ? VRING_DESC_F_WRITE : 0));

	ring_store16(&d->id, id);
	ring_store32(&d->len, len);
	/* Logging: this descriptor, after its id and len and before the
	 * release in used_end publishes it; its flags are marked again there. */
	if (w->log)
		uvirtio_dirty_log_mark(w->log, q->desc_gpa + 16u * pos, sizeof(*d));
	if (w->n == 0) {
		w->first_pos = (uint16_t)pos;
		w->first_flags = flags;
	} else {
		/* Relaxed: the driver reads this descriptor only after it saw the
		 * first one of the batch used, and that store (in used_end) is a
		 * release that comes after this one. */
		ring_store16(&d->flags, flags);
	}
	w->n++;
	w->advanced += ndesc;
	pos += ndesc;
	if (pos >= q->num) {
		pos -= q->num;
		wrap = !wrap;
	}
	w->idx = packed_encode(pos, wrap);
}

void packed_dev_used_end(struct devq *q, struct used_writer *w)
{
	if (!w->n)
		return;
	/* Release pairs with the driver's acquire load of these flags: every
	 * descriptor of the batch, and our writes into the buffers, are
	 * visible before the driver sees the first one used. */
	ring_store16_release(&q->pdesc[w->first_pos].flags, w->first_flags);
	/* After the store too: a front-end that read and cleared the bit
	 * since the mark in used_put would otherwise miss these flags. */
	if (w->log)
		uvirtio_dirty_log_mark(w->log, q->desc_gpa + 16u * w->first_pos,
				       sizeof(struct vring_packed_desc));
	q->used_idx = w->idx;
	q->used_since_signal += w->advanced;
	/* Two laps since the last look make the driver's event offset
	 * ambiguous: forget what was signalled, so the next call notifies. */
	if (q->used_since_signal >= 2u * q->num)
		q->signalled_used_valid = false;
}

/* A position with its wrap counter as a distance along two laps: the first
 * lap (counter 1) is 0 .. num-1, the second num .. 2num-1. */
static uint32_t lap_pos(const struct devq *q, uint16_t v)
{
	return packed_idx(v) + (packed_wrap(v) ? 0u : q->num);
}

/* vring_need_event() across the wrap: whether the descriptor the driver
 * named (@event) was used in [old, new). */
static bool need_event(const struct devq *q, uint16_t event, uint16_t old, uint16_t new)
{
	uint32_t laps = 2u * q->num;
	uint32_t e = (lap_pos(q, event) + laps - lap_pos(q, old)) % laps;
	uint32_t n = (lap_pos(q, new) + laps - lap_pos(q, old)) % laps;

	return e < n;
}

bool packed_dev_needs_notify(struct devq *q)
{
	uint32_t ev;
	uint16_t off_wrap, flags, old, new;
	bool valid;

	if (!q->ready || q->broken)
		return false;
	/* Orders our used descriptors' flags stores before the load of the
	 * driver area; pairs with the barrier the driver puts between its
	 * driver-area store (enable_cb) and its re-check of the used flags. */
	ring_mb();
	/* One load: flags and offset from the same driver write. */
	ev = ring_load32(q->driver_event);
	off_wrap = (uint16_t)ev;
	flags = (uint16_t)(ev >> 16) & 3u;

	old = q->signalled_used;
	new = q->used_idx;
	valid = q->signalled_used_valid;
	q->signalled_used = new;
	q->signalled_used_valid = true;
	q->used_since_signal = 0;

	switch (flags) {
	case VRING_PACKED_EVENT_FLAG_DISABLE:
		return false;
	case VRING_PACKED_EVENT_FLAG_DESC:
		/* spec: DESC is only valid with EVENT_IDX; an offset outside
		 * the ring names no descriptor. Either way notify: a spurious
		 * notification costs little, a lost one hangs the driver. */
		if (!q->event_idx || !valid || packed_idx(off_wrap) >= q->num)
			return true;
		return need_event(q, off_wrap, old, new);
	default: /* ENABLE, and the reserved value */
		return true;
	}
}

void packed_dev_disable_notify(struct devq *q)
{
	if (!q->ready || !q->notify_enabled)
		return;
	q->notify_enabled = false;
	ring_store16(&q->device_event->flags, VRING_PACKED_EVENT_FLAG_DISABLE);
}

bool packed_dev_enable_notify(struct devq *q)
{
	uint16_t at = q->last_avail;

	if (!q->ready || q->broken)
		return false;
	q->notify_enabled = true;
	if (q->event_idx)
		store_device_event(q, at, VRING_PACKED_EVENT_FLAG_DESC);
	else
		store_device_event(q, 0, VRING_PACKED_EVENT_FLAG_ENABLE);
	/* Orders the store above before re-reading the next descriptor's
	 * flags; pairs with the barrier the driver puts between its flags
	 * store and its load of the device area. Acquire: pop reads on. */
	ring_mb();
	return pdesc_is_avail(ring_load16_acquire(&q->pdesc[packed_idx(at)].flags),
			      packed_wrap(at));
}
