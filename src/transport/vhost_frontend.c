// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end: uvirtio's driver side speaking to a backend the
 * way QEMU does for a guest. See include/uvirtio/vhost_frontend.h for the
 * mapping of transport operations onto requests.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include "../core/eventfd.h"
#include "uvirtio/dma.h"
#include "uvirtio/vhost_frontend.h"
#include "uvirtio/virtio_spec.h"
#include "vhost_msg.h"

#define DEFAULT_MEM_SIZE (64u << 20)
#define DEFAULT_GUEST_ADDR (1ull << 30)
#define DEFAULT_QUEUE_SIZE 256u
#define MAX_QUEUE_SIZE 32768u
#define DEFAULT_REPLY_TIMEOUT_MS 10000
#define HUGE_PAGE_SIZE (2u << 20)
/* vhost-user rings are addressed by an 8-bit index in KICK/CALL/ERR. */
#define MAX_RINGS (VHOST_USER_VRING_IDX_MASK + 1u)

#define PF(f) (1ull << VHOST_USER_PROTOCOL_F_##f)
/* What this front-end implements. BACKEND_REQ is left out: config-change
 * notices would need a thread serving that channel. */
#define FRONTEND_PROTOCOL_FEATURES                                                     \
	(PF(MQ) | PF(REPLY_ACK) | PF(CONFIG) | PF(RESET_DEVICE) | PF(CONFIGURE_MEM_SLOTS) | \
	 PF(STATUS))

/* Transport features this front-end implements itself, whatever the
 * backend offers: a queue reset is GET_VRING_BASE on that ring, a suspend
 * GET_VRING_BASE on every ring (as QEMU 8 resets a vhost-user net queue).
 * Passed on to the backend only when it offered them. */
#define FRONTEND_FEATURES (UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND))

/* Feature bits of vhost itself, not of the virtio device. */
#define VHOST_ONLY_FEATURES                                                            \
	((1ull << VHOST_USER_F_PROTOCOL_FEATURES) | (1ull << VHOST_F_LOG_ALL))

struct ring {
	int kick_fd, call_fd;
	struct uvirtio_queue_layout layout;
	bool configured; /* the driver gave a layout (queue_enable) */
	bool started;    /* handed to the backend and not stopped since */
	bool stopped;    /* stopped with stop_ring, may be restarted */
	bool reset;      /* queue_reset: forgotten until queue_enable */
	bool suspended;  /* stopped by a suspend: resume restarts it at @base */
	uint32_t base;   /* GET_VRING_BASE's answer at the suspend */
};

struct uvirtio_vhost_frontend {
	struct uvirtio_transport t; /* first: the driver's handle */
	/* One request and its reply at a time: queue threads ask for the
	 * status (a driver looking for DEVICE_NEEDS_RESET) while the
	 * lifecycle thread may be sending. */
	pthread_mutex_t lock;
	int sock; /* written under @lock (give_up) */
	/* The watcher: a thread that sees the backend hang up while no request
	 * is under way, so drivers waiting on a used ring learn of it. */
	pthread_t watcher;
	bool watching;
	int watch_fd;  /* a dup of sock that the watcher polls */
	int stop_fd;   /* ends the watcher */
	bool peer_gone; /* atomic: the watcher saw the hang-up */
	int timer_fd; /* armed while a reply is awaited: the cancel fd of recv */
	int reply_timeout_ms;
	bool connected;
	/* Written under @lock: a queue thread's request may give the
	 * connection up. Once it is given up the reason stays. */
	char error[160];
	char error_copy[160]; /* what uvirtio_vhost_frontend_error() hands out */

	int memfd;
	void *map;
	size_t mem_size;
	struct uvirtio_dma dma;
	bool dma_ready;

	uint64_t backend_features;
	uint64_t driver_features;
	uint64_t sent_features; /* what SET_FEATURES carried, bit 30 included */
	uint64_t protocol_offered, protocol;
	uint8_t status;    /* as the driver wrote it (SUSPEND included) */
	bool suspended;    /* atomic: SUSPEND presented, every ring stopped */

	/* The driver's config writes, replayed to a new backend by move. */
	uint8_t config_shadow[VHOST_USER_CONFIG_MAX];
	bool config_written[VHOST_USER_CONFIG_MAX];

	unsigned max_queue_size;
	unsigned nrings;
	struct ring *rings;
	int config_fd; /* never signalled: no backend channel (see above) */
};

static struct uvirtio_vhost_frontend *to_fe(struct uvirtio_transport *t)
{
	return (struct uvirtio_vhost_frontend *)((char *)t -
						 offsetof(struct uvirtio_vhost_frontend, t));
}

static bool has_pf(const struct uvirtio_vhost_frontend *fe, unsigned bit)
{
	return fe->protocol & (1ull << bit);
}

/* connected is written by whichever thread's request found the connection
 * broken; peer_gone by the watcher, which saw the backend hang up (nothing
 * more will come from it, so no request can succeed). */
static bool is_connected(const struct uvirtio_vhost_frontend *fe)
{
	return __atomic_load_n(&fe->connected, __ATOMIC_RELAXED) &&
	       !__atomic_load_n(&fe->peer_gone, __ATOMIC_ACQUIRE);
}

