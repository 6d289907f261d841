// SPDX-License-Identifier: MIT
/* virtio-blk driver over the loopback transport: async I/O across queues,
 * remove, re-probe and time-outs against a disk in memory, then every
 * request type against the real blk device (file and null backends).
 * Probe, data and refusals: test_blk_drv.c. */
#include <errno.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>

#include "blk_drv_fixture.h"
#include "harness.h"

/* ------------------------------------------------------------------ */
/* Async */

static void test_blk_drv_async_many_requests_in_flight_across_two_queues(void)
{
	static struct memdisk snap;
	struct async_ctx c[2];
	struct uvirtio_blk_drv b;
	struct env e;

	CHECK_EQ(env_start(&e, 0, MD_HONEST), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, e.t, &(struct uvirtio_blk_drv_opts){ .num_queues = 2 }), 0);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 2);
	CHECK_EQ(async_run_two_queues(&b, c, 10), 0);
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
/* Against the real blk device (src/devices/blk.c), file and null backends */

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
	CHECK_EQ(async_run_two_queues(&b, c, 20), 0);
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

TEST_MAIN(T(test_blk_drv_async_many_requests_in_flight_across_two_queues),
	  T(test_blk_drv_async_full_queue_says_eagain_or_enospc),
	  T(test_blk_drv_sync_call_on_a_full_queue_completes_the_others_first),
	  T(test_blk_drv_remove_cancels_outstanding_requests),
	  T(test_blk_drv_reprobe_with_other_features_keeps_the_data),
	  T(test_blk_drv_sync_timeout_leaves_request_with_device_until_remove),
	  T(test_blk_drv_sync_wait_ends_with_eio_when_device_needs_reset),
	  T(test_blk_dev_file_every_request_type_matches_the_image),
	  T(test_blk_dev_file_scatter_gather_up_to_seg_max),
	  T(test_blk_dev_file_async_in_flight_across_two_queues),
	  T(test_blk_dev_file_async_on_packed_ring),
	  T(test_blk_dev_file_async_on_packed_ring_in_order),
	  T(test_blk_dev_file_async_on_split_ring_in_order),
	  T(test_blk_dev_file_async_more_in_flight_than_device_slots_with_indirect),
	  T(test_blk_dev_read_only_refuses_writes_with_erofs),
	  T(test_blk_dev_reprobe_without_mq_and_discard_keeps_the_data),
	  T(test_blk_dev_set_writeback_switches_the_cache_mode),
	  T(test_blk_dev_null_backend_completes_every_request))
