// SPDX-License-Identifier: MIT
/* Packed ring, device side: every rule the device enforces on a driver's
 * ring, event suppression, IN_ORDER and notification data. The driver here
 * is written by hand, as the spec's driver example writes descriptors. */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "uvirtio/devq.h"
#include "uvirtio/virtio_spec.h"
#include "../support/ring_internal.h"

#define GA 0x100000ull /* guest address of the fixture's memory */
#define DESC_OFF 0x0
#define DRIVER_OFF 0x80000 /* driver event suppression area */
#define DEVICE_OFF 0x80010 /* device event suppression area */
#define DATA_OFF 0x90000
#define TABLE_OFF 0xc0000
#define HUGE_GA 0x100000000ull /* a region never touched: only translated */

#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)
#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)
#define EVENT_IDX UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)
#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)
#define NOTIF_DATA UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)

static _Alignas(4096) char guest[1 << 20];

struct fix {
	struct uvirtio_mem mem;
	struct uvirtio_devq q;
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver, *device;
	struct iovec iov[64];
	struct uvirtio_req req;
	unsigned broken_calls;
	/* The driver's side: next descriptor to make available and next one
	 * to look at for a used one, with their wrap counters. */
	uint16_t avail_pos, used_pos;
	bool avail_wrap, used_wrap;
};

static struct fix fx;

static void on_broken(struct uvirtio_devq *q, void *opaque)
{
	struct fix *f = opaque;

	(void)q;
	f->broken_calls++;
}

/* Frees what the previous test's queue held (a failed CHECK skips its
 * fix_fini), then sets up a fresh ring. */
static int fix_init(struct fix *f, unsigned num, uint64_t features)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = sizeof(guest), .host_addr = guest, .fd = -1 };
	struct uvirtio_mem_region huge = { .guest_addr = HUGE_GA, .size = 8ull << 30, .host_addr = guest, .fd = -1 };

	uvirtio_devq_reset(&f->q);
	memset(guest, 0, sizeof(guest));
	memset(f, 0, sizeof(*f));
	uvirtio_mem_init(&f->mem);
	uvirtio_mem_add(&f->mem, &r);
	uvirtio_mem_add(&f->mem, &huge);
	f->desc = (struct vring_packed_desc *)(guest + DESC_OFF);
	f->driver = (struct vring_packed_desc_event *)(guest + DRIVER_OFF);
	f->device = (struct vring_packed_desc_event *)(guest + DEVICE_OFF);
	f->avail_wrap = f->used_wrap = true;
	uvirtio_req_init(&f->req, f->iov, 64);
	uvirtio_devq_set_broken_cb(&f->q, on_broken, f);
	return uvirtio_devq_setup(&f->q, &f->mem, num, GA + DESC_OFF, GA + DRIVER_OFF,
				  GA + DEVICE_OFF, features | PACKED);
}

static void fix_fini(struct fix *f)
{
	uvirtio_devq_reset(&f->q);
}

struct elem {
	uint64_t addr;
	uint32_t len;
	uint16_t flags; /* WRITE, INDIRECT; NEXT is added between elements */
};

static uint16_t avail_bits(bool wrap)
{
	return (uint16_t)(wrap ? F_AVAIL : F_USED);
}

/* Makes a buffer available as a driver does: the descriptors after the
 * first, then the first one's flags with a release store. The buffer id goes
 * in every descriptor (the device reads the last one's). */
static void drv_add(struct fix *f, const struct elem *e, unsigned n, uint16_t id)
{
	uint16_t head = f->avail_pos, head_flags = 0;

	for (unsigned i = 0; i < n; i++) {
		struct vring_packed_desc *d = &f->desc[f->avail_pos];
		uint16_t flags = (uint16_t)(e[i].flags | (i + 1 < n ? VRING_DESC_F_NEXT : 0) |
					    avail_bits(f->avail_wrap));

		d->addr = e[i].addr;
		d->len = e[i].len;
		d->id = id;
		if (i == 0)
			head_flags = flags;
		else
			d->flags = flags;
		if (++f->avail_pos == uvirtio_devq_size(&f->q)) {
			f->avail_pos = 0;
			f->avail_wrap = !f->avail_wrap;
		}
	}
	__atomic_store_n(&f->desc[head].flags, head_flags, __ATOMIC_RELEASE);
}

