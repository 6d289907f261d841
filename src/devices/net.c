// SPDX-License-Identifier: MIT
/*
 * virtio-net, device side: set-up, device ops, the pairs' threads started
 * and stopped with their queues, link status and the public functions.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../log/log_priv.h"
#include "net_priv.h"

static const uint8_t default_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static const struct uvirtio_feature_dep net_deps[] = {
	{ VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_CSUM },
	{ VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_CSUM },
	{ VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_CSUM },
	{ VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_CSUM },
	{ VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VQ },
	{ VIRTIO_NET_F_CTRL_VLAN, VIRTIO_NET_F_CTRL_VQ },
	{ VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_F_CTRL_VQ },
	{ VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_CTRL_VQ },
	{ VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_RX },
	/* Last: only where the device serves the control queue (over
	 * vhost-user QEMU does, and the backend sees MQ alone). */
	{ VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_VQ },
};

enum role { ROLE_NONE, ROLE_RX, ROLE_TX, ROLE_CTRL };

/* spec: rx of pair i is queue 2i, tx 2i+1; the control queue is 2N with
 * MQ and 2 without it. */
static enum role queue_role(struct net_dev *net, unsigned index, struct net_pair **pair)
{
	bool mq = uvirtio_device_has_feature(&net->dev, VIRTIO_NET_F_MQ);

	if (net->ctrl_vq) {
		if (index == (mq ? 2 * net->npairs : 2))
			return ROLE_CTRL;
		if (!mq && index >= 2)
			return ROLE_NONE;
	}
	if (index >= 2 * net->npairs)
		return ROLE_NONE;
	*pair = &net->pairs[index / 2];
	return index & 1 ? ROLE_TX : ROLE_RX;
}

/* Pairs' threads: one per pair while either of its queues runs. A queue
 * started or stopped restarts the thread with the new set. */

static void pair_stop_thread(struct net_pair *p)
{
	if (!p->running)
		return;
	__atomic_store_n(&p->stopping, true, __ATOMIC_RELEASE);
	eventfd_signal(p->stop_fd);
	pthread_join(p->thread, NULL);
	p->running = false;
}

static int pair_start_thread(struct net_pair *p)
{
	struct uvirtio_device *dev = &p->net->dev;
	int ret;

	if (!p->rx_on && !p->tx_on)
		return 0;
	p->rx_kick = uvirtio_device_queue_kick_fd(dev, 2 * p->index);
	p->tx_kick = uvirtio_device_queue_kick_fd(dev, 2 * p->index + 1);
	eventfd_drain(p->stop_fd);
	__atomic_store_n(&p->stopping, false, __ATOMIC_RELEASE);
	ret = -pthread_create(&p->thread, NULL, net_pair_thread, p);
	if (ret)
		return ret;
	p->running = true;
	return 0;
}

static void pair_set(struct net_pair *p, bool rx, bool on)
{
	pthread_mutex_lock(&p->net->lock);
	if (rx)
		p->rx_on = on;
	else
		p->tx_on = on;
	net_pair_sync_tap(p);
	pthread_mutex_unlock(&p->net->lock);
}

static int ctrl_start(struct net_dev *net, unsigned index)
{
	struct net_ctrl *c = &net->ctrl;
	int ret;

	c->q = uvirtio_device_queue(&net->dev, index);
	c->kick_fd = uvirtio_device_queue_kick_fd(&net->dev, index);
	eventfd_drain(c->stop_fd);
	__atomic_store_n(&c->stopping, false, __ATOMIC_RELEASE);
	ret = -pthread_create(&c->thread, NULL, net_ctrl_thread, net);
	if (!ret)
		c->running = true;
	return ret;
}

static void ctrl_stop(struct net_dev *net)
{
	struct net_ctrl *c = &net->ctrl;

	if (!c->running)
		return;
	__atomic_store_n(&c->stopping, true, __ATOMIC_RELEASE);
	eventfd_signal(c->stop_fd);
	pthread_join(c->thread, NULL);
	c->running = false;
}

