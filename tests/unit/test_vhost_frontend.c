// SPDX-License-Identifier: MIT
/* The vhost-user front-end: the blk driver over it against uvirtio's own
 * backend (verified data, reset and renegotiation, several queues, a ring
 * stopped and restarted, the older protocol paths), and against scripted
 * backends that break the protocol, go away or write a bad used ring. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "harness.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/vhost_backend.h"
#include "uvirtio/vhost_frontend.h"
#include "../support/transport_internal.h"

#define PF(f) (1ull << VHOST_USER_PROTOCOL_F_##f)
#define IMG_SECTORS 8192u /* 4 MiB */

/* ------------------------------------------------------------------ */
/* uvirtio's own backend, serving a file image on a socket, in a thread. */

struct server {
	char dir[64], path[96], img[96];
	struct uvirtio_vhost_backend *vb;
	struct uvirtio_blk_dev blk;
	pthread_t thread;
	bool shares_img; /* another server's image: not removed at stop */
};

static void *server_thread(void *arg)
{
	struct server *s = arg;

	uvirtio_vhost_backend_run(s->vb);
	return NULL;
}

/* @img: an image to share with another server (a move's target); NULL:
 * a new one. */
static int server_start_on(struct server *s, unsigned queues, const char *img)
{
	struct uvirtio_blk_dev_config bc = { .backend = UVIRTIO_BLK_BACKEND_FILE,
					     .num_queues = queues };
	struct uvirtio_vhost_backend_config vc = { .fd = -1 };
	int fd;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/uvirtio-fe-XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
	s->shares_img = img != NULL;
	if (img)
		snprintf(s->img, sizeof(s->img), "%s", img);
	else
		snprintf(s->img, sizeof(s->img), "%s/img", s->dir);
	fd = open(s->img, O_CREAT | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)IMG_SECTORS * 512) < 0)
		return -errno;
	close(fd);
	bc.path = s->img;
	vc.socket_path = s->path;
	if (uvirtio_vhost_backend_create(&s->vb, &vc))
		return -1;
	if (uvirtio_blk_dev_init(&s->blk, &bc, uvirtio_vhost_backend_mem(s->vb)) ||
	    uvirtio_vhost_backend_attach(s->vb, uvirtio_blk_dev_device(&s->blk)) || uvirtio_vhost_backend_listen(s->vb))
		return -1;
	return pthread_create(&s->thread, NULL, server_thread, s) ? -1 : 0;
}

static int server_start(struct server *s, unsigned queues)
{
	return server_start_on(s, queues, NULL);
}

static void server_stop(struct server *s)
{
	if (!s->vb)
		return;
	uvirtio_vhost_backend_stop(s->vb);
	pthread_join(s->thread, NULL);
	uvirtio_vhost_backend_destroy(s->vb);
	uvirtio_blk_dev_destroy(&s->blk);
	s->vb = NULL;
	if (!s->shares_img)
		unlink(s->img);
	unlink(s->path);
	rmdir(s->dir);
}

static int fe_connect(struct uvirtio_vhost_frontend **fe, const char *path, uint64_t disable)
{
	char err[160] = "";
	struct uvirtio_vhost_frontend_config cfg = {
		.socket_path = path, .fd = -1, .mem_size = 16u << 20,
		.disable_protocol_features = disable, .error = err, .error_size = sizeof(err),
	};
	int ret = uvirtio_vhost_frontend_connect(fe, &cfg);

	if (ret)
		printf("# connect: %s\n", err);
	return ret;
}

static void fill(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 31 + seed * 7 + (i >> 9));
}

static bool same_as_pattern(const unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(i * 31 + seed * 7 + (i >> 9)))
			return false;
	return true;
}

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

static bool image_has_pattern(const char *img, uint64_t sector, size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);
	int fd = open(img, O_RDONLY);
	bool ok = buf && fd >= 0 && pread(fd, buf, len, (off_t)sector * 512) == (ssize_t)len &&
		  same_as_pattern(buf, len, seed);

	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
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
			 PF(STATUS));
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
	CHECK_EQ(uvirtio_vhost_frontend_protocol_features(fe, NULL), PF(CONFIG));
	CHECK_EQ(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), NULL), 0);
	CHECK_EQ(write_verify(&b, 0, 32, 16384, 8), 0);
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

/* ------------------------------------------------------------------ */
/* Scripted backends on a socketpair: well-behaved until told otherwise. */

enum fake_mode {
	FAKE_HONEST,
	FAKE_CLOSE_AT,      /* close when @at arrives */
	FAKE_SHORT_REPLY,   /* reply to @at with 4 bytes */
	FAKE_HUGE_REPLY,    /* reply to @at with a 5000-byte payload */
	FAKE_OTHER_REQUEST, /* reply to @at as if to another request */
	FAKE_SILENT_AT,     /* never answer @at */
	FAKE_NO_VERSION_1,  /* features without VERSION_1 */
	FAKE_BAD_USED,      /* on the first kick, a used entry with id 77 */
	FAKE_REFUSE_AT,     /* ack @at with 1, a failure */
	FAKE_BAD_BASE,      /* answer GET_VRING_BASE for another ring */
	FAKE_EXTRA_ACK_AT,  /* ack @at twice, in one write */
};

