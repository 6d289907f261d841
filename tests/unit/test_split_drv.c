// SPDX-License-Identifier: MIT
/* Split ring, driver side: the Linux virtqueue API and what it refuses from a device. */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "drvq_fixture.h"
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "../support/ring_internal.h"

#define GA 0x200000ull
#define MEM_SIZE (8u << 20)

static char *shared;

struct fix {
	struct uvirtio_dma dma;
	struct uvirtio_drvq q;
	/* The ring as the device sees it (uvirtio_drvq_ring()). */
	struct uvirtio_drvq_ring ring;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	/* The device's view, for round trips. */
	struct uvirtio_mem mem;
	struct uvirtio_devq dq;
	struct iovec iov[64];
	struct uvirtio_req req;
	char *buf;
	unsigned notifies;
};

static int count_notify(void *opaque, unsigned index)
{
	struct fix *f = opaque;

	(void)index;
	f->notifies++;
	return 0;
}

static int fix_init(struct fix *f, unsigned num, uint64_t features, unsigned indirect_max)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = MEM_SIZE, .fd = -1 };
	int ret;

	if (!shared)
		shared = aligned_alloc(4096, MEM_SIZE);
	r.host_addr = shared;
	memset(shared, 0, MEM_SIZE);
	memset(f, 0, sizeof(*f));
	uvirtio_dma_init(&f->dma, shared, GA, MEM_SIZE);
	ret = uvirtio_drvq_create(&f->q, &f->dma, 0, num, features, indirect_max);
	if (ret)
		return ret;
	uvirtio_drvq_set_notify(&f->q, count_notify, f);
	uvirtio_drvq_ring(&f->q, &f->ring);
	f->desc = f->ring.desc_host;
	f->avail = f->ring.avail_host;
	f->used = f->ring.used_host;
	uvirtio_mem_init(&f->mem);
	uvirtio_mem_add(&f->mem, &r);
	uvirtio_req_init(&f->req, f->iov, 64);
	f->buf = uvirtio_dma_alloc(&f->dma, 65536, 64);
	return uvirtio_devq_setup(&f->dq, &f->mem, num, f->ring.desc, f->ring.avail,
				  f->ring.used, features);
}

static void fix_fini(struct fix *f)
{
	/* An IN_ORDER device queue holds per-request state until reset. */
	uvirtio_devq_reset(&f->dq);
	uvirtio_drvq_destroy(&f->q);
	uvirtio_dma_destroy(&f->dma);
}

static struct iovec part(struct fix *f, size_t off, size_t len)
{
	return (struct iovec){ .iov_base = f->buf + off, .iov_len = len };
}

/* A queue of 4 with INDIRECT_DESC and tables of @indirect_max descriptors,
 * and three 8-byte parts of the buffer side by side. Return: fix_init()'s. */
static int fix_init_indirect_three_parts(struct fix *f, unsigned indirect_max, struct iovec parts[3])
{
	int ret = fix_init(f, 4, UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC), indirect_max);

	if (ret)
		return ret;
	for (unsigned i = 0; i < 3; i++)
		parts[i] = part(f, 8 * i, 8);
	return 0;
}

static void test_drvq_add_and_get_round_trip_token_and_length(void)
{
	struct fix f;
	struct iovec out, in;
	void *token = NULL;
	uint32_t len = 0;
	int tok;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	out = part(&f, 0, 16);
	in = part(&f, 64, 100);
	CHECK_EQ(uvirtio_drvq_add(&f.q, &out, 1, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 6);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 0);

	CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
	CHECK_EQ(f.req.out_len, 16);
	CHECK_EQ(f.req.in_len, 100);
	CHECK_EQ(uvirtio_devq_push(&f.dq, f.req.id, 42), 0);

	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK(token == &tok);
	CHECK_EQ(len, 42);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 8);
	fix_fini(&f);
}

static void test_drvq_add_returns_enospc_when_ring_full(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init(&f, 4, 0, 0), 0);
	in = part(&f, 0, 8);
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), -ENOSPC);
	fix_fini(&f);
}

static void test_drvq_add_uses_indirect_table_for_several_parts(void)
{
	struct fix f;
	struct iovec parts[3];
	int tok;

	CHECK_EQ(fix_init_indirect_three_parts(&f, 8, parts), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, parts + 1, 2, &tok), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 3);
	CHECK(f.desc[0].flags & VRING_DESC_F_INDIRECT);
	CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
	CHECK_EQ(f.req.n_out, 1);
	CHECK_EQ(f.req.n_in, 2);
	fix_fini(&f);
}

