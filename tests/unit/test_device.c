// SPDX-License-Identifier: MIT
/* Device core: status machine, feature negotiation, config space, reset,
 * queues and their threads, notifications. Lifecycle (per-queue reset,
 * suspend, snapshot) is test_device_lifecycle.c; fixtures device_fixture.h. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "harness.h"
#include "device_fixture.h"

static void test_device_always_offers_version_1(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK(uvirtio_device_get_features(&t.dev) & V1);
	CHECK_EQ(uvirtio_device_set_offered(&t.dev, UVIRTIO_BIT(F_BASE)), 0);
	CHECK_EQ(uvirtio_device_get_features(&t.dev), V1 | UVIRTIO_BIT(F_BASE));
	td_fini(&t);
}

static void test_device_features_ok_accepts_any_valid_subset(void)
{
	struct testdev t;
	const uint64_t subsets[] = {
		V1,
		V1 | UVIRTIO_BIT(F_BASE),
		V1 | UVIRTIO_BIT(F_BASE) | UVIRTIO_BIT(F_NEEDS_BASE),
		V1 | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC),
	};

	for (unsigned i = 0; i < sizeof(subsets) / sizeof(subsets[0]); i++) {
		CHECK_EQ(td_init(&t), 0);
		CHECK(negotiate(&t, subsets[i]) & VIRTIO_CONFIG_S_FEATURES_OK);
		CHECK_EQ(uvirtio_device_accepted_features(&t.dev), subsets[i]);
		td_fini(&t);
	}
}

static void test_device_features_ok_refused_for_feature_not_offered(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK(!(negotiate(&t, V1 | UVIRTIO_BIT(20)) & VIRTIO_CONFIG_S_FEATURES_OK));
	CHECK_EQ(uvirtio_device_accepted_features(&t.dev), 0);
	td_fini(&t);
}

static void test_device_features_ok_refused_for_missing_dependency(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK(!(negotiate(&t, V1 | UVIRTIO_BIT(F_NEEDS_BASE)) & VIRTIO_CONFIG_S_FEATURES_OK));
	td_fini(&t);
}

static void test_device_features_ok_refused_by_device_type(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK(!(negotiate(&t, V1 | UVIRTIO_BIT(F_REFUSED_ALONE)) & VIRTIO_CONFIG_S_FEATURES_OK));
	td_fini(&t);
}

static void test_device_features_ok_refused_without_version_1(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK(!(negotiate(&t, UVIRTIO_BIT(F_BASE)) & VIRTIO_CONFIG_S_FEATURES_OK));
	td_fini(&t);
}

static void test_device_features_fixed_after_features_ok(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK(negotiate(&t, V1) & VIRTIO_CONFIG_S_FEATURES_OK);
	CHECK_EQ(uvirtio_device_set_driver_features(&t.dev, V1 | UVIRTIO_BIT(F_BASE)), -EBUSY);
	CHECK_EQ(uvirtio_device_accepted_features(&t.dev), V1);
	td_fini(&t);
}

static void test_device_status_bits_cannot_be_cleared_by_driver(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK(negotiate(&t, V1) & VIRTIO_CONFIG_S_FEATURES_OK);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, VIRTIO_CONFIG_S_ACKNOWLEDGE), -EINVAL);
	CHECK_EQ(uvirtio_device_get_status(&t.dev), 11);
	td_fini(&t);
}

static void test_device_driver_ok_refused_without_features_ok(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER), 0);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
							     VIRTIO_CONFIG_S_DRIVER_OK),
		 -EINVAL);
	CHECK_EQ(uvirtio_device_get_status(&t.dev), 3);
	CHECK_EQ(t.starts, 0);
	td_fini(&t);
}

static void test_device_driver_ok_refused_in_one_write_with_refused_features(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(uvirtio_device_set_driver_features(&t.dev, V1 | UVIRTIO_BIT(20)), 0);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, RUNNING_STATUS), -EINVAL);
	CHECK_EQ(uvirtio_device_get_status(&t.dev), 0);
	CHECK_EQ(t.starts, 0);
	CHECK(!uvirtio_device_running(&t.dev));
	CHECK_EQ(uvirtio_device_accepted_features(&t.dev), 0);
	td_fini(&t);
}

static void test_device_driver_ok_starts_device(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(bring_up(&t, V1), 0);
	CHECK_EQ(uvirtio_device_get_status(&t.dev), RUNNING_STATUS);
	CHECK_EQ(t.starts, 1);
	CHECK(uvirtio_device_running(&t.dev));
	td_fini(&t);
}

static void test_device_needs_reset_bit_is_the_devices(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_NEEDS_RESET), 0);
	CHECK_EQ(uvirtio_device_get_status(&t.dev), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	td_fini(&t);
}

static void test_device_queue_enable_refused_before_features_ok(void)
{
	struct testdev t;
	struct uvirtio_queue_layout l = { 16, GA, GA + 0x1000, GA + 0x2000 };

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(uvirtio_device_queue_enable(&t.dev, 0, &l), -EINVAL);
	CHECK(negotiate(&t, V1) & VIRTIO_CONFIG_S_FEATURES_OK);
	CHECK_EQ(uvirtio_device_queue_enable(&t.dev, 0, &l), 0);
	CHECK_EQ(uvirtio_device_queue_enable(&t.dev, 2, &l), -EINVAL);
	l.num = 32;
	CHECK_EQ(uvirtio_device_queue_enable(&t.dev, 0, &l), -EINVAL);
	CHECK_EQ(uvirtio_device_queue_max_size(&t.dev, 1), 16);
	CHECK_EQ(uvirtio_device_queue_max_size(&t.dev, 2), 0);
	td_fini(&t);
}

static void test_device_config_read_write_bounds(void)
{
	struct testdev t;
	char buf[16] = "abcdefgh";

	CHECK_EQ(td_init(&t), 0);
	memcpy(t.config, "0123456789abcdef", 16);
	CHECK_EQ(uvirtio_device_config_read(&t.dev, 4, buf, 4), 0);
	CHECK(!memcmp(buf, "4567", 4));
	CHECK_EQ(uvirtio_device_config_read(&t.dev, 12, buf, 8), -EINVAL);
	CHECK_EQ(uvirtio_device_config_read(&t.dev, UINT32_MAX, buf, 2), -EINVAL);
	CHECK_EQ(uvirtio_device_config_write(&t.dev, 8, "XY", 2), 0);
	CHECK(!memcmp(t.config + 8, "XY", 2));
	CHECK_EQ(uvirtio_device_config_write(&t.dev, 0, "XY", 2), -EPERM);
	CHECK(!memcmp(t.config, "01", 2));
	CHECK_EQ(uvirtio_device_config_write(&t.dev, 15, "XY", 2), -EINVAL);
	td_fini(&t);
}

static void test_device_config_update_bumps_generation_and_notifies(void)
{
	struct testdev t;
	uint32_t gen;

	CHECK_EQ(td_init(&t), 0);
	gen = uvirtio_device_config_generation(&t.dev);
	CHECK_EQ(uvirtio_device_config_update(&t.dev, 0, "Z", 1), 0);
	CHECK(uvirtio_device_config_generation(&t.dev) != gen);
	/* No driver yet: nobody to notify. */
	CHECK_EQ(t.notifies_config, 0);
	CHECK_EQ(bring_up(&t, V1), 0);
	CHECK_EQ(uvirtio_device_config_update(&t.dev, 1, "Z", 1), 0);
	CHECK_EQ(t.notifies_config, 1);
	td_fini(&t);
}