struct fake {
	int sock;
	enum fake_mode mode;
	uint32_t at;
	pthread_t thread;
	void *map;
	size_t map_size;
	uint64_t map_uva;
	uint64_t used_uva;
	int kick_fd, call_fd;
	uint64_t status;
	/* Protocol features offered; 0: REPLY_ACK, CONFIG and STATUS. */
	uint64_t offer;
	uint64_t extra_features; /* offered besides VERSION_1, FLUSH and bit 30 */
	uint64_t features;       /* what SET_FEATURES carried */
	/* Atomic: ring 0 was started (SET_VRING_KICK) and not stopped since
	 * (GET_VRING_BASE), i.e. this backend would be using it. */
	bool ring0_running;
	/* Atomic: a SET_VRING_KICK for ring 0 came while the fake held no
	 * call fd for it (completions it made then would go unsignalled). */
	bool kick_before_call;
	/* Atomic: the last SET_VRING_BASE for ring 0, and how many came. */
	uint32_t ring0_base;
	unsigned ring0_bases;
	/* The answer to GET_VRING_BASE for ring 0; 0: what was asked. */
	uint32_t ring0_base_answer;
};

static void fake_reply(struct fake *f, uint32_t req, const void *p, uint32_t size)
{
	struct uvirtio_vhost_msg r = { .hdr = { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, size } };

	memcpy(r.payload.raw, p, size);
	uvirtio_vhost_msg_send(f->sock, &r, -1);
}

/* Two acks for @req in one write, so both are in the front-end's socket
 * before it reads the first. */
static void fake_double_ack(struct fake *f, uint32_t req)
{
	struct {
		struct vhost_user_hdr h;
		uint64_t v;
	} __attribute__((packed)) two[2] = {
		{ { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 8 }, 0 },
		{ { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 8 }, 0 },
	};

	(void)!send(f->sock, two, sizeof(two), MSG_NOSIGNAL);
}

static void fake_bad_used(struct fake *f)
{
	struct vring_used *used;

	if (!f->map || f->used_uva < f->map_uva ||
	    f->used_uva - f->map_uva + sizeof(*used) + sizeof(used->ring[0]) > f->map_size)
		return;
	eventfd_drain(f->kick_fd);
	used = (struct vring_used *)((char *)f->map + (f->used_uva - f->map_uva));
	used->ring[0].id = 77;
	used->ring[0].len = 1;
	__atomic_store_n(&used->idx, 1, __ATOMIC_RELEASE);
	eventfd_signal(f->call_fd);
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	struct uvirtio_vhost_msg m;

	for (;;) {
		struct pollfd p[2] = { { .fd = f->sock, .events = POLLIN },
				       { .fd = f->kick_fd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0)
			break;
		if (f->mode == FAKE_BAD_USED && (p[1].revents & POLLIN)) {
			fake_bad_used(f);
			continue;
		}
		if (uvirtio_vhost_msg_recv(f->sock, &m, -1))
			break;
		uint32_t req = m.hdr.request;
		uint64_t v = 0;
		bool ack = m.hdr.flags & VHOST_USER_NEED_REPLY_MASK;

		if (f->at == req && f->mode == FAKE_CLOSE_AT) {
			uvirtio_vhost_msg_close_fds(&m);
			break;
		}
		if (f->at == req && f->mode == FAKE_SILENT_AT) {
			uvirtio_vhost_msg_close_fds(&m);
			continue;
		}
		if (f->at == req && f->mode == FAKE_SHORT_REPLY) {
			fake_reply(f, req, &v, 4);
			continue;
		}
		if (f->at == req && f->mode == FAKE_HUGE_REPLY) {
			static char big[VHOST_USER_HDR_SIZE + 5000];
			struct vhost_user_hdr h = { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 5000 };

			memcpy(big, &h, sizeof(h));
			(void)!send(f->sock, big, sizeof(big), MSG_NOSIGNAL);
			continue;
		}
		if (f->at == req && f->mode == FAKE_OTHER_REQUEST) {
			fake_reply(f, VHOST_USER_GET_QUEUE_NUM, &v, 8);
			continue;
		}
		switch (req) {
		case VHOST_USER_GET_FEATURES:
			v = (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
			    f->extra_features;
			if (f->mode != FAKE_NO_VERSION_1)
				v |= UVIRTIO_BIT(VIRTIO_F_VERSION_1);
			fake_reply(f, req, &v, 8);
			break;
		case VHOST_USER_GET_PROTOCOL_FEATURES:
			v = f->offer ? f->offer : PF(REPLY_ACK) | PF(CONFIG) | PF(STATUS);
			fake_reply(f, req, &v, 8);
			break;
		case VHOST_USER_GET_STATUS:
			fake_reply(f, req, &f->status, 8);
			break;
		case VHOST_USER_GET_CONFIG: {
			struct vhost_user_config c = m.payload.config;
			struct virtio_blk_config bc = { .capacity = 2048 };

			memset(c.payload, 0, sizeof(c.payload));
			memcpy(c.payload, &bc, c.size < sizeof(bc) ? c.size : sizeof(bc));
			fake_reply(f, req, &c, m.hdr.size);
			break;
		}
		case VHOST_USER_GET_VRING_BASE:
			if (m.payload.state.index == 0) {
				__atomic_store_n(&f->ring0_running, false, __ATOMIC_RELEASE);
				/* As libvhost-user and DPDK do: a stopped ring
				 * signals nothing, its call fd is dropped. */
				if (f->call_fd >= 0)
					close(f->call_fd);
				f->call_fd = -1;
			}
			if (m.payload.state.index == 0 &&
			    __atomic_load_n(&f->ring0_base_answer, __ATOMIC_ACQUIRE))
				m.payload.state.num =
					__atomic_load_n(&f->ring0_base_answer, __ATOMIC_ACQUIRE);
			if (f->mode == FAKE_BAD_BASE)
				m.payload.state.index++;
			fake_reply(f, req, &m.payload.state, sizeof(m.payload.state));
			break;
		case VHOST_USER_SET_MEM_TABLE: {
			struct vhost_user_mem_region *r = &m.payload.mem_table.regions[0];

			f->map_size = r->memory_size;
			f->map_uva = r->userspace_addr;
			f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fds[0], 0);
			if (f->map == MAP_FAILED)
				f->map = NULL;
			uvirtio_vhost_msg_close_fds(&m);
			break;
		}
		case VHOST_USER_SET_VRING_ADDR:
			f->used_uva = m.payload.addr.used_user_addr;
			break;
		case VHOST_USER_SET_VRING_BASE:
			if (m.payload.state.index == 0) {
				__atomic_store_n(&f->ring0_base, m.payload.state.num, __ATOMIC_RELEASE);
				__atomic_add_fetch(&f->ring0_bases, 1, __ATOMIC_RELEASE);
			}
			break;
		case VHOST_USER_SET_VRING_KICK:
			if (f->kick_fd >= 0)
				close(f->kick_fd);
			f->kick_fd = m.nfds ? m.fds[0] : -1;
			m.nfds = 0;
			if ((m.payload.u64 & VHOST_USER_VRING_IDX_MASK) == 0) {
				if (f->call_fd < 0)
					__atomic_store_n(&f->kick_before_call, true, __ATOMIC_RELEASE);
				__atomic_store_n(&f->ring0_running, true, __ATOMIC_RELEASE);
			}
			break;
		case VHOST_USER_SET_VRING_CALL:
			if (f->call_fd >= 0)
				close(f->call_fd);
			f->call_fd = m.nfds ? m.fds[0] : -1;
			m.nfds = 0;
			break;
		case VHOST_USER_SET_STATUS:
			__atomic_store_n(&f->status, m.payload.u64, __ATOMIC_RELEASE);
			break;
		case VHOST_USER_SET_FEATURES:
			__atomic_store_n(&f->features, m.payload.u64, __ATOMIC_RELEASE);
			break;
		default:
			uvirtio_vhost_msg_close_fds(&m);
		}
		if (ack && f->at == req && f->mode == FAKE_EXTRA_ACK_AT) {
			fake_double_ack(f, req);
		} else if (ack && !uvirtio_vhost_msg_has_reply(req)) {
			v = f->at == req && f->mode == FAKE_REFUSE_AT;
			fake_reply(f, req, &v, 8);
		}
	}
	close(f->sock);
	f->sock = -1;
	return NULL;
}

/* Starts a scripted backend and connects a front-end to it. */
static int fake_connect_offering(struct fake *f, enum fake_mode mode, uint32_t at, uint64_t offer,
				 struct uvirtio_vhost_frontend **fe, char *err, size_t err_size)
{
	int sv[2];
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 4u << 20,
						     .reply_timeout_ms = 200, .error = err,
						     .error_size = err_size };

	*f = (struct fake){ .mode = mode, .at = at, .kick_fd = -1, .call_fd = -1, .offer = offer };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	f->sock = sv[1];
	if (pthread_create(&f->thread, NULL, fake_thread, f))
		return -EAGAIN;
	cfg.fd = sv[0];
	return uvirtio_vhost_frontend_connect(fe, &cfg);
}

