// SPDX-License-Identifier: MIT
/*
 * One conformance suite over every transport: the same lifecycle scenarios
 * run between uvirtio's blk driver side (driver core + rings, requests built
 * here) and uvirtio's blk device over loopback, virtio-mmio, virtio-pci and
 * vhost-user:
 *
 *   initialisation, verified I/O, device reset under load, renegotiation
 *   with other features, queue reset under load, resize, suspend and resume
 *   under load, snapshot and restore in a new process then resume under load.
 *
 * Every request has an identity (slot, generation, kind) and must complete
 * exactly once; one taken back by a reset is poisoned and must stay poisoned
 * (the device touched no buffer after it let go) until it is submitted
 * again; every read verifies the last write of its sectors.
 *
 *   conformance --transport=loopback|mmio|pci|vhost-user [--image=PATH]
 *
 * prints TAP. The device end of a move runs in a new process: this program
 * again, with --device-child (see fixtures.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>

#include "conformance.h"
#include "../unit/harness.h"

#define SLOTS 48
#define SECTORS_PER_SLOT 8
#define DATA_BYTES (SECTORS_PER_SLOT * 512)
#define POISON 0xee
#define WAIT_MS 5000

enum slot_state { IDLE, QUEUED, INFLIGHT, DETACHED };

/* One request slot: its own sectors, its own buffers in shared memory. */
struct slot {
	unsigned id;
	struct virtio_blk_outhdr *hdr;
	uint8_t *data;
	uint8_t *status;
	enum slot_state state;
	unsigned queue;
	bool is_read;
	uint32_t gen;        /* generation of the data in flight or last written */
	uint32_t written;    /* generation known to be on disk; 0 none */
	unsigned completions; /* of the current request: must end at 1 */
};

struct load {
	struct fixture *f;
	struct uvirtio_driver drv;
	unsigned nq;
	uint64_t features;
	struct slot slots[SLOTS];
	uint8_t *mem;
	unsigned long done;
	const char *failure; /* first rule broken, for the TAP line */
};

static struct fixture fx;
static struct load ld;

static uint8_t pattern(unsigned slot, uint32_t gen, unsigned i)
{
	return (uint8_t)(slot * 131u + gen * 31u + i * 7u + (i >> 9));
}

static void fail(struct load *l, const char *why)
{
	if (!l->failure)
		l->failure = why;
}

static int submit(struct load *l, struct slot *s)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&l->drv, s->queue);
	struct iovec out[2], in[2];
	unsigned n_out = 1, n_in = 0;
	int ret;

	s->hdr->type = s->is_read ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	s->hdr->ioprio = 0;
	s->hdr->sector = (uint64_t)s->id * SECTORS_PER_SLOT;
	*s->status = POISON;
	out[0] = (struct iovec){ s->hdr, sizeof(*s->hdr) };
	if (s->is_read) {
		memset(s->data, POISON, DATA_BYTES);
		in[n_in++] = (struct iovec){ s->data, DATA_BYTES };
	} else {
		for (unsigned i = 0; i < DATA_BYTES; i++)
			s->data[i] = pattern(s->id, s->gen, i);
		out[n_out++] = (struct iovec){ s->data, DATA_BYTES };
	}
	in[n_in++] = (struct iovec){ s->status, 1 };
	ret = uvirtio_drvq_add(q, out, n_out, in, n_in, s);
	if (ret == -ENOSPC) {
		s->state = QUEUED;
		return 0;
	}
	if (ret)
		return ret;
	s->state = INFLIGHT;
	s->completions = 0;
	return 0;
}

/* The next request of a slot: write a new generation, then read it back. */
static void next_request(struct slot *s)
{
	if (s->is_read || !s->written) {
		s->is_read = false;
		s->gen++;
	} else {
		s->is_read = true;
	}
}

static void complete(struct load *l, struct slot *s, uint32_t len)
{
	if (s < l->slots || s >= l->slots + SLOTS)
		return fail(l, "a used buffer carries a token never given");
	if (s->state != INFLIGHT || ++s->completions != 1)
		return fail(l, "a request completed twice or after it was taken back");
	if (*s->status != VIRTIO_BLK_S_OK)
		return fail(l, "a request failed (status not OK)");
	if (s->is_read) {
		if (len < DATA_BYTES + 1)
			return fail(l, "a read reports fewer bytes written than it has");
		for (unsigned i = 0; i < DATA_BYTES; i++)
			if (s->data[i] != pattern(s->id, s->written, i))
				return fail(l, "data read back differs from what was written");
	} else {
		s->written = s->gen;
	}
	s->state = IDLE;
	l->done++;
}