static int net_queue_start(struct uvirtio_device *dev, unsigned index)
{
	struct net_dev *net = uvirtio_device_priv(dev);
	struct net_pair *p = NULL;
	enum role role = queue_role(net, index, &p);

	if (role == ROLE_CTRL)
		return ctrl_start(net, index);
	if (role == ROLE_NONE)
		return 0;
	pair_stop_thread(p);
	pair_set(p, role == ROLE_RX, true);
	return pair_start_thread(p);
}

static void net_queue_stop(struct uvirtio_device *dev, unsigned index)
{
	struct net_dev *net = uvirtio_device_priv(dev);
	struct net_pair *p = NULL;
	enum role role = queue_role(net, index, &p);

	if (role == ROLE_CTRL)
		ctrl_stop(net);
	if (role != ROLE_RX && role != ROLE_TX)
		return;
	pair_stop_thread(p);
	pair_set(p, role == ROLE_RX, false);
	/* The other queue of the pair goes on. A failure to restart its
	 * thread leaves that queue unserved until the next start. */
	if (pair_start_thread(p))
		uvirtio_log(UVIRTIO_LOG_ERR, "net: pair %u: cannot restart its thread", p->index);
}

/* A transport without kick fds: wake the queue's thread. */
static void net_queue_notify(struct uvirtio_device *dev, unsigned index)
{
	struct net_dev *net = uvirtio_device_priv(dev);
	struct net_pair *p = NULL;
	enum role role = queue_role(net, index, &p);

	if (role == ROLE_CTRL)
		eventfd_signal(net->ctrl.wake_fd);
	else if (role != ROLE_NONE)
		eventfd_signal(p->wake_fd);
}

/* Device ops. */

static int net_validate_features(struct uvirtio_device *dev, uint64_t f)
{
	(void)dev;
	/* spec: ECN needs one of the two TSO kinds, on either side. */
	if ((f & UVIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN)) &&
	    !(f & (UVIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) | UVIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6))))
		return -EINVAL;
	if ((f & UVIRTIO_BIT(VIRTIO_NET_F_HOST_ECN)) &&
	    !(f & (UVIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | UVIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6))))
		return -EINVAL;
	return 0;
}

static int net_start(struct uvirtio_device *dev)
{
	struct net_dev *net = uvirtio_device_priv(dev);

	net->features = uvirtio_device_accepted_features(dev);
	net->mrg = net_has(net, VIRTIO_NET_F_MRG_RXBUF);
	/* spec: with the control queue only the first pair runs until the
	 * driver asks for more; over vhost-user the front-end enables pairs. */
	__atomic_store_n(&net->active_pairs, net->ctrl_vq ? 1u : net->npairs, __ATOMIC_RELEASE);
	pthread_mutex_lock(&net->lock);
	net->mode.active_pairs = net->ctrl_vq ? 1u : net->npairs;
	pthread_mutex_unlock(&net->lock);
	if (net->backend == UVIRTIO_NET_BACKEND_TAP)
		return net_tap_set_offload(net, net->features);
	return 0;
}

static void net_reset(struct uvirtio_device *dev)
{
	struct net_dev *net = uvirtio_device_priv(dev);

	/* Every thread is gone (the core stopped each queue first). What the
	 * driver set goes back to what the device started with. */
	pthread_mutex_lock(&net->lock);
	net->features = 0;
	net->mrg = false;
	memcpy(net->mac, net->init_mac, 6);
	memset(&net->mode, 0, sizeof(net->mode));
	memset(net->vlans, 0, sizeof(net->vlans));
	net->status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
	/* No driver reads config space during a reset, and none must be told
	 * of this change: written directly. */
	memcpy(net->config.mac, net->init_mac, 6);
	net->config.status = htole16(net->status);
	pthread_mutex_unlock(&net->lock);
	for (unsigned i = 0; i < net->npairs; i++) {
		net->pairs[i].pending_len = 0;
		net->pairs[i].gen_seq = 0;
	}
}

static int net_set_mtu(struct uvirtio_device *dev, unsigned mtu)
{
	(void)dev;
	if (mtu < UVIRTIO_NET_MTU_MIN || mtu > UVIRTIO_NET_MTU_MAX)
		return -EINVAL;
	uvirtio_log(UVIRTIO_LOG_INFO, "net: the front-end gave the driver MTU %u", mtu);
	return 0;
}

/* Set-up. */

