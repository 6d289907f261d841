// SPDX-License-Identifier: MIT
/* virtio-mmio version 2: the register model, the driver-side transport, and
 * both together (rng and blk devices with their drivers over the pair). */
#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_mmio.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_ids.h>

#include "uvirtio/shared_mem.h"
#include "harness.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/driver.h"
#include "uvirtio/mmio.h"
#include "uvirtio/rng.h"
#include "../support/core_internal.h"

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRIVER VIRTIO_CONFIG_S_DRIVER
#define S_FEATURES_OK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DRIVER_OK VIRTIO_CONFIG_S_DRIVER_OK

/* How many resets the device core completed. */
static unsigned resets_of(const struct uvirtio_device *dev)
{
	struct uvirtio_device_stats st;

	uvirtio_device_get_stats(dev, &st);
	return st.resets;
}

static uint32_t rd(struct uvirtio_mmio_dev *m, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	uvirtio_mmio_dev_read(m, off, 4, &v);
	return v;
}

static void wr(struct uvirtio_mmio_dev *m, uint64_t off, uint32_t v)
{
	uvirtio_mmio_dev_write(m, off, 4, v);
}

/* ------------------------------------------------------------------ */
/* The model alone, over an rng device with no guest memory. */

struct solo {
	struct uvirtio_mem mem;
	struct uvirtio_rng_dev rng;
	struct uvirtio_mmio_dev *m;
	unsigned irqs; /* times the line was raised */
};

static void count_irq(void *opaque)
{
	__atomic_add_fetch(&((struct solo *)opaque)->irqs, 1, __ATOMIC_RELAXED);
}

static int solo_start(struct solo *s)
{
	struct uvirtio_mmio_dev_config cfg = { .irq = count_irq, .opaque = s };
	int ret;

	memset(s, 0, sizeof(*s));
	uvirtio_mem_init(&s->mem);
	ret = uvirtio_rng_dev_init(&s->rng, &s->mem);
	return ret ? ret : uvirtio_mmio_dev_create(&s->m, uvirtio_rng_dev_device(&s->rng), &cfg);
}

static void solo_stop(struct solo *s)
{
	uvirtio_mmio_dev_destroy(s->m);
	uvirtio_rng_dev_destroy(&s->rng);
}

/* Driver status writes up to FEATURES_OK with VERSION_1 (and @hi more). */
static void solo_negotiate(struct solo *s, uint32_t hi)
{
	wr(s->m, VIRTIO_MMIO_STATUS, S_ACK);
	wr(s->m, VIRTIO_MMIO_STATUS, S_ACK | S_DRIVER);
	wr(s->m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(s->m, VIRTIO_MMIO_DRIVER_FEATURES, 1u | hi);
	wr(s->m, VIRTIO_MMIO_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
}

static void test_mmio_identity_registers_read_as_spec(void)
{
	struct solo s;

	CHECK_EQ(solo_start(&s), 0);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_VERSION), 2);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_DEVICE_ID), 4);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_VENDOR_ID), UVIRTIO_MMIO_VENDOR_QEMU);
	wr(s.m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_DEVICE_FEATURES), uvirtio_device_get_features(uvirtio_rng_dev_device(&s.rng)) >> 32);
	wr(s.m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)uvirtio_device_get_features(uvirtio_rng_dev_device(&s.rng)));
	wr(s.m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_QUEUE_NUM_MAX), UVIRTIO_RNG_QUEUE_SIZE);
	/* A queue that does not exist has maximum 0. */
	wr(s.m, VIRTIO_MMIO_QUEUE_SEL, 1);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	solo_stop(&s);
}

static void test_mmio_unaligned_access_is_ignored(void)
{
	struct solo s;
	uint32_t v = 7;

	CHECK_EQ(solo_start(&s), 0);
	/* Unaligned, the wrong size, unknown: -EINVAL, reads 0. */
	CHECK_EQ(uvirtio_mmio_dev_read(s.m, VIRTIO_MMIO_MAGIC_VALUE + 1, 4, &v), -EINVAL);
	CHECK_EQ(v, 0);
	v = 7;
	CHECK_EQ(uvirtio_mmio_dev_read(s.m, VIRTIO_MMIO_MAGIC_VALUE, 2, &v), -EINVAL);
	CHECK_EQ(v, 0);
	CHECK_EQ(uvirtio_mmio_dev_read(s.m, 0x0c4, 4, &v), -EINVAL); /* unknown */
	CHECK_EQ(uvirtio_mmio_dev_read(s.m, 0x100, 4, &v), -EINVAL); /* rng has no config */
	CHECK_EQ(uvirtio_mmio_dev_read(s.m, UINT64_MAX - 1, 2, &v), -EINVAL);
	/* Writes of the same kinds change nothing. */
	CHECK_EQ(uvirtio_mmio_dev_write(s.m, VIRTIO_MMIO_STATUS + 2, 4, S_ACK), -EINVAL);
	CHECK_EQ(uvirtio_mmio_dev_write(s.m, VIRTIO_MMIO_STATUS, 1, S_ACK), -EINVAL);
	CHECK_EQ(uvirtio_mmio_dev_write(s.m, VIRTIO_MMIO_STATUS, 8, S_ACK), -EINVAL);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_STATUS), 0);
	/* Read-only registers refuse writes. */
	CHECK_EQ(uvirtio_mmio_dev_write(s.m, VIRTIO_MMIO_MAGIC_VALUE, 4, 0), -EINVAL);
	CHECK_EQ(uvirtio_mmio_dev_write(s.m, VIRTIO_MMIO_QUEUE_NUM_MAX, 4, 1), -EINVAL);
	CHECK_EQ(uvirtio_mmio_dev_write(s.m, VIRTIO_MMIO_INTERRUPT_STATUS, 4, 3), -EINVAL);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	/* Write-only registers read 0. */
	wr(s.m, VIRTIO_MMIO_QUEUE_NUM, 16);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_QUEUE_NUM), 0);
	solo_stop(&s);
}

