// SPDX-License-Identifier: MIT
/* The virtio-pci unit programs' shared fixture (pci_fixture.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pci_fixture.h"

static void rec_log(struct recbus *r, bool write, unsigned space, uint64_t off, unsigned size,
		    uint32_t val)
{
	if (r->n < r->cap)
		r->acc[r->n++] = (struct access){ write, space, off, size, val };
}


/* How many resets the device core completed. */
unsigned resets_of(const struct uvirtio_device *dev)
{
	struct uvirtio_device_stats st;

	uvirtio_device_get_stats(dev, &st);
	return st.resets;
}

static int rec_read(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t *v)
{
	struct recbus *r = opaque;
	int ret = r->inner.read(r->inner.opaque, space, off, size, v);

	pthread_mutex_lock(&r->lock);
	if (space == BAR && off == COMMON(device_status) && r->busy_status) {
		if (r->status_stuck || r->status_busy_reads) {
			*v = 1;
			if (r->status_busy_reads)
				r->status_busy_reads--;
		} else {
			r->busy_status = false;
		}
	}
	if (space == BAR && off == QUEUE_RESET && r->busy_reset) {
		if (r->queue_reset_busy_reads) {
			*v = 1;
			r->queue_reset_busy_reads--;
		} else {
			r->busy_reset = false;
		}
	}
	if (space == BAR && off == COMMON(queue_notify_off) && r->notify_off >= 0)
		*v = (uint32_t)r->notify_off;
	rec_log(r, false, space, off, size, *v);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int rec_write(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t v)
{
	struct recbus *r = opaque;

	pthread_mutex_lock(&r->lock);
	rec_log(r, true, space, off, size, v);
	if (space == BAR && off == COMMON(device_status) && v == 0)
		r->busy_status = true;
	if (space == BAR && off == QUEUE_RESET && v == 1)
		r->busy_reset = true;
	pthread_mutex_unlock(&r->lock);
	return r->inner.write(r->inner.opaque, space, off, size, v);
}

void rec_init(struct recbus *r, const struct uvirtio_regbus *inner)
{
	memset(r, 0, sizeof(*r));
	r->inner = *inner;
	r->bus = (struct uvirtio_regbus){ .read = rec_read, .write = rec_write, .opaque = r };
	pthread_mutex_init(&r->lock, NULL);
	r->cap = 1u << 20;
	r->acc = calloc(r->cap, sizeof(*r->acc));
	r->notify_off = -1;
}

void rec_clear(struct recbus *r)
{
	pthread_mutex_lock(&r->lock);
	r->n = 0;
	pthread_mutex_unlock(&r->lock);
}

void rec_destroy(struct recbus *r)
{
	free(r->acc);
	pthread_mutex_destroy(&r->lock);
}

int env_start(struct env *e, bool blk, unsigned nq, unsigned nvectors)
{
	struct uvirtio_pci_pair_config pc = { .nvectors = nvectors };
	int ret;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	ret = uvirtio_pci_pair_create(&e->p, &pc);
	if (ret)
		return ret;
	if (blk) {
		struct uvirtio_blk_dev_config cfg = { .backend = UVIRTIO_BLK_BACKEND_FILE,
						      .num_queues = nq, .poll_us = -1 };

		strcpy(e->path, "/tmp/uvirtio-pci-test-XXXXXX");
		e->fd = mkstemp(e->path);
		if (e->fd < 0 || ftruncate(e->fd, IMAGE_SIZE) < 0)
			return -errno;
		cfg.path = e->path;
		ret = uvirtio_blk_dev_init(&e->blk, &cfg, uvirtio_pci_pair_mem(e->p));
		e->dev = uvirtio_blk_dev_device(&e->blk);
		e->is_blk = true;
	} else {
		ret = uvirtio_rng_dev_init(&e->rng, uvirtio_pci_pair_mem(e->p));
		e->dev = uvirtio_rng_dev_device(&e->rng);
	}
	if (ret) {
		e->dev = NULL;
		return ret;
	}
	ret = uvirtio_pci_pair_start(e->p, e->dev);
	if (ret)
		return ret;
	e->m = uvirtio_pci_pair_model(e->p);
	e->t = uvirtio_pci_pair_transport(e->p);
	uvirtio_pci_dev_bus(e->m, &e->bus);
	return 0;
}

void env_stop(struct env *e)
{
	uvirtio_pci_pair_destroy(e->p);
	if (e->dev && e->is_blk)
		uvirtio_blk_dev_destroy(&e->blk);
	else if (e->dev)
		uvirtio_rng_dev_destroy(&e->rng);
	if (e->fd >= 0) {
		close(e->fd);
		unlink(e->path);
	}
}

uint32_t mrd(struct env *e, uint64_t off, unsigned size)
{
	uint32_t v = 0xdeadbeef;

	e->bus.read(e->bus.opaque, BAR, off, size, &v);
	return v;
}

void mwr(struct env *e, uint64_t off, unsigned size, uint32_t v)
{
	e->bus.write(e->bus.opaque, BAR, off, size, v);
}

uint32_t cfg_rd(struct env *e, uint64_t off, unsigned size)
{
	uint32_t v = 0xdeadbeef;

	e->bus.read(e->bus.opaque, CFG, off, size, &v);
	return v;
}

/* Probe with the driver core, set queue 0 up and start. */
int probe_rng(struct env *e, struct uvirtio_driver *drv, uint64_t features)
{
	int ret = uvirtio_driver_probe(drv, e->t, features);

	if (!ret)
		ret = uvirtio_driver_find_vqs(drv, 1, NULL);
	if (!ret)
		ret = uvirtio_driver_ready(drv);
	return ret;
}

/* One rng request of @len bytes through the driver core; returns the used length. */
long rng_once(struct uvirtio_driver *drv, uint8_t *buf, unsigned len)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(drv, 0);
	struct iovec in = { buf, len };
	uint32_t got = 0;
	void *token;
	int ret;

	ret = uvirtio_drvq_add(q, NULL, 0, &in, 1, buf);
	if (!ret)
		ret = uvirtio_drvq_kick(q);
	if (ret)
		return ret;
	for (;;) {
		ret = uvirtio_drvq_get(q, &token, &got);
		if (ret < 0)
			return ret;
		if (ret)
			return token == buf ? (long)got : -EPROTO;
		if (!uvirtio_drvq_enable_cb(q))
			continue;
		ret = uvirtio_driver_wait(drv, 0, WAIT_MS);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}