static bool protocol_features_negotiated(const struct uvirtio_vhost_frontend *fe)
{
	return fe->backend_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int set_error(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Called with @fe->lock held, or from connect before any other thread runs. */
static int set_error(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fe->error, sizeof(fe->error), fmt, ap);
	va_end(ap);
	return err;
}

/* set_error for a lifecycle call outside a request: a queue thread's
 * request may be writing the line at the same time. */
static int report(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int report(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fe->lock);
	va_start(ap, fmt);
	vsnprintf(fe->error, sizeof(fe->error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&fe->lock);
	return err;
}

/* The backend broke the protocol or went away: nothing it sends can be
 * trusted to line up with our requests any more. Called with @fe->lock held
 * (or from connect), while connected: the first reason is the one kept. */
static int give_up(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int give_up(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fe->error, sizeof(fe->error), fmt, ap);
	va_end(ap);
	__atomic_store_n(&fe->connected, false, __ATOMIC_RELAXED);
	/* shutdown, not just close: the watcher's dup must see the end too. */
	if (fe->sock >= 0)
		shutdown(fe->sock, SHUT_RDWR);
	close_fd(&fe->sock);
	return err;
}

static void arm_timer(struct uvirtio_vhost_frontend *fe, int ms)
{
	struct itimerspec its = { 0 };

	if (ms > 0) {
		its.it_value.tv_sec = ms / 1000;
		its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	}
	/* Disarming also clears an expiry that was never read. */
	timerfd_settime(fe->timer_fd, 0, &its, NULL);
}

/*
 * Between requests the backend has nothing to say on this socket (its own
 * requests would come on the backend channel, which is not set up). Bytes
 * waiting now are a message nobody asked for: a second reply, say, that
 * would be taken for the next request's and put every later one a reply
 * late. Or the end of the connection.
 */
static int check_nothing_unasked(struct uvirtio_vhost_frontend *fe, const char *name)
{
	struct pollfd p = { .fd = fe->sock, .events = POLLIN };
	char c;
	ssize_t n;

	if (poll(&p, 1, 0) <= 0)
		return 0;
	/* Peeked without room for fds, so any that came are not taken. */
	n = recv(fe->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		return give_up(fe, -EPROTO, "%s: the backend sent a message nobody asked for", name);
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		return give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
	return 0;
}

/*
 * Sends @req with @size payload bytes from @payload and @nfds fds; when
 * @reply is not NULL waits for a reply of exactly @reply_size bytes into it.
 * Requests without a reply of their own get one when REPLY_ACK is in use,
 * and a non-zero ack is the backend's refusal.
 */
static int transact_locked(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
			   uint32_t size, const int *fds, unsigned nfds, void *reply,
			   uint32_t reply_size)
{
	const char *name = uvirtio_vhost_msg_request_name(req);
	struct uvirtio_vhost_msg m = { .hdr = { .request = req, .flags = VHOST_USER_VERSION,
						  .size = size } };
	bool has_reply = uvirtio_vhost_msg_has_reply(req);
	bool want_ack = !has_reply && has_pf(fe, VHOST_USER_PROTOCOL_F_REPLY_ACK);
	int timeout = fe->reply_timeout_ms;
	uint64_t ack;
	int ret;

	if (!is_connected(fe)) {
		/* The watcher saw the hang-up and no request has failed on it
		 * yet: that is the reason to keep. Otherwise the reason the
		 * connection was given up stays as it is. */
		if (__atomic_load_n(&fe->connected, __ATOMIC_RELAXED))
			return give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
		return -ENOTCONN;
	}
	ret = check_nothing_unasked(fe, name);
	if (ret)
		return ret;
	if (size)
		memcpy(m.payload.raw, payload, size);
	for (unsigned i = 0; i < nfds; i++)
		m.fds[i] = fds[i];
	m.nfds = nfds;
	if (want_ack)
		m.hdr.flags |= VHOST_USER_NEED_REPLY_MASK;

	arm_timer(fe, timeout);
	ret = uvirtio_vhost_msg_send(fe->sock, &m, fe->timer_fd);
	if (ret == -ECANCELED)
		ret = give_up(fe, -ETIMEDOUT, "%s: the backend did not read it in %d ms", name,
			      timeout);
	else if (ret == -EPIPE || ret == -ECONNRESET)
		ret = give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
	else if (ret)
		ret = give_up(fe, ret, "%s: cannot send: %s", name, strerror(-ret));
	if (ret || (!has_reply && !want_ack)) {
		arm_timer(fe, 0);
		return ret;
	}
	if (want_ack) {
		reply = &ack;
		reply_size = sizeof(ack);
	}

	ret = uvirtio_vhost_msg_recv(fe->sock, &m, fe->timer_fd);
	arm_timer(fe, 0);
	if (ret == -ECANCELED)
		return give_up(fe, -ETIMEDOUT, "%s: no reply from the backend in %d ms", name,
			       timeout);
	if (ret == -ECONNRESET)
		return give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
	if (ret == -EPROTO)
		return give_up(fe, -EPROTO, "%s: malformed reply (cut short, oversized or too many fds)",
			       name);
	if (ret)
		return give_up(fe, ret, "%s: cannot receive the reply: %s", name, strerror(-ret));
	ret = uvirtio_vhost_msg_check_reply(&m, req);
	if (ret == -EBADF) {
		unsigned nfds = m.nfds;

		uvirtio_vhost_msg_close_fds(&m);
		return give_up(fe, -EPROTO, "%s: reply carries %u fds, expected none", name, nfds);
	}
	if (ret == -ENOMSG)
		return give_up(fe, -EPROTO, "%s: reply is for request %u (%s)", name, m.hdr.request,
			       uvirtio_vhost_msg_request_name(m.hdr.request));
	if (ret)
		return give_up(fe, -EPROTO, "%s: reply flags %#x lack version 1 or the reply bit",
			       name, m.hdr.flags);
	/* libvhost-user answers a GET_CONFIG it cannot serve with an empty
	 * payload: a refusal, not a broken stream. */
	if (req == VHOST_USER_GET_CONFIG && m.hdr.size == 0)
		return set_error(fe, -EIO, "%s: the backend refused (empty reply)", name);
	if (m.hdr.size != reply_size)
		return give_up(fe, -EPROTO, "%s: reply of %u bytes, expected %u", name, m.hdr.size,
			       reply_size);
	memcpy(reply, m.payload.raw, reply_size);
	if (want_ack && ack)
		return set_error(fe, -EIO, "%s: the backend refused (ack %#llx)", name,
				 (unsigned long long)ack);
	return 0;
}

static int transact(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
		    uint32_t size, const int *fds, unsigned nfds, void *reply, uint32_t reply_size)
{
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = transact_locked(fe, req, payload, size, fds, nfds, reply, reply_size);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static int send_u64(struct uvirtio_vhost_frontend *fe, uint32_t req, uint64_t v)
{
	return transact(fe, req, &v, sizeof(v), NULL, 0, NULL, 0);
}

static int get_u64(struct uvirtio_vhost_frontend *fe, uint32_t req, uint64_t *v)
{
	return transact(fe, req, NULL, 0, NULL, 0, v, sizeof(*v));
}

static int send_state(struct uvirtio_vhost_frontend *fe, uint32_t req, unsigned index,
		      uint32_t num)
{
	struct vhost_user_vring_state s = { .index = index, .num = num };

	return transact(fe, req, &s, sizeof(s), NULL, 0, NULL, 0);
}

static int send_vring_fd(struct uvirtio_vhost_frontend *fe, uint32_t req, unsigned index, int fd)
{
	uint64_t v = index;

	return transact(fe, req, &v, sizeof(v), &fd, 1, NULL, 0);
}

/* Front-end addresses are what SET_VRING_ADDR carries: the backend
 * translates them through the regions' userspace_addr. */
static uint64_t frontend_addr(const struct uvirtio_vhost_frontend *fe, uint64_t guest)
{
	return (uint64_t)(uintptr_t)fe->map + (guest - fe->dma.guest_addr);
}

static bool layout_inside(const struct uvirtio_vhost_frontend *fe,
			  const struct uvirtio_queue_layout *l)
{
	uint64_t lo = fe->dma.guest_addr, hi = lo + fe->dma.size;

	return l->desc >= lo && l->desc < hi && l->avail >= lo && l->avail < hi &&
	       l->used >= lo && l->used < hi;
}

static int get_vring_base(struct uvirtio_vhost_frontend *fe, unsigned index, uint32_t *base)
{
	struct vhost_user_vring_state s = { .index = index };
	int ret;

	/* Checked under the lock: a give-up closes the socket that a queue
	 * thread's request may be using. */
	pthread_mutex_lock(&fe->lock);
	ret = transact_locked(fe, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &s, sizeof(s));
	if (!ret && s.index != index)
		ret = give_up(fe, -EPROTO, "GET_VRING_BASE: reply for ring %u, asked for %u", s.index,
			      index);
	pthread_mutex_unlock(&fe->lock);
	if (!ret)
		*base = s.num;
	return ret;
}

static uint32_t start_base(const struct uvirtio_vhost_frontend *fe)
{
	return vhost_ring_start_base(fe->driver_features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED));
}

/* Hands ring @index to the backend at @base and enables it. */
static int start_ring(struct uvirtio_vhost_frontend *fe, unsigned index, uint32_t base)
{
	struct ring *r = &fe->rings[index];
	struct vhost_user_vring_addr a = {
		.index = index,
		.desc_user_addr = frontend_addr(fe, r->layout.desc),
		.used_user_addr = frontend_addr(fe, r->layout.used),
		.avail_user_addr = frontend_addr(fe, r->layout.avail),
	};
	int ret;

	bool kicked = false;
	uint32_t ignored;

	/* QEMU's order (vhost_virtqueue_start): num, base, addresses, then
	 * the fds. The call fd goes before the kick fd: vhost-user.rst has a
	 * ring start when its kick fd is set, and a backend may serve buffers
	 * at once (libvhost-user kicks itself then; one that dropped the call
	 * fd at GET_VRING_BASE, as it and DPDK do, would signal nothing). */
	ret = send_state(fe, VHOST_USER_SET_VRING_NUM, index, r->layout.num);
	if (!ret)
		ret = send_state(fe, VHOST_USER_SET_VRING_BASE, index, base);
	if (!ret)
		ret = transact(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0);
	if (!ret)
		ret = send_vring_fd(fe, VHOST_USER_SET_VRING_CALL, index, r->call_fd);
	if (!ret) {
		kicked = true;
		ret = send_vring_fd(fe, VHOST_USER_SET_VRING_KICK, index, r->kick_fd);
	}
	/* With protocol features a ring starts disabled (vhost-user.rst). */
	if (!ret && protocol_features_negotiated(fe))
		ret = send_state(fe, VHOST_USER_SET_VRING_ENABLE, index, 1);
	if (ret) {
		/* The backend may have started the ring (even a refused kick
		 * may have been taken): stop it again, or a reset, which only
		 * stops started rings, would leave it running on memory the
		 * driver frees. A failure here gives the connection up. */
		if (kicked && is_connected(fe))
			get_vring_base(fe, index, &ignored);
		return ret;
	}
	r->started = true;
	r->stopped = false;
	return 0;
}

/* Transport operations. */

static int fe_get_features(struct uvirtio_transport *t, uint64_t *features)
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
	return v;
}

static int fe_set_features(struct uvirtio_transport *t, uint64_t features)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	uint64_t v = backend_share(fe, features);
	int ret;

	ret = send_u64(fe, VHOST_USER_SET_FEATURES, v);
	if (!ret) {
		fe->driver_features = features;
		fe->sent_features = v;
	}
	return ret;
}

static int fe_get_status(struct uvirtio_transport *t, uint8_t *status)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
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
		*status = local | VIRTIO_CONFIG_S_NEEDS_RESET;
		return 0;
	}
	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		*status = local;
		return 0;
	}
	ret = get_u64(fe, VHOST_USER_GET_STATUS, &v);
	if (ret == -ENOTCONN || ret == -EPROTO || ret == -ETIMEDOUT) {
		*status = local | VIRTIO_CONFIG_S_NEEDS_RESET;
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

static int stop_all_rings(struct uvirtio_vhost_frontend *fe)
{
	int first = 0;

	for (unsigned i = 0; i < fe->nrings; i++) {
		struct ring *r = &fe->rings[i];
		uint32_t base;
		int ret = 0;

		if (r->started)
			ret = get_vring_base(fe, i, &base);
		r->started = r->stopped = r->configured = r->reset = r->suspended = false;
		r->base = 0;
		if (ret && !first)
			first = ret;
	}
	return first;
}

static int fe_reset(struct uvirtio_transport *t)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret, ret2 = 0;

	/* GET_VRING_BASE returns only once the backend stopped the ring: after
	 * it no used entry is written and no notification sent, which is what
	 * a reset must guarantee. The status write tells a backend with STATUS
	 * that the device itself starts over. */
	ret = stop_all_rings(fe);
	if (has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS))
		ret2 = send_u64(fe, VHOST_USER_SET_STATUS, 0);
	else if (has_pf(fe, VHOST_USER_PROTOCOL_F_RESET_DEVICE))
		ret2 = transact(fe, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0);
	__atomic_store_n(&fe->status, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fe->suspended, false, __ATOMIC_RELEASE);
	fe->driver_features = fe->sent_features = 0;
	memset(fe->config_written, 0, sizeof(fe->config_written));
	for (unsigned i = 0; i < fe->nrings; i++)
		eventfd_drain(fe->rings[i].call_fd);
	return ret ? ret : ret2;
}

