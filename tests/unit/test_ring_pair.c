// SPDX-License-Identifier: MIT
/*
 * The two ring helpers against each other: a drvq and a devq over one
 * memory, in every combination of layout (split, packed), IN_ORDER,
 * EVENT_IDX and INDIRECT_DESC, on even and (packed) odd sizes. Thousands of
 * buffers of random shapes go through; the device completes them out of
 * order (IN_ORDER: the devq publishes them in order). Every token must come
 * back exactly once with the length the device pushed (or, inside an
 * IN_ORDER batch, its writable length, which the device only batches over),
 * and each side runs only when the other's notification decisions say so
 * (kick_prepare / needs_notify, enable_cb / enable_notify): if that ever
 * leaves work nobody will look at, the test fails as a stall.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"

#define GA 0x100000000ull
#define MEM_SIZE (8u << 20)
#define PARTS_MAX 4
#define PART_MAX 256u
#define SLOT_BYTES (PARTS_MAX * PART_MAX)
#define NUM_MAX 256

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)
#define EVENT_IDX UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)
#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)

/* A request as the test knows it; its address is the driver's token. */
struct rec {
	uint32_t out_len, in_len;
	uint32_t pushed_len; /* written by the device before it pushes */
	bool back;
	unsigned slot; /* buffer memory in use */
};

struct pair {
	char *mem_base;
	struct uvirtio_dma dma;
	struct uvirtio_mem mem;
	struct uvirtio_drvq q;
	struct uvirtio_devq dq;
	uint64_t features;
	char *bufs; /* num slots of SLOT_BYTES */
	unsigned free_slots[NUM_MAX];
	unsigned nfree_slots;
	struct rec *recs;
	unsigned nrecs, added, back;
	uint64_t rng;
};

static uint32_t rnd(struct pair *p, uint32_t n)
{
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	return (uint32_t)(p->rng % n);
}

static int pair_init(struct pair *p, unsigned num, uint64_t features, unsigned nrecs, uint64_t seed)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = MEM_SIZE, .fd = -1 };
	struct uvirtio_drvq_ring ring;
	int ret;

	memset(p, 0, sizeof(*p));
	p->mem_base = aligned_alloc(4096, MEM_SIZE);
	p->recs = calloc(nrecs, sizeof(*p->recs));
	if (!p->mem_base || !p->recs)
		return -ENOMEM;
	memset(p->mem_base, 0, MEM_SIZE);
	r.host_addr = p->mem_base;
	p->features = features | UVIRTIO_BIT(VIRTIO_F_VERSION_1);
	p->nrecs = nrecs;
	p->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	uvirtio_dma_init(&p->dma, p->mem_base, GA, MEM_SIZE);
	uvirtio_mem_init(&p->mem);
	ret = uvirtio_mem_add(&p->mem, &r);
	if (ret)
		return ret;
	ret = uvirtio_drvq_create(&p->q, &p->dma, 0, num, p->features, 0);
	if (ret)
		return ret;
	p->bufs = uvirtio_dma_alloc(&p->dma, (size_t)num * SLOT_BYTES, 64);
	if (!p->bufs)
		return -ENOMEM;
	for (unsigned i = 0; i < num; i++)
		p->free_slots[p->nfree_slots++] = i;
	uvirtio_drvq_ring(&p->q, &ring);
	return uvirtio_devq_setup(&p->dq, &p->mem, num, ring.desc, ring.avail, ring.used,
				  p->features);
}

static void pair_fini(struct pair *p)
{
	uvirtio_devq_reset(&p->dq);
	uvirtio_drvq_destroy(&p->q);
	uvirtio_dma_destroy(&p->dma);
	free(p->recs);
	free(p->mem_base);
}

/* Driver: add the next request, of random shape. 1 when added, 0 when the
 * ring is full (or every request was added), else -errno. */
