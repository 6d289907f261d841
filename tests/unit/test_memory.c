// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdint.h>

#include "harness.h"
#include "uvirtio/memory.h"
#include "../support/memory_internal.h"

static char backing[3][4096];

static struct uvirtio_mem_region region(uint64_t ga, uint64_t size, void *host)
{
	return (struct uvirtio_mem_region){ .guest_addr = ga, .size = size, .host_addr = host, .fd = -1 };
}

/* A fresh map of two 4 KiB regions, backing[0] at @ga0 then backing[1] at @ga1.
 * Return: 0, or the error of the first add that failed. */
static int mem_with_two_regions(struct uvirtio_mem *m, uint64_t ga0, uint64_t ga1)
{
	struct uvirtio_mem_region a = region(ga0, 4096, backing[0]);
	struct uvirtio_mem_region b = region(ga1, 4096, backing[1]);
	int err;

	uvirtio_mem_init(m);
	err = uvirtio_mem_add(m, &a);
	return err ? err : uvirtio_mem_add(m, &b);
}

static void test_mem_translates_inside_one_region(void)
{
	struct uvirtio_mem m;
	struct uvirtio_mem_region r = region(0x10000, 4096, backing[0]);
	struct iovec iov[4];

	uvirtio_mem_init(&m);
	CHECK_EQ(uvirtio_mem_add(&m, &r), 0);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x10010, 100, iov, 4), 1);
	CHECK(iov[0].iov_base == backing[0] + 0x10);
	CHECK_EQ(iov[0].iov_len, 100);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x10000, 4096, iov, 4), 1);
}

static void test_mem_range_spanning_two_adjacent_regions_gives_two_iovecs(void)
{
	struct uvirtio_mem m;
	struct uvirtio_mem_region a = region(0x10000, 4096, backing[0]);
	struct uvirtio_mem_region b = region(0x11000, 4096, backing[1]);
	struct iovec iov[4];

	uvirtio_mem_init(&m);
	/* Added out of order: the map keeps them sorted. */
	CHECK_EQ(uvirtio_mem_add(&m, &b), 0);
	CHECK_EQ(uvirtio_mem_add(&m, &a), 0);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x10ff0, 0x20, iov, 4), 2);
	CHECK(iov[0].iov_base == backing[0] + 0xff0);
	CHECK_EQ(iov[0].iov_len, 0x10);
	CHECK(iov[1].iov_base == backing[1]);
	CHECK_EQ(iov[1].iov_len, 0x10);
}

static void test_mem_refuses_range_outside_regions(void)
{
	struct uvirtio_mem m;
	struct uvirtio_mem_region r = region(0x10000, 4096, backing[0]);
	struct iovec iov[4];

	uvirtio_mem_init(&m);
	CHECK_EQ(uvirtio_mem_add(&m, &r), 0);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x0, 16, iov, 4), -EFAULT);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x11000, 1, iov, 4), -EFAULT);
	/* Starts inside, ends one byte past the region. */
	CHECK_EQ(uvirtio_mem_translate(&m, 0x10000, 4097, iov, 4), -EFAULT);
	CHECK(uvirtio_mem_ptr(&m, 0x10000, 4097) == NULL);
}

static void test_mem_refuses_range_across_a_hole(void)
{
	struct uvirtio_mem m;
	struct iovec iov[4];

	CHECK_EQ(mem_with_two_regions(&m, 0x10000, 0x12000), 0);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x10ff0, 0x2000, iov, 4), -EFAULT);
}

static void test_mem_refuses_address_arithmetic_overflow(void)
{
	struct uvirtio_mem m;
	struct uvirtio_mem_region r = region(UINT64_MAX - 4095, 4096, backing[0]);
	struct iovec iov[4];

	uvirtio_mem_init(&m);
	CHECK_EQ(uvirtio_mem_add(&m, &r), 0);
	CHECK_EQ(uvirtio_mem_translate(&m, UINT64_MAX - 15, 16, iov, 4), 1);
	CHECK_EQ(uvirtio_mem_translate(&m, UINT64_MAX - 15, 17, iov, 4), -EFAULT);
	CHECK_EQ(uvirtio_mem_translate(&m, UINT64_MAX, UINT64_MAX, iov, 4), -EFAULT);
	CHECK(uvirtio_mem_ptr(&m, UINT64_MAX - 15, UINT64_MAX) == NULL);
}

