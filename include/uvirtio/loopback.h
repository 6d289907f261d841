/* SPDX-License-Identifier: MIT */
/*
 * The loopback transport: a driver and a device in one process. Guest memory
 * is one memfd mapped twice, once for each side, so every address really is
 * translated. The device runs on a thread of its own; the driver's transport
 * operations are carried to it as calls (like register accesses trapping into
 * a VMM) and notifications travel through eventfds, as with vhost-user.
 *
 *   struct uvirtio_loopback *lb;
 *   uvirtio_loopback_create(&lb, NULL);
 *   uvirtio_rng_dev_init(&rng, uvirtio_loopback_mem(lb));
 *   uvirtio_loopback_start(lb, uvirtio_rng_dev_device(&rng));
 *   uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(lb));
 */
#ifndef UVIRTIO_LOOPBACK_H
#define UVIRTIO_LOOPBACK_H

#include <stddef.h>
#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"
#include "uvirtio/memory.h"
#include "uvirtio/transport.h"

struct uvirtio_loopback;

struct uvirtio_loopback_config {
	size_t mem_size;     /* bytes of guest memory; 0: 64 MiB */
	uint64_t guest_addr; /* where it starts in guest addresses; 0: 1 GiB */
};

/**
 * uvirtio_loopback_create() - make guest memory and the eventfds.
 * @out: set to the new transport, owned by the caller (free with destroy).
 * @cfg: NULL for the defaults.
 *
 * Return: 0; -ENOMEM; or the errno of memfd_create, mmap or eventfd.
 */
UVIRTIO_API
int uvirtio_loopback_create(struct uvirtio_loopback **out, const struct uvirtio_loopback_config *cfg);

/** uvirtio_loopback_mem() - guest memory as the device sees it. */
UVIRTIO_API
struct uvirtio_mem *uvirtio_loopback_mem(struct uvirtio_loopback *lb);

/**
 * uvirtio_loopback_start() - start the device thread serving @dev, which was
 * initialised with uvirtio_loopback_mem(@lb). From now on @dev belongs to
 * that thread until destroy.
 * Return: 0, -EBUSY when already started, or pthread_create's error.
 */
UVIRTIO_API
int uvirtio_loopback_start(struct uvirtio_loopback *lb, struct uvirtio_device *dev);

/** uvirtio_loopback_transport() - the driver's side of the transport. */
UVIRTIO_API
struct uvirtio_transport *uvirtio_loopback_transport(struct uvirtio_loopback *lb);

/**
 * uvirtio_loopback_run_on_device() - run @fn(@dev, @arg) on the device
 * thread, waiting for it (tests and tools inspect or poke the device this way).
 * Return: what @fn returned, or -ENOTCONN when the thread is not running.
 */
UVIRTIO_API
int uvirtio_loopback_run_on_device(struct uvirtio_loopback *lb,
				   int (*fn)(struct uvirtio_device *dev, void *arg), void *arg);

/**
 * uvirtio_loopback_replace_device() - serve the driver with @next from now
 * on, in place of the device given to start: for a device restored from a
 * snapshot of the first (include/uvirtio/snapshot.h) while it is suspended.
 * @next must have as many queues and take kick fds as the first does, and
 * use uvirtio_loopback_mem(@lb). The first device is handed back to the
 * caller, with no hooks and no kick fds; @next belongs to the device thread.
 * Return: 0; -EINVAL when @next does not fit; -ENOTCONN when not started.
 */
UVIRTIO_API
int uvirtio_loopback_replace_device(struct uvirtio_loopback *lb, struct uvirtio_device *next);

/** uvirtio_loopback_destroy() - stop the device thread and free everything. */
UVIRTIO_API
void uvirtio_loopback_destroy(struct uvirtio_loopback *lb);

#endif
