// SPDX-License-Identifier: MIT
/*
 * virtio-mmio version 2, device side: a register model for one device.
 * Every register access is serialised by one lock (a VMM's big lock); the
 * device hooks, which a queue thread may call while that lock is held by a
 * write waiting for the thread (reset joins it), never take it: they touch
 * only atomics and eventfds.
 */
#include <errno.h>
#include <linux/virtio_mmio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../log/log_priv.h"
#include "uvirtio/mmio.h"

#define MMIO_VERSION 2u
#define INT_VRING VIRTIO_MMIO_INT_VRING
#define INT_CONFIG VIRTIO_MMIO_INT_CONFIG

#define SAVE_MAGIC 0x4d4d5655u /* "UVMM" */
#define SAVE_VERSION 1u

/* A queue's values as the driver writes them, before QueueReady. */
struct staged_queue {
	uint32_t num;
	uint64_t desc, driver, device;
};

struct uvirtio_mmio_dev {
	struct uvirtio_device *dev;
	struct uvirtio_mmio_dev_config cfg;
	pthread_mutex_t lock;

	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint32_t interrupt_status; /* atomic: hooks set bits without the lock */
	struct staged_queue *staged;
	unsigned nqueues;

	int *kick_fds;  /* per queue with takes_kick_fds, else NULL */
	bool *resched;  /* per queue, atomic: the device type asked for a kick */
	int work_fd;
};

/* Hooks: any thread, never the lock. */

static void raise_interrupt(struct uvirtio_mmio_dev *m, uint32_t bit)
{
	uint32_t old = __atomic_fetch_or(&m->interrupt_status, bit, __ATOMIC_ACQ_REL);

	/* A level line: it goes up when the first bit is set. */
	if (!old && m->cfg.irq)
		m->cfg.irq(m->cfg.opaque);
}

static void hook_notify_used(void *opaque, unsigned index)
{
	(void)index;
	raise_interrupt(opaque, INT_VRING);
}

static void hook_notify_config(void *opaque)
{
	raise_interrupt(opaque, INT_CONFIG);
}

static void hook_reschedule(void *opaque, unsigned index)
{
	struct uvirtio_mmio_dev *m = opaque;

	if (index >= m->nqueues)
		return;
	/* Like a kick: a queue thread polls its kick fd; otherwise the kick
	 * waits for uvirtio_mmio_dev_run(), as the lock may be ours already. */
	if (m->kick_fds) {
		eventfd_signal(m->kick_fds[index]);
		return;
	}
	__atomic_store_n(&m->resched[index], true, __ATOMIC_RELEASE);
	eventfd_signal(m->work_fd);
}

/* Registers. Called with the lock held. */

static struct staged_queue *selected(struct uvirtio_mmio_dev *m)
{
	return m->queue_sel < m->nqueues ? &m->staged[m->queue_sel] : NULL;
}

static void forget_registers(struct uvirtio_mmio_dev *m)
{
	m->device_features_sel = m->driver_features_sel = m->queue_sel = 0;
	memset(m->staged, 0, m->nqueues * sizeof(*m->staged));
	for (unsigned i = 0; i < m->nqueues; i++)
		__atomic_store_n(&m->resched[i], false, __ATOMIC_RELAXED);
	/* Interrupts raised before or during the reset mean nothing after it. */
	__atomic_store_n(&m->interrupt_status, 0, __ATOMIC_RELEASE);
}

/* spec 4.2.2.1: a write of 0 to Status resets the device; MMIO gives the
 * driver no way to wait for it, so it is complete when the write returns. */
static void reset(struct uvirtio_mmio_dev *m)
{
	uvirtio_device_reset(m->dev);
	for (unsigned i = 0; m->kick_fds && i < m->nqueues; i++)
		eventfd_drain(m->kick_fds[i]);
	forget_registers(m);
}

static uint32_t read_queue_ready(struct uvirtio_mmio_dev *m)
{
	return m->queue_sel < m->nqueues && uvirtio_device_queue_ready(m->dev, m->queue_sel);
}