static void test_device_broken_queue_sets_needs_reset_and_notifies_config(void)
{
	struct testdev t;
	struct uvirtio_device_stats st;
	struct iovec in;
	int tok;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(bring_up(&t, V1), 0);
	in = (struct iovec){ .iov_base = guest + 0x80000, .iov_len = 8 };
	CHECK_EQ(uvirtio_drvq_add(&t.dq, NULL, 0, &in, 1, &tok), 0);
	dq_desc(&t.dq)[0].next = 99; /* corrupt: NEXT to an index past the queue */
	dq_desc(&t.dq)[0].flags |= VRING_DESC_F_NEXT;
	uvirtio_device_queue_notify(&t.dev, 0);
	CHECK(uvirtio_devq_is_broken(uvirtio_device_queue(&t.dev, 0)));
	CHECK(uvirtio_device_get_status(&t.dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	uvirtio_device_get_stats(&t.dev, &st);
	CHECK_STR(st.needs_reset_reason, "descriptor index out of range");
	CHECK_EQ(t.notifies_config, 1);
	/* A device that needs reset ignores kicks, without spinning. */
	uvirtio_device_queue_notify(&t.dev, 0);
	CHECK(!uvirtio_device_running(&t.dev));
	td_fini(&t);
}

static void test_device_reset_forgets_negotiated_state(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(bring_up(&t, V1 | UVIRTIO_BIT(F_BASE)), 0);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, 0), 0);
	CHECK_EQ(uvirtio_device_get_status(&t.dev), 0);
	CHECK_EQ(uvirtio_device_accepted_features(&t.dev), 0);
	CHECK_EQ(uvirtio_device_get_driver_features(&t.dev), 0);
	CHECK(!uvirtio_devq_is_ready(uvirtio_device_queue(&t.dev, 0)));
	CHECK_EQ(t.resets, 1);
	/* Renegotiation with a different set works. */
	uvirtio_drvq_destroy(&t.dq);
	CHECK_EQ(bring_up(&t, V1 | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)), 0);
	CHECK_EQ(uvirtio_device_accepted_features(&t.dev), V1 | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX));
	td_fini(&t);
}

