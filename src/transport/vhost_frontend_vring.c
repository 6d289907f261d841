// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end's rings: handing a ring to the backend and
 * taking it back (GET_VRING_BASE), suspend and resume, per-queue reset,
 * and the queue operations of the transport.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include <linux/virtio_config.h>

#include "../core/eventfd.h"
#include "uvirtio/virtio_spec.h"

#include "vhost_frontend_priv.h"

int vf_get_vring_base(struct uvirtio_vhost_frontend *fe, unsigned index, uint32_t *base)
{
	struct vhost_user_vring_state s = { .index = index };
	int ret;

	/* Checked under the lock: a give-up closes the socket that a queue
	 * thread's request may be using. */
	pthread_mutex_lock(&fe->lock);
	ret = vf_transact_locked(fe, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &s, sizeof(s));
	if (!ret && s.index != index)
		ret = vf_give_up(fe, -EPROTO, "GET_VRING_BASE: reply for ring %u, asked for %u", s.index,
			      index);
	pthread_mutex_unlock(&fe->lock);
	if (!ret)
		*base = s.num;
	return ret;
}

uint32_t vf_start_base(const struct uvirtio_vhost_frontend *fe)
{
	return vhost_ring_start_base(fe->driver_features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED));
}

int vf_send_vring_addr(struct uvirtio_vhost_frontend *fe, unsigned index)
{
	struct vf_ring *r = &fe->rings[index];
	struct vhost_user_vring_addr a = {
		.index = index,
		.desc_user_addr = vf_frontend_addr(fe, r->layout.desc),
		.used_user_addr = vf_frontend_addr(fe, r->layout.used),
		.avail_user_addr = vf_frontend_addr(fe, r->layout.avail),
		/* As QEMU: the used ring's (packed: device area's) guest address. */
		.log_guest_addr = r->layout.used,
		.flags = fe->logging ? VHOST_USER_VRING_F_LOG : 0,
	};

	return vf_transact(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0);
}

/* Hands ring @index to the backend at @base and enables it. */
int vf_start_ring(struct uvirtio_vhost_frontend *fe, unsigned index, uint32_t base)
{
	struct vf_ring *r = &fe->rings[index];
	int ret;

	bool kicked = false;
	uint32_t ignored;

	/* QEMU's order (vhost_virtqueue_start): num, base, addresses, then
	 * the fds. The call fd goes before the kick fd: vhost-user.rst has a
	 * ring start when its kick fd is set, and a backend may serve buffers
	 * at once (libvhost-user kicks itself then; one that dropped the call
	 * fd at GET_VRING_BASE, as it and DPDK do, would signal nothing). */
	ret = vf_send_state(fe, VHOST_USER_SET_VRING_NUM, index, r->layout.num);
	if (!ret)
		ret = vf_send_state(fe, VHOST_USER_SET_VRING_BASE, index, base);
	if (!ret)
		ret = vf_send_vring_addr(fe, index);
	if (!ret)
		ret = vf_send_vring_fd(fe, VHOST_USER_SET_VRING_CALL, index, r->call_fd);
	if (!ret) {
		kicked = true;
		ret = vf_send_vring_fd(fe, VHOST_USER_SET_VRING_KICK, index, r->kick_fd);
	}
	/* With protocol features a ring starts disabled (vhost-user.rst). */
	if (!ret && protocol_features_negotiated(fe))
		ret = vf_send_state(fe, VHOST_USER_SET_VRING_ENABLE, index, 1);
	if (ret) {
		/* The backend may have started the ring (even a refused kick
		 * may have been taken): stop it again, or a reset, which only
		 * stops started rings, would leave it running on memory the
		 * driver frees. A failure here gives the connection up. */
		if (kicked && is_connected(fe))
			vf_get_vring_base(fe, index, &ignored);
		return ret;
	}
	r->started = true;
	r->stopped = false;
	r->started_at = base;
	return 0;
}

int vf_stop_all_rings(struct uvirtio_vhost_frontend *fe)
{
	int first = 0;

	for (unsigned i = 0; i < fe->nrings; i++) {
		struct vf_ring *r = &fe->rings[i];
		uint32_t base;
		int ret = 0;

		if (r->started)
			ret = vf_get_vring_base(fe, i, &base);
		r->started = r->stopped = r->configured = r->reset = r->suspended = false;
		r->relaunch = false;
		__atomic_store_n(&r->needs_resubmit, false, __ATOMIC_RELEASE);
		r->base = 0;
		if (ret && !first)
			first = ret;
	}
	return first;
}

