// SPDX-License-Identifier: MIT
/* The vhost-user front-end: the blk driver over it against uvirtio's own
 * backend (verified data, reset and renegotiation, several queues, a ring
 * stopped and restarted, the older protocol paths), and against scripted
 * backends that break the protocol, go away or write a bad used ring.
 * Queue reset, suspend/resume and moves: test_vhost_frontend_lifecycle.c;
 * the backends both use: vhost_frontend_fixture.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "uvirtio/blk_drv.h"
#include "vhost_frontend_fixture.h"

/* Writes @len bytes of pattern @seed at @sector on @queue and reads them back. */
static int write_verify(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector, size_t len,
			unsigned seed)
{
	unsigned char *buf = uvirtio_blk_drv_alloc_buf(b, len);
	int ret;

	if (!buf)
		return -ENOMEM;
	fill(buf, len, seed);
	ret = uvirtio_blk_drv_write(b, queue, sector, buf, len, 10000);
	if (!ret) {
		memset(buf, 0, len);
		ret = uvirtio_blk_drv_read(b, queue, sector, buf, len, 10000);
	}
	if (!ret && !same_as_pattern(buf, len, seed))
		ret = -EILSEQ;
	uvirtio_blk_drv_free_buf(b, buf);
	return ret;
}

static int read_verify(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector, size_t len,
		       unsigned seed)
{
	unsigned char *buf = uvirtio_blk_drv_alloc_buf(b, len);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = uvirtio_blk_drv_read(b, queue, sector, buf, len, 10000);
	if (!ret && !same_as_pattern(buf, len, seed))
		ret = -EILSEQ;
	uvirtio_blk_drv_free_buf(b, buf);
	return ret;
}

static void test_frontend_blk_io_verified_in_the_backend_image(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK(uvirtio_vhost_frontend_connected(fe));
	/* uvirtio blk offers all of these; the front-end takes them. */
	CHECK_EQ(uvirtio_vhost_frontend_protocol_features(fe, NULL),
		 PF(MQ) | PF(REPLY_ACK) | PF(CONFIG) | PF(RESET_DEVICE) | PF(CONFIGURE_MEM_SLOTS) |
			 PF(STATUS) | PF(LOG_SHMFD) | PF(INFLIGHT_SHMFD));
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	CHECK_EQ(uvirtio_blk_drv_capacity(&b), IMG_SECTORS);
	CHECK_EQ(write_verify(&b, 0, 16, 65536, 1), 0);
	CHECK(image_has_pattern(s.img, 16, 65536, 1));
	CHECK_EQ(uvirtio_blk_drv_flush(&b, 0, 10000), 0);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	/* After the stop: the backend closes its end when it sees ours go. */
	server_stop(&s);
}

static void test_frontend_reset_and_renegotiate_with_fewer_features(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;
	struct uvirtio_blk_drv_opts opts = {
		.features = UVIRTIO_BLK_DRV_FEATURES & ~(UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
							  UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
							  UVIRTIO_BIT(VIRTIO_BLK_F_MQ)),
		.queue_size = 32,
	};

	CHECK_EQ(server_start(&s, 2), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	CHECK(uvirtio_driver_has_feature(uvirtio_blk_drv_driver(&b), VIRTIO_RING_F_EVENT_IDX));
	CHECK_EQ(write_verify(&b, 0, 0, 8192, 2), 0);
	uvirtio_blk_drv_remove(&b);

	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), &opts), 0);
	CHECK(!uvirtio_driver_has_feature(uvirtio_blk_drv_driver(&b), VIRTIO_RING_F_EVENT_IDX));
	CHECK(!uvirtio_driver_has_feature(uvirtio_blk_drv_driver(&b), VIRTIO_RING_F_INDIRECT_DESC));
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 1);
	CHECK_EQ(read_verify(&b, 0, 0, 8192, 2), 0);
	CHECK_EQ(write_verify(&b, 0, 64, 4096, 3), 0);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_two_queues_each_carry_verified_io(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;
	struct uvirtio_blk_drv_opts opts = { .num_queues = 2 };

	CHECK_EQ(server_start(&s, 2), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(uvirtio_vhost_frontend_num_queues(fe), 2);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), &opts), 0);
	CHECK_EQ(uvirtio_blk_drv_num_queues(&b), 2);
	CHECK_EQ(write_verify(&b, 0, 0, 4096, 4), 0);
	CHECK_EQ(write_verify(&b, 1, 8, 4096, 5), 0);
	CHECK_EQ(read_verify(&b, 1, 0, 4096, 4), 0);
	CHECK_EQ(read_verify(&b, 0, 8, 4096, 5), 0);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void done_count(struct uvirtio_blk_drv_req *req)
{
	(*(int *)req->opaque)++;
}

