// SPDX-License-Identifier: MIT
/* The virtio-net device over loopback, mmio and pci (net_dev_fixture.h),
 * driven by the driver core: what it offers and refuses, link status, the
 * control queue, the reflector's and the generator's data paths, and a reset
 * while frames flow. Hostile drivers are in test_net_dev_hostile.c. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "net_dev_fixture.h"
#include "../support/core_internal.h"

#define SPLIT_WANT (NET_ALL_BITS | F_EVENT_IDX | F_INDIRECT)
#define PACKED_WANT (SPLIT_WANT | F_PACKED)

static const struct uvirtio_net_dev_config reflect_cfg = {
	.backend = UVIRTIO_NET_BACKEND_REFLECT, .ctrl_vq = true,
};

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 }, NULL);
}

static uint16_t num_buffers_of(const uint8_t *rx)
{
	uint16_t n;

	memcpy(&n, rx + offsetof(struct virtio_net_hdr_v1, num_buffers), 2);
	return le16toh(n);
}

/* The header the reflector writes: zero but for num_buffers. */
static bool clean_header(const uint8_t *rx)
{
	static const uint8_t zero[10];

	return !memcmp(rx, zero, sizeof(zero));
}

/* ------------------------------------------------------------------ */
/* Negotiation. */

static void offers_ctrl_mq_mtu(struct nenv *e)
{
	uint64_t f = 0;

	CHECK_EQ(e->t->ops->get_features(e->t, &f), 0);
	CHECK_EQ(NET_DEVICE_BITS(f), NET_BASE_BITS | NET_CTRL_BITS | NB(MTU) | NB(MQ));
	CHECK_EQ(f & UVIRTIO_TRANSPORT_FEATURES, UVIRTIO_TRANSPORT_FEATURES);
}

static void offers_plain(struct nenv *e)
{
	uint64_t f = 0;

	CHECK_EQ(e->t->ops->get_features(e->t, &f), 0);
	CHECK_EQ(NET_DEVICE_BITS(f), NET_BASE_BITS);
}

static void offers_sink_offloads(struct nenv *e)
{
	uint64_t f = 0;

	CHECK_EQ(e->t->ops->get_features(e->t, &f), 0);
	CHECK_EQ(NET_DEVICE_BITS(f),
		 NET_BASE_BITS | NET_CTRL_BITS | NB(CSUM) | NB(HOST_TSO4) | NB(HOST_TSO6) | NB(HOST_ECN));
}

static void test_net_offers_the_listed_features(void)
{
	struct uvirtio_net_dev_config cfg = reflect_cfg;

	cfg.num_pairs = 2;
	cfg.mtu = 1500;
	each_transport(&cfg, 0, offers_ctrl_mq_mtu);
	cfg = (struct uvirtio_net_dev_config){ .backend = UVIRTIO_NET_BACKEND_REFLECT };
	each_transport(&cfg, 0, offers_plain);
	cfg = (struct uvirtio_net_dev_config){ .backend = UVIRTIO_NET_BACKEND_NULL, .ctrl_vq = true };
	each_transport(&cfg, 0, offers_sink_offloads);
}

static void config_as_set(struct nenv *e)
{
	static const uint8_t mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
	struct virtio_net_config c;
	uint8_t now[6];

	CHECK_EQ(uvirtio_driver_features(&e->drv) & NB(MQ), NB(MQ));
	CHECK_EQ(net_config(e, &c), 0);
	CHECK(!memcmp(c.mac, mac, 6));
	CHECK_EQ(le16toh(c.max_virtqueue_pairs), 2);
	CHECK_EQ(le16toh(c.mtu), 9000);
	CHECK_EQ(le16toh(c.status), VIRTIO_NET_S_LINK_UP);
	uvirtio_net_dev_mac(&e->net, now);
	CHECK(!memcmp(now, mac, 6));
}

static void test_net_config_space_has_mac_pairs_and_mtu(void)
{
	static const uint8_t mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
	struct uvirtio_net_dev_config cfg = reflect_cfg;

	cfg.num_pairs = 2;
	cfg.mtu = 9000;
	cfg.mac = mac;
	each_transport(&cfg, SPLIT_WANT, config_as_set);
}

/* What the tap offers, on a reflector: the core's offer is widened, so the
 * device's own dependency rules are what refuses. */
static void offer_guest_offloads(struct nenv *e)
{
	device_of(uvirtio_net_dev_device(&e->net))->offered |=
		NB(GUEST_CSUM) | NB(GUEST_TSO4) | NB(GUEST_TSO6) | NB(GUEST_ECN);
}

