// SPDX-License-Identifier: MIT
/* Dirty logging end to end: uvirtio's blk driver over its vhost-user
 * front-end, against uvirtio's blk backend (vhost_frontend_fixture.h),
 * split and packed. The front-end turns logging on; at the moment the
 * driver sees each completion (its callback, after it read the used index)
 * the log must hold the bit of every page the device wrote for it (read
 * buffers, the used ring or packed descriptors, the status byte's page)
 * and no other: nothing of a write's buffer, at most one page outside the
 * buffer and the ring (the status byte's). Logging off: no more bits. A
 * log replaced with a request in flight: its bits still arrive. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/dma.h"
#include "uvirtio/devq.h"
#include "uvirtio/driver.h"
#include "uvirtio/memory.h"
#include "uvirtio/drvq.h"
#include "vhost_frontend_fixture.h"

#define PAGE 4096u

/* Inside a helper returning int: report and fail. */
#define TRY(cond)                                                                  \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("# %s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
			return -1;                                                 \
		}                                                                  \
	} while (0)

struct io {
	struct uvirtio_vhost_frontend *fe;
	uint8_t *seen; /* the log as the callback found it (and cleared it) */
	size_t size;
	bool done;
};

/* Takes every bit out of the log, as QEMU's sync does. */
static void take_log(struct uvirtio_vhost_frontend *fe, uint8_t *out, size_t size)
{
	size_t n;
	uint8_t *log = uvirtio_vhost_frontend_dirty_log(fe, &n);

	for (size_t i = 0; i < size; i++)
		out[i] = log && i < n ? __atomic_exchange_n(&log[i], 0, __ATOMIC_RELAXED) : 0;
}

static void on_done(struct uvirtio_blk_drv_req *req)
{
	struct io *io = req->opaque;

	take_log(io->fe, io->seen, io->size);
	io->done = true;
}

/* Submits one request and polls it to completion. */
static int run_req(struct uvirtio_blk_drv *b, struct io *io, uint32_t type, uint64_t sector,
		   void *buf, size_t len, void (*while_in_flight)(struct io *))
{
	struct iovec iov = { buf, len };
	struct uvirtio_blk_drv_req req = { .type = type, .sector = sector, .iov = &iov, .niov = 1,
					   .callback = on_done, .opaque = io };
	int ret;

	io->done = false;
	ret = uvirtio_blk_drv_submit(b, 0, &req);
	if (ret)
		return ret;
	if (while_in_flight)
		while_in_flight(io);
	while (!io->done) {
		struct pollfd p = { .fd = uvirtio_blk_drv_event_fd(b, 0), .events = POLLIN };

		if (poll(&p, 1, 10000) != 1)
			return -ETIMEDOUT;
		ret = uvirtio_blk_drv_poll(b, 0, 8);
		if (ret < 0)
			return ret;
	}
	return req.result;
}

static bool bit(const uint8_t *bits, uint64_t page)
{
	return bits[page / 8] & (1u << (page % 8));
}

static bool in_range(uint64_t page, uint64_t gpa, uint64_t len)
{
	return page >= gpa / PAGE && page <= (gpa + len - 1) / PAGE;
}

/* The log after one request whose buffer is [buf, buf + len) in guest
 * addresses: the device wrote the buffer when @wrote_buf. */
static int check_marks(const struct io *io, uint64_t buf, uint64_t len, bool wrote_buf,
		       uint64_t ring, uint64_t ring_len)
{
	unsigned other = 0, ring_marks = 0;

	for (uint64_t p = 0; p < io->size * 8; p++) {
		if (!bit(io->seen, p))
			continue;
		if (in_range(p, buf, len)) {
			TRY(wrote_buf);
		} else if (in_range(p, ring, ring_len)) {
			ring_marks++;
		} else {
			other++; /* the status byte's page */
		}
	}
	TRY(other <= 1);
	TRY(ring_marks >= 1);
	if (wrote_buf)
		for (uint64_t p = buf / PAGE; p <= (buf + len - 1) / PAGE; p++)
			TRY(bit(io->seen, p));
	return 0;
}

static bool all_clear(const uint8_t *bits, size_t size)
{
	for (size_t i = 0; i < size; i++)
		if (bits[i])
			return false;
	return true;
}

static void replace_log(struct io *io)
{
	/* The request is in flight (or done, its used entry not yet seen by
	 * the driver): its bits are in the old log or the new one. */
	if (uvirtio_vhost_frontend_replace_dirty_log(io->fe))
		abort();
}

static uint64_t gpa_of(struct uvirtio_vhost_frontend *fe, const void *p, size_t len)
{
	struct uvirtio_transport *t = uvirtio_vhost_frontend_transport(fe);
	uint64_t gpa = 0;

	if (uvirtio_dma_addr(t->ops->dma(t), p, len, &gpa))
		abort();
	return gpa;
}

