// SPDX-License-Identifier: MIT
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhost_msg.h"

_Static_assert(sizeof(struct vhost_user_hdr) == VHOST_USER_HDR_SIZE, "header layout");
_Static_assert(sizeof(struct vhost_user_vring_state) == 8, "vring state layout");
_Static_assert(sizeof(struct vhost_user_vring_addr) == 40, "vring addr layout");
_Static_assert(sizeof(struct vhost_user_inflight) == 24, "inflight layout");
_Static_assert(sizeof(struct vhost_user_mem_region) == 32, "region layout");
_Static_assert(sizeof(struct vhost_user_mem_table) == 8 + 8 * 32, "mem table layout");
_Static_assert(sizeof(struct vhost_user_mem_reg) == 40, "mem reg layout");
_Static_assert(offsetof(struct vhost_user_config, payload) == VHOST_USER_CONFIG_HDR_SIZE,
	       "config layout");

/* Wait until @sock is ready for @events or @cancel_fd is readable. */
static int wait_ready(int sock, short events, int cancel_fd)
{
	struct pollfd p[2] = { { .fd = sock, .events = events }, { .fd = cancel_fd, .events = POLLIN } };

	for (;;) {
		int n = poll(p, cancel_fd >= 0 ? 2 : 1, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (cancel_fd >= 0 && p[1].revents)
			return -ECANCELED;
		if (p[0].revents)
			return 0;
	}
}

/* Moves the fds of every SCM_RIGHTS message in @h into @m. Returns false when
 * they do not fit (those that do not are closed). */
static bool take_fds(struct msghdr *h, struct uvirtio_vhost_msg *m)
{
	bool fit = true;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (m->nfds < VHOST_USER_MAX_FDS) {
				m->fds[m->nfds++] = fd;
			} else {
				close(fd);
				fit = false;
			}
		}
	}
	return fit;
}

/* Reads exactly @len bytes into @buf, collecting fds. @at_boundary: an EOF
 * before the first byte is a clean close. */
