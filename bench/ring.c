// SPDX-License-Identifier: MIT
/*
 * `uvirtio bench ring`: the ring alone, split and packed, with and without
 * IN_ORDER, in one run: driver and device on two threads pinned to two CPUs,
 * as the Linux kernel's tools/virtio/ringtest does. The driver keeps the ring full, adding and kicking in batches and
 * collecting what is used; the device pops and pushes in batches. Both sides
 * poll and keep their notification suppression up to date (kick_prepare and
 * needs_notify run with their barriers), but a notification that would be
 * sent is only counted: the benchmark measures the ring, not eventfds.
 * Every pop does the full validation of a hostile ring.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "../tools/cli_parse.h"
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"

#define GUEST_ADDR 0x100000000ull
#define BUF_SIZE 64u

struct options {
	unsigned ring_size;
	unsigned long buffers;
	unsigned runs;
	unsigned batches[8];
	unsigned nbatches;
	uint64_t layouts[2]; /* 0 (split) and/or RING_PACKED */
	unsigned nlayouts;
	uint64_t in_orders[2]; /* 0 and/or IN_ORDER */
	unsigned nin_orders;
	uint64_t modes[4]; /* EVENT_IDX / INDIRECT combinations */
	unsigned nmodes;
	int driver_cpu, device_cpu;
	bool json;
	bool progress;
};

struct result {
	unsigned batch;
	bool packed, in_order, event_idx, indirect;
	double ns_per_buffer; /* median over the runs */
	double buffers_per_sec;
	unsigned long kicks, interrupts; /* of the median run */
};

struct run {
	const struct options *o;
	unsigned batch;
	uint64_t features;
	struct uvirtio_dma dma;
	bool dma_ready;
	struct uvirtio_mem mem;
	struct uvirtio_drvq drvq;
	struct uvirtio_devq devq;
	char *buffers;
	void *region;
	size_t region_size;
	unsigned long completed; /* read by the progress printer */
	unsigned long kicks, interrupts;
	double driver_end, device_end; /* when each thread finished, ns */
	int error; /* set by either thread; the other one then stops */
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *driver_thread(void *arg)
{
	struct run *r = arg;
	struct uvirtio_drvq *q = &r->drvq;
	unsigned long started = 0, completed = 0, total = r->o->buffers;
	unsigned parts = r->features & UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) ? 2 : 1;

	cli_pin_cpu(r->o->driver_cpu);
	/* The driver polls for used buffers: no callbacks. */
	uvirtio_drvq_disable_cb(q);
	while (completed < total && !__atomic_load_n(&r->error, __ATOMIC_RELAXED)) {
		unsigned added = 0;
		bool progress = false;
		void *token;
		uint32_t len;
		int ret;

		while (added < r->batch && started < total) {
			char *b = r->buffers + (started % r->o->ring_size) * BUF_SIZE;
			struct iovec iov[2] = { { b, 16 }, { b + 16, BUF_SIZE - 16 } };

			/* One part: a writable buffer; two: header and data. */
			ret = parts == 1 ? uvirtio_drvq_add(q, NULL, 0, iov + 1, 1, b)
					 : uvirtio_drvq_add(q, iov, 1, iov + 1, 1, b);
			if (ret == -ENOSPC || ret == -ENOMEM)
				break;
			if (ret) {
				__atomic_store_n(&r->error, ret, __ATOMIC_RELAXED);
				return NULL;
			}
			added++;
			started++;
		}
		if (added) {
			progress = true;
			if (uvirtio_drvq_kick_prepare(q))
				r->kicks++;
		}
		while ((ret = uvirtio_drvq_get(q, &token, &len)) == 1) {
			completed++;
			progress = true;
		}
		if (ret < 0) {
			__atomic_store_n(&r->error, ret, __ATOMIC_RELAXED);
			return NULL;
		}
		__atomic_store_n(&r->completed, completed, __ATOMIC_RELAXED);
		if (!progress)
			cli_cpu_relax();
	}
	r->driver_end = now_ns();
	return NULL;
}

