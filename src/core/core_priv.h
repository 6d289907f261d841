/* SPDX-License-Identifier: MIT */
/*
 * The device core's private state (docs/ARCHITECTURE.md, "Objects"), shared
 * by device.c and snapshot.c.
 */
#ifndef UVIRTIO_CORE_PRIV_H
#define UVIRTIO_CORE_PRIV_H

#include "uvirtio/device.h"

struct device {
	const struct uvirtio_device_ops *ops;
	void *priv; /* the device type's own state */
	struct uvirtio_mem *mem;
	struct uvirtio_device_hooks hooks;

	uint8_t status;
	uint64_t offered;         /* what the device offers */
	uint64_t driver_features; /* what the driver wrote */
	uint64_t features;        /* accepted at FEATURES_OK; 0 before */

	void *config;             /* the device type's config structure */
	unsigned config_size;
	uint32_t config_generation;

	struct uvirtio_devq *queues;
	unsigned num_queues;
	bool *queue_started;      /* queue_start called, queue_stop not yet */
	int *kick_fds;            /* per queue, the transport's; -1 when none */
	struct uvirtio_queue_layout *layouts; /* per queue, as last enabled */
	unsigned resets;          /* completed resets, for reports */
	const char *needs_reset_reason;
	/* Config changes made while suspended wait here until resume
	 * (config_pending_dirty); the driver sees the old bytes meanwhile. */
	void *config_pending;
	bool config_pending_dirty;
	/* Serialises status changes between the control thread and a queue
	 * thread that finds its ring broken. */
	pthread_mutex_t status_lock;
	/* Config space may change on a device type's thread (virtio-net's
	 * control queue sets the MAC) while the transport reads it. */
	pthread_mutex_t config_lock;
};
UVIRTIO_OPAQUE_FITS(struct device, struct uvirtio_device);

static inline struct device *device_of(struct uvirtio_device *dev)
{
	return (struct device *)dev;
}

static inline const struct device *device_of_const(const struct uvirtio_device *dev)
{
	return (const struct device *)dev;
}

static inline struct uvirtio_device *pub(struct device *dev)
{
	return (struct uvirtio_device *)dev;
}

static inline uint8_t status_of(const struct device *dev)
{
	return __atomic_load_n(&dev->status, __ATOMIC_ACQUIRE);
}

static inline bool has_feature(const struct device *dev, unsigned bit)
{
	return dev->features & UVIRTIO_BIT(bit);
}

/* As uvirtio_device_running(): atomic, a queue thread asks while the
 * control thread may write. */
static inline bool running(const struct device *dev)
{
	return (status_of(dev) & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_NEEDS_RESET)) ==
	       VIRTIO_CONFIG_S_DRIVER_OK;
}

static inline bool suspended(const struct device *dev)
{
	return status_of(dev) & VIRTIO_CONFIG_S_SUSPEND;
}

/* For tests only (tests/support/core_internal.h); not exported. The hooks
 * the transport set (uvirtio_device_set_hooks()), for a test that fires a
 * notification as the device core would. */
const struct uvirtio_device_hooks *uvirtio_device_get_hooks(const struct uvirtio_device *dev);

/* For tests only: whether the core called queue_start for queue @index and
 * not queue_stop yet. */
bool uvirtio_device_queue_started(const struct uvirtio_device *dev, unsigned index);

#endif