static void refuses_offloads_without_their_base(struct nenv *e)
{
	static const uint64_t refused[] = {
		NB(HOST_ECN), NB(HOST_ECN) | NB(CSUM), NB(HOST_TSO4), NB(HOST_TSO6),
		NB(GUEST_TSO4), NB(GUEST_TSO6), NB(GUEST_ECN) | NB(GUEST_CSUM),
	};
	static const uint64_t taken[] = {
		NB(HOST_ECN) | NB(HOST_TSO4) | NB(CSUM), NB(GUEST_TSO4) | NB(GUEST_CSUM),
		NB(GUEST_ECN) | NB(GUEST_TSO6) | NB(GUEST_CSUM),
	};
	uint8_t status = 0;

	offer_guest_offloads(e);
	for (unsigned i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (uvirtio_driver_probe(&e->drv, e->t, NET_BASE_BITS | refused[i]) != -ENODEV) {
			printf("# features %#llx taken\n", (unsigned long long)refused[i]);
			CHECK(false);
		}
		CHECK_EQ(e->t->ops->get_status(e->t, &status), 0);
		CHECK(!(status & VIRTIO_CONFIG_S_FEATURES_OK));
	}
	for (unsigned i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		CHECK_EQ(uvirtio_driver_probe(&e->drv, e->t, NET_BASE_BITS | taken[i]), 0);
		CHECK_EQ(NET_DEVICE_BITS(uvirtio_driver_features(&e->drv)), NET_BASE_BITS | taken[i]);
	}
	CHECK_EQ(e->t->ops->reset(e->t), 0);
}

static void test_net_refuses_offloads_without_the_feature_they_need(void)
{
	struct uvirtio_net_dev_config cfg = { .backend = UVIRTIO_NET_BACKEND_NULL, .ctrl_vq = true };

	each_transport(&cfg, 0, refuses_offloads_without_their_base);
}

/* ------------------------------------------------------------------ */
/* Link status. */

static void link_down_and_up(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 60, 1), *rx = nalloc(e, 2048);
	struct iovec out = { pkt, HDR_LEN + 60 };
	struct virtio_net_config c;
	uint32_t gen, len;
	void *token;

	CHECK(pkt && rx);
	CHECK_EQ(post_rx(e, 0, rx, 2048), 0);
	gen = config_generation(e);
	CHECK_EQ(uvirtio_net_dev_set_link(&e->net, false), 0);
	CHECK_EQ(uvirtio_driver_wait(&e->drv, UVIRTIO_CONFIG_EVENT, WAIT_MS), 1);
	CHECK(config_generation(e) != gen);
	CHECK_EQ(net_config(e, &c), 0);
	CHECK_EQ(le16toh(c.status) & VIRTIO_NET_S_LINK_UP, 0);
	/* Nothing changes: said so. */
	CHECK_EQ(uvirtio_net_dev_set_link(&e->net, false), -EOPNOTSUPP);

	/* Down: tx is dropped and counted, nothing comes back. */
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	CHECK_EQ(nstats(e).tx_backend_errors, 2);
	CHECK_EQ(nstats(e).tx_packets, 0);
	CHECK_EQ(poll_used(e, rxq(0), &token, &len), 0);

	gen = config_generation(e);
	CHECK_EQ(uvirtio_net_dev_set_link(&e->net, true), 0);
	CHECK_EQ(uvirtio_driver_wait(&e->drv, UVIRTIO_CONFIG_EVENT, WAIT_MS), 1);
	CHECK(config_generation(e) != gen);
	CHECK_EQ(net_config(e, &c), 0);
	CHECK_EQ(le16toh(c.status) & VIRTIO_NET_S_LINK_UP, VIRTIO_NET_S_LINK_UP);
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == rx);
	CHECK_EQ(len, HDR_LEN + 60);
	CHECK(is_reflection(rx + HDR_LEN, pkt + HDR_LEN, 60));
	CHECK_EQ(nstats(e).tx_backend_errors, 2);
	CHECK_EQ(nstats(e).tx_packets, 1);
}

static void test_net_link_down_notifies_drops_tx_and_up_restores(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, link_down_and_up);
}

/* ------------------------------------------------------------------ */
/* The control queue. */

static void rx_modes(struct nenv *e)
{
	static const uint8_t on = 1, off = 0, two = 2;
	static const uint8_t both[2] = { 1, 1 };
	struct uvirtio_net_dev_rx_mode m;

	for (uint8_t cmd = VIRTIO_NET_CTRL_RX_PROMISC; cmd <= VIRTIO_NET_CTRL_RX_NOBCAST; cmd++)
		CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, cmd, &on, 1), VIRTIO_NET_OK);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK(m.promisc && m.allmulti && m.alluni && m.nomulti && m.nouni && m.nobcast);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1), VIRTIO_NET_OK);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOUNI, &off, 1), VIRTIO_NET_OK);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK(!m.promisc && m.allmulti && m.alluni && m.nomulti && !m.nouni && m.nobcast);
	/* Malformed: a value other than 0/1, two bytes, none, an unknown command. */
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &two, 1), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, both, 2), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, NULL, 0), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST + 1, &on, 1), VIRTIO_NET_ERR);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK(!m.promisc);
	CHECK_EQ(nstats(e).ctrl_commands, 8);
	CHECK_EQ(nstats(e).ctrl_errors, 4);

	/* Without CTRL_RX_EXTRA only PROMISC and ALLMULTI are taken. */
	nenv_down(e);
	CHECK_EQ(nenv_up(e, SPLIT_WANT & ~NB(CTRL_RX_EXTRA)), 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1), VIRTIO_NET_OK);
	for (uint8_t cmd = VIRTIO_NET_CTRL_RX_ALLUNI; cmd <= VIRTIO_NET_CTRL_RX_NOBCAST; cmd++)
		CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, cmd, &on, 1), VIRTIO_NET_ERR);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	/* The reset cleared what the first driver set. */
	CHECK(m.allmulti && !m.alluni && !m.nomulti && !m.nouni && !m.nobcast);
}

