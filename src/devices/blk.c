// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <liburing.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../core/spin.h"
#include "blk_priv.h"
#ifdef UVIRTIO_FAULT_INJECTION
#include "blk_fault.h"
#endif

/* seg_max counts data segments; a request adds a header and a status byte,
 * and a buffer that crosses from one memory region into the next takes one
 * more iovec. */
#define IOV_EXTRA 10u
#define SEG_MAX_LIMIT (UVIRTIO_BLK_QUEUE_SIZE_MAX - 2)
/* Sectors per DISCARD / WRITE_ZEROES segment: 2 GiB. */
#define DISCARD_SECTORS_MAX (1u << 22)
#define SIZE_MAX_DEFAULT (1u << 20)
/* The kernel's limit on iovecs per readv/writev (UIO_MAXIOV). */
#define URING_IOV_MAX 1024u
/* Tries of a transfer that keeps failing with EAGAIN or EINTR and moves no
 * byte, before it is answered IOERR: a retry is not a sleep, so a failure
 * that persists would otherwise spin the queue thread (and keep queue_stop
 * from returning). */
#define RETRY_MAX 64u

struct blk_slot {
	struct uvirtio_req req;
	struct blk_parsed p;
	uint32_t done;      /* data bytes transferred so far */
	unsigned retries;   /* EAGAIN/EINTR in a row, without progress */
	bool buffered;      /* goes through the buffered fd instead of O_DIRECT */
	bool dsync;         /* a write in writethrough mode */
};

struct uvirtio_blk_queue {
	struct blk_dev *blk;
	unsigned index;
	struct uvirtio_devq *vq;
	int wake_fd, stop_fd, cq_fd; /* eventfds, ours for the device's life */

	/* Between queue_start and queue_stop. */
	pthread_t thread;
	bool stopping; /* atomic: queue_stop asked the thread to finish */
	int kick_fd;
	struct io_uring ring;
	struct blk_slot *slots;
	struct iovec *iovs;
	unsigned nslots, iov_cap;
	unsigned *free;     /* indices of free slots */
	unsigned nfree;
	unsigned submitted; /* slots with an I/O in io_uring */
	struct uvirtio_used *done;
	unsigned ndone;
	bool broken;        /* the ring broke: take nothing more from it */
	struct virtio_blk_discard_write_zeroes segs[BLK_DISCARD_SEG_LIMIT];

	struct uvirtio_blk_dev_stats stats; /* written by the thread only */
};

/* Queue threads. */

/* Give every completed request back with one index update, then notify. */
static void flush_done(struct uvirtio_blk_queue *bq)
{
	if (!bq->ndone)
		return;
	/* Fails only when the queue broke meanwhile: the driver must reset
	 * then and will not look at the used ring again. */
	(void)uvirtio_devq_push_batch(bq->vq, bq->done, bq->ndone);
	bq->ndone = 0;
	uvirtio_device_notify(&bq->blk->dev, bq->index);
}

static void complete(struct uvirtio_blk_queue *bq, struct blk_slot *s, uint32_t used)
{
#ifdef UVIRTIO_FAULT_INJECTION
	/* Test builds: a fault may forget this request or hang the queue. */
	enum blk_fault_action fault = blk_fault_complete(&s->req, &s->p, &used);

	bq->broken |= fault == BLK_FAULT_HANG;
	if (fault == BLK_FAULT_DROP) {
		bq->free[bq->nfree++] = (unsigned)(s - bq->slots);
		return;
	}
#endif
	if (bq->ndone == bq->nslots)
		flush_done(bq);
	bq->done[bq->ndone++] = (struct uvirtio_used){ .id = s->req.id, .len = used };
	bq->free[bq->nfree++] = (unsigned)(s - bq->slots);
}

static void submit_rw(struct uvirtio_blk_queue *bq, struct blk_slot *s);

/* Hand @s's next step to io_uring; a full submission queue is flushed
 * first (it cannot stay full: it holds one entry per slot). */
