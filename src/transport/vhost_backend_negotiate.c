// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's negotiation: features (GET/SET_FEATURES),
 * protocol features, the device status (SET_STATUS) and config space
 * (GET/SET_CONFIG), turned into device core calls.
 */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <string.h>

#include "vhost_backend_priv.h"

#define DRIVER_BITS (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)

uint64_t vb_offered_features(const struct uvirtio_vhost_backend *vb)
{
	/* QEMU 7.2 carries neither a guest's per-queue reset nor a suspend to
	 * the backend: offering them would let a guest free a ring still in
	 * use here. A kick eventfd carries no notification data. */
	return (uvirtio_device_get_features(vb->dev) &
		~(UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND) |
		  UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA) | UVIRTIO_BIT(VHOST_F_LOG_ALL))) |
	       UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
	       /* Dirty logging is the backend's (vhost_backend_log.c), not the device's. */
	       UVIRTIO_BIT(VHOST_F_LOG_ALL);
}

bool vb_is_net(const struct uvirtio_vhost_backend *vb)
{
	const struct uvirtio_device_ops *ops = vb->dev ? uvirtio_device_ops(vb->dev) : NULL;

	return ops && ops->device_id == VIRTIO_ID_NET;
}

uint64_t vb_offered_protocol_features(const struct uvirtio_vhost_backend *vb)
{
	uint64_t pf = OFFERED_PROTOCOL_FEATURES;
	const struct uvirtio_device_ops *ops = vb->dev ? uvirtio_device_ops(vb->dev) : NULL;

	/* QEMU sends NET_SET_MTU only when this is offered. */
	if (ops && ops->net_set_mtu)
		pf |= UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_NET_MTU);
	return pf;
}

int vb_net_set_mtu(struct uvirtio_vhost_backend *vb, uint64_t mtu)
{
	const struct uvirtio_device_ops *ops = uvirtio_device_ops(vb->dev);
	int ret;

	if (!ops->net_set_mtu || !vb_has_pf(vb, VHOST_USER_PROTOCOL_F_NET_MTU))
		return vb_fail(vb, -ENOSYS, "NET_MTU was not negotiated");
	if (mtu > UINT16_MAX)
		return vb_fail(vb, -EINVAL, "MTU %llu is above 65535", (unsigned long long)mtu);
	ret = ops->net_set_mtu(vb->dev, (unsigned)mtu);
	if (ret)
		return vb_fail(vb, ret, "the device refused MTU %llu", (unsigned long long)mtu);
	return 0;
}

