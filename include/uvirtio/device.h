/* SPDX-License-Identifier: MIT */
/*
 * The device core: the virtio lifecycle as a device sees it. It keeps the
 * device status, negotiates features, serves config space with
 * config_generation, sets queues up, and resets. A transport (vhost-user
 * backend, MMIO or PCI register model, loopback) turns what the driver does
 * into calls here; a device type (rng, blk, ...) supplies uvirtio_device_ops
 * and never sees the transport.
 *
 * Thread rules: every function here, and every op a device type supplies, is
 * called on the device's control thread, one at a time, except where a
 * comment names the queue's thread. A device type may serve each queue on a
 * thread of its own (blk does): the core starts and stops it through
 * queue_start and queue_stop, and that thread may call uvirtio_device_notify()
 * and uvirtio_device_needs_reset() (through a broken queue) concurrently with
 * the control thread.
 */
#ifndef UVIRTIO_DEVICE_H
#define UVIRTIO_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/devq.h"
#include "uvirtio/memory.h"
#include "uvirtio/transport.h"
#include "uvirtio/virtio_spec.h"

struct uvirtio_device;

/* Feature @feature may be accepted only together with @requires. */
struct uvirtio_feature_dep {
	unsigned feature;
	unsigned requires;
};

struct uvirtio_device_ops {
	const char *name;
	uint32_t device_id;             /* VIRTIO_ID_* */
	uint64_t features;              /* device-type feature bits offered */
	const struct uvirtio_feature_dep *deps;
	unsigned ndeps;
	unsigned num_queues;
	unsigned queue_max_size;        /* a power of two, at most 32768 */

	/* Optional: refuse a feature set the table of deps cannot express.
	 * Return 0 to accept or a negative errno. */
	int (*validate_features)(struct uvirtio_device *dev, uint64_t features);
	/* Optional: the driver set DRIVER_OK; queues are set up. A non-zero
	 * return sets DEVICE_NEEDS_RESET. */
	int (*start)(struct uvirtio_device *dev);
	/* The driver notified queue @index. */
	void (*queue_notify)(struct uvirtio_device *dev, unsigned index);
	/* Optional, for a device type that serves each queue on a thread of its
	 * own: queue @index is ready and the device runs (DRIVER_OK, or a queue
	 * enabled after it); start serving it. The thread should look at the
	 * ring once at start. A non-zero return sets DEVICE_NEEDS_RESET. */
	int (*queue_start)(struct uvirtio_device *dev, unsigned index);
	/* Optional, with queue_start: stop serving queue @index. Return only
	 * when every request taken from it has been pushed or dropped. A
	 * device type without queue_start that keeps requests across calls
	 * supplies it too: the core calls it when the driver resets or
	 * suspends that queue. */
	void (*queue_stop)(struct uvirtio_device *dev, unsigned index);
	/* The device type's queue threads poll each queue's kick fd themselves
	 * (uvirtio_device_queue_kick_fd()), so a transport with kick fds hands
	 * them over instead of polling them and calling queue_notify. */
	bool takes_kick_fds;
	/* Optional: the driver writes @len bytes of config space at @offset.
	 * Return 0 to let the core store them, or a negative errno to refuse
	 * (nothing is stored). NULL means config space is read-only. */
	int (*config_write)(struct uvirtio_device *dev, unsigned offset, const void *buf,
			    unsigned len);
	/* Stop serving. Return only when every request taken from a queue has
	 * been pushed or dropped: after this the device writes no guest memory. */
	void (*reset)(struct uvirtio_device *dev);
	/* Optional: the driver suspends the device. Called after every queue
	 * was stopped; return non-zero when a request could not be finished
	 * (the device then sets DEVICE_NEEDS_RESET rather than SUSPEND). */
	int (*suspend)(struct uvirtio_device *dev);
	/* Optional, virtio-net over vhost-user: the front-end gave the driver
	 * MTU @mtu (NET_SET_MTU; QEMU's host_mtu). Return 0 or a negative
	 * errno to refuse it. */
	int (*net_set_mtu)(struct uvirtio_device *dev, unsigned mtu);
};

/* What the transport does for the device core. notify_used runs on the
 * queue's thread (see queue_start) and must be safe there. */
struct uvirtio_device_hooks {
	void (*notify_used)(void *opaque, unsigned index); /* used-buffer notification */
	void (*notify_config)(void *opaque);               /* configuration change */
	void (*reschedule)(void *opaque, unsigned index);  /* call queue_notify again soon */
	void *opaque;
};

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). A zeroed one is
 * safe to destroy. */
struct uvirtio_device {
	UVIRTIO_OPAQUE(512);
};

