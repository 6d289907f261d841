// SPDX-License-Identifier: MIT
/* Driver core and loopback transport, end to end: a driver thread and a device thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "uvirtio/driver.h"
#include "uvirtio/loopback.h"
#include "uvirtio/rng.h"
#include "uvirtio/trace.h"
#include "../support/ring_internal.h"

/* Writes down, in order, what the driver did through the transport. */
struct recorder {
	struct uvirtio_trace_transport tt;
	char trace[1024];
};

static void record(void *opaque, const struct uvirtio_trace_event *ev)
{
	struct recorder *r = opaque;
	size_t n = strlen(r->trace);

	if (!strcmp(ev->op, "set_status"))
		snprintf(r->trace + n, sizeof(r->trace) - n, "status:%u ", (unsigned)ev->value);
	else if (!strcmp(ev->op, "queue_enable"))
		snprintf(r->trace + n, sizeof(r->trace) - n, "queue:%u ", ev->index);
	else if (strcmp(ev->op, "queue_max_size"))
		snprintf(r->trace + n, sizeof(r->trace) - n, "%s ", ev->op);
}

static void rec_init(struct recorder *r, struct uvirtio_transport *inner)
{
	memset(r, 0, sizeof(*r));
	uvirtio_trace_transport_init(&r->tt, inner, record, r);
	uvirtio_trace_transport_set_quiet(&r->tt, UVIRTIO_TRACE_QUIET_NOTIFY | UVIRTIO_TRACE_QUIET_GET_STATUS | UVIRTIO_TRACE_QUIET_CONFIG);
}

/* A device that takes requests and keeps them until reset drops them. */
struct sink {
	struct uvirtio_device dev;
	struct iovec iov[8];
	unsigned held;
	struct uvirtio_req last; /* the last request taken */
	char config[8];
};

static void sink_notify(struct uvirtio_device *dev, unsigned index)
{
	struct sink *s = uvirtio_device_priv(dev);
	struct uvirtio_req req;

	uvirtio_req_init(&req, s->iov, 8);
	while (uvirtio_devq_pop(uvirtio_device_queue(dev, index), &req) == 1) {
		s->held++;
		s->last = req;
	}
}

/* Completes the last request taken, claiming its whole writable part. */
static int sink_release_last(struct uvirtio_device *dev, void *arg)
{
	struct sink *s = uvirtio_device_priv(dev);
	int ret;

	(void)arg;
	memset(s->last.iov[s->last.n_out].iov_base, 0xab, s->last.iov[s->last.n_out].iov_len);
	ret = uvirtio_devq_push(uvirtio_device_queue(dev, 0), s->last.id, s->last.in_len);
	uvirtio_device_notify(dev, 0);
	s->held--;
	return ret;
}

static void sink_reset(struct uvirtio_device *dev)
{
	((struct sink *)uvirtio_device_priv(dev))->held = 0;
}

/* Offers feature 5 but cannot work with it after all: FEATURES_OK fails. */
static int sink_validate(struct uvirtio_device *dev, uint64_t features)
{
	(void)dev;
	return features & UVIRTIO_BIT(5) ? -EINVAL : 0;
}

/* Per-queue reset or suspend: the sink drops what it holds. */
static void sink_queue_stop(struct uvirtio_device *dev, unsigned index)
{
	(void)index;
	((struct sink *)uvirtio_device_priv(dev))->held = 0;
}

static const struct uvirtio_device_ops sink_ops = {
	.name = "sink", .device_id = 0xfff1, .features = UVIRTIO_BIT(5), .num_queues = 1,
	.queue_max_size = 64, .validate_features = sink_validate, .queue_notify = sink_notify,
	.queue_stop = sink_queue_stop, .reset = sink_reset,
};

struct env {
	struct uvirtio_loopback *lb;
	struct uvirtio_rng_dev rng;
	struct sink sink;
	struct uvirtio_device *dev;
};

static int env_start(struct env *e, bool sink)
{
	int ret;

	memset(e, 0, sizeof(*e));
	ret = uvirtio_loopback_create(&e->lb, NULL);
	if (ret)
		return ret;
	if (sink) {
		ret = uvirtio_device_init(&e->sink.dev, &sink_ops, &e->sink, e->sink.config,
					  sizeof(e->sink.config), uvirtio_loopback_mem(e->lb));
		e->dev = &e->sink.dev;
	} else {
		ret = uvirtio_rng_dev_init(&e->rng, uvirtio_loopback_mem(e->lb));
		e->dev = uvirtio_rng_dev_device(&e->rng);
	}
	return ret ? ret : uvirtio_loopback_start(e->lb, e->dev);
}