/* One request in flight when the reset comes; @drop picks cancel or complete. */
static void reset_with_request_in_flight(bool drop)
{
	struct testdev t;
	struct iovec in;
	uint16_t used_before;
	unsigned notified_before;
	int tok;

	CHECK_EQ(td_init(&t), 0);
	t.drop_on_reset = drop;
	CHECK_EQ(bring_up(&t, V1), 0);
	in = (struct iovec){ .iov_base = guest + 0x80000, .iov_len = 8 };
	CHECK_EQ(uvirtio_drvq_add(&t.dq, NULL, 0, &in, 1, &tok), 0);
	uvirtio_device_queue_notify(&t.dev, 0);
	CHECK(t.holding);
	used_before = dq_used(&t.dq)->idx;
	notified_before = t.notifies_used;

	uvirtio_device_reset(&t.dev);
	CHECK(!t.holding);
	CHECK_EQ(dq_used(&t.dq)->idx, drop ? used_before : used_before + 1);
	CHECK_EQ(t.notifies_used, drop ? notified_before : notified_before + 1);

	/* After reset returns: no guest memory written, no notification sent. */
	memset(dq_used(&t.dq), 0x5a, 64);
	CHECK_EQ(uvirtio_devq_push(uvirtio_device_queue(&t.dev, 0), 0, 8), -ESHUTDOWN);
	uvirtio_device_notify(&t.dev, 0);
	uvirtio_device_queue_notify(&t.dev, 0);
	uvirtio_device_config_update(&t.dev, 8, "Q", 1);
	for (unsigned i = 0; i < 64; i++)
		CHECK_EQ(((unsigned char *)dq_used(&t.dq))[i], 0x5a);
	CHECK_EQ(t.notifies_used, drop ? notified_before : notified_before + 1);
	CHECK_EQ(t.notifies_config, 0);
	td_fini(&t);
}

static void test_device_reset_cancels_in_flight_requests_before_returning(void)
{
	reset_with_request_in_flight(true);
}

static void test_device_reset_completes_in_flight_requests_before_returning(void)
{
	reset_with_request_in_flight(false);
}

static void test_device_notify_only_when_driver_asked(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(bring_up(&t, V1), 0);
	uvirtio_devq_push(uvirtio_device_queue(&t.dev, 0), 0, 0);
	uvirtio_device_notify(&t.dev, 0);
	CHECK_EQ(t.notifies_used, 1);
	uvirtio_drvq_disable_cb(&t.dq);
	uvirtio_devq_push(uvirtio_device_queue(&t.dev, 0), 0, 0);
	uvirtio_device_notify(&t.dev, 0);
	CHECK_EQ(t.notifies_used, 1);
	td_fini(&t);
}

static void test_device_serves_buffers_made_available_before_driver_ok(void)
{
	struct testdev t;
	struct uvirtio_queue_layout l;
	struct iovec in;
	int tok;

	CHECK_EQ(td_init(&t), 0);
	CHECK(negotiate(&t, V1) & VIRTIO_CONFIG_S_FEATURES_OK);
	CHECK_EQ(uvirtio_drvq_create(&t.dq, &t.dma, 0, 16, V1, 0), 0);
	l = layout_of(&t.dq);
	CHECK_EQ(uvirtio_device_queue_enable(&t.dev, 0, &l), 0);
	in = (struct iovec){ .iov_base = guest + 0x80000, .iov_len = 8 };
	CHECK_EQ(uvirtio_drvq_add(&t.dq, NULL, 0, &in, 1, &tok), 0);
	/* No kick: the driver may not notify before DRIVER_OK. */
	CHECK(!t.holding);
	CHECK_EQ(uvirtio_device_set_status(&t.dev, RUNNING_STATUS), 0);
	CHECK(t.holding);
	td_fini(&t);
}

