// SPDX-License-Identifier: MIT
/* Log-linear latency histograms (see bench_blk_stats.h). */
#include <string.h>

#include "bench_blk_stats.h"

void bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

unsigned bench_hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * BENCH_HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	/* Keep the top SUB_BITS + 1 bits: the leading one picks the power of
	 * two, the SUB_BITS below it the bucket inside it. */
	shift = msb - BENCH_HIST_SUB_BITS;
	return (shift + 1) * BENCH_HIST_SUB + (unsigned)((v >> shift) - BENCH_HIST_SUB);
}

uint64_t bench_hist_bucket_low(unsigned i)
{
	unsigned shift;

	if (i < 2 * BENCH_HIST_SUB)
		return i;
	shift = i / BENCH_HIST_SUB - 1;
	return (uint64_t)(BENCH_HIST_SUB + i % BENCH_HIST_SUB) << shift;
}

uint64_t bench_hist_bucket_width(unsigned i)
{
	if (i < 2 * BENCH_HIST_SUB)
		return 1;
	return (uint64_t)1 << (i / BENCH_HIST_SUB - 1);
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	if (!src->count)
		return;
	if (!dst->count || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	{
		long double x = (long double)p / 100 * h->count;

		rank = (uint64_t)x;
		if ((long double)rank < x) /* ceil, without libm */
			rank++;
	}
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = bench_hist_bucket_low(i) + (bench_hist_bucket_width(i) - 1) / 2;

			return v < h->min ? h->min : v > h->max ? h->max : v;
		}
	}
	return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
	return h->count ? (double)(h->sum / h->count) : 0;
}