static void test_frontend_stopped_ring_reports_next_avail_and_resumes_there(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;
	unsigned char *buf;
	struct iovec iov;
	struct uvirtio_blk_drv_req req = { .type = VIRTIO_BLK_T_IN, .sector = 0, .niov = 1 };
	uint32_t base = 0;
	int done = 0;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	CHECK_EQ(write_verify(&b, 0, 0, 4096, 6), 0); /* two requests */
	for (unsigned i = 0; i < 5; i++)
		CHECK_EQ(read_verify(&b, 0, 0, 4096, 6), 0);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base & 0xffff, 7);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), -EINVAL);

	/* Made available while stopped: the restart's kick covers it. */
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	CHECK(buf);
	iov = (struct iovec){ buf, 4096 };
	req.iov = &iov;
	req.callback = done_count;
	req.opaque = &done;
	CHECK_EQ(uvirtio_blk_drv_submit(&b, 0, &req), 0);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	while (!done) {
		struct pollfd p = { .fd = uvirtio_blk_drv_event_fd(&b, 0), .events = POLLIN };

		CHECK(poll(&p, 1, 10000) == 1);
		CHECK(uvirtio_blk_drv_poll(&b, 0, 8) >= 0);
	}
	CHECK_EQ(req.result, 0);
	CHECK(same_as_pattern(buf, 4096, 6));
	uvirtio_blk_drv_free_buf(&b, buf);
	CHECK_EQ(write_verify(&b, 0, 8, 4096, 7), 0);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base & 0xffff, 10);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	CHECK_EQ(read_verify(&b, 0, 8, 4096, 7), 0);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_older_protocol_paths_mem_table_no_ack_no_status(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path,
			    PF(REPLY_ACK) | PF(STATUS) | PF(CONFIGURE_MEM_SLOTS) | PF(MQ) |
				    PF(RESET_DEVICE)),
		 0);
	CHECK_EQ(uvirtio_vhost_frontend_protocol_features(fe, NULL),
		 PF(CONFIG) | PF(LOG_SHMFD) | PF(INFLIGHT_SHMFD));
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	CHECK_EQ(write_verify(&b, 0, 32, 16384, 8), 0);
	/* SET_LOG_BASE is answered without REPLY_ACK too (vhost-user.rst). */
	CHECK_EQ(uvirtio_vhost_frontend_set_dirty_log(fe, true), 0);
	CHECK_EQ(write_verify(&b, 0, 32, 16384, 8), 0);
	CHECK_EQ(uvirtio_vhost_frontend_replace_dirty_log(fe), 0);
	CHECK_EQ(uvirtio_vhost_frontend_set_dirty_log(fe, false), 0);
	uvirtio_blk_drv_remove(&b);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	CHECK_EQ(read_verify(&b, 0, 32, 16384, 8), 0);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_without_config_feature_blk_probe_fails(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, PF(CONFIG)), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), -EOPNOTSUPP);
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), "CONFIG"));
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_backend_gone_fails_waiting_request(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;
	unsigned char *buf;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	CHECK(buf);
	server_stop(&s);
	/* Without the hang-up reaching the driver this would wait 30 s. */
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 30000), -EIO);
	/* The hang-up the watcher saw is the end of the connection, before
	 * any request has failed on it. */
	CHECK(!uvirtio_vhost_frontend_connected(fe));
	uvirtio_blk_drv_free_buf(&b, buf);
	uvirtio_blk_drv_remove(&b);
	CHECK(!uvirtio_vhost_frontend_connected(fe));
	uvirtio_vhost_frontend_destroy(fe);
}