static void test_net_ctrl_rx_modes(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, rx_modes);
}

/* A MAC_TABLE_SET body: @uc unicast entries claiming @uc_claim, then @mc
 * claiming @mc_claim; @extra bytes after. Returns its length. */
static size_t mac_table(uint8_t *b, unsigned uc, uint32_t uc_claim, unsigned mc, uint32_t mc_claim,
			unsigned extra)
{
	size_t n = 0;
	uint32_t le;

	le = htole32(uc_claim);
	memcpy(b + n, &le, 4);
	n += 4;
	for (unsigned i = 0; i < uc; i++, n += 6)
		memcpy(b + n, (const uint8_t[6]){ 0x02, 0, 0, 0, 1, (uint8_t)i }, 6);
	le = htole32(mc_claim);
	memcpy(b + n, &le, 4);
	n += 4;
	for (unsigned i = 0; i < mc; i++, n += 6)
		memcpy(b + n, (const uint8_t[6]){ 0x01, 0, 0x5e, 0, 0, (uint8_t)i }, 6);
	memset(b + n, 0xab, extra);
	return n + extra;
}

static void mac_table_set(struct nenv *e)
{
	static uint8_t big[4 + 6 * 600 + 4];
	uint8_t b[512];
	struct uvirtio_net_dev_rx_mode m;
	size_t n;

	n = mac_table(b, 2, 2, 3, 3, 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b, n), VIRTIO_NET_OK);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.uc_entries, 2);
	CHECK_EQ(m.mc_entries, 3);
	/* Truncated: more entries claimed than there are, in either table;
	 * the second table missing; bytes left over; a count past the end. */
	n = mac_table(b, 2, 3, 0, 0, 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b, n), VIRTIO_NET_ERR);
	n = mac_table(b, 1, 1, 2, 3, 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b, n), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b, 4 + 6), VIRTIO_NET_ERR);
	n = mac_table(b, 1, 1, 1, 1, 3);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b, n), VIRTIO_NET_ERR);
	n = mac_table(b, 1, 0xffffffffu, 1, 1, 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b, n), VIRTIO_NET_ERR);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.uc_entries, 2);
	CHECK_EQ(m.mc_entries, 3);
	/* More than the command buffer takes (two tables of 256). */
	n = mac_table(big, 0, 0, 600, 600, 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, big, n), VIRTIO_NET_ERR);
	/* Over the filter's 64 entries, within the buffer: taken (accept all). */
	n = mac_table(big, 100, 100, 200, 200, 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, big, n), VIRTIO_NET_OK);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.uc_entries, 100);
	CHECK_EQ(m.mc_entries, 200);
	/* Empty tables are a table. */
	n = mac_table(b, 0, 0, 0, 0, 0);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b, n), VIRTIO_NET_OK);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.uc_entries + m.mc_entries, 0);
}

static void test_net_ctrl_mac_table_set(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, mac_table_set);
}

static void mac_addr_set(struct nenv *e)
{
	static const uint8_t mac[6] = { 0x02, 0xde, 0xad, 0xbe, 0xef, 0x01 };
	static const uint8_t group[6] = { 0x03, 0xde, 0xad, 0xbe, 0xef, 0x01 };
	static const uint8_t dflt[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	struct virtio_net_config c;
	uint8_t now[6];
	uint32_t gen = config_generation(e);

	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6), VIRTIO_NET_OK);
	uvirtio_net_dev_mac(&e->net, now);
	CHECK(!memcmp(now, mac, 6));
	CHECK_EQ(net_config(e, &c), 0);
	CHECK(!memcmp(c.mac, mac, 6));
	CHECK(config_generation(e) != gen);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, group, 6), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 5), VIRTIO_NET_ERR);
	uvirtio_net_dev_mac(&e->net, now);
	CHECK(!memcmp(now, mac, 6));
	/* A reset gives the device its own address back. */
	nenv_down(e);
	CHECK_EQ(nenv_up(e, SPLIT_WANT), 0);
	uvirtio_net_dev_mac(&e->net, now);
	CHECK(!memcmp(now, dflt, 6));
	CHECK_EQ(net_config(e, &c), 0);
	CHECK(!memcmp(c.mac, dflt, 6));
}

static void test_net_ctrl_mac_addr_set(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, mac_addr_set);
}

