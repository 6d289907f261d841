// SPDX-License-Identifier: MIT
/* The virtio-net device against a hostile driver, over loopback, mmio and
 * pci (net_dev_fixture.h): every bad packet is given back and counted by
 * its reason, and the queue goes on (a good frame goes through after it);
 * only a malformed ring breaks a queue. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <string.h>

#include "harness.h"
#include "net_dev_fixture.h"

#define SPLIT_WANT (NET_ALL_BITS | F_EVENT_IDX | F_INDIRECT)

static const struct uvirtio_net_dev_config reflect_cfg = {
	.backend = UVIRTIO_NET_BACKEND_REFLECT, .ctrl_vq = true,
};
static const struct uvirtio_net_dev_config null_cfg = {
	.backend = UVIRTIO_NET_BACKEND_NULL, .ctrl_vq = true,
};

/* Every counter of a bad packet, summed: a case checks that only its own moved. */
static uint64_t bad_total(const struct uvirtio_net_dev_stats *s)
{
	return s->tx_bad_header + s->tx_bad_csum + s->tx_bad_gso + s->tx_bad_size + s->tx_bad_num_buffers +
	       s->tx_backend_errors + s->rx_bad_chain + s->rx_dropped;
}

static struct virtio_net_hdr_v1 *hdr_of(uint8_t *pkt)
{
	return (struct virtio_net_hdr_v1 *)pkt;
}

/* The queue still works: a good frame is reflected (reflector) or taken
 * (sink). */
static bool queue_goes_on(struct nenv *e, bool reflect)
{
	uint8_t *pkt = make_packet(e, 64, 42), *rx = nalloc(e, 2048);
	struct iovec out = { pkt, HDR_LEN + 64 };
	uint64_t before = nstats(e).tx_packets;
	uint32_t len;
	void *token;

	if (!pkt || !rx || (reflect && post_rx(e, 0, rx, 2048)) || tx_wait(e, 0, &out, 1))
		return false;
	if (nstats(e).tx_packets != before + 1)
		return false;
	if (!reflect)
		return true;
	return wait_used(e, rxq(0), &token, &len) == 1 && token == rx && len == HDR_LEN + 64 &&
	       is_reflection(rx + HDR_LEN, pkt + HDR_LEN, 64);
}

/* A header (and the MACs) spread over several descriptors is a header. */
static void split_header(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 100, 3), *rx = nalloc(e, 2048);
	struct iovec out[5] = { { pkt, 1 }, { pkt + 1, 4 }, { pkt + 5, 6 }, { pkt + 11, 5 },
				{ pkt + 16, HDR_LEN + 100 - 16 } };
	struct uvirtio_net_dev_stats st;
	uint32_t len;
	void *token;

	CHECK(pkt && rx);
	CHECK_EQ(post_rx(e, 0, rx, 2048), 0);
	CHECK_EQ(tx_wait(e, 0, out, 5), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK_EQ(len, HDR_LEN + 100);
	CHECK(is_reflection(rx + HDR_LEN, pkt + HDR_LEN, 100));
	st = nstats(e);
	CHECK_EQ(st.tx_packets, 1);
	CHECK_EQ(bad_total(&st), 0);
}

static void test_net_header_over_several_descriptors_works(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, split_header);
	each_transport(&reflect_cfg, SPLIT_WANT & ~F_INDIRECT, split_header);
	each_transport(&reflect_cfg, SPLIT_WANT | F_PACKED, split_header);
}

static void short_header(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 60, 1);
	struct iovec out = { pkt, HDR_LEN - 1 };
	struct uvirtio_net_dev_stats st;

	CHECK(pkt);
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	out.iov_len = 4;
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	/* Unknown flags are not a header either. */
	hdr_of(pkt)->flags = 0x80;
	out.iov_len = HDR_LEN + 60;
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	st = nstats(e);
	CHECK_EQ(st.tx_bad_header, 3);
	CHECK_EQ(bad_total(&st), 3);
	CHECK_EQ(st.tx_packets, 0);
	CHECK(queue_goes_on(e, true));
}

static void test_net_header_under_12_bytes_or_with_unknown_flags_is_dropped(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, short_header);
}