/* Collect what every running queue used; returns how many. */
static unsigned reap(struct load *l)
{
	unsigned n = 0;

	for (unsigned qi = 0; qi < l->nq; qi++) {
		struct uvirtio_drvq *q = uvirtio_driver_vq(&l->drv, qi);
		void *tok;
		uint32_t len;
		int ret;

		if (l->drv.vq_reset[qi])
			continue;
		while ((ret = uvirtio_drvq_get(q, &tok, &len)) == 1) {
			complete(l, tok, len);
			n++;
		}
		if (ret < 0)
			fail(l, "a queue broke (bad used ring)");
	}
	return n;
}

static bool queue_usable(struct load *l, unsigned qi)
{
	return !l->drv.vq_reset[qi];
}

/* Give every idle or queued slot of a usable queue its next request. */
static int refill(struct load *l, bool new_requests)
{
	bool kicked[8] = { 0 };

	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];
		int ret;

		if (!queue_usable(l, s->queue) || (s->state != IDLE && s->state != QUEUED))
			continue;
		if (s->state == IDLE) {
			if (!new_requests)
				continue;
			next_request(s);
		}
		ret = submit(l, s);
		if (ret)
			return ret;
		kicked[s->queue] = true;
	}
	for (unsigned qi = 0; qi < l->nq; qi++)
		if (kicked[qi] && uvirtio_drvq_kick(uvirtio_driver_vq(&l->drv, qi)))
			return -EIO;
	return 0;
}

static unsigned count(struct load *l, enum slot_state st)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SLOTS; i++)
		n += l->slots[i].state == st;
	return n;
}

/* Wait for a used-buffer notification on any running queue. */
static int wait_any(struct load *l)
{
	struct uvirtio_transport *t = l->f->t;
	struct pollfd p[8];
	nfds_t n = 0;
	int ret;

	for (unsigned qi = 0; qi < l->nq; qi++) {
		if (!queue_usable(l, qi))
			continue;
		/* Ask for a notification; if buffers came meanwhile, take them. */
		if (!uvirtio_drvq_enable_cb(uvirtio_driver_vq(&l->drv, qi)))
			return 1;
		p[n++] = (struct pollfd){ .fd = t->ops->event_fd(t, qi), .events = POLLIN };
	}
	ret = poll(p, n, WAIT_MS);
	if (ret == 0) {
		/* Say where it stuck: which ring, how far each side got. */
		for (unsigned qi = 0; qi < l->nq; qi++) {
			struct uvirtio_drvq *q = uvirtio_driver_vq(&l->drv, qi);

			if (queue_usable(l, qi))
				printf("# stuck: queue %u avail %u used %u (driver read %u), %u in flight\n",
				       qi, q->avail->idx, q->used->idx, q->last_used, count(l, INFLIGHT));
		}
	}
	if (ret <= 0)
		return ret < 0 ? -errno : -ETIMEDOUT;
	for (nfds_t i = 0; i < n; i++) {
		uint64_t v;

		if (p[i].revents & POLLIN)
			(void)!read(p[i].fd, &v, sizeof(v));
	}
	return 1;
}

/* Run until @completions more requests completed. */
static int run(struct load *l, unsigned long completions)
{
	unsigned long target = l->done + completions;
	int ret;

	while (l->done < target && !l->failure) {
		ret = refill(l, true);
		if (ret)
			return ret;
		if (reap(l))
			continue;
		ret = wait_any(l);
		if (ret < 0)
			return ret;
	}
	return l->failure ? -EIO : 0;
}

/* Complete what is in flight without starting anything new. */
static int drain(struct load *l)
{
	int ret;

	while (!l->failure && (count(l, INFLIGHT) || count(l, QUEUED))) {
		ret = refill(l, false);
		if (ret)
			return ret;
		if (reap(l))
			continue;
		ret = wait_any(l);
		if (ret < 0)
			return ret;
	}
	return l->failure ? -EIO : 0;
}

