// SPDX-License-Identifier: MIT
/*
 * `uvirtio check`, verified I/O through the blk driver: reads and writes of
 * several sizes and in uneven segments, read back and compared; FLUSH,
 * GET_ID, DISCARD and WRITE_ZEROES where offered; reset and renegotiation
 * with fewer features, the data still there; every queue at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "uvirtio/driver.h"

/* ---- 2. verified I/O of every request type offered ----------------------- */

static enum check_verdict check_io_read_write(struct check_ctx *c)
{
	static const size_t sizes[] = { 512, 4096, 65536, 1u << 20 };
	struct blk_session s;
	char why[512], done[256] = "";
	size_t n = 0;
	uint64_t disk = c->opts.offset + CHECK_AREA_IO;
	int ret;

	if (session_open(c, &s, NULL))
		return CHECK_FAIL;
	if (!area_fits(c, &s.b)) {
		session_close(&s);
		return CHECK_NA;
	}
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i];

		if (len % uvirtio_blk_drv_limits(&s.b)->blk_size)
			continue;
		if (uvirtio_blk_drv_read_only(&s.b)) {
			struct iovec iov[64];
			unsigned niov = make_iov(&s.b, iov, 64, s.buf[1], len, len);

			if (!niov)
				continue;
			ret = uvirtio_blk_drv_readv(&s.b, 0, disk / 512, iov, niov, c->opts.timeout_ms);
			if (ret) {
				session_close(&s);
				return FAIL(c, "read-only disk: read of %zu bytes: %s", len, err_name(ret));
			}
		} else {
			ret = write_read_verify(&s, 0, disk, len, len, len, (uint32_t)i, c->opts.timeout_ms, why,
						sizeof(why));
			if (ret > 0)
				continue;
			if (ret) {
				session_close(&s);
				return FAIL(c, "%s", why);
			}
		}
		n += (size_t)snprintf(done + n, sizeof(done) - n, "%s%zu", n ? ", " : "", len);
	}
	bool ro = uvirtio_blk_drv_read_only(&s.b);

	session_close(&s);
	if (!n)
		return FAIL(c, "no request size fits the device's limits");
	if (ro)
		return PASS(c, "read-only disk (RO): reads of %s bytes succeeded (writes: io_read_only)", done);
	return PASS(c, "wrote and read back %s bytes, data identical", done);
}

static enum check_verdict check_io_multi_segment(struct check_ctx *c)
{
	/* Segments that are not sector multiples are valid: only the sum is. */
	static const size_t wlen[] = { 1000, 24, 3072, 512, 4096, 2560 };
	static const size_t rlen[] = { 4096, 7168 };
	struct blk_session s;
	struct iovec wiov[6], riov[2];
	size_t total = 0, off = 0, bad;
	uint64_t disk = c->opts.offset + CHECK_AREA_IO + (512u << 10);
	unsigned seg_max;
	int ret;

	if (session_open(c, &s, NULL))
		return CHECK_FAIL;
	if (!area_fits(c, &s.b)) {
		session_close(&s);
		return CHECK_NA;
	}
	if (uvirtio_blk_drv_read_only(&s.b)) {
		session_close(&s);
		return NA(c, "read-only disk (RO): nothing can be written");
	}
	seg_max = uvirtio_blk_drv_limits(&s.b)->seg_max;
	if (seg_max && seg_max < 6) {
		session_close(&s);
		return NA(c, "seg_max %u is below the 6 segments this check writes", seg_max);
	}
	for (unsigned i = 0; i < 6; i++) {
		wiov[i] = (struct iovec){ (char *)s.buf[0] + off, wlen[i] };
		/* A gap between segments: each really is a buffer of its own. */
		off += wlen[i] + 64;
		total += wlen[i];
	}
	for (unsigned i = 0, at = 0; i < 6; at += (unsigned)wlen[i], i++)
		check_fill(wiov[i].iov_base, wlen[i], disk + at, 99);
	memset(s.buf[1], 0xa5, total + 64);
	riov[0] = (struct iovec){ s.buf[1], rlen[0] };
	riov[1] = (struct iovec){ (char *)s.buf[2], rlen[1] };
	ret = uvirtio_blk_drv_writev(&s.b, 0, disk / 512, wiov, 6, c->opts.timeout_ms);
	if (ret) {
		FAIL(c, "write of %zu bytes in 6 segments (1000, 24, 3072, 512, 4096, 2560): %s", total,
		     queue_err_name(&s.b, 0, ret));
		session_close(&s);
		return CHECK_FAIL;
	}
	ret = uvirtio_blk_drv_readv(&s.b, 0, disk / 512, riov, 2, c->opts.timeout_ms);
	if (ret) {
		FAIL(c, "read of %zu bytes in 2 segments: %s", total, queue_err_name(&s.b, 0, ret));
		session_close(&s);
		return CHECK_FAIL;
	}
	bad = check_mismatch(riov[0].iov_base, rlen[0], disk, 99);
	if (bad == SIZE_MAX && (bad = check_mismatch(riov[1].iov_base, rlen[1], disk + rlen[0], 99)) != SIZE_MAX)
		bad += rlen[0];
	session_close(&s);
	if (bad != SIZE_MAX)
		return FAIL(c, "data read back differs at byte %zu of the %zu written in 6 segments", bad, total);
	return PASS(c, "wrote %zu bytes in 6 segments, read them back in 2, data identical", total);
}

