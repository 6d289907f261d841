// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blk_load.h"

int load_deadline_ms = LOAD_DEADLINE_MS_DEFAULT;

static int64_t load_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t load_pattern(unsigned slot, uint32_t gen, unsigned i)
{
	return (uint8_t)(slot * 131u + gen * 31u + i * 7u + (i >> 9));
}

static void load_fail(struct load *l, const char *why)
{
	if (!l->failure)
		l->failure = why;
}

/* A failure that names its request or queue. */
static void __attribute__((format(printf, 2, 3))) load_failf(struct load *l, const char *fmt, ...)
{
	va_list ap;

	if (l->failure)
		return;
	va_start(ap, fmt);
	vsnprintf(l->failure_buf, sizeof(l->failure_buf), fmt, ap);
	va_end(ap);
	l->failure = l->failure_buf;
}

/* The request slot @s has in flight, for a failure line. */
static const char *load_req_name(const struct slot *s, char *buf, size_t len)
{
	snprintf(buf, len, "slot %u (queue %u, %s of generation %u, sectors %u-%u)", s->id, s->queue,
		 s->is_read ? "read" : "write", s->is_read ? s->written : s->gen, s->id * SECTORS_PER_SLOT,
		 s->id * SECTORS_PER_SLOT + SECTORS_PER_SLOT - 1);
	return buf;
}

/* Every request in flight completes within load_deadline_ms; the first that
 * did not fails the load. Return: whether one did not. */
static bool load_past_deadline(struct load *l)
{
	int64_t now = load_now_ms();
	char name[128];

	for (unsigned i = 0; i < SLOTS; i++) {
		const struct slot *s = &l->slots[i];

		if (s->state == INFLIGHT && !uvirtio_driver_queue_is_reset(&l->drv, s->queue) &&
		    now - s->submitted_ms > load_deadline_ms) {
			load_failf(l, "the request of %s did not complete within %d ms",
				   load_req_name(s, name, sizeof(name)), load_deadline_ms);
			return true;
		}
	}
	return false;
}

static int load_submit(struct load *l, struct slot *s)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&l->drv, s->queue);
	struct iovec out[2], in[2];
	unsigned n_out = 1, n_in = 0;
	int ret;

	s->hdr->type = s->is_read ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	s->hdr->ioprio = 0;
	s->hdr->sector = (uint64_t)s->id * SECTORS_PER_SLOT;
	*s->status = POISON;
	out[0] = (struct iovec){ s->hdr, sizeof(*s->hdr) };
	if (s->is_read) {
		memset(s->data, POISON, DATA_BYTES);
		in[n_in++] = (struct iovec){ s->data, DATA_BYTES };
	} else {
		for (unsigned i = 0; i < DATA_BYTES; i++)
			s->data[i] = load_pattern(s->id, s->gen, i);
		out[n_out++] = (struct iovec){ s->data, DATA_BYTES };
	}
	in[n_in++] = (struct iovec){ s->status, 1 };
	ret = uvirtio_drvq_add(q, out, n_out, in, n_in, s);
	if (ret == -ENOSPC) {
		s->state = QUEUED;
		return 0;
	}
	if (ret)
		return ret;
	s->state = INFLIGHT;
	s->completions = 0;
	s->submitted_ms = load_now_ms();
	return 0;
}

/* The next request of a slot: write a new generation, then read it back. */
static void load_next_request(struct slot *s)
{
	if (s->is_read || !s->written) {
		s->is_read = false;
		s->gen++;
	} else {
		s->is_read = true;
	}
}

static void load_complete(struct load *l, struct slot *s, uint32_t len)
{
	if (s < l->slots || s >= l->slots + SLOTS)
		return load_fail(l, "a used buffer carries a token never given");
	if (s->state != INFLIGHT || ++s->completions != 1)
		return load_fail(l, "a request completed twice or after it was taken back");
	if (*s->status != VIRTIO_BLK_S_OK)
		return load_fail(l, "a request failed (status not OK)");
	if (s->is_read) {
		char name[128];

		if (len < DATA_BYTES + 1)
			return load_fail(l, "a read reports fewer bytes written than it has");
		for (unsigned i = 0; i < DATA_BYTES; i++)
			if (s->data[i] != load_pattern(s->id, s->written, i))
				return load_failf(l, "data read back differs from what was written: %s, byte %u",
						  load_req_name(s, name, sizeof(name)), i);
	} else {
		s->written = s->gen;
	}
	s->state = IDLE;
	l->done++;
}