static void *device_thread(void *arg)
{
	struct run *r = arg;
	struct uvirtio_devq *q = &r->devq;
	struct uvirtio_used done[256];
	struct iovec iov[4];
	struct uvirtio_req req;
	unsigned long served = 0, total = r->o->buffers;

	cli_pin_cpu(r->o->device_cpu);
	uvirtio_req_init(&req, iov, 4);
	/* A polling device asks not to be kicked, as vhost does while busy. */
	uvirtio_devq_disable_notify(q);
	while (served < total && !__atomic_load_n(&r->error, __ATOMIC_RELAXED)) {
		unsigned n = 0;
		int ret = 0;

		while (n < r->batch && (ret = uvirtio_devq_pop(q, &req)) == 1) {
			done[n].id = req.id;
			done[n].len = req.in_len;
			n++;
		}
		if (ret < 0) {
			__atomic_store_n(&r->error, ret, __ATOMIC_RELAXED);
			return NULL;
		}
		if (!n) {
			cli_cpu_relax();
			continue;
		}
		ret = uvirtio_devq_push_batch(q, done, n);
		if (ret) {
			__atomic_store_n(&r->error, ret, __ATOMIC_RELAXED);
			return NULL;
		}
		if (uvirtio_devq_needs_notify(q))
			r->interrupts++;
		served += n;
	}
	r->device_end = now_ns();
	return NULL;
}

static int run_setup(struct run *r)
{
	struct uvirtio_mem_region region;
	struct uvirtio_drvq_ring ring;
	unsigned num = r->o->ring_size;
	int ret;

	r->region_size = uvirtio_drvq_ring_bytes(num, r->features) + (size_t)num * 64 * 16 + (size_t)num * BUF_SIZE +
			 (1u << 20);
	r->region = aligned_alloc(4096, (r->region_size + 4095) & ~(size_t)4095);
	if (!r->region)
		return -ENOMEM;
	ret = uvirtio_dma_init(&r->dma, r->region, GUEST_ADDR, r->region_size);
	if (ret)
		return ret;
	r->dma_ready = true;
	ret = uvirtio_drvq_create(&r->drvq, &r->dma, 0, num, r->features, 2);
	if (ret)
		return ret;
	r->buffers = uvirtio_dma_alloc(&r->dma, (size_t)num * BUF_SIZE, 64);
	if (!r->buffers)
		return -ENOMEM;
	region = (struct uvirtio_mem_region){ .guest_addr = GUEST_ADDR, .size = r->region_size,
					      .host_addr = r->region, .fd = -1 };
	uvirtio_mem_init(&r->mem);
	ret = uvirtio_mem_add(&r->mem, &region);
	if (ret)
		return ret;
	uvirtio_drvq_ring(&r->drvq, &ring);
	return uvirtio_devq_setup(&r->devq, &r->mem, num, ring.desc, ring.avail, ring.used,
				  r->features);
}

static void run_teardown(struct run *r)
{
	/* A packed or IN_ORDER queue holds per-slot state until reset. */
	uvirtio_devq_reset(&r->devq);
	uvirtio_drvq_destroy(&r->drvq);
	if (r->dma_ready)
		uvirtio_dma_destroy(&r->dma);
	free(r->region);
}

#define EV UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)
#define IND UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)
#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)

static const char *const mode_names[] = { "plain", "event_idx", "indirect", "event_idx+indirect" };
static const uint64_t mode_bits[] = { 0, EV, IND, EV | IND };

static const char *mode_name(uint64_t features)
{
	bool ev = features & EV, ind = features & IND;

	return mode_names[(ev ? 1 : 0) + (ind ? 2 : 0)];
}

static const char *layout_name(uint64_t features)
{
	if (features & PACKED)
		return features & IN_ORDER ? "packed+in_order" : "packed";
	return features & IN_ORDER ? "split+in_order" : "split";
}

