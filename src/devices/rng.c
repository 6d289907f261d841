// SPDX-License-Identifier: MIT
#include <errno.h>
#include <linux/virtio_ids.h>
#include <string.h>
#include <sys/random.h>

#include "uvirtio/rng.h"

/* Requests served per notification before yielding the device thread. */
#define RNG_BUDGET 256u

struct rng_dev {
	struct uvirtio_device dev;
	struct iovec iov[UVIRTIO_RNG_IOV_MAX];
	struct uvirtio_rng_dev_stats stats; /* written by the device thread */
};
UVIRTIO_OPAQUE_FITS(struct rng_dev, struct uvirtio_rng_dev);

static struct rng_dev *rng_dev_of(struct uvirtio_rng_dev *p)
{
	return (struct rng_dev *)p;
}

static const struct rng_dev *rng_dev_of_const(const struct uvirtio_rng_dev *p)
{
	return (const struct rng_dev *)p;
}

static struct rng_dev *to_rng(struct uvirtio_device *dev)
{
	return uvirtio_device_priv(dev);
}

static uint32_t fill_random(const struct iovec *iov, unsigned n)
{
	uint32_t written = 0;

	for (unsigned i = 0; i < n; i++) {
		char *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left) {
			ssize_t got = getrandom(p, left, 0);

			if (got < 0) {
				if (errno == EINTR)
					continue;
				return written;
			}
			p += got;
			left -= (size_t)got;
			written += (uint32_t)got;
		}
	}
	return written;
}

static void rng_queue_notify(struct uvirtio_device *dev, unsigned index)
{
	struct rng_dev *r = to_rng(dev);
	struct uvirtio_devq *q = uvirtio_device_queue(dev, index);
	struct uvirtio_req req;
	bool pushed = false;

	unsigned budget = RNG_BUDGET;

	uvirtio_req_init(&req, r->iov, UVIRTIO_RNG_IOV_MAX);
	for (;;) {
		uvirtio_devq_disable_notify(q);
		while (budget && uvirtio_devq_pop(q, &req) == 1) {
			/* Readable parts are not for us; only writable ones get bytes. */
			uint32_t len = fill_random(req.iov + req.n_out, req.n_in);

			/* Relaxed: counters another thread may read at any time,
			 * ordered with nothing. */
			if (!len)
				__atomic_fetch_add(&r->stats.refused, 1, __ATOMIC_RELAXED);
			uvirtio_devq_push(q, req.id, len);
			__atomic_fetch_add(&r->stats.requests, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&r->stats.bytes, len, __ATOMIC_RELAXED);
			pushed = true;
			budget--;
		}
		if (!budget) {
			uvirtio_device_reschedule(dev, index);
			break;
		}
		if (!uvirtio_devq_enable_notify(q))
			break;
		/* A lap costs too: a driver that keeps moving its index cannot
		 * hold the device thread here. */
		budget--;
	}
	if (pushed)
		uvirtio_device_notify(dev, index);
}

static const struct uvirtio_device_ops rng_ops = {
	.name = "rng",
	.device_id = VIRTIO_ID_RNG,
	.num_queues = 1,
	.queue_max_size = UVIRTIO_RNG_QUEUE_SIZE,
	.queue_notify = rng_queue_notify,
};

int uvirtio_rng_dev_init(struct uvirtio_rng_dev *public_r, struct uvirtio_mem *mem)
{
	struct rng_dev *r = rng_dev_of(public_r);

	memset(public_r, 0, sizeof(*public_r));
	return uvirtio_device_init(&r->dev, &rng_ops, r, NULL, 0, mem);
}

void uvirtio_rng_dev_destroy(struct uvirtio_rng_dev *r)
{
	uvirtio_device_destroy(&rng_dev_of(r)->dev);
}

struct uvirtio_device *uvirtio_rng_dev_device(struct uvirtio_rng_dev *r)
{
	return &rng_dev_of(r)->dev;
}

void uvirtio_rng_dev_stats(const struct uvirtio_rng_dev *r, struct uvirtio_rng_dev_stats *out)
{
	const struct uvirtio_rng_dev_stats *st = &rng_dev_of_const(r)->stats;

	out->requests = __atomic_load_n(&st->requests, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&st->bytes, __ATOMIC_RELAXED);
	out->refused = __atomic_load_n(&st->refused, __ATOMIC_RELAXED);
}