/* Suspend (VIRTIO_F_SUSPEND, done here, not by the backend): stop every
 * handed-over ring with GET_VRING_BASE, which returns once the backend
 * finished what it took from it (uvirtio's backend; see the header for
 * libvhost-user's), and keep where each stopped. */
static int suspend_rings(struct uvirtio_vhost_frontend *fe)
{
	for (unsigned i = 0; i < fe->nrings; i++) {
		struct ring *r = &fe->rings[i];
		int ret;

		if (!r->started)
			continue;
		ret = get_vring_base(fe, i, &r->base);
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
static int resume_rings(struct uvirtio_vhost_frontend *fe)
{
	for (unsigned i = 0; i < fe->nrings; i++) {
		struct ring *r = &fe->rings[i];
		int ret;

		if (r->started || r->stopped || r->reset || !r->configured)
			continue;
		ret = start_ring(fe, i, r->suspended ? r->base : start_base(fe));
		if (ret)
			return ret;
		if (r->suspended)
			eventfd_signal(r->kick_fd);
		r->suspended = false;
	}
	return 0;
}

static int fe_set_status(struct uvirtio_transport *t, uint8_t status)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	bool suspended = __atomic_load_n(&fe->suspended, __ATOMIC_RELAXED);
	bool driver_ok = (status & VIRTIO_CONFIG_S_DRIVER_OK) &&
			 (suspended || !(fe->status & VIRTIO_CONFIG_S_DRIVER_OK));
	int ret = 0;

	if (status == 0)
		return fe_reset(t);
	if (!is_connected(fe))
		return -ENOTCONN; /* the error line keeps why */
	if ((status & VIRTIO_CONFIG_S_SUSPEND) && !suspended) {
		/* spec: SUSPEND only after DRIVER_OK, and only when negotiated. */
		if (!(fe->status & VIRTIO_CONFIG_S_DRIVER_OK) ||
		    !(fe->driver_features & UVIRTIO_BIT(VIRTIO_F_SUSPEND)))
			return report(fe, -EINVAL, "SUSPEND %s",
				      fe->status & VIRTIO_CONFIG_S_DRIVER_OK ? "was not negotiated"
									      : "before DRIVER_OK");
		ret = suspend_rings(fe);
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
		ret = resume_rings(fe);
		if (ret)
			return ret;
	}
	if (has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS))
		ret = send_u64(fe, VHOST_USER_SET_STATUS, status);
	if (!ret) {
		__atomic_store_n(&fe->status, status, __ATOMIC_RELAXED);
		__atomic_store_n(&fe->suspended, false, __ATOMIC_RELEASE);
	}
	return ret;
}

