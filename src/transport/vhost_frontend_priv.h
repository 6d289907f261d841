/* SPDX-License-Identifier: MIT */
/*
 * Private to the vhost-user front-end, not installed, not part of the API:
 * what its source files share. vhost_frontend.c: the transport ops table,
 * connect, move, destroy and the other public functions;
 * vhost_frontend_conn.c: one request and its reply at a time over the
 * socket, the error line, the watcher thread; vhost_frontend_mem.c: guest
 * memory and the memory table sent to the backend; vhost_frontend_vring.c:
 * ring start, stop, suspend, resume and the queue ops;
 * vhost_frontend_negotiate.c: features, protocol features, status, reset
 * and config; vhost_frontend_reconnect.c: INFLIGHT_SHMFD and the reconnect
 * the watcher runs.
 *
 * Unless a comment says otherwise, a function here returns 0 or a negative
 * errno with the reason in fe->error, and is called from a driver's
 * lifecycle thread.
 */
#ifndef UVIRTIO_VHOST_FRONTEND_PRIV_H
#define UVIRTIO_VHOST_FRONTEND_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "uvirtio/dma.h"
#include "uvirtio/vhost_frontend.h"
#include "vhost_msg.h"

#define DEFAULT_MEM_SIZE (64u << 20)
#define DEFAULT_GUEST_ADDR (1ull << 30)
#define DEFAULT_QUEUE_SIZE 256u
#define MAX_QUEUE_SIZE 32768u
#define DEFAULT_REPLY_TIMEOUT_MS 10000
#define DEFAULT_RECONNECT_INTERVAL_MS 100
#define DEFAULT_RECONNECT_TIMEOUT_MS 10000
#define HUGE_PAGE_SIZE (2u << 20)
/* vhost-user rings are addressed by an 8-bit index in KICK/CALL/ERR. */
#define MAX_RINGS (VHOST_USER_VRING_IDX_MASK + 1u)

/* What this front-end implements. BACKEND_REQ is left out: config-change
 * notices would need a thread serving that channel. */
#define FRONTEND_PROTOCOL_FEATURES                                                      \
	(UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_MQ) | UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG) |                                      \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                                \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                         \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS) | UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))

/* Transport features this front-end implements itself, whatever the
 * backend offers: a queue reset is GET_VRING_BASE on that ring, a suspend
 * GET_VRING_BASE on every ring (as QEMU 8 resets a vhost-user net queue).
 * Passed on to the backend only when it offered them. */
#define FRONTEND_FEATURES (UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND))

/* Feature bits of vhost itself, not of the virtio device. */
#define VHOST_ONLY_FEATURES                                                            \
	((1ull << VHOST_USER_F_PROTOCOL_FEATURES) | (1ull << VHOST_F_LOG_ALL))

struct vf_ring {
	int kick_fd, call_fd;
	struct uvirtio_queue_layout layout;
	bool configured; /* the driver gave a layout (queue_enable) */
	bool started;    /* handed to the backend and not stopped since */
	bool stopped;    /* stopped with stop_ring, may be restarted */
	bool reset;      /* queue_reset: forgotten until queue_enable */
	bool suspended;  /* stopped by a suspend: resume restarts it at @base */
	uint32_t base;   /* GET_VRING_BASE's answer at the suspend */
	bool relaunch;   /* started when the connection was lost: a reconnect restarts it */
	uint32_t started_at; /* the base of its last start (a packed ring's reconnect base) */
	/* Atomic: a reconnect left it stopped for the driver to reset and
	 * fill again (uvirtio_vhost_frontend_ring_needs_resubmit()); cleared
	 * when queue_enable hands the new ring over. */
	bool needs_resubmit;
};

struct uvirtio_vhost_frontend {
	struct uvirtio_transport t; /* first: the driver's handle */
	/* One request and its reply at a time: queue threads ask for the
	 * status (a driver looking for DEVICE_NEEDS_RESET) while the
	 * lifecycle thread may be sending. Recursive: a reconnect (the
	 * watcher) holds it across the whole replay, made of requests that
	 * take it too. */
	pthread_mutex_t lock;
	int sock; /* written under @lock (give_up) */
	/* The watcher: a thread that sees the backend hang up while no request
	 * is under way, so drivers waiting on a used ring learn of it. */
	pthread_t watcher;
	bool watching;
	int watch_fd;  /* a dup of sock that the watcher polls */
	int stop_fd;   /* ends the watcher */
	bool peer_gone; /* atomic: the watcher saw the hang-up */
	/* Atomic: the connection is given up for good (a broken protocol, a
	 * time-out, or a loss without reconnect or whose reconnect failed):
	 * get_status reports NEEDS_RESET from then on. */
	bool dead;

