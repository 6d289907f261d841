// SPDX-License-Identifier: MIT
/* The vhost-user front-end tests' fixtures (vhost_frontend_fixture.h):
 * uvirtio's own backend in a thread, scripted backends on a socketpair, and
 * the data pattern both programs write and check. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "vhost_frontend_fixture.h"

/* ------------------------------------------------------------------ */
/* uvirtio's own backend, serving a file image on a socket, in a thread. */

static void *server_thread(void *arg)
{
	struct server *s = arg;

	uvirtio_vhost_backend_run(s->vb);
	return NULL;
}

int server_start_on(struct server *s, unsigned queues, const char *img)
{
	struct uvirtio_blk_dev_config bc = { .backend = UVIRTIO_BLK_BACKEND_FILE,
					     .num_queues = queues };
	struct uvirtio_vhost_backend_config vc = { .fd = -1 };
	int fd;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/uvirtio-fe-XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
	s->shares_img = img != NULL;
	if (img)
		snprintf(s->img, sizeof(s->img), "%s", img);
	else
		snprintf(s->img, sizeof(s->img), "%s/img", s->dir);
	fd = open(s->img, O_CREAT | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)IMG_SECTORS * 512) < 0)
		return -errno;
	close(fd);
	bc.path = s->img;
	vc.socket_path = s->path;
	if (uvirtio_vhost_backend_create(&s->vb, &vc))
		return -1;
	if (uvirtio_blk_dev_init(&s->blk, &bc, uvirtio_vhost_backend_mem(s->vb)) ||
	    uvirtio_vhost_backend_attach(s->vb, uvirtio_blk_dev_device(&s->blk)) || uvirtio_vhost_backend_listen(s->vb))
		return -1;
	return pthread_create(&s->thread, NULL, server_thread, s) ? -1 : 0;
}

int server_start(struct server *s, unsigned queues)
{
	return server_start_on(s, queues, NULL);
}

void server_stop(struct server *s)
{
	if (!s->vb)
		return;
	uvirtio_vhost_backend_stop(s->vb);
	pthread_join(s->thread, NULL);
	uvirtio_vhost_backend_destroy(s->vb);
	uvirtio_blk_dev_destroy(&s->blk);
	s->vb = NULL;
	if (!s->shares_img)
		unlink(s->img);
	unlink(s->path);
	rmdir(s->dir);
}

int fe_connect(struct uvirtio_vhost_frontend **fe, const char *path, uint64_t disable)
{
	char err[160] = "";
	struct uvirtio_vhost_frontend_config cfg = {
		.socket_path = path, .fd = -1, .mem_size = 16u << 20,
		.disable_protocol_features = disable, .error = err, .error_size = sizeof(err),
	};
	int ret = uvirtio_vhost_frontend_connect(fe, &cfg);

	if (ret)
		printf("# connect: %s\n", err);
	return ret;
}

void fill(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 31 + seed * 7 + (i >> 9));
}

bool same_as_pattern(const unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(i * 31 + seed * 7 + (i >> 9)))
			return false;
	return true;
}

bool image_has_pattern(const char *img, uint64_t sector, size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);
	int fd = open(img, O_RDONLY);
	bool ok = buf && fd >= 0 && pread(fd, buf, len, (off_t)sector * 512) == (ssize_t)len &&
		  same_as_pattern(buf, len, seed);

	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Scripted backends on a socketpair: well-behaved until told otherwise. */

static void fake_reply(struct fake *f, uint32_t req, const void *p, uint32_t size)
{
	struct uvirtio_vhost_msg r = { .hdr = { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, size } };

	memcpy(r.payload.raw, p, size);
	uvirtio_vhost_msg_send(f->sock, &r, -1);
}

/* Two acks for @req in one write, so both are in the front-end's socket
 * before it reads the first. */
static void fake_double_ack(struct fake *f, uint32_t req)
{
	struct {
		struct vhost_user_hdr h;
		uint64_t v;
	} __attribute__((packed)) two[2] = {
		{ { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 8 }, 0 },
		{ { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 8 }, 0 },
	};

	(void)!send(f->sock, two, sizeof(two), MSG_NOSIGNAL);
}

