// SPDX-License-Identifier: MIT
/*
 * A pair's thread: tx frames checked and passed to the backend, rx frames
 * written into the driver's buffers.
 *
 * tx: each chain's header is copied once into local memory and checked
 * (uvirtio_net_dev_check_tx_hdr()); the tap gets that copy and the payload
 * iovecs as they are (writev: no copy of the payload).
 * rx from the tap: readv straight into the first rx chain, with a bounce
 * buffer behind it for a frame longer than the chain; such a frame is then
 * copied into as many more chains as it needs (MRG_RXBUF). A frame that
 * finds too few buffers gives back the chains it took (unpop) and waits in
 * the bounce buffer. The reflector and the generator copy their frames the
 * same way.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "../core/spin.h"
#include "net_priv.h"

/* Iovec helpers. */

size_t net_iov_read(const struct iovec *iov, unsigned n, size_t skip, void *dst, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len - done ? l - skip : len - done;
		memcpy((char *)dst + done, (const char *)iov[i].iov_base + skip, c);
		done += c;
		skip = 0;
	}
	return done;
}

size_t net_iov_write(const struct iovec *iov, unsigned n, size_t skip, const void *src, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len - done ? l - skip : len - done;
		memcpy((char *)iov[i].iov_base + skip, (const char *)src + done, c);
		done += c;
		skip = 0;
	}
	return done;
}

/* The iovecs of @src after its first @skip bytes, into @dst; returns how
 * many, or -1 when more than @cap would be needed. */
static int iov_tail(const struct iovec *src, unsigned n, size_t skip, struct iovec *dst, unsigned cap)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		size_t l = src[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		if (k == cap)
			return -1;
		dst[k++] = (struct iovec){ (char *)src[i].iov_base + skip, l - skip };
		skip = 0;
	}
	return (int)k;
}

/* Copy @len bytes of the iovecs @src (from @sskip on) into @dst (from @dskip on). */
static void iov_copy(const struct iovec *dst, unsigned nd, size_t dskip, const struct iovec *src,
		     unsigned ns, size_t sskip, size_t len)
{
	unsigned i = 0;

	while (len && i < ns) {
		size_t l = src[i].iov_len;
		size_t c;

		if (sskip >= l) {
			sskip -= l;
			i++;
			continue;
		}
		c = l - sskip < len ? l - sskip : len;
		c = net_iov_write(dst, nd, dskip, (const char *)src[i].iov_base + sskip, c);
		if (!c)
			return;
		dskip += c;
		sskip += c;
		len -= c;
	}
}

/* The tx header. */

