// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memory_priv.h"

int uvirtio_dma_init(struct uvirtio_dma *public_d, void *base, uint64_t guest_addr, size_t size)
{
	struct dma *d = dma_of(public_d);
	uint64_t last;

	if (size == 0 || __builtin_add_overflow(guest_addr, size - 1, &last) ||
	    (uintptr_t)base + (size - 1) < (uintptr_t)base)
		return -EINVAL;
	*d = (struct dma){ .base = base, .guest_addr = guest_addr, .size = size };
	pthread_mutex_init(&d->lock, NULL);
	return 0;
}

void uvirtio_dma_destroy(struct uvirtio_dma *public_d)
{
	struct dma *d = dma_of(public_d);

	free(d->used);
	d->used = NULL;
	d->nused = d->capused = 0;
	pthread_mutex_destroy(&d->lock);
}

static size_t align_up(size_t v, size_t align)
{
	return (v + align - 1) & ~(align - 1);
}

void *uvirtio_dma_alloc(struct uvirtio_dma *public_d, size_t size, size_t align)
{
	struct dma *d = dma_of(public_d);
	size_t start = 0, at;
	void *p = NULL;

	if (size == 0 || !align || (align & (align - 1)))
		return NULL;
	pthread_mutex_lock(&d->lock);
	if (d->nused == d->capused) {
		size_t cap = d->capused ? d->capused * 2 : 16;
		struct dma_extent *n = realloc(d->used, cap * sizeof(*n));

		if (!n)
			goto out;
		d->used = n;
		d->capused = cap;
	}
	/* First fit: try the gap before each allocation, then the tail. */
	for (at = 0; at <= d->nused; at++) {
		size_t gap_end = at < d->nused ? d->used[at].offset : d->size;

		start = align_up(start, align);
		if (start <= gap_end && size <= gap_end - start)
			break;
		if (at < d->nused)
			start = d->used[at].offset + d->used[at].size;
	}
	if (at > d->nused)
		goto out;
	memmove(&d->used[at + 1], &d->used[at], (d->nused - at) * sizeof(d->used[0]));
	d->used[at] = (struct dma_extent){ .offset = start, .size = size };
	d->nused++;
	p = d->base + start;
	memset(p, 0, size);
out:
	pthread_mutex_unlock(&d->lock);
	return p;
}

void uvirtio_dma_free(struct uvirtio_dma *public_d, void *p)
{
	struct dma *d = dma_of(public_d);
	size_t off;

	if (!p)
		return;
	off = (size_t)((char *)p - d->base);
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nused; i++) {
		if (d->used[i].offset == off) {
			memmove(&d->used[i], &d->used[i + 1], (d->nused - i - 1) * sizeof(d->used[0]));
			d->nused--;
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
}

int uvirtio_dma_addr(const struct uvirtio_dma *public_d, const void *p, size_t len, uint64_t *addr)
{
	const struct dma *d = dma_of_const(public_d);
	uintptr_t off = (uintptr_t)p - (uintptr_t)d->base;

	/* Unsigned wrap makes a pointer below base a huge offset. */
	if (off > d->size || len > d->size - off)
		return -EFAULT;
	*addr = d->guest_addr + off;
	return 0;
}

void uvirtio_dma_guest_range(const struct uvirtio_dma *public_d, uint64_t *guest_addr, size_t *size)
{
	const struct dma *d = dma_of_const(public_d);

	if (guest_addr)
		*guest_addr = d->guest_addr;
	if (size)
		*size = d->size;
}

size_t dma_nallocations(const struct uvirtio_dma *d)
{
	return dma_of_const(d)->nused;
}
