// SPDX-License-Identifier: MIT
/* The virtio-blk device over the loopback transport, driven by raw requests
 * (tests/unit/blk_dev_fixture.h), with the data checked against the image:
 * every request type, backends and modes, and malformed requests one rule
 * at a time. Queue threads, stop and reset: test_blk_dev_queues.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_dev_fixture.h"
#include "harness.h"

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

/* A request of @type with 512 bytes of data readable and 512 writable:
 * a read or a write has data in one direction only. */
static void expect_data_both_ways_is_ioerr(uint32_t type)
{
	struct uvirtio_blk_dev_config cfg = { 0 };
	uint8_t *buf, *st;
	struct env e;

	CHECK_EQ(env_start(&e, &cfg), 0);
	buf = dalloc(&e, 1024);
	st = dalloc(&e, 1);
	{
		struct iovec out[2] = { { make_hdr(&e, type, 0), 16 }, { buf, 512 } };
		struct iovec in[2] = { { buf + 512, 512 }, { st, 1 } };

		CHECK_EQ(run(&e, 0, out, 2, in, 2), 1);
	}
	CHECK_EQ(*st, VIRTIO_BLK_S_IOERR);
	env_stop(&e);
}

static void test_blk_read_with_readable_data_is_ioerr(void)
{
	expect_data_both_ways_is_ioerr(VIRTIO_BLK_T_IN);
}

static void test_blk_write_with_writable_data_is_ioerr(void)
{
	expect_data_both_ways_is_ioerr(VIRTIO_BLK_T_OUT);
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
	  T(test_blk_write_with_writable_data_is_ioerr))