static void fake_bad_used(struct fake *f)
{
	struct vring_used *used;

	if (!f->map || f->used_uva < f->map_uva ||
	    f->used_uva - f->map_uva + sizeof(*used) + sizeof(used->ring[0]) > f->map_size)
		return;
	eventfd_drain(f->kick_fd);
	used = (struct vring_used *)((char *)f->map + (f->used_uva - f->map_uva));
	used->ring[0].id = 77;
	used->ring[0].len = 1;
	__atomic_store_n(&used->idx, 1, __ATOMIC_RELEASE);
	eventfd_signal(f->call_fd);
}

/* GET_INFLIGHT_FD: a memfd of 16 + 16 * queue_size bytes per queue (the
 * split layout's size), answered as the mode says. */
static void fake_inflight_reply(struct fake *f, const struct uvirtio_vhost_msg *m)
{
	struct uvirtio_vhost_msg r = { .hdr = { VHOST_USER_GET_INFLIGHT_FD,
						VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
						sizeof(struct vhost_user_inflight) } };
	struct vhost_user_inflight *in = &r.payload.inflight;
	uint64_t size;
	int fd = memfd_create("fake-inflight", MFD_CLOEXEC);

	f->inflight_asked = m->payload.inflight;
	*in = m->payload.inflight;
	size = (uint64_t)in->num_queues * (16 + 16ull * in->queue_size);
	in->mmap_size = f->mode == FAKE_INFLIGHT_SMALL ? 64 : size;
	in->mmap_offset = 0;
	if (fd >= 0 && ftruncate(fd, (off_t)(f->mode == FAKE_INFLIGHT_PAST_FD ? size / 2 : size)))
		size = 0;
	if (fd >= 0 && f->mode != FAKE_INFLIGHT_NO_FD)
		r.fds[r.nfds++] = fd;
	if (fd >= 0 && f->mode == FAKE_INFLIGHT_TWO_FDS)
		r.fds[r.nfds++] = fd;
	uvirtio_vhost_msg_send(f->sock, &r, -1);
	if (fd >= 0)
		close(fd);
}

void fake_init(struct fake *f, enum fake_mode mode, uint32_t at, uint64_t offer, int sock)
{
	*f = (struct fake){ .mode = mode, .at = at, .kick_fd = -1, .call_fd = -1, .offer = offer,
			    .inflight_fd = -1, .sock = sock };
}

int fake_log_find(const struct fake *f, uint32_t req, unsigned from)
{
	for (unsigned i = from; i < f->nlog; i++)
		if (f->log[i] == req)
			return (int)i;
	return -1;
}

