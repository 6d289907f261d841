/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user front-end transport: the driver side of vhost-user. It
 * connects to a backend's unix socket (qemu-storage-daemon, SPDK,
 * libvhost-user's examples, `uvirtio blk`), shares guest memory with it (a
 * memfd, or hugetlbfs pages) and implements the transport interface
 * (transport.h), so any uvirtio driver runs over it unchanged:
 *
 *   struct uvirtio_vhost_frontend *fe;
 *   struct uvirtio_vhost_frontend_config cfg = { .socket_path = "/run/disk.sock", .fd = -1 };
 *   uvirtio_vhost_frontend_connect(&fe, &cfg);
 *   uvirtio_blk_drv_probe(&blk, uvirtio_vhost_frontend_transport(fe), NULL);
 *   ...
 *   uvirtio_blk_drv_remove(&blk);
 *   uvirtio_vhost_frontend_destroy(fe);
 *
 * The transport operations map onto vhost-user as QEMU maps a guest's:
 * features are asked for once at connect (GET_FEATURES) and written at
 * FEATURES_OK (SET_FEATURES); the rings are handed over when the driver sets
 * DRIVER_OK (SET_VRING_NUM, _BASE, _ADDR, _CALL, _KICK, then _ENABLE; a
 * ring the backend refuses part of this for is stopped again);
 * config is GET_CONFIG/SET_CONFIG; a reset stops every started ring with
 * GET_VRING_BASE (after it the backend touches none of them) and writes
 * SET_STATUS(0) when STATUS was negotiated. Guest memory is shared at
 * connect, with ADD_MEM_REG when CONFIGURE_MEM_SLOTS was negotiated and
 * SET_MEM_TABLE otherwise.
 *
 * Queue reset (VIRTIO_F_RING_RESET) and suspend (VIRTIO_F_SUSPEND) are the
 * front-end's own, offered to the driver whatever the backend offers (and
 * passed on in SET_FEATURES only when it offered them), as QEMU 8 resets a
 * vhost-user net queue: queue_reset stops the ring with GET_VRING_BASE and
 * forgets it, and queue_enable then hands the new ring over at once (any
 * size, base 0). A status write adding SUSPEND (after DRIVER_OK) stops
 * every ring with GET_VRING_BASE, keeping each base; the status then reads
 * SUSPEND without DRIVER_OK (the backend is told nothing else). Writing
 * DRIVER_OK again hands every ring back at its base and kicks it. A
 * backend's GET_VRING_BASE must answer only once it finished the requests
 * it took from the ring (uvirtio's does; libvhost-user, qemu-storage-daemon
 * among its users, answers at once and may complete them later).
 *
 * The backend is hostile input: a reply that is short, oversized, of
 * another request or without the reply flag ends the connection with
 * -EPROTO; a backend that disconnects turns every later operation into
 * -ENOTCONN; one that does not answer within the reply time-out gives
 * -ETIMEDOUT (and the connection is given up, as a late reply would be
 * taken for the next one's). So is a message the backend sends unasked
 * (seen before the next request): -EPROTO. Rings are checked by the driver core
 * (drvq.h), so a bad used ring breaks that queue and nothing else.
 *
 * Inflight tracking: when the backend offers protocol feature
 * INFLIGHT_SHMFD it is negotiated. At the first DRIVER_OK (and the first
 * after a reset) the front-end sends GET_INFLIGHT_FD (num_queues: every
 * queue the backend has; queue_size: max_queue_size) and keeps the fd it
 * gets (not mapped: the layout is the backend's); at every DRIVER_OK (a
 * resume's too) and every reconnect it hands it back with SET_INFLIGHT_FD
 * (the same four values) before any SET_VRING_*. A reset closes it, as
 * QEMU frees its region at a reset. Not used (nothing sent) when the
 * driver negotiated both VIRTIO_F_RING_PACKED and VIRTIO_F_RING_RESET: a
 * queue reset hands over a new packed ring, and a backend resuming packed
 * rings from its region whatever the base (uvirtio blk's: QEMU's base is
 * stale after a crash) would take it up at the old ring's position. A
 * reply without an fd, with more than one, with an mmap_size below 16
 * bytes per descriptor of every queue asked for, or with an offset and
 * size past the end of the fd is a broken protocol: -EPROTO, the
 * connection given up, the fd closed.
 *
 * Reconnect (config.reconnect): once the connection is lost the watcher
 * thread connects to socket_path again and replays, with the lock that
 * orders requests held throughout (other requests wait): GET_FEATURES,
 * the protocol features, GET_QUEUE_NUM, SET_OWNER, the memory table,
 * SET_FEATURES as the driver set them, SET_STATUS without DRIVER_OK (with
 * STATUS), the driver's config writes, the dirty log when logging; then,
 * when the rings were running (DRIVER_OK, not suspended),
 * SET_INFLIGHT_FD and for every ring that had been handed over
 * SET_VRING_NUM, _BASE, _ADDR, _CALL, _KICK (the same eventfds as before,
 * so queue threads notice nothing), _ENABLE and a kick, and SET_STATUS
 * with DRIVER_OK. A split ring's base is the used index in guest memory
 * (what QEMU sends after a backend crash). With INFLIGHT_SHMFD the
 * descriptors stay in the ring and nothing is added again: the backend
 * resubmits what its region marks in flight, so each request completes
 * once. Without it a split ring with nothing in flight (avail index equal
 * to used index) restarts at that index; a ring with requests in flight,
 * and any packed ring, is left stopped (nothing is sent for it) and
 * uvirtio_vhost_frontend_ring_needs_resubmit() says so: the driver resets
 * it (queue_reset, which needs VIRTIO_F_RING_RESET negotiated; the
 * front-end offers it whatever the backend does) and enables a new ring
 * (queue_enable: SET_VRING_* at base 0, packed 0x80008000) on which it
 * adds again every request not completed (uvirtio_blk_drv_resubmit()). A
 * driver without RING_RESET cannot: the reconnect then ends with
 * -EOPNOTSUPP. A packed ring with INFLIGHT_SHMFD restarts at the base of
 * its last start, what QEMU 7.2 sends (its positions live in the driver
 * and the region, not in a guest-memory index): the backend must resume
 * from the region (uvirtio blk does, docs/inflight.md; libvhost-user has
 * no packed inflight region). The new backend must offer every feature
 * negotiated, as many queues, and INFLIGHT_SHMFD when the old one had it:
 * otherwise the reconnect ends at once. Meanwhile the
 * status reads without DEVICE_NEEDS_RESET (the requests in flight
 * complete after the reconnect), uvirtio_vhost_frontend_connected() is
 * false and lifecycle requests fail -ENOTCONN; a stop_ring or reset made
 * then treats the rings as stopped.
 *
 * Thread rules: the transport operations other than notify and event_fd,
 * and every function here but uvirtio_vhost_frontend_transport() and the
 * getters, are lifecycle calls made from one thread. notify and event_fd
 * may be called from queue threads at any time between DRIVER_OK and a
 * reset.
 */
#ifndef UVIRTIO_VHOST_FRONTEND_H
#define UVIRTIO_VHOST_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/transport.h"

struct uvirtio_vhost_frontend;

struct uvirtio_vhost_frontend_config {
	/* The backend's listening socket; NULL with @fd. */
	const char *socket_path;
	/* A socket already connected to a backend, taken over from connect
	 * on (closed by destroy, or at once when connect fails, even for a
	 * @cfg it refuses); -1 with @socket_path. */
	int fd;
	/* Bytes of guest memory; 0: 64 MiB. Rounded up to the page size (2
	 * MiB with @hugetlb). */
	size_t mem_size;
	/* Where guest memory starts in guest addresses; 0: 1 GiB. */
	uint64_t guest_addr;
	/* Guest memory from huge pages (memfd_create's MFD_HUGETLB): fails
	 * with -ENOMEM when the system has too few free. */
	bool hugetlb;
	/* What queue_max_size reports for every queue the backend has (the
	 * protocol has no such query; QEMU's queue-size property plays this
	 * part); 0: 256. At most 32768. */
	unsigned max_queue_size;
	/* How long to wait for one reply; 0: 10000; -1: for ever. */
	int reply_timeout_ms;
	/* Protocol features (VHOST_USER_PROTOCOL_F_* of uvirtio/vhost_user.h,
	 * as bits) not to negotiate even when the backend offers them: a check
	 * or a test drives the paths a backend takes with an older front-end. */
	uint64_t disable_protocol_features;
	/* When not NULL, connect writes one line here saying why it failed
	 * (NUL-terminated, cut to @error_size). Every such line, at connect
	 * and after, also goes to the log sink (log.h) at UVIRTIO_LOG_DEBUG,
	 * as "vhost-user front-end: ...". */
	char *error;
	size_t error_size;
	/* Reconnect when the connection to the backend is lost (it closed
	 * it: EOF, EPIPE or ECONNRESET on a request, or the watcher thread
	 * saw the hang-up), to the same @socket_path (required: -EINVAL with
	 * @fd). The watcher thread tries every @reconnect_interval_ms (0:
	 * 100) until @reconnect_timeout_ms (0: 10000; a bounded wait, there
	 * is no "for ever") have passed, then gives up: DEVICE_NEEDS_RESET,
	 * uvirtio_vhost_frontend_error() says why. A connection given up for
	 * a broken protocol or a reply time-out is not reconnected. Negative
	 * values: -EINVAL. @socket_path is copied (the front-end keeps it for
	 * the reconnects; a move replaces it with the new backend's). See
	 * "Reconnect" above for what is replayed. */
	bool reconnect;
	int reconnect_interval_ms;
	int reconnect_timeout_ms;
};

/**
 * uvirtio_vhost_frontend_connect() - connect to a backend and set it up.
 * @out: set to the new front-end, owned by the caller (free with destroy).
 * @cfg: socket, memory and limits; copied.
 *
 * Reads the backend's features, negotiates protocol features (of MQ,
 * REPLY_ACK, CONFIG, RESET_DEVICE, CONFIGURE_MEM_SLOTS, STATUS, LOG_SHMFD
 * and INFLIGHT_SHMFD, those it offers), reads its queue count (GET_QUEUE_NUM with MQ, otherwise 1),
 * sends SET_OWNER (QEMU's order), and shares guest memory.
 *
 * Return: 0; -EINVAL for a bad @cfg (no socket or both, a size that
 * overflows, max_queue_size not a power of two, reconnect with @fd, a
 * negative reconnect interval or wait); -ENOENT or -ECONNREFUSED
 * and other connect errors; -ENOMEM when memory cannot be made; -ENODEV
 * when the backend does not offer VIRTIO_F_VERSION_1; -EPROTO, -ENOTCONN,
 * -ETIMEDOUT as for any request (see above); or the backend's error
 * reply to a request (-EIO when it gives no more than "failed"). @cfg->error
 * says which.
 */
UVIRTIO_API
int uvirtio_vhost_frontend_connect(struct uvirtio_vhost_frontend **out,
				   const struct uvirtio_vhost_frontend_config *cfg);

/**
 * uvirtio_vhost_frontend_transport() - the transport a driver probes. It
 * lives as long as @fe.
 */
UVIRTIO_API
struct uvirtio_transport *uvirtio_vhost_frontend_transport(struct uvirtio_vhost_frontend *fe);

/** uvirtio_vhost_frontend_backend_features() - GET_FEATURES's answer, as sent. */
UVIRTIO_API
uint64_t uvirtio_vhost_frontend_backend_features(const struct uvirtio_vhost_frontend *fe);

/**
 * uvirtio_vhost_frontend_protocol_features() - the protocol features in use
 * (bits of VHOST_USER_PROTOCOL_F_*); @offered, when not NULL, is set to
 * what the backend offered.
 */
UVIRTIO_API
uint64_t uvirtio_vhost_frontend_protocol_features(const struct uvirtio_vhost_frontend *fe,
						  uint64_t *offered);

/** uvirtio_vhost_frontend_num_queues() - the queues the backend has. */
UVIRTIO_API
unsigned uvirtio_vhost_frontend_num_queues(const struct uvirtio_vhost_frontend *fe);

/**
 * uvirtio_vhost_frontend_connected() - false once the backend closed the
 * connection (seen by the watcher thread or by a request) or broke the
 * protocol; every request then fails -ENOTCONN, and get_status reports
 * DEVICE_NEEDS_RESET.
 */
UVIRTIO_API
bool uvirtio_vhost_frontend_connected(const struct uvirtio_vhost_frontend *fe);

/**
 * uvirtio_vhost_frontend_ring_needs_resubmit() - whether a reconnect left
 * ring @index stopped with requests the new backend never saw (no
 * INFLIGHT_SHMFD, or a packed ring): the driver must reset the queue and
 * add them again on a new ring (uvirtio_blk_drv_resubmit() for the blk
 * driver). The ring's event fd is signalled when this becomes true; false
 * again once the new ring is handed over, and for a bad @index.
 */
UVIRTIO_API
bool uvirtio_vhost_frontend_ring_needs_resubmit(const struct uvirtio_vhost_frontend *fe,
						unsigned index);

/**
 * uvirtio_vhost_frontend_reconnects() - how many times the front-end
 * reconnected to a restarted backend (config.reconnect) since connect.
 */
UVIRTIO_API
unsigned uvirtio_vhost_frontend_reconnects(const struct uvirtio_vhost_frontend *fe);

/**
 * uvirtio_vhost_frontend_error() - one line saying why the connection was
 * given up, or why the last request failed ("GET_CONFIG: reply of 8 bytes,
 * expected 20"); "" when nothing failed. Once the connection is given up
 * the reason stays: requests failing -ENOTCONN after it (a queue thread's
 * status reads among them) do not replace it. Valid until the next call on
 * @fe.
 */
UVIRTIO_API
const char *uvirtio_vhost_frontend_error(const struct uvirtio_vhost_frontend *fe);

/**
 * uvirtio_vhost_frontend_stop_ring() - stop ring @index the way QEMU stops
 * one: GET_VRING_BASE. When it returns the backend takes no more buffers
 * from the ring and writes no more used entries to it.
 * @base: set to the backend's answer: for a split ring the index of the next
 *        available entry it would have taken (16 bits); for a packed ring
 *        that position in bits 0-15 and the used position in bits 16-31,
 *        each with its wrap counter in its top bit (QEMU's encoding).
 *
 * The driver must make no call on the queue until it is restarted.
 *
 * Return: 0; -EINVAL when the ring is not started (before DRIVER_OK, or
 * stopped already) or @index is out of range; or a request's error.
 */
UVIRTIO_API
int uvirtio_vhost_frontend_stop_ring(struct uvirtio_vhost_frontend *fe, unsigned index,
				     uint32_t *base);

/**
 * uvirtio_vhost_frontend_restart_ring() - hand a stopped ring @index back
 * to the backend at the same place: SET_VRING_NUM, SET_VRING_BASE(@base),
 * SET_VRING_ADDR, SET_VRING_CALL, SET_VRING_KICK, SET_VRING_ENABLE, then a
 * kick, so buffers the driver made available meanwhile are seen. @base is
 * normally what uvirtio_vhost_frontend_stop_ring() returned. When the
 * backend refuses a step after the kick fd, the ring is stopped again
 * (GET_VRING_BASE) and stays stopped.
 *
 * Return: 0; -EINVAL when the ring is not stopped or @index is out of
 * range; or a request's error.
 */
UVIRTIO_API
int uvirtio_vhost_frontend_restart_ring(struct uvirtio_vhost_frontend *fe, unsigned index,
					uint32_t base);

/**
 * uvirtio_vhost_frontend_move() - carry a suspended device over to another
 * backend process (a new `uvirtio blk` on the same image, say): connect to
 * it, negotiate as connect does, check it offers every feature the driver
 * negotiated, share the SAME guest memory (the memfd; rings and buffers
 * stay where they are), write the negotiated features, the status without
 * DRIVER_OK (with STATUS) and the driver's config writes again (blk's
 * writeback, say), then close the old connection. The rings are handed
 * over by the resume (uvirtio_driver_resume()) at the bases the suspend
 * saved, so the driver carries on where it stopped, nothing lost or
 * repeated. The old backend may have gone already (a crash while
 * suspended): its connection is just closed.
 * @cfg: socket_path or fd (owned by move from the call on, closed on every
 *       error), reply_timeout_ms (ignored: the old value stays),
 *       disable_protocol_features and error as for connect; the memory
 *       fields are ignored.
 *
 * A lifecycle call; no queue may be in use (the device is suspended).
 *
 * Return: 0; -EINVAL when the device is not suspended, @cfg names no
 * socket or two, or the new backend lacks a negotiated feature, the
 * CONFIG protocol feature the config writes need, or queues (the old
 * connection is then kept, and @cfg->error says which); or connect's and
 * the requests' errors (likewise the old connection is kept).
 */
UVIRTIO_API
int uvirtio_vhost_frontend_move(struct uvirtio_vhost_frontend *fe,
				const struct uvirtio_vhost_frontend_config *cfg);

/**
 * uvirtio_vhost_frontend_set_dirty_log() - turn the backend's dirty logging
 * on or off, as QEMU does for a live migration: the first time on, a log
 * memfd (one bit per 4 KiB page of guest-physical addresses up to the end
 * of guest memory, bit gpa / 4096 of byte bit / 8) goes to the backend
 * with SET_LOG_BASE (its reply awaited); then SET_FEATURES with
 * VHOST_F_LOG_ALL (once the driver's features were set; later ones carry
 * it too) and every started ring's SET_VRING_ADDR with the LOG flag (its
 * used ring's guest address as log_guest_addr), the rings running. Off:
 * the same without them; the log stays, readable, until destroy.
 *
 * Return: 0; -EOPNOTSUPP when the backend offers no VHOST_F_LOG_ALL or no
 * LOG_SHMFD; errors of the requests (logging is then as it was).
 */
UVIRTIO_API
int uvirtio_vhost_frontend_set_dirty_log(struct uvirtio_vhost_frontend *fe, bool on);

/**
 * uvirtio_vhost_frontend_replace_dirty_log() - hand the backend a new log
 * (SET_LOG_BASE, as QEMU does when it resizes it), rings running; the bits
 * of the old one are moved into the new one after the backend's reply, so
 * none is lost. Return: 0; -EINVAL without a log; errors as above.
 */
UVIRTIO_API
int uvirtio_vhost_frontend_replace_dirty_log(struct uvirtio_vhost_frontend *fe);

/**
 * uvirtio_vhost_frontend_dirty_log() - the log the backend marks (NULL
 * before set_dirty_log), @size its bytes. The backend sets bits with an
 * atomic OR while rings run: read and clear them with atomic exchanges,
 * as QEMU does. Valid until the next replace or destroy.
 */
UVIRTIO_API
uint8_t *uvirtio_vhost_frontend_dirty_log(struct uvirtio_vhost_frontend *fe, size_t *size);

/**
 * uvirtio_vhost_frontend_destroy() - close the connection (the backend
 * sees it end), unmap guest memory and close every fd. Drivers probed on
 * the transport must have been removed first. NULL is ignored.
 */
UVIRTIO_API
void uvirtio_vhost_frontend_destroy(struct uvirtio_vhost_frontend *fe);

#endif