/* One timed run; returns ns per buffer, or a negative errno. */
static double run_once(const struct options *o, unsigned batch, uint64_t features,
		       const char *label, struct run *out)
{
	pthread_t drv, dev;
	double start, elapsed;
	struct run *r = out;
	int ret;

	memset(r, 0, sizeof(*r));
	r->o = o;
	r->batch = batch;
	r->features = features;
	ret = run_setup(r);
	if (ret) {
		run_teardown(r);
		return ret;
	}
	start = now_ns();
	ret = pthread_create(&dev, NULL, device_thread, r);
	if (ret) {
		run_teardown(r);
		return -ret;
	}
	ret = pthread_create(&drv, NULL, driver_thread, r);
	if (ret) {
		__atomic_store_n(&r->error, -ret, __ATOMIC_RELAXED);
		pthread_join(dev, NULL);
		run_teardown(r);
		return -ret;
	}
	if (o->progress) {
		for (;;) {
			unsigned long c = __atomic_load_n(&r->completed, __ATOMIC_RELAXED);

			fprintf(stderr, "\r  %-40s %3lu%%", label, c * 100 / o->buffers);
			if (c >= o->buffers || __atomic_load_n(&r->error, __ATOMIC_RELAXED))
				break;
			usleep(100000);
		}
	}
	pthread_join(drv, NULL);
	pthread_join(dev, NULL);
	/* The threads' own end times: the progress printer's sleep must not count. */
	elapsed = (r->driver_end > r->device_end ? r->driver_end : r->device_end) - start;
	run_teardown(r);
	if (r->error)
		return r->error;
	return elapsed / (double)o->buffers;
}

struct sample {
	double ns;
	unsigned long kicks, interrupts;
};

static int cmp_sample(const void *a, const void *b)
{
	double x = ((const struct sample *)a)->ns, y = ((const struct sample *)b)->ns;

	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uvirtio bench ring [options]\n"
		"  --ring-size=N      entries in the ring, a power of two (default 256)\n"
		"  --buffers=N        buffers per run (default 10000000, as ringtest)\n"
		"  --batch=A,B,...    batch sizes (default 1,16,64)\n"
		"  --layouts=L,...    split, packed (default both)\n"
		"  --in-order=X,...   off, on: without and with VIRTIO_F_IN_ORDER (default both)\n"
		"  --modes=M,...      plain, event_idx, indirect, event_idx+indirect (default all)\n"
		"  --runs=N           runs per configuration, taken round-robin; the median is reported (default 5)\n"
		"  --cpus=D,V         CPUs of the driver and device threads (default 0,1)\n"
		"  --json             machine-readable output on stdout\n"
		"  --no-progress      no progress line on stderr\n");
}

/* A comma-separated list of @n known @names into their @bits, each once. */
static int parse_names(const char *arg, const char *opt, const char *const *names,
		       const uint64_t *bits, unsigned n, uint64_t *out, unsigned *nout)
{
	char buf[128], *save = NULL;

	*nout = 0;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		unsigned i = 0;

		while (i < n && strcmp(w, names[i]))
			i++;
		for (unsigned j = 0; i < n && j < *nout; j++)
			if (out[j] == bits[i])
				i = n;
		if (i == n) {
			fprintf(stderr, "uvirtio bench ring: %s takes", opt);
			for (unsigned j = 0; j < n; j++)
				fprintf(stderr, "%s %s", j ? "," : "", names[j]);
			fprintf(stderr, ", each once, separated by commas; not '%s'\n", arg);
			return -1;
		}
		out[(*nout)++] = bits[i];
	}
	if (!*nout) {
		fprintf(stderr, "uvirtio bench ring: %s is empty\n", opt);
		return -1;
	}
	return 0;
}

