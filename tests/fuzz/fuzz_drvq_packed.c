// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the driver side of a packed ring (src/ring/packed_drv.c)
 * against whatever a hostile device can write into shared memory.
 *
 * Input layout (tests/fuzz/make_seeds.py writes the same):
 *
 *   u8  queue size - 1 (mod 128: any size 1..128, odd ones too)
 *   u8  features: 0x01 INDIRECT_DESC, 0x02 EVENT_IDX, 0x04 IN_ORDER
 *   u8  descriptors per indirect table (0: the library's default)
 *   u32 guest page number of the shared memory
 *   then operations until the input ends, each a u8 and its arguments
 *   (see the enum below).
 *
 * As in fuzz_drvq_split, the device is played two ways: this library's
 * device side (uvirtio_devq, packed) as the honest one, whose completions
 * the driver must hand back exactly, in order, with their lengths; and a
 * hostile one that writes used descriptors (any id, length, flags, at any
 * position), the device area, or any byte of the ring. From the first
 * hostile write on only the safety rules are checked: a token comes back
 * only if it was added and not yet returned, never with more than its
 * writable length, no get loop runs longer than the buffers in flight, the
 * free count adds up, and a broken queue stays broken.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "fuzz_input.h"

#define SHM_SIZE (192u * 1024)
#define NUM_LIMIT 128
#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)
#define DATA_SIZE 4096u
#define NUM_MAX 256
#define NTOKENS (NUM_MAX + 1) /* one more than can ever be in flight */
#define PARTS_MAX 8
#define FIFO_SIZE 512
#define IOV_CAP 64 /* iovecs per request at the honest device: PARTS_MAX is plenty */

enum op {
	OP_ADD,           /* u8 n_out, u8 n_in, parts x { u8 kind, u16 offset, u16 length } */
	OP_GET,
	OP_GET_LOOP,      /* get until nothing is pending (bounded) */
	OP_SERVE,         /* u8 count, u8 mode, u32 length: the honest device pops and pushes */
	OP_POKE_USED,     /* u8 where, u16 id, u32 len, u16 flags: hostile used descriptor */
	OP_DEVICE_AREA,   /* u32: hostile device area (off_wrap, flags) */
	OP_POKE_BYTE,     /* u8 where, u16 offset, u8 value: hostile write anywhere shared */
	OP_ENABLE_CB,
	OP_ENABLE_CB_DELAYED,
	OP_DISABLE_CB,
	OP_KICK,          /* u8: bit 0 notifies too */
	OP_ADD_AGAIN,     /* as OP_ADD; adding is most of what a driver does */
	OP_COUNT
};

/* A buffer as the model knows it; &toks[i] is its token. */
struct tok {
	bool in_flight;
	unsigned ndescs;
	uint32_t out_len, in_len;
	unsigned nparts, n_out;
	struct iovec parts[PARTS_MAX];
};

struct fifo {
	unsigned head, tail;
	struct {
		struct tok *t;
		uint32_t len;
	} e[FIFO_SIZE];
};

static _Alignas(4096) uint8_t shm[SHM_SIZE];
/* Memory the device cannot reach: a part here must be refused. */
static uint8_t outside[64];
static struct tok toks[NTOKENS];
static struct uvirtio_mem mem;
static struct iovec iov_store[IOV_CAP];
static struct fifo avail_fifo; /* added, not yet popped by the honest device */
static struct fifo used_fifo;  /* pushed by the honest device, not yet collected */
static unsigned notify_calls;

static struct {
	bool dirty;          /* a hostile write happened: only safety checks */
	bool was_broken;
	bool cb_enabled;
	unsigned in_flight;  /* tokens added and not returned */
	unsigned held_descs; /* ring descriptors those tokens hold */
	uint16_t added_since_kick;
	unsigned next_tok;
} st;

static void fifo_reset(struct fifo *f)
{
	f->head = f->tail = 0;
}

static bool fifo_empty(const struct fifo *f)
{
	return f->head == f->tail;
}

static void fifo_push(struct fifo *f, struct tok *t, uint32_t len)
{
	/* In flight is at most NUM_MAX < FIFO_SIZE, so this never overruns. */
	f->e[f->tail % FIFO_SIZE].t = t;
	f->e[f->tail % FIFO_SIZE].len = len;
	f->tail++;
}

static uint16_t load16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static void store16(void *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void store32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static int notify_cb(void *opaque, unsigned index)
{
	(void)opaque;
	FUZZ_CHECK(index == 3);
	notify_calls++;
	return 0;
}

/* The token must be one of ours, in flight; it leaves flight. */
static struct tok *take_token(void *p)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)toks;
	struct tok *t;

	FUZZ_CHECK(off < sizeof(toks) && off % sizeof(toks[0]) == 0);
	t = p;
	FUZZ_CHECK(t->in_flight);
	t->in_flight = false;
	st.in_flight--;
	st.held_descs -= t->ndescs;
	return t;
}

