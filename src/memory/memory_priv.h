/* SPDX-License-Identifier: MIT */
/*
 * The private structs behind struct uvirtio_mem (memory.c) and struct
 * uvirtio_dma (dma.c). Private to src/memory; in a header rather than the .c
 * files because the tests' window (tests/support/memory_internal.h) and the
 * fuzz targets (fuzz_memory checks the region table itself) see them too.
 */
#ifndef UVIRTIO_MEMORY_PRIV_H
#define UVIRTIO_MEMORY_PRIV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "uvirtio/dma.h"
#include "uvirtio/memory.h"

struct mem {
	unsigned nregions;
	/* Sorted by guest_addr, never overlapping. */
	struct uvirtio_mem_region regions[UVIRTIO_MEM_MAX_REGIONS];
};
UVIRTIO_OPAQUE_FITS(struct mem, struct uvirtio_mem);

static inline struct mem *mem_of(struct uvirtio_mem *p)
{
	return (struct mem *)p;
}

static inline const struct mem *mem_of_const(const struct uvirtio_mem *p)
{
	return (const struct mem *)p;
}

/* One allocation of a DMA area, as an offset from its base. */
struct dma_extent {
	size_t offset;
	size_t size;
};

struct dma {
	char *base;          /* host mapping; not owned */
	uint64_t guest_addr; /* where the device sees base */
	size_t size;

	pthread_mutex_t lock;
	struct dma_extent *used; /* allocations, sorted by offset */
	size_t nused, capused;
};
UVIRTIO_OPAQUE_FITS(struct dma, struct uvirtio_dma);

static inline struct dma *dma_of(struct uvirtio_dma *p)
{
	return (struct dma *)p;
}

static inline const struct dma *dma_of_const(const struct uvirtio_dma *p)
{
	return (const struct dma *)p;
}

/* For tests (tests/support/memory_internal.h): the regions in @m, and the
 * allocations @d holds now. */
unsigned mem_nregions(const struct uvirtio_mem *m);
size_t dma_nallocations(const struct uvirtio_dma *d);

#endif
