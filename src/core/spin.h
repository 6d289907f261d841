/* SPDX-License-Identifier: MIT */
/*
 * Private: what a queue thread that polls a ring before it sleeps needs (blk
 * and net devices): a pause between looks and a monotonic clock.
 */
#ifndef UVIRTIO_SRC_SPIN_H
#define UVIRTIO_SRC_SPIN_H

#include <stdint.h>
#include <time.h>

/* Between two looks at a ring: tells the CPU this is a spin loop. */
static inline void spin_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static inline uint64_t spin_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

#endif