static int fake_connect(struct fake *f, enum fake_mode mode, uint32_t at,
			struct uvirtio_vhost_frontend **fe, char *err, size_t err_size)
{
	return fake_connect_offering(f, mode, at, 0, fe, err, err_size);
}

static void fake_finish(struct fake *f)
{
	/* The front-end is gone (or never was): the fake's recv ends. */
	pthread_join(f->thread, NULL);
	if (f->map)
		munmap(f->map, f->map_size);
	if (f->kick_fd >= 0)
		close(f->kick_fd);
	if (f->call_fd >= 0)
		close(f->call_fd);
}

static void test_frontend_backend_closing_during_set_up_is_enotconn(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_CLOSE_AT, VHOST_USER_GET_PROTOCOL_FEATURES, &fe, err,
			      sizeof(err)),
		 -ENOTCONN);
	CHECK(strstr(err, "GET_PROTOCOL_FEATURES"));
	fake_finish(&f);
}

static void test_frontend_short_reply_is_eproto(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_SHORT_REPLY, VHOST_USER_GET_FEATURES, &fe, err, sizeof(err)),
		 -EPROTO);
	CHECK(strstr(err, "reply of 4 bytes, expected 8"));
	fake_finish(&f);
}

static void test_frontend_oversized_reply_is_eproto(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_HUGE_REPLY, VHOST_USER_GET_PROTOCOL_FEATURES, &fe, err,
			      sizeof(err)),
		 -EPROTO);
	CHECK(strstr(err, "malformed reply"));
	fake_finish(&f);
}

static void test_frontend_reply_to_another_request_is_eproto(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_OTHER_REQUEST, VHOST_USER_GET_FEATURES, &fe, err, sizeof(err)),
		 -EPROTO);
	CHECK(strstr(err, "GET_QUEUE_NUM"));
	fake_finish(&f);
}

