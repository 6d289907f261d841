// SPDX-License-Identifier: MIT
/*
 * virtio-pci modern: the register model, the driver-side transport and the
 * in-process pair. Driver rules are checked through a regbus wrapper that
 * records every access and can make the device look slow; capability walks
 * through a configuration space built by hand; the pair end to end with rng
 * and blk (queue threads, kick fds).
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/driver.h"
#include "uvirtio/pci.h"
#include "uvirtio/rng.h"
#include "uvirtio/snapshot.h"

#define WAIT_MS 10000
#define IMAGE_SIZE (1u << 20)

#define COMMON(field) (UVIRTIO_PCI_COMMON_OFFSET + offsetof(struct virtio_pci_common_cfg, field))
#define QUEUE_RESET (UVIRTIO_PCI_COMMON_OFFSET + UVIRTIO_PCI_COMMON_QUEUE_RESET)
#define BAR UVIRTIO_PCI_SPACE_BAR0
#define CFG UVIRTIO_PCI_SPACE_CONFIG

/* A regbus in front of another: records every access, and can make the
 * device look slow (device_status or queue_reset read non-zero for a few
 * reads after the write that starts a reset) or hostile. */
struct access {
	bool write;
	unsigned space;
	uint64_t off;
	unsigned size;
	uint32_t val;
};

struct recbus {
	struct uvirtio_regbus inner, bus;
	pthread_mutex_t lock;
	struct access *acc;
	unsigned n, cap;
	unsigned status_busy_reads;     /* after writing 0 to device_status */
	unsigned queue_reset_busy_reads; /* after writing 1 to queue_reset */
	bool status_stuck;              /* device_status never reads 0 again */
	bool busy_status, busy_reset;
	int notify_off;                 /* >= 0: queue_notify_off reads this */
};

static void rec_log(struct recbus *r, bool write, unsigned space, uint64_t off, unsigned size,
		    uint32_t val)
{
	if (r->n < r->cap)
		r->acc[r->n++] = (struct access){ write, space, off, size, val };
}

/* How many resets the device core completed. */
static unsigned resets_of(const struct uvirtio_device *dev)
{
	struct uvirtio_device_stats st;

	uvirtio_device_get_stats(dev, &st);
	return st.resets;
}

