// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blk_drv_priv.h"

#define SECTOR_SHIFT 9

/* Clear the queue's used-buffer fd and look at the config fd, without
 * blocking on either (a transport's fds need not be non-blocking).
 *
 * A configuration change may be the device saying it needs a reset. Any
 * queue's thread may be the one that clears the config fd, so the finding is
 * kept in @b->dead and dead_fd, which wake every other waiter too. */
static void take_events(struct blk_drv *b, struct uvirtio_blk_drv_queue *q)
{
	struct pollfd p[2] = {
		{ .fd = q->call_fd, .events = POLLIN },
		{ .fd = b->config_fd, .events = POLLIN },
	};
	uint64_t count;

	if (poll(p, b->config_fd >= 0 ? 2 : 1, 0) <= 0)
		return;
	/* A failed read leaves the fd readable; the next poll tries again. */
	if ((p[0].revents & POLLIN) && read(p[0].fd, &count, sizeof(count)) < 0)
		count = 0;
	if (!(p[1].revents & POLLIN) || read(p[1].fd, &count, sizeof(count)) < 0)
		return;
	if (uvirtio_driver_needs_reset(&b->drv) && !__atomic_exchange_n(&b->dead, true, __ATOMIC_ACQ_REL)) {
		uint64_t one = 1;

		/* Never cleared: dead_fd stays readable until remove. Only an
		 * overflowing counter fails the write, and it is readable then. */
		if (write(b->dead_fd, &one, sizeof(one)) < 0)
			count = 0;
	}
}

/* ------------------------------------------------------------------ */
/* Requests */

/* Sectors [sector, sector + n) inside the disk, without overflow. */
static bool in_capacity(const struct blk_drv *b, uint64_t sector, uint64_t n)
{
	return sector <= b->limits.capacity && n <= b->limits.capacity - sector;
}

static int check_data(struct blk_drv *b, const struct uvirtio_blk_drv_queue *q,
		      const struct uvirtio_blk_drv_req *req, uint32_t *len)
{
	struct uvirtio_dma *dma = dma_of(b);
	uint64_t total = 0;

	if (!req->niov || req->niov > q->seg_max || !req->iov)
		return -EINVAL;
	for (unsigned i = 0; i < req->niov; i++) {
		size_t n = req->iov[i].iov_len;
		uint64_t addr;

		if (!n || (b->limits.size_max && n > b->limits.size_max))
			return -EINVAL;
		if (uvirtio_dma_addr(dma, req->iov[i].iov_base, n, &addr))
			return -EFAULT;
		total += n; /* cannot wrap: each part is inside the mapping */
	}
	/* spec 5.2.6.2: the data length is a multiple of 512 bytes; the
	 * writable part with the status byte must fit a 32-bit used length. */
	if (total % UVIRTIO_BLK_DRV_SECTOR_SIZE || total >= UINT32_MAX)
		return -EINVAL;
	if (!in_capacity(b, req->sector, total >> SECTOR_SHIFT))
		return -EINVAL;
	*len = (uint32_t)total;
	return 0;
}

static int check_range(struct blk_drv *b, const struct uvirtio_blk_drv_req *req, uint32_t max)
{
	if (req->niov || !req->num_sectors || !in_capacity(b, req->sector, req->num_sectors))
		return -EINVAL;
	if (max && req->num_sectors > max)
		return -EINVAL;
	return 0;
}

/* Everything about @req that can be refused before it reaches the device. */
static int check_req(struct blk_drv *b, const struct uvirtio_blk_drv_queue *q,
		     const struct uvirtio_blk_drv_req *req, uint32_t *data_len)
{
	struct uvirtio_driver *d = &b->drv;

	*data_len = 0;
	if (req->flags & ~UVIRTIO_BLK_DRV_REQ_UNMAP)
		return -EINVAL;
	/* spec 5.2.6.2: UNMAP is a write-zeroes flag only. */
	if ((req->flags & UVIRTIO_BLK_DRV_REQ_UNMAP) && req->type != VIRTIO_BLK_T_WRITE_ZEROES)
		return -EINVAL;
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		return check_data(b, q, req, data_len);
	case VIRTIO_BLK_T_OUT:
		/* spec 5.2.6.2: the driver MUST NOT write to a read-only device. */
		if (b->read_only)
			return -EROFS;
		return check_data(b, q, req, data_len);
	case VIRTIO_BLK_T_FLUSH:
		/* spec 5.2.6.2: no FLUSH request unless FLUSH was negotiated. */
		if (!uvirtio_driver_has_feature(d, VIRTIO_BLK_F_FLUSH))
			return -EOPNOTSUPP;
		return req->niov ? -EINVAL : 0;
	case VIRTIO_BLK_T_GET_ID:
		return req->niov ? -EINVAL : 0;
	case VIRTIO_BLK_T_DISCARD:
		if (!uvirtio_driver_has_feature(d, VIRTIO_BLK_F_DISCARD))
			return -EOPNOTSUPP;
		if (b->read_only)
			return -EROFS;
		return check_range(b, req, b->limits.max_discard_sectors);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!uvirtio_driver_has_feature(d, VIRTIO_BLK_F_WRITE_ZEROES))
			return -EOPNOTSUPP;
		if (b->read_only)
			return -EROFS;
		return check_range(b, req, b->limits.max_write_zeroes_sectors);
	default:
		return -EOPNOTSUPP;
	}
}

