/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user protocol's numbers (QEMU docs/interop/vhost-user.rst): the
 * request codes of both directions, the protocol feature bits, the header
 * flags and the size limits this library enforces. The backend, the
 * front-end, `uvirtio check` and the tests all take them from here.
 *
 * Names: these are the spec's own names (VHOST_USER_*), not uvirtio_*, so
 * that a reader can grep them in vhost-user.rst, QEMU and DPDK, and because
 * the library used them before this header was public. The price: this
 * header and another vhost-user header that defines the same names
 * (libvhost-user.h, QEMU's or DPDK's private ones) cannot be included in
 * one translation unit. VHOST_F_LOG_ALL is defined exactly as
 * <linux/vhost_types.h> defines it, so those two may be mixed.
 *
 * The message layouts (header and payload structs) are not here: the
 * library frames and checks messages itself, and a program that uses
 * uvirtio_vhost_backend_* or uvirtio_vhost_frontend_* never sees one.
 */
#ifndef UVIRTIO_VHOST_USER_H
#define UVIRTIO_VHOST_USER_H

/* Header flags (the message header's second u32). */
/* The protocol version every message carries in bits 0-1. */
#define VHOST_USER_VERSION 0x1u
/* The bits of the header flags that hold the version. */
#define VHOST_USER_VERSION_MASK 0x3u
/* Set on a reply: the message answers the request of the same code. */
#define VHOST_USER_REPLY_MASK 0x4u
/* Set on a request whose sender wants an ack (with REPLY_ACK negotiated). */
#define VHOST_USER_NEED_REPLY_MASK 0x8u

/* Size limits. */
/* Bytes of the message header: request, flags, payload size (u32 each). */
#define VHOST_USER_HDR_SIZE 12u
/* The most fds one message carries (QEMU's VHOST_MEMORY_BASELINE_NREGIONS);
 * a message with more is a framing error. */
#define VHOST_USER_MAX_FDS 8u
/* The most regions one SET_MEM_TABLE describes. */
#define VHOST_USER_MEM_TABLE_MAX 8u
/* Bytes of the GET_CONFIG/SET_CONFIG header: offset, size, flags. */
#define VHOST_USER_CONFIG_HDR_SIZE 12u
/* The most config-space bytes one GET_CONFIG/SET_CONFIG carries. */
#define VHOST_USER_CONFIG_MAX 256u
/* Payload bytes accepted in one message: more than any request defines, so
 * an unknown request of moderate size can be skipped; more is a framing
 * error. */
#define VHOST_USER_PAYLOAD_MAX 4096u

/* SET_VRING_KICK/CALL/ERR payload (a u64): the ring index in bits 0-7 and,
 * in bit 8, "no fd attached" (the ring is then polled, or not signalled). */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)

/* SET_VRING_ADDR flags: the used ring is logged at log_guest_addr (needs
 * VHOST_F_LOG_ALL). */
#define VHOST_USER_VRING_F_LOG 0x1u

/* SET_CONFIG flags: a write the driver made, or one a migration replays. */
#define VHOST_USER_CONFIG_WRITABLE 0x0u
#define VHOST_USER_CONFIG_MIGRATION 0x1u

/* The virtio feature bit (GET_FEATURES) that says protocol features exist. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
/* vhost's dirty-log feature bit: SET_FEATURES with it turns logging on. */
#define VHOST_F_LOG_ALL 26

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES), as bit numbers. */
enum vhost_user_protocol_feature {
	VHOST_USER_PROTOCOL_F_MQ = 0,              /* several queues, GET_QUEUE_NUM */
	VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1,       /* SET_LOG_BASE carries an fd */
	VHOST_USER_PROTOCOL_F_RARP = 2,            /* SEND_RARP */
	VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,       /* NEED_REPLY is honoured */
	VHOST_USER_PROTOCOL_F_NET_MTU = 4,         /* NET_SET_MTU */
	VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5,     /* SET_BACKEND_REQ_FD */
	VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6,    /* SET_VRING_ENDIAN */
	VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7,  /* CREATE/CLOSE_CRYPTO_SESSION */
	VHOST_USER_PROTOCOL_F_PAGEFAULT = 8,       /* POSTCOPY_* */
	VHOST_USER_PROTOCOL_F_CONFIG = 9,          /* GET_CONFIG/SET_CONFIG */
	VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10, /* the backend channel passes fds */
	VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11,  /* VRING_HOST_NOTIFIER_MSG */
	VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12, /* GET/SET_INFLIGHT_FD */
	VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,   /* RESET_DEVICE */
	VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14, /* VRING_KICK in band */
	VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15, /* GET_MAX_MEM_SLOTS, ADD/REM_MEM_REG */
	VHOST_USER_PROTOCOL_F_STATUS = 16,         /* SET_STATUS/GET_STATUS */
};

/* Front-end to back-end requests (the header's first u32). */
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
	VHOST_USER_REQUEST_MAX = 41, /* one past the last request defined */
};

/* Back-end to front-end requests (on the channel SET_BACKEND_REQ_FD gives). */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
};

#endif
