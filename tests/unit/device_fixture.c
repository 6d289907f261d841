// SPDX-License-Identifier: MIT
/*
 * Fixtures of the device core's tests (test_device.c, test_device_lifecycle.c):
 * a test device type on a guest memory of its own, a driver-side queue for
 * its queue 0, and a variant whose queues are served on threads of their own.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "device_fixture.h"

char *guest;

/* Where a driver queue's ring lies (uvirtio_drvq_ring()), and its split
 * descriptor table and used ring as the device writes them. */
static struct uvirtio_drvq_ring dq_ring(const struct uvirtio_drvq *dq)
{
	struct uvirtio_drvq_ring r;

	uvirtio_drvq_ring(dq, &r);
	return r;
}

struct vring_desc *dq_desc(const struct uvirtio_drvq *dq)
{
	return dq_ring(dq).desc_host;
}

struct vring_used *dq_used(const struct uvirtio_drvq *dq)
{
	return dq_ring(dq).used_host;
}

struct uvirtio_queue_layout layout_of(const struct uvirtio_drvq *dq)
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

int td_init(struct testdev *t)
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

void td_fini(struct testdev *t)
{
	uvirtio_device_destroy(&t->dev);
	uvirtio_drvq_destroy(&t->dq);
	uvirtio_dma_destroy(&t->dma);
}

/* Drive the device to FEATURES_OK with @features; returns the status read back. */
uint8_t negotiate(struct testdev *t, uint64_t features)
{
	uvirtio_device_set_status(&t->dev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	uvirtio_device_set_status(&t->dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	uvirtio_device_set_driver_features(&t->dev, features);
	uvirtio_device_set_status(&t->dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						   VIRTIO_CONFIG_S_FEATURES_OK);
	return uvirtio_device_get_status(&t->dev);
}

/* Negotiate, set queue 0 up from a driver-side ring, DRIVER_OK. */
int bring_up(struct testdev *t, uint64_t features)
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

const struct uvirtio_device_ops qt_ops = {
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
int qt_init_with(struct qtdev *q, const struct uvirtio_device_ops *ops)
{
	int ret = td_init(&q->t);

	memset(q->starts, 0, sizeof(*q) - offsetof(struct qtdev, starts));
	uvirtio_device_destroy(&q->t.dev);
	return ret ? ret : uvirtio_device_init(&q->t.dev, ops, q, NULL, 0, &q->t.mem);
}

int qt_init(struct qtdev *q)
{
	return qt_init_with(q, &qt_ops);
}

int add_one(struct testdev *t)
{
	struct iovec in = { .iov_base = guest + 0x80000, .iov_len = 8 };
	int tok;

	return uvirtio_drvq_add(&t->dq, NULL, 0, &in, 1, &tok);
}