static bool offered(struct blk_session *s, unsigned bit)
{
	return uvirtio_driver_has_feature(uvirtio_blk_drv_driver(&s->b), bit);
}

/* Open a session for a check of a write-type request that the backend
 * offers with feature @bit (@name in the N/A line; @what in the read-only
 * one). Return: CHECK_PASS with the session open, the caller to close it;
 * otherwise the verdict to return, its line set and no session open. */
static enum check_verdict session_open_write_op(struct check_ctx *c, struct blk_session *s, unsigned bit,
						const char *name, const char *what)
{
	if (session_open(c, s, NULL))
		return CHECK_FAIL;
	if (!offered(s, bit)) {
		session_close(s);
		return NA(c, "backend does not offer %s", name);
	}
	if (uvirtio_blk_drv_read_only(&s->b)) {
		session_close(s);
		return NA(c, "read-only disk (RO): %s is a write", what);
	}
	if (!area_fits(c, &s->b)) {
		session_close(s);
		return CHECK_NA;
	}
	return CHECK_PASS;
}

static enum check_verdict check_io_flush(struct check_ctx *c)
{
	struct blk_session s;
	char why[512];
	int ret;

	if (session_open(c, &s, NULL))
		return CHECK_FAIL;
	if (!offered(&s, VIRTIO_BLK_F_FLUSH)) {
		session_close(&s);
		return NA(c, "backend does not offer FLUSH (it writes through)");
	}
	if (!area_fits(c, &s.b)) {
		session_close(&s);
		return CHECK_NA;
	}
	if (!uvirtio_blk_drv_read_only(&s.b)) {
		ret = write_read_verify(&s, 0, c->opts.offset + CHECK_AREA_IO, 4096, 4096, 4096, 5,
					c->opts.timeout_ms, why, sizeof(why));
		if (ret < 0) {
			session_close(&s);
			return FAIL(c, "%s", why);
		}
	}
	ret = uvirtio_blk_drv_flush(&s.b, 0, c->opts.timeout_ms);
	session_close(&s);
	if (ret)
		return FAIL(c, "FLUSH: %s", err_name(ret));
	return PASS(c, "FLUSH completed OK%s", uvirtio_blk_drv_read_only(&s.b) ? " (read-only disk)" : " after a write");
}

static enum check_verdict check_io_get_id(struct check_ctx *c)
{
	struct blk_session s;
	char id[VIRTIO_BLK_ID_BYTES + 1];
	int ret;

	if (session_open(c, &s, NULL))
		return CHECK_FAIL;
	ret = uvirtio_blk_drv_get_id(&s.b, 0, id, c->opts.timeout_ms);
	session_close(&s);
	if (ret == -EOPNOTSUPP)
		return NA(c, "backend answers GET_ID with UNSUPP (it has no ID, which the spec allows)");
	if (ret)
		return FAIL(c, "GET_ID: %s", err_name(ret));
	return PASS(c, "GET_ID answered OK: \"%s\"", id);
}

static enum check_verdict check_io_discard(struct check_ctx *c)
{
	struct blk_session s;
	const struct uvirtio_blk_drv_limits *l;
	char why[512];
	uint64_t disk = c->opts.offset + CHECK_AREA_IO + (768u << 10);
	uint32_t n = 8;
	enum check_verdict v;
	int ret;