static int drv_add(struct pair *p)
{
	unsigned num = uvirtio_drvq_size(&p->q);
	unsigned max_parts = num < PARTS_MAX ? num : PARTS_MAX;
	struct iovec parts[PARTS_MAX];
	unsigned n_out, n_in, slot;
	struct rec *r;
	char *b;
	int ret;

	if (p->added == p->nrecs || !p->nfree_slots)
		return 0;
	/* At least one readable part of 4 bytes or more: it carries the
	 * request's number to the device. */
	n_out = 1 + rnd(p, max_parts);
	n_in = rnd(p, max_parts - n_out + 1);
	slot = p->free_slots[p->nfree_slots - 1];
	b = p->bufs + (size_t)slot * SLOT_BYTES;
	r = &p->recs[p->added];
	*r = (struct rec){ .slot = slot };
	for (unsigned k = 0; k < n_out + n_in; k++) {
		uint32_t len = k == 0 ? 4 + rnd(p, PART_MAX - 4) : rnd(p, PART_MAX + 1);

		parts[k] = (struct iovec){ .iov_base = b + k * PART_MAX, .iov_len = len };
		if (k < n_out)
			r->out_len += len;
		else
			r->in_len += len;
	}
	memcpy(b, &p->added, 4);
	ret = uvirtio_drvq_add(&p->q, parts, n_out, parts + n_out, n_in, r);
	if (ret == -ENOSPC)
		return 0;
	if (ret)
		return ret;
	p->nfree_slots--;
	p->added++;
	return 1;
}

/* Driver: collect one used buffer. 1, 0 when none, -1 for a wrong one. */
static int drv_get(struct pair *p)
{
	void *token;
	uint32_t len;
	struct rec *r;
	int ret = uvirtio_drvq_get(&p->q, &token, &len);

	if (ret <= 0)
		return ret ? -1 : 0;
	r = token;
	if (r < p->recs || r >= p->recs + p->added || r->back) {
		printf("# token %p not in flight\n", token);
		return -1;
	}
	if (len != r->pushed_len) {
		printf("# request %u: len %u, device pushed %u\n", (unsigned)(r - p->recs), len,
		       r->pushed_len);
		return -1;
	}
	r->back = true;
	p->back++;
	p->free_slots[p->nfree_slots++] = r->slot;
	return 1;
}

/* A request the device holds. */
struct held {
	uint16_t id;
	unsigned n;
};

/* Device: take one request; checks it is what the driver made. */
static int dev_pop(struct pair *p, struct held *h)
{
	struct iovec iov[PARTS_MAX];
	struct uvirtio_req req;
	struct rec *r;
	uint32_t n;
	int ret;

	uvirtio_req_init(&req, iov, PARTS_MAX);
	ret = uvirtio_devq_pop(&p->dq, &req);
	if (ret <= 0)
		return ret;
	if (req.n_out == 0 || iov[0].iov_len < 4)
		return -EPROTO;
	memcpy(&n, iov[0].iov_base, 4);
	if (n >= p->nrecs)
		return -EPROTO;
	r = &p->recs[n];
	if (req.out_len != r->out_len || req.in_len != r->in_len)
		return -EPROTO;
	*h = (struct held){ .id = req.id, .n = n };
	return 1;
}

/* Device: the length to push; full-length often, so IN_ORDER batches. */
static uint32_t dev_len(struct pair *p, const struct held *h)
{
	uint32_t in_len = p->recs[h->n].in_len;

	return rnd(p, 2) ? in_len : rnd(p, in_len + 1);
}

struct sim {
	struct held held[NUM_MAX];
	unsigned nheld;
	bool kicked, dev_polling, irq, drv_polling;
	unsigned kicks, irqs;
};

/* The device runs only when kicked or when enable_notify said so. */
static int sim_dev_pop(struct pair *p, struct sim *s)
{
	int ret;

	if (!s->kicked && !s->dev_polling)
		return 0;
	s->kicked = false;
	uvirtio_devq_disable_notify(&p->dq);
	while ((ret = dev_pop(p, &s->held[s->nheld])) == 1)
		s->nheld++;
	if (ret < 0)
		return ret;
	/* Before it would sleep: ask for kicks, and look once more. */
	s->dev_polling = uvirtio_devq_enable_notify(&p->dq);
	return 1;
}

/* The device completes a random subset of what it holds, in random order;
 * its I/O finishing needs no kick. */
