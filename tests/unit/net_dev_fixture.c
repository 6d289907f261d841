// SPDX-License-Identifier: MIT
/* Fixtures of the virtio-net device tests (net_dev_fixture.h). */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "net_dev_fixture.h"
#include "drv_wait.h"

const char *const net_transport_names[NT_COUNT] = { "loopback", "mmio", "pci" };

static struct uvirtio_mem *mem_of(struct nenv *e)
{
	switch (e->tr) {
	case NT_LOOPBACK:
		return uvirtio_loopback_mem(e->lb);
	case NT_MMIO:
		return uvirtio_mmio_pair_mem(e->mp);
	default:
		return uvirtio_pci_pair_mem(e->pp);
	}
}

int nenv_create(struct nenv *e, enum net_transport tr, const struct uvirtio_net_dev_config *cfg)
{
	struct uvirtio_device *dev;
	int ret;

	memset(e, 0, sizeof(*e));
	e->tr = tr;
	e->npairs = cfg->num_pairs ? cfg->num_pairs : 1;
	e->ctrl = cfg->ctrl_vq;
	if (tr == NT_LOOPBACK)
		ret = uvirtio_loopback_create(&e->lb, NULL);
	else if (tr == NT_MMIO)
		ret = uvirtio_mmio_pair_create(&e->mp, NULL);
	else
		ret = uvirtio_pci_pair_create(&e->pp, NULL);
	if (ret)
		return ret;
	ret = uvirtio_net_dev_init(&e->net, cfg, mem_of(e));
	if (ret)
		return ret;
	e->have_net = true;
	dev = uvirtio_net_dev_device(&e->net);
	if (tr == NT_LOOPBACK) {
		ret = uvirtio_loopback_start(e->lb, dev);
		e->t = ret ? NULL : uvirtio_loopback_transport(e->lb);
	} else if (tr == NT_MMIO) {
		ret = uvirtio_mmio_pair_start(e->mp, dev);
		e->t = ret ? NULL : uvirtio_mmio_pair_transport(e->mp);
	} else {
		ret = uvirtio_pci_pair_start(e->pp, dev);
		e->t = ret ? NULL : uvirtio_pci_pair_transport(e->pp);
	}
	if (ret)
		return ret;
	e->dma = e->t->ops->dma(e->t);
	return 0;
}

int nenv_up_sized(struct nenv *e, uint64_t wanted, const unsigned *sizes)
{
	bool mq;
	int ret;

	ret = uvirtio_driver_probe(&e->drv, e->t, wanted);
	if (ret)
		return ret;
	e->have_drv = true;
	mq = uvirtio_driver_has_feature(&e->drv, VIRTIO_NET_F_MQ);
	e->nq = 2 * (mq ? e->npairs : 1) + (e->ctrl ? 1 : 0);
	ret = uvirtio_driver_find_vqs(&e->drv, e->nq, sizes);
	if (ret)
		return ret;
	return uvirtio_driver_ready(&e->drv);
}

int nenv_up(struct nenv *e, uint64_t wanted)
{
	return nenv_up_sized(e, wanted, NULL);
}

void nenv_down(struct nenv *e)
{
	if (e->have_drv)
		uvirtio_driver_remove(&e->drv, NULL, NULL);
	e->have_drv = false;
}

void nenv_destroy(struct nenv *e)
{
	nenv_down(e);
	if (e->lb)
		uvirtio_loopback_destroy(e->lb);
	if (e->mp)
		uvirtio_mmio_pair_destroy(e->mp);
	if (e->pp)
		uvirtio_pci_pair_destroy(e->pp);
	if (e->have_net)
		uvirtio_net_dev_destroy(&e->net);
	e->have_net = false;
	e->lb = NULL;
	e->mp = NULL;
	e->pp = NULL;
}

unsigned ctrlq(const struct nenv *e)
{
	return e->nq - 1;
}

void *nalloc(struct nenv *e, size_t n)
{
	return uvirtio_dma_alloc(e->dma, n, 64);
}

struct uvirtio_net_dev_stats nstats(struct nenv *e)
{
	struct uvirtio_net_dev_stats st;

	uvirtio_net_dev_get_stats(&e->net, &st);
	return st;
}

