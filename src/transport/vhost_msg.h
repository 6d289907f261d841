/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user wire format (QEMU docs/interop/vhost-user.rst): message
 * header, payloads, request and flag constants, and sending and receiving a
 * message with its file descriptors (SCM_RIGHTS). Both ends of the protocol
 * use it (the backend transport now, a front-end later), so it holds no
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

/* SET/GET_VRING_BASE of a ring at its beginning. Packed rings carry the
 * avail position in bits 0-15 and the used one in 16-31, each with its wrap
 * counter in its top bit (QEMU's encoding); both counters start at 1. */
static inline uint32_t vhost_ring_start_base(bool packed)
{
	return packed ? 0x80008000u : 0;
}

/* Header flags. */
#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY_MASK 0x4u
#define VHOST_USER_NEED_REPLY_MASK 0x8u

#define VHOST_USER_HDR_SIZE 12u
/* The most fds one message carries (QEMU's VHOST_MEMORY_BASELINE_NREGIONS). */
#define VHOST_USER_MAX_FDS 8u
/* Regions in one SET_MEM_TABLE. */
#define VHOST_USER_MEM_TABLE_MAX 8u
#define VHOST_USER_CONFIG_HDR_SIZE 12u
#define VHOST_USER_CONFIG_MAX 256u
/* Payload bytes accepted in one message: more than any request defines, so
 * an unknown request of moderate size can be skipped; more is a framing
 * error. */
#define VHOST_USER_PAYLOAD_MAX 4096u

/* SET_VRING_KICK/CALL/ERR payload: ring index and "no fd attached". */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)

/* SET_VRING_ADDR flags: the ring is logged (needs LOG_ALL). */
#define VHOST_USER_VRING_F_LOG 0x1u

/* SET_CONFIG flags. */
#define VHOST_USER_CONFIG_WRITABLE 0x0u
#define VHOST_USER_CONFIG_MIGRATION 0x1u

/* The virtio feature bit that says protocol features exist. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
/* vhost's dirty-log feature bit (migration). */
#define VHOST_F_LOG_ALL 26

enum vhost_user_protocol_feature {
	VHOST_USER_PROTOCOL_F_MQ = 0,
	VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1,
	VHOST_USER_PROTOCOL_F_RARP = 2,
	VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,
	VHOST_USER_PROTOCOL_F_NET_MTU = 4,
	VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5,
	VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6,
	VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7,
	VHOST_USER_PROTOCOL_F_PAGEFAULT = 8,
	VHOST_USER_PROTOCOL_F_CONFIG = 9,
	VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10,
	VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11,
	VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12,
	VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
	VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
	VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
	VHOST_USER_PROTOCOL_F_STATUS = 16,
};

/* Front-end to back-end requests. */
enum vhost_user_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21, /* formerly SET_SLAVE_REQ_FD */
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_SET_VRING_ENDIAN = 23,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_CREATE_CRYPTO_SESSION = 26,
	VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GPU_SET_SOCKET = 33,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_VRING_KICK = 35,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_REQUEST_MAX = 41,
};

/* Back-end to front-end requests (the channel SET_BACKEND_REQ_FD gives). */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
};

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

union vhost_user_payload {
	uint64_t u64;
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
 * uvirtio_vhost_msg_check_request() - whether a front-end request @m has the
 * payload size and fd count its request type defines.
 *
 * Return: 0 when it does; -EBADMSG when the size is wrong; -EBADF when the
 * fd count is wrong; -ENOSYS for a request this module does not describe
 * (the caller decides what an unknown request gets).
 */
int uvirtio_vhost_msg_check_request(const struct uvirtio_vhost_msg *m);

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