static struct slot *slot_get(struct uvirtio_blk_drv_queue *q)
{
	struct slot *s;

	if (!q->nfree)
		return NULL;
	s = &q->slots[q->free_head];
	q->free_head = s->next_free;
	q->nfree--;
	return s;
}

static void slot_put(struct uvirtio_blk_drv_queue *q, struct slot *s)
{
	s->req = NULL;
	s->busy = false;
	s->next_free = q->free_head;
	q->free_head = (uint16_t)(s - q->slots);
	q->nfree++;
}

static struct uvirtio_blk_drv_queue *get_queue(struct blk_drv *b, unsigned queue)
{
	return queue < b->num_queues ? &b->queues[queue] : NULL;
}

static void build_chain(struct uvirtio_blk_drv_queue *q, struct slot *s,
			const struct uvirtio_blk_drv_req *req, uint32_t data_len, unsigned *out,
			unsigned *in);

static int submit(struct blk_drv *b, unsigned queue, struct uvirtio_blk_drv_req *req)
{
	struct uvirtio_blk_drv_queue *q = get_queue(b, queue);
	struct iovec *v;
	unsigned n_out, n_in;
	uint32_t data_len;
	struct slot *s;
	int ret;

	if (!q || !req)
		return -EINVAL;
	if (is_dead(b) || uvirtio_drvq_is_broken(q->vq))
		return -EIO;
	ret = check_req(b, q, req, &data_len);
	if (ret)
		return ret;
	s = slot_get(q);
	if (!s)
		return -EAGAIN;

	build_chain(q, s, req, data_len, &n_out, &n_in);
	v = q->scratch;
	s->req = req;
	req->uvirtio_private_do_not_touch = s;
	req->result = 0;
	ret = uvirtio_drvq_add(q->vq, v, n_out, v + n_out, n_in, s);
	if (ret) {
		req->uvirtio_private_do_not_touch = NULL;
		slot_put(q, s);
		/* No indirect table and no room for a direct chain: full for now. */
		return ret == -ENOMEM ? -ENOSPC : ret;
	}
	s->busy = true;
	s->seq = q->next_seq++;
	return uvirtio_drvq_kick(q->vq);
}

/* Writes @req's header (and range) into slot @s and its chain into
 * q->scratch: @n_out device-readable parts, then @n_in writable ones. */