static int parse(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ring-size", required_argument, NULL, 's' }, { "buffers", required_argument, NULL, 'b' },
		{ "batch", required_argument, NULL, 'B' },     { "runs", required_argument, NULL, 'r' },
		{ "cpus", required_argument, NULL, 'c' },      { "json", no_argument, NULL, 'j' },
		{ "no-progress", no_argument, NULL, 'n' },     { "help", no_argument, NULL, 'h' },
		{ "layouts", required_argument, NULL, 'L' },   { "in-order", required_argument, NULL, 'I' },
		{ "modes", required_argument, NULL, 'M' },
		{ 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char *end;
	int c;

	*o = (struct options){ .ring_size = 256, .buffers = 10000000, .runs = 5,
			       .batches = { 1, 16, 64 }, .nbatches = 3,
			       .layouts = { 0, PACKED }, .nlayouts = 2,
			       .in_orders = { 0, IN_ORDER }, .nin_orders = 2,
			       .modes = { 0, EV, IND, EV | IND }, .nmodes = 4,
			       .driver_cpu = 0, .device_cpu = ncpu > 1 ? 1 : -1, .progress = true };
	if (ncpu < 2)
		o->driver_cpu = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->ring_size = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !o->ring_size || (o->ring_size & (o->ring_size - 1)) ||
			    o->ring_size > UVIRTIO_QUEUE_SIZE_MAX) {
				fprintf(stderr, "uvirtio bench ring: --ring-size must be a power of two from 1 to 32768, not '%s'\n", optarg);
				return -1;
			}
			break;
		case 'b':
			o->buffers = strtoul(optarg, &end, 10);
			if (*end || !o->buffers) {
				fprintf(stderr, "uvirtio bench ring: --buffers must be a positive number, not '%s'\n", optarg);
				return -1;
			}
			break;
		case 'B':
			o->nbatches = 0;
			for (char *p = optarg; *p && o->nbatches < 8; p = *end ? end + 1 : end) {
				unsigned long v = strtoul(p, &end, 10);

				if (end == p || (*end && *end != ',') || !v || v > 256) {
					fprintf(stderr, "uvirtio bench ring: --batch takes numbers from 1 to 256 separated by commas, not '%s'\n", optarg);
					return -1;
				}
				o->batches[o->nbatches++] = (unsigned)v;
			}
			break;
		case 'r':
			o->runs = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !o->runs || o->runs > 99) {
				fprintf(stderr, "uvirtio bench ring: --runs must be from 1 to 99, not '%s'\n", optarg);
				return -1;
			}
			break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &o->driver_cpu, &o->device_cpu) != 2 ||
			    o->driver_cpu < 0 || o->device_cpu < 0 || o->driver_cpu >= ncpu || o->device_cpu >= ncpu) {
				fprintf(stderr, "uvirtio bench ring: --cpus takes two CPU numbers below %ld, as 0,1, not '%s'\n", ncpu, optarg);
				return -1;
			}
			break;
		case 'L':
			if (parse_names(optarg, "--layouts", (const char *const[]){ "split", "packed" },
					(const uint64_t[]){ 0, PACKED }, 2, o->layouts, &o->nlayouts))
				return -1;
			break;
		case 'I':
			if (parse_names(optarg, "--in-order", (const char *const[]){ "off", "on" },
					(const uint64_t[]){ 0, IN_ORDER }, 2, o->in_orders, &o->nin_orders))
				return -1;
			break;
		case 'M':
			if (parse_names(optarg, "--modes", mode_names, mode_bits, 4, o->modes, &o->nmodes))
				return -1;
			break;
		case 'j':
			o->json = true;
			break;
		case 'n':
			o->progress = false;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uvirtio bench ring: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* Configuration @c of @o, batch outermost, then layout, in-order, mode. */
static void config_of(const struct options *o, unsigned c, unsigned *batch, uint64_t *features)
{
	unsigned m = c % o->nmodes, io = c / o->nmodes % o->nin_orders;
	unsigned l = c / (o->nmodes * o->nin_orders) % o->nlayouts;

	*batch = o->batches[c / (o->nmodes * o->nin_orders * o->nlayouts)];
	*features = o->modes[m] | o->in_orders[io] | o->layouts[l];
}

