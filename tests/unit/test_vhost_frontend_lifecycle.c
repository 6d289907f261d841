// SPDX-License-Identifier: MIT
/* The vhost-user front-end's ring lifecycle: queue reset, suspend and
 * resume, split and packed ring bases, and moving a suspended device to
 * another backend, against uvirtio's own backend and scripted ones
 * (vhost_frontend_fixture.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "uvirtio/blk_drv.h"
#include "vhost_frontend_fixture.h"

/* The blk driver negotiates neither RING_RESET nor SUSPEND
 * (UVIRTIO_BLK_DRV_FEATURES leaves them out), so these tests drive
 * virtio-blk through the driver core with requests of their own: a header,
 * 4 KiB of data and a status byte, in the front-end's shared memory. */

#define RQ_BYTES 4096u
#define RAW_FEATURES                                                                   \
	(UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND) |               \
	 UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |        \
	 UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC))

struct rq {
	struct virtio_blk_outhdr hdr;
	uint8_t status;
	uint8_t data[RQ_BYTES];
	/* Not seen by the device. */
	bool done, released;
	uint32_t len;
	unsigned queue; /* where it was last submitted */
};

struct raw {
	struct uvirtio_driver drv;
	struct uvirtio_dma *dma;
	struct rq *rqs;
	unsigned n;
};

/* As raw_probe(), asking for @extra features too (e.g. RING_PACKED). */
static int raw_probe_with(struct raw *r, struct uvirtio_transport *t, unsigned queues,
			  unsigned qsize, unsigned nrq, uint64_t extra)
{
	unsigned sizes[2] = { qsize, qsize };
	int ret;

	memset(r, 0, sizeof(*r));
	r->dma = t->ops->dma(t);
	ret = uvirtio_driver_probe(&r->drv, t, RAW_FEATURES | UVIRTIO_BIT(VIRTIO_BLK_F_MQ) | extra);
	if (!ret)
		ret = uvirtio_driver_find_vqs(&r->drv, queues, sizes);
	if (!ret)
		ret = uvirtio_driver_ready(&r->drv);
	if (ret)
		return ret;
	r->rqs = uvirtio_dma_alloc(r->dma, nrq * sizeof(*r->rqs), 64);
	if (!r->rqs)
		return -ENOMEM;
	memset(r->rqs, 0, nrq * sizeof(*r->rqs));
	r->n = nrq;
	return 0;
}

static int raw_probe(struct raw *r, struct uvirtio_transport *t, unsigned queues,
		     unsigned qsize, unsigned nrq)
{
	return raw_probe_with(r, t, queues, qsize, nrq, 0);
}

static void raw_release(void *token, void *opaque)
{
	(void)opaque;
	((struct rq *)token)->released = true;
}

static void raw_remove(struct raw *r)
{
	uvirtio_driver_remove(&r->drv, raw_release, NULL);
	uvirtio_dma_free(r->dma, r->rqs);
}

/* Request @i: a write of pattern @seed at @sector (4 KiB), or a read. */
static int raw_submit(struct raw *r, unsigned q, unsigned i, bool write, uint64_t sector,
		      unsigned seed)
{
	struct rq *x = &r->rqs[i];
	struct iovec out[2] = { { &x->hdr, sizeof(x->hdr) }, { x->data, RQ_BYTES } };
	struct iovec in[2] = { { x->data, RQ_BYTES }, { &x->status, 1 } };
	int ret;

	x->queue = q;

	x->hdr = (struct virtio_blk_outhdr){ .type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					     .sector = sector };
	x->status = 0xff;
	x->done = x->released = false;
	if (write)
		fill(x->data, RQ_BYTES, seed);
	else
		memset(x->data, 0, RQ_BYTES);
	ret = write ? uvirtio_drvq_add(uvirtio_driver_vq(&r->drv, q), out, 2, in + 1, 1, x)
		    : uvirtio_drvq_add(uvirtio_driver_vq(&r->drv, q), out, 1, in, 2, x);
	return ret ? ret : uvirtio_drvq_kick(uvirtio_driver_vq(&r->drv, q));
}