static int vlan(struct nenv *e, uint8_t cmd, unsigned vid)
{
	uint16_t le = htole16((uint16_t)vid);

	return ctrl_cmd(e, VIRTIO_NET_CTRL_VLAN, cmd, &le, 2);
}

static void vlan_filter(struct nenv *e)
{
	struct uvirtio_net_dev_rx_mode m;

	CHECK(!uvirtio_net_dev_vlan_allowed(&e->net, 100));
	CHECK_EQ(vlan(e, VIRTIO_NET_CTRL_VLAN_ADD, 100), VIRTIO_NET_OK);
	CHECK_EQ(vlan(e, VIRTIO_NET_CTRL_VLAN_ADD, 100), VIRTIO_NET_OK);
	CHECK_EQ(vlan(e, VIRTIO_NET_CTRL_VLAN_ADD, 4095), VIRTIO_NET_OK);
	CHECK(uvirtio_net_dev_vlan_allowed(&e->net, 100));
	CHECK(uvirtio_net_dev_vlan_allowed(&e->net, 4095));
	CHECK(!uvirtio_net_dev_vlan_allowed(&e->net, 101));
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.vlans, 2);
	CHECK_EQ(vlan(e, VIRTIO_NET_CTRL_VLAN_DEL, 100), VIRTIO_NET_OK);
	CHECK(!uvirtio_net_dev_vlan_allowed(&e->net, 100));
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.vlans, 1);
	CHECK_EQ(vlan(e, VIRTIO_NET_CTRL_VLAN_ADD, 4096), VIRTIO_NET_ERR);
	CHECK_EQ(vlan(e, VIRTIO_NET_CTRL_VLAN_DEL + 1, 5), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, "\x05", 1), VIRTIO_NET_ERR);
	CHECK(!uvirtio_net_dev_vlan_allowed(&e->net, 5));
	CHECK(!uvirtio_net_dev_vlan_allowed(&e->net, 4096));
}

static void test_net_ctrl_vlan_add_and_del(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, vlan_filter);
}

static void announce(struct nenv *e)
{
	struct virtio_net_config c;

	CHECK_EQ(uvirtio_net_dev_announce(&e->net), 0);
	CHECK_EQ(uvirtio_driver_wait(&e->drv, UVIRTIO_CONFIG_EVENT, WAIT_MS), 1);
	CHECK_EQ(net_config(e, &c), 0);
	CHECK_EQ(le16toh(c.status), VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, "x", 1), VIRTIO_NET_ERR);
	CHECK_EQ(net_config(e, &c), 0);
	CHECK_EQ(le16toh(c.status), VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0), VIRTIO_NET_OK);
	CHECK_EQ(net_config(e, &c), 0);
	CHECK_EQ(le16toh(c.status), VIRTIO_NET_S_LINK_UP);
	/* Without GUEST_ANNOUNCE there is nobody to ask, nor an ACK to take. */
	nenv_down(e);
	CHECK_EQ(nenv_up(e, SPLIT_WANT & ~NB(GUEST_ANNOUNCE)), 0);
	CHECK_EQ(uvirtio_net_dev_announce(&e->net), -EOPNOTSUPP);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0), VIRTIO_NET_ERR);
}

static void test_net_ctrl_announce_and_ack(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, announce);
}

static int pairs_set(struct nenv *e, unsigned n)
{
	uint16_t le = htole16((uint16_t)n);

	return ctrl_cmd(e, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &le, 2);
}

static void mq_pairs(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 80, 3), *rx = nalloc(e, 2048);
	struct iovec out = { pkt, HDR_LEN + 80 };
	struct uvirtio_net_dev_rx_mode m;
	uint32_t len;
	void *token;

	CHECK(pkt && rx);
	CHECK_EQ(e->nq, 5);
	CHECK_EQ(ctrlq(e), 4);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.active_pairs, 1);
	CHECK_EQ(pairs_set(e, 2), VIRTIO_NET_OK);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.active_pairs, 2);
	CHECK_EQ(pairs_set(e, 0), VIRTIO_NET_ERR);
	CHECK_EQ(pairs_set(e, 3), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\x01", 1), VIRTIO_NET_ERR);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.active_pairs, 2);
	/* The second pair reflects now. */
	CHECK_EQ(post_rx(e, 1, rx, 2048), 0);
	CHECK_EQ(tx_wait(e, 1, &out, 1), 0);
	CHECK_EQ(wait_used(e, rxq(1), &token, &len), 1);
	CHECK_EQ(len, HDR_LEN + 80);
	CHECK(is_reflection(rx + HDR_LEN, pkt + HDR_LEN, 80));
	CHECK_EQ(pairs_set(e, 1), VIRTIO_NET_OK);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK_EQ(m.active_pairs, 1);
}

static void test_net_ctrl_mq_vq_pairs_set(void)
{
	struct uvirtio_net_dev_config cfg = reflect_cfg;

	cfg.num_pairs = 2;
	each_transport(&cfg, SPLIT_WANT, mq_pairs);
}

