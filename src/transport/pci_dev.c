// SPDX-License-Identifier: MIT
/*
 * The virtio-pci modern register model (device side): PCI configuration
 * space with the virtio capabilities, and BAR 0 with the common
 * configuration, ISR, device configuration and notify structures. Saving
 * and loading the model's state is in pci_dev_save.c.
 */
#include <errno.h>
#include <linux/virtio_pci.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../log/log_priv.h"
#include "pci_dev_priv.h"

#define VECTORS_MAX 2048u

/* PCI configuration space: where the capabilities go. */
#define CAP_COMMON 0x40u
#define CAP_NOTIFY (CAP_COMMON + sizeof(struct virtio_pci_cap))
#define CAP_ISR (CAP_NOTIFY + sizeof(struct virtio_pci_notify_cap))
#define CAP_DEVICE (CAP_ISR + sizeof(struct virtio_pci_cap))

#define COMMON(field) offsetof(struct virtio_pci_common_cfg, field)

/* Rescheduled queues served after one access, at most this many rounds;
 * what is left waits for the next access (no access spins for ever). */
#define RESCHEDULE_ROUNDS 64u

/* Hooks: called on any thread, perhaps while a register access holds the
 * lock and waits for that very thread (a reset joining a queue thread), so
 * they use atomics only. */

static void raise_irq(struct uvirtio_pci_dev *m, uint16_t vector, uint8_t isr_bit)
{
	if (vector == VIRTIO_MSI_NO_VECTOR)
		__atomic_or_fetch(&m->isr, isr_bit, __ATOMIC_ACQ_REL);
	m->cfg.irq(m->cfg.opaque, vector);
}

static void hook_notify_used(void *opaque, unsigned index)
{
	struct uvirtio_pci_dev *m = opaque;

	if (index < m->nqueues)
		raise_irq(m, __atomic_load_n(&m->queues[index].vector, __ATOMIC_ACQUIRE),
			  ISR_QUEUE);
}

static void hook_notify_config(void *opaque)
{
	struct uvirtio_pci_dev *m = opaque;

	raise_irq(m, __atomic_load_n(&m->msix_config, __ATOMIC_ACQUIRE), ISR_CONFIG);
}

static void hook_reschedule(void *opaque, unsigned index)
{
	struct uvirtio_pci_dev *m = opaque;

	if (index >= m->nqueues)
		return;
	if (m->queues[index].kick_fd >= 0) {
		/* The queue's thread polls its kick fd: a kick runs it again. */
		eventfd_signal(m->queues[index].kick_fd);
		return;
	}
	if (!__atomic_exchange_n(&m->queues[index].rescheduled, true, __ATOMIC_ACQ_REL))
		__atomic_add_fetch(&m->rescheduled, 1, __ATOMIC_ACQ_REL);
}

/* Under the lock, after an access: run the queues the device type asked to
 * run again (a VMM runs such bottom halves before the vCPU goes on). */
static void run_rescheduled(struct uvirtio_pci_dev *m)
{
	for (unsigned round = 0; round < RESCHEDULE_ROUNDS; round++) {
		if (!__atomic_load_n(&m->rescheduled, __ATOMIC_ACQUIRE))
			return;
		for (unsigned i = 0; i < m->nqueues; i++) {
			if (!__atomic_exchange_n(&m->queues[i].rescheduled, false, __ATOMIC_ACQ_REL))
				continue;
			__atomic_sub_fetch(&m->rescheduled, 1, __ATOMIC_ACQ_REL);
			uvirtio_device_queue_notify(m->dev, i);
		}
	}
}

/* PCI configuration space. */

static void put_cap(uint8_t *cs, unsigned pos, uint8_t next, uint8_t len, uint8_t type,
		    uint32_t offset, uint32_t length)
{
	cs[pos + VIRTIO_PCI_CAP_VNDR] = 0x09; /* PCI_CAP_ID_VNDR */
	cs[pos + VIRTIO_PCI_CAP_NEXT] = next;
	cs[pos + VIRTIO_PCI_CAP_LEN] = len;
	cs[pos + VIRTIO_PCI_CAP_CFG_TYPE] = type;
	cs[pos + VIRTIO_PCI_CAP_BAR] = 0;
	put32(cs + pos + VIRTIO_PCI_CAP_OFFSET, offset);
	put32(cs + pos + VIRTIO_PCI_CAP_LENGTH, length);
}