static unsigned long free_huge_pages(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long n = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %lu", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static void test_frontend_guest_memory_in_huge_pages(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 3u << 20, .hugetlb = true };
	struct uvirtio_blk_drv b;
	struct uvirtio_transport *t;
	size_t mem_size;

	if (free_huge_pages() < 2) {
		test_skipped = "fewer than 2 free 2 MiB huge pages (vm.nr_hugepages)";
		return;
	}
	CHECK_EQ(server_start(&s, 1), 0);
	cfg.socket_path = s.path;
	/* 3 MiB is rounded up to two huge pages. */
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &cfg), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	uvirtio_dma_guest_range(t->ops->dma(t), NULL, &mem_size);
	CHECK_EQ(mem_size, 4u << 20);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	CHECK_EQ(write_verify(&b, 0, 0, 65536, 9), 0);
	CHECK(image_has_pattern(s.img, 0, 65536, 9));
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_connect_refuses_bad_config(void)
{
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_vhost_frontend_config none = { .fd = -1 };
	struct uvirtio_vhost_frontend_config qsize = { .socket_path = "/x", .fd = -1,
						       .max_queue_size = 100 };
	char err[160] = "";
	struct uvirtio_vhost_frontend_config missing = { .socket_path = "/nonexistent/sock", .fd = -1,
							 .error = err, .error_size = sizeof(err) };

	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &none), -EINVAL);
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &qsize), -EINVAL);
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &missing), -ENOENT);
	CHECK(strstr(err, "/nonexistent/sock"));
}

static void test_frontend_backend_closing_during_set_up_is_enotconn(void)
{
	CHECK(fake_set_up_fails(FAKE_CLOSE_AT, VHOST_USER_GET_PROTOCOL_FEATURES, -ENOTCONN,
				"GET_PROTOCOL_FEATURES"));
}

static void test_frontend_short_reply_is_eproto(void)
{
	CHECK(fake_set_up_fails(FAKE_SHORT_REPLY, VHOST_USER_GET_FEATURES, -EPROTO,
				"reply of 4 bytes, expected 8"));
}

static void test_frontend_oversized_reply_is_eproto(void)
{
	CHECK(fake_set_up_fails(FAKE_HUGE_REPLY, VHOST_USER_GET_PROTOCOL_FEATURES, -EPROTO,
				"malformed reply"));
}

static void test_frontend_reply_to_another_request_is_eproto(void)
{
	CHECK(fake_set_up_fails(FAKE_OTHER_REQUEST, VHOST_USER_GET_FEATURES, -EPROTO,
				"GET_QUEUE_NUM"));
}

static void test_frontend_silent_backend_times_out(void)
{
	/* REPLY_ACK is in use by then, so even SET_OWNER awaits an answer. */
	CHECK(fake_set_up_fails(FAKE_SILENT_AT, VHOST_USER_SET_OWNER, -ETIMEDOUT, "SET_OWNER"));
}

static void test_frontend_backend_without_version_1_is_enodev(void)
{
	CHECK(fake_set_up_fails(FAKE_NO_VERSION_1, 0, -ENODEV, "VERSION_1"));
}

static void test_frontend_refused_request_is_eio_and_keeps_the_connection(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint8_t wce = 1;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_REFUSE_AT, VHOST_USER_SET_CONFIG, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_config(t, 0, &wce, 1), -EIO);
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), "SET_CONFIG: the backend refused"));
	CHECK(uvirtio_vhost_frontend_connected(fe));
	CHECK_EQ(t->ops->reset(t), 0);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

static void test_frontend_unanswered_request_gives_up_the_connection(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint8_t wce = 1, status;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_SILENT_AT, VHOST_USER_SET_CONFIG, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_config(t, 0, &wce, 1), -ETIMEDOUT);
	CHECK(!uvirtio_vhost_frontend_connected(fe));
	/* Given up: nothing waits any more, and the device reads as needing
	 * a reset so a driver stops using it. */
	CHECK_EQ(t->ops->set_config(t, 0, &wce, 1), -ENOTCONN);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_NEEDS_RESET);
	CHECK_EQ(t->ops->reset(t), -ENOTCONN);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

