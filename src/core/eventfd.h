/* SPDX-License-Identifier: MIT */
/*
 * Private: the eventfd writes and reads that carry kicks, calls and wake-ups
 * between threads (loopback, vhost-user backend, blk queue threads).
 */
#ifndef UVIRTIO_SRC_EVENTFD_H
#define UVIRTIO_SRC_EVENTFD_H

#include <stdint.h>
#include <unistd.h>

/* Make @fd readable. A write fails only when the counter would overflow
 * (or, non-blocking, is at its maximum): it is readable then, so nothing is
 * lost. */
static inline void eventfd_signal(int fd)
{
	uint64_t one = 1;

	(void)!write(fd, &one, sizeof(one));
}

/* Clear @fd (non-blocking: nothing happens when it was not readable). */
static inline void eventfd_drain(int fd)
{
	uint64_t v;

	(void)!read(fd, &v, sizeof(v));
}

#endif
