// SPDX-License-Identifier: MIT
/* Device core lifecycle: per-queue reset, suspend and resume, snapshot and
 * restore (split and packed rings). Fixtures: device_fixture.h. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "harness.h"
#include "device_fixture.h"
#include "uvirtio/snapshot.h"
#include "../support/core_internal.h"

/* Per-queue reset. */

#define RR UVIRTIO_BIT(VIRTIO_F_RING_RESET)
#define SUSP UVIRTIO_BIT(VIRTIO_F_SUSPEND)

static void test_device_queue_reset_refused_without_ring_reset(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1), 0);
	CHECK_EQ(uvirtio_device_queue_reset(&q.t.dev, 0), -EPERM);
	CHECK(uvirtio_device_queue_ready(&q.t.dev, 0));
	CHECK_EQ(q.stops[0], 0);
	CHECK_EQ(uvirtio_device_queue_reset(&q.t.dev, 2), -EINVAL);
	td_fini(&q.t);
}

static void test_device_queue_reset_finishes_in_flight_then_uses_no_buffer(void)
{
	struct qtdev q;
	uint16_t used_after;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(negotiate(&q.t, V1 | RR) & VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_FEATURES_OK);
	CHECK_EQ(uvirtio_drvq_create(&q.t.dq, &q.t.dma, 0, 16, V1, 0), 0);
	CHECK_EQ(add_one(&q.t), 0);
	{
		struct uvirtio_queue_layout l = layout_of(&q.t.dq);

		CHECK_EQ(uvirtio_device_queue_enable(&q.t.dev, 0, &l), 0);
	}
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, RUNNING_STATUS), 0);
	CHECK(q.t.holding);
	CHECK_EQ(uvirtio_device_queue_reset(&q.t.dev, 0), 0);
	/* The request taken was finished before the reset returned. */
	CHECK(!q.t.holding);
	CHECK_EQ(q.stops[0], 1);
	used_after = dq_used(&q.t.dq)->idx;
	CHECK_EQ(used_after, 1);
	/* spec: after a queue reset the device uses no buffer of that queue. */
	CHECK(!uvirtio_device_queue_ready(&q.t.dev, 0));
	CHECK_EQ(add_one(&q.t), 0);
	uvirtio_device_queue_notify(&q.t.dev, 0);
	CHECK_EQ(q.notifies[0], 0);
	CHECK_EQ(uvirtio_devq_push(uvirtio_device_queue(&q.t.dev, 0), 0, 0), -ESHUTDOWN);
	CHECK_EQ(dq_used(&q.t.dq)->idx, used_after);
	/* The device as a whole runs on. */
	CHECK_EQ(uvirtio_device_get_status(&q.t.dev), RUNNING_STATUS);
	td_fini(&q.t);
}

static void test_device_queue_reset_forgets_avail_and_used_state_and_accepts_new_size(void)
{
	struct qtdev q;
	struct uvirtio_drvq small = { 0 };
	struct uvirtio_queue_layout l;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1 | RR), 0);
	/* Move the ring on a few entries first. */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(add_one(&q.t), 0);
		uvirtio_device_queue_stop(&q.t.dev, 0);
		l = layout_of(&q.t.dq);
		CHECK_EQ(uvirtio_device_queue_enable_at(&q.t.dev, 0, &l, (uint16_t)(i + 1),
							(uint16_t)(i + 1)), 0);
	}
	CHECK_EQ(uvirtio_device_queue_reset(&q.t.dev, 0), 0);
	CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&q.t.dev, 0)), 0);
	uvirtio_device_queue_layout(&q.t.dev, 0, &l);
	CHECK_EQ(l.num, 0);
	/* spec: the driver may re-enable the queue with a different size. */
	CHECK_EQ(uvirtio_drvq_create(&small, &q.t.dma, 0, 4, V1, 0), 0);
	l = layout_of(&small);
	CHECK_EQ(uvirtio_device_queue_enable(&q.t.dev, 0, &l), 0);
	CHECK(uvirtio_device_queue_ready(&q.t.dev, 0));
	CHECK_EQ(uvirtio_devq_size(uvirtio_device_queue(&q.t.dev, 0)), 4);
	/* The new ring starts at index 0: its first buffer is taken. */
	{
		struct iovec in = { .iov_base = guest + 0x90000, .iov_len = 8 };
		int tok;

		CHECK_EQ(uvirtio_drvq_add(&small, NULL, 0, &in, 1, &tok), 0);
	}
	uvirtio_device_queue_stop(&q.t.dev, 0);
	CHECK_EQ(uvirtio_device_queue_enable(&q.t.dev, 0, &l), 0);
	CHECK(q.t.holding);
	CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&q.t.dev, 0)), 1);
	uvirtio_device_reset(&q.t.dev);
	uvirtio_drvq_destroy(&small);
	td_fini(&q.t);
}