/* One readable descriptor of 16 bytes. */
static void drv_add1(struct fix *f, uint16_t id)
{
	struct elem e = { GA + DATA_OFF, 16, 0 };

	drv_add(f, &e, 1, id);
}

/* The next used descriptor, if the device wrote one; the driver then skips
 * @ndesc descriptors (what it knows the buffer, or batch, took). */
static bool drv_get(struct fix *f, unsigned ndesc, uint16_t *id, uint32_t *len)
{
	struct vring_packed_desc *d = &f->desc[f->used_pos];
	uint16_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);

	if (!!(flags & F_AVAIL) != f->used_wrap || !!(flags & F_USED) != f->used_wrap)
		return false;
	*id = d->id;
	*len = d->len;
	f->used_pos = (uint16_t)(f->used_pos + ndesc);
	if (f->used_pos >= uvirtio_devq_size(&f->q)) {
		f->used_pos = (uint16_t)(f->used_pos - uvirtio_devq_size(&f->q));
		f->used_wrap = !f->used_wrap;
	}
	return true;
}

static void set_driver_event(struct fix *f, uint16_t off_wrap, uint16_t flags)
{
	f->driver->off_wrap = off_wrap;
	f->driver->flags = flags;
}

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

static void test_packed_out_of_order_pushes_use_completion_order(void)
{
	struct fix *f = &fx;
	struct elem two[2] = { { GA + DATA_OFF, 1, 0 }, { GA + DATA_OFF, 8, VRING_DESC_F_WRITE } };
	uint16_t h[3], id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 8, 0), 0);
	drv_add1(f, 10);
	drv_add(f, two, 2, 11);
	drv_add1(f, 12);
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		h[i] = f->req.id;
	}
	CHECK(h[0] != h[1] && h[1] != h[2] && h[0] != h[2]);
	/* Completed 12, 11, 10: used descriptors at 0, 1, 3 (11 took two). */
	CHECK_EQ(uvirtio_devq_push(&f->q, h[2], 0), 0);
	CHECK_EQ(uvirtio_devq_push(&f->q, h[1], 8), 0);
	CHECK_EQ(uvirtio_devq_push(&f->q, h[0], 0), 0);
	CHECK(drv_get(f, 1, &id, &len));
	CHECK_EQ(id, 12);
	CHECK(drv_get(f, 2, &id, &len));
	CHECK_EQ(id, 11);
	CHECK_EQ(len, 8);
	CHECK(drv_get(f, 1, &id, &len));
	CHECK_EQ(id, 10);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8004);
	CHECK_EQ(devq_test_inflight(&f->q), 0);
	fix_fini(f);
}

static void test_packed_push_refuses_handle_not_in_flight(void)
{
	struct fix *f = &fx;
	struct uvirtio_used two[2];

	CHECK_EQ(fix_init(f, 4, 0), 0);
	CHECK_EQ(uvirtio_devq_push(&f->q, 0, 0), -EINVAL);
	CHECK_EQ(uvirtio_devq_push(&f->q, 4, 0), -EINVAL);
	drv_add1(f, 0);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	/* Twice in one batch: refused, and nothing published. */
	two[0] = (struct uvirtio_used){ f->req.id, 0 };
	two[1] = two[0];
	CHECK_EQ(uvirtio_devq_push_batch(&f->q, two, 2), -EINVAL);
	CHECK_EQ(f->desc[0].flags, F_AVAIL);
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), 0);
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), -EINVAL);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8001);
	fix_fini(f);
}

static void test_packed_push_batch_publishes_every_entry(void)
{
	struct fix *f = &fx;
	struct uvirtio_used b[3];
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	for (unsigned i = 0; i < 3; i++)
		drv_add1(f, (uint16_t)(20 + i));
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		b[2 - i] = (struct uvirtio_used){ f->req.id, i };
	}
	CHECK_EQ(uvirtio_devq_push_batch(&f->q, b, 3), 0);
	for (unsigned i = 0; i < 3; i++) {
		CHECK(drv_get(f, 1, &id, &len));
		CHECK_EQ(id, 22 - i);
		CHECK_EQ(len, 2 - i);
	}
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8003);
	fix_fini(f);
}

