// SPDX-License-Identifier: MIT
/* The virtio-blk device over the loopback transport, driven by raw requests
 * a small driver here builds, with the data checked against the image. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/devices_internal.h"
#include "harness.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/driver.h"
#include "uvirtio/loopback.h"

#define IMAGE_SIZE (4u << 20)
#define SECTORS (IMAGE_SIZE / 512)
#define WAIT_MS 20000 /* a hang guard, not a measurement */

#define ALL_BLK_FEATURES                                                                        \
	(UVIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |               \
	 UVIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | UVIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |              \
	 UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |               \
	 UVIRTIO_BIT(VIRTIO_BLK_F_MQ) | UVIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |                     \
	 UVIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) | UVIRTIO_BIT(VIRTIO_BLK_F_RO) |                \
	 UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC))

struct env {
	struct uvirtio_loopback *lb;
	struct uvirtio_blk_dev blk;
	struct uvirtio_driver drv;
	struct uvirtio_transport *t;
	struct uvirtio_dma *dma;
	char path[64];
	int fd; /* the test's own view of the image */
	/* Per queue, a header and a status byte that only that queue's
	 * requests use: a buffer that moved from one queue thread to another
	 * would be synchronised only through the ring, which TSan cannot see
	 * across the loopback's two mappings of guest memory. */
	struct virtio_blk_outhdr *hdr[4];
	uint8_t *st[4];
	bool have_blk, have_drv;
};

static int env_start_sized(struct env *e, struct uvirtio_blk_dev_config *cfg, uint64_t wanted,
			   unsigned nq, const unsigned *sizes)
{
	int ret;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	if (cfg->backend == UVIRTIO_BLK_BACKEND_FILE && !cfg->path) {
		strcpy(e->path, "/tmp/uvirtio-blk-test-XXXXXX");
		e->fd = mkstemp(e->path);
		if (e->fd < 0 || ftruncate(e->fd, IMAGE_SIZE) < 0)
			return -errno;
		cfg->path = e->path;
	}
	ret = uvirtio_loopback_create(&e->lb, NULL);
	if (ret)
		return ret;
	ret = uvirtio_blk_dev_init(&e->blk, cfg, uvirtio_loopback_mem(e->lb));
	if (ret)
		return ret;
	e->have_blk = true;
	ret = uvirtio_loopback_start(e->lb, uvirtio_blk_dev_device(&e->blk));
	if (ret)
		return ret;
	e->t = uvirtio_loopback_transport(e->lb);
	e->dma = e->t->ops->dma(e->t);
	ret = uvirtio_driver_probe(&e->drv, e->t, wanted);
	if (ret)
		return ret;
	e->have_drv = true;
	ret = uvirtio_driver_find_vqs(&e->drv, nq, sizes);
	if (ret)
		return ret;
	for (unsigned i = 0; i < nq && i < 4; i++) {
		e->hdr[i] = uvirtio_dma_alloc(e->dma, sizeof(*e->hdr[i]), 64);
		e->st[i] = uvirtio_dma_alloc(e->dma, 1, 64);
		if (!e->hdr[i] || !e->st[i])
			return -ENOMEM;
	}
	return uvirtio_driver_ready(&e->drv);
}

static int env_start_with(struct env *e, struct uvirtio_blk_dev_config *cfg, uint64_t wanted,
			  unsigned nq)
{
	return env_start_sized(e, cfg, wanted, nq, NULL);
}

static int env_start(struct env *e, struct uvirtio_blk_dev_config *cfg)
{
	return env_start_with(e, cfg, ALL_BLK_FEATURES, cfg->num_queues ? cfg->num_queues : 1);
}

static void env_stop(struct env *e)
{
	if (e->have_drv)
		uvirtio_driver_remove(&e->drv, NULL, NULL);
	uvirtio_loopback_destroy(e->lb);
	if (e->have_blk)
		uvirtio_blk_dev_destroy(&e->blk);
	if (e->fd >= 0) {
		close(e->fd);
		unlink(e->path);
	}
}

static void *dalloc(struct env *e, size_t n)
{
	return uvirtio_dma_alloc(e->dma, n, 4096);
}

static struct virtio_blk_outhdr *make_hdr(struct env *e, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr *h = dalloc(e, sizeof(*h));

	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	return h;
}

/* Wait for one used buffer on queue @qi. Return: 1, or what went wrong. */
static int wait_one(struct env *e, unsigned qi, void **token, uint32_t *len)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&e->drv, qi);

	for (;;) {
		int ret = uvirtio_drvq_get(q, token, len);

		if (ret)
			return ret;
		if (!uvirtio_drvq_enable_cb(q))
			continue;
		ret = uvirtio_driver_wait(&e->drv, qi, WAIT_MS);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

/* Make one request available on queue @qi and wait for it.
 * Return: the used length, or a negative errno. */
static long run(struct env *e, unsigned qi, const struct iovec *out, unsigned nout,
		const struct iovec *in, unsigned nin)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&e->drv, qi);
	uint32_t len = 0;
	void *token;
	int ret;

	ret = uvirtio_drvq_add(q, out, nout, in, nin, (void *)out);
	if (!ret)
		ret = uvirtio_drvq_kick(q);
	if (!ret)
		ret = wait_one(e, qi, &token, &len);
	if (ret < 0)
		return ret;
	return token == out ? (long)len : -EPROTO;
}

