// SPDX-License-Identifier: MIT
/* Packed ring, device side: every rule the device enforces on a driver's
 * ring as it takes buffers (chains, indirect tables, sizes, memory) and the
 * ring's setup. Pushes, event suppression, IN_ORDER and notification data
 * are test_packed_dev_used.c. The driver here is written by hand, as the
 * spec's driver example writes descriptors (packed_dev_fixture.h). */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "packed_dev_fixture.h"

#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)

#define CHECK_BROKEN(f, reason)                                         \
	do {                                                            \
		CHECK_EQ(uvirtio_devq_pop(&(f)->q, &(f)->req), -EIO);   \
		CHECK(uvirtio_devq_is_broken(&(f)->q));                 \
		CHECK_STR(uvirtio_devq_broken_reason(&(f)->q), reason); \
		CHECK_EQ((f)->broken_calls, 1);                         \
		CHECK_EQ(uvirtio_devq_pop(&(f)->q, &(f)->req), -EIO);   \
		CHECK_EQ((f)->broken_calls, 1);                         \
		CHECK(!uvirtio_devq_has_avail(&(f)->q));                \
		fix_fini(f);                                            \
	} while (0)

static void test_packed_pops_readable_then_writable_chain(void)
{
	struct fix *f = &fx;
	struct elem e[3] = { { GA + DATA_OFF, 16, 0 },
			     { GA + DATA_OFF + 0x100, 512, VRING_DESC_F_WRITE },
			     { GA + DATA_OFF + 0x400, 1, VRING_DESC_F_WRITE } };
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 8, 0), 0);
	CHECK(!uvirtio_devq_has_avail(&f->q));
	drv_add(f, e, 3, 5);
	CHECK(uvirtio_devq_has_avail(&f->q));
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK(f->req.id < 8);
	CHECK_EQ(f->req.n_out, 1);
	CHECK_EQ(f->req.n_in, 2);
	CHECK_EQ(f->req.out_len, 16);
	CHECK_EQ(f->req.in_len, 513);
	CHECK(f->req.iov[0].iov_base == guest + DATA_OFF);
	CHECK(f->req.iov[1].iov_base == guest + DATA_OFF + 0x100);
	CHECK(f->req.iov[2].iov_base == guest + DATA_OFF + 0x400);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 0);
	CHECK(!uvirtio_devq_has_avail(&f->q));
	CHECK_EQ(devq_test_inflight(&f->q), 1);
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0x8000 | 3);

	CHECK(!drv_get(f, 3, &id, &len));
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 100), 0);
	CHECK(drv_get(f, 3, &id, &len));
	CHECK_EQ(id, 5);
	CHECK_EQ(len, 100);
	/* Used: AVAIL = USED = wrap counter 1, WRITE since data was written. */
	CHECK_EQ(f->desc[0].flags, F_AVAIL | F_USED | VRING_DESC_F_WRITE);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8000 | 3);
	CHECK_EQ(devq_test_inflight(&f->q), 0);
	fix_fini(f);
}

static void test_packed_handle_is_not_driver_buffer_id(void)
{
	struct fix *f = &fx;
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	drv_add1(f, 0xbeef);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK(f->req.id < 4);
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), 0);
	CHECK(drv_get(f, 1, &id, &len));
	CHECK_EQ(id, 0xbeef);
	CHECK_EQ(len, 0);
	/* Nothing written: no WRITE flag. */
	CHECK_EQ(f->desc[0].flags, F_AVAIL | F_USED);
	fix_fini(f);
}

static void test_packed_chain_crosses_ring_end(void)
{
	struct fix *f = &fx;
	struct elem e[3] = { { GA + DATA_OFF, 1, 0 }, { GA + DATA_OFF, 2, 0 },
			     { GA + DATA_OFF, 4, VRING_DESC_F_WRITE } };
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	/* Two single buffers first, so the chain starts at 2 and ends at 0. */
	drv_add1(f, 0);
	drv_add1(f, 1);
	for (unsigned i = 0; i < 2; i++) {
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), 0);
		CHECK(drv_get(f, 1, &id, &len));
	}
	drv_add(f, e, 3, 7);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK_EQ(f->req.out_len, 3);
	CHECK_EQ(f->req.in_len, 4);
	/* Next avail: position 1 in the second lap (wrap counter 0). */
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 1);
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 4), 0);
	CHECK(drv_get(f, 3, &id, &len));
	CHECK_EQ(id, 7);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 1);
	fix_fini(f);
}