static uint64_t offered_features(const struct net_dev *net, unsigned mtu)
{
	uint64_t f = UVIRTIO_BIT(VIRTIO_NET_F_MAC) | UVIRTIO_BIT(VIRTIO_NET_F_STATUS) |
		     UVIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);

	if (mtu)
		f |= UVIRTIO_BIT(VIRTIO_NET_F_MTU);
	if (net->npairs > 1)
		f |= UVIRTIO_BIT(VIRTIO_NET_F_MQ);
	if (net->ctrl_vq)
		f |= UVIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | UVIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) |
		     UVIRTIO_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA) | UVIRTIO_BIT(VIRTIO_NET_F_CTRL_VLAN) |
		     UVIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) | UVIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);
	/* Offloads only where a backend takes them as they are: the tap both
	 * ways; the sink takes anything it is sent. */
	if (net->backend == UVIRTIO_NET_BACKEND_TAP || net->backend == UVIRTIO_NET_BACKEND_NULL)
		f |= UVIRTIO_BIT(VIRTIO_NET_F_CSUM) | UVIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
		     UVIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) | UVIRTIO_BIT(VIRTIO_NET_F_HOST_ECN);
	if (net->backend == UVIRTIO_NET_BACKEND_TAP)
		f |= UVIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | UVIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
		     UVIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) | UVIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN);
	return f;
}

static void pairs_free(struct net_dev *net, unsigned made)
{
	for (unsigned i = 0; i < made; i++) {
		struct net_pair *p = &net->pairs[i];

		if (p->wake_fd >= 0)
			close(p->wake_fd);
		if (p->stop_fd >= 0)
			close(p->stop_fd);
		free(p->tx_iov);
		free(p->rx_iov);
		free(p->rx_reqs);
		free(p->tx_done);
		free(p->rx_done);
		free(p->bounce);
	}
	free(net->pairs);
	net->pairs = NULL;
}

static int pair_init(struct net_dev *net, unsigned i)
{
	struct net_pair *p = &net->pairs[i];

	p->net = net;
	p->index = i;
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0 || p->stop_fd < 0)
		return -errno;
	/* Everything the data path needs, so it allocates nothing. */
	p->rx_reqs_max = UVIRTIO_NET_QUEUE_SIZE_MAX;
	p->tx_iov = calloc(NET_TX_IOV_MAX + 2, sizeof(*p->tx_iov));
	p->rx_iov = calloc(NET_RX_IOV_MAX, sizeof(*p->rx_iov));
	p->rx_reqs = calloc(p->rx_reqs_max, sizeof(*p->rx_reqs));
	p->tx_done = calloc(UVIRTIO_NET_QUEUE_SIZE_MAX, sizeof(*p->tx_done));
	p->rx_done = calloc(p->rx_reqs_max, sizeof(*p->rx_done));
	p->bounce = malloc(NET_HDR_LEN + UVIRTIO_NET_FRAME_MAX);
	if (!p->tx_iov || !p->rx_iov || !p->rx_reqs || !p->tx_done || !p->rx_done || !p->bounce)
		return -ENOMEM;
	return 0;
}

static int check_config(const struct uvirtio_net_dev_config *cfg)
{
	unsigned np = cfg->num_pairs ? cfg->num_pairs : 1;

	if (np > UVIRTIO_NET_PAIRS_MAX)
		return -EINVAL;
	if (cfg->mtu && (cfg->mtu < UVIRTIO_NET_MTU_MIN || cfg->mtu > UVIRTIO_NET_MTU_MAX))
		return -EINVAL;
	if (cfg->frame_size && (cfg->frame_size < UVIRTIO_NET_GEN_FRAME_MIN ||
				cfg->frame_size > UVIRTIO_NET_FRAME_MAX))
		return -EINVAL;
	/* A device's own address is never a group address. */
	if (cfg->mac && (cfg->mac[0] & 1))
		return -EINVAL;
	if (cfg->backend == UVIRTIO_NET_BACKEND_TAP &&
	    (!cfg->tap || !cfg->tap[0] || strlen(cfg->tap) >= IFNAMSIZ))
		return -EINVAL;
	if (cfg->backend > UVIRTIO_NET_BACKEND_GEN)
		return -EINVAL;
	return 0;
}

