// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend transport. Each front-end request is checked
 * (uvirtio_vhost_msg_check_request() for its shape, the handlers for its
 * values), then turned into device core calls. Ring states follow
 * vhost-user.rst: a ring is started by SET_VRING_KICK and stopped by
 * GET_VRING_BASE, enabled and disabled by SET_VRING_ENABLE, and runs in the
 * device core only while started, enabled, and with features negotiated.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "uvirtio/vhost_backend.h"
#include "vhost_backend_internal.h"
#include "vhost_msg.h"

#define PF(bit) UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_##bit)
/* The protocol features offered. */
#define OFFERED_PROTOCOL_FEATURES                                                         \
	(PF(MQ) | PF(REPLY_ACK) | PF(BACKEND_REQ) | PF(CONFIG) | PF(RESET_DEVICE) |      \
	 PF(CONFIGURE_MEM_SLOTS) | PF(STATUS))

#define DRIVER_BITS (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)

struct vb_ring {
	unsigned num; /* 0: not set */
	bool addr_set;
	uint64_t desc_uva, avail_uva, used_uva;
	/* Where the ring resumes, as SET/GET_VRING_BASE carry it: split, the
	 * next avail index; packed, next avail in bits 0-15 and used in 16-31,
	 * each with its wrap counter in its top bit (QEMU's encoding). */
	uint32_t base;
	bool base_set; /* false: the ring starts at its beginning */
	bool started;    /* has a kick fd; GET_VRING_BASE clears it */
	bool enabled;    /* SET_VRING_ENABLE */
	bool running;    /* enabled in the device core */
	int kick_fd, err_fd;
	/* The call fd is swapped by the control thread (SET_VRING_CALL) while
	 * a queue thread may be signalling it through notify_used. */
	pthread_mutex_t call_lock;
	int call_fd;
	bool resched; /* atomic: the device asked to be called again */
};

/* One mapped region of guest memory. */
struct region {
	uint64_t gpa, size, uva, mmap_offset;
	void *map;      /* the whole mapping, page-aligned */
	size_t map_len;
	void *host;     /* where gpa is */
};

struct uvirtio_vhost_backend {
	struct uvirtio_vhost_backend_config cfg;
	char *path;
	struct uvirtio_mem mem;
	struct uvirtio_mem scratch; /* a new table under construction */
	struct region regions[UVIRTIO_MEM_MAX_REGIONS];
	unsigned nregions;

	struct uvirtio_device *dev;
	struct vb_ring *rings;
	unsigned nrings;

	int listen_fd, inherited_fd, conn_fd;
	bool listening, created_path, inherited_listens;
	int stop_fd, resched_fd;
	bool serving; /* atomic: run() is running */

	/* Connection state. */
	uint64_t features; /* as the front-end set them, bit 30 included */
	bool features_set;
	uint64_t protocol_features;
	bool owner;
	uint8_t fe_status;
	/* The back-end channel (SET_BACKEND_REQ_FD); a queue thread may
	 * send on it through notify_config. */
	pthread_mutex_t backend_lock;
	int backend_fd;
	bool config_msgs; /* CONFIG negotiated: config changes may be sent */

	char why[200]; /* the reason the current request failed */
	struct uvirtio_vhost_msg in, reply;

	/* Counters, atomic. */
	uint64_t st_connections, st_messages, st_errors, st_disconnects_on_error;
	bool st_connected;
};

/* Logging: one line per problem, through the caller's callback. */