static void test_mem_add_refuses_overlap_zero_size_null_host_and_overflow(void)
{
	struct uvirtio_mem m;
	struct uvirtio_mem_region a = region(0x10000, 0x2000, backing[0]);
	struct uvirtio_mem_region over_end = region(0x11fff, 0x10, backing[1]);
	struct uvirtio_mem_region over_start = region(0xf000, 0x1001, backing[1]);
	struct uvirtio_mem_region inside = region(0x10800, 0x10, backing[1]);
	struct uvirtio_mem_region zero = region(0x20000, 0, backing[1]);
	struct uvirtio_mem_region wraps = region(UINT64_MAX - 10, 4096, backing[1]);
	struct uvirtio_mem_region unmapped = region(0x30000, 4096, NULL);

	uvirtio_mem_init(&m);
	CHECK_EQ(uvirtio_mem_add(&m, &a), 0);
	CHECK_EQ(uvirtio_mem_add(&m, &over_end), -EINVAL);
	CHECK_EQ(uvirtio_mem_add(&m, &over_start), -EINVAL);
	CHECK_EQ(uvirtio_mem_add(&m, &inside), -EINVAL);
	CHECK_EQ(uvirtio_mem_add(&m, &zero), -EINVAL);
	CHECK_EQ(uvirtio_mem_add(&m, &wraps), -EINVAL);
	CHECK_EQ(uvirtio_mem_add(&m, &unmapped), -EINVAL);
	CHECK_EQ(mem_nregions(&m), 1);
}

static void test_mem_add_refuses_more_than_max_regions(void)
{
	static struct uvirtio_mem m;
	struct uvirtio_mem_region r;

	uvirtio_mem_init(&m);
	for (unsigned i = 0; i < UVIRTIO_MEM_MAX_REGIONS; i++) {
		r = region(0x100000ull * (i + 1), 4096, backing[0]);
		CHECK_EQ(uvirtio_mem_add(&m, &r), 0);
	}
	r = region(0, 4096, backing[0]);
	CHECK_EQ(uvirtio_mem_add(&m, &r), -ENOSPC);
	/* Lookups still find the last region by binary search. */
	CHECK(uvirtio_mem_find(&m, 0x100000ull * UVIRTIO_MEM_MAX_REGIONS + 5) != NULL);
}

static void test_mem_refuses_when_iovecs_run_out(void)
{
	struct uvirtio_mem m;
	struct iovec iov[1];

	CHECK_EQ(mem_with_two_regions(&m, 0x10000, 0x11000), 0);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x10ff0, 0x20, iov, 1), -ENOBUFS);
}

static void test_mem_ptr_refuses_range_across_regions(void)
{
	struct uvirtio_mem m;

	CHECK_EQ(mem_with_two_regions(&m, 0x10000, 0x11000), 0);
	CHECK(uvirtio_mem_ptr(&m, 0x10ff0, 0x10) == backing[0] + 0xff0);
	CHECK(uvirtio_mem_ptr(&m, 0x10ff0, 0x20) == NULL);
	CHECK(uvirtio_mem_ptr(&m, 0x10000, 0) == NULL);
}

static void test_mem_remove_needs_exact_region(void)
{
	struct uvirtio_mem m;
	struct uvirtio_mem_region a = region(0x10000, 4096, backing[0]), out;
	struct iovec iov[1];

	uvirtio_mem_init(&m);
	CHECK_EQ(uvirtio_mem_add(&m, &a), 0);
	CHECK_EQ(uvirtio_mem_remove(&m, 0x10000, 100, NULL), -ENOENT);
	CHECK_EQ(uvirtio_mem_remove(&m, 0x10000, 4096, &out), 0);
	CHECK(out.host_addr == backing[0]);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x10000, 1, iov, 1), -EFAULT);
}

static void test_mem_zero_length_gives_no_iovecs(void)
{
	struct uvirtio_mem m;
	struct iovec iov[1];

	uvirtio_mem_init(&m);
	CHECK_EQ(uvirtio_mem_translate(&m, 0x1234, 0, iov, 1), 0);
}

TEST_MAIN(T(test_mem_translates_inside_one_region),
	  T(test_mem_range_spanning_two_adjacent_regions_gives_two_iovecs),
	  T(test_mem_refuses_range_outside_regions),
	  T(test_mem_refuses_range_across_a_hole),
	  T(test_mem_refuses_address_arithmetic_overflow),
	  T(test_mem_add_refuses_overlap_zero_size_null_host_and_overflow),
	  T(test_mem_add_refuses_more_than_max_regions),
	  T(test_mem_refuses_when_iovecs_run_out),
	  T(test_mem_ptr_refuses_range_across_regions),
	  T(test_mem_remove_needs_exact_region),
	  T(test_mem_zero_length_gives_no_iovecs))
