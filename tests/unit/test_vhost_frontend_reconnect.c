// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end's INFLIGHT_SHMFD and reconnect against scripted
 * backends (vhost_frontend_fixture.h): the region is asked for once and
 * handed back before the rings at every start and every reconnect; hostile
 * GET_INFLIGHT_FD replies (no fd, two fds, a region too small, a size past
 * the fd) give the connection up with no fd leaked; a reconnect replays the
 * state with the split ring's base at the used index; without
 * INFLIGHT_SHMFD a ring with requests in flight waits for the driver to
 * resubmit (or the reconnect ends when it cannot); a backend that never
 * comes back ends the bounded wait with NEEDS_RESET and a reason.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include "harness.h"
#include "vhost_frontend_fixture.h"

#define OFFER_INFLIGHT (PF(REPLY_ACK) | PF(CONFIG) | PF(STATUS) | PF(INFLIGHT_SHMFD))
#define OFFER_PLAIN (PF(REPLY_ACK) | PF(CONFIG) | PF(STATUS))

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* fake_finish() for a fake whose thread was joined (or ran inline). */
static void fake_release(struct fake *f)
{
	if (f->map)
		munmap(f->map, f->map_size);
	if (f->kick_fd >= 0)
		close(f->kick_fd);
	if (f->call_fd >= 0)
		close(f->call_fd);
	if (f->inflight_fd >= 0)
		close(f->inflight_fd);
	f->map = NULL;
	f->kick_fd = f->call_fd = f->inflight_fd = -1;
}

static void test_inflight_region_asked_once_and_handed_back_before_the_rings(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	char err[160] = "";
	struct stat st;
	int get, set, num;

	CHECK_EQ(fake_connect_offering(&f, FAKE_HONEST, 0, OFFER_INFLIGHT, &fe, err, sizeof(err)), 0);
	CHECK(uvirtio_vhost_frontend_protocol_features(fe, NULL) & PF(INFLIGHT_SHMFD));
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0(t), 0);
	CHECK(fake_ring0_running(&f));
	uvirtio_vhost_frontend_destroy(fe);
	pthread_join(f.thread, NULL);

	get = fake_log_find(&f, VHOST_USER_GET_INFLIGHT_FD, 0);
	set = fake_log_find(&f, VHOST_USER_SET_INFLIGHT_FD, 0);
	num = fake_log_find(&f, VHOST_USER_SET_VRING_NUM, 0);
	CHECK(get >= 0 && set > get && num > set);
	CHECK_EQ(fake_log_find(&f, VHOST_USER_GET_INFLIGHT_FD, (unsigned)get + 1), -1);
	CHECK_EQ(f.inflight_asked.num_queues, 1);
	CHECK_EQ(f.inflight_asked.queue_size, 256);
	CHECK_EQ(f.inflight_set.num_queues, 1);
	CHECK_EQ(f.inflight_set.queue_size, 256);
	CHECK_EQ(f.inflight_set.mmap_size, 16 + 16 * 256);
	CHECK_EQ(f.inflight_set.mmap_offset, 0);
	/* The fd handed back is the region's. */
	CHECK(f.inflight_fd >= 0 && fstat(f.inflight_fd, &st) == 0 &&
	      (uint64_t)st.st_size == f.inflight_set.mmap_size);
	fake_release(&f);
}

static void test_inflight_reset_asks_for_a_new_region(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	char err[160] = "";
	int first;

	CHECK_EQ(fake_connect_offering(&f, FAKE_HONEST, 0, OFFER_INFLIGHT, &fe, err, sizeof(err)), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0(t), 0);
	CHECK_EQ(start_ring0(t), 0); /* a reset, then DRIVER_OK again */
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
	first = fake_log_find(&f, VHOST_USER_GET_INFLIGHT_FD, 0);
	CHECK(first >= 0);
	CHECK(fake_log_find(&f, VHOST_USER_GET_INFLIGHT_FD, (unsigned)first + 1) > first);
}