static void dirty_log_io(bool packed)
{
	struct uvirtio_blk_drv_opts opts = { .features = UVIRTIO_BLK_DRV_FEATURES |
							 (packed ? UVIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0) };
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;
	struct io io = { 0 };
	unsigned char *wbuf, *rbuf, *big;
	struct uvirtio_drvq *q;
	struct uvirtio_drvq_ring r;
	uint64_t ring, ring_len;
	size_t size = 0;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK(uvirtio_vhost_frontend_protocol_features(fe, NULL) & PF(LOG_SHMFD));
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), &opts), 0);
	CHECK_EQ(uvirtio_driver_has_feature(uvirtio_blk_drv_driver(&b), VIRTIO_F_RING_PACKED), packed);
	CHECK(!uvirtio_vhost_frontend_dirty_log(fe, NULL));
	wbuf = uvirtio_blk_drv_alloc_buf(&b, 2 * PAGE);
	rbuf = uvirtio_blk_drv_alloc_buf(&b, 2 * PAGE);
	big = uvirtio_blk_drv_alloc_buf(&b, 16 * PAGE);
	CHECK(wbuf && rbuf && big);
	fill(wbuf, 2 * PAGE, 3);

	/* On, with the ring running. */
	CHECK_EQ(uvirtio_vhost_frontend_set_dirty_log(fe, true), 0);
	CHECK(uvirtio_vhost_frontend_dirty_log(fe, &size));
	CHECK(size * 8 * PAGE >= guest_base(uvirtio_vhost_frontend_transport(fe)) + (16u << 20));
	io = (struct io){ .fe = fe, .seen = calloc(1, size), .size = size };
	CHECK(io.seen);
	q = uvirtio_driver_vq(uvirtio_blk_drv_driver(&b), 0);
	uvirtio_drvq_ring(q, &r);
	/* What the device writes of the ring: split, the used ring; packed,
	 * the descriptors. */
	ring = packed ? r.desc : r.used;
	ring_len = packed ? 16ull * uvirtio_drvq_size(q) : 6 + 8ull * uvirtio_drvq_size(q);

	for (unsigned round = 0; round < 3; round++) {
		CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_OUT, 8, wbuf, 2 * PAGE, NULL), 0);
		CHECK_EQ(check_marks(&io, gpa_of(fe, wbuf, 2 * PAGE), 2 * PAGE, false, ring, ring_len), 0);
		memset(rbuf, 0, 2 * PAGE);
		CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_IN, 8, rbuf, 2 * PAGE, NULL), 0);
		CHECK(same_as_pattern(rbuf, 2 * PAGE, 3));
		CHECK_EQ(check_marks(&io, gpa_of(fe, rbuf, 2 * PAGE), 2 * PAGE, true, ring, ring_len), 0);
		/* A read into the middle of a page: that page, not the next. */
		CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_IN, 8, big + 100, 512, NULL), 0);
		CHECK_EQ(check_marks(&io, gpa_of(fe, big + 100, 512), 512, true, ring, ring_len), 0);
		CHECK(!bit(io.seen, gpa_of(fe, big, 16 * PAGE) / PAGE + 1));
		CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_IN, 0, big, 16 * PAGE, NULL), 0);
		CHECK_EQ(check_marks(&io, gpa_of(fe, big, 16 * PAGE), 16 * PAGE, true, ring, ring_len), 0);
	}
	/* The log replaced while a read is in flight: no bit lost. */
	for (unsigned round = 0; round < 3; round++) {
		CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_IN, 0, big, 16 * PAGE, replace_log), 0);
		CHECK_EQ(check_marks(&io, gpa_of(fe, big, 16 * PAGE), 16 * PAGE, true, ring, ring_len), 0);
	}
	/* Off: nothing more is marked. */
	CHECK_EQ(uvirtio_vhost_frontend_set_dirty_log(fe, false), 0);
	take_log(fe, io.seen, size);
	CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_IN, 0, big, 16 * PAGE, NULL), 0);
	CHECK(all_clear(io.seen, size));
	CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_OUT, 8, wbuf, 2 * PAGE, NULL), 0);
	CHECK(all_clear(io.seen, size));
	/* And on again. */
	CHECK_EQ(uvirtio_vhost_frontend_set_dirty_log(fe, true), 0);
	CHECK_EQ(run_req(&b, &io, VIRTIO_BLK_T_IN, 8, rbuf, 2 * PAGE, NULL), 0);
	CHECK_EQ(check_marks(&io, gpa_of(fe, rbuf, 2 * PAGE), 2 * PAGE, true, ring, ring_len), 0);

	free(io.seen);
	uvirtio_blk_drv_free_buf(&b, wbuf);
	uvirtio_blk_drv_free_buf(&b, rbuf);
	uvirtio_blk_drv_free_buf(&b, big);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_dirty_log_split_marks_every_page_written_before_the_used_index(void)
{
	dirty_log_io(false);
}

static void test_dirty_log_packed_marks_every_page_written_before_the_used_index(void)
{
	dirty_log_io(true);
}

