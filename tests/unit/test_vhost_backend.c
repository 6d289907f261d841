// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend transport, driven by a test that plays QEMU 7.2's
 * front-end over a socketpair: its exact realize, start, stop and restart
 * sequences with a real device type (rng, served on the control thread, and
 * a device that serves each queue on a thread of its own and polls the kick
 * fds itself), I/O through a driver-side ring built in the shared memfd, and
 * one test per rule a hostile front-end can break. Every test counts the
 * process's fds before and after: nothing the front-end sent may leak.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "uvirtio/dma.h"
#include "uvirtio/drvq.h"
#include "uvirtio/log.h"
#include "uvirtio/rng.h"
#include "uvirtio/vhost_backend.h"
#include "../support/transport_internal.h"

#define GPA 0x100000000ull
#define MEM_SIZE (2u << 20)
/* Guards against a hang turning into a meson time-out; never a threshold
 * a passing run comes near. */
#define GUARD_MS 20000
#define NEED VHOST_USER_NEED_REPLY_MASK
#define PF(f) UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_##f)
#define PF_ALL                                                                        \
	(PF(MQ) | PF(REPLY_ACK) | PF(BACKEND_REQ) | PF(CONFIG) | PF(RESET_DEVICE) | \
	 PF(CONFIGURE_MEM_SLOTS) | PF(STATUS))
#define RING_FEATURES                                                                         \
	(UVIRTIO_BIT(VIRTIO_F_VERSION_1) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |             \
	 UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC))
#define F_PROTO UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)
#define S_ALL                                                                             \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | \
	 VIRTIO_CONFIG_S_DRIVER_OK)

/* Inside a helper returning int: report and fail. */
#define TRY(cond)                                                                  \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("# %s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
			return -1;                                                 \
		}                                                                  \
	} while (0)

/* A device type serving each queue on its own thread, polling the kick fd. */

#define TDEV_QUEUES 2

struct tdev_queue {
	pthread_t thread;
	int stop_fd;
	struct iovec iov[8];
};

struct tdev {
	struct uvirtio_device dev;
	char config[8];
	struct tdev_queue q[TDEV_QUEUES];
	uint64_t served; /* atomic */
};

static void tdev_serve(struct uvirtio_device *dev, unsigned index)
{
	struct tdev *t = uvirtio_device_priv(dev);
	struct uvirtio_devq *q = uvirtio_device_queue(dev, index);
	struct uvirtio_req req;
	bool pushed = false;

	uvirtio_req_init(&req, t->q[index].iov, 8);
	for (;;) {
		uvirtio_devq_disable_notify(q);
		while (uvirtio_devq_pop(q, &req) == 1) {
			uint32_t len = 0;

			for (unsigned i = req.n_out; i < req.n_out + req.n_in; i++) {
				memset(req.iov[i].iov_base, 0x5a, req.iov[i].iov_len);
				len += (uint32_t)req.iov[i].iov_len;
			}
			uvirtio_devq_push(q, req.id, len);
			__atomic_add_fetch(&t->served, 1, __ATOMIC_RELAXED);
			pushed = true;
		}
		if (!uvirtio_devq_enable_notify(q))
			break;
	}
	if (pushed)
		uvirtio_device_notify(dev, index);
}

struct tdev_arg {
	struct uvirtio_device *dev;
	unsigned index;
};

static void *tdev_thread(void *arg)
{
	struct tdev_arg a = *(struct tdev_arg *)arg;
	struct tdev *t = uvirtio_device_priv(a.dev);

	free(arg);
	tdev_serve(a.dev, a.index); /* the ring once at start */
	for (;;) {
		struct pollfd p[2] = { { .fd = t->q[a.index].stop_fd, .events = POLLIN },
				       { .fd = uvirtio_device_queue_kick_fd(a.dev, a.index),
					 .events = POLLIN } };
		uint64_t v;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents)
			return NULL;
		if (p[1].revents) {
			(void)!read(p[1].fd, &v, sizeof(v));
			tdev_serve(a.dev, a.index);
		}
	}
}

static int tdev_queue_start(struct uvirtio_device *dev, unsigned index)
{
	struct tdev *t = uvirtio_device_priv(dev);
	struct tdev_arg *a = malloc(sizeof(*a));

	if (!a)
		return -ENOMEM;
	*a = (struct tdev_arg){ dev, index };
	t->q[index].stop_fd = eventfd(0, EFD_CLOEXEC);
	if (t->q[index].stop_fd < 0 || pthread_create(&t->q[index].thread, NULL, tdev_thread, a)) {
		free(a);
		return -EIO;
	}
	return 0;
}

static void tdev_queue_stop(struct uvirtio_device *dev, unsigned index)
{
	struct tdev *t = uvirtio_device_priv(dev);
	uint64_t one = 1;

	(void)!write(t->q[index].stop_fd, &one, sizeof(one));
	pthread_join(t->q[index].thread, NULL);
	close(t->q[index].stop_fd);
}

static void tdev_notify(struct uvirtio_device *dev, unsigned index)
{
	(void)dev;
	(void)index;
}

static const struct uvirtio_device_ops tdev_ops = {
	.name = "tdev", .device_id = 0xfff2, .num_queues = TDEV_QUEUES, .queue_max_size = 256,
	.queue_notify = tdev_notify, .queue_start = tdev_queue_start,
	.queue_stop = tdev_queue_stop, .takes_kick_fds = true,
};

/* The front-end: QEMU's side of the socket, and guest memory. */

struct fe {
	int sock;
	struct uvirtio_vhost_backend *vb;
	pthread_t thread;
	int run_ret;
	bool threaded;

	struct uvirtio_rng_dev rng;
	struct tdev td;
	struct uvirtio_device *dev;

	int memfd;
	char *map;
	struct uvirtio_dma dma;
	struct uvirtio_drvq dq[TDEV_QUEUES];
	bool dq_made[TDEV_QUEUES];
	/* The driver's ring features and size (0: RING_FEATURES, 64). */
	uint64_t ring_features;
	unsigned ring_num;
	int kick[TDEV_QUEUES], call[TDEV_QUEUES];

	pthread_mutex_t log_lock;
	unsigned log_lines;
	char last_log[256];
};

/* The library's log sink while a fixture runs: the backend's lines only
 * (a queue a test breaks logs too, as "queue N: ..."). */
static void capture_log(void *opaque, int level, const char *line)
{
	struct fe *f = opaque;

	(void)level;
	if (strncmp(line, "vhost-user: ", 12))
		return;
	pthread_mutex_lock(&f->log_lock);
	f->log_lines++;
	snprintf(f->last_log, sizeof(f->last_log), "%s", line);
	pthread_mutex_unlock(&f->log_lock);
}

static unsigned log_lines(struct fe *f)
{
	unsigned n;

	pthread_mutex_lock(&f->log_lock);
	n = f->log_lines;
	pthread_mutex_unlock(&f->log_lock);
	return n;
}

static void *run_thread(void *arg)
{
	struct fe *f = arg;

	f->run_ret = uvirtio_vhost_backend_run(f->vb);
	return NULL;
}

