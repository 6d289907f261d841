// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "uvirtio/snapshot.h"
#include "core_priv.h"
#include "../log/log_priv.h"
#include "crc32.h"

static const char magic[8] = { 'U', 'V', 'S', 'N', 'A', 'P', 0, 0 };

#define HEADER_BYTES (8u + 5u * 4u)
#define DEVICE_BYTES (3u * 8u + 4u + 4u)
#define QUEUE_BYTES (4u + 4u + 3u * 8u + 2u + 2u + 4u)
#define TRAILER_BYTES 4u
/* Where the total length sits in the header, after magic and version. */
#define LENGTH_OFFSET 12u

/* Little-endian writer and bounds-checked reader. */
struct cursor {
	uint8_t *w;
	const uint8_t *r;
	size_t pos, size;
	bool short_read;
};

static void put(struct cursor *c, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		c->w[c->pos++] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(struct cursor *c, unsigned bytes)
{
	uint64_t v = 0;

	if (c->short_read || bytes > c->size - c->pos) {
		c->short_read = true;
		return 0;
	}
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)c->r[c->pos++] << (8 * i);
	return v;
}

size_t uvirtio_device_snapshot_size(const struct uvirtio_device *public_dev)
{
	const struct device *dev = device_of_const(public_dev);

	return HEADER_BYTES + DEVICE_BYTES + dev->config_size +
	       (size_t)dev->num_queues * QUEUE_BYTES + TRAILER_BYTES;
}

long uvirtio_device_snapshot(const struct uvirtio_device *public_dev, void *buf, size_t size)
{
	const struct device *dev = device_of_const(public_dev);
	size_t need = uvirtio_device_snapshot_size(public_dev);
	struct cursor c = { .w = buf, .size = size };

	/* A running device moves its rings under the snapshot. */
	if (!suspended(dev))
		return -EBUSY;
	if (size < need)
		return -ENOSPC;

	memcpy(c.w, magic, sizeof(magic));
	c.pos = sizeof(magic);
	put(&c, UVIRTIO_SNAPSHOT_VERSION, 4);
	put(&c, need, 4);
	put(&c, dev->ops->device_id, 4);
	put(&c, dev->num_queues, 4);
	put(&c, dev->config_size, 4);

	put(&c, dev->offered, 8);
	put(&c, dev->driver_features, 8);
	put(&c, dev->features, 8);
	put(&c, status_of(dev), 4);
	put(&c, uvirtio_device_config_generation(public_dev), 4);
	/* The config the driver sees; a change held back while suspended is
	 * carried as what resume will publish. */
	if (dev->config_size)
		memcpy(c.w + c.pos, dev->config, dev->config_size);
	c.pos += dev->config_size;

	for (unsigned i = 0; i < dev->num_queues; i++) {
		const struct uvirtio_devq *q = &dev->queues[i];
		const struct uvirtio_queue_layout *l = &dev->layouts[i];

		/* Suspend finished every request, so none is in flight; the
		 * format has room for them for transports that carry them. */
		/* A packed ring's indices carry their wrap counters in bit 15
		 * (devq.h); the format keeps them apart. Split rings have none. */
		uint16_t avail = l->num ? uvirtio_devq_next_avail(q) : 0;
		uint16_t used = l->num ? uvirtio_devq_used_index(q) : 0;
		bool packed = l->num && uvirtio_devq_is_packed(q);

		put(&c, l->num ? 1 : 0, 1);
		put(&c, packed ? avail >> 15 : 0, 1); /* avail wrap counter */
		put(&c, packed ? used >> 15 : 0, 1);  /* used wrap counter */
		put(&c, 0, 1);
		put(&c, l->num, 4);
		put(&c, l->desc, 8);
		put(&c, l->avail, 8);
		put(&c, l->used, 8);
		put(&c, packed ? avail & 0x7fff : avail, 2);
		put(&c, packed ? used & 0x7fff : used, 2);
		put(&c, 0, 4); /* requests in flight */
	}
	put(&c, crc32_ieee(c.w, c.pos), 4);
	return (long)c.pos;
}