/* Collect what every running queue used; returns how many. */
unsigned load_reap(struct load *l)
{
	unsigned n = 0;

	for (unsigned qi = 0; qi < l->nq; qi++) {
		struct uvirtio_drvq *q = uvirtio_driver_vq(&l->drv, qi);
		void *tok;
		uint32_t len;
		int ret;

		if (uvirtio_driver_queue_is_reset(&l->drv, qi))
			continue;
		while ((ret = uvirtio_drvq_get(q, &tok, &len)) == 1) {
			load_complete(l, tok, len);
			n++;
		}
		if (ret < 0)
			load_failf(l, "queue %u broke (bad used ring: %s)", qi,
				   uvirtio_drvq_broken_reason(q) ? uvirtio_drvq_broken_reason(q) : "?");
	}
	load_past_deadline(l);
	return n;
}

static bool load_queue_usable(struct load *l, unsigned qi)
{
	return !uvirtio_driver_queue_is_reset(&l->drv, qi);
}

/* Give every idle or queued slot of a usable queue its next request. */
int load_refill(struct load *l, bool new_requests)
{
	bool kicked[8] = { 0 };

	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];
		int ret;

		if (!load_queue_usable(l, s->queue) || (s->state != IDLE && s->state != QUEUED))
			continue;
		if (s->state == IDLE) {
			if (!new_requests)
				continue;
			load_next_request(s);
		}
		ret = load_submit(l, s);
		if (ret)
			return ret;
		kicked[s->queue] = true;
	}
	for (unsigned qi = 0; qi < l->nq; qi++)
		if (kicked[qi] && uvirtio_drvq_kick(uvirtio_driver_vq(&l->drv, qi)))
			return -EIO;
	return 0;
}

unsigned load_count(struct load *l, enum slot_state st)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SLOTS; i++)
		n += l->slots[i].state == st;
	return n;
}

/* Wait for a used-buffer notification on any running queue. */
int load_wait_any(struct load *l)
{
	struct uvirtio_transport *t = l->f->t;
	struct pollfd p[8];
	nfds_t n = 0;
	int ret;

	for (unsigned qi = 0; qi < l->nq; qi++) {
		if (!load_queue_usable(l, qi))
			continue;
		/* Ask for a notification; if buffers came meanwhile, take them. */
		if (!uvirtio_drvq_enable_cb(uvirtio_driver_vq(&l->drv, qi)))
			return 1;
		p[n++] = (struct pollfd){ .fd = t->ops->event_fd(t, qi), .events = POLLIN };
	}
	/* With requests in flight, wait until the first of them is due (each
	 * has load_deadline_ms), a second at a time; otherwise WAIT_MS. */
	int64_t until = load_now_ms() + WAIT_MS;

	if (load_count(l, INFLIGHT))
		until = load_now_ms() + load_deadline_ms + 1;
	do {
		int64_t left = until - load_now_ms();

		ret = poll(p, n, left <= 0 ? 0 : left > 1000 ? 1000 : (int)left);
	} while (ret == 0 && !load_past_deadline(l) && load_now_ms() < until);
	if (ret == 0) {
		/* Say where it stuck: which ring, how far each side got. */
		for (unsigned qi = 0; qi < l->nq; qi++) {
			struct uvirtio_drvq *q = uvirtio_driver_vq(&l->drv, qi);

			struct uvirtio_drvq_ring ring;
			bool packed = uvirtio_drvq_is_packed(q);
			const struct vring_used *used;

			uvirtio_drvq_ring(q, &ring);
			used = ring.used_host;
			if (load_queue_usable(l, qi))
				printf("# stuck: queue %u avail %u used %u (driver read %u), %u in flight\n",
				       qi, uvirtio_drvq_avail_index(q),
				       packed ? 0 : le16toh(__atomic_load_n(&used->idx, __ATOMIC_RELAXED)),
				       uvirtio_drvq_used_index(q) & (packed ? 0x7fffu : 0xffffu),
				       load_count(l, INFLIGHT));
		}
	}
	if (ret <= 0)
		return ret < 0 ? -errno : -ETIMEDOUT;
	for (nfds_t i = 0; i < n; i++) {
		uint64_t v;

		if (p[i].revents & POLLIN)
			(void)!read(p[i].fd, &v, sizeof(v));
	}
	return 1;
}

/* Run until @completions more requests completed. */
int load_run(struct load *l, unsigned long completions)
{
	unsigned long target = l->done + completions;
	int ret;

	while (l->done < target && !l->failure) {
		ret = load_refill(l, true);
		if (ret)
			return ret;
		if (load_reap(l))
			continue;
		ret = load_wait_any(l);
		if (ret < 0)
			return ret;
	}
	return l->failure ? -EIO : 0;
}