/* A read (IN) or write (OUT) of @len bytes at @buf. */
static long rw(struct env *e, unsigned qi, uint32_t type, uint64_t sector, void *buf, size_t len,
	       uint8_t *status)
{
	struct virtio_blk_outhdr *h = e->hdr[qi];
	uint8_t *st = e->st[qi];
	struct iovec out[2] = { { h, 16 }, { buf, len } };
	struct iovec in[2] = { { buf, len }, { st, 1 } };
	long ret;

	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	*st = 0xee;
	if (type == VIRTIO_BLK_T_OUT)
		ret = run(e, qi, out, len ? 2 : 1, in + 1, 1);
	else
		ret = run(e, qi, out, 1, len ? in : in + 1, len ? 2 : 1);
	*status = *st;
	return ret;
}

/* A request of @type with @nseg segments and nothing else. */
static long segments(struct env *e, uint32_t type, const struct virtio_blk_discard_write_zeroes *segs,
		     unsigned nseg, uint8_t *status)
{
	struct virtio_blk_discard_write_zeroes *s = dalloc(e, nseg * sizeof(*s) + 1);
	uint8_t *st = dalloc(e, 1);
	struct iovec out[2] = { { make_hdr(e, type, 0), 16 }, { s, nseg * sizeof(*s) } };
	struct iovec in = { st, 1 };
	long ret;

	if (nseg)
		memcpy(s, segs, nseg * sizeof(*s));
	*st = 0xee;
	ret = run(e, 0, out, nseg ? 2 : 1, &in, 1);
	*status = *st;
	return ret;
}

static struct virtio_blk_discard_write_zeroes seg(uint64_t sector, uint32_t num, uint32_t flags)
{
	return (struct virtio_blk_discard_write_zeroes){ .sector = htole64(sector),
							 .num_sectors = htole32(num),
							 .flags = htole32(flags) };
}

static void fill(void *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		((uint8_t *)p)[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static bool file_is(struct env *e, uint64_t off, const void *want, size_t len)
{
	static uint8_t got[1 << 20];

	if (len > sizeof(got) || pread(e->fd, got, len, (off_t)off) != (ssize_t)len)
		return false;
	return memcmp(got, want, len) == 0;
}

static bool file_is_zero(struct env *e, uint64_t off, size_t len)
{
	static const uint8_t zero[1 << 16];

	return len <= sizeof(zero) && file_is(e, off, zero, len);
}

static struct uvirtio_blk_dev_stats stats(struct env *e)
{
	struct uvirtio_blk_dev_stats st;

	uvirtio_blk_dev_get_stats(&e->blk, &st);
	return st;
}

/* Every request type on a file. */

static void test_blk_write_then_read_matches_the_image(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t status;
	struct env e;
	uint8_t *buf;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, 65536);
	fill(buf, 65536, 1);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 8, buf, 65536, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, 8 * 512, buf, 65536));

	/* And back: what the image holds is what a read gives. */
	fill(buf, 65536, 2);
	CHECK_EQ(pwrite(e.fd, buf, 65536, 100 * 512), 65536);
	memset(buf, 0, 65536);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_IN, 100, buf, 65536, &status), 65536 + 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, 100 * 512, buf, 65536));
	CHECK_EQ(stats(&e).bytes_read, 65536);
	CHECK_EQ(stats(&e).bytes_written, 65536);
	env_stop(&e);
}

static void test_blk_capacity_and_config_from_the_image(void)
{
	struct uvirtio_blk_dev_config cfg = { .num_queues = 2 };
	struct virtio_blk_config c;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK_EQ(uvirtio_driver_config_read(&e.drv, 0, &c, sizeof(c)), 0);
	CHECK_EQ(le64toh(c.capacity), SECTORS);
	CHECK_EQ(le32toh(c.blk_size), 512);
	CHECK_EQ(le32toh(c.seg_max), UVIRTIO_BLK_SEG_MAX_DEFAULT);
	CHECK_EQ(le16toh(c.num_queues), 2);
	CHECK_EQ(c.wce, 1);
	CHECK_EQ(le32toh(c.max_discard_seg), UVIRTIO_BLK_DISCARD_SEG_DEFAULT);
	CHECK(uvirtio_driver_has_feature(&e.drv, VIRTIO_BLK_F_MQ));
	CHECK(uvirtio_driver_has_feature(&e.drv, VIRTIO_BLK_F_FLUSH));
	CHECK(!uvirtio_driver_has_feature(&e.drv, VIRTIO_BLK_F_RO));
	env_stop(&e);
}

static void test_blk_flush_answers_ok(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t status;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK_EQ(stats(&e).flushes, 1);
	env_stop(&e);
}

static void test_blk_get_id_returns_the_serial(void)
{
	struct uvirtio_blk_dev_config cfg = { .serial = "uvirtio-serial-12345678" };
	uint8_t status;
	struct env e;
	char *id;

	CHECK_EQ(env_start(&e, &cfg), 0);
	id = dalloc(&e, 20);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_GET_ID, 0, id, 20, &status), 21);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	/* 20 bytes, cut, not NUL-terminated. */
	CHECK(!memcmp(id, "uvirtio-serial-12345", 20));
	env_stop(&e);
}

