// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the device side of a split ring (src/ring/split_dev.c)
 * against whatever a hostile driver can put in guest memory.
 *
 * Input layout (tests/fuzz/make_seeds.py writes the same):
 *
 *   u8  queue size, as log2 (0..8, so 1..256); 252..255 are taken as the
 *       size itself, which is no power of two and must be refused
 *   u8  flags: 0x01 INDIRECT_DESC, 0x02 EVENT_IDX, 0x04 the device writes
 *       into the writable buffers it pops, 0x08 resume at the indices below,
 *       0x10 IN_ORDER
 *   u8  iovec capacity - 1 (mod 64)
 *   u8  memory regions - 1 (mod 4)
 *   4 x { u64 guest address, u16 size, u16 host offset }
 *   3 x { u8 region, u16 offset }: descriptor table, avail ring, used ring;
 *       region bit 7 keeps the offset as is, else it is aligned as the spec asks
 *   u16 next avail index, u16 used index (with flag 0x08)
 *   u8  operation count, then that many { u8 operation, u16 argument }
 *   the rest: the bytes of the host buffer the regions map, from its start
 *
 * Every region maps into one fixed host buffer, so anything the library
 * hands out must lie inside it; ASan catches a read outside, the checks
 * below catch an iovec that points outside. Only this file writes guest
 * memory between calls, so the ring's state is known exactly at each call.
 */
#include "fuzz_devq_harness.h"

enum op {
	OP_POP_PUSH,     /* pop, push back at once with the argument as length */
	OP_POP_HOLD,     /* pop, keep it in flight */
	OP_PUSH_HELD,    /* push everything held as one batch */
	OP_NEEDS_NOTIFY,
	OP_ENABLE_NOTIFY,
	OP_DISABLE_NOTIFY,
	OP_PUSH_BAD_ID,
	OP_POP_PUSH_FULL, /* pop, push back with the whole writable length */
	OP_STOP,
	OP_COUNT
};

static uint64_t desc_addr; /* guest address of the descriptor table */

/* The device side's view, tracked by the spec rather than read from the
 * queue, to compare with what the library does. */
static struct {
	uint16_t avail0;      /* avail->idx in memory after setup */
	bool avail_changed;   /* avail->idx was ever seen different */
	uint16_t next_avail0; /* the queue's first avail slot */
	unsigned pops;        /* requests taken */
	uint32_t inflight;    /* taken and not given back */
	bool notify_enabled;
	uint16_t signalled;   /* used index at the last needs_notify */
	bool signalled_valid;
	bool was_broken;
} st;

/* IN_ORDER: each head's state and the heads in pop order, by the spec's
 * rule (completions published in pop order, a run of full-length ones as
 * one entry, a short one ending the run). */
enum { IO_FREE, IO_INFLIGHT, IO_DONE };
static struct {
	uint8_t state;
	uint32_t in_len, len;
} io[NUM_MAX];
static uint16_t io_fifo[NUM_MAX];
static unsigned io_first, io_count;

static uint32_t load32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

/* The event fields: one entry past each ring. */
static uint16_t used_event(const struct uvirtio_devq *q)
{
	return load16(&DEVQ(q)->avail->ring[DEVQ(q)->num]);
}

static uint16_t avail_event(const struct uvirtio_devq *q)
{
	return load16(&DEVQ(q)->used->ring[DEVQ(q)->num]);
}

/* The reference: what pop must return, from the spec's rules and the limits
 * devq.h documents, kept deliberately plain (linear region lookup, no code
 * shared with the library) so that a slip in either shows as a difference.
 * It runs before the library does: pop writes avail_event, and a hostile
 * ring may put that on top of anything the reference reads. */
struct expect {
	int ret;
	uint16_t id;
	unsigned n_iov, n_out;
	uint64_t out_len, in_len;
	struct iovec iov[IOV_MAX_CAP];
};

FUZZ_MODEL static const struct uvirtio_mem_region *ref_region(uint64_t addr)
{
	for (unsigned i = 0; i < nadded; i++)
		if (addr >= added[i].guest_addr && addr - added[i].guest_addr < added[i].size)
			return &added[i];
	return NULL;
}