static void unknown_and_ackless(struct nenv *e)
{
	static const uint8_t on = 1;
	struct uvirtio_net_dev_rx_mode m;
	uint8_t ack = 0;

	CHECK_EQ(ctrl_cmd(e, 77, 0, &on, 1), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, 9, &on, 1), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_ANNOUNCE, 1, NULL, 0), VIRTIO_NET_ERR);
	/* MQ not negotiated (one pair): refused. */
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\x01\x00", 2),
		 VIRTIO_NET_ERR);
	/* No ack byte: given back unanswered and unapplied, counted. */
	CHECK_EQ(ctrl_cmd_ex(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1, false, &ack), 0);
	CHECK_EQ(ack, 0xee);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK(!m.promisc);
	CHECK_EQ(nstats(e).ctrl_errors, 5);
	CHECK_EQ(nstats(e).ctrl_commands, 0);
	/* And the queue goes on. */
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_OK);
	CHECK_EQ(nstats(e).ctrl_commands, 1);
}

static void test_net_ctrl_unknown_commands_and_no_ack_byte(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, unknown_and_ackless);
}

/* ------------------------------------------------------------------ */
/* Data. */

static void reflect_one(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 60, 7), *rx = nalloc(e, 2048);
	struct iovec out = { pkt, HDR_LEN + 60 };
	struct uvirtio_net_dev_stats st, was = nstats(e); /* counted since init */
	uint32_t len;
	void *token;

	CHECK(pkt && rx);
	CHECK_EQ(post_rx(e, 0, rx, 2048), 0);
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == rx);
	CHECK_EQ(len, HDR_LEN + 60);
	CHECK(clean_header(rx));
	CHECK_EQ(num_buffers_of(rx), 1);
	CHECK(is_reflection(rx + HDR_LEN, pkt + HDR_LEN, 60));
	st = nstats(e);
	CHECK_EQ(st.tx_packets - was.tx_packets, 1);
	CHECK_EQ(st.tx_bytes - was.tx_bytes, 60);
	CHECK_EQ(st.rx_packets - was.rx_packets, 1);
	CHECK_EQ(st.rx_bytes - was.rx_bytes, 60);
	CHECK_EQ(st.rx_dropped + st.tx_bad_header + st.tx_backend_errors, 0);
}

static void test_net_reflects_a_frame_split(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, reflect_one);
}

static void test_net_reflects_a_frame_packed(void)
{
	each_transport(&reflect_cfg, PACKED_WANT, reflect_one);
}

#define BURST 64

/* BURST frames in flight at once, each reflected into the rx buffer of its
 * turn, in order. */
static void burst(struct nenv *e)
{
	static uint8_t *pkt[BURST], *rx[BURST];
	static struct iovec out[BURST];
	unsigned tx_back = 0;
	uint32_t len;
	void *token;

	for (unsigned i = 0; i < BURST; i++) {
		size_t flen = 60 + i * 13;

		pkt[i] = make_packet(e, flen, i);
		rx[i] = nalloc(e, 2048);
		CHECK(pkt[i] && rx[i]);
		out[i] = (struct iovec){ pkt[i], HDR_LEN + flen };
		CHECK_EQ(post_rx(e, 0, rx[i], 2048), 0);
	}
	for (unsigned i = 0; i < BURST; i++)
		CHECK_EQ(add_buf(e, txq(0), &out[i], 1, NULL, 0, &out[i]), 0);
	for (unsigned i = 0; i < BURST; i++) {
		size_t flen = 60 + i * 13;

		CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
		CHECK(token == rx[i]);
		CHECK_EQ(len, HDR_LEN + flen);
		CHECK_EQ(num_buffers_of(rx[i]), 1);
		CHECK(is_reflection(rx[i] + HDR_LEN, pkt[i] + HDR_LEN, flen));
	}
	while (tx_back < BURST) {
		CHECK_EQ(wait_used(e, txq(0), &token, &len), 1);
		CHECK(token == &out[tx_back]);
		tx_back++;
	}
	CHECK_EQ(nstats(e).tx_packets, BURST);
	CHECK_EQ(nstats(e).rx_packets, BURST);
	CHECK_EQ(nstats(e).rx_dropped, 0);
}

static void test_net_many_frames_in_flight_split_and_packed(void)
{
	static const uint64_t rings[] = { 0, F_IN_ORDER, F_PACKED, F_PACKED | F_IN_ORDER };

	for (unsigned i = 0; i < 4 && !test_failed; i++) {
		each_transport(&reflect_cfg, SPLIT_WANT | rings[i], burst);
		if (test_failed)
			printf("# ring features %#llx\n", (unsigned long long)rings[i]);
	}
}

