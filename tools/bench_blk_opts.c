// SPDX-License-Identifier: MIT
/*
 * `uvirtio bench blk`, the command line: --help, and the options read and
 * checked against each other before anything connects.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_blk.h"
#include "cli_parse.h"

#define MAX_IODEPTH 4096u
#define MAX_BS (64ull << 20)

const char *const rw_names[] = {
	[RW_RANDREAD] = "randread", [RW_RANDWRITE] = "randwrite", [RW_READ] = "read",
	[RW_WRITE] = "write",       [RW_RANDRW] = "randrw",       [RW_RW] = "rw",
};
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

int bench_blk_parse(struct options *o, int argc, char **argv)
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
