// SPDX-License-Identifier: MIT
/*
 * uvirtio_devq_unpop(), device side, on every layout (split, packed, each
 * with and without IN_ORDER): a drvq and a devq over one memory, as in
 * test_ring_pair.c but on one thread, step by step. The request popped last
 * goes back and the next pop takes the same chain; several go back most
 * recent first; where the queue keeps per-request state (packed, IN_ORDER)
 * anything but the last popped request in flight is refused; and nothing
 * an unpop does is published to the driver.
 */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "../support/ring_internal.h"

#define GA 0x100000000ull
#define MEM_SIZE (1u << 20)

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)

static const struct layout {
	const char *name;
	uint64_t features;
	bool checks_id; /* keeps per-request state: a wrong id is refused */
} layouts[] = {
	{ "split", 0, false },
	{ "split in-order", IN_ORDER, true },
	{ "packed", PACKED, true },
	{ "packed in-order", PACKED | IN_ORDER, true },
};

struct pair {
	char *mem_base;
	struct uvirtio_dma dma;
	struct uvirtio_mem mem;
	struct uvirtio_drvq q;
	struct uvirtio_devq dq;
	char *buf;
	struct iovec iov[8];
	struct uvirtio_req req;
};

static int pair_init(struct pair *p, unsigned num, uint64_t features)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = MEM_SIZE, .fd = -1 };
	struct uvirtio_drvq_ring ring;
	int ret;

	memset(p, 0, sizeof(*p));
	p->mem_base = aligned_alloc(4096, MEM_SIZE);
	if (!p->mem_base)
		return -ENOMEM;
	memset(p->mem_base, 0, MEM_SIZE);
	r.host_addr = p->mem_base;
	features |= UVIRTIO_BIT(VIRTIO_F_VERSION_1);
	uvirtio_dma_init(&p->dma, p->mem_base, GA, MEM_SIZE);
	uvirtio_mem_init(&p->mem);
	ret = uvirtio_mem_add(&p->mem, &r);
	if (!ret)
		ret = uvirtio_drvq_create(&p->q, &p->dma, 0, num, features, 0);
	if (ret)
		return ret;
	p->buf = uvirtio_dma_alloc(&p->dma, 64 * 1024, 64);
	if (!p->buf)
		return -ENOMEM;
	uvirtio_drvq_ring(&p->q, &ring);
	uvirtio_req_init(&p->req, p->iov, 8);
	return uvirtio_devq_setup(&p->dq, &p->mem, num, ring.desc, ring.avail, ring.used, features);
}

static void pair_fini(struct pair *p)
{
	uvirtio_devq_reset(&p->dq);
	uvirtio_drvq_destroy(&p->q);
	uvirtio_dma_destroy(&p->dma);
	free(p->mem_base);
}

/* Buffer @k's shape: k % 3 == 0 one readable part; 1: a readable and a
 * writable part; 2: two readable parts and a writable one. Token: k + 1. */
static int add(struct pair *p, unsigned k)
{
	char *b = p->buf + (k % 64) * 1024;
	struct iovec out[2] = { { b, 16 + k % 7 }, { b + 256, 32 } };
	struct iovec in = { b + 512, 64 + k % 5 };
	void *token = (void *)(uintptr_t)(k + 1);

	switch (k % 3) {
	case 0:
		return uvirtio_drvq_add(&p->q, out, 1, NULL, 0, token);
	case 1:
		return uvirtio_drvq_add(&p->q, out, 1, &in, 1, token);
	default:
		return uvirtio_drvq_add(&p->q, out, 2, &in, 1, token);
	}
}

/* Whether @r is buffer @k as add() made it. */
static bool is_buffer(const struct uvirtio_req *r, const struct pair *p, unsigned k)
{
	const char *b = p->buf + (k % 64) * 1024;
	unsigned n_out = k % 3 == 2 ? 2 : 1, n_in = k % 3 ? 1 : 0;

	if (r->n_out != n_out || r->n_in != n_in || r->iov[0].iov_base != b ||
	    r->out_len != 16 + k % 7 + (n_out == 2 ? 32 : 0) || r->in_len != (n_in ? 64 + k % 5 : 0))
		return false;
	return !n_in || r->iov[n_out].iov_base == b + 512;
}

static struct uvirtio_req copy_of(const struct uvirtio_req *r)
{
	return *r;
}

/* ------------------------------------------------------------------ */

static void unpop_last(const struct layout *l)
{
	struct uvirtio_req b;
	struct pair p;
	uint16_t used_before;
	uint32_t len;
	void *token;

	CHECK_EQ(pair_init(&p, 8, l->features), 0);
	for (unsigned k = 0; k < 3; k++)
		CHECK_EQ(add(&p, k), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK(is_buffer(&p.req, &p, 0));
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK(is_buffer(&p.req, &p, 1));
	b = copy_of(&p.req);
	used_before = uvirtio_devq_used_index(&p.dq);
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, b.id), 0);
	CHECK_EQ(devq_test_inflight(&p.dq), 1);
	/* The same chain again, then the next. */
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK(is_buffer(&p.req, &p, 1));
	CHECK_EQ(p.req.id, b.id);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK(is_buffer(&p.req, &p, 2));
	/* Two back, the most recent first; popped again in order. */
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, p.req.id), 0);
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, b.id), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK(is_buffer(&p.req, &p, 1));
	b = copy_of(&p.req);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK(is_buffer(&p.req, &p, 2));
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 0);
	/* Nothing was published meanwhile. */
	CHECK_EQ(uvirtio_devq_used_index(&p.dq), used_before);
	CHECK_EQ(uvirtio_drvq_get(&p.q, &token, &len), 0);
	pair_fini(&p);
}