int add_buf(struct nenv *e, unsigned qi, const struct iovec *out, unsigned nout, const struct iovec *in,
	    unsigned nin, void *token)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&e->drv, qi);
	int ret;

	if (!q)
		return -ENOENT;
	if (!token)
		token = nout ? out[0].iov_base : in[0].iov_base;
	ret = uvirtio_drvq_add(q, out, nout, in, nin, token);
	return ret ? ret : uvirtio_drvq_kick(q);
}

int post_rx(struct nenv *e, unsigned pair, void *buf, size_t len)
{
	struct iovec in = { buf, len };

	return add_buf(e, rxq(pair), NULL, 0, &in, 1, buf);
}

int poll_used(struct nenv *e, unsigned qi, void **token, uint32_t *len)
{
	return uvirtio_drvq_get(uvirtio_driver_vq(&e->drv, qi), token, len);
}

int wait_used(struct nenv *e, unsigned qi, void **token, uint32_t *len)
{
	return drv_wait_used(&e->drv, qi, token, len, WAIT_MS);
}

long tx_wait(struct nenv *e, unsigned pair, const struct iovec *out, unsigned nout)
{
	uint32_t len = 0;
	void *token;
	int ret;

	ret = add_buf(e, txq(pair), out, nout, NULL, 0, (void *)out);
	if (!ret)
		ret = wait_used(e, txq(pair), &token, &len);
	if (ret < 0)
		return ret;
	return token == out ? (long)len : -EPROTO;
}

uint8_t *make_packet(struct nenv *e, size_t len, unsigned seed)
{
	static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
	static const uint8_t src[6] = { 0x02, 0x00, 0x00, 0x11, 0x22, 0x33 };
	uint8_t *p = nalloc(e, HDR_LEN + len);

	if (!p)
		return NULL;
	for (size_t i = 0; i < len; i++)
		p[HDR_LEN + i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
	if (len >= 12) {
		memcpy(p + HDR_LEN, dst, 6);
		memcpy(p + HDR_LEN + 6, src, 6);
		p[HDR_LEN + 5] = (uint8_t)seed;
	}
	return p;
}

bool is_reflection(const uint8_t *got, const uint8_t *sent, size_t len)
{
	return len >= 12 && !memcmp(got, sent + 6, 6) && !memcmp(got + 6, sent, 6) &&
	       !memcmp(got + 12, sent + 12, len - 12);
}

long ctrl_cmd_ex(struct nenv *e, uint8_t cls, uint8_t cmd, const void *data, size_t len, bool with_ack,
		 uint8_t *ack)
{
	uint8_t *head = nalloc(e, 2), *body = len ? nalloc(e, len) : NULL, *a = nalloc(e, 1);
	struct iovec out[2] = { { head, 2 }, { body, len } };
	struct iovec in = { a, 1 };
	unsigned qi = ctrlq(e);
	uint32_t used = 0;
	void *token;
	long ret;

	if (!head || !a || (len && !body))
		return -ENOMEM;
	head[0] = cls;
	head[1] = cmd;
	if (len)
		memcpy(body, data, len);
	*a = 0xee;
	ret = add_buf(e, qi, out, len ? 2 : 1, &in, with_ack ? 1 : 0, head);
	if (!ret)
		ret = wait_used(e, qi, &token, &used);
	if (!ret || ret == 1)
		ret = token == head ? (long)used : -EPROTO;
	*ack = *a;
	uvirtio_dma_free(e->dma, head);
	uvirtio_dma_free(e->dma, body);
	uvirtio_dma_free(e->dma, a);
	return ret;
}

int ctrl_cmd(struct nenv *e, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
	uint8_t ack;
	long ret = ctrl_cmd_ex(e, cls, cmd, data, len, true, &ack);

	if (ret < 0)
		return (int)ret;
	return ret == 1 ? ack : -EPROTO;
}

int net_config(struct nenv *e, struct virtio_net_config *c)
{
	memset(c, 0, sizeof(*c));
	return uvirtio_driver_config_read(&e->drv, 0, c, offsetof(struct virtio_net_config, rss_max_key_size));
}

uint32_t config_generation(struct nenv *e)
{
	uint32_t g = 0;

	e->t->ops->config_generation(e->t, &g);
	return g;
}

bool wait_until(struct nenv *e, bool (*pred)(struct nenv *e))
{
	for (int waited = 0; waited < WAIT_MS; waited++) {
		if (pred(e))
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	return pred(e);
}
