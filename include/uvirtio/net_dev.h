/* SPDX-License-Identifier: MIT */
/*
 * virtio-net, device side (device ID 1): rx/tx queue pairs served by a
 * thread each, in front of a packet backend: a tap interface (the host's
 * network stack), a reflector (every frame the driver sends comes back with
 * its MAC addresses swapped), a sink (tx dropped, no rx) or a generator (every
 * rx buffer filled with a synthetic frame). The header is the VERSION_1 one,
 * struct virtio_net_hdr_v1 (12 bytes). Offloads (checksum, TSO, ECN) are
 * passed to the tap as they are, never computed here; the other backends
 * offer none.
 *
 * Queues: rx of pair i is queue 2i, tx 2i+1; with a control queue (@ctrl_vq,
 * on transports where the device serves it: loopback, mmio, pci) it is
 * queue 2N. Over vhost-user QEMU serves the control queue, MAC and link
 * status itself and enables pairs with SET_VRING_ENABLE: set ctrl_vq false.
 *
 * Frames come from a hostile driver: each tx header is copied once into
 * local memory and checked against the negotiated features; a bad packet
 * (short or malformed header, checksum range outside the packet, GSO not
 * negotiated or inconsistent, a frame over UVIRTIO_NET_FRAME_MAX bytes, an
 * empty frame, num_buffers set without MRG_RXBUF) and an rx chain too short
 * for a header are dropped and counted, and the queue goes on; only a
 * malformed ring breaks a queue. Nothing is allocated per packet.
 *   struct uvirtio_net_dev net;
 *   struct uvirtio_net_dev_config cfg = { .backend = UVIRTIO_NET_BACKEND_REFLECT,
 *                                         .ctrl_vq = true };
 *   uvirtio_net_dev_init(&net, &cfg, mem);
 *   ... hand uvirtio_net_dev_device(&net) to a transport ...
 *   uvirtio_net_dev_destroy(&net);
 */
#ifndef UVIRTIO_NET_DEV_H
#define UVIRTIO_NET_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_net.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"

/* The most queue pairs a device may have. */
#define UVIRTIO_NET_PAIRS_MAX 16u
/* QEMU's virtio-net rx/tx_queue_size go up to 1024, and so do ours. */
#define UVIRTIO_NET_QUEUE_SIZE_MAX 1024u
/* The largest frame (without the virtio header) taken from or given to a
 * driver: a 64 KiB GSO packet with its Ethernet and VLAN headers. */
#define UVIRTIO_NET_FRAME_MAX (65536u + 14u + 4u)
/* The MTU range offered with VIRTIO_NET_F_MTU (68: IPv4's minimum). */
#define UVIRTIO_NET_MTU_MIN 68u
#define UVIRTIO_NET_MTU_MAX 65535u
/* --frame-size of the generator by default, and its range. */
#define UVIRTIO_NET_GEN_FRAME_DEFAULT 64u
#define UVIRTIO_NET_GEN_FRAME_MIN 60u
/* How long a pair's thread polls before sleeping, by default. */
#define UVIRTIO_NET_POLL_US_DEFAULT 32

enum uvirtio_net_backend {
	UVIRTIO_NET_BACKEND_TAP,     /* a tap interface, one fd per pair */
	UVIRTIO_NET_BACKEND_REFLECT, /* tx comes back on rx, MACs swapped */
	UVIRTIO_NET_BACKEND_NULL,    /* tx dropped, no rx */
	UVIRTIO_NET_BACKEND_GEN,     /* rx filled with synthetic frames, tx dropped */
};

struct uvirtio_net_dev_config {
	enum uvirtio_net_backend backend;
	/* TAP: the interface's name, created if it does not exist (with
	 * IFF_MULTI_QUEUE when @num_pairs > 1); copied at init. */
	const char *tap;
	unsigned num_pairs;     /* 0: 1; more than 1 offers VIRTIO_NET_F_MQ */
	const uint8_t *mac;     /* 6 bytes, offered with VIRTIO_NET_F_MAC; NULL: 52:54:00:12:34:56 */
	unsigned mtu;           /* 0: no VIRTIO_NET_F_MTU; else 68 to 65535 */
	unsigned frame_size;    /* GEN: bytes per frame; 0: UVIRTIO_NET_GEN_FRAME_DEFAULT */
	bool ctrl_vq;           /* the device serves a control queue (not over vhost-user) */
	bool link_down;         /* start with the link down (VIRTIO_NET_F_STATUS) */
	bool poll;              /* pair threads busy-poll, never sleep */
	/* When a pair runs dry its thread keeps looking this long before it
	 * sleeps. 0: UVIRTIO_NET_POLL_US_DEFAULT; negative: sleep at once. */
	int poll_us;
};

/* What the device did since init. Dropped packets are counted by reason. */
struct uvirtio_net_dev_stats {
	uint64_t tx_packets, tx_bytes;  /* taken from the driver and passed on */
	uint64_t rx_packets, rx_bytes;  /* given to the driver */
	uint64_t tx_bad_header;   /* header under 12 bytes or with unknown flags */
	uint64_t tx_bad_csum;     /* NEEDS_CSUM not negotiated, or csum_start/offset outside the frame */
	uint64_t tx_bad_gso;      /* gso_type not negotiated, gso_size 0 or over the frame */
	uint64_t tx_bad_size;     /* empty frame, or over UVIRTIO_NET_FRAME_MAX */
	uint64_t tx_bad_num_buffers; /* num_buffers set without MRG_RXBUF */
	uint64_t tx_backend_errors;  /* the backend refused the frame (tap write failed) */
	uint64_t rx_bad_chain;    /* rx chains too short for a header (or not writable), given back empty */
	uint64_t rx_dropped;      /* frames for the driver dropped: no rx buffer, or too large for them */
	uint64_t ctrl_commands;   /* control queue commands answered OK */
	uint64_t ctrl_errors;     /* control queue commands answered ERR */
};

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_net_dev {
	UVIRTIO_OPAQUE(4096); /* holds a struct uvirtio_device */
};