static void test_frontend_silent_backend_times_out(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";

	/* REPLY_ACK is in use by then, so even SET_OWNER awaits an answer. */
	CHECK_EQ(fake_connect(&f, FAKE_SILENT_AT, VHOST_USER_SET_OWNER, &fe, err, sizeof(err)),
		 -ETIMEDOUT);
	CHECK(strstr(err, "SET_OWNER"));
	fake_finish(&f);
}

static void test_frontend_backend_without_version_1_is_enodev(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_NO_VERSION_1, 0, &fe, err, sizeof(err)), -ENODEV);
	CHECK(strstr(err, "VERSION_1"));
	fake_finish(&f);
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

/* Where guest memory starts, as the device sees it. */
static uint64_t guest_base(struct uvirtio_transport *t)
{
	uint64_t base;

	uvirtio_dma_guest_range(t->ops->dma(t), &base, NULL);
	return base;
}

/* Takes the transport through a driver's start with one ring of 8 (a
 * layout inside guest memory; the fakes do not read it) to DRIVER_OK. */
static int start_ring0(struct uvirtio_transport *t)
{
	const struct uvirtio_transport_ops *o = t->ops;
	uint64_t base = guest_base(t);
	struct uvirtio_queue_layout l = { .num = 8, .desc = base, .avail = base + 4096,
					  .used = base + 8192 };
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	int ret = o->reset(t);

	if (!ret)
		ret = o->set_status(t, s);
	if (!ret)
		ret = o->set_features(t, UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	if (!ret)
		ret = o->set_status(t, s |= VIRTIO_CONFIG_S_FEATURES_OK);
	if (!ret)
		ret = o->queue_enable(t, 0, &l);
	if (!ret)
		ret = o->set_status(t, s | VIRTIO_CONFIG_S_DRIVER_OK);
	return ret;
}

static bool fake_ring0_running(struct fake *f)
{
	return __atomic_load_n(&f->ring0_running, __ATOMIC_ACQUIRE);
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

/* ------------------------------------------------------------------ */
/* Queue reset, suspend/resume and moving to another backend. The blk
 * driver negotiates neither RING_RESET nor SUSPEND (UVIRTIO_BLK_DRV_FEATURES
 * leaves them out), so these tests drive virtio-blk through the driver
 * core with requests of their own: a header, 4 KiB of data and a status
 * byte, in the front-end's shared memory. */

#define RQ_BYTES 4096u
#define RAW_FEATURES                                                                   \
	(UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND) |               \
	 UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |        \
	 UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC))

struct rq {
	struct virtio_blk_outhdr hdr;
	uint8_t status;
	uint8_t data[RQ_BYTES];
	/* Not seen by the device. */
	bool done, released;
	uint32_t len;
	unsigned queue; /* where it was last submitted */
};

struct raw {
	struct uvirtio_driver drv;
	struct uvirtio_dma *dma;
	struct rq *rqs;
	unsigned n;
};

/* As raw_probe(), asking for @extra features too (e.g. RING_PACKED). */
static int raw_probe_with(struct raw *r, struct uvirtio_transport *t, unsigned queues,
			  unsigned qsize, unsigned nrq, uint64_t extra)
{
	unsigned sizes[2] = { qsize, qsize };
	int ret;

	memset(r, 0, sizeof(*r));
	r->dma = t->ops->dma(t);
	ret = uvirtio_driver_probe(&r->drv, t, RAW_FEATURES | UVIRTIO_BIT(VIRTIO_BLK_F_MQ) | extra);
	if (!ret)
		ret = uvirtio_driver_find_vqs(&r->drv, queues, sizes);
	if (!ret)
		ret = uvirtio_driver_ready(&r->drv);
	if (ret)
		return ret;
	r->rqs = uvirtio_dma_alloc(r->dma, nrq * sizeof(*r->rqs), 64);
	if (!r->rqs)
		return -ENOMEM;
	memset(r->rqs, 0, nrq * sizeof(*r->rqs));
	r->n = nrq;
	return 0;
}

static int raw_probe(struct raw *r, struct uvirtio_transport *t, unsigned queues,
		     unsigned qsize, unsigned nrq)
{
	return raw_probe_with(r, t, queues, qsize, nrq, 0);
}

static void raw_release(void *token, void *opaque)
{
	(void)opaque;
	((struct rq *)token)->released = true;
}

static void raw_remove(struct raw *r)
{
	uvirtio_driver_remove(&r->drv, raw_release, NULL);
	uvirtio_dma_free(r->dma, r->rqs);
}

/* Request @i: a write of pattern @seed at @sector (4 KiB), or a read. */
static int raw_submit(struct raw *r, unsigned q, unsigned i, bool write, uint64_t sector,
		      unsigned seed)
{
	struct rq *x = &r->rqs[i];
	struct iovec out[2] = { { &x->hdr, sizeof(x->hdr) }, { x->data, RQ_BYTES } };
	struct iovec in[2] = { { x->data, RQ_BYTES }, { &x->status, 1 } };
	int ret;

	x->queue = q;

	x->hdr = (struct virtio_blk_outhdr){ .type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					     .sector = sector };
	x->status = 0xff;
	x->done = x->released = false;
	if (write)
		fill(x->data, RQ_BYTES, seed);
	else
		memset(x->data, 0, RQ_BYTES);
	ret = write ? uvirtio_drvq_add(uvirtio_driver_vq(&r->drv, q), out, 2, in + 1, 1, x)
		    : uvirtio_drvq_add(uvirtio_driver_vq(&r->drv, q), out, 1, in, 2, x);
	return ret ? ret : uvirtio_drvq_kick(uvirtio_driver_vq(&r->drv, q));
}