static int rec_read(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t *v)
{
	struct recbus *r = opaque;
	int ret = r->inner.read(r->inner.opaque, space, off, size, v);

	pthread_mutex_lock(&r->lock);
	if (space == BAR && off == COMMON(device_status) && r->busy_status) {
		if (r->status_stuck || r->status_busy_reads) {
			*v = 1;
			if (r->status_busy_reads)
				r->status_busy_reads--;
		} else {
			r->busy_status = false;
		}
	}
	if (space == BAR && off == QUEUE_RESET && r->busy_reset) {
		if (r->queue_reset_busy_reads) {
			*v = 1;
			r->queue_reset_busy_reads--;
		} else {
			r->busy_reset = false;
		}
	}
	if (space == BAR && off == COMMON(queue_notify_off) && r->notify_off >= 0)
		*v = (uint32_t)r->notify_off;
	rec_log(r, false, space, off, size, *v);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int rec_write(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t v)
{
	struct recbus *r = opaque;

	pthread_mutex_lock(&r->lock);
	rec_log(r, true, space, off, size, v);
	if (space == BAR && off == COMMON(device_status) && v == 0)
		r->busy_status = true;
	if (space == BAR && off == QUEUE_RESET && v == 1)
		r->busy_reset = true;
	pthread_mutex_unlock(&r->lock);
	return r->inner.write(r->inner.opaque, space, off, size, v);
}

static void rec_init(struct recbus *r, const struct uvirtio_regbus *inner)
{
	memset(r, 0, sizeof(*r));
	r->inner = *inner;
	r->bus = (struct uvirtio_regbus){ .read = rec_read, .write = rec_write, .opaque = r };
	pthread_mutex_init(&r->lock, NULL);
	r->cap = 1u << 20;
	r->acc = calloc(r->cap, sizeof(*r->acc));
	r->notify_off = -1;
}

static void rec_clear(struct recbus *r)
{
	pthread_mutex_lock(&r->lock);
	r->n = 0;
	pthread_mutex_unlock(&r->lock);
}

static void rec_destroy(struct recbus *r)
{
	free(r->acc);
	pthread_mutex_destroy(&r->lock);
}

/* A device over the pair. */
struct env {
	struct uvirtio_pci_pair *p;
	struct uvirtio_rng_dev rng;
	struct uvirtio_blk_dev blk;
	struct uvirtio_device *dev;
	struct uvirtio_pci_dev *m;
	struct uvirtio_regbus bus; /* the model's, for the test's own accesses */
	struct uvirtio_transport *t;
	bool is_blk;
	char path[64];
	int fd;
};

static int env_start(struct env *e, bool blk, unsigned nq, unsigned nvectors)
{
	struct uvirtio_pci_pair_config pc = { .nvectors = nvectors };
	int ret;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	ret = uvirtio_pci_pair_create(&e->p, &pc);
	if (ret)
		return ret;
	if (blk) {
		struct uvirtio_blk_dev_config cfg = { .backend = UVIRTIO_BLK_BACKEND_FILE,
						      .num_queues = nq, .poll_us = -1 };

		strcpy(e->path, "/tmp/uvirtio-pci-test-XXXXXX");
		e->fd = mkstemp(e->path);
		if (e->fd < 0 || ftruncate(e->fd, IMAGE_SIZE) < 0)
			return -errno;
		cfg.path = e->path;
		ret = uvirtio_blk_dev_init(&e->blk, &cfg, uvirtio_pci_pair_mem(e->p));
		e->dev = uvirtio_blk_dev_device(&e->blk);
		e->is_blk = true;
	} else {
		ret = uvirtio_rng_dev_init(&e->rng, uvirtio_pci_pair_mem(e->p));
		e->dev = uvirtio_rng_dev_device(&e->rng);
	}
	if (ret) {
		e->dev = NULL;
		return ret;
	}
	ret = uvirtio_pci_pair_start(e->p, e->dev);
	if (ret)
		return ret;
	e->m = uvirtio_pci_pair_model(e->p);
	e->t = uvirtio_pci_pair_transport(e->p);
	uvirtio_pci_dev_bus(e->m, &e->bus);
	return 0;
}

static void env_stop(struct env *e)
{
	uvirtio_pci_pair_destroy(e->p);
	if (e->dev && e->is_blk)
		uvirtio_blk_dev_destroy(&e->blk);
	else if (e->dev)
		uvirtio_rng_dev_destroy(&e->rng);
	if (e->fd >= 0) {
		close(e->fd);
		unlink(e->path);
	}
}

static uint32_t mrd(struct env *e, uint64_t off, unsigned size)
{
	uint32_t v = 0xdeadbeef;

	e->bus.read(e->bus.opaque, BAR, off, size, &v);
	return v;
}

static void mwr(struct env *e, uint64_t off, unsigned size, uint32_t v)
{
	e->bus.write(e->bus.opaque, BAR, off, size, v);
}

static uint32_t cfg_rd(struct env *e, uint64_t off, unsigned size)
{
	uint32_t v = 0xdeadbeef;

	e->bus.read(e->bus.opaque, CFG, off, size, &v);
	return v;
}

/* Probe with the driver core, set queue 0 up and start. */
static int probe_rng(struct env *e, struct uvirtio_driver *drv, uint64_t features)
{
	int ret = uvirtio_driver_probe(drv, e->t, features);

	if (!ret)
		ret = uvirtio_driver_find_vqs(drv, 1, NULL);
	if (!ret)
		ret = uvirtio_driver_ready(drv);
	return ret;
}

/* One rng request of @len bytes through the driver core; returns the used length. */
static long rng_once(struct uvirtio_driver *drv, uint8_t *buf, unsigned len)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(drv, 0);
	struct iovec in = { buf, len };
	uint32_t got = 0;
	void *token;
	int ret;

	ret = uvirtio_drvq_add(q, NULL, 0, &in, 1, buf);
	if (!ret)
		ret = uvirtio_drvq_kick(q);
	if (ret)
		return ret;
	for (;;) {
		ret = uvirtio_drvq_get(q, &token, &got);
		if (ret < 0)
			return ret;
		if (ret)
			return token == buf ? (long)got : -EPROTO;
		if (!uvirtio_drvq_enable_cb(q))
			continue;
		ret = uvirtio_driver_wait(drv, 0, WAIT_MS);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* Configuration space. */

static void test_pci_config_space_identifies_a_modern_virtio_device(void)
{
	const struct uvirtio_pci_caps *caps;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(cfg_rd(&e, 0x00, 2), 0x1af4);
	CHECK_EQ(cfg_rd(&e, 0x02, 2), 0x1040 + VIRTIO_ID_RNG);
	CHECK_EQ(cfg_rd(&e, 0x08, 1), 1);          /* revision */
	CHECK(cfg_rd(&e, 0x06, 2) & 0x10);         /* capability list */
	CHECK_EQ(cfg_rd(&e, 0x2c, 2), 0x1af4);
	CHECK_EQ(cfg_rd(&e, 0x2e, 2), VIRTIO_ID_RNG);
	CHECK_EQ(cfg_rd(&e, 0x34, 1), 0x40);
	caps = uvirtio_pci_drv_caps(e.t);
	CHECK(caps != NULL);
	CHECK_EQ(caps->virtio_device_id, VIRTIO_ID_RNG);
	CHECK_EQ(caps->common_offset, UVIRTIO_PCI_COMMON_OFFSET);
	CHECK_EQ(caps->common_length, UVIRTIO_PCI_COMMON_CFG_SIZE);
	CHECK_EQ(caps->notify_offset, UVIRTIO_PCI_NOTIFY_OFFSET);
	CHECK_EQ(caps->notify_multiplier, UVIRTIO_PCI_NOTIFY_MULTIPLIER);
	CHECK_EQ(caps->isr_offset, UVIRTIO_PCI_ISR_OFFSET);
	CHECK_EQ(caps->device_length, 0); /* rng has no config space */
	env_stop(&e);
}

static void test_pci_device_capability_covers_the_device_config(void)
{
	const struct uvirtio_pci_caps *caps;
	struct env e;

	CHECK_EQ(env_start(&e, true, 1, 0), 0);
	caps = uvirtio_pci_drv_caps(e.t);
	CHECK_EQ(caps->device_offset, UVIRTIO_PCI_DEVICE_OFFSET);
	CHECK_EQ(caps->device_length, sizeof(struct virtio_blk_config));
	env_stop(&e);
}

/* A configuration space built by hand, for the capability walk. */
struct fakecfg {
	uint8_t cs[256];
};

static int fake_read(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t *v)
{
	struct fakecfg *f = opaque;

	*v = 0;
	if (space != CFG)
		return 0; /* BAR 0 reads 0: no queues */
	for (unsigned i = 0; i < size && off + i < 256; i++)
		*v |= (uint32_t)f->cs[off + i] << (8 * i);
	return 0;
}

static int fake_write(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t v)
{
	(void)opaque, (void)space, (void)off, (void)size, (void)v;
	return 0;
}

static void fake_cap(struct fakecfg *f, unsigned pos, unsigned next, unsigned type, unsigned bar,
		     uint32_t offset, uint32_t length)
{
	uint8_t *c = f->cs + pos;

	c[0] = 0x09;
	c[1] = (uint8_t)next;
	c[2] = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16;
	c[3] = (uint8_t)type;
	c[4] = (uint8_t)bar;
	memcpy(c + 8, &(uint32_t){ htole32(offset) }, 4);
	memcpy(c + 12, &(uint32_t){ htole32(length) }, 4);
	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
		memcpy(c + 16, &(uint32_t){ htole32(4) }, 4);
}

/* A valid space: COMMON at 0x40, NOTIFY at 0x50, ISR at 0x64, DEVICE at 0x74. */
static void fake_init(struct fakecfg *f, struct uvirtio_regbus *bus)
{
	memset(f, 0, sizeof(*f));
	f->cs[0] = 0xf4, f->cs[1] = 0x1a;
	f->cs[2] = 0x41, f->cs[3] = 0x10;
	f->cs[6] = 0x10;
	f->cs[0x34] = 0x40;
	fake_cap(f, 0x40, 0x50, VIRTIO_PCI_CAP_COMMON_CFG, 0, 0, 0x3c);
	fake_cap(f, 0x50, 0x64, VIRTIO_PCI_CAP_NOTIFY_CFG, 0, 0x3000, 0x100);
	fake_cap(f, 0x64, 0x74, VIRTIO_PCI_CAP_ISR_CFG, 0, 0x1000, 1);
	fake_cap(f, 0x74, 0, VIRTIO_PCI_CAP_DEVICE_CFG, 0, 0x2000, 0x40);
	*bus = (struct uvirtio_regbus){ .read = fake_read, .write = fake_write, .opaque = f };
}

static void test_pci_driver_reads_a_valid_capability_list(void)
{
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus bus;
	struct fakecfg f;

	fake_init(&f, &bus);
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, NULL), 0);
	CHECK_EQ(caps.virtio_device_id, 1);
	CHECK_EQ(caps.notify_offset, 0x3000);
	CHECK_EQ(caps.device_length, 0x40);
}

static void test_pci_driver_refuses_capability_loop(void)
{
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus bus;
	const char *why = NULL;
	struct fakecfg f;

	fake_init(&f, &bus);
	f.cs[0x74 + 1] = 0x50; /* DEVICE points back at NOTIFY */
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, &why), -ELOOP);
	CHECK_STR(why, "capability list loops");

	fake_init(&f, &bus);
	f.cs[0x40 + 1] = 0x40; /* a capability pointing at itself */
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, &why), -ELOOP);
}

static void test_pci_driver_refuses_capability_outside_bar(void)
{
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus bus;
	const char *why = NULL;
	struct fakecfg f;

	fake_init(&f, &bus);
	fake_cap(&f, 0x74, 0, VIRTIO_PCI_CAP_DEVICE_CFG, 0, UVIRTIO_PCI_BAR0_SIZE - 0x10, 0x20);
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, &why), -EINVAL);
	CHECK_STR(why, "virtio capability points outside BAR 0");
	/* offset + length wraps around 32 bits */
	fake_init(&f, &bus);
	fake_cap(&f, 0x40, 0x50, VIRTIO_PCI_CAP_COMMON_CFG, 0, 0xffffff00u, 0x200);
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, &why), -EINVAL);
}