static void test_device_reschedule_only_while_running(void)
{
	struct testdev t;

	CHECK_EQ(td_init(&t), 0);
	uvirtio_device_reschedule(&t.dev, 0);
	CHECK_EQ(t.reschedules, 0);
	CHECK_EQ(bring_up(&t, V1), 0);
	uvirtio_device_reschedule(&t.dev, 0);
	uvirtio_device_reschedule(&t.dev, 7);
	CHECK_EQ(t.reschedules, 1);
	td_fini(&t);
}
static void test_device_queue_threads_start_at_driver_ok_for_ready_queues_only(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1), 0);
	CHECK_EQ(q.starts[0], 1);
	CHECK_EQ(q.starts[1], 0);
	td_fini(&q.t);
}

static void test_device_queue_enabled_while_running_starts_at_once(void)
{
	struct qtdev q;
	struct uvirtio_queue_layout l;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1), 0);
	l = layout_of(&q.t.dq);
	CHECK_EQ(uvirtio_device_queue_enable(&q.t.dev, 1, &l), 0);
	CHECK_EQ(q.starts[1], 1);
	td_fini(&q.t);
}

static void test_device_queue_stop_finishes_requests_and_returns_next_avail(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(negotiate(&q.t, V1) & VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_FEATURES_OK);
	CHECK_EQ(uvirtio_drvq_create(&q.t.dq, &q.t.dma, 0, 16, V1, 0), 0);
	CHECK_EQ(add_one(&q.t), 0);
	CHECK_EQ(add_one(&q.t), 0);
	{
		struct uvirtio_queue_layout l = layout_of(&q.t.dq);

		CHECK_EQ(uvirtio_device_queue_enable(&q.t.dev, 0, &l), 0);
		CHECK_EQ(uvirtio_device_set_status(&q.t.dev, RUNNING_STATUS), 0);
		/* The start took one request; stop must finish it. */
		CHECK(q.t.holding);
		CHECK_EQ(uvirtio_device_queue_stop(&q.t.dev, 0), 1);
		CHECK_EQ(q.stops[0], 1);
		CHECK(!q.t.holding);
		CHECK(!uvirtio_devq_is_ready(uvirtio_device_queue(&q.t.dev, 0)));
		/* Resumed where it stopped: the second request comes next. */
		CHECK_EQ(uvirtio_device_queue_enable_at(&q.t.dev, 0, &l, 1, 1), 0);
		CHECK_EQ(q.starts[0], 2);
		CHECK(q.t.holding);
		CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&q.t.dev, 0)), 2);
	}
	td_fini(&q.t);
}

static void test_device_reset_stops_queue_threads_before_reset_op(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1), 0);
	q.norder = 0;
	uvirtio_device_reset(&q.t.dev);
	CHECK_EQ(q.norder, 2);
	CHECK_EQ(q.order[0], 'A');
	CHECK_EQ(q.order[1], 'R');
	/* Not started again, not stopped twice. */
	uvirtio_device_reset(&q.t.dev);
	CHECK_EQ(q.stops[0], 1);
	td_fini(&q.t);
}

static void test_device_queue_thread_notified_only_while_started(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1), 0);
	uvirtio_device_queue_notify(&q.t.dev, 0);
	uvirtio_device_queue_notify(&q.t.dev, 1); /* never enabled */
	CHECK_EQ(q.notifies[0], 1);
	CHECK_EQ(q.notifies[1], 0);
	/* Started is what counts, even when the ring broke meanwhile (the
	 * thread then ignores the kick itself): the ring is no longer ready,
	 * as a broken one is (stopping it clears the same flag). */
	uvirtio_devq_stop(uvirtio_device_queue(&q.t.dev, 0));
	uvirtio_device_queue_notify(&q.t.dev, 0);
	CHECK_EQ(q.notifies[0], 2);
	uvirtio_device_queue_stop(&q.t.dev, 0);
	uvirtio_device_queue_notify(&q.t.dev, 0);
	CHECK_EQ(q.notifies[0], 2);
	td_fini(&q.t);
}

static void test_device_without_config_space_reads_zero_bytes(void)
{
	struct qtdev q;
	char buf[1];

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(uvirtio_device_config_read(&q.t.dev, 0, buf, 0), 0);
	CHECK_EQ(uvirtio_device_config_read(&q.t.dev, 0, buf, 1), -EINVAL);
	CHECK_EQ(uvirtio_device_config_update(&q.t.dev, 0, buf, 0), 0);
	td_fini(&q.t);
}

