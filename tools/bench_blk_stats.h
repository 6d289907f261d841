/* SPDX-License-Identifier: MIT */
/*
 * Latency histograms for `uvirtio bench blk`: log-linear buckets, as
 * HdrHistogram lays them out. Values below 256 have a bucket each; above,
 * every power of two is cut into 128 equal buckets, so a bucket is at most
 * 1/128 of its values wide and its midpoint is within 0.4% of any value in
 * it. 7424 buckets cover all of uint64_t: recording never allocates and
 * never fails. One histogram per thread, merged once the threads are done.
 */
#ifndef UVIRTIO_BENCH_BLK_STATS_H
#define UVIRTIO_BENCH_BLK_STATS_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7u
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
/* Linear up to 2 * SUB, then SUB buckets for each of the remaining
 * 64 - SUB_BITS - 1 powers of two. */
#define BENCH_HIST_BUCKETS ((64u - BENCH_HIST_SUB_BITS + 1u) * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t count;
	uint64_t min, max;
	long double sum; /* exact up to 2^64 ns, for the mean */
	uint64_t buckets[BENCH_HIST_BUCKETS];
};

/** bench_hist_init() - make @h empty. */
void bench_hist_init(struct bench_hist *h);

/** bench_hist_index() - the bucket @v falls into. */
unsigned bench_hist_index(uint64_t v);

/** bench_hist_bucket_low() - the smallest value bucket @i holds. */
uint64_t bench_hist_bucket_low(unsigned i);

/** bench_hist_bucket_width() - how many values bucket @i holds. */
uint64_t bench_hist_bucket_width(unsigned i);

/** bench_hist_record() - count one value. No allocation, no lock: one thread per histogram. */
static inline void bench_hist_record(struct bench_hist *h, uint64_t v)
{
	h->buckets[bench_hist_index(v)]++;
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += v;
}

/** bench_hist_merge() - add every value counted in @src to @dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/**
 * bench_hist_percentile() - the value below which @p percent (0 to 100) of
 * the values lie: the midpoint of the bucket holding the value of rank
 * ceil(p/100 * count), clamped to [min, max]. 0 for an empty histogram.
 */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);

/** bench_hist_mean() - the exact mean; 0 for an empty histogram. */
double bench_hist_mean(const struct bench_hist *h);

#endif