static void test_blk_get_id_short_buffer_gets_what_fits(void)
{
	struct uvirtio_blk_dev_config cfg = { .serial = "abcdefghijklmnop" };
	uint8_t status;
	struct env e;
	char *id;

	CHECK_EQ(env_start(&e, &cfg), 0);
	id = dalloc(&e, 8);
	memset(id, 'z', 8);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_GET_ID, 0, id, 5, &status), 6);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(!memcmp(id, "abcdezzz", 8));
	env_stop(&e);
}

static void test_blk_discard_and_write_zeroes_zero_the_image(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct virtio_blk_discard_write_zeroes s[2];
	static uint8_t pattern[65536];
	uint8_t status;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	fill(pattern, sizeof(pattern), 3);
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(pwrite(e.fd, pattern, sizeof(pattern), i * 65536), 65536);

	s[0] = seg(0, 128, 0);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_DISCARD, s, 1, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is_zero(&e, 0, 65536));

	s[0] = seg(128, 128, 0);
	s[1] = seg(256, 128, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_WRITE_ZEROES, s, 2, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is_zero(&e, 65536, 65536));
	CHECK(file_is_zero(&e, 2 * 65536, 65536));
	/* Only what was asked for. */
	CHECK(file_is(&e, 3 * 65536, pattern, 65536));
	CHECK_EQ(stats(&e).discards, 1);
	CHECK_EQ(stats(&e).write_zeroes, 1);
	env_stop(&e);
}

/* Backends and modes. */

static void test_blk_null_backend_completes_without_io(void)
{
	struct uvirtio_blk_dev_config cfg = { .backend = UVIRTIO_BLK_BACKEND_NULL,
					      .null_capacity = (1ull << 40) + 100 };
	struct virtio_blk_config c;
	uint8_t status, *buf;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK_EQ(uvirtio_driver_config_read(&e.drv, 0, &c, sizeof(c)), 0);
	CHECK_EQ(le64toh(c.capacity), (1ull << 40) / 512);
	buf = dalloc(&e, 4096);
	memset(buf, 0x5a, 4096);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_IN, (1ull << 40) / 512 - 8, buf, 4096, &status), 4097);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	/* Reads leave the buffer as it is. */
	CHECK_EQ(buf[0], 0x5a);
	CHECK_EQ(buf[4095], 0x5a);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	env_stop(&e);
}

static void test_blk_direct_io_serves_aligned_and_unaligned_buffers(void)
{
	struct uvirtio_blk_dev_config cfg = { .direct = true };
	uint8_t status, *buf;
	struct env e;
	int ret = env_start(&e, &cfg);

	if (ret == -EINVAL) {
		env_stop(&e);
		SKIP("the filesystem of /tmp refuses O_DIRECT");
	}
	CHECK_EQ(ret, 0);
	buf = dalloc(&e, 65536 + 4096);
	fill(buf, 8192, 4);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 16, buf, 8192, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, 16 * 512, buf, 8192));
	CHECK_EQ(stats(&e).direct_fallbacks, 0);

	/* A buffer O_DIRECT cannot take still works, through the buffered fd. */
	fill(buf + 3, 4096, 5);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 40, buf + 3, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, 40 * 512, buf + 3, 4096));
	CHECK_EQ(stats(&e).direct_fallbacks, 1);
	memset(buf + 7, 0, 4096);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_IN, 40, buf + 7, 4096, &status), 4097);
	CHECK(file_is(&e, 40 * 512, buf + 7, 4096));
	env_stop(&e);
}

static void test_blk_poll_mode_serves_requests(void)
{
	struct uvirtio_blk_dev_config cfg = { .poll = true };
	uint8_t status, *buf;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, 4096);
	for (unsigned i = 0; i < 64; i++) {
		fill(buf, 4096, i);
		CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, i * 8, buf, 4096, &status), 1);
		CHECK_EQ(status, VIRTIO_BLK_S_OK);
		CHECK(file_is(&e, i * 4096, buf, 4096));
	}
	env_stop(&e);
}

struct worker {
	struct env *e;
	unsigned qi;
	uint8_t *buf;
	int failures;
};

static void *queue_worker(void *arg)
{
	struct worker *w = arg;
	uint8_t status;

	/* Each queue writes and reads back its own half of the disk. */
	for (unsigned i = 0; i < 200; i++) {
		uint64_t sector = w->qi * (SECTORS / 2) + (i % 64) * 8;

		fill(w->buf, 4096, i + w->qi * 1000);
		if (rw(w->e, w->qi, VIRTIO_BLK_T_OUT, sector, w->buf, 4096, &status) != 1 || status)
			w->failures++;
		memset(w->buf, 0, 4096);
		if (rw(w->e, w->qi, VIRTIO_BLK_T_IN, sector, w->buf, 4096, &status) != 4097 || status)
			w->failures++;
		fill(w->buf + 4096, 4096, i + w->qi * 1000);
		if (memcmp(w->buf, w->buf + 4096, 4096))
			w->failures++;
	}
	return NULL;
}

static void test_blk_two_queues_at_once(void)
{
	struct uvirtio_blk_dev_config cfg = { .num_queues = 2 };
	struct worker w[2];
	pthread_t th[2];
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct worker){ .e = &e, .qi = i, .buf = dalloc(&e, 8192) };
		CHECK_EQ(pthread_create(&th[i], NULL, queue_worker, &w[i]), 0);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(w[0].failures, 0);
	CHECK_EQ(w[1].failures, 0);
	CHECK_EQ(stats(&e).writes, 400);
	CHECK_EQ(stats(&e).reads, 400);
	env_stop(&e);
}