static void test_packed_wrap_counter_flips_after_num_descriptors(void)
{
	struct fix *f = &fx;
	uint16_t id;
	uint32_t len;

	/* A size that is not a power of two: packed rings allow it. */
	CHECK_EQ(fix_init(f, 3, 0), 0);
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0x8000);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8000);
	for (unsigned i = 0; i < 10; i++) {
		bool lap_wrap = ((i / 3) % 2) == 0;

		drv_add1(f, (uint16_t)i);
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), 0);
		/* The used flags carry the device's wrap counter of that lap. */
		CHECK_EQ(f->desc[i % 3].flags, lap_wrap ? F_AVAIL | F_USED : 0);
		CHECK(drv_get(f, 1, &id, &len));
		CHECK_EQ(id, i);
		CHECK_EQ(uvirtio_devq_next_avail(&f->q),
			 ((i + 1) % 3) | ((((i + 1) / 3) % 2) == 0 ? 0x8000 : 0));
		CHECK_EQ(uvirtio_devq_used_index(&f->q), uvirtio_devq_next_avail(&f->q));
	}
	fix_fini(f);
}

static void test_packed_pops_indirect_table(void)
{
	struct fix *f = &fx;
	struct vring_packed_desc *t = (struct vring_packed_desc *)(guest + TABLE_OFF);
	struct elem e = { GA + TABLE_OFF, 3 * 16, VRING_DESC_F_INDIRECT };
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	t[0] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 8 };
	/* NEXT in a table is reserved and ignored by the device (spec). */
	t[1] = (struct vring_packed_desc){ .addr = GA + DATA_OFF + 8, .len = 8, .flags = VRING_DESC_F_NEXT };
	t[2] = (struct vring_packed_desc){ .addr = GA + DATA_OFF + 64, .len = 32, .flags = VRING_DESC_F_WRITE };
	drv_add(f, &e, 1, 9);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK_EQ(f->req.n_out, 2);
	CHECK_EQ(f->req.n_in, 1);
	CHECK_EQ(f->req.out_len, 16);
	CHECK_EQ(f->req.in_len, 32);
	/* An indirect buffer takes one ring descriptor. */
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0x8001);
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 32), 0);
	CHECK(drv_get(f, 1, &id, &len));
	CHECK_EQ(id, 9);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8001);
	fix_fini(f);
}

static void test_packed_refuses_chained_descriptor_with_bad_avail_used_flags(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	/* The second descriptor still says "used" (all flags zero). */
	f->desc[1] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 4 };
	f->desc[0] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 4,
						 .flags = F_AVAIL | VRING_DESC_F_NEXT };
	CHECK_BROKEN(f, "descriptor in a chain not marked available (bad AVAIL/USED flags)");
}

static void test_packed_ignores_descriptor_not_marked_available(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	/* AVAIL and USED both set: a used descriptor of this lap, not
	 * available; and AVAIL of the other lap. Neither is taken. */
	f->desc[0] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 4, .flags = F_AVAIL | F_USED };
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 0);
	f->desc[0].flags = F_USED;
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 0);
	CHECK(!uvirtio_devq_has_avail(&f->q));
	CHECK(!uvirtio_devq_is_broken(&f->q));
	fix_fini(f);
}

static void test_packed_refuses_indirect_with_next(void)
{
	struct fix *f = &fx;
	struct elem e[2] = { { GA + TABLE_OFF, 16, VRING_DESC_F_INDIRECT }, { GA + DATA_OFF, 4, 0 } };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	drv_add(f, e, 2, 0);
	CHECK_BROKEN(f, "indirect descriptor with NEXT set");
}

static void test_packed_refuses_indirect_in_chain(void)
{
	struct fix *f = &fx;
	struct elem e[2] = { { GA + DATA_OFF, 4, 0 }, { GA + TABLE_OFF, 16, VRING_DESC_F_INDIRECT } };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	drv_add(f, e, 2, 0);
	CHECK_BROKEN(f, "indirect descriptor in a chain");
}

static void test_packed_refuses_indirect_without_feature(void)
{
	struct fix *f = &fx;
	struct elem e = { GA + TABLE_OFF, 16, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, 0), 0);
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
}