static void vlog(struct uvirtio_vhost_backend *vb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void vlog(struct uvirtio_vhost_backend *vb, const char *fmt, ...)
{
	char line[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (vb->cfg.log)
		vb->cfg.log(vb->cfg.log_opaque, line);
	else
		fprintf(stderr, "uvirtio vhost-user: %s\n", line);
}

/* A request fails: keep the reason for the one line handle_msg logs. */
static int fail(struct uvirtio_vhost_backend *vb, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct uvirtio_vhost_backend *vb, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vb->why, sizeof(vb->why), fmt, ap);
	va_end(ap);
	return err;
}

static void count(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static bool has_pf(const struct uvirtio_vhost_backend *vb, unsigned bit)
{
	return vb->protocol_features & UVIRTIO_BIT(bit);
}

/* Device core hooks. */

static void hook_notify_used(void *opaque, unsigned index)
{
	struct uvirtio_vhost_backend *vb = opaque;
	struct vb_ring *r;

	if (index >= vb->nrings)
		return;
	r = &vb->rings[index];
	pthread_mutex_lock(&r->call_lock);
	if (r->call_fd >= 0)
		eventfd_signal(r->call_fd);
	pthread_mutex_unlock(&r->call_lock);
}

static void hook_notify_config(void *opaque)
{
	struct uvirtio_vhost_backend *vb = opaque;
	struct uvirtio_vhost_msg m = { .hdr = { .request = VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
					      .flags = VHOST_USER_VERSION } };

	pthread_mutex_lock(&vb->backend_lock);
	/* Never blocks: a front-end that stops reading its back-end channel
	 * loses the notification, not a queue thread. */
	if (vb->backend_fd >= 0 && vb->config_msgs &&
	    uvirtio_vhost_msg_send_nowait(vb->backend_fd, &m))
		count(&vb->st_errors);
	pthread_mutex_unlock(&vb->backend_lock);
}

static void hook_reschedule(void *opaque, unsigned index)
{
	struct uvirtio_vhost_backend *vb = opaque;

	if (index >= vb->nrings)
		return;
	__atomic_store_n(&vb->rings[index].resched, true, __ATOMIC_RELEASE);
	eventfd_signal(vb->resched_fd);
}

/* Guest memory. */

/* The front-end's (virtual) address range [uva, uva + len) as a guest
 * address, when one region holds all of it. */
static int uva_to_gpa(const struct uvirtio_vhost_backend *vb, uint64_t uva, uint64_t len,
		      uint64_t *gpa)
{
	for (unsigned i = 0; i < vb->nregions; i++) {
		const struct region *r = &vb->regions[i];
		uint64_t off = uva - r->uva;

		/* Unsigned wrap makes an address below the region a huge offset. */
		if (uva >= r->uva && off < r->size && len <= r->size - off) {
			*gpa = r->gpa + off;
			return 0;
		}
	}
	return -EFAULT;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Callers checked that neither range wraps. */
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* Maps region @in from @fd (not consumed) into @out after checking it. */
static int map_region(struct uvirtio_vhost_backend *vb, const struct vhost_user_mem_region *in,
		      int fd, struct region *out)
{
	uint64_t gpa = in->guest_phys_addr, size = in->memory_size, uva = in->userspace_addr;
	uint64_t off = in->mmap_offset, end, last, page = (uint64_t)sysconf(_SC_PAGESIZE), delta;
	struct stat st;
	void *map;

	if (size == 0)
		return fail(vb, -EINVAL, "memory region of size 0");
	if (__builtin_add_overflow(gpa, size - 1, &last) || __builtin_add_overflow(uva, size - 1, &last) ||
	    __builtin_add_overflow(off, size, &end))
		return fail(vb, -EINVAL, "memory region wraps around (gpa %#llx uva %#llx offset %#llx size %#llx)",
			    (unsigned long long)gpa, (unsigned long long)uva,
			    (unsigned long long)off, (unsigned long long)size);
	if (fstat(fd, &st) < 0)
		return fail(vb, -errno, "memory region fd: fstat failed: %s", strerror(errno));
	/* Only a file has a size to check against; memfd and hugetlbfs files
	 * are regular files. */
	if (!S_ISREG(st.st_mode))
		return fail(vb, -EINVAL, "memory region fd is not a mappable file");
	/* Touching a page past the end of the file would SIGBUS this process. */
	if (st.st_size < 0 || end > (uint64_t)st.st_size)
		return fail(vb, -EINVAL, "memory region (offset %#llx size %#llx) is larger than its file (%lld bytes)",
			    (unsigned long long)off, (unsigned long long)size, (long long)st.st_size);
	delta = off % page;
	if (size + delta > SIZE_MAX)
		return fail(vb, -EINVAL, "memory region too large");
	map = mmap(NULL, (size_t)(size + delta), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)(off - delta));
	if (map == MAP_FAILED)
		return fail(vb, -errno, "memory region: mmap failed: %s", strerror(errno));
	*out = (struct region){ .gpa = gpa, .size = size, .uva = uva, .mmap_offset = off,
				.map = map, .map_len = (size_t)(size + delta),
				.host = (char *)map + delta };
	return 0;
}

static void unmap_region(struct region *r)
{
	munmap(r->map, r->map_len);
	r->map = NULL;
}

static struct uvirtio_mem_region mem_region(const struct region *r)
{
	return (struct uvirtio_mem_region){ .guest_addr = r->gpa, .size = r->size,
					    .host_addr = r->host, .fd = -1,
					    .fd_offset = r->mmap_offset };
}

static void unmap_all(struct uvirtio_vhost_backend *vb)
{
	for (unsigned i = 0; i < vb->nregions; i++)
		unmap_region(&vb->regions[i]);
	vb->nregions = 0;
	uvirtio_mem_init(&vb->mem);
}

/* Rings. */

static bool ring_packed(const struct uvirtio_vhost_backend *vb)
{
	return vb->features_set && (vb->features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED));
}

static int ring_layout(struct uvirtio_vhost_backend *vb, unsigned i, struct uvirtio_queue_layout *l)
{
	struct vb_ring *r = &vb->rings[i];
	uint64_t n = r->num;
	bool packed = ring_packed(vb);

	l->num = r->num;
	/* The three parts with their event fields, as the device side checks
	 * them; each must lie inside one region. Packed: the descriptor ring,
	 * then the driver and device event suppression areas. */
	if (uva_to_gpa(vb, r->desc_uva, 16 * n, &l->desc) ||
	    uva_to_gpa(vb, r->avail_uva, packed ? 4 : 6 + 2 * n, &l->avail) ||
	    uva_to_gpa(vb, r->used_uva, packed ? 4 : 6 + 8 * n, &l->used))
		return fail(vb, -EFAULT, "ring %u is not inside the memory table", i);
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
	if (ring_packed(vb))
		r->base |= (uint32_t)uvirtio_devq_used_index(uvirtio_device_queue(vb->dev, i)) << 16;
	r->base_set = true;
	uvirtio_device_set_kick_fd(vb->dev, i, -1);
	r->running = false;
}

static void halt_all(struct uvirtio_vhost_backend *vb)
{
	for (unsigned i = 0; i < vb->nrings; i++)
		ring_halt(vb, i);
}

static bool any_running(const struct uvirtio_vhost_backend *vb)
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
	bool packed = ring_packed(vb);
	uint32_t base = r->base_set ? r->base : vhost_ring_start_base(packed);
	struct uvirtio_queue_layout l;
	uint8_t status;
	int ret;

	if (r->running || !r->started || !r->enabled)
		return 0;
	/* The ring's format depends on the features: it runs once they are set. */
	if (!vb->features_set || !(uvirtio_device_get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK))
		return 0;
	if (!r->num || !r->addr_set)
		return fail(vb, -EINVAL, "ring %u started before its size and address were set", i);
	ret = ring_layout(vb, i, &l);
	if (ret)
		return ret;
	if (!packed && base > UINT16_MAX)
		return fail(vb, -EINVAL, "ring %u: base %#x is over 16 bits for a split ring", i, base);
	if (dev->ops->takes_kick_fds)
		uvirtio_device_set_kick_fd(dev, i, r->kick_fd);
	ret = uvirtio_device_queue_enable_at(dev, i, &l, (uint16_t)base,
					     (uint16_t)(packed ? base >> 16 : base));
	if (ret) {
		uvirtio_device_set_kick_fd(dev, i, -1);
		return fail(vb, ret, "ring %u refused by the device (%s)", i, strerror(-ret));
	}
	r->running = true;
	/* Without STATUS the front-end never says DRIVER_OK: the first ring
	 * that runs says it (as libvhost-user and the kernel's vhost do). */
	status = uvirtio_device_get_status(dev);
	if (!has_pf(vb, VHOST_USER_PROTOCOL_F_STATUS) && !(status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		ret = uvirtio_device_set_status(dev, (uint8_t)((status & ~VIRTIO_CONFIG_S_NEEDS_RESET) |
							      VIRTIO_CONFIG_S_DRIVER_OK));
		if (ret)
			return fail(vb, ret, "device refused DRIVER_OK");
	}
	return 0;
}

static int run_ready_rings(struct uvirtio_vhost_backend *vb)
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
	close_fd(&old);
}