static int kick_notify(void *opaque, unsigned index)
{
	struct fe *f = opaque;
	uint64_t one = 1;

	return write(f->kick[index], &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

/* Guest memory and eventfds, as QEMU has them before it connects. */
static int fe_memory(struct fe *f)
{
	f->memfd = memfd_create("guest", MFD_CLOEXEC);
	TRY(f->memfd >= 0 && ftruncate(f->memfd, MEM_SIZE) == 0);
	f->map = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	TRY(f->map != MAP_FAILED);
	TRY(uvirtio_dma_init(&f->dma, f->map, GPA, MEM_SIZE) == 0);
	for (unsigned i = 0; i < TDEV_QUEUES; i++) {
		f->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		f->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		TRY(f->kick[i] >= 0 && f->call[i] >= 0);
	}
	return 0;
}

static void fe_init(struct fe *f)
{
	memset(f, 0, sizeof(*f));
	f->sock = f->memfd = -1;
	f->map = MAP_FAILED;
	for (unsigned i = 0; i < TDEV_QUEUES; i++)
		f->kick[i] = f->call[i] = -1;
	pthread_mutex_init(&f->log_lock, NULL);
	uvirtio_set_log(capture_log, UVIRTIO_LOG_DEBUG, f);
}

/* Undoes fe_init()'s sink and lock. */
static void fe_log_done(struct fe *f)
{
	uvirtio_set_log(NULL, 0, NULL);
	pthread_mutex_destroy(&f->log_lock);
}

static int fe_device(struct fe *f, bool threaded)
{
	f->threaded = threaded;
	if (threaded) {
		memcpy(f->td.config, "tdevcfg", 8);
		TRY(uvirtio_device_init(&f->td.dev, &tdev_ops, &f->td, f->td.config,
					sizeof(f->td.config), uvirtio_vhost_backend_mem(f->vb)) == 0);
		f->dev = &f->td.dev;
	} else {
		TRY(uvirtio_rng_dev_init(&f->rng, uvirtio_vhost_backend_mem(f->vb)) == 0);
		f->dev = uvirtio_rng_dev_device(&f->rng);
	}
	TRY(uvirtio_vhost_backend_attach(f->vb, f->dev) == 0);
	return 0;
}

/* A backend on one end of a socketpair (an inherited connected fd), run()
 * on a thread of its own. */
static int fe_start(struct fe *f, bool threaded)
{
	int sv[2];
	struct uvirtio_vhost_backend_config cfg = { 0 };

	fe_init(f);
	TRY(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	f->sock = sv[0];
	cfg.fd = sv[1];
	TRY(uvirtio_vhost_backend_create(&f->vb, &cfg) == 0);
	TRY(fe_device(f, threaded) == 0);
	TRY(fe_memory(f) == 0);
	TRY(pthread_create(&f->thread, NULL, run_thread, f) == 0);
	return 0;
}

/* Close our end (the backend sees the front-end go), join, free. */
static int fe_finish(struct fe *f)
{
	if (f->sock >= 0) {
		close(f->sock);
		f->sock = -1;
	}
	pthread_join(f->thread, NULL);
	uvirtio_vhost_backend_destroy(f->vb);
	uvirtio_device_destroy(f->dev);
	for (unsigned i = 0; i < TDEV_QUEUES; i++) {
		if (f->dq_made[i])
			uvirtio_drvq_destroy(&f->dq[i]);
		if (f->kick[i] >= 0)
			close(f->kick[i]);
		if (f->call[i] >= 0)
			close(f->call[i]);
	}
	uvirtio_dma_destroy(&f->dma);
	if (f->map != MAP_FAILED)
		munmap(f->map, MEM_SIZE);
	if (f->memfd >= 0)
		close(f->memfd);
	fe_log_done(f);
	return f->run_ret;
}

static int fe_send(struct fe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
		   const int *fds, unsigned nfds)
{
	static struct uvirtio_vhost_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhost_user_hdr){ req, VHOST_USER_VERSION | flags, size };
	if (size)
		memcpy(m.payload.raw, payload, size);
	if (nfds)
		memcpy(m.fds, fds, nfds * sizeof(int));
	m.nfds = nfds;
	return uvirtio_vhost_msg_send(f->sock, &m, -1);
}

static int fe_recv(struct fe *f, struct uvirtio_vhost_msg *m)
{
	struct pollfd p = { .fd = f->sock, .events = POLLIN };

	if (poll(&p, 1, GUARD_MS) != 1)
		return -ETIMEDOUT;
	return uvirtio_vhost_msg_recv(f->sock, m, -1);
}

/* A request with a reply of one u64 (GET_*, or NEED_REPLY set). */
static int fe_u64(struct fe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
		  const int *fds, unsigned nfds, uint64_t *out)
{
	static struct uvirtio_vhost_msg r;

	TRY(fe_send(f, req, flags, payload, size, fds, nfds) == 0);
	TRY(fe_recv(f, &r) == 0);
	TRY(r.hdr.request == req && r.hdr.flags == (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK));
	TRY(r.hdr.size == 8 && r.nfds == 0);
	*out = r.payload.u64;
	return 0;
}

/* A request with NEED_REPLY: 0 when acknowledged, 1 when refused. */
static int fe_ack(struct fe *f, uint32_t req, const void *payload, uint32_t size, const int *fds,
		  unsigned nfds)
{
	uint64_t v = 99;

	TRY(fe_u64(f, req, NEED, payload, size, fds, nfds, &v) == 0);
	TRY(v <= 1);
	return (int)v;
}

static int fe_set_u64(struct fe *f, uint32_t req, uint32_t flags, uint64_t v)
{
	if (flags & NEED)
		return fe_ack(f, req, &v, 8, NULL, 0);
	return fe_send(f, req, flags, &v, 8, NULL, 0);
}

static int fe_state(struct fe *f, uint32_t req, uint32_t flags, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state s = { index, num };

	if (flags & NEED)
		return fe_ack(f, req, &s, sizeof(s), NULL, 0);
	return fe_send(f, req, flags, &s, sizeof(s), NULL, 0);
}

/* The backend ended the connection: our end reads EOF and run() returned. */
static bool fe_disconnected(struct fe *f)
{
	static struct uvirtio_vhost_msg m;

	return fe_recv(f, &m) == -ECONNRESET;
}

static uint64_t get_u64(struct fe *f, uint32_t req)
{
	uint64_t v = ~0ull;

	if (fe_u64(f, req, 0, NULL, 0, NULL, 0, &v))
		return ~0ull;
	return v;
}

static struct vhost_user_mem_region whole_memory(struct fe *f)
{
	return (struct vhost_user_mem_region){ .guest_phys_addr = GPA, .memory_size = MEM_SIZE,
					       .userspace_addr = (uintptr_t)f->map, .mmap_offset = 0 };
}

/* QEMU 7.2 vhost-user-blk realize: features, protocol features, queue
 * count, memory slots, the back-end channel, ownership, config space. */
static int qemu_realize(struct fe *f, uint64_t protocol_features, int backend_fd)
{
	uint64_t features = get_u64(f, VHOST_USER_GET_FEATURES);
	static struct uvirtio_vhost_msg r;
	static uint8_t config[VHOST_USER_CONFIG_MAX];
	struct vhost_user_config c = { .offset = 0, .size = uvirtio_device_config_size(f->dev) };

	TRY(features & F_PROTO);
	TRY(!(features & UVIRTIO_BIT(VIRTIO_F_RING_RESET)));
	TRY(get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES) == PF_ALL);
	TRY(fe_set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, 0, protocol_features) == 0);
	TRY(get_u64(f, VHOST_USER_GET_QUEUE_NUM) == uvirtio_device_num_queues(f->dev));
	TRY(get_u64(f, VHOST_USER_GET_MAX_MEM_SLOTS) == UVIRTIO_MEM_MAX_REGIONS);
	if (backend_fd >= 0)
		TRY(fe_ack(f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &backend_fd, 1) == 0);
	TRY(fe_send(f, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0) == 0);
	TRY(fe_send(f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + c.size, NULL, 0) == 0);
	TRY(fe_recv(f, &r) == 0);
	TRY(r.hdr.size == VHOST_USER_CONFIG_HDR_SIZE + c.size && r.payload.config.size == c.size);
	TRY(c.size <= sizeof(config) && !uvirtio_device_config_read(f->dev, 0, config, c.size));
	TRY(!c.size || !memcmp(r.payload.config.payload, config, c.size));
	return 0;
}