static void test_blk_read_only_refuses_writes_with_ioerr(void)
{
	struct uvirtio_blk_dev_config cfg = { .read_only = true };
	struct virtio_blk_discard_write_zeroes s = seg(0, 8, 0);
	static uint8_t pattern[4096];
	uint8_t status, *buf;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK(uvirtio_driver_has_feature(&e.drv, VIRTIO_BLK_F_RO));
	fill(pattern, sizeof(pattern), 6);
	CHECK_EQ(pwrite(e.fd, pattern, 4096, 0), 4096);
	buf = dalloc(&e, 4096);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_DISCARD, &s, 1, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	CHECK(file_is(&e, 0, pattern, 4096));
	/* Reads still work. */
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_IN, 0, buf, 4096, &status), 4097);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(!memcmp(buf, pattern, 4096));
	env_stop(&e);
}

static void test_blk_writeback_toggles_through_config(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	unsigned off = offsetof(struct virtio_blk_config, wce);
	uint8_t status, v, *buf;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, 4096);
	CHECK_EQ(uvirtio_driver_config_read(&e.drv, off, &v, 1), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096, &status), 1);
	CHECK_EQ(stats(&e).writethrough, 0);

	/* Writethrough: each write is durable before it completes. */
	v = 0;
	CHECK_EQ(e.t->ops->set_config(e.t, off, &v, 1), 0);
	CHECK_EQ(uvirtio_driver_config_read(&e.drv, off, &v, 1), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK_EQ(stats(&e).writethrough, 1);

	v = 1;
	CHECK_EQ(e.t->ops->set_config(e.t, off, &v, 1), 0);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096, &status), 1);
	CHECK_EQ(stats(&e).writethrough, 1);

	/* Only the writeback byte, only 0 or 1. */
	v = 2;
	CHECK(e.t->ops->set_config(e.t, off, &v, 1) < 0);
	CHECK(e.t->ops->set_config(e.t, 0, &v, 1) < 0);
	CHECK_EQ(uvirtio_driver_config_read(&e.drv, off, &v, 1), 0);
	CHECK_EQ(v, 1);
	env_stop(&e);
}

static void test_blk_writeback_is_read_only_without_config_wce(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	unsigned off = offsetof(struct virtio_blk_config, wce);
	uint8_t v = 0;
	struct env e;

	CHECK_EQ(env_start_with(&e, &cfg, ALL_BLK_FEATURES & ~UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE), 1), 0);
	CHECK(e.t->ops->set_config(e.t, off, &v, 1) < 0);
	env_stop(&e);
}

static void test_blk_init_missing_image_is_enoent(void)
{
	struct uvirtio_blk_dev_config cfg = { .path = "/nonexistent/uvirtio.img" };
	struct uvirtio_blk_dev blk;
	struct uvirtio_mem mem;

	uvirtio_mem_init(&mem);
	CHECK_EQ(uvirtio_blk_dev_init(&blk, &cfg, &mem), -ENOENT);
}

static void test_blk_init_read_only_image_for_writing_is_eacces(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct uvirtio_blk_dev blk;
	char path[] = "/tmp/uvirtio-blk-ro-XXXXXX";
	struct uvirtio_mem mem;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	close(fd);
	chmod(path, 0444);
	if (geteuid() == 0) {
		unlink(path);
		SKIP("root opens a 0444 file for writing");
	}
	uvirtio_mem_init(&mem);
	cfg.path = path;
	CHECK_EQ(uvirtio_blk_dev_init(&blk, &cfg, &mem), -EACCES);
	unlink(path);
}

/* The image shrank under the device (capacity is what it was at init): a
 * read that meets the end of the file part-way is IOERR, never OK with a
 * short buffer, and a write there still works (it grows the file). */
static void test_blk_read_past_the_end_of_a_shrunk_image_is_ioerr(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t status, *buf;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, 8192);
	CHECK_EQ(ftruncate(e.fd, IMAGE_SIZE - 2048), 0);
	/* 2048 bytes are there, then the end of the file. */
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_IN, SECTORS - 8, buf, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_IN, SECTORS - 1, buf, 512, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(stats(&e).ioerr, 2);
	/* What lies before the end still reads. */
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_IN, SECTORS - 16, buf, 4096, &status), 4097);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	fill(buf, 4096, 11);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, SECTORS - 8, buf, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, (uint64_t)(SECTORS - 8) * 512, buf, 4096));
	env_stop(&e);
}

/* Malformed requests, one per rule. */

static void test_blk_header_split_across_iovecs_is_gathered(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t *h, *st, *buf;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	h = (uint8_t *)make_hdr(&e, VIRTIO_BLK_T_OUT, 24);
	buf = dalloc(&e, 1024);
	st = dalloc(&e, 1);
	fill(buf, 1024, 7);
	{
		/* 5 + 5 + 6 header bytes, then the data after the header's
		 * last byte in the same iovec... as the driver pleases. */
		struct iovec out[4] = { { h, 5 }, { h + 5, 5 }, { h + 10, 6 }, { buf, 1024 } };
		struct iovec in = { st, 1 };

		CHECK_EQ(run(&e, 0, out, 4, &in, 1), 1);
	}
	CHECK_EQ(*st, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, 24 * 512, buf, 1024));
	env_stop(&e);
}