	v = session_open_write_op(c, &s, VIRTIO_BLK_F_DISCARD, "DISCARD", "discard");
	if (v != CHECK_PASS)
		return v;
	l = uvirtio_blk_drv_limits(&s.b);
	/* A range on the device's discard granularity, if it names one. */
	if (l->discard_sector_alignment > n && l->discard_sector_alignment <= 256)
		n = l->discard_sector_alignment;
	if (n > l->max_discard_sectors)
		n = l->max_discard_sectors;
	ret = write_read_verify(&s, 0, disk, (size_t)n * 512, 4096, 4096, 6, c->opts.timeout_ms, why, sizeof(why));
	if (ret < 0) {
		session_close(&s);
		return FAIL(c, "before the discard: %s", why);
	}
	ret = uvirtio_blk_drv_discard(&s.b, 0, disk / 512, n, c->opts.timeout_ms);
	if (ret) {
		session_close(&s);
		return FAIL(c, "DISCARD of %u sectors at sector %" PRIu64 ": %s", n, disk / 512, err_name(ret));
	}
	/* What discarded sectors read is the device's choice; reading them must work. */
	ret = uvirtio_blk_drv_read(&s.b, 0, disk / 512, s.buf[1], (size_t)n * 512, c->opts.timeout_ms);
	session_close(&s);
	if (ret)
		return FAIL(c, "read after DISCARD: %s", err_name(ret));
	return PASS(c, "DISCARD of %u sectors completed OK; the range reads afterwards", n);
}

static enum check_verdict check_io_write_zeroes(struct check_ctx *c)
{
	struct blk_session s;
	const struct uvirtio_blk_drv_limits *l;
	char why[512], done[64] = "";
	uint64_t disk = c->opts.offset + CHECK_AREA_IO + (832u << 10);
	uint32_t n = 16;
	enum check_verdict v;
	int ret;

	v = session_open_write_op(c, &s, VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES", "write zeroes");
	if (v != CHECK_PASS)
		return v;
	l = uvirtio_blk_drv_limits(&s.b);
	if (n > l->max_write_zeroes_sectors)
		n = l->max_write_zeroes_sectors;
	for (int unmap = 0; unmap <= (l->write_zeroes_may_unmap ? 1 : 0); unmap++) {
		ret = write_read_verify(&s, 0, disk, (size_t)n * 512, 4096, 4096, 7 + (uint32_t)unmap,
					c->opts.timeout_ms, why, sizeof(why));
		if (ret < 0) {
			session_close(&s);
			return FAIL(c, "before WRITE_ZEROES: %s", why);
		}
		ret = uvirtio_blk_drv_write_zeroes(&s.b, 0, disk / 512, n, unmap, c->opts.timeout_ms);
		if (ret) {
			session_close(&s);
			return FAIL(c, "WRITE_ZEROES%s of %u sectors: %s", unmap ? " with UNMAP" : "", n, err_name(ret));
		}
		memset(s.buf[1], 0xa5, (size_t)n * 512);
		ret = uvirtio_blk_drv_read(&s.b, 0, disk / 512, s.buf[1], (size_t)n * 512, c->opts.timeout_ms);
		if (ret) {
			session_close(&s);
			return FAIL(c, "read after WRITE_ZEROES: %s", err_name(ret));
		}
		for (size_t i = 0; i < (size_t)n * 512; i++) {
			if (((uint8_t *)s.buf[1])[i]) {
				session_close(&s);
				return FAIL(c, "after WRITE_ZEROES%s of %u sectors, byte %zu reads 0x%02x, not 0",
					    unmap ? " with UNMAP" : "", n, i, ((uint8_t *)s.buf[1])[i]);
			}
		}
		strcat(done, unmap ? " and with UNMAP" : "without UNMAP");
	}
	session_close(&s);
	return PASS(c, "WRITE_ZEROES of %u sectors over a pattern reads back zeroes (%s)", n, done);
}

/* ---- 3. reset and renegotiation ------------------------------------------ */

static enum check_verdict check_reset_renegotiate(struct check_ctx *c)
{
	const uint64_t dropped = UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
				 UVIRTIO_BIT(VIRTIO_BLK_F_MQ);
	struct uvirtio_blk_drv_opts smaller = { .features = UVIRTIO_BLK_DRV_FEATURES & ~dropped };
	struct uvirtio_blk_drv_opts all = { .num_queues = 2 };
	struct blk_session s;
	uint64_t disk = c->opts.offset + CHECK_AREA_RENEGOTIATE, first;
	const size_t len = 64u << 10;
	char why[512];
	bool ro;
	size_t bad;
	int ret;