static void test_device_queue_reset_leaves_other_queues_running(void)
{
	struct qtdev q;
	struct uvirtio_drvq dq1 = { 0 };
	struct uvirtio_queue_layout l;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1 | RR), 0);
	CHECK_EQ(uvirtio_drvq_create(&dq1, &q.t.dma, 1, 8, V1, 0), 0);
	l = layout_of(&dq1);
	CHECK_EQ(uvirtio_device_queue_enable(&q.t.dev, 1, &l), 0);
	CHECK_EQ(uvirtio_device_queue_reset(&q.t.dev, 0), 0);
	CHECK_EQ(q.stops[1], 0);
	CHECK(uvirtio_device_queue_ready(&q.t.dev, 1));
	uvirtio_device_queue_notify(&q.t.dev, 1);
	CHECK_EQ(q.notifies[1], 1);
	uvirtio_device_reset(&q.t.dev);
	uvirtio_drvq_destroy(&dq1);
	td_fini(&q.t);
}

static void test_device_suspend_refused_without_suspend_feature(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1), 0);
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, RUNNING_STATUS | VIRTIO_CONFIG_S_SUSPEND), -EINVAL);
	CHECK_EQ(uvirtio_device_get_status(&q.t.dev), RUNNING_STATUS);
	CHECK_EQ(q.stops[0], 0);
	td_fini(&q.t);
}

static void test_device_suspend_refused_before_driver_ok(void)
{
	struct qtdev q;
	uint8_t st;

	CHECK_EQ(qt_init(&q), 0);
	st = negotiate(&q.t, V1 | SUSP);
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, st | VIRTIO_CONFIG_S_SUSPEND), -EINVAL);
	/* Nor in the same write as DRIVER_OK. */
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, st | VIRTIO_CONFIG_S_DRIVER_OK |
						      VIRTIO_CONFIG_S_SUSPEND), -EINVAL);
	CHECK_EQ(uvirtio_device_get_status(&q.t.dev), st);
	td_fini(&q.t);
}

static void test_device_suspend_finishes_in_flight_then_presents_suspend_and_clears_driver_ok(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(negotiate(&q.t, V1 | SUSP) & VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_FEATURES_OK);
	CHECK_EQ(uvirtio_drvq_create(&q.t.dq, &q.t.dma, 0, 16, V1, 0), 0);
	CHECK_EQ(add_one(&q.t), 0);
	{
		struct uvirtio_queue_layout l = layout_of(&q.t.dq);

		CHECK_EQ(uvirtio_device_queue_enable(&q.t.dev, 0, &l), 0);
	}
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, RUNNING_STATUS), 0);
	CHECK(q.t.holding);
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, RUNNING_STATUS | VIRTIO_CONFIG_S_SUSPEND), 0);
	CHECK(!q.t.holding);
	CHECK_EQ(dq_used(&q.t.dq)->idx, 1);
	CHECK_EQ(uvirtio_device_get_status(&q.t.dev),
		 (RUNNING_STATUS | VIRTIO_CONFIG_S_SUSPEND) & ~VIRTIO_CONFIG_S_DRIVER_OK);
	CHECK(uvirtio_device_suspended(&q.t.dev));
	/* Queues stay enabled as the driver sees them. */
	CHECK(uvirtio_device_queue_ready(&q.t.dev, 0));
	td_fini(&q.t);
}

static uint8_t suspend_running(struct qtdev *q)
{
	uvirtio_device_set_status(&q->t.dev, RUNNING_STATUS | VIRTIO_CONFIG_S_SUSPEND);
	return uvirtio_device_get_status(&q->t.dev);
}

