/* SPDX-License-Identifier: MIT */
/*
 * Fixture of the packed ring's device-side tests (test_packed_dev.c,
 * test_packed_dev_used.c): a device queue on a guest memory of its own, and
 * the driver's side of the ring written by hand, as the spec's driver
 * example writes descriptors.
 */
#ifndef UVIRTIO_TESTS_UNIT_PACKED_DEV_FIXTURE_H
#define UVIRTIO_TESTS_UNIT_PACKED_DEV_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/devq.h"
#include "uvirtio/virtio_spec.h"
#include "../support/ring_internal.h"

#define GA 0x100000ull /* guest address of the fixture's memory */
#define GUEST_SIZE (1 << 20)
#define DESC_OFF 0x0
#define DRIVER_OFF 0x80000 /* driver event suppression area */
#define DEVICE_OFF 0x80010 /* device event suppression area */
#define DATA_OFF 0x90000
#define TABLE_OFF 0xc0000
#define HUGE_GA 0x100000000ull /* a region never touched: only translated */

#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)
#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)

struct fix {
	struct uvirtio_mem mem;
	struct uvirtio_devq q;
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver, *device;
	struct iovec iov[64];
	struct uvirtio_req req;
	unsigned broken_calls;
	/* The driver's side: next descriptor to make available and next one
	 * to look at for a used one, with their wrap counters. */
	uint16_t avail_pos, used_pos;
	bool avail_wrap, used_wrap;
};

struct elem {
	uint64_t addr;
	uint32_t len;
	uint16_t flags; /* WRITE, INDIRECT; NEXT is added between elements */
};

/* The guest memory at GA (and, for translation only, at HUGE_GA). */
extern char guest[GUEST_SIZE];

/* The fixture every test uses. */
extern struct fix fx;

/* The queue's broken callback: counts the calls in the struct fix @opaque. */
void on_broken(struct uvirtio_devq *q, void *opaque);

/* Frees what the previous test's queue held (a failed CHECK skips its
 * fix_fini), then sets up a fresh ring of @num with @features | PACKED. */
int fix_init(struct fix *f, unsigned num, uint64_t features);
void fix_fini(struct fix *f);

/* Makes a buffer of the @n elements @e available as a driver does, with
 * buffer id @id. */
void drv_add(struct fix *f, const struct elem *e, unsigned n, uint16_t id);

/* One readable descriptor of 16 bytes. */
void drv_add1(struct fix *f, uint16_t id);

/* The next used descriptor, if the device wrote one; the driver then skips
 * @ndesc descriptors (what it knows the buffer, or batch, took). */
bool drv_get(struct fix *f, unsigned ndesc, uint16_t *id, uint32_t *len);

#endif
