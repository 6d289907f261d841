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
static bool chosen;
/* Queue threads of every queue count and strike concurrently. */
static unsigned long data_done;
static bool struck;

static int parse(const char *spec, enum kind *k, unsigned *n)
{
	const char *sep = strchr(spec, '@');
	size_t len = sep ? (size_t)(sep - spec) : strlen(spec);

	*k = NONE;
	for (unsigned i = 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && !strncmp(spec, names[i], len))
			*k = (enum kind)i;
	if (*k == NONE)
		return -EINVAL;
	*n = AT_DEFAULT;
	if (sep) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(sep + 1, &end, 10);
		if (errno || end == sep + 1 || *end || v < 1 || v > 1000000)
			return -EINVAL;
		*n = (unsigned)v;
	}
	return 0;
}

int blk_fault_set(const char *spec)
{
	enum kind k;
	unsigned n;

	if (parse(spec, &k, &n))
		return -EINVAL;
	kind = k;
	at = n;
	chosen = true;
	return 0;
}

int blk_fault_dev_init(struct uvirtio_blk_dev *blk)
{
	const char *env = getenv("UVIRTIO_BLK_FAULT");

	if (!chosen && env && *env) {
		if (blk_fault_set(env)) {
			fprintf(stderr, "uvirtio: UVIRTIO_BLK_FAULT='%s' names no fault: NAME[@N], NAME one of %s\n",
				env, BLK_FAULT_NAMES);
			return -EINVAL;
		}
	}
	if (kind == IGNORE_HOSTILE)
		/* A queue that breaks no longer tells the device core, so no
		 * DEVICE_NEEDS_RESET; its thread stops taking requests. */
		for (unsigned i = 0; i < blk->ops.num_queues; i++)
			uvirtio_devq_set_broken_cb(uvirtio_device_queue(&blk->dev, i), NULL, NULL);
	return 0;
}

/* Whether this data request is the one to strike: the Nth, or the first
 * one after it that @can be. */
static bool strike(bool can)
{
	unsigned long n = __atomic_add_fetch(&data_done, 1, __ATOMIC_RELAXED);

	if (n < at || !can || __atomic_load_n(&struck, __ATOMIC_RELAXED))
		return false;
	return !__atomic_exchange_n(&struck, true, __ATOMIC_RELAXED);
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
		if (strike(in && p->ndata && p->data[0].iov_len && *used == p->len + 1u &&
			   p->status && *p->status == VIRTIO_BLK_S_OK))
			((uint8_t *)p->data[0].iov_base)[0] ^= 0x01;
		return BLK_FAULT_PUSH;
	case LONG_USED_LEN:
		if (strike(true))
			*used = req->in_len + 1;
		return BLK_FAULT_PUSH;
	case DROP_COMPLETION:
		return strike(true) ? BLK_FAULT_DROP : BLK_FAULT_PUSH;
	case HANG_QUEUE:
		return strike(true) ? BLK_FAULT_HANG : BLK_FAULT_PUSH;
	default:
		return BLK_FAULT_PUSH;
	}
}