/* Collects what queue @q has used; returns how many, or -EIO. */
static int raw_collect(struct raw *r, unsigned q)
{
	void *token;
	uint32_t len;
	int n = 0, ret;

	while ((ret = uvirtio_drvq_get(uvirtio_driver_vq(&r->drv, q), &token, &len)) == 1) {
		((struct rq *)token)->done = true;
		((struct rq *)token)->len = len;
		n++;
	}
	return ret < 0 ? ret : n;
}

/* Waits until those of requests [@from, @to) on queue @q are done (or
 * released); the others complete on their own queues. */
static int raw_wait(struct raw *r, unsigned q, unsigned from, unsigned to)
{
	for (;;) {
		unsigned pending = 0;
		int ret = raw_collect(r, q);

		if (ret < 0)
			return ret;
		for (unsigned i = from; i < to; i++)
			pending += r->rqs[i].queue == q && !r->rqs[i].done && !r->rqs[i].released;
		if (!pending)
			return 0;
		ret = uvirtio_driver_wait(&r->drv, q, 10000);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

/* Synchronous 4 KiB write and read-back of pattern @seed through @q. */
static int raw_write_verify(struct raw *r, unsigned q, unsigned slot, uint64_t sector, unsigned seed)
{
	int ret = raw_submit(r, q, slot, true, sector, seed);

	if (!ret)
		ret = raw_wait(r, q, slot, slot + 1);
	if (!ret && r->rqs[slot].status != VIRTIO_BLK_S_OK)
		ret = -EIO;
	if (!ret)
		ret = raw_submit(r, q, slot, false, sector, 0);
	if (!ret)
		ret = raw_wait(r, q, slot, slot + 1);
	if (!ret && (r->rqs[slot].status != VIRTIO_BLK_S_OK ||
		     !same_as_pattern(r->rqs[slot].data, RQ_BYTES, seed)))
		ret = -EILSEQ;
	return ret;
}

static int raw_read_verify(struct raw *r, unsigned q, unsigned slot, uint64_t sector, unsigned seed)
{
	int ret = raw_submit(r, q, slot, false, sector, 0);

	if (!ret)
		ret = raw_wait(r, q, slot, slot + 1);
	if (!ret && (r->rqs[slot].status != VIRTIO_BLK_S_OK ||
		     !same_as_pattern(r->rqs[slot].data, RQ_BYTES, seed)))
		ret = -EILSEQ;
	return ret;
}

static uint64_t blk_writes(struct server *s)
{
	struct uvirtio_blk_dev_stats st;

	uvirtio_blk_dev_get_stats(&s->blk, &st);
	return st.writes;
}

static void test_frontend_offers_ring_reset_and_suspend_it_implements(void)
{
	struct fake f;
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint64_t features = 0;
	char err[160] = "";

	/* A backend that offers neither (uvirtio blk does not, QEMU 7.2
	 * carrying neither to it; the fake does not): the front-end offers
	 * both, as it implements them itself. */
	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	CHECK(!(uvirtio_vhost_frontend_backend_features(fe) &
		(UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND))));
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->get_features(t, &features), 0);
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_RING_RESET));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_SUSPEND));
	CHECK(t->ops->queue_reset != NULL);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->get_features(t, &features), 0);
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_RING_RESET));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_SUSPEND));
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_does_not_pass_ring_reset_to_backend_that_did_not_offer_it(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint64_t both = UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND);
	uint64_t want = UVIRTIO_BIT(VIRTIO_F_VERSION_1) | both;
	char err[160] = "";

	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_features(t, want), 0);
	CHECK_EQ(__atomic_load_n(&f.features, __ATOMIC_ACQUIRE),
		 UVIRTIO_BIT(VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	/* One that offers them gets them: they are its features too. */
	{
		int sv[2];
		struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 4u << 20,
							     .reply_timeout_ms = 200 };

		f = (struct fake){ .mode = FAKE_HONEST, .kick_fd = -1, .call_fd = -1,
				   .extra_features = both };
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		f.sock = sv[1];
		CHECK_EQ(pthread_create(&f.thread, NULL, fake_thread, &f), 0);
		cfg.fd = sv[0];
		CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &cfg), 0);
	}
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(t->ops->set_features(t, want), 0);
	CHECK_EQ(__atomic_load_n(&f.features, __ATOMIC_ACQUIRE),
		 want | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

/* start_ring0 with RING_RESET and SUSPEND negotiated. */
static int start_ring0_lifecycle(struct uvirtio_transport *t)
{
	const struct uvirtio_transport_ops *o = t->ops;
	uint64_t base = guest_base(t);
	struct uvirtio_queue_layout l = { .num = 8, .desc = base, .avail = base + 4096,
					  .used = base + 8192 };
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	int ret = o->reset(t);

	if (!ret)
		ret = o->set_status(t, s);
	if (!ret)
		ret = o->set_features(t, UVIRTIO_BIT(VIRTIO_F_VERSION_1) |
					      UVIRTIO_BIT(VIRTIO_F_RING_RESET) |
					      UVIRTIO_BIT(VIRTIO_F_SUSPEND));
	if (!ret)
		ret = o->set_status(t, s |= VIRTIO_CONFIG_S_FEATURES_OK);
	if (!ret)
		ret = o->queue_enable(t, 0, &l);
	if (!ret)
		ret = o->set_status(t, s | VIRTIO_CONFIG_S_DRIVER_OK);
	return ret;
}

static void test_frontend_queue_reset_stops_ring_with_get_vring_base(void)
{
	struct fake f;
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	unsigned given_back = 0, done = 0;
	char err[160] = "";

	/* The backend sees the ring stop (GET_VRING_BASE) before queue_reset
	 * returns: after it, it uses none of the ring's buffers. */
	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0_lifecycle(t), 0);
	CHECK(fake_ring0_running(&f));
	CHECK_EQ(t->ops->queue_reset(t, 0), 0);
	CHECK(!fake_ring0_running(&f));
	CHECK_EQ(t->ops->queue_reset(t, 7), -EINVAL);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	/* Against uvirtio blk: eight writes in flight at the reset. Each is
	 * either done or given back (nothing lost); given back ones are
	 * written again on the new ring, and all eight then read back. */
	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 16, 8), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_RESET));
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 100 + i), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), 0);
	for (unsigned i = 0; i < 8; i++) {
		given_back += r.rqs[i].released;
		done += r.rqs[i].done;
	}
	/* The driver core detaches every buffer not collected, used or not. */
	CHECK_EQ(given_back, 8);
	CHECK_EQ(done, 0);
	/* Once reset, the queue takes nothing until enabled. */
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), -ENOENT);
	CHECK_EQ(uvirtio_driver_queue_enable(&r.drv, 0, 0), 0);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 100 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	for (unsigned i = 0; i < 8; i++) {
		CHECK(r.rqs[i].done);
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	}
	for (unsigned i = 0; i < 8; i++) {
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * i, 100 + i), 0);
		CHECK(image_has_pattern(s.img, 8 * i, RQ_BYTES, 100 + i));
	}
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_queue_reset_then_enable_with_new_size_hands_over_new_ring(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	int fd;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 8, 32), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 0, 0, 1), 0);
	CHECK_EQ(uvirtio_drvq_size(uvirtio_driver_vq(&r.drv, 0)), 8);
	/* Leave a signal for the old ring behind: the reset drains it. */
	fd = uvirtio_vhost_frontend_transport(fe)->ops->event_fd(uvirtio_vhost_frontend_transport(fe), 0);
	eventfd_signal(fd);
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), 0);
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };

		CHECK_EQ(poll(&p, 1, 0), 0);
	}
	/* Four times as large: 32 writes in flight at once, where 8 fitted. */
	CHECK_EQ(uvirtio_driver_queue_enable(&r.drv, 0, 32), 0);
	CHECK_EQ(uvirtio_drvq_size(uvirtio_driver_vq(&r.drv, 0)), 32);
	for (unsigned i = 0; i < 32; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * (i + 1), 200 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 32), 0);
	for (unsigned i = 0; i < 32; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 32; i++)
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * (i + 1), 200 + i), 0);
	/* And smaller again. */
	CHECK_EQ(uvirtio_driver_queue_reset(&r.drv, 0, raw_release, NULL), 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&r.drv, 0, 4), 0);
	CHECK_EQ(raw_read_verify(&r, 0, 0, 0, 1), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 1, 8, 300), 0);
	CHECK(image_has_pattern(s.img, 8, RQ_BYTES, 300));
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_suspend_stops_every_ring_and_presents_suspend(void)
{
	struct fake f;
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	uint8_t status;
	uint32_t base;
	long long taken;
	char err[160] = "";

	/* The rings stop (GET_VRING_BASE) and the backend is never told
	 * SUSPEND: it knows no such status bit. */
	CHECK_EQ(fake_connect(&f, FAKE_HONEST, 0, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0_lifecycle(t), 0);
	CHECK(fake_ring0_running(&f));
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK_EQ(t->ops->set_status(t, status | VIRTIO_CONFIG_S_SUSPEND), 0);
	CHECK(!fake_ring0_running(&f));
	CHECK(!(__atomic_load_n(&f.status, __ATOMIC_ACQUIRE) & VIRTIO_CONFIG_S_SUSPEND));
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);

	/* Against uvirtio blk, two queues with writes in flight: when the
	 * suspend is presented, every write the device took is used (the
	 * backend finished them before answering GET_VRING_BASE); those it
	 * had not taken yet are served after the resume. */
	CHECK_EQ(server_start(&s, 2), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(raw_probe(&r, t, 2, 16, 16), 0);
	CHECK_EQ(uvirtio_driver_num_vqs(&r.drv), 2);
	for (unsigned i = 0; i < 16; i++)
		CHECK_EQ(raw_submit(&r, i % 2, i, true, 8 * i, 400 + i), 0);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	taken = blk_writes(&s);
	CHECK_EQ(raw_collect(&r, 0) + raw_collect(&r, 1), taken);
	/* Both rings are stopped: there is nothing to stop again. */
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), -EINVAL);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 1, &base), -EINVAL);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), -EINVAL);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 16), 0);
	CHECK_EQ(raw_wait(&r, 1, 0, 16), 0);
	for (unsigned i = 0; i < 16; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	CHECK_EQ(blk_writes(&s), 16);
	for (unsigned i = 0; i < 16; i++)
		CHECK_EQ(raw_read_verify(&r, i % 2, i, 8 * i, 400 + i), 0);
	raw_remove(&r);

	/* spec: the driver MUST NOT set SUSPEND before DRIVER_OK; nor may it
	 * when SUSPEND was not negotiated: both refused. */
	CHECK_EQ(t->ops->set_status(t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_SUSPEND),
		 -EINVAL);
	CHECK_EQ(t->ops->reset(t), 0);
	CHECK_EQ(uvirtio_driver_probe(&r.drv, t, UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH)), 0);
	CHECK_EQ(uvirtio_driver_find_vqs(&r.drv, 1, NULL), 0);
	CHECK_EQ(uvirtio_driver_ready(&r.drv), 0);
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK_EQ(t->ops->set_status(t, status | VIRTIO_CONFIG_S_SUSPEND), -EINVAL);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), -EOPNOTSUPP);
	uvirtio_driver_remove(&r.drv, NULL, NULL);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_resume_restarts_rings_at_saved_base(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	uint32_t base = 0;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 8, 8), 0);
	/* Five requests, so the base is not where a restart from 0 would be. */
	for (unsigned i = 0; i < 5; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 500 + i), 0);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(raw_collect(&r, 0), (long long)blk_writes(&s));
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	/* Three more: each served once, and none of the first five again
	 * (a restart before the saved base would serve some twice, one after
	 * it would leave some unserved). */
	for (unsigned i = 5; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 500 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	CHECK_EQ(blk_writes(&s), 8);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base & 0xffff, 8);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * i, 500 + i), 0);
	/* Suspend and resume again, with nothing in flight. */
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 0, 64, 600), 0);
	CHECK(image_has_pattern(s.img, 64, RQ_BYTES, 600));
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

