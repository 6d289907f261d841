/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (entropy device, device ID 4): one queue, "requestq". The driver
 * adds writable buffers; the device fills them with random bytes.
 */
#ifndef UVIRTIO_RNG_H
#define UVIRTIO_RNG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"
#include "uvirtio/driver.h"

#define UVIRTIO_RNG_QUEUE_SIZE 64u
#define UVIRTIO_RNG_IOV_MAX 64u

/* Device side. */

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_rng_dev {
	UVIRTIO_OPAQUE(4096); /* holds a struct uvirtio_device */
};

/* What the device did since init. */
struct uvirtio_rng_dev_stats {
	uint64_t requests; /* served */
	uint64_t bytes;    /* random bytes written */
	uint64_t refused;  /* requests answered with 0 bytes (no writable part) */
};

/**
 * uvirtio_rng_dev_init() - a virtio-rng device over guest memory @mem.
 * @r: owned by the caller; hand uvirtio_rng_dev_device(@r) to a transport.
 * Return: 0, or uvirtio_device_init()'s error.
 */
UVIRTIO_API
int uvirtio_rng_dev_init(struct uvirtio_rng_dev *r, struct uvirtio_mem *mem);

/** uvirtio_rng_dev_destroy() - reset and free. */
UVIRTIO_API
void uvirtio_rng_dev_destroy(struct uvirtio_rng_dev *r);

/**
 * uvirtio_rng_dev_device() - the device core inside @r, to hand to a transport.
 * @r: an initialised device.
 * Return: owned by @r, valid until uvirtio_rng_dev_destroy().
 */
UVIRTIO_API
struct uvirtio_device *uvirtio_rng_dev_device(struct uvirtio_rng_dev *r);

/**
 * uvirtio_rng_dev_stats() - copy the device's counters into @out. Safe from
 * any thread while the device serves: each counter is read atomically (the
 * three are not one snapshot).
 */
UVIRTIO_API
void uvirtio_rng_dev_stats(const struct uvirtio_rng_dev *r, struct uvirtio_rng_dev_stats *out);

/* Driver side. */

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_rng_drv {
	UVIRTIO_OPAQUE(512); /* holds a struct uvirtio_driver */
};

/* What the driver did since probe. */
struct uvirtio_rng_drv_stats {
	uint64_t requests; /* buffers the device returned */
};

/**
 * uvirtio_rng_drv_probe() - reset, negotiate (@features among INDIRECT_DESC,
 * EVENT_IDX, RING_RESET and SUSPEND), set the queue up and start the device.
 * Return: 0; -ENOMEM; or uvirtio_driver_probe()'s and find_vqs' errors.
 */
UVIRTIO_API
int uvirtio_rng_drv_probe(struct uvirtio_rng_drv *r, struct uvirtio_transport *t, uint64_t features);

/**
 * uvirtio_rng_drv_read() - fill @buf with @len random bytes from the device.
 * Blocks until the device has answered; @timeout_ms bounds each wait (-1:
 * none). One request is in flight at a time: after a time-out it stays with
 * the device, and the next read waits for it instead of adding another.
 * Return: @len; -ETIMEDOUT; -EIO when the queue broke or the device needs a
 * reset; or another negative errno.
 */
UVIRTIO_API
ssize_t uvirtio_rng_drv_read(struct uvirtio_rng_drv *r, void *buf, size_t len, int timeout_ms);

/** uvirtio_rng_drv_remove() - reset the device and free the queue. */
UVIRTIO_API
void uvirtio_rng_drv_remove(struct uvirtio_rng_drv *r);

/**
 * uvirtio_rng_drv_driver() - the driver core inside @r (for the driver
 * core's calls, e.g. uvirtio_driver_vq()).
 * @r: a probed driver.
 * Return: owned by @r, valid until uvirtio_rng_drv_remove().
 */
UVIRTIO_API
struct uvirtio_driver *uvirtio_rng_drv_driver(struct uvirtio_rng_drv *r);

/**
 * uvirtio_rng_drv_stats() - copy the driver's counters into @out. Call on
 * the thread that reads (or while no read runs).
 */
UVIRTIO_API
void uvirtio_rng_drv_stats(const struct uvirtio_rng_drv *r, struct uvirtio_rng_drv_stats *out);

#endif