/* Collects what queue @q has used; returns how many, or -EIO. */
static int raw_collect(struct raw *r, unsigned q)
{
	void *token;
	uint32_t len;
	int n = 0, ret;

	while ((ret = uvirtio_drvq_get(uvirtio_driver_vq(&r->drv, q), &token, &len)) == 1) {
		((struct rq *)token)->done = true;
		((struct rq *)token)->len = len;
		n++;
	}
	return ret < 0 ? ret : n;
}

/* Waits until those of requests [@from, @to) on queue @q are done (or
 * released); the others complete on their own queues. */
static int raw_wait(struct raw *r, unsigned q, unsigned from, unsigned to)
{
	for (;;) {
		unsigned pending = 0;
		int ret = raw_collect(r, q);

		if (ret < 0)
			return ret;
		for (unsigned i = from; i < to; i++)
			pending += r->rqs[i].queue == q && !r->rqs[i].done && !r->rqs[i].released;
		if (!pending)
			return 0;
		ret = uvirtio_driver_wait(&r->drv, q, 10000);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

/* Synchronous 4 KiB write and read-back of pattern @seed through @q. */
static int raw_write_verify(struct raw *r, unsigned q, unsigned slot, uint64_t sector, unsigned seed)
{
	int ret = raw_submit(r, q, slot, true, sector, seed);

	if (!ret)
		ret = raw_wait(r, q, slot, slot + 1);
	if (!ret && r->rqs[slot].status != VIRTIO_BLK_S_OK)
		ret = -EIO;
	if (!ret)
		ret = raw_submit(r, q, slot, false, sector, 0);
	if (!ret)
		ret = raw_wait(r, q, slot, slot + 1);
	if (!ret && (r->rqs[slot].status != VIRTIO_BLK_S_OK ||
		     !same_as_pattern(r->rqs[slot].data, RQ_BYTES, seed)))
		ret = -EILSEQ;
	return ret;
}

static int raw_read_verify(struct raw *r, unsigned q, unsigned slot, uint64_t sector, unsigned seed)
{
	int ret = raw_submit(r, q, slot, false, sector, 0);

	if (!ret)
		ret = raw_wait(r, q, slot, slot + 1);
	if (!ret && (r->rqs[slot].status != VIRTIO_BLK_S_OK ||
		     !same_as_pattern(r->rqs[slot].data, RQ_BYTES, seed)))
		ret = -EILSEQ;
	return ret;
}

static uint64_t blk_writes(struct server *s)
{
	struct uvirtio_blk_dev_stats st;

	uvirtio_blk_dev_get_stats(&s->blk, &st);
	return st.writes;
}

static void test_frontend_offers_ring_reset_and_suspend_it_implements(void)
{
	struct fake f;
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint64_t features = 0;
	char err[160] = "";

	/* A backend that offers neither (uvirtio blk does not, QEMU 7.2
	 * carrying neither to it; the fake does not): the front-end offers
	 * both, as it implements them itself. */
	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	CHECK(!(uvirtio_vhost_frontend_backend_features(fe) &
		(UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND))));
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->get_features(t, &features), 0);
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_RING_RESET));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_SUSPEND));
	CHECK(t->ops->queue_reset != NULL);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->get_features(t, &features), 0);
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_RING_RESET));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_SUSPEND));
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_does_not_pass_ring_reset_to_backend_that_did_not_offer_it(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint64_t both = UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND);
	uint64_t want = UVIRTIO_BIT(VIRTIO_F_VERSION_1) | both;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_features(t, want), 0);
	CHECK_EQ(__atomic_load_n(&f.features, __ATOMIC_ACQUIRE),
		 UVIRTIO_BIT(VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	/* One that offers them gets them: they are its features too. */
	{
		int sv[2];
		struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 4u << 20,
							     .reply_timeout_ms = 200 };

		f = (struct fake){ .mode = FAKE_HONEST, .kick_fd = -1, .call_fd = -1, .inflight_fd = -1,
				   .extra_features = both };
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		f.sock = sv[1];
		CHECK_EQ(pthread_create(&f.thread, NULL, fake_thread, &f), 0);
		cfg.fd = sv[0];
		CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &cfg), 0);
	}
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_features(t, want), 0);
	CHECK_EQ(__atomic_load_n(&f.features, __ATOMIC_ACQUIRE),
		 want | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

/* start_ring0 with RING_RESET and SUSPEND negotiated. */
static int start_ring0_lifecycle(struct uvirtio_transport *t)
{
	return start_ring0_with(t, UVIRTIO_BIT(VIRTIO_F_VERSION_1) | UVIRTIO_BIT(VIRTIO_F_RING_RESET) |
					   UVIRTIO_BIT(VIRTIO_F_SUSPEND));
}

static void test_frontend_queue_reset_stops_ring_with_get_vring_base(void)
{
	struct fake f;
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	unsigned given_back = 0, done = 0;
	char err[160] = "";

	/* The backend sees the ring stop (GET_VRING_BASE) before queue_reset
	 * returns: after it, it uses none of the ring's buffers. */
	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0_lifecycle(t), 0);
	CHECK(fake_ring0_running(&f));
	CHECK_EQ(t->ops->queue_reset(t, 0), 0);
	CHECK(!fake_ring0_running(&f));
	CHECK_EQ(t->ops->queue_reset(t, 7), -EINVAL);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	/* Against uvirtio blk: eight writes in flight at the reset. Each is
	 * either done or given back (nothing lost); given back ones are
	 * written again on the new ring, and all eight then read back. */
	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 16, 8), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_RESET));
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 100 + i), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), 0);
	for (unsigned i = 0; i < 8; i++) {
		given_back += r.rqs[i].released;
		done += r.rqs[i].done;
	}
	/* The driver core detaches every buffer not collected, used or not. */
	CHECK_EQ(given_back, 8);
	CHECK_EQ(done, 0);
	/* Once reset, the queue takes nothing until enabled. */
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), -ENOENT);
	CHECK_EQ(uvirtio_driver_queue_enable(&r.drv, 0, 0), 0);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 100 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	for (unsigned i = 0; i < 8; i++) {
		CHECK(r.rqs[i].done);
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	}
	for (unsigned i = 0; i < 8; i++) {
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * i, 100 + i), 0);
		CHECK(image_has_pattern(s.img, 8 * i, RQ_BYTES, 100 + i));
	}
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_queue_reset_then_enable_with_new_size_hands_over_new_ring(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	int fd;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 8, 32), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 0, 0, 1), 0);
	CHECK_EQ(uvirtio_drvq_size(uvirtio_driver_vq(&r.drv, 0)), 8);
	/* Leave a signal for the old ring behind: the reset drains it. */
	fd = uvirtio_vhost_frontend_transport(fe)->ops->event_fd(uvirtio_vhost_frontend_transport(fe), 0);
	eventfd_signal(fd);
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), 0);
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };

		CHECK_EQ(poll(&p, 1, 0), 0);
	}
	/* Four times as large: 32 writes in flight at once, where 8 fitted. */
	CHECK_EQ(uvirtio_driver_queue_enable(&r.drv, 0, 32), 0);
	CHECK_EQ(uvirtio_drvq_size(uvirtio_driver_vq(&r.drv, 0)), 32);
	for (unsigned i = 0; i < 32; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * (i + 1), 200 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 32), 0);
	for (unsigned i = 0; i < 32; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 32; i++)
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * (i + 1), 200 + i), 0);
	/* And smaller again. */
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&r.drv, 0, 4), 0);
	CHECK_EQ(raw_read_verify(&r, 0, 0, 0, 1), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 1, 8, 300), 0);
	CHECK(image_has_pattern(s.img, 8, RQ_BYTES, 300));
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_suspend_stops_every_ring_and_presents_suspend(void)
{
	struct fake f;
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	uint8_t status;
	uint32_t base;
	long long taken;
	char err[160] = "";

	/* The rings stop (GET_VRING_BASE) and the backend is never told
	 * SUSPEND: it knows no such status bit. */
	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0_lifecycle(t), 0);
	CHECK(fake_ring0_running(&f));
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK_EQ(t->ops->set_status(t, status | VIRTIO_CONFIG_S_SUSPEND), 0);
	CHECK(!fake_ring0_running(&f));
	CHECK(!(__atomic_load_n(&f.status, __ATOMIC_ACQUIRE) & VIRTIO_CONFIG_S_SUSPEND));
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	/* Against uvirtio blk, two queues with writes in flight: when the
	 * suspend is presented, every write the device took is used (the
	 * backend finished them before answering GET_VRING_BASE); those it
	 * had not taken yet are served after the resume. */
	CHECK_EQ(server_start(&s, 2), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(raw_probe(&r, t, 2, 16, 16), 0);
	CHECK_EQ(uvirtio_driver_num_vqs(&r.drv), 2);
	for (unsigned i = 0; i < 16; i++)
		CHECK_EQ(raw_submit(&r, i % 2, i, true, 8 * i, 400 + i), 0);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	taken = blk_writes(&s);
	CHECK_EQ(raw_collect(&r, 0) + raw_collect(&r, 1), taken);
	/* Both rings are stopped: there is nothing to stop again. */
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), -EINVAL);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 1, &base), -EINVAL);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), -EINVAL);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 16), 0);
	CHECK_EQ(raw_wait(&r, 1, 0, 16), 0);
	for (unsigned i = 0; i < 16; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	CHECK_EQ(blk_writes(&s), 16);
	for (unsigned i = 0; i < 16; i++)
		CHECK_EQ(raw_read_verify(&r, i % 2, i, 8 * i, 400 + i), 0);
	raw_remove(&r);

	/* spec: the driver MUST NOT set SUSPEND before DRIVER_OK; nor may it
	 * when SUSPEND was not negotiated: both refused. */
	CHECK_EQ(t->ops->set_status(t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_SUSPEND),
		 -EINVAL);
	CHECK_EQ(t->ops->reset(t), 0);
	CHECK_EQ(uvirtio_driver_probe(&r.drv, t, UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH)), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&r.drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&r.drv), 0);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK_EQ(t->ops->set_status(t, status | VIRTIO_CONFIG_S_SUSPEND), -EINVAL);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), -EOPNOTSUPP);
	uvirtio_driver_remove(&r.drv, NULL, NULL);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_resume_restarts_rings_at_saved_base(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	uint32_t base = 0;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 8, 8), 0);
	/* Five requests, so the base is not where a restart from 0 would be. */
	for (unsigned i = 0; i < 5; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 500 + i), 0);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(raw_collect(&r, 0), (long long)blk_writes(&s));
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	/* Three more: each served once, and none of the first five again
	 * (a restart before the saved base would serve some twice, one after
	 * it would leave some unserved). */
	for (unsigned i = 5; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 500 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	CHECK_EQ(blk_writes(&s), 8);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base & 0xffff, 8);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * i, 500 + i), 0);
	/* Suspend and resume again, with nothing in flight. */
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 0, 64, 600), 0);
	CHECK(image_has_pattern(s.img, 64, RQ_BYTES, 600));
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_move_carries_suspended_device_to_new_backend(void)
{
	struct server a, b;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	uint8_t wce = 1;
	uint32_t base = 0;
	char err[200] = "";
	struct uvirtio_vhost_frontend_config to = { .fd = -1, .error = err,
						    .error_size = sizeof(err) };
	unsigned off = offsetof(struct virtio_blk_config, wce);
	long long taken;

	/* Two processes' worth of backend on one image (b's: a goes first). */
	CHECK_EQ(server_start(&b, 1), 0);
	CHECK_EQ(server_start_on(&a, 1, b.img), 0);
	CHECK_EQ(fe_connect(&fe, a.path, 0), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(raw_probe(&r, t, 1, 8, 8), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_BLK_F_CONFIG_WCE));
	/* A config write the new backend must see: writethrough. */
	wce = 0;
	CHECK_EQ(t->ops->set_config(t, off, &wce, 1), 0);
	for (unsigned i = 0; i < 6; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 700 + i), 0);
	to.socket_path = b.path;
	/* Only while suspended. */
	CHECK_EQ(uvirtio_vhost_frontend_move(fe, &to), -EINVAL);
	CHECK(strstr(err, "not suspended"));
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	/* What a took it finished; the rest is the new backend's. */
	CHECK_EQ(raw_collect(&r, 0), (long long)blk_writes(&a));
	taken = blk_writes(&a);
	CHECK_EQ(uvirtio_vhost_frontend_move(fe, &to), 0);
	CHECK(uvirtio_vhost_frontend_connected(fe));
	/* The old process may go now: nothing of the device is left there. */
	server_stop(&a);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	wce = 1;
	CHECK_EQ(t->ops->get_config(t, off, &wce, 1), 0);
	CHECK_EQ(wce, 0);
	for (unsigned i = 6; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 700 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	/* Each write served once, by one of the two (nothing lost or
	 * repeated), and the ring went on from the old one's base. */
	CHECK_EQ(blk_writes(&b) + taken, 8);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base & 0xffff, 8);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	for (unsigned i = 0; i < 8; i++) {
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * i, 700 + i), 0);
		CHECK(image_has_pattern(b.img, 8 * i, RQ_BYTES, 700 + i));
	}
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&b);
}