void *fake_thread(void *arg)
{
	struct fake *f = arg;
	struct uvirtio_vhost_msg m;

	for (;;) {
		struct pollfd p[2] = { { .fd = f->sock, .events = POLLIN },
				       { .fd = f->kick_fd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0)
			break;
		if (f->mode == FAKE_BAD_USED && (p[1].revents & POLLIN)) {
			fake_bad_used(f);
			continue;
		}
		if (uvirtio_vhost_msg_recv(f->sock, &m, -1))
			break;
		uint32_t req = m.hdr.request;
		uint64_t v = 0;
		bool ack = m.hdr.flags & VHOST_USER_NEED_REPLY_MASK;

		if (f->nlog < FAKE_LOG_MAX)
			f->log[f->nlog++] = req;

		if (f->at == req && f->mode == FAKE_CLOSE_AT) {
			uvirtio_vhost_msg_close_fds(&m);
			break;
		}
		if (f->at == req && f->mode == FAKE_SILENT_AT) {
			uvirtio_vhost_msg_close_fds(&m);
			continue;
		}
		if (f->at == req && f->mode == FAKE_SHORT_REPLY) {
			fake_reply(f, req, &v, 4);
			continue;
		}
		if (f->at == req && f->mode == FAKE_HUGE_REPLY) {
			static char big[VHOST_USER_HDR_SIZE + 5000];
			struct vhost_user_hdr h = { req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 5000 };

			memcpy(big, &h, sizeof(h));
			(void)!send(f->sock, big, sizeof(big), MSG_NOSIGNAL);
			continue;
		}
		if (f->at == req && f->mode == FAKE_OTHER_REQUEST) {
			fake_reply(f, VHOST_USER_GET_QUEUE_NUM, &v, 8);
			continue;
		}
		switch (req) {
		case VHOST_USER_GET_FEATURES:
			v = (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
			    f->extra_features;
			if (f->mode != FAKE_NO_VERSION_1)
				v |= UVIRTIO_BIT(VIRTIO_F_VERSION_1);
			fake_reply(f, req, &v, 8);
			break;
		case VHOST_USER_GET_PROTOCOL_FEATURES:
			v = f->offer ? f->offer : PF(REPLY_ACK) | PF(CONFIG) | PF(STATUS);
			fake_reply(f, req, &v, 8);
			break;
		case VHOST_USER_GET_STATUS:
			fake_reply(f, req, &f->status, 8);
			break;
		case VHOST_USER_GET_CONFIG: {
			struct vhost_user_config c = m.payload.config;
			struct virtio_blk_config bc = { .capacity = 2048 };

			memset(c.payload, 0, sizeof(c.payload));
			memcpy(c.payload, &bc, c.size < sizeof(bc) ? c.size : sizeof(bc));
			fake_reply(f, req, &c, m.hdr.size);
			break;
		}
		case VHOST_USER_GET_VRING_BASE:
			if (m.payload.state.index == 0) {
				__atomic_store_n(&f->ring0_running, false, __ATOMIC_RELEASE);
				/* As libvhost-user and DPDK do: a stopped ring
				 * signals nothing, its call fd is dropped. */
				if (f->call_fd >= 0)
					close(f->call_fd);
				f->call_fd = -1;
			}
			if (m.payload.state.index == 0 &&
			    __atomic_load_n(&f->ring0_base_answer, __ATOMIC_ACQUIRE))
				m.payload.state.num =
					__atomic_load_n(&f->ring0_base_answer, __ATOMIC_ACQUIRE);
			if (f->mode == FAKE_BAD_BASE)
				m.payload.state.index++;
			fake_reply(f, req, &m.payload.state, sizeof(m.payload.state));
			break;
		case VHOST_USER_SET_MEM_TABLE: {
			struct vhost_user_mem_region *r = &m.payload.mem_table.regions[0];

			f->map_size = r->memory_size;
			f->map_uva = r->userspace_addr;
			f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fds[0], 0);
			if (f->map == MAP_FAILED)
				f->map = NULL;
			uvirtio_vhost_msg_close_fds(&m);
			break;
		}
		case VHOST_USER_SET_VRING_ADDR:
			f->used_uva = m.payload.addr.used_user_addr;
			break;
		case VHOST_USER_SET_VRING_BASE:
			if (m.payload.state.index == 0) {
				__atomic_store_n(&f->ring0_base, m.payload.state.num, __ATOMIC_RELEASE);
				__atomic_add_fetch(&f->ring0_bases, 1, __ATOMIC_RELEASE);
			}
			break;
		case VHOST_USER_SET_VRING_KICK:
			if (f->kick_fd >= 0)
				close(f->kick_fd);
			f->kick_fd = m.nfds ? m.fds[0] : -1;
			m.nfds = 0;
			if ((m.payload.u64 & VHOST_USER_VRING_IDX_MASK) == 0) {
				if (f->call_fd < 0)
					__atomic_store_n(&f->kick_before_call, true, __ATOMIC_RELEASE);
				__atomic_store_n(&f->ring0_running, true, __ATOMIC_RELEASE);
			}
			break;
		case VHOST_USER_SET_VRING_CALL:
			if (f->call_fd >= 0)
				close(f->call_fd);
			f->call_fd = m.nfds ? m.fds[0] : -1;
			m.nfds = 0;
			break;
		case VHOST_USER_SET_STATUS:
			__atomic_store_n(&f->status, m.payload.u64, __ATOMIC_RELEASE);
			break;
		case VHOST_USER_SET_FEATURES:
			__atomic_store_n(&f->features, m.payload.u64, __ATOMIC_RELEASE);
			break;
		case VHOST_USER_GET_INFLIGHT_FD:
			fake_inflight_reply(f, &m);
			break;
		case VHOST_USER_SET_INFLIGHT_FD:
			f->inflight_set = m.payload.inflight;
			if (f->inflight_fd >= 0)
				close(f->inflight_fd);
			f->inflight_fd = m.nfds ? m.fds[0] : -1;
			m.nfds = 0;
			break;
		default:
			uvirtio_vhost_msg_close_fds(&m);
		}
		if (ack && f->at == req && f->mode == FAKE_EXTRA_ACK_AT) {
			fake_double_ack(f, req);
		} else if (ack && !uvirtio_vhost_msg_has_reply(req)) {
			v = f->at == req && f->mode == FAKE_REFUSE_AT;
			fake_reply(f, req, &v, 8);
		}
	}
	close(f->sock);
	f->sock = -1;
	return NULL;
}

int fake_connect_offering(struct fake *f, enum fake_mode mode, uint32_t at, uint64_t offer,
			  struct uvirtio_vhost_frontend **fe, char *err, size_t err_size)
{
	int sv[2];
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = 4u << 20,
						     .reply_timeout_ms = 200, .error = err,
						     .error_size = err_size };

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	fake_init(f, mode, at, offer, sv[1]);
	if (pthread_create(&f->thread, NULL, fake_thread, f))
		return -EAGAIN;
	cfg.fd = sv[0];
	return uvirtio_vhost_frontend_connect(fe, &cfg);
}

