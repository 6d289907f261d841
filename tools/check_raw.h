/* SPDX-License-Identifier: MIT */
/*
 * `uvirtio check`, the raw ring: a split ring of the checker's own in the
 * transport's shared memory, and an arena poisoned with 0xa5 that holds
 * each request's parts. Shared between check_raw.c (the ring; the checks on
 * a read-only disk and ring stop and restart) and check_hostile.c (the
 * hostile driver's malformed chains).
 */
#ifndef UVIRTIO_TOOLS_CHECK_RAW_H
#define UVIRTIO_TOOLS_CHECK_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"

#define RAW_QSIZE 16u
#define ARENA_BYTES (256u << 10)
#define POISON 0xa5

/* Where each part of a request lives in the arena; the gaps stay poisoned. */
#define HDR_OFF 0x1000u
#define DATA_OFF 0x2000u     /* up to 4096 bytes */
#define STATUS_OFF 0x4000u
#define IND_OFF 0x6000u      /* an indirect table */
#define IND2_OFF 0x7000u     /* a second one (nested indirect) */
#define SEG_OFF 0x10000u     /* many small data segments, 1 KiB apart */

struct range {
	size_t off, len;
};

struct raw {
	struct check_conn conn;
	struct uvirtio_transport *t;
	struct uvirtio_dma *dma;
	uint64_t offered, features;
	unsigned num;
	void *ring;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, used_idx;
	int call_fd;
	uint8_t *arena;
	uint64_t arena_addr;
	/* The arena bytes the device may write for the request in flight. */
	struct range writable[48];
	unsigned nwritable;
	bool started;
};

enum wait_outcome { GOT_USED, NO_USED, NEEDS_RESET, CLOSED };

/* Connect, negotiate VERSION_1 plus what the device offers of @wanted, lay
 * a ring of @num entries out and start the device. On failure the verdict
 * line says why. */
int raw_open(struct check_ctx *c, struct raw *r, uint64_t wanted, unsigned num);
void raw_close(struct raw *r);
uint64_t gaddr(const struct raw *r, size_t off);
void set_desc(struct raw *r, struct vring_desc *table, unsigned i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next);
void allow_write(struct raw *r, size_t off, size_t len);
void set_hdr(struct raw *r, uint32_t type, uint64_t sector);
/* Make @head available and notify. */
int raw_publish(struct raw *r, uint16_t head);
/* Wait up to @timeout_ms for the next used entry. While waiting, look
 * every 100 ms whether the device gave up on the queue (DEVICE_NEEDS_RESET)
 * or the backend closed the connection, so those are told apart from a
 * queue that just stopped. */
enum wait_outcome raw_wait(struct raw *r, int timeout_ms, uint32_t *id, uint32_t *len);
/* The first arena byte outside the writable ranges that is no longer
 * poison, or SIZE_MAX. */
size_t poison_broken(const struct raw *r);
/* Poison the arena again, except what the next request's readable parts
 * need (the caller writes them after this). */
void repoison(struct raw *r);
/* Which arena bytes we wrote ourselves (headers, readable data) count as
 * "writable" for the poison check: they are not poison by design. */
void mark_ours(struct raw *r, size_t off, size_t len);
/* The name of blk status byte @s (POISON: untouched). */
const char *status_name(int s);

#endif
