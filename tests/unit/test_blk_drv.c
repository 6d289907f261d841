// SPDX-License-Identifier: MIT
/* virtio-blk driver over the loopback transport: every request type with
 * its data checked, limits refused before they reach the device, async I/O
 * across queues, remove and re-probe, and devices that break the rules. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "harness.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/loopback.h"

/* ------------------------------------------------------------------ */
/* A small disk in memory, served on the loopback device thread. It
 * answers as a well-behaved device unless told to break one rule. */

#define MD_SECTORS 2048u /* 1 MiB */
#define MD_QSIZE 64u
#define MD_IOV 160u

enum md_mode {
	MD_HONEST,
	MD_HOLD,           /* keep every request until reset or released */
	MD_BAD_STATUS,     /* status byte 7, which no spec version defines */
	MD_STATUS_IOERR,
	MD_STATUS_UNSUPP,
	MD_LEN_TOO_LONG,   /* used length one past the writable part */
	MD_LEN_SHORT,      /* used length that stops before the status byte */
	MD_ID_UNSUBMITTED, /* used id of a head that is not in flight */
	MD_UNSUPP_ONE_BYTE, /* UNSUPP, counting only the status byte as written */
};

struct md_held {
	uint16_t id;
	uint16_t queue;
	uint32_t in_len;
	uint8_t *status;
};

struct memdisk {
	struct uvirtio_device dev;
	struct uvirtio_device_ops ops;
	struct virtio_blk_config config;
	enum md_mode mode;
	unsigned char data[MD_SECTORS * 512];
	struct iovec iov[MD_IOV];
	struct md_held held[2 * MD_QSIZE];
	unsigned nheld;
	/* Counted as taken, by type. */
	unsigned reads, writes, flushes, discards, write_zeroes, get_ids;
	unsigned max_segments; /* most data segments seen in one request */
};

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
static int md_release(struct uvirtio_device *dev, void *arg)
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

static int md_needs_reset(struct uvirtio_device *dev, void *arg)
{
	(void)arg;
	uvirtio_device_needs_reset(dev, "test");
	return 0;
}

static int md_set_mode(struct uvirtio_device *dev, void *arg)
{
	((struct memdisk *)uvirtio_device_priv(dev))->mode = *(enum md_mode *)arg;
	return 0;
}

/* What the device holds, copied on its thread (for data and counters). */
static int md_snapshot(struct uvirtio_device *dev, void *arg)
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

struct env {
	struct uvirtio_loopback *lb;
	struct memdisk *md;
	struct uvirtio_transport *t;
};

static int env_start(struct env *e, uint64_t extra_features, enum md_mode mode)
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

static void env_stop(struct env *e)
{
	uvirtio_loopback_destroy(e->lb);
	uvirtio_device_destroy(&e->md->dev);
	free(e->md);
}

static const struct uvirtio_blk_drv_opts two_queues = { .num_queues = 2 };

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 31 + i * 13 + (i >> 9));
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Probe, config, lifecycle */

static void test_blk_drv_probe_reads_capacity_and_limits_from_config(void)
{
	const struct uvirtio_blk_drv_limits *l;
	struct uvirtio_blk_drv b;
	struct uvirtio_blk_drv_opts o = { .num_queues = 8 };
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &o), 0);
	l = uvirtio_blk_drv_limits(&b);
	CHECK_EQ(uvirtio_blk_drv_capacity(&b), MD_SECTORS);
	CHECK_EQ(l->blk_size, 4096);
	CHECK_EQ(l->size_max, 65536);
	CHECK_EQ(l->seg_max, MD_QSIZE - 2);
	CHECK_EQ(l->physical_block_exp, 1);
	CHECK_EQ(l->opt_io_size, 32);
	CHECK_EQ(l->max_discard_sectors, 256);
	CHECK_EQ(l->discard_sector_alignment, 8);
	CHECK_EQ(l->max_write_zeroes_sectors, 512);
	CHECK(l->write_zeroes_may_unmap);
	CHECK_EQ(l->device_queues, 2);
	/* Eight asked for, capped at the device's num_queues. */
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 2);
	CHECK(!uvirtio_blk_drv_read_only(&b));
	CHECK(uvirtio_blk_drv_writeback(&b));
	CHECK(uvirtio_blk_drv_event_fd(&b, 1) >= 0);
	CHECK_EQ(uvirtio_blk_drv_event_fd(&b, 2), -EINVAL);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_set_writeback_writes_config_wce(void)
{
	struct uvirtio_blk_drv b;
	struct memdisk snap;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	CHECK_EQ(uvirtio_blk_drv_set_writeback(&b, false), -EPERM); /* memdisk config is read-only */
	uvirtio_blk_drv_remove(&b);
	/* Without CONFIG_WCE there is no field to write, and FLUSH alone means writeback. */
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){
			.features = UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) }), 0);
	CHECK_EQ(uvirtio_blk_drv_set_writeback(&b, false), -EOPNOTSUPP);
	CHECK(uvirtio_blk_drv_writeback(&b));
	uvirtio_blk_drv_remove(&b);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_snapshot, &snap), 0);
	CHECK_EQ(snap.config.wce, 1);
	env_stop(&e);
}

/* ------------------------------------------------------------------ */
/* Data */