static void env_stop(struct env *e)
{
	uvirtio_loopback_destroy(e->lb);
	uvirtio_device_destroy(e->dev);
}

static int read_resets(struct uvirtio_device *dev, void *arg)
{
	struct uvirtio_device_stats st;

	uvirtio_device_get_stats(dev, &st);
	*(unsigned *)arg = st.resets;
	return 0;
}

static int read_features(struct uvirtio_device *dev, void *arg)
{
	*(uint64_t *)arg = uvirtio_device_accepted_features(dev);
	return 0;
}

static bool has_entropy(const unsigned char *p, size_t n)
{
	unsigned zeros = 0;

	for (size_t i = 0; i < n; i++)
		zeros += p[i] == 0;
	return zeros < n / 64;
}

static void test_loopback_rng_reads_random_bytes(void)
{
	static unsigned char a[65536], b[65536];
	struct uvirtio_rng_dev_stats st;
	struct uvirtio_rng_drv drv;
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 5000), sizeof(a));
	CHECK_EQ(uvirtio_rng_drv_read(&drv, b, sizeof(b), 5000), sizeof(b));
	CHECK(has_entropy(a, sizeof(a)));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
	uvirtio_rng_dev_stats(&e.rng, &st);
	CHECK_EQ(st.bytes, 2 * sizeof(a));
}

