// SPDX-License-Identifier: MIT
/*
 * `uvirtio check`: what every check stands on. A connection to the backend
 * (the vhost-user front-end, or in-process loopback), the verdict line, the
 * pattern verified I/O writes and compares, the errors named in one line,
 * and a session: a connection with the blk driver probed and data buffers
 * in shared memory, on which data is written, read back and compared.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "uvirtio/driver.h"

/* ---- verdicts, connections, patterns ------------------------------------ */

enum check_verdict check_set(struct check_ctx *c, enum check_verdict v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	return v;
}

int check_connect(struct check_ctx *c, struct check_conn *conn)
{
	int ret;

	memset(conn, 0, sizeof(*conn));
	if (c->opts.loopback_image) {
		struct uvirtio_blk_dev_config bc = {
			.backend = UVIRTIO_BLK_BACKEND_FILE, .path = c->opts.loopback_image,
			.read_only = c->opts.loopback_read_only, .num_queues = 2,
			.serial = "uvirtio-check",
		};

		ret = uvirtio_loopback_create(&conn->lb, NULL);
		if (ret)
			return ret;
		conn->dev = calloc(1, sizeof(*conn->dev));
		if (!conn->dev) {
			uvirtio_loopback_destroy(conn->lb);
			return -ENOMEM;
		}
		ret = uvirtio_blk_dev_init(conn->dev, &bc, uvirtio_loopback_mem(conn->lb));
		if (!ret)
			ret = uvirtio_loopback_start(conn->lb, uvirtio_blk_dev_device(conn->dev));
		if (ret) {
			uvirtio_loopback_destroy(conn->lb);
			free(conn->dev);
			memset(conn, 0, sizeof(*conn));
			return ret;
		}
		conn->t = uvirtio_loopback_transport(conn->lb);
		return 0;
	}

	struct uvirtio_vhost_frontend_config cfg = {
		.socket_path = c->opts.socket_path,
		.fd = -1,
		.reply_timeout_ms = c->opts.timeout_ms,
	};

	ret = uvirtio_vhost_frontend_connect(&conn->fe, &cfg);
	if (ret) {
		conn->fe = NULL;
		return ret;
	}
	conn->t = uvirtio_vhost_frontend_transport(conn->fe);
	return 0;
}

void check_disconnect(struct check_conn *conn)
{
	if (conn->fe)
		uvirtio_vhost_frontend_destroy(conn->fe);
	if (conn->lb) {
		/* The device thread first, then the device it served. */
		uvirtio_loopback_destroy(conn->lb);
		uvirtio_blk_dev_destroy(conn->dev);
		free(conn->dev);
	}
	memset(conn, 0, sizeof(*conn));
}

const char *check_connect_error(const struct check_conn *conn, int err)
{
	(void)conn;
	switch (err) {
	case -ENOENT:
		return "no such socket (is the backend running?)";
	case -ECONNREFUSED:
		return "connection refused (nothing listens on the socket)";
	case -ENODEV:
		return "the backend does not offer VIRTIO_F_VERSION_1";
	case -ETIMEDOUT:
		return "the backend did not answer in time";
	default:
		return strerror(-err);
	}
}

static uint64_t pattern_word(uint64_t disk_offset, uint32_t seed)
{
	uint64_t x = (disk_offset / 8) * 0x9e3779b97f4a7c15ull + seed + 1;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

/* Byte @i of the pattern: each 8-byte word depends on its disk offset, so
 * data that lands at the wrong sector is caught. */
static uint8_t pattern_byte(uint64_t at, uint32_t seed)
{
	return (uint8_t)(pattern_word(at & ~7ull, seed) >> (8 * (at & 7)));
}

void check_fill(void *buf, size_t len, uint64_t disk_offset, uint32_t seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(disk_offset + i, seed);
}

size_t check_mismatch(const void *buf, size_t len, uint64_t disk_offset, uint32_t seed)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(disk_offset + i, seed))
			return i;
	return SIZE_MAX;
}

const char *err_name(int err)
{
	switch (err) {
	case -EIO: return "EIO (IOERR, a bad used length, or a broken queue)";
	case -EOPNOTSUPP: return "EOPNOTSUPP (answered UNSUPP)";
	case -ETIMEDOUT: return "no answer within the time-out (--timeout-ms)";
	case -ENOTCONN: return "the backend closed the connection";
	default: return strerror(-err);
	}
}

const char *queue_err_name(struct uvirtio_blk_drv *b, unsigned q, int err)
{
	static _Thread_local char line[256];
	const struct uvirtio_drvq *vq = q < uvirtio_blk_drv_num_queues(b) ? uvirtio_driver_vq(uvirtio_blk_drv_driver(b), q) : NULL;

	if (err != -EIO || !vq || !uvirtio_drvq_is_broken(vq))
		return err_name(err);
	snprintf(line, sizeof(line), "EIO: the driver broke queue %u: %s", q,
		 uvirtio_drvq_broken_reason(vq) ? uvirtio_drvq_broken_reason(vq) : "a bad used ring");
	return line;
}

/* ---- a connection with the blk driver probed ---------------------------- */

#define SESSION_BUF (1u << 20)

