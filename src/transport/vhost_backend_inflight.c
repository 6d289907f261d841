// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's inflight area (vhost-user.rst, "Inflight I/O
 * tracking"; docs/inflight.md): GET_INFLIGHT_FD makes a shared memory file
 * for the front-end to keep, SET_INFLIGHT_FD hands one back (the same, after
 * this process or one before it died), and every ring that starts is given
 * its part, from which the ring layer resumes (devq.h,
 * uvirtio_devq_resume_inflight()). The front-end keeps the file across our
 * death: that is what makes it outlive us.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uvirtio/device.h"
#include "uvirtio/log.h"
#include "vhost_backend_priv.h"

int vb_map_fd(struct uvirtio_vhost_backend *vb, int fd, uint64_t off, uint64_t size,
	      const char *what, struct vb_map *out)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), delta, end;
	struct stat st;
	void *map;

	if (size == 0)
		return vb_fail(vb, -EINVAL, "%s of size 0", what);
	if (__builtin_add_overflow(off, size, &end))
		return vb_fail(vb, -EINVAL, "%s wraps around (offset %#llx size %#llx)", what,
			       (unsigned long long)off, (unsigned long long)size);
	if (fstat(fd, &st) < 0)
		return vb_fail(vb, -errno, "%s fd: fstat failed: %s", what, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return vb_fail(vb, -EINVAL, "%s fd is not a mappable file", what);
	/* Touching a page past the end of the file would SIGBUS this process. */
	if (st.st_size < 0 || end > (uint64_t)st.st_size)
		return vb_fail(vb, -EINVAL, "%s (offset %#llx size %#llx) is larger than its file (%lld bytes)",
			       what, (unsigned long long)off, (unsigned long long)size,
			       (long long)st.st_size);
	delta = off % page;
	if (size + delta > SIZE_MAX)
		return vb_fail(vb, -EINVAL, "%s too large", what);
	map = mmap(NULL, (size_t)(size + delta), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)(off - delta));
	if (map == MAP_FAILED)
		return vb_fail(vb, -errno, "%s: mmap failed: %s", what, strerror(errno));
	*out = (struct vb_map){ .map = map, .map_len = (size_t)(size + delta),
				.at = (uint8_t *)map + delta, .size = size };
	return 0;
}

void vb_unmap(struct vb_map *m)
{
	if (m->map)
		munmap(m->map, m->map_len);
	*m = (struct vb_map){ 0 };
}

/* The bytes of one queue's part: every part is as large as the largest ring
 * the front-end announced needs. */
static size_t part_size(const struct uvirtio_vhost_backend *vb, unsigned queue_size)
{
	return uvirtio_devq_inflight_size(queue_size, vb_ring_packed(vb));
}