static void test_device_kick_fd_per_queue(void)
{
	struct qtdev q;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(uvirtio_device_queue_kick_fd(&q.t.dev, 0), -1);
	CHECK_EQ(uvirtio_device_set_kick_fd(&q.t.dev, 1, 42), 0);
	CHECK_EQ(uvirtio_device_queue_kick_fd(&q.t.dev, 1), 42);
	CHECK_EQ(uvirtio_device_set_kick_fd(&q.t.dev, 2, 42), -EINVAL);
	CHECK_EQ(uvirtio_device_queue_kick_fd(&q.t.dev, 2), -1);
	td_fini(&q.t);
}

static void test_device_queue_enable_at_refuses_packed_index_not_below_queue_size(void)
{
	struct qtdev q;
	struct uvirtio_drvq dq1 = { 0 };
	struct uvirtio_queue_layout l;

	CHECK_EQ(qt_init(&q), 0);
	CHECK_EQ(bring_up(&q.t, V1 | PACKED), 0);
	CHECK_EQ(uvirtio_drvq_create(&dq1, &q.t.dma, 1, 12, V1 | PACKED, 0), 0);
	l = layout_of(&dq1);
	/* Either index at the queue size (12), whatever its wrap counter. */
	CHECK_EQ(uvirtio_device_queue_enable_at(&q.t.dev, 1, &l, 0x800c, 0x8000), -EINVAL);
	CHECK_EQ(uvirtio_device_queue_enable_at(&q.t.dev, 1, &l, 0x8000, 0x000c), -EINVAL);
	CHECK_EQ(uvirtio_device_queue_enable_at(&q.t.dev, 1, &l, 0x7fff, 0x7fff), -EINVAL);
	/* Left disabled: not ready, its thread never started. */
	CHECK(!uvirtio_device_queue_ready(&q.t.dev, 1));
	CHECK(!uvirtio_devq_is_ready(uvirtio_device_queue(&q.t.dev, 1)));
	CHECK_EQ(q.starts[1], 0);
	/* The last position and either wrap counter are the ring's own. */
	CHECK_EQ(uvirtio_device_queue_enable_at(&q.t.dev, 1, &l, 0x000b, 0x800b), 0);
	CHECK(uvirtio_device_queue_ready(&q.t.dev, 1));
	CHECK_EQ(q.starts[1], 1);
	CHECK_EQ(uvirtio_devq_next_avail(uvirtio_device_queue(&q.t.dev, 1)), 0x000b);
	CHECK_EQ(uvirtio_devq_used_index(uvirtio_device_queue(&q.t.dev, 1)), 0x800b);
	/* Refused on a queue that was enabled (a vhost-user restart at a bad
	 * base): disabled too, not left with its old layout. */
	CHECK_EQ(uvirtio_device_queue_enable_at(&q.t.dev, 1, &l, 0x800c, 0x800c), -EINVAL);
	CHECK(!uvirtio_device_queue_ready(&q.t.dev, 1));
	CHECK(!uvirtio_devq_is_ready(uvirtio_device_queue(&q.t.dev, 1)));
	uvirtio_drvq_destroy(&dq1);
	td_fini(&q.t);
}

/* NOTIFICATION_DATA in the device core. */

#define ND UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)

/* Queue 1 of @t set up from @dq1 (a split ring of 16). */
static int enable_queue1(struct testdev *t, struct uvirtio_drvq *dq1, uint64_t features)
{
	struct uvirtio_queue_layout l;
	int ret = uvirtio_drvq_create(dq1, &t->dma, 1, 16, features, 0);

	if (ret)
		return ret;
	l = layout_of(dq1);
	return uvirtio_device_queue_enable(&t->dev, 1, &l);
}