static void test_blk_drv_write_then_read_back_every_pattern(void)
{
	static struct memdisk snap;
	struct uvirtio_blk_drv b;
	unsigned char *w, *r;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &two_queues), 0);
	w = uvirtio_blk_drv_alloc_buf(&b, 65536);
	r = uvirtio_blk_drv_alloc_buf(&b, 65536);
	CHECK(w && r);
	for (unsigned pass = 0; pass < 8; pass++) {
		uint64_t sector = pass * 100;
		size_t len = 512u << (pass % 8); /* 512 B to 64 KiB */

		fill(w, len, pass);
		CHECK_EQ(uvirtio_blk_drv_write(&b, pass % 2, sector, w, len, 5000), 0);
		memset(r, 0, len);
		CHECK_EQ(uvirtio_blk_drv_read(&b, (pass + 1) % 2, sector, r, len, 5000), 0);
		CHECK(!memcmp(w, r, len));
		/* What the device stored is what was written. */
		CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_snapshot, &snap), 0);
		CHECK(!memcmp(snap.data + sector * 512, w, len));
	}
	/* The last sector, exactly at the end of the disk. */
	fill(w, 512, 99);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, MD_SECTORS - 1, w, 512, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, MD_SECTORS - 1, r, 512, 5000), 0);
	CHECK(!memcmp(w, r, 512));
	uvirtio_blk_drv_free_buf(&b, w);
	uvirtio_blk_drv_free_buf(&b, r);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_readv_writev_scatter_gather_many_segments(void)
{
	static struct memdisk snap;
	const unsigned nseg = MD_QSIZE - 2; /* the device's seg_max */
	struct iovec wv[MD_QSIZE], rv[MD_QSIZE];
	struct uvirtio_blk_drv b;
	unsigned char *w, *r;
	size_t total = 0;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &two_queues), 0);
	w = uvirtio_blk_drv_alloc_buf(&b, MD_QSIZE * 1024);
	r = uvirtio_blk_drv_alloc_buf(&b, MD_QSIZE * 1024);
	CHECK(w && r);
	/* Segments of odd sizes that only add up to whole sectors; the read
	 * splits the same bytes differently. */
	for (unsigned i = 0; i < nseg; i++) {
		size_t len = i % 2 ? 768 : 256;

		wv[i] = (struct iovec){ w + total, len };
		total += len;
	}
	for (unsigned i = 0; i < nseg; i++)
		rv[i] = (struct iovec){ r + i * total / nseg, total / nseg };
	CHECK_EQ(total % 512, 0);
	fill(w, total, 5);
	CHECK_EQ(uvirtio_blk_drv_writev(&b, 0, 10, wv, nseg, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_readv(&b, 1, 10, rv, nseg, 5000), 0);
	CHECK(!memcmp(w, r, total));
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_snapshot, &snap), 0);
	CHECK(!memcmp(snap.data + 10 * 512, w, total));
	CHECK_EQ(snap.max_segments, nseg);
	/* One more segment than seg_max is refused before the device sees it. */
	wv[nseg] = (struct iovec){ w + total, 512 };
	CHECK_EQ(uvirtio_blk_drv_writev(&b, 0, 10, wv, nseg + 1, 5000), -EINVAL);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_discard_and_write_zeroes_read_back_zeroes(void)
{
	struct uvirtio_blk_drv b;
	unsigned char *buf;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &two_queues), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 64 * 512);
	CHECK(buf);
	fill(buf, 64 * 512, 3);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 0, buf, 64 * 512, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 8, 8, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 1, 32, 16, false, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 1, 48, 8, true, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 64 * 512, 5000), 0);
	CHECK(!all_zero(buf, 8 * 512));
	CHECK(all_zero(buf + 8 * 512, 8 * 512));
	CHECK(!all_zero(buf + 16 * 512, 16 * 512));
	CHECK(all_zero(buf + 32 * 512, 24 * 512));
	CHECK(!all_zero(buf + 56 * 512, 8 * 512));
	/* Over the device's limits, or outside the disk: refused here. */
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 257, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 0, 0, 513, false, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, MD_SECTORS - 1, 2, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 0, 5000), -EINVAL);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_get_id_and_flush_reach_the_device(void)
{
	struct uvirtio_blk_drv b;
	struct memdisk *snap = malloc(sizeof(*snap));
	char id[VIRTIO_BLK_ID_BYTES + 1];
	struct env e;

	CHECK(snap);
	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &two_queues), 0);
	memset(id, 'x', sizeof(id));
	CHECK_EQ(uvirtio_blk_drv_get_id(&b, 0, id, 5000), 0);
	CHECK_STR(id, "memdisk-serial");
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 1, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 0, 5000), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_snapshot, snap), 0);
	CHECK_EQ(snap->flushes, 2);
	CHECK_EQ(snap->get_ids, 1);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
	free(snap);
}

/* ------------------------------------------------------------------ */
/* Refused before submitting */

