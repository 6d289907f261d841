// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "uvirtio/blk_drv.h"

#define SECTOR_SHIFT 9
#define BUF_ALIGN 4096u

/* What a request slot keeps in shared memory: the parts of a request that
 * are not the caller's data. One cache line, so slots share none. */
struct slot_mem {
	struct virtio_blk_outhdr hdr;
	struct virtio_blk_discard_write_zeroes range;
	char id[VIRTIO_BLK_ID_BYTES];
	uint8_t status;
} __attribute__((aligned(64)));

/* Private per-slot state, never in shared memory. */
struct slot {
	struct slot_mem *mem;
	struct uvirtio_blk_drv_req *req; /* NULL: free, or orphaned by a time-out */
	uint32_t in_len;                 /* writable bytes offered: what the device must report */
	uint16_t next_free;
	bool busy;                       /* with the device */
};

struct uvirtio_blk_drv_queue {
	struct uvirtio_drvq *vq;
	struct slot *slots;
	struct slot_mem *mem;   /* in shared memory, one per slot */
	unsigned nslots;
	uint16_t free_head;
	unsigned nfree;
	unsigned seg_max;       /* data segments per request this queue takes */
	struct iovec *scratch;  /* the chain being added: seg_max + 2 entries */
	int call_fd;            /* the transport's used-buffer fd */
	int epoll_fd;           /* what event_fd gives out: call_fd, config fd, dead_fd */
};

static struct uvirtio_dma *dma_of(struct uvirtio_blk_drv *b)
{
	return b->drv.t->ops->dma(b->drv.t);
}

static bool is_dead(struct uvirtio_blk_drv *b)
{
	return __atomic_load_n(&b->dead, __ATOMIC_ACQUIRE);
}

/* Clear the queue's used-buffer fd and look at the config fd, without
 * blocking on either (a transport's fds need not be non-blocking).
 *
 * A configuration change may be the device saying it needs a reset. Any
 * queue's thread may be the one that clears the config fd, so the finding is
 * kept in @b->dead and dead_fd, which wake every other waiter too. */
static void take_events(struct uvirtio_blk_drv *b, struct uvirtio_blk_drv_queue *q)
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
/* Probe and remove */

static void queue_free(struct uvirtio_blk_drv *b, struct uvirtio_blk_drv_queue *q)
{
	if (q->epoll_fd >= 0)
		close(q->epoll_fd);
	q->epoll_fd = -1;
	uvirtio_dma_free(dma_of(b), q->mem);
	q->mem = NULL;
	free(q->slots);
	q->slots = NULL;
	free(q->scratch);
	q->scratch = NULL;
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static int queue_init(struct uvirtio_blk_drv *b, unsigned index)
{
	struct uvirtio_blk_drv_queue *q = &b->queues[index];
	struct uvirtio_transport *t = b->drv.t;
	unsigned n;
	int ret;

	q->epoll_fd = -1;
	q->vq = uvirtio_driver_vq(&b->drv, index);
	n = uvirtio_drvq_size(q->vq);
	/* Every request takes a header and a status descriptor besides its
	 * data, and a chain may not be longer than the queue (spec, 2.7.5.3). */
	if (n < 3)
		return -ENODEV;
	q->seg_max = n - 2;
	if (b->limits.seg_max && b->limits.seg_max < q->seg_max)
		q->seg_max = b->limits.seg_max;

	q->nslots = n;
	q->slots = calloc(n, sizeof(*q->slots));
	q->scratch = calloc(q->seg_max + 2, sizeof(*q->scratch));
	q->mem = uvirtio_dma_alloc(dma_of(b), (size_t)n * sizeof(*q->mem), 64);
	if (!q->slots || !q->scratch || !q->mem)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		q->slots[i].mem = &q->mem[i];
		q->slots[i].next_free = (uint16_t)(i + 1);
	}
	q->free_head = 0;
	q->nfree = n;

	q->call_fd = t->ops->event_fd(t, index);
	if (q->call_fd < 0)
		return q->call_fd;
	q->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (q->epoll_fd < 0)
		return -errno;
	ret = epoll_add(q->epoll_fd, q->call_fd);
	if (!ret && b->config_fd >= 0)
		ret = epoll_add(q->epoll_fd, b->config_fd);
	if (!ret)
		ret = epoll_add(q->epoll_fd, b->dead_fd);
	return ret;
}