static void test_blk_short_header_is_ioerr(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t *h, *st;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	h = (uint8_t *)make_hdr(&e, VIRTIO_BLK_T_IN, 0);
	st = dalloc(&e, 1);
	*st = 0xee;
	{
		struct iovec out[2] = { { h, 8 }, { h + 8, 4 } };
		struct iovec in = { st, 1 };

		CHECK_EQ(run(&e, 0, out, 2, &in, 1), 1);
	}
	CHECK_EQ(*st, VIRTIO_BLK_S_IOERR);
	env_stop(&e);
}

static void test_blk_no_status_byte_gives_used_len_0(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct env e;
	uint8_t *h;

	CHECK_EQ(env_start(&e, &cfg), 0);
	h = (uint8_t *)make_hdr(&e, VIRTIO_BLK_T_FLUSH, 0);
	{
		struct iovec out = { h, 16 };

		CHECK_EQ(run(&e, 0, &out, 1, NULL, 0), 0);
	}
	CHECK_EQ(stats(&e).no_status, 1);
	env_stop(&e);
}

static void expect_rw_status(uint32_t type, uint64_t sector, size_t len, uint8_t want)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t status = 0xee, *buf;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, len + 1);
	CHECK_EQ(rw(&e, 0, type, sector, buf, len, &status), 1);
	CHECK_EQ(status, want);
	env_stop(&e);
}

static void test_blk_length_not_multiple_of_512_is_ioerr(void)
{
	expect_rw_status(VIRTIO_BLK_T_IN, 0, 1000, VIRTIO_BLK_S_IOERR);
	expect_rw_status(VIRTIO_BLK_T_OUT, 0, 513, VIRTIO_BLK_S_IOERR);
}

static void test_blk_out_of_range_sector_is_ioerr(void)
{
	expect_rw_status(VIRTIO_BLK_T_IN, SECTORS, 512, VIRTIO_BLK_S_IOERR);
	expect_rw_status(VIRTIO_BLK_T_OUT, SECTORS - 1, 1024, VIRTIO_BLK_S_IOERR);
}

static void test_blk_sector_plus_length_overflow_is_ioerr(void)
{
	expect_rw_status(VIRTIO_BLK_T_IN, UINT64_MAX - 1, 1024, VIRTIO_BLK_S_IOERR);
	expect_rw_status(VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, 512, VIRTIO_BLK_S_IOERR);
}

static void test_blk_unknown_type_is_unsupp(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t status;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK_EQ(rw(&e, 0, 99, 0, NULL, 0, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_SCSI_CMD, 0, NULL, 0, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(stats(&e).unsupp, 2);
	env_stop(&e);
}

static void test_blk_discard_segment_count_zero_or_over_max_is_ioerr(void)
{
	struct uvirtio_blk_dev_config cfg = { .max_discard_seg = 2 };
	struct virtio_blk_discard_write_zeroes s[3] = { seg(0, 8, 0), seg(8, 8, 0), seg(16, 8, 0) };
	uint8_t status;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_DISCARD, s, 0, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_DISCARD, s, 3, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_DISCARD, s, 2, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	env_stop(&e);
}

static void test_blk_discard_segment_out_of_range_is_ioerr(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct virtio_blk_discard_write_zeroes s = seg(SECTORS - 4, 8, 0);
	uint8_t status;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	s = seg(UINT64_MAX - 2, 8, 0);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_DISCARD, &s, 1, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_IOERR);
	env_stop(&e);
}

static void test_blk_discard_bad_flags_are_unsupp(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct virtio_blk_discard_write_zeroes s = seg(0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	uint8_t status;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	/* spec: unmap is meaningful only for write zeroes. */
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_DISCARD, &s, 1, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_UNSUPP);
	/* spec: an unknown flag bit. */
	s = seg(0, 8, 2);
	CHECK_EQ(segments(&e, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_UNSUPP);
	env_stop(&e);
}

static void test_blk_read_with_readable_data_is_ioerr(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t *buf, *st;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, 1024);
	st = dalloc(&e, 1);
	{
		struct iovec out[2] = { { make_hdr(&e, VIRTIO_BLK_T_IN, 0), 16 }, { buf, 512 } };
		struct iovec in[2] = { { buf + 512, 512 }, { st, 1 } };

		CHECK_EQ(run(&e, 0, out, 2, in, 2), 1);
	}
	CHECK_EQ(*st, VIRTIO_BLK_S_IOERR);
	env_stop(&e);
}

static void test_blk_write_with_writable_data_is_ioerr(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t *buf, *st;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, 1024);
	st = dalloc(&e, 1);
	{
		struct iovec out[2] = { { make_hdr(&e, VIRTIO_BLK_T_OUT, 0), 16 }, { buf, 512 } };
		struct iovec in[2] = { { buf + 512, 512 }, { st, 1 } };

		CHECK_EQ(run(&e, 0, out, 2, in, 2), 1);
	}
	CHECK_EQ(*st, VIRTIO_BLK_S_IOERR);
	env_stop(&e);
}

/* Queue threads. */

/* A queue of two slots, kept two requests deep, is out of slots whenever
 * the driver adds its next request. A flush goes through io_uring's
 * workers, so it often completes while the thread sleeps; the thread must
 * then take the driver's next request instead of sleeping for a completion
 * that will never come. (Two, not one: a flush is two descriptors, and no
 * chain may be longer than its queue.) */