static void mrg_rxbuf(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 4000, 5), *rx[4], *joined = malloc(4012);
	struct iovec out = { pkt, HDR_LEN + 4000 };
	uint32_t len, lens[3];
	void *token;
	size_t off = 0;

	CHECK(pkt && joined);
	CHECK(uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_MRG_RXBUF));
	for (unsigned i = 0; i < 4; i++) {
		rx[i] = nalloc(e, 1500);
		CHECK(rx[i]);
		CHECK_EQ(post_rx(e, 0, rx[i], 1500), 0);
	}
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(wait_used(e, rxq(0), &token, &lens[i]), 1);
		CHECK(token == rx[i]);
		memcpy(joined + off, rx[i], lens[i]);
		off += lens[i];
	}
	CHECK_EQ(lens[0], 1500);
	CHECK_EQ(lens[1], 1500);
	CHECK_EQ(lens[2], 4012 - 3000);
	CHECK_EQ(num_buffers_of(rx[0]), 3);
	CHECK(clean_header(joined));
	CHECK(is_reflection(joined + HDR_LEN, pkt + HDR_LEN, 4000));
	/* The fourth buffer stays the driver's to fill next. */
	CHECK_EQ(poll_used(e, rxq(0), &token, &len), 0);
	CHECK_EQ(nstats(e).rx_packets, 1);
	CHECK_EQ(nstats(e).rx_bytes, 4000);
	free(joined);
}

/* The largest frame, over 4 KiB buffers: 17 of them. */
#define MAX_CHAINS ((HDR_LEN + UVIRTIO_NET_FRAME_MAX + 4095) / 4096)

static void mrg_largest_frame(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, UVIRTIO_NET_FRAME_MAX, 6), *rx[MAX_CHAINS + 1];
	static uint8_t joined[HDR_LEN + UVIRTIO_NET_FRAME_MAX];
	struct iovec out[3] = { { pkt, 7 }, { pkt + 7, 30000 },
				{ pkt + 30007, HDR_LEN + UVIRTIO_NET_FRAME_MAX - 30007 } };
	uint32_t len;
	void *token;
	size_t off = 0;

	CHECK(pkt);
	for (unsigned i = 0; i <= MAX_CHAINS; i++) {
		rx[i] = nalloc(e, 4096);
		CHECK(rx[i]);
		CHECK_EQ(post_rx(e, 0, rx[i], 4096), 0);
	}
	CHECK_EQ(tx_wait(e, 0, out, 3), 0);
	for (unsigned i = 0; i < MAX_CHAINS; i++) {
		CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
		CHECK(token == rx[i]);
		CHECK_EQ(len, i + 1 < MAX_CHAINS ? 4096 : HDR_LEN + UVIRTIO_NET_FRAME_MAX - 4096 * i);
		memcpy(joined + off, rx[i], len);
		off += len;
	}
	CHECK_EQ(num_buffers_of(rx[0]), MAX_CHAINS);
	CHECK(is_reflection(joined + HDR_LEN, pkt + HDR_LEN, UVIRTIO_NET_FRAME_MAX));
	CHECK_EQ(poll_used(e, rxq(0), &token, &len), 0);
}

static void test_net_mrg_rxbuf_spreads_a_frame_over_buffers(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, mrg_rxbuf);
	each_transport(&reflect_cfg, PACKED_WANT | F_IN_ORDER, mrg_rxbuf);
	each_transport(&reflect_cfg, SPLIT_WANT, mrg_largest_frame);
	each_transport(&reflect_cfg, PACKED_WANT, mrg_largest_frame);
}

/* A frame larger than the whole rx ring's buffers can never be given:
 * dropped and counted, not waited for (the tx ring would stall behind it). */
static void ring_too_small(struct nenv *e)
{
	static const unsigned sizes[3] = { 2, 256, 256 };
	uint8_t *big = make_packet(e, 4000, 3), *fits = make_packet(e, 1000, 4), *rx[2];
	struct iovec out_big = { big, HDR_LEN + 4000 }, out_fits = { fits, HDR_LEN + 1000 };
	uint32_t len;
	void *token;

	CHECK_EQ(nenv_up_sized(e, SPLIT_WANT, sizes), 0);
	for (unsigned i = 0; i < 2; i++) {
		rx[i] = nalloc(e, 1500);
		CHECK(rx[i]);
		CHECK_EQ(post_rx(e, 0, rx[i], 1500), 0);
	}
	CHECK(big && fits);
	CHECK_EQ(tx_wait(e, 0, &out_big, 1), 0);
	CHECK_EQ(nstats(e).rx_dropped, 1);
	CHECK_EQ(tx_wait(e, 0, &out_fits, 1), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == rx[0]);
	CHECK_EQ(len, HDR_LEN + 1000);
	CHECK(is_reflection(rx[0] + HDR_LEN, fits + HDR_LEN, 1000));
}

static void test_net_a_frame_no_ring_could_hold_is_dropped(void)
{
	each_transport(&reflect_cfg, 0, ring_too_small);
}

