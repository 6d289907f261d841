// SPDX-License-Identifier: MIT
/*
 * The device side of a virtqueue: the public API over both layouts
 * (split_dev.c, packed_dev.c), the packed ring's request handles and
 * VIRTIO_F_IN_ORDER's reordering and batching.
 *
 * Packed handles: the driver's buffer ids are 16-bit values it chooses, so
 * they never index our memory. pop gives the device a handle < num instead,
 * the index of a slot that remembers the driver's id, the descriptors the
 * buffer took and its writable length; push takes the handle back.
 *
 * IN_ORDER: the driver relies on buffers coming back in the order it made
 * them available and may read one used entry as the completion of every
 * buffer up to it, at full writable length. So completions are held until
 * every earlier one was pushed, published in pop order, and a run is
 * coalesced into one entry only over full-length completions: a short one
 * ends the run with its own entry, so no length is lost.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "uvirtio/devq.h"
#include "uvirtio/virtio_spec.h"
#include "../log/log_priv.h"
#include "devq_priv.h"
#include "ring_access.h"

/* The first rule broken wins: it is the reason kept and the one line logged. */
static int mark_broken(struct devq *q, const char *why, const char *detail)
{
	if (!q->broken) {
		q->broken = true;
		q->broken_reason = why;
		q->ready = false;
		if (detail)
			uvirtio_log(UVIRTIO_LOG_ERR, "queue %u: %s (%s); the queue is broken", q->index, why, detail);
		else
			uvirtio_log(UVIRTIO_LOG_ERR, "queue %u: %s; the queue is broken", q->index, why);
		if (q->on_broken)
			q->on_broken(devq_public(q), q->on_broken_opaque);
	}
	return -EIO;
}

int devq_broken(struct devq *q, const char *why)
{
	return mark_broken(q, why, NULL);
}

int devq_broken_at(struct devq *q, const char *why, const char *fmt, ...)
{
	char detail[160];
	va_list ap;

	if (q->broken || !uvirtio_log_enabled(UVIRTIO_LOG_ERR))
		return mark_broken(q, why, NULL);
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return mark_broken(q, why, detail);
}

/* Every slot free, every handle on the free stack, nothing held. */
static void drop_requests(struct devq *q)
{
	if (!q->slots)
		return;
	for (unsigned i = 0; i < q->num; i++) {
		q->slots[i].state = SLOT_FREE;
		/* Popped in order 0, 1, 2...: the stack's top is its end. */
		q->free_handles[i] = (uint16_t)(q->num - 1 - i);
	}
	q->nfree = q->num;
	q->order_head = 0;
	q->order_count = 0;
}

void uvirtio_devq_reset(struct uvirtio_devq *public_q)
{
	struct devq *q = devq_of(public_q);
	uvirtio_devq_broken_fn cb = q->on_broken;
	void *cb_opaque = q->on_broken_opaque;
	unsigned index = q->index;
	struct uvirtio_dirty_log *log = __atomic_load_n(&q->log, __ATOMIC_RELAXED);
	uint64_t log_used = __atomic_load_n(&q->log_used, __ATOMIC_RELAXED);
	void *ifl_area = q->ifl_area;
	size_t ifl_size = q->ifl_size;

	/* One block holds slots, free_handles and order. */
	free(q->slots);
	ifl_free(q);
	*q = (struct devq){ .on_broken = cb, .on_broken_opaque = cb_opaque, .index = index,
			    .log = log, .log_used = log_used, .ifl_area = ifl_area,
			    .ifl_size = ifl_size };
}

static int alloc_requests(struct devq *q)
{
	size_t slots = (size_t)q->num * sizeof(struct uvirtio_devq_slot);
	char *block = malloc(slots + 2 * (size_t)q->num * sizeof(uint16_t));

	if (!block)
		return -ENOMEM;
	q->slots = (struct uvirtio_devq_slot *)block;
	q->free_handles = (uint16_t *)(block + slots);
	q->order = q->free_handles + q->num;
	drop_requests(q);
	return 0;
}

