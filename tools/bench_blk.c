// SPDX-License-Identifier: MIT
/*
 * `uvirtio bench blk`: fio's job done over vhost-user directly. The
 * virtio-blk driver (blk_drv.h) runs over the vhost-user front-end
 * transport against any vhost-user-blk backend (qemu-storage-daemon, SPDK,
 * `uvirtio blk`), so a backend is measured from userspace with no guest and
 * no kernel block layer in the way.
 *
 * One thread per queue keeps --iodepth requests in flight on it, and waits
 * on the queue's event fd (or, with --poll, busy-polls the used ring).
 * Every request is timed from submit to its completion callback with
 * CLOCK_MONOTONIC and counted in a per-thread log-linear histogram
 * (bench_blk_stats.h): nothing is allocated and nothing locked per request.
 * The histograms are merged once the threads are done.
 *
 * The main thread prints progress once a second and watches the socket: a
 * backend that goes away mid-run leaves requests that will never complete,
 * so the queue threads are told to stop rather than wait for them.
 *
 * Here: the connection, the supervision and the command itself; the
 * command line is read in bench_blk_opts.c, the queue threads run in
 * bench_blk_load.c, bench_blk_report.c prints the results.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../bench/bench.h"
#include "bench_blk.h"
#include "uvirtio/vhost_frontend.h"

#define DEFAULT_MEM (64ull << 20)

/*
 * The transport: a connection to the backend. The socket is made here and
 * handed to the front-end, so the main thread can watch it for the
 * backend's hang-up (the front-end only reads it during requests, and there
 * are none while the queues run).
 */
struct conn {
	struct uvirtio_vhost_frontend *fe;
	int watch_fd;
};

static int conn_open(struct conn *c, const struct options *o, size_t mem_size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1 };
	char why[256] = "";
	int fd, ret;

	c->fe = NULL;
	c->watch_fd = -1;
	if (strlen(o->socket_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, PROG ": socket path '%s' is too long (at most %zu bytes)\n",
			o->socket_path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, o->socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		fprintf(stderr, PROG ": cannot connect to '%s': %s%s\n", o->socket_path, strerror(-ret),
			ret == -ENOENT || ret == -ECONNREFUSED ? " (is the backend running?)" : "");
		if (fd >= 0)
			close(fd);
		return ret;
	}
	cfg.fd = fd;
	cfg.error = why;
	cfg.error_size = sizeof(why);
	cfg.mem_size = mem_size;
	cfg.hugetlb = o->hugetlb;
	cfg.max_queue_size = o->queue_size;
	ret = uvirtio_vhost_frontend_connect(&c->fe, &cfg);
	if (ret) {
		fprintf(stderr, PROG ": vhost-user set-up with '%s' failed: %s%s%s\n", o->socket_path,
			strerror(-ret), *why ? ": " : "", why);
		if (ret == -ENOMEM && o->hugetlb)
			fprintf(stderr, PROG ": (--hugetlb needs free huge pages: /proc/sys/vm/nr_hugepages)\n");
		c->fe = NULL; /* connect frees what it made, and the socket */
		return ret;
	}
	c->watch_fd = fd;
	return 0;
}

static struct uvirtio_transport *conn_transport(struct conn *c)
{
	return uvirtio_vhost_frontend_transport(c->fe);
}

/* Has the backend hung up? Only looks: the data, if any, stays for the
 * front-end. */