/* The driver side's ring @i in guest memory (kept across restarts). */
static int make_ring(struct fe *f, unsigned i, unsigned num)
{
	if (f->dq_made[i])
		return 0;
	TRY(uvirtio_drvq_create(&f->dq[i], &f->dma, i, num,
				f->ring_features ? f->ring_features : RING_FEATURES, 0) == 0);
	uvirtio_drvq_set_notify(&f->dq[i], kick_notify, f);
	f->dq_made[i] = true;
	return 0;
}

/* Where guest address @gpa is in the front-end's mapping. */
static uint64_t ring_uva(struct fe *f, uint64_t gpa)
{
	return (uintptr_t)f->map + (gpa - GPA);
}

/* Where ring @i (made by make_ring()) lies, as the back-end is told. */
static struct uvirtio_drvq_ring dq_ring(struct fe *f, unsigned i)
{
	struct uvirtio_drvq_ring r;

	uvirtio_drvq_ring(&f->dq[i], &r);
	return r;
}

/* QEMU 7.2 vhost_dev_start: features (and FEATURES_OK via GET/SET_STATUS
 * when STATUS is negotiated), memory, each ring, enable, DRIVER_OK. */
static int qemu_start(struct fe *f, uint64_t pf, unsigned nrings, uint32_t base)
{
	bool status = pf & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS);
	bool reply_ack = pf & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	uint32_t ack = reply_ack ? NEED : 0;
	struct vhost_user_mem_region mr = whole_memory(f);
	unsigned num = f->ring_num ? f->ring_num : 64;

	TRY(fe_set_u64(f, VHOST_USER_SET_FEATURES, 0,
		       (f->ring_features ? f->ring_features : RING_FEATURES) | F_PROTO) == 0);
	if (status) {
		uint64_t s = get_u64(f, VHOST_USER_GET_STATUS);

		if (!(s & VIRTIO_CONFIG_S_FEATURES_OK))
			TRY(fe_set_u64(f, VHOST_USER_SET_STATUS, ack, s | VIRTIO_CONFIG_S_FEATURES_OK) == 0);
	}
	if (pf & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		struct vhost_user_mem_reg reg = { .region = mr };

		TRY(fe_send(f, VHOST_USER_ADD_MEM_REG, ack, &reg, sizeof(reg), &f->memfd, 1) == 0);
	} else {
		struct vhost_user_mem_table t = { .nregions = 1, .regions = { mr } };

		TRY(fe_send(f, VHOST_USER_SET_MEM_TABLE, ack, &t, 8 + 32, &f->memfd, 1) == 0);
	}
	if (reply_ack) {
		static struct uvirtio_vhost_msg r;

		TRY(fe_recv(f, &r) == 0 && r.hdr.size == 8 && r.payload.u64 == 0);
	}
	for (unsigned i = 0; i < nrings; i++) {
		struct vhost_user_vring_addr a;

		TRY(make_ring(f, i, num) == 0);
		/* Packed: descriptor ring, driver area, device area. */
		a = (struct vhost_user_vring_addr){ .index = i,
						    .desc_user_addr = ring_uva(f, dq_ring(f, i).desc),
						    .used_user_addr = ring_uva(f, dq_ring(f, i).used),
						    .avail_user_addr = ring_uva(f, dq_ring(f, i).avail) };
		TRY(fe_state(f, VHOST_USER_SET_VRING_NUM, 0, i, num) == 0);
		TRY(fe_state(f, VHOST_USER_SET_VRING_BASE, 0, i, base) == 0);
		TRY(fe_send(f, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0) == 0);
	}
	return 0;
}

/* SET_VRING_KICK/CALL carry fds, so they are sent apart. */
static int qemu_start_fds(struct fe *f, uint64_t pf, unsigned nrings)
{
	bool status = pf & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS);
	uint32_t ack = pf & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) ? NEED : 0;

	for (unsigned i = 0; i < nrings; i++) {
		uint64_t v = i;

		TRY(fe_send(f, VHOST_USER_SET_VRING_KICK, 0, &v, 8, &f->kick[i], 1) == 0);
		TRY(fe_send(f, VHOST_USER_SET_VRING_CALL, 0, &v, 8, &f->call[i], 1) == 0);
	}
	for (unsigned i = 0; i < nrings; i++)
		TRY(fe_state(f, VHOST_USER_SET_VRING_ENABLE, 0, i, 1) == 0);
	if (status) {
		uint64_t s = get_u64(f, VHOST_USER_GET_STATUS);

		TRY(fe_set_u64(f, VHOST_USER_SET_STATUS, ack, s | S_ALL) == 0);
	}
	/* A round trip: everything before it has been handled. */
	TRY(get_u64(f, VHOST_USER_GET_STATUS) == S_ALL);
	return 0;
}

static int qemu_full_start(struct fe *f, uint64_t pf, unsigned nrings, uint32_t base)
{
	TRY(qemu_start(f, pf, nrings, base) == 0);
	return qemu_start_fds(f, pf, nrings);
}

/* QEMU 7.2 vhost_dev_stop: status 0, disable, then each ring's position. */
static int qemu_stop(struct fe *f, uint64_t pf, unsigned nrings, uint32_t *bases)
{
	uint32_t ack = pf & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) ? NEED : 0;
	static struct uvirtio_vhost_msg r;

	if (pf & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS))
		TRY(fe_set_u64(f, VHOST_USER_SET_STATUS, ack, 0) == 0);
	for (unsigned i = 0; i < nrings; i++)
		TRY(fe_state(f, VHOST_USER_SET_VRING_ENABLE, 0, i, 0) == 0);
	for (unsigned i = 0; i < nrings; i++) {
		struct vhost_user_vring_state s = { i, 0 };

		TRY(fe_send(f, VHOST_USER_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0) == 0);
		TRY(fe_recv(f, &r) == 0 && r.hdr.size == 8 && r.payload.state.index == i);
		bases[i] = r.payload.state.num;
	}
	return 0;
}

