// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's ring state. Ring states follow vhost-user.rst: a
 * ring is started by SET_VRING_KICK and stopped by GET_VRING_BASE, enabled
 * and disabled by SET_VRING_ENABLE, and runs in the device core only while
 * started, enabled, and with features negotiated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "../core/eventfd.h"
#include "vhost_backend_priv.h"

/* Rings. */

bool vb_ring_packed(const struct uvirtio_vhost_backend *vb)
{
	return vb->features_set && (vb->features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED));
}

static int ring_layout(struct uvirtio_vhost_backend *vb, unsigned i, struct uvirtio_queue_layout *l)
{
	struct vb_ring *r = &vb->rings[i];
	uint64_t n = r->num;
	bool packed = vb_ring_packed(vb);

	l->num = r->num;
	/* The three parts with their event fields, as the device side checks
	 * them; each must lie inside one region. Packed: the descriptor ring,
	 * then the driver and device event suppression areas. */
	if (vb_uva_to_gpa(vb, r->desc_uva, 16 * n, &l->desc) ||
	    vb_uva_to_gpa(vb, r->avail_uva, packed ? 4 : 6 + 2 * n, &l->avail) ||
	    vb_uva_to_gpa(vb, r->used_uva, packed ? 4 : 6 + 8 * n, &l->used))
		return vb_fail(vb, -EFAULT, "ring %u is not inside the memory table", i);
	return 0;
}

/* Stop ring @i in the device core, keeping its position. */
static void ring_halt(struct uvirtio_vhost_backend *vb, unsigned i)
{
	struct vb_ring *r = &vb->rings[i];

	if (!r->running)
		return;
	/* Returns once the device type finished the ring's requests, so the
	 * next avail index is also the used index. */
	r->base = uvirtio_device_queue_stop(vb->dev, i);
	if (vb_ring_packed(vb))
		r->base |= (uint32_t)uvirtio_devq_used_index(uvirtio_device_queue(vb->dev, i)) << 16;
	r->base_set = true;
	uvirtio_device_set_kick_fd(vb->dev, i, -1);
	r->running = false;
}

void vb_halt_all(struct uvirtio_vhost_backend *vb)
{
	for (unsigned i = 0; i < vb->nrings; i++)
		ring_halt(vb, i);
}

bool vb_any_running(const struct uvirtio_vhost_backend *vb)
{
	for (unsigned i = 0; i < vb->nrings; i++)
		if (vb->rings[i].running)
			return true;
	return false;
}