static void test_blk_drv_refuses_write_to_read_only_device_with_erofs(void)
{
	struct uvirtio_blk_drv b;
	struct memdisk *snap = malloc(sizeof(*snap));
	unsigned char *buf;
	struct env e;

	CHECK(snap);
	CHECK_EQ(env_start(&e, UVIRTIO_BIT(VIRTIO_BLK_F_RO), MD_HONEST), 0);
	/* RO is accepted even when the caller did not list it. */
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){
			.features = UVIRTIO_BIT(VIRTIO_BLK_F_DISCARD) }), 0);
	CHECK(uvirtio_blk_drv_read_only(&b));
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 0, buf, 4096, 5000), -EROFS);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 8, 5000), -EROFS);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 5000), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_snapshot, snap), 0);
	CHECK_EQ(snap->writes, 0);
	CHECK_EQ(snap->discards, 0);
	CHECK_EQ(snap->reads, 1);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
	free(snap);
}

static void test_blk_drv_refuses_range_outside_capacity_or_partial_sector_with_einval(void)
{
	struct uvirtio_blk_drv b;
	struct uvirtio_blk_drv_req req = { .type = VIRTIO_BLK_T_IN };
	struct iovec v[2];
	unsigned char *buf;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 2 * 65536 + 4096);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, MD_SECTORS, buf, 512, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, MD_SECTORS - 1, buf, 1024, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, UINT64_MAX, buf, 512, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 511, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 0, 5000), -EINVAL);
	/* A segment over size_max. */
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 65536 + 512, 5000), -EINVAL);
	v[0] = (struct iovec){ buf, 65536 };
	v[1] = (struct iovec){ buf + 65536, 512 };
	CHECK_EQ(uvirtio_blk_drv_readv(&b, 0, 0, v, 2, 5000), 0);
	/* Bad queue, unknown type, UNMAP on anything but write zeroes. */
	CHECK_EQ(uvirtio_blk_drv_read(&b, 2, 0, buf, 512, 5000), -EINVAL);
	req.iov = v;
	req.niov = 1;
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 2, &req), -EINVAL);
	req.type = 99;
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 0, &req), -EOPNOTSUPP);
	req.type = VIRTIO_BLK_T_IN;
	req.flags = UVIRTIO_BLK_DRV_REQ_UNMAP;
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 0, &req), -EINVAL);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_refuses_buffer_outside_shared_memory_with_efault(void)
{
	static unsigned char private_buf[4096] __attribute__((aligned(4096)));
	struct uvirtio_blk_drv b;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, private_buf, 4096, 5000), -EFAULT);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 0, private_buf, 4096, 5000), -EFAULT);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_refuses_request_whose_feature_was_not_negotiated(void)
{
	struct uvirtio_blk_drv b;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	/* The device offers FLUSH, DISCARD and WRITE_ZEROES; the driver takes none. */
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){
			.features = UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) }), 0);
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 0, 5000), -EOPNOTSUPP);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 8, 5000), -EOPNOTSUPP);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 0, 0, 8, false, 5000), -EOPNOTSUPP);
	CHECK(!uvirtio_blk_drv_writeback(&b));
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

/* ------------------------------------------------------------------ */
/* Async */

struct async_ctx {
	struct uvirtio_blk_drv *b;
	unsigned queue;
	unsigned char *buf; /* this thread's area: NREQ * 4096 bytes */
	unsigned done, errors;
	int result;
};

#define NREQ 48u

static void count_done(struct uvirtio_blk_drv_req *req)
{
	struct async_ctx *c = req->opaque;

	c->done++;
	c->errors += req->result != 0;
}

/* Writes NREQ 4 KiB blocks at once, waits on the event fd, then reads them
 * back the same way and compares. */
static void *async_worker(void *arg)
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