static void test_drvq_add_falls_back_to_direct_when_indirect_table_cannot_be_had(void)
{
	struct fix f;
	struct iovec parts[3];
	int tok;

	/* Tables of two descriptors: a three-part buffer cannot have one. */
	CHECK_EQ(fix_init_indirect_three_parts(&f, 2, parts), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 3, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 1);
	CHECK(!(f.desc[0].flags & VRING_DESC_F_INDIRECT));
	CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
	CHECK_EQ(f.req.n_out, 3);
	fix_fini(&f);
}

static void test_drvq_add_returns_enomem_when_indirect_fails_and_direct_does_not_fit(void)
{
	struct fix f;
	struct iovec parts[3];
	int tok;

	CHECK_EQ(fix_init_indirect_three_parts(&f, 2, parts), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 3, NULL, 0, &tok), -ENOMEM);
	/* Two parts still fit a table. */
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 2, NULL, 0, &tok), 0);
	fix_fini(&f);
}

/* spec 2.7.5.3.1: no chain longer than the queue, an indirect table's
 * descriptors included; the device refuses one (split_dev). */
static void test_drvq_indirect_table_never_longer_than_queue(void)
{
	struct fix f;
	struct iovec parts[5];
	int tok;

	CHECK_EQ(fix_init(&f, 4, UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC), 64), 0);
	CHECK_EQ(drvq_test_indirect_max(&f.q), 4);
	for (unsigned i = 0; i < 5; i++)
		parts[i] = part(&f, 8 * i, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 5, NULL, 0, &tok), -ENOMEM);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 4, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_kick(&f.q), 0);
	CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
	CHECK_EQ(f.req.n_out, 4);
	fix_fini(&f);
}

static void test_drvq_add_refuses_memory_the_device_cannot_reach(void)
{
	struct fix f;
	char outside[16];
	struct iovec in = { .iov_base = outside, .iov_len = sizeof(outside) };
	int tok;

	CHECK_EQ(fix_init(&f, 4, 0, 0), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), -EFAULT);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 4);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 0, &tok), -EINVAL);
	in = part(&f, 0, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, NULL), -EINVAL);
	fix_fini(&f);
}

static void test_drvq_sizes_are_powers_of_two_up_to_32768(void)
{
	struct fix f;

	CHECK_EQ(fix_init(&f, 3, 0, 0), -EINVAL);
	CHECK_EQ(fix_init(&f, 65536, 0, 0), -EINVAL);
	CHECK_EQ(fix_init(&f, 32768, 0, 0), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 32768);
	fix_fini(&f);
}

static void test_drvq_kick_prepare_honours_no_notify(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	in = part(&f, 0, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	uvirtio_devq_disable_notify(&f.dq);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(!uvirtio_drvq_kick_prepare(&f.q));
	CHECK_EQ(uvirtio_drvq_kick(&f.q), 0);
	CHECK_EQ(f.notifies, 0);
	uvirtio_devq_enable_notify(&f.dq);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_kick(&f.q), 0);
	CHECK_EQ(f.notifies, 1);
	fix_fini(&f);
}

static void test_drvq_kick_prepare_honours_avail_event(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init(&f, 8, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), 0), 0);
	in = part(&f, 0, 8);
	/* avail_event 0: the device wants a kick when entry 0 is added. */
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	/* Not moved: the device is still busy with what it was told of. */
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(!uvirtio_drvq_kick_prepare(&f.q));
	/* The device asks for a kick at entry 3. */
	poke16(&f.used->ring[8], 3);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	fix_fini(&f);
}

static void test_drvq_kicks_after_65536_adds_without_kick_prepare(void)
{
	struct fix f;
	struct iovec in;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 8, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), 0), 0);
	in = part(&f, 0, 8);
	/* A polling device serves everything; the driver never asked whether
	 * to kick. After 65536 adds old == new and the window says nothing. */
	for (unsigned i = 0; i < 65536; i++) {
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
		CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
		CHECK_EQ(uvirtio_devq_push(&f.dq, f.req.id, 0), 0);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	}
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	fix_fini(&f);
}

static void test_drvq_disable_cb_sets_no_interrupt(void)
{
	struct fix f;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	uvirtio_drvq_disable_cb(&f.q);
	CHECK_EQ(f.avail->flags, VRING_AVAIL_F_NO_INTERRUPT);
	CHECK(uvirtio_drvq_enable_cb(&f.q));
	CHECK_EQ(f.avail->flags, 0);
	fix_fini(&f);
}

