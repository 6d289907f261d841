// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end's recovery from a backend that went away:
 * INFLIGHT_SHMFD (GET_INFLIGHT_FD once, SET_INFLIGHT_FD at every start),
 * and the reconnect the watcher thread runs when the connection is lost
 * (see include/uvirtio/vhost_frontend.h for what is replayed, in which
 * order, and which base each ring gets).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <linux/virtio_config.h>

#include "../core/eventfd.h"
#include "../log/log_priv.h"
#include "uvirtio/virtio_spec.h"

#include "vhost_frontend_priv.h"

/* Per descriptor of every queue asked for, a region holds at least one
 * 16-byte state (QEMU's and DPDK's split layout; packed states are 32). */
#define INFLIGHT_DESC_STATE_MIN 16u

/* GET_INFLIGHT_FD: the backend makes the region for @fe's queues (all of
 * them, at the largest size a ring may have, as QEMU asks) and hands its
 * fd. Every check that fails gives the connection up: the backend broke
 * the protocol. */
static int get_inflight(struct uvirtio_vhost_frontend *fe)
{
	struct vhost_user_inflight ask = { .num_queues = (uint16_t)fe->nrings,
					   .queue_size = (uint16_t)fe->max_queue_size };
	struct vhost_user_inflight got = { 0 };
	uint64_t need = (uint64_t)fe->nrings * fe->max_queue_size * INFLIGHT_DESC_STATE_MIN;
	struct stat st;
	int fd = -1, ret;

	pthread_mutex_lock(&fe->lock);
	ret = vf_transact_fd_locked(fe, VHOST_USER_GET_INFLIGHT_FD, &ask, sizeof(ask), NULL, 0, &got,
				    sizeof(got), &fd);
	if (!ret && got.mmap_size < need)
		ret = vf_give_up(fe, -EPROTO,
				 "GET_INFLIGHT_FD: a region of %llu bytes for %u queues of %u (at least %llu)",
				 (unsigned long long)got.mmap_size, fe->nrings, fe->max_queue_size,
				 (unsigned long long)need);
	else if (!ret && fstat(fd, &st) < 0)
		ret = vf_give_up(fe, -EPROTO, "GET_INFLIGHT_FD: the region's fd: %s", strerror(errno));
	else if (!ret && (got.mmap_offset > UINT64_MAX - got.mmap_size ||
			  got.mmap_offset + got.mmap_size > (uint64_t)st.st_size))
		ret = vf_give_up(fe, -EPROTO,
				 "GET_INFLIGHT_FD: offset %llu and size %llu pass the end of the region's fd (%lld bytes)",
				 (unsigned long long)got.mmap_offset, (unsigned long long)got.mmap_size,
				 (long long)st.st_size);
	pthread_mutex_unlock(&fe->lock);
	if (ret) {
		close_fd(&fd);
		return ret;
	}
	close_fd(&fe->inflight_fd);
	fe->inflight_fd = fd;
	fe->inflight = ask;
	fe->inflight.mmap_size = got.mmap_size;
	fe->inflight.mmap_offset = got.mmap_offset;
	return 0;
}

int vf_set_inflight(struct uvirtio_vhost_frontend *fe)
{
	return vf_transact(fe, VHOST_USER_SET_INFLIGHT_FD, &fe->inflight, sizeof(fe->inflight),
			   &fe->inflight_fd, 1, NULL, 0);
}

int vf_inflight_start(struct uvirtio_vhost_frontend *fe)
{
	int ret = 0;

	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
		return 0;
	/* A queue reset stops the ring with GET_VRING_BASE and hands over a
	 * new one at its start: a backend must then start afresh, not resume
	 * from the region (uvirtio's clears a ring's part at a clean stop;
	 * docs/inflight.md). */
	if (fe->inflight_fd < 0)
		ret = get_inflight(fe);
	if (!ret)
		ret = vf_set_inflight(fe);
	return ret;
}

