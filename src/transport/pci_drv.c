// SPDX-License-Identifier: MIT
/*
 * The virtio-pci modern transport, driver side: what Linux 6.1's
 * virtio_pci_modern does, every device access through a struct uvirtio_regbus.
 */
#include <errno.h>
#include <linux/virtio_pci.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../log/log_priv.h"
#include "uvirtio/pci.h"

#define COMMON(field) offsetof(struct virtio_pci_common_cfg, field)
/* Linux 6.1 needs the common structure up to queue_used_hi. */
#define COMMON_MIN_LENGTH 0x38u

/* PCI configuration space. */
#define PCI_STATUS 0x06u
#define PCI_STATUS_CAP_LIST 0x10u
#define PCI_CAPABILITY_LIST 0x34u
#define PCI_CAP_ID_VNDR 0x09u
/* Capabilities live after the 64-byte header, dword aligned. */
#define CAP_FIRST 0x40u
#define CAP_SLOTS ((UVIRTIO_PCI_CONFIG_SPACE_SIZE - CAP_FIRST) / 4)

#define DEFAULT_TIMEOUT_MS 5000u
/* Reads made back to back before a wait starts sleeping between reads. */
#define SPIN_READS 64u

struct pci_drv {
	struct uvirtio_transport t; /* first: the driver's handle */
	struct uvirtio_regbus bus;
	struct uvirtio_dma *dma;
	struct uvirtio_pci_caps caps;
	unsigned num_queues;
	unsigned timeout_ms;
	/* What the driver last wrote to device_status, and whether it set
	 * SUSPEND and has not resumed since (a resume writes the same bits as
	 * the suspend, so this follows the writes). Lifecycle thread only. */
	uint8_t last_status;
	bool suspended;
	/* Per queue: where its notify write goes in BAR 0 (UINT32_MAX: not
	 * enabled). Written by the lifecycle thread, read by the queue's. */
	uint32_t *notify_at;
	/* Per vector (0 config, i + 1 queue i): the eventfd, or -1. Read by
	 * the device end's threads through uvirtio_pci_drv_vector_fd(). */
	int *fds;
};

static const struct uvirtio_transport_ops pci_ops;

static struct pci_drv *to_drv(struct uvirtio_transport *t)
{
	if (!t || t->ops != &pci_ops)
		return NULL;
	return (struct pci_drv *)((char *)t - offsetof(struct pci_drv, t));
}

/* Register access. */

static int bus_rd(const struct uvirtio_regbus *bus, unsigned space, uint64_t off, unsigned size,
		  uint32_t *v)
{
	int ret;

	*v = 0;
	ret = bus->read(bus->opaque, space, off, size, v);
	if (ret)
		*v = 0;
	/* A bus that hands back more bits than asked for is not trusted
	 * with them. */
	else if (size < 4)
		*v &= (1u << (8 * size)) - 1;
	return ret;
}

static int rd(struct pci_drv *d, uint64_t off, unsigned size, uint32_t *v)
{
	return bus_rd(&d->bus, UVIRTIO_PCI_SPACE_BAR0, off, size, v);
}

static int wr(struct pci_drv *d, uint64_t off, unsigned size, uint32_t v)
{
	return d->bus.write(d->bus.opaque, UVIRTIO_PCI_SPACE_BAR0, off, size, v);
}

static int common_rd(struct pci_drv *d, unsigned field, unsigned size, uint32_t *v)
{
	return rd(d, (uint64_t)d->caps.common_offset + field, size, v);
}

static int common_wr(struct pci_drv *d, unsigned field, unsigned size, uint32_t v)
{
	return wr(d, (uint64_t)d->caps.common_offset + field, size, v);
}