static void test_pci_driver_refuses_capability_shorter_than_its_structure(void)
{
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus bus;
	const char *why = NULL;
	struct fakecfg f;

	fake_init(&f, &bus);
	f.cs[0x50 + 2] = 16; /* NOTIFY without its multiplier */
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, &why), -EINVAL);
	CHECK_STR(why, "virtio capability shorter than its structure");
	fake_init(&f, &bus);
	f.cs[0xf8] = 0x09, f.cs[0xf9] = 0, f.cs[0xfa] = 0x40; /* runs past 256 */
	f.cs[0x74 + 1] = 0xf8;
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, &why), -EINVAL);
	CHECK_STR(why, "vendor capability length runs outside config space");
}

static void test_pci_driver_refuses_non_virtio_ids(void)
{
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus bus;
	struct fakecfg f;

	fake_init(&f, &bus);
	f.cs[0] = 0x86, f.cs[1] = 0x80;
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, NULL), -ENODEV);
	fake_init(&f, &bus);
	f.cs[2] = 0x01, f.cs[3] = 0x10; /* 0x1001: transitional, needs legacy */
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, NULL), -ENODEV);
	fake_init(&f, &bus);
	f.cs[2] = 0x80, f.cs[3] = 0x10; /* 0x1080 */
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, NULL), -ENODEV);
	fake_init(&f, &bus);
	f.cs[6] = 0; /* no capability list */
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, NULL), -ENODEV);
}

static void test_pci_driver_skips_capability_for_another_bar(void)
{
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus bus;
	struct fakecfg f;

	fake_init(&f, &bus);
	/* A COMMON in BAR 2 first, then the one in BAR 0. */
	f.cs[0x34] = 0x84;
	fake_cap(&f, 0x84, 0x40, VIRTIO_PCI_CAP_COMMON_CFG, 2, 0x100, 0x3c);
	fake_cap(&f, 0x40, 0x50, VIRTIO_PCI_CAP_COMMON_CFG, 0, 0x200, 0x3c);
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, NULL), 0);
	CHECK_EQ(caps.common_offset, 0x200);
}

static void test_pci_driver_refuses_missing_common_capability(void)
{
	struct uvirtio_pci_caps caps;
	struct uvirtio_regbus bus;
	const char *why = NULL;
	struct fakecfg f;

	fake_init(&f, &bus);
	f.cs[0x34] = 0x50;
	CHECK_EQ(uvirtio_pci_drv_read_caps(&bus, &caps, &why), -ENOENT);
	CHECK_STR(why, "no usable COMMON capability");
}

/* Reset. */

static void test_pci_driver_waits_to_read_0_after_writing_0_to_device_status(void)
{
	struct uvirtio_transport *t;
	struct recbus r;
	struct env e;
	unsigned i, status_reads = 0;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	rec_init(&r, &e.bus);
	CHECK_EQ(uvirtio_pci_drv_create(&t, &r.bus, e.t->ops->dma(e.t)), 0);
	r.status_busy_reads = 3;
	rec_clear(&r);
	CHECK_EQ(t->ops->reset(t), 0);
	/* The write of 0, then status reads only, until one reads 0. */
	CHECK(r.n > 0);
	CHECK(r.acc[0].write && r.acc[0].off == COMMON(device_status) && r.acc[0].val == 0);
	for (i = 1; i < r.n && !r.acc[i].write && r.acc[i].off == COMMON(device_status); i++) {
		status_reads++;
		if (r.acc[i].val == 0)
			break;
	}
	CHECK_EQ(status_reads, 4);
	CHECK_EQ(r.acc[i].val, 0);
	uvirtio_pci_drv_destroy(t);
	rec_destroy(&r);
	env_stop(&e);
}

static void test_pci_driver_reset_times_out_when_device_status_never_reads_0(void)
{
	struct uvirtio_transport *t;
	struct recbus r;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	rec_init(&r, &e.bus);
	CHECK_EQ(uvirtio_pci_drv_create(&t, &r.bus, e.t->ops->dma(e.t)), 0);
	uvirtio_pci_drv_set_timeout(t, 0);
	r.status_stuck = true;
	CHECK_EQ(t->ops->reset(t), -ETIMEDOUT);
	uvirtio_pci_drv_destroy(t);
	rec_destroy(&r);
	env_stop(&e);
}