static uint32_t read_register(struct uvirtio_mmio_dev *m, uint64_t offset, bool *ok)
{
	struct uvirtio_device *dev = m->dev;
	uint64_t features;

	switch (offset) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return UVIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return MMIO_VERSION;
	case VIRTIO_MMIO_DEVICE_ID:
		return uvirtio_device_ops(dev)->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return m->cfg.vendor_id;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		features = uvirtio_device_get_features(dev);
		if (m->device_features_sel > 1)
			return 0;
		return (uint32_t)(features >> (32 * m->device_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		/* 0 for a queue that does not exist, as the spec says. */
		return m->queue_sel < m->nqueues ? uvirtio_device_queue_max_size(dev, m->queue_sel) : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return read_queue_ready(m);
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return __atomic_load_n(&m->interrupt_status, __ATOMIC_ACQUIRE);
	case VIRTIO_MMIO_STATUS:
		return uvirtio_device_get_status(dev);
	case VIRTIO_MMIO_QUEUE_RESET:
		/* The reset is synchronous: it is done before the driver can
		 * read this, so it always reads 0. */
		return 0;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return uvirtio_device_config_generation(dev);
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
	case VIRTIO_MMIO_DRIVER_FEATURES:
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
	case VIRTIO_MMIO_QUEUE_SEL:
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_NOTIFY:
	case VIRTIO_MMIO_INTERRUPT_ACK:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		/* Write-only registers read 0. */
		return 0;
	}
	*ok = false;
	return 0;
}

static void set_low(uint64_t *v, uint32_t value)
{
	*v = (*v & ~(uint64_t)UINT32_MAX) | value;
}

static void set_high(uint64_t *v, uint32_t value)
{
	*v = (*v & UINT32_MAX) | (uint64_t)value << 32;
}

static void write_driver_features(struct uvirtio_mmio_dev *m, uint32_t value)
{
	uint64_t f = uvirtio_device_get_driver_features(m->dev);

	if (m->driver_features_sel == 0)
		set_low(&f, value);
	else if (m->driver_features_sel == 1)
		set_high(&f, value);
	else
		return; /* no feature bits there: ignored */
	/* -EBUSY after FEATURES_OK (the spec forbids the change): ignored. */
	uvirtio_device_set_driver_features(m->dev, f);
}

static void write_queue_ready(struct uvirtio_mmio_dev *m, uint32_t value)
{
	struct staged_queue *q = selected(m);
	struct uvirtio_queue_layout l;
	int ret;

	/* Writing 0 does not stop a queue: the spec's ways are a queue reset
	 * (QueueReset) and a device reset. Linux writes 0 only after a reset,
	 * when the queue is not ready anyway. */
	if (!q || value != 1 || read_queue_ready(m))
		return;
	l = (struct uvirtio_queue_layout){
		.num = q->num, .desc = q->desc, .avail = q->driver, .used = q->device,
	};
	/* A refused layout (size 0, above the maximum or not a power of two,
	 * rings outside memory, before FEATURES_OK) leaves QueueReady 0, which
	 * the driver can read back. */
	ret = uvirtio_device_queue_enable(m->dev, m->queue_sel, &l);
	if (ret)
		uvirtio_log(UVIRTIO_LOG_WARN, "mmio: queue %u: ring refused (%s): QueueNum %u desc %#llx driver %#llx device %#llx",
			    m->queue_sel, strerror(-ret), l.num, (unsigned long long)l.desc,
			    (unsigned long long)l.avail, (unsigned long long)l.used);
}

static void write_queue_reset(struct uvirtio_mmio_dev *m, uint32_t value)
{
	if (value != 1 || m->queue_sel >= m->nqueues)
		return;
	/* spec: QueueReset exists only with VIRTIO_F_RING_RESET; without it the
	 * device core refuses (-EPERM) and the queue is untouched. */
	if (uvirtio_device_queue_reset(m->dev, m->queue_sel))
		return;
	if (m->kick_fds)
		eventfd_drain(m->kick_fds[m->queue_sel]);
	__atomic_store_n(&m->resched[m->queue_sel], false, __ATOMIC_RELAXED);
	/* The queue's registers start afresh for its next set-up. */
	m->staged[m->queue_sel] = (struct staged_queue){ 0 };
}

static void write_interrupt_ack(struct uvirtio_mmio_dev *m, uint32_t value)
{
	uint32_t left = __atomic_and_fetch(&m->interrupt_status, ~value, __ATOMIC_ACQ_REL);

	/* Bits set since the driver read the status keep the line up: raise it
	 * again, or an edge-signalled line (an eventfd) would lose them. */
	if (left && (value & (INT_VRING | INT_CONFIG)) && m->cfg.irq)
		m->cfg.irq(m->cfg.opaque);
}

/* Returns false for a write to a register that cannot be written. */
static bool write_register(struct uvirtio_mmio_dev *m, uint64_t offset, uint32_t value)
{
	struct staged_queue *q = selected(m);

	switch (offset) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		m->device_features_sel = value;
		return true;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		write_driver_features(m, value);
		return true;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		m->driver_features_sel = value;
		return true;
	case VIRTIO_MMIO_QUEUE_SEL:
		m->queue_sel = value;
		return true;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (q)
			q->num = value;
		return true;
	case VIRTIO_MMIO_QUEUE_READY:
		write_queue_ready(m, value);
		return true;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* The queue's index; with NOTIFICATION_DATA in bits 0-15 and
		 * the driver's next available position above. */
		uvirtio_device_queue_notify_data(m->dev, value);
		return true;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		write_interrupt_ack(m, value);
		return true;
	case VIRTIO_MMIO_STATUS:
		if ((value & 0xff) == 0)
			reset(m);
		else
			uvirtio_device_set_status(m->dev, (uint8_t)value);
		return true;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (!q)
			return true;
		if (offset == VIRTIO_MMIO_QUEUE_DESC_LOW)
			set_low(&q->desc, value);
		else if (offset == VIRTIO_MMIO_QUEUE_DESC_HIGH)
			set_high(&q->desc, value);
		else if (offset == VIRTIO_MMIO_QUEUE_AVAIL_LOW)
			set_low(&q->driver, value);
		else if (offset == VIRTIO_MMIO_QUEUE_AVAIL_HIGH)
			set_high(&q->driver, value);
		else if (offset == VIRTIO_MMIO_QUEUE_USED_LOW)
			set_low(&q->device, value);
		else
			set_high(&q->device, value);
		return true;
	case VIRTIO_MMIO_QUEUE_RESET:
		write_queue_reset(m, value);
		return true;
	}
	return false;
}