int uvirtio_devq_setup(struct uvirtio_devq *public_q, const struct uvirtio_mem *mem, unsigned num,
		       uint64_t desc, uint64_t avail, uint64_t used, uint64_t features)
{
	struct devq *q = devq_of(public_q);
	bool packed = features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	int ret;

	uvirtio_devq_reset(public_q);
	if (packed)
		ret = packed_dev_setup(q, mem, num, desc, avail, used);
	else
		ret = split_dev_setup(q, mem, num, desc, avail, used);
	if (ret)
		return ret;

	q->mem = mem;
	q->num = (uint16_t)num; /* 32768 fits */
	q->packed = packed;
	q->desc_gpa = desc;
	q->event_idx = features & UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	q->indirect = features & UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	q->in_order = features & UVIRTIO_BIT(VIRTIO_F_IN_ORDER);
	q->notification_data = features & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA);
	if (packed) {
		/* spec: both ring wrap counters start at 1. */
		q->last_avail = q->avail_seen = q->used_idx = PACKED_WRAP_BIT;
		q->signalled_used = q->used_idx;
	}
	/* A split ring without IN_ORDER needs no per-request state. */
	if ((packed || q->in_order) && alloc_requests(q)) {
		uvirtio_devq_reset(public_q);
		return -ENOMEM;
	}
	q->notify_enabled = true;
	q->ready = true;
	return 0;
}

void uvirtio_devq_set_broken_cb(struct uvirtio_devq *public_q, uvirtio_devq_broken_fn fn,
				void *opaque)
{
	struct devq *q = devq_of(public_q);

	q->on_broken = fn;
	q->on_broken_opaque = opaque;
}

void uvirtio_devq_set_index(struct uvirtio_devq *q, unsigned index)
{
	devq_of(q)->index = index;
}

bool uvirtio_devq_has_avail(const struct uvirtio_devq *public_q)
{
	const struct devq *q = devq_of_const(public_q);

	if (q->ifl && ifl_replay_pending(q) && !q->broken)
		return true;
	return q->packed ? packed_dev_has_avail(q) : split_dev_has_avail(q);
}

int uvirtio_devq_set_indices(struct uvirtio_devq *public_q, uint16_t next_avail, uint16_t used_idx)
{
	struct devq *q = devq_of(public_q);

	/* An index past the ring's end names no descriptor. */
	if (q->packed && (packed_idx(next_avail) >= q->num || packed_idx(used_idx) >= q->num))
		return -EINVAL;
	q->last_avail = q->avail_seen = next_avail;
	q->used_idx = used_idx;
	q->signalled_used = used_idx;
	q->signalled_used_valid = false;
	q->used_since_signal = 0;
	q->inflight = 0;
	q->inflight_desc = 0;
	drop_requests(q);
	return 0;
}

void uvirtio_devq_stop(struct uvirtio_devq *public_q)
{
	struct devq *q = devq_of(public_q);

	q->ready = false;
	/* Nothing can be pushed any more: held completions go (devq.h). */
	drop_requests(q);
}

int uvirtio_devq_note_notification(struct uvirtio_devq *public_q, uint32_t data)
{
	struct devq *q = devq_of(public_q);
	uint16_t avail = (uint16_t)(data >> 16);

	if (!q->notification_data)
		return -EPERM;
	/* spec, notification data, packed: bits 16-30 are the offset of the
	 * next available descriptor; one past the ring names none. Split:
	 * any avail index can be. Only a hint: the queue stays as it is. */
	if (q->packed && packed_idx(avail) >= q->num)
		return -EINVAL;
	q->notified_avail = avail;
	q->notified = true;
	return 0;
}

static void order_push(struct devq *q, uint16_t h)
{
	q->order[(q->order_head + q->order_count) % q->num] = h;
	q->order_count++;
}

int uvirtio_devq_pop(struct uvirtio_devq *public_q, struct uvirtio_req *req)
{
	struct devq *q = devq_of(public_q);
	struct uvirtio_devq_slot *s;
	struct devq_popped p;
	uint16_t h;
	int ret;

	if (q->broken)
		return -EIO;
	if (!q->ready)
		return 0;
	/* Inflight tracking: what a dead process held comes first. */
	if (q->ifl && ifl_replay_pending(q))
		return ifl_pop_replay(q, req);

	if (!q->packed) {
		ret = split_dev_peek(q, req, &p);
		if (ret <= 0)
			return ret;
		if (q->ifl && (ret = ifl_popped(q, 0, p.buf_id, 1)) < 0)
			return ret;
		if (q->in_order) {
			s = &q->slots[p.buf_id];
			/* spec: the driver does not reuse a descriptor before the
			 * device has used it. Tracked here only because IN_ORDER
			 * needs one slot per head. */
			if (s->state != SLOT_FREE)
				return devq_broken(q, "descriptor head made available again while in flight");
			*s = (struct uvirtio_devq_slot){ .in_len = req->in_len, .buf_id = p.buf_id,
							 .ndesc = 1, .state = SLOT_INFLIGHT };
			order_push(q, p.buf_id);
		}
		split_dev_consume(q);
		q->inflight++;
		return 1;
	}

	p.w.n = 0;
	p.w.covering = false;
	ret = packed_dev_peek(q, req, &p);
	if (ret <= 0)
		return ret;
	/* At most num descriptors are in flight (peek checked), so at most
	 * num requests: a handle is always free. Checked all the same. */
	if (!q->nfree)
		return devq_broken(q, "more requests in flight than the queue size");
	h = q->free_handles[--q->nfree];
	q->slots[h] = (struct uvirtio_devq_slot){ .w = p.w, .in_len = req->in_len, .buf_id = p.buf_id,
						  .ndesc = p.ndesc, .pos = q->last_avail,
						  .state = SLOT_INFLIGHT };
	if (q->in_order)
		order_push(q, h);
	req->id = h;
	if (q->ifl && (ret = ifl_popped(q, h, p.buf_id, p.ndesc)) < 0)
		return ret;
	q->inflight_desc += p.ndesc;
	packed_dev_consume(q, p.ndesc);
	q->inflight++;
	return 1;
}

