// SPDX-License-Identifier: MIT
/*
 * Inflight tracking, device side (devq.h; docs/inflight.md): what a queue
 * records in an area of shared memory that outlives its process, so that a
 * new process resumes the ring where the dead one left it.
 *
 * The area's layout per queue is DPDK's and libvhost-user's (below). How
 * this queue uses it, whatever instruction the process dies at:
 *  - pop: a request is marked (inflight = 1, after its counter and, packed,
 *    its descriptors) before the ring position moves past it in this
 *    process. A death before the mark leaves it unmarked and unconsumed in
 *    the ring: the next process pops it as new.
 *  - push: every request of the batch is marked completing (2) before the
 *    first used entry is written (packed: and the used position the batch
 *    moves to is stored as the target); the batch is published; the marks
 *    are cleared (0); then the area's used index (packed: the committed
 *    position) moves to the published one. The next process tells whether
 *    a batch was published from the ring itself: split, used->idx in guest
 *    memory differs from the area's used index; packed, the target differs
 *    from the committed position and the descriptor at the committed
 *    position is no longer the available one the device took there.
 *    Published: its marks are dropped (packed: the target is committed);
 *    not published: they are requests in flight.
 * Stores to the area are ordered by the compiler only (atomic stores,
 * release where a later store depends on an earlier one): a process that
 * dies keeps every store it executed, and only its successor, started after
 * it died, reads the area.
 *
 * The area is written by our process and read back by the next one, but
 * the memory belongs to the front-end, which may hand over anything: every
 * value is checked before it is used, and an area that does not fit the
 * ring is started afresh (-EBADMSG).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "uvirtio/devq.h"
#include "uvirtio/virtio_spec.h"
#include "../log/log_priv.h"
#include "devq_priv.h"
#include "ring_access.h"

#define IFL_VERSION 1
#define IFL_ALIGN 64
#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)

enum { IFL_FREE = 0, IFL_INFLIGHT = 1, IFL_COMPLETING = 2 };

/* Split: a header, then one state per descriptor head. */
struct ifl_split_hdr {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head; /* the last head of the last batch pushed */
	uint16_t used_idx;        /* used->idx once the marks it covers are cleared */
};

struct ifl_split_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter; /* pop order */
};

/* Packed: a header, then entries, each one ring descriptor of a request's
 * chain; a request's first entry holds the chain's length, its last
 * entry's index and the mark; the others are reached by next. */
struct ifl_packed_hdr {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;     /* unused: the free entries are rebuilt on resume */
	uint16_t old_free_head; /* unused */
	/* Used positions with the wrap counter in bit 15 (as VRING_BASE
	 * carries them), so that one store moves both: used_idx the target of
	 * the batch being pushed, old_used_idx the committed one (every mark
	 * consistent with it). The wrap counter fields mirror them. */
	uint16_t used_idx;
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[7];
};