int uvirtio_net_dev_init(struct uvirtio_net_dev *public_net, const struct uvirtio_net_dev_config *cfg,
			 struct uvirtio_mem *mem)
{
	struct net_dev *net = net_dev_of(public_net);
	struct net_ctrl *c = &net->ctrl;
	unsigned made = 0, nq;
	int ret;

	memset(public_net, 0, sizeof(*public_net));
	c->wake_fd = c->stop_fd = -1;
	ret = check_config(cfg);
	if (ret)
		return ret;
	net->backend = cfg->backend;
	net->npairs = cfg->num_pairs ? cfg->num_pairs : 1;
	net->ctrl_vq = cfg->ctrl_vq;
	net->poll = cfg->poll;
	net->poll_ns = cfg->poll_us < 0 ? 0
		       : 1000ull * (uint64_t)(cfg->poll_us ? cfg->poll_us : UVIRTIO_NET_POLL_US_DEFAULT);
	net->frame_size = cfg->frame_size ? cfg->frame_size : UVIRTIO_NET_GEN_FRAME_DEFAULT;
	if (cfg->tap)
		memcpy(net->tap_name, cfg->tap, strlen(cfg->tap) + 1);
	memcpy(net->init_mac, cfg->mac ? cfg->mac : default_mac, 6);
	memcpy(net->mac, net->init_mac, 6);
	memcpy(net->gen_src, (const uint8_t[6]){ 0x02, 0x75, 0x76, 0x69, 0x72, 0x74 }, 6);
	net->link_up = !cfg->link_down;
	net->status = net->link_up ? VIRTIO_NET_S_LINK_UP : 0;
	net->active_pairs = net->npairs;
	pthread_mutex_init(&net->lock, NULL);

	ret = -ENOMEM;
	net->pairs = calloc(net->npairs, sizeof(*net->pairs));
	c->buf = malloc(2u * (4u + 6u * 256u) + 2u);
	if (!net->pairs || !c->buf)
		goto fail;
	/* Before any pair is set up: the failure path closes every tap fd. */
	for (unsigned i = 0; i < net->npairs; i++)
		net->pairs[i].tap_fd = -1;
	for (made = 0; made < net->npairs; made++) {
		ret = pair_init(net, made);
		if (ret) {
			made++;
			goto fail;
		}
	}
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0 || c->stop_fd < 0) {
		ret = -errno;
		goto fail;
	}
	if (net->backend == UVIRTIO_NET_BACKEND_TAP) {
		ret = net_tap_open(net, net->npairs);
		if (ret)
			goto fail;
	}

	memcpy(net->config.mac, net->mac, 6);
	net->config.status = htole16(net->status);
	net->config.max_virtqueue_pairs = htole16((uint16_t)net->npairs);
	net->config.mtu = htole16((uint16_t)cfg->mtu);
	net->config.speed = htole32(UINT32_MAX); /* unknown */
	net->config.duplex = 0xff;                /* unknown */
	/* Up to duplex: the RSS fields are for features not offered. */
	net->config_size = offsetof(struct virtio_net_config, rss_max_key_size);

	nq = 2 * net->npairs + (net->ctrl_vq ? 1 : 0);
	net->ops = (struct uvirtio_device_ops){
		.name = "net",
		.device_id = VIRTIO_ID_NET,
		.features = offered_features(net, cfg->mtu),
		.deps = net_deps,
		.ndeps = sizeof(net_deps) / sizeof(net_deps[0]) - (net->ctrl_vq ? 0 : 1),
		.num_queues = nq,
		.queue_max_size = UVIRTIO_NET_QUEUE_SIZE_MAX,
		.validate_features = net_validate_features,
		.start = net_start,
		.queue_notify = net_queue_notify,
		.queue_start = net_queue_start,
		.queue_stop = net_queue_stop,
		.takes_kick_fds = true,
		.reset = net_reset,
		.net_set_mtu = net_set_mtu,
	};
	ret = uvirtio_device_init(&net->dev, &net->ops, net, &net->config, net->config_size, mem);
	if (ret)
		goto fail;
	for (unsigned i = 0; i < net->npairs; i++) {
		net->pairs[i].rxq = uvirtio_device_queue(&net->dev, 2 * i);
		net->pairs[i].txq = uvirtio_device_queue(&net->dev, 2 * i + 1);
	}
	return 0;