static void forget_ring(struct vb_ring *r)
{
	close_fd(&r->kick_fd);
	close_fd(&r->err_fd);
	set_call_fd(r, -1);
	r->num = 0;
	r->addr_set = false;
	r->desc_uva = r->avail_uva = r->used_uva = 0;
	r->base = 0;
	r->base_set = false;
	r->started = r->enabled = r->running = false;
	__atomic_store_n(&r->resched, false, __ATOMIC_RELAXED);
}

/* RESET_DEVICE, RESET_OWNER: the device and every ring back to the start. */
static void reset_device(struct uvirtio_vhost_backend *vb)
{
	halt_all(vb);
	uvirtio_device_reset(vb->dev);
	for (unsigned i = 0; i < vb->nrings; i++)
		forget_ring(&vb->rings[i]);
	vb->features = 0;
	vb->features_set = false;
	vb->fe_status = 0;
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

static uint64_t offered_features(const struct uvirtio_vhost_backend *vb)
{
	/* QEMU 7.2 carries neither a guest's per-queue reset nor a suspend to
	 * the backend: offering them would let a guest free a ring still in
	 * use here. A kick eventfd carries no notification data. */
	return (uvirtio_device_get_features(vb->dev) &
		~(UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND) |
		  UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA) | UVIRTIO_BIT(VHOST_F_LOG_ALL))) |
	       UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES);
}