struct ifl_packed_desc {
	uint8_t inflight;
	uint8_t padding;
	uint16_t next;
	uint16_t last;
	uint16_t num; /* ring descriptors of the chain */
	uint64_t counter;
	uint16_t id;
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

_Static_assert(sizeof(struct ifl_split_hdr) == 16, "split inflight header layout");
_Static_assert(sizeof(struct ifl_split_desc) == 16, "split inflight state layout");
_Static_assert(sizeof(struct ifl_packed_hdr) == 32, "packed inflight header layout");
_Static_assert(sizeof(struct ifl_packed_desc) == 32, "packed inflight entry layout");

struct devq_ifl {
	union {
		struct ifl_split_hdr *sh;
		struct ifl_packed_hdr *ph;
	};
	union {
		struct ifl_split_desc *sd;
		struct ifl_packed_desc *pd;
	};
	uint64_t counter; /* the last one given */
	/* Requests to pop again: split heads, packed first entries, oldest
	 * first; replay_next is the next to pop. */
	uint16_t *replay;
	uint32_t nreplay, replay_next;
	/* Split: new requests popped since the last replayed one, which an
	 * unpop gives back before that one. */
	uint32_t fresh_after_replay;
	/* Packed: entries not in any chain; the chain peek read; a replayed
	 * chain laid out as a ring for packed_dev_peek_in(). */
	uint16_t *free_entries;
	uint32_t nfree_entries;
	struct pdesc_copy *chain;
	struct vring_packed_desc *replay_ring;
};

void (*devq_crash_hook)(const struct devq *q, enum devq_crash_point at);

static inline void crash_point(const struct devq *q, enum devq_crash_point at)
{
	if (__builtin_expect(devq_crash_hook != NULL, 0))
		devq_crash_hook(q, at);
}

static inline void store8(uint8_t *p, uint8_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline uint8_t load8(const uint8_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Packed: the used position a batch being pushed moves to (target), and
 * the one every mark is consistent with (committed); each one 16-bit store,
 * encoded with its wrap counter, the wrap counter fields mirrors. */
static void set_packed_target(struct ifl_packed_hdr *h, uint16_t used)
{
	h->used_wrap_counter = packed_wrap(used);
	store16(&h->used_idx, used);
}

static void set_packed_committed(struct ifl_packed_hdr *h, uint16_t used)
{
	h->old_used_wrap_counter = packed_wrap(used);
	store16(&h->old_used_idx, used);
}

size_t uvirtio_devq_inflight_size(unsigned num, bool packed)
{
	size_t n;

	if (num == 0 || num > 32768u)
		return 0;
	n = packed ? sizeof(struct ifl_packed_hdr) + num * sizeof(struct ifl_packed_desc)
		   : sizeof(struct ifl_split_hdr) + num * sizeof(struct ifl_split_desc);
	return (n + IFL_ALIGN - 1) / IFL_ALIGN * IFL_ALIGN;
}

void uvirtio_devq_set_inflight(struct uvirtio_devq *public_q, void *area, size_t size)
{
	struct devq *q = devq_of(public_q);

	ifl_free(q);
	q->ifl_area = area;
	q->ifl_size = area ? size : 0;
}

void ifl_free(struct devq *q)
{
	free(q->ifl);
	q->ifl = NULL;
}

/* The ring features the area records: a packed area does not resume a
 * split ring. */
static uint64_t ring_features(const struct devq *q)
{
	return (q->packed ? UVIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0) |
	       (q->indirect ? UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) : 0) |
	       (q->event_idx ? UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) : 0);
}

static int ifl_alloc(struct devq *q)
{
	size_t num = q->num, bytes = sizeof(struct devq_ifl) + num * sizeof(uint16_t);
	struct devq_ifl *t;
	char *p;

	if (q->packed)
		bytes += num * (sizeof(uint16_t) + sizeof(struct pdesc_copy) +
				sizeof(struct vring_packed_desc));
	t = calloc(1, bytes);
	if (!t)
		return -ENOMEM;
	p = (char *)(t + 1);
	if (q->packed) {
		/* The larger elements first: each array stays aligned. */
		t->replay_ring = (struct vring_packed_desc *)p;
		p += num * sizeof(struct vring_packed_desc);
		t->chain = (struct pdesc_copy *)p;
		p += num * sizeof(struct pdesc_copy);
		t->free_entries = (uint16_t *)p;
		p += num * sizeof(uint16_t);
	}
	t->replay = (uint16_t *)p;
	t->sh = q->ifl_area;
	t->sd = (void *)((char *)q->ifl_area +
			 (q->packed ? sizeof(struct ifl_packed_hdr) : sizeof(struct ifl_split_hdr)));
	q->ifl = t;
	return 0;
}

/* A fresh area for the ring as it is set now. */
static void init_area(struct devq *q)
{
	struct devq_ifl *t = q->ifl;

	memset(q->ifl_area, 0, uvirtio_devq_inflight_size(q->num, q->packed));
	if (q->packed) {
		t->ph->features = ring_features(q);
		t->ph->desc_num = q->num;
		set_packed_target(t->ph, q->used_idx);
		set_packed_committed(t->ph, q->used_idx);
		t->nfree_entries = 0;
		for (unsigned i = q->num; i--;)
			t->free_entries[t->nfree_entries++] = (uint16_t)i;
		store16(&t->ph->version, IFL_VERSION);
	} else {
		t->sh->features = ring_features(q);
		t->sh->desc_num = q->num;
		t->sh->used_idx = q->used_idx;
		store16(&t->sh->version, IFL_VERSION);
	}
	t->counter = 0;
	t->nreplay = t->replay_next = 0;
}

/* The requests to pop again, oldest first (counters from the area: a
 * repeated or garbage counter only changes the order among them). */
static void sort_replay(struct devq *q)
{
	struct devq_ifl *t = q->ifl;

	/* Insertion sort: n is at most the queue size, and resume runs once. */
	for (uint32_t i = 1; i < t->nreplay; i++) {
		uint16_t e = t->replay[i];
		uint64_t c = q->packed ? t->pd[e].counter : t->sd[e].counter;
		uint32_t j = i;

		while (j > 0) {
			uint16_t prev = t->replay[j - 1];
			uint64_t pc = q->packed ? t->pd[prev].counter : t->sd[prev].counter;

			if (pc < c || (pc == c && prev < e))
				break;
			t->replay[j] = prev;
			j--;
		}
		t->replay[j] = e;
	}
	for (uint32_t i = 0; i < t->nreplay; i++) {
		uint16_t e = t->replay[i];
		uint64_t c = q->packed ? t->pd[e].counter : t->sd[e].counter;

		if (c > t->counter)
			t->counter = c;
	}
}

static int resume_split(struct devq *q, const char **why)
{
	struct devq_ifl *t = q->ifl;
	/* Acquire: the used entries the old process published before it. */
	uint16_t used = ring_load16_acquire(&q->used->idx);
	uint16_t avail = ring_load16_acquire(&q->avail->idx);
	uint16_t behind = (uint16_t)(used - t->sh->used_idx);
	bool published = behind != 0;

	if (behind > q->num) {
		*why = "its used index is more than a ring behind the ring's";
		return -EBADMSG;
	}
	for (unsigned i = 0; i < q->num; i++) {
		if (load8(&t->sd[i].inflight) > IFL_COMPLETING) {
			*why = "a descriptor state is not 0, 1 or 2";
			return -EBADMSG;
		}
	}
	t->nreplay = 0;
	for (unsigned i = 0; i < q->num; i++) {
		uint8_t v = load8(&t->sd[i].inflight);

		/* A batch marked completing was published iff the ring's used
		 * index moved past the area's. */
		if (v == IFL_COMPLETING) {
			v = published ? IFL_FREE : IFL_INFLIGHT;
			store8(&t->sd[i].inflight, v);
		}
		if (v == IFL_INFLIGHT)
			t->replay[t->nreplay++] = (uint16_t)i;
	}
	store16(&t->sh->used_idx, used);
	/* The driver cannot have fewer buffers out than the device holds. */
	if ((uint16_t)(avail - used) < t->nreplay) {
		*why = "it marks more requests in flight than the driver made available";
		return -EBADMSG;
	}
	sort_replay(q);
	q->used_idx = used;
	q->last_avail = q->avail_seen = (uint16_t)(used + t->nreplay);
	return 0;
}

/* Packed: @pos advanced by @n descriptors, across the ring's end. */
static uint16_t packed_advance(const struct devq *q, uint16_t pos, unsigned n)
{
	unsigned i = packed_idx(pos) + n;
	bool wrap = packed_wrap(pos);

	while (i >= q->num) {
		i -= q->num;
		wrap = !wrap;
	}
	return packed_encode(i, wrap);
}

/* Packed: the chain from entry @e is well formed (bounded, in range, no
 * entry twice: @seen marks them) and takes *@ndesc ring descriptors. */
static bool chain_ok(struct devq *q, uint16_t e, uint8_t *seen, unsigned *ndesc)
{
	struct devq_ifl *t = q->ifl;
	unsigned n = t->pd[e].num;
	uint16_t at = e;

	if (n == 0 || n > q->num)
		return false;
	for (unsigned k = 0; k < n; k++) {
		if (at >= q->num || seen[at])
			return false;
		seen[at] = 1;
		/* Every descriptor but the last continues the chain. */
		if (!(t->pd[at].flags & VRING_DESC_F_NEXT) != (k == n - 1))
			return false;
		if (k + 1 < n)
			at = t->pd[at].next;
	}
	if (t->pd[e].last != at)
		return false;
	*ndesc = n;
	return true;
}

static int resume_packed(struct devq *q, const char **why)
{
	struct devq_ifl *t = q->ifl;
	uint16_t used = __atomic_load_n(&t->ph->old_used_idx, __ATOMIC_RELAXED), first;
	uint16_t target = __atomic_load_n(&t->ph->used_idx, __ATOMIC_RELAXED);
	unsigned pos = packed_idx(used), held = 0;
	bool wrap = packed_wrap(used), published;
	uint8_t *seen;

	if (pos >= q->num || packed_idx(target) >= q->num) {
		*why = "its used position is outside the ring";
		return -EBADMSG;
	}
	for (unsigned i = 0; i < q->num; i++) {
		if (load8(&t->pd[i].inflight) > IFL_COMPLETING) {
			*why = "an entry's state is not 0, 1 or 2";
			return -EBADMSG;
		}
	}
	/* A batch is published by the flags of its first used descriptor, at
	 * the area's used position: until then that descriptor is still the
	 * available one the device took there (AVAIL = the wrap counter, USED
	 * = the inverse); once published it is used (both = the counter), and
	 * once the driver took it, it is available again in the next lap. */
	first = ring_load16_acquire(&q->pdesc[pos].flags);
	published = target != used && !(!!(first & F_AVAIL) == wrap && !!(first & F_USED) != wrap);
	/* Published, every mark cleared, the commit missing: the target. */
	if (published)
		used = target;

	seen = calloc(q->num, 1);
	if (!seen)
		return -ENOMEM;
	t->nreplay = 0;
	for (unsigned i = 0; i < q->num; i++) {
		uint8_t v = load8(&t->pd[i].inflight);
		unsigned n;

		if (v == IFL_FREE)
			continue;
		if (!chain_ok(q, (uint16_t)i, seen, &n)) {
			free(seen);
			*why = "a request's chain of entries is malformed";
			return -EBADMSG;
		}
		if (v == IFL_COMPLETING && published) {
			/* Published: the target is past it. */
			store8(&t->pd[i].inflight, IFL_FREE);
			continue;
		}
		if (v == IFL_COMPLETING)
			store8(&t->pd[i].inflight, IFL_INFLIGHT);
		held += n;
		t->replay[t->nreplay++] = (uint16_t)i;
	}
	if (held > q->num) {
		free(seen);
		*why = "its requests hold more descriptors than the ring has";
		return -EBADMSG;
	}
	/* The entries of the chains dropped above are free again too. */
	memset(seen, 0, q->num);
	for (uint32_t r = 0; r < t->nreplay; r++) {
		unsigned n;

		chain_ok(q, t->replay[r], seen, &n);
	}
	t->nfree_entries = 0;
	for (unsigned i = q->num; i--;)
		if (!seen[i])
			t->free_entries[t->nfree_entries++] = (uint16_t)i;
	free(seen);
	set_packed_target(t->ph, used);
	set_packed_committed(t->ph, used);
	sort_replay(q);
	/* Ring descriptors from the used position on belong to the requests
	 * in flight, in whatever order: the next available one is past them. */
	q->used_idx = used;
	q->last_avail = q->avail_seen = packed_advance(q, used, held);
	return 0;
}

int uvirtio_devq_resume_inflight(struct uvirtio_devq *public_q)
{
	struct devq *q = devq_of(public_q);
	const char *why = NULL;
	uint16_t version;
	int ret;

	ifl_free(q);
	if (!q->ifl_area)
		return 0;
	if (!q->ready)
		return -EINVAL;
	if (q->in_order)
		return -EOPNOTSUPP;
	if (q->ifl_size < uvirtio_devq_inflight_size(q->num, q->packed))
		return -EINVAL;
	/* The header's counters are read and written atomically, which needs
	 * them aligned; a peer chooses the offset of a shared area. */
	if ((uintptr_t)q->ifl_area % 8)
		return -EINVAL;
	ret = ifl_alloc(q);
	if (ret)
		return ret;

	version = __atomic_load_n(q->packed ? &q->ifl->ph->version : &q->ifl->sh->version,
				  __ATOMIC_ACQUIRE);
	if (version == 0) {
		init_area(q);
		return 0;
	}
	if (version != IFL_VERSION)
		why = "its version is not 1";
	else if ((q->packed ? q->ifl->ph->desc_num : q->ifl->sh->desc_num) != q->num)
		why = "it was written for another queue size";
	else if ((q->packed ? q->ifl->ph->features : q->ifl->sh->features) != ring_features(q))
		why = "it was written for another ring layout";
	else
		ret = q->packed ? resume_packed(q, &why) : resume_split(q, &why);
	if (ret == -ENOMEM) {
		ifl_free(q);
		return ret;
	}
	if (why) {
		uvirtio_log(UVIRTIO_LOG_WARN,
			    "queue %u: the inflight area does not fit the ring (%s): "
			    "started afresh, nothing resubmitted", q->index, why);
		init_area(q);
		return -EBADMSG;
	}
	q->signalled_used = q->used_idx;
	q->signalled_used_valid = false;
	q->used_since_signal = 0;
	q->inflight = 0;
	q->inflight_desc = 0;
	if (q->ifl->nreplay)
		uvirtio_log(UVIRTIO_LOG_INFO, "queue %u: %u requests in flight resubmitted from the inflight area",
			    q->index, q->ifl->nreplay);
	return (int)q->ifl->nreplay;
}

bool ifl_replay_pending(const struct devq *q)
{
	return q->ifl->replay_next < q->ifl->nreplay;
}

struct pdesc_copy *ifl_chain(struct devq *q)
{
	return q->ifl->chain;
}

int ifl_pop_replay(struct devq *q, struct uvirtio_req *req)
{
	struct devq_ifl *t = q->ifl;
	uint16_t e = t->replay[t->replay_next];
	struct devq_popped p = { 0 };
	uint16_t h, at = e;
	unsigned n;
	int ret;

	if (!q->packed) {
		ret = split_dev_walk(q, e, req);
		if (ret < 0)
			return ret;
		t->replay_next++;
		t->fresh_after_replay = 0;
		/* A new counter, in replay order: a second death keeps it. */
		__atomic_store_n(&t->sd[e].counter, ++t->counter, __ATOMIC_RELAXED);
		q->inflight++;
		return 1;
	}

	/* The chain as a ring of its own, from 0 with wrap counter 1: the
	 * walk checks it as it checks the driver's. */
	n = t->pd[e].num;
	for (unsigned k = 0; k < n; k++) {
		struct vring_packed_desc *d = &t->replay_ring[k];
		uint16_t flags = t->pd[at].flags;

		flags &= (uint16_t)~(F_AVAIL | F_USED);
		d->addr = htole64(t->pd[at].addr);
		d->len = htole32(t->pd[at].len);
		d->id = htole16(t->pd[at].id);
		d->flags = htole16((uint16_t)(flags | F_AVAIL));
		at = t->pd[at].next;
	}
	p.w.n = 0;
	ret = packed_dev_peek_in(q, t->replay_ring, packed_encode(0, true), req, &p);
	if (ret == 0)
		return devq_broken(q, "a request of the inflight area is not a chain");
	if (ret < 0)
		return ret;
	if (!q->nfree)
		return devq_broken(q, "more requests in flight than the queue size");
	h = q->free_handles[--q->nfree];
	q->slots[h] = (struct uvirtio_devq_slot){ .w = p.w, .in_len = req->in_len, .buf_id = p.buf_id,
						  .ndesc = p.ndesc, .ifl_entry = e,
						  .state = SLOT_INFLIGHT, .replayed = true };
	req->id = h;
	q->inflight_desc += p.ndesc;
	q->inflight++;
	t->replay_next++;
	__atomic_store_n(&t->pd[e].counter, ++t->counter, __ATOMIC_RELAXED);
	return 1;
}

int ifl_popped(struct devq *q, uint16_t handle, uint16_t head, uint16_t ndesc)
{
	struct devq_ifl *t = q->ifl;
	uint16_t first, prev = 0;

	crash_point(q, DEVQ_CRASH_POP);
	if (!q->packed) {
		if (t->replay_next)
			t->fresh_after_replay++;
		__atomic_store_n(&t->sd[head].counter, ++t->counter, __ATOMIC_RELAXED);
		store8(&t->sd[head].inflight, IFL_INFLIGHT);
		crash_point(q, DEVQ_CRASH_MARKED);
		return 0;
	}
	/* At most num descriptors are in flight (peek checked), and the
	 * entries not free hold exactly those: enough are free. */
	if (t->nfree_entries < ndesc)
		return devq_broken(q, "the inflight area has no room for the request");
	first = t->free_entries[t->nfree_entries - 1];
	for (unsigned k = 0; k < ndesc; k++) {
		uint16_t e = t->free_entries[--t->nfree_entries];
		struct ifl_packed_desc *d = &t->pd[e];
		const struct pdesc_copy *c = &t->chain[k];

		if (k)
			t->pd[prev].next = e;
		d->addr = c->addr;
		d->len = c->len;
		d->id = c->id;
		d->flags = c->flags;
		d->num = 0;
		d->next = 0;
		if (k)
			store8(&d->inflight, IFL_FREE);
		prev = e;
	}
	t->pd[first].num = ndesc;
	t->pd[first].last = prev;
	__atomic_store_n(&t->pd[first].counter, ++t->counter, __ATOMIC_RELAXED);
	/* Release: the entries above are complete once the mark is seen. */
	store8(&t->pd[first].inflight, IFL_INFLIGHT);
	q->slots[handle].ifl_entry = first;
	q->slots[handle].replayed = false;
	crash_point(q, DEVQ_CRASH_MARKED);
	return 0;
}

/* Packed: the entries of the chain from @e go back to the free ones. */
static void free_chain(struct devq *q, uint16_t e)
{
	struct devq_ifl *t = q->ifl;
	unsigned n = t->pd[e].num;

	for (unsigned k = 0; k < n && t->nfree_entries < q->num; k++) {
		t->free_entries[t->nfree_entries++] = e;
		e = t->pd[e].next;
	}
}

bool ifl_unpopped(struct devq *q, uint16_t id)
{
	struct devq_ifl *t = q->ifl;

	if (!q->packed) {
		if (t->replay_next && !t->fresh_after_replay && t->replay[t->replay_next - 1] == id) {
			t->replay_next--;
			return true;
		}
		if (t->fresh_after_replay)
			t->fresh_after_replay--;
		store8(&t->sd[id].inflight, IFL_FREE);
		return false;
	}
	if (q->slots[id].replayed) {
		t->replay_next--;
		return true;
	}
	store8(&t->pd[q->slots[id].ifl_entry].inflight, IFL_FREE);
	free_chain(q, q->slots[id].ifl_entry);
	return false;
}

void ifl_completing(struct devq *q, const struct uvirtio_used *elems, unsigned n)
{
	struct devq_ifl *t = q->ifl;

	for (unsigned i = 0; i < n; i++) {
		uint16_t id = (uint16_t)elems[i].id;

		if (q->packed)
			store8(&t->pd[q->slots[id].ifl_entry].inflight, IFL_COMPLETING);
		else
			store8(&t->sd[id].inflight, IFL_COMPLETING);
	}
	if (!q->packed && n)
		store16(&t->sh->last_batch_head, (uint16_t)elems[n - 1].id);
	if (q->packed) {
		unsigned ndesc = 0;

		for (unsigned i = 0; i < n; i++)
			ndesc += q->slots[elems[i].id].ndesc;
		/* Release: after the marks; the commit follows the clears. */
		set_packed_target(t->ph, packed_advance(q, q->used_idx, ndesc));
	}
	crash_point(q, DEVQ_CRASH_COMPLETING);
}

void ifl_completed(struct devq *q, const struct uvirtio_used *elems, unsigned n)
{
	struct devq_ifl *t = q->ifl;

	crash_point(q, DEVQ_CRASH_PUBLISHED);
	for (unsigned i = 0; i < n; i++) {
		uint16_t id = (uint16_t)elems[i].id;

		if (q->packed) {
			uint16_t e = q->slots[id].ifl_entry;

			store8(&t->pd[e].inflight, IFL_FREE);
			free_chain(q, e);
		} else {
			store8(&t->sd[id].inflight, IFL_FREE);
		}
	}
	crash_point(q, DEVQ_CRASH_CLEARED);
	if (q->packed) {
		set_packed_committed(t->ph, q->used_idx);
	} else {
		store16(&t->sh->used_idx, q->used_idx);
	}
}