/* Run ring @i in the device core when vhost-user.rst says it runs. */
static int ring_try_run(struct uvirtio_vhost_backend *vb, unsigned i)
{
	struct uvirtio_device *dev = vb->dev;
	struct vb_ring *r = &vb->rings[i];
	bool packed = vb_ring_packed(vb);
	uint32_t base = r->base_set ? r->base : vhost_ring_start_base(packed);
	struct uvirtio_queue_layout l;
	uint16_t used;
	uint8_t status;
	int ret;

	if (r->running || !r->started || !r->enabled)
		return 0;
	/* The ring's format depends on the features: it runs once they are set. */
	if (!vb->features_set || !(uvirtio_device_get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK))
		return 0;
	if (!r->num || !r->addr_set)
		return vb_fail(vb, -EINVAL, "ring %u started before its size and address were set", i);
	ret = ring_layout(vb, i, &l);
	if (ret)
		return ret;
	if (!packed && base > UINT16_MAX)
		return vb_fail(vb, -EINVAL, "ring %u: base %#x is over 16 bits for a split ring", i, base);
	/* Logging, whenever the log is active: the used ring where the
	 * front-end said (SET_VRING_ADDR's LOG flag), or where it is. */
	uvirtio_devq_set_dirty_log(uvirtio_device_queue(dev, i), &vb->dlog,
				   r->log_flag ? r->log_addr : l.used);
	if (uvirtio_device_ops(dev)->takes_kick_fds)
		uvirtio_device_set_kick_fd(dev, i, r->kick_fd);
	/* Packed: QEMU sends the used position in bits 16-31; DPDK's
	 * virtio-user sends the avail one alone, and DPDK's own backend takes
	 * used = avail then (the ring was stopped with nothing in flight). 0
	 * there is (index 0, wrap 0): behind an avail position with wrap 1
	 * only when a whole ring is in flight, which a restart without
	 * inflight tracking cannot resume anyway, so it means "not given". */
	used = packed ? (uint16_t)(base >> 16) : (uint16_t)base;
	if (packed && !used && (base & 0x8000))
		used = (uint16_t)base;
	/* Inflight tracking: the ring resumes from its part of the area. */
	vb_inflight_attach(vb, i, r->num);
	ret = uvirtio_device_queue_enable_at(dev, i, &l, (uint16_t)base, used);
	if (ret) {
		uvirtio_device_set_kick_fd(dev, i, -1);
		return vb_fail(vb, ret, "ring %u refused by the device (%s)", i, strerror(-ret));
	}
	r->running = true;
	/* Without STATUS the front-end never says DRIVER_OK: the first ring
	 * that runs says it (as libvhost-user and the kernel's vhost do). */
	status = uvirtio_device_get_status(dev);
	if (!vb_has_pf(vb, VHOST_USER_PROTOCOL_F_STATUS) && !(status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		ret = uvirtio_device_set_status(dev, (uint8_t)((status & ~VIRTIO_CONFIG_S_NEEDS_RESET) |
							      VIRTIO_CONFIG_S_DRIVER_OK));
		if (ret)
			return vb_fail(vb, ret, "device refused DRIVER_OK");
	}
	return 0;
}

int vb_run_ready_rings(struct uvirtio_vhost_backend *vb)
{
	int first = 0;

	for (unsigned i = 0; i < vb->nrings; i++) {
		int ret = ring_try_run(vb, i);

		if (ret && !first)
			first = ret;
	}
	return first;
}

static void set_call_fd(struct vb_ring *r, int fd)
{
	int old;

	pthread_mutex_lock(&r->call_lock);
	old = r->call_fd;
	r->call_fd = fd;
	pthread_mutex_unlock(&r->call_lock);
	/* Closed after the swap: no queue thread can be writing it now. */
	vb_close_fd(&old);
}

void vb_forget_ring(struct vb_ring *r)
{
	vb_close_fd(&r->kick_fd);
	vb_close_fd(&r->err_fd);
	set_call_fd(r, -1);
	r->num = 0;
	r->addr_set = false;
	r->desc_uva = r->avail_uva = r->used_uva = 0;
	r->base = 0;
	r->base_set = false;
	r->started = r->enabled = r->running = false;
	r->log_flag = false;
	r->log_addr = 0;
	__atomic_store_n(&r->resched, false, __ATOMIC_RELAXED);
}

/* RESET_DEVICE, RESET_OWNER: the device and every ring back to the start. */
void vb_reset_device(struct uvirtio_vhost_backend *vb)
{
	vb_halt_all(vb);
	uvirtio_device_reset(vb->dev);
	for (unsigned i = 0; i < vb->nrings; i++)
		vb_forget_ring(&vb->rings[i]);
	vb->features = 0;
	vb->features_set = false;
	vb->fe_status = 0;
	vb_log_update(vb);
	/* QEMU drops its inflight area on a reset and sends one at the next start. */
	vb_inflight_end(vb);
}

/* Request handlers. Each returns 0 or a negative errno with vb->why set;
 * fds are the handler's to keep or close. */

static bool is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	/* Without /proc there is no telling; the fd is taken on trust. */
	if (n < 0)
		return true;
	target[n] = 0;
	return !strcmp(target, "anon_inode:[eventfd]");
}

