// SPDX-License-Identifier: MIT
/* Fixtures of the virtio-blk device tests (blk_dev_fixture.h). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk_dev_fixture.h"
#include "drv_wait.h"

int env_start_sized(struct env *e, struct uvirtio_blk_dev_config *cfg, uint64_t wanted,
		    unsigned nq, const unsigned *sizes)
{
	int ret;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	if (cfg->backend == UVIRTIO_BLK_BACKEND_FILE && !cfg->path) {
		strcpy(e->path, "/tmp/uvirtio-blk-test-XXXXXX");
		e->fd = mkstemp(e->path);
		if (e->fd < 0 || ftruncate(e->fd, IMAGE_SIZE) < 0)
			return -errno;
		cfg->path = e->path;
	}
	ret = uvirtio_loopback_create(&e->lb, NULL);
	if (ret)
		return ret;
	ret = uvirtio_blk_dev_init(&e->blk, cfg, uvirtio_loopback_mem(e->lb));
	if (ret)
		return ret;
	e->have_blk = true;
	ret = uvirtio_loopback_start(e->lb, uvirtio_blk_dev_device(&e->blk));
	if (ret)
		return ret;
	e->t = uvirtio_loopback_transport(e->lb);
	e->dma = e->t->ops->dma(e->t);
	ret = uvirtio_driver_probe(&e->drv, e->t, wanted);
	if (ret)
		return ret;
	e->have_drv = true;
	ret = uvirtio_driver_find_vqs(&e->drv, nq, sizes);
	if (ret)
		return ret;
	for (unsigned i = 0; i < nq && i < 4; i++) {
		e->hdr[i] = uvirtio_dma_alloc(e->dma, sizeof(*e->hdr[i]), 64);
		e->st[i] = uvirtio_dma_alloc(e->dma, 1, 64);
		if (!e->hdr[i] || !e->st[i])
			return -ENOMEM;
	}
	return uvirtio_driver_ready(&e->drv);
}

int env_start_with(struct env *e, struct uvirtio_blk_dev_config *cfg, uint64_t wanted,
		   unsigned nq)
{
	return env_start_sized(e, cfg, wanted, nq, NULL);
}

int env_start(struct env *e, struct uvirtio_blk_dev_config *cfg)
{
	return env_start_with(e, cfg, ALL_BLK_FEATURES, cfg->num_queues ? cfg->num_queues : 1);
}

void env_stop(struct env *e)
{
	if (e->have_drv)
		uvirtio_driver_remove(&e->drv, NULL, NULL);
	uvirtio_loopback_destroy(e->lb);
	if (e->have_blk)
		uvirtio_blk_dev_destroy(&e->blk);
	if (e->fd >= 0) {
		close(e->fd);
		unlink(e->path);
	}
}

void *dalloc(struct env *e, size_t n)
{
	return uvirtio_dma_alloc(e->dma, n, 4096);
}

struct virtio_blk_outhdr *make_hdr(struct env *e, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr *h = dalloc(e, sizeof(*h));

	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	return h;
}

/* Wait for one used buffer on queue @qi. Return: 1, or what went wrong. */
int wait_one(struct env *e, unsigned qi, void **token, uint32_t *len)
{
	return drv_wait_used(&e->drv, qi, token, len, WAIT_MS);
}

/* Make one request available on queue @qi and wait for it.
 * Return: the used length, or a negative errno. */
long run(struct env *e, unsigned qi, const struct iovec *out, unsigned nout,
	 const struct iovec *in, unsigned nin)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&e->drv, qi);
	uint32_t len = 0;
	void *token;
	int ret;

	ret = uvirtio_drvq_add(q, out, nout, in, nin, (void *)out);
	if (!ret)
		ret = uvirtio_drvq_kick(q);
	if (!ret)
		ret = wait_one(e, qi, &token, &len);
	if (ret < 0)
		return ret;
	return token == out ? (long)len : -EPROTO;
}

/* A read (IN) or write (OUT) of @len bytes at @buf. */
long rw(struct env *e, unsigned qi, uint32_t type, uint64_t sector, void *buf, size_t len,
	uint8_t *status)
{
	struct virtio_blk_outhdr *h = e->hdr[qi];
	uint8_t *st = e->st[qi];
	struct iovec out[2] = { { h, 16 }, { buf, len } };
	struct iovec in[2] = { { buf, len }, { st, 1 } };
	long ret;

	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	*st = 0xee;
	if (type == VIRTIO_BLK_T_OUT)
		ret = run(e, qi, out, len ? 2 : 1, in + 1, 1);
	else
		ret = run(e, qi, out, 1, len ? in : in + 1, len ? 2 : 1);
	*status = *st;
	return ret;
}

/* A request of @type with @nseg segments and nothing else. */
long segments(struct env *e, uint32_t type, const struct virtio_blk_discard_write_zeroes *segs,
	      unsigned nseg, uint8_t *status)
{
	struct virtio_blk_discard_write_zeroes *s = dalloc(e, nseg * sizeof(*s) + 1);
	uint8_t *st = dalloc(e, 1);
	struct iovec out[2] = { { make_hdr(e, type, 0), 16 }, { s, nseg * sizeof(*s) } };
	struct iovec in = { st, 1 };
	long ret;

	if (nseg)
		memcpy(s, segs, nseg * sizeof(*s));
	*st = 0xee;
	ret = run(e, 0, out, nseg ? 2 : 1, &in, 1);
	*status = *st;
	return ret;
}

struct virtio_blk_discard_write_zeroes seg(uint64_t sector, uint32_t num, uint32_t flags)
{
	return (struct virtio_blk_discard_write_zeroes){ .sector = htole64(sector),
							 .num_sectors = htole32(num),
							 .flags = htole32(flags) };
}

void fill(void *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		((uint8_t *)p)[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

bool file_is(struct env *e, uint64_t off, const void *want, size_t len)
{
	static uint8_t got[1 << 20];

	if (len > sizeof(got) || pread(e->fd, got, len, (off_t)off) != (ssize_t)len)
		return false;
	return memcmp(got, want, len) == 0;
}

bool file_is_zero(struct env *e, uint64_t off, size_t len)
{
	static const uint8_t zero[1 << 16];

	return len <= sizeof(zero) && file_is(e, off, zero, len);
}

struct uvirtio_blk_dev_stats stats(struct env *e)
{
	struct uvirtio_blk_dev_stats st;

	uvirtio_blk_dev_get_stats(&e->blk, &st);
	return st;
}