/* Config space: 1, 2 or 4 bytes, as little-endian values. */
static bool config_range(uint64_t offset, unsigned size)
{
	return offset >= UVIRTIO_MMIO_CONFIG && offset - UVIRTIO_MMIO_CONFIG <= UINT32_MAX &&
	       (size == 1 || size == 2 || size == 4);
}

static int config_read(struct uvirtio_mmio_dev *m, unsigned off, unsigned size, uint32_t *value)
{
	uint8_t b[4] = { 0 };
	int ret = uvirtio_device_config_read(m->dev, off, b, size);

	if (ret)
		return ret;
	*value = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return 0;
}

static int config_write(struct uvirtio_mmio_dev *m, unsigned off, unsigned size, uint32_t value)
{
	uint8_t b[4] = { (uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
			 (uint8_t)(value >> 24) };
	int ret = uvirtio_device_config_write(m->dev, off, b, size);

	/* A device type's refusal (read-only field) is the device's answer,
	 * not a malformed access; only an out-of-range one is. */
	return ret == -EINVAL ? ret : 0;
}

/* Public. */

int uvirtio_mmio_dev_read(struct uvirtio_mmio_dev *m, uint64_t offset, unsigned size,
			  uint32_t *value)
{
	bool ok = true;
	int ret = 0;

	*value = 0;
	if (offset >= UVIRTIO_MMIO_CONFIG) {
		if (!config_range(offset, size))
			return -EINVAL;
		pthread_mutex_lock(&m->lock);
		ret = config_read(m, (unsigned)(offset - UVIRTIO_MMIO_CONFIG), size, value);
		pthread_mutex_unlock(&m->lock);
		return ret;
	}
	/* spec 4.2.2.2: registers are read and written as 32-bit words. */
	if (size != 4 || (offset & 3)) {
		uvirtio_log(UVIRTIO_LOG_WARN, "mmio: read of %u bytes at %#llx: registers are aligned 32-bit words",
			    size, (unsigned long long)offset);
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	*value = read_register(m, offset, &ok);
	pthread_mutex_unlock(&m->lock);
	if (!ok)
		uvirtio_log(UVIRTIO_LOG_WARN, "mmio: read at %#llx: no such register", (unsigned long long)offset);
	return ok ? 0 : -EINVAL;
}

int uvirtio_mmio_dev_write(struct uvirtio_mmio_dev *m, uint64_t offset, unsigned size,
			   uint32_t value)
{
	bool ok;
	int ret;

	if (offset >= UVIRTIO_MMIO_CONFIG) {
		if (!config_range(offset, size))
			return -EINVAL;
		pthread_mutex_lock(&m->lock);
		ret = config_write(m, (unsigned)(offset - UVIRTIO_MMIO_CONFIG), size, value);
		pthread_mutex_unlock(&m->lock);
		return ret;
	}
	if (size != 4 || (offset & 3)) {
		uvirtio_log(UVIRTIO_LOG_WARN, "mmio: write of %u bytes at %#llx: registers are aligned 32-bit words",
			    size, (unsigned long long)offset);
		return -EINVAL;
	}
	/* A queue thread polls its kick fd: a kick is an eventfd write, no lock
	 * (an ioeventfd), so a kick never waits behind a slow reset. */
	if (offset == VIRTIO_MMIO_QUEUE_NOTIFY && m->kick_fds) {
		/* The data beside the index is a hint a queue thread does not
		 * need (it reads the ring). */
		uint32_t index = uvirtio_device_notified_queue(m->dev, value);

		if (index < m->nqueues)
			eventfd_signal(m->kick_fds[index]);
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	ok = write_register(m, offset, value);
	pthread_mutex_unlock(&m->lock);
	if (!ok)
		uvirtio_log(UVIRTIO_LOG_WARN, "mmio: write of %#x at %#llx: no such register", value,
			    (unsigned long long)offset);
	return ok ? 0 : -EINVAL;
}

static int bus_read(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t *value)
{
	if (space != 0) {
		*value = 0;
		return -EINVAL;
	}
	return uvirtio_mmio_dev_read(opaque, offset, size, value);
}

static int bus_write(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t value)
{
	if (space != 0)
		return -EINVAL;
	return uvirtio_mmio_dev_write(opaque, offset, size, value);
}

void uvirtio_mmio_dev_bus(struct uvirtio_mmio_dev *m, struct uvirtio_regbus *bus)
{
	*bus = (struct uvirtio_regbus){ .read = bus_read, .write = bus_write, .opaque = m };
}

uint32_t uvirtio_mmio_dev_interrupt_status(struct uvirtio_mmio_dev *m)
{
	return __atomic_load_n(&m->interrupt_status, __ATOMIC_ACQUIRE);
}

int uvirtio_mmio_dev_work_fd(struct uvirtio_mmio_dev *m)
{
	return m->work_fd;
}

void uvirtio_mmio_dev_run(struct uvirtio_mmio_dev *m)
{
	pthread_mutex_lock(&m->lock);
	eventfd_drain(m->work_fd);
	for (unsigned i = 0; i < m->nqueues; i++)
		if (__atomic_exchange_n(&m->resched[i], false, __ATOMIC_ACQ_REL))
			uvirtio_device_queue_notify(m->dev, i);
	pthread_mutex_unlock(&m->lock);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Layout: magic, version, queue count, DeviceFeaturesSel,
 * DriverFeaturesSel, QueueSel, InterruptStatus, 0; then per queue: QueueNum,
 * 0, desc, driver, device. */
ssize_t uvirtio_mmio_dev_save(struct uvirtio_mmio_dev *m, void *buf, size_t len)
{
	size_t need = UVIRTIO_MMIO_DEV_SAVE_SIZE(m->nqueues);
	uint8_t *p = buf;

	if (!buf)
		return (ssize_t)need;
	if (len < need)
		return -ENOSPC;
	memset(p, 0, need);
	pthread_mutex_lock(&m->lock);
	put32(p, SAVE_MAGIC);
	put32(p + 4, SAVE_VERSION);
	put32(p + 8, m->nqueues);
	put32(p + 12, m->device_features_sel);
	put32(p + 16, m->driver_features_sel);
	put32(p + 20, m->queue_sel);
	put32(p + 24, __atomic_load_n(&m->interrupt_status, __ATOMIC_ACQUIRE));
	for (unsigned i = 0; i < m->nqueues; i++) {
		uint8_t *q = p + 32 + 32 * (size_t)i;

		put32(q, m->staged[i].num);
		put64(q + 8, m->staged[i].desc);
		put64(q + 16, m->staged[i].driver);
		put64(q + 24, m->staged[i].device);
	}
	pthread_mutex_unlock(&m->lock);
	return (ssize_t)need;
}

int uvirtio_mmio_dev_load(struct uvirtio_mmio_dev *m, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t isr;

	/* Validate the whole blob before changing anything. */
	if (!buf || len != UVIRTIO_MMIO_DEV_SAVE_SIZE(m->nqueues) || get32(p) != SAVE_MAGIC ||
	    get32(p + 4) != SAVE_VERSION || get32(p + 8) != m->nqueues || get32(p + 28))
		return -EINVAL;
	isr = get32(p + 24);
	if (isr & ~(uint32_t)(INT_VRING | INT_CONFIG))
		return -EINVAL;
	for (unsigned i = 0; i < m->nqueues; i++)
		if (get32(p + 32 + 32 * (size_t)i + 4))
			return -EINVAL;

	pthread_mutex_lock(&m->lock);
	m->device_features_sel = get32(p + 12);
	m->driver_features_sel = get32(p + 16);
	m->queue_sel = get32(p + 20);
	for (unsigned i = 0; i < m->nqueues; i++) {
		const uint8_t *q = p + 32 + 32 * (size_t)i;

		m->staged[i] = (struct staged_queue){
			.num = get32(q), .desc = get64(q + 8), .driver = get64(q + 16),
			.device = get64(q + 24),
		};
	}
	__atomic_store_n(&m->interrupt_status, isr, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&m->lock);
	/* The line was up where the registers were saved: it is up here too. */
	if (isr && m->cfg.irq)
		m->cfg.irq(m->cfg.opaque);
	return 0;
}

static void close_fds(struct uvirtio_mmio_dev *m)
{
	for (unsigned i = 0; m->kick_fds && i < m->nqueues; i++)
		if (m->kick_fds[i] >= 0)
			close(m->kick_fds[i]);
	free(m->kick_fds);
	m->kick_fds = NULL;
	if (m->work_fd >= 0)
		close(m->work_fd);
	m->work_fd = -1;
}

int uvirtio_mmio_dev_create(struct uvirtio_mmio_dev **out, struct uvirtio_device *dev,
			    const struct uvirtio_mmio_dev_config *cfg)
{
	struct uvirtio_mmio_dev *m;
	struct uvirtio_device_hooks hooks;
	int ret = 0;

	if (!uvirtio_device_ops(dev))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->dev = dev;
	m->work_fd = -1;
	if (cfg)
		m->cfg = *cfg;
	if (!m->cfg.vendor_id)
		m->cfg.vendor_id = UVIRTIO_MMIO_VENDOR_QEMU;
	m->nqueues = uvirtio_device_num_queues(dev);
	pthread_mutex_init(&m->lock, NULL);
	m->staged = calloc(m->nqueues, sizeof(*m->staged));
	m->resched = calloc(m->nqueues, sizeof(*m->resched));
	if (!m->staged || !m->resched) {
		ret = -ENOMEM;
		goto fail;
	}
	m->work_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->work_fd < 0) {
		ret = -errno;
		goto fail;
	}
	if (uvirtio_device_ops(dev)->takes_kick_fds) {
		m->kick_fds = malloc(m->nqueues * sizeof(*m->kick_fds));
		if (!m->kick_fds) {
			ret = -ENOMEM;
			goto fail;
		}
		for (unsigned i = 0; i < m->nqueues; i++)
			m->kick_fds[i] = -1;
		for (unsigned i = 0; i < m->nqueues; i++) {
			m->kick_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (m->kick_fds[i] < 0) {
				ret = -errno;
				goto fail;
			}
		}
		for (unsigned i = 0; i < m->nqueues; i++)
			uvirtio_device_set_kick_fd(dev, i, m->kick_fds[i]);
	}
	hooks = (struct uvirtio_device_hooks){
		.notify_used = hook_notify_used, .notify_config = hook_notify_config,
		.reschedule = hook_reschedule, .opaque = m,
	};
	uvirtio_device_set_hooks(dev, &hooks);
	*out = m;
	return 0;

fail:
	close_fds(m);
	free(m->staged);
	free(m->resched);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return ret;
}

void uvirtio_mmio_dev_destroy(struct uvirtio_mmio_dev *m)
{
	struct uvirtio_device_hooks none = { 0 };

	if (!m)
		return;
	/* Queue threads poll the kick fds and call the hooks: stop them first. */
	uvirtio_device_reset(m->dev);
	for (unsigned i = 0; m->kick_fds && i < m->nqueues; i++)
		uvirtio_device_set_kick_fd(m->dev, i, -1);
	uvirtio_device_set_hooks(m->dev, &none);
	close_fds(m);
	free(m->staged);
	free(m->resched);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
