/* SPDX-License-Identifier: MIT */
/*
 * Private to the net device, which is four files:
 *   net.c       set-up, device ops, the pairs' threads started and stopped,
 *               link status and the public functions;
 *   net_rxtx.c  a pair's thread: tx frames checked and passed to the
 *               backend, rx frames written into the driver's buffers;
 *   net_ctrl.c  the control queue (its own thread) and its commands;
 *   net_tap.c   the tap: opening it, offloads, attaching queues.
 */
#ifndef UVIRTIO_NET_PRIV_H
#define UVIRTIO_NET_PRIV_H

#include <net/if.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/net_dev.h"

#define NET_HIDDEN __attribute__((visibility("hidden")))

#define NET_HDR_LEN ((uint32_t)sizeof(struct virtio_net_hdr_v1))
#define NET_ETH_HLEN 14u
/* Iovecs for one tx chain (readv/writev take at most 1024) and for the rx
 * chains one frame spreads over. */
#define NET_TX_IOV_MAX 1024u
#define NET_RX_IOV_MAX 2048u
/* Frames a pair takes from a queue before it looks at the other one. */
#define NET_BUDGET 256u
/* The MAC filter table: more entries than this mean "accept all". */
#define NET_MAC_TABLE_MAX 64u
#define NET_VLAN_MAX 4096u

struct net_dev;

/* One rx/tx pair and its thread. */
struct net_pair {
	struct net_dev *net;
	unsigned index;
	struct uvirtio_devq *rxq, *txq;
	int tap_fd;        /* TAP: this pair's queue of the tap; else -1 */
	bool tap_attached; /* the tap queue takes frames for us */
	int wake_fd, stop_fd;

	/* Control thread: which of the two queues are started. */
	bool rx_on, tx_on;
	bool running;      /* the thread exists */
	pthread_t thread;
	bool stopping;     /* atomic */
	int rx_kick, tx_kick;

	/* The thread's own. */
	struct iovec *tx_iov;        /* NET_TX_IOV_MAX + 2 */
	struct iovec *rx_iov;        /* NET_RX_IOV_MAX, shared by the rx chains of a frame */
	struct uvirtio_req *rx_reqs; /* one per rx chain of a frame */
	struct uvirtio_used *tx_done, *rx_done;
	unsigned ntx_done, nrx_done;
	unsigned rx_reqs_max;        /* the rx queue's size */
	uint8_t *bounce;             /* NET_HDR_LEN + UVIRTIO_NET_FRAME_MAX */
	uint32_t pending_len;        /* TAP: a frame in bounce waits for rx buffers */
	uint32_t gen_seq;            /* GEN: frames made */
	bool rx_starved;             /* the last rx attempt found no buffer */

	struct uvirtio_net_dev_stats stats; /* written by the thread, read atomically */
};

struct net_ctrl {
	bool on, running;
	pthread_t thread;
	bool stopping;
	int kick_fd, wake_fd, stop_fd;
	struct uvirtio_devq *q;
	uint8_t *buf; /* one command's readable part */
	struct iovec iov[64];
};

struct net_dev {
	struct uvirtio_device dev;
	struct uvirtio_device_ops ops;
	struct virtio_net_config config; /* config space, little-endian */
	unsigned config_size;

	/* Set at init, read-only afterwards. */
	enum uvirtio_net_backend backend;
	char tap_name[IFNAMSIZ];
	bool tap_mq;              /* the tap was opened with IFF_MULTI_QUEUE */
	unsigned npairs;
	bool ctrl_vq;
	bool poll;
	uint64_t poll_ns;
	uint32_t frame_size;
	uint8_t gen_src[6];
	uint8_t init_mac[6];      /* the MAC the device starts with */

	/* Negotiated at FEATURES_OK (control thread), read by the pairs'
	 * threads, which start after it. */
	uint64_t features;
	bool mrg;

	/* Any thread, atomically. */
	bool link_up;
	unsigned active_pairs;    /* CTRL_MQ; npairs without MQ control */

	/* Under @lock: what the driver set through the control queue. */
	pthread_mutex_t lock;
	uint16_t status;          /* config's status, native order */
	uint8_t mac[6];
	struct uvirtio_net_dev_rx_mode mode;
	uint64_t vlans[NET_VLAN_MAX / 64];

	struct net_pair *pairs;
	struct net_ctrl ctrl;
};
UVIRTIO_OPAQUE_FITS(struct net_dev, struct uvirtio_net_dev);

static inline struct net_dev *net_dev_of(struct uvirtio_net_dev *p)
{
	return (struct net_dev *)p;
}

static inline const struct net_dev *net_dev_of_const(const struct uvirtio_net_dev *p)
{
	return (const struct net_dev *)p;
}

static inline bool net_has(const struct net_dev *net, unsigned bit)
{
	return net->features & (1ull << bit);
}

static inline void net_count(uint64_t *c, uint64_t n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

/* net_rxtx.c */
NET_HIDDEN void *net_pair_thread(void *arg);
/* Copy @len bytes from @iov (starting @skip bytes in) to @dst; returns the
 * bytes copied. */
NET_HIDDEN size_t net_iov_read(const struct iovec *iov, unsigned n, size_t skip, void *dst, size_t len);
NET_HIDDEN size_t net_iov_write(const struct iovec *iov, unsigned n, size_t skip, const void *src,
				size_t len);

/* net_ctrl.c */
NET_HIDDEN void *net_ctrl_thread(void *arg);
/* Publish @net->status and @net->mac in config space (lock held). */
NET_HIDDEN void net_config_publish(struct net_dev *net);
/* Attach or detach @p's tap queue as its rx queue and the active pairs say
 * (lock held). */
NET_HIDDEN void net_pair_sync_tap(struct net_pair *p);

/* net_tap.c */
NET_HIDDEN int net_tap_open(struct net_dev *net, unsigned pairs);
NET_HIDDEN void net_tap_close(struct net_dev *net);
NET_HIDDEN int net_tap_set_offload(struct net_dev *net, uint64_t features);
NET_HIDDEN void net_tap_attach(struct net_pair *p, bool on);

#endif