static int do_set_features(struct uvirtio_vhost_backend *vb, uint64_t f)
{
	struct uvirtio_device *dev = vb->dev;

	if (f & ~offered_features(vb))
		return fail(vb, -EINVAL, "features %#llx were not offered",
			    (unsigned long long)(f & ~offered_features(vb)));
	if (any_running(vb)) {
		if (vb->features_set && f == vb->features)
			return 0;
		return fail(vb, -EBUSY, "features changed while rings run");
	}
	if (uvirtio_device_get_status(dev))
		uvirtio_device_reset(dev);
	vb->features_set = false;
	uvirtio_device_set_status(dev, DRIVER_BITS);
	uvirtio_device_set_driver_features(dev, f & ~UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	uvirtio_device_set_status(dev, DRIVER_BITS | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(uvirtio_device_get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		uvirtio_device_reset(dev);
		return fail(vb, -EINVAL, "the device refused features %#llx", (unsigned long long)f);
	}
	vb->features = f;
	vb->features_set = true;
	/* vhost-user.rst: without VHOST_USER_F_PROTOCOL_FEATURES rings start
	 * enabled; with it they wait for SET_VRING_ENABLE. */
	if (!(f & UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		for (unsigned i = 0; i < vb->nrings; i++)
			vb->rings[i].enabled = true;
	return run_ready_rings(vb);
}

static int do_set_status(struct uvirtio_vhost_backend *vb, uint64_t value)
{
	struct uvirtio_device *dev = vb->dev;
	uint8_t s = (uint8_t)value, core;
	int ret;

	if (value > UINT8_MAX)
		return fail(vb, -EINVAL, "status %#llx has more than 8 bits", (unsigned long long)value);
	if (s == 0) {
		/* QEMU sends this on guest reset, pause and migration alike, then
		 * asks for the ring positions: stop the rings keeping them, and
		 * reset the device (QEMU sets the features again to restart). */
		halt_all(vb);
		uvirtio_device_reset(dev);
		vb->features_set = false;
		vb->fe_status = 0;
		return 0;
	}
	core = uvirtio_device_get_status(dev);
	if ((s & VIRTIO_CONFIG_S_FEATURES_OK) && !(core & VIRTIO_CONFIG_S_FEATURES_OK))
		return fail(vb, -EINVAL, "FEATURES_OK set without accepted features");
	if ((s & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)) & ~core) {
		if (!(core & VIRTIO_CONFIG_S_FEATURES_OK))
			return fail(vb, -EINVAL, "status %#x before features were set", s);
		ret = uvirtio_device_set_status(
			dev, (uint8_t)((core & ~VIRTIO_CONFIG_S_NEEDS_RESET) |
				       (s & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED))));
		if (ret)
			return fail(vb, ret, "the device refused status %#x", s);
	}
	vb->fe_status = s;
	return 0;
}

static int ring_index(struct uvirtio_vhost_backend *vb, uint32_t index, unsigned *out)
{
	if (index >= vb->nrings)
		return fail(vb, -EINVAL, "ring %u does not exist (the device has %u)", index, vb->nrings);
	*out = index;
	return 0;
}

static int do_vring_fd(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	uint64_t v = m->payload.u64;
	int fd = m->nfds ? m->fds[0] : -1;
	unsigned i = 0;
	struct vb_ring *r;
	int ret;

	m->nfds = 0; /* ours now */
	if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK))
		ret = fail(vb, -EINVAL, "unknown bits in %#llx", (unsigned long long)v);
	else
		ret = ring_index(vb, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK), &i);
	if (!ret && fd >= 0 && !is_eventfd(fd))
		ret = fail(vb, -EINVAL, "ring %u: the fd is not an eventfd", i);
	if (!ret && m->hdr.request == VHOST_USER_SET_VRING_KICK && fd < 0)
		ret = fail(vb, -EOPNOTSUPP, "ring %u: polling without a kick fd is not supported", i);
	if (ret) {
		close_fd(&fd);
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
		close_fd(&r->kick_fd);
		r->kick_fd = fd;
		r->started = true;
		if (!(vb->features & UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
			r->enabled = true;
		return ring_try_run(vb, i);
	case VHOST_USER_SET_VRING_CALL:
		set_call_fd(r, fd);
		return 0;
	default:
		close_fd(&r->err_fd);
		r->err_fd = fd;
		return 0;
	}
}

static int do_vring(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
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
			return fail(vb, -EINVAL, "ring %u: enable value %u", i, st->num);
		r->enabled = st->num;
		if (!r->enabled) {
			/* Keeps the position: QEMU disables rings to pause them. */
			ring_halt(vb, i);
			return 0;
		}
		return ring_try_run(vb, i);
	case VHOST_USER_GET_VRING_BASE:
		ring_halt(vb, i);
		r->started = false;
		close_fd(&r->kick_fd);
		vb->reply.payload.state = (struct vhost_user_vring_state){
			.index = i, .num = r->base_set ? r->base : vhost_ring_start_base(ring_packed(vb))
		};
		vb->reply.hdr.size = sizeof(vb->reply.payload.state);
		return 0;
	default:
		break;
	}
	/* The rest change a ring under the device's feet: only while stopped. */
	if (r->running)
		return fail(vb, -EBUSY, "ring %u changed while it runs", i);
	switch (m->hdr.request) {
	case VHOST_USER_SET_VRING_NUM:
		max = uvirtio_device_queue_max_size(vb->dev, i);
		/* spec: at most the device's maximum; a split ring's size is a
		 * power of 2 (QEMU sets the features before the rings). */
		if (st->num == 0 || st->num > max)
			return fail(vb, -EINVAL, "ring %u: size %u is not 1 to %u", i, st->num, max);
		if (!ring_packed(vb) && (st->num & (st->num - 1)))
			return fail(vb, -EINVAL, "ring %u: size %u is not a power of 2 up to %u", i,
				    st->num, max);
		r->num = st->num;
		return 0;
	case VHOST_USER_SET_VRING_BASE:
		/* Split: a 16-bit index; packed: two (QEMU's encoding), which
		 * the ring checks against its size when it runs. QEMU sets the
		 * features first, so the layout is known here. */
		if (!ring_packed(vb) && st->num > UINT16_MAX)
			return fail(vb, -EINVAL, "ring %u: base %#x is over 16 bits for a split ring", i,
				    st->num);
		r->base = st->num;
		r->base_set = true;
		return 0;
	case VHOST_USER_SET_VRING_ADDR: {
		const struct vhost_user_vring_addr *a = &m->payload.addr;
		struct uvirtio_queue_layout l;
		uint64_t old_desc = r->desc_uva, old_avail = r->avail_uva, old_used = r->used_uva;

		if (a->flags & VHOST_USER_VRING_F_LOG)
			return fail(vb, -EINVAL, "ring %u: logging asked but LOG_ALL is not offered", i);
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
		return 0;
	}
	}
	return fail(vb, -EINVAL, "internal: request %u", m->hdr.request);
}

/* Checks @in against the regions of @table (n of them) and vb's map or
 * scratch map @gmap, then maps it. */
static int check_and_map(struct uvirtio_vhost_backend *vb, const struct vhost_user_mem_region *in,
			 int fd, const struct region *table, unsigned n, struct region *out)
{
	int ret = map_region(vb, in, fd, out);

	if (ret)
		return ret;
	for (unsigned k = 0; k < n; k++) {
		if (ranges_overlap(out->gpa, out->size, table[k].gpa, table[k].size) ||
		    ranges_overlap(out->uva, out->size, table[k].uva, table[k].size)) {
			unmap_region(out);
			return fail(vb, -EINVAL, "memory region at gpa %#llx overlaps another",
				    (unsigned long long)in->guest_phys_addr);
		}
	}
	return 0;
}