static void test_blk_drv_async_many_requests_in_flight_across_two_queues(void)
{
	static struct memdisk snap;
	struct async_ctx c[2];
	pthread_t th[2];
	struct uvirtio_blk_drv b;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){ .num_queues = 2 }), 0);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 2);
	for (unsigned i = 0; i < 2; i++) {
		c[i] = (struct async_ctx){ .b = &b, .queue = i };
		c[i].buf = uvirtio_blk_drv_alloc_buf(&b, 2 * NREQ * 4096);
		CHECK(c[i].buf);
		fill(c[i].buf, NREQ * 4096, 10 + i);
	}
	for (unsigned i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, async_worker, &c[i]), 0);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(c[0].result, 0);
	CHECK_EQ(c[1].result, 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_snapshot, &snap), 0);
	CHECK_EQ(snap.writes, 2 * NREQ);
	CHECK(!memcmp(snap.data + NREQ * 8 * 512, c[1].buf, NREQ * 4096));
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_async_full_queue_says_eagain_or_enospc(void)
{
	struct uvirtio_blk_drv_req reqs[MD_QSIZE + 1];
	struct async_ctx c = { 0 };
	struct uvirtio_blk_drv b;
	struct iovec v;
	unsigned n = 0;
	int ret = 0;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HOLD), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	v = (struct iovec){ uvirtio_blk_drv_alloc_buf(&b, 512), 512 };
	while (n <= MD_QSIZE) {
		reqs[n] = (struct uvirtio_blk_drv_req){ .type = VIRTIO_BLK_T_IN, .iov = &v, .niov = 1,
							.callback = count_done, .opaque = &c };
		ret = uvirtio_blk_drv_submit(&b, 0, &reqs[n]);
		if (ret)
			break;
		n++;
	}
	CHECK(ret == -EAGAIN || ret == -ENOSPC);
	CHECK(n >= MD_QSIZE / 2);
	/* The device answers them all; every callback runs once. */
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_release, NULL), 0);
	while (c.done < n) {
		struct pollfd p = { .fd = uvirtio_blk_drv_event_fd(&b, 0), .events = POLLIN };

		ret = uvirtio_blk_drv_poll(&b, 0, 4);
		CHECK(ret >= 0);
		/* Four done means more may be pending without a notification. */
		if (ret < 4 && c.done < n)
			CHECK_EQ(poll(&p, 1, 10000), 1);
	}
	CHECK_EQ(c.done, n);
	CHECK_EQ(c.errors, 0);
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 0, &reqs[0]), 0);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_sync_call_on_a_full_queue_completes_the_others_first(void)
{
	struct uvirtio_blk_drv_req reqs[MD_QSIZE + 1];
	struct async_ctx c = { 0 };
	struct uvirtio_blk_drv b;
	unsigned char *buf;
	struct iovec v;
	unsigned n = 0;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 1024);
	v = (struct iovec){ buf, 512 };
	for (; n <= MD_QSIZE; n++) {
		reqs[n] = (struct uvirtio_blk_drv_req){ .type = VIRTIO_BLK_T_IN, .iov = &v, .niov = 1,
							.callback = count_done, .opaque = &c };
		if (uvirtio_blk_drv_submit(&b, 0, &reqs[n]))
			break;
	}
	CHECK_EQ(n, MD_QSIZE);
	CHECK_EQ(c.done, 0);
	/* No room: the call collects the others (their callbacks run), then goes. */
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf + 512, 512, 10000), 0);
	CHECK(c.done >= 1);
	while (c.done < n)
		CHECK(uvirtio_blk_drv_poll(&b, 0, MD_QSIZE) >= 0);
	CHECK_EQ(c.errors, 0);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

/* ------------------------------------------------------------------ */
/* Remove, re-probe, time-outs */

static void test_blk_drv_remove_cancels_outstanding_requests(void)
{
	struct uvirtio_blk_drv_req reqs[4];
	struct async_ctx c = { 0 };
	struct uvirtio_blk_drv b;
	struct iovec v;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HOLD), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	v = (struct iovec){ uvirtio_blk_drv_alloc_buf(&b, 512), 512 };
	for (unsigned i = 0; i < 4; i++) {
		reqs[i] = (struct uvirtio_blk_drv_req){ .type = VIRTIO_BLK_T_IN, .iov = &v, .niov = 1,
							.callback = count_done, .opaque = &c };
		CHECK_EQ(uvirtio_blk_drv_submit(&b, 0, &reqs[i]), 0);
	}
	uvirtio_blk_drv_remove(&b);
	CHECK_EQ(c.done, 4);
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(reqs[i].result, -ECANCELED);
	env_stop(&e);
}

static void test_blk_drv_reprobe_with_other_features_keeps_the_data(void)
{
	struct uvirtio_blk_drv b;
	unsigned char *w, *r;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){ .num_queues = 2 }), 0);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 2);
	w = uvirtio_blk_drv_alloc_buf(&b, 8192);
	r = uvirtio_blk_drv_alloc_buf(&b, 8192);
	fill(w, 8192, 77);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 1, 200, w, 8192, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 8, 5000), 0);
	uvirtio_blk_drv_remove(&b);

	/* Without MQ, DISCARD and the ring features: one queue, no discard. */
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){
			.features = UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH), .num_queues = 2, .queue_size = 16 }), 0);
	CHECK_EQ(uvirtio_driver_features(uvirtio_blk_drv_driver(&b)), UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 1);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 8, 5000), -EOPNOTSUPP);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 1, 200, r, 8192, 5000), -EINVAL);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 200, r, 8192, 5000), 0);
	CHECK(!memcmp(w, r, 8192));
	CHECK_EQ(uvirtio_drvq_size(uvirtio_driver_vq(uvirtio_blk_drv_driver(&b), 0)), 16);
	uvirtio_blk_drv_remove(&b);
	uvirtio_blk_drv_remove(&b); /* twice is harmless */
	env_stop(&e);
}

static void test_blk_drv_sync_timeout_leaves_request_with_device_until_remove(void)
{
	struct uvirtio_blk_drv b;
	unsigned char *buf;
	enum md_mode honest = MD_HONEST;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HOLD), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	/* A device that never answers: the wait ends at the time-out. */
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 50), -ETIMEDOUT);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 0), -ETIMEDOUT);
	/* Its late answers are dropped without a callback; the queue goes on. */
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_set_mode, &honest), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_release, NULL), 0);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 5000), 0);
	CHECK_EQ(uvirtio_blk_drv_poll(&b, 0, 100), 0);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_sync_wait_ends_with_eio_when_device_needs_reset(void)
{
	struct uvirtio_blk_drv_req req, req2 = { .type = VIRTIO_BLK_T_GET_ID };
	struct async_ctx c = { 0 };
	struct uvirtio_blk_drv b;
	struct iovec v;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HOLD), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &two_queues), 0);
	v = (struct iovec){ uvirtio_blk_drv_alloc_buf(&b, 512), 512 };
	req = (struct uvirtio_blk_drv_req){ .type = VIRTIO_BLK_T_IN, .iov = &v, .niov = 1,
					    .callback = count_done, .opaque = &c };
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 1, &req), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, md_needs_reset, NULL), 0);
	/* No time-out: only the needs-reset finding can end this wait. */
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, v.iov_base, 512, -1), -EIO);
	/* The other queue's waiter is woken too, and the driver takes nothing new. */
	{
		struct pollfd p = { .fd = uvirtio_blk_drv_event_fd(&b, 1), .events = POLLIN };

		CHECK_EQ(poll(&p, 1, 10000), 1);
	}
	CHECK_EQ(uvirtio_blk_drv_poll(&b, 1, 10), -EIO);
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 1, &req2), -EIO);
	CHECK_EQ(c.done, 0);
	uvirtio_blk_drv_remove(&b);
	CHECK_EQ(c.done, 1);
	CHECK_EQ(req.result, -ECANCELED);
	/* After the reset the device works again. */
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