static int fe_get_config(struct uvirtio_transport *t, unsigned offset, void *buf, unsigned len)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct vhost_user_config c = { 0 };
	uint32_t size;
	int ret;

	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_CONFIG))
		return report(fe, -EOPNOTSUPP,
			      "GET_CONFIG: the backend does not offer the CONFIG protocol feature");
	if (offset > VHOST_USER_CONFIG_MAX || len > VHOST_USER_CONFIG_MAX - offset)
		return -EINVAL;
	/* Asked for from offset 0, as QEMU does: libvhost-user backends
	 * (qemu-storage-daemon) copy from the start whatever the offset. */
	size = offset + len;
	c.size = size;
	pthread_mutex_lock(&fe->lock);
	ret = transact_locked(fe, VHOST_USER_GET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + size, NULL,
			      0, &c, VHOST_USER_CONFIG_HDR_SIZE + size);
	if (!ret && (c.offset != 0 || c.size != size))
		ret = give_up(fe, -EPROTO, "GET_CONFIG: reply for offset %u size %u, asked for 0 and %u",
			      c.offset, c.size, size);
	pthread_mutex_unlock(&fe->lock);
	if (!ret)
		memcpy(buf, c.payload + offset, len);
	return ret;
}

static int fe_set_config(struct uvirtio_transport *t, unsigned offset, const void *buf,
			 unsigned len)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct vhost_user_config c = { .offset = offset, .size = len,
				       .flags = VHOST_USER_CONFIG_WRITABLE };
	int ret;

	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_CONFIG))
		return report(fe, -EOPNOTSUPP,
			      "SET_CONFIG: the backend does not offer the CONFIG protocol feature");
	if (offset > VHOST_USER_CONFIG_MAX || len > VHOST_USER_CONFIG_MAX - offset)
		return -EINVAL;
	memcpy(c.payload, buf, len);
	ret = transact(fe, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + len, NULL, 0,
		       NULL, 0);
	if (!ret) {
		/* Kept for a move to another backend, which must see them too. */
		memcpy(fe->config_shadow + offset, buf, len);
		memset(fe->config_written + offset, 1, len);
	}
	return ret;
}