	/* Reconnect (see the header): the socket to connect to again, the
	 * config's interval and bounded wait, the protocol features not to
	 * negotiate, and how many reconnects succeeded (atomic). */
	char *socket_path;
	bool reconnect;
	int reconnect_interval_ms, reconnect_timeout_ms;
	uint64_t disabled_protocol_features;
	unsigned reconnects;

	/* INFLIGHT_SHMFD: the region GET_INFLIGHT_FD gave (-1: none yet) and
	 * the four values SET_INFLIGHT_FD hands back with it. Not mapped:
	 * its layout is the backend's business. */
	int inflight_fd;
	struct vhost_user_inflight inflight;
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
	uint64_t mem_guest_addr; /* where the device sees map */
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
	/* The rings the device has, fixed at connect (read by queue threads);
	 * backend_rings: what the last negotiation found (GET_QUEUE_NUM). */
	unsigned nrings;
	unsigned backend_rings;
	struct vf_ring *rings;
	int config_fd; /* never signalled: no backend channel (see above) */

	/* Dirty logging (uvirtio_vhost_frontend_set_dirty_log()). */
	bool logging;     /* VHOST_F_LOG_ALL in SET_FEATURES, LOG flag on rings */
	int log_fd;       /* the log's memfd, -1 before the first */
	uint8_t *log_map; /* what the backend marks */
	size_t log_size;
};

static inline struct uvirtio_vhost_frontend *to_fe(struct uvirtio_transport *t)
{
	return (struct uvirtio_vhost_frontend *)((char *)t -
						 offsetof(struct uvirtio_vhost_frontend, t));
}

static inline bool has_pf(const struct uvirtio_vhost_frontend *fe, unsigned bit)
{
	return fe->protocol & (1ull << bit);
}

/* connected is written by whichever thread's request found the connection
 * broken; peer_gone by the watcher, which saw the backend hang up (nothing
 * more will come from it, so no request can succeed). */
static inline bool is_connected(const struct uvirtio_vhost_frontend *fe)
{
	return __atomic_load_n(&fe->connected, __ATOMIC_RELAXED) &&
	       !__atomic_load_n(&fe->peer_gone, __ATOMIC_ACQUIRE);
}