static long send_hdr(struct nenv *e, size_t flen, uint8_t flags, uint16_t csum_start, uint16_t csum_offset,
		     uint8_t gso_type, uint16_t gso_size, uint16_t num_buffers)
{
	uint8_t *pkt = make_packet(e, flen, 5);
	struct iovec out = { pkt, HDR_LEN + flen };
	struct virtio_net_hdr_v1 *h = hdr_of(pkt);
	long ret;

	if (!pkt)
		return -ENOMEM;
	h->flags = flags;
	h->csum_start = htole16(csum_start);
	h->csum_offset = htole16(csum_offset);
	h->gso_type = gso_type;
	h->gso_size = htole16(gso_size);
	h->num_buffers = htole16(num_buffers);
	ret = tx_wait(e, 0, &out, 1);
	uvirtio_dma_free(e->dma, pkt);
	return ret;
}

static void csum_range(struct nenv *e)
{
	struct uvirtio_net_dev_stats st;

	CHECK(uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_CSUM));
	/* Inside: start + offset + 2 == the frame's length. */
	CHECK_EQ(send_hdr(e, 100, VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 64, 0, 0, 0), 0);
	CHECK_EQ(nstats(e).tx_packets, 1);
	CHECK_EQ(send_hdr(e, 100, VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 65, 0, 0, 0), 0);
	CHECK_EQ(send_hdr(e, 100, VIRTIO_NET_HDR_F_NEEDS_CSUM, 100, 0, 0, 0, 0), 0);
	CHECK_EQ(send_hdr(e, 100, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0xffff, 0xffff, 0, 0, 0), 0);
	st = nstats(e);
	CHECK_EQ(st.tx_bad_csum, 3);
	CHECK_EQ(bad_total(&st), 3);
	CHECK_EQ(st.tx_packets, 1);
	CHECK(queue_goes_on(e, false));
}

static void csum_not_negotiated(struct nenv *e)
{
	CHECK(!uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_CSUM));
	CHECK_EQ(send_hdr(e, 100, VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16, 0, 0, 0), 0);
	CHECK_EQ(nstats(e).tx_bad_csum, 1);
	CHECK_EQ(nstats(e).tx_packets, 0);
	/* DATA_VALID means nothing on tx: passed. */
	CHECK_EQ(send_hdr(e, 100, VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0), 0);
	CHECK_EQ(nstats(e).tx_packets, 1);
	CHECK(queue_goes_on(e, false));
}

static void test_net_checksum_outside_the_frame_or_not_negotiated_is_dropped(void)
{
	each_transport(&null_cfg, SPLIT_WANT, csum_range);
	each_transport(&null_cfg, SPLIT_WANT & ~(NB(CSUM) | NB(HOST_TSO4) | NB(HOST_TSO6) | NB(HOST_ECN)),
		       csum_not_negotiated);
}

static void gso_checks(struct nenv *e)
{
	struct uvirtio_net_dev_stats st;

	CHECK(uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_HOST_TSO4));
	CHECK_EQ(send_hdr(e, 3000, VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 0), 0);
	CHECK_EQ(send_hdr(e, 3000, VIRTIO_NET_HDR_F_NEEDS_CSUM, 54, 16, VIRTIO_NET_HDR_GSO_TCPV6, 1428, 0), 0);
	CHECK_EQ(nstats(e).tx_packets, 2);
	/* gso_size 0, larger than the frame; UDP (not offered); ECN on no GSO. */
	CHECK_EQ(send_hdr(e, 3000, VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16, VIRTIO_NET_HDR_GSO_TCPV4, 0, 0), 0);
	CHECK_EQ(send_hdr(e, 3000, VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16, VIRTIO_NET_HDR_GSO_TCPV4, 3001, 0), 0);
	CHECK_EQ(send_hdr(e, 3000, 0, 0, 0, VIRTIO_NET_HDR_GSO_UDP, 1448, 0), 0);
	CHECK_EQ(send_hdr(e, 3000, 0, 0, 0, VIRTIO_NET_HDR_GSO_ECN, 0, 0), 0);
	st = nstats(e);
	CHECK_EQ(st.tx_bad_gso, 4);
	CHECK_EQ(bad_total(&st), 4);
	CHECK(queue_goes_on(e, false));
}