int uvirtio_devq_unpop(struct uvirtio_devq *public_q, uint16_t id)
{
	struct devq *q = devq_of(public_q);
	struct uvirtio_devq_slot *s;
	unsigned end;
	bool wrap;

	if (q->broken)
		return -EIO;
	if (!q->ready || !q->inflight)
		return -EINVAL;
	if (q->in_order) {
		uint32_t tail;

		if (!q->order_count)
			return -EINVAL;
		tail = (q->order_head + q->order_count - 1) % q->num;
		/* The last popped may be pushed already, held behind an
		 * earlier one: then it is not in flight. */
		if (q->order[tail] != id || q->slots[id].state != SLOT_INFLIGHT)
			return -EINVAL;
	}
	if (!q->packed) {
		if (q->in_order) {
			q->slots[id].state = SLOT_FREE;
			q->order_count--;
		}
		q->inflight--;
		/* A request popped again from the inflight area goes back there;
		 * a new one back to the ring. */
		if (!q->ifl || !ifl_unpopped(q, id))
			q->last_avail--;
		return 0;
	}
	if (id >= q->num || q->slots[id].state != SLOT_INFLIGHT)
		return -EINVAL;
	s = &q->slots[id];
	if (q->ifl && s->replayed) {
		if (!ifl_unpopped(q, id))
			return -EINVAL;
		q->inflight_desc -= s->ndesc;
		q->inflight--;
		s->state = SLOT_FREE;
		q->free_handles[q->nfree++] = id;
		return 0;
	}
	/* Only the request popped last ends where the next pop starts. */
	end = (unsigned)packed_idx(s->pos) + s->ndesc;
	wrap = packed_wrap(s->pos);
	if (end >= q->num) {
		end -= q->num;
		wrap = !wrap;
	}
	if (packed_encode(end, wrap) != q->last_avail)
		return -EINVAL;
	if (q->ifl)
		ifl_unpopped(q, id);
	q->last_avail = s->pos;
	q->inflight_desc -= s->ndesc;
	q->inflight--;
	s->state = SLOT_FREE;
	q->free_handles[q->nfree++] = id;
	if (q->in_order)
		q->order_count--;
	return 0;
}

static void used_put(struct devq *q, struct used_writer *w, uint16_t id, uint32_t len,
		     uint16_t count)
{
	if (q->packed)
		packed_dev_used_put(q, w, id, len, count);
	else
		split_dev_used_put(q, w, id, len, count);
}

static void used_end(struct devq *q, struct used_writer *w)
{
	if (!w->n)
		return; /* everything held back: nothing to publish */
	if (q->packed)
		packed_dev_used_end(q, w);
	else
		split_dev_used_end(q, w);
}

/* A request's used entry is written (or covered by a batch's): its slot and
 * handle are free again. */
static void release_slot(struct devq *q, uint16_t h)
{
	q->slots[h].state = SLOT_FREE;
	if (q->packed) {
		q->free_handles[q->nfree++] = h;
		q->inflight_desc -= q->slots[h].ndesc;
	}
}

/* IN_ORDER: publish every completion whose predecessors are all done, in pop
 * order, a run of full-length ones as one entry. */
static void flush_in_order(struct devq *q, struct used_writer *w)
{
	while (q->order_count && q->slots[q->order[q->order_head]].state == SLOT_DONE) {
		uint32_t count = 0;
		struct uvirtio_devq_slot *s;
		uint16_t h;

		for (;;) {
			h = q->order[q->order_head];
			s = &q->slots[h];
			q->order_head = (q->order_head + 1) % q->num;
			q->order_count--;
			/* split: buffers; packed: descriptors (<= num in all). */
			count += q->packed ? s->ndesc : 1u;
			release_slot(q, h);
			if (s->len != s->in_len)
				break; /* a short completion ends the run */
			if (!q->order_count || q->slots[q->order[q->order_head]].state != SLOT_DONE)
				break;
		}
		used_put(q, w, s->buf_id, s->len, (uint16_t)count);
	}
}

