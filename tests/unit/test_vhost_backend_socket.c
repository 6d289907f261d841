// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's sockets: server mode (a path it listens on, or
 * an inherited listening fd; one front-end after another), client mode
 * (it connects, and stop() ends a connect that waits), and the socket files
 * it makes and removes. The front-end is vhost_backend_fixture.h's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "vhost_backend_fixture.h"

/* Server mode: one front-end, then back to listening for the next. */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char p[128];

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/uvirtio-vhost-XXXXXX");
		if (!mkdtemp(tmpdir))
			return "/nonexistent/x";
	}
	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

/* A socket address for a path; false if the path does not fit sun_path. */
static bool sun_path_set(struct sockaddr_un *a, const char *path)
{
	size_t n = strlen(path);

	if (n >= sizeof(a->sun_path))
		return false;
	memcpy(a->sun_path, path, n + 1);
	return true;
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || !sun_path_set(&a, path) || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

static int server_start(struct fe *f, const char *path, int fd)
{
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = fd };

	fe_init(f);
	TRY(uvirtio_vhost_backend_create(&f->vb, &cfg) == 0);
	TRY(fe_device(f, false) == 0);
	TRY(fe_memory(f) == 0);
	TRY(uvirtio_vhost_backend_listen(f->vb) == 0);
	TRY(pthread_create(&f->thread, NULL, run_thread, f) == 0);
	return 0;
}

static void test_vhost_server_serves_a_second_front_end_after_disconnect(void)
{
	const char *path = tmp_path("second.sock");
	struct uvirtio_vhost_backend_stats st;
	uint32_t base[1];
	struct fe f;

	CHECK_EQ(server_start(&f, path, -1), 0);
	for (unsigned conn = 0; conn < 2; conn++) {
		f.sock = connect_to(path);
		CHECK(f.sock >= 0);
		CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
		CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
		CHECK_EQ(ring_io(&f, 0, 3, 0), 0);
		if (conn == 1) {
			CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
			/* A new front-end starts from scratch: its own ring. */
			CHECK_EQ(base[0], 3);
		}
		close(f.sock);
		f.sock = -1;
		if (f.dq_made[0]) {
			uvirtio_drvq_destroy(&f.dq[0]);
			f.dq_made[0] = false;
		}
	}
	uvirtio_vhost_backend_get_stats(f.vb, &st);
	CHECK_EQ(st.errors, 0);
	uvirtio_vhost_backend_stop(f.vb);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK(access(path, F_OK) != 0);
}

static void test_vhost_server_counts_connections_and_stops_from_another_thread(void)
{
	const char *path = tmp_path("count.sock");
	struct uvirtio_vhost_backend_stats st;
	struct fe f;

	CHECK_EQ(server_start(&f, path, -1), 0);
	for (unsigned conn = 0; conn < 2; conn++) {
		f.sock = connect_to(path);
		CHECK(f.sock >= 0);
		CHECK(get_u64(&f, VHOST_USER_GET_FEATURES) & F_PROTO);
		close(f.sock);
		f.sock = -1;
	}
	/* A third one proves the second was finished and counted. */
	f.sock = connect_to(path);
	CHECK(get_u64(&f, VHOST_USER_GET_QUEUE_NUM) == 1);
	uvirtio_vhost_backend_get_stats(f.vb, &st);
	CHECK_EQ(st.connections, 3);
	CHECK_EQ(st.errors, 0);
	CHECK(st.connected);
	uvirtio_vhost_backend_stop(f.vb);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_inherited_listening_fd_accepts(void)
{
	const char *path = tmp_path("inherited.sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct fe f;

	CHECK(sun_path_set(&a, path));
	CHECK(l >= 0);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(l, 1), 0);
	CHECK_EQ(server_start(&f, NULL, l), 0);
	f.sock = connect_to(path);
	CHECK(get_u64(&f, VHOST_USER_GET_MAX_MEM_SLOTS) == UVIRTIO_MEM_MAX_REGIONS);
	uvirtio_vhost_backend_stop(f.vb);
	CHECK_EQ(fe_finish(&f), 0);
	unlink(path);
}

static void test_vhost_client_mode_connects_to_the_front_end(void)
{
	const char *path = tmp_path("client.sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .client = true, .fd = -1 };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct fe f;

	CHECK(sun_path_set(&a, path));
	CHECK(l >= 0);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(l, 1), 0);
	fe_init(&f);
	CHECK_EQ(uvirtio_vhost_backend_create(&f.vb, &cfg), 0);
	CHECK_EQ(fe_device(&f, false), 0);
	CHECK_EQ(fe_memory(&f), 0);
	CHECK_EQ(pthread_create(&f.thread, NULL, run_thread, &f), 0);
	f.sock = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(f.sock >= 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	/* The front-end goes: run() returns (client mode serves one). */
	CHECK_EQ(fe_finish(&f), 0);
	close(l);
	unlink(path);
}

struct stuck_client {
	struct uvirtio_vhost_backend *vb;
	pid_t tid;
	int ret;
};

static void *stuck_client_thread(void *arg)
{
	struct stuck_client *c = arg;

	__atomic_store_n(&c->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	c->ret = uvirtio_vhost_backend_run(c->vb);
	return NULL;
}

/* Whether thread @tid sits in connect() or poll() (what run() does while
 * it waits for a front-end's full backlog). */
static bool in_connect_or_poll(pid_t tid)
{
	char path[64], buf[64];
	long nr = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fp = fopen(path, "r");
	if (!fp)
		return false;
	if (fgets(buf, sizeof(buf), fp))
		nr = strtol(buf, NULL, 10);
	fclose(fp);
	return nr == SYS_connect || nr == SYS_ppoll
#ifdef SYS_poll
	       || nr == SYS_poll
#endif
		;
}

/* A front-end that listens but never accepts, its backlog full: a blocking
 * connect would never return, and neither would run() after stop(). */
static void test_vhost_client_mode_stop_returns_while_connect_waits_for_a_full_backlog(void)
{
	const char *path = tmp_path("full.sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .client = true, .fd = -1 };
	struct stuck_client c = { .ret = -1 };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), filler[64], nfill = 0;
	struct fe f;
	pthread_t t;
	pid_t tid;

	CHECK(sun_path_set(&a, path));
	CHECK(l >= 0);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(l, 0), 0);
	/* Fill the backlog until a connect would block. */
	while (nfill < 64) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		CHECK(s >= 0);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
			CHECK_EQ(errno, EAGAIN);
			close(s);
			break;
		}
		filler[nfill++] = s;
	}
	CHECK(nfill < 64);
	fe_init(&f);
	CHECK_EQ(uvirtio_vhost_backend_create(&f.vb, &cfg), 0);
	CHECK_EQ(fe_device(&f, false), 0);
	c.vb = f.vb;
	CHECK_EQ(pthread_create(&t, NULL, stuck_client_thread, &c), 0);
	while (!(tid = __atomic_load_n(&c.tid, __ATOMIC_ACQUIRE)))
		sched_yield();
	/* Wait for run() to be waiting on the front-end, not before it. */
	while (!in_connect_or_poll(tid))
		sched_yield();
	uvirtio_vhost_backend_stop(f.vb);
	pthread_join(t, NULL);
	CHECK_EQ(c.ret, 0);
	uvirtio_vhost_backend_destroy(f.vb);
	f.vb = NULL;
	uvirtio_device_destroy(f.dev);
	for (int i = 0; i < nfill; i++)
		close(filler[i]);
	close(l);
	unlink(path);
	fe_log_done(&f);
}