static void build_chain(struct uvirtio_blk_drv_queue *q, struct slot *s,
			const struct uvirtio_blk_drv_req *req, uint32_t data_len, unsigned *out,
			unsigned *in)
{
	struct iovec *v;
	unsigned n_out, n_in;

	/* Header and range are written here and read by the device only once
	 * the buffer is made available (the ring's barrier orders them). */
	s->mem->hdr.type = htole32(req->type);
	s->mem->hdr.ioprio = 0;
	s->mem->hdr.sector = htole64(req->type == VIRTIO_BLK_T_IN || req->type == VIRTIO_BLK_T_OUT ?
				     req->sector : 0);
	/* A status no device writes, so one left unwritten is seen as bad. */
	s->mem->status = 0xff;

	v = q->scratch;
	v[0] = (struct iovec){ .iov_base = &s->mem->hdr, .iov_len = sizeof(s->mem->hdr) };
	n_out = 1;
	n_in = 0;
	switch (req->type) {
	case VIRTIO_BLK_T_OUT:
		memcpy(&v[1], req->iov, req->niov * sizeof(*v));
		n_out += req->niov;
		break;
	case VIRTIO_BLK_T_IN:
		memcpy(&v[1], req->iov, req->niov * sizeof(*v));
		n_in += req->niov;
		break;
	case VIRTIO_BLK_T_GET_ID:
		v[1] = (struct iovec){ .iov_base = s->mem->id, .iov_len = sizeof(s->mem->id) };
		n_in = 1;
		data_len = sizeof(s->mem->id);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		s->mem->range.sector = htole64(req->sector);
		s->mem->range.num_sectors = htole32(req->num_sectors);
		s->mem->range.flags = htole32(req->flags & UVIRTIO_BLK_DRV_REQ_UNMAP ?
					      VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
		v[1] = (struct iovec){ .iov_base = &s->mem->range, .iov_len = sizeof(s->mem->range) };
		n_out = 2;
		break;
	}
	v[n_out + n_in] = (struct iovec){ .iov_base = &s->mem->status, .iov_len = 1 };
	n_in++;
	/* The device reports what it wrote: the data read, if any, and the
	 * status byte, which is last in the chain. */
	s->in_len = (req->type == VIRTIO_BLK_T_IN || req->type == VIRTIO_BLK_T_GET_ID ? data_len : 0) + 1;
	*out = n_out;
	*in = n_in;
}

int uvirtio_blk_drv_submit(struct uvirtio_blk_drv *b, unsigned queue, struct uvirtio_blk_drv_req *req)
{
	return submit(blk_drv_of(b), queue, req);
}

static int status_result(uint8_t status)
{
	switch (status) {
	case VIRTIO_BLK_S_OK:
		return 0;
	case VIRTIO_BLK_S_UNSUPP:
		return -EOPNOTSUPP;
	default:
		/* IOERR, and any value the spec does not define. */
		return -EIO;
	}
}

/* The device returned slot @s with @len bytes written. Returns whether a
 * callback ran. */
static bool complete(struct uvirtio_blk_drv_queue *q, struct slot *s, uint32_t len)
{
	struct uvirtio_blk_drv_req *req = s->req;
	uint8_t status;
	int result;

	if (!req) {
		/* Orphaned by a synchronous call that gave up waiting. */
		slot_put(q, s);
		return false;
	}
	/* Read the status byte once: the device could still change it. */
	status = __atomic_load_n(&s->mem->status, __ATOMIC_RELAXED);
	/* A device that wrote nothing did not write the status byte either. */
	if (len == 0)
		result = -EIO;
	else
		result = status_result(status);
	/* spec 2.7.8: the driver may trust only the first len bytes of the
	 * writable part. Success must cover all of it, data and status byte;
	 * an error may count only the status byte it wrote (QEMU reports the
	 * whole part, other devices just the one byte). */
	if (!result && len != s->in_len)
		result = -EIO;
	if (!result && req->type == VIRTIO_BLK_T_GET_ID) {
		memcpy(req->id, s->mem->id, VIRTIO_BLK_ID_BYTES);
		req->id[VIRTIO_BLK_ID_BYTES] = 0;
	}
	req->result = result;
	req->uvirtio_private_do_not_touch = NULL;
	/* The slot is free before the callback, so it can submit again. */
	slot_put(q, s);
	if (req->callback)
		req->callback(req);
	return true;
}

static int poll_queue(struct blk_drv *b, unsigned queue, unsigned max)
{
	struct uvirtio_blk_drv_queue *q = get_queue(b, queue);
	unsigned done = 0;

	if (!q)
		return -EINVAL;
	/* Clear the fd before looking at the ring: a completion after the
	 * look signals it again, so none is missed by a waiter. */
	take_events(b, q);
	if (is_dead(b))
		return -EIO;
	uvirtio_drvq_disable_cb(q->vq);
	while (done < max) {
		uint32_t len;
		void *token;
		int ret = uvirtio_drvq_get(q->vq, &token, &len);

		if (ret < 0)
			return ret;
		if (ret == 0) {
			/* Ask for a notification, then look again: a buffer
			 * used before the device saw the request is not signalled. */
			if (uvirtio_drvq_enable_cb(q->vq))
				break;
			uvirtio_drvq_disable_cb(q->vq);
			continue;
		}
		done += complete(q, token, len);
	}
	return (int)done;
}

struct collected {
	struct slot **v;
	unsigned n, max;
};

static void collect_slot(void *token, void *opaque)
{
	struct collected *c = opaque;

	if (c->n < c->max)
		c->v[c->n++] = token;
}

static int by_seq(const void *a, const void *b)
{
	const struct slot *x = *(struct slot *const *)a, *y = *(struct slot *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A request that cannot be added again completes with @err. */
static void fail_slot(struct uvirtio_blk_drv_queue *q, struct slot *s, int err)
{
	struct uvirtio_blk_drv_req *req = s->req;

	slot_put(q, s);
	if (!req)
		return;
	req->result = err;
	req->uvirtio_private_do_not_touch = NULL;
	if (req->callback)
		req->callback(req);
}

static int resubmit(struct blk_drv *b, unsigned queue)
{
	struct uvirtio_blk_drv_queue *q = get_queue(b, queue);
	struct collected c = { 0 };
	unsigned added = 0;
	int ret;

	if (!q)
		return -EINVAL;
	if (!uvirtio_driver_has_feature(&b->drv, VIRTIO_F_RING_RESET))
		return -EOPNOTSUPP;
	c.max = q->nslots;
	c.v = calloc(c.max, sizeof(*c.v));
	if (!c.v)
		return -ENOMEM;
	/* Every buffer still in the ring comes back (the device lost it),
	 * then a new ring: the old one's indexes mean nothing to the device. */
	ret = uvirtio_driver_queue_reset(&b->drv, queue, collect_slot, &c);
	if (!ret)
		ret = uvirtio_driver_queue_enable(&b->drv, queue, 0);
	qsort(c.v, c.n, sizeof(*c.v), by_seq);
	for (unsigned i = 0; i < c.n; i++) {
		struct slot *s = c.v[i];
		uint32_t data_len;
		unsigned n_out, n_in;
		int r;

		if (ret || !s->req) {
			/* Orphaned by a synchronous call that gave up, or no ring. */
			fail_slot(q, s, -EIO);
			continue;
		}
		/* The old device may have written the status byte and data:
		 * the request starts over. */
		data_len = s->in_len - 1; /* what gave in_len at the submit */
		build_chain(q, s, s->req, data_len, &n_out, &n_in);
		r = uvirtio_drvq_add(q->vq, q->scratch, n_out, q->scratch + n_out, n_in, s);
		if (r) {
			fail_slot(q, s, -EIO);
			continue;
		}
		added++;
	}
	free(c.v);
	if (ret)
		return ret;
	if (added)
		uvirtio_drvq_kick(q->vq);
	return (int)added;
}

int uvirtio_blk_drv_resubmit(struct uvirtio_blk_drv *b, unsigned queue)
{
	return resubmit(blk_drv_of(b), queue);
}

int uvirtio_blk_drv_poll(struct uvirtio_blk_drv *b, unsigned queue, unsigned max)
{
	return poll_queue(blk_drv_of(b), queue, max);
}

int uvirtio_blk_drv_event_fd(struct uvirtio_blk_drv *public_b, unsigned queue)
{
	struct blk_drv *b = blk_drv_of(public_b);
	struct uvirtio_blk_drv_queue *q = get_queue(b, queue);

	return q ? q->epoll_fd : -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Synchronous calls */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for the queue's event fd until @deadline (-1: none).
 * Returns 1 when signalled, 0 on time-out, or -errno. */
static int wait_queue(struct uvirtio_blk_drv_queue *q, int64_t deadline)
{
	struct pollfd p = { .fd = q->epoll_fd, .events = POLLIN };
	int ret;

	for (;;) {
		int timeout = -1;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			timeout = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
		}
		ret = poll(&p, 1, timeout);
		if (ret >= 0)
			return ret;
		if (errno != EINTR)
			return -errno;
	}
}

static void sync_done(struct uvirtio_blk_drv_req *req)
{
	*(bool *)req->opaque = true;
}

static int run_sync(struct blk_drv *b, unsigned queue, struct uvirtio_blk_drv_req *req,
		    int timeout_ms)
{
	struct uvirtio_blk_drv_queue *q = get_queue(b, queue);
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	bool done = false;
	int ret;

	if (!q)
		return -EINVAL;
	req->callback = sync_done;
	req->opaque = &done;
	for (;;) {
		ret = submit(b, queue, req);
		if (ret != -EAGAIN && ret != -ENOSPC)
			break;
		/* Full with the caller's own async requests: wait for room.
		 * With none in flight, room will not come. */
		if (q->nfree == q->nslots)
			return ret;
		ret = poll_queue(b, queue, q->nslots);
		if (ret < 0)
			return ret;
		/* Wait only when nothing completed: otherwise there is room,
		 * or callbacks are off after a full budget. */
		if (ret == 0) {
			ret = wait_queue(q, deadline);
			if (ret < 0)
				return ret;
			if (ret == 0)
				return -ETIMEDOUT;
		}
	}
	if (ret && !req->uvirtio_private_do_not_touch)
		return ret;
	/* Submitted; a notify error leaves it with the device all the same. */
	while (!ret && !done) {
		ret = poll_queue(b, queue, q->nslots);
		if (ret < 0 || done)
			break;
		if ((unsigned)ret == q->nslots) {
			ret = 0;
			continue;
		}
		ret = wait_queue(q, deadline);
		if (ret == 0)
			ret = -ETIMEDOUT;
		else if (ret > 0)
			ret = 0;
	}
	if (done)
		return req->result;
	/* Give up on it: the slot stays with the device and is freed without
	 * a callback when it comes back (or at remove). */
	((struct slot *)req->uvirtio_private_do_not_touch)->req = NULL;
	req->uvirtio_private_do_not_touch = NULL;
	return ret;
}

static int rw(struct blk_drv *b, unsigned queue, uint32_t type, uint64_t sector,
	      const struct iovec *iov, unsigned niov, int timeout_ms)
{
	struct uvirtio_blk_drv_req req = {
		.type = type, .sector = sector, .iov = iov, .niov = niov,
	};

	return run_sync(b, queue, &req, timeout_ms);
}

int uvirtio_blk_drv_read(struct uvirtio_blk_drv *public_b, unsigned queue, uint64_t sector, void *buf,
			 size_t len, int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);
	struct iovec v = { .iov_base = buf, .iov_len = len };

	return rw(b, queue, VIRTIO_BLK_T_IN, sector, &v, 1, timeout_ms);
}

int uvirtio_blk_drv_write(struct uvirtio_blk_drv *public_b, unsigned queue, uint64_t sector,
			  const void *buf, size_t len, int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return rw(b, queue, VIRTIO_BLK_T_OUT, sector, &v, 1, timeout_ms);
}

int uvirtio_blk_drv_readv(struct uvirtio_blk_drv *public_b, unsigned queue, uint64_t sector,
			  const struct iovec *iov, unsigned niov, int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);

	return rw(b, queue, VIRTIO_BLK_T_IN, sector, iov, niov, timeout_ms);
}

int uvirtio_blk_drv_writev(struct uvirtio_blk_drv *public_b, unsigned queue, uint64_t sector,
			   const struct iovec *iov, unsigned niov, int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);

	return rw(b, queue, VIRTIO_BLK_T_OUT, sector, iov, niov, timeout_ms);
}

