// SPDX-License-Identifier: MIT
/* Device core: status machine, feature negotiation, config space, reset. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "harness.h"
#include "uvirtio/device.h"
#include "uvirtio/drvq.h"
#include "uvirtio/snapshot.h"
#include "../support/core_internal.h"

#define GA 0x400000ull
#define MEM_SIZE (1u << 20)

/* Device-type feature bits of the test device; 1 needs 0. */
#define F_BASE 0
#define F_NEEDS_BASE 1
#define F_REFUSED_ALONE 2

struct testdev {
	struct uvirtio_device dev;
	struct uvirtio_mem mem;
	struct uvirtio_dma dma;
	struct uvirtio_drvq dq;
	char config[16];
	unsigned notifies_used, notifies_config, resets, starts, reschedules;
	/* Requests the device took and holds, as an asynchronous device would. */
	struct iovec iov[8];
	struct uvirtio_req held;
	bool holding;
	bool drop_on_reset;
};

static char *guest;

/* Where a driver queue's ring lies (uvirtio_drvq_ring()), and its split
 * descriptor table and used ring as the device writes them. */
static struct uvirtio_drvq_ring dq_ring(const struct uvirtio_drvq *dq)
{
	struct uvirtio_drvq_ring r;

	uvirtio_drvq_ring(dq, &r);
	return r;
}

static struct vring_desc *dq_desc(const struct uvirtio_drvq *dq)
{
	return dq_ring(dq).desc_host;
}

static struct vring_used *dq_used(const struct uvirtio_drvq *dq)
{
	return dq_ring(dq).used_host;
}

static struct uvirtio_queue_layout layout_of(const struct uvirtio_drvq *dq)
{
	struct uvirtio_drvq_ring r = dq_ring(dq);

	return (struct uvirtio_queue_layout){ uvirtio_drvq_size(dq), r.desc, r.avail, r.used };
}

static const struct uvirtio_feature_dep deps[] = { { F_NEEDS_BASE, F_BASE } };

static int validate(struct uvirtio_device *dev, uint64_t f)
{
	(void)dev;
	return f & UVIRTIO_BIT(F_REFUSED_ALONE) && !(f & UVIRTIO_BIT(F_BASE)) ? -EINVAL : 0;
}

static int start(struct uvirtio_device *dev)
{
	((struct testdev *)uvirtio_device_priv(dev))->starts++;
	return 0;
}

static void queue_notify(struct uvirtio_device *dev, unsigned index)
{
	struct testdev *t = uvirtio_device_priv(dev);

	if (!t->holding && uvirtio_devq_pop(uvirtio_device_queue(dev, index), &t->held) == 1)
		t->holding = true;
}

static int config_write(struct uvirtio_device *dev, unsigned offset, const void *buf, unsigned len)
{
	(void)dev;
	(void)buf;
	/* Bytes 0..7 are read-only. */
	return offset < 8 && len ? -EPERM : 0;
}

static void reset(struct uvirtio_device *dev)
{
	struct testdev *t = uvirtio_device_priv(dev);

	t->resets++;
	/* Finish (push) or cancel (drop) what is in flight before returning. */
	if (t->holding && !t->drop_on_reset) {
		uvirtio_devq_push(uvirtio_device_queue(dev, 0), t->held.id, 0);
		uvirtio_device_notify(dev, 0);
	}
	t->holding = false;
}

static void hook_used(void *opaque, unsigned index)
{
	(void)index;
	((struct testdev *)opaque)->notifies_used++;
}

static void hook_reschedule(void *opaque, unsigned index)
{
	(void)index;
	((struct testdev *)opaque)->reschedules++;
}

static void hook_config(void *opaque)
{
	((struct testdev *)opaque)->notifies_config++;
}

static const struct uvirtio_device_ops test_ops = {
	.name = "test",
	.device_id = 0xfff0,
	.features = UVIRTIO_BIT(F_BASE) | UVIRTIO_BIT(F_NEEDS_BASE) | UVIRTIO_BIT(F_REFUSED_ALONE),
	.deps = deps,
	.ndeps = 1,
	.num_queues = 2,
	.queue_max_size = 16,
	.validate_features = validate,
	.start = start,
	.queue_notify = queue_notify,
	.config_write = config_write,
	.reset = reset,
};

static int td_init(struct testdev *t)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = MEM_SIZE, .fd = -1 };
	struct uvirtio_device_hooks hooks = {
		.notify_used = hook_used, .notify_config = hook_config, .reschedule = hook_reschedule, .opaque = t,
	};
	int ret;

	if (!guest)
		guest = aligned_alloc(4096, MEM_SIZE);
	memset(guest, 0, MEM_SIZE);
	memset(t, 0, sizeof(*t));
	r.host_addr = guest;
	uvirtio_mem_init(&t->mem);
	uvirtio_mem_add(&t->mem, &r);
	uvirtio_dma_init(&t->dma, guest, GA, MEM_SIZE);
	uvirtio_req_init(&t->held, t->iov, 8);
	ret = uvirtio_device_init(&t->dev, &test_ops, t, t->config, sizeof(t->config), &t->mem);
	uvirtio_device_set_hooks(&t->dev, &hooks);
	return ret;
}

