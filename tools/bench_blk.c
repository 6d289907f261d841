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
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../bench/bench.h"
#include "bench_blk_stats.h"
#include "cli_parse.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/vhost_frontend.h"

#define PROG "uvirtio bench blk"
#define MAX_QUEUES 64u
#define MAX_IODEPTH 4096u
#define MAX_BS (64ull << 20)
#define DEFAULT_MEM (64ull << 20)

enum rw_mode { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE, RW_RANDRW, RW_RW };

static const char *const rw_names[] = {
	[RW_RANDREAD] = "randread", [RW_RANDWRITE] = "randwrite", [RW_READ] = "read",
	[RW_WRITE] = "write",       [RW_RANDRW] = "randrw",       [RW_RW] = "rw",
};

struct options {
	const char *socket_path;
	enum rw_mode rw;
	unsigned rwmixread;
	uint64_t bs;
	unsigned iodepth;
	unsigned queues;
	unsigned runtime; /* seconds; 0 with ios */
	uint64_t ios;     /* 0 with runtime */
	unsigned ramp;
	uint64_t size;    /* 0: the whole device */
	bool poll;
	int cpus[MAX_QUEUES];
	unsigned ncpus;
	uint64_t seed;
	uint64_t mem_size; /* 0: enough for the buffers, at least 64 MiB */
	bool hugetlb;
	unsigned queue_size; /* 0: the defaults */
	bool json;
	bool progress;
};

struct thread;

/* One request slot: its buffer and iovecs are set up once. */
struct io {
	struct uvirtio_blk_drv_req req;
	struct thread *t;
	struct iovec *iov;
	unsigned niov;
	uint64_t start_ns;
	bool measured; /* submitted after the ramp, so counted */
	bool write;
};

struct stats {
	struct bench_hist lat[2]; /* [0] reads, [1] writes, in ns */
};

/* A queue's thread. Fields the main thread reads while it runs are atomic. */
struct thread {
	struct run *run;
	unsigned queue;
	int cpu;
	pthread_t tid;
	uint64_t rng;
	uint64_t quota;       /* --ios: measured requests this thread submits */
	uint64_t next_block;  /* sequential modes */
	struct io *ios;
	unsigned *free_list, nfree;
	struct stats *stats;
	uint64_t submitted;   /* measured ones */
	uint64_t completed;   /* measured ones (atomic: progress) */
	uint64_t errors;      /* failed requests (atomic: progress) */
	uint64_t last_done_ns;
	/* The first failed request, for the message. */
	int first_error;
	uint64_t first_error_offset;
	bool first_error_write;
	int fatal;            /* the queue broke (submit or poll failed) */
	bool tearing_down;    /* callbacks from remove: ignore -ECANCELED */
};