static void test_packed_stopped_queue_writes_no_guest_memory(void)
{
	struct fix *f = &fx;
	static char before[1 << 20];

	CHECK_EQ(fix_init(f, 4, EVENT_IDX), 0);
	drv_add1(f, 0);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	drv_add1(f, 1);
	uvirtio_devq_stop(&f->q);
	memcpy(before, guest, sizeof(guest));
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 0);
	CHECK_EQ(uvirtio_devq_push(&f->q, 0, 0), -ESHUTDOWN);
	uvirtio_devq_disable_notify(&f->q);
	CHECK(!uvirtio_devq_enable_notify(&f->q));
	CHECK(!uvirtio_devq_needs_notify(&f->q));
	CHECK(!memcmp(before, guest, sizeof(guest)));
	/* Indices kept for the caller. */
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0x8001);
	fix_fini(f);
}

static void test_packed_reset_forgets_ring_and_frees(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, IN_ORDER), 0);
	CHECK(devq_test_has_slots(&f->q));
	drv_add1(f, 0);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	uvirtio_devq_reset(&f->q);
	CHECK(!devq_test_has_slots(&f->q));
	CHECK(!uvirtio_devq_is_packed(&f->q));
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 0);
	CHECK_EQ(uvirtio_devq_push(&f->q, 0, 0), -ESHUTDOWN);
	/* The broken callback is kept; reset twice is fine. */
	CHECK(uvirtio_devq_broken_cb(&f->q, NULL) == on_broken);
	uvirtio_devq_reset(&f->q);
}

static void test_packed_set_indices_round_trip_with_wrap_bits(void)
{
	struct fix *f = &fx;
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	CHECK_EQ(uvirtio_devq_set_indices(&f->q, 4, 0x8000), -EINVAL);
	CHECK_EQ(uvirtio_devq_set_indices(&f->q, 0x8000, 0x7fff), -EINVAL);
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0x8000);
	/* Resume at position 2 in the second lap (wrap counter 0). */
	CHECK_EQ(uvirtio_devq_set_indices(&f->q, 2, 2), 0);
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 2);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 2);
	f->avail_pos = f->used_pos = 2;
	f->avail_wrap = f->used_wrap = false;
	drv_add1(f, 1);
	drv_add1(f, 2);
	drv_add1(f, 3);
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), 0);
		CHECK(drv_get(f, 1, &id, &len));
		CHECK_EQ(id, i + 1);
	}
	/* 2, 3 in lap 0, then 0 in lap 1 again. */
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0x8001);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8001);
	fix_fini(f);
}