static void test_pci_device_status_write_of_0_resets_before_the_write_returns(void)
{
	struct uvirtio_driver drv;
	unsigned resets;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(probe_rng(&e, &drv, 0), 0);
	resets = resets_of(e.dev);
	CHECK_EQ(mrd(&e, COMMON(queue_enable), 2), 1);
	mwr(&e, COMMON(device_status), 1, 0);
	CHECK_EQ(mrd(&e, COMMON(device_status), 1), 0);
	CHECK_EQ(resets_of(e.dev), resets + 1);
	CHECK_EQ(mrd(&e, COMMON(queue_enable), 2), 0);
	/* The reset forgot the vectors the driver had asked for. */
	CHECK_EQ(mrd(&e, COMMON(msix_config), 2), VIRTIO_MSI_NO_VECTOR);
	CHECK_EQ(mrd(&e, COMMON(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

/* Queues. */

static void test_pci_queue_size_reads_max_until_written_smaller(void)
{
	struct uvirtio_driver drv;
	unsigned max = UVIRTIO_RNG_QUEUE_SIZE;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, 0), 0);
	mwr(&e, COMMON(queue_select), 2, 0);
	CHECK_EQ(mrd(&e, COMMON(queue_size), 2), max);
	mwr(&e, COMMON(queue_size), 2, max / 4);
	CHECK_EQ(mrd(&e, COMMON(queue_size), 2), max / 4);
	mwr(&e, COMMON(queue_size), 2, max * 2); /* above the maximum: no size */
	CHECK_EQ(mrd(&e, COMMON(queue_size), 2), max / 4);
	/* A queue that does not exist reads size 0. */
	mwr(&e, COMMON(queue_select), 2, 1);
	CHECK_EQ(mrd(&e, COMMON(queue_size), 2), 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_queue_enable_write_of_0_is_ignored(void)
{
	uint8_t *buf;
	struct uvirtio_driver drv;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(probe_rng(&e, &drv, 0), 0);
	buf = uvirtio_dma_alloc(e.t->ops->dma(e.t), 64, 64);
	mwr(&e, COMMON(queue_select), 2, 0);
	mwr(&e, COMMON(queue_enable), 2, 0);
	CHECK_EQ(mrd(&e, COMMON(queue_enable), 2), 1);
	CHECK_EQ(rng_once(&drv, buf, 64), 64);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static bool wrote_0_to_queue_enable(struct recbus *r, unsigned *ones)
{
	bool zero = false;

	*ones = 0;
	for (unsigned i = 0; i < r->n; i++) {
		if (!r->acc[i].write || r->acc[i].space != BAR || r->acc[i].off != COMMON(queue_enable))
			continue;
		zero |= r->acc[i].val == 0;
		*ones += r->acc[i].val == 1;
	}
	return zero;
}

static void test_pci_driver_never_writes_0_to_queue_enable(void)
{
	struct uvirtio_transport *t;
	struct uvirtio_driver drv;
	struct recbus r;
	unsigned ones;
	uint8_t *buf;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	rec_init(&r, &e.bus);
	CHECK_EQ(uvirtio_pci_drv_create(&t, &r.bus, e.t->ops->dma(e.t)), 0);
	buf = uvirtio_dma_alloc(t->ops->dma(t), 64, 64);
	/* The whole lifecycle: probe, queues, I/O, queue reset and re-enable,
	 * remove, probe again. */
	for (int round = 0; round < 2; round++) {
		CHECK_EQ(uvirtio_driver_probe(&drv, t, UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 0);
		CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
		CHECK_EQ(uvirtio_driver_ready(&drv), 0);
		CHECK_EQ(rng_once(&drv, buf, 64), 64);
		CHECK_EQ(uvirtio_driver_queue_reset(&drv, 0, NULL, NULL), 0);
		CHECK_EQ(uvirtio_driver_queue_enable(&drv, 0, 16), 0);
		CHECK_EQ(rng_once(&drv, buf, 64), 64);
		CHECK_EQ(uvirtio_driver_remove(&drv, NULL, NULL), 0);
	}
	CHECK(!wrote_0_to_queue_enable(&r, &ones));
	CHECK_EQ(ones, 4);
	uvirtio_pci_drv_destroy(t);
	rec_destroy(&r);
	env_stop(&e);
}

static void test_pci_queue_reset_reads_1_until_done(void)
{
	struct uvirtio_transport *t;
	struct uvirtio_driver drv;
	struct recbus r;
	unsigned i, reset_reads = 0;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	rec_init(&r, &e.bus);
	CHECK_EQ(uvirtio_pci_drv_create(&t, &r.bus, e.t->ops->dma(e.t)), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, t, UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	r.queue_reset_busy_reads = 3;
	rec_clear(&r);
	CHECK_EQ(t->ops->queue_reset(t, 0), 0);
	/* select, the write of 1, then reads of queue_reset until 0, and
	 * nothing else meanwhile. */
	for (i = 0; i < r.n && !(r.acc[i].write && r.acc[i].off == QUEUE_RESET); i++)
		;
	CHECK(i < r.n);
	CHECK_EQ(r.acc[i].val, 1);
	for (i++; i < r.n && !r.acc[i].write && r.acc[i].off == QUEUE_RESET; i++) {
		reset_reads++;
		if (r.acc[i].val == 0)
			break;
	}
	CHECK_EQ(reset_reads, 4);
	CHECK_EQ(r.acc[i].val, 0);
	/* Then it waits for queue_enable to read 0 too, as Linux does. */
	CHECK(i + 1 < r.n);
	CHECK_EQ(r.acc[i + 1].off, COMMON(queue_enable));
	CHECK(!r.acc[i + 1].write);
	uvirtio_driver_remove(&drv, NULL, NULL);
	uvirtio_pci_drv_destroy(t);
	rec_destroy(&r);
	env_stop(&e);
}

static void test_pci_queue_reset_reads_0_after_it_is_done(void)
{
	struct uvirtio_driver drv;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(probe_rng(&e, &drv, UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 0);
	mwr(&e, COMMON(queue_select), 2, 0);
	mwr(&e, QUEUE_RESET, 2, 1);
	CHECK_EQ(mrd(&e, QUEUE_RESET, 2), 0);
	CHECK(!uvirtio_device_queue_ready(e.dev, 0));
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_queue_enable_reads_0_after_queue_reset(void)
{
	struct uvirtio_driver drv;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(probe_rng(&e, &drv, UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 0);
	mwr(&e, COMMON(queue_select), 2, 0);
	CHECK_EQ(mrd(&e, COMMON(queue_enable), 2), 1);
	mwr(&e, QUEUE_RESET, 2, 1);
	CHECK_EQ(mrd(&e, COMMON(queue_enable), 2), 0);
	CHECK_EQ(mrd(&e, COMMON(queue_desc_lo), 4), 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_queue_size_is_max_after_queue_reset(void)
{
	unsigned sizes[1] = { 16 };
	struct uvirtio_driver drv;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, sizes), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	mwr(&e, COMMON(queue_select), 2, 0);
	CHECK_EQ(mrd(&e, COMMON(queue_size), 2), 16);
	mwr(&e, QUEUE_RESET, 2, 1);
	CHECK_EQ(mrd(&e, COMMON(queue_size), 2), UVIRTIO_RNG_QUEUE_SIZE);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_queue_reset_ignored_without_ring_reset(void)
{
	unsigned sizes[1] = { 16 };
	struct uvirtio_driver drv;
	uint8_t *buf;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, 0), 0);
	CHECK(!uvirtio_driver_has_feature(&drv, VIRTIO_F_RING_RESET));
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, sizes), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	buf = uvirtio_dma_alloc(e.t->ops->dma(e.t), 64, 64);
	mwr(&e, COMMON(queue_select), 2, 0);
	mwr(&e, QUEUE_RESET, 2, 1);
	CHECK_EQ(mrd(&e, COMMON(queue_enable), 2), 1);
	CHECK_EQ(mrd(&e, COMMON(queue_size), 2), 16);
	CHECK_EQ(rng_once(&drv, buf, 64), 64);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_driver_refuses_queue_already_enabled(void)
{
	struct uvirtio_queue_layout l;
	struct uvirtio_driver drv;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(probe_rng(&e, &drv, 0), 0);
	uvirtio_device_queue_layout(e.dev, 0, &l);
	CHECK_EQ(e.t->ops->queue_enable(e.t, 0, &l), -EBUSY);
	CHECK_EQ(e.t->ops->queue_enable(e.t, 1, &l), -ENOENT);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_driver_refuses_notify_offset_outside_the_notify_structure(void)
{
	struct uvirtio_transport *t;
	struct uvirtio_driver drv;
	struct recbus r;
	unsigned ones;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	rec_init(&r, &e.bus);
	r.notify_off = 1; /* one queue: its notify area holds offset 0 only */
	CHECK_EQ(uvirtio_pci_drv_create(&t, &r.bus, e.t->ops->dma(e.t)), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, t, 0), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), -EINVAL);
	CHECK(!wrote_0_to_queue_enable(&r, &ones));
	CHECK_EQ(ones, 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	uvirtio_pci_drv_destroy(t);
	rec_destroy(&r);
	env_stop(&e);
}

/* Interrupts. */

static void test_pci_used_buffer_raises_the_queue_vector(void)
{
	struct uvirtio_driver drv;
	struct uvirtio_drvq *q;
	struct iovec in;
	uint8_t *buf;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(probe_rng(&e, &drv, 0), 0);
	CHECK_EQ(mrd(&e, COMMON(msix_config), 2), 0);
	mwr(&e, COMMON(queue_select), 2, 0);
	CHECK_EQ(mrd(&e, COMMON(queue_msix_vector), 2), 1);
	buf = uvirtio_dma_alloc(e.t->ops->dma(e.t), 64, 64);
	in = (struct iovec){ buf, 64 };
	q = uvirtio_driver_vq(&drv, 0);
	CHECK_EQ(uvirtio_drvq_add(q, NULL, 0, &in, 1, buf), 0);
	CHECK_EQ(uvirtio_drvq_kick(q), 0);
	/* The kick ran the device on this thread: the vector is up by now. */
	CHECK(readable(uvirtio_pci_drv_vector_fd(e.t, 1)));
	CHECK(!readable(uvirtio_pci_drv_vector_fd(e.t, 0)));
	CHECK_EQ(uvirtio_pci_dev_isr_peek(e.m), 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_config_change_raises_the_config_vector(void)
{
	struct uvirtio_blk_drv b;
	uint32_t gen0, gen1;
	uint64_t cap = htole64(4096);
	struct env e;

	CHECK_EQ(env_start(&e, true, 1, 0), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	CHECK_EQ(e.t->ops->config_generation(e.t, &gen0), 0);
	CHECK(!readable(uvirtio_pci_drv_vector_fd(e.t, 0)));
	CHECK_EQ(uvirtio_device_config_update(e.dev, offsetof(struct virtio_blk_config, capacity),
					      &cap, sizeof(cap)), 0);
	CHECK(readable(uvirtio_pci_drv_vector_fd(e.t, 0)));
	CHECK_EQ(e.t->ops->config_generation(e.t, &gen1), 0);
	CHECK(gen1 != gen0);
	CHECK_EQ(uvirtio_pci_dev_isr_peek(e.m), 0);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_pci_driver_falls_back_to_intx_when_device_refuses_queue_vectors(void)
{
	static uint8_t a[4096];
	struct uvirtio_rng_drv drv;
	struct env e;

	/* One vector: the configuration's; the queue gets none. */
	CHECK_EQ(env_start(&e, false, 1, 1), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, e.t, 0), 0);
	mwr(&e, COMMON(queue_select), 2, 0);
	CHECK_EQ(mrd(&e, COMMON(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), WAIT_MS), sizeof(a));
	CHECK(uvirtio_pci_dev_isr_peek(e.m) & 1);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static void test_pci_isr_read_clears_it(void)
{
	static uint8_t a[64];
	struct uvirtio_rng_drv drv;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 1), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, e.t, 0), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), WAIT_MS), sizeof(a));
	CHECK_EQ(mrd(&e, UVIRTIO_PCI_ISR_OFFSET, 1), 1);
	CHECK_EQ(mrd(&e, UVIRTIO_PCI_ISR_OFFSET, 1), 0);
	CHECK_EQ(uvirtio_pci_dev_isr_peek(e.m), 0);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

/* Accesses. */

static void test_pci_malformed_accesses_are_ignored_and_read_0(void)
{
	uint32_t v = 1;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	mwr(&e, COMMON(device_feature_select), 4, 1);
	CHECK(mrd(&e, COMMON(device_feature), 4) & 1); /* VERSION_1 */
	CHECK_EQ(mrd(&e, COMMON(device_feature), 2), 0); /* wrong size */
	CHECK_EQ(mrd(&e, COMMON(device_feature) + 1, 1), 0);
	CHECK_EQ(mrd(&e, COMMON(num_queues) + 1, 2), 0); /* misaligned */
	CHECK_EQ(mrd(&e, UVIRTIO_PCI_BAR0_SIZE, 4), 0);
	CHECK_EQ(mrd(&e, 0xffffffffffffull, 1), 0);
	mwr(&e, COMMON(device_status), 4, 1);            /* wrong size */
	CHECK_EQ(mrd(&e, COMMON(device_status), 1), 0);
	CHECK_EQ(e.bus.read(e.bus.opaque, 2, 0, 4, &v), -EINVAL);
	CHECK_EQ(v, 0);
	CHECK_EQ(e.bus.read(e.bus.opaque, BAR, 0, 8, &v), -EINVAL);
	CHECK_EQ(e.bus.write(e.bus.opaque, BAR, 0, 3, 0), -EINVAL);
	/* A config space write changes nothing. */
	CHECK_EQ(e.bus.write(e.bus.opaque, CFG, 0, 2, 0x1234), 0);
	CHECK_EQ(cfg_rd(&e, 0, 2), 0x1af4);
	env_stop(&e);
}

static void test_pci_config_reads_use_each_fields_access_size(void)
{
	struct uvirtio_transport *t;
	struct recbus r;
	uint8_t buf[8];
	struct env e;

	CHECK_EQ(env_start(&e, true, 1, 0), 0);
	rec_init(&r, &e.bus);
	CHECK_EQ(uvirtio_pci_drv_create(&t, &r.bus, e.t->ops->dma(e.t)), 0);
	rec_clear(&r);
	CHECK_EQ(t->ops->get_config(t, 0, buf, 8), 0); /* capacity: two dwords */
	CHECK_EQ(r.n, 2);
	CHECK(r.acc[0].off == UVIRTIO_PCI_DEVICE_OFFSET && r.acc[0].size == 4);
	CHECK(r.acc[1].off == UVIRTIO_PCI_DEVICE_OFFSET + 4 && r.acc[1].size == 4);
	CHECK_EQ(le64toh(*(uint64_t *)buf), IMAGE_SIZE / 512);
	rec_clear(&r);
	CHECK_EQ(t->ops->get_config(t, 1, buf, 3), 0);
	CHECK_EQ(r.n, 2);
	CHECK(r.acc[0].off == UVIRTIO_PCI_DEVICE_OFFSET + 1 && r.acc[0].size == 1);
	CHECK(r.acc[1].off == UVIRTIO_PCI_DEVICE_OFFSET + 2 && r.acc[1].size == 2);
	CHECK_EQ(t->ops->get_config(t, sizeof(struct virtio_blk_config) - 2, buf, 4), -EINVAL);
	uvirtio_pci_drv_destroy(t);
	rec_destroy(&r);
	env_stop(&e);
}

/* End to end. */

static void test_pci_rng_reads_random_bytes_over_the_pair(void)
{
	static uint8_t a[65536], b[65536];
	struct uvirtio_rng_drv drv;
	unsigned zeros = 0;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, e.t, 0), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), WAIT_MS), sizeof(a));
	CHECK_EQ(uvirtio_rng_drv_read(&drv, b, sizeof(b), WAIT_MS), sizeof(b));
	for (size_t i = 0; i < sizeof(a); i++)
		zeros += a[i] == 0;
	CHECK(zeros < sizeof(a) / 64);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	uvirtio_rng_drv_remove(&drv);
	env_stop(&e);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

static void test_pci_blk_io_is_verified_over_the_pair(void)
{
	struct uvirtio_blk_drv b;
	uint8_t *w, *r, file[8192];
	struct env e;

	CHECK_EQ(env_start(&e, true, 2, 0), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){ .num_queues = 2 }), 0);
	CHECK_EQ(uvirtio_blk_drv_capacity(&b), IMAGE_SIZE / 512);
	w = uvirtio_blk_drv_alloc_buf(&b, 8192);
	r = uvirtio_blk_drv_alloc_buf(&b, 8192);
	CHECK(w && r);
	fill(w, 8192, 3);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 16, w, 8192, WAIT_MS), 0);
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 0, WAIT_MS), 0);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 1, 16, r, 8192, WAIT_MS), 0);
	CHECK(memcmp(w, r, 8192) == 0);
	CHECK_EQ(pread(e.fd, file, sizeof(file), 16 * 512), sizeof(file));
	CHECK(memcmp(w, file, 8192) == 0);
	uvirtio_blk_drv_free_buf(&b, w);
	uvirtio_blk_drv_free_buf(&b, r);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