static void gso_without_ecn(struct nenv *e)
{
	CHECK(!uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_HOST_ECN));
	CHECK_EQ(send_hdr(e, 3000, VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16,
			  VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1448, 0), 0);
	CHECK_EQ(nstats(e).tx_bad_gso, 1);
	CHECK(queue_goes_on(e, false));
}

static void gso_not_negotiated(struct nenv *e)
{
	CHECK(!uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_HOST_TSO4));
	CHECK_EQ(send_hdr(e, 3000, 0, 0, 0, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 0), 0);
	CHECK_EQ(send_hdr(e, 3000, 0, 0, 0, VIRTIO_NET_HDR_GSO_TCPV6, 1448, 0), 0);
	CHECK_EQ(nstats(e).tx_bad_gso, 2);
	CHECK_EQ(nstats(e).tx_packets, 0);
	CHECK(queue_goes_on(e, true));
}

static void test_net_gso_not_negotiated_or_inconsistent_is_dropped(void)
{
	each_transport(&null_cfg, SPLIT_WANT, gso_checks);
	each_transport(&null_cfg, SPLIT_WANT & ~NB(HOST_ECN), gso_without_ecn);
	each_transport(&reflect_cfg, SPLIT_WANT, gso_not_negotiated);
}

static void frame_sizes(struct nenv *e)
{
	struct uvirtio_net_dev_stats st;

	/* The largest frame passes; one byte more does not. */
	CHECK_EQ(send_hdr(e, UVIRTIO_NET_FRAME_MAX, 0, 0, 0, 0, 0, 0), 0);
	CHECK_EQ(nstats(e).tx_packets, 1);
	CHECK_EQ(send_hdr(e, UVIRTIO_NET_FRAME_MAX + 1, 0, 0, 0, 0, 0, 0), 0);
	/* Empty, and shorter than an Ethernet header. */
	CHECK_EQ(send_hdr(e, 0, 0, 0, 0, 0, 0, 0), 0);
	CHECK_EQ(send_hdr(e, 13, 0, 0, 0, 0, 0, 0), 0);
	st = nstats(e);
	CHECK_EQ(st.tx_bad_size, 3);
	CHECK_EQ(bad_total(&st), 3);
	CHECK_EQ(st.tx_packets, 1);
	CHECK(queue_goes_on(e, false));
}

static void test_net_frame_over_the_maximum_or_empty_is_dropped(void)
{
	each_transport(&null_cfg, SPLIT_WANT, frame_sizes);
}

static void num_buffers_on_tx(struct nenv *e)
{
	struct uvirtio_net_dev_stats st;

	CHECK(!uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_MRG_RXBUF));
	CHECK_EQ(send_hdr(e, 100, 0, 0, 0, 0, 0, 1), 0);
	CHECK_EQ(send_hdr(e, 100, 0, 0, 0, 0, 0, 0xffff), 0);
	st = nstats(e);
	CHECK_EQ(st.tx_bad_num_buffers, 2);
	CHECK_EQ(bad_total(&st), 2);
	CHECK(queue_goes_on(e, true));
}

static void test_net_num_buffers_on_tx_without_mrg_rxbuf_is_dropped(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT & ~NB(MRG_RXBUF), num_buffers_on_tx);
}

/* rx chains too short for a header, or with nothing writable, go back empty;
 * the frame goes into the next good one. */
static void short_rx_chains(struct nenv *e)
{
	uint8_t *pkt = make_packet(e, 64, 8), *tiny = nalloc(e, 64), *ro = nalloc(e, 64),
		*rx = nalloc(e, 2048);
	struct iovec out = { pkt, HDR_LEN + 64 }, ro_iov = { ro, 64 };
	uint32_t len;
	void *token;

	CHECK(pkt && tiny && ro && rx);
	CHECK_EQ(post_rx(e, 0, tiny, HDR_LEN - 1), 0);
	CHECK_EQ(add_buf(e, rxq(0), &ro_iov, 1, NULL, 0, ro), 0);
	CHECK_EQ(post_rx(e, 0, rx, 2048), 0);
	CHECK_EQ(tx_wait(e, 0, &out, 1), 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == tiny);
	CHECK_EQ(len, 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == ro);
	CHECK_EQ(len, 0);
	CHECK_EQ(wait_used(e, rxq(0), &token, &len), 1);
	CHECK(token == rx);
	CHECK_EQ(len, HDR_LEN + 64);
	CHECK(is_reflection(rx + HDR_LEN, pkt + HDR_LEN, 64));
	CHECK_EQ(nstats(e).rx_bad_chain, 2);
	CHECK_EQ(nstats(e).rx_dropped, 0);
	CHECK(queue_goes_on(e, true));
}

