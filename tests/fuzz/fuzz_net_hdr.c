// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the virtio-net device's tx path, whole. A driver (the
 * driver core on a loopback transport) negotiates features the input picks,
 * posts rx buffers of sizes the input picks and sends tx chains whose
 * header, frame length and split over descriptors come from the input; the
 * device's pair thread checks each header (uvirtio_net_dev_check_tx_hdr())
 * and passes the frame to the reflector or the sink.
 *
 * Checked against a model of net_dev.h and the spec (5.1.6):
 *   - uvirtio_net_dev_check_tx_hdr() on each header: 0 exactly when the
 *     model finds no rule broken, else one of the reasons the model found;
 *   - every tx chain comes back once, used length 0, and the device's
 *     counters moved by the reasons of the frames sent (tx_packets for the
 *     good ones);
 *   - reflector: the rx used ring is what the model of the rx path says: rx
 *     chains too short for a header given back empty (only as a frame's
 *     first chain), each good frame in as many chains as it needs with
 *     MRG_RXBUF (num_buffers set, every chain but the last full) or in one
 *     chain without, else dropped with the chain kept; the frame's bytes are
 *     the sent frame with its MAC addresses swapped, the header zero but for
 *     num_buffers.
 *
 * The device and transport are set up once; each input is a new driver
 * (probe resets the device), so the counters are compared as differences.
 *
 * Input layout (little-endian; a short input reads as zeros):
 *   u8 mode: bit 0 the sink (else the reflector), bit 1 packed ring, bit 2
 *      IN_ORDER, bit 3 INDIRECT_DESC, bit 4 EVENT_IDX
 *   u32 device feature bits the driver asks for (bits 0-23; refused
 *      combinations end the input)
 *   RX_FUZZED bytes: the first rx chains' sizes (b < 32: 1 + b % 11 bytes,
 *      too short for a header; else 8 * b); RX_BIG chains of 2048 follow
 *   u8 nframes % (FRAMES_MAX + 1), then per frame:
 *     u8 shape: bits 0-2 parts - 1; bit 3 a chain shorter than a header
 *       (u8 % 12 bytes, no frame); bit 4 (sink only) a frame near
 *       UVIRTIO_NET_FRAME_MAX
 *     u16 frame length % (FRAME_FUZZ_MAX + 1) (with bit 4: FRAME_MAX - 2 +
 *       this % 4)
 *     12 header bytes, then the frame's first 14 bytes (the rest is a
 *     pattern), then parts - 1 u16 cut points
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "uvirtio/driver.h"
#include "uvirtio/loopback.h"
#include "uvirtio/net_dev.h"
#include "fuzz_input.h"

#define HDR 12u
#define RX_FUZZED 48u
#define RX_BIG 200u
#define RX_BIG_LEN 2048u
#define FRAMES_MAX 8u
#define FRAME_FUZZ_MAX 2048u
#define PARTS_MAX 8u
#define WAIT_MS 5000 /* a hang guard, under libFuzzer's -timeout=10 */

#define B(bit) (1ull << (bit))

static struct uvirtio_net_dev net[2]; /* [0] reflector, [1] sink */
static struct uvirtio_loopback *lbs[2];
static struct uvirtio_transport *tps[2];
static struct uvirtio_dma *dmas[2];
static uint8_t *tx_buf[FRAMES_MAX], *rx_buf[RX_FUZZED + RX_BIG];
static uint32_t rx_len[RX_FUZZED + RX_BIG];
static uint8_t flat[HDR + FRAME_FUZZ_MAX + 2 * RX_BIG_LEN];

struct frame {
	bool short_chain;  /* shorter than a header */
	uint32_t out_len;  /* the chain's bytes */
	uint32_t frame_len;
	int reason;        /* uvirtio_net_dev_check_tx_hdr()'s */
};
static struct frame frames[FRAMES_MAX];

static int setup(unsigned k)
{
	struct uvirtio_loopback_config lc = { .mem_size = 8u << 20 };
	struct uvirtio_net_dev_config cfg = {
		.backend = k ? UVIRTIO_NET_BACKEND_NULL : UVIRTIO_NET_BACKEND_REFLECT,
	};
	int ret;

	ret = uvirtio_loopback_create(&lbs[k], &lc);
	if (!ret)
		ret = uvirtio_net_dev_init(&net[k], &cfg, uvirtio_loopback_mem(lbs[k]));
	if (!ret)
		ret = uvirtio_loopback_start(lbs[k], uvirtio_net_dev_device(&net[k]));
	if (ret)
		return ret;
	tps[k] = uvirtio_loopback_transport(lbs[k]);
	dmas[k] = tps[k]->ops->dma(tps[k]);
	return 0;
}

