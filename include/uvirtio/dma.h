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

#include <stddef.h>
#include <stdint.h>

#include "uvirtio/api.h"

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_dma {
	UVIRTIO_OPAQUE(256);
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
 * @d: an initialised area; read-only, so any thread may call this at once
 *     with allocations on others.
 *
 * Return: 0 and *@addr set, or -EFAULT when the range is not wholly inside
 * the shared mapping.
 */
UVIRTIO_API
int uvirtio_dma_addr(const struct uvirtio_dma *d, const void *p, size_t len, uint64_t *addr);

/**
 * uvirtio_dma_guest_range() - where the device sees the whole area.
 * @d:          an initialised area.
 * @guest_addr: if not NULL, set to the guest address of its first byte.
 * @size:       if not NULL, set to its size in bytes.
 */
UVIRTIO_API
void uvirtio_dma_guest_range(const struct uvirtio_dma *d, uint64_t *guest_addr, size_t *size);

#endif
