/* SPDX-License-Identifier: MIT */
/*
 * Private to the vhost-user backend transport, not installed, not part of
 * the API: its entry points for the unit tests and the fuzzer (feed it
 * messages without a socket and inspect what it answered), then what the
 * backend's source files share.
 */
#ifndef UVIRTIO_VHOST_BACKEND_PRIV_H
#define UVIRTIO_VHOST_BACKEND_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "uvirtio/devq.h"
#include "uvirtio/memory.h"
#include "uvirtio/vhost_backend.h"
#include "vhost_msg.h"

/*
 * Handle one request as if it came from the connected front-end; the
 * backend takes @m's fds (keeps or closes every one). Replies go to the
 * connection when there is one and are kept for
 * uvirtio_vhost_backend_last_reply() either way.
 * Return: 0 to go on; a negative errno when the connection must end.
 */
int uvirtio_vhost_backend_handle_msg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);

/* What a disconnect does: stop the rings, reset the device, unmap guest
 * memory, close every fd the front-end sent (and the connection). */
void uvirtio_vhost_backend_end_connection(struct uvirtio_vhost_backend *vb);

/* The last reply built (its hdr.size is 0 before any). */
const struct uvirtio_vhost_msg *uvirtio_vhost_backend_last_reply(const struct uvirtio_vhost_backend *vb);

/* Guest memory regions mapped now. */
unsigned uvirtio_vhost_backend_mapped_regions(const struct uvirtio_vhost_backend *vb);

/*
 * What the backend's files share (vhost_backend.c: the connection loop and
 * the public functions; vhost_backend_mem.c: the memory table;
 * vhost_backend_vring.c: ring state, start and stop;
 * vhost_backend_negotiate.c: features, protocol features, status, config).
 * Every handler (vb_set_*, vb_vring*, ...) returns 0 or a negative errno with
 * vb->why set by vb_fail(); runs on the control thread; the fds of the
 * message it gets are its to keep or close.
 */

/* The protocol features offered. */
#define OFFERED_PROTOCOL_FEATURES                                                    \
	(UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_MQ) | UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_BACKEND_REQ) | UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG) | \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                               \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                        \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS) | UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
	 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))

struct vb_ring {
	unsigned num; /* 0: not set */
	bool addr_set;
	uint64_t desc_uva, avail_uva, used_uva;
	/* Where the ring resumes, as SET/GET_VRING_BASE carry it: split, the
	 * next avail index; packed, next avail in bits 0-15 and used in 16-31,
	 * each with its wrap counter in its top bit (QEMU's encoding). */
	uint32_t base;
	bool base_set; /* false: the ring starts at its beginning */
	bool started;    /* has a kick fd; GET_VRING_BASE clears it */
	bool enabled;    /* SET_VRING_ENABLE */
	bool running;    /* enabled in the device core */
	/* SET_VRING_ADDR's LOG flag: the used ring is logged at log_addr
	 * (split; packed rings log their descriptors, see the ring layer). */
	bool log_flag;
	uint64_t log_addr;
	int kick_fd, err_fd;
	/* The call fd is swapped by the control thread (SET_VRING_CALL) while
	 * a queue thread may be signalling it through notify_used. */
	pthread_mutex_t call_lock;
	int call_fd;
	bool resched; /* atomic: the device asked to be called again */
};

/* A file the front-end sent (or we made), mapped: @at is @size bytes at the
 * offset asked, inside the page-aligned mapping. */
struct vb_map {
	void *map;
	size_t map_len;
	uint8_t *at;
	uint64_t size;
};

/* One mapped region of guest memory. */
struct region {
	uint64_t gpa, size, uva, mmap_offset;
	/* The file's identity, for the state file (vb_mem_identity()). */
	uint64_t file_dev, file_ino;
	void *map;      /* the whole mapping, page-aligned */
	size_t map_len;
	void *host;     /* where gpa is */
	/* ADD_MEM_REG of this very region (gpa, size and uva): QEMU sends one
	 * per vhost device, and vhost-user-net has one per queue pair on the
	 * same connection; as many REM_MEM_REG take it away. */
	unsigned refs;
};

struct uvirtio_vhost_backend {
	struct uvirtio_vhost_backend_config cfg;
	char *path;
	struct uvirtio_mem mem;
	struct uvirtio_mem scratch; /* a new table under construction */
	struct region regions[UVIRTIO_MEM_MAX_REGIONS];
	unsigned nregions;

	struct uvirtio_device *dev;
	struct vb_ring *rings;
	unsigned nrings;

	int listen_fd, inherited_fd, conn_fd;
	bool listening, created_path, inherited_listens;
	int stop_fd, resched_fd;
	bool serving; /* atomic: run() is running */

	/* Connection state. */
	uint64_t features; /* as the front-end set them, bit 30 included */
	bool features_set;
	uint64_t protocol_features;
	bool owner;
	uint8_t fe_status;
	/* The back-end channel (SET_BACKEND_REQ_FD); a queue thread may
	 * send on it through notify_config. */
	pthread_mutex_t backend_lock;
	int backend_fd;
	bool config_msgs; /* CONFIG negotiated: config changes may be sent */

	/* Dirty logging: the queues mark into dlog, whose active area is the
	 * mapped log while LOG_ALL is set (vb_log_update()). */
	struct uvirtio_dirty_log dlog;
	struct vb_log_map *log_map; /* SET_LOG_BASE, NULL before */
	int log_fd;                 /* SET_LOG_FD, kept and closed */