/* The ring layer alone: one thread pops and pushes requests on a split
 * ring, each writing one page, while another switches the log to a fresh
 * area again and again and, as QEMU does with an old log, takes its bits
 * once the switch returned it. No bit may land in an area after that (it
 * would be lost), and every page pushed is in some area. */
#define SW_PAGES 64
#define SW_AREAS 400
#define SW_GA 0x100000ull

static _Alignas(4096) char sw_guest[(SW_PAGES + 4) * PAGE];
static uint8_t sw_bits[SW_AREAS][((SW_GA + sizeof(sw_guest)) / PAGE + 7) / 8];

struct switcher {
	struct uvirtio_dirty_log log;
	struct uvirtio_dirty_log_area areas[SW_AREAS];
	uint8_t seen[sizeof(sw_bits[0])];
	unsigned used;
	bool done; /* atomic: every area was used */
};

static void collect(struct switcher *sw, struct uvirtio_dirty_log_area *a)
{
	for (size_t i = 0; a && i < a->size; i++)
		sw->seen[i] |= __atomic_exchange_n(&a->bits[i], 0, __ATOMIC_RELAXED);
}

static void *switch_thread(void *arg)
{
	struct switcher *sw = arg;

	while (sw->used + 1 < SW_AREAS) {
		struct uvirtio_dirty_log_area *a = &sw->areas[++sw->used];

		collect(sw, uvirtio_dirty_log_switch(&sw->log, a));
		sched_yield();
	}
	__atomic_store_n(&sw->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void test_dirty_log_switch_under_pushes_loses_no_bit(void)
{
	static struct switcher sw;
	struct uvirtio_mem mem;
	struct uvirtio_mem_region r = { .guest_addr = SW_GA, .size = sizeof(sw_guest),
					.host_addr = sw_guest, .fd = -1 };
	struct vring_desc *desc = (struct vring_desc *)sw_guest;
	struct vring_avail *avail = (struct vring_avail *)(sw_guest + 256);
	struct uvirtio_devq q = { 0 };
	struct iovec iov[4];
	struct uvirtio_req req;
	pthread_t th;
	bool late = false, all = true;

	memset(&sw, 0, sizeof(sw));
	memset(sw_bits, 0, sizeof(sw_bits));
	memset(sw_guest, 0, sizeof(sw_guest));
	for (unsigned k = 0; k < SW_AREAS; k++)
		sw.areas[k] = (struct uvirtio_dirty_log_area){ .bits = sw_bits[k], .size = sizeof(sw_bits[k]) };
	uvirtio_mem_init(&mem);
	CHECK_EQ(uvirtio_mem_add(&mem, &r), 0);
	/* desc at +0, avail at +256, used at +1024; buffers from page 4 on. */
	CHECK_EQ(uvirtio_devq_setup(&q, &mem, 8, SW_GA, SW_GA + 256, SW_GA + 1024,
				    UVIRTIO_BIT(VIRTIO_F_VERSION_1)), 0);
	uvirtio_devq_set_dirty_log(&q, &sw.log, SW_GA + 1024);
	uvirtio_req_init(&req, iov, 4);
	CHECK(!uvirtio_dirty_log_switch(&sw.log, &sw.areas[0]));
	CHECK_EQ(pthread_create(&th, NULL, switch_thread, &sw), 0);
	/* Until the switcher is through its areas (and every page once). */
	for (unsigned i = 0; i < SW_PAGES || !__atomic_load_n(&sw.done, __ATOMIC_ACQUIRE); i++) {
		uint64_t page = SW_GA + (4 + i % SW_PAGES) * PAGE;

		desc[0] = (struct vring_desc){ .addr = page, .len = 8, .flags = VRING_DESC_F_WRITE };
		avail->ring[avail->idx % 8] = 0;
		__atomic_store_n(&avail->idx, (uint16_t)(avail->idx + 1), __ATOMIC_RELEASE);
		CHECK_EQ(uvirtio_devq_pop(&q, &req), 1);
		CHECK_EQ(uvirtio_devq_push(&q, req.id, 8), 0);
	}
	pthread_join(th, NULL);
	collect(&sw, uvirtio_dirty_log_switch(&sw.log, NULL));
	/* Every retired area was taken when it was returned: a bit in one
	 * now came after its switch returned. */
	for (unsigned k = 0; k < SW_AREAS; k++)
		for (size_t b = 0; b < sizeof(sw_bits[k]); b++)
			if (sw_bits[k][b])
				late = true;
	for (unsigned p = 0; p < SW_PAGES; p++) {
		uint64_t n = (SW_GA >> 12) + 4 + p;

		if (!(sw.seen[n / 8] & (1u << (n % 8))))
			all = false;
	}
	CHECK(!late);
	CHECK(all);
	uvirtio_devq_reset(&q);
}

TEST_MAIN(T(test_dirty_log_switch_under_pushes_loses_no_bit),
	  T(test_dirty_log_split_marks_every_page_written_before_the_used_index),
	  T(test_dirty_log_packed_marks_every_page_written_before_the_used_index))
