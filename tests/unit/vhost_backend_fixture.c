// SPDX-License-Identifier: MIT
/* The scripted front-end of the vhost-user backend tests (vhost_backend_fixture.h). */
#include "vhost_backend_fixture.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uvirtio/log.h"

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

unsigned log_lines(struct fe *f)
{
	unsigned n;

	pthread_mutex_lock(&f->log_lock);
	n = f->log_lines;
	pthread_mutex_unlock(&f->log_lock);
	return n;
}

void *run_thread(void *arg)
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
int fe_memory(struct fe *f)
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

void fe_init(struct fe *f)
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
void fe_log_done(struct fe *f)
{
	uvirtio_set_log(NULL, 0, NULL);
	pthread_mutex_destroy(&f->log_lock);
}

int fe_device(struct fe *f, bool threaded)
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
int fe_start(struct fe *f, bool threaded)
{
	return fe_start_state(f, threaded, NULL);
}

int fe_start_state(struct fe *f, bool threaded, const char *state_path)
{
	int sv[2];
	struct uvirtio_vhost_backend_config cfg = { 0 };

	fe_init(f);
	TRY(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	f->sock = sv[0];
	cfg.fd = sv[1];
	TRY(uvirtio_vhost_backend_create(&f->vb, &cfg) == 0);
	TRY(uvirtio_vhost_backend_set_state_file(f->vb, state_path) == 0);
	TRY(fe_device(f, threaded) == 0);
	TRY(fe_memory(f) == 0);
	TRY(pthread_create(&f->thread, NULL, run_thread, f) == 0);
	return 0;
}

/* Close our end (the backend sees the front-end go), join, free. */
int fe_finish(struct fe *f)
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

int fe_send(struct fe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
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

int fe_recv(struct fe *f, struct uvirtio_vhost_msg *m)
{
	struct pollfd p = { .fd = f->sock, .events = POLLIN };

	if (poll(&p, 1, GUARD_MS) != 1)
		return -ETIMEDOUT;
	return uvirtio_vhost_msg_recv(f->sock, m, -1);
}

/* A request with a reply of one u64 (GET_*, or NEED_REPLY set). */
int fe_u64(struct fe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
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
int fe_ack(struct fe *f, uint32_t req, const void *payload, uint32_t size, const int *fds,
	   unsigned nfds)
{
	uint64_t v = 99;

	TRY(fe_u64(f, req, NEED, payload, size, fds, nfds, &v) == 0);
	TRY(v <= 1);
	return (int)v;
}

int fe_set_u64(struct fe *f, uint32_t req, uint32_t flags, uint64_t v)
{
	if (flags & NEED)
		return fe_ack(f, req, &v, 8, NULL, 0);
	return fe_send(f, req, flags, &v, 8, NULL, 0);
}

int fe_state(struct fe *f, uint32_t req, uint32_t flags, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state s = { index, num };

	if (flags & NEED)
		return fe_ack(f, req, &s, sizeof(s), NULL, 0);
	return fe_send(f, req, flags, &s, sizeof(s), NULL, 0);
}

/* The backend ended the connection: our end reads EOF and run() returned. */
bool fe_disconnected(struct fe *f)
{
	static struct uvirtio_vhost_msg m;

	return fe_recv(f, &m) == -ECONNRESET;
}

uint64_t get_u64(struct fe *f, uint32_t req)
{
	uint64_t v = ~0ull;

	if (fe_u64(f, req, 0, NULL, 0, NULL, 0, &v))
		return ~0ull;
	return v;
}

struct vhost_user_mem_region whole_memory(struct fe *f)
{
	return (struct vhost_user_mem_region){ .guest_phys_addr = GPA, .memory_size = MEM_SIZE,
					       .userspace_addr = (uintptr_t)f->map, .mmap_offset = 0 };
}

/* QEMU 7.2 vhost-user-blk realize: features, protocol features, queue
 * count, memory slots, the back-end channel, ownership, config space. */
int qemu_realize(struct fe *f, uint64_t protocol_features, int backend_fd)
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
int make_ring(struct fe *f, unsigned i, unsigned num)
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
uint64_t ring_uva(struct fe *f, uint64_t gpa)
{
	return (uintptr_t)f->map + (gpa - GPA);
}

/* Where ring @i (made by make_ring()) lies, as the back-end is told. */
struct uvirtio_drvq_ring dq_ring(struct fe *f, unsigned i)
{
	struct uvirtio_drvq_ring r;

	uvirtio_drvq_ring(&f->dq[i], &r);
	return r;
}

/* QEMU 7.2 vhost_dev_start: features (and FEATURES_OK via GET/SET_STATUS
 * when STATUS is negotiated), memory, each ring, enable, DRIVER_OK. */
int qemu_start(struct fe *f, uint64_t pf, unsigned nrings, uint32_t base)
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
int qemu_start_fds(struct fe *f, uint64_t pf, unsigned nrings)
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

int qemu_full_start(struct fe *f, uint64_t pf, unsigned nrings, uint32_t base)
{
	TRY(qemu_start(f, pf, nrings, base) == 0);
	return qemu_start_fds(f, pf, nrings);
}

/* QEMU 7.2 vhost_dev_stop: status 0, disable, then each ring's position. */
int qemu_stop(struct fe *f, uint64_t pf, unsigned nrings, uint32_t *bases)
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
int ring_io(struct fe *f, unsigned i, unsigned n, unsigned char fill)
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

/* A started backend, realized, with guest memory mapped by SET_MEM_TABLE. */
int hostile_start(struct fe *f)
{
	struct vhost_user_mem_table t = { .nregions = 1, .regions = { whole_memory(f) } };

	TRY(fe_start(f, false) == 0);
	TRY(qemu_realize(f, PF_ALL, -1) == 0);
	t.regions[0] = whole_memory(f);
	TRY(fe_ack(f, VHOST_USER_SET_MEM_TABLE, &t, 8 + 32, &f->memfd, 1) == 0);
	return 0;
}