static int sim_dev_complete(struct pair *p, struct sim *s)
{
	struct uvirtio_used batch[NUM_MAX];
	unsigned n = 0, want;

	if (!s->nheld)
		return 0;
	want = 1 + rnd(p, s->nheld);
	while (n < want) {
		unsigned k = rnd(p, s->nheld);
		struct held h = s->held[k];
		uint32_t len = dev_len(p, &h);

		s->held[k] = s->held[--s->nheld];
		p->recs[h.n].pushed_len = len;
		batch[n++] = (struct uvirtio_used){ .id = h.id, .len = len };
	}
	if (rnd(p, 2)) {
		if (uvirtio_devq_push_batch(&p->dq, batch, n))
			return -EIO;
	} else {
		for (unsigned i = 0; i < n; i++)
			if (uvirtio_devq_push(&p->dq, (uint16_t)batch[i].id, batch[i].len))
				return -EIO;
	}
	if (uvirtio_devq_needs_notify(&p->dq)) {
		s->irq = true;
		s->irqs++;
	}
	return 1;
}

/* IN_ORDER: inside a batch the driver reports the writable length, which
 * is what the device pushed (it batches only full-length completions); so
 * pushed_len is exact in every mode. */

/* The driver collects only on an interrupt or when enable_cb said so. */
static int sim_drv_collect(struct pair *p, struct sim *s, bool delayed)
{
	int ret;

	if (!s->irq && !s->drv_polling)
		return 0;
	s->irq = false;
	uvirtio_drvq_disable_cb(&p->q);
	while ((ret = drv_get(p)) == 1)
		;
	if (ret < 0)
		return ret;
	s->drv_polling = !(delayed ? uvirtio_drvq_enable_cb_delayed(&p->q) : uvirtio_drvq_enable_cb(&p->q));
	return 1;
}

static int sim_drv_add(struct pair *p, struct sim *s)
{
	unsigned n = 0, want = 1 + rnd(p, 8);
	int ret;

	while (n < want && (ret = drv_add(p)) == 1)
		n++;
	if (ret < 0)
		return ret;
	if (n && uvirtio_drvq_kick_prepare(&p->q)) {
		s->kicked = true;
		s->kicks++;
	}
	return n > 0;
}

/* Runs @nrecs requests through one configuration; 0, or -1 after printing
 * what went wrong. */
static int run_pair(unsigned num, uint64_t features, unsigned nrecs, uint64_t seed)
{
	struct pair p;
	struct sim s = { 0 };
	bool delayed = seed & 1;
	int ret = pair_init(&p, num, features, nrecs, seed);

	if (ret) {
		printf("# setup: %d\n", ret);
		pair_fini(&p);
		return -1;
	}
	while (p.back < nrecs) {
		int a, b, c, d;

		a = sim_drv_add(&p, &s);
		b = sim_dev_pop(&p, &s);
		c = sim_dev_complete(&p, &s);
		d = sim_drv_collect(&p, &s, delayed);
		if (a < 0 || b < 0 || c < 0 || d < 0) {
			printf("# error add %d pop %d complete %d collect %d; drvq %s, devq %s\n", a, b,
			       c, d, uvirtio_drvq_broken_reason(&p.q) ?: "ok",
			       uvirtio_devq_broken_reason(&p.dq) ?: "ok");
			ret = -1;
			break;
		}
		if (!a && !b && !c && !d) {
			printf("# stall: %u added, %u back, device holds %u, num_free %u\n", p.added,
			       p.back, s.nheld, uvirtio_drvq_num_free(&p.q));
			ret = -1;
			break;
		}
	}
	if (!ret && (uvirtio_drvq_num_free(&p.q) != num || uvirtio_drvq_is_broken(&p.q) ||
		     uvirtio_devq_is_broken(&p.dq))) {
		printf("# after the run: num_free %u\n", uvirtio_drvq_num_free(&p.q));
		ret = -1;
	}
	if (ret)
		printf("# num %u features %#llx seed %llu\n", num, (unsigned long long)features,
		       (unsigned long long)seed);
	pair_fini(&p);
	return ret;
}