static void test_inflight_disabled_is_never_asked(void)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	int sv[2];
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 4u << 20,
						     .reply_timeout_ms = 200,
						     .disable_protocol_features = PF(INFLIGHT_SHMFD) };

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fake_init(&f, FAKE_HONEST, 0, OFFER_INFLIGHT, sv[1]);
	CHECK_EQ(pthread_create(&f.thread, NULL, fake_thread, &f), 0);
	cfg.fd = sv[0];
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &cfg), 0);
	CHECK_EQ(start_ring0(uvirtio_vhost_frontend_transport(fe)), 0);
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
	CHECK_EQ(fake_log_find(&f, VHOST_USER_GET_INFLIGHT_FD, 0), -1);
	CHECK_EQ(fake_log_find(&f, VHOST_USER_SET_INFLIGHT_FD, 0), -1);
}

static void hostile_inflight(enum fake_mode mode, const char *text)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";
	unsigned before = open_fds();

	CHECK_EQ(fake_connect_offering(&f, mode, 0, OFFER_INFLIGHT, &fe, err, sizeof(err)), 0);
	CHECK_EQ(start_ring0(uvirtio_vhost_frontend_transport(fe)), -EPROTO);
	if (!strstr(uvirtio_vhost_frontend_error(fe), text))
		printf("# error line \"%s\", expected \"%s\"\n", uvirtio_vhost_frontend_error(fe), text);
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), text));
	CHECK(!uvirtio_vhost_frontend_connected(fe));
	CHECK(!fake_ring0_running(&f));
	uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
	/* The region's fds (one or two) were closed, none kept or leaked. */
	CHECK_EQ(open_fds(), before);
}

static void test_inflight_reply_without_fd_is_eproto(void)
{
	hostile_inflight(FAKE_INFLIGHT_NO_FD, "GET_INFLIGHT_FD: reply carries 0 fds, expected 1");
}

static void test_inflight_reply_with_two_fds_is_eproto(void)
{
	hostile_inflight(FAKE_INFLIGHT_TWO_FDS, "GET_INFLIGHT_FD: reply carries 2 fds, expected 1");
}

static void test_inflight_region_smaller_than_asked_is_eproto(void)
{
	hostile_inflight(FAKE_INFLIGHT_SMALL, "a region of 64 bytes for 1 queues of 256");
}

static void test_inflight_size_past_the_fd_is_eproto(void)
{
	hostile_inflight(FAKE_INFLIGHT_PAST_FD, "pass the end of the region's fd");
}

/* ------------------------------------------------------------------ */
/* Reconnect: scripted backends served one after another on a socket. */

struct listener {
	char dir[64], path[96];
	int fd;
	pthread_t thread;
	unsigned sessions;        /* how many to serve, then the socket goes */
	struct fake f[2];
	uint64_t offer;
	unsigned served;          /* atomic */
	int session_sock[2];      /* atomic: the socket of each session, -1 after */
};

static void *listener_thread(void *arg)
{
	struct listener *l = arg;

	for (unsigned k = 0; k < l->sessions; k++) {
		int c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0)
			break;
		fake_init(&l->f[k], FAKE_HONEST, 0, l->offer, c);
		__atomic_store_n(&l->session_sock[k], c, __ATOMIC_RELEASE);
		__atomic_store_n(&l->served, k + 1, __ATOMIC_RELEASE);
		fake_thread(&l->f[k]);
	}
	/* Never back: nobody listens on the path any more. */
	close(l->fd);
	unlink(l->path);
	l->fd = -1;
	return NULL;
}

static int listener_start(struct listener *l, unsigned sessions, uint64_t offer)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(l, 0, sizeof(*l));
	l->sessions = sessions;
	l->offer = offer;
	l->session_sock[0] = l->session_sock[1] = -1;
	snprintf(l->dir, sizeof(l->dir), "/tmp/uvirtio-ferc-%d-XXXXXX", getpid());
	if (!mkdtemp(l->dir))
		return -errno;
	snprintf(l->path, sizeof(l->path), "%s/sock", l->dir);
	strcpy(sa.sun_path, l->path);
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(l->fd, 4))
		return -errno;
	if (pthread_create(&l->thread, NULL, listener_thread, l))
		return -EAGAIN;
	return 0;
}

