// SPDX-License-Identifier: MIT
/*
 * Feature bits by name: one table of the transport bits (24 to 63) and one
 * per device type, for `uvirtio demo` and `uvirtio check`.
 */
#include <stdio.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "feature_names.h"
#include "uvirtio/vhost_user.h"
#include "uvirtio/virtio_spec.h"

const char *const features_blk_names[24] = {
	[VIRTIO_BLK_F_BARRIER] = "BARRIER", [VIRTIO_BLK_F_SIZE_MAX] = "SIZE_MAX",
	[VIRTIO_BLK_F_SEG_MAX] = "SEG_MAX", [VIRTIO_BLK_F_GEOMETRY] = "GEOMETRY",
	[VIRTIO_BLK_F_RO] = "RO", [VIRTIO_BLK_F_BLK_SIZE] = "BLK_SIZE",
	[VIRTIO_BLK_F_SCSI] = "SCSI", [VIRTIO_BLK_F_FLUSH] = "FLUSH",
	[VIRTIO_BLK_F_TOPOLOGY] = "TOPOLOGY", [VIRTIO_BLK_F_CONFIG_WCE] = "CONFIG_WCE",
	[VIRTIO_BLK_F_MQ] = "MQ", [VIRTIO_BLK_F_DISCARD] = "DISCARD",
	[VIRTIO_BLK_F_WRITE_ZEROES] = "WRITE_ZEROES", [VIRTIO_BLK_F_SECURE_ERASE] = "SECURE_ERASE",
};

/* Bit 30 is unused by virtio; vhost-user gives it to the backend's
 * VHOST_USER_F_PROTOCOL_FEATURES, which is where a command sees it. */
static const char *const transport_names[64] = {
	[VIRTIO_F_NOTIFY_ON_EMPTY] = "NOTIFY_ON_EMPTY", [VIRTIO_F_ANY_LAYOUT] = "ANY_LAYOUT",
	[VIRTIO_RING_F_INDIRECT_DESC] = "INDIRECT_DESC", [VIRTIO_RING_F_EVENT_IDX] = "EVENT_IDX",
	[VHOST_USER_F_PROTOCOL_FEATURES] = "PROTOCOL_FEATURES", [VIRTIO_F_VERSION_1] = "VERSION_1",
	[VIRTIO_F_ACCESS_PLATFORM] = "ACCESS_PLATFORM", [VIRTIO_F_RING_PACKED] = "RING_PACKED",
	[VIRTIO_F_IN_ORDER] = "IN_ORDER", [VIRTIO_F_ORDER_PLATFORM] = "ORDER_PLATFORM",
	[VIRTIO_F_SR_IOV] = "SR_IOV", [VIRTIO_F_NOTIFICATION_DATA] = "NOTIFICATION_DATA",
	[VIRTIO_F_NOTIF_CONFIG_DATA] = "NOTIF_CONFIG_DATA", [VIRTIO_F_RING_RESET] = "RING_RESET",
	[VIRTIO_F_ADMIN_VQ] = "ADMIN_VQ", [VIRTIO_F_SUSPEND] = "SUSPEND",
};

const char *features_names(const char *const *device_names, uint64_t f, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = 0;
	for (unsigned bit = 0; bit < 64 && n < size; bit++) {
		if (!(f & (1ull << bit)))
			continue;
		const char *name = bit < 24 ? (device_names ? device_names[bit] : NULL)
					    : transport_names[bit];

		if (name)
			n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " " : "", name);
		else
			n += (size_t)snprintf(buf + n, size - n, "%sbit%u", n ? " " : "", bit);
	}
	return buf;
}

const char *features_describe(const char *const *device_names, uint64_t f, char *buf, size_t size)
{
	char names[512];

	snprintf(buf, size, "0x%llx (%s)", (unsigned long long)f,
		 features_names(device_names, f, names, sizeof(names)));
	return buf;
}
