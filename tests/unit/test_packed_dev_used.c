// SPDX-License-Identifier: MIT
/* Packed ring, device side: used descriptors (completion order, batches,
 * IN_ORDER), the queue's stop, reset and indices, event suppression and
 * notification data. Taking buffers is test_packed_dev.c. The driver here is
 * written by hand, as the spec's driver example writes descriptors
 * (packed_dev_fixture.h). */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "packed_dev_fixture.h"

#define EVENT_IDX UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)
#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)
#define NOTIF_DATA UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)

static void set_driver_event(struct fix *f, uint16_t off_wrap, uint16_t flags)
{
	f->driver->off_wrap = off_wrap;
	f->driver->flags = flags;
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

/* Dirty logging (devq.h): a request popped before logging began and
 * completed after a later one overwrote its descriptors with a used one
 * still has its own pages marked (recorded at pop), up to its used
 * length; the used descriptors' page is marked; nothing once logging is
 * off again. */
static uint8_t log_bits[(GA + GUEST_SIZE) / 4096 / 8];

static bool page_marked(uint64_t gpa)
{
	uint64_t p = gpa / 4096;

	return log_bits[p / 8] & (1u << (p % 8));
}

static unsigned marked_pages(void)
{
	unsigned n = 0;

	for (size_t i = 0; i < sizeof(log_bits); i++)
		n += (unsigned)__builtin_popcount(log_bits[i]);
	return n;
}

static void test_packed_dirty_log_marks_recorded_ranges_after_out_of_order_completion(void)
{
	struct fix *f = &fx;
	struct uvirtio_dirty_log log = { 0 };
	struct uvirtio_dirty_log_area area = { .bits = log_bits, .size = sizeof(log_bits) };
	uint64_t data = GA + DATA_OFF;
	/* A: header (read), 8 KiB of data, a status byte on a page of its own. */
	struct elem a[3] = { { data, 16, 0 }, { data + 0x1000, 0x2000, VRING_DESC_F_WRITE },
			     { data + 0x5000, 1, VRING_DESC_F_WRITE } };
	struct elem b[1] = { { data + 0x8000, 100, VRING_DESC_F_WRITE } };
	uint16_t ha, hb;

	CHECK_EQ(fix_init(f, 8, 0), 0);
	memset(log_bits, 0, sizeof(log_bits));
	uvirtio_devq_set_dirty_log(&f->q, &log, 0);
	drv_add(f, a, 3, 1);
	drv_add(f, b, 1, 2);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	ha = f->req.id;
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	hb = f->req.id;
	/* Logging begins with both in flight. */
	CHECK(!uvirtio_dirty_log_switch(&log, &area));
	/* B first: its used descriptor goes where A's first one was. */
	CHECK_EQ(uvirtio_devq_push(&f->q, hb, 50), 0);
	CHECK(page_marked(data + 0x8000));
	CHECK(page_marked(GA + DESC_OFF));
	CHECK_EQ(marked_pages(), 2);
	memset(log_bits, 0, sizeof(log_bits));
	/* A wrote 4097 bytes: the first data page and one byte of the next. */
	CHECK_EQ(uvirtio_devq_push(&f->q, ha, 4097), 0);
	CHECK(page_marked(data + 0x1000));
	CHECK(page_marked(data + 0x2000));
	CHECK(!page_marked(data + 0x5000));
	CHECK(!page_marked(data)); /* the header is read, never written */
	CHECK(page_marked(GA + DESC_OFF));
	CHECK_EQ(marked_pages(), 3);
	/* Off: nothing more. */
	memset(log_bits, 0, sizeof(log_bits));
	CHECK(uvirtio_dirty_log_switch(&log, NULL) == &area);
	drv_add(f, b, 1, 3);
	CHECK_EQ(uvirtio_devq_pop(&f->q, &f->req), 1);
	CHECK_EQ(uvirtio_devq_push(&f->q, f->req.id, 100), 0);
	CHECK_EQ(marked_pages(), 0);
	uvirtio_devq_set_dirty_log(&f->q, NULL, 0);
	fix_fini(f);
}

TEST_MAIN(T(test_packed_out_of_order_pushes_use_completion_order),
	  T(test_packed_dirty_log_marks_recorded_ranges_after_out_of_order_completion),
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