static int do_set_mem_table(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_mem_table *t = &m->payload.mem_table;
	struct region fresh[VHOST_USER_MEM_TABLE_MAX];
	unsigned n = t->nregions, done = 0;
	int ret = 0;

	/* The new table is built aside; a bad region leaves the old one. */
	for (; done < n && !ret; done++)
		ret = check_and_map(vb, &t->regions[done], m->fds[done], fresh, done, &fresh[done]);
	uvirtio_vhost_msg_close_fds(m);
	if (ret) {
		for (unsigned k = 0; k + 1 < done; k++)
			unmap_region(&fresh[k]);
		return ret;
	}
	/* Queue threads read guest memory: stop them while it changes. */
	halt_all(vb);
	unmap_all(vb);
	for (unsigned k = 0; k < n; k++) {
		struct uvirtio_mem_region mr = mem_region(&fresh[k]);

		vb->regions[k] = fresh[k];
		/* Cannot fail: the regions were checked against each other. */
		uvirtio_mem_add(&vb->mem, &mr);
	}
	vb->nregions = n;
	return run_ready_rings(vb);
}

static int do_add_mem_reg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	struct region r;
	struct uvirtio_mem_region mr;
	int ret;

	if (vb->nregions == UVIRTIO_MEM_MAX_REGIONS) {
		uvirtio_vhost_msg_close_fds(m);
		return fail(vb, -ENOSPC, "memory table full (%u regions)", UVIRTIO_MEM_MAX_REGIONS);
	}
	ret = check_and_map(vb, &m->payload.mem_reg.region, m->fds[0], vb->regions, vb->nregions, &r);
	uvirtio_vhost_msg_close_fds(m);
	if (ret)
		return ret;
	halt_all(vb);
	mr = mem_region(&r);
	ret = uvirtio_mem_add(&vb->mem, &mr);
	if (ret) {
		unmap_region(&r);
		run_ready_rings(vb);
		return fail(vb, ret, "memory region refused by the map");
	}
	vb->regions[vb->nregions++] = r;
	return run_ready_rings(vb);
}

static int do_rem_mem_reg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_mem_region *in = &m->payload.mem_reg.region;
	unsigned k;

	uvirtio_vhost_msg_close_fds(m);
	/* vhost-user.rst: identified by guest address, user address and size. */
	for (k = 0; k < vb->nregions; k++)
		if (vb->regions[k].gpa == in->guest_phys_addr &&
		    vb->regions[k].size == in->memory_size && vb->regions[k].uva == in->userspace_addr)
			break;
	if (k == vb->nregions)
		return fail(vb, -ENOENT, "no memory region at gpa %#llx size %#llx to remove",
			    (unsigned long long)in->guest_phys_addr, (unsigned long long)in->memory_size);
	halt_all(vb);
	uvirtio_mem_remove(&vb->mem, vb->regions[k].gpa, vb->regions[k].size, NULL);
	unmap_region(&vb->regions[k]);
	vb->regions[k] = vb->regions[--vb->nregions];
	return run_ready_rings(vb);
}

static int do_get_config(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
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
		ret = c->offset > vb->dev->config_size ? -EINVAL : 0;
	if (ret) {
		/* QEMU reads a reply of another size as failure. */
		out->size = 0;
		vb->reply.hdr.size = VHOST_USER_CONFIG_HDR_SIZE;
		return fail(vb, ret, "config read of %u bytes at %u is outside config space (%u bytes)",
			    c->size, c->offset, vb->dev->config_size);
	}
	vb->reply.hdr.size = VHOST_USER_CONFIG_HDR_SIZE + c->size;
	return 0;
}

static int do_set_config(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_config *c = &m->payload.config;
	int ret = uvirtio_device_config_write(vb->dev, c->offset, c->payload, c->size);

	if (ret)
		return fail(vb, ret, "config write of %u bytes at %u refused (%s)", c->size, c->offset,
			    strerror(-ret));
	return 0;
}

static void reply_u64(struct uvirtio_vhost_backend *vb, uint64_t v)
{
	vb->reply.payload.u64 = v;
	vb->reply.hdr.size = sizeof(uint64_t);
}

static int dispatch(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	uint64_t v = m->payload.u64;

	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		reply_u64(vb, offered_features(vb));
		return 0;
	case VHOST_USER_SET_FEATURES:
		return do_set_features(vb, v);
	case VHOST_USER_SET_OWNER:
		vb->owner = true;
		return 0;
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_RESET_DEVICE:
		reset_device(vb);
		return 0;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		reply_u64(vb, OFFERED_PROTOCOL_FEATURES);
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (v & ~(uint64_t)OFFERED_PROTOCOL_FEATURES)
			return fail(vb, -EINVAL, "protocol features %#llx were not offered",
				    (unsigned long long)(v & ~(uint64_t)OFFERED_PROTOCOL_FEATURES));
		vb->protocol_features = v;
		pthread_mutex_lock(&vb->backend_lock);
		vb->config_msgs = has_pf(vb, VHOST_USER_PROTOCOL_F_CONFIG);
		pthread_mutex_unlock(&vb->backend_lock);
		return 0;
	case VHOST_USER_GET_QUEUE_NUM:
		reply_u64(vb, vb->nrings);
		return 0;
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		reply_u64(vb, UVIRTIO_MEM_MAX_REGIONS);
		return 0;
	case VHOST_USER_SET_MEM_TABLE:
		return do_set_mem_table(vb, m);
	case VHOST_USER_ADD_MEM_REG:
		return do_add_mem_reg(vb, m);
	case VHOST_USER_REM_MEM_REG:
		return do_rem_mem_reg(vb, m);
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_ADDR:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
		return do_vring(vb, m);
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		return do_vring_fd(vb, m);
	case VHOST_USER_SET_BACKEND_REQ_FD: {
		int old;

		pthread_mutex_lock(&vb->backend_lock);
		old = vb->backend_fd;
		vb->backend_fd = m->fds[0];
		pthread_mutex_unlock(&vb->backend_lock);
		m->nfds = 0;
		close_fd(&old);
		return 0;
	}
	case VHOST_USER_GET_CONFIG:
		return do_get_config(vb, m);
	case VHOST_USER_SET_CONFIG:
		return do_set_config(vb, m);
	case VHOST_USER_SET_STATUS:
		return do_set_status(vb, v);
	case VHOST_USER_GET_STATUS:
		reply_u64(vb, uvirtio_device_get_status(vb->dev));
		return 0;
	}
	return fail(vb, -ENOSYS, "not handled");
}