static bool conn_hung_up(const struct conn *c)
{
	struct pollfd pfd = { .fd = c->watch_fd, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void conn_close(struct conn *c)
{
	uvirtio_vhost_frontend_destroy(c->fe);
	c->fe = NULL;
}
static const char *op_name(bool write)
{
	return write ? "write" : "read";
}

/* Wait for the threads, printing progress and watching the backend.
 * Return: true when the backend hung up. */
static bool supervise(struct run *r, const struct conn *c)
{
	const struct options *o = r->o;
	bool tty = isatty(STDERR_FILENO);
	unsigned finished = 0;
	uint64_t last_ns = r->start_ns, last_count = 0, next_ns = r->start_ns + 1000000000ull;
	bool hung_up = false, printed = false;

	while (finished < o->queues) {
		struct pollfd pfd[2] = { { .fd = r->done_fd, .events = POLLIN },
					 { .fd = c->watch_fd, .events = POLLRDHUP } };
		uint64_t now = now_ns();
		int timeout = next_ns > now ? (int)((next_ns - now + 999999) / 1000000) : 0;
		uint64_t n;

		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			if (read(r->done_fd, &n, sizeof(n)) == sizeof(n))
				finished += (unsigned)n;
		}
		if (!hung_up && conn_hung_up(c)) {
			uint64_t one = 1;

			hung_up = true;
			__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
			if (write(r->stop_fd, &one, sizeof(one)) < 0) {
			}
		}
		now = now_ns();
		if (now < next_ns)
			continue;
		next_ns += 1000000000ull;
		if (o->progress) {
			uint64_t count = 0, errors = 0;
			double el = (now - r->start_ns) / 1e9;

			for (unsigned i = 0; i < o->queues; i++) {
				count += __atomic_load_n(&r->threads[i].completed, __ATOMIC_RELAXED);
				errors += __atomic_load_n(&r->threads[i].errors, __ATOMIC_RELAXED);
			}
			if (now < r->measure_ns)
				fprintf(stderr, "%s" PROG ": %6.1f s  ramp%-40s%s", tty ? "\r" : "", el, "",
					tty ? "" : "\n");
			else
				fprintf(stderr, "%s" PROG ": %6.1f s  IOPS %10.0f (last second %10.0f)  errors %" PRIu64 "%s",
					tty ? "\r" : "", el,
					now > r->measure_ns ? count / ((now - r->measure_ns) / 1e9) : 0.0,
					(count - last_count) / ((now - last_ns) / 1e9), errors, tty ? "" : "\n");
			last_ns = now;
			last_count = count;
			printed = true;
		}
	}
	if (printed && tty)
		fprintf(stderr, "\r%-100s\r", "");
	return hung_up;
}
int bench_blk_main(int argc, char **argv)
{
	static struct run run; /* large (histograms hang off it); one per process */
	struct run *r = &run;
	struct options o;
	struct conn c = { .watch_fd = -1 };
	struct uvirtio_blk_drv_opts dopts = { 0 };
	struct totals tot = { 0 };
	uint64_t capacity_bytes, need, first_ns = UINT64_MAX, last_ns = 0;
	unsigned started = 0;
	bool hung_up = false, probed = false;
	int ret = bench_blk_parse(&o, argc, argv), rc = 1;

	if (ret)
		return ret > 0 ? 0 : 2;
	memset(r, 0, sizeof(*r));
	r->o = &o;
	r->stop_fd = r->done_fd = -1;
	signal(SIGPIPE, SIG_IGN);

	/* Buffers, rounded up to pages, plus room for the rings and the
	 * driver's per-slot memory. */
	need = o.queues * (uint64_t)o.iodepth * ((o.bs + 4095) & ~4095ull) + (16ull << 20);
	if (o.mem_size && o.mem_size < need)
		fprintf(stderr, PROG ": warning: --mem-size=%" PRIu64 " may be too small for %u x %u buffers of %" PRIu64 " bytes\n",
			o.mem_size, o.queues, o.iodepth, o.bs);
	ret = conn_open(&c, &o, o.mem_size ? o.mem_size : need > DEFAULT_MEM ? need : DEFAULT_MEM);
	if (ret)
		return 1;
	dopts.num_queues = o.queues;
	dopts.queue_size = o.queue_size;
	ret = uvirtio_blk_drv_probe(&r->blk, conn_transport(&c), &dopts);
	if (ret) {
		fprintf(stderr, PROG ": the backend at '%s' is not a usable virtio-blk device: %s%s%s\n",
			o.socket_path, strerror(-ret), *uvirtio_vhost_frontend_error(c.fe) ? ": " : "",
			uvirtio_vhost_frontend_error(c.fe));
		goto out;
	}
	probed = true;
	capacity_bytes = uvirtio_blk_drv_capacity(&r->blk) * UVIRTIO_BLK_DRV_SECTOR_SIZE;
	if (uvirtio_blk_drv_num_queues(&r->blk) < o.queues) {
		fprintf(stderr, PROG ": --queues=%u, but the backend has %u queue%s\n", o.queues,
			uvirtio_blk_drv_num_queues(&r->blk), uvirtio_blk_drv_num_queues(&r->blk) == 1 ? "" : "s");
		goto out;
	}
	for (unsigned q = 0; q < o.queues; q++) {
		unsigned num = uvirtio_drvq_size(uvirtio_driver_vq(uvirtio_blk_drv_driver(&r->blk), q));

		if (o.iodepth > num) {
			fprintf(stderr, PROG ": --iodepth=%u is more than the queue size %u; raise --queue-size\n",
				o.iodepth, num);
			goto out;
		}
	}
	if (mode_writes(o.rw) && uvirtio_blk_drv_read_only(&r->blk)) {
		fprintf(stderr, PROG ": --rw=%s writes, but the backend's disk is read-only\n", rw_names[o.rw]);
		goto out;
	}
	if (o.bs % uvirtio_blk_drv_limits(&r->blk)->blk_size) {
		fprintf(stderr, PROG ": --bs=%" PRIu64 " is not a multiple of the disk's block size %u\n", o.bs,
			uvirtio_blk_drv_limits(&r->blk)->blk_size);
		goto out;
	}
	if (o.size > capacity_bytes) {
		fprintf(stderr, PROG ": --size=%" PRIu64 " is more than the disk's %" PRIu64 " bytes\n", o.size,
			capacity_bytes);
		goto out;
	}
	r->span_blocks = (o.size ? o.size : capacity_bytes) / o.bs;
	if (!r->span_blocks) {
		fprintf(stderr, PROG ": the disk (%" PRIu64 " bytes) is smaller than --bs=%" PRIu64 "\n",
			o.size ? o.size : capacity_bytes, o.bs);
		goto out;
	}
	if (setup_threads(r, &r->blk))
		goto out;
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	r->done_fd = eventfd(0, EFD_CLOEXEC);
	if (r->stop_fd < 0 || r->done_fd < 0) {
		fprintf(stderr, PROG ": cannot make eventfds: %s\n", strerror(errno));
		goto out;
	}
	for (started = 0; started < o.queues; started++) {
		ret = pthread_create(&r->threads[started].tid, NULL, queue_thread, &r->threads[started]);
		if (ret) {
			fprintf(stderr, PROG ": cannot start a queue thread: %s\n", strerror(ret));
			break;
		}
	}
	if (started < o.queues) {
		__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
		for (unsigned i = 0; i < started; i++)
			pthread_join(r->threads[i].tid, NULL);
		goto out;
	}
	r->start_ns = now_ns();
	r->measure_ns = r->start_ns + o.ramp * 1000000000ull;
	r->end_ns = o.ios ? UINT64_MAX : r->measure_ns + o.runtime * 1000000000ull;
	__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
	hung_up = supervise(r, &c);
	for (unsigned i = 0; i < o.queues; i++)
		pthread_join(r->threads[i].tid, NULL);
	/* The front-end's own watcher may have seen the hang-up first and
	 * failed the queues (-EIO) before ours looked. */
	if (!hung_up && (conn_hung_up(&c) || !uvirtio_vhost_frontend_connected(c.fe)))
		hung_up = true;

	tot.lat[0] = &r->threads[0].stats->lat[0];
	tot.lat[1] = &r->threads[0].stats->lat[1];
	rc = 0;
	for (unsigned i = 0; i < o.queues; i++) {
		struct thread *t = &r->threads[i];

		if (i) {
			bench_hist_merge(tot.lat[0], &t->stats->lat[0]);
			bench_hist_merge(tot.lat[1], &t->stats->lat[1]);
		}
		tot.errors += t->errors;
		if (t->last_done_ns > last_ns)
			last_ns = t->last_done_ns;
		if (t->first_error && !rc) {
			fprintf(stderr, PROG ": %s of %" PRIu64 " bytes at byte %" PRIu64 " (queue %u) failed: %s\n",
				op_name(t->first_error_write), o.bs, t->first_error_offset, i,
				strerror(-t->first_error));
			rc = 1;
		}
	}
	tot.ios[0] = tot.lat[0]->count;
	tot.ios[1] = tot.lat[1]->count;
	first_ns = r->measure_ns;
	if (hung_up) {
		fprintf(stderr, PROG ": the backend at '%s' closed the connection mid-run; results are incomplete\n",
			o.socket_path);
		rc = 1;
	}
	for (unsigned i = 0; i < o.queues; i++) {
		if (r->threads[i].fatal && !hung_up) {
			fprintf(stderr, PROG ": queue %u failed: %s%s\n", i, strerror(-r->threads[i].fatal),
				r->threads[i].fatal == -EIO ? " (the backend broke the ring or needs a reset)" : "");
			rc = 1;
			break;
		}
	}
	if (!hung_up) {
		double secs = last_ns > first_ns ? (last_ns - first_ns) / 1e9 : 1e-9;

		bench_blk_report(r, &tot, secs, capacity_bytes);
	}
	if (tot.errors)
		rc = 1;

out:
	/* Requests still in flight (after a failure) complete here, cancelled;
	 * the threads and their slots outlive the reset. */
	for (unsigned i = 0; i < MAX_QUEUES; i++)
		r->threads[i].tearing_down = true;
	if (probed) {
		uvirtio_blk_drv_remove(&r->blk);
		free_threads(r, &r->blk);
	}
	conn_close(&c);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	if (r->done_fd >= 0)
		close(r->done_fd);
	return rc;
}