static uint32_t le32_at(const struct virtio_blk_config *c, size_t off)
{
	uint32_t v;

	memcpy(&v, (const char *)c + off, sizeof(v));
	return le32toh(v);
}

static uint16_t le16_at(const struct virtio_blk_config *c, size_t off)
{
	uint16_t v;

	memcpy(&v, (const char *)c + off, sizeof(v));
	return le16toh(v);
}

#define CFG_END(field) (offsetof(struct virtio_blk_config, field) + \
			sizeof(((struct virtio_blk_config *)0)->field))

/* Read config space once, consistently: one generation-checked read of the
 * prefix that covers every field a negotiated feature makes valid (a device
 * need not have the fields of features it did not offer). */
static int read_config(struct uvirtio_blk_drv *b)
{
	struct uvirtio_blk_drv_limits *l = &b->limits;
	struct uvirtio_driver *d = &b->drv;
	struct virtio_blk_config c;
	size_t len = CFG_END(capacity);
	uint64_t cap;
	int ret;

	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_SIZE_MAX) && len < CFG_END(size_max))
		len = CFG_END(size_max);
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_SEG_MAX) && len < CFG_END(seg_max))
		len = CFG_END(seg_max);
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_BLK_SIZE) && len < CFG_END(blk_size))
		len = CFG_END(blk_size);
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_TOPOLOGY) && len < CFG_END(opt_io_size))
		len = CFG_END(opt_io_size);
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_CONFIG_WCE) && len < CFG_END(wce))
		len = CFG_END(wce);
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_MQ) && len < CFG_END(num_queues))
		len = CFG_END(num_queues);
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_DISCARD) &&
	    len < CFG_END(discard_sector_alignment))
		len = CFG_END(discard_sector_alignment);
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_WRITE_ZEROES) &&
	    len < CFG_END(write_zeroes_may_unmap))
		len = CFG_END(write_zeroes_may_unmap);

	memset(&c, 0, sizeof(c));
	ret = uvirtio_driver_config_read(d, 0, &c, (unsigned)len);
	if (ret)
		return ret;

	memset(l, 0, sizeof(*l));
	memcpy(&cap, &c, sizeof(cap));
	l->capacity = le64toh(cap);
	l->blk_size = UVIRTIO_BLK_DRV_SECTOR_SIZE;
	l->device_queues = 1;
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_SIZE_MAX))
		l->size_max = le32_at(&c, offsetof(struct virtio_blk_config, size_max));
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_SEG_MAX))
		l->seg_max = le32_at(&c, offsetof(struct virtio_blk_config, seg_max));
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_BLK_SIZE)) {
		uint32_t bs = le32_at(&c, offsetof(struct virtio_blk_config, blk_size));

		/* A size the block layer could not use is ignored, as Linux does. */
		if (bs >= UVIRTIO_BLK_DRV_SECTOR_SIZE && bs <= 65536 && !(bs & (bs - 1)))
			l->blk_size = bs;
	}
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_TOPOLOGY)) {
		l->physical_block_exp = c.physical_block_exp;
		l->alignment_offset = c.alignment_offset;
		l->min_io_size = le16_at(&c, offsetof(struct virtio_blk_config, min_io_size));
		l->opt_io_size = le32_at(&c, offsetof(struct virtio_blk_config, opt_io_size));
	}
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_MQ)) {
		uint16_t nq = le16_at(&c, offsetof(struct virtio_blk_config, num_queues));

		/* A device claiming no queue still has the first one. */
		l->device_queues = nq ? nq : 1;
	}
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_DISCARD)) {
		l->max_discard_sectors = le32_at(&c, offsetof(struct virtio_blk_config, max_discard_sectors));
		l->max_discard_seg = le32_at(&c, offsetof(struct virtio_blk_config, max_discard_seg));
		l->discard_sector_alignment =
			le32_at(&c, offsetof(struct virtio_blk_config, discard_sector_alignment));
	}
	if (uvirtio_driver_has_feature(d, VIRTIO_BLK_F_WRITE_ZEROES)) {
		l->max_write_zeroes_sectors =
			le32_at(&c, offsetof(struct virtio_blk_config, max_write_zeroes_sectors));
		l->max_write_zeroes_seg =
			le32_at(&c, offsetof(struct virtio_blk_config, max_write_zeroes_seg));
		l->write_zeroes_may_unmap = c.write_zeroes_may_unmap != 0;
	}
	b->read_only = uvirtio_driver_has_feature(d, VIRTIO_BLK_F_RO);
	/* Without FLUSH the device writes through; with CONFIG_WCE the config
	 * says which mode it is in (spec, 5.2.5.1). */
	b->writeback = uvirtio_driver_has_feature(d, VIRTIO_BLK_F_FLUSH) &&
		       (!uvirtio_driver_has_feature(d, VIRTIO_BLK_F_CONFIG_WCE) || c.wce);
	return 0;
}