static void test_packed_needs_notify_honours_enable_and_disable(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	drv_add1(f, 0);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), 0);
	set_driver_event(f, 0, VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(!uvirtio_devq_needs_notify(&f->q));
	set_driver_event(f, 0, VRING_PACKED_EVENT_FLAG_ENABLE);
	CHECK(uvirtio_devq_needs_notify(&f->q));
	/* DESC without EVENT_IDX is not valid: notify rather than lose one. */
	set_driver_event(f, 0x8003, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(uvirtio_devq_needs_notify(&f->q));
	fix_fini(f);
}

/* One buffer through, and whether the driver would be notified. */
static bool one_through(struct fix *f, uint16_t id)
{
	uint32_t len;

	drv_add1(f, id);
	if (uvirtio_devq_pop(&f->q, &f->req) != 1 || uvirtio_devq_push(&f->q, f->req.id, 0))
		return false;
	if (!drv_get(f, 1, &id, &len))
		return false;
	return uvirtio_devq_needs_notify(&f->q);
}

static void test_packed_needs_notify_honours_desc_event_across_wrap(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, EVENT_IDX), 0);
	/* The first call notifies: nothing was signalled yet. */
	CHECK(one_through(f, 0)); /* used 0 (lap 1) */
	/* Ask for the descriptor at 2 in lap 1. */
	set_driver_event(f, 0x8002, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(!one_through(f, 1)); /* used 1 */
	CHECK(one_through(f, 2));  /* used 2: the one asked for */
	CHECK(!one_through(f, 3)); /* used 3 */
	/* Ask for position 1 in lap 0 (wrap bit clear): across the wrap. */
	set_driver_event(f, 0x0001, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(!one_through(f, 4)); /* used 0, lap 0 */
	CHECK(one_through(f, 5));  /* used 1, lap 0 */
	/* An event already passed (position 0 in lap 0) does not notify. */
	set_driver_event(f, 0x0000, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(!one_through(f, 6));
	/* Same offset, other lap: position 0 in lap 1, two further on. */
	set_driver_event(f, 0x8000, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(!one_through(f, 7)); /* used 3, lap 0 */
	CHECK(one_through(f, 8));  /* used 0, lap 1 */
	fix_fini(f);
}

static void test_packed_needs_notify_covers_batch_over_event(void)
{
	struct fix *f = &fx;
	struct uvirtio_used b[3];

	CHECK_EQ(fix_init(f, 4, EVENT_IDX), 0);
	CHECK(one_through(f, 0));
	for (unsigned i = 0; i < 3; i++)
		drv_add1(f, (uint16_t)(1 + i));
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		b[i] = (struct uvirtio_used){ f->req.id, 0 };
	}
	/* Positions 1, 2, 3 used in one batch; the event names 2. */
	set_driver_event(f, 0x8002, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK_EQ(uvirtio_devq_push_batch(&f->q, b, 3), 0);
	CHECK(uvirtio_devq_needs_notify(&f->q));
	CHECK(!uvirtio_devq_needs_notify(&f->q)); /* nothing new since */
	fix_fini(f);
}

static void test_packed_disable_notify_writes_disable(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	uvirtio_devq_disable_notify(&f->q);
	CHECK_EQ(f->device->flags, VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(!uvirtio_devq_enable_notify(&f->q));
	CHECK_EQ(f->device->flags, VRING_PACKED_EVENT_FLAG_ENABLE);
	fix_fini(f);
}

static void test_packed_enable_notify_writes_desc_with_event_idx(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, EVENT_IDX), 0);
	uvirtio_devq_disable_notify(&f->q);
	CHECK_EQ(f->device->flags, VRING_PACKED_EVENT_FLAG_DISABLE);
	drv_add1(f, 0);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK(!uvirtio_devq_enable_notify(&f->q));
	CHECK_EQ(f->device->flags, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK_EQ(f->device->off_wrap, 0x8001);
	/* While enabled, each pop moves the event on. */
	drv_add1(f, 1);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK_EQ(f->device->off_wrap, 0x8002);
	fix_fini(f);
}

static void test_packed_enable_notify_reports_buffers_added_meanwhile(void)
{
	struct fix *f = &fx;

	CHECK_EQ(fix_init(f, 4, EVENT_IDX), 0);
	uvirtio_devq_disable_notify(&f->q);
	drv_add1(f, 0);
	CHECK(uvirtio_devq_enable_notify(&f->q));
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK(!uvirtio_devq_enable_notify(&f->q));
	fix_fini(f);
}

static void test_packed_in_order_out_of_order_pushes_come_out_in_order(void)
{
	struct fix *f = &fx;
	struct elem w = { GA + DATA_OFF, 8, VRING_DESC_F_WRITE };
	uint16_t h[3], id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 8, IN_ORDER), 0);
	for (unsigned i = 0; i < 3; i++) {
		drv_add(f, &w, 1, (uint16_t)i);
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		h[i] = f->req.id;
	}
	/* Short lengths: no coalescing, one entry each, in pop order. */
	CHECK_EQ(uvirtio_devq_push(&f->q, h[2], 3), 0);
	CHECK_EQ(uvirtio_devq_push(&f->q, h[1], 2), 0);
	CHECK(!drv_get(f, 1, &id, &len)); /* held behind the first */
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8000);
	CHECK_EQ(devq_test_inflight(&f->q), 1);
	CHECK_EQ(uvirtio_devq_push(&f->q, h[0], 1), 0);
	for (unsigned i = 0; i < 3; i++) {
		CHECK(drv_get(f, 1, &id, &len));
		CHECK_EQ(id, i);
		CHECK_EQ(len, i + 1);
	}
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8003);
	CHECK_EQ(devq_test_inflight(&f->q), 0);
	fix_fini(f);
}