static void build_config_space(struct uvirtio_pci_dev *m)
{
	uint8_t *cs = m->config_space;
	uint32_t id = uvirtio_device_ops(m->dev)->device_id;
	bool has_device_cfg = uvirtio_device_config_size(m->dev) > 0;

	put16(cs + 0x00, UVIRTIO_PCI_VENDOR_ID);
	put16(cs + 0x02, (uint16_t)(UVIRTIO_PCI_DEVICE_ID_BASE + id));
	put16(cs + 0x06, 0x0010);         /* status: capability list */
	cs[0x08] = 1;                     /* revision: modern */
	cs[0x0b] = 0xff;                  /* class: unassigned */
	put32(cs + 0x10, 0x0);            /* BAR 0: 32-bit memory */
	put16(cs + 0x2c, m->cfg.subsystem_vendor ? m->cfg.subsystem_vendor : UVIRTIO_PCI_VENDOR_ID);
	put16(cs + 0x2e, m->cfg.subsystem_id ? m->cfg.subsystem_id : (uint16_t)id);
	cs[0x34] = CAP_COMMON;            /* capability pointer */
	cs[0x3d] = 1;                     /* interrupt pin INTA */

	put_cap(cs, CAP_COMMON, CAP_NOTIFY, sizeof(struct virtio_pci_cap), VIRTIO_PCI_CAP_COMMON_CFG,
		UVIRTIO_PCI_COMMON_OFFSET, UVIRTIO_PCI_COMMON_CFG_SIZE);
	put_cap(cs, CAP_NOTIFY, CAP_ISR, sizeof(struct virtio_pci_notify_cap),
		VIRTIO_PCI_CAP_NOTIFY_CFG, UVIRTIO_PCI_NOTIFY_OFFSET,
		m->nqueues * UVIRTIO_PCI_NOTIFY_MULTIPLIER);
	put32(cs + CAP_NOTIFY + sizeof(struct virtio_pci_cap), UVIRTIO_PCI_NOTIFY_MULTIPLIER);
	/* A device type without config space gets no DEVICE capability (it is
	 * optional for the driver, as in Linux). */
	put_cap(cs, CAP_ISR, has_device_cfg ? CAP_DEVICE : 0, sizeof(struct virtio_pci_cap),
		VIRTIO_PCI_CAP_ISR_CFG, UVIRTIO_PCI_ISR_OFFSET, 1);
	if (has_device_cfg)
		put_cap(cs, CAP_DEVICE, 0, sizeof(struct virtio_pci_cap), VIRTIO_PCI_CAP_DEVICE_CFG,
			UVIRTIO_PCI_DEVICE_OFFSET, uvirtio_device_config_size(m->dev));
}

static uint32_t config_space_read(const struct uvirtio_pci_dev *m, uint64_t offset, unsigned size)
{
	uint32_t v = 0;

	if (offset % size || offset >= UVIRTIO_PCI_CONFIG_SPACE_SIZE)
		return 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)m->config_space[offset + i] << (8 * i);
	return v;
}

/* Common configuration. */

static struct pci_queue *selected(struct uvirtio_pci_dev *m)
{
	return m->queue_select < m->nqueues ? &m->queues[m->queue_select] : NULL;
}

