/* SPDX-License-Identifier: MIT */
/*
 * A verifying load for a virtio-blk device, built on the driver core (not
 * the blk driver: it drives queue reset and suspend itself). Each of SLOTS
 * request slots owns its sectors and writes, then reads back, generation
 * after generation; every request has an identity and must complete exactly
 * once; one a reset hands back is poisoned and must stay so until it is
 * submitted again; every read verifies the last write. Used by the
 * conformance suite (tests/conformance) and `uvirtio demo lifecycle`.
 */
#ifndef UVIRTIO_TOOLS_BLK_LOAD_H
#define UVIRTIO_TOOLS_BLK_LOAD_H

#include <linux/virtio_blk.h>

#include "fixtures.h"

#define SLOTS 48
#define SECTORS_PER_SLOT 8
#define DATA_BYTES (SECTORS_PER_SLOT * 512)
#define POISON 0xee
#define WAIT_MS 5000
/* How long one request may stay in flight before the load fails naming it:
 * generous for a loaded 2-core machine under a sanitizer; the negative
 * controls (tests/negative) shorten it. */
#define LOAD_DEADLINE_MS_DEFAULT 30000
extern int load_deadline_ms;

enum slot_state { IDLE, QUEUED, INFLIGHT, DETACHED };

/* One request slot: its own sectors, its own buffers in shared memory. */
struct slot {
	unsigned id;
	struct virtio_blk_outhdr *hdr;
	uint8_t *data;
	uint8_t *status;
	enum slot_state state;
	unsigned queue;
	bool is_read;
	uint32_t gen;        /* generation of the data in flight or last written */
	uint32_t written;    /* generation known to be on disk; 0 none */
	unsigned completions; /* of the current request: must end at 1 */
	int64_t submitted_ms; /* when the request in flight was made available */
};

struct load {
	struct fixture *f;
	struct uvirtio_driver drv;
	unsigned nq;
	uint64_t features;
	struct slot slots[SLOTS];
	uint8_t *mem;
	unsigned long done;
	const char *failure; /* first rule broken, for the TAP line */
	char failure_buf[256]; /* where a failure naming its request is written */
	uint64_t used_at_suspend[CONFORMANCE_QUEUES]; /* split: used->idx; packed: a hash */
};

#define LOAD_FULL_FEATURES                                                                       \
	(UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |   \
	 UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND))

unsigned load_reap(struct load *l);
int load_refill(struct load *l, bool new_requests);
unsigned load_count(struct load *l, enum slot_state st);
int load_wait_any(struct load *l);
int load_run(struct load *l, unsigned long completions);
int load_drain(struct load *l);
void load_detached(void *token, void *opaque);
bool load_poison_intact(struct load *l);
void load_requeue_detached(struct load *l, int queue);
int load_verify_all(struct load *l);
int load_start_driver(struct load *l, uint64_t features);
int load_init(struct load *l, struct fixture *f);
int load_suspend_under_load(struct load *l);
bool load_nothing_used_since_suspend(struct load *l);
int load_add_while_suspended(struct load *l, unsigned *waiting);
const char *load_device_left_alone(struct load *l, int ms);

#endif