int session_open(struct check_ctx *c, struct blk_session *s, const struct uvirtio_blk_drv_opts *opts)
{
	int ret;

	memset(s, 0, sizeof(*s));
	ret = check_connect(c, &s->conn);
	if (ret) {
		FAIL(c, "cannot connect: %s", check_connect_error(&s->conn, ret));
		return ret;
	}
	ret = uvirtio_blk_drv_probe(&s->b, s->conn.t, opts);
	if (ret) {
		FAIL(c, "blk driver probe failed: %s%s%s", ret == -ENODEV ? "FEATURES_OK did not stick or not a usable blk device" : strerror(-ret),
		     s->conn.fe ? "; front-end: " : "", s->conn.fe ? uvirtio_vhost_frontend_error(s->conn.fe) : "");
		check_disconnect(&s->conn);
		return ret;
	}
	s->probed = true;
	s->buf_len = SESSION_BUF;
	for (unsigned i = 0; i < 3; i++) {
		s->buf[i] = uvirtio_blk_drv_alloc_buf(&s->b, s->buf_len);
		if (!s->buf[i]) {
			FAIL(c, "no shared memory for data buffers");
			uvirtio_blk_drv_remove(&s->b);
			check_disconnect(&s->conn);
			return -ENOMEM;
		}
	}
	return 0;
}

void session_close(struct blk_session *s)
{
	if (s->probed) {
		/* Remove resets first: after it the backend touches no buffer. */
		uvirtio_blk_drv_remove(&s->b);
		for (unsigned i = 0; i < 3; i++)
			uvirtio_blk_drv_free_buf(&s->b, s->buf[i]);
	}
	check_disconnect(&s->conn);
	s->probed = false;
}

bool area_fits(struct check_ctx *c, const struct uvirtio_blk_drv *b)
{
	uint64_t bytes = uvirtio_blk_drv_capacity(b) * 512;

	if (bytes < c->opts.offset || bytes - c->opts.offset < CHECK_AREA_BYTES) {
		NA(c, "the disk (%" PRIu64 " bytes) is smaller than --offset=%" PRIu64 " plus the %u bytes the checks write",
		   bytes, c->opts.offset, CHECK_AREA_BYTES);
		return false;
	}
	return true;
}

unsigned make_iov(const struct uvirtio_blk_drv *b, struct iovec *iov, unsigned max, void *buf,
		  size_t len, size_t seg)
{
	const struct uvirtio_blk_drv_limits *l = uvirtio_blk_drv_limits(b);
	unsigned n = 0, seg_max = l->seg_max ? l->seg_max : max;

	if (l->size_max && seg > l->size_max)
		seg = l->size_max;
	if (seg_max > max)
		seg_max = max;
	for (size_t done = 0; done < len; done += seg) {
		if (n == seg_max)
			return 0;
		iov[n].iov_base = (char *)buf + done;
		iov[n].iov_len = len - done < seg ? len - done : seg;
		n++;
	}
	return n;
}

int write_read_verify(struct blk_session *s, unsigned q, uint64_t disk, size_t len, size_t wseg,
		      size_t rseg, uint32_t seed, int timeout_ms, char *why, size_t whylen)
{
	struct iovec wiov[64], riov[64];
	unsigned wn = make_iov(&s->b, wiov, 64, s->buf[0], len, wseg);
	unsigned rn = make_iov(&s->b, riov, 64, s->buf[1], len, rseg);
	size_t bad;
	int ret;

	if (!wn || !rn || len > s->buf_len)
		return 1;
	check_fill(s->buf[0], len, disk, seed);
	memset(s->buf[1], 0xa5, len);
	ret = uvirtio_blk_drv_writev(&s->b, q, disk / 512, wiov, wn, timeout_ms);
	if (ret) {
		snprintf(why, whylen, "write of %zu bytes at byte %" PRIu64 " in %u segments: %s", len, disk, wn,
			 queue_err_name(&s->b, q, ret));
		return ret;
	}
	ret = uvirtio_blk_drv_readv(&s->b, q, disk / 512, riov, rn, timeout_ms);
	if (ret) {
		snprintf(why, whylen, "read of %zu bytes at byte %" PRIu64 " in %u segments: %s", len, disk, rn,
			 queue_err_name(&s->b, q, ret));
		return ret;
	}
	bad = check_mismatch(s->buf[1], len, disk, seed);
	if (bad != SIZE_MAX) {
		snprintf(why, whylen, "read back of %zu bytes at byte %" PRIu64 " differs from what was written at byte %zu of it",
			 len, disk, bad);
		return -EILSEQ;
	}
	return 0;
}

int check_alive(struct check_ctx *c, uint64_t disk, char *why, size_t whylen)
{
	struct check_ctx quiet = *c;
	struct blk_session s;
	int ret;

	ret = session_open(&quiet, &s, NULL);
	if (ret) {
		snprintf(why, whylen, "%s", quiet.detail);
		return ret;
	}
	if (uvirtio_blk_drv_read_only(&s.b)) {
		ret = uvirtio_blk_drv_read(&s.b, 0, disk / 512, s.buf[0], 4096, c->opts.timeout_ms);
		if (ret)
			snprintf(why, whylen, "read: %s", err_name(ret));
	} else {
		ret = write_read_verify(&s, 0, disk, 4096, 4096, 4096, 77, c->opts.timeout_ms, why, whylen);
		if (ret > 0)
			ret = 0;
	}
	session_close(&s);
	return ret;
}