static void test_frontend_move_refuses_backend_without_negotiated_features(void)
{
	struct server s;
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	int sv[2];
	char err[200] = "";
	struct uvirtio_vhost_frontend_config to = { .fd = -1, .error = err,
						    .error_size = sizeof(err) };

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 8, 8), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 0, 0, 800), 0);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	/* The fake offers FLUSH but not CONFIG_WCE, which was negotiated. */
	f = (struct fake){ .mode = FAKE_HONEST, .kick_fd = -1, .call_fd = -1, .inflight_fd = -1 };
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f.sock = sv[1];
	CHECK_EQ(pthread_create(&f.thread, NULL, fake_thread, &f), 0);
	to.fd = sv[0];
	CHECK_EQ(uvirtio_vhost_frontend_move(fe, &to), -EINVAL);
	CHECK(strstr(err, "does not offer"));
	fake_finish(&f);
	/* The old backend is kept, and the device resumes on it. */
	CHECK(uvirtio_vhost_frontend_connected(fe));
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_read_verify(&r, 0, 0, 0, 800), 0);
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

/* The packed ring: QEMU's base encoding, both halves with wrap counters. */

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)

static void test_frontend_packed_ring_starts_at_both_wrap_counters_and_resumes_at_backend_base(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	char err[160] = "";

	/* A backend offering RING_PACKED (asked for at connect). */
	{
		int sv[2];
		struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 4u << 20,
							     .reply_timeout_ms = 2000, .error = err,
							     .error_size = sizeof(err) };

		f = (struct fake){ .mode = FAKE_HONEST, .kick_fd = -1, .call_fd = -1, .inflight_fd = -1,
				   .extra_features = PACKED };
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		f.sock = sv[1];
		CHECK_EQ(pthread_create(&f.thread, NULL, fake_thread, &f), 0);
		cfg.fd = sv[0];
		CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &cfg), 0);
	}
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(raw_probe_with(&r, t, 1, 8, 8, PACKED), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_PACKED));
	CHECK(__atomic_load_n(&f.features, __ATOMIC_ACQUIRE) & PACKED);
	/* A fresh packed ring: avail 0 and used 0, each with wrap counter 1. */
	CHECK_EQ(__atomic_load_n(&f.ring0_bases, __ATOMIC_ACQUIRE), 1);
	CHECK_EQ(__atomic_load_n(&f.ring0_base, __ATOMIC_ACQUIRE), 0x80008000u);
	/* Suspended where the backend says (avail 5 wrap 0, used 3 wrap 1),
	 * resumed there: both halves handed back as they came. */
	__atomic_store_n(&f.ring0_base_answer, 0x80030005u, __ATOMIC_RELEASE);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(__atomic_load_n(&f.ring0_bases, __ATOMIC_ACQUIRE), 2);
	CHECK_EQ(__atomic_load_n(&f.ring0_base, __ATOMIC_ACQUIRE), 0x80030005u);
	raw_remove(&r);
	/* A split ring starts at 0. */
	CHECK_EQ(t->ops->reset(t), 0);
	CHECK_EQ(raw_probe(&r, t, 1, 8, 8), 0);
	CHECK(!uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_PACKED));
	CHECK_EQ(__atomic_load_n(&f.ring0_bases, __ATOMIC_ACQUIRE), 3);
	CHECK_EQ(__atomic_load_n(&f.ring0_base, __ATOMIC_ACQUIRE), 0);
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