/* Reconnect. */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps @ms, or less when destroy asks the watcher to stop: -ECANCELED. */
static int pause_or_stop(struct uvirtio_vhost_frontend *fe, int ms)
{
	struct pollfd p = { .fd = fe->stop_fd, .events = POLLIN };
	int64_t end = now_ms() + ms;

	for (;;) {
		int64_t left = end - now_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return -ECANCELED;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static uint16_t guest_u16(const struct uvirtio_vhost_frontend *fe, uint64_t gpa)
{
	const uint16_t *p = (const uint16_t *)((const char *)fe->map + (gpa - fe->mem_guest_addr));

	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

/* Where ring @index restarts on the new backend, or whether it waits for
 * the driver to resubmit (*@resubmit). With INFLIGHT_SHMFD a split ring
 * restarts at the used index in guest memory, as QEMU sends it after a
 * backend crash, a packed one at the base of its last start (QEMU's stale
 * base), and the backend resubmits what its region marks in flight (the
 * descriptors stay where they are, none is added again). Without it a
 * ring with nothing in flight restarts at the used index (equal to the
 * available one); one with requests in flight, or a packed ring, is left
 * stopped for the driver to reset and fill again (it needs
 * VIRTIO_F_RING_RESET: uvirtio_blk_drv_resubmit()). *@permanent: no later
 * attempt can do better. */
static int ring_base(struct uvirtio_vhost_frontend *fe, unsigned index, uint32_t *base,
		     bool *resubmit, bool *permanent)
{
	const struct vf_ring *r = &fe->rings[index];
	bool packed = fe->driver_features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	uint16_t used, avail;

	*resubmit = false;
	if (packed && fe->inflight_fd >= 0) {
		/* As QEMU 7.2 does: the base of the ring's last start. Its
		 * positions are in the driver and the region, not in a guest
		 * index; the backend resumes from the region (docs/inflight.md:
		 * uvirtio's ignores this base). */
		*base = r->started_at;
		return 0;
	}
	if (!packed) {
		used = guest_u16(fe, r->layout.used + 2);
		avail = guest_u16(fe, r->layout.avail + 2);
		if (fe->inflight_fd >= 0 || used == avail) {
			*base = used;
			return 0;
		}
	}
	if (!(fe->driver_features & UVIRTIO_BIT(VIRTIO_F_RING_RESET))) {
		*permanent = true;
		return vf_set_error(fe, -EOPNOTSUPP,
				    "ring %u %s, no INFLIGHT_SHMFD, and the driver did not negotiate VIRTIO_F_RING_RESET to resubmit",
				    index, packed ? "is packed" : "has requests in flight");
	}
	*resubmit = true;
	return 0;
}

/* One attempt on the connected socket @sock, with fe->lock held: the
 * negotiation as at connect, then the device as the driver left it. On
 * failure the new connection is closed again. */
static int replay(struct uvirtio_vhost_frontend *fe, int sock, bool *permanent)
{
	uint64_t want = fe->sent_features & ~VHOST_ONLY_FEATURES;
	bool had_protocol = protocol_features_negotiated(fe);
	bool had_inflight = fe->inflight_fd >= 0;
	unsigned nrings = fe->nrings;
	uint8_t status = __atomic_load_n(&fe->status, __ATOMIC_RELAXED);
	bool running = (status & VIRTIO_CONFIG_S_DRIVER_OK) &&
		       !__atomic_load_n(&fe->suspended, __ATOMIC_RELAXED);
	int ret;

	fe->sock = sock;
	__atomic_store_n(&fe->connected, true, __ATOMIC_RELAXED);
	__atomic_store_n(&fe->peer_gone, false, __ATOMIC_RELEASE);

	ret = vf_negotiate(fe, fe->disabled_protocol_features);
	if (!ret && fe->backend_rings < nrings) {
		*permanent = true;
		ret = vf_set_error(fe, -EINVAL, "the backend has %u queues, the device had %u",
				   fe->backend_rings, nrings);
	}
	if (!ret && ((want & ~fe->backend_features) ||
		     had_protocol != protocol_features_negotiated(fe))) {
		*permanent = true;
		ret = vf_set_error(fe, -EINVAL,
				   "the backend does not offer features %#llx that were negotiated",
				   (unsigned long long)(want & ~fe->backend_features));
	}
	if (!ret && had_inflight && !has_pf(fe, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)) {
		*permanent = true;
		ret = vf_set_error(fe, -EINVAL,
				   "the backend no longer offers INFLIGHT_SHMFD, which held the requests in flight");
	}
	if (!ret)
		ret = vf_share_memory(fe);
	if (!ret && fe->sent_features)
		ret = vf_send_u64(fe, VHOST_USER_SET_FEATURES, fe->sent_features);
	if (!ret && status && has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS))
		ret = vf_send_u64(fe, VHOST_USER_SET_STATUS,
				  status & ~(VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_SUSPEND));
	if (!ret)
		ret = vf_replay_config(fe, fe);
	if (!ret && fe->logging)
		ret = vf_make_log(fe);
	/* QEMU's order at a start: the region, then the rings. */
	if (!ret && running && had_inflight)
		ret = vf_set_inflight(fe);
	for (unsigned i = 0; !ret && running && i < nrings; i++) {
		struct vf_ring *r = &fe->rings[i];
		uint32_t base = 0;
		bool resubmit;

		if (!r->relaunch || !r->configured)
			continue;
		ret = ring_base(fe, i, &base, &resubmit, permanent);
		if (!ret && resubmit)
			continue;
		if (!ret)
			ret = vf_start_ring(fe, i, base);
		if (!ret) {
			r->relaunch = false;
			/* Kicks sent while no backend watched were lost. */
			eventfd_signal(r->kick_fd);
		}
	}
	if (!ret && running && has_pf(fe, VHOST_USER_PROTOCOL_F_STATUS))
		ret = vf_send_u64(fe, VHOST_USER_SET_STATUS, status & ~VIRTIO_CONFIG_S_SUSPEND);
	if (!ret) {
		/* The rings left for the driver: stopped, their buffers with
		 * nobody; the call fd wakes a queue thread waiting on them. */
		for (unsigned i = 0; i < nrings; i++) {
			struct vf_ring *r = &fe->rings[i];

			if (!r->relaunch)
				continue;
			r->relaunch = false;
			if (running && r->configured) {
				__atomic_store_n(&r->needs_resubmit, true, __ATOMIC_RELEASE);
				eventfd_signal(r->call_fd);
			}
		}
	}
	if (ret) {
		/* A broken protocol or a time-out on the new connection: the
		 * request gave the connection up for good (fe->dead). */
		if (__atomic_load_n(&fe->dead, __ATOMIC_ACQUIRE))
			*permanent = true;
		if (fe->sock >= 0)
			shutdown(fe->sock, SHUT_RDWR);
		close_fd(&fe->sock);
		__atomic_store_n(&fe->connected, false, __ATOMIC_RELAXED);
		/* Rings restarted in this attempt go again in the next. */
		for (unsigned i = 0; i < nrings; i++)
			if (fe->rings[i].started) {
				fe->rings[i].started = false;
				fe->rings[i].relaunch = true;
			}
	}
	return ret;
}

int vf_reconnect(struct uvirtio_vhost_frontend *fe)
{
	int64_t deadline = now_ms() + fe->reconnect_timeout_ms;
	bool permanent = false;
	unsigned attempts = 0;
	char last[160] = "";
	int ret;

	/* Requests fail at once from here on (queue threads' status reads
	 * see no NEEDS_RESET: the reconnect is pending). */
	__atomic_store_n(&fe->peer_gone, true, __ATOMIC_RELEASE);
	pthread_mutex_lock(&fe->lock);
	if (__atomic_load_n(&fe->connected, __ATOMIC_RELAXED))
		vf_give_up(fe, -ENOTCONN, "the backend closed the connection");
	for (unsigned i = 0; i < fe->nrings; i++) {
		struct vf_ring *r = &fe->rings[i];

		if (r->started) {
			r->started = false;
			r->relaunch = true;
		}
	}
	pthread_mutex_unlock(&fe->lock);
	close_fd(&fe->watch_fd);

	for (;;) {
		int sock;

		ret = pause_or_stop(fe, fe->reconnect_interval_ms);
		if (ret)
			return ret;
		attempts++;
		ret = vf_connect_socket(fe->socket_path, &sock);
		if (ret) {
			snprintf(last, sizeof(last), "connect to %s: %s", fe->socket_path, strerror(-ret));
		} else {
			pthread_mutex_lock(&fe->lock);
			ret = replay(fe, sock, &permanent);
			if (!ret) {
				fe->watch_fd = fcntl(fe->sock, F_DUPFD_CLOEXEC, 0);
				if (fe->watch_fd < 0) {
					ret = -errno;
					permanent = true;
					vf_give_up(fe, ret, "cannot watch the new connection");
				}
			}
			if (!ret) {
				fe->error[0] = 0;
				uvirtio_log(UVIRTIO_LOG_DEBUG,
					    "vhost-user front-end: reconnected to %s after %u attempts",
					    fe->socket_path, attempts);
			} else {
				snprintf(last, sizeof(last), "%s", fe->error);
			}
			pthread_mutex_unlock(&fe->lock);
			if (!ret) {
				__atomic_add_fetch(&fe->reconnects, 1, __ATOMIC_RELEASE);
				return 0;
			}
		}
		if (permanent || now_ms() >= deadline)
			break;
	}
	pthread_mutex_lock(&fe->lock);
	__atomic_store_n(&fe->dead, true, __ATOMIC_RELEASE);
	if (permanent)
		vf_set_error(fe, ret, "reconnect: %s", last);
	else
		vf_set_error(fe, ret, "reconnect: the backend did not come back in %d ms (%u attempts; last: %s)",
			     fe->reconnect_timeout_ms, attempts, last);
	pthread_mutex_unlock(&fe->lock);
	return ret;
}
