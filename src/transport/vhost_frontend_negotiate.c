// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end's negotiation: features and protocol features
 * at connect, the driver's features, the device status (with reset and
 * suspend), and config space.
 */
#include <errno.h>
#include <string.h>

#include <linux/virtio_config.h>

#include "../core/eventfd.h"
#include "uvirtio/virtio_spec.h"

#include "vhost_frontend_priv.h"

int vf_get_features(struct uvirtio_transport *t, uint64_t *features)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);

	if (!is_connected(fe))
		return -ENOTCONN;
	*features = (fe->backend_features & ~VHOST_ONLY_FEATURES) | FRONTEND_FEATURES;
	return 0;
}

/* What SET_FEATURES carries for the driver's @features: the front-end's
 * own features only when the backend offered them too (one that did not
 * would refuse them, and needs to know nothing of them). */
static uint64_t backend_share(const struct uvirtio_vhost_frontend *fe, uint64_t features)
{
	uint64_t v = features & ~VHOST_ONLY_FEATURES;

	v &= ~(FRONTEND_FEATURES & ~fe->backend_features);
	/* Bit 30 stays set once protocol features are in use: libvhost-user
	 * starts rings disabled only when it sees it. */
	if (protocol_features_negotiated(fe))
		v |= 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
	if (fe->logging)
		v |= 1ull << VHOST_F_LOG_ALL;
	return v;
}

int vf_set_features(struct uvirtio_transport *t, uint64_t features)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	uint64_t v = backend_share(fe, features);
	int ret;

	ret = vf_send_u64(fe, VHOST_USER_SET_FEATURES, v);
	if (!ret) {
		fe->driver_features = features;
		fe->sent_features = v;
	}
	return ret;
}

/* A connection lost while reconnect is on is not a device that needs a
 * reset until the reconnect gave up: the requests in flight complete
 * after it. */
static bool reconnect_pending(const struct uvirtio_vhost_frontend *fe)
{
	return fe->reconnect && !__atomic_load_n(&fe->dead, __ATOMIC_ACQUIRE);
}

static int get_status(struct uvirtio_vhost_frontend *fe, uint8_t *status);

/* Under the lock: a reconnect rewrites the protocol features. */
int vf_get_status(struct uvirtio_transport *t, uint8_t *status)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = get_status(fe, status);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static int get_status(struct uvirtio_vhost_frontend *fe, uint8_t *status)
{
	uint8_t local = __atomic_load_n(&fe->status, __ATOMIC_RELAXED);
	bool suspended = __atomic_load_n(&fe->suspended, __ATOMIC_ACQUIRE);
	uint64_t v;
	int ret;

	/* The suspend is the front-end's own: the backend (never told of it)
	 * still says DRIVER_OK, and only its NEEDS_RESET counts meanwhile. */
	if (suspended)
		local = (uint8_t)((local | VIRTIO_CONFIG_S_SUSPEND) & ~VIRTIO_CONFIG_S_DRIVER_OK);

	/* A backend that went away is a device that needs a reset: drivers
	 * waiting for used buffers then fail their requests instead of
	 * waiting for ever. */
	if (!is_connected(fe)) {
		*status = local | (reconnect_pending(fe) ? 0 : VIRTIO_CONFIG_S_NEEDS_RESET);
		return 0;
	}
	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		*status = local;
		return 0;
	}
	ret = vf_get_u64(fe, VHOST_USER_GET_STATUS, &v);
	if (ret == -ENOTCONN || ret == -EPROTO || ret == -ETIMEDOUT) {
		*status = local | (reconnect_pending(fe) ? 0 : VIRTIO_CONFIG_S_NEEDS_RESET);
		return 0;
	}
	if (ret)
		return ret;
	if (suspended)
		*status = local | ((uint8_t)v & VIRTIO_CONFIG_S_NEEDS_RESET);
	else
		*status = (uint8_t)v;
	return 0;
}

int vf_reset(struct uvirtio_transport *t)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret, ret2 = 0;

	/* GET_VRING_BASE returns only once the backend stopped the ring: after
	 * it no used entry is written and no notification sent, which is what
	 * a reset must guarantee. The status write tells a backend with STATUS
	 * that the device itself starts over. */
	ret = vf_stop_all_rings(fe);
	/* As QEMU frees it at a reset: the next start asks for a new region,
	 * so nothing of the old rings is resubmitted on the new ones. */
	close_fd(&fe->inflight_fd);
	if (has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS))
		ret2 = vf_send_u64(fe, VHOST_USER_SET_STATUS, 0);
	else if (has_pf(fe, VHOST_USER_PROTOCOL_F_RESET_DEVICE))
		ret2 = vf_transact(fe, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0);
	__atomic_store_n(&fe->status, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fe->suspended, false, __ATOMIC_RELEASE);
	fe->driver_features = fe->sent_features = 0;
	memset(fe->config_written, 0, sizeof(fe->config_written));
	for (unsigned i = 0; i < fe->nrings; i++)
		eventfd_drain(fe->rings[i].call_fd);
	return ret ? ret : ret2;
}