int bench_ring_main(int argc, char **argv)
{
	static struct sample samples[8 * 2 * 2 * 4][99];
	static struct result results[8 * 2 * 2 * 4];
	static struct run run_state;
	unsigned total_configs;
	struct options o;
	int ret = parse(&o, argc, argv);

	if (ret)
		return ret > 0 ? 0 : 2;
	total_configs = o.nbatches * o.nlayouts * o.nin_orders * o.nmodes;
	if (!o.json)
		printf("uvirtio bench ring: %u entries, %lu buffers per run, median of %u runs, "
		       "driver on CPU %d, device on CPU %d\n",
		       o.ring_size, o.buffers, o.runs, o.driver_cpu, o.device_cpu);

	/* Round-robin: run k of every configuration before run k + 1 of any, so
	 * a noisy minute on a shared machine spoils one run of many
	 * configurations (which the median drops), not every run of one. */
	for (unsigned k = 0; k < o.runs; k++) {
		for (unsigned c = 0; c < total_configs; c++) {
			uint64_t features;
			unsigned batch;
			char label[96];
			double ns;

			config_of(&o, c, &batch, &features);
			snprintf(label, sizeof(label), "run %u/%u: batch %u %s %s", k + 1, o.runs, batch,
				 layout_name(features), mode_name(features));
			ns = run_once(&o, batch, features, label, &run_state);
			if (ns < 0) {
				fprintf(stderr, "\nuvirtio bench ring: %s: run failed: %s\n", label,
					strerror((int)-ns));
				return 1;
			}
			samples[c][k] = (struct sample){ ns, run_state.kicks, run_state.interrupts };
		}
	}
	if (o.progress)
		fprintf(stderr, "\r%-60s\r", "");

	for (unsigned c = 0; c < total_configs; c++) {
		struct result *res = &results[c];
		struct sample sorted[99];
		uint64_t features;
		unsigned batch;

		config_of(&o, c, &batch, &features);
		memcpy(sorted, samples[c], o.runs * sizeof(sorted[0]));
		qsort(sorted, o.runs, sizeof(sorted[0]), cmp_sample);
		*res = (struct result){ .batch = batch,
					.packed = features & PACKED,
					.in_order = features & IN_ORDER,
					.event_idx = features & EV,
					.indirect = features & IND,
					.ns_per_buffer = sorted[o.runs / 2].ns,
					.kicks = sorted[o.runs / 2].kicks,
					.interrupts = sorted[o.runs / 2].interrupts };
		res->buffers_per_sec = 1e9 / res->ns_per_buffer;
		if (!o.json)
			printf("batch %-3u %-15s %-19s %8.1f ns/buffer %12.0f buffers/s  kicks %lu  interrupts %lu\n",
			       res->batch, layout_name(features), mode_name(features), res->ns_per_buffer,
			       res->buffers_per_sec, res->kicks, res->interrupts);
	}

	if (o.json) {
		printf("{\"bench\":\"ring\",\"ring_size\":%u,\"buffers\":%lu,\"runs\":%u,"
		       "\"driver_cpu\":%d,\"device_cpu\":%d,\"results\":[",
		       o.ring_size, o.buffers, o.runs, o.driver_cpu, o.device_cpu);
		for (unsigned i = 0; i < total_configs; i++)
			printf("%s{\"batch\":%u,\"layout\":\"%s\",\"in_order\":%s,\"event_idx\":%s,"
			       "\"indirect\":%s,\"ns_per_buffer\":%.2f,\"buffers_per_sec\":%.0f,"
			       "\"kicks\":%lu,\"interrupts\":%lu}",
			       i ? "," : "", results[i].batch, results[i].packed ? "packed" : "split",
			       results[i].in_order ? "true" : "false",
			       results[i].event_idx ? "true" : "false",
			       results[i].indirect ? "true" : "false", results[i].ns_per_buffer,
			       results[i].buffers_per_sec, results[i].kicks, results[i].interrupts);
		printf("]}\n");
	}
	return 0;
}