static void cancel_token(void *token, void *opaque)
{
	struct slot *s = token;

	(void)opaque;
	s->busy = false;
	if (s->req) {
		struct uvirtio_blk_drv_req *req = s->req;

		s->req = NULL;
		req->slot = NULL;
		req->result = -ECANCELED;
		if (req->callback)
			req->callback(req);
	}
}

static void teardown(struct uvirtio_blk_drv *b)
{
	/* Reset first (inside uvirtio_driver_remove()): until then the device
	 * may use the slots' memory and the caller's buffers. */
	uvirtio_driver_remove(&b->drv, cancel_token, b);
	if (b->queues) {
		for (unsigned i = 0; i < b->num_queues; i++)
			queue_free(b, &b->queues[i]);
		free(b->queues);
	}
	b->queues = NULL;
	b->num_queues = 0;
	if (b->dead_fd >= 0)
		close(b->dead_fd);
	b->dead_fd = -1;
	b->dead = false;
}

int uvirtio_blk_drv_probe(struct uvirtio_blk_drv *b, struct uvirtio_transport *t,
			  const struct uvirtio_blk_drv_opts *opts)
{
	uint64_t wanted = opts && opts->features ? opts->features : UVIRTIO_BLK_DRV_FEATURES;
	unsigned nq = opts && opts->num_queues ? opts->num_queues : 1;
	unsigned *sizes;
	int ret;

	memset(b, 0, sizeof(*b));
	b->dead_fd = -1;
	b->config_fd = -1;
	/* RO is accepted whenever offered: the driver must know it may not write. */
	wanted = (wanted & (UVIRTIO_BLK_DRV_FEATURES | UVIRTIO_BLK_DRV_RING_FEATURES)) |
		 UVIRTIO_BIT(VIRTIO_BLK_F_RO);
	ret = uvirtio_driver_probe(&b->drv, t, wanted);
	if (ret)
		return ret;
	ret = read_config(b);
	if (ret)
		goto fail;
	if (nq > b->limits.device_queues)
		nq = b->limits.device_queues;

	b->dead_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->dead_fd < 0) {
		ret = -errno;
		goto fail;
	}
	b->config_fd = t->ops->event_fd(t, UVIRTIO_CONFIG_EVENT);
	sizes = calloc(nq, sizeof(*sizes));
	if (!sizes) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < nq; i++)
		sizes[i] = opts ? opts->queue_size : 0;
	ret = uvirtio_driver_find_vqs(&b->drv, nq, sizes);
	free(sizes);
	if (ret)
		goto fail;
	b->queues = calloc(nq, sizeof(*b->queues));
	if (!b->queues) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < nq; i++)
		b->queues[i].epoll_fd = -1;
	b->num_queues = nq;
	for (unsigned i = 0; i < nq && !ret; i++)
		ret = queue_init(b, i);
	if (!ret)
		ret = uvirtio_driver_ready(&b->drv);
	if (!ret)
		return 0;