static void no_mrg_small_buffer(struct nenv *e)
{
	uint8_t *big = make_packet(e, 200, 1), *small = make_packet(e, 80, 2), *rx = nalloc(e, 150);
	struct iovec out_big = { big, HDR_LEN + 200 }, out_small = { small, HDR_LEN + 80 };
	uint32_t len;
	void *token;

	CHECK(big && small && rx);
	CHECK(!uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_MRG_RXBUF));
	CHECK_EQ(post_rx(e, 0, rx, 150), 0);
	CHECK_EQ(tx_wait(e, 0, &out_big, 1), 0);
	CHECK_EQ(nstats(e).rx_dropped, 1);
	CHECK_EQ(poll_used(e, rxq(0), &token, &len), 0);
	/* The chain was kept: the next frame that fits goes there. */
	CHECK_EQ(tx_wait(e, 0, &out_small, 1), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == rx);
	CHECK_EQ(len, HDR_LEN + 80);
	CHECK_EQ(num_buffers_of(rx), 1);
	CHECK(is_reflection(rx + HDR_LEN, small + HDR_LEN, 80));
	CHECK_EQ(nstats(e).rx_dropped, 1);
	CHECK_EQ(nstats(e).rx_packets, 1);
}

static void test_net_without_mrg_rxbuf_a_short_buffer_drops_the_frame(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT & ~NB(MRG_RXBUF), no_mrg_small_buffer);
}

static void held_until_rx(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 100, 9), *rx = nalloc(e, 2048);
	struct iovec out = { pkt, HDR_LEN + 100 };
	uint32_t len;
	void *token;

	CHECK(pkt && rx);
	CHECK_EQ(add_buf(e, txq(0), &out, 1, NULL, 0, &out), 0);
	/* Not a measurement: whenever we look, the frame is still held. */
	sleep_ms(50);
	CHECK_EQ(poll_used(e, txq(0), &token, &len), 0);
	CHECK_EQ(nstats(e).tx_packets, 0);
	CHECK_EQ(nstats(e).rx_dropped, 0);
	CHECK_EQ(post_rx(e, 0, rx, 2048), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == rx);
	CHECK_EQ(len, HDR_LEN + 100);
	CHECK(is_reflection(rx + HDR_LEN, pkt + HDR_LEN, 100));
	CHECK_EQ(wait_used(e, txq(0), &token, &len), 1);
	CHECK(token == &out);
	CHECK_EQ(nstats(e).rx_dropped, 0);
	CHECK_EQ(nstats(e).tx_packets, 1);
}

static void test_net_reflect_holds_tx_until_an_rx_buffer_comes(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, held_until_rx);
	each_transport(&reflect_cfg, PACKED_WANT | F_IN_ORDER, held_until_rx);
}

#define GEN_N 8

static void gen_fills(struct nenv *e)
{
	static const uint8_t src[6] = { 0x02, 0x75, 0x76, 0x69, 0x72, 0x74 };
	static const uint8_t dflt[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	uint8_t *rx[GEN_N];
	uint32_t len;
	void *token;

	for (unsigned i = 0; i < GEN_N; i++) {
		rx[i] = nalloc(e, 256);
		CHECK(rx[i]);
		CHECK_EQ(post_rx(e, 0, rx[i], 256), 0);
	}
	for (unsigned i = 0; i < GEN_N; i++) {
		const uint8_t *f = rx[i] + HDR_LEN;
		uint32_t seq;

		CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
		CHECK(token == rx[i]);
		CHECK_EQ(len, HDR_LEN + 100);
		CHECK(clean_header(rx[i]));
		CHECK_EQ(num_buffers_of(rx[i]), 1);
		CHECK(!memcmp(f, dflt, 6));
		CHECK(!memcmp(f + 6, src, 6));
		CHECK_EQ(f[12], 0x88);
		CHECK_EQ(f[13], 0xb5);
		memcpy(&seq, f + 14, 4);
		CHECK_EQ(le32toh(seq), i);
	}
	CHECK_EQ(nstats(e).rx_packets, GEN_N);
	CHECK_EQ(nstats(e).rx_bytes, GEN_N * 100);
}

/* The generator's frames go to the MAC the driver uses now. One frame may
 * have been made (its bytes decided) just before the change, while the
 * thread raced the driver to the buffer: the one after it is new. */
static void gen_follows_mac(struct nenv *e)
{
	static const uint8_t mac[6] = { 0x02, 0xde, 0xad, 0xbe, 0xef, 0x02 };
	uint8_t *rx[2] = { nalloc(e, 256), nalloc(e, 256) };
	uint32_t len;
	void *token;

	CHECK(rx[0] && rx[1]);
	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6), VIRTIO_NET_OK);
	for (unsigned i = 0; i < 2; i++)
		CHECK_EQ(post_rx(e, 0, rx[i], 256), 0);
	for (unsigned i = 0; i < 2; i++) {
		CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
		CHECK(token == rx[i]);
		CHECK_EQ(len, HDR_LEN + 100);
	}
	CHECK(!memcmp(rx[1] + HDR_LEN, mac, 6));
}

static void test_net_gen_fills_posted_buffers_in_sequence(void)
{
	struct uvirtio_net_dev_config cfg = { .backend = UVIRTIO_NET_BACKEND_GEN, .ctrl_vq = true,
					      .frame_size = 100 };

	each_transport(&cfg, SPLIT_WANT, gen_fills);
	each_transport(&cfg, PACKED_WANT, gen_fills);
}