/* A reset handed a request back: it must never complete, and the device
 * must never write its buffers again. Poisoned here, checked later. */
static void detached(void *token, void *opaque)
{
	struct load *l = opaque;
	struct slot *s = token;

	if (s < l->slots || s >= l->slots + SLOTS || s->state != INFLIGHT)
		return fail(l, "a reset handed back a buffer that was not in flight");
	s->state = DETACHED;
	*s->status = POISON;
	if (s->is_read)
		memset(s->data, POISON, DATA_BYTES);
}

static bool poison_intact(struct load *l)
{
	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];

		if (s->state != DETACHED)
			continue;
		if (*s->status != POISON)
			return false;
		if (s->is_read)
			for (unsigned k = 0; k < DATA_BYTES; k++)
				if (s->data[k] != POISON)
					return false;
	}
	return true;
}

/* Resubmit what was handed back; the same request, so exactly once still holds. */
static void requeue_detached(struct load *l, int queue)
{
	for (unsigned i = 0; i < SLOTS; i++)
		if (l->slots[i].state == DETACHED && (queue < 0 || l->slots[i].queue == (unsigned)queue))
			l->slots[i].state = QUEUED;
}

/* Every slot's sectors hold its last write: read each back. */
static int verify_all(struct load *l)
{
	int ret = drain(l);

	if (ret)
		return ret;
	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];

		if (!s->written || !queue_usable(l, s->queue))
			continue;
		s->is_read = true;
		ret = submit(l, s);
		if (ret)
			return ret;
	}
	for (unsigned qi = 0; qi < l->nq; qi++)
		if (queue_usable(l, qi) && uvirtio_drvq_kick(uvirtio_driver_vq(&l->drv, qi)))
			return -EIO;
	return drain(l);
}

static int start_driver(struct load *l, uint64_t features)
{
	unsigned sizes[8] = { 0 };
	int ret;

	ret = uvirtio_driver_probe(&l->drv, l->f->t, features | UVIRTIO_BIT(VIRTIO_BLK_F_MQ));
	if (ret)
		return ret;
	l->features = l->drv.features;
	ret = uvirtio_driver_find_vqs(&l->drv, l->nq, sizes);
	return ret ? ret : uvirtio_driver_ready(&l->drv);
}

static int load_init(struct load *l, struct fixture *f)
{
	struct uvirtio_dma *dma = f->t->ops->dma(f->t);
	size_t per = sizeof(struct virtio_blk_outhdr) + DATA_BYTES + 64;

	memset(l, 0, sizeof(*l));
	l->f = f;
	l->nq = CONFORMANCE_QUEUES;
	l->mem = uvirtio_dma_alloc(dma, per * SLOTS, 4096);
	if (!l->mem)
		return -ENOMEM;
	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];
		uint8_t *p = l->mem + per * i;

		s->id = i;
		s->queue = i % l->nq;
		s->data = p;
		s->hdr = (void *)(p + DATA_BYTES);
		s->status = p + DATA_BYTES + 32;
	}
	return 0;
}

#define FULL_FEATURES                                                                       \
	(UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |   \
	 UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND))

/* Scenarios, in order; each leaves the driver running for the next. */

static void test_initialisation_negotiates_lifecycle_features(void)
{
	uint8_t status = 0;

	CHECK_EQ(load_init(&ld, &fx), 0);
	CHECK_EQ(start_driver(&ld, FULL_FEATURES), 0);
	CHECK_EQ(fx.t->ops->get_status(fx.t, &status), 0);
	CHECK_EQ(status, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	CHECK(uvirtio_driver_has_feature(&ld.drv, VIRTIO_F_RING_RESET));
	CHECK(uvirtio_driver_has_feature(&ld.drv, VIRTIO_F_SUSPEND));
	CHECK(uvirtio_driver_has_feature(&ld.drv, VIRTIO_BLK_F_MQ));
}

static void test_verified_io_every_request_completes_once(void)
{
	CHECK_EQ(run(&ld, 2000), 0);
	CHECK_EQ(verify_all(&ld), 0);
}

static void test_device_reset_under_load_touches_no_buffer_after(void)
{
	CHECK_EQ(run(&ld, 200), 0);
	CHECK_EQ(refill(&ld, true), 0);
	CHECK(count(&ld, INFLIGHT) > 0);
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, detached, &ld), 0);
	CHECK(ld.failure == NULL);
	CHECK(poison_intact(&ld));
	/* The driver comes back with the same features; nothing of the old
	 * requests may surface, and the taken-back ones run again. */
	CHECK_EQ(start_driver(&ld, FULL_FEATURES), 0);
	CHECK(poison_intact(&ld));
	requeue_detached(&ld, -1);
	CHECK_EQ(run(&ld, 500), 0);
	CHECK_EQ(verify_all(&ld), 0);
}