int uvirtio_net_dev_check_tx_hdr(const struct virtio_net_hdr_v1 *hdr, uint32_t frame_len,
				 uint64_t features)
{
	uint8_t gso = hdr->gso_type, base = gso & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
#define HAS(bit) ((features >> (bit)) & 1)

	if (frame_len < NET_ETH_HLEN || frame_len > UVIRTIO_NET_FRAME_MAX)
		return -EMSGSIZE;
	/* DATA_VALID means nothing on tx; any other flag is not the driver's. */
	if (hdr->flags & (uint8_t)~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return -EBADMSG;
	if (hdr->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint32_t start = le16toh(hdr->csum_start), off = le16toh(hdr->csum_offset);

		/* The checksum's two bytes must lie inside the frame. */
		if (!HAS(VIRTIO_NET_F_CSUM) || start + off + 2 > frame_len)
			return -EPROTO;
	}
	if (base == VIRTIO_NET_HDR_GSO_NONE) {
		if (gso & VIRTIO_NET_HDR_GSO_ECN)
			return -EOPNOTSUPP;
	} else {
		uint32_t size = le16toh(hdr->gso_size);

		if (!(base == VIRTIO_NET_HDR_GSO_TCPV4 && HAS(VIRTIO_NET_F_HOST_TSO4)) &&
		    !(base == VIRTIO_NET_HDR_GSO_TCPV6 && HAS(VIRTIO_NET_F_HOST_TSO6)))
			return -EOPNOTSUPP;
		if ((gso & VIRTIO_NET_HDR_GSO_ECN) && !HAS(VIRTIO_NET_F_HOST_ECN))
			return -EOPNOTSUPP;
		if (!size || size > frame_len)
			return -EINVAL;
	}
	/* spec: num_buffers is the device's to set, and only with MRG_RXBUF
	 * is there anything to count. */
	if (hdr->num_buffers && !HAS(VIRTIO_NET_F_MRG_RXBUF))
		return -EBADE;
#undef HAS
	return 0;
}

static void count_bad_tx(struct net_pair *p, int why)
{
	struct uvirtio_net_dev_stats *s = &p->stats;

	switch (why) {
	case -EPROTO:
		net_count(&s->tx_bad_csum, 1);
		break;
	case -EOPNOTSUPP:
	case -EINVAL:
		net_count(&s->tx_bad_gso, 1);
		break;
	case -EMSGSIZE:
		net_count(&s->tx_bad_size, 1);
		break;
	case -EBADE:
		net_count(&s->tx_bad_num_buffers, 1);
		break;
	default:
		net_count(&s->tx_bad_header, 1);
		break;
	}
}

/* Used entries go back in batches, each followed by one notification. */

static void flush_tx(struct net_pair *p)
{
	if (!p->ntx_done)
		return;
	/* Fails only when the ring broke meanwhile: the driver resets then. */
	(void)uvirtio_devq_push_batch(p->txq, p->tx_done, p->ntx_done);
	p->ntx_done = 0;
	uvirtio_device_notify(&p->net->dev, 2 * p->index + 1);
}

static void flush_rx(struct net_pair *p)
{
	if (!p->nrx_done)
		return;
	(void)uvirtio_devq_push_batch(p->rxq, p->rx_done, p->nrx_done);
	p->nrx_done = 0;
	uvirtio_device_notify(&p->net->dev, 2 * p->index);
}

static bool link_up(const struct net_dev *net)
{
	return __atomic_load_n(&net->link_up, __ATOMIC_ACQUIRE);
}

/* Whether this pair may give frames to the driver now. */
static bool rx_allowed(const struct net_pair *p)
{
	return link_up(p->net) && p->index < __atomic_load_n(&p->net->active_pairs, __ATOMIC_ACQUIRE);
}

/* rx. */

/* RX_TOO_BIG: the frame needs more chains or iovecs than the ring can ever
 * hold at once, so waiting for buffers would never end. */
enum rx_result { RX_GIVEN, RX_STARVED, RX_DROPPED, RX_BROKEN, RX_EMPTY, RX_TOO_BIG };

/* Give back the first @k chains of a frame, the last popped first. */
static void rx_unpop(struct net_pair *p, unsigned k)
{
	while (k--)
		(void)uvirtio_devq_unpop(p->rxq, p->rx_reqs[k].id);
}

/* Take the next rx chain into rx_reqs[@k], with iovec room from @iov_used
 * on (at most @iov_cap). A first chain too short for a header goes back
 * empty, counted, and the next one is tried. */
static enum rx_result rx_pop(struct net_pair *p, unsigned k, unsigned iov_used, unsigned iov_cap)
{
	struct uvirtio_req *r = &p->rx_reqs[k];

	for (;;) {
		int ret;

		if (k >= p->rx_reqs_max || iov_used >= iov_cap || (k && k >= uvirtio_devq_size(p->rxq)))
			return k ? RX_TOO_BIG : RX_STARVED;
		uvirtio_req_init(r, p->rx_iov + iov_used, iov_cap - iov_used);
		ret = uvirtio_devq_pop(p->rxq, r);
		if (ret < 0)
			return RX_BROKEN;
		if (ret == 0)
			return RX_STARVED;
		if (r->in_len >= (k ? 1 : NET_HDR_LEN))
			return RX_GIVEN;
		net_count(&p->stats.rx_bad_chain, 1);
		if (k)
			return RX_DROPPED;
		if (p->nrx_done == p->rx_reqs_max)
			flush_rx(p);
		p->rx_done[p->nrx_done++] = (struct uvirtio_used){ .id = r->id, .len = 0 };
	}
}

static void rx_set_num_buffers(struct net_pair *p, uint16_t n)
{
	struct uvirtio_req *r = &p->rx_reqs[0];
	uint16_t le = htole16(n);

	net_iov_write(r->iov + r->n_out, r->n_in, offsetof(struct virtio_net_hdr_v1, num_buffers), &le,
		      sizeof(le));
}

/* The first @k chains carry a frame, @lens[i] bytes each. */
static void rx_complete(struct net_pair *p, unsigned k, const uint32_t *lens, size_t total)
{
	rx_set_num_buffers(p, (uint16_t)k);
	if (p->nrx_done + k > p->rx_reqs_max)
		flush_rx(p);
	for (unsigned i = 0; i < k; i++)
		p->rx_done[p->nrx_done++] = (struct uvirtio_used){ .id = p->rx_reqs[i].id, .len = lens[i] };
	net_count(&p->stats.rx_packets, 1);
	net_count(&p->stats.rx_bytes, total - NET_HDR_LEN);
}

/* Give one frame, @len bytes of @src with the header first, to the driver:
 * copied into as many rx chains as it needs. */
static enum rx_result rx_put(struct net_pair *p, const struct iovec *src, unsigned nsrc, size_t len)
{
	uint32_t lens[UVIRTIO_NET_QUEUE_SIZE_MAX];
	unsigned k = 0, iov_used = 0;
	size_t off = 0;

	while (off < len) {
		enum rx_result got = rx_pop(p, k, iov_used, NET_RX_IOV_MAX);
		struct uvirtio_req *r = &p->rx_reqs[k];
		size_t c;

		if (got == RX_DROPPED) {
			/* A chain with nothing writable in the middle of a
			 * frame: hand back it and the frame's, empty. */
			for (unsigned i = 0; i <= k; i++)
				lens[i] = 0;
			if (p->nrx_done + k + 1 > p->rx_reqs_max)
				flush_rx(p);
			for (unsigned i = 0; i <= k; i++)
				p->rx_done[p->nrx_done++] = (struct uvirtio_used){ .id = p->rx_reqs[i].id };
			net_count(&p->stats.rx_dropped, 1);
			return RX_DROPPED;
		}
		if (got == RX_TOO_BIG) {
			rx_unpop(p, k);
			net_count(&p->stats.rx_dropped, 1);
			return RX_TOO_BIG;
		}
		if (got != RX_GIVEN) {
			rx_unpop(p, k);
			return got;
		}
		c = r->in_len < len - off ? r->in_len : len - off;
		iov_copy(r->iov + r->n_out, r->n_in, 0, src, nsrc, off, c);
		lens[k++] = (uint32_t)c;
		iov_used += r->n_out + r->n_in;
		off += c;
		if (off < len && !p->net->mrg) {
			/* One chain per frame without MRG_RXBUF, and this one
			 * is too short: the frame cannot be given. */
			rx_unpop(p, k);
			net_count(&p->stats.rx_dropped, 1);
			return RX_TOO_BIG;
		}
	}
	rx_complete(p, k, lens, len);
	return RX_GIVEN;
}

static enum rx_result rx_put_bounce(struct net_pair *p, size_t len)
{
	struct iovec v = { p->bounce, len };

	return rx_put(p, &v, 1, len);
}

/* One frame from the tap. */
static enum rx_result rx_from_tap(struct net_pair *p)
{
	struct iovec iov[NET_TX_IOV_MAX];
	struct uvirtio_req *r = &p->rx_reqs[0];
	enum rx_result got;
	uint32_t first;
	ssize_t n;

	if (p->pending_len) {
		got = rx_put_bounce(p, p->pending_len);
		if (got != RX_STARVED)
			p->pending_len = 0;
		return got == RX_TOO_BIG ? RX_DROPPED : got;
	}
	/* readv takes at most 1024 iovecs: the chain's, then the bounce. */
	got = rx_pop(p, 0, 0, NET_TX_IOV_MAX - 1);
	if (got != RX_GIVEN)
		return got;
	memcpy(iov, r->iov + r->n_out, r->n_in * sizeof(*iov));
	iov[r->n_in] = (struct iovec){ p->bounce, NET_HDR_LEN + UVIRTIO_NET_FRAME_MAX };
	n = readv(p->tap_fd, iov, (int)r->n_in + 1);
	if (n <= 0) {
		(void)uvirtio_devq_unpop(p->rxq, r->id);
		return RX_EMPTY;
	}
	first = r->in_len;
	if ((size_t)n <= first) {
		uint32_t len = (uint32_t)n;

		rx_complete(p, 1, &len, (size_t)n);
		return RX_GIVEN;
	}
	/* Longer than the chain: the whole frame goes to the bounce buffer
	 * and is copied from there, over as many chains as it needs. */
	memmove(p->bounce + first, p->bounce, (size_t)n - first);
	net_iov_read(r->iov + r->n_out, r->n_in, 0, p->bounce, first);
	(void)uvirtio_devq_unpop(p->rxq, r->id);
	got = rx_put_bounce(p, (size_t)n);
	if (got == RX_STARVED)
		p->pending_len = (uint32_t)n;
	return got == RX_TOO_BIG ? RX_DROPPED : got;
}

/* The generator's frame: to the driver's MAC, from a locally administered
 * one, EtherType 0x88b5 (local experimental), a counter and a pattern. */
static void gen_prepare(struct net_pair *p)
{
	struct net_dev *net = p->net;
	uint8_t *f = p->bounce + NET_HDR_LEN;

	memset(p->bounce, 0, NET_HDR_LEN);
	pthread_mutex_lock(&net->lock);
	memcpy(f, net->mac, 6);
	pthread_mutex_unlock(&net->lock);
	memcpy(f + 6, net->gen_src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	for (uint32_t i = NET_ETH_HLEN; i < net->frame_size; i++)
		f[i] = (uint8_t)(i * 7 + p->index);
}

static enum rx_result rx_gen(struct net_pair *p)
{
	uint32_t seq = htole32(p->gen_seq);
	enum rx_result got;

	/* To the address the driver uses now (it may have set another). */
	pthread_mutex_lock(&p->net->lock);
	memcpy(p->bounce + NET_HDR_LEN, p->net->mac, 6);
	pthread_mutex_unlock(&p->net->lock);
	memcpy(p->bounce + NET_HDR_LEN + NET_ETH_HLEN, &seq, sizeof(seq));
	got = rx_put_bounce(p, NET_HDR_LEN + p->net->frame_size);
	if (got == RX_GIVEN)
		p->gen_seq++;
	if (got == RX_TOO_BIG) {
		/* Every frame is this size: the chains rx_put() gave back
		 * would be tried for ever. One goes back empty (the frame was
		 * counted as dropped), so the driver sees progress. */
		struct uvirtio_req *r = &p->rx_reqs[0];

		int ret;

		uvirtio_req_init(r, p->rx_iov, NET_RX_IOV_MAX);
		ret = uvirtio_devq_pop(p->rxq, r);
		if (ret < 0)
			return RX_BROKEN;
		if (ret) {
			if (p->nrx_done == p->rx_reqs_max)
				flush_rx(p);
			p->rx_done[p->nrx_done++] = (struct uvirtio_used){ .id = r->id, .len = 0 };
		}
		return RX_DROPPED;
	}
	return got;
}

/* Serve rx for a budget; true when the budget ran out (more to do). */
static bool do_rx(struct net_pair *p, bool *broken)
{
	enum uvirtio_net_backend b = p->net->backend;

	/* The reflector's rx is its tx: rx_put() ran there. */
	if (b != UVIRTIO_NET_BACKEND_TAP && b != UVIRTIO_NET_BACKEND_GEN)
		return false;
	p->rx_starved = false;
	if (!rx_allowed(p))
		return false;
	for (unsigned budget = NET_BUDGET; budget; budget--) {
		enum rx_result got = b == UVIRTIO_NET_BACKEND_TAP ? rx_from_tap(p) : rx_gen(p);

		if (got == RX_BROKEN) {
			*broken = true;
			return false;
		}
		if (got == RX_STARVED) {
			p->rx_starved = true;
			return false;
		}
		if (got == RX_EMPTY)
			return false;
	}
	return true;
}

/* tx. */

enum tx_result { TX_DONE, TX_BLOCKED };

/* The reflector: the frame comes back on this pair's rx queue, its MAC
 * addresses swapped, with a clean header. */
static enum tx_result tx_reflect(struct net_pair *p, const struct uvirtio_req *r, uint32_t frame_len)
{
	struct iovec src[NET_TX_IOV_MAX + 1];
	uint8_t head[NET_HDR_LEN + 12];
	int n;

	memset(head, 0, NET_HDR_LEN);
	/* frame_len >= 14 (checked): both addresses are there. */
	net_iov_read(r->iov, r->n_out, NET_HDR_LEN + 6, head + NET_HDR_LEN, 6);
	net_iov_read(r->iov, r->n_out, NET_HDR_LEN, head + NET_HDR_LEN + 6, 6);
	src[0] = (struct iovec){ head, sizeof(head) };
	n = iov_tail(r->iov, r->n_out, NET_HDR_LEN + 12, src + 1, NET_TX_IOV_MAX);
	if (n < 0 || !rx_allowed(p)) {
		net_count(&p->stats.rx_dropped, 1);
		return TX_DONE;
	}
	switch (rx_put(p, src, (unsigned)n + 1, NET_HDR_LEN + frame_len)) {
	case RX_STARVED:
		/* No rx buffer: keep the frame in the tx ring until one comes,
		 * as a cable that is not read holds its sender back. */
		p->rx_starved = true;
		return TX_BLOCKED;
	case RX_BROKEN:
		p->rx_starved = true;
		return TX_DONE;
	default:
		return TX_DONE;
	}
}

static void tx_to_tap(struct net_pair *p, const struct uvirtio_req *r, const struct virtio_net_hdr_v1 *hdr)
{
	struct iovec iov[NET_TX_IOV_MAX];
	int n;

	iov[0] = (struct iovec){ (void *)hdr, NET_HDR_LEN };
	n = iov_tail(r->iov, r->n_out, NET_HDR_LEN, iov + 1, NET_TX_IOV_MAX - 1);
	/* The header the tap reads is our checked copy, not the driver's. */
	if (n < 0 || writev(p->tap_fd, iov, n + 1) < 0)
		net_count(&p->stats.tx_backend_errors, 1);
}

/* Serve tx for a budget; true when the budget ran out. @blocked: a frame
 * waits for an rx buffer (reflector). */
static bool do_tx(struct net_pair *p, bool *broken, bool *blocked)
{
	struct net_dev *net = p->net;

	for (unsigned budget = NET_BUDGET; budget; budget--) {
		struct virtio_net_hdr_v1 hdr;
		struct uvirtio_req r;
		uint32_t frame_len;
		int ret;

		uvirtio_req_init(&r, p->tx_iov, NET_TX_IOV_MAX);
		ret = uvirtio_devq_pop(p->txq, &r);
		if (ret < 0)
			*broken = true;
		if (ret <= 0)
			return false;
		if (r.out_len < NET_HDR_LEN) {
			net_count(&p->stats.tx_bad_header, 1);
			goto done;
		}
		net_iov_read(r.iov, r.n_out, 0, &hdr, NET_HDR_LEN);
		frame_len = r.out_len - NET_HDR_LEN;
		ret = uvirtio_net_dev_check_tx_hdr(&hdr, frame_len, net->features);
		if (ret) {
			count_bad_tx(p, ret);
			goto done;
		}
		if (!link_up(net)) {
			net_count(&p->stats.tx_backend_errors, 1);
			goto done;
		}
		if (net->backend == UVIRTIO_NET_BACKEND_TAP) {
			tx_to_tap(p, &r, &hdr);
		} else if (net->backend == UVIRTIO_NET_BACKEND_REFLECT &&
			   tx_reflect(p, &r, frame_len) == TX_BLOCKED) {
			(void)uvirtio_devq_unpop(p->txq, r.id);
			*blocked = true;
			return false;
		}
		net_count(&p->stats.tx_packets, 1);
		net_count(&p->stats.tx_bytes, frame_len);
done:
		if (p->ntx_done == UVIRTIO_NET_QUEUE_SIZE_MAX)
			flush_tx(p);
		p->tx_done[p->ntx_done++] = (struct uvirtio_used){ .id = r.id, .len = 0 };
	}
	return true;
}

/* The thread. */

static bool stopping(struct net_pair *p)
{
	return __atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE);
}

/* Before sleeping, keep looking at the rings a while (see blk's queue
 * threads): a driver that adds within the window needs no kick. */
static bool poll_before_sleep(struct net_pair *p, bool want_tx, bool want_rx)
{
	uint64_t deadline;

	if (!p->net->poll_ns)
		return false;
	deadline = spin_now_ns() + p->net->poll_ns;
	for (unsigned i = 1;; i++) {
		if ((want_tx && uvirtio_devq_has_avail(p->txq)) ||
		    (want_rx && uvirtio_devq_has_avail(p->rxq)) || stopping(p))
			return true;
		spin_relax();
		if (!(i % 32) && spin_now_ns() >= deadline)
			return false;
	}
}

static void disable_kicks(struct net_pair *p, bool tx_ok, bool rx_ok)
{
	if (tx_ok)
		uvirtio_devq_disable_notify(p->txq);
	if (rx_ok)
		uvirtio_devq_disable_notify(p->rxq);
}

void *net_pair_thread(void *arg)
{
	struct net_pair *p = arg;
	struct net_dev *net = p->net;
	bool tap = net->backend == UVIRTIO_NET_BACKEND_TAP;
	bool tx_broken = !p->tx_on, rx_broken = !p->rx_on;

	if (net->backend == UVIRTIO_NET_BACKEND_GEN)
		gen_prepare(p);
	disable_kicks(p, !tx_broken, !rx_broken);
	while (!stopping(p)) {
		bool busy = false, blocked = false;
		bool want_tx, want_rx, want_tap;

		if (net->backend == UVIRTIO_NET_BACKEND_REFLECT)
			p->rx_starved = false;
		if (!tx_broken)
			busy |= do_tx(p, &tx_broken, &blocked);
		if (!rx_broken)
			busy |= do_rx(p, &rx_broken);
		flush_tx(p);
		flush_rx(p);
		if (busy)
			continue;
		want_tx = !tx_broken && !blocked;
		want_rx = !rx_broken && p->rx_starved;
		want_tap = tap && !rx_broken && !p->rx_starved && rx_allowed(p);
		if (net->poll && (want_tx || want_rx || want_tap))
			continue;
		if (poll_before_sleep(p, want_tx, want_rx))
			continue;
		/* spec, notification suppression: ask for kicks, then look
		 * again, or a buffer added meanwhile would wait for a kick
		 * that was never sent. */
		if (want_tx && uvirtio_devq_enable_notify(p->txq)) {
			disable_kicks(p, true, want_rx);
			continue;
		}
		if (want_rx && uvirtio_devq_enable_notify(p->rxq)) {
			disable_kicks(p, want_tx, true);
			continue;
		}
		{
			struct pollfd fds[5] = {
				{ .fd = p->stop_fd, .events = POLLIN },
				{ .fd = p->wake_fd, .events = POLLIN },
				{ .fd = want_tx ? p->tx_kick : -1, .events = POLLIN },
				{ .fd = want_rx ? p->rx_kick : -1, .events = POLLIN },
				{ .fd = want_tap ? p->tap_fd : -1, .events = POLLIN },
			};

			if (poll(fds, 5, -1) > 0)
				for (unsigned i = 1; i < 4; i++)
					if (fds[i].revents & POLLIN)
						eventfd_drain(fds[i].fd);
		}
		disable_kicks(p, want_tx, want_rx);
	}
	flush_tx(p);
	flush_rx(p);
	return NULL;
}