fail:
	teardown(b);
	return ret;
}

void uvirtio_blk_drv_remove(struct uvirtio_blk_drv *b)
{
	if (b->drv.t)
		teardown(b);
}

void *uvirtio_blk_drv_alloc_buf(struct uvirtio_blk_drv *b, size_t size)
{
	return uvirtio_dma_alloc(dma_of(b), size, BUF_ALIGN);
}

void uvirtio_blk_drv_free_buf(struct uvirtio_blk_drv *b, void *buf)
{
	uvirtio_dma_free(dma_of(b), buf);
}

int uvirtio_blk_drv_set_writeback(struct uvirtio_blk_drv *b, bool writeback)
{
	uint8_t wce = writeback;
	int ret;

	if (!uvirtio_driver_has_feature(&b->drv, VIRTIO_BLK_F_CONFIG_WCE))
		return -EOPNOTSUPP;
	ret = b->drv.t->ops->set_config(b->drv.t, offsetof(struct virtio_blk_config, wce), &wce, 1);
	if (ret)
		return ret;
	/* Read it back: the device decides which modes it has. */
	ret = uvirtio_driver_config_read(&b->drv, offsetof(struct virtio_blk_config, wce), &wce, 1);
	if (!ret)
		b->writeback = wce != 0;
	return ret;
}

/* ------------------------------------------------------------------ */
/* Requests */

/* Sectors [sector, sector + n) inside the disk, without overflow. */
static bool in_capacity(const struct uvirtio_blk_drv *b, uint64_t sector, uint64_t n)
{
	return sector <= b->limits.capacity && n <= b->limits.capacity - sector;
}

