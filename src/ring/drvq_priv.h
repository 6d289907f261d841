/* SPDX-License-Identifier: MIT */
/*
 * Between drvq.c (the public driver-side queue API, which checks arguments
 * and picks the layout) and the two layouts' implementations, split_drv.c
 * and packed_drv.c. Not installed.
 */
#ifndef UVIRTIO_DRVQ_PRIV_H
#define UVIRTIO_DRVQ_PRIV_H

#include <errno.h>

#include "uvirtio/drvq.h"
#include "../log/log_priv.h"

/* Marks @q broken for the first rule the device broke, and logs it with the
 * queue's index and @value (what @what names); always -EIO. */
static inline int drvq_broken_at(struct uvirtio_drvq *q, const char *why, const char *what,
				 unsigned long long value)
{
	if (!q->broken) {
		q->broken = true;
		q->broken_reason = why;
		if (what)
			uvirtio_log(UVIRTIO_LOG_ERR, "queue %u: %s (%s %llu); the queue is broken",
				    q->index, why, what, value);
		else
			uvirtio_log(UVIRTIO_LOG_ERR, "queue %u: %s; the queue is broken", q->index, why);
	}
	return -EIO;
}

static inline int drvq_broken(struct uvirtio_drvq *q, const char *why)
{
	return drvq_broken_at(q, why, NULL, 0);
}

/* Whether a buffer of @total parts goes into an indirect table; sets
 * *refused when it wanted one but has more parts than a table holds. */
static inline bool drvq_use_indirect(const struct uvirtio_drvq *q, unsigned total, bool *refused)
{
	*refused = false;
	if (!q->indirect_max || total < 2)
		return false;
	if (total <= q->indirect_max)
		return true;
	*refused = true;
	return false;
}

/*
 * A used entry the device wrote, as the copies read once from the ring: the
 * id must name a buffer in flight, the length no more than it can hold.
 * Returns 0, or -EIO with the queue broken for the rule that failed.
 */
static inline int drvq_check_used(struct uvirtio_drvq *q, uint32_t id, uint32_t used_len)
{
	if (id >= q->num)
		return drvq_broken_at(q, "used id out of range", "id", id);
	if (!q->slots[id].token)
		return drvq_broken_at(q, "used id not in flight", "id", id);
	if (used_len > q->slots[id].in_len)
		return drvq_broken_at(q, "used length larger than the buffer", "length", used_len);
	return 0;
}

/* IN_ORDER: the device used every buffer up to @id (checked by the layout)
 * and wrote @used_len for @id alone; get() hands them out one at a time. */
static inline void drvq_batch_start(struct uvirtio_drvq *q, uint16_t id, uint32_t used_len)
{
	q->batch_pending = true;
	q->batch_id = id;
	q->batch_len = used_len;
}

/* The length of the batch's next buffer, @id (the oldest in flight): only
 * its last buffer has a length from the device, the others report all they
 * could hold (the device side only batches those). Ends the batch at its
 * last buffer. */
static inline uint32_t drvq_batch_next_len(struct uvirtio_drvq *q, uint16_t id)
{
	if (id == q->batch_id) {
		q->batch_pending = false;
		return q->batch_len;
	}
	return q->slots[id].in_len;
}

/* Each layout: the ring laid out in @ring (zeroed), private state allocated
 * by drvq.c; add() gets checked arguments (@in_len: writable bytes, the whole
 * buffer fits 32 bits) on a queue that is not broken. */
size_t split_drv_ring_bytes(unsigned num);
void split_drv_init(struct uvirtio_drvq *q, char *ring);
int split_drv_add(struct uvirtio_drvq *q, const struct iovec *out, unsigned n_out,
			  const struct iovec *in, unsigned n_in, void *token, uint32_t in_len);
bool split_drv_kick_prepare(struct uvirtio_drvq *q);
int split_drv_get(struct uvirtio_drvq *q, void **token, uint32_t *len);
void split_drv_disable_cb(struct uvirtio_drvq *q);
bool split_drv_enable_cb(struct uvirtio_drvq *q);
bool split_drv_enable_cb_delayed(struct uvirtio_drvq *q);
void *split_drv_detach_unused(struct uvirtio_drvq *q);

size_t packed_drv_ring_bytes(unsigned num);
void packed_drv_init(struct uvirtio_drvq *q, char *ring);
int packed_drv_add(struct uvirtio_drvq *q, const struct iovec *out, unsigned n_out,
			   const struct iovec *in, unsigned n_in, void *token, uint32_t in_len);
bool packed_drv_kick_prepare(struct uvirtio_drvq *q);
int packed_drv_get(struct uvirtio_drvq *q, void **token, uint32_t *len);
void packed_drv_disable_cb(struct uvirtio_drvq *q);
bool packed_drv_enable_cb(struct uvirtio_drvq *q);
bool packed_drv_enable_cb_delayed(struct uvirtio_drvq *q);
void *packed_drv_detach_unused(struct uvirtio_drvq *q);

#endif
