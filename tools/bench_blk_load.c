// SPDX-License-Identifier: MIT
/*
 * `uvirtio bench blk`, the load: one thread per queue keeps --iodepth
 * requests in flight on it, and waits on the queue's event fd (or, with
 * --poll, busy-polls the used ring). Every request is timed from submit to
 * its completion callback and counted in the thread's own histogram:
 * nothing is allocated and nothing locked per request.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_blk.h"
#include "cli_parse.h"

/* splitmix64: seeds each thread's state from --seed and its index, so
 * threads draw independent streams and a run is repeatable. */
static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* xorshift64*: a few cycles per number, plenty for offsets. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A number below @n without a division (Lemire's multiply-shift). */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}
static void io_done(struct uvirtio_blk_drv_req *req)
{
	struct io *io = req->opaque;
	struct thread *t = io->t;
	uint64_t now = now_ns();

	if (req->result == -ECANCELED && t->tearing_down)
		return;
	t->free_list[t->nfree++] = (unsigned)(io - t->ios);
	if (req->result) {
		if (!t->first_error) {
			t->first_error = req->result;
			t->first_error_offset = req->sector * UVIRTIO_BLK_DRV_SECTOR_SIZE;
			t->first_error_write = io->write;
		}
		__atomic_store_n(&t->errors, t->errors + 1, __ATOMIC_RELAXED);
		return;
	}
	if (!io->measured)
		return;
	bench_hist_record(&t->stats->lat[io->write], now - io->start_ns);
	t->last_done_ns = now;
	__atomic_store_n(&t->completed, t->completed + 1, __ATOMIC_RELAXED);
}

static void set_fatal(struct thread *t, int err)
{
	struct run *r = t->run;
	uint64_t one = 1;

	t->fatal = err;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	/* Wake the other threads; a full counter is still readable. */
	if (write(r->stop_fd, &one, sizeof(one)) < 0) {
	}
}

/* Fill free slots with requests. Return: 0, or the submit error that
 * breaks the queue. */
static int submit_some(struct thread *t, uint64_t now, bool *submitted)
{
	struct run *r = t->run;
	const struct options *o = r->o;
	bool measured = now >= r->measure_ns;

	while (t->nfree) {
		struct io *io;
		uint64_t block;
		int ret;

		if (measured && (now >= r->end_ns || (o->ios && t->submitted >= t->quota)))
			return 0;
		io = &t->ios[t->free_list[t->nfree - 1]];
		if (mode_random(o->rw)) {
			block = rng_below(&t->rng, r->span_blocks);
		} else {
			block = t->next_block;
			t->next_block = block + 1 == r->span_blocks ? 0 : block + 1;
		}
		switch (o->rw) {
		case RW_RANDREAD: case RW_READ:
			io->write = false;
			break;
		case RW_RANDWRITE: case RW_WRITE:
			io->write = true;
			break;
		default:
			io->write = rng_below(&t->rng, 100) >= o->rwmixread;
		}
		io->measured = measured;
		io->req = (struct uvirtio_blk_drv_req){
			.type = io->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
			.sector = block * (o->bs / UVIRTIO_BLK_DRV_SECTOR_SIZE),
			.iov = io->iov, .niov = io->niov, .callback = io_done, .opaque = io,
		};
		io->start_ns = now_ns();
		ret = uvirtio_blk_drv_submit(&r->blk, t->queue, &io->req);
		if (ret == -EAGAIN || ret == -ENOSPC)
			return 0; /* the ring is full: poll first */
		if (ret)
			return ret;
		t->nfree--;
		if (measured)
			t->submitted++;
		*submitted = true;
	}
	return 0;
}

void *queue_thread(void *arg)
{
	struct thread *t = arg;
	struct run *r = t->run;
	const struct options *o = r->o;
	unsigned depth = o->iodepth;
	int efd = uvirtio_blk_drv_event_fd(&r->blk, t->queue);
	uint64_t one = 1;

	cli_pin_cpu(t->cpu);
	/* Start together, once the main thread has set the times (the
	 * acquire pairs with its release). */
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		sched_yield();
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		uint64_t now = now_ns();
		bool submitted = false;
		int ret, n;

		ret = submit_some(t, now, &submitted);
		if (ret) {
			set_fatal(t, ret);
			break;
		}
		/* Done: nothing more to submit and nothing in flight. */
		if (t->nfree == depth && !submitted)
			break;
		n = uvirtio_blk_drv_poll(&r->blk, t->queue, depth);
		if (n < 0) {
			set_fatal(t, n);
			break;
		}
		if (n || submitted)
			continue;
		if (o->poll) {
			cli_cpu_relax();
			continue;
		}
		/* Nothing completed and the ring is as full as it gets: sleep
		 * until the device signals, or a second passes (the run may end). */
		{
			struct pollfd pfd[2] = { { .fd = efd, .events = POLLIN },
						 { .fd = r->stop_fd, .events = POLLIN } };

			if (poll(pfd, 2, 1000) < 0 && errno != EINTR) {
				set_fatal(t, -errno);
				break;
			}
		}
	}
	if (write(r->done_fd, &one, sizeof(one)) < 0) {
	}
	return NULL;
}
int setup_threads(struct run *r, struct uvirtio_blk_drv *b)
{
	const struct options *o = r->o;
	const struct uvirtio_blk_drv_limits *l = uvirtio_blk_drv_limits(b);
	uint64_t seed = o->seed;
	size_t seg = l->size_max && l->size_max < o->bs ? l->size_max & ~(size_t)511 : (size_t)o->bs;
	unsigned niov;

	if (!seg)
		seg = 512;
	niov = (unsigned)((o->bs + seg - 1) / seg);
	if (l->seg_max && niov > l->seg_max) {
		fprintf(stderr, PROG ": --bs=%" PRIu64 " needs %u segments of %zu bytes; the backend takes %u\n",
			o->bs, niov, seg, l->seg_max);
		return -EINVAL;
	}
	for (unsigned q = 0; q < o->queues; q++) {
		struct thread *t = &r->threads[q];

		t->run = r;
		t->queue = q;
		t->cpu = o->ncpus ? o->cpus[q] : -1;
		t->rng = splitmix64(&seed);
		if (!t->rng)
			t->rng = 1; /* xorshift's one fixed point */
		t->next_block = r->span_blocks * q / o->queues;
		t->quota = o->ios ? o->ios / o->queues + (q < o->ios % o->queues) : 0;
		t->ios = calloc(o->iodepth, sizeof(*t->ios));
		t->free_list = calloc(o->iodepth, sizeof(*t->free_list));
		t->stats = malloc(sizeof(*t->stats));
		if (!t->ios || !t->free_list || !t->stats)
			return -ENOMEM;
		bench_hist_init(&t->stats->lat[0]);
		bench_hist_init(&t->stats->lat[1]);
		for (unsigned i = 0; i < o->iodepth; i++) {
			struct io *io = &t->ios[i];
			char *buf = uvirtio_blk_drv_alloc_buf(b, (size_t)o->bs);

			io->t = t;
			io->iov = calloc(niov, sizeof(*io->iov));
			if (!buf || !io->iov) {
				fprintf(stderr, PROG ": no room for %u x %u buffers of %" PRIu64 " bytes in shared memory; raise --mem-size\n",
					o->queues, o->iodepth, o->bs);
				free(io->iov);
				io->iov = NULL;
				uvirtio_blk_drv_free_buf(b, buf);
				return -ENOMEM;
			}
			io->niov = niov;
			for (unsigned s = 0; s < niov; s++) {
				size_t off = (size_t)s * seg, len = (size_t)o->bs - off < seg ? (size_t)o->bs - off : seg;

				io->iov[s] = (struct iovec){ buf + off, len };
			}
			/* Writes carry a pattern rather than zeroes a backend might elide. */
			memset(buf, 0xa5, (size_t)o->bs);
			t->free_list[t->nfree++] = i;
		}
	}
	return 0;
}

void free_threads(struct run *r, struct uvirtio_blk_drv *b)
{
	for (unsigned q = 0; q < MAX_QUEUES; q++) {
		struct thread *t = &r->threads[q];

		if (t->ios) {
			for (unsigned i = 0; i < r->o->iodepth; i++) {
				if (t->ios[i].iov)
					uvirtio_blk_drv_free_buf(b, t->ios[i].iov[0].iov_base);
				free(t->ios[i].iov);
			}
		}
		free(t->ios);
		free(t->free_list);
		free(t->stats);
	}
}
