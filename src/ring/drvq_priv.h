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

/* Marks @q broken for the first rule the device broke; always -EIO. */
static inline int drvq_broken(struct uvirtio_drvq *q, const char *why)
{
	if (!q->broken) {
		q->broken = true;
		q->broken_reason = why;
	}
	return -EIO;
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

/* Each layout: the ring laid out in @ring (zeroed), private state allocated
 * by drvq.c; add() gets checked arguments (@in_len: writable bytes, the whole
 * buffer fits 32 bits) on a queue that is not broken. */
size_t uvirtio_split_drv_ring_bytes(unsigned num);
void uvirtio_split_drv_init(struct uvirtio_drvq *q, char *ring);
int uvirtio_split_drv_add(struct uvirtio_drvq *q, const struct iovec *out, unsigned n_out,
			  const struct iovec *in, unsigned n_in, void *token, uint32_t in_len);
bool uvirtio_split_drv_kick_prepare(struct uvirtio_drvq *q);
int uvirtio_split_drv_get(struct uvirtio_drvq *q, void **token, uint32_t *len);
void uvirtio_split_drv_disable_cb(struct uvirtio_drvq *q);
bool uvirtio_split_drv_enable_cb(struct uvirtio_drvq *q);
bool uvirtio_split_drv_enable_cb_delayed(struct uvirtio_drvq *q);
void *uvirtio_split_drv_detach_unused(struct uvirtio_drvq *q);

size_t uvirtio_packed_drv_ring_bytes(unsigned num);
void uvirtio_packed_drv_init(struct uvirtio_drvq *q, char *ring);
int uvirtio_packed_drv_add(struct uvirtio_drvq *q, const struct iovec *out, unsigned n_out,
			   const struct iovec *in, unsigned n_in, void *token, uint32_t in_len);
bool uvirtio_packed_drv_kick_prepare(struct uvirtio_drvq *q);
int uvirtio_packed_drv_get(struct uvirtio_drvq *q, void **token, uint32_t *len);
void uvirtio_packed_drv_disable_cb(struct uvirtio_drvq *q);
bool uvirtio_packed_drv_enable_cb(struct uvirtio_drvq *q);
bool uvirtio_packed_drv_enable_cb_delayed(struct uvirtio_drvq *q);
void *uvirtio_packed_drv_detach_unused(struct uvirtio_drvq *q);

#endif