/* Ends session @k as a killed backend would: its socket hangs up. */
static void listener_kill(struct listener *l, unsigned k)
{
	shutdown(__atomic_load_n(&l->session_sock[k], __ATOMIC_ACQUIRE), SHUT_RDWR);
}

/* After the front-end is gone: the sessions end, the fakes are readable. */
static void listener_join(struct listener *l)
{
	pthread_join(l->thread, NULL);
	unlink(l->path);
	rmdir(l->dir);
}

static void listener_release(struct listener *l)
{
	for (unsigned k = 0; k < l->served && k < 2; k++)
		fake_release(&l->f[k]);
}

static void listener_finish(struct listener *l)
{
	listener_join(l);
	listener_release(l);
}

static int connect_reconnecting(struct uvirtio_vhost_frontend **fe, const char *path, int wait_ms)
{
	char err[160] = "";
	struct uvirtio_vhost_frontend_config cfg = {
		.socket_path = path, .fd = -1, .mem_size = 4u << 20, .reply_timeout_ms = 2000,
		.error = err, .error_size = sizeof(err), .reconnect = true,
		.reconnect_interval_ms = 20, .reconnect_timeout_ms = wait_ms,
	};
	int ret = uvirtio_vhost_frontend_connect(fe, &cfg);

	if (ret)
		printf("# connect: %s\n", err);
	return ret;
}

/* Ring 0 of start_ring0() in the fake's map of guest memory: sets the
 * avail and used indexes as a driver and a device would have left them. */
static void set_ring0_indexes(struct fake *f, uint16_t avail, uint16_t used)
{
	char *base = f->map; /* guest memory starts at offset 0 of the memfd */

	__atomic_store_n((uint16_t *)(base + 4096 + 2), avail, __ATOMIC_RELEASE);
	__atomic_store_n((uint16_t *)(base + 8192 + 2), used, __ATOMIC_RELEASE);
}

/* Waits (bounded) until @cond holds; a time-out is a failed CHECK, not a hang. */
#define WAIT_FOR(cond)                                                            \
	do {                                                                      \
		for (unsigned w_ = 0; w_ < 1000 && !(cond); w_++)                 \
			sleep_ms(10);                                             \
		CHECK(cond);                                                      \
	} while (0)

static void test_reconnect_with_inflight_hands_back_the_region_and_restarts_at_used_index(void)
{
	struct listener l;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	struct stat a, b;
	uint8_t status = 0;
	int set, num;

	CHECK_EQ(listener_start(&l, 2, OFFER_INFLIGHT), 0);
	CHECK_EQ(connect_reconnecting(&fe, l.path, 10000), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0(t), 0);
	CHECK(l.f[0].map != NULL);
	/* 5 made available, 3 used: 2 in flight when the backend dies. */
	set_ring0_indexes(&l.f[0], 5, 3);
	listener_kill(&l, 0);
	WAIT_FOR(uvirtio_vhost_frontend_reconnects(fe) == 1);
	CHECK(uvirtio_vhost_frontend_connected(fe));
	CHECK_EQ(t->ops->get_status(t, &status), 0);
	CHECK(!(status & VIRTIO_CONFIG_S_NEEDS_RESET));
	CHECK(fake_ring0_running(&l.f[1]));
	/* The base is the used index; the descriptors stay, nothing is added. */
	CHECK_EQ(__atomic_load_n(&l.f[1].ring0_base, __ATOMIC_ACQUIRE), 3);
	CHECK(!uvirtio_vhost_frontend_ring_needs_resubmit(fe, 0));
	CHECK(__atomic_load_n(&l.f[1].status, __ATOMIC_ACQUIRE) & VIRTIO_CONFIG_S_DRIVER_OK);
	uvirtio_vhost_frontend_destroy(fe);
	listener_join(&l);

	/* The same region, handed back before the ring, not asked for again. */
	CHECK_EQ(fake_log_find(&l.f[1], VHOST_USER_GET_INFLIGHT_FD, 0), -1);
	set = fake_log_find(&l.f[1], VHOST_USER_SET_INFLIGHT_FD, 0);
	num = fake_log_find(&l.f[1], VHOST_USER_SET_VRING_NUM, 0);
	CHECK(set >= 0 && num > set);
	CHECK(fake_log_find(&l.f[1], VHOST_USER_SET_MEM_TABLE, 0) >= 0 ||
	      fake_log_find(&l.f[1], VHOST_USER_ADD_MEM_REG, 0) >= 0);
	CHECK(fake_log_find(&l.f[1], VHOST_USER_SET_OWNER, 0) >= 0);
	CHECK(fake_log_find(&l.f[1], VHOST_USER_SET_FEATURES, 0) >= 0);
	CHECK(!memcmp(&l.f[0].inflight_set, &l.f[1].inflight_set, sizeof(l.f[0].inflight_set)));
	CHECK(l.f[0].inflight_fd >= 0 && fstat(l.f[0].inflight_fd, &a) == 0);
	CHECK(l.f[1].inflight_fd >= 0 && fstat(l.f[1].inflight_fd, &b) == 0);
	CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	listener_release(&l);
}

