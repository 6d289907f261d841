// SPDX-License-Identifier: MIT
/*
 * `uvirtio check --socket-path=PATH`: a conformance checker for any
 * vhost-user blk backend (ours, qemu-storage-daemon, SPDK, ...). It runs a
 * table of checks; each connects with the vhost-user front-end as it needs,
 * drives the backend through the blk driver (negotiation, config, verified
 * I/O of every request type offered, reset and renegotiation, several
 * queues) or through a split ring it lays out itself (check_hostile.c:
 * ring stop and restart, hostile-driver requests), and prints one line:
 *
 *   PASS  <name>: <detail>
 *   FAIL  <name>: <reason>
 *   N/A   <name>: <why not applicable>
 *
 * then "N passed, N failed, N not applicable". Exit 0 when nothing failed,
 * 1 when something did, 2 for a usage error.
 *
 * The checks WRITE to the disk: 4 MiB from --offset (default 0) are
 * overwritten. Run it on a scratch image.
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "feature_names.h"
#include "uvirtio/driver.h"

/* The config space a driver reads: every field up to write_zeroes_may_unmap
 * and its padding, the 60 bytes QEMU 7.2 knows and asks for. Newer headers
 * add fields (secure erase, zoned) that a backend need not have, and a
 * backend may refuse GET_CONFIG for more bytes than its config space. */
#define CONFIG_BYTES 60u

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

static const char *err_name(int err)
{
	switch (err) {
	case -EIO: return "EIO (IOERR, a bad used length, or a broken queue)";
	case -EOPNOTSUPP: return "EOPNOTSUPP (answered UNSUPP)";
	case -ETIMEDOUT: return "no answer within the time-out (--timeout-ms)";
	case -ENOTCONN: return "the backend closed the connection";
	default: return strerror(-err);
	}
}

/* err_name(), and for an error on a queue the driver found broken, the rule
 * the device broke there (a bad used entry). Thread-local: a queue's
 * thread each in the multi-queue check. */
static const char *queue_err_name(struct uvirtio_blk_drv *b, unsigned q, int err)
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

struct blk_session {
	struct check_conn conn;
	struct uvirtio_blk_drv b;
	bool probed;
	void *buf[3]; /* shared memory for data */
	size_t buf_len;
};

#define SESSION_BUF (1u << 20)

/* Connect and probe the blk driver with @opts; on failure sets the verdict
 * line and returns the error. */
static int session_open(struct check_ctx *c, struct blk_session *s, const struct uvirtio_blk_drv_opts *opts)
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

static void session_close(struct blk_session *s)
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

/* Whether the disk holds the area the checks use; sets an N/A line if not. */
static bool area_fits(struct check_ctx *c, const struct uvirtio_blk_drv *b)
{
	uint64_t bytes = uvirtio_blk_drv_capacity(b) * 512;

	if (bytes < c->opts.offset || bytes - c->opts.offset < CHECK_AREA_BYTES) {
		NA(c, "the disk (%" PRIu64 " bytes) is smaller than --offset=%" PRIu64 " plus the %u bytes the checks write",
		   bytes, c->opts.offset, CHECK_AREA_BYTES);
		return false;
	}
	return true;
}

/* Split @len bytes of @buf into segments no longer than @seg (and the
 * device's size_max), at most @max of them. Return: the count, 0 if it does
 * not fit. */