static int read_full(int sock, void *buf, size_t len, struct uvirtio_vhost_msg *m,
		     bool at_boundary, int cancel_fd)
{
	/* Room for more fds than allowed, so too many is seen, not truncated. */
	union {
		char buf[CMSG_SPACE(2 * VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	size_t got = 0;

	while (got < len) {
		struct iovec iov = { .iov_base = (char *)buf + got, .iov_len = len - got };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
				    .msg_controllen = sizeof(ctrl.buf) };
		ssize_t n;
		int ret = wait_ready(sock, POLLIN, cancel_fd);

		if (ret)
			return ret;
		n = recvmsg(sock, &h, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		if (!take_fds(&h, m) || (h.msg_flags & MSG_CTRUNC))
			return -EPROTO;
		if (n == 0)
			return at_boundary && got == 0 ? -ECONNRESET : -EPROTO;
		got += (size_t)n;
	}
	return 0;
}

int uvirtio_vhost_msg_recv(int sock, struct uvirtio_vhost_msg *m, int cancel_fd)
{
	int ret;

	m->nfds = 0;
	memset(&m->hdr, 0, sizeof(m->hdr));
	ret = read_full(sock, &m->hdr, sizeof(m->hdr), m, true, cancel_fd);
	if (!ret && (m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		ret = -EPROTO;
	/* The size is read once, here, and bounds the read; a size over the
	 * largest message cannot be skipped without trusting it. */
	if (!ret && m->hdr.size > VHOST_USER_PAYLOAD_MAX)
		ret = -EPROTO;
	if (!ret && m->hdr.size)
		ret = read_full(sock, m->payload.raw, m->hdr.size, m, false, cancel_fd);
	if (ret) {
		uvirtio_vhost_msg_close_fds(m);
		return ret;
	}
	/* Bytes past the payload read as zeros, so a short payload that a
	 * check misses still cannot show stale data. */
	memset(m->payload.raw + m->hdr.size, 0, VHOST_USER_PAYLOAD_MAX - m->hdr.size);
	return 0;
}

/* Writes @m; with @wait false, a socket that cannot take the whole message
 * at once gives -EAGAIN (and may hold its first part). */
static int send_msg(int sock, const struct uvirtio_vhost_msg *m, int cancel_fd, bool wait)
{
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	size_t total = VHOST_USER_HDR_SIZE + (size_t)m->hdr.size, sent = 0;

	if (m->hdr.size > VHOST_USER_PAYLOAD_MAX || m->nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;
	while (sent < total) {
		struct iovec iov[2];
		struct msghdr h = { .msg_iov = iov };
		ssize_t n;

		if (sent < VHOST_USER_HDR_SIZE) {
			iov[0] = (struct iovec){ (char *)&m->hdr + sent, VHOST_USER_HDR_SIZE - sent };
			iov[1] = (struct iovec){ (void *)m->payload.raw, m->hdr.size };
			h.msg_iovlen = 2;
		} else {
			size_t off = sent - VHOST_USER_HDR_SIZE;

			iov[0] = (struct iovec){ (char *)m->payload.raw + off, m->hdr.size - off };
			h.msg_iovlen = 1;
		}
		/* The fds travel with the first byte only. */
		if (sent == 0 && m->nfds) {
			struct cmsghdr *c;

			memset(&ctrl, 0, sizeof(ctrl));
			h.msg_control = ctrl.buf;
			h.msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
			c = CMSG_FIRSTHDR(&h);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
			memcpy(CMSG_DATA(c), m->fds, m->nfds * sizeof(int));
		}
		n = sendmsg(sock, &h, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			int ret;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			if (!wait)
				return -EAGAIN;
			ret = wait_ready(sock, POLLOUT, cancel_fd);
			if (ret)
				return ret;
			continue;
		}
		sent += (size_t)n;
		if (!wait && sent < total)
			return -EAGAIN;
	}
	return 0;
}

int uvirtio_vhost_msg_send(int sock, const struct uvirtio_vhost_msg *m, int cancel_fd)
{
	return send_msg(sock, m, cancel_fd, true);
}

int uvirtio_vhost_msg_send_nowait(int sock, const struct uvirtio_vhost_msg *m)
{
	return send_msg(sock, m, -1, false);
}

/* What a request carries. Sizes in bytes; SIZE_VAR: the handler's rule
 * (checked in uvirtio_vhost_msg_check_request below). */
#define SIZE_VAR UINT32_MAX

struct request_shape {
	const char *name;
	uint32_t size;
	uint8_t min_fds, max_fds;
	bool reply;
};

static const struct request_shape shapes[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = { "GET_FEATURES", 0, 0, 0, true },
	[VHOST_USER_SET_FEATURES] = { "SET_FEATURES", 8, 0, 0, false },
	[VHOST_USER_SET_OWNER] = { "SET_OWNER", 0, 0, 0, false },
	[VHOST_USER_RESET_OWNER] = { "RESET_OWNER", 0, 0, 0, false },
	[VHOST_USER_SET_MEM_TABLE] = { "SET_MEM_TABLE", SIZE_VAR, 0, VHOST_USER_MEM_TABLE_MAX, false },
	[VHOST_USER_SET_VRING_NUM] = { "SET_VRING_NUM", 8, 0, 0, false },
	[VHOST_USER_SET_VRING_ADDR] = { "SET_VRING_ADDR", 40, 0, 0, false },
	[VHOST_USER_SET_VRING_BASE] = { "SET_VRING_BASE", 8, 0, 0, false },
	[VHOST_USER_GET_VRING_BASE] = { "GET_VRING_BASE", 8, 0, 0, true },
	[VHOST_USER_SET_VRING_KICK] = { "SET_VRING_KICK", 8, 0, 1, false },
	[VHOST_USER_SET_VRING_CALL] = { "SET_VRING_CALL", 8, 0, 1, false },
	[VHOST_USER_SET_VRING_ERR] = { "SET_VRING_ERR", 8, 0, 1, false },
	[VHOST_USER_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", 0, 0, 0, true },
	[VHOST_USER_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", 8, 0, 0, false },
	[VHOST_USER_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", 0, 0, 0, true },
	[VHOST_USER_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", 8, 0, 0, false },
	[VHOST_USER_SET_BACKEND_REQ_FD] = { "SET_BACKEND_REQ_FD", 0, 1, 1, false },
	[VHOST_USER_GET_CONFIG] = { "GET_CONFIG", SIZE_VAR, 0, 0, true },
	[VHOST_USER_SET_CONFIG] = { "SET_CONFIG", SIZE_VAR, 0, 0, false },
	[VHOST_USER_RESET_DEVICE] = { "RESET_DEVICE", 0, 0, 0, false },
	[VHOST_USER_GET_MAX_MEM_SLOTS] = { "GET_MAX_MEM_SLOTS", 0, 0, 0, true },
	/* QEMU sends the region's fd with REM_MEM_REG too; it is not needed. */
	[VHOST_USER_ADD_MEM_REG] = { "ADD_MEM_REG", 40, 1, 1, false },
	[VHOST_USER_REM_MEM_REG] = { "REM_MEM_REG", 40, 0, 1, false },
	[VHOST_USER_NET_SET_MTU] = { "NET_SET_MTU", 8, 0, 0, false },
	[VHOST_USER_SET_STATUS] = { "SET_STATUS", 8, 0, 0, false },
	[VHOST_USER_GET_STATUS] = { "GET_STATUS", 0, 0, 0, true },
	/* vhost-user.rst: QEMU waits for SET_LOG_BASE's reply, REPLY_ACK or
	 * not. SET_LOG_FD has no payload (QEMU sends none; DPDK takes any). */
	[VHOST_USER_SET_LOG_BASE] = { "SET_LOG_BASE", 16, 1, 1, true },
	[VHOST_USER_SET_LOG_FD] = { "SET_LOG_FD", 0, 1, 1, false },
	/* The reply to GET_INFLIGHT_FD carries the region's fd. */
	[VHOST_USER_GET_INFLIGHT_FD] = { "GET_INFLIGHT_FD", 24, 0, 0, true },
	[VHOST_USER_SET_INFLIGHT_FD] = { "SET_INFLIGHT_FD", 24, 1, 1, false },
};

/* Requests this module knows only by name: a backend treats them as unknown. */
static const char *const other_names[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_SEND_RARP] = "SEND_RARP",
	[VHOST_USER_NET_SET_MTU] = "NET_SET_MTU",
	[VHOST_USER_IOTLB_MSG] = "IOTLB_MSG",
	[VHOST_USER_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
	[VHOST_USER_CREATE_CRYPTO_SESSION] = "CREATE_CRYPTO_SESSION",
	[VHOST_USER_CLOSE_CRYPTO_SESSION] = "CLOSE_CRYPTO_SESSION",
	[VHOST_USER_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
	[VHOST_USER_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
	[VHOST_USER_POSTCOPY_END] = "POSTCOPY_END",
	[VHOST_USER_GPU_SET_SOCKET] = "GPU_SET_SOCKET",
	[VHOST_USER_VRING_KICK] = "VRING_KICK",
};

static const struct request_shape *shape_of(uint32_t request)
{
	if (request >= VHOST_USER_REQUEST_MAX || !shapes[request].name)
		return NULL;
	return &shapes[request];
}

int uvirtio_vhost_msg_check_request(const struct uvirtio_vhost_msg *m)
{
	const struct request_shape *s = shape_of(m->hdr.request);
	unsigned min_fds, max_fds;
	uint32_t size = m->hdr.size;

	/* vhost-user.rst: the reply flag is for replies; a request that has
	 * it set is not one a front-end sends. */
	if (m->hdr.flags & VHOST_USER_REPLY_MASK)
		return -EPROTO;
	if (!s)
		return -ENOSYS;
	min_fds = s->min_fds;
	max_fds = s->max_fds;
	switch (m->hdr.request) {
	case VHOST_USER_SET_MEM_TABLE: {
		/* vhost-user.rst: nregions, padding, then exactly nregions
		 * regions, each with its fd. */
		uint32_t n;

		if (size < 8)
			return -EBADMSG;
		n = m->payload.mem_table.nregions;
		if (n > VHOST_USER_MEM_TABLE_MAX ||
		    size != 8 + n * (uint32_t)sizeof(struct vhost_user_mem_region))
			return -EBADMSG;
		min_fds = max_fds = n;
		break;
	}
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		/* vhost-user.rst: at most 256 bytes of config after the
		 * 12-byte config header. */
		if (size < VHOST_USER_CONFIG_HDR_SIZE ||
		    m->payload.config.size > VHOST_USER_CONFIG_MAX ||
		    size != VHOST_USER_CONFIG_HDR_SIZE + m->payload.config.size)
			return -EBADMSG;
		break;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		if (size != s->size)
			return -EBADMSG;
		/* vhost-user.rst: bit 8 set means no fd is attached. */
		min_fds = max_fds = (m->payload.u64 & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
		break;
	default:
		if (size != s->size)
			return -EBADMSG;
		break;
	}
	if (m->nfds < min_fds || m->nfds > max_fds)
		return -EBADF;
	return 0;
}

int uvirtio_vhost_msg_check_reply(const struct uvirtio_vhost_msg *m, uint32_t request)
{
	/* No request this library sends gets fds back, but for
	 * GET_INFLIGHT_FD, whose reply carries exactly one: the region's. */
	if (request == VHOST_USER_GET_INFLIGHT_FD ? m->nfds != 1 : m->nfds != 0)
		return -EBADF;
	if (m->hdr.request != request)
		return -ENOMSG;
	/* The version was checked on receipt. */
	if (!(m->hdr.flags & VHOST_USER_REPLY_MASK))
		return -EBADMSG;
	return 0;
}

bool uvirtio_vhost_msg_has_reply(uint32_t request)
{
	const struct request_shape *s = shape_of(request);

	return s && s->reply;
}

const char *uvirtio_vhost_msg_request_name(uint32_t request)
{
	const struct request_shape *s = shape_of(request);

	if (s)
		return s->name;
	if (request < VHOST_USER_REQUEST_MAX && other_names[request])
		return other_names[request];
	return "UNKNOWN";
}

void uvirtio_vhost_msg_close_fds(struct uvirtio_vhost_msg *m)
{
	for (unsigned i = 0; i < m->nfds && i < VHOST_USER_MAX_FDS; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}
