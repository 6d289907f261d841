// SPDX-License-Identifier: MIT
/* The virtio-blk device's queue threads over the loopback transport, driven
 * by raw requests (tests/unit/blk_dev_fixture.h): two queues at once, a full
 * queue, stop and enable, reset and a broken ring with requests in flight,
 * a queue without kick fd. Request types and rules: test_blk_dev.c. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "../support/devices_internal.h"
#include "blk_dev_fixture.h"
#include "harness.h"

struct worker {
	struct env *e;
	unsigned qi;
	uint8_t *buf;
	int failures;
};

static void *queue_worker(void *arg)
{
	struct worker *w = arg;
	uint8_t status;

	/* Each queue writes and reads back its own half of the disk. */
	for (unsigned i = 0; i < 200; i++) {
		uint64_t sector = w->qi * (SECTORS / 2) + (i % 64) * 8;

		fill(w->buf, 4096, i + w->qi * 1000);
		if (rw(w->e, w->qi, VIRTIO_BLK_T_OUT, sector, w->buf, 4096, &status) != 1 || status)
			w->failures++;
		memset(w->buf, 0, 4096);
		if (rw(w->e, w->qi, VIRTIO_BLK_T_IN, sector, w->buf, 4096, &status) != 4097 || status)
			w->failures++;
		fill(w->buf + 4096, 4096, i + w->qi * 1000);
		if (memcmp(w->buf, w->buf + 4096, 4096))
			w->failures++;
	}
	return NULL;
}

static void test_blk_two_queues_at_once(void)
{
	struct uvirtio_blk_dev_config cfg = { .num_queues = 2 };
	struct worker w[2];
	pthread_t th[2];
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct worker){ .e = &e, .qi = i, .buf = dalloc(&e, 8192) };
		CHECK_EQ(pthread_create(&th[i], NULL, queue_worker, &w[i]), 0);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(w[0].failures, 0);
	CHECK_EQ(w[1].failures, 0);
	CHECK_EQ(stats(&e).writes, 400);
	CHECK_EQ(stats(&e).reads, 400);
	env_stop(&e);
}

/* Queue threads. */

/* A queue of two slots, kept two requests deep, is out of slots whenever
 * the driver adds its next request. A flush goes through io_uring's
 * workers, so it often completes while the thread sleeps; the thread must
 * then take the driver's next request instead of sleeping for a completion
 * that will never come. (Two, not one: a flush is two descriptors, and no
 * chain may be longer than its queue.) */
static void test_blk_full_queue_sleeps_only_while_io_is_in_flight(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	const unsigned sizes[1] = { 2 };
	struct iovec out[2], in[2];
	uint8_t *status;
	struct uvirtio_drvq *q;
	struct env e;
	unsigned added = 0, done = 0;
	bool busy[2] = { false, false };

	CHECK_EQ(env_start_sized(&e, &cfg, ALL_BLK_FEATURES, 1, sizes), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	CHECK_EQ(uvirtio_drvq_size(q), 2);
	status = dalloc(&e, 2);
	for (unsigned k = 0; k < 2; k++) {
		out[k] = (struct iovec){ make_hdr(&e, VIRTIO_BLK_T_FLUSH, 0), 16 };
		in[k] = (struct iovec){ status + k, 1 };
	}
	while (done < 300) {
		void *token;
		uint32_t len;
		unsigned k;
		int ret;

		/* Flushes may complete out of order: a request's status byte is
		 * reused only once that request is back. */
		for (k = 0; k < 2 && added < 300; k++) {
			if (busy[k])
				continue;
			status[k] = 0xee;
			busy[k] = true;
			CHECK_EQ(uvirtio_drvq_add(q, &out[k], 1, &in[k], 1, &in[k]), 0);
			CHECK_EQ(uvirtio_drvq_kick(q), 0);
			added++;
		}
		ret = wait_one(&e, 0, &token, &len);
		if (ret != 1 || *(uint8_t *)((struct iovec *)token)->iov_base) {
			CHECK_EQ(done, 300); /* names the request that stalled */
			break;
		}
		busy[(struct iovec *)token - in] = false;
		done++;
	}
	CHECK_EQ(stats(&e).flushes, 300);
	env_stop(&e);
}

/* Stopping with requests in flight. */

#define BURST 128u
#define BURST_LEN 16384u

struct burst {
	struct iovec out[BURST][2];
	struct iovec in[BURST];
	uint8_t *data, *status;
};

/* Make BURST writes available on queue 0 and kick once. */
static int burst_add(struct env *e, struct burst *b, unsigned from, unsigned n)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&e->drv, 0);

	for (unsigned i = from; i < from + n; i++) {
		int ret;

		fill(b->data + (size_t)i * BURST_LEN, BURST_LEN, 100 + i);
		b->status[i] = 0xee;
		b->out[i][0] = (struct iovec){ make_hdr(e, VIRTIO_BLK_T_OUT, (uint64_t)i * (BURST_LEN / 512)), 16 };
		b->out[i][1] = (struct iovec){ b->data + (size_t)i * BURST_LEN, BURST_LEN };
		b->in[i] = (struct iovec){ b->status + i, 1 };
		ret = uvirtio_drvq_add(q, b->out[i], 2, &b->in[i], 1, (void *)(uintptr_t)(i + 1));
		if (ret)
			return ret;
	}
	return uvirtio_drvq_kick(q);
}