static void test_device_notify_data_takes_queue_index_from_low_16_bits_and_records_data(void)
{
	struct testdev t;
	struct uvirtio_drvq dq1 = { 0 };
	struct iovec in = { .iov_base = guest + 0x80000, .iov_len = 8 };
	uint16_t avail = 0;
	int tok;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(bring_up(&t, V1 | ND), 0);
	CHECK_EQ(enable_queue1(&t, &dq1, V1 | ND), 0);
	CHECK_EQ(uvirtio_drvq_add(&dq1, NULL, 0, &in, 1, &tok), 0);
	uvirtio_device_queue_notify_data(&t.dev, 0x12340001);
	/* Queue 1 was kicked (its buffer taken) and holds the data. */
	CHECK(t.holding);
	CHECK(uvirtio_devq_notified_avail(uvirtio_device_queue(&t.dev, 1), &avail));
	CHECK_EQ(avail, 0x1234);
	CHECK(!uvirtio_devq_notified_avail(uvirtio_device_queue(&t.dev, 0), &avail));
	/* What the driver core sends: the queue's own index and avail index. */
	CHECK_EQ(uvirtio_drvq_notification_data(&dq1), 0x00010001);
	uvirtio_device_queue_notify_data(&t.dev, uvirtio_drvq_notification_data(&dq1));
	CHECK(uvirtio_devq_notified_avail(uvirtio_device_queue(&t.dev, 1), &avail));
	CHECK_EQ(avail, 1);
	/* An index past the queues is ignored. */
	uvirtio_device_queue_notify_data(&t.dev, 0x00050002);
	CHECK(!uvirtio_devq_notified_avail(uvirtio_device_queue(&t.dev, 0), &avail));
	uvirtio_drvq_destroy(&dq1);
	td_fini(&t);
}

static void test_device_notify_data_without_notification_data_is_whole_queue_index(void)
{
	struct testdev t;
	struct uvirtio_drvq dq1 = { 0 };
	struct iovec in = { .iov_base = guest + 0x80000, .iov_len = 8 };
	uint16_t avail;
	int tok;

	CHECK_EQ(td_init(&t), 0);
	CHECK_EQ(bring_up(&t, V1), 0);
	CHECK_EQ(enable_queue1(&t, &dq1, V1), 0);
	CHECK_EQ(uvirtio_drvq_add(&dq1, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(add_one(&t), 0);
	/* 0x12340001 is no queue: neither queue is kicked or records data. */
	uvirtio_device_queue_notify_data(&t.dev, 0x12340001);
	CHECK(!t.holding);
	CHECK(!uvirtio_devq_notified_avail(uvirtio_device_queue(&t.dev, 1), &avail));
	/* The plain index kicks queue 1, as uvirtio_device_queue_notify(). */
	uvirtio_device_queue_notify_data(&t.dev, 1);
	CHECK(t.holding);
	CHECK(!uvirtio_devq_notified_avail(uvirtio_device_queue(&t.dev, 1), &avail));
	uvirtio_drvq_destroy(&dq1);
	td_fini(&t);
}
TEST_MAIN(T(test_device_always_offers_version_1),
	  T(test_device_reschedule_only_while_running),
	  T(test_device_serves_buffers_made_available_before_driver_ok),
	  T(test_device_features_ok_accepts_any_valid_subset),
	  T(test_device_features_ok_refused_for_feature_not_offered),
	  T(test_device_features_ok_refused_for_missing_dependency),
	  T(test_device_features_ok_refused_by_device_type),
	  T(test_device_features_ok_refused_without_version_1),
	  T(test_device_features_fixed_after_features_ok),
	  T(test_device_status_bits_cannot_be_cleared_by_driver),
	  T(test_device_driver_ok_refused_without_features_ok),
	  T(test_device_driver_ok_refused_in_one_write_with_refused_features),
	  T(test_device_driver_ok_starts_device),
	  T(test_device_needs_reset_bit_is_the_devices),
	  T(test_device_queue_enable_refused_before_features_ok),
	  T(test_device_config_read_write_bounds),
	  T(test_device_config_update_bumps_generation_and_notifies),
	  T(test_device_broken_queue_sets_needs_reset_and_notifies_config),
	  T(test_device_reset_forgets_negotiated_state),
	  T(test_device_reset_cancels_in_flight_requests_before_returning),
	  T(test_device_reset_completes_in_flight_requests_before_returning),
	  T(test_device_notify_only_when_driver_asked),
	  T(test_device_queue_threads_start_at_driver_ok_for_ready_queues_only),
	  T(test_device_queue_enabled_while_running_starts_at_once),
	  T(test_device_queue_stop_finishes_requests_and_returns_next_avail),
	  T(test_device_reset_stops_queue_threads_before_reset_op),
	  T(test_device_kick_fd_per_queue),
	  T(test_device_without_config_space_reads_zero_bytes),
	  T(test_device_queue_thread_notified_only_while_started),
	  T(test_device_queue_enable_at_refuses_packed_index_not_below_queue_size),
	  T(test_device_notify_data_takes_queue_index_from_low_16_bits_and_records_data),
	  T(test_device_notify_data_without_notification_data_is_whole_queue_index))