static struct io_uring_sqe *get_sqe(struct uvirtio_blk_queue *bq)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&bq->ring);

	if (!sqe) {
		io_uring_submit(&bq->ring);
		sqe = io_uring_get_sqe(&bq->ring);
	}
	return sqe;
}

static void submit_rw(struct uvirtio_blk_queue *bq, struct blk_slot *s)
{
	struct blk_dev *blk = bq->blk;
	struct io_uring_sqe *sqe = get_sqe(bq);
	unsigned n = s->p.ndata > URING_IOV_MAX ? URING_IOV_MAX : s->p.ndata;
	int fd = s->buffered ? blk->buffered_fd : blk->fd;

	if (!sqe) {
		complete(bq, s, blk_finish(&s->p, &bq->stats, -EAGAIN, 0));
		return;
	}
	if (s->p.type == VIRTIO_BLK_T_IN)
		io_uring_prep_readv(sqe, fd, s->p.data, n, s->p.off + s->done);
	else
		io_uring_prep_writev2(sqe, fd, s->p.data, n, s->p.off + s->done,
				      s->dsync ? RWF_DSYNC : 0);
	io_uring_sqe_set_data(sqe, s);
	bq->submitted++;
}

static void submit_flush(struct uvirtio_blk_queue *bq, struct blk_slot *s)
{
	struct io_uring_sqe *sqe = get_sqe(bq);

	if (!sqe) {
		complete(bq, s, blk_finish(&s->p, &bq->stats, -EAGAIN, 0));
		return;
	}
	io_uring_prep_fsync(sqe, bq->blk->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(sqe, s);
	bq->submitted++;
}

/* Drop @bytes from the front of a slot's data iovecs. */
static void advance(struct blk_slot *s, size_t bytes)
{
	while (s->p.ndata && bytes >= s->p.data->iov_len) {
		bytes -= s->p.data->iov_len;
		s->p.data++;
		s->p.ndata--;
	}
	if (s->p.ndata && bytes) {
		s->p.data->iov_base = (char *)s->p.data->iov_base + bytes;
		s->p.data->iov_len -= bytes;
	}
}

static void io_done(struct uvirtio_blk_queue *bq, struct blk_slot *s, int res)
{
	struct blk_dev *blk = bq->blk;
	bool in = s->p.type == VIRTIO_BLK_T_IN;

	bq->submitted--;
	if (s->p.type == VIRTIO_BLK_T_FLUSH) {
		complete(bq, s, blk_finish(&s->p, &bq->stats, res < 0 ? res : 0, 0));
		return;
	}
	/* O_DIRECT refused this transfer after all (the filesystem wants a
	 * larger alignment than the device's block size): go buffered. */
	if (res == -EINVAL && blk->direct && !s->buffered) {
		s->buffered = true;
		blk_count(&bq->stats.direct_fallbacks, 1);
		submit_rw(bq, s);
		return;
	}
	if ((res == -EAGAIN || res == -EINTR) && ++s->retries < RETRY_MAX) {
		submit_rw(bq, s);
		return;
	}
	/* An end of file: the image shrank under us. */
	if (res <= 0) {
		complete(bq, s, blk_finish(&s->p, &bq->stats, res ? res : -EIO, 0));
		return;
	}
	s->done += (uint32_t)res;
	s->retries = 0;
	if (s->done < s->p.len) {
		/* A short transfer: go on from where it stopped. */
		advance(s, (size_t)res);
		submit_rw(bq, s);
		return;
	}
	blk_count(in ? &bq->stats.bytes_read : &bq->stats.bytes_written, s->p.len);
	if (s->dsync)
		blk_count(&bq->stats.writethrough, 1);
	complete(bq, s, blk_finish(&s->p, &bq->stats, 0, in ? s->p.len : 0));
}

static void start_request(struct uvirtio_blk_queue *bq, struct blk_slot *s)
{
	struct blk_dev *blk = bq->blk;
	bool null = blk->backend == UVIRTIO_BLK_BACKEND_NULL;

	s->done = 0;
	s->retries = 0;
	s->buffered = false;
	s->dsync = false;
	switch (blk_parse(blk, &s->req, &s->p, bq->segs, &bq->stats)) {
	case ANSWER:
		complete(bq, s, blk_write_status(&s->p, &bq->stats));
		return;
	case DO_READ:
	case DO_WRITE:
		if (null) {
			complete(bq, s, blk_finish(&s->p, &bq->stats, 0,
					       s->p.type == VIRTIO_BLK_T_IN ? s->p.len : 0));
			return;
		}
		s->dsync = s->p.type == VIRTIO_BLK_T_OUT && !blk_writeback(blk);
		if (blk->direct && !blk_backend_direct_ok(blk, s->p.data, s->p.ndata, s->p.off)) {
			s->buffered = true;
			blk_count(&bq->stats.direct_fallbacks, 1);
		}
		submit_rw(bq, s);
		return;
	case DO_FLUSH:
		if (null)
			complete(bq, s, blk_finish(&s->p, &bq->stats, 0, 0));
		else
			submit_flush(bq, s);
		return;
	case DO_DISCARD:
		complete(bq, s, blk_finish(&s->p, &bq->stats, blk_do_discard(blk, &s->p, bq->segs), 0));
		return;
	}
}

enum take_result { RING_EMPTY, NO_SLOT, RING_BROKEN, BUDGET_SPENT };

/* Take requests while there are free slots, at most a queue's worth (so a
 * driver that keeps adding cannot keep the thread from its completions). */
static enum take_result take_requests(struct uvirtio_blk_queue *bq)
{
	for (unsigned budget = bq->nslots; budget; budget--) {
		struct blk_slot *s;
		int ret;

		if (!bq->nfree)
			return NO_SLOT;
		s = &bq->slots[bq->free[bq->nfree - 1]];
		uvirtio_req_init(&s->req, bq->iovs + (size_t)(s - bq->slots) * bq->iov_cap, bq->iov_cap);
		ret = uvirtio_devq_pop(bq->vq, &s->req);
		if (ret == 0)
			return RING_EMPTY;
		if (ret < 0) {
			/* The core has set DEVICE_NEEDS_RESET; the requests we
			 * hold still finish, but nothing more is taken. */
			bq->broken = true;
			return RING_BROKEN;
		}
		bq->nfree--;
		start_request(bq, s);
	}
	return BUDGET_SPENT;
}

static void reap(struct uvirtio_blk_queue *bq, bool wait)
{
	struct io_uring_cqe *cqe;

	if (io_uring_sq_ready(&bq->ring))
		io_uring_submit(&bq->ring);
	if (wait && bq->submitted && io_uring_wait_cqe(&bq->ring, &cqe) < 0)
		return;
	while (io_uring_peek_cqe(&bq->ring, &cqe) == 0) {
		struct blk_slot *s = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&bq->ring, cqe);
		io_done(bq, s, res);
	}
	if (io_uring_sq_ready(&bq->ring))
		io_uring_submit(&bq->ring);
}