static int common_wr64(struct pci_drv *d, unsigned lo, uint64_t v)
{
	/* Two 32-bit halves, low first, as Linux's vp_iowrite64_twopart(). */
	int ret = common_wr(d, lo, 4, (uint32_t)v);

	return ret ? ret : common_wr(d, lo + 4, 4, (uint32_t)(v >> 32));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Read the common field at @field until it reads 0: bounded by the
 * time-out, since a hostile or stuck device may never get there. */
static int wait_for_zero(struct pci_drv *d, unsigned field, unsigned size)
{
	uint64_t deadline = 0;
	long sleep_ns = 10000;
	uint32_t v;
	int ret;

	for (unsigned n = 0;; n++) {
		ret = common_rd(d, field, size, &v);
		if (ret || v == 0)
			return ret;
		if (n < SPIN_READS)
			continue;
		if (n == SPIN_READS)
			deadline = now_ms() + d->timeout_ms;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&(struct timespec){ .tv_nsec = sleep_ns }, NULL);
		if (sleep_ns < 1000000)
			sleep_ns *= 2;
	}
}

/* Capabilities. */

static int refuse(const char **why, const char *reason, int err)
{
	if (why)
		*why = reason;
	return err;
}

static int cfg_rd(const struct uvirtio_regbus *bus, unsigned off, unsigned size, uint32_t *v)
{
	return bus_rd(bus, UVIRTIO_PCI_SPACE_CONFIG, off, size, v);
}

/* One virtio vendor capability, read once into local memory. */
struct vcap {
	uint8_t len, type, bar;
	uint32_t offset, length, multiplier;
};

static int read_vcap(const struct uvirtio_regbus *bus, unsigned pos, uint8_t len, struct vcap *c)
{
	uint32_t v;
	int ret;

	memset(c, 0, sizeof(*c));
	c->len = len;
	if ((ret = cfg_rd(bus, pos + VIRTIO_PCI_CAP_CFG_TYPE, 1, &v)))
		return ret;
	c->type = (uint8_t)v;
	if ((ret = cfg_rd(bus, pos + VIRTIO_PCI_CAP_BAR, 1, &v)))
		return ret;
	c->bar = (uint8_t)v;
	if (len < sizeof(struct virtio_pci_cap))
		return 0;
	if ((ret = cfg_rd(bus, pos + VIRTIO_PCI_CAP_OFFSET, 4, &c->offset)))
		return ret;
	if ((ret = cfg_rd(bus, pos + VIRTIO_PCI_CAP_LENGTH, 4, &c->length)))
		return ret;
	if (c->type == VIRTIO_PCI_CAP_NOTIFY_CFG && len >= sizeof(struct virtio_pci_notify_cap))
		ret = cfg_rd(bus, pos + sizeof(struct virtio_pci_cap), 4, &c->multiplier);
	return ret;
}

static bool wanted(unsigned type)
{
	return type == VIRTIO_PCI_CAP_COMMON_CFG || type == VIRTIO_PCI_CAP_NOTIFY_CFG ||
	       type == VIRTIO_PCI_CAP_ISR_CFG || type == VIRTIO_PCI_CAP_DEVICE_CFG;
}

/* A capability this driver will use: checked as Linux's
 * vp_modern_map_capability() does, against the BAR 0 it knows. */
static int check_vcap(const struct vcap *c, const char **why)
{
	unsigned min = c->type == VIRTIO_PCI_CAP_NOTIFY_CFG ? sizeof(struct virtio_pci_notify_cap)
							     : sizeof(struct virtio_pci_cap);

	if (c->len < min)
		return refuse(why, "virtio capability shorter than its structure", -EINVAL);
	/* Overflow-safe: offset + length may wrap in 32 bits. */
	if (c->offset > UVIRTIO_PCI_BAR0_SIZE || c->length > UVIRTIO_PCI_BAR0_SIZE - c->offset)
		return refuse(why, "virtio capability points outside BAR 0", -EINVAL);
	return 0;
}