static int fe_config_generation(struct uvirtio_transport *t, uint32_t *generation)
{
	/* vhost-user has no generation counter: GET_CONFIG is one message, so
	 * a read is never torn. */
	if (!is_connected(to_fe(t)))
		return -ENOTCONN;
	*generation = 0;
	return 0;
}

static int fe_queue_max_size(struct uvirtio_transport *t, unsigned index, unsigned *max)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);

	if (!is_connected(fe))
		return -ENOTCONN;
	*max = index < fe->nrings ? fe->max_queue_size : 0;
	return 0;
}

static int fe_queue_enable(struct uvirtio_transport *t, unsigned index,
			   const struct uvirtio_queue_layout *layout)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct ring *r;

	if (!is_connected(fe))
		return -ENOTCONN;
	if (index >= fe->nrings || !layout->num || layout->num > fe->max_queue_size ||
	    !layout_inside(fe, layout))
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
	    !__atomic_load_n(&fe->suspended, __ATOMIC_RELAXED))
		return start_ring(fe, index, start_base(fe));
	return 0;
}

static int fe_queue_reset(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	struct ring *r;
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
		ret = get_vring_base(fe, index, &base);
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

static int fe_notify(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);

	if (index >= fe->nrings)
		return -EINVAL;
	eventfd_signal(fe->rings[index].kick_fd);
	return 0;
}

static int fe_event_fd(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);

	if (index == UVIRTIO_CONFIG_EVENT)
		return fe->config_fd;
	return index < fe->nrings ? fe->rings[index].call_fd : -EINVAL;
}

static struct uvirtio_dma *fe_dma(struct uvirtio_transport *t)
{
	return &to_fe(t)->dma;
}

static const struct uvirtio_transport_ops frontend_ops = {
	.get_features = fe_get_features,
	.set_features = fe_set_features,
	.get_status = fe_get_status,
	.set_status = fe_set_status,
	.reset = fe_reset,
	.get_config = fe_get_config,
	.set_config = fe_set_config,
	.config_generation = fe_config_generation,
	.queue_max_size = fe_queue_max_size,
	.queue_enable = fe_queue_enable,
	.queue_reset = fe_queue_reset,
	.notify = fe_notify,
	.event_fd = fe_event_fd,
	.dma = fe_dma,
};

/* Set-up. */

static void *watcher_thread(void *arg)
{
	struct uvirtio_vhost_frontend *fe = arg;
	/* POLLRDHUP, not POLLIN: a reply waiting to be read is not an end. */
	struct pollfd p[2] = { { .fd = fe->watch_fd, .events = POLLRDHUP },
			       { .fd = fe->stop_fd, .events = POLLIN } };

	for (;;) {
		int n = poll(p, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[1].revents)
			return NULL;
		if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
			__atomic_store_n(&fe->peer_gone, true, __ATOMIC_RELEASE);
			eventfd_signal(fe->config_fd);
			return NULL;
		}
	}
}

static int start_watcher(struct uvirtio_vhost_frontend *fe)
{
	fe->watch_fd = fcntl(fe->sock, F_DUPFD_CLOEXEC, 0);
	fe->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fe->watch_fd < 0 || fe->stop_fd < 0)
		return set_error(fe, -errno, "watcher: %s", strerror(errno));
	if (pthread_create(&fe->watcher, NULL, watcher_thread, fe))
		return set_error(fe, -EAGAIN, "watcher: cannot start a thread");
	fe->watching = true;
	return 0;
}