/* Sleep until a kick, a completion or a stop. */
static void wait_events(struct uvirtio_blk_queue *bq, bool want_kicks)
{
	struct pollfd fds[4] = {
		{ .fd = bq->stop_fd, .events = POLLIN },
		{ .fd = bq->cq_fd, .events = POLLIN },
		{ .fd = bq->wake_fd, .events = POLLIN },
		{ .fd = want_kicks ? bq->kick_fd : -1, .events = POLLIN },
	};

	if (poll(fds, 4, -1) <= 0)
		return;
	for (unsigned i = 1; i < 4; i++)
		if (fds[i].revents & POLLIN)
			eventfd_drain(fds[i].fd);
}

static bool stopping(struct uvirtio_blk_queue *bq)
{
	return __atomic_load_n(&bq->stopping, __ATOMIC_ACQUIRE);
}

/* The ring ran dry: keep looking at it, and at io_uring's completions, for
 * poll_ns before sleeping. Returns true when there is work (or a stop).
 * Kicks stay disabled meanwhile, so a driver that adds its next request in
 * the window makes no system call and this thread needs no wake-up; both
 * cost more than the window at queue depth 1, and at depth 32 they are
 * what keeps a sleeping device from keeping up. */
static bool poll_before_sleep(struct uvirtio_blk_queue *bq)
{
	uint64_t deadline;

	if (!bq->blk->poll_ns)
		return false;
	deadline = spin_now_ns() + bq->blk->poll_ns;
	for (unsigned i = 1;; i++) {
		if (uvirtio_devq_has_avail(bq->vq) || io_uring_cq_ready(&bq->ring) || stopping(bq))
			return true;
		spin_relax();
		/* The clock is read now and then: it costs more than a look. */
		if (!(i % 32) && spin_now_ns() >= deadline)
			return false;
	}
}

