/* SPDX-License-Identifier: MIT */
/*
 * The driver-side fuzz harness both ring layouts share (fuzz_drvq_split.c,
 * fuzz_drvq_packed.c): the model of the buffers in flight, the operations
 * whose rules do not depend on the layout (add, get, the honest device's
 * serve, poking a byte, the kick), the queue set-up against the library's
 * own device side and the tear-down.
 *
 * Input layout (tests/fuzz/make_seeds.py writes the same):
 *
 *   u8  queue size, as the target reads it (drvq_fuzz_num())
 *   u8  features: 0x01 INDIRECT_DESC, 0x02 EVENT_IDX, 0x04 IN_ORDER
 *   u8  descriptors per indirect table (0: the library's default)
 *   u32 guest page number of the shared memory
 *   then operations until the input ends, each a u8 and its arguments
 *   (see the enum below).
 *
 * A target includes this header once and then defines the hooks declared
 * at its end: what its layout adds to the queue check, what it expects of
 * the driver event after a get and of a kick, and the operations whose
 * arguments or rules are the layout's own. One copy of the shared rules
 * means a fix to the model reaches both layouts.
 */
#ifndef UVIRTIO_FUZZ_DRVQ_HARNESS_H
#define UVIRTIO_FUZZ_DRVQ_HARNESS_H

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "../../src/memory/memory_priv.h"
#include "fuzz_input.h"
#include "../../src/ring/drvq_priv.h"

/* The queue's private state, which the targets check after every step
 * (tests/fuzz compiles the library's sources and sees their headers). */
#define DRVQ(q) ((struct drvq *)(q))

#define SHM_SIZE (192u * 1024)
#define DATA_SIZE 4096u
#define NUM_MAX 256
#define NTOKENS (NUM_MAX + 1) /* one more than can ever be in flight */
#define PARTS_MAX 8
#define FIFO_SIZE 512
#define IOV_CAP 64 /* iovecs per request at the honest device: PARTS_MAX is plenty */

/* The numbers are the input format: the seeds depend on them. */
enum op {
	OP_ADD,           /* u8 n_out, u8 n_in, parts x { u8 kind, u16 offset, u16 length } */
	OP_GET,
	OP_GET_LOOP,      /* get until nothing is pending (bounded) */
	OP_SERVE,         /* u8 count, u8 mode, u32 length: the honest device pops and pushes */
	OP_POKE_USED,     /* layout's own: a hostile used entry / descriptor */
	OP_POKE_DEVICE_AREA, /* layout's own: hostile used->idx / device event */
	OP_POKE_BYTE,     /* u8 where, u16 offset, u8 value: hostile write anywhere shared */
	OP_ENABLE_CB,     /* layout's own checks */
	OP_ENABLE_CB_DELAYED, /* layout's own checks */
	OP_DISABLE_CB,    /* layout's own checks */
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
	uint16_t added_since_kick; /* in the layout's kick units (drvq_fuzz_kick_units()) */
	unsigned next_tok;
} st;

/* The layout's hooks, defined by the target after this header. */

/* Size of the queue from the first input byte. */
static unsigned drvq_fuzz_num(uint8_t byte);
/* The feature bits the layout always negotiates. */
static uint64_t drvq_fuzz_layout_features(void);
/* What the layout adds to check_queue(): the indices against the model. */
static void drvq_fuzz_check_indices(const struct uvirtio_drvq *q);
/* After a get returned a buffer: the driver event the layout expects. */
static void drvq_fuzz_check_after_get(const struct uvirtio_drvq *q);
/* How much an added buffer moves the avail index a kick compares against. */
static uint16_t drvq_fuzz_kick_units(const struct tok *t);
/* Before a kick: whether the device asked to be notified, from what it wrote
 * (the kick writes nothing the device reads, so this is what it sees). */
static bool drvq_fuzz_kick_expected(const struct uvirtio_drvq *q, uint16_t added_since_kick);
/* OP_POKE_USED, OP_POKE_DEVICE_AREA and the callback operations. */
static void drvq_fuzz_layout_op(struct uvirtio_drvq *q, enum op op, struct fuzz_in *in);

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