/* Logging: a push marks inside this section, which a switch of the area
 * waits for (uvirtio_dirty_log_switch()). The increment and the load are
 * sequentially consistent, as are the switch's exchange and its load of
 * users: a push that loaded the old area is counted when the switch looks. */
static const struct uvirtio_dirty_log_area *log_enter(struct uvirtio_dirty_log *log)
{
	__atomic_add_fetch(&log->users, 1, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&log->active, __ATOMIC_SEQ_CST);
}

static void log_leave(struct uvirtio_dirty_log *log)
{
	/* Release: the marks above are done before the switch sees 0. */
	__atomic_sub_fetch(&log->users, 1, __ATOMIC_RELEASE);
}

/* The data pages of elems[0..n): the writable part up to each used len.
 * The device wrote them before it pushed (program order on this thread, or
 * the device's own hand-off to it), so the marks come after the writes. */
static void log_data(struct devq *q, const struct uvirtio_dirty_log_area *a,
		     const struct uvirtio_used *elems, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (!elems[i].len)
			continue;
		if (q->packed)
			devq_log_ranges_mark(a, &q->slots[elems[i].id].w, elems[i].len);
		else
			split_dev_log_chain(q, a, (uint16_t)elems[i].id, elems[i].len);
	}
}

static int push_batch(struct devq *q, const struct uvirtio_used *elems, unsigned n,
		      const struct uvirtio_dirty_log_area *log)
{
	struct used_writer w = { .idx = q->used_idx, .log = log };

	if (!q->packed && !q->in_order) {
		for (unsigned i = 0; i < n; i++)
			if (elems[i].id >= q->num)
				return -EINVAL;
		if (log)
			log_data(q, log, elems, n);
		if (q->ifl)
			ifl_completing(q, elems, n);
		for (unsigned i = 0; i < n; i++)
			split_dev_used_put(q, &w, (uint16_t)elems[i].id, elems[i].len, 1);
		split_dev_used_end(q, &w);
		if (q->ifl)
			ifl_completed(q, elems, n);
		q->inflight = q->inflight >= n ? q->inflight - n : 0;
		return 0;
	}

	/* Every id must be in flight, once: mark them done, and undo the marks
	 * if one is not, so nothing is published on error. */
	for (unsigned i = 0; i < n; i++) {
		uint32_t id = elems[i].id;

		if (id >= q->num || q->slots[id].state != SLOT_INFLIGHT) {
			while (i--)
				q->slots[elems[i].id].state = SLOT_INFLIGHT;
			return -EINVAL;
		}
		q->slots[id].state = SLOT_DONE;
		q->slots[id].len = elems[i].len;
	}
	q->inflight = q->inflight >= n ? q->inflight - n : 0;
	/* IN_ORDER: marked now, published maybe later: before either way. */
	if (log)
		log_data(q, log, elems, n);

	if (q->in_order) {
		flush_in_order(q, &w);
		used_end(q, &w);
		return 0;
	}
	/* Tracking (never IN_ORDER): slots keep their area entry while
	 * released, until the next pop; ifl_completed() reads them. */
	if (q->ifl)
		ifl_completing(q, elems, n);
	for (unsigned i = 0; i < n; i++) {
		uint16_t h = (uint16_t)elems[i].id;

		packed_dev_used_put(q, &w, q->slots[h].buf_id, elems[i].len, q->slots[h].ndesc);
		release_slot(q, h);
	}
	used_end(q, &w);
	if (q->ifl)
		ifl_completed(q, elems, n);
	return 0;
}

int uvirtio_devq_push_batch(struct uvirtio_devq *public_q, const struct uvirtio_used *elems,
			    unsigned n)
{
	struct devq *q = devq_of(public_q);
	struct uvirtio_dirty_log *log = __atomic_load_n(&q->log, __ATOMIC_RELAXED);
	const struct uvirtio_dirty_log_area *a;
	int ret;

	if (q->broken)
		return -EIO;
	if (!q->ready)
		return -ESHUTDOWN;
	/* Not logging: one predictable branch (a relaxed load of a pointer
	 * that changes only when the front-end turns logging on or off). A
	 * push that just missed logging turned on is not marked: QEMU sends
	 * every page after it turned logging on and marks the split used
	 * ring itself when it stops the device. */
	if (__builtin_expect(!log || !__atomic_load_n(&log->active, __ATOMIC_RELAXED), 1))
		return push_batch(q, elems, n, NULL);
	a = log_enter(log);
	ret = push_batch(q, elems, n, a);
	log_leave(log);
	return ret;
}