static void test_frontend_move_carries_suspended_device_to_new_backend(void)
{
	struct server a, b;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	uint8_t wce = 1;
	uint32_t base = 0;
	char err[200] = "";
	struct uvirtio_vhost_frontend_config to = { .fd = -1, .error = err,
						    .error_size = sizeof(err) };
	unsigned off = offsetof(struct virtio_blk_config, wce);
	long long taken;

	/* Two processes' worth of backend on one image (b's: a goes first). */
	CHECK_EQ(server_start(&b, 1), 0);
	CHECK_EQ(server_start_on(&a, 1, b.img), 0);
	CHECK_EQ(fe_connect(&fe, a.path, 0), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(raw_probe(&r, t, 1, 8, 8), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_BLK_F_CONFIG_WCE));
	/* A config write the new backend must see: writethrough. */
	wce = 0;
	CHECK_EQ(t->ops->set_config(t, off, &wce, 1), 0);
	for (unsigned i = 0; i < 6; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 700 + i), 0);
	to.socket_path = b.path;
	/* Only while suspended. */
	CHECK_EQ(uvirtio_vhost_frontend_move(fe, &to), -EINVAL);
	CHECK(strstr(err, "not suspended"));
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	/* What a took it finished; the rest is the new backend's. */
	CHECK_EQ(raw_collect(&r, 0), (long long)blk_writes(&a));
	taken = blk_writes(&a);
	CHECK_EQ(uvirtio_vhost_frontend_move(fe, &to), 0);
	CHECK(uvirtio_vhost_frontend_connected(fe));
	/* The old process may go now: nothing of the device is left there. */
	server_stop(&a);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	wce = 1;
	CHECK_EQ(t->ops->get_config(t, off, &wce, 1), 0);
	CHECK_EQ(wce, 0);
	for (unsigned i = 6; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 700 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	/* Each write served once, by one of the two (nothing lost or
	 * repeated), and the ring went on from the old one's base. */
	CHECK_EQ(blk_writes(&b) + taken, 8);
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base & 0xffff, 8);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	for (unsigned i = 0; i < 8; i++) {
		CHECK_EQ(raw_read_verify(&r, 0, i, 8 * i, 700 + i), 0);
		CHECK(image_has_pattern(b.img, 8 * i, RQ_BYTES, 700 + i));
	}
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&b);
}