/**
 * uvirtio_device_init() - set up the core for a device type.
 * @dev:         the device, owned by the caller.
 * @ops:         the device type; must outlive @dev.
 * @priv:        the device type's state, for its ops.
 * @config:      the device type's config space (may be NULL with size 0);
 *               the caller keeps it, the core reads and writes it.
 * @config_size: bytes.
 * @mem:         guest memory the queues use; the transport fills it.
 *
 * The device offers @ops->features plus VERSION_1, INDIRECT_DESC and
 * EVENT_IDX; uvirtio_device_set_offered() narrows that.
 *
 * Return: 0; -EINVAL for a bad queue count or size; -ENOMEM.
 */
UVIRTIO_API
int uvirtio_device_init(struct uvirtio_device *dev, const struct uvirtio_device_ops *ops, void *priv,
			void *config, unsigned config_size, struct uvirtio_mem *mem);

/** uvirtio_device_destroy() - reset and free what init allocated. */
UVIRTIO_API
void uvirtio_device_destroy(struct uvirtio_device *dev);

/** uvirtio_device_set_hooks() - how the transport notifies the driver. */
UVIRTIO_API
void uvirtio_device_set_hooks(struct uvirtio_device *dev, const struct uvirtio_device_hooks *hooks);

/**
 * uvirtio_device_set_offered() - offer @features instead (VERSION_1 is always
 * added: uvirtio has no legacy interface). Only while the status is 0.
 * Return: 0, or -EBUSY when a driver is attached.
 */
UVIRTIO_API
int uvirtio_device_set_offered(struct uvirtio_device *dev, uint64_t features);

/** uvirtio_device_get_features() - the features offered to the driver. */
UVIRTIO_API
uint64_t uvirtio_device_get_features(const struct uvirtio_device *dev);

/**
 * uvirtio_device_get_driver_features() - the features the driver last wrote,
 * accepted or not (what a register model reads back); 0 after a reset.
 */
UVIRTIO_API
uint64_t uvirtio_device_get_driver_features(const struct uvirtio_device *dev);

/**
 * uvirtio_device_set_driver_features() - the driver writes its features.
 * Return: 0, or -EBUSY after FEATURES_OK (the spec forbids a change then).
 */
UVIRTIO_API
int uvirtio_device_set_driver_features(struct uvirtio_device *dev, uint64_t features);

/**
 * uvirtio_device_set_status() - the driver writes the status register.
 *
 * 0 resets the device (see uvirtio_device_reset()). Setting FEATURES_OK
 * checks the driver's features: a bit not offered, VERSION_1 missing, a
 * dependency missing, or the device type's refusal leaves FEATURES_OK clear,
 * which the driver sees when it reads the status back. Setting DRIVER_OK
 * starts the device. DEVICE_NEEDS_RESET is the device's to set.
 *
 * Suspend (VIRTIO_F_SUSPEND): setting SUSPEND while DRIVER_OK is set stops
 * every queue; the device type finishes the requests in flight; then the
 * status shows SUSPEND with DRIVER_OK clear, before this returns. A device
 * type that cannot finish them (its suspend op fails) sets
 * DEVICE_NEEDS_RESET instead. Setting DRIVER_OK again resumes: queues start
 * where they stopped, held-back config changes are published, SUSPEND
 * clears.
 *
 * Return: 0; -EINVAL when the write clears a bit the driver had set, sets
 * DRIVER_OK without FEATURES_OK, or sets SUSPEND without DRIVER_OK or without
 * VIRTIO_F_SUSPEND negotiated (the status is then unchanged).
 */
UVIRTIO_API
int uvirtio_device_set_status(struct uvirtio_device *dev, uint8_t status);

/** uvirtio_device_get_status() - the status register. */
UVIRTIO_API
uint8_t uvirtio_device_get_status(const struct uvirtio_device *dev);

struct uvirtio_device_stats {
	unsigned resets;                /* completed resets */
	const char *needs_reset_reason; /* why DEVICE_NEEDS_RESET is set, or NULL */
};

/**
 * uvirtio_device_get_stats() - what happened to the device, for tests and
 * reports. Call it on the control thread.
 */
UVIRTIO_API
void uvirtio_device_get_stats(const struct uvirtio_device *dev, struct uvirtio_device_stats *out);

/**
 * uvirtio_device_reset() - reset as the spec defines it: the device type
 * finishes or drops every request in flight, every queue stops, negotiated
 * state is forgotten, the status becomes 0. When it returns the device
 * writes no guest memory and sends no notification until set up again.
 */
UVIRTIO_API
void uvirtio_device_reset(struct uvirtio_device *dev);

/**
 * uvirtio_device_config_read() - the driver reads @len bytes of config space
 * at @offset into @buf.
 * Return: 0, or -EINVAL when the range is outside config space.
 */