static unsigned make_iov(const struct uvirtio_blk_drv *b, struct iovec *iov, unsigned max, void *buf,
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

/* Write @len bytes of pattern @seed at @disk through segments of @wseg
 * bytes, read them back through segments of @rseg bytes into a poisoned
 * buffer, compare. Return: 0, 1 when the sizes do not fit the device's
 * limits (skipped), or -errno with @why set. */
static int write_read_verify(struct blk_session *s, unsigned q, uint64_t disk, size_t len, size_t wseg,
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

/* ---- 1. negotiation and config ------------------------------------------ */

static enum check_verdict check_version_1(struct check_ctx *c)
{
	struct check_conn conn;
	uint64_t f;
	char names[512];
	int ret = check_connect(c, &conn);

	if (ret == -ENODEV)
		return FAIL(c, "the backend does not offer VIRTIO_F_VERSION_1 (GET_FEATURES)");
	if (ret)
		return FAIL(c, "cannot connect: %s", check_connect_error(&conn, ret));
	ret = conn.t->ops->get_features(conn.t, &f);
	check_disconnect(&conn);
	if (ret)
		return FAIL(c, "get_features: %s", err_name(ret));
	features_names(features_blk_names, f, names, sizeof(names));
	if (!(f & UVIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return FAIL(c, "VERSION_1 not offered (offered 0x%" PRIx64 ": %s)", f, names);
	return PASS(c, "offered 0x%" PRIx64 ": %s", f, names);
}

/* Negotiate @wanted through the driver core: FEATURES_OK must stick. */
static int negotiate(struct check_ctx *c, uint64_t wanted, uint64_t *got, char *why, size_t whylen)
{
	struct check_conn conn;
	struct uvirtio_driver drv;
	int ret = check_connect(c, &conn);

	if (ret) {
		snprintf(why, whylen, "cannot connect: %s", check_connect_error(&conn, ret));
		return ret;
	}
	ret = uvirtio_driver_probe(&drv, conn.t, wanted);
	if (ret == -ENODEV)
		snprintf(why, whylen, "FEATURES_OK did not stick after SET_FEATURES(0x%" PRIx64 ")", drv.features);
	else if (ret)
		snprintf(why, whylen, "negotiation failed: %s", err_name(ret));
	*got = drv.features;
	if (!ret)
		uvirtio_driver_remove(&drv, NULL, NULL);
	check_disconnect(&conn);
	return ret;
}

static enum check_verdict check_features_ok(struct check_ctx *c)
{
	uint64_t all, minimal;
	char why[256], names[512];

	if (negotiate(c, UVIRTIO_BLK_DRV_FEATURES, &all, why, sizeof(why)))
		return FAIL(c, "all features: %s", why);
	if (negotiate(c, 0, &minimal, why, sizeof(why)))
		return FAIL(c, "VERSION_1 alone: %s", why);
	features_names(features_blk_names, all, names, sizeof(names));
	return PASS(c, "FEATURES_OK sticks with 0x%" PRIx64 " (%s) and with 0x%" PRIx64 " (VERSION_1 alone)",
		    all, names, minimal);
}

static enum check_verdict check_config_get_config(struct check_ctx *c)
{
	struct check_conn conn;
	struct virtio_blk_config cfg;
	uint64_t offered = 0, used;
	int ret = check_connect(c, &conn);

	if (ret)
		return FAIL(c, "cannot connect: %s", check_connect_error(&conn, ret));
	if (!conn.fe) {
		check_disconnect(&conn);
		return NA(c, "loopback: no vhost-user protocol features");
	}
	used = uvirtio_vhost_frontend_protocol_features(conn.fe, &offered);
	if (!(offered & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG))) {
		check_disconnect(&conn);
		return FAIL(c, "protocol feature CONFIG not offered (offered 0x%" PRIx64 "): config space cannot be read",
			    offered);
	}
	ret = conn.t->ops->get_config(conn.t, 0, &cfg, CONFIG_BYTES);
	if (ret) {
		FAIL(c, "GET_CONFIG of %u bytes: %s (%s)", CONFIG_BYTES, err_name(ret),
		     uvirtio_vhost_frontend_error(conn.fe));
		check_disconnect(&conn);
		return CHECK_FAIL;
	}
	check_disconnect(&conn);
	return PASS(c, "protocol features offered 0x%" PRIx64 ", used 0x%" PRIx64 "; GET_CONFIG of %u bytes answered",
		    offered, used, CONFIG_BYTES);
}

static enum check_verdict check_config_values(struct check_ctx *c)
{
	struct check_conn conn;
	struct uvirtio_driver drv;
	struct virtio_blk_config cfg;
	char bad[512] = "", line[768];
	size_t n = 0;
	int ret = check_connect(c, &conn);

	if (ret)
		return FAIL(c, "cannot connect: %s", check_connect_error(&conn, ret));
	ret = uvirtio_driver_probe(&drv, conn.t, UVIRTIO_BLK_DRV_FEATURES);
	memset(&cfg, 0, sizeof(cfg));
	if (!ret)
		ret = uvirtio_driver_config_read(&drv, 0, &cfg, CONFIG_BYTES);
	if (ret) {
		FAIL(c, "probe or config read of %u bytes failed: %s", CONFIG_BYTES, err_name(ret));
		uvirtio_driver_remove(&drv, NULL, NULL);
		check_disconnect(&conn);
		return CHECK_FAIL;
	}
	uint64_t cap = le64toh(cfg.capacity);
	uint32_t blk_size = le32toh(cfg.blk_size), seg_max = le32toh(cfg.seg_max), size_max = le32toh(cfg.size_max);
	uint16_t nq = le16toh(cfg.num_queues);
	unsigned fe_queues = conn.fe ? uvirtio_vhost_frontend_num_queues(conn.fe) : 0;

	size_t nb = 0;
#define BAD(...) (nb += (size_t)snprintf(bad + nb, nb < sizeof(bad) ? sizeof(bad) - nb : 0, __VA_ARGS__))
	n += (size_t)snprintf(line, sizeof(line), "capacity %" PRIu64 " sectors", cap);
	if (!cap)
		BAD("capacity is 0; ");
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_BLK_SIZE)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", blk_size %u", blk_size);
		if (blk_size < 512 || (blk_size & (blk_size - 1)))
			BAD("blk_size %u is not a power of two >= 512; ", blk_size);
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_SEG_MAX)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", seg_max %u", seg_max);
		if (seg_max < 1)
			BAD("seg_max is 0 with SEG_MAX; ");
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_SIZE_MAX)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", size_max %u", size_max);
		if (size_max < 1)
			BAD("size_max is 0 with SIZE_MAX (no segment could hold a byte); ");
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_MQ)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", num_queues %u", nq);
		if (nq < 1)
			BAD("num_queues is 0 with MQ; ");
		if (fe_queues && nq > fe_queues)
			BAD("num_queues %u is more than the %u queues GET_QUEUE_NUM reported; ", nq, fe_queues);
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_TOPOLOGY) && cfg.physical_block_exp > 15)
		BAD("physical_block_exp %u (a physical block over 32 MiB); ", cfg.physical_block_exp);
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_DISCARD)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0,
				      ", max_discard_sectors %u", le32toh(cfg.max_discard_sectors));
		if (!le32toh(cfg.max_discard_sectors) || !le32toh(cfg.max_discard_seg))
			BAD("max_discard_sectors %u / max_discard_seg %u: 0 with DISCARD; ",
			    le32toh(cfg.max_discard_sectors), le32toh(cfg.max_discard_seg));
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_WRITE_ZEROES)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0,
				      ", max_write_zeroes_sectors %u", le32toh(cfg.max_write_zeroes_sectors));
		if (!le32toh(cfg.max_write_zeroes_sectors) || !le32toh(cfg.max_write_zeroes_seg))
			BAD("max_write_zeroes_sectors %u / max_write_zeroes_seg %u: 0 with WRITE_ZEROES; ",
			    le32toh(cfg.max_write_zeroes_sectors), le32toh(cfg.max_write_zeroes_seg));
	}