static void test_reconnect_without_inflight_leaves_a_busy_ring_for_the_driver(void)
{
	struct listener l;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint64_t base;
	struct uvirtio_queue_layout lay;

	CHECK_EQ(listener_start(&l, 2, OFFER_PLAIN), 0);
	CHECK_EQ(connect_reconnecting(&fe, l.path, 10000), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0_with(t, UVIRTIO_BIT(VIRTIO_F_VERSION_1) | UVIRTIO_BIT(VIRTIO_F_RING_RESET)),
		 0);
	set_ring0_indexes(&l.f[0], 5, 3);
	listener_kill(&l, 0);
	WAIT_FOR(uvirtio_vhost_frontend_reconnects(fe) == 1);
	/* Not restarted: the new backend would take entries 3 and 4 again,
	 * which need not be the two in flight. */
	CHECK(uvirtio_vhost_frontend_ring_needs_resubmit(fe, 0));
	CHECK(!fake_ring0_running(&l.f[1]));
	CHECK_EQ(__atomic_load_n(&l.f[1].ring0_bases, __ATOMIC_ACQUIRE), 0);
	/* The driver resets the queue and hands a new ring over at base 0. */
	CHECK_EQ(t->ops->queue_reset(t, 0), 0);
	base = guest_base(t);
	lay = (struct uvirtio_queue_layout){ .num = 8, .desc = base + 16384, .avail = base + 20480,
					     .used = base + 24576 };
	CHECK_EQ(t->ops->queue_enable(t, 0, &lay), 0);
	CHECK(!uvirtio_vhost_frontend_ring_needs_resubmit(fe, 0));
	CHECK(fake_ring0_running(&l.f[1]));
	CHECK_EQ(__atomic_load_n(&l.f[1].ring0_base, __ATOMIC_ACQUIRE), 0);
	uvirtio_vhost_frontend_destroy(fe);
	listener_finish(&l);
}

static void test_reconnect_without_inflight_or_ring_reset_gives_up_with_the_reason(void)
{
	struct listener l;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint8_t status = 0;

	CHECK_EQ(listener_start(&l, 2, OFFER_PLAIN), 0);
	CHECK_EQ(connect_reconnecting(&fe, l.path, 10000), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0(t), 0);
	set_ring0_indexes(&l.f[0], 5, 3);
	listener_kill(&l, 0);
	WAIT_FOR(t->ops->get_status(t, &status) == 0 && (status & VIRTIO_CONFIG_S_NEEDS_RESET));
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), "did not negotiate VIRTIO_F_RING_RESET"));
	CHECK_EQ(uvirtio_vhost_frontend_reconnects(fe), 0);
	uvirtio_vhost_frontend_destroy(fe);
	listener_finish(&l);
}

