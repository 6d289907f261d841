// SPDX-License-Identifier: MIT
/* virtio-blk driver over the loopback transport, against a disk in memory:
 * probe and config, every request type with its data checked, limits
 * refused before they reach the device, and devices that break the rules.
 * Async I/O, remove and re-probe, and the real device: test_blk_drv_io.c. */
#include <errno.h>
#include <stdlib.h>

#include "blk_drv_fixture.h"
#include "harness.h"

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
	  T(test_blk_drv_status_ioerr_is_eio_and_unsupp_is_eopnotsupp),
	  T(test_blk_drv_unknown_status_byte_is_eio),
	  T(test_blk_drv_ok_with_used_length_not_covering_the_writable_part_is_eio),
	  T(test_blk_drv_error_status_may_count_only_the_status_byte),
	  T(test_blk_drv_used_length_larger_than_offered_breaks_queue),
	  T(test_blk_drv_used_id_not_submitted_breaks_queue))