static void test_packed_refuses_nested_indirect(void)
{
	struct fix *f = &fx;
	struct vring_packed_desc *t = (struct vring_packed_desc *)(guest + TABLE_OFF);
	struct elem e = { GA + TABLE_OFF, 32, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	t[0] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 8 };
	t[1] = (struct vring_packed_desc){ .addr = GA + TABLE_OFF, .len = 16, .flags = VRING_DESC_F_INDIRECT };
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "nested indirect descriptor");
}

static void test_packed_refuses_indirect_table_length_zero(void)
{
	struct fix *f = &fx;
	struct elem e = { GA + TABLE_OFF, 0, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "indirect table length not a non-zero multiple of 16");
}

static void test_packed_refuses_indirect_table_length_not_multiple_of_16(void)
{
	struct fix *f = &fx;
	struct elem e = { GA + TABLE_OFF, 24, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "indirect table length not a non-zero multiple of 16");
}

static void test_packed_refuses_indirect_table_longer_than_queue(void)
{
	struct fix *f = &fx;
	struct elem e = { GA + TABLE_OFF, 5 * 16, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "descriptor chain longer than the queue (indirect)");
}

static void test_packed_refuses_indirect_table_too_long(void)
{
	struct fix *f = &fx;
	/* In the huge region: only the length is looked at. */
	struct elem e = { HUGE_GA, (UVIRTIO_INDIRECT_MAX + 1) * 16, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "indirect table too long");
}

static void test_packed_refuses_indirect_table_outside_memory(void)
{
	struct fix *f = &fx;
	struct elem e = { 0x1000, 16, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "indirect table outside guest memory");
}

static void test_packed_accepts_chain_as_long_as_queue(void)
{
	struct fix *f = &fx;
	struct elem e[4];

	CHECK_EQ(fix_init(f, 4, 0), 0);
	for (unsigned i = 0; i < 4; i++)
		e[i] = (struct elem){ GA + DATA_OFF, 1, 0 };
	drv_add(f, e, 4, 0);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK_EQ(f->req.out_len, 4);
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0);
	fix_fini(f);
}

static void test_packed_refuses_chain_longer_than_queue(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	/* Every descriptor available and saying NEXT: the chain would run on
	 * into its own head, a fifth descriptor in a ring of four. */
	for (unsigned i = 0; i < 4; i++)
		f->desc[i] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 1,
							 .flags = F_AVAIL | VRING_DESC_F_NEXT };
	CHECK_BROKEN(f, "descriptor chain longer than the queue");
}

static void test_packed_refuses_more_descriptors_available_than_queue_size(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	for (unsigned i = 0; i < 4; i++)
		drv_add1(f, (uint16_t)i);
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	/* Nothing was used, yet the driver marks position 0 available in
	 * the next lap: a fifth buffer in a ring of four. */
	drv_add1(f, 4);
	CHECK_BROKEN(f, "more descriptors available than the queue size");
}

static void test_packed_refuses_readable_after_writable(void)
{
	struct fix *f = &fx;
	struct elem e[2] = { { GA + DATA_OFF, 4, VRING_DESC_F_WRITE }, { GA + DATA_OFF, 4, 0 } };

	CHECK_EQ(fix_init(f, 4, 0), 0);
	drv_add(f, e, 2, 0);
	CHECK_BROKEN(f, "readable descriptor after a writable one");
}

static void test_packed_refuses_readable_after_writable_in_indirect_table(void)
{
	struct fix *f = &fx;
	struct vring_packed_desc *t = (struct vring_packed_desc *)(guest + TABLE_OFF);
	struct elem e = { GA + TABLE_OFF, 32, VRING_DESC_F_INDIRECT };

	CHECK_EQ(fix_init(f, 4, INDIRECT), 0);
	t[0] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 8, .flags = VRING_DESC_F_WRITE };
	t[1] = (struct vring_packed_desc){ .addr = GA + DATA_OFF, .len = 8 };
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "readable descriptor after a writable one");
}

static void test_packed_refuses_buffer_outside_memory(void)
{
	struct fix *f = &fx;
	struct elem e = { 0x1000, 16, 0 };

	CHECK_EQ(fix_init(f, 4, 0), 0);
	drv_add(f, &e, 1, 0);
	CHECK_BROKEN(f, "buffer outside guest memory");
}

static void test_packed_refuses_chain_needing_more_iovecs_than_allowed(void)
{
	struct fix *f = &fx;
	struct elem e[3] = { { GA + DATA_OFF, 1, 0 }, { GA + DATA_OFF, 1, 0 }, { GA + DATA_OFF, 1, 0 } };

	CHECK_EQ(fix_init(f, 4, 0), 0);
	f->req.iov_cap = 2;
	drv_add(f, e, 3, 0);
	CHECK_BROKEN(f, "descriptor chain needs more iovecs than the device allows");
}