static void test_frontend_move_refuses_backend_without_negotiated_features(void)
{
	struct server s;
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	int sv[2];
	char err[200] = "";
	struct uvirtio_vhost_frontend_config to = { .fd = -1, .error = err,
						    .error_size = sizeof(err) };

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	CHECK_EQ(raw_probe(&r, uvirtio_vhost_frontend_transport(fe), 1, 8, 8), 0);
	CHECK_EQ(raw_write_verify(&r, 0, 0, 0, 800), 0);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	/* The fake offers FLUSH but not CONFIG_WCE, which was negotiated. */
	f = (struct fake){ .mode = FAKE_HONEST, .kick_fd = -1, .call_fd = -1 };
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f.sock = sv[1];
	CHECK_EQ(pthread_create(&f.thread, NULL, fake_thread, &f), 0);
	to.fd = sv[0];
	CHECK_EQ(uvirtio_vhost_frontend_move(fe, &to), -EINVAL);
	CHECK(strstr(err, "does not offer"));
	fake_finish(&f);
	/* The old backend is kept, and the device resumes on it. */
	CHECK(uvirtio_vhost_frontend_connected(fe));
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_read_verify(&r, 0, 0, 0, 800), 0);
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
}

/* The packed ring: QEMU's base encoding, both halves with wrap counters. */

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)