static void test_packed_in_order_coalesces_full_length_run(void)
{
	struct fix *f = &fx;
	struct elem two[2] = { { GA + DATA_OFF, 4, 0 }, { GA + DATA_OFF, 8, VRING_DESC_F_WRITE } };
	struct uvirtio_used b[3];
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 8, IN_ORDER), 0);
	for (unsigned i = 0; i < 3; i++) {
		drv_add(f, two, 2, (uint16_t)i);
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		b[i] = (struct uvirtio_used){ f->req.id, 8 };
	}
	CHECK_EQ(uvirtio_devq_push_batch(&f->q, b, 3), 0);
	/* One used descriptor at 0 with the last id; index on by 6. */
	CHECK(drv_get(f, 6, &id, &len));
	CHECK_EQ(id, 2);
	CHECK_EQ(len, 8);
	CHECK_EQ(f->desc[2].flags & (F_AVAIL | F_USED), F_AVAIL);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8006);
	fix_fini(f);
}

static void test_packed_in_order_short_len_ends_batch(void)
{
	struct fix *f = &fx;
	struct elem w = { GA + DATA_OFF, 8, VRING_DESC_F_WRITE };
	struct uvirtio_used b[4];
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 8, IN_ORDER), 0);
	for (unsigned i = 0; i < 4; i++) {
		drv_add(f, &w, 1, (uint16_t)i);
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		b[i] = (struct uvirtio_used){ f->req.id, i == 1 ? 5 : 8 };
	}
	/* full, short | full, full: two entries, the short one ending the
	 * first with its own length. */
	CHECK_EQ(uvirtio_devq_push_batch(&f->q, b, 4), 0);
	CHECK(drv_get(f, 2, &id, &len));
	CHECK_EQ(id, 1);
	CHECK_EQ(len, 5);
	CHECK(drv_get(f, 2, &id, &len));
	CHECK_EQ(id, 3);
	CHECK_EQ(len, 8);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8004);
	fix_fini(f);
}

static void test_packed_in_order_stop_drops_held_completions(void)
{
	struct fix *f = &fx;
	uint16_t h[2];

	CHECK_EQ(fix_init(f, 4, IN_ORDER), 0);
	for (unsigned i = 0; i < 2; i++) {
		drv_add1(f, (uint16_t)i);
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		h[i] = f->req.id;
	}
	CHECK_EQ(uvirtio_devq_push(&f->q, h[1], 0), 0);
	uvirtio_devq_stop(&f->q);
	CHECK_EQ(uvirtio_devq_push(&f->q, h[0], 0), -ESHUTDOWN);
	CHECK_EQ(devq_test_order_count(&f->q), 0);
	CHECK_EQ(uvirtio_devq_used_index(&f->q), 0x8000);
	CHECK_EQ(f->desc[0].flags, F_AVAIL);
	fix_fini(f);
}

static void test_packed_note_notification_checks_offset(void)
{
	struct fix *f = &fx;
	uint16_t v;

	CHECK_EQ(fix_init(f, 4, NOTIF_DATA), 0);
	CHECK(!uvirtio_devq_notified_avail(&f->q, &v));
	CHECK_EQ(uvirtio_devq_note_notification(&f->q, 0x80030001u), 0);
	CHECK(uvirtio_devq_notified_avail(&f->q, &v));
	CHECK_EQ(v, 0x8003);
	/* Offset 4 in a ring of 4: malformed, ignored, queue not broken. */
	CHECK_EQ(uvirtio_devq_note_notification(&f->q, 0x00040001u), -EINVAL);
	CHECK(uvirtio_devq_notified_avail(&f->q, &v));
	CHECK_EQ(v, 0x8003);
	CHECK(!uvirtio_devq_is_broken(&f->q));
	/* pop never trusts it: nothing is available. */
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 0);
	fix_fini(f);
}