FUZZ_MODEL static const void *ref_ptr(uint64_t addr, uint64_t len)
{
	const struct uvirtio_mem_region *r = ref_region(addr);

	if (!r || !len || len > r->size || addr - r->guest_addr > r->size - len)
		return NULL;
	return (const uint8_t *)r->host_addr + (addr - r->guest_addr);
}

/* A buffer as iovecs, one per region it touches; false if it leaves guest
 * memory or needs more than the capacity. */
FUZZ_MODEL static bool ref_translate(struct expect *e, unsigned cap, uint64_t addr, uint64_t len)
{
	while (len) {
		const struct uvirtio_mem_region *r = ref_region(addr);
		uint64_t room, n;

		if (!r || e->n_iov == cap)
			return false;
		room = r->size - (addr - r->guest_addr);
		n = len < room ? len : room;
		e->iov[e->n_iov++] = (struct iovec){
			.iov_base = (uint8_t *)r->host_addr + (addr - r->guest_addr),
			.iov_len = (size_t)n,
		};
		addr += n;
		len -= n;
	}
	return true;
}

FUZZ_MODEL static bool ref_walk(const struct uvirtio_devq *q, uint16_t head, unsigned cap,
				struct expect *e)
{
	const uint8_t *table = ref_ptr(desc_addr, 16ull * DEVQ(q)->num);
	unsigned size = DEVQ(q)->num, visited = 0;
	bool indirect = false, writable = false;
	uint16_t i = head;