static void test_net_rx_chain_too_short_for_a_header_goes_back_empty(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, short_rx_chains);
	each_transport(&reflect_cfg, SPLIT_WANT | F_PACKED | F_IN_ORDER, short_rx_chains);
}

static bool needs_reset(struct nenv *e)
{
	return uvirtio_driver_needs_reset(&e->drv);
}

/* A descriptor outside guest memory, made available on the tx ring by hand
 * (split): the queue breaks, DEVICE_NEEDS_RESET; after a reset the device
 * serves again. */
static void broken_ring(struct nenv *e)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&e->drv, txq(0));
	struct uvirtio_drvq_ring ring;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct uvirtio_net_dev_stats st;
	uint8_t status = 0;
	uint16_t idx;

	CHECK(!uvirtio_drvq_is_packed(q));
	uvirtio_drvq_ring(q, &ring);
	desc = ring.desc_host;
	avail = ring.avail_host;
	/* No buffer is in the ring: every descriptor is free, take the last. */
	desc[uvirtio_drvq_size(q) - 1] = (struct vring_desc){ .addr = htole64(1ull << 60),
							      .len = htole32(100) };
	idx = __atomic_load_n(&avail->idx, __ATOMIC_RELAXED);
	avail->ring[idx & (uvirtio_drvq_size(q) - 1)] = htole16((uint16_t)(uvirtio_drvq_size(q) - 1));
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	CHECK_EQ(uvirtio_drvq_notify(q), 0);
	CHECK(wait_until(e, needs_reset));
	CHECK_EQ(e->t->ops->get_status(e->t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* Nothing was counted as a bad packet: the ring, not a packet, is bad. */
	st = nstats(e);
	CHECK_EQ(bad_total(&st), 0);
	nenv_down(e);
	CHECK_EQ(nenv_up(e, SPLIT_WANT), 0);
	CHECK(!uvirtio_driver_needs_reset(&e->drv));
	CHECK(queue_goes_on(e, true));
}

static void test_net_malformed_ring_breaks_the_queue(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT, broken_ring);
}

/* The driver's bad packets do not set DEVICE_NEEDS_RESET. */
static void many_bad_then_status(struct nenv *e)
{
	uint8_t status = 0;

	for (unsigned i = 0; i < 300; i++)
		CHECK_EQ(send_hdr(e, i % 3 ? 0 : 100, (uint8_t)(i % 3 == 2 ? 0x40 : 0), 0, 0, 0, 0, 1), 0);
	CHECK_EQ(nstats(e).tx_bad_size + nstats(e).tx_bad_num_buffers + nstats(e).tx_bad_header, 300);
	CHECK_EQ(e->t->ops->get_status(e->t, &status), 0);
	CHECK(!(status & VIRTIO_CONFIG_S_NEEDS_RESET));
	CHECK(queue_goes_on(e, true));
}

static void test_net_bad_packets_never_need_a_reset(void)
{
	each_transport(&reflect_cfg, SPLIT_WANT & ~NB(MRG_RXBUF), many_bad_then_status);
}

TEST_MAIN(T(test_net_header_over_several_descriptors_works),
	  T(test_net_header_under_12_bytes_or_with_unknown_flags_is_dropped),
	  T(test_net_checksum_outside_the_frame_or_not_negotiated_is_dropped),
	  T(test_net_gso_not_negotiated_or_inconsistent_is_dropped),
	  T(test_net_frame_over_the_maximum_or_empty_is_dropped),
	  T(test_net_num_buffers_on_tx_without_mrg_rxbuf_is_dropped),
	  T(test_net_rx_chain_too_short_for_a_header_goes_back_empty),
	  T(test_net_malformed_ring_breaks_the_queue),
	  T(test_net_bad_packets_never_need_a_reset))
