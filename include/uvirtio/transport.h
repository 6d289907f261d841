/* SPDX-License-Identifier: MIT */
/*
 * The transport interface, as the driver side sees a device: the operations
 * of Linux's virtio_config_ops. Every transport (loopback, vhost-user
 * front-end, virtio-mmio, virtio-pci) implements this table; the driver core
 * and every driver use nothing else to reach a device.
 *
 * Unless a comment says otherwise an operation returns 0 or a negative errno;
 * -ENOTCONN means the device is gone.
 */
#ifndef UVIRTIO_TRANSPORT_H
#define UVIRTIO_TRANSPORT_H

#include <stdint.h>

#include "uvirtio/dma.h"

struct uvirtio_transport;

/* Where a queue's ring lives, in the device's (guest) addresses. */
struct uvirtio_queue_layout {
	unsigned num;
	uint64_t desc, avail, used;
};

struct uvirtio_transport_ops {
	/* The features the device offers. */
	int (*get_features)(struct uvirtio_transport *t, uint64_t *features);
	/* Write the driver's features (before FEATURES_OK). */
	int (*set_features)(struct uvirtio_transport *t, uint64_t features);
	int (*get_status)(struct uvirtio_transport *t, uint8_t *status);
	int (*set_status)(struct uvirtio_transport *t, uint8_t status);
	/* Reset the device and return only once it is complete: the device
	 * then uses no buffer and sends no notification. */
	int (*reset)(struct uvirtio_transport *t);
	int (*get_config)(struct uvirtio_transport *t, unsigned offset, void *buf, unsigned len);
	int (*set_config)(struct uvirtio_transport *t, unsigned offset, const void *buf,
			  unsigned len);
	int (*config_generation)(struct uvirtio_transport *t, uint32_t *generation);
	/* Largest size for queue @index; 0 when the queue does not exist. */
	int (*queue_max_size)(struct uvirtio_transport *t, unsigned index, unsigned *max);
	/* Tell the device where queue @index is and enable it. */
	int (*queue_enable)(struct uvirtio_transport *t, unsigned index,
			    const struct uvirtio_queue_layout *layout);
	/* Optional (NULL: the transport cannot): reset queue @index alone
	 * (VIRTIO_F_RING_RESET) and return only once the device has let go of
	 * it: it uses none of its buffers and forgot its ring. queue_enable
	 * sets it up again, with any size. */
	int (*queue_reset)(struct uvirtio_transport *t, unsigned index);
	/* Available-buffer notification for queue @index. */
	int (*notify)(struct uvirtio_transport *t, unsigned index);
	/* Optional (NULL: the transport carries no data, and the driver core
	 * then does not accept VIRTIO_F_NOTIFICATION_DATA): the notification
	 * with its data, used instead of notify once that feature is
	 * negotiated: the queue index in bits 0-15, the driver's next
	 * available position above (uvirtio_drvq_notification_data()). */
	int (*notify_data)(struct uvirtio_transport *t, uint32_t data);
	/* An fd that becomes readable (eventfd semantics: read 8 bytes to
	 * clear) when the device signals used buffers on queue @index, or a
	 * configuration change for UVIRTIO_CONFIG_EVENT. Owned by the transport. */
	int (*event_fd)(struct uvirtio_transport *t, unsigned index);
	/* Shared memory for rings and buffers. */
	struct uvirtio_dma *(*dma)(struct uvirtio_transport *t);
};

#define UVIRTIO_CONFIG_EVENT (~0u)

struct uvirtio_transport {
	const struct uvirtio_transport_ops *ops;
	const char *name; /* for messages: "loopback", "vhost-user", ... */
};

#endif