/* @n buffers on ring @i; waits for all of them through the call fd. */
static int ring_io(struct fe *f, unsigned i, unsigned n, unsigned char fill)
{
	void *bufs[64];
	unsigned done = 0;

	TRY(n <= 64);
	for (unsigned k = 0; k < n; k++) {
		struct iovec in;

		bufs[k] = uvirtio_dma_alloc(&f->dma, 256, 16);
		TRY(bufs[k]);
		in = (struct iovec){ bufs[k], 256 };
		TRY(uvirtio_drvq_add(&f->dq[i], NULL, 0, &in, 1, bufs[k]) == 0);
	}
	TRY(uvirtio_drvq_kick(&f->dq[i]) == 0);
	while (done < n) {
		void *token;
		uint32_t len;
		struct pollfd p = { .fd = f->call[i], .events = POLLIN };
		uint64_t v;
		int got = uvirtio_drvq_get(&f->dq[i], &token, &len);

		TRY(got >= 0);
		if (got == 1) {
			unsigned char *b = token;
			unsigned zeros = 0;

			TRY(len == 256);
			for (unsigned k = 0; k < 256; k++)
				zeros += b[k] == 0;
			TRY(fill ? b[0] == fill && b[255] == fill : zeros < 32);
			/* Not freed: memory one queue thread wrote must not come
			 * back for another. The device writes through its own
			 * mapping, so TSan cannot see the ring's ordering, which
			 * makes reuse look like a race between two queue threads. */
			done++;
			continue;
		}
		if (!uvirtio_drvq_enable_cb(&f->dq[i]))
			continue;
		TRY(poll(&p, 1, GUARD_MS) == 1);
		(void)!read(f->call[i], &v, sizeof(v));
	}
	return 0;
}

/* End to end with QEMU's sequences. */

static void test_vhost_qemu_realize_start_io_reset_restart_with_rng(void)
{
	uint32_t base[1];
	struct uvirtio_rng_dev_stats st;
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 5, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 3, 0), 0);
	/* Guest reset: the positions come back true. */
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 8);
	CHECK_EQ(get_u64(&f, VHOST_USER_GET_STATUS), 0);
	/* Restart at that index. The backend kept the memory region; QEMU
	 * sends only changes to the table, and qemu_start() adds it again,
	 * so take it out first. */
	{
		struct vhost_user_mem_reg reg = { .region = whole_memory(&f) };

		CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	}
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, (uint16_t)base[0]), 0);
	CHECK_EQ(ring_io(&f, 0, 4, 0), 0);
	uvirtio_rng_dev_stats(&f.rng, &st);
	CHECK_EQ(st.requests, 12);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 12);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 0);
}

static void test_vhost_without_status_or_reply_ack_a_ring_start_is_driver_ok(void)
{
	uint64_t pf = UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG);
	uint32_t base[1];
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, pf, -1), 0);
	CHECK_EQ(qemu_start(&f, pf, 1, 0), 0);
	CHECK_EQ(qemu_start_fds(&f, pf, 1), 0);
	CHECK_EQ(ring_io(&f, 0, 7, 0), 0);
	CHECK_EQ(qemu_stop(&f, pf, 1, base), 0);
	CHECK_EQ(base[0], 7);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_queue_threads_serve_and_stop_keeping_position(void)
{
	uint32_t base[2];
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 2, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0x5a), 0);
	CHECK_EQ(ring_io(&f, 1, 3, 0x5a), 0);
	/* Pause (SET_VRING_ENABLE(0) alone) and resume keep the position. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 0), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 0);
	CHECK_EQ(ring_io(&f, 0, 2, 0x5a), 0);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 2, base), 0);
	CHECK_EQ(base[0], 12);
	CHECK_EQ(base[1], 3);
	CHECK_EQ(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED), 15);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_call_fd_swapped_while_queue_thread_signals(void)
{
	uint32_t base[2];
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	/* QEMU masks and unmasks interrupts by swapping the call fd while
	 * the ring runs: each swap races the queue thread's signal. */
	for (unsigned round = 0; round < 40; round++) {
		int fresh = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct iovec in = { uvirtio_dma_alloc(&f.dma, 256, 16), 256 };
		uint64_t v = 0;

		CHECK(fresh >= 0 && in.iov_base);
		CHECK_EQ(uvirtio_drvq_add(&f.dq[0], NULL, 0, &in, 1, in.iov_base), 0);
		CHECK_EQ(uvirtio_drvq_kick(&f.dq[0]), 0);
		CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_CALL, NEED, &v, 8, &fresh, 1, &v), 0);
		CHECK_EQ(v, 0);
		close(f.call[0]);
		f.call[0] = fresh;
	}
	/* Signals that went to a replaced fd are QEMU's to check: every
	 * buffer comes back, and any wait after the last swap is woken
	 * through the new fd. */
	for (unsigned got = 0; got < 40;) {
		struct pollfd p = { .fd = f.call[0], .events = POLLIN };
		void *token;
		uint32_t len;
		uint64_t v;
		int ret = uvirtio_drvq_get(&f.dq[0], &token, &len);

		CHECK(ret >= 0);
		if (ret == 1) {
			CHECK_EQ(len, 256);
			got++;
			continue;
		}
		if (!uvirtio_drvq_enable_cb(&f.dq[0]))
			continue;
		CHECK_EQ(poll(&p, 1, GUARD_MS), 1);
		(void)!read(f.call[0], &v, sizeof(v));
	}
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 40);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_config_change_goes_to_the_backend_channel(void)
{
	int chan[2];
	static struct uvirtio_vhost_msg m;
	struct fe f;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, chan[1]), 0);
	close(chan[1]);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	/* The device type changes its config (as a device thread would). */
	CHECK_EQ(uvirtio_device_config_update(f.dev, 0, "changed", 8), 0);
	CHECK_EQ(uvirtio_vhost_msg_recv(chan[0], &m, -1), 0);
	CHECK_EQ(m.hdr.request, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
	CHECK_EQ(m.hdr.size, 0);
	close(chan[0]);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_reset_device_forgets_ring_state(void)
{
	uint32_t base[1];
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 2, 0), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0), 0);
	CHECK_EQ(get_u64(&f, VHOST_USER_GET_STATUS), 0);
	CHECK_EQ(qemu_stop(&f, 0, 1, base), 0);
	CHECK_EQ(base[0], 0);
	CHECK_EQ(fe_finish(&f), 0);
}

/* Server mode: one front-end, then back to listening for the next. */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char p[128];

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/uvirtio-vhost-XXXXXX");
		if (!mkdtemp(tmpdir))
			return "/nonexistent/x";
	}
	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

/* A socket address for a path; false if the path does not fit sun_path. */
static bool sun_path_set(struct sockaddr_un *a, const char *path)
{
	size_t n = strlen(path);

	if (n >= sizeof(a->sun_path))
		return false;
	memcpy(a->sun_path, path, n + 1);
	return true;
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || !sun_path_set(&a, path) || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

static int server_start(struct fe *f, const char *path, int fd)
{
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = fd };

	fe_init(f);
	TRY(uvirtio_vhost_backend_create(&f->vb, &cfg) == 0);
	TRY(fe_device(f, false) == 0);
	TRY(fe_memory(f) == 0);
	TRY(uvirtio_vhost_backend_listen(f->vb) == 0);
	TRY(pthread_create(&f->thread, NULL, run_thread, f) == 0);
	return 0;
}

