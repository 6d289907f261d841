/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user wire format (QEMU docs/interop/vhost-user.rst): message
 * header, payloads, and sending and receiving a message with its file
 * descriptors (SCM_RIGHTS); the protocol's numbers are public, in
 * uvirtio/vhost_user.h. Both ends of the protocol use it, so it holds no
 * connection state: it frames bytes and checks sizes, nothing more.
 *
 * Every field arrives from a peer that may be hostile: uvirtio_vhost_msg_recv()
 * bounds the payload by the largest message the protocol defines, and
 * uvirtio_vhost_msg_check_request() checks a request's payload size and fd
 * count against what that request defines before a handler reads a field.
 *
 * Thread rules: none of these functions keeps state; two threads must not
 * send or receive on one socket at once.
 */
#ifndef UVIRTIO_VHOST_MSG_H
#define UVIRTIO_VHOST_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "uvirtio/vhost_user.h"

/* SET/GET_VRING_BASE of a ring at its beginning. Packed rings carry the
 * avail position in bits 0-15 and the used one in 16-31, each with its wrap
 * counter in its top bit (QEMU's encoding); both counters start at 1. */
static inline uint32_t vhost_ring_start_base(bool packed)
{
	return packed ? 0x80008000u : 0;
}

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* payload bytes that follow */
};

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;
	/* The front-end's virtual addresses of the ring parts. */
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
};

struct vhost_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

struct vhost_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_USER_MEM_TABLE_MAX];
};

struct vhost_user_mem_reg {
	uint64_t padding;
	struct vhost_user_mem_region region;
};

struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VHOST_USER_CONFIG_MAX];
};

/* SET_LOG_BASE: where the dirty log is in the fd that comes with it. */
struct vhost_user_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

/* GET_INFLIGHT_FD (asked: num_queues, queue_size; answered: mmap_size,
 * mmap_offset, with the region's fd) and SET_INFLIGHT_FD (all four, with
 * the fd). 24 bytes on the wire: QEMU and DPDK send the struct with its
 * tail padding. */
struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t padding;
};

union vhost_user_payload {
	uint64_t u64;
	struct vhost_user_inflight inflight;
	struct vhost_user_log log;
	struct vhost_user_vring_state state;
	struct vhost_user_vring_addr addr;
	struct vhost_user_mem_table mem_table;
	struct vhost_user_mem_reg mem_reg;
	struct vhost_user_config config;
	uint8_t raw[VHOST_USER_PAYLOAD_MAX];
};

/* One message as it travels: header, hdr.size bytes of payload, and the
 * fds that came with it (owned by whoever holds the message). */
struct uvirtio_vhost_msg {
	struct vhost_user_hdr hdr;
	union vhost_user_payload payload;
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
};

/**
 * uvirtio_vhost_msg_recv() - read one message from stream socket @sock.
 * @sock:      a connected AF_UNIX stream socket.
 * @m:         filled in; on success its fds are the caller's to close.
 * @cancel_fd: an fd that becomes readable when the wait must end (e.g. a
 *             stop eventfd), or -1. A peer that sends half a message and
 *             stalls cannot hold the caller past it.
 *
 * Return: 0; -ECONNRESET when the peer closed the connection between
 * messages; -EPROTO when the peer closed it inside a message, sent more
 * than VHOST_USER_MAX_FDS fds or a payload over VHOST_USER_PAYLOAD_MAX;
 * -ECANCELED when @cancel_fd became readable; or recvmsg's negative errno.
 * On error every fd received is closed.
 */
int uvirtio_vhost_msg_recv(int sock, struct uvirtio_vhost_msg *m, int cancel_fd);

/**
 * uvirtio_vhost_msg_send() - write @m (header, m->hdr.size payload bytes and
 * m->nfds fds) to @sock. The fds stay the caller's.
 * @cancel_fd: as for uvirtio_vhost_msg_recv(); a peer that stops reading
 *             cannot hold the caller past it.
 *
 * Return: 0; -EINVAL for a size over VHOST_USER_PAYLOAD_MAX or too many fds;
 * -ECANCELED; -EPIPE or another negative errno from sendmsg.
 */
int uvirtio_vhost_msg_send(int sock, const struct uvirtio_vhost_msg *m, int cancel_fd);

/**
 * uvirtio_vhost_msg_send_nowait() - write @m as uvirtio_vhost_msg_send() does,
 * but without waiting: for a thread that must not block on a peer that has
 * stopped reading (a notification may be lost, the thread is not).
 *
 * Return: 0; -EAGAIN when the socket could not take the whole message at
 * once (part of it may have gone); -EINVAL as for uvirtio_vhost_msg_send();
 * or sendmsg's negative errno.
 */
int uvirtio_vhost_msg_send_nowait(int sock, const struct uvirtio_vhost_msg *m);

/**
 * uvirtio_vhost_msg_check_request() - whether a front-end request @m has the
 * payload size and fd count its request type defines.
 *
 * Return: 0 when it does; -EPROTO when it has the REPLY flag set (it is no
 * request); -EBADMSG when the size is wrong; -EBADF when the fd count is
 * wrong; -ENOSYS for a request this module does not describe (the caller
 * decides what an unknown request gets).
 */
int uvirtio_vhost_msg_check_request(const struct uvirtio_vhost_msg *m);

/**
 * uvirtio_vhost_msg_check_reply() - whether @m, received by the front-end
 * after sending @request, is that request's reply in form (its size is the
 * caller's to check: it depends on what was asked).
 *
 * Return: 0 when it is; -EBADF when it carries fds; -ENOMSG when it answers
 * another request; -EBADMSG when it lacks the REPLY flag.
 */
int uvirtio_vhost_msg_check_reply(const struct uvirtio_vhost_msg *m, uint32_t request);

/**
 * uvirtio_vhost_msg_has_reply() - whether request @request always gets a
 * reply of its own (GET_* requests), whatever NEED_REPLY says.
 */
bool uvirtio_vhost_msg_has_reply(uint32_t request);

/** uvirtio_vhost_msg_request_name() - "SET_MEM_TABLE" etc., or "UNKNOWN". */
const char *uvirtio_vhost_msg_request_name(uint32_t request);

/** uvirtio_vhost_msg_close_fds() - close @m's fds and forget them. */
void uvirtio_vhost_msg_close_fds(struct uvirtio_vhost_msg *m);

#endif