static bool burst_alloc(struct env *e, struct burst *b)
{
	b->data = dalloc(e, (size_t)BURST * BURST_LEN);
	b->status = dalloc(e, BURST);
	return b->data && b->status;
}

static uint16_t used_idx(struct env *e)
{
	struct uvirtio_drvq_ring ring;

	uvirtio_drvq_ring(uvirtio_driver_vq(&e->drv, 0), &ring);
	return __atomic_load_n(&((struct vring_used *)ring.used_host)->idx, __ATOMIC_ACQUIRE);
}

static void test_blk_reset_completes_every_taken_request_first(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	unsigned got = 0;
	struct burst b;
	uint32_t len;
	void *token;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK(burst_alloc(&e, &b));
	CHECK_EQ(burst_add(&e, &b, 0, BURST), 0);
	/* Reset once the device is busy with them. */
	CHECK(uvirtio_driver_wait(&e.drv, 0, WAIT_MS) == 1 || used_idx(&e) > 0);
	CHECK_EQ(e.t->ops->reset(e.t), 0);
	/* The device wrote its last used entry before the reset returned:
	 * everything it took is there, each with its status. */
	CHECK_EQ(used_idx(&e), stats(&e).writes);
	while (uvirtio_drvq_get(uvirtio_driver_vq(&e.drv, 0), &token, &len) == 1) {
		unsigned i = (unsigned)(uintptr_t)token - 1;

		CHECK_EQ(len, 1);
		CHECK_EQ(b.status[i], VIRTIO_BLK_S_OK);
		CHECK(file_is(&e, (uint64_t)i * BURST_LEN, b.data + (size_t)i * BURST_LEN, BURST_LEN));
		got++;
	}
	CHECK_EQ(got, stats(&e).writes);
	printf("# %u of %u requests were taken before the reset\n", got, BURST);
	env_stop(&e);
}

struct qpos {
	struct uvirtio_queue_layout l;
	uint16_t next;
};

static int dev_queue_stop(struct uvirtio_device *dev, void *arg)
{
	((struct qpos *)arg)->next = uvirtio_device_queue_stop(dev, 0);
	return 0;
}

static int dev_queue_enable_at(struct uvirtio_device *dev, void *arg)
{
	struct qpos *p = arg;

	return uvirtio_device_queue_enable_at(dev, 0, &p->l, p->next, p->next);
}