static void test_mmio_interrupt_status_set_by_hooks_and_cleared_by_ack(void)
{
	struct solo s;
	const struct uvirtio_device_hooks *h;

	CHECK_EQ(solo_start(&s), 0);
	h = uvirtio_device_get_hooks(uvirtio_rng_dev_device(&s.rng));
	h->notify_used(h->opaque, 0);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(s.irqs, 1);
	/* The line is already up: no second edge. */
	h->notify_used(h->opaque, 0);
	h->notify_config(h->opaque);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(s.irqs, 1);
	/* Acknowledging one bit leaves the other, and the line up: raised again. */
	wr(s.m, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(s.irqs, 2);
	wr(s.m, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK_EQ(s.irqs, 2);
	h->notify_config(h->opaque);
	CHECK_EQ(s.irqs, 3);
	solo_stop(&s);
}

static void test_mmio_reset_clears_the_models_registers(void)
{
	struct solo s;
	const struct uvirtio_device_hooks *h;
	uint8_t saved[UVIRTIO_MMIO_DEV_SAVE_SIZE(1)], fresh[UVIRTIO_MMIO_DEV_SAVE_SIZE(1)];

	CHECK_EQ(solo_start(&s), 0);
	CHECK_EQ(uvirtio_mmio_dev_save(s.m, fresh, sizeof(fresh)), sizeof(fresh));
	solo_negotiate(&s, 0);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_STATUS), S_ACK | S_DRIVER | S_FEATURES_OK);
	wr(s.m, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(s.m, VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(s.m, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	wr(s.m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	h = uvirtio_device_get_hooks(uvirtio_rng_dev_device(&s.rng));
	h->notify_config(h->opaque);
	CHECK_EQ(uvirtio_mmio_dev_save(s.m, saved, sizeof(saved)), sizeof(saved));
	CHECK(memcmp(saved, fresh, sizeof(saved)));
	wr(s.m, VIRTIO_MMIO_STATUS, 0);
	/* Complete when the write returns: status 0, registers as at start. */
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_STATUS), 0);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK_EQ(uvirtio_mmio_dev_save(s.m, saved, sizeof(saved)), sizeof(saved));
	CHECK(!memcmp(saved, fresh, sizeof(saved)));
	CHECK_EQ(resets_of(uvirtio_rng_dev_device(&s.rng)), 1);
	solo_stop(&s);
}

static void test_mmio_driver_features_written_in_halves(void)
{
	struct solo s;

	CHECK_EQ(solo_start(&s), 0);
	wr(s.m, VIRTIO_MMIO_STATUS, S_ACK | S_DRIVER);
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX));
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	/* A selector with no bits behind it changes nothing. */
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	CHECK_EQ(uvirtio_device_get_driver_features(uvirtio_rng_dev_device(&s.rng)),
		 UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	wr(s.m, VIRTIO_MMIO_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	CHECK_EQ(rd(s.m, VIRTIO_MMIO_STATUS), S_ACK | S_DRIVER | S_FEATURES_OK);
	/* After FEATURES_OK a feature write is ignored. */
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(s.m, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	CHECK_EQ(uvirtio_device_accepted_features(uvirtio_rng_dev_device(&s.rng)),
		 UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	solo_stop(&s);
}

static void test_mmio_save_load_round_trip_and_refuses_bad_blobs(void)
{
	uint8_t blob[UVIRTIO_MMIO_DEV_SAVE_SIZE(1)], bad[sizeof(blob)], again[sizeof(blob)];
	const struct uvirtio_device_hooks *h;
	struct solo a, b;

	CHECK_EQ(solo_start(&a), 0);
	CHECK_EQ(uvirtio_mmio_dev_save(a.m, NULL, 0), sizeof(blob));
	CHECK_EQ(uvirtio_mmio_dev_save(a.m, blob, sizeof(blob) - 1), -ENOSPC);
	wr(a.m, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(a.m, VIRTIO_MMIO_QUEUE_NUM, 32);
	wr(a.m, VIRTIO_MMIO_QUEUE_USED_HIGH, 0x12345678);
	wr(a.m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	h = uvirtio_device_get_hooks(uvirtio_rng_dev_device(&a.rng));
	h->notify_used(h->opaque, 0);
	CHECK_EQ(uvirtio_mmio_dev_save(a.m, blob, sizeof(blob)), sizeof(blob));

	CHECK_EQ(solo_start(&b), 0);
	memcpy(bad, blob, sizeof(bad));
	bad[0] ^= 1; /* magic */
	CHECK_EQ(uvirtio_mmio_dev_load(b.m, bad, sizeof(bad)), -EINVAL);
	memcpy(bad, blob, sizeof(bad));
	bad[8] = 2; /* queue count */
	CHECK_EQ(uvirtio_mmio_dev_load(b.m, bad, sizeof(bad)), -EINVAL);
	memcpy(bad, blob, sizeof(bad));
	bad[24] = 4; /* an InterruptStatus bit that does not exist */
	CHECK_EQ(uvirtio_mmio_dev_load(b.m, bad, sizeof(bad)), -EINVAL);
	CHECK_EQ(uvirtio_mmio_dev_load(b.m, blob, sizeof(blob) - 1), -EINVAL);
	CHECK_EQ(b.irqs, 0);
	CHECK_EQ(rd(b.m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);

	CHECK_EQ(uvirtio_mmio_dev_load(b.m, blob, sizeof(blob)), 0);
	CHECK_EQ(rd(b.m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(b.irqs, 1); /* the line is up in the new process too */
	CHECK_EQ(uvirtio_mmio_dev_save(b.m, again, sizeof(again)), sizeof(again));
	CHECK(!memcmp(blob, again, sizeof(blob)));
	solo_stop(&a);
	solo_stop(&b);
}

/* ------------------------------------------------------------------ */
/* The driver side against fake buses: a hostile or odd device. */

struct fake_bus {
	uint32_t magic, version, device_id, num_max, queue_reset;
	unsigned reads;
};

static int fake_read(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t *v)
{
	struct fake_bus *f = opaque;

	(void)space;
	(void)size;
	f->reads++;
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE: *v = f->magic; break;
	case VIRTIO_MMIO_VERSION: *v = f->version; break;
	case VIRTIO_MMIO_DEVICE_ID: *v = f->device_id; break;
	case VIRTIO_MMIO_QUEUE_NUM_MAX: *v = f->num_max; break;
	case VIRTIO_MMIO_QUEUE_RESET: *v = f->queue_reset; break;
	default: *v = 0;
	}
	return 0;
}

static int fake_write(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t v)
{
	(void)opaque, (void)space, (void)off, (void)size, (void)v;
	return 0;
}

static struct uvirtio_dma fake_dma;

static int fake_create(struct fake_bus *f, struct uvirtio_transport **t, int *irq_fd)
{
	struct uvirtio_regbus bus = { .read = fake_read, .write = fake_write, .opaque = f };

	*irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return uvirtio_mmio_drv_create(t, &bus, &fake_dma, *irq_fd);
}

static const struct fake_bus good_fake = {
	.magic = UVIRTIO_MMIO_MAGIC, .version = 2, .device_id = 4, .num_max = 64,
};

static void test_mmio_driver_refuses_legacy_version(void)
{
	struct fake_bus f = good_fake;
	struct uvirtio_transport *t = NULL;
	int fd;

	f.version = 1;
	CHECK_EQ(fake_create(&f, &t, &fd), -EPROTONOSUPPORT);
	close(fd);
	f.version = 3;
	CHECK_EQ(fake_create(&f, &t, &fd), -EPROTONOSUPPORT);
	close(fd);
}

static void test_mmio_driver_refuses_bad_magic(void)
{
	struct fake_bus f = good_fake;
	struct uvirtio_transport *t = NULL;
	int fd;

	f.magic = 0x74726977;
	CHECK_EQ(fake_create(&f, &t, &fd), -ENODEV);
	close(fd);
}

static void test_mmio_driver_refuses_device_id_0(void)
{
	struct fake_bus f = good_fake;
	struct uvirtio_transport *t = NULL;
	int fd;

	f.device_id = 0;
	CHECK_EQ(fake_create(&f, &t, &fd), -ENODEV);
	close(fd);
}

static void test_mmio_driver_refuses_queue_num_max_not_a_power_of_two_or_too_big(void)
{
	static const uint32_t bad[] = { 3, 100, 65536, 0x80000000u, 0xffffffffu };
	struct fake_bus f = good_fake;
	struct uvirtio_transport *t;
	struct uvirtio_queue_layout l = { .num = 64 };
	unsigned max = 1;
	int fd;

	CHECK_EQ(fake_create(&f, &t, &fd), 0);
	CHECK_EQ(t->ops->queue_max_size(t, 0, &max), 0);
	CHECK_EQ(max, 64);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f.num_max = bad[i];
		CHECK_EQ(t->ops->queue_max_size(t, 0, &max), -EIO);
		CHECK_EQ(max, 0);
		CHECK_EQ(t->ops->queue_enable(t, 0, &l), -EIO);
	}
	f.num_max = 0;
	CHECK_EQ(t->ops->queue_max_size(t, 0, &max), 0);
	CHECK_EQ(max, 0);
	CHECK_EQ(t->ops->queue_enable(t, 0, &l), -ENOENT);
	uvirtio_mmio_drv_destroy(t);
	close(fd);
}

static void test_mmio_driver_queue_reset_times_out_when_device_never_clears_it(void)
{
	struct fake_bus f = good_fake;
	struct uvirtio_transport *t;
	unsigned before;
	int fd;

	f.queue_reset = 1;
	CHECK_EQ(fake_create(&f, &t, &fd), 0);
	before = f.reads;
	CHECK_EQ(t->ops->queue_reset(t, 0), -ETIMEDOUT);
	/* Bounded: it gave up after a fixed number of reads. */
	CHECK(f.reads - before <= 100000);
	uvirtio_mmio_drv_destroy(t);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* Both sides: the pair. */

struct rng_env {
	struct uvirtio_mmio_pair *p;
	struct uvirtio_rng_dev rng;
	struct uvirtio_transport *t;
	struct uvirtio_mmio_dev *m;
};

static int rng_env_start(struct rng_env *e)
{
	int ret;

	memset(e, 0, sizeof(*e));
	ret = uvirtio_mmio_pair_create(&e->p, NULL);
	if (!ret)
		ret = uvirtio_rng_dev_init(&e->rng, uvirtio_mmio_pair_mem(e->p));
	if (!ret)
		ret = uvirtio_mmio_pair_start(e->p, uvirtio_rng_dev_device(&e->rng));
	if (!ret) {
		e->t = uvirtio_mmio_pair_transport(e->p);
		e->m = uvirtio_mmio_pair_model(e->p);
	}
	return ret;
}

static void rng_env_stop(struct rng_env *e)
{
	uvirtio_mmio_pair_destroy(e->p);
	uvirtio_rng_dev_destroy(&e->rng);
}

static void test_mmio_rng_over_pair_reads_random_bytes(void)
{
	static unsigned char a[65536], b[sizeof(a)];
	struct uvirtio_rng_dev_stats st;
	struct uvirtio_rng_drv drv;
	struct rng_env e;

	CHECK_EQ(rng_env_start(&e), 0);
	CHECK_EQ(uvirtio_mmio_drv_device_id(e.t), 4);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, e.t, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 10000), sizeof(a));
	CHECK_EQ(uvirtio_rng_drv_read(&drv, b, sizeof(b), 10000), sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)));
	uvirtio_rng_dev_stats(&e.rng, &st);
	CHECK(st.bytes >= 2 * sizeof(a));
	uvirtio_rng_drv_remove(&drv);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_STATUS), 0);
	rng_env_stop(&e);
}

static void test_mmio_suspend_sets_suspend_and_clears_driver_ok(void)
{
	static unsigned char a[4096];
	struct uvirtio_rng_drv drv;
	struct rng_env e;
	uint32_t status;

	CHECK_EQ(rng_env_start(&e), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, e.t, UVIRTIO_BIT(VIRTIO_F_SUSPEND)), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 10000), sizeof(a));
	/* While running the device end cannot be swapped. */
	{
		struct uvirtio_regbus bus;

		uvirtio_mmio_dev_bus(e.m, &bus);
		CHECK_EQ(uvirtio_mmio_drv_set_bus(e.t, &bus), -EBUSY);
		CHECK_EQ(uvirtio_driver_suspend(uvirtio_rng_drv_driver(&drv), 10000), 0);
		status = rd(e.m, VIRTIO_MMIO_STATUS);
		CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
		CHECK(!(status & S_DRIVER_OK));
		/* Queues stay enabled as the driver sees them. */
		CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_READY), 1);
		CHECK_EQ(uvirtio_mmio_drv_set_bus(e.t, &bus), 0);
	}
	CHECK_EQ(uvirtio_driver_resume(uvirtio_rng_drv_driver(&drv), 10000), 0);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_STATUS), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	{
		struct uvirtio_regbus bus;

		/* Resumed: running again, so no swap. */
		uvirtio_mmio_dev_bus(e.m, &bus);
		CHECK_EQ(uvirtio_mmio_drv_set_bus(e.t, &bus), -EBUSY);
	}
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 10000), sizeof(a));
	uvirtio_rng_drv_remove(&drv);
	rng_env_stop(&e);
}

