/* SPDX-License-Identifier: MIT */
/*
 * Fixtures of the device core's tests (test_device.c, test_device_lifecycle.c):
 * the test device type and its queue-thread variant, their guest memory,
 * and the driver's steps to FEATURES_OK and DRIVER_OK.
 */
#ifndef UVIRTIO_TESTS_UNIT_DEVICE_FIXTURE_H
#define UVIRTIO_TESTS_UNIT_DEVICE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/device.h"
#include "uvirtio/drvq.h"

#define GA 0x400000ull
#define MEM_SIZE (1u << 20)

/* Device-type feature bits of the test device; 1 needs 0. */
#define F_BASE 0
#define F_NEEDS_BASE 1
#define F_REFUSED_ALONE 2

#define V1 UVIRTIO_BIT(VIRTIO_F_VERSION_1)
#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define RUNNING_STATUS 15

struct testdev {
	struct uvirtio_device dev;
	struct uvirtio_mem mem;
	struct uvirtio_dma dma;
	struct uvirtio_drvq dq;
	char config[16];
	unsigned notifies_used, notifies_config, resets, starts, reschedules;
	/* Requests the device took and holds, as an asynchronous device would. */
	struct iovec iov[8];
	struct uvirtio_req held;
	bool holding;
	bool drop_on_reset;
};

/* A device type that serves each queue on a thread of its own: the core
 * starts and stops queues; this one records the calls and pops on start. */
struct qtdev {
	struct testdev t;
	unsigned starts[2], stops[2], notifies[2], resets_after_stops;
	char order[16];
	unsigned norder;
};

/* The guest memory (MEM_SIZE bytes at GA) every test device uses;
 * td_init() allocates it once and clears it. */
extern char *guest;

/* The ops of struct qtdev's device type. */
extern const struct uvirtio_device_ops qt_ops;

/* A driver queue's split descriptor table and used ring, as the device
 * writes them, and its layout as the device is given it. */
struct vring_desc *dq_desc(const struct uvirtio_drvq *dq);
struct vring_used *dq_used(const struct uvirtio_drvq *dq);
struct uvirtio_queue_layout layout_of(const struct uvirtio_drvq *dq);

/* A test device on cleared guest memory; td_fini() destroys it and its
 * driver queue. */
int td_init(struct testdev *t);
void td_fini(struct testdev *t);

/* Drive the device to FEATURES_OK with @features; returns the status read back. */
uint8_t negotiate(struct testdev *t, uint64_t features);

/* Negotiate, set queue 0 up from a driver-side ring, DRIVER_OK. */
int bring_up(struct testdev *t, uint64_t features);

/* A queue-thread device (td_fini(&q->t) destroys it). @ops: qt_ops, or a
 * variant of it; must outlive @q's device. */
int qt_init_with(struct qtdev *q, const struct uvirtio_device_ops *ops);
int qt_init(struct qtdev *q);

/* One 8-byte device-writable buffer made available on queue 0's driver ring. */
int add_one(struct testdev *t);

#endif