int uvirtio_pci_drv_read_caps(const struct uvirtio_regbus *bus, struct uvirtio_pci_caps *caps,
			      const char **why)
{
	bool seen[CAP_SLOTS] = { false };
	bool found[VIRTIO_PCI_CAP_DEVICE_CFG + 1] = { false };
	struct uvirtio_pci_caps c = { 0 };
	uint32_t vendor, device, status, pos;
	int ret;

	if ((ret = cfg_rd(bus, 0x00, 2, &vendor)) || (ret = cfg_rd(bus, 0x02, 2, &device)))
		return refuse(why, "cannot read the PCI ids", ret);
	if (vendor != UVIRTIO_PCI_VENDOR_ID)
		return refuse(why, "PCI vendor is not 0x1af4 (virtio)", -ENODEV);
	/* Linux 6.1 virtio_pci_modern: 0x1040 to 0x107f are modern devices
	 * (transitional ids below 0x1040 need the legacy interface). */
	if (device < UVIRTIO_PCI_DEVICE_ID_BASE || device > UVIRTIO_PCI_DEVICE_ID_LAST)
		return refuse(why, "PCI device id is not a modern virtio device (0x1040-0x107f)",
			      -ENODEV);
	c.pci_device_id = (uint16_t)device;
	c.virtio_device_id = device - UVIRTIO_PCI_DEVICE_ID_BASE;

	if ((ret = cfg_rd(bus, PCI_STATUS, 2, &status)))
		return refuse(why, "cannot read the PCI status", ret);
	if (!(status & PCI_STATUS_CAP_LIST))
		return refuse(why, "PCI function has no capability list", -ENODEV);
	if ((ret = cfg_rd(bus, PCI_CAPABILITY_LIST, 1, &pos)))
		return refuse(why, "cannot read the capability pointer", ret);

	/* Bounded: each dword slot is visited at most once, so a list that
	 * comes back to a capability is a loop, refused. */
	for (pos &= ~3u; pos; ) {
		uint32_t id, next, len;
		struct vcap vc;

		if (pos < CAP_FIRST || pos > UVIRTIO_PCI_CONFIG_SPACE_SIZE - 4)
			return refuse(why, "capability pointer outside capability space", -EINVAL);
		if (seen[(pos - CAP_FIRST) / 4])
			return refuse(why, "capability list loops", -ELOOP);
		seen[(pos - CAP_FIRST) / 4] = true;
		if ((ret = cfg_rd(bus, pos + VIRTIO_PCI_CAP_VNDR, 1, &id)) ||
		    (ret = cfg_rd(bus, pos + VIRTIO_PCI_CAP_NEXT, 1, &next)))
			return refuse(why, "cannot read a capability", ret);
		if (id == PCI_CAP_ID_VNDR) {
			if ((ret = cfg_rd(bus, pos + VIRTIO_PCI_CAP_LEN, 1, &len)))
				return refuse(why, "cannot read a capability", ret);
			if (len < 4 || len > UVIRTIO_PCI_CONFIG_SPACE_SIZE - pos)
				return refuse(why, "vendor capability length runs outside config space",
					      -EINVAL);
			if ((ret = read_vcap(bus, pos, (uint8_t)len, &vc)))
				return refuse(why, "cannot read a capability", ret);
			/* spec: the driver ignores capabilities of a type or BAR it
			 * does not know, and uses the first it can of each type. */
			if (wanted(vc.type) && vc.bar == 0 && !found[vc.type]) {
				if ((ret = check_vcap(&vc, why)))
					return ret;
				found[vc.type] = true;
				switch (vc.type) {
				case VIRTIO_PCI_CAP_COMMON_CFG:
					c.common_offset = vc.offset;
					c.common_length = vc.length;
					break;
				case VIRTIO_PCI_CAP_NOTIFY_CFG:
					c.notify_offset = vc.offset;
					c.notify_length = vc.length;
					c.notify_multiplier = vc.multiplier;
					break;
				case VIRTIO_PCI_CAP_ISR_CFG:
					c.isr_offset = vc.offset;
					c.isr_length = vc.length;
					break;
				case VIRTIO_PCI_CAP_DEVICE_CFG:
					c.device_offset = vc.offset;
					c.device_length = vc.length;
					break;
				}
			}
		}
		pos = next & ~3u;
	}

	if (!found[VIRTIO_PCI_CAP_COMMON_CFG])
		return refuse(why, "no usable COMMON capability", -ENOENT);
	if (!found[VIRTIO_PCI_CAP_NOTIFY_CFG])
		return refuse(why, "no usable NOTIFY capability", -ENOENT);
	if (!found[VIRTIO_PCI_CAP_ISR_CFG])
		return refuse(why, "no usable ISR capability", -ENOENT);
	if (c.common_length < COMMON_MIN_LENGTH)
		return refuse(why, "COMMON structure too short", -EINVAL);
	if (c.isr_length < 1)
		return refuse(why, "ISR structure too short", -EINVAL);
	if (c.notify_length < 2)
		return refuse(why, "NOTIFY structure too short", -EINVAL);
	*caps = c;
	return 0;
}