static int connect_socket(const char *path, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	do
		ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

static int make_memory(struct uvirtio_vhost_frontend *fe, const struct uvirtio_vhost_frontend_config *cfg)
{
	size_t page = cfg->hugetlb ? HUGE_PAGE_SIZE : (size_t)sysconf(_SC_PAGESIZE);
	size_t size = cfg->mem_size ? cfg->mem_size : DEFAULT_MEM_SIZE;
	uint64_t guest = cfg->guest_addr ? cfg->guest_addr : DEFAULT_GUEST_ADDR;
	unsigned flags = MFD_CLOEXEC | (cfg->hugetlb ? MFD_HUGETLB : 0);

	if (size > SIZE_MAX - page)
		return set_error(fe, -EINVAL, "guest memory of %zu bytes is too large", size);
	size = (size + page - 1) & ~(page - 1);
	fe->memfd = memfd_create("uvirtio-guest", flags);
	if (fe->memfd < 0)
		return set_error(fe, -errno, "memfd_create%s: %s", cfg->hugetlb ? " (hugetlb)" : "",
				 strerror(errno));
	if (ftruncate(fe->memfd, (off_t)size) < 0)
		return set_error(fe, -errno, "guest memory of %zu bytes: %s", size, strerror(errno));
	/* With huge pages the reservation is made here, so too few free pages
	 * is an error now, not a SIGBUS on first touch. */
	fe->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd, 0);
	if (fe->map == MAP_FAILED) {
		fe->map = NULL;
		return set_error(fe, -errno, "mapping %zu bytes of guest memory%s: %s", size,
				 cfg->hugetlb ? " in huge pages" : "", strerror(errno));
	}
	fe->mem_size = size;
	if (uvirtio_dma_init(&fe->dma, fe->map, guest, size))
		return set_error(fe, -EINVAL, "guest memory at %#llx of %zu bytes overflows",
				 (unsigned long long)guest, size);
	fe->dma_ready = true;
	return 0;
}

static int make_rings(struct uvirtio_vhost_frontend *fe)
{
	fe->rings = calloc(fe->nrings, sizeof(*fe->rings));
	if (!fe->rings)
		return -ENOMEM;
	for (unsigned i = 0; i < fe->nrings; i++)
		fe->rings[i].kick_fd = fe->rings[i].call_fd = -1;
	for (unsigned i = 0; i < fe->nrings; i++) {
		struct ring *r = &fe->rings[i];

		r->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		r->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (r->kick_fd < 0 || r->call_fd < 0)
			return set_error(fe, -errno, "eventfd: %s", strerror(errno));
	}
	return 0;
}

static int share_memory(struct uvirtio_vhost_frontend *fe)
{
	struct vhost_user_mem_region region = {
		.guest_phys_addr = fe->dma.guest_addr,
		.memory_size = fe->mem_size,
		.userspace_addr = (uint64_t)(uintptr_t)fe->map,
		.mmap_offset = 0,
	};

	if (has_pf(fe, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		struct vhost_user_mem_reg reg = { .region = region };
		uint64_t slots;
		int ret = get_u64(fe, VHOST_USER_GET_MAX_MEM_SLOTS, &slots);

		if (ret)
			return ret;
		if (slots < 1)
			return set_error(fe, -ENOSPC, "GET_MAX_MEM_SLOTS: the backend has no slot");
		return transact(fe, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &fe->memfd, 1, NULL, 0);
	}
	struct vhost_user_mem_table table = { .nregions = 1, .regions = { region } };

	/* The payload is the header and the regions used, as QEMU sends it. */
	return transact(fe, VHOST_USER_SET_MEM_TABLE, &table,
			offsetof(struct vhost_user_mem_table, regions) + sizeof(region), &fe->memfd, 1,
			NULL, 0);
}

static int negotiate(struct uvirtio_vhost_frontend *fe, uint64_t disabled)
{
	uint64_t v;
	int ret;

	ret = get_u64(fe, VHOST_USER_GET_FEATURES, &fe->backend_features);
	if (ret)
		return ret;
	if (!(fe->backend_features & UVIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return set_error(fe, -ENODEV, "the backend does not offer VIRTIO_F_VERSION_1 (features %#llx)",
				 (unsigned long long)fe->backend_features);
	fe->nrings = 1;
	if (protocol_features_negotiated(fe)) {
		ret = get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &fe->protocol_offered);
		if (ret)
			return ret;
		v = fe->protocol_offered & FRONTEND_PROTOCOL_FEATURES & ~disabled;
		/* REPLY_ACK applies from the next request on: this one has none. */
		ret = send_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, v);
		if (ret)
			return ret;
		fe->protocol = v;
		if (has_pf(fe, VHOST_USER_PROTOCOL_F_MQ)) {
			ret = get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &v);
			if (ret)
				return ret;
			if (v < 1 || v > MAX_RINGS)
				return give_up(fe, -EPROTO, "GET_QUEUE_NUM: %llu queues (1 to %u allowed)",
					       (unsigned long long)v, MAX_RINGS);
			fe->nrings = (unsigned)v;
		}
	}
	return transact(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
}

int uvirtio_vhost_frontend_connect(struct uvirtio_vhost_frontend **out,
				   const struct uvirtio_vhost_frontend_config *cfg)
{
	struct uvirtio_vhost_frontend *fe;
	unsigned qsize = cfg->max_queue_size ? cfg->max_queue_size : DEFAULT_QUEUE_SIZE;
	int ret;

	*out = NULL;
	if (!!cfg->socket_path == (cfg->fd >= 0) || qsize > MAX_QUEUE_SIZE ||
	    (qsize & (qsize - 1))) {
		/* Given an fd, connect owns it whatever else is wrong. */
		if (cfg->fd >= 0)
			close(cfg->fd);
		return -EINVAL;
	}
	fe = calloc(1, sizeof(*fe));
	if (!fe) {
		if (cfg->fd >= 0)
			close(cfg->fd);
		return -ENOMEM;
	}
	fe->t.ops = &frontend_ops;
	fe->t.name = "vhost-user";
	fe->sock = fe->memfd = fe->config_fd = fe->watch_fd = fe->stop_fd = -1;
	pthread_mutex_init(&fe->lock, NULL);
	fe->max_queue_size = qsize;
	fe->reply_timeout_ms = cfg->reply_timeout_ms ? cfg->reply_timeout_ms
						     : DEFAULT_REPLY_TIMEOUT_MS;
	fe->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	fe->config_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fe->timer_fd < 0 || fe->config_fd < 0) {
		ret = -errno;
		if (cfg->fd >= 0)
			close(cfg->fd);
		goto fail;
	}
	if (cfg->socket_path) {
		ret = connect_socket(cfg->socket_path, &fe->sock);
		if (ret)
			goto fail;
	} else {
		fe->sock = cfg->fd;
	}
	__atomic_store_n(&fe->connected, true, __ATOMIC_RELAXED);

	ret = make_memory(fe, cfg);
	if (!ret)
		ret = negotiate(fe, cfg->disable_protocol_features);
	if (!ret)
		ret = make_rings(fe);
	if (!ret)
		ret = share_memory(fe);
	if (!ret)
		ret = start_watcher(fe);
	if (ret)
		goto fail;
	*out = fe;
	return 0;
fail:
	if (cfg->error && cfg->error_size) {
		if (fe->error[0])
			snprintf(cfg->error, cfg->error_size, "%s", fe->error);
		else if (cfg->socket_path)
			snprintf(cfg->error, cfg->error_size, "cannot connect to %s: %s",
				 cfg->socket_path, strerror(-ret));
		else
			snprintf(cfg->error, cfg->error_size, "%s", strerror(-ret));
	}
	uvirtio_vhost_frontend_destroy(fe);
	return ret;
}

