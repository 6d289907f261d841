// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "uvirtio/rng.h"

#define BOUNCE_SIZE 4096u

struct rng_drv {
	struct uvirtio_driver drv;
	struct uvirtio_transport *t; /* set at probe; NULL when removed */
	void *buf;         /* bounce buffer in shared memory */
	size_t buf_size;
	bool pending;      /* the bounce buffer is with the device (a read timed out) */
	struct uvirtio_rng_drv_stats stats;
};
UVIRTIO_OPAQUE_FITS(struct rng_drv, struct uvirtio_rng_drv);

static struct rng_drv *rng_drv_of(struct uvirtio_rng_drv *p)
{
	return (struct rng_drv *)p;
}

static const struct rng_drv *rng_drv_of_const(const struct uvirtio_rng_drv *p)
{
	return (const struct rng_drv *)p;
}

static void rng_drv_remove(struct rng_drv *r);

int uvirtio_rng_drv_probe(struct uvirtio_rng_drv *public_r, struct uvirtio_transport *t, uint64_t features)
{
	struct rng_drv *r = rng_drv_of(public_r);
	int ret;

	memset(public_r, 0, sizeof(*public_r));
	ret = uvirtio_driver_probe(&r->drv, t, features);
	if (ret)
		return ret;
	ret = uvirtio_driver_find_vqs(&r->drv, 1, NULL);
	if (ret) {
		uvirtio_driver_remove(&r->drv, NULL, NULL);
		return ret;
	}
	r->t = t;
	r->buf = uvirtio_dma_alloc(t->ops->dma(t), BOUNCE_SIZE, 64);
	r->buf_size = BOUNCE_SIZE;
	ret = r->buf ? uvirtio_driver_ready(&r->drv) : -ENOMEM;
	if (ret)
		rng_drv_remove(r);
	return ret;
}

/* One request: the bounce buffer, up to @want bytes, as a writable buffer.
 * A request that timed out earlier is still the device's; wait for it. */
static ssize_t read_once(struct rng_drv *r, size_t want, int timeout_ms)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&r->drv, 0);
	struct iovec in = { .iov_base = r->buf, .iov_len = want };
	uint32_t len;
	void *token;
	int ret;

	if (!r->pending) {
		ret = uvirtio_drvq_add(q, NULL, 0, &in, 1, r->buf);
		if (!ret)
			ret = uvirtio_drvq_kick(q);
		if (ret)
			return ret;
		r->pending = true;
	}
	for (;;) {
		ret = uvirtio_drvq_get(q, &token, &len);
		if (ret == 1)
			break;
		if (ret < 0)
			return ret;
		/* Arm the callback, then look again: a buffer used before the
		 * device saw the request would never be signalled. */
		if (!uvirtio_drvq_enable_cb(q))
			continue;
		ret = uvirtio_driver_wait(&r->drv, 0, timeout_ms);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return uvirtio_driver_needs_reset(&r->drv) ? -EIO : -ETIMEDOUT;
	}
	r->pending = false;
	r->stats.requests++;
	/* A device that answers with nothing would make the caller spin. */
	return len ? (ssize_t)len : -EIO;
}

ssize_t uvirtio_rng_drv_read(struct uvirtio_rng_drv *public_r, void *buf, size_t len, int timeout_ms)
{
	struct rng_drv *r = rng_drv_of(public_r);
	size_t done = 0;

	while (done < len) {
		size_t want = len - done < r->buf_size ? len - done : r->buf_size;
		ssize_t got = read_once(r, want, timeout_ms);

		if (got < 0)
			return got;
		/* A request left from a timed-out read may have asked for more. */
		if ((size_t)got > len - done)
			got = (ssize_t)(len - done);
		memcpy((char *)buf + done, r->buf, (size_t)got);
		done += (size_t)got;
	}
	return (ssize_t)done;
}

static void rng_drv_remove(struct rng_drv *r)
{
	struct uvirtio_transport *t = r->t;

	uvirtio_driver_remove(&r->drv, NULL, NULL);
	if (t && r->buf)
		uvirtio_dma_free(t->ops->dma(t), r->buf);
	r->buf = NULL;
	r->pending = false;
}

void uvirtio_rng_drv_remove(struct uvirtio_rng_drv *r)
{
	rng_drv_remove(rng_drv_of(r));
}

struct uvirtio_driver *uvirtio_rng_drv_driver(struct uvirtio_rng_drv *r)
{
	return &rng_drv_of(r)->drv;
}

void uvirtio_rng_drv_stats(const struct uvirtio_rng_drv *r, struct uvirtio_rng_drv_stats *out)
{
	*out = rng_drv_of_const(r)->stats;
}