int vf_set_status(struct uvirtio_transport *t, uint8_t status)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	bool suspended = __atomic_load_n(&fe->suspended, __ATOMIC_RELAXED);
	bool driver_ok = (status & VIRTIO_CONFIG_S_DRIVER_OK) &&
			 (suspended || !(fe->status & VIRTIO_CONFIG_S_DRIVER_OK));
	int ret = 0;

	if (status == 0)
		return vf_reset(t);
	if (!is_connected(fe))
		return -ENOTCONN; /* the error line keeps why */
	if ((status & VIRTIO_CONFIG_S_SUSPEND) && !suspended) {
		/* spec: SUSPEND only after DRIVER_OK, and only when negotiated. */
		if (!(fe->status & VIRTIO_CONFIG_S_DRIVER_OK) ||
		    !(fe->driver_features & UVIRTIO_BIT(VIRTIO_F_SUSPEND)))
			return vf_report(fe, -EINVAL, "SUSPEND %s",
				      fe->status & VIRTIO_CONFIG_S_DRIVER_OK ? "was not negotiated"
									      : "before DRIVER_OK");
		ret = vf_suspend_rings(fe);
		if (ret)
			return ret;
		/* Not forwarded: the backend knows no SUSPEND; its rings are
		 * stopped, which is all a suspend asks of it. */
		__atomic_store_n(&fe->status, status, __ATOMIC_RELAXED);
		__atomic_store_n(&fe->suspended, true, __ATOMIC_RELEASE);
		return 0;
	}
	if (suspended && !driver_ok) {
		/* Other writes while suspended change nothing the backend sees. */
		__atomic_store_n(&fe->status, (uint8_t)(status | VIRTIO_CONFIG_S_SUSPEND),
				 __ATOMIC_RELAXED);
		return 0;
	}
	status &= (uint8_t)~VIRTIO_CONFIG_S_SUSPEND;
	/* DRIVER_OK is when QEMU starts the vhost device: the rings go over
	 * first so the status the backend sees means they are all there. On
	 * a resume they go back where the suspend stopped them. */
	if (driver_ok) {
		ret = vf_inflight_start(fe);
		if (!ret)
			ret = vf_resume_rings(fe);
		if (ret)
			return ret;
	}
	if (has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS))
		ret = vf_send_u64(fe, VHOST_USER_SET_STATUS, status);
	if (!ret) {
		__atomic_store_n(&fe->status, status, __ATOMIC_RELAXED);
		__atomic_store_n(&fe->suspended, false, __ATOMIC_RELEASE);
	}
	return ret;
}

int vf_get_config(struct uvirtio_transport *t, unsigned offset, void *buf, unsigned len)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct vhost_user_config c = { 0 };
	uint32_t size;
	int ret;

	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_CONFIG))
		return vf_report(fe, -EOPNOTSUPP,
			      "GET_CONFIG: the backend does not offer the CONFIG protocol feature");
	if (offset > VHOST_USER_CONFIG_MAX || len > VHOST_USER_CONFIG_MAX - offset)
		return -EINVAL;
	/* Asked for from offset 0, as QEMU does: libvhost-user backends
	 * (qemu-storage-daemon) copy from the start whatever the offset. */
	size = offset + len;
	c.size = size;
	pthread_mutex_lock(&fe->lock);
	ret = vf_transact_locked(fe, VHOST_USER_GET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + size, NULL,
			      0, &c, VHOST_USER_CONFIG_HDR_SIZE + size);
	if (!ret && (c.offset != 0 || c.size != size))
		ret = vf_give_up(fe, -EPROTO, "GET_CONFIG: reply for offset %u size %u, asked for 0 and %u",
			      c.offset, c.size, size);
	pthread_mutex_unlock(&fe->lock);
	if (!ret)
		memcpy(buf, c.payload + offset, len);
	return ret;
}

int vf_set_config(struct uvirtio_transport *t, unsigned offset, const void *buf,
			 unsigned len)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct vhost_user_config c = { .offset = offset, .size = len,
				       .flags = VHOST_USER_CONFIG_WRITABLE };
	int ret;

	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_CONFIG))
		return vf_report(fe, -EOPNOTSUPP,
			      "SET_CONFIG: the backend does not offer the CONFIG protocol feature");
	if (offset > VHOST_USER_CONFIG_MAX || len > VHOST_USER_CONFIG_MAX - offset)
		return -EINVAL;
	memcpy(c.payload, buf, len);
	ret = vf_transact(fe, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + len, NULL, 0,
		       NULL, 0);
	if (!ret) {
		/* Kept for a move to another backend, which must see them too. */
		memcpy(fe->config_shadow + offset, buf, len);
		memset(fe->config_written + offset, 1, len);
	}
	return ret;
}

int vf_config_generation(struct uvirtio_transport *t, uint32_t *generation)
{
	/* vhost-user has no generation counter: GET_CONFIG is one message, so
	 * a read is never torn. */
	if (!is_connected(to_fe(t)))
		return -ENOTCONN;
	*generation = 0;
	return 0;
}

int vf_negotiate(struct uvirtio_vhost_frontend *fe, uint64_t disabled)
{
	uint64_t v;
	int ret;

	ret = vf_get_u64(fe, VHOST_USER_GET_FEATURES, &fe->backend_features);
	if (ret)
		return ret;
	if (!(fe->backend_features & UVIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return vf_set_error(fe, -ENODEV, "the backend does not offer VIRTIO_F_VERSION_1 (features %#llx)",
				 (unsigned long long)fe->backend_features);
	fe->backend_rings = 1;
	if (protocol_features_negotiated(fe)) {
		ret = vf_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &fe->protocol_offered);
		if (ret)
			return ret;
		v = fe->protocol_offered & FRONTEND_PROTOCOL_FEATURES & ~disabled;
		/* REPLY_ACK applies from the next request on: this one has none. */
		ret = vf_send_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, v);
		if (ret)
			return ret;
		fe->protocol = v;
		if (has_pf(fe, VHOST_USER_PROTOCOL_F_MQ)) {
			ret = vf_get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &v);
			if (ret)
				return ret;
			if (v < 1 || v > MAX_RINGS)
				return vf_give_up(fe, -EPROTO, "GET_QUEUE_NUM: %llu queues (1 to %u allowed)",
					       (unsigned long long)v, MAX_RINGS);
			fe->backend_rings = (unsigned)v;
		}
	}
	return vf_transact(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
}
