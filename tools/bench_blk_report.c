// SPDX-License-Identifier: MIT
/*
 * `uvirtio bench blk`, the report: IOPS, MiB/s and latency percentiles for
 * reads, writes and (mixed) both, as text lines or one JSON object that
 * also holds the run's parameters.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_blk.h"

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
void bench_blk_report(const struct run *r, const struct totals *tot, double secs, uint64_t capacity_bytes)
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