	for (;;) {
		struct vring_desc d;
		uint16_t flags;
		uint32_t len;

		/* spec: an index past the table, or a chain longer than the
		 * table (which must revisit an entry: a loop), is an error. */
		if (i >= size || ++visited > size)
			return false;
		memcpy(&d, table + 16u * i, sizeof(d));
		flags = le16toh(d.flags);
		len = le32toh(d.len);

		if (flags & VRING_DESC_F_INDIRECT) {
			/* spec: only with INDIRECT_DESC, never inside an indirect
			 * table, never with NEXT; devq.h: a whole number of
			 * descriptors, at most UVIRTIO_INDIRECT_MAX. */
			if (!DEVQ(q)->indirect || indirect || (flags & VRING_DESC_F_NEXT) || !len ||
			    len % 16 || len / 16 > UVIRTIO_INDIRECT_MAX)
				return false;
			/* spec: no chain longer than the queue, the table's
			 * descriptors and those before it included. */
			if (visited - 1 + len / 16 > DEVQ(q)->num)
				return false;
			table = ref_ptr(le64toh(d.addr), len);
			if (!table)
				return false;
			size = len / 16;
			visited = 0;
			indirect = true;
			i = 0;
			continue;
		}
		/* spec: readable descriptors before writable ones. */
		if (flags & VRING_DESC_F_WRITE)
			writable = true;
		else if (writable)
			return false;
		/* devq.h: a used length is 32 bits, so is a chain. */
		if (e->out_len + e->in_len + len > UINT32_MAX)
			return false;
		if (!ref_translate(e, cap, le64toh(d.addr), len))
			return false;
		if (writable) {
			e->in_len += len;
		} else {
			e->n_out = e->n_iov;
			e->out_len += len;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			return true;
		i = le16toh(d.next);
	}
}

FUZZ_MODEL static void ref_pop(const struct uvirtio_devq *q, unsigned cap, struct expect *e)
{
	uint16_t head;

	memset(e, 0, sizeof(*e));
	if (DEVQ(q)->broken) {
		e->ret = -EIO;
		return;
	}
	if (!DEVQ(q)->ready)
		return;
	/* The device reads avail->idx again only once it has taken all it saw. */
	if (DEVQ(q)->last_avail == DEVQ(q)->avail_seen) {
		uint16_t avail = load16(&DEVQ(q)->avail->idx);

		/* spec: at most the queue size ahead of the device. */
		if ((uint16_t)(avail - DEVQ(q)->last_avail) > DEVQ(q)->num) {
			e->ret = -EIO;
			return;
		}
		if (avail == DEVQ(q)->last_avail)
			return;
	}
	head = load16(&DEVQ(q)->avail->ring[DEVQ(q)->last_avail & (DEVQ(q)->num - 1)]);
	e->id = head;
	e->ret = ref_walk(q, head, cap, e) ? 1 : -EIO;
	/* IN_ORDER: a head still in flight made available again breaks it. */
	if (e->ret == 1 && DEVQ(q)->in_order && io[head].state != IO_FREE)
		e->ret = -EIO;
}

static void check_broken_state(const struct uvirtio_devq *q)
{
	if (st.was_broken)
		FUZZ_CHECK(DEVQ(q)->broken);
	if (DEVQ(q)->broken) {
		FUZZ_CHECK(broken_calls == 1);
		FUZZ_CHECK(DEVQ(q)->broken_reason != NULL);
		FUZZ_CHECK(!DEVQ(q)->ready);
		st.was_broken = true;
	} else {
		FUZZ_CHECK(broken_calls == 0);
	}
}

/* Pop one request and check it. Returns what pop returned. */
static int pop_checked(struct uvirtio_devq *q, struct uvirtio_req *req, unsigned iov_cap,
		       bool write_in, uint8_t fill)
{
	struct expect e;
	int ret;

	if (DEVQ(q)->ready && load16(&DEVQ(q)->avail->idx) != st.avail0)
		st.avail_changed = true;

	ref_pop(q, iov_cap, &e);
	uvirtio_req_init(req, iov_store + IOV_MAX_CAP - iov_cap, iov_cap);
	ret = uvirtio_devq_pop(q, req);
	if (st.was_broken) {
		FUZZ_CHECK(ret == -EIO);
		return ret;
	}
	FUZZ_CHECK(ret == e.ret);
	FUZZ_CHECK((ret == -EIO) == DEVQ(q)->broken);
	if (ret != 1)
		return ret;

	FUZZ_CHECK(req->id == e.id);
	FUZZ_CHECK(req->n_out == e.n_out && req->n_in == e.n_iov - e.n_out);
	FUZZ_CHECK(req->out_len == e.out_len && req->in_len == e.in_len);
	for (unsigned i = 0; i < e.n_iov; i++)
		FUZZ_CHECK(req->iov[i].iov_base == e.iov[i].iov_base &&
			   req->iov[i].iov_len == e.iov[i].iov_len);

	st.pops++;
	st.inflight++;
	if (DEVQ(q)->in_order) {
		io[req->id].state = IO_INFLIGHT;
		io[req->id].in_len = req->in_len;
		io_fifo[(io_first + io_count++) % DEVQ(q)->num] = req->id;
	}
	FUZZ_CHECK(DEVQ(q)->inflight == st.inflight);
	/* spec: the device never takes more than the driver made available.
	 * With avail->idx unchanged, that is its distance from the first slot,
	 * and pop refuses (breaks) a distance over the queue size. */
	if (!st.avail_changed) {
		uint16_t avail = (uint16_t)(st.avail0 - st.next_avail0);

		FUZZ_CHECK(avail <= DEVQ(q)->num);
		FUZZ_CHECK(st.pops <= avail);
	}
	FUZZ_CHECK(req->id < DEVQ(q)->num);
	FUZZ_CHECK(req->iov_cap == iov_cap);
	check_req_iovs(req, iov_cap);
	FUZZ_CHECK((uint64_t)req->out_len + req->in_len <= UINT32_MAX);
	/* With EVENT_IDX and kicks wanted, avail_event follows the next slot. */
	if (DEVQ(q)->event_idx && st.notify_enabled)
		FUZZ_CHECK(avail_event(q) == DEVQ(q)->last_avail);

	/* A device writes what it was given to write; the buffers may be the
	 * driver's own rings, which is its problem, not a crash of ours. */
	if (write_in)
		for (unsigned i = req->n_out; i < req->n_out + req->n_in; i++)
			memset(req->iov[i].iov_base, fill, req->iov[i].iov_len);
	return 1;
}

/* IN_ORDER push: the model marks the completions, publishes what the rule
 * allows, and the library must have written the same. */
static void push_checked_in_order(struct uvirtio_devq *q, const struct uvirtio_used *e, unsigned n)
{
	uint16_t before = DEVQ(q)->used_idx, idx = before, last_id = 0;
	uint32_t last_len = 0, last_count = 0;
	int ret = n == 1 ? uvirtio_devq_push(q, (uint16_t)e->id, e->len)
			 : uvirtio_devq_push_batch(q, e, n);
	bool ok = true;

	if (!DEVQ(q)->ready || DEVQ(q)->broken) {
		FUZZ_CHECK(ret == (DEVQ(q)->broken ? -EIO : -ESHUTDOWN));
		return;
	}
	for (unsigned i = 0; i < n && ok; i++) {
		ok = e[i].id < DEVQ(q)->num && io[e[i].id].state == IO_INFLIGHT;
		for (unsigned j = 0; j < i && ok; j++)
			ok = e[j].id != e[i].id;
	}
	if (!ok) {
		FUZZ_CHECK(ret == -EINVAL);
		FUZZ_CHECK(DEVQ(q)->used_idx == before);
		return;
	}
	FUZZ_CHECK(ret == 0);
	for (unsigned i = 0; i < n; i++) {
		io[e[i].id].state = IO_DONE;
		io[e[i].id].len = e[i].len;
	}
	st.inflight = st.inflight >= n ? st.inflight - n : 0;
	FUZZ_CHECK(DEVQ(q)->inflight == st.inflight);
	while (io_count && io[io_fifo[io_first]].state == IO_DONE) {
		uint32_t count = 0;
		uint16_t h;

		for (;;) {
			h = io_fifo[io_first];
			io_first = (io_first + 1) % DEVQ(q)->num;
			io_count--;
			count++;
			io[h].state = IO_FREE;
			if (io[h].len != io[h].in_len || !io_count ||
			    io[io_fifo[io_first]].state != IO_DONE)
				break;
		}
		last_id = h;
		last_len = io[h].len;
		last_count = count;
		idx = (uint16_t)(idx + count);
	}
	FUZZ_CHECK(DEVQ(q)->used_idx == idx);
	if (idx != before) {
		uint16_t slot = (uint16_t)(idx - last_count) & (DEVQ(q)->num - 1);
		const struct vring_used_elem *le = &DEVQ(q)->used->ring[slot];

		FUZZ_CHECK(load16(&DEVQ(q)->used->idx) == idx);
		FUZZ_CHECK(load32(&le->id) == last_id);
		FUZZ_CHECK(load32(&le->len) == last_len);
	}
}

static void push_checked(struct uvirtio_devq *q, const struct uvirtio_used *e, unsigned n)
{
	uint16_t before = DEVQ(q)->used_idx;
	int ret;

	if (DEVQ(q)->in_order) {
		push_checked_in_order(q, e, n);
		return;
	}
	ret = n == 1 ? uvirtio_devq_push(q, (uint16_t)e->id, e->len) : uvirtio_devq_push_batch(q, e, n);

	if (!DEVQ(q)->ready || DEVQ(q)->broken) {
		FUZZ_CHECK(ret == (DEVQ(q)->broken ? -EIO : -ESHUTDOWN));
		return;
	}
	FUZZ_CHECK(ret == 0);
	st.inflight = st.inflight >= n ? st.inflight - n : 0;
	FUZZ_CHECK(DEVQ(q)->inflight == st.inflight);
	FUZZ_CHECK(DEVQ(q)->used_idx == (uint16_t)(before + n));
	/* Each entry, then the index, as the driver will read them. The used
	 * ring never overlaps its own index, so the last entry is intact. */
	FUZZ_CHECK(load16(&DEVQ(q)->used->idx) == DEVQ(q)->used_idx);
	if (n) {
		uint16_t slot = (uint16_t)(DEVQ(q)->used_idx - 1) & (DEVQ(q)->num - 1);
		const struct vring_used_elem *le = &DEVQ(q)->used->ring[slot];

		FUZZ_CHECK(load32(&le->id) == e[n - 1].id);
		FUZZ_CHECK(load32(&le->len) == e[n - 1].len);
	}
}

static void run_op(struct uvirtio_devq *q, const struct fuzz_op *o, unsigned iov_cap, bool write_in)
{
	struct uvirtio_req req;
	bool ready = DEVQ(q)->ready && !DEVQ(q)->broken;

	switch (o->op % OP_COUNT) {
	case OP_POP_PUSH:
	case OP_POP_PUSH_FULL:
		fuzz_pop_push_now(q, o, o->op % OP_COUNT == OP_POP_PUSH_FULL, iov_cap, write_in,
				  pop_checked, push_checked);
		break;
	case OP_POP_HOLD:
		if (pop_checked(q, &req, iov_cap, write_in, (uint8_t)o->arg) == 1) {
			/* A driver can make the same head available again and
			 * again; past NUM_MAX in flight, give this one back. */
			if (nheld == NUM_MAX) {
				struct uvirtio_used e = { .id = req.id, .len = 0 };

				push_checked(q, &e, 1);
			} else {
				held[nheld++] = (struct uvirtio_used){ .id = req.id, .len = o->arg };
			}
		}
		break;
	case OP_PUSH_HELD:
		/* IN_ORDER: odd arguments push the batch back to front, so
		 * completions arrive out of order and must be reordered. */
		if (DEVQ(q)->in_order && (o->arg & 1))
			for (unsigned i = 0; i < nheld / 2; i++) {
				struct uvirtio_used t = held[i];

				held[i] = held[nheld - 1 - i];
				held[nheld - 1 - i] = t;
			}
		push_checked(q, held, nheld);
		if (ready)
			nheld = 0;
		break;
	case OP_NEEDS_NOTIFY: {
		bool want, got = uvirtio_devq_needs_notify(q);

		if (!ready) {
			FUZZ_CHECK(!got);
			break;
		}
		if (!DEVQ(q)->event_idx) {
			/* spec: without EVENT_IDX the driver's flag decides. */
			want = !(load16(&DEVQ(q)->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
		} else {
			/* spec: notify when used_event lies in (old, new]; nothing
			 * was signalled yet after setup, so the first time, notify. */
			want = !st.signalled_valid ||
			       vring_need_event(used_event(q), DEVQ(q)->used_idx, st.signalled);
			st.signalled = DEVQ(q)->used_idx;
			st.signalled_valid = true;
		}
		FUZZ_CHECK(got == want);
		break;
	}
	case OP_ENABLE_NOTIFY: {
		bool got = uvirtio_devq_enable_notify(q);

		if (!ready) {
			FUZZ_CHECK(!got);
			break;
		}
		st.notify_enabled = true;
		if (DEVQ(q)->event_idx)
			FUZZ_CHECK(avail_event(q) == DEVQ(q)->last_avail);
		else
			FUZZ_CHECK(load16(&DEVQ(q)->used->flags) == 0);
		/* Lost wake-up rule: true iff something is available now. */
		FUZZ_CHECK(got == (load16(&DEVQ(q)->avail->idx) != DEVQ(q)->last_avail));
		break;
	}
	case OP_DISABLE_NOTIFY:
		uvirtio_devq_disable_notify(q);
		if (!ready)
			break;
		st.notify_enabled = false;
		if (!DEVQ(q)->event_idx)
			FUZZ_CHECK(load16(&DEVQ(q)->used->flags) & VRING_USED_F_NO_NOTIFY);
		break;
	case OP_PUSH_BAD_ID: {
		struct uvirtio_used e = { .id = (uint32_t)DEVQ(q)->num + o->arg, .len = 0 };
		uint16_t used_before = ready ? load16(&DEVQ(q)->used->idx) : 0;
		int ret = uvirtio_devq_push_batch(q, &e, 1);

		FUZZ_CHECK(ret == (ready ? -EINVAL : DEVQ(q)->broken ? -EIO : -ESHUTDOWN));
		if (ready)
			FUZZ_CHECK(load16(&DEVQ(q)->used->idx) == used_before);
		break;
	}
	case OP_STOP: {
		/* Stopped: nothing to pop, nothing pushed, indices kept. */
		uint16_t next = uvirtio_devq_next_avail(q);

		uvirtio_devq_stop(q);
		FUZZ_CHECK(!DEVQ(q)->ready && uvirtio_devq_next_avail(q) == next);
		/* IN_ORDER: held completions are dropped (devq.h). */
		io_count = 0;
		break;
	}
	}
	check_broken_state(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static const uint64_t align[3] = { 16, 2, 4 };
	struct devq_fuzz_input fi;
	struct uvirtio_devq q;
	unsigned num, iov_cap, nregs, nops, iters;
	uint64_t desc, avail, used, features = 0;
	uint16_t next_avail = 0, used_idx = 0;
	uint8_t flags;
	int ret, want;

	num = in_u8(&in);
	num = num >= 252 ? num : 1u << (num % 9);
	flags = in_u8(&in);
	iov_cap = 1 + in_u8(&in) % IOV_MAX_CAP;
	nregs = 1 + in_u8(&in) % NREGIONS_MAX;
	if (flags & 0x01)
		features |= UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	if (flags & 0x02)
		features |= UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	if (flags & 0x10)
		features |= UVIRTIO_BIT(VIRTIO_F_IN_ORDER);

	devq_fuzz_read_input(&in, nregs, align, &fi);
	desc_addr = desc = fi.part[0];
	avail = fi.part[1];
	used = fi.part[2];
	next_avail = fi.next_avail;
	used_idx = fi.used_idx;
	nops = fi.nops;

	memset(&st, 0, sizeof(st));
	memset(io, 0, sizeof(io));
	io_first = io_count = 0;
	broken_calls = 0;
	nheld = 0;
	memset(&q, 0, sizeof(q));
	uvirtio_devq_set_broken_cb(&q, on_broken, NULL);
	ret = uvirtio_devq_setup(&q, &mem, num, desc, avail, used, features);

	/* spec: a power-of-two size, parts aligned; then each part inside one
	 * region, event fields included. */
	if ((num & (num - 1)) || desc % 16 || avail % 2 || used % 4)
		want = -EINVAL;
	else if (!in_one_region(desc, 16ull * num) || !in_one_region(avail, 6ull + 2ull * num) ||
		 !in_one_region(used, 6ull + 8ull * num))
		want = -EFAULT;
	else
		want = 0;
	FUZZ_CHECK(ret == want);
	FUZZ_CHECK(DEVQ(&q)->ready == (ret == 0));
	FUZZ_CHECK(!DEVQ(&q)->broken);

	if (ret == 0) {
		FUZZ_CHECK(DEVQ(&q)->num == num);
		FUZZ_CHECK(DEVQ(&q)->event_idx == !!(flags & 0x02));
		FUZZ_CHECK(DEVQ(&q)->indirect == !!(flags & 0x01));
		FUZZ_CHECK(DEVQ(&q)->in_order == !!(flags & 0x10));
		if (flags & 0x08)
			uvirtio_devq_set_indices(&q, next_avail, used_idx);
		st.avail0 = load16(&DEVQ(&q)->avail->idx);
		st.next_avail0 = DEVQ(&q)->last_avail;
		st.notify_enabled = true;
	}

	/* Bounded: a queue of num entries never needs more pops than this to
	 * drain, and a loop that would spin shows up as a slow input. */
	iters = 2 * num + 16;
	for (unsigned it = 0; it < iters; it++) {
		struct fuzz_op o = nops ? ops[it % nops] : (struct fuzz_op){ OP_POP_PUSH, 0 };

		run_op(&q, &o, iov_cap, flags & 0x04);
	}

	if (DEVQ(&q)->broken)
		devq_fuzz_check_broken_end(&q, false);
	/* IN_ORDER state is allocated: the owner resets the queue. */
	uvirtio_devq_reset(&q);
	return 0;
}