UVIRTIO_API
int uvirtio_device_config_read(const struct uvirtio_device *dev, unsigned offset, void *buf,
			       unsigned len);

/**
 * uvirtio_device_config_write() - the driver writes @len bytes from @buf to
 * config space at @offset; the device type's config_write op decides.
 * Return: 0; -EINVAL when the range is outside config space; -EPERM for a
 * device type with read-only config; or the device type's refusal.
 */
UVIRTIO_API
int uvirtio_device_config_write(struct uvirtio_device *dev, unsigned offset, const void *buf,
				unsigned len);

/** uvirtio_device_config_generation() - changes whenever config space does. */
UVIRTIO_API
uint32_t uvirtio_device_config_generation(const struct uvirtio_device *dev);

/**
 * uvirtio_device_config_update() - the device type changes its config space:
 * copy @len bytes at @offset, bump the generation, and notify the driver when
 * it is running. Return: 0, or -EINVAL outside config space.
 */
UVIRTIO_API
int uvirtio_device_config_update(struct uvirtio_device *dev, unsigned offset, const void *buf,
				 unsigned len);

/* For transports: what the device type is. */

/**
 * uvirtio_device_ops() - the device type @dev was set up with (its device_id,
 * queue count, takes_kick_fds...), or NULL for a zeroed or destroyed @dev.
 */
UVIRTIO_API
const struct uvirtio_device_ops *uvirtio_device_ops(const struct uvirtio_device *dev);

/** uvirtio_device_num_queues() - how many queues it has; 0 when not set up. */
UVIRTIO_API
unsigned uvirtio_device_num_queues(const struct uvirtio_device *dev);

/** uvirtio_device_config_size() - the size of config space in bytes. */
UVIRTIO_API
unsigned uvirtio_device_config_size(const struct uvirtio_device *dev);

