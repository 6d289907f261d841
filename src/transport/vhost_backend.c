// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend transport. Each front-end request is checked
 * (uvirtio_vhost_msg_check_request() for its shape, the handlers for its
 * values), then turned into device core calls. This file has the
 * connection loop, the request dispatch and the public functions; the
 * memory table, ring state and negotiation have a file each (see
 * vhost_backend_priv.h).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../log/log_priv.h"
#include "uvirtio/vhost_backend.h"
#include "vhost_backend_priv.h"
#include "vhost_msg.h"

/* Logging: one line per problem, through the library's log sink. */

void vb_log(int level, const char *fmt, ...)
{
	char line[280];
	va_list ap;

	if (!uvirtio_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	uvirtio_log(level, "vhost-user: %s", line);
}

/* A request fails: keep the reason for the one line handle_msg logs. */
int vb_fail(struct uvirtio_vhost_backend *vb, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vb->why, sizeof(vb->why), fmt, ap);
	va_end(ap);
	return err;
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
		vb_count(&vb->st_errors);
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
		reply_u64(vb, vb_offered_features(vb));
		return 0;
	case VHOST_USER_SET_FEATURES:
		return vb_set_features(vb, v);
	case VHOST_USER_SET_OWNER:
		vb->owner = true;
		return 0;
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_RESET_DEVICE:
		vb_reset_device(vb);
		return 0;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		reply_u64(vb, vb_offered_protocol_features(vb));
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		return vb_set_protocol_features(vb, v);
	case VHOST_USER_GET_QUEUE_NUM:
		/* QEMU's vhost-user net and DPDK count queue pairs here (QEMU
		 * refuses a queues= above it); every other device, rings. */
		reply_u64(vb, vb_is_net(vb) ? vb->nrings / 2 : vb->nrings);
		return 0;
	case VHOST_USER_NET_SET_MTU:
		return vb_net_set_mtu(vb, v);
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		reply_u64(vb, UVIRTIO_MEM_MAX_REGIONS);
		return 0;
	case VHOST_USER_SET_MEM_TABLE:
		return vb_set_mem_table(vb, m);
	case VHOST_USER_ADD_MEM_REG:
		return vb_add_mem_reg(vb, m);
	case VHOST_USER_REM_MEM_REG:
		return vb_rem_mem_reg(vb, m);
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_ADDR:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
		return vb_vring(vb, m);
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		return vb_vring_fd(vb, m);
	case VHOST_USER_SET_BACKEND_REQ_FD: {
		int old;

		pthread_mutex_lock(&vb->backend_lock);
		old = vb->backend_fd;
		vb->backend_fd = m->fds[0];
		pthread_mutex_unlock(&vb->backend_lock);
		m->nfds = 0;
		vb_close_fd(&old);
		return 0;
	}
	case VHOST_USER_GET_CONFIG:
		return vb_get_config(vb, m);
	case VHOST_USER_SET_CONFIG:
		return vb_set_config(vb, m);
	case VHOST_USER_SET_STATUS:
		return vb_set_status(vb, v);
	case VHOST_USER_GET_STATUS:
		reply_u64(vb, uvirtio_device_get_status(vb->dev));
		return 0;
	case VHOST_USER_SET_LOG_BASE:
		return vb_set_log_base(vb, m);
	case VHOST_USER_SET_LOG_FD:
		return vb_set_log_fd(vb, m);
	case VHOST_USER_GET_INFLIGHT_FD:
		return vb_get_inflight_fd(vb, m);
	case VHOST_USER_SET_INFLIGHT_FD:
		return vb_set_inflight_fd(vb, m);
	}
	return vb_fail(vb, -ENOSYS, "not handled");
}

