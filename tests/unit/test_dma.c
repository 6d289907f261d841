// SPDX-License-Identifier: MIT
/* Driver-side shared memory: allocation, alignment, translation. */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "uvirtio/dma.h"

#define GA 0x70000000ull
#define SIZE 65536u

static _Alignas(4096) char shared[SIZE];

static void test_dma_init_refuses_zero_size_and_overflow(void)
{
	struct uvirtio_dma d;

	CHECK_EQ(uvirtio_dma_init(&d, shared, GA, 0), -EINVAL);
	CHECK_EQ(uvirtio_dma_init(&d, shared, UINT64_MAX - 10, SIZE), -EINVAL);
}

static void test_dma_alloc_is_aligned_and_zeroed(void)
{
	struct uvirtio_dma d;
	char *a, *b;

	memset(shared, 0xff, SIZE);
	CHECK_EQ(uvirtio_dma_init(&d, shared, GA, SIZE), 0);
	a = uvirtio_dma_alloc(&d, 10, 1);
	b = uvirtio_dma_alloc(&d, 100, 4096);
	CHECK(a && b);
	CHECK_EQ((uintptr_t)b % 4096, 0);
	CHECK(b >= a + 10);
	for (unsigned i = 0; i < 100; i++)
		CHECK_EQ(b[i], 0);
	CHECK(uvirtio_dma_alloc(&d, 10, 3) == NULL);
	CHECK(uvirtio_dma_alloc(&d, 0, 8) == NULL);
	uvirtio_dma_destroy(&d);
}

static void test_dma_alloc_fails_when_full_and_reuses_freed_space(void)
{
	struct uvirtio_dma d;
	char *a, *b, *c;

	CHECK_EQ(uvirtio_dma_init(&d, shared, GA, SIZE), 0);
	a = uvirtio_dma_alloc(&d, SIZE / 2, 64);
	b = uvirtio_dma_alloc(&d, SIZE / 2, 64);
	CHECK(a && b);
	CHECK(uvirtio_dma_alloc(&d, 1, 1) == NULL);
	uvirtio_dma_free(&d, a);
	c = uvirtio_dma_alloc(&d, SIZE / 4, 64);
	CHECK(c == a);
	uvirtio_dma_free(&d, NULL);
	uvirtio_dma_destroy(&d);
}

static void test_dma_addr_translates_only_inside_the_mapping(void)
{
	struct uvirtio_dma d;
	uint64_t addr = 0;

	char *base = shared + 4096;
	const size_t size = SIZE - 8192;

	/* The mapping is the middle of `shared`, so pointers around it are valid. */
	CHECK_EQ(uvirtio_dma_init(&d, base, GA, size), 0);
	CHECK_EQ(uvirtio_dma_addr(&d, base + 100, 10, &addr), 0);
	CHECK_EQ(addr, GA + 100);
	CHECK_EQ(uvirtio_dma_addr(&d, base + size - 10, 10, &addr), 0);
	CHECK_EQ(uvirtio_dma_addr(&d, base + size - 10, 11, &addr), -EFAULT);
	CHECK_EQ(uvirtio_dma_addr(&d, base - 1, 1, &addr), -EFAULT);
	CHECK_EQ(uvirtio_dma_addr(&d, base, size + 1, &addr), -EFAULT);
	uvirtio_dma_destroy(&d);
}

TEST_MAIN(T(test_dma_init_refuses_zero_size_and_overflow),
	  T(test_dma_alloc_is_aligned_and_zeroed),
	  T(test_dma_alloc_fails_when_full_and_reuses_freed_space),
	  T(test_dma_addr_translates_only_inside_the_mapping))
