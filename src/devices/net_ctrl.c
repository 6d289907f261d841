// SPDX-License-Identifier: MIT
/*
 * The control queue (VIRTIO_NET_F_CTRL_VQ), on a thread of its own: receive
 * modes, the MAC table and address, the VLAN filter, announce
 * acknowledgements and the number of queue pairs. Each command's readable
 * part is copied once into local memory and checked; a command that is
 * malformed, unknown or not negotiated is answered VIRTIO_NET_ERR.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "../core/eventfd.h"
#include "net_priv.h"

/* The largest command taken: two full MAC tables and their counts. */
#define CTRL_BUF_MAX (2u * (4u + 6u * 256u) + 2u)

void net_config_publish(struct net_dev *net)
{
	uint8_t head[8];
	uint16_t st = htole16(net->status);

	/* mac (0-5) and status (6-7), in one update and one notification. */
	memcpy(head, net->mac, 6);
	memcpy(head + 6, &st, 2);
	(void)uvirtio_device_config_update(&net->dev, 0, head, sizeof(head));
}

static uint8_t ctrl_rx(struct net_dev *net, uint8_t cmd, const uint8_t *d, uint32_t len)
{
	bool on;

	if (len != 1 || d[0] > 1)
		return VIRTIO_NET_ERR;
	if (cmd <= VIRTIO_NET_CTRL_RX_ALLMULTI ? !net_has(net, VIRTIO_NET_F_CTRL_RX)
					       : !net_has(net, VIRTIO_NET_F_CTRL_RX_EXTRA))
		return VIRTIO_NET_ERR;
	on = d[0];
	switch (cmd) {
	case VIRTIO_NET_CTRL_RX_PROMISC:
		net->mode.promisc = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLMULTI:
		net->mode.allmulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLUNI:
		net->mode.alluni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOMULTI:
		net->mode.nomulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOUNI:
		net->mode.nouni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOBCAST:
		net->mode.nobcast = on;
		break;
	default:
		return VIRTIO_NET_ERR;
	}
	return VIRTIO_NET_OK;
}

/* One table of VIRTIO_NET_CTRL_MAC_TABLE_SET at @d: le32 entries, then the
 * addresses. Returns the bytes it takes, or 0 when it runs past @len. */
static uint32_t mac_table(const uint8_t *d, uint32_t len, unsigned *entries)
{
	uint32_t n;

	if (len < 4)
		return 0;
	memcpy(&n, d, 4);
	n = le32toh(n);
	if (n > (len - 4) / 6)
		return 0;
	*entries = n;
	return 4 + 6 * n;
}

static uint8_t ctrl_mac(struct net_dev *net, uint8_t cmd, const uint8_t *d, uint32_t len)
{
	unsigned uc, mc;
	uint32_t a, b;

	switch (cmd) {
	case VIRTIO_NET_CTRL_MAC_ADDR_SET:
		if (!net_has(net, VIRTIO_NET_F_CTRL_MAC_ADDR) || len != 6 || (d[0] & 1))
			return VIRTIO_NET_ERR;
		memcpy(net->mac, d, 6);
		/* spec: with VIRTIO_NET_F_MAC config space shows it too. */
		if (net_has(net, VIRTIO_NET_F_MAC))
			net_config_publish(net);
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_MAC_TABLE_SET:
		if (!net_has(net, VIRTIO_NET_F_CTRL_RX))
			return VIRTIO_NET_ERR;
		a = mac_table(d, len, &uc);
		b = a ? mac_table(d + a, len - a, &mc) : 0;
		if (!a || !b || a + b != len)
			return VIRTIO_NET_ERR;
		net->mode.uc_entries = uc;
		net->mode.mc_entries = mc;
		return VIRTIO_NET_OK;
	}
	return VIRTIO_NET_ERR;
}

static uint8_t ctrl_vlan(struct net_dev *net, uint8_t cmd, const uint8_t *d, uint32_t len)
{
	uint16_t vid;
	uint64_t bit;
	bool had;

	if (!net_has(net, VIRTIO_NET_F_CTRL_VLAN) || len != 2)
		return VIRTIO_NET_ERR;
	memcpy(&vid, d, 2);
	vid = le16toh(vid);
	if (vid >= NET_VLAN_MAX || cmd > VIRTIO_NET_CTRL_VLAN_DEL)
		return VIRTIO_NET_ERR;
	bit = 1ull << (vid % 64);
	had = net->vlans[vid / 64] & bit;
	if (cmd == VIRTIO_NET_CTRL_VLAN_ADD && !had) {
		net->vlans[vid / 64] |= bit;
		net->mode.vlans++;
	} else if (cmd == VIRTIO_NET_CTRL_VLAN_DEL && had) {
		net->vlans[vid / 64] &= ~bit;
		net->mode.vlans--;
	}
	return VIRTIO_NET_OK;
}

/* A pair's tap queue takes frames while its rx queue runs and it is one of
 * the active pairs. Lock held. */