static void test_blk_full_queue_sleeps_only_while_io_is_in_flight(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	const unsigned sizes[1] = { 2 };
	struct iovec out[2], in[2];
	uint8_t *status;
	struct uvirtio_drvq *q;
	struct env e;
	unsigned added = 0, done = 0;
	bool busy[2] = { false, false };

	CHECK_EQ(env_start_sized(&e, &cfg, ALL_BLK_FEATURES, 1, sizes), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	CHECK_EQ(uvirtio_drvq_size(q), 2);
	status = dalloc(&e, 2);
	for (unsigned k = 0; k < 2; k++) {
		out[k] = (struct iovec){ make_hdr(&e, VIRTIO_BLK_T_FLUSH, 0), 16 };
		in[k] = (struct iovec){ status + k, 1 };
	}
	while (done < 300) {
		void *token;
		uint32_t len;
		unsigned k;
		int ret;

		/* Flushes may complete out of order: a request's status byte is
		 * reused only once that request is back. */
		for (k = 0; k < 2 && added < 300; k++) {
			if (busy[k])
				continue;
			status[k] = 0xee;
			busy[k] = true;
			CHECK_EQ(uvirtio_drvq_add(q, &out[k], 1, &in[k], 1, &in[k]), 0);
			CHECK_EQ(uvirtio_drvq_kick(q), 0);
			added++;
		}
		ret = wait_one(&e, 0, &token, &len);
		if (ret != 1 || *(uint8_t *)((struct iovec *)token)->iov_base) {
			CHECK_EQ(done, 300); /* names the request that stalled */
			break;
		}
		busy[(struct iovec *)token - in] = false;
		done++;
	}
	CHECK_EQ(stats(&e).flushes, 300);
	env_stop(&e);
}

/* Stopping with requests in flight. */

#define BURST 128u
#define BURST_LEN 16384u

struct burst {
	struct iovec out[BURST][2];
	struct iovec in[BURST];
	uint8_t *data, *status;
};

/* Make BURST writes available on queue 0 and kick once. */
static int burst_add(struct env *e, struct burst *b, unsigned from, unsigned n)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&e->drv, 0);

	for (unsigned i = from; i < from + n; i++) {
		int ret;

		fill(b->data + (size_t)i * BURST_LEN, BURST_LEN, 100 + i);
		b->status[i] = 0xee;
		b->out[i][0] = (struct iovec){ make_hdr(e, VIRTIO_BLK_T_OUT, (uint64_t)i * (BURST_LEN / 512)), 16 };
		b->out[i][1] = (struct iovec){ b->data + (size_t)i * BURST_LEN, BURST_LEN };
		b->in[i] = (struct iovec){ b->status + i, 1 };
		ret = uvirtio_drvq_add(q, b->out[i], 2, &b->in[i], 1, (void *)(uintptr_t)(i + 1));
		if (ret)
			return ret;
	}
	return uvirtio_drvq_kick(q);
}

static bool burst_alloc(struct env *e, struct burst *b)
{
	b->data = dalloc(e, (size_t)BURST * BURST_LEN);
	b->status = dalloc(e, BURST);
	return b->data && b->status;
}

static uint16_t used_idx(struct env *e)
{
	struct uvirtio_drvq_ring ring;

	uvirtio_drvq_ring(uvirtio_driver_vq(&e->drv, 0), &ring);
	return __atomic_load_n(&((struct vring_used *)ring.used_host)->idx, __ATOMIC_ACQUIRE);
}

static void test_blk_reset_completes_every_taken_request_first(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	unsigned got = 0;
	struct burst b;
	uint32_t len;
	void *token;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	CHECK(burst_alloc(&e, &b));
	CHECK_EQ(burst_add(&e, &b, 0, BURST), 0);
	/* Reset once the device is busy with them. */
	CHECK(uvirtio_driver_wait(&e.drv, 0, WAIT_MS) == 1 || used_idx(&e) > 0);
	CHECK_EQ(e.t->ops->reset(e.t), 0);
	/* The device wrote its last used entry before the reset returned:
	 * everything it took is there, each with its status. */
	CHECK_EQ(used_idx(&e), stats(&e).writes);
	while (uvirtio_drvq_get(uvirtio_driver_vq(&e.drv, 0), &token, &len) == 1) {
		unsigned i = (unsigned)(uintptr_t)token - 1;

		CHECK_EQ(len, 1);
		CHECK_EQ(b.status[i], VIRTIO_BLK_S_OK);
		CHECK(file_is(&e, (uint64_t)i * BURST_LEN, b.data + (size_t)i * BURST_LEN, BURST_LEN));
		got++;
	}
	CHECK_EQ(got, stats(&e).writes);
	printf("# %u of %u requests were taken before the reset\n", got, BURST);
	env_stop(&e);
}

struct qpos {
	struct uvirtio_queue_layout l;
	uint16_t next;
};

static int dev_queue_stop(struct uvirtio_device *dev, void *arg)
{
	((struct qpos *)arg)->next = uvirtio_device_queue_stop(dev, 0);
	return 0;
}

static int dev_queue_enable_at(struct uvirtio_device *dev, void *arg)
{
	struct qpos *p = arg;

	return uvirtio_device_queue_enable_at(dev, 0, &p->l, p->next, p->next);
}