/* ------------------------------------------------------------------ */
/* Hostile devices */

static int hostile_rw(enum md_mode mode, bool write)
{
	struct uvirtio_blk_drv b;
	struct env e;
	int ret;

	if (env_start(&e, 0, mode))
		return 1;
	ret = uvirtio_blk_drv_probe(&b, e.t, NULL);
	if (!ret) {
		void *buf = uvirtio_blk_drv_alloc_buf(&b, 4096);

		ret = write ? uvirtio_blk_drv_write(&b, 0, 0, buf, 4096, 5000)
			    : uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 5000);
		uvirtio_blk_drv_remove(&b);
	} else {
		ret = 1;
	}
	env_stop(&e);
	return ret;
}

static void test_blk_drv_status_ioerr_is_eio_and_unsupp_is_eopnotsupp(void)
{
	CHECK_EQ(hostile_rw(MD_STATUS_IOERR, false), -EIO);
	CHECK_EQ(hostile_rw(MD_STATUS_UNSUPP, false), -EOPNOTSUPP);
}

static void test_blk_drv_unknown_status_byte_is_eio(void)
{
	CHECK_EQ(hostile_rw(MD_BAD_STATUS, false), -EIO);
}

static void test_blk_drv_ok_with_used_length_not_covering_the_writable_part_is_eio(void)
{
	/* A read claiming success with its data short by one byte... */
	CHECK_EQ(hostile_rw(MD_LEN_SHORT, false), -EIO);
	/* ...and a write whose used length is 0: no status byte written. */
	CHECK_EQ(hostile_rw(MD_LEN_SHORT, true), -EIO);
}

static void test_blk_drv_error_status_may_count_only_the_status_byte(void)
{
	CHECK_EQ(hostile_rw(MD_UNSUPP_ONE_BYTE, false), -EOPNOTSUPP);
	CHECK_EQ(hostile_rw(MD_UNSUPP_ONE_BYTE, true), -EOPNOTSUPP);
}

static void test_blk_drv_used_length_larger_than_offered_breaks_queue(void)
{
	struct uvirtio_blk_drv b;
	unsigned char *buf;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_LEN_TOO_LONG), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 5000), -EIO);
	CHECK(uvirtio_drvq_is_broken(uvirtio_driver_vq(uvirtio_blk_drv_driver(&b), 0)));
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 5000), -EIO);
	CHECK_EQ(uvirtio_blk_drv_poll(&b, 0, 10), -EIO);
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

static void test_blk_drv_used_id_not_submitted_breaks_queue(void)
{
	struct uvirtio_blk_drv b;
	unsigned char *buf;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_ID_UNSUBMITTED), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 0, buf, 4096, 5000), -EIO);
	CHECK(uvirtio_drvq_is_broken(uvirtio_driver_vq(uvirtio_blk_drv_driver(&b), 0)));
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 0, &(struct uvirtio_blk_drv_req){ .type = VIRTIO_BLK_T_GET_ID }),
		 -EIO);
	uvirtio_blk_drv_remove(&b);
	/* A reset and a new probe give a working queue again. */
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, NULL), 0);
	CHECK(!uvirtio_drvq_is_broken(uvirtio_driver_vq(uvirtio_blk_drv_driver(&b), 0)));
	uvirtio_blk_drv_remove(&b);
	env_stop(&e);
}

/* ------------------------------------------------------------------ */
/* Against the real blk device (src/devices/blk.c), file and null backends */

#define DISK_BYTES (4u << 20)

struct real {
	struct uvirtio_loopback *lb;
	struct uvirtio_blk_dev *dev;
	struct uvirtio_transport *t;
	char path[64];
	int fd; /* the image, for pread */
};