	if (session_open(c, &s, &all))
		return CHECK_FAIL;
	if (!area_fits(c, &s.b)) {
		session_close(&s);
		return CHECK_NA;
	}
	first = uvirtio_driver_features(uvirtio_blk_drv_driver(&s.b));
	ro = uvirtio_blk_drv_read_only(&s.b);
	if (ro) {
		ret = uvirtio_blk_drv_read(&s.b, 0, disk / 512, s.buf[2], len, c->opts.timeout_ms);
		if (ret) {
			session_close(&s);
			return FAIL(c, "first read with every feature: %s", err_name(ret));
		}
	} else {
		ret = write_read_verify(&s, 0, disk, len, 4096, len, 31, c->opts.timeout_ms, why, sizeof(why));
		if (ret < 0) {
			session_close(&s);
			return FAIL(c, "with every feature: %s", why);
		}
	}
	/* Remove resets the device; probe again on the same connection. The
	 * shared buffers go with remove, so the reference copy is kept here. */
	void *ref = malloc(len);

	if (!ref) {
		session_close(&s);
		return FAIL(c, "out of memory");
	}
	memcpy(ref, ro ? s.buf[2] : s.buf[0], len);
	uvirtio_blk_drv_remove(&s.b);
	for (unsigned i = 0; i < 3; i++)
		uvirtio_blk_drv_free_buf(&s.b, s.buf[i]);
	s.probed = false;
	ret = uvirtio_blk_drv_probe(&s.b, s.conn.t, &smaller);
	if (ret) {
		free(ref);
		check_disconnect(&s.conn);
		return FAIL(c, "probe after reset without INDIRECT_DESC, EVENT_IDX and MQ: %s", err_name(ret));
	}
	s.probed = true;
	for (unsigned i = 0; i < 3; i++)
		s.buf[i] = uvirtio_blk_drv_alloc_buf(&s.b, s.buf_len);
	if (!s.buf[0] || !s.buf[1] || !s.buf[2]) {
		free(ref);
		session_close(&s);
		return FAIL(c, "no shared memory for data buffers");
	}
	if (uvirtio_driver_features(uvirtio_blk_drv_driver(&s.b)) & dropped) {
		free(ref);
		session_close(&s);
		return FAIL(c, "renegotiated features 0x%" PRIx64 " still hold a dropped bit",
			    uvirtio_driver_features(uvirtio_blk_drv_driver(&s.b)));
	}
	memset(s.buf[1], 0xa5, len);
	ret = uvirtio_blk_drv_read(&s.b, 0, disk / 512, s.buf[1], len, c->opts.timeout_ms);
	bad = ret ? SIZE_MAX : (memcmp(s.buf[1], ref, len) ? 0 : SIZE_MAX);
	if (!ret && bad != SIZE_MAX)
		for (bad = 0; bad < len && ((uint8_t *)s.buf[1])[bad] == ((uint8_t *)ref)[bad]; bad++)
			;
	free(ref);
	if (ret) {
		session_close(&s);
		return FAIL(c, "read after reset and renegotiation: %s", err_name(ret));
	}
	if (bad != SIZE_MAX) {
		session_close(&s);
		return FAIL(c, "data written before the reset reads back different at byte %zu", bad);
	}
	/* And the new feature set carries I/O of its own. */
	if (!ro) {
		ret = write_read_verify(&s, 0, disk + len, len, 4096, 4096, 32, c->opts.timeout_ms, why, sizeof(why));
		if (ret < 0) {
			session_close(&s);
			return FAIL(c, "after renegotiation: %s", why);
		}
	}
	uint64_t second = uvirtio_driver_features(uvirtio_blk_drv_driver(&s.b));