/* The ops. */

static int pci_get_features(struct uvirtio_transport *t, uint64_t *features)
{
	struct pci_drv *d = to_drv(t);
	uint32_t lo, hi;
	int ret;

	*features = 0;
	if ((ret = common_wr(d, COMMON(device_feature_select), 4, 0)) ||
	    (ret = common_rd(d, COMMON(device_feature), 4, &lo)) ||
	    (ret = common_wr(d, COMMON(device_feature_select), 4, 1)) ||
	    (ret = common_rd(d, COMMON(device_feature), 4, &hi)))
		return ret;
	*features = (uint64_t)hi << 32 | lo;
	return 0;
}

static int pci_set_features(struct uvirtio_transport *t, uint64_t features)
{
	struct pci_drv *d = to_drv(t);
	int ret;

	if ((ret = common_wr(d, COMMON(guest_feature_select), 4, 0)) ||
	    (ret = common_wr(d, COMMON(guest_feature), 4, (uint32_t)features)) ||
	    (ret = common_wr(d, COMMON(guest_feature_select), 4, 1)))
		return ret;
	return common_wr(d, COMMON(guest_feature), 4, (uint32_t)(features >> 32));
}

static int pci_get_status(struct uvirtio_transport *t, uint8_t *status)
{
	uint32_t v;
	int ret = common_rd(to_drv(t), COMMON(device_status), 1, &v);

	*status = (uint8_t)v;
	return ret;
}

/* Ask for vector @want for a source; the device may refuse it (reads back
 * NO_VECTOR), which leaves the source on INTx. */
static int set_vector(struct pci_drv *d, unsigned field, uint16_t want)
{
	uint32_t got;
	int ret = common_wr(d, field, 2, want);

	if (!ret)
		ret = common_rd(d, field, 2, &got);
	if (ret)
		return ret;
	if (got == want || got == VIRTIO_MSI_NO_VECTOR)
		return 0;
	uvirtio_log(UVIRTIO_LOG_ERR, "pci: vector field %#x reads %u after the driver wrote %u", field, got, want);
	return -EIO;
}

static int pci_reset(struct uvirtio_transport *t)
{
	struct pci_drv *d = to_drv(t);
	int ret = common_wr(d, COMMON(device_status), 1, 0);

	/* spec: after writing 0 the driver MUST wait for device_status to read
	 * 0 before reinitialising the device. */
	if (!ret)
		ret = wait_for_zero(d, COMMON(device_status), 1);
	if (ret)
		return ret;
	d->last_status = 0;
	d->suspended = false;
	/* Interrupts raised before the reset mean nothing after it (Linux:
	 * vp_synchronize_vectors()). */
	for (unsigned v = 0; v <= d->num_queues; v++) {
		int fd = __atomic_load_n(&d->fds[v], __ATOMIC_ACQUIRE);

		if (fd >= 0)
			eventfd_drain(fd);
	}
	/* The reset forgot the vectors; configuration changes go to vector 0. */
	return set_vector(d, COMMON(msix_config), 0);
}

static int pci_set_status(struct uvirtio_transport *t, uint8_t status)
{
	struct pci_drv *d = to_drv(t);
	int ret;

	/* Writing 0 is a reset, and has its wait. */
	if (status == 0)
		return pci_reset(t);
	ret = common_wr(d, COMMON(device_status), 1, status);
	if (!ret) {
		if (d->suspended)
			d->suspended = false;
		else if (status & VIRTIO_CONFIG_S_SUSPEND)
			d->suspended = true;
		d->last_status = status;
	}
	return ret;
}

/* Device configuration: @len bytes in the largest aligned accesses that
 * fit, as a driver's virtio_cread() of each field does. */