static void test_drvq_enable_cb_returns_false_when_used_buffers_pending(void)
{
	struct fix f;
	struct iovec in;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 8, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), 0), 0);
	in = part(&f, 0, 8);
	uvirtio_drvq_disable_cb(&f.q);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
	CHECK_EQ(uvirtio_devq_push(&f.dq, f.req.id, 8), 0);
	/* The device pushed while callbacks were off and will not notify: the
	 * driver must learn from enable_cb that it has to collect first. */
	CHECK(!uvirtio_drvq_enable_cb(&f.q));
	CHECK_EQ(peek16(&f.avail->ring[8]), 0);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK(uvirtio_drvq_enable_cb(&f.q));
	CHECK_EQ(peek16(&f.avail->ring[8]), 1);
	fix_fini(&f);
}

static void test_drvq_enable_cb_delayed_asks_at_three_quarters(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init(&f, 8, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), 0), 0);
	in = part(&f, 0, 8);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_enable_cb_delayed(&f.q));
	CHECK_EQ(peek16(&f.avail->ring[8]), 6);
	for (unsigned i = 0; i < 7; i++) {
		CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
		CHECK_EQ(uvirtio_devq_push(&f.dq, f.req.id, 0), 0);
	}
	/* Seven of eight used already: more than 3/4, collect first. */
	CHECK(!uvirtio_drvq_enable_cb_delayed(&f.q));
	fix_fini(&f);
}

static void test_drvq_detach_unused_returns_every_token(void)
{
	struct fix f;
	struct iovec parts[2];
	int toks[3];
	unsigned seen = 0;
	void *token;

	CHECK_EQ(fix_init(&f, 8, UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC), 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, NULL, 0, &toks[0]), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 2, NULL, 0, &toks[1]), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, parts + 1, 1, &toks[2]), 0);
	while ((token = uvirtio_drvq_detach_unused(&f.q))) {
		for (unsigned i = 0; i < 3; i++)
			if (token == &toks[i])
				seen |= 1u << i;
	}
	CHECK_EQ(seen, 7);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 8);
	CHECK_EQ(f.avail->idx, 0);
	fix_fini(&f);
}

static void run_wrap(unsigned num, uint64_t features)
{
	struct fix f;
	struct iovec parts[2];
	unsigned done = 0;

	CHECK_EQ(fix_init(&f, num, features, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 8);
	/* More than 65536 buffers: both 16-bit indices wrap at least once. */
	for (unsigned i = 0; i < 70000; i++) {
		void *token;
		uint32_t len;

		CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, parts + 1, 1, (void *)(uintptr_t)(i + 1)), 0);
		CHECK_EQ(uvirtio_devq_pop(&f.dq, &f.req), 1);
		CHECK_EQ(uvirtio_devq_push(&f.dq, f.req.id, 8), 0);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == (void *)(uintptr_t)(i + 1));
		done++;
	}
	CHECK_EQ(done, 70000);
	CHECK_EQ(f.avail->idx, 70000 % 65536);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), num);
	fix_fini(&f);
}

static void test_drvq_indices_wrap_after_65536_buffers(void)
{
	run_wrap(256, 0);
}

static void test_drvq_indices_wrap_with_event_idx_and_indirect(void)
{
	run_wrap(8, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC));
}

/* A hostile device writes the used ring by hand. */
static void hostile_used(struct fix *f, uint32_t id, uint32_t len)
{
	f->used->ring[f->used->idx % uvirtio_drvq_size(&f->q)].id = id;
	f->used->ring[f->used->idx % uvirtio_drvq_size(&f->q)].len = len;
	f->used->idx++;
}

#define CHECK_DRV_BROKEN(f, reason)                                           \
	do {                                                                  \
		void *token_;                                                 \
		uint32_t len_;                                                \
		struct iovec in_ = part(&(f), 0, 8);                          \
		CHECK_EQ(uvirtio_drvq_get(&(f).q, &token_, &len_), -EIO);     \
		CHECK(uvirtio_drvq_is_broken(&(f).q));                        \
		CHECK_STR(uvirtio_drvq_broken_reason(&(f).q), reason);       \
		CHECK_EQ(uvirtio_drvq_add(&(f).q, NULL, 0, &in_, 1, &token_), -EIO); \
	} while (0)

/* A queue of 8 with one writable buffer of 8 bytes in flight. */
static int fix_one_in_flight(struct fix *f, int *tok)
{
	struct iovec in;
	int ret = fix_init(f, 8, 0, 0);

	in = part(f, 0, 8);
	return ret ? ret : uvirtio_drvq_add(&f->q, NULL, 0, &in, 1, tok);
}

