// SPDX-License-Identifier: MIT
/*
 * virtio-pci modern: the in-process pair end to end with rng and blk (queue
 * threads, kick fds), queue reset while another queue runs, suspend and
 * moving to a new model, and the notify writes with packed rings and
 * NOTIFICATION_DATA. The register model and the driver transport alone are
 * in test_pci.c; the shared fixture in pci_fixture.h.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_pci.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "pci_fixture.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/driver.h"
#include "uvirtio/pci.h"
#include "uvirtio/rng.h"
#include "uvirtio/snapshot.h"

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

TEST_MAIN(T(test_pci_rng_reads_random_bytes_over_the_pair),
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
