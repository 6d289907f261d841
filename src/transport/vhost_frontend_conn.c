// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end's side of the socket: one request and its reply
 * at a time (under fe->lock), with a time limit on each; the error line; the
 * watcher thread that sees the backend hang up between requests.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include "../core/eventfd.h"

#include "../log/log_priv.h"
#include "vhost_frontend_priv.h"

/* Called with @fe->lock held, or from connect before any other thread runs. */
int vf_set_error(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fe->error, sizeof(fe->error), fmt, ap);
	va_end(ap);
	uvirtio_log(UVIRTIO_LOG_DEBUG, "vhost-user front-end: %s", fe->error);
	return err;
}

/* set_error for a lifecycle call outside a request: a queue thread's
 * request may be writing the line at the same time. */
int vf_report(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fe->lock);
	va_start(ap, fmt);
	vsnprintf(fe->error, sizeof(fe->error), fmt, ap);
	va_end(ap);
	uvirtio_log(UVIRTIO_LOG_DEBUG, "vhost-user front-end: %s", fe->error);
	pthread_mutex_unlock(&fe->lock);
	return err;
}

/* The backend broke the protocol or went away: nothing it sends can be
 * trusted to line up with our requests any more. Called with @fe->lock held
 * (or from connect), while connected: the first reason is the one kept. */
int vf_give_up(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fe->error, sizeof(fe->error), fmt, ap);
	va_end(ap);
	uvirtio_log(UVIRTIO_LOG_DEBUG, "vhost-user front-end: %s", fe->error);
	/* A lost connection may be reconnected (the watcher does); one the
	 * backend broke the protocol on, or that timed out, is not. */
	if (err != -ENOTCONN || !fe->reconnect)
		__atomic_store_n(&fe->dead, true, __ATOMIC_RELEASE);
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
		return vf_give_up(fe, -EPROTO, "%s: the backend sent a message nobody asked for", name);
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		return vf_give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
	return 0;
}

/*
 * Sends @req with @size payload bytes from @payload and @nfds fds; when
 * @reply is not NULL waits for a reply of exactly @reply_size bytes into it.
 * Requests without a reply of their own get one when REPLY_ACK is in use,
 * and a non-zero ack is the backend's refusal.
 */
int vf_transact_fd_locked(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
			  uint32_t size, const int *fds, unsigned nfds, void *reply,
			  uint32_t reply_size, int *reply_fd)
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
			return vf_give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
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
		ret = vf_give_up(fe, -ETIMEDOUT, "%s: the backend did not read it in %d ms", name,
			      timeout);
	else if (ret == -EPIPE || ret == -ECONNRESET)
		ret = vf_give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
	else if (ret)
		ret = vf_give_up(fe, ret, "%s: cannot send: %s", name, strerror(-ret));
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
		return vf_give_up(fe, -ETIMEDOUT, "%s: no reply from the backend in %d ms", name,
			       timeout);
	if (ret == -ECONNRESET)
		return vf_give_up(fe, -ENOTCONN, "%s: the backend closed the connection", name);
	if (ret == -EPROTO)
		return vf_give_up(fe, -EPROTO, "%s: malformed reply (cut short, oversized or too many fds)",
			       name);
	if (ret)
		return vf_give_up(fe, ret, "%s: cannot receive the reply: %s", name, strerror(-ret));
	/* Every fd that came is closed below on every error: only a reply
	 * that passes every check hands its one fd (GET_INFLIGHT_FD's) on. */
	ret = uvirtio_vhost_msg_check_reply(&m, req);
	if (!ret && m.nfds && !reply_fd)
		ret = -EBADF; /* a caller that takes no fd */
	if (ret == -EBADF) {
		unsigned n = m.nfds;

		uvirtio_vhost_msg_close_fds(&m);
		return vf_give_up(fe, -EPROTO, "%s: reply carries %u fds, expected %u", name, n,
				  req == VHOST_USER_GET_INFLIGHT_FD ? 1u : 0u);
	}
	if (ret) {
		uvirtio_vhost_msg_close_fds(&m);
		if (ret == -ENOMSG)
			return vf_give_up(fe, -EPROTO, "%s: reply is for request %u (%s)", name,
					  m.hdr.request, uvirtio_vhost_msg_request_name(m.hdr.request));
		return vf_give_up(fe, -EPROTO, "%s: reply flags %#x lack version 1 or the reply bit",
			       name, m.hdr.flags);
	}
	/* libvhost-user answers a GET_CONFIG it cannot serve with an empty
	 * payload: a refusal, not a broken stream. */
	if (req == VHOST_USER_GET_CONFIG && m.hdr.size == 0)
		return vf_set_error(fe, -EIO, "%s: the backend refused (empty reply)", name);
	if (m.hdr.size != reply_size) {
		uvirtio_vhost_msg_close_fds(&m);
		return vf_give_up(fe, -EPROTO, "%s: reply of %u bytes, expected %u", name, m.hdr.size,
			       reply_size);
	}
	memcpy(reply, m.payload.raw, reply_size);
	if (reply_fd) {
		*reply_fd = m.nfds ? m.fds[0] : -1;
		m.nfds = 0;
	}
	if (want_ack && ack)
		return vf_set_error(fe, -EIO, "%s: the backend refused (ack %#llx)", name,
				 (unsigned long long)ack);
	return 0;
}

