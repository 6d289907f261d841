// SPDX-License-Identifier: MIT
/* virtio-mmio version 2: the register model, the driver-side transport, and
 * both together with rng over the pair. blk over the pair, queue reset while
 * a queue runs, and packed rings with NOTIFICATION_DATA are in
 * test_mmio_pair.c; the shared fixture in mmio_fixture.h. */
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
#include "mmio_fixture.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/driver.h"
#include "uvirtio/mmio.h"
#include "uvirtio/rng.h"
#include "../support/core_internal.h"

/* How many resets the device core completed. */
static unsigned resets_of(const struct uvirtio_device *dev)
{
	struct uvirtio_device_stats st;

	uvirtio_device_get_stats(dev, &st);
	return st.resets;
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

/* The index of the first access matching after @from, or -1. */
static int find(const struct recorder *r, unsigned from, char op, uint32_t off)
{
	for (unsigned i = from; i < r->n; i++)
		if (r->log[i].op == op && r->log[i].off == off)
			return (int)i;
	return -1;
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
	  T(test_mmio_reschedule_without_kick_fds_is_served_by_the_work_fd))
