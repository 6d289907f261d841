// SPDX-License-Identifier: MIT
/* Fixtures of the virtio-blk driver tests (blk_drv_fixture.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "blk_drv_fixture.h"

/* ------------------------------------------------------------------ */
/* A small disk in memory, served on the loopback device thread. It
 * answers as a well-behaved device unless told to break one rule. */

/* Copy between a request's iovecs, at byte @off of the readable or
 * writable part, and @p. Returns bytes copied. */
static size_t md_copy(const struct iovec *iov, unsigned n, size_t off, void *p, size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len - done)
			l = len - done;
		if (to_iov)
			memcpy((char *)iov[i].iov_base + off, (char *)p + done, l);
		else
			memcpy((char *)p + done, (char *)iov[i].iov_base + off, l);
		done += l;
		off = 0;
	}
	return done;
}

static uint8_t md_serve(struct memdisk *m, struct uvirtio_req *req)
{
	const struct iovec *out = req->iov, *in = req->iov + req->n_out;
	struct virtio_blk_outhdr hdr;
	struct virtio_blk_discard_write_zeroes r;
	uint32_t data_in = req->in_len - 1;
	uint64_t off;

	if (md_copy(out, req->n_out, 0, &hdr, sizeof(hdr), false) != sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	off = le64toh(hdr.sector) * 512;
	switch (le32toh(hdr.type)) {
	case VIRTIO_BLK_T_IN:
		m->reads++;
		if (req->n_in - 1 > m->max_segments)
			m->max_segments = req->n_in - 1;
		if (off > sizeof(m->data) || data_in > sizeof(m->data) - off)
			return VIRTIO_BLK_S_IOERR;
		md_copy(in, req->n_in, 0, m->data + off, data_in, true);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT: {
		uint32_t len = req->out_len - sizeof(hdr);

		m->writes++;
		if (req->n_out - 1 > m->max_segments)
			m->max_segments = req->n_out - 1;
		if (off > sizeof(m->data) || len > sizeof(m->data) - off)
			return VIRTIO_BLK_S_IOERR;
		md_copy(out, req->n_out, sizeof(hdr), m->data + off, len, false);
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_FLUSH:
		m->flushes++;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		m->get_ids++;
		md_copy(in, req->n_in, 0, "memdisk-serial", 15, true);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (le32toh(hdr.type) == VIRTIO_BLK_T_DISCARD)
			m->discards++;
		else
			m->write_zeroes++;
		if (md_copy(out, req->n_out, sizeof(hdr), &r, sizeof(r), false) != sizeof(r))
			return VIRTIO_BLK_S_IOERR;
		off = le64toh(r.sector) * 512;
		if (off > sizeof(m->data) || le32toh(r.num_sectors) * 512ull > sizeof(m->data) - off)
			return VIRTIO_BLK_S_IOERR;
		memset(m->data + off, 0, le32toh(r.num_sectors) * 512ull);
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static void md_notify(struct uvirtio_device *dev, unsigned index)
{
	struct memdisk *m = uvirtio_device_priv(dev);
	struct uvirtio_devq *q = uvirtio_device_queue(dev, index);
	struct uvirtio_req req;

	uvirtio_req_init(&req, m->iov, MD_IOV);
	while (uvirtio_devq_pop(q, &req) == 1) {
		uint8_t *status = req.iov[req.n_out + req.n_in - 1].iov_base;
		uint32_t len = req.in_len;
		uint16_t id = req.id;

		if (m->mode == MD_HOLD) {
			m->held[m->nheld++] = (struct md_held){ req.id, (uint16_t)index, req.in_len, status };
			continue;
		}
		*status = md_serve(m, &req);
		if (m->mode == MD_BAD_STATUS)
			*status = 7;
		else if (m->mode == MD_STATUS_IOERR)
			*status = VIRTIO_BLK_S_IOERR;
		else if (m->mode == MD_STATUS_UNSUPP)
			*status = VIRTIO_BLK_S_UNSUPP;
		else if (m->mode == MD_LEN_TOO_LONG)
			len++;
		else if (m->mode == MD_LEN_SHORT)
			len--;
		else if (m->mode == MD_ID_UNSUBMITTED)
			id = (uint16_t)((id + 1) % uvirtio_devq_size(q));
		if (m->mode == MD_UNSUPP_ONE_BYTE) {
			*status = VIRTIO_BLK_S_UNSUPP;
			len = 1;
		}
		uvirtio_devq_push(q, id, len);
	}
	uvirtio_device_notify(dev, index);
}

static void md_reset(struct uvirtio_device *dev)
{
	((struct memdisk *)uvirtio_device_priv(dev))->nheld = 0;
}

/* Completes every held request OK with its whole writable part. */
int md_release(struct uvirtio_device *dev, void *arg)
{
	struct memdisk *m = uvirtio_device_priv(dev);

	(void)arg;
	/* Take first what the driver made available but whose kick the device
	 * thread has not served yet: this call may overtake the kick. */
	for (unsigned i = 0; i < uvirtio_device_num_queues(dev); i++)
		if (uvirtio_devq_is_ready(uvirtio_device_queue(dev, i)))
			md_notify(dev, i);
	for (unsigned i = 0; i < m->nheld; i++) {
		*m->held[i].status = VIRTIO_BLK_S_OK;
		uvirtio_devq_push(uvirtio_device_queue(dev, m->held[i].queue), m->held[i].id,
				  m->held[i].in_len);
		uvirtio_device_notify(dev, m->held[i].queue);
	}
	m->nheld = 0;
	return 0;
}

int md_needs_reset(struct uvirtio_device *dev, void *arg)
{
	(void)arg;
	uvirtio_device_needs_reset(dev, "test");
	return 0;
}

int md_set_mode(struct uvirtio_device *dev, void *arg)
{
	((struct memdisk *)uvirtio_device_priv(dev))->mode = *(enum md_mode *)arg;
	return 0;
}

/* What the device holds, copied on its thread (for data and counters). */
int md_snapshot(struct uvirtio_device *dev, void *arg)
{
	memcpy(arg, uvirtio_device_priv(dev), sizeof(struct memdisk));
	return 0;
}

#define MD_FEATURES                                                                       \
	(UVIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |            \
	 UVIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |              \
	 UVIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) | UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |         \
	 UVIRTIO_BIT(VIRTIO_BLK_F_MQ) | UVIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |                  \
	 UVIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES))

int env_start(struct env *e, uint64_t extra_features, enum md_mode mode)
{
	struct memdisk *m;
	int ret;

	memset(e, 0, sizeof(*e));
	m = e->md = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->mode = mode;
	m->ops = (struct uvirtio_device_ops){
		.name = "memdisk", .device_id = VIRTIO_ID_BLOCK, .features = MD_FEATURES | extra_features,
		.num_queues = 2, .queue_max_size = MD_QSIZE, .queue_notify = md_notify, .reset = md_reset,
	};
	m->config.capacity = htole64(MD_SECTORS);
	m->config.size_max = htole32(65536);
	m->config.seg_max = htole32(MD_QSIZE - 2);
	m->config.blk_size = htole32(4096);
	m->config.physical_block_exp = 1;
	m->config.min_io_size = htole16(1);
	m->config.opt_io_size = htole32(32);
	m->config.wce = 1;
	m->config.num_queues = htole16(2);
	m->config.max_discard_sectors = htole32(256);
	m->config.max_discard_seg = htole32(1);
	m->config.discard_sector_alignment = htole32(8);
	m->config.max_write_zeroes_sectors = htole32(512);
	m->config.max_write_zeroes_seg = htole32(1);
	m->config.write_zeroes_may_unmap = 1;
	for (unsigned i = 0; i < sizeof(m->data); i++)
		m->data[i] = (unsigned char)(i * 7 + i / 512);
	ret = uvirtio_loopback_create(&e->lb, NULL);
	if (!ret)
		ret = uvirtio_device_init(&m->dev, &m->ops, m, &m->config, sizeof(m->config),
					  uvirtio_loopback_mem(e->lb));
	if (!ret)
		ret = uvirtio_loopback_start(e->lb, &m->dev);
	if (!ret)
		e->t = uvirtio_loopback_transport(e->lb);
	return ret;
}

void env_stop(struct env *e)
{
	uvirtio_loopback_destroy(e->lb);
	uvirtio_device_destroy(&e->md->dev);
	free(e->md);
}

const struct uvirtio_blk_drv_opts two_queues = { .num_queues = 2 };

void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 31 + i * 13 + (i >> 9));
}

bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Async */

void count_done(struct uvirtio_blk_drv_req *req)
{
	struct async_ctx *c = req->opaque;

	c->done++;
	c->errors += req->result != 0;
}

/* Writes NREQ 4 KiB blocks at once, waits on the event fd, then reads them
 * back the same way and compares. */
void *async_worker(void *arg)
{
	struct async_ctx *c = arg;
	struct uvirtio_blk_drv_req reqs[NREQ];
	struct iovec v[NREQ];
	unsigned char *check = c->buf + NREQ * 4096;
	uint64_t base = c->queue * NREQ * 8;

	for (unsigned pass = 0; pass < 2; pass++) {
		unsigned submitted = 0;

		c->done = 0;
		for (unsigned i = 0; i < NREQ; i++) {
			v[i] = (struct iovec){ (pass ? check : c->buf) + i * 4096, 4096 };
			reqs[i] = (struct uvirtio_blk_drv_req){
				.type = pass ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, .sector = base + i * 8,
				.iov = &v[i], .niov = 1, .callback = count_done, .opaque = c,
			};
		}
		while (c->done < NREQ) {
			struct pollfd p = { .fd = uvirtio_blk_drv_event_fd(c->b, c->queue), .events = POLLIN };
			int ret;

			while (submitted < NREQ) {
				ret = uvirtio_blk_drv_submit(c->b, c->queue, &reqs[submitted]);
				if (ret == -EAGAIN || ret == -ENOSPC)
					break;
				if (ret) {
					c->result = ret;
					return NULL;
				}
				submitted++;
			}
			ret = uvirtio_blk_drv_poll(c->b, c->queue, NREQ);
			if (ret < 0) {
				c->result = ret;
				return NULL;
			}
			if (ret == 0 && c->done < NREQ && poll(&p, 1, 10000) != 1) {
				c->result = -ETIMEDOUT;
				return NULL;
			}
		}
	}
	c->result = c->errors ? -EIO : memcmp(c->buf, check, NREQ * 4096) ? -EBADMSG : 0;
	return NULL;
}