/** uvirtio_device_queue_max_size() - 0 for a queue that does not exist. */
UVIRTIO_API
unsigned uvirtio_device_queue_max_size(const struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_queue_enable() - the driver has written a queue's layout
 * and enabled it.
 * Return: 0; -EINVAL for a queue that does not exist, a size above the
 * maximum, or before FEATURES_OK; or uvirtio_devq_setup()'s error.
 */
UVIRTIO_API
int uvirtio_device_queue_enable(struct uvirtio_device *dev, unsigned index,
				const struct uvirtio_queue_layout *layout);

/**
 * uvirtio_device_queue_enable_at() - as uvirtio_device_queue_enable(), but
 * resume the ring at a known position (vhost-user SET_VRING_BASE, restore):
 * @next_avail is the next avail slot to take, @used_idx the next used slot.
 * For a packed ring each is encoded as vhost-user does: bits 0-14 the index,
 * bit 15 its wrap counter (see uvirtio_devq_set_indices()).
 * When the device runs, the queue starts serving at once.
 * Return: as uvirtio_device_queue_enable(); -EINVAL also for indices the
 * ring cannot have (a packed index not below the queue size).
 */
UVIRTIO_API
int uvirtio_device_queue_enable_at(struct uvirtio_device *dev, unsigned index,
				   const struct uvirtio_queue_layout *layout, uint16_t next_avail,
				   uint16_t used_idx);

/**
 * uvirtio_device_queue_stop() - stop queue @index and keep its position
 * (vhost-user GET_VRING_BASE or SET_VRING_ENABLE(0)): the device type
 * finishes or drops the requests it took from it, then the queue takes and
 * gives back nothing until enabled again.
 * Return: the next avail slot the device would have taken (for a packed ring
 * with its wrap counter in bit 15); with every request finished this is also
 * the used index (uvirtio_devq_used_index()). 0 for a queue that does not
 * exist.
 */
UVIRTIO_API
uint16_t uvirtio_device_queue_stop(struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_queue_reset() - the driver resets queue @index alone
 * (VIRTIO_F_RING_RESET: PCI queue_reset, MMIO QueueReset, vhost-user ring
 * stop). The device type finishes or drops every request it took from the
 * queue, then the queue forgets its ring, size and indices: when this
 * returns the device uses no buffer of it and sends it no notification. A
 * later uvirtio_device_queue_enable() sets it up again, with any size up
 * to the maximum. The other queues run on.
 * Return: 0; -EINVAL for a queue that does not exist; -EPERM when
 * RING_RESET was not negotiated (the queue is untouched).
 */
UVIRTIO_API
int uvirtio_device_queue_reset(struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_queue_ready() - whether queue @index is set up and enabled
 * (what the driver reads back from queue_enable / QueueReady).
 */
UVIRTIO_API
bool uvirtio_device_queue_ready(const struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_queue_layout() - where queue @index was set up: its size
 * and ring addresses (all 0 when it is not). For a register model that
 * reads them back, and for snapshots.
 */
UVIRTIO_API
void uvirtio_device_queue_layout(const struct uvirtio_device *dev, unsigned index,
				 struct uvirtio_queue_layout *layout);

/**
 * uvirtio_device_set_kick_fd() - the transport's kick fd for queue @index
 * (an eventfd: readable after a kick; read 8 bytes to clear), or -1. The
 * transport keeps owning it and must not close it while the queue is ready.
 * A device type with takes_kick_fds polls it; otherwise the transport does.
 * Return: 0, or -EINVAL for a queue that does not exist.
 */
UVIRTIO_API
int uvirtio_device_set_kick_fd(struct uvirtio_device *dev, unsigned index, int fd);

/**
 * uvirtio_device_queue_kick_fd() - the kick fd set for queue @index, or -1.
 * A device type's queue thread polls it.
 */
UVIRTIO_API
int uvirtio_device_queue_kick_fd(const struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_queue_notify() - the driver kicked queue @index. Passed to
 * the device type only while the device runs (DRIVER_OK, no NEEDS_RESET) and
 * the queue is ready; otherwise ignored.
 */
UVIRTIO_API
void uvirtio_device_queue_notify(struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_queue_notify_data() - the driver wrote notification @data,
 * as a transport receives it: with VIRTIO_F_NOTIFICATION_DATA negotiated the
 * queue index is in bits 0-15 and the driver's next available position above
 * (split: the avail index in 16-31; packed: offset in 16-30, wrap in 31),
 * which is given to the queue (uvirtio_devq_note_notification()) before the
 * kick; without the feature all of @data is the queue index. Then as
 * uvirtio_device_queue_notify(). A device type serving queues on their own
 * threads gets the kick alone: the data is only a hint, the ring is read anyway.
 */
UVIRTIO_API
void uvirtio_device_queue_notify_data(struct uvirtio_device *dev, uint32_t data);

/**
 * uvirtio_device_notified_queue() - the queue index a notification value
 * written by the driver names: bits 0-15 with VIRTIO_F_NOTIFICATION_DATA
 * negotiated, else all of @data. For a transport's lock-free kick path.
 */
UVIRTIO_API
uint32_t uvirtio_device_notified_queue(const struct uvirtio_device *dev, uint32_t data);

/* For device types. */

/** uvirtio_device_priv() - the device type's state given to uvirtio_device_init(). */
UVIRTIO_API
void *uvirtio_device_priv(const struct uvirtio_device *dev);

/** uvirtio_device_queue() - queue @index (NULL when it does not exist). */
UVIRTIO_API
struct uvirtio_devq *uvirtio_device_queue(struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_notify() - after pushing to queue @index, notify the driver
 * if it asked for it. Nothing is sent while the device is not running.
 * May be called on the queue's thread.
 */
UVIRTIO_API
void uvirtio_device_notify(struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_reschedule() - a device type that stops serving queue
 * @index before it is empty (its work budget is spent, so one busy queue
 * cannot starve the others or the control path) asks to be called again
 * soon, as if the driver had kicked.
 */
UVIRTIO_API
void uvirtio_device_reschedule(struct uvirtio_device *dev, unsigned index);

/**
 * uvirtio_device_needs_reset() - the device cannot go on: set
 * DEVICE_NEEDS_RESET and send a configuration-change notification (when
 * DRIVER_OK). @why is kept for reports (a static string). May be called on a
 * queue's thread.
 */
UVIRTIO_API
void uvirtio_device_needs_reset(struct uvirtio_device *dev, const char *why);

/**
 * uvirtio_device_accepted_features() - the features accepted at FEATURES_OK
 * (what the device and driver negotiated); 0 before and after a reset.
 */
UVIRTIO_API
uint64_t uvirtio_device_accepted_features(const struct uvirtio_device *dev);

/** uvirtio_device_has_feature() - whether feature @bit was accepted. */
UVIRTIO_API
bool uvirtio_device_has_feature(const struct uvirtio_device *dev, unsigned bit);

/**
 * uvirtio_device_suspended() - whether the device presents SUSPEND: it has
 * stopped every queue with nothing in flight, sends no notification and
 * holds config changes back until the driver sets DRIVER_OK again.
 * May be called on a queue's thread.
 */
UVIRTIO_API
bool uvirtio_device_suspended(const struct uvirtio_device *dev);

/**
 * uvirtio_device_running() - DRIVER_OK set and DEVICE_NEEDS_RESET clear.
 * May be called on a queue's thread.
 */
UVIRTIO_API
bool uvirtio_device_running(const struct uvirtio_device *dev);

#endif