static int check_data(struct uvirtio_blk_drv *b, const struct uvirtio_blk_drv_queue *q,
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

static int check_range(struct uvirtio_blk_drv *b, const struct uvirtio_blk_drv_req *req, uint32_t max)
{
	if (req->niov || !req->num_sectors || !in_capacity(b, req->sector, req->num_sectors))
		return -EINVAL;
	if (max && req->num_sectors > max)
		return -EINVAL;
	return 0;
}

/* Everything about @req that can be refused before it reaches the device. */
static int check_req(struct uvirtio_blk_drv *b, const struct uvirtio_blk_drv_queue *q,
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

static struct uvirtio_blk_drv_queue *get_queue(struct uvirtio_blk_drv *b, unsigned queue)
{
	return queue < b->num_queues ? &b->queues[queue] : NULL;
}

int uvirtio_blk_drv_submit(struct uvirtio_blk_drv *b, unsigned queue, struct uvirtio_blk_drv_req *req)
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

	s->req = req;
	req->slot = s;
	req->result = 0;
	ret = uvirtio_drvq_add(q->vq, v, n_out, v + n_out, n_in, s);
	if (ret) {
		req->slot = NULL;
		slot_put(q, s);
		/* No indirect table and no room for a direct chain: full for now. */
		return ret == -ENOMEM ? -ENOSPC : ret;
	}
	s->busy = true;
	return uvirtio_drvq_kick(q->vq);
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
	req->slot = NULL;
	/* The slot is free before the callback, so it can submit again. */
	slot_put(q, s);
	if (req->callback)
		req->callback(req);
	return true;
}

int uvirtio_blk_drv_poll(struct uvirtio_blk_drv *b, unsigned queue, unsigned max)
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

int uvirtio_blk_drv_event_fd(struct uvirtio_blk_drv *b, unsigned queue)
{
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

static int run_sync(struct uvirtio_blk_drv *b, unsigned queue, struct uvirtio_blk_drv_req *req,
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
		ret = uvirtio_blk_drv_submit(b, queue, req);
		if (ret != -EAGAIN && ret != -ENOSPC)
			break;
		/* Full with the caller's own async requests: wait for room.
		 * With none in flight, room will not come. */
		if (q->nfree == q->nslots)
			return ret;
		ret = uvirtio_blk_drv_poll(b, queue, q->nslots);
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
	if (ret && !req->slot)
		return ret;
	/* Submitted; a notify error leaves it with the device all the same. */
	while (!ret && !done) {
		ret = uvirtio_blk_drv_poll(b, queue, q->nslots);
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
	((struct slot *)req->slot)->req = NULL;
	req->slot = NULL;
	return ret;
}

static int rw(struct uvirtio_blk_drv *b, unsigned queue, uint32_t type, uint64_t sector,
	      const struct iovec *iov, unsigned niov, int timeout_ms)
{
	struct uvirtio_blk_drv_req req = {
		.type = type, .sector = sector, .iov = iov, .niov = niov,
	};

	return run_sync(b, queue, &req, timeout_ms);
}

int uvirtio_blk_drv_read(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector, void *buf,
			 size_t len, int timeout_ms)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };

	return rw(b, queue, VIRTIO_BLK_T_IN, sector, &v, 1, timeout_ms);
}

int uvirtio_blk_drv_write(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			  const void *buf, size_t len, int timeout_ms)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return rw(b, queue, VIRTIO_BLK_T_OUT, sector, &v, 1, timeout_ms);
}

int uvirtio_blk_drv_readv(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			  const struct iovec *iov, unsigned niov, int timeout_ms)
{
	return rw(b, queue, VIRTIO_BLK_T_IN, sector, iov, niov, timeout_ms);
}

int uvirtio_blk_drv_writev(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			   const struct iovec *iov, unsigned niov, int timeout_ms)
{
	return rw(b, queue, VIRTIO_BLK_T_OUT, sector, iov, niov, timeout_ms);
}

int uvirtio_blk_drv_flush(struct uvirtio_blk_drv *b, unsigned queue, int timeout_ms)
{
	return rw(b, queue, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, timeout_ms);
}

static int range_op(struct uvirtio_blk_drv *b, unsigned queue, uint32_t type, uint64_t sector,
		    uint32_t num_sectors, uint32_t flags, int timeout_ms)
{
	struct uvirtio_blk_drv_req req = {
		.type = type, .sector = sector, .num_sectors = num_sectors, .flags = flags,
	};

	return run_sync(b, queue, &req, timeout_ms);
}

int uvirtio_blk_drv_discard(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			    uint32_t num_sectors, int timeout_ms)
{
	return range_op(b, queue, VIRTIO_BLK_T_DISCARD, sector, num_sectors, 0, timeout_ms);
}

int uvirtio_blk_drv_write_zeroes(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
				 uint32_t num_sectors, bool unmap, int timeout_ms)
{
	return range_op(b, queue, VIRTIO_BLK_T_WRITE_ZEROES, sector, num_sectors,
			unmap ? UVIRTIO_BLK_DRV_REQ_UNMAP : 0, timeout_ms);
}

int uvirtio_blk_drv_get_id(struct uvirtio_blk_drv *b, unsigned queue,
			   char id[VIRTIO_BLK_ID_BYTES + 1], int timeout_ms)
{
	struct uvirtio_blk_drv_req req = { .type = VIRTIO_BLK_T_GET_ID };
	int ret = run_sync(b, queue, &req, timeout_ms);

	if (!ret)
		memcpy(id, req.id, sizeof(req.id));
	return ret;
}
