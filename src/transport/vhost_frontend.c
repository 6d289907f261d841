// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end: uvirtio's driver side speaking to a backend the
 * way QEMU does for a guest. See include/uvirtio/vhost_frontend.h for the
 * mapping of transport operations onto requests. This file has the
 * transport ops table and the public functions; the rest is split by
 * concern (see vhost_frontend_priv.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include "../core/eventfd.h"
#include "uvirtio/dma.h"
#include "uvirtio/vhost_frontend.h"
#include "uvirtio/virtio_spec.h"
#include "vhost_frontend_priv.h"
#include "vhost_msg.h"

/* Transport operations. */

static struct uvirtio_dma *vf_dma(struct uvirtio_transport *t)
{
	return &to_fe(t)->dma;
}

/* The lifecycle operations hold the lock throughout, so a reconnect (the
 * watcher's replay, under the same lock) sees the device's state whole, and
 * they wait for it to end. */
static int locked_set_features(struct uvirtio_transport *t, uint64_t features)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_set_features(t, features);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static int locked_set_status(struct uvirtio_transport *t, uint8_t status)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_set_status(t, status);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static int locked_reset(struct uvirtio_transport *t)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_reset(t);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static int locked_set_config(struct uvirtio_transport *t, unsigned offset, const void *buf,
			     unsigned len)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_set_config(t, offset, buf, len);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static int locked_queue_enable(struct uvirtio_transport *t, unsigned index,
			       const struct uvirtio_queue_layout *layout)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_queue_enable(t, index, layout);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static int locked_queue_reset(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_vhost_frontend *fe = to_fe(t);
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_queue_reset(t, index);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

static const struct uvirtio_transport_ops frontend_ops = {
	.get_features = vf_get_features,
	.set_features = locked_set_features,
	.get_status = vf_get_status,
	.set_status = locked_set_status,
	.reset = locked_reset,
	.get_config = vf_get_config,
	.set_config = locked_set_config,
	.config_generation = vf_config_generation,
	.queue_max_size = vf_queue_max_size,
	.queue_enable = locked_queue_enable,
	.queue_reset = locked_queue_reset,
	.notify = vf_notify,
	.event_fd = vf_event_fd,
	.dma = vf_dma,
};

/* Recursive: see the lock's comment in vhost_frontend_priv.h. */
static void init_lock(pthread_mutex_t *lock)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(lock, &a);
	pthread_mutexattr_destroy(&a);
}

int uvirtio_vhost_frontend_connect(struct uvirtio_vhost_frontend **out,
				   const struct uvirtio_vhost_frontend_config *cfg)
{
	struct uvirtio_vhost_frontend *fe;
	unsigned qsize = cfg->max_queue_size ? cfg->max_queue_size : DEFAULT_QUEUE_SIZE;
	int ret;

	*out = NULL;
	if (!!cfg->socket_path == (cfg->fd >= 0) || qsize > MAX_QUEUE_SIZE ||
	    (qsize & (qsize - 1)) || (cfg->reconnect && !cfg->socket_path) ||
	    cfg->reconnect_interval_ms < 0 || cfg->reconnect_timeout_ms < 0) {
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
	fe->sock = fe->memfd = fe->config_fd = fe->watch_fd = fe->stop_fd = fe->log_fd = -1;
	fe->inflight_fd = fe->timer_fd = -1;
	init_lock(&fe->lock);
	fe->max_queue_size = qsize;
	fe->reconnect = cfg->reconnect;
	fe->reconnect_interval_ms = cfg->reconnect_interval_ms ? cfg->reconnect_interval_ms
							       : DEFAULT_RECONNECT_INTERVAL_MS;
	fe->reconnect_timeout_ms = cfg->reconnect_timeout_ms ? cfg->reconnect_timeout_ms
							     : DEFAULT_RECONNECT_TIMEOUT_MS;
	fe->disabled_protocol_features = cfg->disable_protocol_features;
	if (cfg->reconnect) {
		fe->socket_path = strdup(cfg->socket_path);
		if (!fe->socket_path) {
			ret = -ENOMEM;
			goto fail;
		}
	}
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
		ret = vf_connect_socket(cfg->socket_path, &fe->sock);
		if (ret)
			goto fail;
	} else {
		fe->sock = cfg->fd;
	}
	__atomic_store_n(&fe->connected, true, __ATOMIC_RELAXED);

	ret = vf_make_memory(fe, cfg);
	if (!ret)
		ret = vf_negotiate(fe, cfg->disable_protocol_features);
	if (!ret) {
		fe->nrings = fe->backend_rings;
		ret = vf_make_rings(fe);
	}
	if (!ret)
		ret = vf_share_memory(fe);
	if (!ret)
		ret = vf_start_watcher(fe);
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

bool uvirtio_vhost_frontend_ring_needs_resubmit(const struct uvirtio_vhost_frontend *fe,
						unsigned index)
{
	return index < fe->nrings && __atomic_load_n(&fe->rings[index].needs_resubmit, __ATOMIC_ACQUIRE);
}

unsigned uvirtio_vhost_frontend_reconnects(const struct uvirtio_vhost_frontend *fe)
{
	return __atomic_load_n(&fe->reconnects, __ATOMIC_ACQUIRE);
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

	pthread_mutex_lock(&fe->lock);
	if (index >= fe->nrings || !fe->rings[index].started)
		ret = -EINVAL;
	else
		ret = vf_get_vring_base(fe, index, base);
	if (!ret) {
		fe->rings[index].started = false;
		fe->rings[index].stopped = true;
	}
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

int uvirtio_vhost_frontend_restart_ring(struct uvirtio_vhost_frontend *fe, unsigned index,
					uint32_t base)
{
	int ret;

	pthread_mutex_lock(&fe->lock);
	if (index >= fe->nrings || !fe->rings[index].stopped)
		ret = -EINVAL;
	else
		ret = vf_start_ring(fe, index, base);
	/* Kicks sent while the ring was stopped went to a backend that was
	 * not watching; one more covers every buffer added meanwhile. */
	if (!ret)
		eventfd_signal(fe->rings[index].kick_fd);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

/* Replays the driver's config writes, one SET_CONFIG per run of written
 * bytes, as the driver made them. */
int vf_replay_config(struct uvirtio_vhost_frontend *to, const struct uvirtio_vhost_frontend *fe)
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
		ret = vf_transact(to, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + c.size, NULL,
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

	ret = vf_negotiate(to, disabled);
	if (ret)
		return ret;
	/* The driver negotiated these with the old backend and goes on
	 * using them: a backend without one of them cannot take over. */
	if ((want & ~to->backend_features) ||
	    (protocol_features_negotiated(fe) && !protocol_features_negotiated(to)))
		return vf_set_error(to, -EINVAL,
				 "the new backend does not offer features %#llx that were negotiated",
				 (unsigned long long)(want & ~to->backend_features));
	if (to->backend_rings < fe->nrings)
		return vf_set_error(to, -EINVAL, "the new backend has %u queues, the device had %u",
				 to->backend_rings, fe->nrings);
	if (any_config_written(fe) && !has_pf(to, VHOST_USER_PROTOCOL_F_CONFIG))
		return vf_set_error(to, -EINVAL,
				 "the driver wrote config space and the new backend lacks the CONFIG protocol feature");
	ret = vf_share_memory(to);
	if (ret)
		return ret;
	to->nrings = fe->nrings;
	v = fe->sent_features;
	ret = vf_send_u64(to, VHOST_USER_SET_FEATURES, v);
	if (ret)
		return ret;
	if (has_pf(to, VHOST_USER_PROTOCOL_F_STATUS)) {
		v = fe->status & ~(VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_SUSPEND);
		ret = vf_send_u64(to, VHOST_USER_SET_STATUS, v);
		if (ret)
			return ret;
	}
	return vf_replay_config(to, fe);
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
	to->sock = to->config_fd = to->watch_fd = to->stop_fd = to->log_fd = to->inflight_fd = -1;
	pthread_mutex_init(&to->lock, NULL);
	to->reply_timeout_ms = fe->reply_timeout_ms;
	to->memfd = fe->memfd;
	to->map = fe->map;
	to->mem_size = fe->mem_size;
	to->mem_guest_addr = fe->mem_guest_addr;
	to->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (to->timer_fd < 0) {
		ret = -errno;
		if (cfg->fd >= 0)
			close(cfg->fd);
		goto fail;
	}
	if (cfg->socket_path) {
		ret = vf_connect_socket(cfg->socket_path, &to->sock);
		if (ret) {
			vf_set_error(to, ret, "move: cannot connect to %s: %s", cfg->socket_path,
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
	/* A later reconnect goes to the backend the device moved to. */
	if (fe->reconnect && cfg->socket_path) {
		char *path = strdup(cfg->socket_path);

		if (path) {
			free(fe->socket_path);
			fe->socket_path = path;
		}
	}
	__atomic_store_n(&fe->peer_gone, false, __ATOMIC_RELAXED);
	__atomic_store_n(&fe->connected, true, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&fe->lock);
	ret = vf_start_watcher(fe);
	if (ret) {
		/* Without a watcher a hang-up would go unseen: give it up now. */
		pthread_mutex_lock(&fe->lock);
		vf_give_up(fe, ret, "move: cannot watch the new connection (%s)", strerror(-ret));
		pthread_mutex_unlock(&fe->lock);
	}
	/* Logging: the new backend gets a log of its own (the old one's bits
	 * moved into it); SET_FEATURES above already carried LOG_ALL. */
	if (!ret && fe->logging)
		ret = vf_make_log(fe);
	goto out;
fail:
	if (cfg->error && cfg->error_size)
		snprintf(cfg->error, cfg->error_size, "%s",
			 to->error[0] ? to->error : strerror(-ret));
	vf_report(fe, ret, "move: %s", to->error[0] ? to->error : strerror(-ret));
out:
	close_fd(&to->sock);
	close_fd(&to->timer_fd);
	pthread_mutex_destroy(&to->lock);
	free(to);
	return ret;
}

/* What QEMU does when migration starts and ends (vhost_dev_set_log):
 * SET_FEATURES with or without VHOST_F_LOG_ALL, then each started ring's
 * addresses again with or without the LOG flag, the rings running. */
static int send_log_state(struct uvirtio_vhost_frontend *fe)
{
	int ret = 0;

	if (fe->sent_features) {
		uint64_t v = fe->logging ? fe->sent_features | (1ull << VHOST_F_LOG_ALL)
					 : fe->sent_features & ~(1ull << VHOST_F_LOG_ALL);

		ret = vf_send_u64(fe, VHOST_USER_SET_FEATURES, v);
		if (ret)
			return ret;
		fe->sent_features = v;
	}
	for (unsigned i = 0; i < fe->nrings && !ret; i++)
		if (fe->rings[i].started)
			ret = vf_send_vring_addr(fe, i);
	return ret;
}

static int set_dirty_log(struct uvirtio_vhost_frontend *fe, bool on)
{
	int ret;

	if (on == fe->logging)
		return 0;
	if (on && !fe->log_map) {
		ret = vf_make_log(fe);
		if (ret)
			return ret;
	}
	fe->logging = on;
	ret = send_log_state(fe);
	if (ret)
		fe->logging = !on;
	return ret;
}

int uvirtio_vhost_frontend_set_dirty_log(struct uvirtio_vhost_frontend *fe, bool on)
{
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = set_dirty_log(fe, on);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

int uvirtio_vhost_frontend_replace_dirty_log(struct uvirtio_vhost_frontend *fe)
{
	int ret;

	pthread_mutex_lock(&fe->lock);
	ret = fe->log_map ? vf_make_log(fe) : vf_report(fe, -EINVAL, "dirty log: none to replace");
	pthread_mutex_unlock(&fe->lock);
	return ret;
}

uint8_t *uvirtio_vhost_frontend_dirty_log(struct uvirtio_vhost_frontend *fe, size_t *size)
{
	if (size)
		*size = fe->log_size;
	return fe->log_map;
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
	vf_free_log(fe);
	close_fd(&fe->inflight_fd);
	free(fe->socket_path);
	pthread_mutex_destroy(&fe->lock);
	free(fe);
}