static void test_blk_queue_stop_then_enable_at_loses_and_repeats_nothing(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	bool seen[BURST] = { false };
	unsigned got = 0;
	struct uvirtio_drvq_ring ring;
	struct uvirtio_drvq *q;
	struct burst b;
	struct qpos pos;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	CHECK(burst_alloc(&e, &b));
	CHECK_EQ(burst_add(&e, &b, 0, BURST / 2), 0);
	/* Stop once the device is busy with them: one done, others in flight. */
	{
		uint32_t len;
		void *token;
		unsigned i;

		CHECK_EQ(wait_one(&e, 0, &token, &len), 1);
		i = (unsigned)(uintptr_t)token - 1;
		CHECK(i < BURST);
		seen[i] = true;
		got++;
	}
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_queue_stop, &pos), 0);
	/* Everything taken was given back: the next avail is the used index. */
	CHECK_EQ(pos.next, used_idx(&e));
	/* While stopped the queue takes nothing. */
	CHECK_EQ(burst_add(&e, &b, BURST / 2, BURST / 2), 0);
	CHECK_EQ(used_idx(&e), pos.next);

	uvirtio_drvq_ring(q, &ring);
	pos.l = (struct uvirtio_queue_layout){ .num = uvirtio_drvq_size(q), .desc = ring.desc,
					       .avail = ring.avail, .used = ring.used };
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_queue_enable_at, &pos), 0);
	while (got < BURST) {
		uint32_t len;
		void *token;
		unsigned i;

		/* A repeated request would break the driver's queue here. */
		CHECK_EQ(wait_one(&e, 0, &token, &len), 1);
		i = (unsigned)(uintptr_t)token - 1;
		CHECK(i < BURST && !seen[i]);
		seen[i] = true;
		CHECK_EQ(b.status[i], VIRTIO_BLK_S_OK);
		got++;
	}
	for (unsigned i = 0; i < BURST; i++)
		CHECK(file_is(&e, (uint64_t)i * BURST_LEN, b.data + (size_t)i * BURST_LEN, BURST_LEN));
	CHECK_EQ(stats(&e).writes, BURST);
	printf("# %u requests done before the stop\n", pos.next);
	env_stop(&e);
}

/* A transport without kick fds (or one that hands none over) calls
 * uvirtio_device_queue_notify(); the queue thread must wake for it. */

static int dev_no_kick_fd(struct uvirtio_device *dev, void *arg)
{
	(void)arg;
	return uvirtio_device_set_kick_fd(dev, 0, -1);
}

static int dev_queue_notify(struct uvirtio_device *dev, void *arg)
{
	(void)arg;
	uvirtio_device_queue_notify(dev, 0);
	return 0;
}