static void td_fini(struct testdev *t)
{
	uvirtio_device_destroy(&t->dev);
	uvirtio_drvq_destroy(&t->dq);
	uvirtio_dma_destroy(&t->dma);
}

/* Drive the device to FEATURES_OK with @features; returns the status read back. */
static uint8_t negotiate(struct testdev *t, uint64_t features)
{
	uvirtio_device_set_status(&t->dev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	uvirtio_device_set_status(&t->dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	uvirtio_device_set_driver_features(&t->dev, features);
	uvirtio_device_set_status(&t->dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						   VIRTIO_CONFIG_S_FEATURES_OK);
	return uvirtio_device_get_status(&t->dev);
}

#define V1 UVIRTIO_BIT(VIRTIO_F_VERSION_1)
#define RUNNING_STATUS 15

/* Negotiate, set queue 0 up from a driver-side ring, DRIVER_OK. */
static int bring_up(struct testdev *t, uint64_t features)
{
	struct uvirtio_queue_layout l;
	int ret;

	if (!(negotiate(t, features) & VIRTIO_CONFIG_S_FEATURES_OK))
		return -ENODEV;
	ret = uvirtio_drvq_create(&t->dq, &t->dma, 0, 16, features, 0);
	if (ret)
		return ret;
	l = layout_of(&t->dq);
	ret = uvirtio_device_queue_enable(&t->dev, 0, &l);
	if (ret)
		return ret;
	return uvirtio_device_set_status(&t->dev, RUNNING_STATUS);
}

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

/* A device type that serves each queue on a thread of its own: the core
 * starts and stops queues; this one records the calls and pops on start. */
struct qtdev {
	struct testdev t;
	unsigned starts[2], stops[2], notifies[2], resets_after_stops;
	char order[16];
	unsigned norder;
};

static int qt_queue_start(struct uvirtio_device *dev, unsigned index)
{
	struct qtdev *q = uvirtio_device_priv(dev);

	q->starts[index]++;
	q->order[q->norder++ % 16] = (char)('a' + index);
	if (!q->t.holding && uvirtio_devq_pop(uvirtio_device_queue(dev, index), &q->t.held) == 1)
		q->t.holding = true;
	return 0;
}

static void qt_queue_stop(struct uvirtio_device *dev, unsigned index)
{
	struct qtdev *q = uvirtio_device_priv(dev);

	q->stops[index]++;
	q->order[q->norder++ % 16] = (char)('A' + index);
	if (q->t.holding) {
		uvirtio_devq_push(uvirtio_device_queue(dev, index), q->t.held.id, 0);
		q->t.holding = false;
	}
}

static void qt_reset(struct uvirtio_device *dev)
{
	struct qtdev *q = uvirtio_device_priv(dev);

	q->order[q->norder++ % 16] = 'R';
}

static void qt_queue_notify(struct uvirtio_device *dev, unsigned index)
{
	((struct qtdev *)uvirtio_device_priv(dev))->notifies[index]++;
}

static const struct uvirtio_device_ops qt_ops = {
	.name = "queue-threads",
	.device_id = 0xfff1,
	.num_queues = 2,
	.queue_max_size = 16,
	.queue_notify = qt_queue_notify,
	.queue_start = qt_queue_start,
	.queue_stop = qt_queue_stop,
	.reset = qt_reset,
	.takes_kick_fds = true,
};

/* @ops: qt_ops, or a variant of it; must outlive @q's device. */
static int qt_init_with(struct qtdev *q, const struct uvirtio_device_ops *ops)
{
	int ret = td_init(&q->t);

	memset(q->starts, 0, sizeof(*q) - offsetof(struct qtdev, starts));
	uvirtio_device_destroy(&q->t.dev);
	return ret ? ret : uvirtio_device_init(&q->t.dev, ops, q, NULL, 0, &q->t.mem);
}

static int qt_init(struct qtdev *q)
{
	return qt_init_with(q, &qt_ops);
}

static int add_one(struct testdev *t)
{
	struct iovec in = { .iov_base = guest + 0x80000, .iov_len = 8 };
	int tok;

	return uvirtio_drvq_add(&t->dq, NULL, 0, &in, 1, &tok);
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

/* Lifecycle: per-queue reset, suspend and resume, snapshot and restore. */

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

/* Packed ring, IN_ORDER and NOTIFICATION_DATA in the device core. */

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define ND UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)

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
	  T(test_device_queue_reset_refused_without_ring_reset),
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
	  T(test_restore_refuses_wrap_counters_on_split_and_packed_position_outside_ring),
	  T(test_device_queue_enable_at_refuses_packed_index_not_below_queue_size),
	  T(test_device_notify_data_takes_queue_index_from_low_16_bits_and_records_data),
	  T(test_device_notify_data_without_notification_data_is_whole_queue_index))