static int ring_index(struct uvirtio_vhost_backend *vb, uint32_t index, unsigned *out)
{
	if (index >= vb->nrings && vb_is_net(vb))
		return vb_fail(vb, -EINVAL,
			       "ring %u does not exist: the front-end asks for more queue pairs than the %u "
			       "this device serves (uvirtio net --queues=%u)",
			       index, vb->nrings / 2, vb->nrings / 2);
	if (index >= vb->nrings)
		return vb_fail(vb, -EINVAL, "ring %u does not exist (the device has %u)", index, vb->nrings);
	*out = index;
	return 0;
}

int vb_vring_fd(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	uint64_t v = m->payload.u64;
	int fd = m->nfds ? m->fds[0] : -1;
	unsigned i = 0;
	struct vb_ring *r;
	int ret;

	m->nfds = 0; /* ours now */
	if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK))
		ret = vb_fail(vb, -EINVAL, "unknown bits in %#llx", (unsigned long long)v);
	else
		ret = ring_index(vb, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK), &i);
	if (!ret && fd >= 0 && !is_eventfd(fd))
		ret = vb_fail(vb, -EINVAL, "ring %u: the fd is not an eventfd", i);
	if (!ret && m->hdr.request == VHOST_USER_SET_VRING_KICK && fd < 0)
		ret = vb_fail(vb, -EOPNOTSUPP, "ring %u: polling without a kick fd is not supported", i);
	if (ret) {
		vb_close_fd(&fd);
		return ret;
	}
	r = &vb->rings[i];
	/* Never blocks on a front-end's counter at its maximum. */
	if (fd >= 0 && m->hdr.request != VHOST_USER_SET_VRING_ERR)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	switch (m->hdr.request) {
	case VHOST_USER_SET_VRING_KICK:
		/* The queue thread polls the old fd until the ring stops. */
		ring_halt(vb, i);
		vb_close_fd(&r->kick_fd);
		r->kick_fd = fd;
		r->started = true;
		if (!(vb->features & UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
			r->enabled = true;
		return ring_try_run(vb, i);
	case VHOST_USER_SET_VRING_CALL:
		set_call_fd(r, fd);
		/* One call on every new fd, spurious or not (libvhost-user does
		 * the same). A used entry can be published without its call
		 * ever reaching the driver: QEMU swaps the call fd to mask an
		 * MSI-X vector and back to unmask it, and looks for a call on
		 * the masked fd before this message is read, so a call made on
		 * it in between is lost; a backend killed between its used
		 * index store and its call leaves entries nobody will signal
		 * (the next process has nothing of its own to complete). The
		 * driver then waits for ever with its requests done. A driver
		 * that finds nothing new in the used ring ignores a call. */
		if (fd >= 0)
			eventfd_signal(fd);
		return 0;
	default:
		vb_close_fd(&r->err_fd);
		r->err_fd = fd;
		return 0;
	}
}

int vb_vring(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_vring_state *st = &m->payload.state;
	unsigned i = 0, max;
	struct vb_ring *r;
	int ret;

	ret = ring_index(vb, m->hdr.request == VHOST_USER_SET_VRING_ADDR ? m->payload.addr.index
								   : st->index, &i);
	if (ret)
		return ret;
	r = &vb->rings[i];
	switch (m->hdr.request) {
	case VHOST_USER_SET_VRING_ENABLE:
		if (st->num > 1)
			return vb_fail(vb, -EINVAL, "ring %u: enable value %u", i, st->num);
		r->enabled = st->num;
		if (!r->enabled) {
			/* Keeps the position: QEMU disables rings to pause them. */
			ring_halt(vb, i);
			return 0;
		}
		return ring_try_run(vb, i);
	case VHOST_USER_GET_VRING_BASE:
		ring_halt(vb, i);
		/* Nothing is in flight and the front-end gets the base: the
		 * ring's inflight part starts afresh at the next start, at the
		 * base given then (after a queue reset, a new ring at 0). */
		vb_inflight_ring_stopped(vb, i);
		r->started = false;
		vb_close_fd(&r->kick_fd);
		vb->reply.payload.state = (struct vhost_user_vring_state){
			.index = i, .num = r->base_set ? r->base : vhost_ring_start_base(vb_ring_packed(vb))
		};
		vb->reply.hdr.size = sizeof(vb->reply.payload.state);
		return 0;
	default:
		break;
	}
	if (m->hdr.request == VHOST_USER_SET_VRING_ADDR) {
		const struct vhost_user_vring_addr *a = &m->payload.addr;
		bool log = a->flags & VHOST_USER_VRING_F_LOG;

		if (a->flags & ~VHOST_USER_VRING_F_LOG)
			return vb_fail(vb, -EINVAL, "ring %u: unknown address flags %#x", i, a->flags);
		if (log && !(vb->features & UVIRTIO_BIT(VHOST_F_LOG_ALL)))
			return vb_fail(vb, -EINVAL, "ring %u: logging asked before VHOST_F_LOG_ALL was set", i);
		/* Packed: QEMU gives the device area (4 bytes). */
		if (log && vb_log_check_addr(vb, i, a->log_guest_addr,
					     vb_ring_packed(vb) ? 4 : 6 + 8ull * r->num))
			return -EINVAL;
		/* QEMU sends the same addresses again to turn logging on and
		 * off while the ring runs: only the log changes then. */
		if (r->running && a->desc_user_addr == r->desc_uva &&
		    a->avail_user_addr == r->avail_uva && a->used_user_addr == r->used_uva) {
			struct uvirtio_queue_layout l;

			if (ring_layout(vb, i, &l))
				return -EFAULT;
			r->log_flag = log;
			r->log_addr = a->log_guest_addr;
			uvirtio_devq_set_dirty_log(uvirtio_device_queue(vb->dev, i), &vb->dlog,
						   log ? r->log_addr : l.used);
			return 0;
		}
	}
	/* The rest change a ring under the device's feet: only while stopped. */
	if (r->running)
		return vb_fail(vb, -EBUSY, "ring %u changed while it runs", i);
	switch (m->hdr.request) {
	case VHOST_USER_SET_VRING_NUM:
		max = uvirtio_device_queue_max_size(vb->dev, i);
		/* spec: at most the device's maximum; a split ring's size is a
		 * power of 2 (QEMU sets the features before the rings). */
		if (st->num == 0 || st->num > max)
			return vb_fail(vb, -EINVAL, "ring %u: size %u is not 1 to %u", i, st->num, max);
		if (!vb_ring_packed(vb) && (st->num & (st->num - 1)))
			return vb_fail(vb, -EINVAL, "ring %u: size %u is not a power of 2 up to %u", i,
				    st->num, max);
		r->num = st->num;
		return 0;
	case VHOST_USER_SET_VRING_BASE:
		/* Split: a 16-bit index; packed: two (QEMU's encoding), which
		 * the ring checks against its size when it runs. QEMU sets the
		 * features first, so the layout is known here. */
		if (!vb_ring_packed(vb) && st->num > UINT16_MAX)
			return vb_fail(vb, -EINVAL, "ring %u: base %#x is over 16 bits for a split ring", i,
				    st->num);
		r->base = st->num;
		r->base_set = true;
		return 0;
	case VHOST_USER_SET_VRING_ADDR: {
		const struct vhost_user_vring_addr *a = &m->payload.addr;
		struct uvirtio_queue_layout l;
		uint64_t old_desc = r->desc_uva, old_avail = r->avail_uva, old_used = r->used_uva;

		r->desc_uva = a->desc_user_addr;
		r->avail_uva = a->avail_user_addr;
		r->used_uva = a->used_user_addr;
		/* Checked now when the size is known, and again when it runs
		 * (the memory table may change in between). */
		if (r->num && ring_layout(vb, i, &l)) {
			r->desc_uva = old_desc;
			r->avail_uva = old_avail;
			r->used_uva = old_used;
			return -EFAULT;
		}
		r->addr_set = true;
		r->log_flag = a->flags & VHOST_USER_VRING_F_LOG;
		r->log_addr = a->log_guest_addr;
		return 0;
	}
	}
	return vb_fail(vb, -EINVAL, "internal: request %u", m->hdr.request);
}