/* A position and its wrap counter as one count over two laps (both
 * counters start at 1, so lap 1 is the first). */
static unsigned lin(const struct uvirtio_drvq *q, uint16_t pos, bool wrap)
{
	return pos + (wrap ? 0u : q->num);
}

static bool is_used(uint16_t flags, bool wrap)
{
	return !!(flags & F_AVAIL) == !!(flags & F_USED) && !!(flags & F_USED) == wrap;
}

static void check_queue(const struct uvirtio_drvq *q)
{
	FUZZ_CHECK(q->num_free <= q->num);
	FUZZ_CHECK(uvirtio_drvq_num_free(q) == q->num - st.held_descs);
	/* The descriptors in flight lie between the next used and the next
	 * available position (counted over two laps, by the wrap counters). */
	FUZZ_CHECK(q->next_avail < q->num && q->last_used < q->num);
	FUZZ_CHECK((lin(q, q->next_avail, q->avail_wrap) + 2u * q->num -
		    lin(q, q->last_used, q->used_wrap)) % (2u * q->num) == st.held_descs % (2u * q->num));
	if (st.was_broken)
		FUZZ_CHECK(q->broken);
	if (q->broken) {
		FUZZ_CHECK(q->broken_reason != NULL);
		/* Only a hostile device breaks the queue. */
		FUZZ_CHECK(st.dirty);
		st.was_broken = true;
	}
}

static void op_add(struct uvirtio_drvq *q, struct fuzz_in *in)
{
	struct iovec parts[PARTS_MAX];
	unsigned n_out = in_u8(in) % 5, n_in = in_u8(in) % 5, total = n_out + n_in;
	bool einval = total == 0, efault = false, enospc = false, enomem = false;
	bool indirect = false;
	uint64_t all_len = 0, out_len = 0;
	struct tok *t = NULL;
	int ret;

	for (unsigned k = 0; k < total; k++) {
		uint8_t kind = in_u8(in);
		uint16_t off = in_u16(in) % DATA_SIZE, len = in_u16(in);

		/* Parts live in the dma's data area at offset 0 (allocated first). */
		parts[k] = (struct iovec){
			.iov_base = shm + off,
			.iov_len = len % (DATA_SIZE - off + 1),
		};
		switch (kind % 16) {
		case 13: /* fits in 32 bits, but two of them do not */
			parts[k].iov_len = 0x80000001u;
			efault = true;
			break;
		case 14:
			parts[k].iov_len = 1ull << 32;
			einval = efault = true;
			break;
		case 15:
			parts[k] = (struct iovec){ .iov_base = outside + off % 64, .iov_len = 1 };
			efault = true;
			break;
		}
		all_len += parts[k].iov_len;
		if (k < n_out)
			out_len += parts[k].iov_len;
	}
	if (all_len > UINT32_MAX)
		einval = true;

	/* Room, as the header describes it: an indirect table takes one
	 * descriptor, a direct chain one per part. */
	if (q->num_free == 0) {
		enospc = true;
	} else if (q->indirect_max && total > 1 && total <= q->indirect_max) {
		indirect = true;
	} else if (total > q->num_free) {
		if (q->indirect_max && total > 1)
			enomem = true;
		else
			enospc = true;
	}

	for (unsigned i = 0; i < NTOKENS && !t; i++) {
		struct tok *c = &toks[(st.next_tok + i) % NTOKENS];

		if (!c->in_flight)
			t = c;
	}
	FUZZ_CHECK(t);
	st.next_tok++;

	ret = uvirtio_drvq_add(q, parts, n_out, parts + n_out, n_in, t);
	if (st.was_broken) {
		FUZZ_CHECK(ret == -EIO);
		return;
	}
	if (!einval && !efault && !enospc && !enomem) {
		FUZZ_CHECK(ret == 0);
	} else {
		FUZZ_CHECK((einval && ret == -EINVAL) || (efault && ret == -EFAULT) ||
			   (enospc && ret == -ENOSPC) || (enomem && ret == -ENOMEM));
		return;
	}

	*t = (struct tok){
		.in_flight = true,
		.ndescs = indirect ? 1 : total,
		.out_len = (uint32_t)out_len,
		.in_len = (uint32_t)(all_len - out_len),
		.nparts = total,
		.n_out = n_out,
	};
	memcpy(t->parts, parts, total * sizeof(parts[0]));
	st.in_flight++;
	st.held_descs += t->ndescs;
	st.added_since_kick += t->ndescs;
	fifo_push(&avail_fifo, t, 0);
}

