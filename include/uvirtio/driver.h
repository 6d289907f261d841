/* SPDX-License-Identifier: MIT */
/*
 * The driver core: the virtio lifecycle as a driver sees it, over any
 * transport. Probe resets the device first (as Linux has done since 2008),
 * then ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK checked by
 * reading it back, queues, DRIVER_OK. Removal resets before deleting queues,
 * and after a reset the driver can probe again with other features.
 *
 * Thread rules: the lifecycle calls are made from one thread; each queue is
 * then used by one thread at a time (see drvq.h).
 */
#ifndef UVIRTIO_DRIVER_H
#define UVIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/drvq.h"
#include "uvirtio/transport.h"
#include "uvirtio/virtio_spec.h"

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_driver {
	UVIRTIO_OPAQUE(128);
};

/**
 * uvirtio_driver_probe() - reset the device and negotiate.
 * @drv:      the driver, owned by the caller.
 * @t:        the transport; must outlive @drv.
 * @wanted:   features the driver would use; the negotiated set is what the
 *            device offers of these. VERSION_1 is always asked for; of the
 *            transport bits (24 to 41) only UVIRTIO_TRANSPORT_FEATURES
 *            are, as the driver core implements no others.
 *
 * On success the status is ACKNOWLEDGE | DRIVER | FEATURES_OK; set queues up
 * with uvirtio_driver_find_vqs() and finish with uvirtio_driver_ready().
 *
 * Return: 0; -ENODEV when the device does not offer VERSION_1 or refuses the
 * features (FEATURES_OK does not stick; the status is then FAILED); or the
 * transport's error.
 */
UVIRTIO_API
int uvirtio_driver_probe(struct uvirtio_driver *drv, struct uvirtio_transport *t, uint64_t wanted);

/**
 * uvirtio_driver_find_vqs() - create @nvqs queues and give them to the device.
 * @sizes: per queue, the size to use (0: the device's maximum, capped at 256;
 *         any size above the maximum is lowered to it).
 *
 * Return: 0; -ENOENT when the device has fewer queues; -EBUSY when queues
 * exist already; -ENOMEM; or the transport's error. On failure no queue is left.
 */
UVIRTIO_API
int uvirtio_driver_find_vqs(struct uvirtio_driver *drv, unsigned nvqs, const unsigned *sizes);

/** uvirtio_driver_ready() - set DRIVER_OK. Return: 0 or the transport's error. */
UVIRTIO_API
int uvirtio_driver_ready(struct uvirtio_driver *drv);

/**
 * uvirtio_driver_transport() - the transport given to uvirtio_driver_probe()
 * (NULL before the first probe), for a driver type's own config writes and
 * DMA allocations.
 */
UVIRTIO_API
struct uvirtio_transport *uvirtio_driver_transport(const struct uvirtio_driver *drv);

/**
 * uvirtio_driver_features() - the features negotiated by the last probe: what
 * the device offered of those wanted, VERSION_1 included; 0 before a probe.
 */
UVIRTIO_API
uint64_t uvirtio_driver_features(const struct uvirtio_driver *drv);

/** uvirtio_driver_num_vqs() - how many queues find_vqs created; 0 without. */
UVIRTIO_API
unsigned uvirtio_driver_num_vqs(const struct uvirtio_driver *drv);

/** uvirtio_driver_vq() - queue @index, or NULL. */
UVIRTIO_API
struct uvirtio_drvq *uvirtio_driver_vq(struct uvirtio_driver *drv, unsigned index);

/**
 * uvirtio_driver_wait() - wait until the device signals used buffers on
 * queue @index, or changes its configuration (for UVIRTIO_CONFIG_EVENT only
 * the latter). A configuration change is also how a device says it needs a
 * reset, so a wait on a queue ends then too.
 * @timeout_ms: -1 to wait for ever.
 *
 * Return: 1 when signalled (look at the queue, or the config, again); 0 on
 * time-out; -EIO when the device set DEVICE_NEEDS_RESET; or a negative errno.
 */
UVIRTIO_API
int uvirtio_driver_wait(struct uvirtio_driver *drv, unsigned index, int timeout_ms);

