// SPDX-License-Identifier: MIT
/*
 * The blk device's injected faults (blk_fault.h), compiled only with
 * -Dfault_injection=true. Test-only, so the state is process-wide: one
 * fault per process, which every device of the process shares.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>

#include "../log/log_priv.h"
#include "blk_fault.h"
#include "uvirtio/device.h"

#define AT_DEFAULT 20u

enum kind { NONE, FLIP_READ_BYTE, LONG_USED_LEN, DROP_COMPLETION, HANG_QUEUE, IGNORE_HOSTILE };

static const char *const names[] = {
	[FLIP_READ_BYTE] = "flip-read-byte", [LONG_USED_LEN] = "long-used-len",
	[DROP_COMPLETION] = "drop-completion", [HANG_QUEUE] = "hang-queue",
	[IGNORE_HOSTILE] = "ignore-hostile",
};

/* Written before any queue thread runs; read by them. */
static enum kind kind;
static unsigned at = AT_DEFAULT;
static uint32_t min_len; /* only a request with this many data bytes is struck */
static bool chosen;
/* Queue threads of every queue count and strike concurrently. */
static unsigned long data_done;
static bool struck;

static bool parse_num(const char *p, const char *end, unsigned long max, unsigned long *out)
{
	char *e;

	errno = 0;
	*out = strtoul(p, &e, 10);
	return !errno && e != p && e == end && *p != '-' && *out <= max;
}

static int parse(const char *spec, enum kind *k, unsigned *n, uint32_t *min)
{
	const char *colon = strchr(spec, ':');
	const char *end = colon ? colon : spec + strlen(spec);
	const char *sep = memchr(spec, '@', (size_t)(end - spec));
	size_t len = (size_t)((sep ? sep : end) - spec);
	unsigned long v;

	*k = NONE;
	for (unsigned i = 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && !strncmp(spec, names[i], len))
			*k = (enum kind)i;
	if (*k == NONE)
		return -EINVAL;
	*n = AT_DEFAULT;
	if (sep) {
		if (!parse_num(sep + 1, end, 100000000, &v) || v < 1)
			return -EINVAL;
		*n = (unsigned)v;
	}
	*min = 0;
	if (colon) {
		if (!parse_num(colon + 1, colon + 1 + strlen(colon + 1), UINT32_MAX, &v))
			return -EINVAL;
		*min = (uint32_t)v;
	}
	return 0;
}

int blk_fault_set(const char *spec)
{
	enum kind k;
	unsigned n;
	uint32_t m;

	if (parse(spec, &k, &n, &m))
		return -EINVAL;
	kind = k;
	at = n;
	min_len = m;
	chosen = true;
	return 0;
}

/* ignore-hostile: in place of the device core's DEVICE_NEEDS_RESET. */
static void ignored(struct uvirtio_devq *q, void *opaque)
{
	(void)opaque;
	uvirtio_log(UVIRTIO_LOG_WARN, "injected fault ignore-hostile: a queue broke (%s); no DEVICE_NEEDS_RESET",
		    uvirtio_devq_broken_reason(q) ? uvirtio_devq_broken_reason(q) : "?");
}

int blk_fault_dev_init(struct blk_dev *blk)
{
	const char *env = getenv("UVIRTIO_BLK_FAULT");

	if (!chosen && env && *env) {
		if (blk_fault_set(env)) {
			uvirtio_log(UVIRTIO_LOG_ERR, "UVIRTIO_BLK_FAULT='%s' names no fault: %s, NAME one of %s",
				    env, BLK_FAULT_SPEC, BLK_FAULT_NAMES);
			return -EINVAL;
		}
	}
	if (kind == IGNORE_HOSTILE)
		/* A queue that breaks no longer tells the device core, so no
		 * DEVICE_NEEDS_RESET; its thread stops taking requests. */
		for (unsigned i = 0; i < blk->ops.num_queues; i++)
			uvirtio_devq_set_broken_cb(uvirtio_device_queue(&blk->dev, i), ignored, NULL);
	return 0;
}

/* Whether data request @p is the one to strike: the Nth, or the first one
 * after it that @can be. Says so in a log line, so that a negative control
 * knows the fault was there to be caught. */
static bool strike(const struct blk_parsed *p, bool can)
{
	unsigned long n = __atomic_add_fetch(&data_done, 1, __ATOMIC_RELAXED);

	if (n < at || !can || p->len < min_len || __atomic_load_n(&struck, __ATOMIC_RELAXED) ||
	    __atomic_exchange_n(&struck, true, __ATOMIC_RELAXED))
		return false;
	uvirtio_log(UVIRTIO_LOG_WARN, "injected fault %s at data request %lu (a %s of %u bytes at byte %llu)",
		    names[kind], n, p->type == VIRTIO_BLK_T_IN ? "read" : "write", p->len,
		    (unsigned long long)p->off);
	return true;
}

enum blk_fault_action blk_fault_complete(const struct uvirtio_req *req, const struct blk_parsed *p,
					 uint32_t *used)
{
	bool in = p->type == VIRTIO_BLK_T_IN;

	if (kind == NONE || kind == IGNORE_HOSTILE || (!in && p->type != VIRTIO_BLK_T_OUT))
		return BLK_FAULT_PUSH;
	switch (kind) {
	case FLIP_READ_BYTE:
		/* A read that succeeded: it wrote all its data and the status. */
		if (strike(p, in && p->ndata && p->data[0].iov_len && *used == p->len + 1u &&
			   p->status && *p->status == VIRTIO_BLK_S_OK))
			((uint8_t *)p->data[0].iov_base)[0] ^= 0x01;
		return BLK_FAULT_PUSH;
	case LONG_USED_LEN:
		if (strike(p, true))
			*used = req->in_len + 1;
		return BLK_FAULT_PUSH;
	case DROP_COMPLETION:
		return strike(p, true) ? BLK_FAULT_DROP : BLK_FAULT_PUSH;
	case HANG_QUEUE:
		return strike(p, true) ? BLK_FAULT_HANG : BLK_FAULT_PUSH;
	default:
		return BLK_FAULT_PUSH;
	}
}