static void *queue_thread(void *arg)
{
	struct uvirtio_blk_queue *bq = arg;
	bool poll_mode = bq->blk->poll;

	/* Kicks are not needed while the thread looks at the ring anyway; it
	 * asks for them again only before it sleeps. */
	uvirtio_devq_disable_notify(bq->vq);
	while (!stopping(bq)) {
		enum take_result r = bq->broken ? RING_BROKEN : take_requests(bq);

		reap(bq, false);
		flush_done(bq);
		if (r == BUDGET_SPENT || (poll_mode && !bq->broken))
			continue;
		/* Out of slots when it looked, but the completions reaped since
		 * freed some. Their wake-up may have been spent on the last
		 * sleep, and with no I/O left in flight none would come: look
		 * at the ring again instead. (With every slot still busy, a
		 * completion not reaped yet was posted after the last drain of
		 * cq_fd, so it wakes us.) */
		if (r == NO_SLOT && bq->nfree)
			continue;
		if (r == RING_EMPTY && poll_before_sleep(bq))
			continue;
		/* spec, notification suppression: ask for kicks, then look
		 * again, or a request added meanwhile would wait for a kick
		 * that was never sent. */
		if (r == RING_EMPTY && uvirtio_devq_enable_notify(bq->vq)) {
			uvirtio_devq_disable_notify(bq->vq);
			continue;
		}
		/* Out of slots: only a completion helps, kicks would spin us. */
		wait_events(bq, r == RING_EMPTY);
		if (!bq->broken)
			uvirtio_devq_disable_notify(bq->vq);
	}
	/* Stop: every request taken completes and is pushed, so the next
	 * avail index equals the used index and nothing is lost. */
	while (bq->submitted) {
		reap(bq, true);
		flush_done(bq);
	}
	flush_done(bq);
	return NULL;
}

static void queue_free(struct uvirtio_blk_queue *bq)
{
	free(bq->slots);
	free(bq->iovs);
	free(bq->free);
	free(bq->done);
	bq->slots = NULL;
	bq->iovs = NULL;
	bq->free = NULL;
	bq->done = NULL;
}

static int blk_queue_start(struct uvirtio_device *dev, unsigned index)
{
	struct blk_dev *blk = uvirtio_device_priv(dev);
	struct uvirtio_blk_queue *bq = &blk->queues[index];
	unsigned num = uvirtio_devq_size(bq->vq);
	int ret;

	/* Slots, iovecs and the ring are sized to the queue here, so the
	 * data path allocates nothing. */
	bq->nslots = num;
	bq->iov_cap = blk->seg_max + IOV_EXTRA;
	bq->slots = calloc(num, sizeof(*bq->slots));
	bq->iovs = calloc((size_t)num * bq->iov_cap, sizeof(*bq->iovs));
	bq->free = calloc(num, sizeof(*bq->free));
	bq->done = calloc(num, sizeof(*bq->done));
	if (!bq->slots || !bq->iovs || !bq->free || !bq->done) {
		queue_free(bq);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < num; i++)
		bq->free[i] = num - 1 - i;
	bq->nfree = num;
	bq->ndone = bq->submitted = 0;
	bq->broken = false;
	ret = io_uring_queue_init(num, &bq->ring, 0);
	if (ret < 0) {
		queue_free(bq);
		return ret;
	}
	ret = io_uring_register_eventfd(&bq->ring, bq->cq_fd);
	if (ret < 0)
		goto fail;
	bq->kick_fd = uvirtio_device_queue_kick_fd(dev, index);
	eventfd_drain(bq->stop_fd);
	__atomic_store_n(&bq->stopping, false, __ATOMIC_RELEASE);
	ret = -pthread_create(&bq->thread, NULL, queue_thread, bq);
	if (ret)
		goto fail;
	return 0;

fail:
	io_uring_queue_exit(&bq->ring);
	queue_free(bq);
	return ret;
}