static int send_reply(struct uvirtio_vhost_backend *vb, uint32_t request)
{
	int ret;

	vb->reply.hdr.request = request;
	vb->reply.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	vb->reply.nfds = 0;
	if (vb->conn_fd < 0)
		return 0;
	ret = uvirtio_vhost_msg_send(vb->conn_fd, &vb->reply, vb->stop_fd);
	if (ret && ret != -ECANCELED)
		vlog(vb, "%s: cannot send the reply: %s", uvirtio_vhost_msg_request_name(request),
		     strerror(-ret));
	return ret;
}

int uvirtio_vhost_backend_handle_msg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	uint32_t req = m->hdr.request;
	const char *name = uvirtio_vhost_msg_request_name(req);
	bool need_reply = m->hdr.flags & VHOST_USER_NEED_REPLY_MASK;
	bool has_reply = uvirtio_vhost_msg_has_reply(req);
	int ret;

	count(&vb->st_messages);
	vb->why[0] = 0;
	memset(&vb->reply.hdr, 0, sizeof(vb->reply.hdr));
	ret = uvirtio_vhost_msg_check_request(m);
	if (ret == -EPROTO) {
		uvirtio_vhost_msg_close_fds(m);
		count(&vb->st_errors);
		count(&vb->st_disconnects_on_error);
		vlog(vb, "request %u has the REPLY flag set: disconnecting", req);
		return -EPROTO;
	}
	if (ret == -ENOSYS) {
		/* QEMU probes: an unknown request is not an error unless the
		 * front-end waits for an answer. */
		uvirtio_vhost_msg_close_fds(m);
		vlog(vb, "ignoring request %u (%s): not supported", req, name);
		if (!need_reply)
			return 0;
		count(&vb->st_errors);
		reply_u64(vb, 1);
		return send_reply(vb, req);
	}
	if (ret == -EBADMSG)
		ret = fail(vb, ret, "payload of %u bytes is malformed", m->hdr.size);
	else if (ret == -EBADF)
		ret = fail(vb, ret, "%u fds is the wrong number", m->nfds);
	else
		ret = dispatch(vb, m);
	/* What the handler did not keep, it does not get to leak. */
	uvirtio_vhost_msg_close_fds(m);

	if (!ret) {
		if (has_reply)
			return send_reply(vb, req);
		if (need_reply) {
			reply_u64(vb, 0);
			return send_reply(vb, req);
		}
		return 0;
	}
	count(&vb->st_errors);
	if (req == VHOST_USER_GET_CONFIG && vb->reply.hdr.size) {
		vlog(vb, "%s: %s; replied failure", name, vb->why);
		return send_reply(vb, req);
	}
	if (!has_reply && need_reply) {
		vlog(vb, "%s: %s; replied failure", name, vb->why);
		reply_u64(vb, 1);
		return send_reply(vb, req);
	}
	/* The front-end cannot be told (or waits for an answer there is none
	 * for): going on would leave it believing what is not so. */
	count(&vb->st_disconnects_on_error);
	vlog(vb, "%s: %s; disconnecting", name, vb->why);
	return ret;
}

void uvirtio_vhost_backend_end_connection(struct uvirtio_vhost_backend *vb)
{
	int backend_fd;

	if (vb->dev) {
		halt_all(vb);
		uvirtio_device_reset(vb->dev);
	}
	for (unsigned i = 0; i < vb->nrings; i++)
		forget_ring(&vb->rings[i]);
	pthread_mutex_lock(&vb->backend_lock);
	backend_fd = vb->backend_fd;
	vb->backend_fd = -1;
	vb->config_msgs = false;
	pthread_mutex_unlock(&vb->backend_lock);
	close_fd(&backend_fd);
	unmap_all(vb);
	vb->features = 0;
	vb->features_set = false;
	vb->protocol_features = 0;
	vb->owner = false;
	vb->fe_status = 0;
	close_fd(&vb->conn_fd);
	__atomic_store_n(&vb->st_connected, false, __ATOMIC_RELAXED);
}

const struct uvirtio_vhost_msg *uvirtio_vhost_backend_last_reply(const struct uvirtio_vhost_backend *vb)
{
	return &vb->reply;
}

unsigned uvirtio_vhost_backend_mapped_regions(const struct uvirtio_vhost_backend *vb)
{
	return vb->nregions;
}

/* The control loop of one connection. */

