// SPDX-License-Identifier: MIT
/*
 * Inflight tracking, device side (devq.h, docs/inflight.md): a drvq and a
 * devq over one memory, on one thread, with an inflight area beside. The
 * device "dies" at each crash point of the tracking (the test's hook
 * longjmps out of pop or push, at the Nth time it gets there), a new queue
 * is set up on the same ring and area as a restarted backend would (split:
 * at the used index in guest memory, QEMU's base; packed: at a stale base,
 * which is what QEMU 7.2 sends), and the run goes on: every request the
 * driver made comes back to it exactly once, whatever point and whatever N.
 * Both layouts, chains of 1 to 3 descriptors, batches pushed out of order.
 * Also: the area's layout (DPDK's), garbage and foreign areas refused with
 * -EBADMSG and the ring started afresh, sizes, IN_ORDER not tracked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>

#include "harness.h"
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "../support/ring_internal.h"

#define GA 0x100000000ull
#define MEM_SIZE (1u << 20)
#define NUM 8
#define REQUESTS 60

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)
/* A ring's first position: packed wrap counters start at 1. */
#define START(l) ((l)->features & PACKED ? 0x8000 : 0)

static const struct layout {
	const char *name;
	uint64_t features;
	unsigned indirect_max;
} layouts[] = {
	{ "split", 0, 0 },
	{ "split indirect", INDIRECT, 4 },
	{ "packed", PACKED, 0 },
	{ "packed indirect", PACKED | INDIRECT, 4 },
};

static const char *const point_names[DEVQ_TEST_CRASH_POINTS] = {
	"popped, not marked", "marked", "batch completing", "published", "marks cleared",
};

struct pair {
	char *mem_base;
	struct uvirtio_dma dma;
	struct uvirtio_mem mem;
	struct uvirtio_drvq q;
	struct uvirtio_drvq_ring ring;
	struct uvirtio_devq dq;
	uint64_t features;
	char *buf;
	void *area;
	size_t area_size;
	struct iovec iov[8];
	struct uvirtio_req req;
};

static int pair_init(struct pair *p, const struct layout *l)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = MEM_SIZE, .fd = -1 };
	int ret;

	memset(p, 0, sizeof(*p));
	p->mem_base = aligned_alloc(4096, MEM_SIZE);
	if (!p->mem_base)
		return -ENOMEM;
	memset(p->mem_base, 0, MEM_SIZE);
	r.host_addr = p->mem_base;
	p->features = l->features | UVIRTIO_BIT(VIRTIO_F_VERSION_1);
	uvirtio_dma_init(&p->dma, p->mem_base, GA, MEM_SIZE);
	uvirtio_mem_init(&p->mem);
	ret = uvirtio_mem_add(&p->mem, &r);
	if (!ret)
		ret = uvirtio_drvq_create(&p->q, &p->dma, 0, NUM, p->features, l->indirect_max);
	if (ret)
		return ret;
	p->buf = uvirtio_dma_alloc(&p->dma, 64 * 1024, 64);
	if (!p->buf)
		return -ENOMEM;
	uvirtio_drvq_ring(&p->q, &p->ring);
	uvirtio_req_init(&p->req, p->iov, 8);
	p->area_size = uvirtio_devq_inflight_size(NUM, l->features & PACKED);
	p->area = calloc(1, p->area_size);
	if (!p->area)
		return -ENOMEM;
	return 0;
}

static void pair_fini(struct pair *p)
{
	uvirtio_devq_reset(&p->dq);
	uvirtio_drvq_destroy(&p->q);
	uvirtio_dma_destroy(&p->dma);
	free(p->area);
	free(p->mem_base);
}

/* The device side as a backend process starts it: set up at @next_avail /
 * @used, the area attached, resumed. Return: resume's. */