static void test_vhost_server_serves_a_second_front_end_after_disconnect(void)
{
	const char *path = tmp_path("second.sock");
	struct uvirtio_vhost_backend_stats st;
	uint32_t base[1];
	struct fe f;

	CHECK_EQ(server_start(&f, path, -1), 0);
	for (unsigned conn = 0; conn < 2; conn++) {
		f.sock = connect_to(path);
		CHECK(f.sock >= 0);
		CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
		CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
		CHECK_EQ(ring_io(&f, 0, 3, 0), 0);
		if (conn == 1) {
			CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
			/* A new front-end starts from scratch: its own ring. */
			CHECK_EQ(base[0], 3);
		}
		close(f.sock);
		f.sock = -1;
		if (f.dq_made[0]) {
			uvirtio_drvq_destroy(&f.dq[0]);
			f.dq_made[0] = false;
		}
	}
	uvirtio_vhost_backend_get_stats(f.vb, &st);
	CHECK_EQ(st.errors, 0);
	uvirtio_vhost_backend_stop(f.vb);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK(access(path, F_OK) != 0);
}

static void test_vhost_server_counts_connections_and_stops_from_another_thread(void)
{
	const char *path = tmp_path("count.sock");
	struct uvirtio_vhost_backend_stats st;
	struct fe f;

	CHECK_EQ(server_start(&f, path, -1), 0);
	for (unsigned conn = 0; conn < 2; conn++) {
		f.sock = connect_to(path);
		CHECK(f.sock >= 0);
		CHECK(get_u64(&f, VHOST_USER_GET_FEATURES) & F_PROTO);
		close(f.sock);
		f.sock = -1;
	}
	/* A third one proves the second was finished and counted. */
	f.sock = connect_to(path);
	CHECK(get_u64(&f, VHOST_USER_GET_QUEUE_NUM) == 1);
	uvirtio_vhost_backend_get_stats(f.vb, &st);
	CHECK_EQ(st.connections, 3);
	CHECK_EQ(st.errors, 0);
	CHECK(st.connected);
	uvirtio_vhost_backend_stop(f.vb);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_inherited_listening_fd_accepts(void)
{
	const char *path = tmp_path("inherited.sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct fe f;

	CHECK(sun_path_set(&a, path));
	CHECK(l >= 0);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(l, 1), 0);
	CHECK_EQ(server_start(&f, NULL, l), 0);
	f.sock = connect_to(path);
	CHECK(get_u64(&f, VHOST_USER_GET_MAX_MEM_SLOTS) == UVIRTIO_MEM_MAX_REGIONS);
	uvirtio_vhost_backend_stop(f.vb);
	CHECK_EQ(fe_finish(&f), 0);
	unlink(path);
}

static void test_vhost_client_mode_connects_to_the_front_end(void)
{
	const char *path = tmp_path("client.sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .client = true, .fd = -1 };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct fe f;

	CHECK(sun_path_set(&a, path));
	CHECK(l >= 0);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(l, 1), 0);
	fe_init(&f);
	CHECK_EQ(uvirtio_vhost_backend_create(&f.vb, &cfg), 0);
	CHECK_EQ(fe_device(&f, false), 0);
	CHECK_EQ(fe_memory(&f), 0);
	CHECK_EQ(pthread_create(&f.thread, NULL, run_thread, &f), 0);
	f.sock = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(f.sock >= 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	/* The front-end goes: run() returns (client mode serves one). */
	CHECK_EQ(fe_finish(&f), 0);
	close(l);
	unlink(path);
}

struct stuck_client {
	struct uvirtio_vhost_backend *vb;
	pid_t tid;
	int ret;
};

static void *stuck_client_thread(void *arg)
{
	struct stuck_client *c = arg;

	__atomic_store_n(&c->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	c->ret = uvirtio_vhost_backend_run(c->vb);
	return NULL;
}

/* Whether thread @tid sits in connect() or poll() (what run() does while
 * it waits for a front-end's full backlog). */
static bool in_connect_or_poll(pid_t tid)
{
	char path[64], buf[64];
	long nr = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fp = fopen(path, "r");
	if (!fp)
		return false;
	if (fgets(buf, sizeof(buf), fp))
		nr = strtol(buf, NULL, 10);
	fclose(fp);
	return nr == SYS_connect || nr == SYS_ppoll
#ifdef SYS_poll
	       || nr == SYS_poll
#endif
		;
}

/* A front-end that listens but never accepts, its backlog full: a blocking
 * connect would never return, and neither would run() after stop(). */
static void test_vhost_client_mode_stop_returns_while_connect_waits_for_a_full_backlog(void)
{
	const char *path = tmp_path("full.sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .client = true, .fd = -1 };
	struct stuck_client c = { .ret = -1 };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), filler[64], nfill = 0;
	struct fe f;
	pthread_t t;
	pid_t tid;

	CHECK(sun_path_set(&a, path));
	CHECK(l >= 0);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(l, 0), 0);
	/* Fill the backlog until a connect would block. */
	while (nfill < 64) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		CHECK(s >= 0);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
			CHECK_EQ(errno, EAGAIN);
			close(s);
			break;
		}
		filler[nfill++] = s;
	}
	CHECK(nfill < 64);
	fe_init(&f);
	CHECK_EQ(uvirtio_vhost_backend_create(&f.vb, &cfg), 0);
	CHECK_EQ(fe_device(&f, false), 0);
	c.vb = f.vb;
	CHECK_EQ(pthread_create(&t, NULL, stuck_client_thread, &c), 0);
	while (!(tid = __atomic_load_n(&c.tid, __ATOMIC_ACQUIRE)))
		sched_yield();
	/* Wait for run() to be waiting on the front-end, not before it. */
	while (!in_connect_or_poll(tid))
		sched_yield();
	uvirtio_vhost_backend_stop(f.vb);
	pthread_join(t, NULL);
	CHECK_EQ(c.ret, 0);
	uvirtio_vhost_backend_destroy(f.vb);
	f.vb = NULL;
	uvirtio_device_destroy(f.dev);
	for (int i = 0; i < nfill; i++)
		close(filler[i]);
	close(l);
	unlink(path);
	fe_log_done(&f);
}

static void test_vhost_listen_refuses_a_path_in_use(void)
{
	const char *path = tmp_path("inuse.sock");
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = -1 };
	struct uvirtio_vhost_backend *a, *b;

	CHECK_EQ(uvirtio_vhost_backend_create(&a, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_create(&b, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(a), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(b), -EADDRINUSE);
	uvirtio_vhost_backend_destroy(b);
	/* b did not remove a's socket. */
	CHECK_EQ(access(path, F_OK), 0);
	uvirtio_vhost_backend_destroy(a);
}

static void test_vhost_listen_replaces_a_stale_socket_file(void)
{
	const char *path = tmp_path("stale.sock");
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = -1 };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct uvirtio_vhost_backend *vb;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(sun_path_set(&a, path));
	CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	close(s); /* the file stays; nobody listens */
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(vb), 0);
	s = connect_to(path);
	CHECK(s >= 0);
	close(s);
	uvirtio_vhost_backend_destroy(vb);
}