/* The four values both requests carry, checked against the device. */
static int check_shape(struct uvirtio_vhost_backend *vb, const struct vhost_user_inflight *in)
{
	if (!vb_has_pf(vb, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
		return vb_fail(vb, -EINVAL, "without INFLIGHT_SHMFD negotiated");
	/* The layout depends on the ring format: features first (QEMU sets
	 * them before it asks, vhost_dev_prepare_inflight()). */
	if (!vb->features_set)
		return vb_fail(vb, -EINVAL, "before SET_FEATURES: the ring layout is not known");
	if (in->num_queues == 0 || in->num_queues > vb->nrings)
		return vb_fail(vb, -EINVAL, "%u queues; the device has %u", in->num_queues, vb->nrings);
	if (in->queue_size == 0 || in->queue_size > 32768u ||
	    in->queue_size > uvirtio_device_queue_max_size(vb->dev, 0))
		return vb_fail(vb, -EINVAL, "queue size %u out of range (the device takes up to %u)",
			       in->queue_size, uvirtio_device_queue_max_size(vb->dev, 0));
	return 0;
}

/* Takes @m over as the area (and unmaps the one before). Not while a ring
 * runs: a queue thread may be writing into the old one. */
static int take_area(struct uvirtio_vhost_backend *vb, struct vb_map *m, unsigned num_queues,
		     unsigned queue_size)
{
	if (vb_any_running(vb)) {
		vb_unmap(m);
		return vb_fail(vb, -EBUSY, "while rings run");
	}
	vb_inflight_end(vb);
	vb->inflight = *m;
	vb->inflight_queues = num_queues;
	vb->inflight_queue_size = queue_size;
	return 0;
}

int vb_get_inflight_fd(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_inflight *in = &m->payload.inflight;
	size_t size;
	struct vb_map map;
	int fd, ret;

	ret = check_shape(vb, in);
	if (ret)
		return ret;
	size = part_size(vb, in->queue_size) * in->num_queues;
	fd = memfd_create("uvirtio-inflight", MFD_CLOEXEC);
	if (fd < 0)
		return vb_fail(vb, -errno, "memfd_create failed: %s", strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		close(fd);
		return vb_fail(vb, ret, "cannot size the area to %zu bytes: %s", size, strerror(-ret));
	}
	ret = vb_map_fd(vb, fd, 0, size, "inflight area", &map);
	if (!ret)
		ret = take_area(vb, &map, in->num_queues, in->queue_size);
	if (ret) {
		close(fd);
		return ret;
	}
	/* A new file is all zeroes: every ring starts afresh in it. */
	vb->reply.payload.inflight = (struct vhost_user_inflight){
		.mmap_size = size, .mmap_offset = 0, .num_queues = in->num_queues,
		.queue_size = in->queue_size };
	vb->reply.hdr.size = sizeof(struct vhost_user_inflight);
	vb->reply_fd = fd; /* sent with the reply, then closed */
	return 0;
}

int vb_set_inflight_fd(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_inflight *in = &m->payload.inflight;
	struct vb_map map;
	uint64_t need;
	int ret;

	/* The fd is closed by handle_msg after this returns: a mapping does
	 * not need it. */
	ret = check_shape(vb, in);
	if (ret)
		return ret;
	need = (uint64_t)part_size(vb, in->queue_size) * in->num_queues;
	if (in->mmap_size < need)
		return vb_fail(vb, -EINVAL, "area of %llu bytes; %u queues of %u need %llu",
			       (unsigned long long)in->mmap_size, in->num_queues, in->queue_size,
			       (unsigned long long)need);
	/* QEMU and DPDK send offset 0; the parts' atomic counters need at
	 * least 8-byte alignment, which a page-aligned map keeps only for an
	 * offset that is aligned too. */
	if (in->mmap_offset % 64)
		return vb_fail(vb, -EINVAL, "area offset %#llx is not 64-byte aligned",
			       (unsigned long long)in->mmap_offset);
	ret = vb_map_fd(vb, m->fds[0], in->mmap_offset, in->mmap_size, "inflight area", &map);
	if (ret)
		return ret;
	return take_area(vb, &map, in->num_queues, in->queue_size);
}

void vb_inflight_attach(struct uvirtio_vhost_backend *vb, unsigned ring, unsigned num)
{
	struct uvirtio_devq *q = uvirtio_device_queue(vb->dev, ring);
	size_t part = part_size(vb, vb->inflight_queue_size);

	if (!vb->inflight.map || ring >= vb->inflight_queues) {
		uvirtio_devq_set_inflight(q, NULL, 0);
		return;
	}
	if (num > vb->inflight_queue_size) {
		vb_log(UVIRTIO_LOG_WARN, "ring %u: %u entries, more than the inflight area's %u: not tracked",
		       ring, num, vb->inflight_queue_size);
		uvirtio_devq_set_inflight(q, NULL, 0);
		return;
	}
	/* The area was checked for the layout of its day: features set since
	 * (split to packed) may need larger parts than it has. */
	if ((uint64_t)(ring + 1) * part > vb->inflight.size) {
		vb_log(UVIRTIO_LOG_WARN, "ring %u: the inflight area (%llu bytes) is too small for this ring layout: not tracked",
		       ring, (unsigned long long)vb->inflight.size);
		uvirtio_devq_set_inflight(q, NULL, 0);
		return;
	}
	uvirtio_devq_set_inflight(q, vb->inflight.at + ring * part, part);
}

void vb_inflight_ring_stopped(struct uvirtio_vhost_backend *vb, unsigned ring)
{
	size_t part = part_size(vb, vb->inflight_queue_size);

	if (!vb->inflight.map || ring >= vb->inflight_queues || (uint64_t)(ring + 1) * part > vb->inflight.size)
		return;
	memset(vb->inflight.at + ring * part, 0, part);
}

void vb_inflight_end(struct uvirtio_vhost_backend *vb)
{
	if (vb->dev)
		for (unsigned i = 0; i < vb->nrings; i++)
			uvirtio_devq_set_inflight(uvirtio_device_queue(vb->dev, i), NULL, 0);
	vb_unmap(&vb->inflight);
	vb->inflight_queues = vb->inflight_queue_size = 0;
}