static int real_start(struct real *r, struct uvirtio_blk_dev_config cfg)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (cfg.backend == UVIRTIO_BLK_BACKEND_FILE) {
		strcpy(r->path, "/tmp/uvirtio-blk-drv-XXXXXX");
		r->fd = mkstemp(r->path);
		if (r->fd < 0 || ftruncate(r->fd, DISK_BYTES))
			return -errno;
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

static void real_stop(struct real *r)
{
	uvirtio_loopback_destroy(r->lb);
	uvirtio_blk_dev_destroy(r->dev);
	free(r->dev);
	if (r->fd >= 0)
		close(r->fd);
}

static bool file_has(struct real *r, uint64_t sector, const void *p, size_t len)
{
	static unsigned char got[1 << 20];

	return len <= sizeof(got) && pread(r->fd, got, len, (off_t)(sector * 512)) == (ssize_t)len &&
	       !memcmp(got, p, len);
}

static void test_blk_dev_file_every_request_type_matches_the_image(void)
{
	struct uvirtio_blk_drv b;
	char id[VIRTIO_BLK_ID_BYTES + 1];
	unsigned char *w, *r, *z;
	struct real d;

	CHECK_EQ(real_start(&d, (struct uvirtio_blk_dev_config){
			.backend = UVIRTIO_BLK_BACKEND_FILE, .num_queues = 2, .serial = "uvirtio-blk-test" }), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, &two_queues), 0);
	CHECK_EQ(uvirtio_blk_drv_capacity(&b), DISK_BYTES / 512);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 2);
	w = uvirtio_blk_drv_alloc_buf(&b, 1 << 20);
	r = uvirtio_blk_drv_alloc_buf(&b, 1 << 20);
	z = uvirtio_blk_drv_alloc_buf(&b, 1 << 20);
	CHECK(w && r && z);
	for (unsigned pass = 0; pass < 12; pass++) {
		uint64_t sector = pass * 513;
		size_t len = 512u << (pass % 11); /* 512 B to 512 KiB */

		fill(w, len, pass + 40);
		CHECK_EQ(uvirtio_blk_drv_write(&b, pass % 2, sector, w, len, 10000), 0);
		memset(r, 0, len);
		CHECK_EQ(uvirtio_blk_drv_read(&b, (pass + 1) % 2, sector, r, len, 10000), 0);
		CHECK(!memcmp(w, r, len));
		CHECK(file_has(&d, sector, w, len));
	}
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 0, 10000), 0);
	/* The last sector of the disk, and one past it. */
	CHECK_EQ(uvirtio_blk_drv_write(&b, 1, DISK_BYTES / 512 - 1, w, 512, 10000), 0);
	CHECK(file_has(&d, DISK_BYTES / 512 - 1, w, 512));
	CHECK_EQ(uvirtio_blk_drv_write(&b, 1, DISK_BYTES / 512, w, 512, 10000), -EINVAL);

	fill(w, 1 << 20, 3);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 0, w, 1 << 20, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 0, 64, 64, false, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 1, 256, 64, true, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 1, 512, 64, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, r, 1 << 20, 10000), 0);
	CHECK(!memcmp(r, w, 64 * 512));
	CHECK(all_zero(r + 64 * 512, 64 * 512));
	CHECK(!memcmp(r + 128 * 512, w + 128 * 512, 128 * 512));
	CHECK(all_zero(r + 256 * 512, 64 * 512));
	CHECK(all_zero(r + 512 * 512, 64 * 512)); /* a file's punched hole reads back zeroes */
	CHECK(!memcmp(r + 576 * 512, w + 576 * 512, (2048 - 576) * 512));
	CHECK(all_zero(z, 64 * 512));
	CHECK(file_has(&d, 64, z, 64 * 512));
	CHECK(file_has(&d, 256, z, 64 * 512));

	CHECK_EQ(uvirtio_blk_drv_get_id(&b, 1, id, 10000), 0);
	CHECK_STR(id, "uvirtio-blk-test");
	uvirtio_blk_drv_remove(&b);
	real_stop(&d);
}

static void test_blk_dev_file_scatter_gather_up_to_seg_max(void)
{
	static struct iovec wv[1024], rv[1024];
	struct uvirtio_blk_drv b;
	unsigned char *w, *r;
	unsigned nseg;
	size_t total = 0;
	struct real d;

	CHECK_EQ(real_start(&d, (struct uvirtio_blk_dev_config){ .backend = UVIRTIO_BLK_BACKEND_FILE }), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, &(struct uvirtio_blk_drv_opts){ .queue_size = 256 }), 0);
	nseg = uvirtio_blk_drv_limits(&b)->seg_max;
	CHECK(nseg >= 64 && nseg <= 254);
	w = uvirtio_blk_drv_alloc_buf(&b, nseg * 1024);
	r = uvirtio_blk_drv_alloc_buf(&b, nseg * 1024);
	CHECK(w && r);
	/* Unaligned segments of 256 and 768 bytes: whole sectors only in sum. */
	for (unsigned i = 0; i < nseg; i++) {
		size_t len = i % 2 ? 768 : 256;

		wv[i] = (struct iovec){ w + total + i, len }; /* a gap of one byte more each time */
		total += len;
	}
	if (nseg % 2)
		wv[nseg - 1].iov_len += 256, total += 256;
	CHECK_EQ(total % 512, 0);
	for (unsigned i = 0; i < nseg; i++)
		fill(wv[i].iov_base, wv[i].iov_len, i);
	/* Read it back as 512-byte pieces into one flat buffer. */
	for (unsigned i = 0; i < total / 512; i++)
		rv[i] = (struct iovec){ r + i * 512, 512 };
	CHECK_EQ(uvirtio_blk_drv_writev(&b, 0, 7, wv, nseg, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_readv(&b, 0, 7, rv, (unsigned)(total / 512), 10000), 0);
	for (size_t i = 0, off = 0; i < nseg; off += wv[i].iov_len, i++)
		CHECK(!memcmp(wv[i].iov_base, r + off, wv[i].iov_len));
	CHECK(file_has(&d, 7, r, total));
	uvirtio_blk_drv_remove(&b);
	real_stop(&d);
}