static int config_access(struct pci_drv *d, unsigned offset, uint8_t *buf, unsigned len, bool write)
{
	if (offset > d->caps.device_length || len > d->caps.device_length - offset)
		return -EINVAL;
	while (len) {
		unsigned size = (offset % 4 == 0 && len >= 4) ? 4 : (offset % 2 == 0 && len >= 2) ? 2 : 1;
		uint64_t at = (uint64_t)d->caps.device_offset + offset;
		uint32_t v = 0;
		int ret;

		if (write) {
			for (unsigned i = 0; i < size; i++)
				v |= (uint32_t)buf[i] << (8 * i);
			ret = wr(d, at, size, v);
		} else {
			ret = rd(d, at, size, &v);
			for (unsigned i = 0; i < size; i++)
				buf[i] = (uint8_t)(v >> (8 * i));
		}
		if (ret)
			return ret;
		offset += size;
		buf += size;
		len -= size;
	}
	return 0;
}

static int pci_get_config(struct uvirtio_transport *t, unsigned offset, void *buf, unsigned len)
{
	return config_access(to_drv(t), offset, buf, len, false);
}

static int pci_set_config(struct uvirtio_transport *t, unsigned offset, const void *buf,
			  unsigned len)
{
	return config_access(to_drv(t), offset, (uint8_t *)buf, len, true);
}

static int pci_config_generation(struct uvirtio_transport *t, uint32_t *generation)
{
	return common_rd(to_drv(t), COMMON(config_generation), 1, generation);
}

static int select_queue(struct pci_drv *d, unsigned index)
{
	if (index >= d->num_queues)
		return -ENOENT;
	return common_wr(d, COMMON(queue_select), 2, index);
}

static int pci_queue_max_size(struct uvirtio_transport *t, unsigned index, unsigned *max)
{
	struct pci_drv *d = to_drv(t);
	uint32_t v;
	int ret;

	*max = 0;
	if (index >= d->num_queues)
		return 0;
	if ((ret = select_queue(d, index)) || (ret = common_rd(d, COMMON(queue_size), 2, &v)))
		return ret;
	*max = v;
	return 0;
}

static int queue_eventfd(struct pci_drv *d, unsigned index)
{
	int fd;

	if (d->fds[index + 1] >= 0)
		return 0;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	__atomic_store_n(&d->fds[index + 1], fd, __ATOMIC_RELEASE);
	return 0;
}

static int pci_queue_enable(struct uvirtio_transport *t, unsigned index,
			    const struct uvirtio_queue_layout *l)
{
	struct pci_drv *d = to_drv(t);
	uint32_t max, enabled, off;
	uint64_t at;
	int ret;

	if (index >= d->num_queues || index + 1 >= VIRTIO_MSI_NO_VECTOR)
		return -ENOENT;
	if ((ret = queue_eventfd(d, index)) || (ret = select_queue(d, index)) ||
	    (ret = common_rd(d, COMMON(queue_size), 2, &max)) ||
	    (ret = common_rd(d, COMMON(queue_enable), 2, &enabled)))
		return ret;
	/* As Linux's setup_vq(): no such queue, or it is in use already. */
	if (max == 0)
		return -ENOENT;
	if (enabled)
		return -EBUSY;
	if (l->num == 0 || l->num > max)
		return -EINVAL;
	if ((ret = common_wr(d, COMMON(queue_size), 2, l->num)) ||
	    (ret = set_vector(d, COMMON(queue_msix_vector), (uint16_t)(index + 1))) ||
	    (ret = common_wr64(d, COMMON(queue_desc_lo), l->desc)) ||
	    (ret = common_wr64(d, COMMON(queue_avail_lo), l->avail)) ||
	    (ret = common_wr64(d, COMMON(queue_used_lo), l->used)) ||
	    (ret = common_rd(d, COMMON(queue_notify_off), 2, &off)))
		return ret;
	/* Linux: the notify address must lie inside the NOTIFY structure. */
	at = (uint64_t)off * d->caps.notify_multiplier;
	if (at > d->caps.notify_length || d->caps.notify_length - at < 2)
		return -EINVAL;
	at += d->caps.notify_offset;
	/* spec: the driver MUST NOT write 0 to queue_enable; it writes 1. */
	if ((ret = common_wr(d, COMMON(queue_enable), 2, 1)) ||
	    (ret = common_rd(d, COMMON(queue_enable), 2, &enabled)))
		return ret;
	/* The bus cannot carry the device's refusal; reading back can. */
	if (!enabled) {
		uvirtio_log(UVIRTIO_LOG_ERR, "pci: queue %u: queue_enable reads 0 after the driver wrote 1", index);
		return -EIO;
	}
	__atomic_store_n(&d->notify_at[index], (uint32_t)at, __ATOMIC_RELEASE);
	return 0;
}