/* The driver's position of queue 0 as a packed backend reports it. */
static uint32_t driver_base(struct raw *r)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&r->drv, 0);

	return uvirtio_drvq_avail_index(q) | (uint32_t)uvirtio_drvq_used_index(q) << 16;
}

static void test_frontend_packed_ring_suspend_resume_carries_wrap_counters_and_io_goes_on(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	uint32_t base = 0;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	/* A ring of 5 (not a power of 2); each request one descriptor
	 * (indirect), so 12 requests wrap it twice. */
	CHECK_EQ(raw_probe_with(&r, uvirtio_vhost_frontend_transport(fe), 1, 5, 16, PACKED), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_PACKED));
	for (unsigned i = 0; i < 5; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 800 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 5), 0);
	for (unsigned i = 5; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 800 + i), 0);
	/* Suspended past the first wrap (wrap counters 0), resumed at the
	 * backend's base: what was not taken is served after. */
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	CHECK_EQ(driver_base(&r), 0x00030003u);
	for (unsigned i = 8; i < 12; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 800 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 12), 0);
	for (unsigned i = 0; i < 12; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	CHECK_EQ(blk_writes(&s), 12);
	/* Position 2, wrap counters back to 1; the backend agrees. */
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base, 0x80028002u);
	CHECK_EQ(driver_base(&r), base);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	for (unsigned i = 0; i < 12; i++)
		CHECK_EQ(raw_read_verify(&r, 0, i % 5, 8 * i, 800 + i), 0);
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

TEST_MAIN(T(test_frontend_offers_ring_reset_and_suspend_it_implements),
	  T(test_frontend_does_not_pass_ring_reset_to_backend_that_did_not_offer_it),
	  T(test_frontend_queue_reset_stops_ring_with_get_vring_base),
	  T(test_frontend_queue_reset_then_enable_with_new_size_hands_over_new_ring),
	  T(test_frontend_suspend_stops_every_ring_and_presents_suspend),
	  T(test_frontend_resume_restarts_rings_at_saved_base),
	  T(test_frontend_move_carries_suspended_device_to_new_backend),
	  T(test_frontend_move_refuses_backend_without_negotiated_features),
	  T(test_frontend_packed_ring_starts_at_both_wrap_counters_and_resumes_at_backend_base),
	  T(test_frontend_packed_ring_suspend_resume_carries_wrap_counters_and_io_goes_on))