/* Without MRG_RXBUF a chain shorter than the generator's frame can never
 * hold one (every frame is that size): it goes back empty, counted, and the
 * next chain gets the frame; the device does not try it for ever. */
static void gen_short_chain(struct nenv *e)
{
	uint8_t *small = nalloc(e, 64), *rx = nalloc(e, 256);
	uint32_t len;
	void *token;

	CHECK(small && rx);
	CHECK(!uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_MRG_RXBUF));
	CHECK_EQ(post_rx(e, 0, small, 64), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == small);
	CHECK_EQ(len, 0);
	CHECK_EQ(nstats(e).rx_dropped, 1);
	CHECK_EQ(post_rx(e, 0, rx, 256), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == rx);
	CHECK_EQ(len, HDR_LEN + 100);
	CHECK_EQ(nstats(e).rx_dropped, 1);
	CHECK_EQ(nstats(e).rx_packets, 1);
}

static void test_net_gen_gives_back_a_chain_its_frame_never_fits(void)
{
	struct uvirtio_net_dev_config cfg = { .backend = UVIRTIO_NET_BACKEND_GEN, .ctrl_vq = true,
					      .frame_size = 100 };

	each_transport(&cfg, SPLIT_WANT & ~NB(MRG_RXBUF), gen_short_chain);
	each_transport(&cfg, (SPLIT_WANT & ~NB(MRG_RXBUF)) | F_PACKED | F_IN_ORDER, gen_short_chain);
}

static void test_net_gen_frames_go_to_the_mac_the_driver_set(void)
{
	struct uvirtio_net_dev_config cfg = { .backend = UVIRTIO_NET_BACKEND_GEN, .ctrl_vq = true,
					      .frame_size = 100 };

	each_transport(&cfg, SPLIT_WANT, gen_follows_mac);
}

/* ------------------------------------------------------------------ */
/* Reset. */

static void reset_while_flowing(struct nenv *e)
{
	static uint8_t *pkt[BURST], *rx[BURST];
	static struct iovec out[BURST];
	static const uint8_t on = 1;
	struct uvirtio_net_dev_rx_mode m;

	CHECK_EQ(ctrl_cmd(e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_OK);
	for (unsigned i = 0; i < BURST; i++) {
		pkt[i] = make_packet(e, 1000, i);
		rx[i] = nalloc(e, 2048);
		CHECK(pkt[i] && rx[i]);
		out[i] = (struct iovec){ pkt[i], HDR_LEN + 1000 };
	}
	/* Half the rx buffers: the rest of tx waits in the ring when the reset comes. */
	for (unsigned i = 0; i < BURST / 2; i++)
		CHECK_EQ(post_rx(e, 0, rx[i], 2048), 0);
	for (unsigned i = 0; i < BURST; i++)
		CHECK_EQ(add_buf(e, txq(0), &out[i], 1, NULL, 0, &out[i]), 0);
	nenv_down(e);
	uvirtio_net_dev_get_rx_mode(&e->net, &m);
	CHECK(!m.promisc);

	/* A new driver, the other layout, and the device serves it. */
	CHECK_EQ(nenv_up(e, PACKED_WANT), 0);
	reflect_one(e);
	for (unsigned i = 0; i < BURST; i++) {
		uvirtio_dma_free(e->dma, pkt[i]);
		uvirtio_dma_free(e->dma, rx[i]);
	}
}

static void test_net_reset_while_frames_flow_then_renegotiate(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, reset_while_flowing);
}

TEST_MAIN(T(test_net_offers_the_listed_features),
	  T(test_net_config_space_has_mac_pairs_and_mtu),
	  T(test_net_refuses_offloads_without_the_feature_they_need),
	  T(test_net_link_down_notifies_drops_tx_and_up_restores),
	  T(test_net_ctrl_rx_modes),
	  T(test_net_ctrl_mac_table_set),
	  T(test_net_ctrl_mac_addr_set),
	  T(test_net_ctrl_vlan_add_and_del),
	  T(test_net_ctrl_announce_and_ack),
	  T(test_net_ctrl_mq_vq_pairs_set),
	  T(test_net_ctrl_unknown_commands_and_no_ack_byte),
	  T(test_net_reflects_a_frame_split),
	  T(test_net_reflects_a_frame_packed),
	  T(test_net_many_frames_in_flight_split_and_packed),
	  T(test_net_mrg_rxbuf_spreads_a_frame_over_buffers),
	  T(test_net_without_mrg_rxbuf_a_short_buffer_drops_the_frame),
	  T(test_net_a_frame_no_ring_could_hold_is_dropped),
	  T(test_net_reflect_holds_tx_until_an_rx_buffer_comes),
	  T(test_net_gen_fills_posted_buffers_in_sequence),
	  T(test_net_gen_frames_go_to_the_mac_the_driver_set),
	  T(test_net_gen_gives_back_a_chain_its_frame_never_fits),
	  T(test_net_reset_while_frames_flow_then_renegotiate))