static void test_driver_probe_resets_first_then_follows_the_status_sequence(void)
{
	struct uvirtio_rng_drv drv;
	struct recorder rec;
	unsigned resets = 0;
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	rec_init(&rec, uvirtio_loopback_transport(e.lb));
	/* An earlier driver left the device half set up. */
	CHECK_EQ(uvirtio_trace_transport_handle(&rec.tt)->ops->set_status(uvirtio_trace_transport_handle(&rec.tt), VIRTIO_CONFIG_S_ACKNOWLEDGE), 0);
	rec.trace[0] = 0;

	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_trace_transport_handle(&rec.tt), 0), 0);
	CHECK_STR(rec.trace, "reset status:1 status:3 get_features set_features status:11 queue:0 status:15 ");
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, read_resets, &resets), 0);
	CHECK_EQ(resets, 1);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static void test_driver_probe_fails_when_features_ok_does_not_stick(void)
{
	struct uvirtio_driver drv;
	struct recorder rec;
	uint8_t status = 0;
	struct env e;

	CHECK_EQ(env_start(&e, true), 0);
	rec_init(&rec, uvirtio_loopback_transport(e.lb));
	/* The device offers feature 5 and then refuses it: the driver sees that
	 * only by reading FEATURES_OK back. */
	CHECK_EQ(uvirtio_driver_probe(&drv, uvirtio_trace_transport_handle(&rec.tt), UVIRTIO_BIT(5)), -ENODEV);
	CHECK_EQ(uvirtio_trace_transport_handle(&rec.tt)->ops->get_status(uvirtio_trace_transport_handle(&rec.tt), &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_FAILED);
	CHECK(!(status & VIRTIO_CONFIG_S_FEATURES_OK));
	env_stop(&e);
}

static void count_release(void *token, void *opaque)
{
	(void)token;
	(*(unsigned *)opaque)++;
}

static void test_driver_remove_resets_before_deleting_queues(void)
{
	struct uvirtio_driver drv;
	struct recorder rec;
	struct uvirtio_drvq *q;
	unsigned released = 0, resets = 0;
	struct env e;
	char *buf;
	int tok[3];

	CHECK_EQ(env_start(&e, true), 0);
	rec_init(&rec, uvirtio_loopback_transport(e.lb));
	CHECK_EQ(uvirtio_driver_probe(&drv, uvirtio_trace_transport_handle(&rec.tt), 0), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	q = uvirtio_driver_vq(&drv, 0);
	buf = uvirtio_dma_alloc(uvirtio_trace_transport_handle(&rec.tt)->ops->dma(uvirtio_trace_transport_handle(&rec.tt)), 4096, 64);
	for (unsigned i = 0; i < 3; i++) {
		struct iovec in = { .iov_base = buf + 64 * i, .iov_len = 64 };

		CHECK_EQ(uvirtio_drvq_add(q, NULL, 0, &in, 1, &tok[i]), 0);
	}
	CHECK_EQ(uvirtio_drvq_kick(q), 0);
	rec.trace[0] = 0;

	CHECK_EQ(uvirtio_driver_remove(&drv, count_release, &released), 0);
	CHECK_STR(rec.trace, "reset ");
	CHECK_EQ(released, 3);
	CHECK_EQ(uvirtio_driver_num_vqs(&drv), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, read_resets, &resets), 0);
	CHECK_EQ(resets, 2);
	env_stop(&e);
}

static void test_driver_renegotiates_different_features_after_reset(void)
{
	const uint64_t rich = UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	struct uvirtio_rng_drv drv;
	unsigned char buf[256];
	uint64_t dev_features = 0;
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), rich), 0);
	CHECK_EQ(uvirtio_driver_features(uvirtio_rng_drv_driver(&drv)), rich | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	CHECK_EQ(uvirtio_rng_drv_read(&drv, buf, sizeof(buf), 5000), sizeof(buf));
	uvirtio_rng_drv_remove(&drv);

	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	CHECK_EQ(uvirtio_driver_features(uvirtio_rng_drv_driver(&drv)), UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, read_features, &dev_features), 0);
	CHECK_EQ(dev_features, UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	CHECK_EQ(uvirtio_rng_drv_read(&drv, buf, sizeof(buf), 5000), sizeof(buf));
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static int change_config(struct uvirtio_device *dev, void *arg)
{
	return uvirtio_device_config_update(dev, 0, arg, 4);
}

static void test_loopback_config_change_reaches_driver(void)
{
	struct uvirtio_driver drv;
	char got[4];
	struct env e;

	CHECK_EQ(env_start(&e, true), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	CHECK_EQ(uvirtio_driver_wait(&drv, UVIRTIO_CONFIG_EVENT, 0), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, change_config, "abcd"), 0);
	CHECK_EQ(uvirtio_driver_wait(&drv, UVIRTIO_CONFIG_EVENT, 5000), 1);
	CHECK_EQ(uvirtio_driver_config_read(&drv, 0, got, 4), 0);
	CHECK(!memcmp(got, "abcd", 4));
	CHECK_EQ(uvirtio_driver_config_read(&drv, 6, got, 4), -EINVAL);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_loopback_hostile_driver_ring_sets_needs_reset(void)
{
	struct uvirtio_rng_drv drv;
	struct uvirtio_drvq_ring ring;
	struct vring_avail *avail;
	struct uvirtio_drvq *q;
	unsigned char buf[16];
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	q = uvirtio_driver_vq(uvirtio_rng_drv_driver(&drv), 0);
	uvirtio_drvq_ring(q, &ring);
	avail = ring.avail_host;
	/* Publish an avail index far ahead of anything added. */
	avail->idx = 1000;
	CHECK_EQ(uvirtio_drvq_notify(q), 0);
	CHECK_EQ(uvirtio_driver_wait(uvirtio_rng_drv_driver(&drv), UVIRTIO_CONFIG_EVENT, 5000), 1);
	CHECK(uvirtio_driver_needs_reset(uvirtio_rng_drv_driver(&drv)));
	avail->idx = 0;
	CHECK_EQ(uvirtio_rng_drv_read(&drv, buf, sizeof(buf), 200), -EIO);
	/* Reset and probe again: the device works. */
	uvirtio_rng_drv_remove(&drv);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, buf, sizeof(buf), 5000), sizeof(buf));
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static void test_loopback_indices_wrap_across_threads(void)
{
	const uint64_t f = UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	struct uvirtio_rng_drv_stats st;
	struct uvirtio_rng_drv drv;
	unsigned char buf[8];
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), f), 0);
	for (unsigned i = 0; i < 70000; i++)
		CHECK_EQ(uvirtio_rng_drv_read(&drv, buf, sizeof(buf), 5000), sizeof(buf));
	uvirtio_rng_drv_stats(&drv, &st);
	CHECK_EQ(st.requests, 70000);
	CHECK_EQ(uvirtio_drvq_used_index(uvirtio_driver_vq(uvirtio_rng_drv_driver(&drv), 0)), 70000 % 65536);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static void test_rng_read_after_timeout_waits_for_the_old_request(void)
{
	struct uvirtio_rng_drv drv;
	unsigned char big[4096], small[16 + 16];
	struct env e;

	CHECK_EQ(env_start(&e, true), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	/* The device keeps the 4096-byte request: the read times out. */
	CHECK_EQ(uvirtio_rng_drv_read(&drv, big, sizeof(big), 100), -ETIMEDOUT);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, sink_release_last, NULL), 0);
	/* The next, shorter read gets that request's bytes, cut to its size. */
	memset(small, 0x11, sizeof(small));
	CHECK_EQ(uvirtio_rng_drv_read(&drv, small, 16, 5000), 16);
	CHECK_EQ(small[0], 0xab);
	CHECK_EQ(small[16], 0x11);
	CHECK_EQ(small[31], 0x11);
	CHECK_EQ(uvirtio_drvq_num_free(uvirtio_driver_vq(uvirtio_rng_drv_driver(&drv), 0)), 64);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static void test_rng_read_without_timeout_ends_when_device_needs_reset(void)
{
	struct uvirtio_rng_drv drv;
	unsigned char buf[16];
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	/* A driver bug: its next add publishes an avail index far ahead. The
	 * device breaks the queue; the waiting read must hear of it. */
	drvq_test_set_avail_idx(uvirtio_driver_vq(uvirtio_rng_drv_driver(&drv), 0), 1000);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, buf, sizeof(buf), -1), -EIO);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