static int pci_queue_reset(struct uvirtio_transport *t, unsigned index)
{
	struct pci_drv *d = to_drv(t);
	int ret, fd;

	if (index >= d->num_queues)
		return -ENOENT;
	if (d->caps.common_length < UVIRTIO_PCI_COMMON_CFG_SIZE)
		return -EOPNOTSUPP;
	if ((ret = select_queue(d, index)) ||
	    (ret = common_wr(d, UVIRTIO_PCI_COMMON_QUEUE_RESET, 2, 1)))
		return ret;
	/* spec: the driver waits to read 0 from queue_reset; Linux then also
	 * waits for queue_enable to read 0. Only then has the device let go. */
	if ((ret = wait_for_zero(d, UVIRTIO_PCI_COMMON_QUEUE_RESET, 2)) ||
	    (ret = wait_for_zero(d, COMMON(queue_enable), 2)))
		return ret;
	__atomic_store_n(&d->notify_at[index], UINT32_MAX, __ATOMIC_RELEASE);
	fd = __atomic_load_n(&d->fds[index + 1], __ATOMIC_ACQUIRE);
	if (fd >= 0)
		eventfd_drain(fd);
	return 0;
}

/* Write the @size low bytes of @value at queue @index's notify address,
 * which must hold them inside the NOTIFY area. */
static int notify_write(struct pci_drv *d, unsigned index, unsigned size, uint32_t value)
{
	uint32_t at;

	if (index >= d->num_queues)
		return -EINVAL;
	at = __atomic_load_n(&d->notify_at[index], __ATOMIC_ACQUIRE);
	if (at == UINT32_MAX ||
	    (uint64_t)at + size > (uint64_t)d->caps.notify_offset + d->caps.notify_length)
		return -EINVAL;
	return wr(d, at, size, value);
}

static int pci_notify(struct uvirtio_transport *t, unsigned index)
{
	/* Without NOTIFICATION_DATA the value is the queue index. */
	return notify_write(to_drv(t), index, 2, index);
}

static int pci_notify_data(struct uvirtio_transport *t, uint32_t data)
{
	/* vp_notify_with_data(): all 32 bits at the queue's address. */
	return notify_write(to_drv(t), data & 0xffff, 4, data);
}

static int pci_event_fd(struct uvirtio_transport *t, unsigned index)
{
	struct pci_drv *d = to_drv(t);
	int fd;

	if (index == UVIRTIO_CONFIG_EVENT)
		return d->fds[0];
	if (index >= d->num_queues)
		return -EINVAL;
	fd = __atomic_load_n(&d->fds[index + 1], __ATOMIC_ACQUIRE);
	return fd >= 0 ? fd : -ENOENT;
}

static struct uvirtio_dma *pci_dma(struct uvirtio_transport *t)
{
	return to_drv(t)->dma;
}

static const struct uvirtio_transport_ops pci_ops = {
	.get_features = pci_get_features,
	.set_features = pci_set_features,
	.get_status = pci_get_status,
	.set_status = pci_set_status,
	.reset = pci_reset,
	.get_config = pci_get_config,
	.set_config = pci_set_config,
	.config_generation = pci_config_generation,
	.queue_max_size = pci_queue_max_size,
	.queue_enable = pci_queue_enable,
	.queue_reset = pci_queue_reset,
	.notify = pci_notify,
	.notify_data = pci_notify_data,
	.event_fd = pci_event_fd,
	.dma = pci_dma,
};