void uvirtio_devq_set_dirty_log(struct uvirtio_devq *public_q, struct uvirtio_dirty_log *log,
				uint64_t used_log_gpa)
{
	struct devq *q = devq_of(public_q);

	__atomic_store_n(&q->log_used, used_log_gpa, __ATOMIC_RELAXED);
	__atomic_store_n(&q->log, log, __ATOMIC_RELEASE);
}

struct uvirtio_dirty_log_area *uvirtio_dirty_log_switch(struct uvirtio_dirty_log *log,
							struct uvirtio_dirty_log_area *area)
{
	struct uvirtio_dirty_log_area *old = __atomic_exchange_n(&log->active, area, __ATOMIC_SEQ_CST);

	/* A push inside its section may hold the old area: wait it out. New
	 * pushes see the new one; they are counted too, so under a steady
	 * stream of pushes this waits for a moment without one. */
	while (__atomic_load_n(&log->users, __ATOMIC_SEQ_CST))
		sched_yield();
	return old;
}

void uvirtio_dirty_log_mark(const struct uvirtio_dirty_log_area *a, uint64_t gpa, uint64_t len)
{
	uint64_t last, page, end_page;

	if (!a || !len)
		return;
	if (__builtin_add_overflow(gpa, len - 1, &last))
		last = UINT64_MAX;
	end_page = last >> UVIRTIO_DIRTY_PAGE_SHIFT;
	for (page = gpa >> UVIRTIO_DIRTY_PAGE_SHIFT; page <= end_page; page++) {
		uint64_t byte = page / 8;

		if (byte >= a->size)
			break; /* past the log: nothing to mark there */
		/* Atomic: the front-end clears bits concurrently as it reads
		 * them, and other queues mark the same bytes. */
		__atomic_fetch_or(&a->bits[byte], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
	}
}

void devq_log_ranges_mark(const struct uvirtio_dirty_log_area *a, const struct devq_log_ranges *w,
			  uint32_t len)
{
	for (unsigned i = 0; i < w->n && len; i++) {
		uint64_t l = w->len[i];

		if (w->covering && i + 1 == w->n) {
			uvirtio_dirty_log_mark(a, w->gpa[i], l);
			return;
		}
		if (l > len)
			l = len;
		uvirtio_dirty_log_mark(a, w->gpa[i], l);
		len -= l;
	}
}

int uvirtio_devq_push(struct uvirtio_devq *q, uint16_t id, uint32_t len)
{
	struct uvirtio_used e = { .id = id, .len = len };

	return uvirtio_devq_push_batch(q, &e, 1);
}

bool uvirtio_devq_needs_notify(struct uvirtio_devq *public_q)
{
	struct devq *q = devq_of(public_q);

	return q->packed ? packed_dev_needs_notify(q) : split_dev_needs_notify(q);
}

void uvirtio_devq_disable_notify(struct uvirtio_devq *public_q)
{
	struct devq *q = devq_of(public_q);

	if (q->packed)
		packed_dev_disable_notify(q);
	else
		split_dev_disable_notify(q);
}

bool uvirtio_devq_enable_notify(struct uvirtio_devq *public_q)
{
	struct devq *q = devq_of(public_q);

	return q->packed ? packed_dev_enable_notify(q) : split_dev_enable_notify(q);
}

bool uvirtio_devq_notified_avail(const struct uvirtio_devq *public_q, uint16_t *avail)
{
	const struct devq *q = devq_of_const(public_q);

	if (!q->notified)
		return false;
	*avail = q->notified_avail;
	return true;
}

uint16_t uvirtio_devq_next_avail(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->last_avail;
}

uint16_t uvirtio_devq_used_index(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->used_idx;
}

bool uvirtio_devq_is_broken(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->broken;
}

const char *uvirtio_devq_broken_reason(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->broken_reason;
}

unsigned uvirtio_devq_size(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->num;
}

bool uvirtio_devq_is_ready(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->ready;
}

bool uvirtio_devq_is_packed(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->packed;
}

uvirtio_devq_broken_fn uvirtio_devq_broken_cb(const struct uvirtio_devq *public_q, void **opaque)
{
	const struct devq *q = devq_of_const(public_q);

	if (opaque)
		*opaque = q->on_broken_opaque;
	return q->on_broken;
}