static void test_renegotiation_with_other_features(void)
{
	CHECK_EQ(drain(&ld), 0);
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, detached, &ld), 0);
	CHECK_EQ(count(&ld, DETACHED), 0);
	/* No indirect descriptors, no event index. */
	CHECK_EQ(start_driver(&ld, UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND)),
		 0);
	CHECK(!uvirtio_driver_has_feature(&ld.drv, VIRTIO_RING_F_INDIRECT_DESC));
	CHECK(!uvirtio_driver_has_feature(&ld.drv, VIRTIO_RING_F_EVENT_IDX));
	CHECK_EQ(verify_all(&ld), 0);
	CHECK_EQ(run(&ld, 1000), 0);
	CHECK_EQ(verify_all(&ld), 0);
	/* Back to everything for the scenarios that follow. */
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, detached, &ld), 0);
	CHECK_EQ(start_driver(&ld, FULL_FEATURES), 0);
}

static void test_queue_reset_under_load_other_queue_runs_on(void)
{
	unsigned long before;

	CHECK_EQ(run(&ld, 200), 0);
	CHECK_EQ(refill(&ld, true), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&ld.drv, 0, detached, &ld), 0);
	CHECK(ld.failure == NULL);
	/* Queue 1 keeps working while queue 0 is reset. */
	before = ld.done;
	CHECK_EQ(run(&ld, 300), 0);
	CHECK(ld.done >= before + 300);
	CHECK(poison_intact(&ld));
	CHECK_EQ(uvirtio_driver_queue_enable(&ld.drv, 0, 0), 0);
	CHECK(poison_intact(&ld));
	requeue_detached(&ld, 0);
	CHECK_EQ(run(&ld, 500), 0);
	CHECK_EQ(verify_all(&ld), 0);
}

static void test_queue_resize_through_queue_reset(void)
{
	CHECK_EQ(refill(&ld, true), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&ld.drv, 1, detached, &ld), 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&ld.drv, 1, 16), 0);
	CHECK_EQ(uvirtio_driver_vq(&ld.drv, 1)->num, 16);
	CHECK(poison_intact(&ld));
	requeue_detached(&ld, 1);
	CHECK_EQ(run(&ld, 500), 0);
	CHECK_EQ(verify_all(&ld), 0);
	/* And back up to the maximum. */
	CHECK_EQ(drain(&ld), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&ld.drv, 1, detached, &ld), 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&ld.drv, 1, 256), 0);
	CHECK_EQ(run(&ld, 300), 0);
	CHECK_EQ(verify_all(&ld), 0);
}

/* Suspend with requests in flight. The device finishes what it took and
 * leaves what it had not taken yet in the ring (those complete after
 * resume); from SUSPEND on, no used entry moves. */
static uint16_t used_at_suspend[CONFORMANCE_QUEUES];

static uint16_t used_idx(struct load *l, unsigned qi)
{
	return __atomic_load_n(&uvirtio_driver_vq(&l->drv, qi)->used->idx, __ATOMIC_ACQUIRE);
}

static int suspend_under_load(struct load *l)
{
	int ret = refill(l, true);

	if (ret)
		return ret;
	ret = uvirtio_driver_suspend(&l->drv, WAIT_MS);
	if (ret)
		return ret;
	reap(l);
	for (unsigned qi = 0; qi < l->nq; qi++)
		used_at_suspend[qi] = used_idx(l, qi);
	return l->failure ? -EIO : 0;
}

static bool nothing_used_since_suspend(struct load *l)
{
	for (unsigned qi = 0; qi < l->nq; qi++)
		if (used_idx(l, qi) != used_at_suspend[qi])
			return false;
	return true;
}

