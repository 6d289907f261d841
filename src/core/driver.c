// SPDX-License-Identifier: MIT
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "uvirtio/driver.h"

struct driver {
	struct uvirtio_transport *t;
	uint64_t device_features; /* offered by the device */
	uint64_t features;        /* negotiated */
	struct uvirtio_drvq *vqs;
	unsigned nvqs;
	bool *vq_reset; /* per queue: reset and not yet enabled again */
};
UVIRTIO_OPAQUE_FITS(struct driver, struct uvirtio_driver);

static struct driver *driver_of(struct uvirtio_driver *drv)
{
	return (struct driver *)drv;
}

static const struct driver *driver_of_const(const struct uvirtio_driver *drv)
{
	return (const struct driver *)drv;
}

#define DEFAULT_QUEUE_SIZE 256u

/* Feature bits about the transport and ring rather than the device type:
 * 24 to 41 (NOTIFY_ON_EMPTY ... ADMIN_VQ) and SUSPEND. */
#define TRANSPORT_BITS \
	(((UVIRTIO_BIT(42) - 1) & ~(UVIRTIO_BIT(24) - 1)) | UVIRTIO_BIT(VIRTIO_F_SUSPEND))

static bool has_feature(const struct driver *drv, unsigned bit)
{
	return drv->features & UVIRTIO_BIT(bit);
}

static int add_status(struct driver *drv, uint8_t bits)
{
	uint8_t status;
	int ret = drv->t->ops->get_status(drv->t, &status);

	if (ret)
		return ret;
	return drv->t->ops->set_status(drv->t, (uint8_t)(status | bits));
}

static void delete_vqs(struct driver *drv)
{
	for (unsigned i = 0; i < drv->nvqs; i++)
		uvirtio_drvq_destroy(&drv->vqs[i]);
	free(drv->vqs);
	free(drv->vq_reset);
	drv->vqs = NULL;
	drv->vq_reset = NULL;
	drv->nvqs = 0;
}