/* A regbus that passes every access on and writes it down. */
struct access {
	char op; /* 'r' or 'w' */
	uint32_t off, value;
};

struct recorder {
	struct uvirtio_regbus inner;
	pthread_mutex_t lock;
	struct access log[4096];
	unsigned n;
};

static void rec_add(struct recorder *r, char op, uint64_t off, uint32_t v)
{
	pthread_mutex_lock(&r->lock);
	if (r->n < sizeof(r->log) / sizeof(r->log[0]))
		r->log[r->n++] = (struct access){ op, (uint32_t)off, v };
	pthread_mutex_unlock(&r->lock);
}

static int rec_read(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t *v)
{
	struct recorder *r = opaque;
	int ret = r->inner.read(r->inner.opaque, space, off, size, v);

	/* The interrupt thread's accesses are not the driver's sequence. */
	if (off != VIRTIO_MMIO_INTERRUPT_STATUS)
		rec_add(r, 'r', off, *v);
	return ret;
}

static int rec_write(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t v)
{
	struct recorder *r = opaque;

	if (off != VIRTIO_MMIO_INTERRUPT_ACK)
		rec_add(r, 'w', off, v);
	return r->inner.write(r->inner.opaque, space, off, size, v);
}

/* The index of the first access matching after @from, or -1. */
static int find(const struct recorder *r, unsigned from, char op, uint32_t off)
{
	for (unsigned i = from; i < r->n; i++)
		if (r->log[i].op == op && r->log[i].off == off)
			return (int)i;
	return -1;
}

