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
struct uvirtio_rng_dev {
	struct uvirtio_device dev;
	struct iovec iov[UVIRTIO_RNG_IOV_MAX];
	uint64_t requests;  /* served since init */
	uint64_t bytes;     /* random bytes written since init */
	uint64_t refused;   /* requests answered with 0 bytes (no writable part) */
};

/**
 * uvirtio_rng_dev_init() - a virtio-rng device over guest memory @mem.
 * @r: owned by the caller; hand &@r->dev to a transport.
 * Return: 0, or uvirtio_device_init()'s error.
 */
UVIRTIO_API
int uvirtio_rng_dev_init(struct uvirtio_rng_dev *r, struct uvirtio_mem *mem);

/** uvirtio_rng_dev_destroy() - reset and free. */
UVIRTIO_API
void uvirtio_rng_dev_destroy(struct uvirtio_rng_dev *r);

/* Driver side. */
struct uvirtio_rng_drv {
	struct uvirtio_driver drv;
	void *buf;         /* bounce buffer in shared memory */
	size_t buf_size;
	bool pending;      /* the bounce buffer is with the device (a read timed out) */
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

#endif