static void test_suspend_under_load_finishes_in_flight_and_resume_carries_on(void)
{
	uint8_t status = 0;

	CHECK_EQ(run(&ld, 200), 0);
	CHECK_EQ(suspend_under_load(&ld), 0);
	CHECK_EQ(fx.t->ops->get_status(fx.t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	/* Kicks while suspended change nothing either. */
	for (unsigned qi = 0; qi < ld.nq; qi++)
		CHECK_EQ(fx.t->ops->notify(fx.t, qi), 0);
	CHECK(nothing_used_since_suspend(&ld));
	CHECK_EQ(uvirtio_driver_resume(&ld.drv, WAIT_MS), 0);
	CHECK_EQ(run(&ld, 500), 0);
	CHECK_EQ(verify_all(&ld), 0);
}

static void test_snapshot_restore_in_new_process_resumes_under_load(void)
{
	CHECK_EQ(run(&ld, 300), 0);
	CHECK_EQ(suspend_under_load(&ld), 0);
	CHECK_EQ(fx.move(&fx), 0);
	printf("# device now served by %s\n", fx.where);
	CHECK(nothing_used_since_suspend(&ld));
	CHECK_EQ(uvirtio_driver_resume(&ld.drv, WAIT_MS), 0);
	/* What was written before the move reads back after it. */
	CHECK_EQ(verify_all(&ld), 0);
	CHECK_EQ(run(&ld, 1000), 0);
	CHECK_EQ(verify_all(&ld), 0);
}

static void test_remove_at_the_end(void)
{
	CHECK_EQ(drain(&ld), 0);
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, detached, &ld), 0);
	CHECK(ld.failure == NULL);
}

static const struct test_case cases[] = {
	T(test_initialisation_negotiates_lifecycle_features),
	T(test_verified_io_every_request_completes_once),
	T(test_device_reset_under_load_touches_no_buffer_after),
	T(test_renegotiation_with_other_features),
	T(test_queue_reset_under_load_other_queue_runs_on),
	T(test_queue_resize_through_queue_reset),
	T(test_suspend_under_load_finishes_in_flight_and_resume_carries_on),
	T(test_snapshot_restore_in_new_process_resumes_under_load),
	T(test_remove_at_the_end),
};

int main(int argc, char **argv)
{
	const char *transport = NULL, *image = NULL;
	char tmp[] = "/tmp/uvirtio-conformance-XXXXXX";
	unsigned n = sizeof(cases) / sizeof(cases[0]), failed = 0;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--transport=", 12))
			transport = argv[i] + 12;
		else if (!strncmp(argv[i], "--image=", 8))
			image = argv[i] + 8;
		else if (!strcmp(argv[i], "--device-child"))
			return fixture_device_child(argc, argv);
	}
	if (!transport) {
		fprintf(stderr, "usage: conformance --transport=loopback|mmio|pci|vhost-user\n");
		return 2;
	}
	if (!image) {
		int fd = mkstemp(tmp);

		if (fd < 0 || ftruncate(fd, (off_t)SLOTS * DATA_BYTES + (1 << 20)) < 0) {
			perror("conformance: image");
			return 1;
		}
		close(fd);
		image = tmp;
	}
	ret = fixture_create(&fx, transport, image, argv[0]);
	if (ret) {
		fprintf(stderr, "conformance: cannot set up %s: %s\n", transport, strerror(-ret));
		if (image == tmp)
			unlink(tmp);
		return 1;
	}
	printf("1..%u\n# transport %s\n", n, transport);
	for (unsigned i = 0; i < n; i++) {
		test_failed = false;
		cases[i].fn();
		if (ld.failure) {
			printf("# rule broken: %s\n", ld.failure);
			test_failed = true;
		}
		printf("%s %u - %s\n", test_failed ? "not ok" : "ok", i + 1, cases[i].name);
		fflush(stdout);
		if (test_failed) {
			failed++;
			/* Later scenarios build on this one: stop here. */
			for (unsigned k = i + 1; k < n; k++)
				printf("not ok %u - %s # an earlier scenario failed\n", k + 1, cases[k].name);
			failed += n - i - 1;
			break;
		}
	}
	fixture_destroy(&fx);
	if (image == tmp)
		unlink(tmp);
	return failed ? 1 : 0;
}