/* Transport bits the cores do not implement: the platform's IOMMU and
 * memory ordering, SR-IOV. */
static int offer_unimplemented(struct uvirtio_device *dev, void *arg)
{
	(void)arg;
	return uvirtio_device_set_offered(dev, UVIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM) |
						       UVIRTIO_BIT(VIRTIO_F_ORDER_PLATFORM) |
						       UVIRTIO_BIT(VIRTIO_F_SR_IOV) |
						       UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(3));
}

static void test_driver_never_accepts_transport_features_it_cannot_drive(void)
{
	struct uvirtio_driver drv;
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, offer_unimplemented, NULL), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, uvirtio_loopback_transport(e.lb), ~0ull), 0);
	CHECK_EQ(uvirtio_driver_features(&drv), UVIRTIO_BIT(VIRTIO_F_VERSION_1) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
				       UVIRTIO_BIT(3));
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static int read_held(struct uvirtio_device *dev, void *arg)
{
	*(unsigned *)arg = ((struct sink *)uvirtio_device_priv(dev))->held;
	return 0;
}

/* The kick as the device thread would take it, then what the sink holds:
 * in one call, so the kick cannot arrive after the look. */
static int kick_and_read_held(struct uvirtio_device *dev, void *arg)
{
	uvirtio_device_queue_notify(dev, 0);
	return read_held(dev, arg);
}

static int read_queue_size(struct uvirtio_device *dev, void *arg)
{
	*(unsigned *)arg = uvirtio_devq_size(uvirtio_device_queue(dev, 0));
	return 0;
}

/* Probe the sink with @features, one queue, three buffers made available
 * and kicked (the sink takes them all). */
static int sink_with_three_buffers(struct env *e, struct uvirtio_driver *drv, uint64_t features)
{
	struct uvirtio_transport *t;
	struct uvirtio_drvq *q;
	char *buf;
	int ret, tok;

	ret = env_start(e, true);
	t = uvirtio_loopback_transport(e->lb);
	if (!ret)
		ret = uvirtio_driver_probe(drv, t, features);
	if (!ret)
		ret = uvirtio_driver_find_vqs(drv, 1, NULL);
	if (!ret)
		ret = uvirtio_driver_ready(drv);
	if (ret)
		return ret;
	q = uvirtio_driver_vq(drv, 0);
	buf = uvirtio_dma_alloc(t->ops->dma(t), 4096, 64);
	for (unsigned i = 0; i < 3 && !ret; i++) {
		struct iovec in = { .iov_base = buf + 64 * i, .iov_len = 64 };

		ret = uvirtio_drvq_add(q, NULL, 0, &in, 1, &tok);
	}
	return ret ? ret : uvirtio_drvq_kick(q);
}