static void test_device_suspended_takes_no_buffer_and_sends_no_notification(void)
{
	struct qtdev q;
	unsigned used_notifies;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1 | SUSP), 0);
	suspend_running(&q);
	used_notifies = q.t.notifies_used;
	CHECK_EQ(add_one(&q.t), 0);
	uvirtio_device_queue_notify(&q.t.dev, 0);
	CHECK_EQ(q.notifies[0], 0);
	CHECK(!q.t.holding);
	uvirtio_device_notify(&q.t.dev, 0);
	uvirtio_device_reschedule(&q.t.dev, 0);
	CHECK_EQ(q.t.notifies_used, used_notifies);
	CHECK_EQ(q.t.reschedules, 0);
	CHECK_EQ(dq_used(&q.t.dq)->idx, 0);
	td_fini(&q.t);
}

static void test_device_config_change_held_back_while_suspended_until_resume(void)
{
	struct testdev t;
	uint32_t gen;
	char b;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(bring_up(&t, V1 | SUSP), 0);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, RUNNING_STATUS | VIRTIO_CONFIG_S_SUSPEND), 0);
	gen = uvirtio_device_config_generation(&t.dev);
	CHECK_EQ(uvirtio_device_config_update(&t.dev, 9, "Z", 1), 0);
	CHECK_EQ(uvirtio_device_config_read(&t.dev, 9, &b, 1), 0);
	CHECK_EQ(b, 0);
	CHECK_EQ(uvirtio_device_config_generation(&t.dev), gen);
	CHECK_EQ(t.notifies_config, 0);
	/* Resume publishes it: new bytes, new generation, one notification. */
	CHECK_EQ(uvirtio_device_set_status(&t.dev, uvirtio_device_get_status(&t.dev) |
						      VIRTIO_CONFIG_S_DRIVER_OK), 0);
	CHECK_EQ(uvirtio_device_config_read(&t.dev, 9, &b, 1), 0);
	CHECK_EQ(b, 'Z');
	CHECK(uvirtio_device_config_generation(&t.dev) != gen);
	CHECK_EQ(t.notifies_config, 1);
	td_fini(&t);
}

static void test_device_resume_clears_suspend_and_continues_where_it_stopped(void)
{
	struct qtdev q;
	uint8_t st;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1 | SUSP), 0);
	st = suspend_running(&q);
	/* Made available while suspended: taken after resume. */
	CHECK_EQ(add_one(&q.t), 0);
	CHECK_EQ(add_one(&q.t), 0);
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, st | VIRTIO_CONFIG_S_DRIVER_OK), 0);
	CHECK_EQ(uvirtio_device_get_status(&q.t.dev), RUNNING_STATUS);
	CHECK_EQ(q.starts[0], 2);
	CHECK(q.t.holding);
	CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&q.t.dev, 0)), 1);
	/* A driver may also clear SUSPEND in its DRIVER_OK write. */
	st = suspend_running(&q);
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, (st & ~VIRTIO_CONFIG_S_SUSPEND) |
						      VIRTIO_CONFIG_S_DRIVER_OK), 0);
	CHECK_EQ(uvirtio_device_get_status(&q.t.dev), RUNNING_STATUS);
	CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&q.t.dev, 0)), 2);
	td_fini(&q.t);
}

static int cannot_suspend(struct uvirtio_device *dev)
{
	(void)dev;
	return -EIO;
}