static void test_reconnect_idle_ring_without_inflight_restarts_at_used_index(void)
{
	struct listener l;
	struct uvirtio_vhost_frontend *fe;

	CHECK_EQ(listener_start(&l, 2, OFFER_PLAIN), 0);
	CHECK_EQ(connect_reconnecting(&fe, l.path, 10000), 0);
	CHECK_EQ(start_ring0(uvirtio_vhost_frontend_transport(fe)), 0);
	set_ring0_indexes(&l.f[0], 7, 7);
	listener_kill(&l, 0);
	WAIT_FOR(uvirtio_vhost_frontend_reconnects(fe) == 1);
	CHECK(!uvirtio_vhost_frontend_ring_needs_resubmit(fe, 0));
	CHECK(fake_ring0_running(&l.f[1]));
	CHECK_EQ(__atomic_load_n(&l.f[1].ring0_base, __ATOMIC_ACQUIRE), 7);
	uvirtio_vhost_frontend_destroy(fe);
	listener_finish(&l);
}

static void test_reconnect_backend_never_back_ends_the_bounded_wait(void)
{
	struct listener l;
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_transport *t;
	uint8_t status = 0;

	CHECK_EQ(listener_start(&l, 1, OFFER_INFLIGHT), 0);
	CHECK_EQ(connect_reconnecting(&fe, l.path, 300), 0);
	t = uvirtio_vhost_frontend_transport(fe);
	CHECK_EQ(start_ring0(t), 0);
	listener_kill(&l, 0);
	/* While it tries: no NEEDS_RESET; after the wait: NEEDS_RESET and why. */
	WAIT_FOR(t->ops->get_status(t, &status) == 0 && (status & VIRTIO_CONFIG_S_NEEDS_RESET));
	CHECK(strstr(uvirtio_vhost_frontend_error(fe), "did not come back in 300 ms"));
	CHECK(!uvirtio_vhost_frontend_connected(fe));
	CHECK_EQ(uvirtio_vhost_frontend_reconnects(fe), 0);
	CHECK_EQ(t->ops->set_status(t, VIRTIO_CONFIG_S_ACKNOWLEDGE), -ENOTCONN);
	uvirtio_vhost_frontend_destroy(fe);
	listener_finish(&l);
}

static void test_reconnect_needs_a_socket_path(void)
{
	struct uvirtio_vhost_frontend *fe;
	int sv[2];
	struct uvirtio_vhost_frontend_config cfg = { .reconnect = true };
	struct uvirtio_vhost_frontend_config neg = { .socket_path = "/nonexistent/s", .fd = -1,
						     .reconnect = true, .reconnect_timeout_ms = -1 };

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cfg.fd = sv[0];
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &cfg), -EINVAL);
	close(sv[1]);
	CHECK_EQ(uvirtio_vhost_frontend_connect(&fe, &neg), -EINVAL);
}

TEST_MAIN(T(test_inflight_region_asked_once_and_handed_back_before_the_rings),
	  T(test_inflight_reset_asks_for_a_new_region), T(test_inflight_disabled_is_never_asked),
	  T(test_inflight_reply_without_fd_is_eproto), T(test_inflight_reply_with_two_fds_is_eproto),
	  T(test_inflight_region_smaller_than_asked_is_eproto),
	  T(test_inflight_size_past_the_fd_is_eproto),
	  T(test_reconnect_with_inflight_hands_back_the_region_and_restarts_at_used_index),
	  T(test_reconnect_without_inflight_leaves_a_busy_ring_for_the_driver),
	  T(test_reconnect_without_inflight_or_ring_reset_gives_up_with_the_reason),
	  T(test_reconnect_idle_ring_without_inflight_restarts_at_used_index),
	  T(test_reconnect_backend_never_back_ends_the_bounded_wait),
	  T(test_reconnect_needs_a_socket_path))