static void signal_fd(void *opaque)
{
	uint64_t one = 1;

	(void)!write(*(int *)opaque, &one, sizeof(one));
}

static void test_mmio_driver_access_sequence_follows_linux(void)
{
	static struct recorder r;
	struct uvirtio_regbus bus;
	struct uvirtio_transport *t;
	struct uvirtio_rng_drv drv;
	struct uvirtio_rng_dev rng;
	struct uvirtio_mmio_dev *m;
	struct uvirtio_shared_mem sm;
	unsigned char a[64];
	int irq_fd, i, sel;
	struct uvirtio_mmio_dev_config mc = { .irq = signal_fd, .opaque = &irq_fd };

	irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(irq_fd >= 0);
	CHECK_EQ(uvirtio_shared_mem_create(&sm, "test-mmio", 0, 0), 0);
	CHECK_EQ(uvirtio_rng_dev_init(&rng, uvirtio_shared_mem_device_view(&sm)), 0);
	CHECK_EQ(uvirtio_mmio_dev_create(&m, uvirtio_rng_dev_device(&rng), &mc), 0);
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.lock, NULL);
	uvirtio_mmio_dev_bus(m, &r.inner);
	bus = (struct uvirtio_regbus){ .read = rec_read, .write = rec_write, .opaque = &r };
	CHECK_EQ(uvirtio_mmio_drv_create(&t, &bus, uvirtio_shared_mem_driver_view(&sm), irq_fd), 0);
	/* virtio_mmio_probe(): magic, version, device ID, in that order. */
	CHECK(r.n >= 3);
	CHECK(r.log[0].op == 'r' && r.log[0].off == VIRTIO_MMIO_MAGIC_VALUE);
	CHECK(r.log[1].op == 'r' && r.log[1].off == VIRTIO_MMIO_VERSION);
	CHECK(r.log[2].op == 'r' && r.log[2].off == VIRTIO_MMIO_DEVICE_ID);

	CHECK_EQ(uvirtio_rng_drv_probe(&drv, t, 0), 0);
	/* The first status write of a probe is 0: a reset. */
	i = find(&r, 0, 'w', VIRTIO_MMIO_STATUS);
	CHECK(i >= 0);
	CHECK_EQ(r.log[i].value, 0);
	/* Features: the device's high word first, the driver's low word first. */
	i = find(&r, 0, 'w', VIRTIO_MMIO_DEVICE_FEATURES_SEL);
	CHECK(i >= 0 && r.log[i].value == 1);
	i = find(&r, 0, 'w', VIRTIO_MMIO_DRIVER_FEATURES_SEL);
	CHECK(i >= 0 && r.log[i].value == 0);
	CHECK(r.log[i + 1].op == 'w' && r.log[i + 1].off == VIRTIO_MMIO_DRIVER_FEATURES);
	/* Set-up of queue 0: select, QueueReady must read 0, QueueNumMax, then
	 * QueueNum and the addresses, and QueueReady = 1 last. */
	sel = find(&r, 0, 'w', VIRTIO_MMIO_QUEUE_NUM);
	CHECK(sel > 0);
	i = find(&r, 0, 'r', VIRTIO_MMIO_QUEUE_READY);
	CHECK(i > 0 && i < sel && r.log[i].value == 0);
	CHECK(find(&r, 0, 'w', VIRTIO_MMIO_QUEUE_SEL) < i);
	CHECK(find(&r, (unsigned)i, 'r', VIRTIO_MMIO_QUEUE_NUM_MAX) < sel);
	i = find(&r, (unsigned)sel, 'w', VIRTIO_MMIO_QUEUE_READY);
	CHECK(i > find(&r, (unsigned)sel, 'w', VIRTIO_MMIO_QUEUE_USED_HIGH));
	CHECK_EQ(r.log[i].value, 1);

	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 10000), sizeof(a));
	/* A kick is the queue's index written to QueueNotify. */
	i = find(&r, 0, 'w', VIRTIO_MMIO_QUEUE_NOTIFY);
	CHECK(i > 0 && r.log[i].value == 0);
	uvirtio_rng_drv_remove(&drv);
	/* Removal is a status write of 0, and no queue is ever disabled by a
	 * write of 0 to QueueReady. */
	pthread_mutex_lock(&r.lock);
	CHECK(r.log[r.n - 1].op == 'w' && r.log[r.n - 1].off == VIRTIO_MMIO_STATUS &&
	      r.log[r.n - 1].value == 0);
	for (unsigned k = 0; k < r.n; k++)
		CHECK(!(r.log[k].op == 'w' && r.log[k].off == VIRTIO_MMIO_QUEUE_READY && r.log[k].value == 0));
	pthread_mutex_unlock(&r.lock);
	uvirtio_mmio_drv_destroy(t);
	uvirtio_mmio_dev_destroy(m);
	uvirtio_rng_dev_destroy(&rng);
	uvirtio_shared_mem_destroy(&sm);
	close(irq_fd);
	pthread_mutex_destroy(&r.lock);
}