static void test_packed_note_notification_needs_feature(void)
{
	struct fix *f = &fx;
	uint16_t v;

	CHECK_EQ(fix_init(f, 4, 0), 0);
	CHECK_EQ(uvirtio_devq_note_notification(&f->q, 0x80000000u), -EPERM);
	CHECK(!uvirtio_devq_notified_avail(&f->q, &v));
	fix_fini(f);
}

static void test_packed_accepts_queue_size_32768(void)
{
	struct fix *f = &fx;
	uint16_t id;
	uint32_t len;

	CHECK_EQ(fix_init(f, 32768, IN_ORDER), 0);
	CHECK_EQ(uvirtio_devq_set_indices(&f->q, 32767, 32767), 0);
	f->avail_pos = f->used_pos = 32767;
	f->avail_wrap = f->used_wrap = false;
	drv_add1(f, 0);
	drv_add1(f, 1);
	for (unsigned i = 0; i < 2; i++) {
		CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
		CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 0), 0);
		CHECK(drv_get(f, 1, &id, &len));
		CHECK_EQ(id, i);
	}
	CHECK_EQ(uvirtio_devq_next_avail(&f->q), 0x8001);
	fix_fini(f);
}

TEST_MAIN(T(test_packed_pops_readable_then_writable_chain),
	  T(test_packed_handle_is_not_driver_buffer_id), T(test_packed_chain_crosses_ring_end),
	  T(test_packed_wrap_counter_flips_after_num_descriptors),
	  T(test_packed_pops_indirect_table),
	  T(test_packed_refuses_chained_descriptor_with_bad_avail_used_flags),
	  T(test_packed_ignores_descriptor_not_marked_available),
	  T(test_packed_refuses_indirect_with_next), T(test_packed_refuses_indirect_in_chain),
	  T(test_packed_refuses_indirect_without_feature), T(test_packed_refuses_nested_indirect),
	  T(test_packed_refuses_indirect_table_length_zero),
	  T(test_packed_refuses_indirect_table_length_not_multiple_of_16),
	  T(test_packed_refuses_indirect_table_longer_than_queue),
	  T(test_packed_refuses_indirect_table_too_long),
	  T(test_packed_refuses_indirect_table_outside_memory),
	  T(test_packed_accepts_chain_as_long_as_queue), T(test_packed_refuses_chain_longer_than_queue),
	  T(test_packed_refuses_more_descriptors_available_than_queue_size),
	  T(test_packed_refuses_readable_after_writable),
	  T(test_packed_refuses_readable_after_writable_in_indirect_table),
	  T(test_packed_refuses_buffer_outside_memory),
	  T(test_packed_refuses_chain_needing_more_iovecs_than_allowed),
	  T(test_packed_refuses_chain_over_4gib), T(test_packed_accepts_chain_of_4gib_minus_one),
	  T(test_packed_setup_refuses_bad_size_and_alignment),
	  T(test_packed_out_of_order_pushes_use_completion_order),
	  T(test_packed_push_refuses_handle_not_in_flight),
	  T(test_packed_push_batch_publishes_every_entry),
	  T(test_packed_stopped_queue_writes_no_guest_memory),
	  T(test_packed_reset_forgets_ring_and_frees),
	  T(test_packed_set_indices_round_trip_with_wrap_bits),
	  T(test_packed_needs_notify_honours_enable_and_disable),
	  T(test_packed_needs_notify_honours_desc_event_across_wrap),
	  T(test_packed_needs_notify_covers_batch_over_event),
	  T(test_packed_disable_notify_writes_disable),
	  T(test_packed_enable_notify_writes_desc_with_event_idx),
	  T(test_packed_enable_notify_reports_buffers_added_meanwhile),
	  T(test_packed_in_order_out_of_order_pushes_come_out_in_order),
	  T(test_packed_in_order_coalesces_full_length_run),
	  T(test_packed_in_order_short_len_ends_batch),
	  T(test_packed_in_order_stop_drops_held_completions),
	  T(test_packed_note_notification_checks_offset),
	  T(test_packed_note_notification_needs_feature),
	  T(test_packed_accepts_queue_size_32768))