/* Returns what get returned. */
static int op_get(struct uvirtio_drvq *q)
{
	void *token = NULL;
	uint32_t len = 0;
	int ret = uvirtio_drvq_get(q, &token, &len);
	struct tok *t;

	if (st.was_broken) {
		FUZZ_CHECK(ret == -EIO);
		return ret;
	}
	FUZZ_CHECK(ret == 1 || ret == 0 || ret == -EIO);
	FUZZ_CHECK((ret == -EIO) == q->broken);
	if (!st.dirty) {
		/* Only the honest device wrote: exactly its completions, in order. */
		if (fifo_empty(&used_fifo)) {
			FUZZ_CHECK(ret == 0);
		} else {
			FUZZ_CHECK(ret == 1);
			FUZZ_CHECK(token == used_fifo.e[used_fifo.head % FIFO_SIZE].t);
			FUZZ_CHECK(len == used_fifo.e[used_fifo.head % FIFO_SIZE].len);
			used_fifo.head++;
		}
	}
	if (ret != 1)
		return ret;

	t = take_token(token);
	FUZZ_CHECK(len <= t->in_len);
	/* With callbacks on at a descriptor (EVENT_IDX, after enable_cb;
	 * a fresh queue starts at ENABLE), off_wrap follows the next used
	 * descriptor. */
	if (q->event_flags == VRING_PACKED_EVENT_FLAG_DESC && st.cb_enabled && !st.dirty)
		FUZZ_CHECK(load16(&q->driver_event->off_wrap) == uvirtio_drvq_used_index(q));
	return 1;
}

static void op_serve(struct uvirtio_devq *dq, struct fuzz_in *in)
{
	unsigned count = 1 + in_u8(in) % 8;
	uint8_t mode = in_u8(in);
	uint32_t arg = in_u32(in);

	for (unsigned i = 0; i < count; i++) {
		struct uvirtio_req req;
		const struct tok *t;
		unsigned v = 0;
		uint32_t len;
		int ret;

		uvirtio_req_init(&req, iov_store, IOV_CAP);
		ret = uvirtio_devq_pop(dq, &req);
		if (st.dirty) {
			/* Our own device may find the ring the hostile one wrote bad. */
			if (ret != 1)
				return;
			uvirtio_devq_push(dq, req.id, arg);
			continue;
		}

		/* The driver wrote this ring alone: the device side accepts it. */
		if (ret == -EIO)
			fprintf(stderr, "device: %s\n", uvirtio_devq_broken_reason(dq));
		FUZZ_CHECK(ret != -EIO);
		if (fifo_empty(&avail_fifo)) {
			FUZZ_CHECK(ret == 0);
			return;
		}
		FUZZ_CHECK(ret == 1);
		t = avail_fifo.e[avail_fifo.head % FIFO_SIZE].t;
		avail_fifo.head++;
		FUZZ_CHECK(t->in_flight);
		FUZZ_CHECK(req.out_len == t->out_len && req.in_len == t->in_len);
		/* The iovecs are the driver's parts, as host pointers: empty
		 * parts give no iovec, each other part exactly one. */
		for (unsigned k = 0; k < t->nparts; k++) {
			if (!t->parts[k].iov_len)
				continue;
			FUZZ_CHECK(v < req.n_out + req.n_in);
			FUZZ_CHECK(req.iov[v].iov_base == t->parts[k].iov_base);
			FUZZ_CHECK(req.iov[v].iov_len == t->parts[k].iov_len);
			FUZZ_CHECK((k < t->n_out) == (v < req.n_out));
			v++;
		}
		FUZZ_CHECK(v == req.n_out + req.n_in);

		if (mode & 1) {
			/* A device that claims to have written more than it could. */
			len = arg;
			if (len > t->in_len)
				st.dirty = true;
		} else {
			len = arg % (t->in_len + 1ull);
		}
		FUZZ_CHECK(uvirtio_devq_push(dq, req.id, len) == 0);
		fifo_push(&used_fifo, (struct tok *)t, len);
	}
}