static void test_mmio_queue_reset_ignored_without_ring_reset(void)
{
	struct uvirtio_driver drv;
	struct rng_env e;

	CHECK_EQ(rng_env_start(&e), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, 0), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	wr(e.m, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(e.m, VIRTIO_MMIO_QUEUE_RESET, 1);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_RESET), 0);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_READY), 1);
	/* The transport sees the device kept the queue. */
	CHECK_EQ(e.t->ops->queue_reset(e.t, 0), -EIO);
	CHECK(uvirtio_device_queue_ready(uvirtio_rng_dev_device(&e.rng), 0));
	uvirtio_driver_remove(&drv, NULL, NULL);
	rng_env_stop(&e);
}

static void test_mmio_reset_is_complete_when_status_write_returns(void)
{
	static unsigned char a[4096];
	struct uvirtio_rng_drv drv;
	struct rng_env e;
	unsigned resets;

	CHECK_EQ(rng_env_start(&e), 0);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, e.t, 0), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 10000), sizeof(a));
	resets = resets_of(uvirtio_rng_dev_device(&e.rng));
	wr(e.m, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(e.m, VIRTIO_MMIO_STATUS, 0);
	/* Nothing to wait for: the device is reset and the queue gone. */
	CHECK_EQ(resets_of(uvirtio_rng_dev_device(&e.rng)), resets + 1);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_STATUS), 0);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK(!uvirtio_device_queue_ready(uvirtio_rng_dev_device(&e.rng), 0));
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* And the driver can probe again. */
	uvirtio_rng_drv_remove(&drv);
	CHECK_EQ(uvirtio_rng_drv_probe(&drv, e.t, 0), 0);
	CHECK_EQ(uvirtio_rng_drv_read(&drv, a, sizeof(a), 10000), sizeof(a));
	uvirtio_rng_drv_remove(&drv);
	rng_env_stop(&e);
}

/* A device type that stops after one look and asks to be called again
 * (its budget spent), as rng does under load. */
struct lazy {
	struct uvirtio_device dev;
	unsigned calls; /* atomic */
	int done_fd;    /* signalled on the second call */
};

static void lazy_notify(struct uvirtio_device *dev, unsigned index)
{
	struct lazy *l = uvirtio_device_priv(dev);

	if (__atomic_add_fetch(&l->calls, 1, __ATOMIC_ACQ_REL) == 1)
		uvirtio_device_reschedule(dev, index);
	else
		signal_fd(&l->done_fd);
}

static const struct uvirtio_device_ops lazy_ops = {
	.name = "lazy", .device_id = 0xfff3, .num_queues = 1, .queue_max_size = 16,
	.queue_notify = lazy_notify,
};

static void test_mmio_reschedule_without_kick_fds_is_served_by_the_work_fd(void)
{
	struct uvirtio_mmio_pair *p;
	struct uvirtio_driver drv;
	struct lazy l = { .done_fd = -1 };
	struct pollfd pf;

	l.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(l.done_fd >= 0);
	CHECK_EQ(uvirtio_mmio_pair_create(&p, NULL), 0);
	CHECK_EQ(uvirtio_device_init(&l.dev, &lazy_ops, &l, NULL, 0, uvirtio_mmio_pair_mem(p)), 0);
	CHECK_EQ(uvirtio_mmio_pair_start(p, &l.dev), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, uvirtio_mmio_pair_transport(p), 0), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	/* DRIVER_OK looks at the queue once, inside the Status write, under
	 * the model's lock: the reschedule cannot be served there. */
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	pf = (struct pollfd){ .fd = l.done_fd, .events = POLLIN };
	CHECK_EQ(poll(&pf, 1, 10000), 1);
	CHECK(__atomic_load_n(&l.calls, __ATOMIC_ACQUIRE) >= 2);
	uvirtio_driver_remove(&drv, NULL, NULL);
	uvirtio_mmio_pair_destroy(p);
	uvirtio_device_destroy(&l.dev);
	close(l.done_fd);
}

/* ------------------------------------------------------------------ */
/* blk over the pair: queue threads, kick fds, a file backend. */

#define DISK_BYTES (4u << 20)

struct blk_env {
	struct uvirtio_mmio_pair *p;
	struct uvirtio_blk_dev *dev;
	struct uvirtio_transport *t;
	struct uvirtio_mmio_dev *m;
	char path[64];
	int fd;
};

static int blk_env_start(struct blk_env *e, unsigned queues)
{
	struct uvirtio_blk_dev_config cfg = {
		.backend = UVIRTIO_BLK_BACKEND_FILE, .num_queues = queues, .poll_us = -1,
	};
	int ret;

	memset(e, 0, sizeof(*e));
	strcpy(e->path, "/tmp/uvirtio-mmio-XXXXXX");
	e->fd = mkstemp(e->path);
	if (e->fd < 0 || ftruncate(e->fd, DISK_BYTES))
		return -errno;
	cfg.path = e->path;
	e->dev = calloc(1, sizeof(*e->dev));
	if (!e->dev)
		return -ENOMEM;
	ret = uvirtio_mmio_pair_create(&e->p, NULL);
	if (!ret)
		ret = uvirtio_blk_dev_init(e->dev, &cfg, uvirtio_mmio_pair_mem(e->p));
	unlink(e->path);
	if (!ret)
		ret = uvirtio_mmio_pair_start(e->p, uvirtio_blk_dev_device(e->dev));
	if (!ret) {
		e->t = uvirtio_mmio_pair_transport(e->p);
		e->m = uvirtio_mmio_pair_model(e->p);
	}
	return ret;
}

static void blk_env_stop(struct blk_env *e)
{
	uvirtio_mmio_pair_destroy(e->p);
	uvirtio_blk_dev_destroy(e->dev);
	free(e->dev);
	if (e->fd >= 0)
		close(e->fd);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 31 + i * 13 + (i >> 9));
}

