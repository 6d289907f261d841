/* SPDX-License-Identifier: MIT */
/*
 * What the driver-queue tests of both layouts share (test_split_drv.c,
 * test_packed_drv.c): steps on a struct uvirtio_drvq that read the same on a
 * split and on a packed ring. Each returns what it found; the test checks it.
 */
#ifndef UVIRTIO_TESTS_UNIT_DRVQ_FIXTURE_H
#define UVIRTIO_TESTS_UNIT_DRVQ_FIXTURE_H

#include <sys/uio.h>

#include "uvirtio/drvq.h"

/*
 * drvq_add_then_detach_all() - add @n buffers, then detach every unused one.
 * @q:    the queue, with room for @n buffers of one descriptor.
 * @in:   the one device-writable part of every buffer.
 * @toks: @n tokens; buffer i is added with token &toks[i].
 * @n:    how many buffers to add.
 *
 * Return: how many buffers uvirtio_drvq_detach_unused() gave back, each the
 * next of &toks[0], &toks[1], ... (so @n when all came back, in the order they
 * were added); the error of the first add that failed; -EPROTO when a token
 * came back out of that order.
 */
int drvq_add_then_detach_all(struct uvirtio_drvq *q, const struct iovec *in, int *toks, unsigned n);

#endif