static void test_device_that_cannot_suspend_sets_device_needs_reset(void)
{
	struct qtdev q;
	struct uvirtio_device_ops ops = qt_ops;

	ops.suspend = cannot_suspend;
	CHECK_EQ(qt_init_with(&q, &ops), 0);
	CHECK_EQ(bring_up(&q.t, V1 | SUSP), 0);
	CHECK_EQ(uvirtio_device_set_status(&q.t.dev, RUNNING_STATUS | VIRTIO_CONFIG_S_SUSPEND), 0);
	CHECK(uvirtio_device_get_status(&q.t.dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	CHECK(!uvirtio_device_suspended(&q.t.dev));
	uvirtio_device_reset(&q.t.dev);
	td_fini(&q.t);
}

/* A second device of the same type on the same guest memory, as a new
 * process would map it; nothing of the first is shared. */
static int second_device(struct qtdev *a, struct qtdev *b)
{
	memset(b, 0, sizeof(*b));
	b->t.mem = a->t.mem;
	uvirtio_req_init(&b->t.held, b->t.iov, 8);
	return uvirtio_device_init(&b->t.dev, &qt_ops, b, NULL, 0, &b->t.mem);
}

static long take_snapshot(struct qtdev *q, unsigned char *blob, size_t size)
{
	/* One buffer made available, not yet taken: the new device takes it. */
	if (bring_up(&q->t, V1 | SUSP | RR) || add_one(&q->t))
		return -1;
	suspend_running(q);
	return uvirtio_device_snapshot(&q->t.dev, blob, size);
}

static void test_snapshot_refused_unless_suspended(void)
{
	struct qtdev q;
	unsigned char blob[512];

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1 | SUSP), 0);
	CHECK_EQ(uvirtio_device_snapshot(&q.t.dev, blob, sizeof(blob)), -EBUSY);
	suspend_running(&q);
	CHECK_EQ(uvirtio_device_snapshot(&q.t.dev, blob, 10), -ENOSPC);
	CHECK_EQ(uvirtio_device_snapshot(&q.t.dev, blob, sizeof(blob)),
		 (long)uvirtio_device_snapshot_size(&q.t.dev));
	td_fini(&q.t);
}

static void test_snapshot_restored_device_resumes_where_the_first_stopped(void)
{
	struct qtdev a, b;
	unsigned char blob[512];
	long n;
	const char *why = NULL;

	CHECK_EQ(qt_init(&a), 0);
	n = take_snapshot(&a, blob, sizeof(blob));
	CHECK(n > 0);
	CHECK_EQ(second_device(&a, &b), 0);
	CHECK_EQ(uvirtio_device_restore(&b.t.dev, blob, (size_t)n, &why), 0);
	CHECK(why == NULL);
	CHECK(uvirtio_device_suspended(&b.t.dev));
	CHECK_EQ(uvirtio_device_accepted_features(&b.t.dev), V1 | SUSP | RR);
	CHECK(uvirtio_device_queue_ready(&b.t.dev, 0));
	/* Buffers the first device never took go to the new one, in order. */
	CHECK_EQ(add_one(&a.t), 0);
	CHECK_EQ(uvirtio_device_set_status(&b.t.dev, uvirtio_device_get_status(&b.t.dev) |
						      VIRTIO_CONFIG_S_DRIVER_OK), 0);
	CHECK_EQ(uvirtio_device_get_status(&b.t.dev), RUNNING_STATUS);
	CHECK(b.t.holding);
	CHECK_EQ(b.t.held.id, 0);
	CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&b.t.dev, 0)), 1);
	uvirtio_device_destroy(&b.t.dev);
	td_fini(&a.t);
}

/* Restore @blob (@n bytes) into a fresh device; expect @err and a reason,
 * and the device untouched. */
static void expect_refused(struct qtdev *a, const unsigned char *blob, size_t n, int err)
{
	struct qtdev b;
	const char *why = NULL;

	CHECK_EQ(second_device(a, &b), 0);
	CHECK_EQ(uvirtio_device_restore(&b.t.dev, blob, n, &why), err);
	CHECK(why != NULL && strlen(why) > 10);
	CHECK_EQ(uvirtio_device_get_status(&b.t.dev), 0);
	CHECK_EQ(uvirtio_device_accepted_features(&b.t.dev), 0);
	CHECK(!uvirtio_device_queue_ready(&b.t.dev, 0));
	uvirtio_device_destroy(&b.t.dev);
}