struct run {
	const struct options *o;
	struct uvirtio_blk_drv blk;
	uint64_t span_blocks; /* bs-sized blocks in the span */
	uint64_t start_ns, measure_ns, end_ns; /* end_ns: UINT64_MAX with --ios */
	int stop;             /* atomic: the queue threads stop at once */
	int stop_fd;          /* eventfd: wakes threads waiting on their queue */
	int done_fd;          /* eventfd: a thread finished */
	int go;               /* atomic: the times above are set, start */
	struct thread threads[MAX_QUEUES];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: seeds each thread's state from --seed and its index, so
 * threads draw independent streams and a run is repeatable. */
static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* xorshift64*: a few cycles per number, plenty for offsets. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A number below @n without a division (Lemire's multiply-shift). */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static bool mode_random(enum rw_mode m)
{
	return m == RW_RANDREAD || m == RW_RANDWRITE || m == RW_RANDRW;
}

static bool mode_writes(enum rw_mode m)
{
	return m != RW_RANDREAD && m != RW_READ;
}

static void io_done(struct uvirtio_blk_drv_req *req)
{
	struct io *io = req->opaque;
	struct thread *t = io->t;
	uint64_t now = now_ns();

	if (req->result == -ECANCELED && t->tearing_down)
		return;
	t->free_list[t->nfree++] = (unsigned)(io - t->ios);
	if (req->result) {
		if (!t->first_error) {
			t->first_error = req->result;
			t->first_error_offset = req->sector * UVIRTIO_BLK_DRV_SECTOR_SIZE;
			t->first_error_write = io->write;
		}
		__atomic_store_n(&t->errors, t->errors + 1, __ATOMIC_RELAXED);
		return;
	}
	if (!io->measured)
		return;
	bench_hist_record(&t->stats->lat[io->write], now - io->start_ns);
	t->last_done_ns = now;
	__atomic_store_n(&t->completed, t->completed + 1, __ATOMIC_RELAXED);
}

static void set_fatal(struct thread *t, int err)
{
	struct run *r = t->run;
	uint64_t one = 1;

	t->fatal = err;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	/* Wake the other threads; a full counter is still readable. */
	if (write(r->stop_fd, &one, sizeof(one)) < 0) {
	}
}

/* Fill free slots with requests. Return: 0, or the submit error that
 * breaks the queue. */
static int submit_some(struct thread *t, uint64_t now, bool *submitted)
{
	struct run *r = t->run;
	const struct options *o = r->o;
	bool measured = now >= r->measure_ns;

	while (t->nfree) {
		struct io *io;
		uint64_t block;
		int ret;

		if (measured && (now >= r->end_ns || (o->ios && t->submitted >= t->quota)))
			return 0;
		io = &t->ios[t->free_list[t->nfree - 1]];
		if (mode_random(o->rw)) {
			block = rng_below(&t->rng, r->span_blocks);
		} else {
			block = t->next_block;
			t->next_block = block + 1 == r->span_blocks ? 0 : block + 1;
		}
		switch (o->rw) {
		case RW_RANDREAD: case RW_READ:
			io->write = false;
			break;
		case RW_RANDWRITE: case RW_WRITE:
			io->write = true;
			break;
		default:
			io->write = rng_below(&t->rng, 100) >= o->rwmixread;
		}
		io->measured = measured;
		io->req = (struct uvirtio_blk_drv_req){
			.type = io->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
			.sector = block * (o->bs / UVIRTIO_BLK_DRV_SECTOR_SIZE),
			.iov = io->iov, .niov = io->niov, .callback = io_done, .opaque = io,
		};
		io->start_ns = now_ns();
		ret = uvirtio_blk_drv_submit(&r->blk, t->queue, &io->req);
		if (ret == -EAGAIN || ret == -ENOSPC)
			return 0; /* the ring is full: poll first */
		if (ret)
			return ret;
		t->nfree--;
		if (measured)
			t->submitted++;
		*submitted = true;
	}
	return 0;
}

static void *queue_thread(void *arg)
{
	struct thread *t = arg;
	struct run *r = t->run;
	const struct options *o = r->o;
	unsigned depth = o->iodepth;
	int efd = uvirtio_blk_drv_event_fd(&r->blk, t->queue);
	uint64_t one = 1;

	cli_pin_cpu(t->cpu);
	/* Start together, once the main thread has set the times (the
	 * acquire pairs with its release). */
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		sched_yield();
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		uint64_t now = now_ns();
		bool submitted = false;
		int ret, n;

		ret = submit_some(t, now, &submitted);
		if (ret) {
			set_fatal(t, ret);
			break;
		}
		/* Done: nothing more to submit and nothing in flight. */
		if (t->nfree == depth && !submitted)
			break;
		n = uvirtio_blk_drv_poll(&r->blk, t->queue, depth);
		if (n < 0) {
			set_fatal(t, n);
			break;
		}
		if (n || submitted)
			continue;
		if (o->poll) {
			cli_cpu_relax();
			continue;
		}
		/* Nothing completed and the ring is as full as it gets: sleep
		 * until the device signals, or a second passes (the run may end). */
		{
			struct pollfd pfd[2] = { { .fd = efd, .events = POLLIN },
						 { .fd = r->stop_fd, .events = POLLIN } };

			if (poll(pfd, 2, 1000) < 0 && errno != EINTR) {
				set_fatal(t, -errno);
				break;
			}
		}
	}
	if (write(r->done_fd, &one, sizeof(one)) < 0) {
	}
	return NULL;
}

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

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uvirtio bench blk --socket-path=PATH [options]\n"
		"\n"
		"Measure a vhost-user-blk backend from userspace, as fio measures a disk: uvirtio's\n"
		"virtio-blk driver connects to the backend's socket as QEMU would, shares memory\n"
		"with it, and keeps --iodepth requests in flight on each of --queues queues, one\n"
		"thread per queue. Every request is timed from submit to completion\n"
		"(CLOCK_MONOTONIC); latency percentiles come from a histogram with buckets at\n"
		"most 1%% wide. Reports IOPS, MiB/s (2^20 bytes) and latency mean, p50, p99 and\n"
		"p99.9 in microseconds, for reads and writes apart when mixed, and the errors.\n"
		"Writes overwrite the device's data (with a fixed 0xa5 pattern).\n"
		"\n"
		"  --socket-path=PATH  the backend's vhost-user socket (required)\n"
		"  --rw=MODE           randread, randwrite, read, write, randrw or rw (default\n"
		"                      randread); sequential modes start queue i at i/queues of the\n"
		"                      span and wrap around\n"
		"  --rwmixread=PCT     reads in percent for randrw and rw (default 70)\n"
		"  --bs=BYTES          request size, a multiple of 512 and of the device's block\n"
		"                      size (default 4096; k, m, g suffixes: 4k, 1m)\n"
		"  --iodepth=N         requests in flight per queue, at most the queue size (default 1)\n"
		"  --queues=N          queues, one thread each (default 1; at most the backend's)\n"
		"  --runtime=SECONDS   measure for this long (default 10)\n"
		"  --ios=N             or measure exactly N requests in all, shared by the queues\n"
		"  --ramp=SECONDS      run this long first without measuring (default 0)\n"
		"  --size=BYTES        use the first BYTES of the device (default: all of it)\n"
		"  --seed=N            random offsets and read/write mix, per thread from N (default 1)\n"
		"  --poll              busy-poll for completions (default: sleep on the queue's\n"
		"                      event fd until the backend signals)\n"
		"  --cpus=A,B,...      pin queue thread i to CPU number i of the list\n"
		"  --mem-size=BYTES    shared memory (default: enough for the buffers, at least 64m)\n"
		"  --hugetlb           shared memory from huge pages\n"
		"  --queue-size=N      ring entries per queue, a power of two (default 256)\n"
		"  --json              one JSON object on stdout (parameters and results), nothing else\n"
		"  --no-progress       no progress line on stderr (default: one a second)\n"
		"\n"
		"Exit status: 0 when every request succeeded; 1 when one failed (the first one is\n"
		"described), the backend went away or could not be used; 2 for a bad option.\n");
}