/* Raw blk requests through the driver core, one header and status byte per
 * queue (see test_blk_dev.c on why buffers stay with one queue). */
struct rawq {
	struct uvirtio_driver *drv;
	unsigned qi;
	struct virtio_blk_outhdr *hdr;
	uint8_t *st, *buf;
};

static int raw_wait(struct rawq *q, void *want)
{
	struct uvirtio_drvq *vq = uvirtio_driver_vq(q->drv, q->qi);
	uint32_t len;
	void *token;

	for (;;) {
		int ret = uvirtio_drvq_get(vq, &token, &len);

		if (ret < 0)
			return ret;
		if (ret)
			return token == want ? 0 : -EPROTO;
		if (!uvirtio_drvq_enable_cb(vq))
			continue;
		ret = uvirtio_driver_wait(q->drv, q->qi, WAIT_MS);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

static int raw_rw(struct rawq *q, uint32_t type, uint64_t sector, size_t len)
{
	struct uvirtio_drvq *vq = uvirtio_driver_vq(q->drv, q->qi);
	struct iovec out[2] = { { q->hdr, sizeof(*q->hdr) }, { q->buf, len } };
	struct iovec in[2] = { { q->buf, len }, { q->st, 1 } };
	int ret;

	q->hdr->type = htole32(type);
	q->hdr->ioprio = 0;
	q->hdr->sector = htole64(sector);
	*q->st = 0xee;
	if (type == VIRTIO_BLK_T_OUT)
		ret = uvirtio_drvq_add(vq, out, 2, in + 1, 1, q->hdr);
	else
		ret = uvirtio_drvq_add(vq, out, 1, in, 2, q->hdr);
	if (!ret)
		ret = uvirtio_drvq_kick(vq);
	if (!ret)
		ret = raw_wait(q, q->hdr);
	if (!ret && *q->st != VIRTIO_BLK_S_OK)
		ret = -EIO;
	return ret;
}

/* Write a pattern and read it back @rounds times on one queue. */
static int raw_cycles(struct rawq *q, unsigned rounds, unsigned seed)
{
	uint8_t expect[4096];

	for (unsigned i = 0; i < rounds; i++) {
		uint64_t sector = 64 * q->qi + (i % 8) * 8;
		int ret;

		fill(q->buf, 4096, seed + i);
		memcpy(expect, q->buf, 4096);
		if ((ret = raw_rw(q, VIRTIO_BLK_T_OUT, sector, 4096)))
			return ret;
		memset(q->buf, 0, 4096);
		if ((ret = raw_rw(q, VIRTIO_BLK_T_IN, sector, 4096)))
			return ret;
		if (memcmp(q->buf, expect, 4096))
			return -EILSEQ;
	}
	return 0;
}

struct runner {
	struct rawq q;
	int result;
};

static void *run_queue(void *arg)
{
	struct runner *r = arg;

	r->result = raw_cycles(&r->q, 200, 11);
	return NULL;
}

static int rawq_init(struct rawq *q, struct uvirtio_driver *drv, struct uvirtio_dma *dma, unsigned qi)
{
	q->drv = drv;
	q->qi = qi;
	q->hdr = uvirtio_dma_alloc(dma, sizeof(*q->hdr), 64);
	q->st = uvirtio_dma_alloc(dma, 1, 64);
	q->buf = uvirtio_dma_alloc(dma, 4096, 4096);
	return q->hdr && q->st && q->buf ? 0 : -ENOMEM;
}

static void test_pci_queue_reset_and_reenable_with_another_size_while_another_queue_runs(void)
{
	struct uvirtio_dma *dma;
	struct uvirtio_driver drv;
	struct runner other;
	struct rawq q0;
	pthread_t th;
	struct env e;

	CHECK_EQ(env_start(&e, true, 2, 0), 0);
	dma = e.t->ops->dma(e.t);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, UVIRTIO_BIT(VIRTIO_F_RING_RESET) |
						     UVIRTIO_BIT(VIRTIO_BLK_F_MQ)), 0);
	CHECK(uvirtio_driver_has_feature(&drv, VIRTIO_F_RING_RESET));
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 2, (unsigned[]){ 64, 64 }), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	CHECK_EQ(rawq_init(&q0, &drv, dma, 0), 0);
	CHECK_EQ(rawq_init(&other.q, &drv, dma, 1), 0);
	CHECK_EQ(raw_cycles(&q0, 4, 1), 0);

	CHECK_EQ(pthread_create(&th, NULL, run_queue, &other), 0);
	for (unsigned size = 16; size <= 128; size *= 2) {
		CHECK_EQ(uvirtio_driver_queue_reset(&drv, 0, NULL, NULL), 0);
		CHECK_EQ(uvirtio_driver_queue_enable(&drv, 0, size), 0);
		CHECK_EQ(uvirtio_drvq_size(uvirtio_driver_vq(&drv, 0)), size);
		CHECK_EQ(raw_cycles(&q0, 8, size), 0);
	}
	pthread_join(th, NULL);
	CHECK_EQ(other.result, 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

static void test_pci_suspend_stops_the_device_and_resume_goes_on(void)
{
	struct uvirtio_driver drv;
	struct rawq q;
	uint8_t status;
	struct env e;

	CHECK_EQ(env_start(&e, true, 1, 0), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, UVIRTIO_BIT(VIRTIO_F_SUSPEND)), 0);
	CHECK(uvirtio_driver_has_feature(&drv, VIRTIO_F_SUSPEND));
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	CHECK_EQ(rawq_init(&q, &drv, e.t->ops->dma(e.t), 0), 0);
	CHECK_EQ(raw_cycles(&q, 4, 1), 0);
	CHECK_EQ(uvirtio_driver_suspend(&drv, WAIT_MS), 0);
	CHECK_EQ(e.t->ops->get_status(e.t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	/* The queue stays enabled as the driver sees it. */
	mwr(&e, COMMON(queue_select), 2, 0);
	CHECK_EQ(mrd(&e, COMMON(queue_enable), 2), 1);
	CHECK_EQ(uvirtio_driver_resume(&drv, WAIT_MS), 0);
	CHECK_EQ(raw_cycles(&q, 4, 2), 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	env_stop(&e);
}

/* The device end moves: a second model on a device restored from the
 * first's snapshot, the transport switched over with set_bus. */
static void moved_irq(void *opaque, uint16_t vector)
{
	struct uvirtio_transport *t = opaque;
	int fd = uvirtio_pci_drv_vector_fd(t, vector);

	if (fd >= 0)
		(void)!write(fd, &(uint64_t){ 1 }, 8);
}

static void test_pci_suspended_device_moves_to_a_new_model_and_goes_on(void)
{
	struct uvirtio_blk_dev_config cfg = { .backend = UVIRTIO_BLK_BACKEND_FILE, .poll_us = -1 };
	struct uvirtio_blk_dev_stats stats;
	struct uvirtio_blk_dev blk2;
	struct uvirtio_pci_dev *m2;
	struct uvirtio_regbus bus2;
	struct uvirtio_driver drv;
	uint8_t snap[4096], state[4096];
	long snap_len, state_len;
	struct rawq q;
	struct env e;

	CHECK_EQ(env_start(&e, true, 1, 0), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, UVIRTIO_BIT(VIRTIO_F_SUSPEND)), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, (unsigned[]){ 32 }), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	CHECK_EQ(rawq_init(&q, &drv, e.t->ops->dma(e.t), 0), 0);
	CHECK_EQ(raw_cycles(&q, 4, 1), 0);
	CHECK_EQ(uvirtio_driver_suspend(&drv, WAIT_MS), 0);

	snap_len = uvirtio_device_snapshot(e.dev, snap, sizeof(snap));
	CHECK(snap_len > 0);
	state_len = uvirtio_pci_dev_save(e.m, state, sizeof(state));
	CHECK_EQ(state_len, (long)uvirtio_pci_dev_save_size(e.m));

	cfg.path = e.path;
	CHECK_EQ(uvirtio_blk_dev_init(&blk2, &cfg, uvirtio_pci_pair_mem(e.p)), 0);
	CHECK_EQ(uvirtio_device_restore(uvirtio_blk_dev_device(&blk2), snap, (size_t)snap_len, NULL), 0);
	CHECK_EQ(uvirtio_pci_dev_create(&m2, uvirtio_blk_dev_device(&blk2), &(struct uvirtio_pci_dev_config){
						 .irq = moved_irq, .opaque = e.t }), 0);
	CHECK_EQ(uvirtio_pci_dev_load(m2, state, (size_t)state_len, NULL), 0);
	uvirtio_pci_dev_bus(m2, &bus2);
	CHECK_EQ(uvirtio_pci_drv_set_bus(e.t, &bus2), 0);

	CHECK_EQ(uvirtio_driver_resume(&drv, WAIT_MS), 0);
	CHECK_EQ(raw_cycles(&q, 8, 2), 0);
	/* The new device served them (its counters are atomic). */
	uvirtio_blk_dev_get_stats(&blk2, &stats);
	CHECK_EQ(stats.writes, 8);
	CHECK_EQ(stats.reads, 8);
	uvirtio_driver_remove(&drv, NULL, NULL);
	uvirtio_pci_dev_destroy(m2);
	uvirtio_blk_dev_destroy(&blk2);
	env_stop(&e);
}

static void test_pci_driver_set_bus_refuses_a_device_that_is_not_suspended(void)
{
	struct uvirtio_driver drv;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	/* Before probe the end may move. */
	CHECK_EQ(uvirtio_pci_drv_set_bus(e.t, &e.bus), 0);
	CHECK_EQ(probe_rng(&e, &drv, 0), 0);
	CHECK_EQ(uvirtio_pci_drv_set_bus(e.t, &e.bus), -EBUSY);
	uvirtio_driver_remove(&drv, NULL, NULL);
	/* After a reset it may again. */
	CHECK_EQ(uvirtio_pci_drv_set_bus(e.t, &e.bus), 0);
	env_stop(&e);
}

static void test_pci_dev_load_refuses_malformed_state(void)
{
	uint8_t good[1024], bad[1024];
	const char *why = NULL;
	long n;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	mwr(&e, COMMON(msix_config), 2, 1);
	mwr(&e, COMMON(queue_select), 2, 0);
	mwr(&e, COMMON(queue_desc_lo), 4, 0x1000);
	n = uvirtio_pci_dev_save(e.m, good, sizeof(good));
	CHECK(n > 0);
	CHECK_EQ(uvirtio_pci_dev_save(e.m, good, 8), -ENOSPC);

	memcpy(bad, good, (size_t)n);
	bad[0] ^= 1;
	CHECK_EQ(uvirtio_pci_dev_load(e.m, bad, (size_t)n, &why), -EBADMSG);
	CHECK_STR(why, "pci model state has a bad magic");
	CHECK_EQ(uvirtio_pci_dev_load(e.m, good, (size_t)n - 1, &why), -EBADMSG);
	memcpy(bad, good, (size_t)n);
	bad[8] = 2; /* version */
	CHECK_EQ(uvirtio_pci_dev_load(e.m, bad, (size_t)n, &why), -EPROTONOSUPPORT);
	memcpy(bad, good, (size_t)n);
	bad[32] = 5, bad[33] = 0; /* msix_config: a vector the function lacks */
	CHECK_EQ(uvirtio_pci_dev_load(e.m, bad, (size_t)n, &why), -EBADMSG);
	memcpy(bad, good, (size_t)n);
	bad[40] = 0xff, bad[41] = 0xff; /* queue 0 size above the maximum */
	CHECK_EQ(uvirtio_pci_dev_load(e.m, bad, (size_t)n, &why), -EBADMSG);

	/* Refused loads changed nothing; a good one restores. */
	CHECK_EQ(mrd(&e, COMMON(msix_config), 2), 1);
	mwr(&e, COMMON(msix_config), 2, VIRTIO_MSI_NO_VECTOR);
	mwr(&e, COMMON(queue_desc_lo), 4, 0);
	CHECK_EQ(uvirtio_pci_dev_load(e.m, good, (size_t)n, &why), 0);
	CHECK_EQ(mrd(&e, COMMON(msix_config), 2), 1);
	CHECK_EQ(mrd(&e, COMMON(queue_desc_lo), 4), 0x1000);
	env_stop(&e);
}

/* A device type that serves one request per call and asks to be run again
 * while more are waiting (as rng does when its budget is spent). */
struct slow {
	struct uvirtio_device dev;
	struct iovec iov[4];
	unsigned calls, served;
};

static void slow_notify(struct uvirtio_device *dev, unsigned index)
{
	struct slow *s = uvirtio_device_priv(dev);
	struct uvirtio_devq *q = uvirtio_device_queue(dev, index);
	struct uvirtio_req req;

	s->calls++;
	uvirtio_req_init(&req, s->iov, 4);
	if (uvirtio_devq_pop(q, &req) != 1)
		return;
	uvirtio_devq_push(q, req.id, 0);
	s->served++;
	uvirtio_device_notify(dev, index);
	if (uvirtio_devq_has_avail(q))
		uvirtio_device_reschedule(dev, index);
}

static const struct uvirtio_device_ops slow_ops = {
	.name = "slow", .device_id = 0x3e, .num_queues = 1, .queue_max_size = 16,
	.queue_notify = slow_notify,
};

static void test_pci_rescheduled_queue_runs_again_before_the_access_returns(void)
{
	struct uvirtio_pci_pair *p;
	struct uvirtio_driver drv;
	struct uvirtio_drvq *q;
	struct uvirtio_transport *t;
	struct slow s = { 0 };
	uint8_t *buf;

	CHECK_EQ(uvirtio_pci_pair_create(&p, NULL), 0);
	CHECK_EQ(uvirtio_device_init(&s.dev, &slow_ops, &s, NULL, 0, uvirtio_pci_pair_mem(p)), 0);
	CHECK_EQ(uvirtio_pci_pair_start(p, &s.dev), 0);
	t = uvirtio_pci_pair_transport(p);
	CHECK_EQ(uvirtio_driver_probe(&drv, t, 0), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	q = uvirtio_driver_vq(&drv, 0);
	buf = uvirtio_dma_alloc(t->ops->dma(t), 64, 64);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(uvirtio_drvq_add(q, NULL, 0, &(struct iovec){ buf + i, 1 }, 1, buf + i), 0);
	s.calls = 0;
	CHECK_EQ(uvirtio_drvq_kick(q), 0);
	/* One kick, eight calls: the seven it asked for ran inside the kick. */
	CHECK_EQ(s.served, 8);
	CHECK_EQ(s.calls, 8);
	uvirtio_driver_remove(&drv, NULL, NULL);
	uvirtio_pci_pair_destroy(p);
	uvirtio_device_destroy(&s.dev);
}

/* Packed ring and NOTIFICATION_DATA. */

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define ND UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)
#define NOTIFY0 (UVIRTIO_PCI_NOTIFY_OFFSET) /* queue 0's notify address */

/* rng over a recording bus, queue 0 of 5 (12 requests wrap it) with
 * @features asked for. Then checks every write to the notify area. */
static void rng_notify_writes(uint64_t features, bool with_data)
{
	struct uvirtio_transport *t;
	struct uvirtio_driver drv;
	struct recbus r;
	uint8_t *buf;
	unsigned writes = 0;
	uint32_t last = 0, next;
	uint16_t recorded = 0;
	bool wrapped = false;
	struct env e;

	CHECK_EQ(env_start(&e, false, 1, 0), 0);
	rec_init(&r, &e.bus);
	CHECK_EQ(uvirtio_pci_drv_create(&t, &r.bus, e.t->ops->dma(e.t)), 0);
	buf = uvirtio_dma_alloc(t->ops->dma(t), 64, 64);
	CHECK(buf);
	CHECK_EQ(uvirtio_driver_probe(&drv, t, features), 0);
	CHECK_EQ(uvirtio_driver_features(&drv) & (PACKED | ND), features & (PACKED | ND));
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, (const unsigned[]){ 5 }), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	for (unsigned i = 0; i < 12; i++)
		CHECK_EQ(rng_once(&drv, buf, 64), 64);
	next = uvirtio_drvq_notification_data(uvirtio_driver_vq(&drv, 0));
	pthread_mutex_lock(&r.lock);
	for (unsigned k = 0; k < r.n; k++) {
		struct access *a = &r.acc[k];

		if (!a->write || a->space != BAR || a->off < UVIRTIO_PCI_NOTIFY_OFFSET ||
		    a->off >= UVIRTIO_PCI_BAR0_SIZE)
			continue;
		writes++;
		last = a->val;
		wrapped |= !(a->val & 0x80000000u);
		/* Queue 0's address; with data 4 bytes (vp_notify_with_data()),
		 * else the 16-bit queue index. */
		if (a->off != NOTIFY0 || a->size != (with_data ? 4u : 2u) ||
		    (a->val & 0xffff) != 0 || (!with_data && a->val != 0)) {
			printf("# write of %u bytes at %#llx: %#x\n", a->size,
			       (unsigned long long)a->off, a->val);
			writes = 0;
			break;
		}
	}
	pthread_mutex_unlock(&r.lock);
	CHECK(writes >= 12);
	if (with_data) {
		/* The device's queue got the position (and wrap) above. */
		CHECK_EQ(last, next);
		CHECK(wrapped);
		CHECK(uvirtio_devq_notified_avail(uvirtio_device_queue(e.dev, 0), &recorded));
		CHECK_EQ(recorded, next >> 16);
	} else {
		CHECK(!uvirtio_devq_notified_avail(uvirtio_device_queue(e.dev, 0), &recorded));
	}
	CHECK_EQ(uvirtio_driver_remove(&drv, NULL, NULL), 0);
	uvirtio_pci_drv_destroy(t);
	rec_destroy(&r);
	env_stop(&e);
}

static void test_pci_notification_data_is_a_4_byte_write_at_the_notify_address(void)
{
	rng_notify_writes(PACKED | ND, true);
}

static void test_pci_without_notification_data_notify_write_is_the_queue_index(void)
{
	rng_notify_writes(PACKED, false);
}

static void test_pci_blk_packed_rings_with_notification_data_carry_verified_io(void)
{
	struct uvirtio_driver drv;
	struct rawq q[2];
	struct env e;

	CHECK_EQ(env_start(&e, true, 2, 0), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, PACKED | ND | UVIRTIO_BIT(VIRTIO_BLK_F_MQ)), 0);
	CHECK((uvirtio_driver_features(&drv) & (PACKED | ND)) == (PACKED | ND));
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 2, (const unsigned[]){ 5, 5 }), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	for (unsigned i = 0; i < 2; i++) {
		CHECK_EQ(rawq_init(&q[i], &drv, e.t->ops->dma(e.t), i), 0);
		CHECK_EQ(raw_cycles(&q[i], 8, 20 + i), 0);
	}
	CHECK_EQ(uvirtio_driver_remove(&drv, NULL, NULL), 0);
	env_stop(&e);
}