fail:
	if (net->pairs && net->backend == UVIRTIO_NET_BACKEND_TAP)
		net_tap_close(net);
	if (net->pairs)
		pairs_free(net, made);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	free(c->buf);
	pthread_mutex_destroy(&net->lock);
	memset(public_net, 0, sizeof(*public_net));
	return ret;
}

void uvirtio_net_dev_destroy(struct uvirtio_net_dev *public_net)
{
	struct net_dev *net = net_dev_of(public_net);

	if (!net->pairs)
		return;
	/* Stops every thread. */
	uvirtio_device_destroy(&net->dev);
	net_tap_close(net);
	pairs_free(net, net->npairs);
	close(net->ctrl.wake_fd);
	close(net->ctrl.stop_fd);
	free(net->ctrl.buf);
	pthread_mutex_destroy(&net->lock);
	memset(public_net, 0, sizeof(*public_net));
}

struct uvirtio_device *uvirtio_net_dev_device(struct uvirtio_net_dev *net)
{
	return &net_dev_of(net)->dev;
}

int uvirtio_net_dev_set_link(struct uvirtio_net_dev *public_net, bool up)
{
	struct net_dev *net = net_dev_of(public_net);

	pthread_mutex_lock(&net->lock);
	/* net_dev.h: nothing changed, nothing published or notified. */
	if (__atomic_load_n(&net->link_up, __ATOMIC_ACQUIRE) == up) {
		pthread_mutex_unlock(&net->lock);
		return -EOPNOTSUPP;
	}
	__atomic_store_n(&net->link_up, up, __ATOMIC_RELEASE);
	if (up)
		net->status |= VIRTIO_NET_S_LINK_UP;
	else
		net->status &= (uint16_t)~VIRTIO_NET_S_LINK_UP;
	net_config_publish(net);
	pthread_mutex_unlock(&net->lock);
	for (unsigned i = 0; i < net->npairs; i++)
		eventfd_signal(net->pairs[i].wake_fd);
	return 0;
}

int uvirtio_net_dev_announce(struct uvirtio_net_dev *public_net)
{
	struct net_dev *net = net_dev_of(public_net);

	if (!uvirtio_device_has_feature(&net->dev, VIRTIO_NET_F_GUEST_ANNOUNCE))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&net->lock);
	net->status |= VIRTIO_NET_S_ANNOUNCE;
	net_config_publish(net);
	pthread_mutex_unlock(&net->lock);
	return 0;
}

void uvirtio_net_dev_mac(const struct uvirtio_net_dev *public_net, uint8_t out[6])
{
	struct net_dev *net = (struct net_dev *)net_dev_of_const(public_net);

	pthread_mutex_lock(&net->lock);
	memcpy(out, net->mac, 6);
	pthread_mutex_unlock(&net->lock);
}

void uvirtio_net_dev_get_rx_mode(const struct uvirtio_net_dev *public_net,
				 struct uvirtio_net_dev_rx_mode *out)
{
	struct net_dev *net = (struct net_dev *)net_dev_of_const(public_net);

	pthread_mutex_lock(&net->lock);
	*out = net->mode;
	if (!out->active_pairs)
		out->active_pairs = 1;
	pthread_mutex_unlock(&net->lock);
}

bool uvirtio_net_dev_vlan_allowed(const struct uvirtio_net_dev *public_net, unsigned vid)
{
	struct net_dev *net = (struct net_dev *)net_dev_of_const(public_net);
	bool on;

	if (vid >= NET_VLAN_MAX)
		return false;
	pthread_mutex_lock(&net->lock);
	on = net->vlans[vid / 64] & (1ull << (vid % 64));
	pthread_mutex_unlock(&net->lock);
	return on;
}

void uvirtio_net_dev_get_stats(const struct uvirtio_net_dev *public_net, struct uvirtio_net_dev_stats *out)
{
	const struct net_dev *net = net_dev_of_const(public_net);

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < net->npairs; i++) {
		const uint64_t *src = (const uint64_t *)&net->pairs[i].stats;
		uint64_t *dst = (uint64_t *)out;

		/* The struct is nothing but uint64_t counters. */
		for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
			dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
	}
}