static void test_frontend_bad_used_ring_breaks_the_queue_not_the_process(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;
	unsigned char *buf;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_BAD_USED, 0, &fe, err, sizeof(err)), 0);
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	buf = uvirtio_blk_drv_alloc_buf(&b, 4096);
	CHECK(buf);
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 10000), -EIO);
	/* The queue stays broken; the driver says so at once. */
	CHECK_EQ(uvirtio_blk_drv_read(&b, 0, 0, buf, 4096, 10000), -EIO);
	uvirtio_blk_drv_free_buf(&b, buf);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

static void test_frontend_failed_ring_handover_leaves_no_ring_running(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	char err[160] = "";

	/* The backend takes the kick (the ring starts) and then refuses
	 * SET_VRING_ENABLE: DRIVER_OK fails, and the ring must not be left
	 * running, or the reset that follows would not stop it and the
	 * backend would go on using rings the driver frees. */
	CHECK_EQ(fake_connect(&f, FAKE_REFUSE_AT, VHOST_USER_SET_VRING_ENABLE, &fe, err, sizeof(err)),
		 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0(t), -EIO);
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), "SET_VRING_ENABLE"));
	CHECK(!fake_ring0_running(&f));
	CHECK_EQ(t->ops->reset(t), 0);
	CHECK(!fake_ring0_running(&f));
	CHECK(uvirtio_vhost_frontend_connected(fe));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

static void test_frontend_call_fd_is_handed_over_before_the_kick_that_starts_the_ring(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	uint32_t base = 0;
	char err[160] = "";

	/* vhost-user.rst: a ring starts when its kick fd is set. A backend
	 * that serves buffers at once (libvhost-user kicks itself then)
	 * must already have the call fd, or the completions go unsignalled
	 * (the fake, like libvhost-user and DPDK, drops it at GET_VRING_BASE). */
	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	CHECK_EQ(start_ring0(uvirtio_vhost_frontend_transport(fe)), 0);
	CHECK(fake_ring0_running(&f));
	CHECK(!__atomic_load_n(&f.kick_before_call, __ATOMIC_ACQUIRE));
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK(!fake_ring0_running(&f));
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	CHECK(fake_ring0_running(&f));
	CHECK(!__atomic_load_n(&f.kick_before_call, __ATOMIC_ACQUIRE));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

/* A queue thread that reads the status over and over, as a driver looking
 * for DEVICE_NEEDS_RESET does. */
struct status_reader {
	struct uvirtio_transport *t;
	pthread_t thread;
	unsigned long reads; /* atomic */
	bool stop;           /* atomic */
	bool saw_needs_reset; /* atomic */
};

static void *status_reader_thread(void *arg)
{
	struct status_reader *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint8_t status;

		if (r->t->ops->get_status(r->t, &status) == 0 &&
		    (status & VIRTIO_CONFIG_S_NEEDS_RESET))
			__atomic_store_n(&r->saw_needs_reset, true, __ATOMIC_RELEASE);
		__atomic_add_fetch(&r->reads, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Waits for @n reads in all: a condition, not a time. */
static void wait_reads(struct status_reader *r, unsigned long n)
{
	while (__atomic_load_n(&r->reads, __ATOMIC_ACQUIRE) < n)
		sched_yield();
}

static void test_frontend_queue_thread_status_reads_keep_the_give_up_reason(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct status_reader r = { 0 };
	uint32_t base;
	unsigned long before;
	char err[160] = "";

	/* GET_VRING_BASE answered for another ring: the lifecycle thread gives
	 * the connection up while a queue thread asks for the status. Under
	 * TSan this finds a give-up outside the request lock (the socket and
	 * the error line written while the queue thread uses them); anywhere,
	 * the queue thread's failing reads must not replace the reason. */
	CHECK_EQ(fake_connect(&f, FAKE_BAD_BASE, 0, &fe, err, sizeof(err)), 0);
	r.t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0(r.t), 0);
	CHECK_EQ(pthread_create(&r.thread, NULL, status_reader_thread, &r), 0);
	wait_reads(&r, 10);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), -EPROTO);
	before = __atomic_load_n(&r.reads, __ATOMIC_ACQUIRE);
	wait_reads(&r, before + 10);
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_join(r.thread, NULL);
	CHECK(__atomic_load_n(&r.saw_needs_reset, __ATOMIC_ACQUIRE));
	CHECK(!uvirtio_vhost_frontend_connected(fe));
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), "GET_VRING_BASE: reply for ring 1"));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