static void test_blk_queue_stop_then_enable_at_loses_and_repeats_nothing(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	bool seen[BURST] = { false };
	unsigned got = 0;
	struct uvirtio_drvq_ring ring;
	struct uvirtio_drvq *q;
	struct burst b;
	struct qpos pos;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	CHECK(burst_alloc(&e, &b));
	CHECK_EQ(burst_add(&e, &b, 0, BURST / 2), 0);
	/* Stop once the device is busy with them: one done, others in flight. */
	{
		uint32_t len;
		void *token;
		unsigned i;

		CHECK_EQ(wait_one(&e, 0, &token, &len), 1);
		i = (unsigned)(uintptr_t)token - 1;
		CHECK(i < BURST);
		seen[i] = true;
		got++;
	}
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_queue_stop, &pos), 0);
	/* Everything taken was given back: the next avail is the used index. */
	CHECK_EQ(pos.next, used_idx(&e));
	/* While stopped the queue takes nothing. */
	CHECK_EQ(burst_add(&e, &b, BURST / 2, BURST / 2), 0);
	CHECK_EQ(used_idx(&e), pos.next);

	uvirtio_drvq_ring(q, &ring);
	pos.l = (struct uvirtio_queue_layout){ .num = uvirtio_drvq_size(q), .desc = ring.desc,
					       .avail = ring.avail, .used = ring.used };
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_queue_enable_at, &pos), 0);
	while (got < BURST) {
		uint32_t len;
		void *token;
		unsigned i;

		/* A repeated request would break the driver's queue here. */
		CHECK_EQ(wait_one(&e, 0, &token, &len), 1);
		i = (unsigned)(uintptr_t)token - 1;
		CHECK(i < BURST && !seen[i]);
		seen[i] = true;
		CHECK_EQ(b.status[i], VIRTIO_BLK_S_OK);
		got++;
	}
	for (unsigned i = 0; i < BURST; i++)
		CHECK(file_is(&e, (uint64_t)i * BURST_LEN, b.data + (size_t)i * BURST_LEN, BURST_LEN));
	CHECK_EQ(stats(&e).writes, BURST);
	printf("# %u requests done before the stop\n", pos.next);
	env_stop(&e);
}

/* A transport without kick fds (or one that hands none over) calls
 * uvirtio_device_queue_notify(); the queue thread must wake for it. */

static int dev_no_kick_fd(struct uvirtio_device *dev, void *arg)
{
	(void)arg;
	return uvirtio_device_set_kick_fd(dev, 0, -1);
}

static int dev_queue_notify(struct uvirtio_device *dev, void *arg)
{
	(void)arg;
	uvirtio_device_queue_notify(dev, 0);
	return 0;
}

static void test_blk_queue_notify_wakes_a_queue_without_kick_fd(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct uvirtio_drvq *q;
	uint8_t *buf, *st;
	struct env e;

	/* As env_start, with the kick fd taken away before DRIVER_OK: the
	 * loopback's kicks then reach nobody, only queue_notify does. */
	memset(&e, 0, sizeof(e));
	strcpy(e.path, "/tmp/uvirtio-blk-test-XXXXXX");
	e.fd = mkstemp(e.path);
	CHECK(e.fd >= 0);
	CHECK_EQ(ftruncate(e.fd, IMAGE_SIZE), 0);
	cfg.path = e.path;
	CHECK_EQ(uvirtio_loopback_create(&e.lb, NULL), 0);
	CHECK_EQ(uvirtio_blk_dev_init(&e.blk, &cfg, uvirtio_loopback_mem(e.lb)), 0);
	e.have_blk = true;
	CHECK(blk_dev_ops(&e.blk)->takes_kick_fds);
	CHECK_EQ(uvirtio_loopback_start(e.lb, uvirtio_blk_dev_device(&e.blk)), 0);
	e.t = uvirtio_loopback_transport(e.lb);
	e.dma = e.t->ops->dma(e.t);
	CHECK_EQ(uvirtio_driver_probe(&e.drv, e.t, ALL_BLK_FEATURES), 0);
	e.have_drv = true;
	CHECK_EQ(uvirtio_driver_find_vqs(&e.drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_no_kick_fd, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&e.drv), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	buf = dalloc(&e, 4096);
	st = dalloc(&e, 1);
	/* One round per request: each may find the thread asleep. */
	for (unsigned i = 0; i < 50; i++) {
		struct iovec out[2] = { { make_hdr(&e, VIRTIO_BLK_T_OUT, i * 8), 16 }, { buf, 4096 } };
		struct iovec in = { st, 1 };
		uint32_t len = 0;
		void *token = NULL;

		fill(buf, 4096, i);
		*st = 0xee;
		CHECK_EQ(uvirtio_drvq_add(q, out, 2, &in, 1, buf), 0);
		CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_queue_notify, NULL), 0);
		if (wait_one(&e, 0, &token, &len) != 1) {
			CHECK_EQ(i, 50); /* names the request that was never served */
			break;
		}
		CHECK_EQ(len, 1);
		CHECK_EQ(*st, VIRTIO_BLK_S_OK);
		CHECK(file_is(&e, (uint64_t)i * 4096, buf, 4096));
	}
	env_stop(&e);
}