static void test_frontend_packed_ring_starts_at_both_wrap_counters_and_resumes_at_backend_base(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct raw r;
	char err[160] = "";

	/* A backend offering RING_PACKED (asked for at connect). */
	{
		int sv[2];
		struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 4u << 20,
							     .reply_timeout_ms = 2000, .error = err,
							     .error_size = sizeof(err) };

		f = (struct fake){ .mode = FAKE_HONEST, .kick_fd = -1, .call_fd = -1,
				   .extra_features = PACKED };
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		f.sock = sv[1];
		CHECK_EQ(pthread_create(&f.thread, NULL, fake_thread, &f), 0);
		cfg.fd = sv[0];
		CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &cfg), 0);
	}
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(raw_probe_with(&r, t, 1, 8, 8, PACKED), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_PACKED));
	CHECK(__atomic_load_n(&f.features, __ATOMIC_ACQUIRE) & PACKED);
	/* A fresh packed ring: avail 0 and used 0, each with wrap counter 1. */
	CHECK_EQ(__atomic_load_n(&f.ring0_bases, __ATOMIC_ACQUIRE), 1);
	CHECK_EQ(__atomic_load_n(&f.ring0_base, __ATOMIC_ACQUIRE), 0x80008000u);
	/* Suspended where the backend says (avail 5 wrap 0, used 3 wrap 1),
	 * resumed there: both halves handed back as they came. */
	__atomic_store_n(&f.ring0_base_answer, 0x80030005u, __ATOMIC_RELEASE);
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(__atomic_load_n(&f.ring0_bases, __ATOMIC_ACQUIRE), 2);
	CHECK_EQ(__atomic_load_n(&f.ring0_base, __ATOMIC_ACQUIRE), 0x80030005u);
	raw_remove(&r);
	/* A split ring starts at 0. */
	CHECK_EQ(t->ops->reset(t), 0);
	CHECK_EQ(raw_probe(&r, t, 1, 8, 8), 0);
	CHECK(!uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_PACKED));
	CHECK_EQ(__atomic_load_n(&f.ring0_bases, __ATOMIC_ACQUIRE), 3);
	CHECK_EQ(__atomic_load_n(&f.ring0_base, __ATOMIC_ACQUIRE), 0);
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
}

/* The driver's position of queue 0 as a packed backend reports it. */
static uint32_t driver_base(struct raw *r)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&r->drv, 0);

	return uvirtio_drvq_avail_index(q) | (uint32_t)uvirtio_drvq_used_index(q) << 16;
}

static void test_frontend_packed_ring_suspend_resume_carries_wrap_counters_and_io_goes_on(void)
{
	struct server s;
	struct uvirtio_vhost_frontend *fe;
	struct raw r;
	uint32_t base = 0;

	CHECK_EQ(server_start(&s, 1), 0);
	CHECK_EQ(fe_connect(&fe, s.path, 0), 0);
	/* A ring of 5 (not a power of 2); each request one descriptor
	 * (indirect), so 12 requests wrap it twice. */
	CHECK_EQ(raw_probe_with(&r, uvirtio_vhost_frontend_transport(fe), 1, 5, 16, PACKED), 0);
	CHECK(uvirtio_driver_has_feature(&r.drv, VIRTIO_F_RING_PACKED));
	for (unsigned i = 0; i < 5; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 800 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 5), 0);
	for (unsigned i = 5; i < 8; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 800 + i), 0);
	/* Suspended past the first wrap (wrap counters 0), resumed at the
	 * backend's base: what was not taken is served after. */
	CHECK_EQ(uvirtio_driver_suspend(&r.drv, 10000), 0);
	CHECK_EQ(uvirtio_driver_resume(&r.drv, 10000), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 8), 0);
	CHECK_EQ(driver_base(&r), 0x00030003u);
	for (unsigned i = 8; i < 12; i++)
		CHECK_EQ(raw_submit(&r, 0, i, true, 8 * i, 800 + i), 0);
	CHECK_EQ(raw_wait(&r, 0, 0, 12), 0);
	for (unsigned i = 0; i < 12; i++)
		CHECK_EQ(r.rqs[i].status, VIRTIO_BLK_S_OK);
	CHECK_EQ(blk_writes(&s), 12);
	/* Position 2, wrap counters back to 1; the backend agrees. */
	CHECK_EQ(uvirtio_vhost_frontend_stop_ring(fe, 0, &base), 0);
	CHECK_EQ(base, 0x80028002u);
	CHECK_EQ(driver_base(&r), base);
	CHECK_EQ(uvirtio_vhost_frontend_restart_ring(fe, 0, base), 0);
	for (unsigned i = 0; i < 12; i++)
		CHECK_EQ(raw_read_verify(&r, 0, i % 5, 8 * i, 800 + i), 0);
	raw_remove(&r);
	uvirtio_vhost_frontend_destroy(fe);
	server_stop(&s);
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
	  T(test_frontend_connect_closes_the_given_fd_on_every_error_path),
	  T(test_frontend_offers_ring_reset_and_suspend_it_implements),
	  T(test_frontend_does_not_pass_ring_reset_to_backend_that_did_not_offer_it),
	  T(test_frontend_queue_reset_stops_ring_with_get_vring_base),
	  T(test_frontend_queue_reset_then_enable_with_new_size_hands_over_new_ring),
	  T(test_frontend_suspend_stops_every_ring_and_presents_suspend),
	  T(test_frontend_resume_restarts_rings_at_saved_base),
	  T(test_frontend_move_carries_suspended_device_to_new_backend),
	  T(test_frontend_move_refuses_backend_without_negotiated_features),
	  T(test_frontend_packed_ring_starts_at_both_wrap_counters_and_resumes_at_backend_base),
	  T(test_frontend_packed_ring_suspend_resume_carries_wrap_counters_and_io_goes_on))