void net_pair_sync_tap(struct net_pair *p)
{
	net_tap_attach(p, p->rx_on && p->index < __atomic_load_n(&p->net->active_pairs, __ATOMIC_ACQUIRE));
}

static uint8_t ctrl_mq(struct net_dev *net, uint8_t cmd, const uint8_t *d, uint32_t len)
{
	uint16_t n;

	if (!net_has(net, VIRTIO_NET_F_MQ) || cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || len != 2)
		return VIRTIO_NET_ERR;
	memcpy(&n, d, 2);
	n = le16toh(n);
	if (n < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || n > net->npairs)
		return VIRTIO_NET_ERR;
	__atomic_store_n(&net->active_pairs, n, __ATOMIC_RELEASE);
	net->mode.active_pairs = n;
	for (unsigned i = 0; i < net->npairs; i++) {
		net_pair_sync_tap(&net->pairs[i]);
		eventfd_signal(net->pairs[i].wake_fd);
	}
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_command(struct net_dev *net, uint8_t cls, uint8_t cmd, const uint8_t *d, uint32_t len)
{
	uint8_t ack = VIRTIO_NET_ERR;

	pthread_mutex_lock(&net->lock);
	switch (cls) {
	case VIRTIO_NET_CTRL_RX:
		ack = ctrl_rx(net, cmd, d, len);
		break;
	case VIRTIO_NET_CTRL_MAC:
		ack = ctrl_mac(net, cmd, d, len);
		break;
	case VIRTIO_NET_CTRL_VLAN:
		ack = ctrl_vlan(net, cmd, d, len);
		break;
	case VIRTIO_NET_CTRL_ANNOUNCE:
		if (net_has(net, VIRTIO_NET_F_GUEST_ANNOUNCE) && cmd == VIRTIO_NET_CTRL_ANNOUNCE_ACK &&
		    !len) {
			net->status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
			net_config_publish(net);
			ack = VIRTIO_NET_OK;
		}
		break;
	case VIRTIO_NET_CTRL_MQ:
		ack = ctrl_mq(net, cmd, d, len);
		break;
	}
	pthread_mutex_unlock(&net->lock);
	return ack;
}

/* One command chain: class and command, data, then the ack byte. Returns
 * the used length. */
static uint32_t ctrl_serve(struct net_dev *net, const struct uvirtio_req *r)
{
	struct net_ctrl *c = &net->ctrl;
	uint8_t ack = VIRTIO_NET_ERR;

	if (!r->in_len) {
		net_count(&net->pairs[0].stats.ctrl_errors, 1);
		return 0;
	}
	if (r->out_len >= 2 && r->out_len <= CTRL_BUF_MAX) {
		net_iov_read(r->iov, r->n_out, 0, c->buf, r->out_len);
		ack = ctrl_command(net, c->buf[0], c->buf[1], c->buf + 2, r->out_len - 2);
	}
	net_count(ack == VIRTIO_NET_OK ? &net->pairs[0].stats.ctrl_commands : &net->pairs[0].stats.ctrl_errors, 1);
	net_iov_write(r->iov + r->n_out, r->n_in, 0, &ack, 1);
	return 1;
}

void *net_ctrl_thread(void *arg)
{
	struct net_dev *net = arg;
	struct net_ctrl *c = &net->ctrl;
	unsigned index = net_has(net, VIRTIO_NET_F_MQ) ? 2 * net->npairs : 2;

	uvirtio_devq_disable_notify(c->q);
	while (!__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE)) {
		struct uvirtio_req r;
		bool served = false;
		int ret;

		for (;;) {
			uvirtio_req_init(&r, c->iov, sizeof(c->iov) / sizeof(c->iov[0]));
			ret = uvirtio_devq_pop(c->q, &r);
			if (ret <= 0)
				break;
			/* Fails only when the ring broke meanwhile. */
			(void)uvirtio_devq_push(c->q, r.id, ctrl_serve(net, &r));
			served = true;
		}
		if (served)
			uvirtio_device_notify(&net->dev, index);
		if (ret < 0) {
			/* Broken: only a reset helps; wait for the stop. */
			struct pollfd fd = { .fd = c->stop_fd, .events = POLLIN };

			(void)poll(&fd, 1, -1);
			continue;
		}
		if (uvirtio_devq_enable_notify(c->q)) {
			uvirtio_devq_disable_notify(c->q);
			continue;
		}
		{
			struct pollfd fds[3] = {
				{ .fd = c->stop_fd, .events = POLLIN },
				{ .fd = c->wake_fd, .events = POLLIN },
				{ .fd = c->kick_fd, .events = POLLIN },
			};

			if (poll(fds, 3, -1) > 0)
				for (unsigned i = 1; i < 3; i++)
					if (fds[i].revents & POLLIN)
						eventfd_drain(fds[i].fd);
		}
		uvirtio_devq_disable_notify(c->q);
	}
	return NULL;
}
