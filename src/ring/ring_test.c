// SPDX-License-Identifier: MIT
/*
 * The queues' private state that unit tests check, one value per function.
 * Declared in tests/support/ring_internal.h (tests/support/README.md), not
 * in a public header: nothing but tests calls them.
 */
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "devq_priv.h"
#include "drvq_priv.h"

/* Requests popped and not yet pushed. */
uint32_t devq_test_inflight(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->inflight;
}

/* Whether the queue holds per-request state (packed or IN_ORDER). */
bool devq_test_has_slots(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->slots != NULL;
}

/* IN_ORDER: requests popped whose completion is not published yet. */
uint32_t devq_test_order_count(const struct uvirtio_devq *q)
{
	return devq_of_const(q)->order_count;
}

/* Descriptors per indirect table (0: none). */
unsigned drvq_test_indirect_max(const struct uvirtio_drvq *q)
{
	return drvq_of_const(q)->indirect_max;
}

/* Give the queue another number, as the transport's notify would see it. */
void drvq_test_set_index(struct uvirtio_drvq *q, unsigned index)
{
	drvq_of(q)->index = index;
}

/* Split: move the shadow of avail->idx, so the next add publishes an index
 * the device must refuse (a driver bug, played by a test). */
void drvq_test_set_avail_idx(struct uvirtio_drvq *q, uint16_t avail_idx)
{
	drvq_of(q)->avail_idx = avail_idx;
}

static void (*test_crash_hook)(const struct uvirtio_devq *q, int at);

static void crash_hook(const struct devq *q, enum devq_crash_point at)
{
	test_crash_hook((const struct uvirtio_devq *)q, (int)at);
}

/* Inflight tracking: call @hook at each crash point (devq_priv.h); NULL: none. */
void devq_test_set_crash_hook(void (*hook)(const struct uvirtio_devq *q, int at))
{
	test_crash_hook = hook;
	devq_crash_hook = hook ? crash_hook : NULL;
}
