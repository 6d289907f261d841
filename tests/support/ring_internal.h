/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into src/ring/ (tests/support/README.md): the accessors for
 * memory shared with the peer and, with UVIRTIO_RING_READ_HOOK, the hook the
 * no-double-fetch test counts every read through; and the queues' private
 * state that tests check (src/ring/ring_test.c), since struct uvirtio_devq
 * and struct uvirtio_drvq are opaque.
 */
#ifndef UVIRTIO_TESTS_SUPPORT_RING_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_RING_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "../../src/ring/ring_access.h"

struct uvirtio_devq;
struct uvirtio_drvq;

/* Device side: requests popped and not yet pushed; whether per-request
 * state is allocated (packed or IN_ORDER); IN_ORDER completions held or
 * popped and not yet published. */
uint32_t devq_test_inflight(const struct uvirtio_devq *q);
bool devq_test_has_slots(const struct uvirtio_devq *q);
uint32_t devq_test_order_count(const struct uvirtio_devq *q);

/* Driver side: descriptors per indirect table (0: none); set the queue
 * number the notification data carries; split, set the shadow avail index
 * the next add publishes one past (a driver bug a test plays). */
/* Device side, inflight tracking: call @hook(q, at) at each crash point
 * (enum devq_crash_point in src/ring/devq_priv.h: 0 a request peeked, 1
 * marked, 2 a batch marked completing, 3 published, 4 marks cleared);
 * NULL: none. A hook that longjmps out plays a process dying there. */
#define DEVQ_TEST_CRASH_POINTS 5
void devq_test_set_crash_hook(void (*hook)(const struct uvirtio_devq *q, int at));

unsigned drvq_test_indirect_max(const struct uvirtio_drvq *q);
void drvq_test_set_index(struct uvirtio_drvq *q, unsigned index);
void drvq_test_set_avail_idx(struct uvirtio_drvq *q, uint16_t avail_idx);

#endif