static void test_vhost_listen_refuses_a_path_that_is_not_a_socket(void)
{
	const char *path = tmp_path("plain-file");
	struct uvirtio_vhost_backend_config cfg = { .socket_path = path, .fd = -1 };
	struct uvirtio_vhost_backend *vb;
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &cfg), 0);
	CHECK_EQ(uvirtio_vhost_backend_listen(vb), -EEXIST);
	uvirtio_vhost_backend_destroy(vb);
	CHECK_EQ(access(path, F_OK), 0);
	unlink(path);
}

static void test_vhost_create_refuses_a_config_without_one_socket(void)
{
	struct uvirtio_vhost_backend_config none = { .fd = -1 };
	struct uvirtio_vhost_backend_config both = { .socket_path = "/tmp/x", .fd = 0 };
	struct uvirtio_vhost_backend_config client_fd = { .client = true, .fd = 3 };
	char longp[200];
	struct uvirtio_vhost_backend_config too_long = { .socket_path = longp, .fd = -1 };
	struct uvirtio_vhost_backend *vb;

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &none), -EINVAL);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &both), -EINVAL);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &client_fd), -EINVAL);
	CHECK_EQ(uvirtio_vhost_backend_create(&vb, &too_long), -ENAMETOOLONG);
}

/* Hostile front-end: one test per rule. Each checks the answer (a failure
 * reply, or the connection ended), one log line, and no fd leaked. */

/* A started backend, realized, with guest memory mapped by SET_MEM_TABLE. */
static int hostile_start(struct fe *f)
{
	struct vhost_user_mem_table t = { .nregions = 1, .regions = { whole_memory(f) } };

	TRY(fe_start(f, false) == 0);
	TRY(qemu_realize(f, PF_ALL, -1) == 0);
	t.regions[0] = whole_memory(f);
	TRY(fe_ack(f, VHOST_USER_SET_MEM_TABLE, &t, 8 + 32, &f->memfd, 1) == 0);
	return 0;
}

static void test_vhost_refuses_payload_size_wrong_for_request(void)
{
	uint32_t four = 1;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_FEATURES, &four, 4, NULL, 0), 1);
	CHECK_EQ(log_lines(&f), 1);
	/* Still connected. */
	CHECK(get_u64(&f, VHOST_USER_GET_FEATURES) & F_PROTO);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_bad_message_without_need_reply(void)
{
	struct vhost_user_vring_state s = { 0, 3 }; /* size 3: not a power of 2 */
	struct uvirtio_vhost_backend_stats st;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_send(&f, VHOST_USER_SET_VRING_NUM, 0, &s, sizeof(s), NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	uvirtio_vhost_backend_get_stats(f.vb, &st);
	CHECK_EQ(st.disconnects_on_error, 1);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 1);
}

static void test_vhost_closes_fds_a_request_does_not_take(void)
{
	int fds_before, efd = eventfd(0, EFD_CLOEXEC);
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	fds_before = count_fds();
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_OWNER, NULL, 0, &efd, 1), 1);
	close(efd);
	CHECK_EQ(count_fds(), fds_before - 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_more_than_eight_fds(void)
{
	int efd[9];
	union {
		char buf[CMSG_SPACE(9 * sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	struct vhost_user_hdr h = { VHOST_USER_SET_OWNER, VHOST_USER_VERSION, 0 };
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
			     .msg_controllen = sizeof(ctrl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	for (int i = 0; i < 9; i++)
		efd[i] = eventfd(0, EFD_CLOEXEC);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(efd));
	memcpy(CMSG_DATA(c), efd, sizeof(efd));
	CHECK_EQ(sendmsg(f.sock, &mh, 0), (ssize_t)sizeof(h));
	for (int i = 0; i < 9; i++)
		close(efd[i]);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_queue_index_out_of_range(void)
{
	struct vhost_user_vring_state s = { 1, 0 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 1, 64), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0xffffffff, 1), 1);
	/* GET_VRING_BASE has no failure reply: the connection ends. */
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_ring_size_not_power_of_two_or_above_max(void)
{
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 0), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 48), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, UVIRTIO_RNG_QUEUE_SIZE * 2), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, UVIRTIO_RNG_QUEUE_SIZE), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x10000), 1);
	CHECK_EQ(log_lines(&f), 4);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_ring_outside_memory_table(void)
{
	uint64_t uva;
	struct vhost_user_vring_addr a;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	uva = (uintptr_t)f.map;
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 64), 0);
	a = (struct vhost_user_vring_addr){ .index = 0, .desc_user_addr = uva,
					    .avail_user_addr = uva + 0x1000, .used_user_addr = uva + 0x2000 };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	/* Below the region. */
	a.desc_user_addr = uva - 0x1000;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	/* The used ring straddles the region's end. */
	a.desc_user_addr = uva;
	a.used_user_addr = uva + MEM_SIZE - 16;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	/* An address that wraps. */
	a.used_user_addr = ~0ull - 8;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	/* Logging was never offered. */
	a.used_user_addr = uva + 0x2000;
	a.flags = VHOST_USER_VRING_F_LOG;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static int mem_table(struct fe *f, const struct vhost_user_mem_region *r, unsigned n, const int *fds,
		     unsigned nfds)
{
	struct vhost_user_mem_table t = { .nregions = n };

	memcpy(t.regions, r, n * sizeof(*r));
	return fe_ack(f, VHOST_USER_SET_MEM_TABLE, &t, 8 + 32 * n, fds, nfds);
}