static void test_blk_queue_notify_wakes_a_queue_without_kick_fd(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct uvirtio_drvq *q;
	uint8_t *buf, *st;
	struct env e;

	/* As env_start, with the kick fd taken away before DRIVER_OK: the
	 * loopback's kicks then reach nobody, only queue_notify does. */
	memset(&e, 0, sizeof(e));
	strcpy(e.path, "/tmp/uvirtio-blk-test-XXXXXX");
	e.fd = mkstemp(e.path);
	CHECK(e.fd >= 0);
	CHECK_EQ(ftruncate(e.fd, IMAGE_SIZE), 0);
	cfg.path = e.path;
	CHECK_EQ(uvirtio_loopback_create(&e.lb, NULL), 0);
	CHECK_EQ(uvirtio_blk_dev_init(&e.blk, &cfg, uvirtio_loopback_mem(e.lb)), 0);
	e.have_blk = true;
	CHECK(blk_dev_ops(&e.blk)->takes_kick_fds);
	CHECK_EQ(uvirtio_loopback_start(e.lb, uvirtio_blk_dev_device(&e.blk)), 0);
	e.t = uvirtio_loopback_transport(e.lb);
	e.dma = e.t->ops->dma(e.t);
	CHECK_EQ(uvirtio_driver_probe(&e.drv, e.t, ALL_BLK_FEATURES), 0);
	e.have_drv = true;
	CHECK_EQ(uvirtio_driver_find_vqs(&e.drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_no_kick_fd, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&e.drv), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	buf = dalloc(&e, 4096);
	st = dalloc(&e, 1);
	/* One round per request: each may find the thread asleep. */
	for (unsigned i = 0; i < 50; i++) {
		struct iovec out[2] = { { make_hdr(&e, VIRTIO_BLK_T_OUT, i * 8), 16 }, { buf, 4096 } };
		struct iovec in = { st, 1 };
		uint32_t len = 0;
		void *token = NULL;

		fill(buf, 4096, i);
		*st = 0xee;
		CHECK_EQ(uvirtio_drvq_add(q, out, 2, &in, 1, buf), 0);
		CHECK_EQ(uvirtio_loopback_run_on_device(e.lb, dev_queue_notify, NULL), 0);
		if (wait_one(&e, 0, &token, &len) != 1) {
			CHECK_EQ(i, 50); /* names the request that was never served */
			break;
		}
		CHECK_EQ(len, 1);
		CHECK_EQ(*st, VIRTIO_BLK_S_OK);
		CHECK(file_is(&e, (uint64_t)i * 4096, buf, 4096));
	}
	env_stop(&e);
}

/* The driver breaks its ring while the device has requests in flight: the
 * device sets DEVICE_NEEDS_RESET, finishes or drops what it took without
 * publishing it, and a reset returns; afterwards the device serves again. */
static void test_blk_broken_ring_with_requests_in_flight_needs_reset_and_reset_returns(void)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	struct uvirtio_drvq_ring ring;
	struct vring_avail *avail;
	struct uvirtio_drvq *q;
	uint8_t status, *buf;
	struct burst b;
	struct env e;
	uint16_t idx;

	CHECK_EQ(env_start(&e, &cfg), 0);
	q = uvirtio_driver_vq(&e.drv, 0);
	CHECK(burst_alloc(&e, &b));
	/* BURST writes, then a head outside the ring, all made available
	 * before one kick: the thread takes the writes, then breaks on the
	 * bad head before it has reaped any of them. */
	for (unsigned i = 0; i < BURST; i++) {
		fill(b.data + (size_t)i * BURST_LEN, BURST_LEN, 100 + i);
		b.status[i] = 0xee;
		b.out[i][0] = (struct iovec){ make_hdr(&e, VIRTIO_BLK_T_OUT, (uint64_t)i * (BURST_LEN / 512)), 16 };
		b.out[i][1] = (struct iovec){ b.data + (size_t)i * BURST_LEN, BURST_LEN };
		b.in[i] = (struct iovec){ b.status + i, 1 };
		CHECK_EQ(uvirtio_drvq_add(q, b.out[i], 2, &b.in[i], 1, (void *)(uintptr_t)(i + 1)), 0);
	}
	uvirtio_drvq_ring(q, &ring);
	avail = ring.avail_host;
	idx = __atomic_load_n(&avail->idx, __ATOMIC_RELAXED);
	avail->ring[idx & (uvirtio_drvq_size(q) - 1)] = htole16(uvirtio_drvq_size(q));
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	CHECK_EQ(uvirtio_drvq_kick(q), 0);
	while (!uvirtio_driver_needs_reset(&e.drv))
		CHECK(uvirtio_driver_wait(&e.drv, 0, WAIT_MS) != 0);
	CHECK(uvirtio_device_get_status(uvirtio_blk_dev_device(&e.blk)) & VIRTIO_CONFIG_S_NEEDS_RESET);
	CHECK_EQ(stats(&e).writes, BURST);
	/* The reset returns: every write taken has finished or been dropped,
	 * and none was published once the ring broke. (The thread may have
	 * been awake and taken and published a few before the bad head.) */
	idx = used_idx(&e);
	CHECK(idx < BURST);
	CHECK_EQ(e.t->ops->reset(e.t), 0);
	CHECK_EQ(used_idx(&e), idx);
	for (unsigned i = 0; i < BURST; i++)
		CHECK(b.status[i] == 0xee || b.status[i] == VIRTIO_BLK_S_OK);

	/* And the device serves a new driver. */
	uvirtio_driver_remove(&e.drv, NULL, NULL);
	e.have_drv = false;
	CHECK_EQ(uvirtio_driver_probe(&e.drv, e.t, ALL_BLK_FEATURES), 0);
	e.have_drv = true;
	CHECK_EQ(uvirtio_driver_find_vqs(&e.drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&e.drv), 0);
	buf = dalloc(&e, 4096);
	fill(buf, 4096, 9);
	CHECK_EQ(rw(&e, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096, &status), 1);
	CHECK_EQ(status, VIRTIO_BLK_S_OK);
	CHECK(file_is(&e, 0, buf, 4096));
	env_stop(&e);
}

TEST_MAIN(T(test_blk_write_then_read_matches_the_image),
	  T(test_blk_capacity_and_config_from_the_image),
	  T(test_blk_flush_answers_ok),
	  T(test_blk_get_id_returns_the_serial),
	  T(test_blk_get_id_short_buffer_gets_what_fits),
	  T(test_blk_discard_and_write_zeroes_zero_the_image),
	  T(test_blk_null_backend_completes_without_io),
	  T(test_blk_direct_io_serves_aligned_and_unaligned_buffers),
	  T(test_blk_poll_mode_serves_requests),
	  T(test_blk_two_queues_at_once),
	  T(test_blk_read_only_refuses_writes_with_ioerr),
	  T(test_blk_writeback_toggles_through_config),
	  T(test_blk_writeback_is_read_only_without_config_wce),
	  T(test_blk_init_missing_image_is_enoent),
	  T(test_blk_init_read_only_image_for_writing_is_eacces),
	  T(test_blk_read_past_the_end_of_a_shrunk_image_is_ioerr),
	  T(test_blk_header_split_across_iovecs_is_gathered),
	  T(test_blk_short_header_is_ioerr),
	  T(test_blk_no_status_byte_gives_used_len_0),
	  T(test_blk_length_not_multiple_of_512_is_ioerr),
	  T(test_blk_out_of_range_sector_is_ioerr),
	  T(test_blk_sector_plus_length_overflow_is_ioerr),
	  T(test_blk_unknown_type_is_unsupp),
	  T(test_blk_discard_segment_count_zero_or_over_max_is_ioerr),
	  T(test_blk_discard_segment_out_of_range_is_ioerr),
	  T(test_blk_discard_bad_flags_are_unsupp),
	  T(test_blk_read_with_readable_data_is_ioerr),
	  T(test_blk_write_with_writable_data_is_ioerr),
	  T(test_blk_full_queue_sleeps_only_while_io_is_in_flight),
	  T(test_blk_reset_completes_every_taken_request_first),
	  T(test_blk_queue_stop_then_enable_at_loses_and_repeats_nothing),
	  T(test_blk_queue_notify_wakes_a_queue_without_kick_fd),
	  T(test_blk_broken_ring_with_requests_in_flight_needs_reset_and_reset_returns))