static void test_unpop_of_the_last_popped_gives_the_same_chain_again(void)
{
	for (unsigned i = 0; i < 4 && !test_failed; i++) {
		unpop_last(&layouts[i]);
		if (test_failed)
			printf("# layout: %s\n", layouts[i].name);
	}
}

/* Round and round a ring of 5 with chains of 1 to 3 descriptors, so that
 * chains cross the packed ring's end: each is popped, given back, popped
 * again, pushed, and comes back to the driver once. */
static void unpop_across_wrap(const struct layout *l)
{
	struct pair p;
	uint32_t len;
	void *token;

	CHECK_EQ(pair_init(&p, l->features & PACKED ? 5 : 4, l->features), 0);
	for (unsigned k = 0; k < 40; k++) {
		uint16_t id;

		CHECK_EQ(add(&p, k), 0);
		CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
		id = p.req.id;
		CHECK_EQ(uvirtio_devq_unpop(&p.dq, id), 0);
		CHECK_EQ(uvirtio_drvq_get(&p.q, &token, &len), 0);
		CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
		CHECK(is_buffer(&p.req, &p, k));
		CHECK_EQ(p.req.id, id);
		CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 0);
		CHECK_EQ(uvirtio_devq_push(&p.dq, id, 0), 0);
		CHECK_EQ(uvirtio_drvq_get(&p.q, &token, &len), 1);
		CHECK(token == (void *)(uintptr_t)(k + 1));
		CHECK_EQ(uvirtio_drvq_get(&p.q, &token, &len), 0);
	}
	pair_fini(&p);
}

static void test_unpop_then_pop_across_the_ring_end(void)
{
	for (unsigned i = 0; i < 4 && !test_failed; i++) {
		unpop_across_wrap(&layouts[i]);
		if (test_failed)
			printf("# layout: %s\n", layouts[i].name);
	}
}

static void unpop_not_last(const struct layout *l)
{
	uint16_t a, b;
	struct pair p;
	uint32_t len;
	void *token;

	CHECK_EQ(pair_init(&p, 8, l->features), 0);
	for (unsigned k = 0; k < 3; k++)
		CHECK_EQ(add(&p, k), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	a = p.req.id;
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	b = p.req.id;
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, a), -EINVAL);
	/* An id that was never popped, and one outside the queue. */
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, (uint16_t)(b + 1)), -EINVAL);
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, 999), -EINVAL);
	/* Refused means untouched: the next pop is the third buffer. */
	CHECK_EQ(devq_test_inflight(&p.dq), 2);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK(is_buffer(&p.req, &p, 2));
	/* A request pushed (IN_ORDER: held behind the first) is not in flight. */
	CHECK_EQ(uvirtio_devq_push(&p.dq, p.req.id, 0), 0);
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, p.req.id), -EINVAL);
	CHECK_EQ(uvirtio_devq_push(&p.dq, b, 0), 0);
	CHECK_EQ(uvirtio_devq_push(&p.dq, a, 0), 0);
	for (unsigned k = 0; k < 3; k++)
		CHECK_EQ(uvirtio_drvq_get(&p.q, &token, &len), 1);
	CHECK_EQ(uvirtio_drvq_get(&p.q, &token, &len), 0);
	pair_fini(&p);
}

static void test_unpop_of_another_than_the_last_is_einval_packed_and_in_order(void)
{
	for (unsigned i = 0; i < 4 && !test_failed; i++) {
		if (!layouts[i].checks_id)
			continue;
		unpop_not_last(&layouts[i]);
		if (test_failed)
			printf("# layout: %s\n", layouts[i].name);
	}
}

static void unpop_nothing(const struct layout *l)
{
	struct uvirtio_drvq_ring ring;
	struct pair p;
	uint16_t id;

	CHECK_EQ(pair_init(&p, 8, l->features), 0);
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, 0), -EINVAL);
	CHECK_EQ(add(&p, 0), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	id = p.req.id;
	CHECK_EQ(uvirtio_devq_push(&p.dq, id, 0), 0);
	/* Pushed: nothing in flight to give back. */
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, id), -EINVAL);
	/* Broken: -EIO. A split head out of range, or a packed descriptor
	 * outside memory, breaks the ring. */
	uvirtio_drvq_ring(&p.q, &ring);
	CHECK_EQ(add(&p, 3), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	id = p.req.id;
	if (l->features & PACKED) {
		struct vring_packed_desc *d = ring.desc_host;

		CHECK_EQ(add(&p, 6), 0);
		d[2].addr = 1ull << 60; /* the third buffer's only descriptor */
	} else {
		struct vring_avail *av = ring.avail_host;
		uint16_t idx = av->idx;

		av->ring[idx % 8] = 8;
		__atomic_store_n(&av->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	}
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), -EIO);
	CHECK_EQ(uvirtio_devq_unpop(&p.dq, id), -EIO);
	pair_fini(&p);
}

static void test_unpop_with_nothing_in_flight_is_einval_and_on_a_broken_queue_eio(void)
{
	for (unsigned i = 0; i < 4 && !test_failed; i++) {
		unpop_nothing(&layouts[i]);
		if (test_failed)
			printf("# layout: %s\n", layouts[i].name);
	}
}

TEST_MAIN(T(test_unpop_of_the_last_popped_gives_the_same_chain_again),
	  T(test_unpop_then_pop_across_the_ring_end),
	  T(test_unpop_of_another_than_the_last_is_einval_packed_and_in_order),
	  T(test_unpop_with_nothing_in_flight_is_einval_and_on_a_broken_queue_eio))