/**
 * uvirtio_driver_config_read() - read config space consistently: retried
 * until config_generation is the same before and after.
 * Return: 0; -EIO when the generation still changes after 1000 tries (a
 * device that never settles); or the transport's error.
 */
UVIRTIO_API
int uvirtio_driver_config_read(struct uvirtio_driver *drv, unsigned offset, void *buf, unsigned len);

/** uvirtio_driver_needs_reset() - whether the device set DEVICE_NEEDS_RESET. */
UVIRTIO_API
bool uvirtio_driver_needs_reset(struct uvirtio_driver *drv);

/**
 * uvirtio_driver_remove() - reset the device, then take back every buffer
 * still in a queue (@release is called with each token, may be NULL) and
 * delete the queues. The driver may then probe again.
 * Return: 0 or the transport's reset error (the queues are deleted anyway).
 */
UVIRTIO_API
int uvirtio_driver_remove(struct uvirtio_driver *drv, void (*release)(void *token, void *opaque),
			  void *opaque);

/**
 * uvirtio_driver_queue_reset() - reset queue @index alone
 * (VIRTIO_F_RING_RESET), as Linux's virtqueue_reset() does: the device lets
 * go of the queue (the transport returns once it has), then every buffer
 * still in it is detached and handed to @release (may be NULL) with its
 * token; the device never touches them again. The queue stays unusable
 * until uvirtio_driver_queue_enable(). The caller makes sure no other
 * thread uses the queue meanwhile.
 * Return: 0; -ENOENT for a queue that does not exist; -EOPNOTSUPP when
 * RING_RESET was not negotiated or the transport cannot; or the
 * transport's error (the queue is then left as it was).
 */
UVIRTIO_API
int uvirtio_driver_queue_reset(struct uvirtio_driver *drv, unsigned index,
			       void (*release)(void *token, void *opaque), void *opaque);

/**
 * uvirtio_driver_queue_is_reset() - whether queue @index was reset by
 * uvirtio_driver_queue_reset() and not enabled again (so it must not be
 * used). false for a queue that does not exist.
 */
UVIRTIO_API
bool uvirtio_driver_queue_is_reset(const struct uvirtio_driver *drv, unsigned index);

/**
 * uvirtio_driver_queue_enable() - set a reset queue up again with a new
 * ring of @size entries (0: the size it had; above the device's maximum:
 * lowered to it), which is how a driver resizes a queue. The queue's
 * struct uvirtio_drvq keeps its address.
 * Return: 0; -ENOENT; -EBUSY when the queue was not reset; -ENOMEM; or the
 * transport's error (the queue then stays reset).
 */
UVIRTIO_API
int uvirtio_driver_queue_enable(struct uvirtio_driver *drv, unsigned index, unsigned size);

/**
 * uvirtio_driver_suspend() - suspend the device (VIRTIO_F_SUSPEND): set
 * SUSPEND, then wait until the device presents it, which it does once
 * every buffer in flight is used; DRIVER_OK is then clear. While
 * suspended the driver must not touch a queue or notify.
 * @timeout_ms: how long to wait for the device; -1 for ever.
 * Return: 0; -EOPNOTSUPP when SUSPEND was not negotiated; -EINVAL before
 * DRIVER_OK; -EIO when the device set DEVICE_NEEDS_RESET instead;
 * -ETIMEDOUT; or the transport's error.
 */
UVIRTIO_API
int uvirtio_driver_suspend(struct uvirtio_driver *drv, int timeout_ms);

/**
 * uvirtio_driver_resume() - set DRIVER_OK again and wait until the device
 * clears SUSPEND; the queues then run on from where they stopped.
 * Return: 0; -EINVAL when the device is not suspended; -EIO when it set
 * DEVICE_NEEDS_RESET; -ETIMEDOUT; or the transport's error.
 */
UVIRTIO_API
int uvirtio_driver_resume(struct uvirtio_driver *drv, int timeout_ms);

/** uvirtio_driver_has_feature() - whether feature @bit was negotiated. */
UVIRTIO_API
bool uvirtio_driver_has_feature(const struct uvirtio_driver *drv, unsigned bit);

#endif