/* The rules, from net_dev.h and the spec: a bit per rule the header breaks,
 * as the errno uvirtio_net_dev_check_tx_hdr() gives for it. */
#define R_SIZE 1u
#define R_FLAGS 2u
#define R_CSUM 4u
#define R_GSO_TYPE 8u
#define R_GSO_SIZE 16u
#define R_NUM_BUFFERS 32u

FUZZ_MODEL static unsigned broken_rules(const uint8_t *h, uint32_t len, uint64_t f)
{
	uint8_t flags = h[0], gso = h[1];
	uint16_t gso_size = (uint16_t)(h[4] | h[5] << 8), start = (uint16_t)(h[6] | h[7] << 8);
	uint16_t off = (uint16_t)(h[8] | h[9] << 8), nb = (uint16_t)(h[10] | h[11] << 8);
	uint8_t base = gso & 0x7f;
	unsigned r = 0;

	if (len < 14 || len > UVIRTIO_NET_FRAME_MAX)
		r |= R_SIZE;
	if (flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		r |= R_FLAGS;
	if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (!(f & B(VIRTIO_NET_F_CSUM)) || (uint32_t)start + off + 2 > len))
		r |= R_CSUM;
	if (base == VIRTIO_NET_HDR_GSO_NONE) {
		if (gso & VIRTIO_NET_HDR_GSO_ECN)
			r |= R_GSO_TYPE;
	} else {
		if (!(base == VIRTIO_NET_HDR_GSO_TCPV4 && (f & B(VIRTIO_NET_F_HOST_TSO4))) &&
		    !(base == VIRTIO_NET_HDR_GSO_TCPV6 && (f & B(VIRTIO_NET_F_HOST_TSO6))))
			r |= R_GSO_TYPE;
		if ((gso & VIRTIO_NET_HDR_GSO_ECN) && !(f & B(VIRTIO_NET_F_HOST_ECN)))
			r |= R_GSO_TYPE;
		if (!gso_size || gso_size > len)
			r |= R_GSO_SIZE;
	}
	if (nb && !(f & B(VIRTIO_NET_F_MRG_RXBUF)))
		r |= R_NUM_BUFFERS;
	return r;
}

FUZZ_MODEL static unsigned rule_of(int reason)
{
	switch (reason) {
	case 0:
		return 0;
	case -EMSGSIZE:
		return R_SIZE;
	case -EBADMSG:
		return R_FLAGS;
	case -EPROTO:
		return R_CSUM;
	case -EOPNOTSUPP:
		return R_GSO_TYPE;
	case -EINVAL:
		return R_GSO_SIZE;
	case -EBADE:
		return R_NUM_BUFFERS;
	}
	return 0x80000000u; /* no reason the header names */
}

static int wait_used(struct uvirtio_driver *drv, unsigned qi, void **token, uint32_t *len)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(drv, qi);

	for (;;) {
		int ret = uvirtio_drvq_get(q, token, len);

		if (ret)
			return ret;
		if (!uvirtio_drvq_enable_cb(q))
			continue;
		ret = uvirtio_driver_wait(drv, qi, WAIT_MS);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

/* The rx side, reflector: what the used ring must hold, chain by chain. */
FUZZ_MODEL static void check_rx(struct uvirtio_driver *drv, bool mrg, unsigned nframes,
			       const struct uvirtio_net_dev_stats *d)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(drv, 0);
	unsigned chain = 0, given = 0, dropped = 0, bad = 0;
	uint32_t len;
	void *token;

	for (unsigned i = 0; i < nframes; i++) {
		const struct frame *fr = &frames[i];
		uint32_t want, got = 0;
		unsigned n = 0;

		if (fr->short_chain || fr->reason)
			continue;
		want = HDR + fr->frame_len;
		/* A first chain too short for a header goes back empty. */
		while (rx_len[chain] < HDR) {
			FUZZ_CHECK(uvirtio_drvq_get(q, &token, &len) == 1);
			FUZZ_CHECK(token == rx_buf[chain] && len == 0);
			chain++;
			bad++;
		}
		if (!mrg && rx_len[chain] < want) {
			dropped++; /* the chain stays for the next frame */
			continue;
		}
		while (got < want) {
			uint32_t c = rx_len[chain] < want - got ? rx_len[chain] : want - got;

			FUZZ_CHECK(uvirtio_drvq_get(q, &token, &len) == 1);
			FUZZ_CHECK(token == rx_buf[chain] && len == c);
			memcpy(flat + got, rx_buf[chain], c);
			got += c;
			chain++;
			n++;
		}
		/* The header: zero, num_buffers the chains it took. */
		for (unsigned k = 0; k < 10; k++)
			FUZZ_CHECK(flat[k] == 0);
		FUZZ_CHECK((flat[10] | flat[11] << 8) == (int)n);
		/* MACs swapped, the rest as sent. */
		FUZZ_CHECK(!memcmp(flat + HDR, tx_buf[i] + HDR + 6, 6));
		FUZZ_CHECK(!memcmp(flat + HDR + 6, tx_buf[i] + HDR, 6));
		FUZZ_CHECK(!memcmp(flat + HDR + 12, tx_buf[i] + HDR + 12, fr->frame_len - 12));
		given++;
	}
	FUZZ_CHECK(uvirtio_drvq_get(q, &token, &len) == 0);
	FUZZ_CHECK(d->rx_packets == given);
	FUZZ_CHECK(d->rx_dropped == dropped);
	FUZZ_CHECK(d->rx_bad_chain == bad);
}

