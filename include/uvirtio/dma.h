/* SPDX-License-Identifier: MIT */
/*
 * Memory the driver side shares with a device: one mapping in this process,
 * seen by the device at a guest address. Rings, indirect tables and every
 * buffer a driver adds live here (a device can reach nothing else).
 *
 * The allocator keeps its bookkeeping in private memory, never in the shared
 * mapping, so a hostile device cannot corrupt it. Allocation is for set-up
 * paths (rings, pools, bounce buffers), not per request; it is thread-safe.
 */
#ifndef UVIRTIO_DMA_H
#define UVIRTIO_DMA_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "uvirtio/api.h"

struct uvirtio_dma_extent {
	size_t offset;
	size_t size;
};

struct uvirtio_dma {
	char *base;          /* host mapping; not owned */
	uint64_t guest_addr; /* where the device sees base */
	size_t size;

	pthread_mutex_t lock;
	struct uvirtio_dma_extent *used; /* allocations, sorted by offset */
	size_t nused, capused;
};

/**
 * uvirtio_dma_init() - manage @size bytes at @base, which the device sees at
 * @guest_addr. The mapping stays the caller's and must outlive @d.
 *
 * Return: 0, or -EINVAL for a zero size or a range that overflows.
 */
UVIRTIO_API
int uvirtio_dma_init(struct uvirtio_dma *d, void *base, uint64_t guest_addr, size_t size);

/** uvirtio_dma_destroy() - forget every allocation; the mapping is untouched. */
UVIRTIO_API
void uvirtio_dma_destroy(struct uvirtio_dma *d);

/**
 * uvirtio_dma_alloc() - @size zeroed bytes aligned to @align (a power of two).
 *
 * Return: the host pointer, or NULL when no gap is large enough or @size is 0.
 */
UVIRTIO_API
void *uvirtio_dma_alloc(struct uvirtio_dma *d, size_t size, size_t align);

/** uvirtio_dma_free() - release @p from uvirtio_dma_alloc(); NULL is ignored. */
UVIRTIO_API
void uvirtio_dma_free(struct uvirtio_dma *d, void *p);

/**
 * uvirtio_dma_addr() - the guest address of the host range [@p, @p + @len).
 *
 * Return: 0 and *@addr set, or -EFAULT when the range is not wholly inside
 * the shared mapping.
 */
static inline int uvirtio_dma_addr(const struct uvirtio_dma *d, const void *p, size_t len,
				   uint64_t *addr)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)d->base;

	/* Unsigned wrap makes a pointer below base a huge offset. */
	if (off > d->size || len > d->size - off)
		return -EFAULT;
	*addr = d->guest_addr + off;
	return 0;
}

#endif