static bool stopped(const struct uvirtio_vhost_backend *vb)
{
	struct pollfd p = { .fd = vb->stop_fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static void serve_connection(struct uvirtio_vhost_backend *vb, int fd)
{
	struct uvirtio_device *dev = vb->dev;
	/* stop, connection, reschedule, then one kick fd per ring */
	struct pollfd *p = calloc(3 + vb->nrings, sizeof(*p));
	unsigned *ring_of = calloc(3 + vb->nrings, sizeof(*ring_of));
	struct uvirtio_vhost_msg *m = &vb->in;

	vb->conn_fd = fd;
	count(&vb->st_connections);
	__atomic_store_n(&vb->st_connected, true, __ATOMIC_RELAXED);
	if (!p || !ring_of) {
		vlog(vb, "out of memory");
		goto out;
	}
	for (;;) {
		unsigned n = 3;
		int ret;

		p[0] = (struct pollfd){ .fd = vb->stop_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = vb->conn_fd, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = vb->resched_fd, .events = POLLIN };
		if (!dev->ops->takes_kick_fds) {
			for (unsigned i = 0; i < vb->nrings; i++) {
				if (!vb->rings[i].running)
					continue;
				ring_of[n] = i;
				p[n++] = (struct pollfd){ .fd = vb->rings[i].kick_fd, .events = POLLIN };
			}
		}
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			vlog(vb, "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			break;
		/* Kicks before the message: a message may close a kick fd. */
		if (p[2].revents) {
			eventfd_drain(vb->resched_fd);
			for (unsigned i = 0; i < vb->nrings; i++)
				if (__atomic_exchange_n(&vb->rings[i].resched, false, __ATOMIC_ACQ_REL))
					uvirtio_device_queue_notify(dev, i);
		}
		for (unsigned k = 3; k < n; k++) {
			if (!p[k].revents)
				continue;
			eventfd_drain(p[k].fd);
			uvirtio_device_queue_notify(dev, ring_of[k]);
		}
		if (!p[1].revents)
			continue;
		ret = uvirtio_vhost_msg_recv(vb->conn_fd, m, vb->stop_fd);
		if (ret == -ECONNRESET || ret == -ECANCELED)
			break;
		if (ret) {
			count(&vb->st_errors);
			count(&vb->st_disconnects_on_error);
			vlog(vb, "bad message from the front-end (%s): disconnecting", strerror(-ret));
			break;
		}
		if (uvirtio_vhost_backend_handle_msg(vb, m))
			break;
	}
out:
	free(p);
	free(ring_of);
	uvirtio_vhost_backend_end_connection(vb);
}

/* Set-up. */

int uvirtio_vhost_backend_create(struct uvirtio_vhost_backend **out,
				 const struct uvirtio_vhost_backend_config *cfg)
{
	struct uvirtio_vhost_backend *vb;
	bool has_path = cfg->socket_path && cfg->socket_path[0];

	if (has_path == (cfg->fd >= 0) || (cfg->client && !has_path))
		return -EINVAL;
	if (has_path && strlen(cfg->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	vb = calloc(1, sizeof(*vb));
	if (!vb)
		return -ENOMEM;
	vb->cfg = *cfg;
	vb->path = has_path ? strdup(cfg->socket_path) : NULL;
	if (has_path && !vb->path) {
		free(vb);
		return -ENOMEM;
	}
	vb->cfg.socket_path = vb->path;
	vb->listen_fd = vb->conn_fd = vb->backend_fd = -1;
	vb->inherited_fd = cfg->fd;
	uvirtio_mem_init(&vb->mem);
	pthread_mutex_init(&vb->backend_lock, NULL);
	vb->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vb->resched_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vb->stop_fd < 0 || vb->resched_fd < 0) {
		int err = -errno;

		close_fd(&vb->stop_fd);
		close_fd(&vb->resched_fd);
		pthread_mutex_destroy(&vb->backend_lock);
		free(vb->path);
		free(vb);
		return err;
	}
	*out = vb;
	return 0;
}

struct uvirtio_mem *uvirtio_vhost_backend_mem(struct uvirtio_vhost_backend *vb)
{
	return &vb->mem;
}

static void free_rings(struct uvirtio_vhost_backend *vb)
{
	for (unsigned i = 0; i < vb->nrings; i++) {
		forget_ring(&vb->rings[i]);
		pthread_mutex_destroy(&vb->rings[i].call_lock);
	}
	free(vb->rings);
	vb->rings = NULL;
	vb->nrings = 0;
}

int uvirtio_vhost_backend_attach(struct uvirtio_vhost_backend *vb, struct uvirtio_device *dev)
{
	struct uvirtio_device_hooks hooks = { .notify_used = hook_notify_used,
					      .notify_config = hook_notify_config,
					      .reschedule = hook_reschedule,
					      .opaque = vb };
	struct vb_ring *rings;

	if (__atomic_load_n(&vb->serving, __ATOMIC_ACQUIRE))
		return -EBUSY;
	rings = calloc(dev->num_queues, sizeof(*rings));
	if (!rings)
		return -ENOMEM;
	if (vb->dev)
		uvirtio_vhost_backend_end_connection(vb);
	free_rings(vb);
	for (unsigned i = 0; i < dev->num_queues; i++) {
		rings[i].kick_fd = rings[i].err_fd = rings[i].call_fd = -1;
		pthread_mutex_init(&rings[i].call_lock, NULL);
	}
	vb->rings = rings;
	vb->nrings = dev->num_queues;
	vb->dev = dev;
	uvirtio_device_set_hooks(dev, &hooks);
	return 0;
}

/* Whether something accepts connections at @path. */
static int probe_path(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s, ret;

	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	memcpy(a.sun_path, path, strlen(path));
	ret = connect(s, (struct sockaddr *)&a, sizeof(a));
	/* A full backlog (EAGAIN) still means someone listens. */
	ret = ret == 0 || errno == EAGAIN ? -EADDRINUSE : errno == ECONNREFUSED ? 0 : -errno;
	close(s);
	return ret;
}

int uvirtio_vhost_backend_listen(struct uvirtio_vhost_backend *vb)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int s, ret;

	if (vb->listening)
		return 0;
	if (vb->inherited_fd >= 0) {
		int type = 0, acc = 0;
		socklen_t len = sizeof(type);

		if (getsockopt(vb->inherited_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
			return errno == ENOTSOCK ? -ENOTSOCK : -errno;
		if (type != SOCK_STREAM)
			return -ENOTSOCK;
		len = sizeof(acc);
		if (getsockopt(vb->inherited_fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
			return -errno;
		vb->inherited_listens = acc;
		vb->listening = true;
		return 0;
	}
	if (vb->cfg.client)
		return 0;
	if (lstat(vb->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		ret = probe_path(vb->path);
		if (ret)
			return ret;
		/* Stale: whoever made it is gone. */
		if (unlink(vb->path) < 0 && errno != ENOENT)
			return -errno;
	} else if (errno != ENOENT) {
		return -errno;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	memcpy(a.sun_path, vb->path, strlen(vb->path));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0) {
		ret = -errno;
		close(s);
		return ret;
	}
	vb->listen_fd = s;
	vb->created_path = true;
	vb->listening = true;
	return 0;
}

static int serve_listening(struct uvirtio_vhost_backend *vb, int lfd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = vb->stop_fd, .events = POLLIN },
				       { .fd = lfd, .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents)
			return 0;
		if (!p[1].revents)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* The front-end gave up before we took it: not our error. */
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == ECONNABORTED)
				continue;
			vlog(vb, "accept: %s", strerror(errno));
			return -errno;
		}
		serve_connection(vb, fd);
	}
}

static int run_locked(struct uvirtio_vhost_backend *vb)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int ret, fd;

	if (stopped(vb))
		return 0;
	if (vb->cfg.client) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		memcpy(a.sun_path, vb->path, strlen(vb->path));
		/* A blocking connect to a front-end whose backlog is full (one
		 * that never accepts) would block here for ever, out of reach
		 * of stop(). A unix socket does not report when a full backlog
		 * has room again, so retry, waiting on the stop fd in between. */
		while (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			struct pollfd p = { .fd = vb->stop_fd, .events = POLLIN };

			if (errno == EAGAIN || errno == EINTR) {
				if (poll(&p, 1, 100) > 0) {
					close(fd);
					return 0;
				}
				continue;
			}
			ret = -errno;
			close(fd);
			vlog(vb, "cannot connect to %s: %s", vb->path, strerror(-ret));
			return ret;
		}
		serve_connection(vb, fd);
		return 0;
	}
	ret = uvirtio_vhost_backend_listen(vb);
	if (ret)
		return ret;
	if (vb->inherited_fd >= 0 && !vb->inherited_listens) {
		fd = vb->inherited_fd;
		/* The connection owns it now and closes it at the end. */
		vb->inherited_fd = -1;
		serve_connection(vb, fd);
		return 0;
	}
	return serve_listening(vb, vb->inherited_fd >= 0 ? vb->inherited_fd : vb->listen_fd);
}

int uvirtio_vhost_backend_run(struct uvirtio_vhost_backend *vb)
{
	int ret;

	if (!vb->dev)
		return -EINVAL;
	if (__atomic_exchange_n(&vb->serving, true, __ATOMIC_ACQ_REL))
		return -EBUSY;
	ret = run_locked(vb);
	__atomic_store_n(&vb->serving, false, __ATOMIC_RELEASE);
	return ret;
}

void uvirtio_vhost_backend_stop(struct uvirtio_vhost_backend *vb)
{
	uint64_t one = 1;

	/* write(2) on an eventfd: async-signal-safe. It stays readable, so
	 * run() returns now and whenever it is called again. */
	(void)!write(vb->stop_fd, &one, sizeof(one));
}

void uvirtio_vhost_backend_get_stats(const struct uvirtio_vhost_backend *vb,
				     struct uvirtio_vhost_backend_stats *out)
{
	out->connections = __atomic_load_n(&vb->st_connections, __ATOMIC_RELAXED);
	out->messages = __atomic_load_n(&vb->st_messages, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&vb->st_errors, __ATOMIC_RELAXED);
	out->disconnects_on_error = __atomic_load_n(&vb->st_disconnects_on_error, __ATOMIC_RELAXED);
	out->connected = __atomic_load_n(&vb->st_connected, __ATOMIC_RELAXED);
}

void uvirtio_vhost_backend_destroy(struct uvirtio_vhost_backend *vb)
{
	if (!vb)
		return;
	uvirtio_vhost_backend_end_connection(vb);
	free_rings(vb);
	if (vb->created_path)
		unlink(vb->path);
	close_fd(&vb->listen_fd);
	close_fd(&vb->inherited_fd);
	close_fd(&vb->stop_fd);
	close_fd(&vb->resched_fd);
	pthread_mutex_destroy(&vb->backend_lock);
	free(vb->path);
	free(vb);
}
