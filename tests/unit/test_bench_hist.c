// SPDX-License-Identifier: MIT
/*
 * The latency histogram of `uvirtio bench blk` (tools/bench_blk_stats.h):
 * buckets tile uint64_t with no gap or overlap, none is wider than 1/128 of
 * its values (so a percentile is within 1%), percentiles and the mean of
 * known data, and merging equals recording everything in one histogram.
 */
#include <stdlib.h>

#include "harness.h"
#include "../support/tools_internal.h"

static struct bench_hist h1, h2, h3;

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_hist_buckets_tile_uint64_without_gaps(void)
{
	CHECK_EQ(bench_hist_bucket_low(0), 0);
	for (unsigned i = 0; i + 1 < BENCH_HIST_BUCKETS; i++) {
		CHECK(bench_hist_bucket_low(i + 1) == bench_hist_bucket_low(i) + bench_hist_bucket_width(i));
		CHECK_EQ(bench_hist_index(bench_hist_bucket_low(i)), i);
		CHECK_EQ(bench_hist_index(bench_hist_bucket_low(i) + bench_hist_bucket_width(i) - 1), i);
	}
	CHECK_EQ(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
	CHECK(bench_hist_bucket_low(BENCH_HIST_BUCKETS - 1) + (bench_hist_bucket_width(BENCH_HIST_BUCKETS - 1) - 1) ==
	      UINT64_MAX);
}

/* The brief's bound: a reported value is within 1% of any value in its
 * bucket, so a bucket is at most 1/128 as wide as its smallest value. */
static void test_hist_bucket_relative_error_at_most_1_percent(void)
{
	uint64_t s = 88172645463325252ull;

	for (unsigned i = 0; i < 200000; i++) {
		uint64_t v = xorshift(&s) >> (xorshift(&s) % 64);
		unsigned b = bench_hist_index(v);
		uint64_t lo = bench_hist_bucket_low(b), w = bench_hist_bucket_width(b);
		uint64_t mid = lo + (w - 1) / 2;

		CHECK(v >= lo && v - lo < w);
		if (w > 1)
			CHECK(w <= lo / 128);
		CHECK((long double)(mid > v ? mid - v : v - mid) <= (long double)v / 100);
	}
}

static void test_hist_percentiles_of_uniform_values_within_1_percent(void)
{
	static const double ps[] = { 1, 50, 90, 99, 99.9 };

	bench_hist_init(&h1);
	for (uint64_t v = 1; v <= 100000; v++)
		bench_hist_record(&h1, v * 1000); /* 1 us to 100 ms, in ns */
	CHECK_EQ(h1.count, 100000);
	for (unsigned i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		double want = ps[i] * 1000 * 1000, got = (double)bench_hist_percentile(&h1, ps[i]);

		if (got < want * 0.99 || got > want * 1.01) {
			printf("# p%g: got %.0f, want %.0f\n", ps[i], got, want);
			CHECK(0);
		}
	}
	CHECK_EQ(bench_hist_percentile(&h1, 100), 100000000);
	CHECK_EQ(bench_hist_percentile(&h1, 0), 1000);
	CHECK(bench_hist_mean(&h1) == 50000500.0);
}

static void test_hist_percentile_clamped_to_min_and_max(void)
{
	bench_hist_init(&h1);
	bench_hist_record(&h1, 123457);
	CHECK_EQ(bench_hist_percentile(&h1, 50), 123457);
	CHECK_EQ(bench_hist_percentile(&h1, 99.9), 123457);
	CHECK_EQ(h1.min, 123457);
	CHECK_EQ(h1.max, 123457);
}

static void test_hist_empty_reports_zero(void)
{
	bench_hist_init(&h1);
	CHECK_EQ(bench_hist_percentile(&h1, 50), 0);
	CHECK(bench_hist_mean(&h1) == 0);
	bench_hist_init(&h2);
	bench_hist_merge(&h2, &h1);
	CHECK_EQ(h2.count, 0);
}

static void test_hist_merge_equals_recording_in_one(void)
{
	uint64_t s = 42;

	bench_hist_init(&h1);
	bench_hist_init(&h2);
	bench_hist_init(&h3);
	for (unsigned i = 0; i < 50000; i++) {
		uint64_t v = xorshift(&s) % 10000000;

		bench_hist_record(i % 3 ? &h1 : &h2, v);
		bench_hist_record(&h3, v);
	}
	bench_hist_merge(&h1, &h2);
	CHECK_EQ(h1.count, h3.count);
	CHECK_EQ(h1.min, h3.min);
	CHECK_EQ(h1.max, h3.max);
	CHECK(h1.sum == h3.sum);
	CHECK(!memcmp(h1.buckets, h3.buckets, sizeof(h1.buckets)));
	CHECK_EQ(bench_hist_percentile(&h1, 99.9), bench_hist_percentile(&h3, 99.9));
}

TEST_MAIN(T(test_hist_buckets_tile_uint64_without_gaps),
	  T(test_hist_bucket_relative_error_at_most_1_percent),
	  T(test_hist_percentiles_of_uniform_values_within_1_percent),
	  T(test_hist_percentile_clamped_to_min_and_max),
	  T(test_hist_empty_reports_zero),
	  T(test_hist_merge_equals_recording_in_one))