/**
 * uvirtio_net_dev_init() - open the backend and set a virtio-net device up.
 * @net: the device, owned by the caller; must not move after init.
 * @cfg: what to serve; copied (strings too).
 * @mem: guest memory the queues use (the transport's).
 * Call on the control thread.
 * Return: 0; -EINVAL for a bad config (no tap name, too many pairs, an MTU
 * or frame size out of range, a multicast MAC); for the tap, the errno of
 * opening /dev/net/tun or TUNSETIFF (-ENOENT: no /dev/net/tun; -EPERM: not
 * allowed to create or attach it; -EBUSY: the name is taken by another
 * kind of interface or without IFF_MULTI_QUEUE/IFF_VNET_HDR); -ENOMEM; or
 * uvirtio_device_init()'s error.
 */
UVIRTIO_API
int uvirtio_net_dev_init(struct uvirtio_net_dev *net, const struct uvirtio_net_dev_config *cfg,
			 struct uvirtio_mem *mem);

/**
 * uvirtio_net_dev_destroy() - reset the device (every pair's thread
 * finishes and exits), close the backend and free what init allocated. Call
 * on the control thread, after the transport let go of the device.
 */
UVIRTIO_API
void uvirtio_net_dev_destroy(struct uvirtio_net_dev *net);

/**
 * uvirtio_net_dev_device() - the device core inside @net, to hand to a
 * transport. Owned by @net, valid until uvirtio_net_dev_destroy().
 */
UVIRTIO_API
struct uvirtio_device *uvirtio_net_dev_device(struct uvirtio_net_dev *net);

/**
 * uvirtio_net_dev_set_link() - the link goes up or down: VIRTIO_NET_S_LINK_UP
 * in config space changes and, when the driver runs, a configuration-change
 * notification is sent. While down nothing is given to the driver's rx
 * queues, and tx frames are dropped (counted as tx_backend_errors). Any thread.
 * Return: 0, or -EOPNOTSUPP when nothing changed.
 */
UVIRTIO_API
int uvirtio_net_dev_set_link(struct uvirtio_net_dev *net, bool up);

/**
 * uvirtio_net_dev_announce() - ask the driver to announce itself (after a
 * migration): sets VIRTIO_NET_S_ANNOUNCE and notifies; the driver clears it
 * with the control queue's ANNOUNCE_ACK. Any thread.
 * Return: 0, or -EOPNOTSUPP when VIRTIO_NET_F_GUEST_ANNOUNCE was not
 * negotiated (it needs the control queue).
 */
UVIRTIO_API
int uvirtio_net_dev_announce(struct uvirtio_net_dev *net);

/**
 * uvirtio_net_dev_mac() - the MAC address the driver uses now (config space's,
 * or the last CTRL_MAC_ADDR_SET), into @out (6 bytes). Any thread.
 */
UVIRTIO_API
void uvirtio_net_dev_mac(const struct uvirtio_net_dev *net, uint8_t out[6]);

/* The receive filter the driver set through the control queue. */
struct uvirtio_net_dev_rx_mode {
	bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
	unsigned active_pairs;    /* VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, or 1 */
	unsigned uc_entries, mc_entries; /* MAC table sizes */
	unsigned vlans;           /* VLAN ids in the filter */
};

/**
 * uvirtio_net_dev_get_rx_mode() - what the control queue has set, for tests
 * and reports. Any thread.
 */
UVIRTIO_API
void uvirtio_net_dev_get_rx_mode(const struct uvirtio_net_dev *net, struct uvirtio_net_dev_rx_mode *out);

/**
 * uvirtio_net_dev_vlan_allowed() - whether VLAN @vid is in the filter.
 */
UVIRTIO_API
bool uvirtio_net_dev_vlan_allowed(const struct uvirtio_net_dev *net, unsigned vid);

/**
 * uvirtio_net_dev_get_stats() - add up the counters of every pair into @out.
 * Any thread while the pairs run (each counter read atomically).
 */
UVIRTIO_API
void uvirtio_net_dev_get_stats(const struct uvirtio_net_dev *net, struct uvirtio_net_dev_stats *out);

/**
 * uvirtio_net_dev_check_tx_hdr() - check a driver's tx header for a frame of
 * @frame_len bytes against negotiated @features, as the tx path does.
 * @hdr: a local copy of the 12-byte header.
 * Return: 0 when the frame may pass; otherwise the reason as a negative
 * errno: -EBADMSG (flags), -EPROTO (checksum), -EOPNOTSUPP (GSO type not
 * negotiated), -EINVAL (GSO size), -EMSGSIZE (frame size), -EBADE
 * (num_buffers). For tests and fuzzing.
 */
UVIRTIO_API
int uvirtio_net_dev_check_tx_hdr(const struct virtio_net_hdr_v1 *hdr, uint32_t frame_len,
				 uint64_t features);

#endif