/* Every combination of IN_ORDER, EVENT_IDX and INDIRECT over @layout. */
static int run_all(uint64_t layout, const unsigned *sizes, unsigned nsizes)
{
	static const uint64_t opts[] = { IN_ORDER, EVENT_IDX, INDIRECT };
	uint64_t seed = 1;

	for (unsigned m = 0; m < 8; m++) {
		uint64_t f = layout;

		for (unsigned i = 0; i < 3; i++)
			if (m & (1u << i))
				f |= opts[i];
		for (unsigned i = 0; i < nsizes; i++)
			for (unsigned rep = 0; rep < 2; rep++)
				if (run_pair(sizes[i], f, 3000, seed++))
					return -1;
	}
	return 0;
}

static void test_pair_split_every_token_back_once_never_stalls(void)
{
	static const unsigned sizes[] = { 1, 4, 8, 64, 256 };

	CHECK_EQ(run_all(0, sizes, 5), 0);
}

static void test_pair_packed_every_token_back_once_never_stalls(void)
{
	static const unsigned sizes[] = { 1, 3, 5, 8, 63, 255 };

	CHECK_EQ(run_all(PACKED, sizes, 6), 0);
}

/* Notification data the driver would send is what the device records. */
static void test_pair_notification_data_recorded_by_device(void)
{
	static const uint64_t layouts[] = { 0, PACKED };

	for (unsigned l = 0; l < 2; l++) {
		struct pair p;
		struct sim s = { 0 };
		uint16_t avail;

		CHECK_EQ(pair_init(&p, l ? 5 : 4, layouts[l] | UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA),
				   200, 7),
			 0);
		while (p.back < 200) {
			CHECK(sim_drv_add(&p, &s) >= 0);
			CHECK_EQ(uvirtio_devq_note_notification(&p.dq,
				     uvirtio_drvq_notification_data(&p.q)), 0);
			CHECK(uvirtio_devq_notified_avail(&p.dq, &avail));
			CHECK_EQ(avail, uvirtio_drvq_avail_index(&p.q));
			s.kicked = true;
			CHECK(sim_dev_pop(&p, &s) >= 0);
			while (s.nheld)
				CHECK(sim_dev_complete(&p, &s) >= 0);
			s.irq = true;
			CHECK(sim_drv_collect(&p, &s, false) >= 0);
		}
		CHECK_EQ(uvirtio_devq_next_avail(&p.dq), uvirtio_drvq_avail_index(&p.q));
		CHECK_EQ(uvirtio_devq_used_index(&p.dq), uvirtio_drvq_used_index(&p.q));
		pair_fini(&p);
	}
}

/* Two threads: the driver adds and collects, the device serves; each sleeps
 * until the other notifies it, exactly as the notification calls decide. */
struct threaded {
	struct pair p;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool kick, irq, stop;
	uint64_t dev_rng;
	int dev_error;
};

/* Waits for @flag: 1 when it came, 0 when told to stop, -1 when it took
 * so long that something is stuck (a lost notification: a deadlock
 * detector, not an assumption about speed). */