static int bad(const char *flag, const char *value, const char *want)
{
	fprintf(stderr, PROG ": bad value '%s' for %s: %s\n", value, flag, want);
	return -1;
}

static bool parse_range(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	uint64_t v;

	if (!cli_parse_u64(s, &v) || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

/* Return: 0 to run, 1 after --help, -1 for a bad option (message printed). */
static int parse(struct options *o, int argc, char **argv)
{
	enum { O_SOCKET = 256, O_RW, O_MIX, O_BS, O_DEPTH, O_QUEUES, O_RUNTIME, O_IOS, O_RAMP,
	       O_SIZE, O_POLL, O_CPUS, O_SEED, O_MEM, O_HUGE, O_QSIZE, O_JSON, O_NOPROG, O_HELP };
	static const struct option longopts[] = {
		{ "socket-path", required_argument, NULL, O_SOCKET },
		{ "rw", required_argument, NULL, O_RW },
		{ "rwmixread", required_argument, NULL, O_MIX },
		{ "bs", required_argument, NULL, O_BS },
		{ "iodepth", required_argument, NULL, O_DEPTH },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "runtime", required_argument, NULL, O_RUNTIME },
		{ "ios", required_argument, NULL, O_IOS },
		{ "ramp", required_argument, NULL, O_RAMP },
		{ "size", required_argument, NULL, O_SIZE },
		{ "poll", no_argument, NULL, O_POLL },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "seed", required_argument, NULL, O_SEED },
		{ "mem-size", required_argument, NULL, O_MEM },
		{ "hugetlb", no_argument, NULL, O_HUGE },
		{ "queue-size", required_argument, NULL, O_QSIZE },
		{ "json", no_argument, NULL, O_JSON },
		{ "no-progress", no_argument, NULL, O_NOPROG },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	bool runtime_given = false;
	int c;

	*o = (struct options){ .rw = RW_RANDREAD, .rwmixread = 70, .bs = 4096, .iodepth = 1,
			       .queues = 1, .runtime = 10, .seed = 1, .progress = true };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_SOCKET:
			if (!*optarg)
				return bad("--socket-path", optarg, "the backend's unix socket");
			o->socket_path = optarg;
			break;
		case O_RW: {
			unsigned i;

			for (i = 0; i < sizeof(rw_names) / sizeof(rw_names[0]); i++)
				if (!strcmp(optarg, rw_names[i]))
					break;
			if (i == sizeof(rw_names) / sizeof(rw_names[0]))
				return bad("--rw", optarg, "randread, randwrite, read, write, randrw or rw");
			o->rw = (enum rw_mode)i;
			break;
		}
		case O_MIX:
			if (!parse_range(optarg, 0, 100, &o->rwmixread))
				return bad("--rwmixread", optarg, "a percentage from 0 to 100");
			break;
		case O_BS:
			if (!cli_parse_bytes(optarg, &o->bs) || !o->bs || o->bs % 512 || o->bs > MAX_BS)
				return bad("--bs", optarg, "a multiple of 512 bytes up to 64m (4k, 1m suffixes)");
			break;
		case O_DEPTH:
			if (!parse_range(optarg, 1, MAX_IODEPTH, &o->iodepth))
				return bad("--iodepth", optarg, "a number from 1 to 4096");
			break;
		case O_QUEUES:
			if (!parse_range(optarg, 1, MAX_QUEUES, &o->queues))
				return bad("--queues", optarg, "a number from 1 to 64");
			break;
		case O_RUNTIME:
			if (!parse_range(optarg, 1, 1000000, &o->runtime))
				return bad("--runtime", optarg, "whole seconds, at least 1");
			runtime_given = true;
			break;
		case O_IOS:
			if (!cli_parse_u64(optarg, &o->ios) || !o->ios)
				return bad("--ios", optarg, "a number of requests, at least 1");
			break;
		case O_RAMP:
			if (!parse_range(optarg, 0, 1000000, &o->ramp))
				return bad("--ramp", optarg, "whole seconds");
			break;
		case O_SIZE:
			if (!cli_parse_bytes(optarg, &o->size) || !o->size || o->size % 512)
				return bad("--size", optarg, "bytes, a multiple of 512 (k, m, g, t suffixes)");
			break;
		case O_POLL:
			o->poll = true;
			break;
		case O_CPUS: {
			const char *p = optarg;

			o->ncpus = 0;
			for (;;) {
				char *end;
				long v;

				errno = 0;
				v = strtol(p, &end, 10);
				if (end == p || errno || v < 0 || v >= ncpu || (*end && *end != ',') ||
				    o->ncpus == MAX_QUEUES) {
					char want[80];

					snprintf(want, sizeof(want), "CPU numbers below %ld separated by commas, as 1,2", ncpu);
					return bad("--cpus", optarg, want);
				}
				o->cpus[o->ncpus++] = (int)v;
				if (!*end)
					break;
				p = end + 1;
			}
			break;
		}
		case O_SEED:
			if (!cli_parse_u64(optarg, &o->seed))
				return bad("--seed", optarg, "a number");
			break;
		case O_MEM:
			if (!cli_parse_bytes(optarg, &o->mem_size) || o->mem_size < (1u << 20) ||
			    o->mem_size > (1ull << 40))
				return bad("--mem-size", optarg, "bytes from 1m to 1t (k, m, g suffixes)");
			break;
		case O_HUGE:
			o->hugetlb = true;
			break;
		case O_QSIZE:
			if (!parse_range(optarg, 4, 32768, &o->queue_size) ||
			    (o->queue_size & (o->queue_size - 1)))
				return bad("--queue-size", optarg, "a power of two from 4 to 32768");
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_NOPROG:
			o->progress = false;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		default:
			if (optopt)
				fprintf(stderr, PROG ": option '%s' needs a value; run 'uvirtio bench blk --help'\n",
					argv[optind - 1]);
			else
				fprintf(stderr, PROG ": unknown option '%s'; run 'uvirtio bench blk --help'\n",
					argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'; run 'uvirtio bench blk --help'\n", argv[optind]);
		return -1;
	}
	if (!o->socket_path) {
		fprintf(stderr, PROG ": no backend given; name its socket with --socket-path=PATH\n");
		return -1;
	}
	if (o->ios && runtime_given) {
		fprintf(stderr, PROG ": give --runtime=SECONDS or --ios=N, not both\n");
		return -1;
	}
	if (o->ios) {
		o->runtime = 0;
		if (o->ios < o->queues) {
			fprintf(stderr, PROG ": --ios=%" PRIu64 " is fewer than one request per queue (--queues=%u)\n",
				o->ios, o->queues);
			return -1;
		}
	}
	if (o->ncpus && o->ncpus < o->queues) {
		fprintf(stderr, PROG ": --cpus names %u CPUs for %u queues; name one per queue\n", o->ncpus,
			o->queues);
		return -1;
	}
	if (o->queue_size && o->iodepth > o->queue_size) {
		fprintf(stderr, PROG ": --iodepth=%u is more than --queue-size=%u\n", o->iodepth, o->queue_size);
		return -1;
	}
	return 0;
}

struct totals {
	uint64_t ios[2], errors;
	struct bench_hist *lat[2];
};

static void print_lat_text(const char *name, const struct bench_hist *h, double secs, uint64_t bs)
{
	double iops = h->count / secs;

	printf("  %-6s IOPS %10.0f  %9.2f MiB/s  lat (us) mean %9.2f  p50 %9.2f  p99 %9.2f  p99.9 %9.2f  max %9.2f  (%" PRIu64 " ios)\n",
	       name, iops, iops * (double)bs / (1 << 20), bench_hist_mean(h) / 1000,
	       bench_hist_percentile(h, 50) / 1000.0, bench_hist_percentile(h, 99) / 1000.0,
	       bench_hist_percentile(h, 99.9) / 1000.0, h->max / 1000.0, h->count);
}

static void print_lat_json(const char *name, const struct bench_hist *h, double secs, uint64_t bs)
{
	double iops = h->count / secs;

	printf("\"%s\":{\"ios\":%" PRIu64 ",\"iops\":%.1f,\"mib_per_s\":%.3f,\"bytes_per_s\":%.0f,"
	       "\"lat_us\":{\"mean\":%.3f,\"min\":%.3f,\"p50\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f}}",
	       name, h->count, iops, iops * (double)bs / (1 << 20), iops * (double)bs,
	       bench_hist_mean(h) / 1000, h->min / 1000.0, bench_hist_percentile(h, 50) / 1000.0,
	       bench_hist_percentile(h, 99) / 1000.0, bench_hist_percentile(h, 99.9) / 1000.0,
	       h->max / 1000.0);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
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

static int setup_threads(struct run *r, struct uvirtio_blk_drv *b)
{
	const struct options *o = r->o;
	const struct uvirtio_blk_drv_limits *l = uvirtio_blk_drv_limits(b);
	uint64_t seed = o->seed;
	size_t seg = l->size_max && l->size_max < o->bs ? l->size_max & ~(size_t)511 : (size_t)o->bs;
	unsigned niov;

	if (!seg)
		seg = 512;
	niov = (unsigned)((o->bs + seg - 1) / seg);
	if (l->seg_max && niov > l->seg_max) {
		fprintf(stderr, PROG ": --bs=%" PRIu64 " needs %u segments of %zu bytes; the backend takes %u\n",
			o->bs, niov, seg, l->seg_max);
		return -EINVAL;
	}
	for (unsigned q = 0; q < o->queues; q++) {
		struct thread *t = &r->threads[q];

		t->run = r;
		t->queue = q;
		t->cpu = o->ncpus ? o->cpus[q] : -1;
		t->rng = splitmix64(&seed);
		if (!t->rng)
			t->rng = 1; /* xorshift's one fixed point */
		t->next_block = r->span_blocks * q / o->queues;
		t->quota = o->ios ? o->ios / o->queues + (q < o->ios % o->queues) : 0;
		t->ios = calloc(o->iodepth, sizeof(*t->ios));
		t->free_list = calloc(o->iodepth, sizeof(*t->free_list));
		t->stats = malloc(sizeof(*t->stats));
		if (!t->ios || !t->free_list || !t->stats)
			return -ENOMEM;
		bench_hist_init(&t->stats->lat[0]);
		bench_hist_init(&t->stats->lat[1]);
		for (unsigned i = 0; i < o->iodepth; i++) {
			struct io *io = &t->ios[i];
			char *buf = uvirtio_blk_drv_alloc_buf(b, (size_t)o->bs);

			io->t = t;
			io->iov = calloc(niov, sizeof(*io->iov));
			if (!buf || !io->iov) {
				fprintf(stderr, PROG ": no room for %u x %u buffers of %" PRIu64 " bytes in shared memory; raise --mem-size\n",
					o->queues, o->iodepth, o->bs);
				free(io->iov);
				io->iov = NULL;
				uvirtio_blk_drv_free_buf(b, buf);
				return -ENOMEM;
			}
			io->niov = niov;
			for (unsigned s = 0; s < niov; s++) {
				size_t off = (size_t)s * seg, len = (size_t)o->bs - off < seg ? (size_t)o->bs - off : seg;

				io->iov[s] = (struct iovec){ buf + off, len };
			}
			/* Writes carry a pattern rather than zeroes a backend might elide. */
			memset(buf, 0xa5, (size_t)o->bs);
			t->free_list[t->nfree++] = i;
		}
	}
	return 0;
}

static void free_threads(struct run *r, struct uvirtio_blk_drv *b)
{
	for (unsigned q = 0; q < MAX_QUEUES; q++) {
		struct thread *t = &r->threads[q];

		if (t->ios) {
			for (unsigned i = 0; i < r->o->iodepth; i++) {
				if (t->ios[i].iov)
					uvirtio_blk_drv_free_buf(b, t->ios[i].iov[0].iov_base);
				free(t->ios[i].iov);
			}
		}
		free(t->ios);
		free(t->free_list);
		free(t->stats);
	}
}

static void report(const struct run *r, const struct totals *tot, double secs, uint64_t capacity_bytes)
{
	const struct options *o = r->o;
	bool mixed = o->rw == RW_RANDRW || o->rw == RW_RW;
	uint64_t ios = tot->ios[0] + tot->ios[1];
	struct bench_hist *all = malloc(sizeof(*all));

	if (!all)
		return;
	bench_hist_init(all);
	bench_hist_merge(all, tot->lat[0]);
	bench_hist_merge(all, tot->lat[1]);
	if (o->json) {
		printf("{\"bench\":\"blk\",\"socket_path\":");
		json_string(o->socket_path);
		printf(",\"rw\":\"%s\",\"rwmixread\":%u,\"bs\":%" PRIu64 ",\"iodepth\":%u,\"queues\":%u,"
		       "\"runtime\":%u,\"ios_requested\":%" PRIu64 ",\"ramp\":%u,\"size\":%" PRIu64 ","
		       "\"capacity\":%" PRIu64 ",\"seed\":%" PRIu64 ",\"poll\":%s,\"hugetlb\":%s,\"cpus\":[",
		       rw_names[o->rw], o->rwmixread, o->bs, o->iodepth, o->queues, o->runtime, o->ios,
		       o->ramp, r->span_blocks * o->bs, capacity_bytes, o->seed, o->poll ? "true" : "false",
		       o->hugetlb ? "true" : "false");
		for (unsigned i = 0; i < o->ncpus && i < o->queues; i++)
			printf("%s%d", i ? "," : "", o->cpus[i]);
		printf("],\"elapsed_s\":%.6f,\"ios\":%" PRIu64 ",\"errors\":%" PRIu64 ",", secs, ios, tot->errors);
		print_lat_json("read", tot->lat[0], secs, o->bs);
		putchar(',');
		print_lat_json("write", tot->lat[1], secs, o->bs);
		putchar(',');
		print_lat_json("total", all, secs, o->bs);
		printf("}\n");
	} else {
		printf(PROG ": %s, bs %" PRIu64 ", iodepth %u, %u queue%s, %s, %" PRIu64 " bytes of %" PRIu64 "\n",
		       rw_names[o->rw], o->bs, o->iodepth, o->queues, o->queues == 1 ? "" : "s",
		       o->poll ? "polling" : "waiting on event fds", r->span_blocks * o->bs, capacity_bytes);
		if (tot->lat[0]->count || !mode_writes(o->rw))
			print_lat_text("read", tot->lat[0], secs, o->bs);
		if (tot->lat[1]->count || (mode_writes(o->rw) && !mixed) || (mixed && o->rwmixread < 100))
			print_lat_text("write", tot->lat[1], secs, o->bs);
		if (mixed)
			print_lat_text("total", all, secs, o->bs);
		printf("  %" PRIu64 " ios in %.3f s, %" PRIu64 " errors\n", ios, secs, tot->errors);
	}
	fflush(stdout);
	free(all);
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
	int ret = parse(&o, argc, argv), rc = 1;

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
		unsigned num = uvirtio_drvq_size(uvirtio_driver_vq(&r->blk.drv, q));

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

		report(r, &tot, secs, capacity_bytes);
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