static void check_queue(const struct uvirtio_drvq *q)
{
	FUZZ_CHECK(DRVQ(q)->num_free <= DRVQ(q)->num);
	FUZZ_CHECK(uvirtio_drvq_num_free(q) == DRVQ(q)->num - st.held_descs);
	drvq_fuzz_check_indices(q);
	if (st.was_broken)
		FUZZ_CHECK(DRVQ(q)->broken);
	if (DRVQ(q)->broken) {
		FUZZ_CHECK(DRVQ(q)->broken_reason != NULL);
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
	if (DRVQ(q)->num_free == 0) {
		enospc = true;
	} else if (DRVQ(q)->indirect_max && total > 1 && total <= DRVQ(q)->indirect_max) {
		indirect = true;
	} else if (total > DRVQ(q)->num_free) {
		if (DRVQ(q)->indirect_max && total > 1)
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
	st.added_since_kick += drvq_fuzz_kick_units(t);
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
	FUZZ_CHECK((ret == -EIO) == DRVQ(q)->broken);
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
	drvq_fuzz_check_after_get(q);
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

		/* The driver wrote this ring alone: the device side accepts it
		 * (if not, say why before the check stops the run). */
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
	bool expect = drvq_fuzz_kick_expected(q, st.added_since_kick);
	unsigned calls = notify_calls;
	bool want;

	if (notify) {
		int ret = uvirtio_drvq_kick(q);

		want = calls != notify_calls || ret == -EIO;
		FUZZ_CHECK(ret == (want && DRVQ(q)->broken ? -EIO : 0));
	} else {
		want = uvirtio_drvq_kick_prepare(q);
	}
	st.added_since_kick = 0;
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
		for (unsigned i = 0; i <= DRVQ(q)->num; i++) {
			if (op_get(q) != 1)
				break;
			FUZZ_CHECK(i < DRVQ(q)->num);
		}
		break;
	case OP_SERVE:
		op_serve(dq, in);
		break;
	case OP_POKE_BYTE: {
		uint8_t where = in_u8(in);
		uint16_t off = in_u16(in);
		uint8_t val = in_u8(in);
		size_t ring_bytes = uvirtio_drvq_ring_bytes(DRVQ(q)->num, drvq_fuzz_layout_features());

		/* The ring, or an indirect table: the device can write both. */
		if ((where & 1) && DRVQ(q)->indirect_pool)
			((uint8_t *)DRVQ(q)->indirect_pool)[off % (DRVQ(q)->num * DRVQ(q)->indirect_max * 16u)] = val;
		else
			((uint8_t *)DRVQ(q)->ring_mem)[off % ring_bytes] = val;
		st.dirty = true;
		break;
	}
	case OP_KICK:
		op_kick(q, in_u8(in) & 1);
		break;
	default:
		drvq_fuzz_layout_op(q, (enum op)(op % OP_COUNT), in);
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
	uint64_t features = drvq_fuzz_layout_features(), guest_addr;
	uint8_t fbits;
	void *data_area;
	int ret;

	num = drvq_fuzz_num(in_u8(&in));
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
	FUZZ_CHECK(DRVQ(&q)->num == num && DRVQ(&q)->num_free == num);
	/* Without INDIRECT_DESC, or when the pool does not fit, no indirect
	 * tables; otherwise the size asked for, or the default. */
	if (!(fbits & 0x01))
		FUZZ_CHECK(DRVQ(&q)->indirect_max == 0 && !DRVQ(&q)->indirect_pool);
	else if (DRVQ(&q)->indirect_max)
		FUZZ_CHECK(DRVQ(&q)->indirect_pool && DRVQ(&q)->indirect_max <= num &&
			   (!indirect_max || DRVQ(&q)->indirect_max == (indirect_max < num ? indirect_max : num)));
	FUZZ_CHECK(uvirtio_dma_addr(&dma, DRVQ(&q)->ring_mem, uvirtio_drvq_ring_bytes(num, features),
				    &(uint64_t){ 0 }) == 0);

	/* The honest device: this library's device side, on the same ring. */
	region = (struct uvirtio_mem_region){
		.guest_addr = guest_addr, .size = SHM_SIZE, .host_addr = shm, .fd = -1,
	};
	uvirtio_mem_init(&mem);
	FUZZ_CHECK(uvirtio_mem_add(&mem, &region) == 0);
	memset(&dq, 0, sizeof(dq));
	FUZZ_CHECK(uvirtio_devq_setup(&dq, &mem, num, DRVQ(&q)->desc_addr, DRVQ(&q)->avail_addr, DRVQ(&q)->used_addr,
				      features) == 0);

	/* Bounded by the input: every operation reads at least one byte. */
	while (!in_empty(&in) && ops++ < 4096)
		run_op(&q, &dq, &in);

	/* Tear down as a driver does: reset the device, then take back every
	 * buffer it never used; exactly the ones in flight come back. */
	uvirtio_devq_reset(&dq);
	for (unsigned i = 0; i <= DRVQ(&q)->num; i++) {
		void *token = uvirtio_drvq_detach_unused(&q);

		if (!token) {
			FUZZ_CHECK(st.in_flight == 0);
			break;
		}
		take_token(token);
		check_queue(&q);
	}
	FUZZ_CHECK(DRVQ(&q)->num_free == DRVQ(&q)->num);
	FUZZ_CHECK(uvirtio_drvq_avail_index(&q) == uvirtio_drvq_used_index(&q));

	uvirtio_drvq_destroy(&q);
	uvirtio_dma_free(&dma, data_area);
	FUZZ_CHECK(dma_nallocations(&dma) == 0);
	uvirtio_dma_destroy(&dma);
	return 0;
}

#endif
