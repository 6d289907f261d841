// SPDX-License-Identifier: MIT
/*
 * virtio-mmio version 2, driver side: the transport ops made of register
 * accesses, in the order Linux 6.1's drivers/virtio/virtio_mmio.c makes
 * them. Every access goes through the regbus, one at a time (the bus lock):
 * a remote bus is one socket. An interrupt thread plays vm_interrupt().
 */
#include <errno.h>
#include <linux/virtio_mmio.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../log/log_priv.h"
#include "uvirtio/mmio.h"

/* How many times queue_reset reads QueueReset back before giving up: the
 * device may take a while to finish the queue's requests, but a device that
 * never clears it must not hold the driver for ever. */
#define QUEUE_RESET_POLLS 100000u

struct mmio_drv {
	struct uvirtio_transport t; /* first: the caller's handle */
	pthread_mutex_t bus_lock;
	struct uvirtio_regbus bus;
	struct uvirtio_dma *dma;
	uint32_t device_id;
	uint8_t last_status; /* what the driver last wrote; under bus_lock */
	/* The driver set SUSPEND and has not resumed since; under bus_lock.
	 * A resume writes the same bits as the suspend (SUSPEND | DRIVER_OK),
	 * so this follows the writes, not one value. */
	bool suspended;

	int irq_fd;    /* the caller's */
	int stop_fd;   /* ends the interrupt thread */
	int config_fd; /* configuration change */
	/* Per queue, created at first use; the interrupt thread reads up to
	 * nfds (release/acquire pairs with the creator's store). */
	int *event_fds;
	unsigned nfds;
	pthread_mutex_t fd_lock;
	pthread_t irq_thread;
	bool thread_started;
};

static struct mmio_drv *to_drv(struct uvirtio_transport *t)
{
	return (struct mmio_drv *)((char *)t - offsetof(struct mmio_drv, t));
}

static int rd(struct mmio_drv *d, uint64_t offset, unsigned size, uint32_t *value)
{
	int ret;

	*value = 0;
	pthread_mutex_lock(&d->bus_lock);
	ret = d->bus.read(d->bus.opaque, 0, offset, size, value);
	pthread_mutex_unlock(&d->bus_lock);
	return ret;
}

static int wr(struct mmio_drv *d, uint64_t offset, unsigned size, uint32_t value)
{
	int ret;

	pthread_mutex_lock(&d->bus_lock);
	ret = d->bus.write(d->bus.opaque, 0, offset, size, value);
	pthread_mutex_unlock(&d->bus_lock);
	return ret;
}

static int rd32(struct mmio_drv *d, uint64_t offset, uint32_t *value)
{
	return rd(d, offset, 4, value);
}

static int wr32(struct mmio_drv *d, uint64_t offset, uint32_t value)
{
	return wr(d, offset, 4, value);
}

/* The event fd of queue @index, created at first use; -errno on failure. */
static int queue_event_fd(struct mmio_drv *d, unsigned index)
{
	int fd;

	if (index >= UVIRTIO_MMIO_DRV_MAX_QUEUES)
		return -EINVAL;
	pthread_mutex_lock(&d->fd_lock);
	while (d->nfds <= index) {
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			fd = -errno;
			pthread_mutex_unlock(&d->fd_lock);
			return fd;
		}
		d->event_fds[d->nfds] = fd;
		__atomic_store_n(&d->nfds, d->nfds + 1, __ATOMIC_RELEASE);
	}
	fd = d->event_fds[index];
	pthread_mutex_unlock(&d->fd_lock);
	return fd;
}

/* vm_interrupt(): read InterruptStatus, acknowledge it, then call every
 * queue (bit 0) and the config handler (bit 1). Acknowledging first means
 * a used buffer the device adds after the read raises the line again. */