static uint16_t valid_vector(const struct uvirtio_pci_dev *m, uint32_t v)
{
	/* As QEMU: a vector the function does not have reads back as none. */
	return v < m->cfg.nvectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

/* Forget what the driver staged: after a device reset, as QEMU does. */
static void reset_model(struct uvirtio_pci_dev *m)
{
	m->device_feature_select = m->driver_feature_select = 0;
	m->queue_select = 0;
	__atomic_store_n(&m->msix_config, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELEASE);
	__atomic_store_n(&m->isr, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < m->nqueues; i++) {
		struct pci_queue *q = &m->queues[i];

		q->size = 0;
		q->desc = q->driver = q->device = 0;
		__atomic_store_n(&q->vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELEASE);
	}
}

static uint64_t queue_field(struct uvirtio_pci_dev *m, unsigned which)
{
	struct pci_queue *q = selected(m);
	struct uvirtio_queue_layout l;

	if (!q)
		return 0;
	/* An enabled queue is the device core's: read its layout back (a queue
	 * restored from a snapshot was never staged here). */
	if (uvirtio_device_queue_ready(m->dev, m->queue_select)) {
		uvirtio_device_queue_layout(m->dev, m->queue_select, &l);
		return which == 0 ? l.desc : which == 1 ? l.avail : l.used;
	}
	return which == 0 ? q->desc : which == 1 ? q->driver : q->device;
}

static uint32_t common_read(struct uvirtio_pci_dev *m, uint64_t off, unsigned size)
{
	struct uvirtio_device *dev = m->dev;
	struct pci_queue *q = selected(m);
	struct uvirtio_queue_layout l;
	uint64_t f;

	/* Every field only with its natural size; the 64-bit ones as two
	 * 32-bit halves, as Linux reads them. */
	switch (size) {
	case 4:
		switch (off) {
		case COMMON(device_feature_select):
			return m->device_feature_select;
		case COMMON(device_feature):
			f = uvirtio_device_get_features(dev);
			return m->device_feature_select == 0   ? (uint32_t)f
			       : m->device_feature_select == 1 ? (uint32_t)(f >> 32)
							       : 0;
		case COMMON(guest_feature_select):
			return m->driver_feature_select;
		case COMMON(guest_feature):
			f = uvirtio_device_get_driver_features(dev);
			return m->driver_feature_select == 0   ? (uint32_t)f
			       : m->driver_feature_select == 1 ? (uint32_t)(f >> 32)
							       : 0;
		case COMMON(queue_desc_lo):
			return (uint32_t)queue_field(m, 0);
		case COMMON(queue_desc_hi):
			return (uint32_t)(queue_field(m, 0) >> 32);
		case COMMON(queue_avail_lo):
			return (uint32_t)queue_field(m, 1);
		case COMMON(queue_avail_hi):
			return (uint32_t)(queue_field(m, 1) >> 32);
		case COMMON(queue_used_lo):
			return (uint32_t)queue_field(m, 2);
		case COMMON(queue_used_hi):
			return (uint32_t)(queue_field(m, 2) >> 32);
		}
		return 0;
	case 2:
		switch (off) {
		case COMMON(msix_config):
			return __atomic_load_n(&m->msix_config, __ATOMIC_ACQUIRE);
		case COMMON(num_queues):
			return m->nqueues;
		case COMMON(queue_select):
			return m->queue_select;
		case COMMON(queue_size):
			if (!q)
				return 0; /* spec: 0 means the queue is unavailable */
			if (uvirtio_device_queue_ready(dev, m->queue_select)) {
				uvirtio_device_queue_layout(dev, m->queue_select, &l);
				return l.num;
			}
			return q->size ? q->size : uvirtio_device_queue_max_size(dev, m->queue_select);
		case COMMON(queue_msix_vector):
			return q ? __atomic_load_n(&q->vector, __ATOMIC_ACQUIRE) : VIRTIO_MSI_NO_VECTOR;
		case COMMON(queue_enable):
			return q && uvirtio_device_queue_ready(dev, m->queue_select);
		case COMMON(queue_notify_off):
			/* Queue i notifies at i * multiplier. */
			return q ? m->queue_select : 0;
		case UVIRTIO_PCI_COMMON_QUEUE_NOTIFY_DATA:
			return 0;
		case UVIRTIO_PCI_COMMON_QUEUE_RESET:
			/* The reset completes inside the write of 1. */
			return 0;
		}
		return 0;
	case 1:
		switch (off) {
		case COMMON(device_status):
			return uvirtio_device_get_status(dev);
		case COMMON(config_generation):
			return (uint8_t)uvirtio_device_config_generation(dev);
		}
		return 0;
	}
	return 0;
}

static void set_driver_features_half(struct uvirtio_pci_dev *m, uint32_t v)
{
	uint64_t f = uvirtio_device_get_driver_features(m->dev);

	if (m->driver_feature_select == 0)
		f = (f & ~0xffffffffull) | v;
	else if (m->driver_feature_select == 1)
		f = (f & 0xffffffffull) | ((uint64_t)v << 32);
	else
		return;
	/* -EBUSY after FEATURES_OK: the write is ignored, as the spec lets
	 * the device do. */
	(void)uvirtio_device_set_driver_features(m->dev, f);
}

static void set_half(uint64_t *field, bool high, uint32_t v)
{
	if (high)
		*field = (*field & 0xffffffffull) | ((uint64_t)v << 32);
	else
		*field = (*field & ~0xffffffffull) | v;
}

static void queue_enable(struct uvirtio_pci_dev *m, struct pci_queue *q)
{
	unsigned index = m->queue_select;
	struct uvirtio_queue_layout l = {
		.num = q->size ? q->size : uvirtio_device_queue_max_size(m->dev, index),
		.desc = q->desc, .avail = q->driver, .used = q->device,
	};

	/* Enabling an enabled queue would restart its ring under the driver:
	 * ignored. A layout the device refuses leaves queue_enable reading 0. */
	int ret;

	if (uvirtio_device_queue_ready(m->dev, index))
		return;
	ret = uvirtio_device_queue_enable(m->dev, index, &l);
	if (ret)
		uvirtio_log(UVIRTIO_LOG_WARN, "pci: queue %u: ring refused (%s): size %u desc %#llx driver %#llx device %#llx",
			    index, strerror(-ret), l.num, (unsigned long long)l.desc,
			    (unsigned long long)l.avail, (unsigned long long)l.used);
}

static void queue_reset(struct uvirtio_pci_dev *m, struct pci_queue *q)
{
	/* Without RING_RESET negotiated the core refuses (-EPERM) and the
	 * write is ignored, as the field does not exist then. */
	if (uvirtio_device_queue_reset(m->dev, m->queue_select))
		return;
	/* spec: after a queue reset the queue's fields read their defaults:
	 * queue_enable 0, queue_size the maximum. */
	q->size = 0;
	q->desc = q->driver = q->device = 0;
	__atomic_store_n(&q->vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELEASE);
}

static void common_write(struct uvirtio_pci_dev *m, uint64_t off, unsigned size, uint32_t v)
{
	struct pci_queue *q = selected(m);

	switch (size) {
	case 4:
		switch (off) {
		case COMMON(device_feature_select):
			m->device_feature_select = v;
			return;
		case COMMON(guest_feature_select):
			m->driver_feature_select = v;
			return;
		case COMMON(guest_feature):
			set_driver_features_half(m, v);
			return;
		}
		if (!q)
			return;
		switch (off) {
		case COMMON(queue_desc_lo):
		case COMMON(queue_desc_hi):
			set_half(&q->desc, off == COMMON(queue_desc_hi), v);
			return;
		case COMMON(queue_avail_lo):
		case COMMON(queue_avail_hi):
			set_half(&q->driver, off == COMMON(queue_avail_hi), v);
			return;
		case COMMON(queue_used_lo):
		case COMMON(queue_used_hi):
			set_half(&q->device, off == COMMON(queue_used_hi), v);
			return;
		}
		return;
	case 2:
		switch (off) {
		case COMMON(msix_config):
			__atomic_store_n(&m->msix_config, valid_vector(m, v), __ATOMIC_RELEASE);
			return;
		case COMMON(queue_select):
			m->queue_select = (uint16_t)v;
			return;
		}
		if (!q)
			return;
		switch (off) {
		case COMMON(queue_size):
			/* spec: the driver may write a smaller size; 0 and sizes
			 * above the maximum are no size at all. */
			if (v && v <= uvirtio_device_queue_max_size(m->dev, m->queue_select))
				q->size = (uint16_t)v;
			return;
		case COMMON(queue_msix_vector):
			__atomic_store_n(&q->vector, valid_vector(m, v), __ATOMIC_RELEASE);
			return;
		case COMMON(queue_enable):
			/* spec: the driver MUST NOT write 0 to queue_enable; a 0 is
			 * ignored. */
			if (v == 1)
				queue_enable(m, q);
			return;
		case UVIRTIO_PCI_COMMON_QUEUE_RESET:
			if (v == 1)
				queue_reset(m, q);
			return;
		}
		return;
	case 1:
		if (off == COMMON(device_status)) {
			if (v == 0) {
				/* spec: writing 0 resets; the driver then waits to
				 * read 0, which it does as soon as this returns. */
				uvirtio_device_reset(m->dev);
				reset_model(m);
				return;
			}
			/* A refused status (-EINVAL) is ignored: the driver sees
			 * the old status when it reads it back. */
			(void)uvirtio_device_set_status(m->dev, (uint8_t)v);
		}
		return;
	}
}

/* Device configuration: little-endian bytes, any aligned access. */

static uint32_t device_cfg_read(struct uvirtio_pci_dev *m, uint64_t off, unsigned size)
{
	uint8_t b[4] = { 0 };

	if (off >= UVIRTIO_PCI_DEVICE_CFG_MAX ||
	    uvirtio_device_config_read(m->dev, (unsigned)off, b, size))
		return 0;
	return b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void device_cfg_write(struct uvirtio_pci_dev *m, uint64_t off, unsigned size, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	if (off < UVIRTIO_PCI_DEVICE_CFG_MAX)
		(void)uvirtio_device_config_write(m->dev, (unsigned)off, b, size);
}

/* Notify area: a write at queue i's notify address kicks queue i. */
static bool notify_queue_of(const struct uvirtio_pci_dev *m, uint64_t off, unsigned *index)
{
	uint64_t rel;

	if (off < UVIRTIO_PCI_NOTIFY_OFFSET)
		return false;
	rel = off - UVIRTIO_PCI_NOTIFY_OFFSET;
	if (rel % UVIRTIO_PCI_NOTIFY_MULTIPLIER || rel / UVIRTIO_PCI_NOTIFY_MULTIPLIER >= m->nqueues)
		return false;
	*index = (unsigned)(rel / UVIRTIO_PCI_NOTIFY_MULTIPLIER);
	return true;
}

static bool in_area(uint64_t off, unsigned size, uint64_t base, uint64_t len, uint64_t *rel)
{
	if (off < base || off - base >= len || size > len - (off - base))
		return false;
	*rel = off - base;
	return true;
}

static uint32_t bar_read(struct uvirtio_pci_dev *m, uint64_t off, unsigned size)
{
	uint64_t rel;

	if (off % size)
		return 0;
	if (in_area(off, size, UVIRTIO_PCI_COMMON_OFFSET, UVIRTIO_PCI_COMMON_CFG_SIZE, &rel))
		return common_read(m, rel, size);
	if (off == UVIRTIO_PCI_ISR_OFFSET && size == 1)
		/* spec: reading ISR status resets it to 0. */
		return __atomic_exchange_n(&m->isr, 0, __ATOMIC_ACQ_REL);
	if (in_area(off, size, UVIRTIO_PCI_DEVICE_OFFSET, uvirtio_device_config_size(m->dev), &rel))
		return device_cfg_read(m, rel, size);
	return 0;
}

static void bar_write(struct uvirtio_pci_dev *m, uint64_t off, unsigned size, uint32_t v)
{
	uint64_t rel;

	if (off % size)
		return;
	if (in_area(off, size, UVIRTIO_PCI_COMMON_OFFSET, UVIRTIO_PCI_COMMON_CFG_SIZE, &rel))
		common_write(m, rel, size, v);
	else if (in_area(off, size, UVIRTIO_PCI_DEVICE_OFFSET, uvirtio_device_config_size(m->dev), &rel))
		device_cfg_write(m, rel, size, v);
}

int uvirtio_pci_dev_read(struct uvirtio_pci_dev *m, unsigned space, uint64_t offset, unsigned size,
			 uint32_t *value)
{
	*value = 0;
	if (space > UVIRTIO_PCI_SPACE_BAR0 || (size != 1 && size != 2 && size != 4)) {
		uvirtio_log(UVIRTIO_LOG_WARN, "pci: read of %u bytes at %#llx in space %u refused", size,
			    (unsigned long long)offset, space);
		return -EINVAL;
	}
	if (space == UVIRTIO_PCI_SPACE_CONFIG) {
		/* Read-only after create: no lock needed. */
		*value = config_space_read(m, offset, size);
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	*value = bar_read(m, offset, size);
	run_rescheduled(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int uvirtio_pci_dev_write(struct uvirtio_pci_dev *m, unsigned space, uint64_t offset, unsigned size,
			  uint32_t value)
{
	unsigned index;

	if (space > UVIRTIO_PCI_SPACE_BAR0 || (size != 1 && size != 2 && size != 4)) {
		uvirtio_log(UVIRTIO_LOG_WARN, "pci: write of %u bytes at %#llx in space %u refused", size,
			    (unsigned long long)offset, space);
		return -EINVAL;
	}
	/* PCI configuration space is read-only here: nothing in it is the
	 * driver's to change (no BAR moves, no MSI-X table). */
	if (space == UVIRTIO_PCI_SPACE_CONFIG)
		return 0;
	if (notify_queue_of(m, offset, &index)) {
		/* A queue served on its own thread is kicked through its fd,
		 * without the lock: a kick must not wait behind a reset. */
		if (m->queues[index].kick_fd >= 0) {
			eventfd_signal(m->queues[index].kick_fd);
			return 0;
		}
		/* With NOTIFICATION_DATA the driver writes 32 bits: its queue
		 * index (the address says which queue anyway) and its next
		 * available position above. */
		uint32_t data = index;

		if (size == 4 && uvirtio_device_has_feature(m->dev, VIRTIO_F_NOTIFICATION_DATA))
			data |= value & 0xffff0000u;
		pthread_mutex_lock(&m->lock);
		uvirtio_device_queue_notify_data(m->dev, data);
		run_rescheduled(m);
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	bar_write(m, offset, size, value);
	run_rescheduled(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int bus_read(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t *value)
{
	return uvirtio_pci_dev_read(opaque, space, offset, size, value);
}

static int bus_write(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t value)
{
	return uvirtio_pci_dev_write(opaque, space, offset, size, value);
}

void uvirtio_pci_dev_bus(struct uvirtio_pci_dev *m, struct uvirtio_regbus *bus)
{
	*bus = (struct uvirtio_regbus){ .read = bus_read, .write = bus_write, .opaque = m };
}

uint8_t uvirtio_pci_dev_isr_peek(struct uvirtio_pci_dev *m)
{
	return __atomic_load_n(&m->isr, __ATOMIC_ACQUIRE);
}

/* Set-up. */

int uvirtio_pci_dev_create(struct uvirtio_pci_dev **out, struct uvirtio_device *dev,
			   const struct uvirtio_pci_dev_config *cfg)
{
	struct uvirtio_device_hooks hooks = {
		.notify_used = hook_notify_used, .notify_config = hook_notify_config,
		.reschedule = hook_reschedule,
	};
	struct uvirtio_pci_dev *m;
	int ret = 0;

	if (!cfg || !cfg->irq || uvirtio_device_num_queues(dev) > UVIRTIO_PCI_MAX_QUEUES ||
	    uvirtio_device_config_size(dev) > UVIRTIO_PCI_DEVICE_CFG_MAX || cfg->nvectors > VECTORS_MAX ||
	    uvirtio_device_ops(dev)->device_id > UVIRTIO_PCI_DEVICE_ID_LAST - UVIRTIO_PCI_DEVICE_ID_BASE)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->queues = calloc(uvirtio_device_num_queues(dev), sizeof(*m->queues));
	if (!m->queues) {
		free(m);
		return -ENOMEM;
	}
	m->dev = dev;
	m->cfg = *cfg;
	if (!m->cfg.nvectors)
		m->cfg.nvectors = uvirtio_device_num_queues(dev) + 1;
	m->nqueues = uvirtio_device_num_queues(dev);
	pthread_mutex_init(&m->lock, NULL);
	reset_model(m);
	for (unsigned i = 0; i < m->nqueues; i++)
		m->queues[i].kick_fd = -1;
	for (unsigned i = 0; i < m->nqueues && uvirtio_device_ops(dev)->takes_kick_fds && !ret; i++) {
		m->queues[i].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ret = m->queues[i].kick_fd < 0 ? -errno : uvirtio_device_set_kick_fd(dev, i, m->queues[i].kick_fd);
	}
	if (ret) {
		for (unsigned i = 0; i < m->nqueues; i++) {
			if (m->queues[i].kick_fd >= 0) {
				uvirtio_device_set_kick_fd(dev, i, -1);
				close(m->queues[i].kick_fd);
			}
		}
		pthread_mutex_destroy(&m->lock);
		free(m->queues);
		free(m);
		return ret;
	}
	build_config_space(m);
	hooks.opaque = m;
	uvirtio_device_set_hooks(dev, &hooks);
	*out = m;
	return 0;
}

void uvirtio_pci_dev_destroy(struct uvirtio_pci_dev *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	/* Queue threads stop here; after it the device calls no hook. */
	uvirtio_device_reset(m->dev);
	uvirtio_device_set_hooks(m->dev, &(struct uvirtio_device_hooks){ 0 });
	for (unsigned i = 0; i < m->nqueues; i++) {
		if (m->queues[i].kick_fd >= 0) {
			uvirtio_device_set_kick_fd(m->dev, i, -1);
			close(m->queues[i].kick_fd);
		}
	}
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_destroy(&m->lock);
	free(m->queues);
	free(m);
}