static void test_driver_queue_reset_refused_without_ring_reset(void)
{
	struct uvirtio_driver drv;
	unsigned released = 0;
	struct env e;

	CHECK_EQ(sink_with_three_buffers(&e, &drv, 0), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&drv, 0, count_release, &released), -EOPNOTSUPP);
	CHECK_EQ(released, 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&drv, 0, 0), -EBUSY);
	CHECK_EQ(uvirtio_driver_queue_reset(&drv, 1, NULL, NULL), -ENOENT);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_driver_queue_reset_hands_back_every_unused_buffer(void)
{
	struct uvirtio_driver drv;
	unsigned released = 0, held = 1;
	struct env e;

	CHECK_EQ(sink_with_three_buffers(&e, &drv, UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&drv, 0, count_release, &released), 0);
	/* The device let go before the buffers came back. */
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, read_held, &held), 0);
	CHECK_EQ(held, 0);
	CHECK_EQ(released, 3);
	/* A reset queue is not reset again until enabled. */
	CHECK_EQ(uvirtio_driver_queue_reset(&drv, 0, NULL, NULL), -ENOENT);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_driver_queue_enable_after_reset_resizes_the_queue(void)
{
	struct uvirtio_driver drv;
	struct uvirtio_drvq *q;
	unsigned size = 0, held = 0;
	struct env e;
	char *buf;
	int tok;

	CHECK_EQ(sink_with_three_buffers(&e, &drv, UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 0);
	q = uvirtio_driver_vq(&drv, 0);
	CHECK_EQ(uvirtio_drvq_size(q), 64);
	CHECK_EQ(uvirtio_driver_queue_reset(&drv, 0, NULL, NULL), 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&drv, 0, 8), 0);
	CHECK(uvirtio_driver_vq(&drv, 0) == q);
	CHECK_EQ(uvirtio_drvq_size(q), 8);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, read_queue_size, &size), 0);
	CHECK_EQ(size, 8);
	/* The new ring works from index 0. */
	buf = uvirtio_dma_alloc(uvirtio_drvq_dma(q), 64, 64);
	{
		struct iovec in = { .iov_base = buf, .iov_len = 64 };

		CHECK_EQ(uvirtio_drvq_add(q, NULL, 0, &in, 1, &tok), 0);
	}
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, kick_and_read_held, &held), 0);
	CHECK_EQ(held, 1);
	CHECK_EQ(uvirtio_driver_queue_enable(&drv, 0, 8), -EBUSY);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_driver_suspend_waits_for_suspend_and_resume_carries_on(void)
{
	static unsigned char a[4096];
	struct uvirtio_rng_drv drv;
	struct uvirtio_transport *t;
	uint8_t status = 0;
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	t = uvirtio_loopback_transport(e.lb);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, t, UVIRTIO_BIT(VIRTIO_F_SUSPEND)), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 5000), sizeof(a));
	CHECK_EQ(uvirtio_driver_suspend(uvirtio_rng_drv_driver(&drv), 5000), 0);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	CHECK_EQ(uvirtio_driver_suspend(uvirtio_rng_drv_driver(&drv), 5000), -EINVAL);
	CHECK_EQ(uvirtio_driver_resume(uvirtio_rng_drv_driver(&drv), 5000), 0);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK_EQ(status, 15);
	CHECK_EQ(uvirtio_driver_resume(uvirtio_rng_drv_driver(&drv), 5000), -EINVAL);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 5000), sizeof(a));
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static void test_driver_suspend_refused_without_suspend_feature(void)
{
	struct uvirtio_rng_drv drv;
	struct env e;

	CHECK_EQ(env_start(&e, false), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(e.lb), 0), 0);
	CHECK_EQ(uvirtio_driver_suspend(uvirtio_rng_drv_driver(&drv), 5000), -EOPNOTSUPP);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

/* Packed ring and NOTIFICATION_DATA over the loopback (and through the
 * trace wrapper, which must pass the data on). */

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define ND UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)

/* What queue 0 of the device recorded of the last notification data; -1
 * for nothing. */
static int read_notified(struct uvirtio_device *dev, void *arg)
{
	uint16_t avail;

	*(int *)arg = uvirtio_devq_notified_avail(uvirtio_device_queue(dev, 0), &avail) ? avail : -1;
	return 0;
}

/* Counts the notifications a trace reports with their data. */
static void count_notify_data(void *opaque, const struct uvirtio_trace_event *ev)
{
	if (!strcmp(ev->op, "notify_data") && !ev->ret)
		++*(unsigned *)opaque;
}