static void handle_interrupt(struct mmio_drv *d)
{
	uint32_t status;
	unsigned n;

	if (rd32(d, VIRTIO_MMIO_INTERRUPT_STATUS, &status) || !status)
		return;
	if (wr32(d, VIRTIO_MMIO_INTERRUPT_ACK, status))
		return;
	if (status & VIRTIO_MMIO_INT_CONFIG)
		eventfd_signal(d->config_fd);
	if (status & VIRTIO_MMIO_INT_VRING) {
		n = __atomic_load_n(&d->nfds, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; i < n; i++)
			eventfd_signal(d->event_fds[i]);
	}
}

static void *irq_thread(void *arg)
{
	struct mmio_drv *d = arg;
	struct pollfd p[2] = {
		{ .fd = d->stop_fd, .events = POLLIN },
		{ .fd = d->irq_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		/* A hung-up or broken fd would make poll return at once for ever. */
		if (p[1].revents & (POLLERR | POLLNVAL))
			return NULL;
		if (p[1].revents & POLLIN) {
			eventfd_drain(d->irq_fd);
			handle_interrupt(d);
		}
	}
}

/* Transport ops. */

static int mmio_get_features(struct uvirtio_transport *t, uint64_t *features)
{
	struct mmio_drv *d = to_drv(t);
	uint32_t lo, hi;
	int ret;

	/* vm_get_features(): the high word first. */
	ret = wr32(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	if (!ret)
		ret = rd32(d, VIRTIO_MMIO_DEVICE_FEATURES, &hi);
	if (!ret)
		ret = wr32(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	if (!ret)
		ret = rd32(d, VIRTIO_MMIO_DEVICE_FEATURES, &lo);
	*features = ret ? 0 : (uint64_t)hi << 32 | lo;
	return ret;
}

static int mmio_set_features(struct uvirtio_transport *t, uint64_t features)
{
	struct mmio_drv *d = to_drv(t);
	int ret;

	/* vm_finalize_features(): the low word first. */
	ret = wr32(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	if (!ret)
		ret = wr32(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	if (!ret)
		ret = wr32(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	if (!ret)
		ret = wr32(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	return ret;
}

static int mmio_get_status(struct uvirtio_transport *t, uint8_t *status)
{
	uint32_t v;
	int ret = rd32(to_drv(t), VIRTIO_MMIO_STATUS, &v);

	*status = (uint8_t)v;
	return ret;
}

static void drain_events(struct mmio_drv *d)
{
	unsigned n = __atomic_load_n(&d->nfds, __ATOMIC_ACQUIRE);

	for (unsigned i = 0; i < n; i++)
		eventfd_drain(d->event_fds[i]);
	eventfd_drain(d->config_fd);
}

static int set_status(struct mmio_drv *d, uint8_t status)
{
	int ret;

	pthread_mutex_lock(&d->bus_lock);
	ret = d->bus.write(d->bus.opaque, 0, VIRTIO_MMIO_STATUS, 4, status);
	if (!ret) {
		if (d->suspended || !status)
			d->suspended = false;
		else if (status & VIRTIO_CONFIG_S_SUSPEND)
			d->suspended = true;
		d->last_status = status;
	}
	pthread_mutex_unlock(&d->bus_lock);
	return ret;
}

static int mmio_set_status(struct uvirtio_transport *t, uint8_t status)
{
	return set_status(to_drv(t), status);
}

static int mmio_reset(struct uvirtio_transport *t)
{
	struct mmio_drv *d = to_drv(t);
	int ret;

	/* vm_reset(): write 0. spec 4.2.2.1 gives MMIO no wait, so the device
	 * is reset when the write returns (Linux 6.1 does not poll either). */
	ret = set_status(d, 0);
	/* Notifications from before the reset mean nothing after it. */
	if (!ret)
		drain_events(d);
	return ret;
}

/* vm_get()/vm_set(): 1, 2 and 4 bytes with one access of that size, 8 as
 * two 32-bit ones; other lengths (a byte array) byte by byte. */
static int mmio_get_config(struct uvirtio_transport *t, unsigned offset, void *buf, unsigned len)
{
	struct mmio_drv *d = to_drv(t);
	uint8_t *p = buf;
	unsigned step = len == 1 || len == 2 || len == 4 ? len : len == 8 ? 4 : 1;

	if (offset > UINT32_MAX - UVIRTIO_MMIO_CONFIG || len > UINT32_MAX - UVIRTIO_MMIO_CONFIG - offset)
		return -EINVAL;
	for (unsigned done = 0; done < len; done += step) {
		uint32_t v;
		int ret = rd(d, UVIRTIO_MMIO_CONFIG + offset + done, step, &v);

		if (ret)
			return ret;
		for (unsigned i = 0; i < step; i++)
			p[done + i] = (uint8_t)(v >> (8 * i));
	}
	return 0;
}

static int mmio_set_config(struct uvirtio_transport *t, unsigned offset, const void *buf,
			   unsigned len)
{
	struct mmio_drv *d = to_drv(t);
	const uint8_t *p = buf;
	unsigned step = len == 1 || len == 2 || len == 4 ? len : len == 8 ? 4 : 1;

	if (offset > UINT32_MAX - UVIRTIO_MMIO_CONFIG || len > UINT32_MAX - UVIRTIO_MMIO_CONFIG - offset)
		return -EINVAL;
	for (unsigned done = 0; done < len; done += step) {
		uint32_t v = 0;
		int ret;

		for (unsigned i = 0; i < step; i++)
			v |= (uint32_t)p[done + i] << (8 * i);
		ret = wr(d, UVIRTIO_MMIO_CONFIG + offset + done, step, v);
		if (ret)
			return ret;
	}
	return 0;
}

static int mmio_config_generation(struct uvirtio_transport *t, uint32_t *generation)
{
	return rd32(to_drv(t), VIRTIO_MMIO_CONFIG_GENERATION, generation);
}

/* QueueNumMax as a hostile device may present it: 0 is "no such queue";
 * a split ring's size is a power of two up to 32768 (spec 2.7). */
static int read_num_max(struct mmio_drv *d, unsigned index, unsigned *max)
{
	uint32_t v;
	int ret = rd32(d, VIRTIO_MMIO_QUEUE_NUM_MAX, &v);

	*max = 0;
	if (ret)
		return ret;
	if (v && ((v & (v - 1)) || v > UVIRTIO_QUEUE_SIZE_MAX)) {
		uvirtio_log(UVIRTIO_LOG_ERR, "mmio: queue %u: QueueNumMax %u is not a power of 2 up to %u",
			    index, v, UVIRTIO_QUEUE_SIZE_MAX);
		return -EIO;
	}
	*max = v;
	return 0;
}

static int mmio_queue_max_size(struct uvirtio_transport *t, unsigned index, unsigned *max)
{
	struct mmio_drv *d = to_drv(t);
	int ret;

	*max = 0;
	if (index >= UVIRTIO_MMIO_DRV_MAX_QUEUES)
		return 0;
	ret = wr32(d, VIRTIO_MMIO_QUEUE_SEL, index);
	return ret ? ret : read_num_max(d, index, max);
}

static int write64(struct mmio_drv *d, uint64_t low_reg, uint64_t high_reg, uint64_t v)
{
	int ret = wr32(d, low_reg, (uint32_t)v);

	return ret ? ret : wr32(d, high_reg, (uint32_t)(v >> 32));
}

static int mmio_queue_enable(struct uvirtio_transport *t, unsigned index,
			     const struct uvirtio_queue_layout *l)
{
	struct mmio_drv *d = to_drv(t);
	uint32_t ready;
	unsigned max;
	int ret, fd;

	if (index >= UVIRTIO_MMIO_DRV_MAX_QUEUES)
		return -EINVAL;
	/* The interrupt thread signals this fd from now on. */
	fd = queue_event_fd(d, index);
	if (fd < 0)
		return fd;
	/* vm_setup_vq(): select, the queue must not be set up already, then
	 * its maximum size. */
	ret = wr32(d, VIRTIO_MMIO_QUEUE_SEL, index);
	if (!ret)
		ret = rd32(d, VIRTIO_MMIO_QUEUE_READY, &ready);
	if (ret)
		return ret;
	if (ready)
		return -ENOENT;
	ret = read_num_max(d, index, &max);
	if (ret)
		return ret;
	if (max == 0)
		return -ENOENT;
	/* Any size up to the maximum: a packed ring's need not be a power of
	 * 2, and the ring itself checks its own rules. */
	if (l->num == 0 || l->num > max)
		return -EINVAL;
	eventfd_drain(fd);
	ret = wr32(d, VIRTIO_MMIO_QUEUE_NUM, l->num);
	if (!ret)
		ret = write64(d, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, l->desc);
	if (!ret)
		ret = write64(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, l->avail);
	if (!ret)
		ret = write64(d, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH, l->used);
	if (!ret)
		ret = wr32(d, VIRTIO_MMIO_QUEUE_READY, 1);
	/* Linux does not read it back; a device that refused the ring would
	 * then leave the driver waiting for ever, so we do. */
	if (!ret)
		ret = rd32(d, VIRTIO_MMIO_QUEUE_READY, &ready);
	if (!ret && ready != 1) {
		uvirtio_log(UVIRTIO_LOG_ERR, "mmio: queue %u: QueueReady reads %u after the driver wrote 1",
			    index, ready);
		ret = -EIO;
	}
	return ret;
}

static int mmio_queue_reset(struct uvirtio_transport *t, unsigned index)
{
	struct mmio_drv *d = to_drv(t);
	uint32_t v = 1;
	int ret;

	if (index >= UVIRTIO_MMIO_DRV_MAX_QUEUES)
		return -EINVAL;
	/* spec 4.2.2.2: write 1 to QueueReset, then wait until it reads 0. */
	ret = wr32(d, VIRTIO_MMIO_QUEUE_SEL, index);
	if (!ret)
		ret = wr32(d, VIRTIO_MMIO_QUEUE_RESET, 1);
	for (unsigned i = 0; !ret && v && i < QUEUE_RESET_POLLS; i++)
		ret = rd32(d, VIRTIO_MMIO_QUEUE_RESET, &v);
	if (ret)
		return ret;
	if (v)
		return -ETIMEDOUT;
	/* spec: after the reset QueueReady reads 0; otherwise the device still
	 * holds the ring (a device without RING_RESET ignores the write). */
	ret = rd32(d, VIRTIO_MMIO_QUEUE_READY, &v);
	if (ret)
		return ret;
	if (v) {
		uvirtio_log(UVIRTIO_LOG_ERR, "mmio: queue %u: QueueReady reads %u after QueueReset", index, v);
		return -EIO;
	}
	if (index < __atomic_load_n(&d->nfds, __ATOMIC_ACQUIRE))
		eventfd_drain(d->event_fds[index]);
	return 0;
}

static int mmio_notify(struct uvirtio_transport *t, unsigned index)
{
	/* vm_notify(): the queue's index, to QueueNotify. */
	return wr32(to_drv(t), VIRTIO_MMIO_QUEUE_NOTIFY, index);
}

static int mmio_notify_data(struct uvirtio_transport *t, uint32_t data)
{
	/* vm_notify_with_data(): all 32 bits to QueueNotify. */
	return wr32(to_drv(t), VIRTIO_MMIO_QUEUE_NOTIFY, data);
}

static int mmio_event_fd(struct uvirtio_transport *t, unsigned index)
{
	struct mmio_drv *d = to_drv(t);

	if (index == UVIRTIO_CONFIG_EVENT)
		return d->config_fd;
	return queue_event_fd(d, index);
}

static struct uvirtio_dma *mmio_dma(struct uvirtio_transport *t)
{
	return to_drv(t)->dma;
}

static const struct uvirtio_transport_ops mmio_ops = {
	.get_features = mmio_get_features,
	.set_features = mmio_set_features,
	.get_status = mmio_get_status,
	.set_status = mmio_set_status,
	.reset = mmio_reset,
	.get_config = mmio_get_config,
	.set_config = mmio_set_config,
	.config_generation = mmio_config_generation,
	.queue_max_size = mmio_queue_max_size,
	.queue_enable = mmio_queue_enable,
	.queue_reset = mmio_queue_reset,
	.notify = mmio_notify,
	.notify_data = mmio_notify_data,
	.event_fd = mmio_event_fd,
	.dma = mmio_dma,
};

/* virtio_mmio_probe(): magic, version, device ID. */
static int probe(struct mmio_drv *d)
{
	uint32_t v;
	int ret = rd32(d, VIRTIO_MMIO_MAGIC_VALUE, &v);

	if (ret)
		return ret;
	if (v != UVIRTIO_MMIO_MAGIC)
		return -ENODEV;
	ret = rd32(d, VIRTIO_MMIO_VERSION, &v);
	if (ret)
		return ret;
	/* Version 1 is the legacy interface (QueuePFN), which uvirtio does not
	 * implement; any other is unknown. */
	if (v != 2)
		return -EPROTONOSUPPORT;
	ret = rd32(d, VIRTIO_MMIO_DEVICE_ID, &d->device_id);
	if (ret)
		return ret;
	/* spec 4.2.2.2: device ID 0 is a placeholder with no device behind. */
	return d->device_id ? 0 : -ENODEV;
}

int uvirtio_mmio_drv_create(struct uvirtio_transport **out, const struct uvirtio_regbus *bus,
			    struct uvirtio_dma *dma, int irq_fd)
{
	struct mmio_drv *d;
	int ret;

	if (!bus || !bus->read || !bus->write || !dma || irq_fd < 0)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->t = (struct uvirtio_transport){ .ops = &mmio_ops, .name = "virtio-mmio" };
	d->bus = *bus;
	d->dma = dma;
	d->irq_fd = irq_fd;
	d->stop_fd = d->config_fd = -1;
	pthread_mutex_init(&d->bus_lock, NULL);
	pthread_mutex_init(&d->fd_lock, NULL);
	d->event_fds = malloc(UVIRTIO_MMIO_DRV_MAX_QUEUES * sizeof(*d->event_fds));
	if (!d->event_fds) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = probe(d);
	if (ret)
		goto fail;
	d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->config_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->stop_fd < 0 || d->config_fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = -pthread_create(&d->irq_thread, NULL, irq_thread, d);
	if (ret)
		goto fail;
	d->thread_started = true;
	*out = &d->t;
	return 0;

fail:
	uvirtio_mmio_drv_destroy(&d->t);
	return ret;
}

uint32_t uvirtio_mmio_drv_device_id(struct uvirtio_transport *t)
{
	return to_drv(t)->device_id;
}

int uvirtio_mmio_drv_set_bus(struct uvirtio_transport *t, const struct uvirtio_regbus *bus)
{
	struct mmio_drv *d = to_drv(t);
	int ret = 0;

	if (!bus || !bus->read || !bus->write)
		return -EINVAL;
	pthread_mutex_lock(&d->bus_lock);
	if (d->last_status && !d->suspended)
		ret = -EBUSY;
	else
		d->bus = *bus;
	pthread_mutex_unlock(&d->bus_lock);
	/* The new device end may have raised its line before this switch (a
	 * model loaded with InterruptStatus set does), and the interrupt
	 * thread then read the old end's register instead: look once more,
	 * at the new end, or that line stays up with no edge to come. */
	if (!ret)
		eventfd_signal(d->irq_fd);
	return ret;
}

void uvirtio_mmio_drv_destroy(struct uvirtio_transport *t)
{
	struct mmio_drv *d;

	if (!t)
		return;
	d = to_drv(t);
	if (d->thread_started) {
		eventfd_signal(d->stop_fd);
		pthread_join(d->irq_thread, NULL);
	}
	for (unsigned i = 0; i < d->nfds; i++)
		close(d->event_fds[i]);
	free(d->event_fds);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	if (d->config_fd >= 0)
		close(d->config_fd);
	pthread_mutex_destroy(&d->bus_lock);
	pthread_mutex_destroy(&d->fd_lock);
	free(d);
}
