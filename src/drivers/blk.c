// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "blk_drv_priv.h"

#define BUF_ALIGN 4096u

/* ------------------------------------------------------------------ */
/* Probe and remove */

static void queue_free(struct blk_drv *b, struct uvirtio_blk_drv_queue *q)
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

static int queue_init(struct blk_drv *b, unsigned index)
{
	struct uvirtio_blk_drv_queue *q = &b->queues[index];
	struct uvirtio_transport *t = b->t;
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
static int read_config(struct blk_drv *b)
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
		req->uvirtio_private_do_not_touch = NULL;
		req->result = -ECANCELED;
		if (req->callback)
			req->callback(req);
	}
}

static void teardown(struct blk_drv *b)
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

int uvirtio_blk_drv_probe(struct uvirtio_blk_drv *public_b, struct uvirtio_transport *t,
			  const struct uvirtio_blk_drv_opts *opts)
{
	struct blk_drv *b = blk_drv_of(public_b);
	uint64_t wanted = opts && opts->features ? opts->features : UVIRTIO_BLK_DRV_FEATURES;
	unsigned nq = opts && opts->num_queues ? opts->num_queues : 1;
	unsigned *sizes;
	int ret;

	memset(public_b, 0, sizeof(*public_b));
	b->t = t;
	b->dead_fd = -1;
	b->config_fd = -1;
	/* RO is accepted whenever offered: the driver must know it may not write. */
	/* RING_RESET only when asked for: uvirtio_blk_drv_resubmit() needs it. */
	wanted = (wanted & (UVIRTIO_BLK_DRV_FEATURES | UVIRTIO_BLK_DRV_RING_FEATURES |
			    UVIRTIO_BIT(VIRTIO_F_RING_RESET))) |
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

void uvirtio_blk_drv_remove(struct uvirtio_blk_drv *public_b)
{
	struct blk_drv *b = blk_drv_of(public_b);

	if (b->t)
		teardown(b);
}

void *uvirtio_blk_drv_alloc_buf(struct uvirtio_blk_drv *public_b, size_t size)
{
	struct blk_drv *b = blk_drv_of(public_b);

	return uvirtio_dma_alloc(dma_of(b), size, BUF_ALIGN);
}

void uvirtio_blk_drv_free_buf(struct uvirtio_blk_drv *public_b, void *buf)
{
	struct blk_drv *b = blk_drv_of(public_b);

	uvirtio_dma_free(dma_of(b), buf);
}

int uvirtio_blk_drv_set_writeback(struct uvirtio_blk_drv *public_b, bool writeback)
{
	struct blk_drv *b = blk_drv_of(public_b);
	uint8_t wce = writeback;
	int ret;

	if (!uvirtio_driver_has_feature(&b->drv, VIRTIO_BLK_F_CONFIG_WCE))
		return -EOPNOTSUPP;
	ret = b->t->ops->set_config(b->t, offsetof(struct virtio_blk_config, wce), &wce, 1);
	if (ret)
		return ret;
	/* Read it back: the device decides which modes it has. */
	ret = uvirtio_driver_config_read(&b->drv, offsetof(struct virtio_blk_config, wce), &wce, 1);
	if (!ret)
		b->writeback = wce != 0;
	return ret;
}

struct uvirtio_driver *uvirtio_blk_drv_driver(struct uvirtio_blk_drv *b)
{
	return &blk_drv_of(b)->drv;
}

uint64_t uvirtio_blk_drv_capacity(const struct uvirtio_blk_drv *b)
{
	return blk_drv_of_const(b)->limits.capacity;
}

const struct uvirtio_blk_drv_limits *uvirtio_blk_drv_limits(const struct uvirtio_blk_drv *b)
{
	return &blk_drv_of_const(b)->limits;
}

unsigned uvirtio_blk_drv_num_queues(const struct uvirtio_blk_drv *b)
{
	return blk_drv_of_const(b)->num_queues;
}

bool uvirtio_blk_drv_read_only(const struct uvirtio_blk_drv *b)
{
	return blk_drv_of_const(b)->read_only;
}

bool uvirtio_blk_drv_writeback(const struct uvirtio_blk_drv *b)
{
	return blk_drv_of_const(b)->writeback;
}