int fake_connect(struct fake *f, enum fake_mode mode, uint32_t at,
		 struct uvirtio_vhost_frontend **fe, char *err, size_t err_size)
{
	return fake_connect_offering(f, mode, at, 0, fe, err, err_size);
}

void fake_finish(struct fake *f)
{
	/* The front-end is gone (or never was): the fake's recv ends. */
	pthread_join(f->thread, NULL);
	if (f->map)
		munmap(f->map, f->map_size);
	if (f->kick_fd >= 0)
		close(f->kick_fd);
	if (f->call_fd >= 0)
		close(f->call_fd);
	if (f->inflight_fd >= 0)
		close(f->inflight_fd);
	f->kick_fd = f->call_fd = f->inflight_fd = -1;
	f->map = NULL;
}

bool fake_ring0_running(struct fake *f)
{
	return __atomic_load_n(&f->ring0_running, __ATOMIC_ACQUIRE);
}

bool fake_set_up_fails(enum fake_mode mode, uint32_t at, int want, const char *text)
{
	struct fake f;
	struct uvirtio_vhost_frontend *fe;
	char err[160] = "";
	int ret = fake_connect(&f, mode, at, &fe, err, sizeof(err));

	if (!ret)
		uvirtio_vhost_frontend_destroy(fe);
	fake_finish(&f);
	if (ret == want && strstr(err, text))
		return true;
	printf("# set-up: %d (\"%s\"), expected %d naming \"%s\"\n", ret, err, want, text);
	return false;
}

uint64_t guest_base(struct uvirtio_transport *t)
{
	uint64_t base;

	uvirtio_dma_guest_range(t->ops->dma(t), &base, NULL);
	return base;
}

int start_ring0_with(struct uvirtio_transport *t, uint64_t features)
{
	const struct uvirtio_transport_ops *o = t->ops;
	uint64_t base = guest_base(t);
	struct uvirtio_queue_layout l = { .num = 8, .desc = base, .avail = base + 4096,
					  .used = base + 8192 };
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	int ret = o->reset(t);

	if (!ret)
		ret = o->set_status(t, s);
	if (!ret)
		ret = o->set_features(t, features);
	if (!ret)
		ret = o->set_status(t, s |= VIRTIO_CONFIG_S_FEATURES_OK);
	if (!ret)
		ret = o->queue_enable(t, 0, &l);
	if (!ret)
		ret = o->set_status(t, s | VIRTIO_CONFIG_S_DRIVER_OK);
	return ret;
}

int start_ring0(struct uvirtio_transport *t)
{
	return start_ring0_with(t, UVIRTIO_BIT(VIRTIO_F_VERSION_1));
}