static inline bool protocol_features_negotiated(const struct uvirtio_vhost_frontend *fe)
{
	return fe->backend_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

static inline void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* vhost_frontend_conn.c */
/* Keep the reason; called with @fe->lock held, or from connect. */
int vf_set_error(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* vf_set_error for a lifecycle call outside a request (takes @fe->lock). */
int vf_report(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The backend broke the protocol or went away: close the connection and
 * keep the first reason. Called with @fe->lock held, or from connect. */
int vf_give_up(struct uvirtio_vhost_frontend *fe, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Send @req with its payload and fds; when @reply is not NULL, wait for a
 * reply of exactly @reply_size bytes. _locked: with @fe->lock held. */
int vf_transact_locked(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
		       uint32_t size, const int *fds, unsigned nfds, void *reply,
		       uint32_t reply_size);
int vf_transact(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
		uint32_t size, const int *fds, unsigned nfds, void *reply, uint32_t reply_size);
/* vf_transact_locked for a reply that may carry one fd (GET_INFLIGHT_FD's),
 * set in @reply_fd (the caller's to close) when it passed every check;
 * every fd of a refused reply is closed. */
int vf_transact_fd_locked(struct uvirtio_vhost_frontend *fe, uint32_t req, const void *payload,
			  uint32_t size, const int *fds, unsigned nfds, void *reply,
			  uint32_t reply_size, int *reply_fd);
int vf_send_u64(struct uvirtio_vhost_frontend *fe, uint32_t req, uint64_t v);
int vf_get_u64(struct uvirtio_vhost_frontend *fe, uint32_t req, uint64_t *v);
int vf_send_state(struct uvirtio_vhost_frontend *fe, uint32_t req, unsigned index, uint32_t num);
int vf_send_vring_fd(struct uvirtio_vhost_frontend *fe, uint32_t req, unsigned index, int fd);
/* The thread that sees the backend hang up while no request is under way. */
int vf_start_watcher(struct uvirtio_vhost_frontend *fe);
/* Connect to the backend's socket at @path; a negative errno, no error line. */
int vf_connect_socket(const char *path, int *out);

/* vhost_frontend_mem.c */
/* Guest address @guest as the front-end address SET_VRING_ADDR carries. */
uint64_t vf_frontend_addr(const struct uvirtio_vhost_frontend *fe, uint64_t guest);
/* Whether every part of @l starts inside guest memory. */
bool vf_layout_inside(const struct uvirtio_vhost_frontend *fe, const struct uvirtio_queue_layout *l);
int vf_make_memory(struct uvirtio_vhost_frontend *fe, const struct uvirtio_vhost_frontend_config *cfg);
/* SET_MEM_TABLE, or ADD_MEM_REG with CONFIGURE_MEM_SLOTS. */
int vf_share_memory(struct uvirtio_vhost_frontend *fe);

/* vhost_frontend_vring.c */
/* GET_VRING_BASE: returns once the backend stopped ring @index. */
int vf_get_vring_base(struct uvirtio_vhost_frontend *fe, unsigned index, uint32_t *base);
/* Where a ring starts from its beginning, for the negotiated layout. */
uint32_t vf_start_base(const struct uvirtio_vhost_frontend *fe);
/* Hand ring @index to the backend at @base and enable it. */
int vf_start_ring(struct uvirtio_vhost_frontend *fe, unsigned index, uint32_t base);
/* Stop every started ring and forget every ring's state; the first error. */
int vf_stop_all_rings(struct uvirtio_vhost_frontend *fe);
int vf_suspend_rings(struct uvirtio_vhost_frontend *fe);
int vf_resume_rings(struct uvirtio_vhost_frontend *fe);
int vf_make_rings(struct uvirtio_vhost_frontend *fe);
/* Transport ops (see struct uvirtio_transport_ops). */
int vf_queue_max_size(struct uvirtio_transport *t, unsigned index, unsigned *max);
int vf_queue_enable(struct uvirtio_transport *t, unsigned index,
		    const struct uvirtio_queue_layout *layout);
int vf_queue_reset(struct uvirtio_transport *t, unsigned index);
int vf_notify(struct uvirtio_transport *t, unsigned index);
int vf_event_fd(struct uvirtio_transport *t, unsigned index);

/* vhost_frontend_mem.c: the dirty log. */
int vf_make_log(struct uvirtio_vhost_frontend *fe);
void vf_free_log(struct uvirtio_vhost_frontend *fe);
/* SET_VRING_ADDR for ring @index, with the LOG flag when logging. */
int vf_send_vring_addr(struct uvirtio_vhost_frontend *fe, unsigned index);

/* vhost_frontend_reconnect.c */
/* From the watcher, once it saw the connection end: connect to
 * socket_path again until the bounded wait ends and replay the device's
 * state (see the header). 0 when the backend is back (watch_fd is the new
 * connection's); -ECANCELED when destroy stopped it; another negative
 * errno when it gave up, the reason in fe->error. */
int vf_reconnect(struct uvirtio_vhost_frontend *fe);
/* At DRIVER_OK with INFLIGHT_SHMFD: GET_INFLIGHT_FD the first time (after
 * a reset too), then SET_INFLIGHT_FD with the region, before any ring. */
int vf_inflight_start(struct uvirtio_vhost_frontend *fe);
int vf_set_inflight(struct uvirtio_vhost_frontend *fe);
/* The driver's config writes again, one SET_CONFIG per run of bytes. */
int vf_replay_config(struct uvirtio_vhost_frontend *to, const struct uvirtio_vhost_frontend *fe);

/* vhost_frontend_negotiate.c */
/* GET_FEATURES, the protocol features, GET_QUEUE_NUM, SET_OWNER. */
int vf_negotiate(struct uvirtio_vhost_frontend *fe, uint64_t disabled);
/* Transport ops (see struct uvirtio_transport_ops). */
int vf_get_features(struct uvirtio_transport *t, uint64_t *features);
int vf_set_features(struct uvirtio_transport *t, uint64_t features);
int vf_get_status(struct uvirtio_transport *t, uint8_t *status);
int vf_set_status(struct uvirtio_transport *t, uint8_t status);
int vf_reset(struct uvirtio_transport *t);
int vf_get_config(struct uvirtio_transport *t, unsigned offset, void *buf, unsigned len);
int vf_set_config(struct uvirtio_transport *t, unsigned offset, const void *buf, unsigned len);
int vf_config_generation(struct uvirtio_transport *t, uint32_t *generation);

#endif