static int device_start(struct pair *p, uint16_t next_avail, uint16_t used)
{
	int ret;

	uvirtio_devq_reset(&p->dq);
	ret = uvirtio_devq_setup(&p->dq, &p->mem, NUM, p->ring.desc, p->ring.avail, p->ring.used,
				 p->features);
	if (!ret)
		ret = uvirtio_devq_set_indices(&p->dq, next_avail, used);
	if (ret)
		return ret;
	uvirtio_devq_set_inflight(&p->dq, p->area, p->area_size);
	return uvirtio_devq_resume_inflight(&p->dq);
}

/* What QEMU 7.2 sends after the backend died: split, the used index in
 * guest memory (virtio_queue_restore_last_avail_idx); packed, nothing
 * better than the base it had at the start. */
static int device_restart(struct pair *p)
{
	if (p->features & PACKED)
		return device_start(p, 0x8000, 0x8000);
	uint16_t used = ring_load16(&((struct vring_used *)p->ring.used_host)->idx);

	return device_start(p, used, used);
}

/* Buffer @k: k % 3 == 0 one readable part; 1: a readable and a writable
 * part; 2: two readable parts and a writable one. Token: k + 1. */
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

/* The crash: at the Nth time the tracking reaches the point. */
static jmp_buf crashed;
static int crash_point = -1;
static unsigned crash_nth, crash_seen;

static void crash_hook(const struct uvirtio_devq *q, int at)
{
	(void)q;
	if (at == crash_point && ++crash_seen == crash_nth)
		longjmp(crashed, 1);
}

/* Runs REQUESTS requests through the pair, the device dying at the
 * @nth time it reaches @point (-1: never); every request must come back
 * once. *@died: whether the device died. */
static void run(const struct layout *l, int point, unsigned nth, unsigned *deaths)
{
	/* volatile: kept across the longjmp. */
	volatile unsigned added = 0, done = 0, rounds = 0;
	volatile bool died = false;
	static unsigned seen[REQUESTS];
	struct pair p;

	memset(seen, 0, sizeof(seen));
	CHECK_EQ(pair_init(&p, l), 0);
	CHECK_EQ(device_start(&p, START(l), START(l)), 0);
	crash_point = point;
	crash_nth = nth;
	crash_seen = 0;
	devq_test_set_crash_hook(crash_hook);
	if (setjmp(crashed)) {
		int ret;

		/* The process died there: a new one starts from the area. */
		died = true;
		devq_test_set_crash_hook(NULL);
		ret = device_restart(&p);
		CHECK(ret >= 0);
		if (ret < 0)
			printf("# restart: %d\n", ret);
	}
	while (done < REQUESTS && !test_failed && rounds++ < 10 * REQUESTS) {
		struct uvirtio_used used[3];
		unsigned n = 0;
		uint32_t len;
		void *token;

		while (added < REQUESTS && uvirtio_drvq_num_free(&p.q) >= 3 && added - done < 5) {
			CHECK_EQ(add(&p, added), 0);
			added++;
		}
		/* Up to three popped, pushed in one batch, the last first;
		 * the round number decides how many. */
		while (n < 1 + rounds % 3 && uvirtio_devq_pop(&p.dq, &p.req) == 1) {
			if (p.req.n_in)
				memset(p.req.iov[p.req.n_out].iov_base, 0x5a, 1);
			used[n].id = p.req.id;
			used[n].len = p.req.n_in ? 1 : 0;
			n++;
		}
		CHECK(!uvirtio_devq_is_broken(&p.dq));
		for (unsigned i = 0; i < n / 2; i++) {
			struct uvirtio_used t = used[i];

			used[i] = used[n - 1 - i];
			used[n - 1 - i] = t;
		}
		if (n)
			CHECK_EQ(uvirtio_devq_push_batch(&p.dq, used, n), 0);
		while (uvirtio_drvq_get(&p.q, &token, &len) == 1) {
			unsigned k = (unsigned)(uintptr_t)token - 1;

			CHECK(k < REQUESTS);
			if (k >= REQUESTS)
				break;
			seen[k]++;
			done++;
		}
		CHECK(!uvirtio_drvq_is_broken(&p.q));
	}
	devq_test_set_crash_hook(NULL);
	CHECK_EQ(done, REQUESTS);
	for (unsigned k = 0; k < REQUESTS; k++)
		if (seen[k] != 1) {
			CHECK_EQ(seen[k], 1);
			printf("# request %u came back %u times\n", k, seen[k]);
			break;
		}
	CHECK_EQ(devq_test_inflight(&p.dq), 0);
	pair_fini(&p);
	if (deaths)
		*deaths += died;
}