/* Without indirect descriptors each request takes three of the 32 ring
 * entries, so the driver's ring fills up (-ENOSPC) before the device runs out
 * of request slots; with them, one entry each, so the device's slots fill
 * first (the case where its queue thread once slept for good). */
static void file_async_in_flight_across_two_queues(bool indirect, uint64_t ring)
{
	struct async_ctx c[2];
	pthread_t th[2];
	struct uvirtio_blk_drv b;
	struct real d;
	uint64_t features = UVIRTIO_BLK_DRV_FEATURES | ring;

	if (!indirect)
		features &= ~UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	CHECK_EQ(real_start(&d, (struct uvirtio_blk_dev_config){
			.backend = UVIRTIO_BLK_BACKEND_FILE, .num_queues = 2 }), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, &(struct uvirtio_blk_drv_opts){
			.features = features, .num_queues = 2, .queue_size = 32 }), 0);
	CHECK_EQ(uvirtio_driver_features(uvirtio_blk_drv_driver(&b)) & UVIRTIO_BLK_DRV_RING_FEATURES, ring);
	for (unsigned i = 0; i < 2; i++) {
		c[i] = (struct async_ctx){ .b = &b, .queue = i };
		c[i].buf = uvirtio_blk_drv_alloc_buf(&b, 2 * NREQ * 4096);
		CHECK(c[i].buf);
		fill(c[i].buf, NREQ * 4096, 20 + i);
	}
	for (unsigned i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, async_worker, &c[i]), 0);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(c[0].result, 0);
	CHECK_EQ(c[1].result, 0);
	CHECK(file_has(&d, 0, c[0].buf, NREQ * 4096));
	CHECK(file_has(&d, NREQ * 8, c[1].buf, NREQ * 4096));
	uvirtio_blk_drv_remove(&b);
	real_stop(&d);
}

static void test_blk_dev_file_async_in_flight_across_two_queues(void)
{
	file_async_in_flight_across_two_queues(false, 0);
}

/* io_uring completes out of order: on a packed ring the device pushes
 * handles in any order; with IN_ORDER the queue must put them back in order
 * for the driver, and both rings carry the driver's notification data. */
static void test_blk_dev_file_async_on_packed_ring(void)
{
	file_async_in_flight_across_two_queues(true, UVIRTIO_BIT(VIRTIO_F_RING_PACKED) |
							     UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA));
}

static void test_blk_dev_file_async_on_packed_ring_in_order(void)
{
	file_async_in_flight_across_two_queues(true, UVIRTIO_BLK_DRV_RING_FEATURES);
}

static void test_blk_dev_file_async_on_split_ring_in_order(void)
{
	file_async_in_flight_across_two_queues(false, UVIRTIO_BIT(VIRTIO_F_IN_ORDER));
}

static void test_blk_dev_file_async_more_in_flight_than_device_slots_with_indirect(void)
{
	for (unsigned i = 0; i < 10; i++)
		file_async_in_flight_across_two_queues(true, 0);
}

static void test_blk_dev_read_only_refuses_writes_with_erofs(void)
{
	struct uvirtio_blk_drv b;
	struct uvirtio_blk_dev_stats st;
	unsigned char *buf;
	struct real d;

	CHECK_EQ(real_start(&d, (struct uvirtio_blk_dev_config){
			.backend = UVIRTIO_BLK_BACKEND_FILE, .read_only = true }), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, NULL), 0);
	CHECK(uvirtio_blk_drv_read_only(&b));
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 0, buf, 4096, 10000), -EROFS);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 0, 0, 8, false, 10000), -EROFS);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 8, 10000), -EROFS);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 10000), 0);
	uvirtio_blk_dev_get_stats(d.dev, &st);
	CHECK_EQ(st.writes + st.write_zeroes + st.discards, 0);
	CHECK_EQ(st.reads, 1);
	uvirtio_blk_drv_remove(&b);
	real_stop(&d);
}

static void test_blk_dev_reprobe_without_mq_and_discard_keeps_the_data(void)
{
	struct uvirtio_blk_drv b;
	unsigned char *w, *r;
	struct real d;

	CHECK_EQ(real_start(&d, (struct uvirtio_blk_dev_config){
			.backend = UVIRTIO_BLK_BACKEND_FILE, .num_queues = 4 }), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, &(struct uvirtio_blk_drv_opts){ .num_queues = 4 }), 0);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 4);
	w = uvirtio_blk_drv_alloc_buf(&b, 65536);
	r = uvirtio_blk_drv_alloc_buf(&b, 65536);
	fill(w, 65536, 9);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 3, 1000, w, 65536, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 3, 10000), 0);
	uvirtio_blk_drv_remove(&b);

	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, &(struct uvirtio_blk_drv_opts){
			.features = UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX),
			.num_queues = 4 }), 0);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 1);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 8, 10000), -EOPNOTSUPP);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 1000, r, 65536, 10000), 0);
	CHECK(!memcmp(w, r, 65536));
	uvirtio_blk_drv_remove(&b);
	real_stop(&d);
}

