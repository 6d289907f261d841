// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's dirty log for live migration (vhost-user.rst,
 * "Migration"): SET_LOG_BASE maps the front-end's bitmap, SET_FEATURES
 * with VHOST_F_LOG_ALL turns logging on and off while the rings run, and
 * the ring layer marks every page the device writes (devq.h,
 * uvirtio_devq_set_dirty_log()). A new log replaces the old one without a
 * lost bit: the queues are switched to it first, and the old one is
 * unmapped only once no push can still be marking it; QEMU reads what the
 * old one holds after our reply.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uvirtio/device.h"
#include "vhost_backend_priv.h"

static void unmap_log(struct vb_log_map *lm)
{
	if (!lm)
		return;
	vb_unmap(&lm->m);
	free(lm);
}

void vb_log_update(struct uvirtio_vhost_backend *vb)
{
	struct uvirtio_dirty_log_area *want =
		(vb->features & UVIRTIO_BIT(VHOST_F_LOG_ALL)) && vb->log_map ? &vb->log_map->area : NULL;

	if (__atomic_load_n(&vb->dlog.active, __ATOMIC_RELAXED) != want)
		uvirtio_dirty_log_switch(&vb->dlog, want);
}

int vb_set_log_base(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	struct vb_log_map *lm, *old;
	int ret;

	/* The fd is closed by handle_msg after this returns: a mapping does
	 * not need it. */
	if (!vb_has_pf(vb, VHOST_USER_PROTOCOL_F_LOG_SHMFD))
		return vb_fail(vb, -EINVAL, "SET_LOG_BASE without LOG_SHMFD negotiated");
	lm = calloc(1, sizeof(*lm));
	if (!lm)
		return vb_fail(vb, -ENOMEM, "out of memory");
	ret = vb_map_fd(vb, m->fds[0], m->payload.log.mmap_offset, m->payload.log.mmap_size,
			"dirty log", &lm->m);
	if (ret) {
		free(lm);
		return ret;
	}
	lm->area = (struct uvirtio_dirty_log_area){ .bits = lm->m.at, .size = lm->m.size };
	old = vb->log_map;
	vb->log_map = lm;
	/* Switches the queues to the new log (when logging) and returns once
	 * none can still be marking the old one: only then is it unmapped. */
	vb_log_update(vb);
	unmap_log(old);
	vb->reply.payload.u64 = 0;
	vb->reply.hdr.size = sizeof(uint64_t);
	return 0;
}

int vb_set_log_fd(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	/* vhost-user.rst: an eventfd to signal when the log is full (a
	 * front-end that polls it). The bitmap never fills up here: kept,
	 * closed with the connection. */
	vb_close_fd(&vb->log_fd);
	vb->log_fd = m->fds[0];
	m->nfds = 0;
	return 0;
}

void vb_log_end(struct uvirtio_vhost_backend *vb)
{
	uvirtio_dirty_log_switch(&vb->dlog, NULL);
	if (vb->dev)
		for (unsigned i = 0; i < vb->nrings; i++)
			uvirtio_devq_set_dirty_log(uvirtio_device_queue(vb->dev, i), NULL, 0);
	unmap_log(vb->log_map);
	vb->log_map = NULL;
	vb_close_fd(&vb->log_fd);
}

int vb_log_check_addr(struct uvirtio_vhost_backend *vb, unsigned ring, uint64_t gpa, uint64_t len)
{
	uint64_t last;

	if (__builtin_add_overflow(gpa, len - 1, &last))
		return vb_fail(vb, -EINVAL, "ring %u: log address %#llx wraps around", ring,
			       (unsigned long long)gpa);
	/* The log may come later (QEMU starts a device during migration with
	 * the addresses first); then marks past its end are dropped. */
	if (vb->log_map && (last >> UVIRTIO_DIRTY_PAGE_SHIFT) / 8 >= vb->log_map->area.size)
		return vb_fail(vb, -EINVAL, "ring %u: log address %#llx is outside the dirty log (%llu bytes)",
			       ring, (unsigned long long)gpa, (unsigned long long)vb->log_map->area.size);
	return 0;
}