int vb_set_features(struct uvirtio_vhost_backend *vb, uint64_t f)
{
	struct uvirtio_device *dev = vb->dev;

	if (f & ~vb_offered_features(vb))
		return vb_fail(vb, -EINVAL, "features %#llx were not offered",
			    (unsigned long long)(f & ~vb_offered_features(vb)));
	if (vb_any_running(vb)) {
		/* QEMU turns logging on and off with the rings running: only
		 * the log changes. */
		if (vb->features_set && !((f ^ vb->features) & ~UVIRTIO_BIT(VHOST_F_LOG_ALL))) {
			vb->features = f;
			vb_log_update(vb);
			return 0;
		}
		return vb_fail(vb, -EBUSY, "features changed while rings run");
	}
	if (uvirtio_device_get_status(dev))
		uvirtio_device_reset(dev);
	vb->features_set = false;
	uvirtio_device_set_status(dev, DRIVER_BITS);
	uvirtio_device_set_driver_features(dev, f & ~(UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
						      UVIRTIO_BIT(VHOST_F_LOG_ALL)));
	uvirtio_device_set_status(dev, DRIVER_BITS | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(uvirtio_device_get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		uvirtio_device_reset(dev);
		return vb_fail(vb, -EINVAL, "the device refused features %#llx", (unsigned long long)f);
	}
	vb->features = f;
	vb->features_set = true;
	vb_log_update(vb);
	/* vhost-user.rst: without VHOST_USER_F_PROTOCOL_FEATURES rings start
	 * enabled; with it they wait for SET_VRING_ENABLE. */
	if (!(f & UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		for (unsigned i = 0; i < vb->nrings; i++)
			vb->rings[i].enabled = true;
	return vb_run_ready_rings(vb);
}

int vb_set_status(struct uvirtio_vhost_backend *vb, uint64_t value)
{
	struct uvirtio_device *dev = vb->dev;
	uint8_t s = (uint8_t)value, core;
	int ret;

	if (value > UINT8_MAX)
		return vb_fail(vb, -EINVAL, "status %#llx has more than 8 bits", (unsigned long long)value);
	if (s == 0) {
		/* QEMU sends this on guest reset, pause and migration alike, then
		 * asks for the ring positions: stop the rings keeping them, and
		 * reset the device (QEMU sets the features again to restart). */
		vb_halt_all(vb);
		uvirtio_device_reset(dev);
		vb->features_set = false;
		vb->fe_status = 0;
		return 0;
	}
	core = uvirtio_device_get_status(dev);
	if ((s & VIRTIO_CONFIG_S_FEATURES_OK) && !(core & VIRTIO_CONFIG_S_FEATURES_OK))
		return vb_fail(vb, -EINVAL, "FEATURES_OK set without accepted features");
	if ((s & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)) & ~core) {
		if (!(core & VIRTIO_CONFIG_S_FEATURES_OK))
			return vb_fail(vb, -EINVAL, "status %#x before features were set", s);
		ret = uvirtio_device_set_status(
			dev, (uint8_t)((core & ~VIRTIO_CONFIG_S_NEEDS_RESET) |
				       (s & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED))));
		if (ret)
			return vb_fail(vb, ret, "the device refused status %#x", s);
	}
	vb->fe_status = s;
	return 0;
}

int vb_set_protocol_features(struct uvirtio_vhost_backend *vb, uint64_t v)
{
	if (v & ~vb_offered_protocol_features(vb))
		return vb_fail(vb, -EINVAL, "protocol features %#llx were not offered",
			       (unsigned long long)(v & ~vb_offered_protocol_features(vb)));
	vb->protocol_features = v;
	pthread_mutex_lock(&vb->backend_lock);
	vb->config_msgs = vb_has_pf(vb, VHOST_USER_PROTOCOL_F_CONFIG);
	pthread_mutex_unlock(&vb->backend_lock);
	return 0;
}

int vb_get_config(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_config *c = &m->payload.config;
	struct vhost_user_config *out = &vb->reply.payload.config;
	int ret;

	*out = (struct vhost_user_config){ .offset = c->offset, .size = c->size, .flags = c->flags };
	/* Nothing to copy for 0 bytes (and a device without config space has
	 * none to copy from), but the offset is checked all the same. */
	if (c->size)
		ret = uvirtio_device_config_read(vb->dev, c->offset, out->payload, c->size);
	else
		ret = c->offset > uvirtio_device_config_size(vb->dev) ? -EINVAL : 0;
	if (ret) {
		/* QEMU reads a reply of another size as failure. */
		out->size = 0;
		vb->reply.hdr.size = VHOST_USER_CONFIG_HDR_SIZE;
		return vb_fail(vb, ret, "config read of %u bytes at %u is outside config space (%u bytes)",
			    c->size, c->offset, uvirtio_device_config_size(vb->dev));
	}
	vb->reply.hdr.size = VHOST_USER_CONFIG_HDR_SIZE + c->size;
	return 0;
}

int vb_set_config(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_config *c = &m->payload.config;
	int ret = uvirtio_device_config_write(vb->dev, c->offset, c->payload, c->size);

	if (ret)
		return vb_fail(vb, ret, "config write of %u bytes at %u refused (%s)", c->size, c->offset,
			    strerror(-ret));
	return 0;
}