static void blk_queue_stop(struct uvirtio_device *dev, unsigned index)
{
	struct blk_dev *blk = uvirtio_device_priv(dev);
	struct uvirtio_blk_queue *bq = &blk->queues[index];

	__atomic_store_n(&bq->stopping, true, __ATOMIC_RELEASE);
	eventfd_signal(bq->stop_fd);
	pthread_join(bq->thread, NULL);
	io_uring_queue_exit(&bq->ring);
	queue_free(bq);
}

/* A transport without kick fds: wake the queue's thread. */
static void blk_queue_notify(struct uvirtio_device *dev, unsigned index)
{
	struct blk_dev *blk = uvirtio_device_priv(dev);

	eventfd_signal(blk->queues[index].wake_fd);
}

/* Device ops. */

static void set_writeback(struct blk_dev *blk, bool on)
{
	__atomic_store_n(&blk->writeback, on, __ATOMIC_RELEASE);
}

static int blk_validate_features(struct uvirtio_device *dev, uint64_t features)
{
	struct blk_dev *blk = uvirtio_device_priv(dev);

	/* spec: with CONFIG_WCE but not FLUSH the device SHOULD start in
	 * writethrough mode. Set here, at FEATURES_OK, because Linux reads
	 * the cache mode before DRIVER_OK. */
	if ((features & UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE)) &&
	    !(features & UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH)))
		blk->config.wce = 0;
	return 0;
}

static int blk_start(struct uvirtio_device *dev)
{
	struct blk_dev *blk = uvirtio_device_priv(dev);

	/* Without FLUSH the driver cannot make writes durable: writethrough. */
	set_writeback(blk, blk_has(blk, VIRTIO_BLK_F_FLUSH) &&
			   (blk_has(blk, VIRTIO_BLK_F_CONFIG_WCE) ? blk->config.wce : blk->initial_wce));
	return 0;
}

static int blk_config_write(struct uvirtio_device *dev, unsigned offset, const void *buf, unsigned len)
{
	struct blk_dev *blk = uvirtio_device_priv(dev);
	uint8_t v;

	/* spec: writeback is the only writable field, and only with CONFIG_WCE. */
	if (!blk_has(blk, VIRTIO_BLK_F_CONFIG_WCE))
		return -EPERM;
	if (offset != offsetof(struct virtio_blk_config, wce) || len != 1)
		return -EPERM;
	memcpy(&v, buf, 1);
	if (v > 1)
		return -EINVAL;
	if (uvirtio_device_running(dev))
		set_writeback(blk, v && blk_has(blk, VIRTIO_BLK_F_FLUSH));
	return 0;
}

static void blk_reset(struct uvirtio_device *dev)
{
	struct blk_dev *blk = uvirtio_device_priv(dev);

	/* The queue threads are gone (the core stopped each queue first). */
	blk->config.wce = blk->initial_wce;
	set_writeback(blk, false);
}

/* Set-up. */

static int log2_exact(uint32_t v)
{
	int n = 0;

	if (!v || (v & (v - 1)))
		return -1;
	while (v >>= 1)
		n++;
	return n;
}