static void op_kick(struct uvirtio_drvq *q, bool notify)
{
	uint16_t new = q->next_avail, old = (uint16_t)(new - st.added_since_kick);
	uint16_t off_wrap = load16(&q->device_event->off_wrap), flags = load16(&q->device_event->flags);
	bool lost = st.added_since_kick >= q->num, avail_wrap = q->avail_wrap;
	unsigned calls = notify_calls;
	bool want, expect;

	if (notify) {
		int ret = uvirtio_drvq_kick(q);

		want = calls != notify_calls || ret == -EIO;
		FUZZ_CHECK(ret == (want && q->broken ? -EIO : 0));
	} else {
		want = uvirtio_drvq_kick_prepare(q);
	}
	st.added_since_kick = 0;
	/* spec, packed event suppression: DESC with EVENT_IDX names the
	 * descriptor (offset, wrap counter) to notify for; otherwise notify
	 * unless DISABLE. The call writes nothing the device reads, so memory
	 * now is what it saw. */
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !q->event_idx) {
		expect = flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	} else if (lost) {
		expect = true;
	} else {
		uint16_t ev = off_wrap & 0x7fff;

		if (!!(off_wrap & 0x8000) != avail_wrap)
			ev = (uint16_t)(ev - q->num);
		expect = vring_need_event(ev, new, old);
	}
	FUZZ_CHECK(want == expect);
}