int vf_transact_locked(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
		       uint32_t size, const int *fds, unsigned nfds, void *reply,
		       uint32_t reply_size)
{
	return vf_transact_fd_locked(fe, req, payload, size, fds, nfds, reply, reply_size, NULL);
}

int vf_transact(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
		    uint32_t size, const int *fds, unsigned nfds, void *reply, uint32_t reply_size)
{
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_transact_locked(fe, req, payload, size, fds, nfds, reply, reply_size);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

int vf_send_u64(struct uvirtio_vhost_frontend *fe, uint32_t req, uint64_t v)
{
	return vf_transact(fe, req, &v, sizeof(v), NULL, 0, NULL, 0);
}

int vf_get_u64(struct uvirtio_vhost_frontend *fe, uint32_t req, uint64_t *v)
{
	return vf_transact(fe, req, NULL, 0, NULL, 0, v, sizeof(*v));
}

int vf_send_state(struct uvirtio_vhost_frontend *fe, uint32_t req, unsigned index,
		      uint32_t num)
{
	struct vhost_user_vring_state s = { .index = index, .num = num };

	return vf_transact(fe, req, &s, sizeof(s), NULL, 0, NULL, 0);
}

int vf_send_vring_fd(struct uvirtio_vhost_frontend *fe, uint32_t req, unsigned index, int fd)
{
	uint64_t v = index;

	return vf_transact(fe, req, &v, sizeof(v), &fd, 1, NULL, 0);
}

/* Set-up. */

static void *watcher_thread(void *arg)
{
	struct uvirtio_vhost_frontend *fe = arg;

	for (;;) {
		/* POLLRDHUP, not POLLIN: a reply waiting to be read is not an
		 * end. Set up each time: a reconnect replaces watch_fd. */
		struct pollfd p[2] = { { .fd = fe->watch_fd, .events = POLLRDHUP },
				       { .fd = fe->stop_fd, .events = POLLIN } };
		int n = poll(p, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[1].revents)
			return NULL;
		if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
			/* A lost connection (not one given up for a broken
			 * protocol) is reconnected when the config asks. */
			if (fe->reconnect && !__atomic_load_n(&fe->dead, __ATOMIC_ACQUIRE)) {
				int ret = vf_reconnect(fe);

				if (ret == 0)
					continue;
				if (ret == -ECANCELED)
					return NULL;
			}
			__atomic_store_n(&fe->dead, true, __ATOMIC_RELEASE);
			__atomic_store_n(&fe->peer_gone, true, __ATOMIC_RELEASE);
			eventfd_signal(fe->config_fd);
			return NULL;
		}
	}
}

int vf_start_watcher(struct uvirtio_vhost_frontend *fe)
{
	fe->watch_fd = fcntl(fe->sock, F_DUPFD_CLOEXEC, 0);
	fe->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fe->watch_fd < 0 || fe->stop_fd < 0)
		return vf_set_error(fe, -errno, "watcher: %s", strerror(errno));
	if (pthread_create(&fe->watcher, NULL, watcher_thread, fe))
		return vf_set_error(fe, -EAGAIN, "watcher: cannot start a thread");
	fe->watching = true;
	return 0;
}

int vf_connect_socket(const char *path, int *out)
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