static void diff(struct uvirtio_net_dev_stats *d, const struct uvirtio_net_dev_stats *a,
		 const struct uvirtio_net_dev_stats *b)
{
	const uint64_t *pa = (const uint64_t *)a, *pb = (const uint64_t *)b;
	uint64_t *pd = (uint64_t *)d;

	for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
		pd[i] = pb[i] - pa[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static struct uvirtio_driver drv;
	struct uvirtio_net_dev_stats before, after, d;
	uint8_t mode = in_u8(&in);
	unsigned k = mode & 1, nframes, sent = 0;
	uint64_t wanted = in_u32(&in) & 0xffffffu, f;
	uint64_t want_bad[6] = { 0 }, want_ok = 0;
	struct uvirtio_transport *t;
	struct uvirtio_dma *dma;
	bool mrg;

	if (!lbs[k])
		FUZZ_CHECK(setup(k) == 0);
	t = tps[k];
	dma = dmas[k];
	if (mode & 2)
		wanted |= B(VIRTIO_F_RING_PACKED);
	if (mode & 4)
		wanted |= B(VIRTIO_F_IN_ORDER);
	if (mode & 8)
		wanted |= B(VIRTIO_RING_F_INDIRECT_DESC);
	if (mode & 16)
		wanted |= B(VIRTIO_RING_F_EVENT_IDX);
	/* No control queue on this device: the driver asks for none of it. */
	wanted &= ~(B(VIRTIO_NET_F_CTRL_VQ) | B(VIRTIO_NET_F_MQ));
	if (uvirtio_driver_probe(&drv, t, wanted))
		return 0;
	f = uvirtio_driver_features(&drv);
	mrg = f & B(VIRTIO_NET_F_MRG_RXBUF);
	FUZZ_CHECK(uvirtio_driver_find_vqs(&drv, 2, NULL) == 0);
	FUZZ_CHECK(uvirtio_driver_ready(&drv) == 0);
	uvirtio_net_dev_get_stats(&net[k], &before);

	/* rx chains (reflector): fuzzed sizes, then enough big ones. */
	for (unsigned i = 0; !k && i < RX_FUZZED + RX_BIG; i++) {
		uint8_t b = i < RX_FUZZED ? in_u8(&in) : 0;
		struct iovec v;

		rx_len[i] = i >= RX_FUZZED ? RX_BIG_LEN : b < 32 ? 1u + b % 11u : 8u * b;
		rx_buf[i] = uvirtio_dma_alloc(dma, rx_len[i], 8);
		FUZZ_CHECK(rx_buf[i]);
		memset(rx_buf[i], 0xa5, rx_len[i]);
		v = (struct iovec){ rx_buf[i], rx_len[i] };
		FUZZ_CHECK(uvirtio_drvq_add(uvirtio_driver_vq(&drv, 0), NULL, 0, &v, 1, rx_buf[i]) == 0);
	}
	if (!k)
		FUZZ_CHECK(uvirtio_drvq_kick(uvirtio_driver_vq(&drv, 0)) == 0);

	memset(frames, 0, sizeof(frames));
	nframes = in_u8(&in) % (FRAMES_MAX + 1);
	for (unsigned i = 0; i < nframes; i++) {
		struct frame *fr = &frames[i];
		uint8_t shape = in_u8(&in);
		unsigned parts = (shape & 7) + 1, nv = 0;
		uint32_t cuts[PARTS_MAX + 1];
		struct iovec v[PARTS_MAX];
		uint16_t l = in_u16(&in);
		uint8_t *p;

		/* The reflector holds a frame until rx buffers come: none near
		 * the maximum there (its buffers are for FRAME_FUZZ_MAX). */
		fr->frame_len = (shape & 16) && k ? UVIRTIO_NET_FRAME_MAX - 2 + l % 4u : l % (FRAME_FUZZ_MAX + 1u);
		fr->short_chain = shape & 8;
		fr->out_len = fr->short_chain ? 1u + in_u8(&in) % (HDR - 1) : HDR + fr->frame_len;
		p = uvirtio_dma_alloc(dma, HDR + fr->frame_len + 1, 8);
		FUZZ_CHECK(p);
		for (unsigned j = 0; j < HDR + 14 && j < HDR + fr->frame_len; j++)
			p[j] = in_u8(&in);
		for (uint32_t j = HDR + 14; j < HDR + fr->frame_len; j++)
			p[j] = (uint8_t)(j * 13 + i);
		/* Cut points, in order, inside the chain; empty parts go. */
		cuts[0] = 0;
		for (unsigned j = 1; j < parts; j++)
			cuts[j] = in_u16(&in) % (fr->out_len + 1);
		cuts[parts] = fr->out_len;
		for (unsigned a = 1; a < parts; a++)
			for (unsigned b2 = a + 1; b2 < parts; b2++)
				if (cuts[b2] < cuts[a]) {
					uint32_t x = cuts[a];

					cuts[a] = cuts[b2];
					cuts[b2] = x;
				}
		for (unsigned j = 0; j < parts; j++)
			if (cuts[j + 1] > cuts[j])
				v[nv++] = (struct iovec){ p + cuts[j], cuts[j + 1] - cuts[j] };
		tx_buf[i] = p;
		if (fr->short_chain) {
			fr->reason = -1; /* a bad header, not a frame */
			want_bad[0]++;
		} else {
			struct virtio_net_hdr_v1 h;
			unsigned rules = broken_rules(p, fr->frame_len, f);

			memcpy(&h, p, HDR);
			fr->reason = uvirtio_net_dev_check_tx_hdr(&h, fr->frame_len, f);
			/* 0 exactly when nothing is broken, else a rule that is. */
			FUZZ_CHECK(!fr->reason == !rules);
			FUZZ_CHECK(!fr->reason || (rules & rule_of(fr->reason)));
			switch (fr->reason) {
			case 0:
				want_ok++;
				break;
			case -EBADMSG:
				want_bad[0]++;
				break;
			case -EPROTO:
				want_bad[1]++;
				break;
			case -EOPNOTSUPP:
			case -EINVAL:
				want_bad[2]++;
				break;
			case -EMSGSIZE:
				want_bad[3]++;
				break;
			case -EBADE:
				want_bad[4]++;
				break;
			}
		}
		FUZZ_CHECK(uvirtio_drvq_add(uvirtio_driver_vq(&drv, 1), v, nv, NULL, 0, p) == 0);
		sent++;
	}
	if (sent)
		FUZZ_CHECK(uvirtio_drvq_kick(uvirtio_driver_vq(&drv, 1)) == 0);
	/* Every chain comes back once, in the order sent, with nothing written. */
	for (unsigned i = 0; i < sent; i++) {
		uint32_t len = 1;
		void *token;

		FUZZ_CHECK(wait_used(&drv, 1, &token, &len) == 1);
		FUZZ_CHECK(token == tx_buf[i] && len == 0);
	}
	/* The device stops: whatever it gave the rx queue is published. */
	FUZZ_CHECK(t->ops->reset(t) == 0);
	uvirtio_net_dev_get_stats(&net[k], &after);
	diff(&d, &before, &after);
	FUZZ_CHECK(d.tx_packets == want_ok);
	FUZZ_CHECK(d.tx_bad_header == want_bad[0]);
	FUZZ_CHECK(d.tx_bad_csum == want_bad[1]);
	FUZZ_CHECK(d.tx_bad_gso == want_bad[2]);
	FUZZ_CHECK(d.tx_bad_size == want_bad[3]);
	FUZZ_CHECK(d.tx_bad_num_buffers == want_bad[4]);
	FUZZ_CHECK(d.tx_backend_errors == 0);
	if (!k) {
		check_rx(&drv, mrg, nframes, &d);
	} else {
		FUZZ_CHECK(d.rx_packets == 0);
	}
	uvirtio_driver_remove(&drv, NULL, NULL);
	for (unsigned i = 0; i < sent; i++)
		uvirtio_dma_free(dma, tx_buf[i]);
	for (unsigned i = 0; !k && i < RX_FUZZED + RX_BIG; i++) {
		uvirtio_dma_free(dma, rx_buf[i]);
		rx_buf[i] = NULL;
	}
	return 0;
}