static void fill_config(struct blk_dev *blk, const struct uvirtio_blk_dev_config *cfg,
			uint32_t blk_size, uint32_t physical, unsigned nq)
{
	struct virtio_blk_config *c = &blk->config;
	uint32_t max_dseg = cfg->max_discard_seg ? cfg->max_discard_seg : UVIRTIO_BLK_DISCARD_SEG_DEFAULT;
	uint32_t max_wseg = cfg->max_write_zeroes_seg ? cfg->max_write_zeroes_seg
						      : UVIRTIO_BLK_DISCARD_SEG_DEFAULT;
	int pexp = physical > blk_size ? log2_exact(physical / blk_size) : 0;

	c->capacity = htole64(blk->capacity);
	c->size_max = htole32(cfg->size_max ? cfg->size_max : SIZE_MAX_DEFAULT);
	c->seg_max = htole32(blk->seg_max);
	c->blk_size = htole32(blk_size);
	c->physical_block_exp = (uint8_t)(pexp > 0 ? pexp : 0);
	c->alignment_offset = 0;
	c->min_io_size = htole16(1);
	c->opt_io_size = 0;
	c->wce = blk->initial_wce;
	c->num_queues = htole16((uint16_t)nq);
	c->max_discard_sectors = htole32(DISCARD_SECTORS_MAX);
	c->max_discard_seg = htole32(max_dseg);
	c->discard_sector_alignment = htole32(blk_size / BLK_SECTOR);
	c->max_write_zeroes_sectors = htole32(DISCARD_SECTORS_MAX);
	c->max_write_zeroes_seg = htole32(max_wseg);
	c->write_zeroes_may_unmap = 1;
}

int uvirtio_blk_dev_init(struct uvirtio_blk_dev *public_blk, const struct uvirtio_blk_dev_config *cfg,
			 struct uvirtio_mem *mem)
{
	struct blk_dev *blk = blk_dev_of(public_blk);
	unsigned nq = cfg->num_queues ? cfg->num_queues : 1;
	uint32_t logical, physical, blk_size;
	uint64_t features;
	unsigned made = 0;
	int ret;

	memset(public_blk, 0, sizeof(*public_blk));
	blk->fd = blk->buffered_fd = -1;
	if (nq > UVIRTIO_BLK_QUEUES_MAX || cfg->seg_max > SEG_MAX_LIMIT ||
	    cfg->max_discard_seg > BLK_DISCARD_SEG_LIMIT || cfg->max_write_zeroes_seg > BLK_DISCARD_SEG_LIMIT)
		return -EINVAL;
	if (cfg->blk_size && (log2_exact(cfg->blk_size) < 9 || cfg->blk_size > 65536))
		return -EINVAL;
	blk->backend = cfg->backend;
	blk->read_only = cfg->read_only;
	blk->direct = cfg->direct && cfg->backend == UVIRTIO_BLK_BACKEND_FILE;
	blk->poll = cfg->poll;
	blk->poll_ns = cfg->poll_us < 0 ? 0
		       : 1000ull * (uint64_t)(cfg->poll_us ? cfg->poll_us : UVIRTIO_BLK_POLL_US_DEFAULT);
	blk->seg_max = cfg->seg_max ? cfg->seg_max : UVIRTIO_BLK_SEG_MAX_DEFAULT;
	blk->initial_wce = !cfg->writethrough;
	/* The serial is 20 bytes, NUL-padded, not NUL-terminated when full. */
	if (cfg->serial)
		memcpy(blk->serial, cfg->serial, strnlen(cfg->serial, sizeof(blk->serial)));

	ret = blk_backend_open(blk, cfg, &logical, &physical);
	if (ret)
		return ret;
	ret = -EINVAL;
	if (!blk->capacity)
		goto fail;
	blk_size = cfg->blk_size ? cfg->blk_size : logical;
	fill_config(blk, cfg, blk_size, physical, nq);