struct parsed {
	uint64_t offered, driver_features, features;
	uint8_t status;
	uint32_t generation;
	const uint8_t *config;
};

static int refuse(const char **why, const char *reason, int err)
{
	uvirtio_log(UVIRTIO_LOG_WARN, "snapshot: %s: not restored", reason);
	if (why)
		*why = reason;
	return err;
}

static int parse_header(struct device *dev, struct cursor *c, struct parsed *p,
			const char **why)
{
	uint32_t version, length, crc;

	if (c->size < HEADER_BYTES + TRAILER_BYTES || memcmp(c->r, magic, sizeof(magic)))
		return refuse(why, "not a uvirtio snapshot (bad magic or too short)", -EBADMSG);
	c->pos = sizeof(magic);
	version = (uint32_t)get(c, 4);
	if (version != UVIRTIO_SNAPSHOT_VERSION)
		return refuse(why, "snapshot version not supported by this uvirtio", -EPROTONOSUPPORT);
	length = (uint32_t)get(c, 4);
	if (length != c->size)
		return refuse(why, "snapshot truncated or with trailing bytes (length mismatch)",
			      -EBADMSG);
	c->pos = c->size - TRAILER_BYTES;
	crc = (uint32_t)get(c, 4);
	if (crc != crc32_ieee(c->r, c->size - TRAILER_BYTES))
		return refuse(why, "snapshot corrupt (checksum mismatch)", -EBADMSG);
	c->pos = LENGTH_OFFSET + 4;
	/* The checksum covers what follows; what it says must still fit @dev. */
	if (get(c, 4) != dev->ops->device_id)
		return refuse(why, "snapshot of another device type", -EINVAL);
	if (get(c, 4) != dev->num_queues)
		return refuse(why, "snapshot has another number of queues", -EINVAL);
	if (get(c, 4) != dev->config_size)
		return refuse(why, "snapshot has another config space size", -EINVAL);
	if (c->size != uvirtio_device_snapshot_size(pub(dev)))
		return refuse(why, "snapshot length does not match its queues and config", -EBADMSG);

	p->offered = get(c, 8);
	p->driver_features = get(c, 8);
	p->features = get(c, 8);
	p->status = (uint8_t)get(c, 4);
	p->generation = (uint32_t)get(c, 4);
	p->config = c->r + c->pos;
	c->pos += dev->config_size;
	if (p->features & ~dev->offered)
		return refuse(why, "snapshot uses features this device does not offer", -EINVAL);
	if (!(p->status & VIRTIO_CONFIG_S_SUSPEND) || (p->status & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    !(p->status & VIRTIO_CONFIG_S_FEATURES_OK) || (p->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		return refuse(why, "snapshot was not taken of a suspended device", -EBADMSG);
	return 0;
}

struct parsed_queue {
	struct uvirtio_queue_layout l;
	struct uvirtio_devq q; /* set up and checked; moved into the device */
};

static int parse_queue(struct device *dev, struct cursor *c, struct parsed_queue *pq,
		       uint64_t features, const char **why)
{
	bool packed = features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	uint16_t next_avail, used_idx;
	uint8_t ready = (uint8_t)get(c, 1), avail_wrap = (uint8_t)get(c, 1);
	uint8_t used_wrap = (uint8_t)get(c, 1);
	uint32_t inflight;
	int ret;

	(void)get(c, 1);
	pq->l.num = (unsigned)get(c, 4);
	pq->l.desc = get(c, 8);
	pq->l.avail = get(c, 8);
	pq->l.used = get(c, 8);
	next_avail = (uint16_t)get(c, 2);
	used_idx = (uint16_t)get(c, 2);
	inflight = (uint32_t)get(c, 4);
	if (c->short_read)
		return refuse(why, "snapshot truncated", -EBADMSG);
	if (!packed && (avail_wrap || used_wrap))
		return refuse(why, "snapshot has wrap counters on a split ring", -EBADMSG);
	if (packed && (avail_wrap > 1 || used_wrap > 1 || next_avail > 0x7fff || used_idx > 0x7fff))
		return refuse(why, "snapshot packed-ring position out of range", -EBADMSG);
	if (packed) {
		next_avail |= (uint16_t)(avail_wrap << 15);
		used_idx |= (uint16_t)(used_wrap << 15);
	}
	if (inflight)
		return refuse(why, "snapshot has requests in flight, which a suspended device has not",
			      -EBADMSG);
	if (!ready) {
		if (pq->l.num)
			return refuse(why, "snapshot has a disabled queue with a size", -EBADMSG);
		return 0;
	}
	if (pq->l.num > dev->ops->queue_max_size)
		return refuse(why, "snapshot queue larger than this device allows", -EINVAL);
	/* The device finished every request: the used index is at most the
	 * queue size behind the avail one. */
	if (next_avail != used_idx)
		return refuse(why, "snapshot queue indices disagree (requests unaccounted for)",
			      -EBADMSG);
	ret = uvirtio_devq_setup(&pq->q, dev->mem, pq->l.num, pq->l.desc, pq->l.avail, pq->l.used,
				 features);
	if (ret == -ENOMEM)
		return refuse(why, "out of memory", -ENOMEM);
	if (ret)
		return refuse(why, "snapshot queue does not fit this device's memory", -EINVAL);
	if (uvirtio_devq_set_indices(&pq->q, next_avail, used_idx))
		return refuse(why, "snapshot queue position outside its ring", -EBADMSG);
	/* Stopped until the driver resumes. */
	uvirtio_devq_stop(&pq->q);
	return 0;
}

int uvirtio_device_restore(struct uvirtio_device *public_dev, const void *buf, size_t size,
			   const char **why)
{
	struct device *dev = device_of(public_dev);
	struct cursor c = { .r = buf, .size = size };
	struct parsed_queue *pqs;
	struct parsed p;
	int ret;

	if (status_of(dev))
		return refuse(why, "device already in use; restore needs a fresh one", -EBUSY);
	ret = parse_header(dev, &c, &p, why);
	if (ret)
		return ret;
	pqs = calloc(dev->num_queues, sizeof(*pqs));
	if (!pqs)
		return refuse(why, "out of memory", -ENOMEM);
	for (unsigned i = 0; i < dev->num_queues && !ret; i++)
		ret = parse_queue(dev, &c, &pqs[i], p.features, why);
	if (ret) {
		for (unsigned i = 0; i < dev->num_queues; i++)
			uvirtio_devq_reset(&pqs[i].q);
		free(pqs);
		return ret;
	}

	/* Everything checked: nothing below can fail. */
	dev->driver_features = p.driver_features;
	dev->features = p.features;
	if (dev->config_size) {
		memcpy(dev->config, p.config, dev->config_size);
		memcpy(dev->config_pending, p.config, dev->config_size);
	}
	dev->config_pending_dirty = false;
	__atomic_store_n(&dev->config_generation, p.generation, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < dev->num_queues; i++) {
		if (!pqs[i].l.num)
			continue;
		struct uvirtio_devq *q = &dev->queues[i];
		void *cb_opaque;
		uvirtio_devq_broken_fn cb = uvirtio_devq_broken_cb(q, &cb_opaque);

		/* The queue was reset (status 0): it owns nothing to free. It
		 * takes over the checked one, with its own broken callback. */
		*q = pqs[i].q;
		uvirtio_devq_set_broken_cb(q, cb, cb_opaque);
		dev->layouts[i] = pqs[i].l;
	}
	free(pqs);
	pthread_mutex_lock(&dev->status_lock);
	__atomic_store_n(&dev->status, p.status, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dev->status_lock);
	return 0;
}