static void test_mmio_blk_over_pair_writes_and_reads_back(void)
{
	static const struct uvirtio_blk_drv_opts two = { .num_queues = 2 };
	struct uvirtio_blk_drv b;
	unsigned char *w, *r, *got;
	struct blk_env e;
	uint64_t cap = 0;

	CHECK_EQ(blk_env_start(&e, 2), 0);
	CHECK_EQ(uvirtio_mmio_drv_device_id(e.t), VIRTIO_ID_BLOCK);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &two), 0);
	/* Config read through 32-bit accesses: capacity is a 64-bit field. */
	CHECK_EQ(uvirtio_blk_drv_capacity(&b), DISK_BYTES / 512);
	CHECK_EQ(e.t->ops->get_config(e.t, 0, &cap, 8), 0);
	CHECK_EQ(cap, DISK_BYTES / 512);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 2);
	w = uvirtio_blk_drv_alloc_buf(&b, 65536);
	r = uvirtio_blk_drv_alloc_buf(&b, 65536);
	got = malloc(65536);
	CHECK(w && r && got);
	for (unsigned pass = 0; pass < 8; pass++) {
		uint64_t sector = pass * 129;
		size_t len = 512u << (pass % 8);

		fill(w, len, pass + 1);
		CHECK_EQ(uvirtio_blk_drv_write(&b, pass % 2, sector, w, len, 10000), 0);
		memset(r, 0, len);
		CHECK_EQ(uvirtio_blk_drv_read(&b, (pass + 1) % 2, sector, r, len, 10000), 0);
		CHECK(!memcmp(w, r, len));
		CHECK_EQ(pread(e.fd, got, len, (off_t)(sector * 512)), (ssize_t)len);
		CHECK(!memcmp(w, got, len));
	}
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 0, 10000), 0);
	free(got);
	uvirtio_blk_drv_free_buf(&b, w);
	uvirtio_blk_drv_free_buf(&b, r);
	uvirtio_blk_drv_remove(&b);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_STATUS), 0);
	blk_env_stop(&e);
}

/* A blk request made by hand on queue @qi of the driver core: header, data,
 * status byte; waits for it. */
struct blk_io {
	struct virtio_blk_outhdr *hdr;
	unsigned char *data;
	unsigned char *status;
};

static int blk_io_alloc(struct uvirtio_dma *dma, struct blk_io *io, size_t len)
{
	io->hdr = uvirtio_dma_alloc(dma, sizeof(*io->hdr), 16);
	io->data = uvirtio_dma_alloc(dma, len, 512);
	io->status = uvirtio_dma_alloc(dma, 1, 1);
	return io->hdr && io->data && io->status ? 0 : -ENOMEM;
}

static int blk_io(struct uvirtio_driver *drv, unsigned qi, struct blk_io *io, uint32_t type,
		  uint64_t sector, size_t len)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(drv, qi);
	struct iovec hdr = { io->hdr, sizeof(*io->hdr) }, data = { io->data, len };
	struct iovec st = { io->status, 1 };
	struct iovec out[2] = { hdr, data }, in[2] = { data, st };
	void *tok;
	uint32_t got;
	int ret;

	io->hdr->type = type;
	io->hdr->ioprio = 0;
	io->hdr->sector = sector;
	*io->status = 0xff;
	if (type == VIRTIO_BLK_T_OUT)
		ret = uvirtio_drvq_add(q, out, 2, &st, 1, io);
	else
		ret = uvirtio_drvq_add(q, &hdr, 1, in, 2, io);
	if (!ret)
		ret = uvirtio_drvq_kick(q);
	while (!ret) {
		ret = uvirtio_drvq_get(q, &tok, &got);
		if (ret == 1)
			return tok == io && *io->status == VIRTIO_BLK_S_OK ? 0 : -EIO;
		if (ret)
			return ret;
		ret = uvirtio_driver_wait(drv, qi, 10000);
		ret = ret == 1 ? 0 : ret == 0 ? -ETIMEDOUT : ret;
	}
	return ret;
}

struct runner {
	struct uvirtio_driver *drv;
	struct blk_io io;
	unsigned rounds;
	bool stop; /* atomic */
	int err;
};

/* Writes and reads back on queue 1 until told to stop. */
static void *run_queue_1(void *arg)
{
	struct runner *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		unsigned n = r->rounds++;

		fill(r->io.data, 4096, n);
		r->err = blk_io(r->drv, 1, &r->io, VIRTIO_BLK_T_OUT, 64 + 8 * (n % 16), 4096);
		if (!r->err) {
			memset(r->io.data, 0, 4096);
			r->err = blk_io(r->drv, 1, &r->io, VIRTIO_BLK_T_IN, 64 + 8 * (n % 16), 4096);
		}
		if (!r->err) {
			unsigned char want[4096];

			fill(want, sizeof(want), n);
			if (memcmp(want, r->io.data, sizeof(want)))
				r->err = -EIO;
		}
		if (r->err)
			break;
	}
	return NULL;
}

static int blk_probe_core(struct blk_env *e, struct uvirtio_driver *drv)
{
	int ret = uvirtio_driver_probe(drv, e->t, UVIRTIO_BIT(VIRTIO_F_RING_RESET) |
							   UVIRTIO_BIT(VIRTIO_BLK_F_MQ));

	if (!ret)
		ret = uvirtio_driver_find_vqs(drv, 2, (const unsigned[]){ 64, 64 });
	if (!ret)
		ret = uvirtio_driver_ready(drv);
	return ret;
}

static void test_mmio_queue_reset_register_resets_only_that_queue(void)
{
	struct uvirtio_driver drv;
	struct uvirtio_queue_layout l;
	struct blk_io io;
	struct blk_env e;

	CHECK_EQ(blk_env_start(&e, 2), 0);
	CHECK_EQ(blk_probe_core(&e, &drv), 0);
	CHECK(uvirtio_driver_has_feature(&drv, VIRTIO_F_RING_RESET));
	CHECK_EQ(blk_io_alloc(e.t->ops->dma(e.t), &io, 4096), 0);
	CHECK_EQ(blk_io(&drv, 0, &io, VIRTIO_BLK_T_OUT, 0, 4096), 0);
	/* Registers staged for queue 0 before the reset... */
	wr(e.m, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(e.m, VIRTIO_MMIO_QUEUE_RESET, 1);
	/* ...are done with when the write returns. */
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_RESET), 0);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_READY), 0);
	uvirtio_device_queue_layout(uvirtio_blk_dev_device(e.dev), 0, &l);
	CHECK_EQ(l.num, 0);
	wr(e.m, VIRTIO_MMIO_QUEUE_SEL, 1);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_READY), 1);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_STATUS), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	/* Queue 1 serves on. */
	CHECK_EQ(blk_io(&drv, 1, &io, VIRTIO_BLK_T_IN, 0, 4096), 0);
	/* A fresh QueueReady = 1 with nothing staged is refused: the staged
	 * values were forgotten with the queue. */
	wr(e.m, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(e.m, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_QUEUE_READY), 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	blk_env_stop(&e);
}