static void test_vhost_listen_refuses_a_path_in_use(void)
{
	const char *path = tmp_path("inuse.sock");
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = -1 };
	struct uvirtio_vhost_backend *a, *b;

	CHECK_EQ(uvirtio_vhost_backend_create(&a, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_create(&b, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(a), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(b), -EADDRINUSE);
	uvirtio_vhost_backend_destroy(b);
	/* b did not remove a's socket. */
	CHECK_EQ(access(path, F_OK), 0);
	uvirtio_vhost_backend_destroy(a);
}

static void test_vhost_listen_replaces_a_stale_socket_file(void)
{
	const char *path = tmp_path("stale.sock");
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = -1 };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct uvirtio_vhost_backend *vb;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(sun_path_set(&a, path));
	CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	close(s); /* the file stays; nobody listens */
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(vb), 0);
	s = connect_to(path);
	CHECK(s >= 0);
	close(s);
	uvirtio_vhost_backend_destroy(vb);
}

static void test_vhost_listen_refuses_a_path_that_is_not_a_socket(void)
{
	const char *path = tmp_path("plain-file");
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = -1 };
	struct uvirtio_vhost_backend *vb;
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(vb), -EEXIST);
	uvirtio_vhost_backend_destroy(vb);
	CHECK_EQ(access(path, F_OK), 0);
	unlink(path);
}

static void test_vhost_create_refuses_a_config_without_one_socket(void)
{
	struct uvirtio_vhost_backend_config none = { .fd = -1 };
	struct uvirtio_vhost_backend_config both = { .socket_path = "/tmp/x", .fd = 0 };
	struct uvirtio_vhost_backend_config client_fd = { .client = true, .fd = 3 };
	char longp[200];
	struct uvirtio_vhost_backend_config too_long = { .socket_path = longp, .fd = -1 };
	struct uvirtio_vhost_backend *vb;

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &none), -EINVAL);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &both), -EINVAL);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &client_fd), -EINVAL);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &too_long), -ENAMETOOLONG);
}

/* Last: every socket file made here was removed by its owner. */
static void test_vhost_socket_files_removed_after_use(void)
{
	CHECK(tmpdir[0]);
	CHECK_EQ(rmdir(tmpdir), 0);
}

TEST_MAIN(T(test_vhost_server_serves_a_second_front_end_after_disconnect),
	  T(test_vhost_server_counts_connections_and_stops_from_another_thread),
	  T(test_vhost_inherited_listening_fd_accepts),
	  T(test_vhost_client_mode_connects_to_the_front_end),
	  T(test_vhost_client_mode_stop_returns_while_connect_waits_for_a_full_backlog),
	  T(test_vhost_listen_refuses_a_path_in_use),
	  T(test_vhost_listen_replaces_a_stale_socket_file),
	  T(test_vhost_listen_refuses_a_path_that_is_not_a_socket),
	  T(test_vhost_create_refuses_a_config_without_one_socket),
	  T(test_vhost_socket_files_removed_after_use))
