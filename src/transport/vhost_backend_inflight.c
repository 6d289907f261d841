// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's inflight area (vhost-user.rst, "Inflight I/O
 * tracking"; docs/inflight.md): GET_INFLIGHT_FD makes a shared memory file
 * for the front-end to keep, SET_INFLIGHT_FD hands one back (the same, after
 * this process or one before it died), and every ring that starts is given
 * its part, from which the ring layer resumes (devq.h,
 * uvirtio_devq_resume_inflight()). The front-end keeps the file across our
 * death: that is what makes it outlive us. A front-end that hands over none
 * (QEMU's vhost-user-net) can be made up for by a state file of ours, kept
 * on disk for the next process (uvirtio_vhost_backend_set_state_file()).
 */
#include <errno.h>
#include <fcntl.h>
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

/* The state file (uvirtio_vhost_backend_set_state_file()): this header, then
 * the parts at STATE_PARTS, laid out as a front-end's area. */
#define STATE_MAGIC "uvirtio-state-1"
#define STATE_PARTS 4096u

struct vb_state_hdr {
	char magic[16];
	uint64_t identity; /* vb_mem_identity() of the guest it was written for */
	uint32_t nrings, queue_size;
	/* Each ring's descriptor address when its part was last attached: a
	 * guest that rebooted while no backend ran has its rings elsewhere. */
	uint64_t ring_desc[];
};

#define STATE_RINGS_MAX ((STATE_PARTS - sizeof(struct vb_state_hdr)) / sizeof(uint64_t))

/* At the first packed ring's start without an area from the front-end: the
 * state file's parts become the area, cleared unless they were written for
 * this very guest memory and ring shape. Failures only cost the tracking. */
static void open_state_area(struct uvirtio_vhost_backend *vb, unsigned queue_size)
{
	size_t size = STATE_PARTS + part_size(vb, queue_size) * vb->nrings;
	uint64_t id = vb_mem_identity(vb);
	struct vb_state_hdr *h;
	struct vb_map map;
	struct stat st;
	int fd, ret;

	if (vb->nrings > STATE_RINGS_MAX) {
		vb_log(UVIRTIO_LOG_WARN, "state file %s: %u rings are more than it holds: not tracked",
		       vb->state_path, vb->nrings);
		return;
	}
	fd = open(vb->state_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		vb_log(UVIRTIO_LOG_WARN, "state file %s: %s: packed rings are not tracked", vb->state_path,
		       strerror(errno));
		return;
	}
	/* A file of another size is another shape's: cleared to the new one. */
	if (fstat(fd, &st) < 0 ||
	    ((uint64_t)st.st_size != size && (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0))) {
		vb_log(UVIRTIO_LOG_WARN, "state file %s: %s: packed rings are not tracked", vb->state_path,
		       strerror(errno));
		close(fd);
		return;
	}
	ret = vb_map_fd(vb, fd, 0, size, "state file", &map);
	close(fd);
	if (ret) {
		vb_log(UVIRTIO_LOG_WARN, "%s: packed rings are not tracked", vb->why);
		return;
	}
	h = (struct vb_state_hdr *)map.at;
	if (memcmp(h->magic, STATE_MAGIC, sizeof(h->magic)) || h->identity != id ||
	    h->nrings != vb->nrings || h->queue_size != queue_size) {
		/* Another guest's, another shape, or new: nothing to resume.
		 * The magic goes last, so a death here leaves no valid file. */
		vb_log(UVIRTIO_LOG_INFO, "state file %s: %s: the rings start afresh in it", vb->state_path,
		       memcmp(h->magic, STATE_MAGIC, sizeof(h->magic)) ? "new"
		       : h->identity != id ? "written for another guest's memory"
					   : "written for another number or size of rings");
		memset(h->magic, 0, sizeof(h->magic));
		memset(map.at + sizeof(h->magic), 0, size - sizeof(h->magic));
		h->identity = id;
		h->nrings = vb->nrings;
		h->queue_size = queue_size;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		memcpy(h->magic, STATE_MAGIC, sizeof(h->magic));
	} else {
		vb_log(UVIRTIO_LOG_INFO, "state file %s: written for this guest: its rings resume from it",
		       vb->state_path);
	}
	map.at += STATE_PARTS;
	map.size -= STATE_PARTS;
	vb->inflight = map;
	vb->inflight_queues = vb->nrings;
	vb->inflight_queue_size = queue_size;
	vb->inflight_is_state = true;
}

void vb_inflight_attach(struct uvirtio_vhost_backend *vb, unsigned ring, unsigned num)
{
	struct uvirtio_devq *q = uvirtio_device_queue(vb->dev, ring);
	size_t part;

	if (!vb->inflight.map && vb->state_path && vb_ring_packed(vb))
		open_state_area(vb, num);
	part = part_size(vb, vb->inflight_queue_size);
	/* The state file is for packed rings only (features changed since). */
	if (!vb->inflight.map || ring >= vb->inflight_queues ||
	    (vb->inflight_is_state && !vb_ring_packed(vb))) {
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
	if (vb->inflight_is_state) {
		struct vb_state_hdr *h = vb->inflight.map;

		if (h->ring_desc[ring] != vb->rings[ring].desc_uva) {
			memset(vb->inflight.at + ring * part, 0, part);
			__atomic_thread_fence(__ATOMIC_RELEASE);
			h->ring_desc[ring] = vb->rings[ring].desc_uva;
		}
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
	vb->inflight_is_state = false;
}