int uvirtio_driver_probe(struct uvirtio_driver *public_drv, struct uvirtio_transport *t,
			 uint64_t wanted)
{
	struct driver *drv = driver_of(public_drv);
	const struct uvirtio_transport_ops *ops = t->ops;
	uint8_t status;
	int ret;

	memset(public_drv, 0, sizeof(*public_drv));
	drv->t = t;

	/* Reset first: the device may hold state from an earlier driver. */
	ret = ops->reset(t);
	if (!ret)
		ret = add_status(drv, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	if (!ret)
		ret = add_status(drv, VIRTIO_CONFIG_S_DRIVER);
	if (!ret)
		ret = ops->get_features(t, &drv->device_features);
	if (ret)
		return ret;

	if (!(drv->device_features & UVIRTIO_BIT(VIRTIO_F_VERSION_1))) {
		add_status(drv, VIRTIO_CONFIG_S_FAILED);
		return -ENODEV;
	}
	/* Like Linux's vring_transport_features(): a transport bit this driver
	 * core does not implement (RING_PACKED, IN_ORDER, ...) is never accepted. */
	wanted &= ~(TRANSPORT_BITS & ~UVIRTIO_TRANSPORT_FEATURES);
	if (!ops->notify_data)
		wanted &= ~UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA);
	drv->features = drv->device_features & (wanted | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	ret = ops->set_features(t, drv->features);
	if (!ret)
		ret = add_status(drv, VIRTIO_CONFIG_S_FEATURES_OK);
	if (!ret)
		ret = ops->get_status(t, &status);
	if (ret)
		return ret;
	/* spec: the driver MUST re-read status to ensure FEATURES_OK is still
	 * set; otherwise the device does not support our subset. */
	if (!(status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		add_status(drv, VIRTIO_CONFIG_S_FAILED);
		return -ENODEV;
	}
	return 0;
}

static int notify_queue(void *opaque, unsigned index)
{
	struct driver *drv = opaque;
	struct uvirtio_transport *t = drv->t;

	if (drv->features & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA))
		return t->ops->notify_data(t, uvirtio_drvq_notification_data(&drv->vqs[index]));
	return t->ops->notify(t, index);
}

/* Make queue @i's ring of @num entries (capped at the device's maximum)
 * and give it to the device. On failure the ring is freed again. */
static int setup_vq(struct driver *drv, unsigned i, unsigned num)
{
	struct uvirtio_transport *t = drv->t;
	struct uvirtio_drvq *q = &drv->vqs[i];
	struct uvirtio_queue_layout l;
	struct uvirtio_drvq_ring ring;
	unsigned max;
	int ret;

	ret = t->ops->queue_max_size(t, i, &max);
	if (ret)
		return ret;
	if (max == 0)
		return -ENOENT;
	if (num > max)
		num = max;
	ret = uvirtio_drvq_create(q, t->ops->dma(t), i, num, drv->features, 0);
	if (ret)
		return ret;
	uvirtio_drvq_set_notify(q, notify_queue, drv);
	uvirtio_drvq_ring(q, &ring);
	l = (struct uvirtio_queue_layout){
		.num = num, .desc = ring.desc, .avail = ring.avail, .used = ring.used,
	};
	ret = t->ops->queue_enable(t, i, &l);
	if (ret)
		uvirtio_drvq_destroy(q);
	return ret;
}

int uvirtio_driver_find_vqs(struct uvirtio_driver *public_drv, unsigned nvqs, const unsigned *sizes)
{
	struct driver *drv = driver_of(public_drv);
	int ret = 0;

	if (drv->vqs)
		return -EBUSY;
	drv->vqs = calloc(nvqs, sizeof(*drv->vqs));
	drv->vq_reset = calloc(nvqs, sizeof(*drv->vq_reset));
	if (!drv->vqs || !drv->vq_reset) {
		delete_vqs(drv);
		return -ENOMEM;
	}

	for (unsigned i = 0; i < nvqs && !ret; i++) {
		ret = setup_vq(drv, i, sizes && sizes[i] ? sizes[i] : DEFAULT_QUEUE_SIZE);
		if (!ret)
			drv->nvqs = i + 1;
	}
	if (ret) {
		/* The device may already use some rings: stop it before freeing. */
		drv->t->ops->reset(drv->t);
		delete_vqs(drv);
	}
	return ret;
}

int uvirtio_driver_ready(struct uvirtio_driver *public_drv)
{
	struct driver *drv = driver_of(public_drv);

	return add_status(drv, VIRTIO_CONFIG_S_DRIVER_OK);
}

static int drain(int fd)
{
	uint64_t count;

	return read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN ? -errno : 0;
}

int uvirtio_driver_wait(struct uvirtio_driver *public_drv, unsigned index, int timeout_ms)
{
	struct driver *drv = driver_of(public_drv);
	struct pollfd p[2] = {
		{ .fd = drv->t->ops->event_fd(drv->t, UVIRTIO_CONFIG_EVENT), .events = POLLIN },
		{ .fd = drv->t->ops->event_fd(drv->t, index), .events = POLLIN },
	};
	nfds_t n = index == UVIRTIO_CONFIG_EVENT ? 1 : 2;
	int ret;

	if (p[0].fd < 0 || (n == 2 && p[1].fd < 0))
		return p[0].fd < 0 ? p[0].fd : p[1].fd;
	do
		ret = poll(p, n, timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return 0;
	if (n == 2 && (p[1].revents & POLLIN) && (ret = drain(p[1].fd)))
		return ret;
	if (p[0].revents & POLLIN) {
		if ((ret = drain(p[0].fd)))
			return ret;
		/* A waiter on a queue learns here that none of it will come. */
		if (n == 2 && uvirtio_driver_needs_reset(public_drv))
			return -EIO;
	}
	return 1;
}

int uvirtio_driver_config_read(struct uvirtio_driver *public_drv, unsigned offset, void *buf,
			       unsigned len)
{
	struct driver *drv = driver_of(public_drv);
	const struct uvirtio_transport_ops *ops = drv->t->ops;
	uint32_t before, after;
	int ret;

	/* Bounded: a hostile device could bump the generation for ever. */
	for (unsigned tries = 0; tries < 1000; tries++) {
		ret = ops->config_generation(drv->t, &before);
		if (!ret)
			ret = ops->get_config(drv->t, offset, buf, len);
		if (!ret)
			ret = ops->config_generation(drv->t, &after);
		if (ret || before == after)
			return ret;
	}
	return -EIO;
}

bool uvirtio_driver_needs_reset(struct uvirtio_driver *public_drv)
{
	struct driver *drv = driver_of(public_drv);
	uint8_t status;

	return drv->t->ops->get_status(drv->t, &status) == 0 &&
	       (status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

int uvirtio_driver_remove(struct uvirtio_driver *public_drv,
			  void (*release)(void *token, void *opaque), void *opaque)
{
	struct driver *drv = driver_of(public_drv);

	/* Reset before deleting queues: until then the device may still use
	 * the rings and buffers we are about to free. */
	int ret = drv->t->ops->reset(drv->t);

	for (unsigned i = 0; i < drv->nvqs; i++) {
		void *token;

		while ((token = uvirtio_drvq_detach_unused(&drv->vqs[i])))
			if (release)
				release(token, opaque);
	}
	delete_vqs(drv);
	drv->features = 0;
	return ret;
}

int uvirtio_driver_queue_reset(struct uvirtio_driver *public_drv, unsigned index,
			       void (*release)(void *token, void *opaque), void *opaque)
{
	struct driver *drv = driver_of(public_drv);
	struct uvirtio_drvq *q;
	void *token;
	int ret;

	if (index >= drv->nvqs || drv->vq_reset[index])
		return -ENOENT;
	if (!has_feature(drv, VIRTIO_F_RING_RESET) || !drv->t->ops->queue_reset)
		return -EOPNOTSUPP;
	/* The device lets go first: until it has, it may still use the ring
	 * and the buffers about to be handed back. */
	ret = drv->t->ops->queue_reset(drv->t, index);
	if (ret)
		return ret;
	q = &drv->vqs[index];
	while ((token = uvirtio_drvq_detach_unused(q)))
		if (release)
			release(token, opaque);
	/* The ring is kept until enable: its size is the default for the new one. */
	drv->vq_reset[index] = true;
	return 0;
}

int uvirtio_driver_queue_enable(struct uvirtio_driver *public_drv, unsigned index, unsigned size)
{
	struct driver *drv = driver_of(public_drv);
	struct uvirtio_drvq *q;
	int ret;

	if (index >= drv->nvqs)
		return -ENOENT;
	if (!drv->vq_reset[index])
		return -EBUSY;
	q = &drv->vqs[index];
	if (!size)
		size = uvirtio_drvq_size(q) ? uvirtio_drvq_size(q) : DEFAULT_QUEUE_SIZE;
	uvirtio_drvq_destroy(q);
	ret = setup_vq(drv, index, size);
	if (!ret)
		drv->vq_reset[index] = false;
	return ret;
}

/* Poll the status until @done says so, as a driver polls a register: the
 * device may take a while to finish what is in flight. */
static int wait_status(struct driver *drv, bool (*done)(uint8_t status), int timeout_ms)
{
	struct timespec start, now;
	unsigned delay_us = 1;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		uint8_t status;
		int ret = drv->t->ops->get_status(drv->t, &status);

		if (ret)
			return ret;
		if (status & VIRTIO_CONFIG_S_NEEDS_RESET)
			return -EIO;
		if (done(status))
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (timeout_ms >= 0 &&
		    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >=
			    timeout_ms)
			return -ETIMEDOUT;
		usleep(delay_us);
		if (delay_us < 1000)
			delay_us *= 2;
	}
}

static bool is_suspended(uint8_t status)
{
	return (status & VIRTIO_CONFIG_S_SUSPEND) && !(status & VIRTIO_CONFIG_S_DRIVER_OK);
}

static bool is_resumed(uint8_t status)
{
	return !(status & VIRTIO_CONFIG_S_SUSPEND) && (status & VIRTIO_CONFIG_S_DRIVER_OK);
}

int uvirtio_driver_suspend(struct uvirtio_driver *public_drv, int timeout_ms)
{
	struct driver *drv = driver_of(public_drv);
	uint8_t status;
	int ret;

	if (!has_feature(drv, VIRTIO_F_SUSPEND))
		return -EOPNOTSUPP;
	ret = drv->t->ops->get_status(drv->t, &status);
	if (ret)
		return ret;
	/* spec: the driver MUST NOT set SUSPEND before DRIVER_OK. */
	if (!(status & VIRTIO_CONFIG_S_DRIVER_OK))
		return -EINVAL;
	ret = drv->t->ops->set_status(drv->t, (uint8_t)(status | VIRTIO_CONFIG_S_SUSPEND));
	if (ret)
		return ret;
	/* spec: the suspend is complete only once the device presents SUSPEND
	 * (and has cleared DRIVER_OK). */
	return wait_status(drv, is_suspended, timeout_ms);
}

int uvirtio_driver_resume(struct uvirtio_driver *public_drv, int timeout_ms)
{
	struct driver *drv = driver_of(public_drv);
	uint8_t status;
	int ret = drv->t->ops->get_status(drv->t, &status);

	if (ret)
		return ret;
	if (!is_suspended(status))
		return -EINVAL;
	ret = drv->t->ops->set_status(drv->t, (uint8_t)(status | VIRTIO_CONFIG_S_DRIVER_OK));
	if (ret)
		return ret;
	return wait_status(drv, is_resumed, timeout_ms);
}

struct uvirtio_drvq *uvirtio_driver_vq(struct uvirtio_driver *public_drv, unsigned index)
{
	struct driver *drv = driver_of(public_drv);

	return index < drv->nvqs ? &drv->vqs[index] : NULL;
}

bool uvirtio_driver_has_feature(const struct uvirtio_driver *drv, unsigned bit)
{
	return has_feature(driver_of_const(drv), bit);
}

struct uvirtio_transport *uvirtio_driver_transport(const struct uvirtio_driver *drv)
{
	return driver_of_const(drv)->t;
}

uint64_t uvirtio_driver_features(const struct uvirtio_driver *drv)
{
	return driver_of_const(drv)->features;
}

unsigned uvirtio_driver_num_vqs(const struct uvirtio_driver *drv)
{
	return driver_of_const(drv)->nvqs;
}

bool uvirtio_driver_queue_is_reset(const struct uvirtio_driver *public_drv, unsigned index)
{
	const struct driver *drv = driver_of_const(public_drv);

	return index < drv->nvqs && drv->vq_reset[index];
}