static void test_vhost_refuses_overlapping_regions(void)
{
	struct vhost_user_mem_region r[2];
	int fds[2];
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	fds[0] = fds[1] = f.memfd;
	r[0] = r[1] = whole_memory(&f);
	r[0].memory_size = r[1].memory_size = MEM_SIZE / 2;
	/* Guest ranges overlap; user ranges do not. */
	r[1].guest_phys_addr += MEM_SIZE / 4;
	r[1].userspace_addr += MEM_SIZE / 2;
	r[1].mmap_offset = MEM_SIZE / 2;
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 1);
	/* User ranges overlap; guest ranges do not. */
	r[1].guest_phys_addr = GPA + MEM_SIZE;
	r[1].userspace_addr = r[0].userspace_addr + 4096;
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 1);
	/* Apart, both: accepted. */
	r[1].userspace_addr = r[0].userspace_addr + MEM_SIZE / 2;
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 0);
	/* ADD_MEM_REG over an existing region. */
	{
		struct vhost_user_mem_reg reg = { .region = r[0] };

		CHECK_EQ(fe_ack(&f, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &f.memfd, 1), 1);
	}
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_region_that_wraps(void)
{
	struct vhost_user_mem_region r;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	r = whole_memory(&f);
	r.guest_phys_addr = ~0ull - 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.userspace_addr = ~0ull - 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.mmap_offset = ~0ull - 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.memory_size = 0;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	CHECK_EQ(log_lines(&f), 4);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_region_larger_than_its_file(void)
{
	struct vhost_user_mem_region r;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	r = whole_memory(&f);
	r.memory_size = MEM_SIZE + 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.mmap_offset = 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	/* Exactly the file: fine, and an unaligned offset too. */
	r.memory_size = MEM_SIZE - 8192;
	r.mmap_offset = 100;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_region_fd_not_mappable(void)
{
	int efd = eventfd(0, EFD_CLOEXEC), pipefd[2];
	struct vhost_user_mem_region r;
	struct fe f;

	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	CHECK_EQ(hostile_start(&f), 0);
	r = whole_memory(&f);
	CHECK_EQ(mem_table(&f, &r, 1, &efd, 1), 1);
	CHECK_EQ(mem_table(&f, &r, 1, &pipefd[0], 1), 1);
	close(efd);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_mem_table_with_fd_count_mismatch(void)
{
	struct vhost_user_mem_region r[2];
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	r[0] = r[1] = whole_memory(&f);
	r[1].guest_phys_addr += MEM_SIZE;
	r[1].userspace_addr += MEM_SIZE;
	CHECK_EQ(mem_table(&f, r, 2, &f.memfd, 1), 1);
	CHECK_EQ(mem_table(&f, r, 1, (int[]){ f.memfd, f.memfd }, 2), 1);
	/* More regions than a SET_MEM_TABLE holds. */
	{
		struct vhost_user_mem_table t = { .nregions = 9 };

		CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &t, sizeof(t), NULL, 0), 1);
	}
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_more_regions_than_max_mem_slots(void)
{
	int mfd = memfd_create("slots", MFD_CLOEXEC);
	struct fe f;

	CHECK(mfd >= 0);
	CHECK_EQ(ftruncate(mfd, 4096 * (UVIRTIO_MEM_MAX_REGIONS + 1)), 0);
	CHECK_EQ(fe_start(&f, false), 0);
	for (unsigned i = 0; i <= UVIRTIO_MEM_MAX_REGIONS; i++) {
		struct vhost_user_mem_reg reg = {
			.region = { .guest_phys_addr = GPA + 8192ull * i, .memory_size = 4096,
				    .userspace_addr = 0x10000000ull + 8192ull * i,
				    .mmap_offset = 4096ull * i },
		};
		int want = i < UVIRTIO_MEM_MAX_REGIONS ? 0 : 1;

		CHECK_EQ(fe_ack(&f, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &mfd, 1), want);
	}
	close(mfd);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_rem_mem_reg_refuses_a_region_not_mapped(void)
{
	struct vhost_user_mem_reg reg;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	reg = (struct vhost_user_mem_reg){ .region = whole_memory(&f) };
	reg.region.memory_size /= 2;
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 1);
	reg.region.memory_size *= 2;
	/* QEMU sends the fd along; it is closed. */
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), &f.memfd, 1), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_ring_fds_that_are_not_eventfds(void)
{
	int pipefd[2];
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_KICK, &v, 8, &pipefd[0], 1), 1);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_CALL, &v, 8, &pipefd[1], 1), 1);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ERR, &v, 8, &f.memfd, 1), 1);
	/* Polling mode (no kick fd) is not offered. */
	v = VHOST_USER_VRING_NOFD_MASK;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_KICK, &v, 8, NULL, 0), 1);
	/* "No fd" with an fd attached. */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_CALL, &v, 8, &f.call[0], 1), 1);
	/* Call without an fd: allowed (notifications off). */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_CALL, &v, 8, NULL, 0), 0);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_unknown_request_ignored_or_refused_when_reply_needed(void)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	/* QEMU probes: no answer asked, none given, still connected. */
	CHECK_EQ(fe_send(&f, VHOST_USER_SET_LOG_BASE, 0, &v, 8, &efd, 1), 0);
	CHECK_EQ(fe_send(&f, 999, 0, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe_ack(&f, 1000, &v, 8, NULL, 0), 1);
	CHECK(get_u64(&f, VHOST_USER_GET_FEATURES) & F_PROTO);
	close(efd);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_reply_flag_in_a_request(void)
{
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_FEATURES, VHOST_USER_REPLY_MASK, NULL, 0, NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_bad_version(void)
{
	struct vhost_user_hdr h = { VHOST_USER_GET_FEATURES, 2, 0 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(write(f.sock, &h, sizeof(h)), (ssize_t)sizeof(h));
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_oversized_payload(void)
{
	struct vhost_user_hdr h = { VHOST_USER_SET_CONFIG, VHOST_USER_VERSION, 1u << 20 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(write(f.sock, &h, sizeof(h)), (ssize_t)sizeof(h));
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_message_cut_short(void)
{
	struct vhost_user_hdr h = { VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(write(f.sock, &h, sizeof(h)), (ssize_t)sizeof(h));
	CHECK_EQ(write(f.sock, "abc", 3), 3);
	CHECK_EQ(shutdown(f.sock, SHUT_WR), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 1);
}

static void test_vhost_get_config_outside_config_space_replies_failure(void)
{
	struct vhost_user_config c = { .offset = 4, .size = 8 };
	static struct uvirtio_vhost_msg r;
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 8, NULL, 0), 0);
	CHECK_EQ(fe_recv(&f, &r), 0);
	CHECK_EQ(r.hdr.size, VHOST_USER_CONFIG_HDR_SIZE);
	CHECK_EQ(r.payload.config.size, 0);
	/* A config size over 256 is malformed. */
	c.size = 300;
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE, NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_set_config_refused_by_a_read_only_device(void)
{
	struct vhost_user_config c = { .offset = 0, .size = 4 };
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_features_and_protocol_features_not_offered(void)
{
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED,
			    RING_FEATURES | UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | UVIRTIO_BIT(VHOST_F_LOG_ALL)), 1);
	/* Without VERSION_1 the device refuses at FEATURES_OK. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)), 1);
	CHECK_EQ(get_u64(&f, VHOST_USER_GET_STATUS), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, NEED, UVIRTIO_BIT(1)), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, NEED, PF_ALL), 0);
	/* DRIVER_OK before any features. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_STATUS, NEED, S_ALL), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_STATUS, NEED, 0x100), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_ring_changes_refused_while_it_runs(void)
{
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 32), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 5), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES), 1);
	/* The same features again are harmless. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(ring_io(&f, 0, 2, 0), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_memory_table_change_while_ring_runs_restarts_it(void)
{
	struct vhost_user_mem_region r[2];
	int fds[2];
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
					 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS), -1), 0);
	CHECK_EQ(qemu_full_start(&f, UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
					     UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS), 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 4, 0x5a), 0);
	/* Memory hot-plug: the same memory plus one more region. */
	fds[0] = fds[1] = f.memfd;
	r[0] = whole_memory(&f);
	r[1] = (struct vhost_user_mem_region){ .guest_phys_addr = GPA + 2 * MEM_SIZE,
					       .memory_size = 4096, .userspace_addr = 0x1000,
					       .mmap_offset = 0 };
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 0);
	CHECK_EQ(ring_io(&f, 0, 4, 0x5a), 0);
	/* Removing the ring's memory: the ring cannot restart. */
	CHECK_EQ(mem_table(&f, &r[1], 1, fds, 1), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

/* The packed ring over vhost-user, as QEMU 7.2 drives it. */

#define PACKED_FEATURES (RING_FEATURES | UVIRTIO_BIT(VIRTIO_F_RING_PACKED))
#define PACKED_NUM 13 /* not a power of 2: a packed ring may have any size */

static void test_vhost_packed_ring_base_in_qemu_encoding_wraps_and_restarts_there(void)
{
	uint32_t base[1];
	struct uvirtio_rng_dev_stats st;
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	f.ring_features = PACKED_FEATURES;
	f.ring_num = PACKED_NUM;
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	/* Fresh: avail 0 and used 0, each with wrap counter 1. */
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0x80008000u), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 6, 0), 0);
	/* num + 3 requests: position 3, both wrap counters flipped to 0;
	 * avail in bits 0-15, used in 16-31. */
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 0x00030003u);
	CHECK_EQ(uvirtio_drvq_avail_index(&f.dq[0]), 0x0003);
	CHECK_EQ(uvirtio_drvq_used_index(&f.dq[0]), 0x0003);
	{
		struct vhost_user_mem_reg reg = { .region = whole_memory(&f) };

		CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	}
	/* Restarted at that base, the ring carries on (a restart anywhere
	 * else would serve nothing, or find descriptors not available). */
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, base[0]), 0);
	CHECK_EQ(ring_io(&f, 0, PACKED_NUM, 0), 0);
	uvirtio_rng_dev_stats(&f.rng, &st);
	CHECK_EQ(st.requests, 16 + PACKED_NUM);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 0x80038003u);
	CHECK(!uvirtio_drvq_is_broken(&f.dq[0]));
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 0);
}