struct uvirtio_transport *uvirtio_vhost_frontend_transport(struct uvirtio_vhost_frontend *fe)
{
	return &fe->t;
}

uint64_t uvirtio_vhost_frontend_backend_features(const struct uvirtio_vhost_frontend *fe)
{
	return fe->backend_features;
}

uint64_t uvirtio_vhost_frontend_protocol_features(const struct uvirtio_vhost_frontend *fe,
						  uint64_t *offered)
{
	if (offered)
		*offered = fe->protocol_offered;
	return fe->protocol;
}

unsigned uvirtio_vhost_frontend_num_queues(const struct uvirtio_vhost_frontend *fe)
{
	return fe->nrings;
}

bool uvirtio_vhost_frontend_connected(const struct uvirtio_vhost_frontend *fe)
{
	return is_connected(fe);
}

const char *uvirtio_vhost_frontend_error(const struct uvirtio_vhost_frontend *fe)
{
	/* A copy: a queue thread's request may write the line meanwhile. fe
	 * was allocated writable, so dropping const here is sound. */
	struct uvirtio_vhost_frontend *w = (struct uvirtio_vhost_frontend *)fe;

	pthread_mutex_lock(&w->lock);
	memcpy(w->error_copy, w->error, sizeof(w->error_copy));
	pthread_mutex_unlock(&w->lock);
	return w->error_copy;
}

int uvirtio_vhost_frontend_stop_ring(struct uvirtio_vhost_frontend *fe, unsigned index,
				     uint32_t *base)
{
	int ret;

	if (index >= fe->nrings || !fe->rings[index].started)
		return -EINVAL;
	ret = get_vring_base(fe, index, base);
	if (ret)
		return ret;
	fe->rings[index].started = false;
	fe->rings[index].stopped = true;
	return 0;
}

int uvirtio_vhost_frontend_restart_ring(struct uvirtio_vhost_frontend *fe, unsigned index,
					uint32_t base)
{
	int ret;

	if (index >= fe->nrings || !fe->rings[index].stopped)
		return -EINVAL;
	ret = start_ring(fe, index, base);
	if (ret)
		return ret;
	/* Kicks sent while the ring was stopped went to a backend that was
	 * not watching; one more covers every buffer added meanwhile. */
	eventfd_signal(fe->rings[index].kick_fd);
	return 0;
}

/* Replays the driver's config writes, one SET_CONFIG per run of written
 * bytes, as the driver made them. */
static int replay_config(struct uvirtio_vhost_frontend *to, const struct uvirtio_vhost_frontend *fe)
{
	for (unsigned off = 0; off < VHOST_USER_CONFIG_MAX;) {
		struct vhost_user_config c = { .flags = VHOST_USER_CONFIG_WRITABLE };
		unsigned end = off;
		int ret;

		if (!fe->config_written[off]) {
			off++;
			continue;
		}
		while (end < VHOST_USER_CONFIG_MAX && fe->config_written[end])
			end++;
		c.offset = off;
		c.size = end - off;
		memcpy(c.payload, fe->config_shadow + off, c.size);
		ret = transact(to, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + c.size, NULL,
			       0, NULL, 0);
		if (ret)
			return ret;
		off = end;
	}
	return 0;
}

static bool any_config_written(const struct uvirtio_vhost_frontend *fe)
{
	for (unsigned i = 0; i < VHOST_USER_CONFIG_MAX; i++)
		if (fe->config_written[i])
			return true;
	return false;
}

/* Sets the new backend up on @to, a front-end that shares @fe's memory and
 * has only a connection of its own: the same negotiation as connect, then
 * the device as the driver left it (features, status without DRIVER_OK,
 * config writes). The rings are resume's. */