/* The driver breaks its ring while the device has requests in flight: the
 * device sets DEVICE_NEEDS_RESET, finishes or drops what it took without
 * publishing it, and a reset returns; afterwards the device serves again. */
static void test_blk_broken_ring_with_requests_in_flight_needs_reset_and_reset_returns(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct uvirtio_drvq_ring ring;
	struct vring_avail *avail;
	struct uvirtio_drvq *q;
	uint8_t status, *buf;
	struct burst b;
	struct env e;
	uint16_t idx;

	CHECK_EQ(env_start(&e, &cfg), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	CHECK(burst_alloc(&e, &b));
	/* BURST writes, then a head outside the ring, all made available
	 * before one kick: the thread takes the writes, then breaks on the
	 * bad head before it has reaped any of them. */
	for (unsigned i = 0; i < BURST; i++) {
		fill(b.data + (size_t)i * BURST_LEN, BURST_LEN, 100 + i);
		b.status[i] = 0xee;
		b.out[i][0] = (struct iovec){ make_hdr(&e, VIRTIO_BLK_T_OUT, (uint64_t)i * (BURST_LEN / 512)), 16 };
		b.out[i][1] = (struct iovec){ b.data + (size_t)i * BURST_LEN, BURST_LEN };
		b.in[i] = (struct iovec){ b.status + i, 1 };
		CHECK_EQ(uvirtio_drvq_add(q, b.out[i], 2, &b.in[i], 1, (void *)(uintptr_t)(i + 1)), 0);
	}
	uvirtio_drvq_ring(q, &ring);
	avail = ring.avail_host;
	idx = __atomic_load_n(&avail->idx, __ATOMIC_RELAXED);
	avail->ring[idx & (uvirtio_drvq_size(q) - 1)] = htole16(uvirtio_drvq_size(q));
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	CHECK_EQ(uvirtio_drvq_kick(q), 0);
	while (!uvirtio_driver_needs_reset(&e.drv))
		CHECK(uvirtio_driver_wait(&e.drv, 0, WAIT_MS) != 0);
	CHECK(uvirtio_device_get_status(uvirtio_blk_dev_device(&e.blk)) & VIRTIO_CONFIG_S_NEEDS_RESET);
	CHECK_EQ(stats(&e).writes, BURST);
	/* The reset returns: every write taken has finished or been dropped,
	 * and none was published once the ring broke. (The thread may have
	 * been awake and taken and published a few before the bad head.) */
	idx = used_idx(&e);
	CHECK(idx < BURST);
	CHECK_EQ(e.t->ops->reset(e.t), 0);
	CHECK_EQ(used_idx(&e), idx);
	for (unsigned i = 0; i < BURST; i++)
		CHECK(b.status[i] == 0xee || b.status[i] == VIRTIO_BLK_S_OK);

	/* And the device serves a new driver. */
	uvirtio_driver_remove(&e.drv, NULL, NULL);
	e.have_drv = false;
	CHECK_EQ(uvirtio_driver_probe(&e.drv, e.t, ALL_BLK_FEATURES), 0);
	e.have_drv = true;
	CHECK_EQ(uvirtio_driver_find_vqs(&e.drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&e.drv), 0);
	buf = dalloc(&e, 4096);
	fill(buf, 4096, 9);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, 0, buf, 4096));
	env_stop(&e);
}

TEST_MAIN(T(test_blk_two_queues_at_once),
	  T(test_blk_full_queue_sleeps_only_while_io_is_in_flight),
	  T(test_blk_reset_completes_every_taken_request_first),
	  T(test_blk_queue_stop_then_enable_at_loses_and_repeats_nothing),
	  T(test_blk_queue_notify_wakes_a_queue_without_kick_fd),
	  T(test_blk_broken_ring_with_requests_in_flight_needs_reset_and_reset_returns))