/* Set-up. */

int uvirtio_pci_drv_create(struct uvirtio_transport **out, const struct uvirtio_regbus *bus,
			   struct uvirtio_dma *dma)
{
	struct uvirtio_pci_caps caps;
	struct pci_drv *d;
	uint32_t n;
	int ret;

	ret = uvirtio_pci_drv_read_caps(bus, &caps, NULL);
	if (ret)
		return ret;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->t = (struct uvirtio_transport){ .ops = &pci_ops, .name = "virtio-pci" };
	d->bus = *bus;
	d->dma = dma;
	d->caps = caps;
	d->timeout_ms = DEFAULT_TIMEOUT_MS;
	ret = common_rd(d, COMMON(num_queues), 2, &n);
	if (ret) {
		free(d);
		return ret;
	}
	d->num_queues = n;
	d->notify_at = malloc((n ? n : 1) * sizeof(*d->notify_at));
	d->fds = malloc((n + 1) * sizeof(*d->fds));
	if (!d->notify_at || !d->fds) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < n; i++)
		d->notify_at[i] = UINT32_MAX;
	for (unsigned i = 0; i <= n; i++)
		d->fds[i] = -1;
	d->fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->fds[0] < 0) {
		ret = -errno;
		goto fail;
	}
	*out = &d->t;
	return 0;

fail:
	uvirtio_pci_drv_destroy(&d->t);
	return ret;
}

const struct uvirtio_pci_caps *uvirtio_pci_drv_caps(struct uvirtio_transport *t)
{
	struct pci_drv *d = to_drv(t);

	return d ? &d->caps : NULL;
}

int uvirtio_pci_drv_vector_fd(struct uvirtio_transport *t, uint16_t vector)
{
	struct pci_drv *d = to_drv(t);
	int fd;

	if (!d || vector > d->num_queues)
		return -EINVAL;
	fd = __atomic_load_n(&d->fds[vector], __ATOMIC_ACQUIRE);
	return fd >= 0 ? fd : -ENOENT;
}

void uvirtio_pci_drv_set_timeout(struct uvirtio_transport *t, unsigned timeout_ms)
{
	struct pci_drv *d = to_drv(t);

	if (d)
		d->timeout_ms = timeout_ms;
}

static bool same_caps(const struct uvirtio_pci_caps *a, const struct uvirtio_pci_caps *b)
{
	return a->pci_device_id == b->pci_device_id && a->virtio_device_id == b->virtio_device_id &&
	       a->common_offset == b->common_offset && a->common_length == b->common_length &&
	       a->notify_offset == b->notify_offset && a->notify_length == b->notify_length &&
	       a->notify_multiplier == b->notify_multiplier && a->isr_offset == b->isr_offset &&
	       a->isr_length == b->isr_length && a->device_offset == b->device_offset &&
	       a->device_length == b->device_length;
}

int uvirtio_pci_drv_set_bus(struct uvirtio_transport *t, const struct uvirtio_regbus *bus)
{
	struct pci_drv *d = to_drv(t);
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus old;
	uint32_t n;
	int ret;

	if (!d || !bus || !bus->read || !bus->write)
		return -EINVAL;
	/* The device end may move only while it holds no running queue. */
	if (d->last_status && !d->suspended)
		return -EBUSY;
	ret = uvirtio_pci_drv_read_caps(bus, &caps, NULL);
	if (ret)
		return ret;
	if (!same_caps(&caps, &d->caps))
		return -ENODEV;
	old = d->bus;
	d->bus = *bus;
	ret = common_rd(d, COMMON(num_queues), 2, &n);
	if (!ret && n != d->num_queues)
		ret = -ENODEV;
	if (ret)
		d->bus = old;
	return ret;
}

void uvirtio_pci_drv_destroy(struct uvirtio_transport *t)
{
	struct pci_drv *d = to_drv(t);

	if (!d)
		return;
	if (d->fds) {
		for (unsigned i = 0; i <= d->num_queues; i++)
			if (d->fds[i] >= 0)
				close(d->fds[i]);
	}
	free(d->fds);
	free(d->notify_at);
	free(d);
}