static void test_mmio_queue_reset_and_resize_while_other_queue_runs(void)
{
	struct uvirtio_driver drv;
	struct uvirtio_queue_layout l;
	struct runner run = { 0 };
	struct blk_io io;
	struct blk_env e;
	pthread_t th;

	CHECK_EQ(blk_env_start(&e, 2), 0);
	CHECK_EQ(blk_probe_core(&e, &drv), 0);
	CHECK_EQ(blk_io_alloc(e.t->ops->dma(e.t), &io, 4096), 0);
	run.drv = &drv;
	CHECK_EQ(blk_io_alloc(e.t->ops->dma(e.t), &run.io, 4096), 0);
	CHECK_EQ(pthread_create(&th, NULL, run_queue_1, &run), 0);
	for (unsigned k = 0; k < 6; k++) {
		unsigned size = k % 2 ? 64 : 16;

		fill(io.data, 4096, 100 + k);
		CHECK_EQ(blk_io(&drv, 0, &io, VIRTIO_BLK_T_OUT, 8 * k, 4096), 0);
		CHECK_EQ(uvirtio_driver_queue_reset(&drv, 0, NULL, NULL), 0);
		CHECK_EQ(uvirtio_driver_queue_enable(&drv, 0, size), 0);
		uvirtio_device_queue_layout(uvirtio_blk_dev_device(e.dev), 0, &l);
		CHECK_EQ(l.num, size);
		memset(io.data, 0, 4096);
		CHECK_EQ(blk_io(&drv, 0, &io, VIRTIO_BLK_T_IN, 8 * k, 4096), 0);
		{
			unsigned char want[4096];

			fill(want, sizeof(want), 100 + k);
			CHECK(!memcmp(want, io.data, sizeof(want)));
		}
	}
	__atomic_store_n(&run.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	CHECK_EQ(run.err, 0);
	CHECK(run.rounds > 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	blk_env_stop(&e);
}

static void test_mmio_blk_reset_with_requests_in_flight_is_complete_at_once(void)
{
	struct uvirtio_driver drv;
	struct blk_io io[4];
	struct blk_env e;
	struct uvirtio_drvq *q;

	CHECK_EQ(blk_env_start(&e, 1), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, 0), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	q = uvirtio_driver_vq(&drv, 0);
	for (unsigned i = 0; i < 4; i++) {
		struct iovec out[2], st;

		CHECK_EQ(blk_io_alloc(e.t->ops->dma(e.t), &io[i], 65536), 0);
		io[i].hdr->type = VIRTIO_BLK_T_OUT;
		io[i].hdr->sector = 128 * i;
		out[0] = (struct iovec){ io[i].hdr, sizeof(*io[i].hdr) };
		out[1] = (struct iovec){ io[i].data, 65536 };
		st = (struct iovec){ io[i].status, 1 };
		CHECK_EQ(uvirtio_drvq_add(q, out, 2, &st, 1, &io[i]), 0);
	}
	CHECK_EQ(uvirtio_drvq_kick(q), 0);
	/* The write of 0 returns with every queue thread stopped. */
	CHECK_EQ(e.t->ops->reset(e.t), 0);
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_STATUS), 0);
	CHECK(!uvirtio_device_queue_started(uvirtio_blk_dev_device(e.dev), 0));
	CHECK_EQ(rd(e.m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	uvirtio_driver_remove(&drv, NULL, NULL);
	blk_env_stop(&e);
}

/* ------------------------------------------------------------------ */
/* Packed ring and NOTIFICATION_DATA over the pair. */

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define ND UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)

#define NOTES 4096 /* as many as the recorder keeps */

/* An rng read through a recording bus with @features asked for; the values
 * written to QueueNotify in @notes (up to NOTES), their count in *@n, what the
 * driver's queue would send next in *@next and what the device's queue 0
 * recorded in *@recorded (-1: nothing). Returns 0 or a negative errno. */
static int rng_notifications(uint64_t features, uint64_t *negotiated, uint32_t *notes,
			     unsigned *n, uint32_t *next, int *recorded)
{
	static struct recorder r;
	struct uvirtio_regbus bus;
	struct uvirtio_transport *t;
	struct uvirtio_rng_drv drv;
	struct uvirtio_rng_dev rng;
	struct uvirtio_mmio_dev *m;
	struct uvirtio_shared_mem sm;
	unsigned char a[4096];
	uint16_t avail;
	int irq_fd, ret;
	struct uvirtio_mmio_dev_config mc = { .irq = signal_fd, .opaque = &irq_fd };

	irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (irq_fd < 0 || uvirtio_shared_mem_create(&sm, "test-mmio", 0, 0))
		return -ENOMEM;
	ret = uvirtio_rng_dev_init(&rng, uvirtio_shared_mem_device_view(&sm));
	if (!ret)
		ret = uvirtio_mmio_dev_create(&m, uvirtio_rng_dev_device(&rng), &mc);
	if (ret)
		return ret;
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.lock, NULL);
	uvirtio_mmio_dev_bus(m, &r.inner);
	bus = (struct uvirtio_regbus){ .read = rec_read, .write = rec_write, .opaque = &r };
	ret = uvirtio_mmio_drv_create(&t, &bus, uvirtio_shared_mem_driver_view(&sm), irq_fd);
	if (!ret)
		ret = uvirtio_rng_drv_probe(&drv, t, features);
	if (!ret) {
		/* Several reads: the ring of 64 goes round more than once. */
		for (unsigned k = 0; k < 100 && !ret; k++)
			ret = uvirtio_rng_drv_read(&drv, a, sizeof(a), 10000) == sizeof(a) ? 0 : -EIO;
		*negotiated = uvirtio_driver_features(uvirtio_rng_drv_driver(&drv));
		*next = uvirtio_drvq_notification_data(uvirtio_driver_vq(uvirtio_rng_drv_driver(&drv), 0));
		*recorded = uvirtio_devq_notified_avail(uvirtio_device_queue(uvirtio_rng_dev_device(&rng), 0), &avail)
				    ? avail
				    : -1;
		pthread_mutex_lock(&r.lock);
		*n = 0;
		for (unsigned k = 0; k < r.n; k++)
			if (r.log[k].op == 'w' && r.log[k].off == VIRTIO_MMIO_QUEUE_NOTIFY && *n < NOTES)
				notes[(*n)++] = r.log[k].value;
		/* A full log would have lost the last notifications. */
		if (r.n == sizeof(r.log) / sizeof(r.log[0]))
			ret = -E2BIG;
		pthread_mutex_unlock(&r.lock);
		uvirtio_rng_drv_remove(&drv);
	}
	uvirtio_mmio_drv_destroy(t);
	uvirtio_mmio_dev_destroy(m);
	uvirtio_rng_dev_destroy(&rng);
	uvirtio_shared_mem_destroy(&sm);
	close(irq_fd);
	pthread_mutex_destroy(&r.lock);
	return ret;
}