int async_run_two_queues(struct uvirtio_blk_drv *b, struct async_ctx c[2], unsigned seed)
{
	pthread_t th[2];
	int ret;

	/* A worker that does not run leaves its result at -ECANCELED. */
	for (unsigned i = 0; i < 2; i++)
		c[i] = (struct async_ctx){ .b = b, .queue = i, .result = -ECANCELED };
	for (unsigned i = 0; i < 2; i++) {
		c[i].buf = uvirtio_blk_drv_alloc_buf(b, 2 * NREQ * 4096);
		if (!c[i].buf)
			return -ENOMEM;
		fill(c[i].buf, NREQ * 4096, seed + i);
	}
	ret = -pthread_create(&th[0], NULL, async_worker, &c[0]);
	if (ret)
		return ret;
	ret = -pthread_create(&th[1], NULL, async_worker, &c[1]);
	pthread_join(th[0], NULL);
	if (!ret)
		pthread_join(th[1], NULL);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Against the real blk device (src/devices/blk.c), file and null backends */

/* A new image of DISK_BYTES at r->path, open as r->fd. */
static int real_image(struct real *r)
{
	strcpy(r->path, "/tmp/uvirtio-blk-drv-XXXXXX");
	r->fd = mkstemp(r->path);
	if (r->fd < 0 || ftruncate(r->fd, DISK_BYTES))
		return -errno;
	return 0;
}

int real_start(struct real *r, struct uvirtio_blk_dev_config cfg)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (cfg.backend == UVIRTIO_BLK_BACKEND_FILE) {
		ret = real_image(r);
		if (ret)
			return ret;
		cfg.path = r->path;
	}
	r->dev = calloc(1, sizeof(*r->dev));
	if (!r->dev)
		return -ENOMEM;
	ret = uvirtio_loopback_create(&r->lb, NULL);
	if (!ret)
		ret = uvirtio_blk_dev_init(r->dev, &cfg, uvirtio_loopback_mem(r->lb));
	/* Both sides have the image open: no file is left behind by a failed check. */
	if (r->fd >= 0)
		unlink(r->path);
	if (!ret)
		ret = uvirtio_loopback_start(r->lb, uvirtio_blk_dev_device(r->dev));
	if (!ret)
		r->t = uvirtio_loopback_transport(r->lb);
	return ret;
}

void real_stop(struct real *r)
{
	uvirtio_loopback_destroy(r->lb);
	uvirtio_blk_dev_destroy(r->dev);
	free(r->dev);
	if (r->fd >= 0)
		close(r->fd);
}

bool file_has(struct real *r, uint64_t sector, const void *p, size_t len)
{
	static unsigned char got[1 << 20];

	return len <= sizeof(got) && pread(r->fd, got, len, (off_t)(sector * 512)) == (ssize_t)len &&
	       !memcmp(got, p, len);
}