	ret = -ENOMEM;
	blk->queues = calloc(nq, sizeof(*blk->queues));
	if (!blk->queues)
		goto fail;
	for (made = 0; made < nq; made++) {
		struct uvirtio_blk_queue *bq = &blk->queues[made];

		bq->blk = blk;
		bq->index = made;
		bq->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		bq->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		bq->cq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (bq->wake_fd < 0 || bq->stop_fd < 0 || bq->cq_fd < 0) {
			ret = -errno;
			made++;
			goto fail;
		}
	}

	features = UVIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
		   UVIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | UVIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |
		   UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |
		   UVIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | UVIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if (nq > 1)
		features |= UVIRTIO_BIT(VIRTIO_BLK_F_MQ);
	if (blk->read_only)
		features |= UVIRTIO_BIT(VIRTIO_BLK_F_RO);
	blk->ops = (struct uvirtio_device_ops){
		.name = "blk",
		.device_id = VIRTIO_ID_BLOCK,
		.features = features,
		.num_queues = nq,
		.queue_max_size = UVIRTIO_BLK_QUEUE_SIZE_MAX,
		.validate_features = blk_validate_features,
		.start = blk_start,
		.queue_notify = blk_queue_notify,
		.queue_start = blk_queue_start,
		.queue_stop = blk_queue_stop,
		.takes_kick_fds = true,
		.config_write = blk_config_write,
		.reset = blk_reset,
	};
	ret = uvirtio_device_init(&blk->dev, &blk->ops, blk, &blk->config, sizeof(blk->config), mem);
#ifdef UVIRTIO_FAULT_INJECTION
	if (!ret && (ret = blk_fault_dev_init(blk)))
		uvirtio_device_destroy(&blk->dev);
#endif
	if (ret)
		goto fail;
	for (unsigned i = 0; i < nq; i++)
		blk->queues[i].vq = uvirtio_device_queue(&blk->dev, i);
	return 0;

fail:
	for (unsigned i = 0; i < made; i++) {
		struct uvirtio_blk_queue *bq = &blk->queues[i];

		if (bq->wake_fd >= 0)
			close(bq->wake_fd);
		if (bq->stop_fd >= 0)
			close(bq->stop_fd);
		if (bq->cq_fd >= 0)
			close(bq->cq_fd);
	}
	free(blk->queues);
	blk->queues = NULL;
	blk_backend_close(blk);
	return ret;
}

void uvirtio_blk_dev_destroy(struct uvirtio_blk_dev *public_blk)
{
	struct blk_dev *blk = blk_dev_of(public_blk);

	if (!blk->queues)
		return;
	/* Stops every queue thread, which finishes what it took. */
	uvirtio_device_destroy(&blk->dev);
	for (unsigned i = 0; i < blk->ops.num_queues; i++) {
		close(blk->queues[i].wake_fd);
		close(blk->queues[i].stop_fd);
		close(blk->queues[i].cq_fd);
	}
	free(blk->queues);
	blk->queues = NULL;
	blk_backend_close(blk);
}

struct uvirtio_device *uvirtio_blk_dev_device(struct uvirtio_blk_dev *blk)
{
	return &blk_dev_of(blk)->dev;
}

uint64_t uvirtio_blk_dev_capacity(const struct uvirtio_blk_dev *blk)
{
	return blk_dev_of_const(blk)->capacity;
}

const struct uvirtio_device_ops *blk_dev_ops(const struct uvirtio_blk_dev *blk)
{
	return &blk_dev_of_const(blk)->ops;
}

void uvirtio_blk_dev_get_stats(const struct uvirtio_blk_dev *public_blk, struct uvirtio_blk_dev_stats *out)
{
	const struct blk_dev *blk = blk_dev_of_const(public_blk);

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < blk->ops.num_queues; i++) {
		const uint64_t *src = (const uint64_t *)&blk->queues[i].stats;
		uint64_t *dst = (uint64_t *)out;

		/* The struct is nothing but uint64_t counters. */
		for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
			dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
	}
}