static void test_frontend_given_up_connection_reads_needs_reset_without_status_feature(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint8_t wce = 1, status;
	char err[160] = "";

	/* Without STATUS the status is the front-end's own copy: a given-up
	 * connection must show in it at once, not once the watcher thread
	 * has run. */
	CHECK_EQ(fake_connect_offering(&f, FAKE_SILENT_AT, VHOST_USER_SET_CONFIG,
				       PF(REPLY_ACK) | PF(CONFIG), &fe, err, sizeof(err)),
		 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_config(t, 0, &wce, 1), -ETIMEDOUT);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_NEEDS_RESET);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

static void test_frontend_unasked_message_from_backend_is_eproto(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint8_t wce = 1;
	char err[160] = "";

	/* A second ack nobody asked for would be taken as the answer to the
	 * next SET_CONFIG, and every reply after it would be one late. */
	CHECK_EQ(fake_connect(&f, FAKE_EXTRA_ACK_AT, VHOST_USER_SET_CONFIG, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_config(t, 0, &wce, 1), 0);
	CHECK_EQ(t->ops->set_config(t, 0, &wce, 1), -EPROTO);
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), "nobody asked for"));
	CHECK(!uvirtio_vhost_frontend_connected(fe));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

static void test_frontend_connect_closes_the_given_fd_on_every_error_path(void)
{
	struct uvirtio_vhost_frontend *fe;
	int sv[2];
	struct uvirtio_vhost_frontend_config both = { .socket_path = "/nonexistent/sock" };
	struct uvirtio_vhost_frontend_config qsize = { .max_queue_size = 100 };
	struct uvirtio_vhost_frontend_config mem = { .mem_size = SIZE_MAX - 4095 };

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	both.fd = sv[0];
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &both), -EINVAL);
	close(sv[1]);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	qsize.fd = sv[0];
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &qsize), -EINVAL);
	close(sv[1]);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	mem.fd = sv[0];
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &mem), -EINVAL);
	close(sv[1]);
}

TEST_MAIN(T(test_frontend_blk_io_verified_in_the_backend_image),
	  T(test_frontend_reset_and_renegotiate_with_fewer_features),
	  T(test_frontend_two_queues_each_carry_verified_io),
	  T(test_frontend_stopped_ring_reports_next_avail_and_resumes_there),
	  T(test_frontend_older_protocol_paths_mem_table_no_ack_no_status),
	  T(test_frontend_without_config_feature_blk_probe_fails),
	  T(test_frontend_backend_gone_fails_waiting_request),
	  T(test_frontend_guest_memory_in_huge_pages),
	  T(test_frontend_connect_refuses_bad_config),
	  T(test_frontend_backend_closing_during_set_up_is_enotconn),
	  T(test_frontend_short_reply_is_eproto), T(test_frontend_oversized_reply_is_eproto),
	  T(test_frontend_reply_to_another_request_is_eproto),
	  T(test_frontend_silent_backend_times_out),
	  T(test_frontend_backend_without_version_1_is_enodev),
	  T(test_frontend_refused_request_is_eio_and_keeps_the_connection),
	  T(test_frontend_unanswered_request_gives_up_the_connection),
	  T(test_frontend_bad_used_ring_breaks_the_queue_not_the_process),
	  T(test_frontend_failed_ring_handover_leaves_no_ring_running),
	  T(test_frontend_call_fd_is_handed_over_before_the_kick_that_starts_the_ring),
	  T(test_frontend_queue_thread_status_reads_keep_the_give_up_reason),
	  T(test_frontend_given_up_connection_reads_needs_reset_without_status_feature),
	  T(test_frontend_unasked_message_from_backend_is_eproto),
	  T(test_frontend_connect_closes_the_given_fd_on_every_error_path))
