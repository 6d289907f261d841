// SPDX-License-Identifier: MIT
/* virtio-mmio version 2 over the pair: blk with queue threads and kick fds,
 * queue reset and resize while another queue runs, and packed rings with
 * NOTIFICATION_DATA. The model and the driver transport alone are in
 * test_mmio.c; the shared fixture in mmio_fixture.h. */
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

TEST_MAIN(T(test_mmio_blk_over_pair_writes_and_reads_back),
	  T(test_mmio_queue_reset_register_resets_only_that_queue),
	  T(test_mmio_queue_reset_and_resize_while_other_queue_runs),
	  T(test_mmio_blk_reset_with_requests_in_flight_is_complete_at_once),
	  T(test_mmio_notification_data_is_written_to_queue_notify_with_packed_ring),
	  T(test_mmio_without_notification_data_queue_notify_is_the_queue_index),
	  T(test_mmio_blk_packed_ring_with_notification_data_kicks_queue_threads))