static void test_vhost_packed_ring_size_need_not_be_power_of_two_split_base_is_16_bits(void)
{
	struct vhost_user_vring_addr a;
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	/* Split: a power of 2, a 16-bit base. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, PACKED_NUM), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x10000), 1);
	/* Packed: any size; a base of two halves. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, PACKED_FEATURES | F_PROTO), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, PACKED_NUM), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x80008000u), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x10000), 0);
	CHECK_EQ(log_lines(&f), 2);
	/* Back to split with that base kept: the ring does not start. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 16), 0);
	CHECK_EQ(make_ring(&f, 0, 16), 0);
	a = (struct vhost_user_vring_addr){ .index = 0,
					    .desc_user_addr = ring_uva(&f, dq_ring(&f, 0).desc),
					    .used_user_addr = ring_uva(&f, dq_ring(&f, 0).used),
					    .avail_user_addr = ring_uva(&f, dq_ring(&f, 0).avail) };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_KICK, NEED, &v, 8, &f.kick[0], 1, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 1);
	CHECK_EQ(log_lines(&f), 3);
	pthread_mutex_lock(&f.log_lock);
	CHECK(strstr(f.last_log, "over 16 bits"));
	pthread_mutex_unlock(&f.log_lock);
	/* Not running: a ring change is still taken. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 16), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_packed_base_index_not_below_ring_size_refused_when_ring_starts(void)
{
	static const uint32_t bad[] = { 0x8000800du, 0x800d8000u, 0x7fff7fffu };
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	f.ring_features = PACKED_FEATURES;
	f.ring_num = PACKED_NUM;
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	/* Taken when set (the ring checks it), refused when the ring runs. */
	CHECK_EQ(qemu_start(&f, PF_ALL, 1, bad[0]), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_KICK, NEED, &v, 8, &f.kick[0], 1, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_CALL, NEED, &v, 8, &f.call[0], 1, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(log_lines(&f), 0);
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, bad[k]), 0);
		CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 1);
		CHECK_EQ(log_lines(&f), k + 1);
	}
	/* Not running (a ring change is taken); a base inside the ring
	 * starts it, and I/O runs. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x80008000u), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_STATUS, NEED, S_ALL), 0);
	CHECK_EQ(ring_io(&f, 0, PACKED_NUM, 0), 0);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 3);
}

static void test_vhost_never_offers_notification_data(void)
{
	uint64_t features;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	/* The device core offers it; a kick eventfd cannot carry it. */
	CHECK(uvirtio_device_get_features(f.dev) & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA));
	features = get_u64(&f, VHOST_USER_GET_FEATURES);
	CHECK(!(features & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_IN_ORDER));
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED,
			    PACKED_FEATURES | F_PROTO | UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

/* Last: every socket file made here was removed by its owner. */
static void test_vhost_socket_files_removed_after_use(void)
{
	CHECK(tmpdir[0]);
	CHECK_EQ(rmdir(tmpdir), 0);
}

TEST_MAIN(T(test_vhost_qemu_realize_start_io_reset_restart_with_rng),
	  T(test_vhost_without_status_or_reply_ack_a_ring_start_is_driver_ok),
	  T(test_vhost_queue_threads_serve_and_stop_keeping_position),
	  T(test_vhost_call_fd_swapped_while_queue_thread_signals),
	  T(test_vhost_config_change_goes_to_the_backend_channel),
	  T(test_vhost_reset_device_forgets_ring_state),
	  T(test_vhost_server_serves_a_second_front_end_after_disconnect),
	  T(test_vhost_server_counts_connections_and_stops_from_another_thread),
	  T(test_vhost_inherited_listening_fd_accepts),
	  T(test_vhost_client_mode_connects_to_the_front_end),
	  T(test_vhost_client_mode_stop_returns_while_connect_waits_for_a_full_backlog),
	  T(test_vhost_listen_refuses_a_path_in_use),
	  T(test_vhost_listen_replaces_a_stale_socket_file),
	  T(test_vhost_listen_refuses_a_path_that_is_not_a_socket),
	  T(test_vhost_create_refuses_a_config_without_one_socket),
	  T(test_vhost_refuses_payload_size_wrong_for_request),
	  T(test_vhost_disconnects_on_bad_message_without_need_reply),
	  T(test_vhost_closes_fds_a_request_does_not_take),
	  T(test_vhost_disconnects_on_more_than_eight_fds),
	  T(test_vhost_refuses_queue_index_out_of_range),
	  T(test_vhost_refuses_ring_size_not_power_of_two_or_above_max),
	  T(test_vhost_refuses_ring_outside_memory_table),
	  T(test_vhost_refuses_overlapping_regions),
	  T(test_vhost_refuses_region_that_wraps),
	  T(test_vhost_refuses_region_larger_than_its_file),
	  T(test_vhost_refuses_region_fd_not_mappable),
	  T(test_vhost_refuses_mem_table_with_fd_count_mismatch),
	  T(test_vhost_refuses_more_regions_than_max_mem_slots),
	  T(test_vhost_rem_mem_reg_refuses_a_region_not_mapped),
	  T(test_vhost_refuses_ring_fds_that_are_not_eventfds),
	  T(test_vhost_unknown_request_ignored_or_refused_when_reply_needed),
	  T(test_vhost_disconnects_on_reply_flag_in_a_request),
	  T(test_vhost_disconnects_on_bad_version),
	  T(test_vhost_disconnects_on_oversized_payload),
	  T(test_vhost_disconnects_on_message_cut_short),
	  T(test_vhost_get_config_outside_config_space_replies_failure),
	  T(test_vhost_set_config_refused_by_a_read_only_device),
	  T(test_vhost_refuses_features_and_protocol_features_not_offered),
	  T(test_vhost_ring_changes_refused_while_it_runs),
	  T(test_vhost_memory_table_change_while_ring_runs_restarts_it),
	  T(test_vhost_packed_ring_base_in_qemu_encoding_wraps_and_restarts_there),
	  T(test_vhost_packed_ring_size_need_not_be_power_of_two_split_base_is_16_bits),
	  T(test_vhost_packed_base_index_not_below_ring_size_refused_when_ring_starts),
	  T(test_vhost_never_offers_notification_data),
	  T(test_vhost_socket_files_removed_after_use))