static void test_packed_refuses_chain_over_4gib(void)
{
	struct fix *f = &fx;
	struct elem e[2] = { { HUGE_GA, 0x80000000u, 0 }, { HUGE_GA, 0x80000000u, 0 } };

	CHECK_EQ(fix_init(f, 4, 0), 0);
	drv_add(f, e, 2, 0);
	CHECK_BROKEN(f, "descriptor chain longer than 4 GiB");
}

static void test_packed_accepts_chain_of_4gib_minus_one(void)
{
	struct fix *f = &fx;
	struct elem e[2] = { { HUGE_GA, 0x80000000u, 0 }, { HUGE_GA, 0x7fffffffu, 0 } };

	CHECK_EQ(fix_init(f, 4, 0), 0);
	drv_add(f, e, 2, 0);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK_EQ(f->req.out_len, UINT32_MAX);
	fix_fini(f);
}

static void test_packed_setup_refuses_bad_size_and_alignment(void)
{
	struct fix *f = &fx;
	struct uvirtio_devq q = { 0 };

	CHECK_EQ(fix_init(f, 0, 0), -EINVAL);
	CHECK_EQ(fix_init(f, 32769, 0), -EINVAL);
	CHECK_EQ(fix_init(f, 32768, 0), 0);
	CHECK_EQ(fix_init(f, 5, 0), 0);
	CHECK_EQ(uvirtio_devq_setup(&q, &f->mem, 4, GA + 8, GA + DRIVER_OFF, GA + DEVICE_OFF, PACKED), -EINVAL);
	CHECK_EQ(uvirtio_devq_setup(&q, &f->mem, 4, GA, GA + DRIVER_OFF + 2, GA + DEVICE_OFF, PACKED), -EINVAL);
	CHECK_EQ(uvirtio_devq_setup(&q, &f->mem, 4, GA, GA + DRIVER_OFF, GA + DEVICE_OFF + 2, PACKED), -EINVAL);
	CHECK_EQ(uvirtio_devq_setup(&q, &f->mem, 4, GA, 0x1000, GA + DEVICE_OFF, PACKED), -EFAULT);
	CHECK_EQ(uvirtio_devq_setup(&q, &f->mem, 4, GA + sizeof(guest) - 32, GA + DRIVER_OFF, GA + DEVICE_OFF, PACKED), -EFAULT);
	CHECK(!uvirtio_devq_is_ready(&q));
	uvirtio_devq_reset(&q);
	fix_fini(f);
}

TEST_MAIN(T(test_packed_pops_readable_then_writable_chain),
	  T(test_packed_handle_is_not_driver_buffer_id),
	  T(test_packed_chain_crosses_ring_end),
	  T(test_packed_wrap_counter_flips_after_num_descriptors),
	  T(test_packed_pops_indirect_table),
	  T(test_packed_refuses_chained_descriptor_with_bad_avail_used_flags),
	  T(test_packed_ignores_descriptor_not_marked_available),
	  T(test_packed_refuses_indirect_with_next),
	  T(test_packed_refuses_indirect_in_chain),
	  T(test_packed_refuses_indirect_without_feature),
	  T(test_packed_refuses_nested_indirect),
	  T(test_packed_refuses_indirect_table_length_zero),
	  T(test_packed_refuses_indirect_table_length_not_multiple_of_16),
	  T(test_packed_refuses_indirect_table_longer_than_queue),
	  T(test_packed_refuses_indirect_table_too_long),
	  T(test_packed_refuses_indirect_table_outside_memory),
	  T(test_packed_accepts_chain_as_long_as_queue),
	  T(test_packed_refuses_chain_longer_than_queue),
	  T(test_packed_refuses_more_descriptors_available_than_queue_size),
	  T(test_packed_refuses_readable_after_writable),
	  T(test_packed_refuses_readable_after_writable_in_indirect_table),
	  T(test_packed_refuses_buffer_outside_memory),
	  T(test_packed_refuses_chain_needing_more_iovecs_than_allowed),
	  T(test_packed_refuses_chain_over_4gib),
	  T(test_packed_accepts_chain_of_4gib_minus_one),
	  T(test_packed_setup_refuses_bad_size_and_alignment))
