/* SPDX-License-Identifier: MIT */
/*
 * `uvirtio bench blk`: the options and the state of a run, shared between
 * bench_blk.c (the command: the connection to the backend, the supervision
 * of a run), bench_blk_opts.c (the command line), bench_blk_load.c (the
 * queue threads that keep requests in flight) and bench_blk_report.c (the
 * results, as text or JSON).
 */
#ifndef UVIRTIO_TOOLS_BENCH_BLK_H
#define UVIRTIO_TOOLS_BENCH_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "bench_blk_stats.h"
#include "uvirtio/blk_drv.h"

#define PROG "uvirtio bench blk"
#define MAX_QUEUES 64u

enum rw_mode { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE, RW_RANDRW, RW_RW };

/* The --rw names, by mode (bench_blk_opts.c). */
extern const char *const rw_names[RW_RW + 1];

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

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline bool mode_random(enum rw_mode m)
{
	return m == RW_RANDREAD || m == RW_RANDWRITE || m == RW_RANDRW;
}

static inline bool mode_writes(enum rw_mode m)
{
	return m != RW_RANDREAD && m != RW_READ;
}

struct totals {
	uint64_t ios[2], errors;
	struct bench_hist *lat[2];
};

/* bench_blk_opts.c. Return: 0 to run, 1 after --help, -1 for a bad option
 * (message printed). */
int bench_blk_parse(struct options *o, int argc, char **argv);

/* bench_blk_load.c */
/* Set up each queue's thread: its seed, its quota, its request slots with
 * their buffers in shared memory. Return: 0, or -errno (message printed). */
int setup_threads(struct run *r, struct uvirtio_blk_drv *b);
/* A queue's thread: keeps --iodepth requests in flight until the run ends. */
void *queue_thread(void *arg);
void free_threads(struct run *r, struct uvirtio_blk_drv *b);

/* bench_blk_report.c: the results on stdout, as text or (--json) JSON. */
void bench_blk_report(const struct run *r, const struct totals *tot, double secs, uint64_t capacity_bytes);

#endif