/* 200 rng reads (the ring of 64 wraps three times) with @features, directly
 * or @traced; the negotiated features, the data the driver would send next
 * and what the device recorded. */
static int rng_round_trips(uint64_t features, bool traced, uint64_t *negotiated, uint32_t *next,
			   int *recorded)
{
	struct uvirtio_trace_transport tt;
	struct uvirtio_transport *t;
	struct uvirtio_rng_drv drv;
	unsigned char buf[8];
	struct env e;
	unsigned traced_data = 0;
	int ret = env_start(&e, false);

	if (ret)
		return ret;
	t = uvirtio_loopback_transport(e.lb);
	if (traced) {
		uvirtio_trace_transport_init(&tt, t, count_notify_data, &traced_data);
		t = uvirtio_trace_transport_handle(&tt);
	}
	ret = uvirtio_rng_drv_probe(&drv, t, features);
	for (unsigned i = 0; i < 200 && !ret; i++)
		ret = uvirtio_rng_drv_read(&drv, buf, sizeof(buf), 5000) == sizeof(buf) ? 0 : -EIO;
	if (!ret) {
		*negotiated = uvirtio_driver_features(uvirtio_rng_drv_driver(&drv));
		*next = uvirtio_drvq_notification_data(uvirtio_driver_vq(uvirtio_rng_drv_driver(&drv), 0));
		ret = uvirtio_loopback_run_on_device(e.lb, read_notified, recorded);
		if (!ret && uvirtio_drvq_is_broken(uvirtio_driver_vq(uvirtio_rng_drv_driver(&drv), 0)))
			ret = -EIO;
		/* Through the trace, the kicks went as notify_data (how many
		 * depends on the device's event suppression: at least one). */
		if (!ret && traced && (*negotiated & ND) && !traced_data)
			ret = -EPROTO;
		uvirtio_rng_drv_remove(&drv);
	}
	env_stop(&e);
	return ret;
}

static void test_loopback_notification_data_reaches_the_device_on_a_packed_ring(void)
{
	for (int traced = 0; traced < 2; traced++) {
		uint64_t f = 0;
		uint32_t next = 0;
		int recorded = -2;

		CHECK_EQ(rng_round_trips(PACKED | ND, traced, &f, &next, &recorded), 0);
		CHECK((f & (PACKED | ND)) == (PACKED | ND));
		/* Queue 0, position 200 % 64 = 8 with wrap counter 0 (flipped
		 * 3 times from 1), as the driver sent it and the device
		 * recorded it. */
		CHECK_EQ(next, 8u << 16);
		CHECK_EQ(recorded, (int)(next >> 16));
	}
}

static void test_loopback_without_notification_data_device_records_none(void)
{
	uint64_t f = 0;
	uint32_t next = 0;
	int recorded = -2;

	CHECK_EQ(rng_round_trips(PACKED, false, &f, &next, &recorded), 0);
	CHECK(f & PACKED);
	CHECK(!(f & ND));
	CHECK_EQ(recorded, -1);
}

TEST_MAIN(T(test_loopback_rng_reads_random_bytes),
	  T(test_driver_queue_reset_refused_without_ring_reset),
	  T(test_driver_queue_reset_hands_back_every_unused_buffer),
	  T(test_driver_queue_enable_after_reset_resizes_the_queue),
	  T(test_driver_suspend_waits_for_suspend_and_resume_carries_on),
	  T(test_driver_suspend_refused_without_suspend_feature),

	  T(test_rng_read_after_timeout_waits_for_the_old_request),
	  T(test_rng_read_without_timeout_ends_when_device_needs_reset),
	  T(test_driver_never_accepts_transport_features_it_cannot_drive),
	  T(test_driver_probe_resets_first_then_follows_the_status_sequence),
	  T(test_driver_probe_fails_when_features_ok_does_not_stick),
	  T(test_driver_remove_resets_before_deleting_queues),
	  T(test_driver_renegotiates_different_features_after_reset),
	  T(test_loopback_config_change_reaches_driver),
	  T(test_loopback_hostile_driver_ring_sets_needs_reset),
	  T(test_loopback_indices_wrap_across_threads),
	  T(test_loopback_notification_data_reaches_the_device_on_a_packed_ring),
	  T(test_loopback_without_notification_data_device_records_none))