#undef BAD
	uvirtio_driver_remove(&drv, NULL, NULL);
	check_disconnect(&conn);
	if (bad[0])
		return FAIL(c, "%s(%s)", bad, line);
	return PASS(c, "%s", line);
}

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
	first = uvirtio_blk_drv_driver(&s.b)->features;
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
	if (uvirtio_blk_drv_driver(&s.b)->features & dropped) {
		free(ref);
		session_close(&s);
		return FAIL(c, "renegotiated features 0x%" PRIx64 " still hold a dropped bit", uvirtio_blk_drv_driver(&s.b)->features);
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
	uint64_t second = uvirtio_blk_drv_driver(&s.b)->features;

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

/* ---- the table and the command -------------------------------------------- */

static const struct check io_checks[] = {
	{ "version_1_offered", check_version_1, "the backend offers VIRTIO_F_VERSION_1" },
	{ "features_ok_sticks", check_features_ok, "FEATURES_OK sticks with every feature and with VERSION_1 alone" },
	{ "config_get_config", check_config_get_config, "protocol feature CONFIG offered and GET_CONFIG answered" },
	{ "config_values_sane", check_config_values, "capacity, blk_size, seg_max, size_max, num_queues, discard/write-zeroes limits" },
	{ "io_read_write_verified", check_io_read_write, "write a pattern of 512 B to 1 MiB, read back, compare" },
	{ "io_multi_segment_verified", check_io_multi_segment, "write in 6 uneven segments, read back in 2, compare" },
	{ "io_flush", check_io_flush, "FLUSH completes OK (when FLUSH is offered)" },
	{ "io_get_id", check_io_get_id, "GET_ID answers" },
	{ "io_discard", check_io_discard, "DISCARD completes OK (when offered)" },
	{ "io_write_zeroes_reads_zeroes", check_io_write_zeroes, "WRITE_ZEROES then read back zeroes (when offered)" },
};

static const struct check late_checks[] = {
	{ "reset_renegotiate_keeps_data", check_reset_renegotiate, "reset, renegotiate without INDIRECT_DESC/EVENT_IDX/MQ, data still there" },
	{ "multi_queue_concurrent_verified", check_multi_queue, "I/O on every queue at once, verified (when MQ)" },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uvirtio check --socket-path=PATH [options]\n"
		"\n"
		"Check a vhost-user blk backend against the virtio spec: negotiation and config,\n"
		"verified I/O of every request type it offers, reset and renegotiation, ring\n"
		"stop and restart, several queues, and a hostile driver's malformed rings.\n"
		"One line per check: PASS, FAIL or N/A with the reason. Exit 0 when nothing\n"
		"failed, 1 when something did, 2 for a usage error.\n"
		"\n"
		"WARNING: the checks WRITE to the disk: 4 MiB from --offset are overwritten.\n"
		"\n"
		"  --socket-path=PATH  the backend's vhost-user socket\n"
		"  --timeout-ms=MS     bound on every wait (default 5000)\n"
		"  --offset=BYTES      where on the disk the checks write (default 0; a multiple of 4096)\n"
		"  --only=NAME,...     run only these checks\n"
		"  --list              list the checks and exit\n"
		"  --json              print the results as one JSON object\n"
		"  --loopback=IMAGE    (development) check uvirtio's own blk device serving IMAGE\n"
		"                      in-process over the loopback transport, instead of a socket;\n"
		"                      --loopback-read-only serves it read-only\n");
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static bool wanted(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only)
		return true;
	for (const char *p = only; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && !strncmp(p, name, n))
			return true;
		p += len + (end ? 1 : 0);
	}
	return false;
}