/* Rewrite the CRC after an edit, so only the edit is judged. */
static void reseal(unsigned char *blob, size_t n)
{
	uint32_t crc = crc32_ieee(blob, n - 4);

	for (int i = 0; i < 4; i++)
		blob[n - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
}

static void test_restore_refuses_corrupt_snapshot(void)
{
	struct qtdev a;
	unsigned char blob[512];
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_snapshot(&a, blob, sizeof(blob));
	CHECK(n > 40);
	blob[40] ^= 1;
	expect_refused(&a, blob, (size_t)n, -EBADMSG);
	blob[40] ^= 1;
	blob[0] = 'X';
	expect_refused(&a, blob, (size_t)n, -EBADMSG);
	td_fini(&a.t);
}

static void test_restore_refuses_truncated_snapshot(void)
{
	struct qtdev a;
	unsigned char blob[512];
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_snapshot(&a, blob, sizeof(blob));
	CHECK(n > 0);
	for (size_t cut = 0; cut < (size_t)n; cut += 7)
		expect_refused(&a, blob, cut, -EBADMSG);
	td_fini(&a.t);
}

static void test_restore_refuses_other_snapshot_version(void)
{
	struct qtdev a;
	unsigned char blob[512];
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_snapshot(&a, blob, sizeof(blob));
	CHECK(n > 0);
	blob[8] = 2;
	reseal(blob, (size_t)n);
	expect_refused(&a, blob, (size_t)n, -EPROTONOSUPPORT);
	td_fini(&a.t);
}

static void test_restore_refuses_snapshot_of_another_device(void)
{
	struct qtdev a;
	unsigned char blob[512];
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_snapshot(&a, blob, sizeof(blob));
	CHECK(n > 0);
	blob[16] ^= 0x0f; /* device id */
	reseal(blob, (size_t)n);
	expect_refused(&a, blob, (size_t)n, -EINVAL);
	td_fini(&a.t);
}

static void test_restore_refuses_ring_outside_memory_and_unfinished_requests(void)
{
	struct qtdev a;
	unsigned char blob[512], copy[512];
	size_t q0 = 8 + 5 * 4 + 3 * 8 + 4 + 4; /* first queue record */
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_snapshot(&a, blob, sizeof(blob));
	CHECK(n > 0);
	memcpy(copy, blob, (size_t)n);
	copy[q0 + 8 + 7] = 0x7f; /* desc address far outside guest memory */
	reseal(copy, (size_t)n);
	expect_refused(&a, copy, (size_t)n, -EINVAL);
	memcpy(copy, blob, (size_t)n);
	copy[q0 + 32] ^= 3; /* next avail no longer matches used idx */
	reseal(copy, (size_t)n);
	expect_refused(&a, copy, (size_t)n, -EBADMSG);
	td_fini(&a.t);
}

static void test_restore_refused_into_a_device_in_use(void)
{
	struct qtdev a;
	unsigned char blob[512];
	const char *why;
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_snapshot(&a, blob, sizeof(blob));
	CHECK(n > 0);
	CHECK_EQ(uvirtio_device_restore(&a.t.dev, blob, (size_t)n, &why), -EBUSY);
	td_fini(&a.t);
}

/* The packed ring in snapshot and restore. */

/* @n round trips on queue 0 of @dev for the driver ring of @drv: made
 * available, taken and used by hand (as a queue thread would), collected. */
static int round_trips(struct testdev *drv, struct uvirtio_device *dev, unsigned n)
{
	struct uvirtio_devq *q = uvirtio_device_queue(dev, 0);
	struct iovec iov[4];
	struct uvirtio_req req;

	for (unsigned i = 0; i < n; i++) {
		void *token;
		uint32_t len;

		uvirtio_req_init(&req, iov, 4);
		if (add_one(drv) || uvirtio_devq_pop(q, &req) != 1 || uvirtio_devq_push(q, req.id, 8) ||
		    uvirtio_drvq_get(&drv->dq, &token, &len) != 1 || len != 8)
			return -1;
	}
	return 0;
}

/* A packed snapshot: @trips round trips on a ring of 16, one buffer made
 * available and not taken. */
static long take_packed_snapshot(struct qtdev *q, unsigned char *blob, size_t size, unsigned trips)
{
	if (bring_up(&q->t, V1 | SUSP | RR | PACKED) || round_trips(&q->t, &q->t.dev, trips) ||
	    add_one(&q->t))
		return -1;
	suspend_running(q);
	return uvirtio_device_snapshot(&q->t.dev, blob, size);
}

#define Q0 (8 + 5 * 4 + 3 * 8 + 4 + 4) /* first queue record of a snapshot */

/* A packed ring of 16's index after @n descriptors: position | wrap << 15,
 * the wrap counter starting at 1 and flipping at each pass of the end. */
static uint16_t packed_at(unsigned n)
{
	return (uint16_t)(n % 16 | ((n / 16) % 2 ? 0 : 0x8000));
}

/* Snapshot after @trips round trips, restore, carry on across the end. */
static void packed_snapshot_round_trip(unsigned trips)
{
	struct qtdev a, b;
	unsigned char blob[512];
	struct uvirtio_devq *q;
	const char *why = NULL;
	uint16_t at = packed_at(trips);
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_packed_snapshot(&a, blob, sizeof(blob), trips);
	CHECK(n > Q0 + 36);
	/* The format keeps the wrap counters apart from the positions. */
	CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&a.t.dev, 0)), at);
	CHECK_EQ(uvirtio_devq_used_index(uvirtio_device_queue(&a.t.dev, 0)), at);
	CHECK_EQ(blob[Q0 + 1], at >> 15); /* avail wrap counter */
	CHECK_EQ(blob[Q0 + 2], at >> 15); /* used wrap counter */
	CHECK_EQ(blob[Q0 + 32] | blob[Q0 + 33] << 8, at & 0x7fff);
	CHECK_EQ(blob[Q0 + 34] | blob[Q0 + 35] << 8, at & 0x7fff);
	CHECK_EQ(second_device(&a, &b), 0);
	CHECK_EQ(uvirtio_device_restore(&b.t.dev, blob, (size_t)n, &why), 0);
	CHECK(why == NULL);
	q = uvirtio_device_queue(&b.t.dev, 0);
	CHECK(uvirtio_devq_is_packed(q));
	CHECK_EQ(uvirtio_devq_next_avail(q), at);
	CHECK_EQ(uvirtio_devq_used_index(q), at);
	/* Resumed: the buffer the first device left is the new one's. */
	CHECK_EQ(uvirtio_device_set_status(&b.t.dev, uvirtio_device_get_status(&b.t.dev) |
						      VIRTIO_CONFIG_S_DRIVER_OK), 0);
	CHECK_EQ(uvirtio_device_get_status(&b.t.dev), RUNNING_STATUS);
	CHECK(b.t.holding);
	CHECK_EQ(uvirtio_devq_push(q, b.t.held.id, 8), 0);
	b.t.holding = false;
	{
		void *token;
		uint32_t len;

		CHECK_EQ(uvirtio_drvq_get(&a.t.dq, &token, &len), 1);
		CHECK_EQ(len, 8);
	}
	/* Across the ring's end again: the wrap counters flip once more. */
	CHECK_EQ(round_trips(&a.t, &b.t.dev, 16), 0);
	CHECK_EQ(uvirtio_devq_next_avail(q), packed_at(trips + 17));
	CHECK_EQ(uvirtio_devq_used_index(q), packed_at(trips + 17));
	CHECK_EQ(uvirtio_drvq_used_index(&a.t.dq), packed_at(trips + 17));
	CHECK(!uvirtio_devq_is_broken(q) && !uvirtio_drvq_is_broken(&a.t.dq));
	uvirtio_device_destroy(&b.t.dev);
	td_fini(&a.t);
}