static void test_without_a_crash_every_request_comes_back_once(void)
{
	for (unsigned i = 0; i < 4 && !test_failed; i++) {
		run(&layouts[i], -1, 0, NULL);
		if (test_failed)
			printf("# layout %s\n", layouts[i].name);
	}
}

static void test_a_device_dead_at_any_crash_point_loses_and_repeats_nothing(void)
{
	for (unsigned i = 0; i < 4 && !test_failed; i++) {
		for (int point = 0; point < DEVQ_TEST_CRASH_POINTS && !test_failed; point++) {
			unsigned deaths = 0;

			for (unsigned nth = 1; nth <= 25 && !test_failed; nth++) {
				run(&layouts[i], point, nth, &deaths);
				if (test_failed)
					printf("# layout %s, dead %s, the %uth time\n", layouts[i].name,
					       point_names[point], nth);
			}
			/* The point was reached: the deaths were real. */
			CHECK_EQ(deaths, 25);
		}
	}
}

/* Split: after two pops, the area says so in DPDK's layout. */
static void test_the_split_area_has_dpdks_layout(void)
{
	struct pair p;
	uint8_t *a;
	uint16_t h0, h1;

	CHECK_EQ(pair_init(&p, &layouts[0]), 0);
	CHECK_EQ(device_start(&p, 0, 0), 0);
	CHECK_EQ(p.area_size, 192u); /* 16 + 8 * 16, 64-aligned */
	CHECK_EQ(add(&p, 0), 0);
	CHECK_EQ(add(&p, 1), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	h0 = p.req.id;
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	h1 = p.req.id;
	a = p.area;
	CHECK_EQ(*(uint16_t *)(a + 8), 1u);    /* version */
	CHECK_EQ(*(uint16_t *)(a + 10), NUM); /* desc_num */
	CHECK_EQ(*(uint16_t *)(a + 14), 0u);   /* used_idx */
	CHECK_EQ(a[16 + 16 * h0], 1u);         /* inflight */
	CHECK_EQ(a[16 + 16 * h1], 1u);
	CHECK(*(uint64_t *)(a + 16 + 16 * h0 + 8) < *(uint64_t *)(a + 16 + 16 * h1 + 8));
	CHECK_EQ(uvirtio_devq_push(&p.dq, h1, 0), 0);
	CHECK_EQ(a[16 + 16 * h1], 0u);
	CHECK_EQ(*(uint16_t *)(a + 12), h1);   /* last_batch_head */
	CHECK_EQ(*(uint16_t *)(a + 14), 1u);
	pair_fini(&p);
}

/* Packed: a chain of two descriptors takes two entries, the first with
 * the chain's length and its last entry. */
static void test_the_packed_area_has_dpdks_layout(void)
{
	struct pair p;
	uint8_t *a, *e;
	unsigned first = NUM;

	CHECK_EQ(pair_init(&p, &layouts[2]), 0);
	CHECK_EQ(device_start(&p, 0x8000, 0x8000), 0);
	CHECK_EQ(p.area_size, 320u); /* 32 + 8 * 32, 64-aligned */
	CHECK_EQ(add(&p, 1), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	a = p.area;
	CHECK_EQ(*(uint16_t *)(a + 8), 1u);    /* version */
	CHECK_EQ(*(uint16_t *)(a + 10), NUM); /* desc_num */
	for (unsigned i = 0; i < NUM; i++)
		if (a[32 + 32 * i] == 1)
			first = i;
	CHECK(first < NUM);
	if (first >= NUM) {
		pair_fini(&p);
		return;
	}
	e = a + 32 + 32 * first;
	CHECK_EQ(*(uint16_t *)(e + 6), 2u);    /* num */
	CHECK_EQ(*(uint64_t *)(e + 24), GA + (uint64_t)(p.buf - p.mem_base) + 1024); /* addr */
	CHECK_EQ(*(uint32_t *)(e + 20), 17u);  /* len: 16 + 1 % 7 */
	CHECK(*(uint16_t *)(e + 18) & VRING_DESC_F_NEXT);
	e = a + 32 + 32 * *(uint16_t *)(e + 2); /* next */
	CHECK_EQ(*(uint32_t *)(e + 20), 65u);  /* the writable part */
	CHECK(*(uint16_t *)(e + 18) & VRING_DESC_F_WRITE);
	CHECK_EQ(uvirtio_devq_push(&p.dq, p.req.id, 0), 0);
	CHECK_EQ(a[32 + 32 * first], 0u);
	CHECK_EQ(*(uint16_t *)(a + 16), 0x8002u); /* used position 2, wrap 1 */
	pair_fini(&p);
}

/* An area a process left with requests in it, then spoiled: refused, the
 * ring started where it was set, the area fresh again. */
static void spoiled(const struct layout *l, void (*spoil)(struct pair *p), const char *what)
{
	struct pair p;
	void *token;
	uint32_t len;

	CHECK_EQ(pair_init(&p, l), 0);
	CHECK_EQ(device_start(&p, START(l), START(l)), 0);
	CHECK_EQ(add(&p, 0), 0);
	CHECK_EQ(add(&p, 1), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	spoil(&p);
	CHECK_EQ(device_restart(&p), -EBADMSG);
	/* Fresh: started at the base given, nothing to pop again. */
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK_EQ(uvirtio_devq_push(&p.dq, p.req.id, 0), 0);
	CHECK_EQ(uvirtio_drvq_get(&p.q, &token, &len), 1);
	CHECK(token == (void *)(uintptr_t)1);
	CHECK_EQ(*(uint16_t *)((uint8_t *)p.area + 8), 1u);
	if (test_failed)
		printf("# %s, %s\n", l->name, what);
	pair_fini(&p);
}

static void bad_version(struct pair *p)
{
	*(uint16_t *)((uint8_t *)p->area + 8) = 7;
}

static void bad_state(struct pair *p)
{
	size_t hdr = p->features & PACKED ? 32 : 16;

	((uint8_t *)p->area)[hdr + 16 * (p->features & PACKED ? 2 : 1) * 3] = 9;
}

static void bad_size(struct pair *p)
{
	*(uint16_t *)((uint8_t *)p->area + 10) = NUM * 2;
}

static void other_layout(struct pair *p)
{
	*(uint64_t *)p->area ^= PACKED;
}

static void random_bytes(struct pair *p)
{
	uint8_t *a = p->area;
	uint32_t x = 12345;

	for (size_t i = 12; i < p->area_size; i++) {
		x = x * 1103515245u + 12345u;
		a[i] = (uint8_t)(x >> 16);
	}
}

static void test_a_spoiled_area_is_refused_and_the_ring_starts_afresh(void)
{
	static void (*const spoils[])(struct pair *) = { bad_version, bad_state, bad_size,
							 other_layout, random_bytes };
	static const char *const names[] = { "version", "state 9", "desc_num", "layout", "random" };

	for (unsigned i = 0; i < 4 && !test_failed; i++)
		for (unsigned s = 0; s < 5 && !test_failed; s++)
			spoiled(&layouts[i], spoils[s], names[s]);
}

/* Packed: entries that chain into a loop, or past the ring. */
static void test_a_packed_area_with_a_chain_looping_or_out_of_range_is_refused(void)
{
	for (unsigned bad = 0; bad < 2 && !test_failed; bad++) {
		struct pair p;
		uint8_t *a;

		CHECK_EQ(pair_init(&p, &layouts[2]), 0);
		CHECK_EQ(device_start(&p, 0x8000, 0x8000), 0);
		CHECK_EQ(add(&p, 2), 0); /* three descriptors */
		CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
		a = p.area;
		for (unsigned i = 0; i < NUM; i++) {
			uint8_t *e = a + 32 + 32 * i;

			if (e[0] == 1)
				*(uint16_t *)(e + 2) = bad ? 1000 : (uint16_t)i; /* next */
		}
		CHECK_EQ(device_restart(&p), -EBADMSG);
		pair_fini(&p);
	}
}

static void test_sizes_and_refusals(void)
{
	struct pair p;
	struct layout in_order = { "split in-order", UVIRTIO_BIT(VIRTIO_F_IN_ORDER), 0 };

	CHECK_EQ(uvirtio_devq_inflight_size(0, false), 0u);
	CHECK_EQ(uvirtio_devq_inflight_size(32769, true), 0u);
	CHECK_EQ(uvirtio_devq_inflight_size(128, false), 2112u); /* 16 + 128 * 16, 64-aligned */
	CHECK_EQ(uvirtio_devq_inflight_size(256, true), 32u + 256 * 32 + 32);
	/* No area: nothing tracked, nothing to resume. */
	CHECK_EQ(pair_init(&p, &layouts[0]), 0);
	CHECK_EQ(uvirtio_devq_resume_inflight(&p.dq), 0);
	/* A queue set up, but too small an area, or one large enough but
	 * misaligned (its atomic counters could not be used). */
	CHECK_EQ(device_start(&p, 0, 0), 0);
	uvirtio_devq_set_inflight(&p.dq, p.area, p.area_size - 1);
	CHECK_EQ(uvirtio_devq_resume_inflight(&p.dq), -EINVAL);
	{
		char *big = calloc(1, p.area_size + 64);

		CHECK(big != NULL);
		uvirtio_devq_set_inflight(&p.dq, big + 4, p.area_size);
		CHECK_EQ(uvirtio_devq_resume_inflight(&p.dq), -EINVAL);
		uvirtio_devq_set_inflight(&p.dq, big + 64, p.area_size);
		CHECK_EQ(uvirtio_devq_resume_inflight(&p.dq), 0);
		uvirtio_devq_set_inflight(&p.dq, NULL, 0);
		free(big);
	}
	/* A queue not set up. */
	uvirtio_devq_reset(&p.dq);
	uvirtio_devq_set_inflight(&p.dq, p.area, p.area_size);
	CHECK_EQ(uvirtio_devq_resume_inflight(&p.dq), -EINVAL);
	pair_fini(&p);
	/* IN_ORDER: not tracked, the queue works on. */
	CHECK_EQ(pair_init(&p, &in_order), 0);
	CHECK_EQ(device_start(&p, 0, 0), -EOPNOTSUPP);
	CHECK_EQ(add(&p, 0), 0);
	CHECK_EQ(uvirtio_devq_pop(&p.dq, &p.req), 1);
	CHECK_EQ(((uint8_t *)p.area)[8], 0u);
	pair_fini(&p);
}

TEST_MAIN(T(test_without_a_crash_every_request_comes_back_once),
	  T(test_a_device_dead_at_any_crash_point_loses_and_repeats_nothing),
	  T(test_the_split_area_has_dpdks_layout),
	  T(test_the_packed_area_has_dpdks_layout),
	  T(test_a_spoiled_area_is_refused_and_the_ring_starts_afresh),
	  T(test_a_packed_area_with_a_chain_looping_or_out_of_range_is_refused),
	  T(test_sizes_and_refusals))