static int send_reply(struct uvirtio_vhost_backend *vb, uint32_t request)
{
	int ret;

	vb->reply.hdr.request = request;
	vb->reply.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	vb->reply.nfds = 0;
	if (vb->reply_fd >= 0) {
		vb->reply.fds[0] = vb->reply_fd;
		vb->reply.nfds = 1;
	}
	ret = vb->conn_fd < 0 ? 0 : uvirtio_vhost_msg_send(vb->conn_fd, &vb->reply, vb->stop_fd);
	/* The front-end has its own copy now (or none, if the send failed). */
	vb_close_fd(&vb->reply_fd);
	vb->reply.nfds = 0;
	if (vb->conn_fd < 0)
		return 0;
	if (ret && ret != -ECANCELED)
		vb_log(UVIRTIO_LOG_ERR, "%s: cannot send the reply: %s", uvirtio_vhost_msg_request_name(request),
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

	vb_count(&vb->st_messages);
	vb->why[0] = 0;
	memset(&vb->reply.hdr, 0, sizeof(vb->reply.hdr));
	ret = uvirtio_vhost_msg_check_request(m);
	if (ret == -EPROTO) {
		uvirtio_vhost_msg_close_fds(m);
		vb_count(&vb->st_errors);
		vb_count(&vb->st_disconnects_on_error);
		vb_log(UVIRTIO_LOG_ERR, "request %u has the REPLY flag set: disconnecting", req);
		return -EPROTO;
	}
	if (ret == -ENOSYS) {
		/* QEMU probes: an unknown request is not an error unless the
		 * front-end waits for an answer. */
		uvirtio_vhost_msg_close_fds(m);
		vb_log(UVIRTIO_LOG_INFO, "ignoring request %u (%s): not supported", req, name);
		if (!need_reply)
			return 0;
		vb_count(&vb->st_errors);
		reply_u64(vb, 1);
		return send_reply(vb, req);
	}
	if (ret == -EBADMSG)
		ret = vb_fail(vb, ret, "payload of %u bytes is malformed", m->hdr.size);
	else if (ret == -EBADF)
		ret = vb_fail(vb, ret, "%u fds is the wrong number", m->nfds);
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
	vb_count(&vb->st_errors);
	/* QEMU waits for SET_LOG_BASE's reply whatever happened; it fails
	 * the migration on a non-zero one. */
	if (req == VHOST_USER_SET_LOG_BASE) {
		vb_log(UVIRTIO_LOG_WARN, "%s: %s; replied failure", name, vb->why);
		reply_u64(vb, 1);
		return send_reply(vb, req);
	}
	if (req == VHOST_USER_GET_CONFIG && vb->reply.hdr.size) {
		vb_log(UVIRTIO_LOG_WARN, "%s: %s; replied failure", name, vb->why);
		return send_reply(vb, req);
	}
	if (!has_reply && need_reply) {
		vb_log(UVIRTIO_LOG_WARN, "%s: %s; replied failure", name, vb->why);
		reply_u64(vb, 1);
		return send_reply(vb, req);
	}
	/* The front-end cannot be told (or waits for an answer there is none
	 * for): going on would leave it believing what is not so. */
	vb_count(&vb->st_disconnects_on_error);
	vb_log(UVIRTIO_LOG_ERR, "%s: %s; disconnecting", name, vb->why);
	return ret;
}

void uvirtio_vhost_backend_end_connection(struct uvirtio_vhost_backend *vb)
{
	int backend_fd;

	if (vb->dev) {
		vb_halt_all(vb);
		uvirtio_device_reset(vb->dev);
	}
	for (unsigned i = 0; i < vb->nrings; i++)
		vb_forget_ring(&vb->rings[i]);
	vb_log_end(vb);
	vb_inflight_end(vb);
	pthread_mutex_lock(&vb->backend_lock);
	backend_fd = vb->backend_fd;
	vb->backend_fd = -1;
	vb->config_msgs = false;
	pthread_mutex_unlock(&vb->backend_lock);
	vb_close_fd(&backend_fd);
	vb_unmap_all(vb);
	vb->features = 0;
	vb->features_set = false;
	vb->protocol_features = 0;
	vb->owner = false;
	vb->fe_status = 0;
	vb_close_fd(&vb->conn_fd);
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
	vb_count(&vb->st_connections);
	__atomic_store_n(&vb->st_connected, true, __ATOMIC_RELAXED);
	if (!p || !ring_of) {
		vb_log(UVIRTIO_LOG_ERR, "out of memory");
		goto out;
	}
	for (;;) {
		unsigned n = 3;
		int ret;

		p[0] = (struct pollfd){ .fd = vb->stop_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = vb->conn_fd, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = vb->resched_fd, .events = POLLIN };
		if (!uvirtio_device_ops(dev)->takes_kick_fds) {
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
			vb_log(UVIRTIO_LOG_ERR, "poll: %s", strerror(errno));
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
			vb_count(&vb->st_errors);
			vb_count(&vb->st_disconnects_on_error);
			vb_log(UVIRTIO_LOG_ERR, "bad message from the front-end (%s): disconnecting", strerror(-ret));
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
	vb->listen_fd = vb->conn_fd = vb->backend_fd = vb->log_fd = vb->reply_fd = -1;
	vb->inherited_fd = cfg->fd;
	uvirtio_mem_init(&vb->mem);
	pthread_mutex_init(&vb->backend_lock, NULL);
	vb->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vb->resched_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vb->stop_fd < 0 || vb->resched_fd < 0) {
		int err = -errno;

		vb_close_fd(&vb->stop_fd);
		vb_close_fd(&vb->resched_fd);
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
		vb_forget_ring(&vb->rings[i]);
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
	rings = calloc(uvirtio_device_num_queues(dev), sizeof(*rings));
	if (!rings)
		return -ENOMEM;
	if (vb->dev)
		uvirtio_vhost_backend_end_connection(vb);
	free_rings(vb);
	for (unsigned i = 0; i < uvirtio_device_num_queues(dev); i++) {
		rings[i].kick_fd = rings[i].err_fd = rings[i].call_fd = -1;
		pthread_mutex_init(&rings[i].call_lock, NULL);
	}
	vb->rings = rings;
	vb->nrings = uvirtio_device_num_queues(dev);
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
			vb_log(UVIRTIO_LOG_ERR, "accept: %s", strerror(errno));
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
			vb_log(UVIRTIO_LOG_ERR, "cannot connect to %s: %s", vb->path, strerror(-ret));
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

int uvirtio_vhost_backend_set_state_file(struct uvirtio_vhost_backend *vb, const char *path)
{
	char *copy = NULL;

	if (__atomic_load_n(&vb->serving, __ATOMIC_ACQUIRE))
		return -EBUSY;
	if (path && !(copy = strdup(path)))
		return -ENOMEM;
	free(vb->state_path);
	vb->state_path = copy;
	return 0;
}

void uvirtio_vhost_backend_destroy(struct uvirtio_vhost_backend *vb)
{
	if (!vb)
		return;
	uvirtio_vhost_backend_end_connection(vb);
	free_rings(vb);
	if (vb->created_path)
		unlink(vb->path);
	vb_close_fd(&vb->listen_fd);
	vb_close_fd(&vb->inherited_fd);
	vb_close_fd(&vb->stop_fd);
	vb_close_fd(&vb->resched_fd);
	pthread_mutex_destroy(&vb->backend_lock);
	free(vb->path);
	free(vb->state_path);
	free(vb);
}