struct table_ref {
	const struct check *checks;
	size_t n;
};

int check_main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_TIMEOUT, O_OFFSET, O_ONLY, O_LIST, O_JSON, O_LOOPBACK, O_LOOPBACK_RO, O_HELP };
	static const struct option lopts[] = {
		{ "socket-path", required_argument, NULL, O_SOCKET },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "offset", required_argument, NULL, O_OFFSET },
		{ "only", required_argument, NULL, O_ONLY },
		{ "list", no_argument, NULL, O_LIST },
		{ "json", no_argument, NULL, O_JSON },
		{ "loopback", required_argument, NULL, O_LOOPBACK },
		{ "loopback-read-only", no_argument, NULL, O_LOOPBACK_RO },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	const struct table_ref tables[] = {
		{ io_checks, sizeof(io_checks) / sizeof(io_checks[0]) },
		{ late_checks, sizeof(late_checks) / sizeof(late_checks[0]) },
		{ check_raw_checks, check_raw_checks_count },
	};
	struct check_ctx c = { .opts = { .timeout_ms = 5000 } };
	const char *only = NULL;
	bool list = false, json = false;
	unsigned counts[3] = { 0 };
	char *end;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (opt) {
		case O_SOCKET:
			c.opts.socket_path = optarg;
			break;
		case O_TIMEOUT: {
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 3600000) {
				fprintf(stderr, "uvirtio check: bad value '%s' for --timeout-ms: milliseconds, 1 to 3600000\n",
					optarg);
				return 2;
			}
			c.opts.timeout_ms = (int)v;
			break;
		}
		case O_OFFSET: {
			unsigned long long v;

			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || v % 4096 || v > (UINT64_MAX >> 10)) {
				fprintf(stderr, "uvirtio check: bad value '%s' for --offset: bytes, a multiple of 4096\n",
					optarg);
				return 2;
			}
			c.opts.offset = v;
			break;
		}
		case O_ONLY:
			only = optarg;
			break;
		case O_LIST:
			list = true;
			break;
		case O_JSON:
			json = true;
			break;
		case O_LOOPBACK:
			c.opts.loopback_image = optarg;
			break;
		case O_LOOPBACK_RO:
			c.opts.loopback_read_only = true;
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "uvirtio check: unknown option '%s'; run 'uvirtio check --help'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uvirtio check: unexpected argument '%s'; the backend is named with --socket-path=PATH\n",
			argv[optind]);
		return 2;
	}
	if (list) {
		for (size_t t = 0; t < 3; t++)
			for (size_t i = 0; i < tables[t].n; i++)
				printf("%-36s %s\n", tables[t].checks[i].name, tables[t].checks[i].what);
		return 0;
	}
	if (only) {
		/* A misspelt name would otherwise run nothing and "pass". */
		for (const char *p = only; *p;) {
			const char *e = strchr(p, ',');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			bool found = false;

			for (size_t t = 0; t < 3 && !found; t++)
				for (size_t i = 0; i < tables[t].n && !found; i++)
					found = strlen(tables[t].checks[i].name) == len &&
						!strncmp(tables[t].checks[i].name, p, len);
			if (!found) {
				fprintf(stderr, "uvirtio check: --only: no check named '%.*s'; run 'uvirtio check --list'\n",
					(int)len, p);
				return 2;
			}
			p += len + (e ? 1 : 0);
		}
	}
	if (!!c.opts.socket_path == !!c.opts.loopback_image) {
		fprintf(stderr, "uvirtio check: name the backend with --socket-path=PATH\n");
		return 2;
	}

	/* A backend that is gone closes the socket under a write. */
	signal(SIGPIPE, SIG_IGN);

	/* One connection first: a backend that is not there is one clear line,
	 * not every check failing the same way. */
	{
		struct check_conn conn;
		int ret = check_connect(&c, &conn);

		if (ret && ret != -ENODEV) {
			fprintf(stderr, "uvirtio check: cannot connect to '%s': %s\n",
				c.opts.socket_path ? c.opts.socket_path : c.opts.loopback_image,
				check_connect_error(&conn, ret));
			return 1;
		}
		if (!ret)
			check_disconnect(&conn);
	}

	if (json)
		printf("{\"socket_path\": "), json_string(stdout, c.opts.socket_path ? c.opts.socket_path : ""),
			printf(", \"checks\": [");
	bool first = true;

	for (size_t t = 0; t < 3; t++) {
		for (size_t i = 0; i < tables[t].n; i++) {
			const struct check *ck = &tables[t].checks[i];
			static const char *const word[] = { "PASS", "FAIL", "N/A" };
			static const char *const jword[] = { "pass", "fail", "n/a" };
			enum check_verdict v;

			if (!wanted(only, ck->name))
				continue;
			c.detail[0] = 0;
			v = ck->fn(&c);
			counts[v]++;
			if (json) {
				printf("%s\n  {\"name\": \"%s\", \"result\": \"%s\", \"detail\": ", first ? "" : ",",
				       ck->name, jword[v]);
				json_string(stdout, c.detail);
				printf("}");
			} else {
				printf("%-5s %s: %s\n", word[v], ck->name, c.detail);
			}
			first = false;
			fflush(stdout);
		}
	}
	if (json)
		printf("\n], \"passed\": %u, \"failed\": %u, \"not_applicable\": %u}\n", counts[CHECK_PASS],
		       counts[CHECK_FAIL], counts[CHECK_NA]);
	else
		printf("%u passed, %u failed, %u not applicable\n", counts[CHECK_PASS], counts[CHECK_FAIL],
		       counts[CHECK_NA]);
	return counts[CHECK_FAIL] ? 1 : 0;
}