static int move_set_up(struct uvirtio_vhost_frontend *to, struct uvirtio_vhost_frontend *fe,
		       uint64_t disabled)
{
	uint64_t want = fe->sent_features & ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	uint64_t v;
	int ret;

	ret = negotiate(to, disabled);
	if (ret)
		return ret;
	/* The driver negotiated these with the old backend and goes on
	 * using them: a backend without one of them cannot take over. */
	if ((want & ~to->backend_features) ||
	    (protocol_features_negotiated(fe) && !protocol_features_negotiated(to)))
		return set_error(to, -EINVAL,
				 "the new backend does not offer features %#llx that were negotiated",
				 (unsigned long long)(want & ~to->backend_features));
	if (to->nrings < fe->nrings)
		return set_error(to, -EINVAL, "the new backend has %u queues, the device had %u",
				 to->nrings, fe->nrings);
	if (any_config_written(fe) && !has_pf(to, VHOST_USER_PROTOCOL_F_CONFIG))
		return set_error(to, -EINVAL,
				 "the driver wrote config space and the new backend lacks the CONFIG protocol feature");
	ret = share_memory(to);
	if (ret)
		return ret;
	to->nrings = fe->nrings;
	v = fe->sent_features;
	ret = send_u64(to, VHOST_USER_SET_FEATURES, v);
	if (ret)
		return ret;
	if (has_pf(to, VHOST_USER_PROTOCOL_F_STATUS)) {
		v = fe->status & ~(VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_SUSPEND);
		ret = send_u64(to, VHOST_USER_SET_STATUS, v);
		if (ret)
			return ret;
	}
	return replay_config(to, fe);
}

int uvirtio_vhost_frontend_move(struct uvirtio_vhost_frontend *fe,
				const struct uvirtio_vhost_frontend_config *cfg)
{
	struct uvirtio_vhost_frontend *to;
	int ret;

	if (!!cfg->socket_path == (cfg->fd >= 0) ||
	    !__atomic_load_n(&fe->suspended, __ATOMIC_RELAXED)) {
		if (cfg->fd >= 0)
			close(cfg->fd);
		if (cfg->error && cfg->error_size)
			snprintf(cfg->error, cfg->error_size, "%s",
				 !!cfg->socket_path == (cfg->fd >= 0)
					 ? "move: give one of socket_path and fd"
					 : "move: the device is not suspended");
		return -EINVAL;
	}
	/* A second front-end object for the new connection only: the same
	 * request machinery, the same guest memory (the memfd and mapping are
	 * lent, not copied, so the rings and buffers stay where they are). */
	to = calloc(1, sizeof(*to));
	if (!to) {
		if (cfg->fd >= 0)
			close(cfg->fd);
		return -ENOMEM;
	}
	to->sock = to->config_fd = to->watch_fd = to->stop_fd = -1;
	pthread_mutex_init(&to->lock, NULL);
	to->reply_timeout_ms = fe->reply_timeout_ms;
	to->memfd = fe->memfd;
	to->map = fe->map;
	to->mem_size = fe->mem_size;
	to->dma.guest_addr = fe->dma.guest_addr;
	to->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (to->timer_fd < 0) {
		ret = -errno;
		if (cfg->fd >= 0)
			close(cfg->fd);
		goto fail;
	}
	if (cfg->socket_path) {
		ret = connect_socket(cfg->socket_path, &to->sock);
		if (ret) {
			set_error(to, ret, "move: cannot connect to %s: %s", cfg->socket_path,
				  strerror(-ret));
			goto fail;
		}
	} else {
		to->sock = cfg->fd;
	}
	__atomic_store_n(&to->connected, true, __ATOMIC_RELAXED);
	ret = move_set_up(to, fe, cfg->disable_protocol_features);
	if (ret)
		goto fail;

	/* The new connection is good: the old one (and its watcher) goes, and
	 * the new one takes its place. */
	if (fe->watching) {
		eventfd_signal(fe->stop_fd);
		pthread_join(fe->watcher, NULL);
		fe->watching = false;
	}
	close_fd(&fe->watch_fd);
	close_fd(&fe->stop_fd);
	eventfd_drain(fe->config_fd);
	pthread_mutex_lock(&fe->lock);
	close_fd(&fe->sock);
	fe->sock = to->sock;
	to->sock = -1;
	fe->backend_features = to->backend_features;
	fe->protocol_offered = to->protocol_offered;
	fe->protocol = to->protocol;
	fe->error[0] = 0;
	__atomic_store_n(&fe->peer_gone, false, __ATOMIC_RELAXED);
	__atomic_store_n(&fe->connected, true, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&fe->lock);
	ret = start_watcher(fe);
	if (ret) {
		/* Without a watcher a hang-up would go unseen: give it up now. */
		pthread_mutex_lock(&fe->lock);
		give_up(fe, ret, "move: cannot watch the new connection (%s)", strerror(-ret));
		pthread_mutex_unlock(&fe->lock);
	}
	goto out;
fail:
	if (cfg->error && cfg->error_size)
		snprintf(cfg->error, cfg->error_size, "%s",
			 to->error[0] ? to->error : strerror(-ret));
	report(fe, ret, "move: %s", to->error[0] ? to->error : strerror(-ret));
out:
	close_fd(&to->sock);
	close_fd(&to->timer_fd);
	pthread_mutex_destroy(&to->lock);
	free(to);
	return ret;
}

void uvirtio_vhost_frontend_destroy(struct uvirtio_vhost_frontend *fe)
{
	if (!fe)
		return;
	if (fe->watching) {
		eventfd_signal(fe->stop_fd);
		pthread_join(fe->watcher, NULL);
	}
	close_fd(&fe->watch_fd);
	close_fd(&fe->stop_fd);
	close_fd(&fe->sock);
	for (unsigned i = 0; fe->rings && i < fe->nrings; i++) {
		close_fd(&fe->rings[i].kick_fd);
		close_fd(&fe->rings[i].call_fd);
	}
	free(fe->rings);
	if (fe->dma_ready)
		uvirtio_dma_destroy(&fe->dma);
	if (fe->map)
		munmap(fe->map, fe->mem_size);
	close_fd(&fe->memfd);
	close_fd(&fe->config_fd);
	close_fd(&fe->timer_fd);
	pthread_mutex_destroy(&fe->lock);
	free(fe);
}