static int wait_flag(struct threaded *t, bool *flag)
{
	struct timespec ts;
	int ret = 1;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 60;
	pthread_mutex_lock(&t->lock);
	while (!*flag && !t->stop && ret == 1)
		if (pthread_cond_timedwait(&t->cond, &t->lock, &ts))
			ret = -1;
	if (ret == 1 && !*flag)
		ret = 0;
	*flag = false;
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static void set_dev_error(struct threaded *t, int err)
{
	__atomic_store_n(&t->dev_error, err, __ATOMIC_RELAXED);
}

static int dev_error(struct threaded *t)
{
	return __atomic_load_n(&t->dev_error, __ATOMIC_RELAXED);
}

static void raise_flag(struct threaded *t, bool *flag)
{
	pthread_mutex_lock(&t->lock);
	*flag = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void *device_thread(void *arg)
{
	struct threaded *t = arg;
	struct pair *p = &t->p;

	for (;;) {
		struct held held[NUM_MAX];
		struct uvirtio_used batch[NUM_MAX];
		unsigned n = 0;
		int ret = wait_flag(t, &t->kick);

		if (ret <= 0) {
			if (ret < 0)
				set_dev_error(t, -ETIMEDOUT);
			break;
		}
		for (;;) {
			uvirtio_devq_disable_notify(&p->dq);
			n = 0;
			while (n < NUM_MAX && (ret = dev_pop(p, &held[n])) == 1)
				n++;
			if (ret < 0) {
				set_dev_error(t, ret);
				raise_flag(t, &t->irq);
				return NULL;
			}
			if (!n) {
				if (!uvirtio_devq_enable_notify(&p->dq))
					break;
				continue;
			}
			/* Complete in a random order. */
			for (unsigned i = n; i > 1; i--) {
				unsigned k = (unsigned)(t->dev_rng = t->dev_rng * 6364136223846793005ull + 1) % i;
				struct held h = held[k];

				held[k] = held[i - 1];
				held[i - 1] = h;
			}
			for (unsigned i = 0; i < n; i++) {
				struct rec *r = &p->recs[held[i].n];
				uint32_t len = (t->dev_rng >> 33) & 1 ? r->in_len : r->in_len / 2;

				t->dev_rng = t->dev_rng * 6364136223846793005ull + 1;
				r->pushed_len = len;
				batch[i] = (struct uvirtio_used){ .id = held[i].id, .len = len };
			}
			if (uvirtio_devq_push_batch(&p->dq, batch, n)) {
				set_dev_error(t, -EIO);
				raise_flag(t, &t->irq);
				return NULL;
			}
			if (uvirtio_devq_needs_notify(&p->dq))
				raise_flag(t, &t->irq);
		}
	}
	return NULL;
}

static int run_threaded(unsigned num, uint64_t features, unsigned nrecs)
{
	struct threaded t = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
			      .dev_rng = 99 };
	struct pair *p = &t.p;
	pthread_t dev;
	int ret = pair_init(p, num, features, nrecs, 3);

	if (ret || pthread_create(&dev, NULL, device_thread, &t)) {
		pair_fini(p);
		return -1;
	}
	while (p->back < nrecs && !ret) {
		int added = 0, got = 0, r;

		while ((r = drv_add(p)) == 1)
			added++;
		if (r < 0) {
			ret = -1;
			break;
		}
		if (added && uvirtio_drvq_kick_prepare(&p->q))
			raise_flag(&t, &t.kick);
		while ((r = drv_get(p)) == 1)
			got++;
		if (r < 0 || dev_error(&t)) {
			ret = -1;
			break;
		}
		if (got || added)
			continue;
		/* Nothing to do: sleep for an interrupt, if enable_cb lets us. */
		if (!uvirtio_drvq_enable_cb(&p->q))
			continue;
		if (wait_flag(&t, &t.irq) < 0) {
			printf("# stall: %u added, %u back\n", p->added, p->back);
			ret = -1;
		}
		uvirtio_drvq_disable_cb(&p->q);
	}
	raise_flag(&t, &t.stop);
	pthread_join(dev, NULL);
	if (dev_error(&t))
		printf("# device: %d (%s)\n", dev_error(&t), uvirtio_devq_broken_reason(&p->dq) ?: "-");
	ret = ret || dev_error(&t) ? -1 : 0;
	pair_fini(p);
	return ret;
}

static void test_pair_threaded_split_and_packed_every_token_back_once(void)
{
	CHECK_EQ(run_threaded(64, EVENT_IDX, 30000), 0);
	CHECK_EQ(run_threaded(63, PACKED | EVENT_IDX | INDIRECT, 30000), 0);
	CHECK_EQ(run_threaded(16, PACKED | IN_ORDER, 20000), 0);
	CHECK_EQ(run_threaded(16, IN_ORDER | INDIRECT | EVENT_IDX, 20000), 0);
}

TEST_MAIN(T(test_pair_split_every_token_back_once_never_stalls),
	  T(test_pair_packed_every_token_back_once_never_stalls),
	  T(test_pair_notification_data_recorded_by_device),
	  T(test_pair_threaded_split_and_packed_every_token_back_once))