static void test_mmio_notification_data_is_written_to_queue_notify_with_packed_ring(void)
{
	static uint32_t notes[NOTES];
	uint32_t next;
	uint64_t features = 0;
	unsigned n = 0;
	int recorded;

	CHECK_EQ(rng_notifications(PACKED | ND, &features, notes, &n, &next, &recorded), 0);
	CHECK((features & (PACKED | ND)) == (PACKED | ND));
	CHECK(n > 0);
	/* vm_notify_with_data(): all 32 bits, queue 0 in bits 0-15 and the
	 * next available position with its wrap counter above, as the
	 * device recorded it. */
	for (unsigned k = 0; k < n; k++)
		CHECK_EQ(notes[k] & 0xffff, 0);
	CHECK(notes[0] >> 16 != 0);
	CHECK_EQ(notes[n - 1], next);
	CHECK_EQ(recorded, (int)(next >> 16));
	/* The ring went round: some notification carries wrap counter 0. */
	{
		bool wrapped = false;

		for (unsigned k = 0; k < n; k++)
			wrapped |= !(notes[k] & 0x80000000u);
		CHECK(wrapped);
	}
}

static void test_mmio_without_notification_data_queue_notify_is_the_queue_index(void)
{
	static uint32_t notes[NOTES];
	uint32_t next;
	uint64_t features = 0;
	unsigned n = 0;
	int recorded;

	CHECK_EQ(rng_notifications(PACKED, &features, notes, &n, &next, &recorded), 0);
	CHECK(features & PACKED);
	CHECK(!(features & ND));
	CHECK(n > 0);
	for (unsigned k = 0; k < n; k++)
		CHECK_EQ(notes[k], 0);
	CHECK_EQ(recorded, -1);
}

static void test_mmio_blk_packed_ring_with_notification_data_kicks_queue_threads(void)
{
	struct uvirtio_driver drv;
	struct blk_io io;
	struct blk_env e;

	/* blk serves each queue on its thread, kicked through an eventfd by
	 * the model: the index must come from bits 0-15 there too. */
	CHECK_EQ(blk_env_start(&e, 2), 0);
	CHECK_EQ(uvirtio_driver_probe(&drv, e.t, PACKED | ND | UVIRTIO_BIT(VIRTIO_BLK_F_MQ)), 0);
	CHECK((uvirtio_driver_features(&drv) & (PACKED | ND)) == (PACKED | ND));
	/* Queue 1 of 5 (not a power of 2), so bits 0-15 are not 0. */
	CHECK_EQ(uvirtio_driver_find_vqs(&drv, 2, (const unsigned[]){ 5, 5 }), 0);
	CHECK_EQ(uvirtio_driver_ready(&drv), 0);
	CHECK_EQ(blk_io_alloc(uvirtio_drvq_dma(uvirtio_driver_vq(&drv, 1)), &io, 4096), 0);
	for (unsigned n = 0; n < 12; n++) {
		unsigned char want[4096];

		fill(io.data, 4096, n);
		CHECK_EQ(blk_io(&drv, n % 2, &io, VIRTIO_BLK_T_OUT, 8 * n, 4096), 0);
		memset(io.data, 0, 4096);
		CHECK_EQ(blk_io(&drv, (n + 1) % 2, &io, VIRTIO_BLK_T_IN, 8 * n, 4096), 0);
		fill(want, sizeof(want), n);
		CHECK(!memcmp(want, io.data, sizeof(want)));
	}
	uvirtio_driver_remove(&drv, NULL, NULL);
	blk_env_stop(&e);
}

TEST_MAIN(T(test_mmio_identity_registers_read_as_spec),
	  T(test_mmio_unaligned_access_is_ignored),
	  T(test_mmio_interrupt_status_set_by_hooks_and_cleared_by_ack),
	  T(test_mmio_reset_clears_the_models_registers),
	  T(test_mmio_driver_features_written_in_halves),
	  T(test_mmio_save_load_round_trip_and_refuses_bad_blobs),
	  T(test_mmio_driver_refuses_legacy_version),
	  T(test_mmio_driver_refuses_bad_magic),
	  T(test_mmio_driver_refuses_device_id_0),
	  T(test_mmio_driver_refuses_queue_num_max_not_a_power_of_two_or_too_big),
	  T(test_mmio_driver_queue_reset_times_out_when_device_never_clears_it),
	  T(test_mmio_rng_over_pair_reads_random_bytes),
	  T(test_mmio_suspend_sets_suspend_and_clears_driver_ok),
	  T(test_mmio_driver_access_sequence_follows_linux),
	  T(test_mmio_queue_reset_ignored_without_ring_reset),
	  T(test_mmio_reset_is_complete_when_status_write_returns),
	  T(test_mmio_reschedule_without_kick_fds_is_served_by_the_work_fd),
	  T(test_mmio_blk_over_pair_writes_and_reads_back),
	  T(test_mmio_queue_reset_register_resets_only_that_queue),
	  T(test_mmio_queue_reset_and_resize_while_other_queue_runs),
	  T(test_mmio_blk_reset_with_requests_in_flight_is_complete_at_once),
	  T(test_mmio_notification_data_is_written_to_queue_notify_with_packed_ring),
	  T(test_mmio_without_notification_data_queue_notify_is_the_queue_index),
	  T(test_mmio_blk_packed_ring_with_notification_data_kicks_queue_threads))
