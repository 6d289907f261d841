/* SPDX-License-Identifier: MIT */
/*
 * The few virtio constants that Debian 12's Linux UAPI headers (6.1) do not
 * define yet. Everything else comes from <linux/virtio_*.h>; this is the one
 * place where uvirtio adds to them.
 */
#ifndef UVIRTIO_VIRTIO_SPEC_H
#define UVIRTIO_VIRTIO_SPEC_H

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#ifndef VIRTIO_F_NOTIFICATION_DATA
#define VIRTIO_F_NOTIFICATION_DATA 38
#endif
#ifndef VIRTIO_F_NOTIF_CONFIG_DATA
#define VIRTIO_F_NOTIF_CONFIG_DATA 39
#endif
#ifndef VIRTIO_F_ADMIN_VQ
#define VIRTIO_F_ADMIN_VQ 41
#endif
/* virtio 1.4: the device can be suspended (status bit SUSPEND). */
#ifndef VIRTIO_F_SUSPEND
#define VIRTIO_F_SUSPEND 43
#endif
#ifndef VIRTIO_CONFIG_S_SUSPEND
#define VIRTIO_CONFIG_S_SUSPEND 16
#endif

/* virtio-mmio: the queue reset register (virtio 1.2, RING_RESET). */
#ifndef VIRTIO_MMIO_QUEUE_RESET
#define VIRTIO_MMIO_QUEUE_RESET 0x0c0
#endif

/* virtio-pci: fields the spec appends to struct virtio_pci_common_cfg
 * (Linux's struct virtio_pci_modern_common_cfg, newer than 6.1's UAPI). */
#define UVIRTIO_PCI_COMMON_QUEUE_NOTIFY_DATA 0x38 /* le16 */
#define UVIRTIO_PCI_COMMON_QUEUE_RESET 0x3a       /* le16 */
#define UVIRTIO_PCI_COMMON_CFG_SIZE 0x3c

/* The spec's limit for a split virtqueue's size. */
#define UVIRTIO_QUEUE_SIZE_MAX 32768u

#define UVIRTIO_BIT(f) (1ull << (f))

/* The transport features uvirtio's rings and cores implement, on both sides:
 * what a device core offers besides its device type's bits, and the only
 * transport bits a driver core accepts. */
#define UVIRTIO_TRANSPORT_FEATURES                                                    \
	(UVIRTIO_BIT(VIRTIO_F_VERSION_1) | UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | \
	 UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_F_RING_RESET) |    \
	 UVIRTIO_BIT(VIRTIO_F_SUSPEND) | UVIRTIO_BIT(VIRTIO_F_RING_PACKED) |          \
	 UVIRTIO_BIT(VIRTIO_F_IN_ORDER) | UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA))

#endif