/* Suspend (VIRTIO_F_SUSPEND, done here, not by the backend): stop every
 * handed-over ring with GET_VRING_BASE, which returns once the backend
 * finished what it took from it (uvirtio's backend; see the header for
 * libvhost-user's), and keep where each stopped. */
int vf_suspend_rings(struct uvirtio_vhost_frontend *fe)
{
	for (unsigned i = 0; i < fe->nrings; i++) {
		struct vf_ring *r = &fe->rings[i];
		int ret;

		if (!r->started)
			continue;
		ret = vf_get_vring_base(fe, i, &r->base);
		if (ret)
			return ret;
		r->started = false;
		r->suspended = true;
	}
	return 0;
}

/* Resume: every ring the suspend stopped goes back at its saved base, and
 * every ring enabled meanwhile (or configured, never started) at 0. A kick
 * covers buffers made available before the suspend that the backend had
 * not taken. */
int vf_resume_rings(struct uvirtio_vhost_frontend *fe)
{
	for (unsigned i = 0; i < fe->nrings; i++) {
		struct vf_ring *r = &fe->rings[i];
		int ret;

		if (r->started || r->stopped || r->reset || !r->configured)
			continue;
		ret = vf_start_ring(fe, i, r->suspended ? r->base : vf_start_base(fe));
		if (ret)
			return ret;
		if (r->suspended)
			eventfd_signal(r->kick_fd);
		r->suspended = false;
	}
	return 0;
}

int vf_queue_max_size(struct uvirtio_transport *t, unsigned index, unsigned *max)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);

	if (!is_connected(fe))
		return -ENOTCONN;
	*max = index < fe->nrings ? fe->max_queue_size : 0;
	return 0;
}

int vf_queue_enable(struct uvirtio_transport *t, unsigned index,
			   const struct uvirtio_queue_layout *layout)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct vf_ring *r;

	if (!is_connected(fe))
		return -ENOTCONN;
	if (index >= fe->nrings || !layout->num || layout->num > fe->max_queue_size ||
	    !vf_layout_inside(fe, layout))
		return -EINVAL;
	r = &fe->rings[index];
	if (r->started || r->suspended)
		return -EBUSY;
	r->layout = *layout;
	r->configured = true;
	r->reset = false;
	r->base = 0;
	/* Enabled while running (after DRIVER_OK; after a queue reset, with
	 * any size): hand it over now. While suspended, resume does. */
	if ((fe->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    !__atomic_load_n(&fe->suspended, __ATOMIC_RELAXED)) {
		int ret = vf_start_ring(fe, index, vf_start_base(fe));

		if (!ret)
			__atomic_store_n(&r->needs_resubmit, false, __ATOMIC_RELEASE);
		return ret;
	}
	return 0;
}

int vf_queue_reset(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct vf_ring *r;
	uint32_t base;
	int ret;

	if (index >= fe->nrings)
		return -EINVAL;
	if (!(fe->driver_features & UVIRTIO_BIT(VIRTIO_F_RING_RESET)))
		return -EPERM;
	r = &fe->rings[index];
	/* GET_VRING_BASE returns once the backend stopped the ring and
	 * finished what it took (QEMU 8's vhost_virtqueue_stop for a queue
	 * reset): then it touches none of the ring's buffers. The base is not
	 * needed: the ring is forgotten. */
	if (r->started) {
		ret = vf_get_vring_base(fe, index, &base);
		if (ret)
			return ret;
	}
	r->started = r->stopped = r->configured = r->suspended = false;
	r->reset = true;
	r->base = 0;
	/* Signals for the old ring must not wake a waiter on the new one. */
	eventfd_drain(r->call_fd);
	eventfd_drain(r->kick_fd);
	return 0;
}

int vf_notify(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);

	if (index >= fe->nrings)
		return -EINVAL;
	eventfd_signal(fe->rings[index].kick_fd);
	return 0;
}

int vf_event_fd(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);

	if (index == UVIRTIO_CONFIG_EVENT)
		return fe->config_fd;
	return index < fe->nrings ? fe->rings[index].call_fd : -EINVAL;
}

int vf_make_rings(struct uvirtio_vhost_frontend *fe)
{
	fe->rings = calloc(fe->nrings, sizeof(*fe->rings));
	if (!fe->rings)
		return -ENOMEM;
	for (unsigned i = 0; i < fe->nrings; i++)
		fe->rings[i].kick_fd = fe->rings[i].call_fd = -1;
	for (unsigned i = 0; i < fe->nrings; i++) {
		struct vf_ring *r = &fe->rings[i];

		r->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		r->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (r->kick_fd < 0 || r->call_fd < 0)
			return vf_set_error(fe, -errno, "eventfd: %s", strerror(errno));
	}
	return 0;
}