static void test_snapshot_packed_restored_with_wrap_counters_and_io_carries_on(void)
{
	/* Position 3 with wrap counters 0 (one pass), then 1 (two passes):
	 * neither a counter lost nor one stuck at its start value passes. */
	packed_snapshot_round_trip(19);
	if (!test_failed)
		packed_snapshot_round_trip(35);
}

/* As expect_refused(), and the reason names @part. */
static void expect_refused_because(struct qtdev *a, const unsigned char *blob, size_t n, int err,
				   const char *part)
{
	struct qtdev b;
	const char *why = NULL;

	CHECK_EQ(second_device(a, &b), 0);
	CHECK_EQ(uvirtio_device_restore(&b.t.dev, blob, n, &why), err);
	if (!why || !strstr(why, part))
		printf("# why = \"%s\"\n", why ? why : "(null)");
	CHECK(why && strstr(why, part));
	CHECK_EQ(uvirtio_device_get_status(&b.t.dev), 0);
	CHECK(!uvirtio_device_queue_ready(&b.t.dev, 0));
	uvirtio_device_destroy(&b.t.dev);
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void test_restore_refuses_wrap_counters_on_split_and_packed_position_outside_ring(void)
{
	struct qtdev a, s;
	unsigned char blob[512], copy[512];
	long n;

	CHECK_EQ(qt_init(&a), 0);
	n = take_packed_snapshot(&a, blob, sizeof(blob), 19);
	CHECK(n > Q0 + 36);
	/* A wrap counter is one bit (both, so the indices still agree). */
	memcpy(copy, blob, (size_t)n);
	copy[Q0 + 1] = copy[Q0 + 2] = 2;
	reseal(copy, (size_t)n);
	expect_refused_because(&a, copy, (size_t)n, -EBADMSG, "out of range");
	/* A position at the queue size or past 15 bits. */
	memcpy(copy, blob, (size_t)n);
	put16(copy + Q0 + 32, 16);
	put16(copy + Q0 + 34, 16);
	reseal(copy, (size_t)n);
	expect_refused_because(&a, copy, (size_t)n, -EBADMSG, "outside its ring");
	put16(copy + Q0 + 32, 0x8003);
	put16(copy + Q0 + 34, 0x8003);
	reseal(copy, (size_t)n);
	expect_refused_because(&a, copy, (size_t)n, -EBADMSG, "out of range");
	/* The untouched one is accepted (the edits alone were refused). */
	{
		struct qtdev b;
		const char *why = NULL;

		CHECK_EQ(second_device(&a, &b), 0);
		CHECK_EQ(uvirtio_device_restore(&b.t.dev, blob, (size_t)n, &why), 0);
		uvirtio_device_destroy(&b.t.dev);
	}
	td_fini(&a.t);

	/* A split ring has no wrap counters. */
	CHECK_EQ(qt_init(&s), 0);
	n = take_snapshot(&s, blob, sizeof(blob));
	CHECK(n > Q0 + 36);
	memcpy(copy, blob, (size_t)n);
	copy[Q0 + 1] = 1;
	reseal(copy, (size_t)n);
	expect_refused_because(&s, copy, (size_t)n, -EBADMSG, "wrap counters on a split ring");
	memcpy(copy, blob, (size_t)n);
	copy[Q0 + 2] = 1;
	reseal(copy, (size_t)n);
	expect_refused_because(&s, copy, (size_t)n, -EBADMSG, "wrap counters on a split ring");
	td_fini(&s.t);
}

TEST_MAIN(T(test_device_queue_reset_refused_without_ring_reset),
	  T(test_device_queue_reset_finishes_in_flight_then_uses_no_buffer),
	  T(test_device_queue_reset_forgets_avail_and_used_state_and_accepts_new_size),
	  T(test_device_queue_reset_leaves_other_queues_running),
	  T(test_device_suspend_refused_without_suspend_feature),
	  T(test_device_suspend_refused_before_driver_ok),
	  T(test_device_suspend_finishes_in_flight_then_presents_suspend_and_clears_driver_ok),
	  T(test_device_suspended_takes_no_buffer_and_sends_no_notification),
	  T(test_device_config_change_held_back_while_suspended_until_resume),
	  T(test_device_resume_clears_suspend_and_continues_where_it_stopped),
	  T(test_device_that_cannot_suspend_sets_device_needs_reset),
	  T(test_snapshot_refused_unless_suspended),
	  T(test_snapshot_restored_device_resumes_where_the_first_stopped),
	  T(test_restore_refuses_corrupt_snapshot),
	  T(test_restore_refuses_truncated_snapshot),
	  T(test_restore_refuses_other_snapshot_version),
	  T(test_restore_refuses_snapshot_of_another_device),
	  T(test_restore_refuses_ring_outside_memory_and_unfinished_requests),
	  T(test_restore_refused_into_a_device_in_use),
	  T(test_snapshot_packed_restored_with_wrap_counters_and_io_carries_on),
	  T(test_restore_refuses_wrap_counters_on_split_and_packed_position_outside_ring))