TEST_MAIN(T(test_pci_config_space_identifies_a_modern_virtio_device),
	  T(test_pci_device_capability_covers_the_device_config),
	  T(test_pci_driver_reads_a_valid_capability_list),
	  T(test_pci_driver_refuses_capability_loop),
	  T(test_pci_driver_refuses_capability_outside_bar),
	  T(test_pci_driver_refuses_capability_shorter_than_its_structure),
	  T(test_pci_driver_refuses_non_virtio_ids),
	  T(test_pci_driver_skips_capability_for_another_bar),
	  T(test_pci_driver_refuses_missing_common_capability),
	  T(test_pci_driver_waits_to_read_0_after_writing_0_to_device_status),
	  T(test_pci_driver_reset_times_out_when_device_status_never_reads_0),
	  T(test_pci_device_status_write_of_0_resets_before_the_write_returns),
	  T(test_pci_queue_size_reads_max_until_written_smaller),
	  T(test_pci_queue_enable_write_of_0_is_ignored),
	  T(test_pci_driver_never_writes_0_to_queue_enable),
	  T(test_pci_queue_reset_reads_1_until_done),
	  T(test_pci_queue_reset_reads_0_after_it_is_done),
	  T(test_pci_queue_enable_reads_0_after_queue_reset),
	  T(test_pci_queue_size_is_max_after_queue_reset),
	  T(test_pci_queue_reset_ignored_without_ring_reset),
	  T(test_pci_driver_refuses_queue_already_enabled),
	  T(test_pci_driver_refuses_notify_offset_outside_the_notify_structure),
	  T(test_pci_used_buffer_raises_the_queue_vector),
	  T(test_pci_config_change_raises_the_config_vector),
	  T(test_pci_driver_falls_back_to_intx_when_device_refuses_queue_vectors),
	  T(test_pci_isr_read_clears_it),
	  T(test_pci_malformed_accesses_are_ignored_and_read_0),
	  T(test_pci_config_reads_use_each_fields_access_size),
	  T(test_pci_rng_reads_random_bytes_over_the_pair),
	  T(test_pci_blk_io_is_verified_over_the_pair),
	  T(test_pci_queue_reset_and_reenable_with_another_size_while_another_queue_runs),
	  T(test_pci_suspend_stops_the_device_and_resume_goes_on),
	  T(test_pci_suspended_device_moves_to_a_new_model_and_goes_on),
	  T(test_pci_driver_set_bus_refuses_a_device_that_is_not_suspended),
	  T(test_pci_rescheduled_queue_runs_again_before_the_access_returns),
	  T(test_pci_dev_load_refuses_malformed_state),
	  T(test_pci_notification_data_is_a_4_byte_write_at_the_notify_address),
	  T(test_pci_without_notification_data_notify_write_is_the_queue_index),
	  T(test_pci_blk_packed_rings_with_notification_data_carry_verified_io))
