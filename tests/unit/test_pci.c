// SPDX-License-Identifier: MIT
/*
 * virtio-pci modern: the register model and the driver-side transport.
 * Driver rules are checked through a regbus wrapper that records every
 * access and can make the device look slow; capability walks through a
 * configuration space built by hand. The pair end to end is in
 * test_pci_pair.c; the shared fixture in pci_fixture.h.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "pci_fixture.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/driver.h"
#include "uvirtio/pci.h"
#include "uvirtio/rng.h"

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
	  T(test_pci_config_reads_use_each_fields_access_size))