int uvirtio_blk_drv_flush(struct uvirtio_blk_drv *public_b, unsigned queue, int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);

	return rw(b, queue, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, timeout_ms);
}

static int range_op(struct blk_drv *b, unsigned queue, uint32_t type, uint64_t sector,
		    uint32_t num_sectors, uint32_t flags, int timeout_ms)
{
	struct uvirtio_blk_drv_req req = {
		.type = type, .sector = sector, .num_sectors = num_sectors, .flags = flags,
	};

	return run_sync(b, queue, &req, timeout_ms);
}

int uvirtio_blk_drv_discard(struct uvirtio_blk_drv *public_b, unsigned queue, uint64_t sector,
			    uint32_t num_sectors, int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);

	return range_op(b, queue, VIRTIO_BLK_T_DISCARD, sector, num_sectors, 0, timeout_ms);
}

int uvirtio_blk_drv_write_zeroes(struct uvirtio_blk_drv *public_b, unsigned queue, uint64_t sector,
				 uint32_t num_sectors, bool unmap, int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);

	return range_op(b, queue, VIRTIO_BLK_T_WRITE_ZEROES, sector, num_sectors,
			unmap ? UVIRTIO_BLK_DRV_REQ_UNMAP : 0, timeout_ms);
}

int uvirtio_blk_drv_get_id(struct uvirtio_blk_drv *public_b, unsigned queue,
			   char id[VIRTIO_BLK_ID_BYTES + 1], int timeout_ms)
{
	struct blk_drv *b = blk_drv_of(public_b);
	struct uvirtio_blk_drv_req req = { .type = VIRTIO_BLK_T_GET_ID };
	int ret = run_sync(b, queue, &req, timeout_ms);

	if (!ret)
		memcpy(id, req.id, sizeof(req.id));
	return ret;
}