	/* Inflight tracking (GET/SET_INFLIGHT_FD): the area, num_queues parts
	 * of a ring of queue_size entries each; map NULL before. */
	struct vb_map inflight;
	unsigned inflight_queues, inflight_queue_size;
	/* uvirtio_vhost_backend_set_state_file(): where the area is kept when
	 * the front-end hands over none; NULL: nowhere. */
	char *state_path;
	bool inflight_is_state; /* the area is state_path's */

	char why[200]; /* the reason the current request failed */
	struct uvirtio_vhost_msg in, reply;
	int reply_fd; /* sent with the reply, then closed; -1: none */

	/* Counters, atomic. */
	uint64_t st_connections, st_messages, st_errors, st_disconnects_on_error;
	bool st_connected;
};

/* One line through the log sink (include/uvirtio/log.h), "vhost-user: " first. */
void vb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A request fails: keep the reason for the one line handle_msg logs; returns @err. */
int vb_fail(struct uvirtio_vhost_backend *vb, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void vb_count(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

static inline void vb_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static inline bool vb_has_pf(const struct uvirtio_vhost_backend *vb, unsigned bit)
{
	return vb->protocol_features & UVIRTIO_BIT(bit);
}

/* vhost_backend_mem.c */
/* [uva, uva + len) as a guest address, when one region holds all of it. */
int vb_uva_to_gpa(const struct uvirtio_vhost_backend *vb, uint64_t uva, uint64_t len, uint64_t *gpa);
void vb_unmap_all(struct uvirtio_vhost_backend *vb);
int vb_set_mem_table(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);
int vb_add_mem_reg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);
int vb_rem_mem_reg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);

/* vhost_backend_vring.c */
bool vb_ring_packed(const struct uvirtio_vhost_backend *vb);
/* Stop every ring in the device core, keeping its position. */
void vb_halt_all(struct uvirtio_vhost_backend *vb);
bool vb_any_running(const struct uvirtio_vhost_backend *vb);
/* Run every ring that vhost-user.rst says runs; the first error. */
int vb_run_ready_rings(struct uvirtio_vhost_backend *vb);
/* Close a ring's fds and forget its state. */
void vb_forget_ring(struct vb_ring *r);
/* RESET_DEVICE, RESET_OWNER: the device and every ring back to the start. */
void vb_reset_device(struct uvirtio_vhost_backend *vb);
/* SET_VRING_KICK/CALL/ERR. */
int vb_vring_fd(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);
/* SET_VRING_NUM/ADDR/BASE/ENABLE, GET_VRING_BASE. */
int vb_vring(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m);

/* vhost_backend_log.c */
struct vb_log_map {
	struct uvirtio_dirty_log_area area;
	struct vb_map m;
};
/* The active log follows LOG_ALL and the mapped log. */
void vb_log_update(struct uvirtio_vhost_backend *vb);
int vb_set_log_base(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);
int vb_set_log_fd(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);
/* Logging off, the log unmapped, the log fd closed, no queue pointing here. */
void vb_log_end(struct uvirtio_vhost_backend *vb);
/* Whether a logged used ring at [gpa, gpa + len) is a valid place. */
int vb_log_check_addr(struct uvirtio_vhost_backend *vb, unsigned ring, uint64_t gpa, uint64_t len);

/* vhost_backend_mem.c: a digest of the guest memory's files and layout. */
uint64_t vb_mem_identity(const struct uvirtio_vhost_backend *vb);

/* vhost_backend_inflight.c */
/* Map [off, off + size) of @fd, checked against the file's size; @what
 * names it in the failure. */
int vb_map_fd(struct uvirtio_vhost_backend *vb, int fd, uint64_t off, uint64_t size,
	      const char *what, struct vb_map *out);
void vb_unmap(struct vb_map *m);
int vb_get_inflight_fd(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m);
int vb_set_inflight_fd(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m);
/* Before ring @ring of @num entries starts: its part of the area, or none. */
void vb_inflight_attach(struct uvirtio_vhost_backend *vb, unsigned ring, unsigned num);
/* GET_VRING_BASE: ring @ring stopped with nothing in flight and the
 * front-end has its base, so its part is zeroed and the next start begins
 * afresh at the base the front-end gives. Only then: a ring halted for any
 * other reason (the connection ends, this process stops) keeps its position
 * in the area for the next process, since QEMU, which never learnt it,
 * restarts a packed ring at the base of its first start. */
void vb_inflight_ring_stopped(struct uvirtio_vhost_backend *vb, unsigned ring);
/* No queue tracks any more; the area unmapped. Rings stopped. */
void vb_inflight_end(struct uvirtio_vhost_backend *vb);

/* vhost_backend_negotiate.c */
/* GET_FEATURES: the device's features as a vhost-user backend offers them. */
uint64_t vb_offered_features(const struct uvirtio_vhost_backend *vb);
uint64_t vb_offered_protocol_features(const struct uvirtio_vhost_backend *vb);
/* The device is a virtio-net one: rings come in rx/tx pairs, and QEMU keeps
 * the control queue (and MAC, link status) to itself. */
bool vb_is_net(const struct uvirtio_vhost_backend *vb);
int vb_net_set_mtu(struct uvirtio_vhost_backend *vb, uint64_t mtu);
int vb_set_features(struct uvirtio_vhost_backend *vb, uint64_t f);
int vb_set_protocol_features(struct uvirtio_vhost_backend *vb, uint64_t v);
int vb_set_status(struct uvirtio_vhost_backend *vb, uint64_t value);
int vb_get_config(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m);
int vb_set_config(struct uvirtio_vhost_backend *vb, const struct uvirtio_vhost_msg *m);

#endif