static void test_drvq_breaks_on_used_id_out_of_range(void)
{
	struct fix f;
	int tok;

	CHECK_EQ(fix_one_in_flight(&f, &tok), 0);
	hostile_used(&f, 8, 0);
	CHECK_DRV_BROKEN(f, "used id out of range");
	fix_fini(&f);
}

static void test_drvq_breaks_on_used_id_not_in_flight(void)
{
	struct fix f;
	int tok;

	CHECK_EQ(fix_one_in_flight(&f, &tok), 0);
	hostile_used(&f, 5, 0);
	CHECK_DRV_BROKEN(f, "used id not in flight");
	fix_fini(&f);
}

static void test_drvq_breaks_on_used_id_returned_twice(void)
{
	struct fix f;
	struct iovec in;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	in = part(&f, 0, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	hostile_used(&f, 0, 0);
	hostile_used(&f, 0, 0);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK_DRV_BROKEN(f, "used id not in flight");
	fix_fini(&f);
}

static void test_drvq_breaks_on_used_length_larger_than_buffer(void)
{
	struct fix f;
	struct iovec out, in;
	int tok;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	out = part(&f, 0, 100);
	in = part(&f, 100, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, &out, 1, &in, 1, &tok), 0);
	/* Only the writable part counts: 9 > 8 even though out had 100. */
	hostile_used(&f, 0, 9);
	CHECK_DRV_BROKEN(f, "used length larger than the buffer");
	fix_fini(&f);
}

static void test_drvq_breaks_on_used_index_ahead_of_avail(void)
{
	struct fix f;
	int tok;

	CHECK_EQ(fix_one_in_flight(&f, &tok), 0);
	f.used->idx = 2;
	CHECK_DRV_BROKEN(f, "used index ahead of the buffers made available");
	fix_fini(&f);
}

/* NOTIFICATION_DATA, split: queue index in bits 0-15, the avail index (the
 * next free avail slot) in 16-31, across the 16-bit wrap. */
static void test_drvq_notification_data_carries_avail_index_across_wrap(void)
{
	struct fix f;
	struct iovec in;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 2, UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA), 0), 0);
	CHECK((uvirtio_drvq_features(&f.q) & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)));
	drvq_test_set_index(&f.q, 9);
	in = part(&f, 0, 8);
	CHECK_EQ(uvirtio_drvq_notification_data(&f.q), 9);
	for (unsigned i = 1; i <= 65538; i++) {
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
		CHECK_EQ(uvirtio_drvq_notification_data(&f.q), ((uint32_t)(i & 0xffff) << 16) | 9);
		hostile_used(&f, f.avail->ring[(i - 1) % 2], 0);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	}
	CHECK_EQ(uvirtio_drvq_avail_index(&f.q), 2);
	fix_fini(&f);
}

#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)

/* spec, split "In-order": descriptors in ring order from 0, wrapping; next
 * is x + 1, and 0 for the table's last descriptor. */
static void test_drvq_in_order_uses_descriptors_in_ring_order(void)
{
	struct fix f;
	struct iovec parts[3];
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 4, IN_ORDER, 0), 0);
	for (unsigned i = 0; i < 3; i++)
		parts[i] = part(&f, 8 * i, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 3, NULL, 0, &tok), 0);
	CHECK_EQ(f.avail->ring[0], 0);
	CHECK_EQ(f.desc[0].next, 1);
	CHECK_EQ(f.desc[1].next, 2);
	CHECK(!(f.desc[2].flags & VRING_DESC_F_NEXT));
	hostile_used(&f, 0, 0);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	/* The next chain starts at 3 and wraps to 0, not at the freed head. */
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 2, NULL, 0, &tok), 0);
	CHECK_EQ(f.avail->ring[1], 3);
	CHECK(f.desc[3].flags & VRING_DESC_F_NEXT);
	CHECK_EQ(f.desc[3].next, 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, NULL, 0, &tok), 0);
	CHECK_EQ(f.avail->ring[2], 1);
	fix_fini(&f);
}

/* Writes one used entry for a batch of @bufs buffers, as an IN_ORDER device
 * may: at the batch's first slot, used->idx advanced by @bufs. */
static void in_order_batch(struct fix *f, uint32_t id, uint32_t len, uint16_t bufs)
{
	f->used->ring[f->used->idx % uvirtio_drvq_size(&f->q)].id = id;
	f->used->ring[f->used->idx % uvirtio_drvq_size(&f->q)].len = len;
	f->used->idx = (uint16_t)(f->used->idx + bufs);
}

/* spec, split "In-order": one used entry naming the batch's last buffer
 * completes every buffer up to it, in order; the others report their
 * writable length. Round a ring of 8 several times. */