static void test_blk_dev_set_writeback_switches_the_cache_mode(void)
{
	struct uvirtio_blk_drv b;
	struct real d;

	CHECK_EQ(real_start(&d, (struct uvirtio_blk_dev_config){ .backend = UVIRTIO_BLK_BACKEND_FILE }), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, NULL), 0);
	CHECK(uvirtio_blk_drv_writeback(&b));
	CHECK_EQ(uvirtio_blk_drv_set_writeback(&b, false), 0);
	CHECK(!uvirtio_blk_drv_writeback(&b));
	CHECK_EQ(uvirtio_blk_drv_set_writeback(&b, true), 0);
	CHECK(uvirtio_blk_drv_writeback(&b));
	uvirtio_blk_drv_remove(&b);
	real_stop(&d);
}

static void test_blk_dev_null_backend_completes_every_request(void)
{
	struct uvirtio_blk_drv b;
	struct uvirtio_blk_dev_stats st;
	char id[VIRTIO_BLK_ID_BYTES + 1];
	unsigned char *buf;
	struct real d;

	CHECK_EQ(real_start(&d, (struct uvirtio_blk_dev_config){
			.backend = UVIRTIO_BLK_BACKEND_NULL, .null_capacity = (1ull << 30) + 100 }), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, d.t, NULL), 0);
	CHECK_EQ(uvirtio_blk_drv_capacity(&b), (1ull << 30) / 512);
	buf = uvirtio_blk_drv_alloc_buf(&b, 65536);
	CHECK_EQ(uvirtio_blk_drv_write(&b, 0, 12345, buf, 65536, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, (1ull << 30) / 512 - 128, buf, 65536, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 0, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_discard(&b, 0, 0, 8, 10000), 0);
	CHECK_EQ(uvirtio_blk_drv_write_zeroes(&b, 0, 0, 8, true, 10000), 0);
	/* No serial configured: an empty ID. */
	CHECK_EQ(uvirtio_blk_drv_get_id(&b, 0, id, 10000), 0);
	CHECK_STR(id, "");
	uvirtio_blk_dev_get_stats(d.dev, &st);
	CHECK_EQ(st.reads, 1);
	CHECK_EQ(st.writes, 1);
	CHECK_EQ(st.flushes, 1);
	CHECK_EQ(st.ioerr + st.unsupp, 0);
	uvirtio_blk_drv_remove(&b);
	real_stop(&d);
}

TEST_MAIN(T(test_blk_drv_probe_reads_capacity_and_limits_from_config),
	  T(test_blk_drv_set_writeback_writes_config_wce),
	  T(test_blk_drv_write_then_read_back_every_pattern),
	  T(test_blk_drv_readv_writev_scatter_gather_many_segments),
	  T(test_blk_drv_discard_and_write_zeroes_read_back_zeroes),
	  T(test_blk_drv_get_id_and_flush_reach_the_device),
	  T(test_blk_drv_refuses_write_to_read_only_device_with_erofs),
	  T(test_blk_drv_refuses_range_outside_capacity_or_partial_sector_with_einval),
	  T(test_blk_drv_refuses_buffer_outside_shared_memory_with_efault),
	  T(test_blk_drv_refuses_request_whose_feature_was_not_negotiated),
	  T(test_blk_drv_async_many_requests_in_flight_across_two_queues),
	  T(test_blk_drv_async_full_queue_says_eagain_or_enospc),
	  T(test_blk_drv_sync_call_on_a_full_queue_completes_the_others_first),
	  T(test_blk_drv_remove_cancels_outstanding_requests),
	  T(test_blk_drv_reprobe_with_other_features_keeps_the_data),
	  T(test_blk_drv_sync_timeout_leaves_request_with_device_until_remove),
	  T(test_blk_drv_sync_wait_ends_with_eio_when_device_needs_reset),
	  T(test_blk_drv_status_ioerr_is_eio_and_unsupp_is_eopnotsupp),
	  T(test_blk_drv_unknown_status_byte_is_eio),
	  T(test_blk_drv_ok_with_used_length_not_covering_the_writable_part_is_eio),
	  T(test_blk_drv_error_status_may_count_only_the_status_byte),
	  T(test_blk_drv_used_length_larger_than_offered_breaks_queue),
	  T(test_blk_drv_used_id_not_submitted_breaks_queue),
	  T(test_blk_dev_file_every_request_type_matches_the_image),
	  T(test_blk_dev_file_scatter_gather_up_to_seg_max),
	  T(test_blk_dev_file_async_in_flight_across_two_queues),
	  T(test_blk_dev_file_async_on_packed_ring), T(test_blk_dev_file_async_on_packed_ring_in_order),
	  T(test_blk_dev_file_async_on_split_ring_in_order),
	  T(test_blk_dev_file_async_more_in_flight_than_device_slots_with_indirect),
	  T(test_blk_dev_read_only_refuses_writes_with_erofs),
	  T(test_blk_dev_reprobe_without_mq_and_discard_keeps_the_data),
	  T(test_blk_dev_set_writeback_switches_the_cache_mode),
	  T(test_blk_dev_null_backend_completes_every_request))