static void run_op(struct uvirtio_drvq *q, struct uvirtio_devq *dq, struct fuzz_in *in)
{
	uint8_t op = in_u8(in);

	switch (op % OP_COUNT) {
	case OP_ADD:
	case OP_ADD_AGAIN:
		op_add(q, in);
		break;
	case OP_GET:
		op_get(q);
		break;
	case OP_GET_LOOP:
		/* No more than num buffers can be in flight: a get loop that
		 * runs longer is collecting the same buffer twice. */
		for (unsigned i = 0; i <= q->num; i++) {
			if (op_get(q) != 1)
				break;
			FUZZ_CHECK(i < q->num);
		}
		break;
	case OP_SERVE:
		op_serve(dq, in);
		break;
	case OP_POKE_USED: {
		uint8_t where = in_u8(in);
		uint16_t id = in_u16(in), flags = in_u16(in);
		uint32_t len = in_u32(in);
		/* Mostly just ahead of the driver, where it looks next. */
		unsigned pos = (where & 0x80) ? where % q->num : (q->last_used + where % 4u) % q->num;
		struct vring_packed_desc *d = &q->packed_desc[pos];

		/* Bit 0 of @where: a well-formed used descriptor for the
		 * current lap; otherwise whatever flags the input gives. */
		if (where & 1)
			flags = (uint16_t)((flags & ~(F_AVAIL | F_USED)) |
					   (q->used_wrap ? F_AVAIL | F_USED : 0));
		store16(&d->id, id);
		store32(&d->len, len);
		store16(&d->flags, flags);
		st.dirty = true;
		break;
	}
	case OP_DEVICE_AREA:
		store32(q->device_event, in_u32(in));
		st.dirty = true;
		break;
	case OP_POKE_BYTE: {
		uint8_t where = in_u8(in);
		uint16_t off = in_u16(in);
		uint8_t val = in_u8(in);

		/* The ring, or an indirect table: the device can write both. */
		if ((where & 1) && q->indirect_pool)
			((uint8_t *)q->indirect_pool)[off % (q->num * q->indirect_max * 16u)] = val;
		else
			((uint8_t *)q->ring_mem)[off % uvirtio_drvq_ring_bytes(q->num, UVIRTIO_BIT(VIRTIO_F_RING_PACKED))] = val;
		st.dirty = true;
		break;
	}
	case OP_ENABLE_CB: {
		bool was_batch = q->batch_pending, got = uvirtio_drvq_enable_cb(q);

		st.cb_enabled = true;
		/* False exactly when a used buffer is pending, so the caller
		 * collects it instead of sleeping through it. */
		FUZZ_CHECK(got == !(was_batch ||
				    is_used(load16(&q->packed_desc[q->last_used].flags), q->used_wrap)));
		if (!st.dirty) {
			if (q->event_idx)
				FUZZ_CHECK(load16(&q->driver_event->off_wrap) == uvirtio_drvq_used_index(q));
			FUZZ_CHECK(load16(&q->driver_event->flags) ==
				   (q->event_idx ? VRING_PACKED_EVENT_FLAG_DESC : VRING_PACKED_EVENT_FLAG_ENABLE));
		}
		break;
	}
	case OP_ENABLE_CB_DELAYED: {
		unsigned bufs = q->event_idx ? st.held_descs * 3 / 4 : 0;
		unsigned pos = q->last_used + bufs;
		bool wrap = q->used_wrap, was_batch = q->batch_pending;
		bool got = uvirtio_drvq_enable_cb_delayed(q);

		if (pos >= q->num) {
			pos -= q->num;
			wrap = !wrap;
		}
		st.cb_enabled = true;
		FUZZ_CHECK(got == !(was_batch || is_used(load16(&q->packed_desc[pos].flags), wrap)));
		if (q->event_idx && !st.dirty)
			FUZZ_CHECK(load16(&q->driver_event->off_wrap) == (uint16_t)(pos | (wrap ? 0x8000u : 0)));
		break;
	}
	case OP_DISABLE_CB:
		uvirtio_drvq_disable_cb(q);
		st.cb_enabled = false;
		if (!st.dirty)
			FUZZ_CHECK(load16(&q->driver_event->flags) == VRING_PACKED_EVENT_FLAG_DISABLE);
		break;
	case OP_KICK:
		op_kick(q, in_u8(in) & 1);
		break;
	}
	check_queue(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct uvirtio_mem_region region;
	struct uvirtio_dma dma;
	struct uvirtio_drvq q;
	struct uvirtio_devq dq;
	unsigned num, indirect_max, ops = 0;
	uint64_t features = UVIRTIO_BIT(VIRTIO_F_RING_PACKED), guest_addr;
	uint8_t fbits;
	void *data_area;
	int ret;

	num = 1u + in_u8(&in) % NUM_LIMIT;
	fbits = in_u8(&in);
	indirect_max = in_u8(&in);
	guest_addr = (uint64_t)in_u32(&in) << 12;
	if (fbits & 0x01)
		features |= UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	if (fbits & 0x02)
		features |= UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	/* IN_ORDER: the honest device publishes in pop order and batches
	 * only full-length completions, so the model's expectations hold. */
	if (fbits & 0x04)
		features |= UVIRTIO_BIT(VIRTIO_F_IN_ORDER);

	memset(&st, 0, sizeof(st));
	memset(toks, 0, sizeof(toks));
	fifo_reset(&avail_fifo);
	fifo_reset(&used_fifo);
	notify_calls = 0;
	st.cb_enabled = true;

	FUZZ_CHECK(uvirtio_dma_init(&dma, shm, guest_addr, SHM_SIZE) == 0);
	data_area = uvirtio_dma_alloc(&dma, DATA_SIZE, 16);
	FUZZ_CHECK(data_area == shm);

	ret = uvirtio_drvq_create(&q, &dma, 3, num, features, indirect_max);
	FUZZ_CHECK(ret == 0);
	uvirtio_drvq_set_notify(&q, notify_cb, NULL);
	FUZZ_CHECK(q.num == num && q.num_free == num);
	/* Without INDIRECT_DESC, or when the pool does not fit, no indirect
	 * tables; otherwise the size asked for, or the default. */
	if (!(fbits & 0x01))
		FUZZ_CHECK(q.indirect_max == 0 && !q.indirect_pool);
	else if (q.indirect_max)
		FUZZ_CHECK(q.indirect_pool && q.indirect_max <= num &&
			   (!indirect_max || q.indirect_max == (indirect_max < num ? indirect_max : num)));
	FUZZ_CHECK(uvirtio_dma_addr(&dma, q.ring_mem, uvirtio_drvq_ring_bytes(num, features),
				    &(uint64_t){ 0 }) == 0);

	/* The honest device: this library's device side, on the same ring. */
	region = (struct uvirtio_mem_region){
		.guest_addr = guest_addr, .size = SHM_SIZE, .host_addr = shm, .fd = -1,
	};
	uvirtio_mem_init(&mem);
	FUZZ_CHECK(uvirtio_mem_add(&mem, &region) == 0);
	memset(&dq, 0, sizeof(dq));
	FUZZ_CHECK(uvirtio_devq_setup(&dq, &mem, num, q.desc_addr, q.avail_addr, q.used_addr,
				      features) == 0);

	/* Bounded by the input: every operation reads at least one byte. */
	while (!in_empty(&in) && ops++ < 4096)
		run_op(&q, &dq, &in);

	/* Tear down as a driver does: reset the device, then take back every
	 * buffer it never used; exactly the ones in flight come back. */
	uvirtio_devq_reset(&dq);
	for (unsigned i = 0; i <= q.num; i++) {
		void *token = uvirtio_drvq_detach_unused(&q);

		if (!token) {
			FUZZ_CHECK(st.in_flight == 0);
			break;
		}
		take_token(token);
		check_queue(&q);
	}
	FUZZ_CHECK(q.num_free == q.num);
	FUZZ_CHECK(uvirtio_drvq_avail_index(&q) == uvirtio_drvq_used_index(&q));

	uvirtio_drvq_destroy(&q);
	uvirtio_dma_free(&dma, data_area);
	FUZZ_CHECK(dma.nused == 0);
	uvirtio_dma_destroy(&dma);
	return 0;
}