/* Complete what is in flight without starting anything new. */
int load_drain(struct load *l)
{
	int ret;

	while (!l->failure && (load_count(l, INFLIGHT) || load_count(l, QUEUED))) {
		ret = load_refill(l, false);
		if (ret)
			return ret;
		if (load_reap(l))
			continue;
		ret = load_wait_any(l);
		if (ret < 0)
			return ret;
	}
	return l->failure ? -EIO : 0;
}

/* A reset handed a request back: it must never complete, and the device
 * must never write its buffers again. Poisoned here, checked later. */
void load_detached(void *token, void *opaque)
{
	struct load *l = opaque;
	struct slot *s = token;

	if (s < l->slots || s >= l->slots + SLOTS || s->state != INFLIGHT)
		return load_fail(l, "a reset handed back a buffer that was not in flight");
	s->state = DETACHED;
	*s->status = POISON;
	if (s->is_read)
		memset(s->data, POISON, DATA_BYTES);
}

bool load_poison_intact(struct load *l)
{
	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];

		if (s->state != DETACHED)
			continue;
		if (*s->status != POISON)
			return false;
		if (s->is_read)
			for (unsigned k = 0; k < DATA_BYTES; k++)
				if (s->data[k] != POISON)
					return false;
	}
	return true;
}

/* Resubmit what was handed back; the same request, so exactly once still holds. */
void load_requeue_detached(struct load *l, int queue)
{
	for (unsigned i = 0; i < SLOTS; i++)
		if (l->slots[i].state == DETACHED && (queue < 0 || l->slots[i].queue == (unsigned)queue))
			l->slots[i].state = QUEUED;
}

/* Every slot's sectors hold its last write: read each back. */
int load_verify_all(struct load *l)
{
	int ret = load_drain(l);

	if (ret)
		return ret;
	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];

		if (!s->written || !load_queue_usable(l, s->queue))
			continue;
		s->is_read = true;
		ret = load_submit(l, s);
		if (ret)
			return ret;
	}
	for (unsigned qi = 0; qi < l->nq; qi++)
		if (load_queue_usable(l, qi) && uvirtio_drvq_kick(uvirtio_driver_vq(&l->drv, qi)))
			return -EIO;
	return load_drain(l);
}

int load_start_driver(struct load *l, uint64_t features)
{
	unsigned sizes[8] = { 0 };
	int ret;

	ret = uvirtio_driver_probe(&l->drv, l->f->t, features | UVIRTIO_BIT(VIRTIO_BLK_F_MQ));
	if (ret)
		return ret;
	l->features = uvirtio_driver_features(&l->drv);
	ret = uvirtio_driver_find_vqs(&l->drv, l->nq, sizes);
	return ret ? ret : uvirtio_driver_ready(&l->drv);
}

int load_init(struct load *l, struct fixture *f)
{
	struct uvirtio_dma *dma = f->t->ops->dma(f->t);
	size_t per = sizeof(struct virtio_blk_outhdr) + DATA_BYTES + 64;

	memset(l, 0, sizeof(*l));
	l->f = f;
	l->nq = CONFORMANCE_QUEUES;
	l->mem = uvirtio_dma_alloc(dma, per * SLOTS, 4096);
	if (!l->mem)
		return -ENOMEM;
	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &l->slots[i];
		uint8_t *p = l->mem + per * i;

		s->id = i;
		s->queue = i % l->nq;
		s->data = p;
		s->hdr = (void *)(p + DATA_BYTES);
		s->status = p + DATA_BYTES + 32;
	}
	return 0;
}

/* Suspend with requests in flight. The device finishes what it took and
 * leaves what it had not taken yet in the ring (those complete after
 * resume); from SUSPEND on, no used entry moves. */
static uint64_t load_used_idx(struct load *l, unsigned qi)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(&l->drv, qi);
	uint64_t h = 14695981039346656037ull;
	struct uvirtio_drvq_ring ring;

	uvirtio_drvq_ring(q, &ring);
	if (!uvirtio_drvq_is_packed(q))
		return __atomic_load_n(&((struct vring_used *)ring.used_host)->idx, __ATOMIC_ACQUIRE);
	/* A packed ring has no used index: the device writes its used entries
	 * over the descriptors. The driver adds nothing while it waits here,
	 * so any change of the descriptor ring (FNV-1a of its bytes) is the
	 * device's. */
	for (size_t i = 0; i < 16u * uvirtio_drvq_size(q); i++)
		h = (h ^ __atomic_load_n((const uint8_t *)ring.desc_host + i, __ATOMIC_ACQUIRE)) *
		    1099511628211ull;
	return h;
}