	session_close(&s);
	return PASS(c, "features 0x%" PRIx64 " then, after reset, 0x%" PRIx64 " (no INDIRECT_DESC/EVENT_IDX/MQ); "
		    "%zu bytes from before the reset read back identical%s",
		    first, second, len, ro ? "" : ", new writes verified");
}

/* ---- 5. several queues ---------------------------------------------------- */

struct mq_worker {
	struct blk_session *s;
	unsigned q;
	uint64_t disk;
	int timeout_ms;
	int ret;
	char why[512];
};

#define MQ_CHUNK (8u << 10)
#define MQ_PER_QUEUE (64u << 10)

static void *mq_thread(void *arg)
{
	struct mq_worker *w = arg;
	struct blk_session *s = w->s;
	/* Each queue's thread owns its slice of the shared buffers. */
	char *wbuf = (char *)s->buf[0] + w->q * MQ_PER_QUEUE;
	char *rbuf = (char *)s->buf[1] + w->q * MQ_PER_QUEUE;

	for (unsigned i = 0; i < MQ_PER_QUEUE / MQ_CHUNK; i++) {
		uint64_t at = w->disk + i * MQ_CHUNK;
		size_t bad;

		if (!uvirtio_blk_drv_read_only(&s->b)) {
			check_fill(wbuf, MQ_CHUNK, at, 1000 + w->q);
			w->ret = uvirtio_blk_drv_write(&s->b, w->q, at / 512, wbuf, MQ_CHUNK, w->timeout_ms);
			if (w->ret) {
				snprintf(w->why, sizeof(w->why), "queue %u: write at byte %" PRIu64 ": %s", w->q, at,
					 queue_err_name(&s->b, w->q, w->ret));
				return NULL;
			}
		}
		memset(rbuf, 0xa5, MQ_CHUNK);
		w->ret = uvirtio_blk_drv_read(&s->b, w->q, at / 512, rbuf, MQ_CHUNK, w->timeout_ms);
		if (w->ret) {
			snprintf(w->why, sizeof(w->why), "queue %u: read at byte %" PRIu64 ": %s", w->q, at,
				 queue_err_name(&s->b, w->q, w->ret));
			return NULL;
		}
		if (!uvirtio_blk_drv_read_only(&s->b) &&
		    (bad = check_mismatch(rbuf, MQ_CHUNK, at, 1000 + w->q)) != SIZE_MAX) {
			w->ret = -EILSEQ;
			snprintf(w->why, sizeof(w->why), "queue %u: data read back at byte %" PRIu64 " differs at byte %zu",
				 w->q, at, bad);
			return NULL;
		}
	}
	return NULL;
}

static enum check_verdict check_multi_queue(struct check_ctx *c)
{
	struct uvirtio_blk_drv_opts opts = { .num_queues = 16 };
	struct blk_session s;
	struct mq_worker w[16];
	pthread_t th[16];
	unsigned nq, started = 0;

	if (session_open(c, &s, &opts))
		return CHECK_FAIL;
	if (!offered(&s, VIRTIO_BLK_F_MQ)) {
		session_close(&s);
		return NA(c, "backend does not offer MQ");
	}
	if (!area_fits(c, &s.b)) {
		session_close(&s);
		return CHECK_NA;
	}
	nq = uvirtio_blk_drv_num_queues(&s.b);
	if (nq < 2) {
		unsigned dq = uvirtio_blk_drv_limits(&s.b)->device_queues;

		session_close(&s);
		return NA(c, "MQ offered but the device has %u queue%s", dq, dq == 1 ? "" : "s");
	}
	for (unsigned q = 0; q < nq; q++) {
		w[q] = (struct mq_worker){ .s = &s, .q = q, .timeout_ms = c->opts.timeout_ms,
					   .disk = c->opts.offset + CHECK_AREA_MQ + (uint64_t)q * MQ_PER_QUEUE };
		if (pthread_create(&th[q], NULL, mq_thread, &w[q])) {
			w[q].ret = -EAGAIN;
			snprintf(w[q].why, sizeof(w[q].why), "cannot start a thread for queue %u", q);
			break;
		}
		started++;
	}
	for (unsigned q = 0; q < started; q++)
		pthread_join(th[q], NULL);
	unsigned dq = uvirtio_blk_drv_limits(&s.b)->device_queues;
	bool ro = uvirtio_blk_drv_read_only(&s.b);

	session_close(&s);
	for (unsigned q = 0; q < nq && q <= started; q++)
		if (q < nq && w[q].ret)
			return FAIL(c, "%s", w[q].why);
	return PASS(c, "%u of the device's %u queues at once, %u %s each of %u bytes, %s", nq, dq,
		    MQ_PER_QUEUE / MQ_CHUNK, ro ? "reads" : "writes and reads", MQ_CHUNK,
		    ro ? "all completed" : "all verified");
}

const struct check check_io_checks[] = {
	{ "io_read_write_verified", check_io_read_write, "write a pattern of 512 B to 1 MiB, read back, compare" },
	{ "io_multi_segment_verified", check_io_multi_segment, "write in 6 uneven segments, read back in 2, compare" },
	{ "io_flush", check_io_flush, "FLUSH completes OK (when FLUSH is offered)" },
	{ "io_get_id", check_io_get_id, "GET_ID answers" },
	{ "io_discard", check_io_discard, "DISCARD completes OK (when offered)" },
	{ "io_write_zeroes_reads_zeroes", check_io_write_zeroes, "WRITE_ZEROES then read back zeroes (when offered)" },
	{ "reset_renegotiate_keeps_data", check_reset_renegotiate, "reset, renegotiate without INDIRECT_DESC/EVENT_IDX/MQ, data still there" },
	{ "multi_queue_concurrent_verified", check_multi_queue, "I/O on every queue at once, verified (when MQ)" },
};

const size_t check_io_checks_count = sizeof(check_io_checks) / sizeof(check_io_checks[0]);