static void test_drvq_in_order_batch_completes_every_buffer_up_to_id(void)
{
	struct fix f;
	struct iovec parts[2];
	int toks[3];

	CHECK_EQ(fix_init(&f, 8, IN_ORDER, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 16);
	for (unsigned round = 0; round < 6; round++) {
		void *token;
		uint32_t len;
		uint16_t last;

		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 1, &toks[0]), 0);
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 2, &toks[1]), 0);
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts + 1, 1, &toks[2]), 0);
		last = f.avail->ring[(uvirtio_drvq_avail_index(&f.q) - 1) % 8];
		in_order_batch(&f, last, 5, 3);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == &toks[0]);
		CHECK_EQ(len, 8);
		CHECK(!uvirtio_drvq_enable_cb(&f.q)); /* the rest is pending */
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == &toks[1]);
		CHECK_EQ(len, 24);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == &toks[2]);
		CHECK_EQ(len, 5);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 0);
		CHECK_EQ(uvirtio_drvq_num_free(&f.q), 8);
	}
	fix_fini(&f);
}

static void test_drvq_in_order_breaks_on_used_batch_beyond_the_used_index(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init(&f, 8, IN_ORDER, 0), 0);
	in = part(&f, 0, 8);
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	/* Names the third buffer but publishes two. */
	in_order_batch(&f, 2, 0, 2);
	CHECK_DRV_BROKEN(f, "used batch beyond the used index");
	fix_fini(&f);
}

/* An id inside a chain is no buffer's head: not in flight. */
static void test_drvq_in_order_breaks_on_used_id_not_in_flight(void)
{
	struct fix f;
	struct iovec parts[2];
	int tok;

	CHECK_EQ(fix_init(&f, 8, IN_ORDER, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 2, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 1, &tok), 0);
	in_order_batch(&f, 1, 0, 2);
	CHECK_DRV_BROKEN(f, "used id not in flight");
	fix_fini(&f);
}

static void test_drvq_in_order_detach_unused_returns_every_token(void)
{
	struct fix f;
	struct iovec in;
	int toks[3];

	CHECK_EQ(fix_init(&f, 4, IN_ORDER, 0), 0);
	in = part(&f, 0, 8);
	/* Every token back, in the order added. */
	CHECK_EQ(drvq_add_then_detach_all(&f.q, &in, toks, 3), 3);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 4);
	CHECK_EQ(uvirtio_drvq_avail_index(&f.q), uvirtio_drvq_used_index(&f.q));
	fix_fini(&f);
}

TEST_MAIN(T(test_drvq_add_and_get_round_trip_token_and_length),
	  T(test_drvq_add_returns_enospc_when_ring_full),
	  T(test_drvq_add_uses_indirect_table_for_several_parts),
	  T(test_drvq_add_falls_back_to_direct_when_indirect_table_cannot_be_had),
	  T(test_drvq_add_returns_enomem_when_indirect_fails_and_direct_does_not_fit),
	  T(test_drvq_indirect_table_never_longer_than_queue),
	  T(test_drvq_add_refuses_memory_the_device_cannot_reach),
	  T(test_drvq_sizes_are_powers_of_two_up_to_32768),
	  T(test_drvq_kick_prepare_honours_no_notify),
	  T(test_drvq_kick_prepare_honours_avail_event),
	  T(test_drvq_kicks_after_65536_adds_without_kick_prepare),
	  T(test_drvq_disable_cb_sets_no_interrupt),
	  T(test_drvq_enable_cb_returns_false_when_used_buffers_pending),
	  T(test_drvq_enable_cb_delayed_asks_at_three_quarters),
	  T(test_drvq_detach_unused_returns_every_token),
	  T(test_drvq_indices_wrap_after_65536_buffers),
	  T(test_drvq_indices_wrap_with_event_idx_and_indirect),
	  T(test_drvq_breaks_on_used_id_out_of_range),
	  T(test_drvq_breaks_on_used_id_not_in_flight),
	  T(test_drvq_breaks_on_used_id_returned_twice),
	  T(test_drvq_breaks_on_used_length_larger_than_buffer),
	  T(test_drvq_breaks_on_used_index_ahead_of_avail),
	  T(test_drvq_notification_data_carries_avail_index_across_wrap),
	  T(test_drvq_in_order_uses_descriptors_in_ring_order),
	  T(test_drvq_in_order_batch_completes_every_buffer_up_to_id),
	  T(test_drvq_in_order_breaks_on_used_batch_beyond_the_used_index),
	  T(test_drvq_in_order_breaks_on_used_id_not_in_flight),
	  T(test_drvq_in_order_detach_unused_returns_every_token))