int load_suspend_under_load(struct load *l)
{
	int ret = load_refill(l, true);

	if (ret)
		return ret;
	ret = uvirtio_driver_suspend(&l->drv, WAIT_MS);
	if (ret)
		return ret;
	load_reap(l);
	for (unsigned qi = 0; qi < l->nq; qi++)
		l->used_at_suspend[qi] = load_used_idx(l, qi);
	return l->failure ? -EIO : 0;
}

bool load_nothing_used_since_suspend(struct load *l)
{
	for (unsigned qi = 0; qi < l->nq; qi++)
		if (load_used_idx(l, qi) != l->used_at_suspend[qi])
			return false;
	return true;
}


/* Read notifications until none came for @quiet_ms. */
static void load_settle_notifications(struct load *l, int quiet_ms)
{
	struct uvirtio_transport *t = l->f->t;
	struct pollfd p[8];
	nfds_t n = 0;

	for (unsigned qi = 0; qi < l->nq; qi++)
		if (load_queue_usable(l, qi))
			p[n++] = (struct pollfd){ .fd = t->ops->event_fd(t, qi), .events = POLLIN };
	while (poll(p, n, quiet_ms) > 0) {
		for (nfds_t i = 0; i < n; i++) {
			uint64_t v;

			if (p[i].revents & POLLIN)
				(void)!read(p[i].fd, &v, sizeof(v));
		}
	}
}

/* Suspended: give every idle slot its next request and notify every queue
 * whatever the device's suppression says, so that work waits the device must
 * leave alone until resume. @waiting: the requests now in the rings, those
 * not taken before the suspend included.
 *
 * Notifications the device sent before it presented SUSPEND (completing
 * what was in flight) may still be on their way: mmio's interrupt thread
 * reads the interrupt status after the line fired, which can be after the
 * driver saw SUSPEND. They are read first, until SETTLE_MS pass without
 * one, so that any that come later are the device's doing while suspended.
 * Half a second: a TSan build on a loaded 2-core VM can hold the interrupt
 * thread off the CPU for well over 100 ms. */
#define SETTLE_MS 500
int load_add_while_suspended(struct load *l, unsigned *waiting)
{
	struct uvirtio_transport *t = l->f->t;
	unsigned per_queue[8] = { 0 };
	int ret;

	load_settle_notifications(l, SETTLE_MS);
	ret = load_refill(l, true);
	if (ret)
		return ret;
	for (unsigned qi = 0; qi < l->nq; qi++) {
		if (!load_queue_usable(l, qi))
			continue;
		ret = t->ops->notify(t, qi);
		if (ret)
			return ret;
	}
	/* From here on only the device could change the rings. */
	for (unsigned qi = 0; qi < l->nq; qi++)
		l->used_at_suspend[qi] = load_used_idx(l, qi);
	for (unsigned i = 0; i < SLOTS; i++)
		per_queue[l->slots[i].queue] += l->slots[i].state == INFLIGHT;
	*waiting = 0;
	for (unsigned qi = 0; qi < l->nq; qi++) {
		if (load_queue_usable(l, qi) && !per_queue[qi])
			return -ENODATA;
		*waiting += per_queue[qi];
	}
	return 0;
}

/* Suspended, with work waiting (load_add_while_suspended): watch @ms for
 * what the device must not do. Return: NULL when it did none of it, or
 * which rule it broke. */
const char *load_device_left_alone(struct load *l, int ms)
{
	struct uvirtio_transport *t = l->f->t;
	struct pollfd p[8];
	nfds_t n = 0;

	for (unsigned qi = 0; qi < l->nq; qi++) {
		if (!load_queue_usable(l, qi))
			continue;
		/* Callbacks on, so that a device using a buffer would notify. */
		if (!uvirtio_drvq_enable_cb(uvirtio_driver_vq(&l->drv, qi)))
			return "a buffer was used while suspended";
		p[n++] = (struct pollfd){ .fd = t->ops->event_fd(t, qi), .events = POLLIN };
	}
	if (poll(p, n, ms) > 0)
		return "a used-buffer notification was sent while suspended";
	if (!load_nothing_used_since_suspend(l))
		return "the device wrote used entries while suspended";
	for (unsigned i = 0; i < SLOTS; i++)
		if (l->slots[i].state == INFLIGHT && *l->slots[i].status != POISON)
			return "the device served a request (wrote its status) while suspended";
	return NULL;
}
