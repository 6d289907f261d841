/* SPDX-License-Identifier: MIT */
/*
 * Guest memory as the device side sees it: a set of regions of guest-physical
 * address space, each mapped somewhere in this process. Every address the
 * driver gives us (rings, descriptors, buffers) goes through
 * uvirtio_mem_translate(), which refuses anything outside the regions.
 *
 * Thread rules: the map is changed (add/remove) only while no queue uses it
 * (the transports stop the rings first); translation is read-only and may run
 * on any number of threads at once.
 */
#ifndef UVIRTIO_MEMORY_H
#define UVIRTIO_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/api.h"

/* The largest number of regions vhost-user front-ends use (QEMU's and
 * libvhost-user's memory slot limit). */
#define UVIRTIO_MEM_MAX_REGIONS 509

struct uvirtio_mem_region {
	uint64_t guest_addr; /* first guest-physical address of the region */
	uint64_t size;       /* bytes; non-zero */
	void *host_addr;     /* where the region is mapped in this process */
	int fd;              /* backing file, or -1; not owned by the map */
	uint64_t fd_offset;  /* offset of the region in fd */
};

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"): a table of up to
 * UVIRTIO_MEM_MAX_REGIONS regions. */
struct uvirtio_mem {
	UVIRTIO_OPAQUE(24576);
};

/**
 * uvirtio_mem_init() - make @m an empty map.
 */
UVIRTIO_API
void uvirtio_mem_init(struct uvirtio_mem *m);

/**
 * uvirtio_mem_add() - add a region to the map.
 * @m: the map; owned by the caller.
 * @r: the region, copied into the map. The mapping itself stays the caller's.
 *
 * Return: 0, -EINVAL for a zero size, a NULL host address, a region whose
 * guest or host range overflows, or one that overlaps a region already in the map;
 * -ENOSPC when the map already holds UVIRTIO_MEM_MAX_REGIONS regions.
 */
UVIRTIO_API
int uvirtio_mem_add(struct uvirtio_mem *m, const struct uvirtio_mem_region *r);

/**
 * uvirtio_mem_remove() - remove the region that starts at @guest_addr with
 * size @size, copying it to @out (may be NULL) so the caller can unmap it.
 *
 * Return: 0, or -ENOENT when no region matches exactly.
 */
UVIRTIO_API
int uvirtio_mem_remove(struct uvirtio_mem *m, uint64_t guest_addr, uint64_t size,
		       struct uvirtio_mem_region *out);

/**
 * uvirtio_mem_translate() - turn a guest range into host iovecs.
 * @m:       the map.
 * @addr:    first guest-physical address.
 * @len:     bytes; 0 gives 0 iovecs.
 * @iov:     filled with up to @max_iov entries; a range that crosses from one
 *           region into an adjacent one gives one entry per region.
 * @max_iov: capacity of @iov.
 *
 * Return: the number of iovecs written; -EFAULT when any byte of the range is
 * outside every region or addr + len overflows; -ENOBUFS when the range needs
 * more than @max_iov entries.
 */
UVIRTIO_API
int uvirtio_mem_translate(const struct uvirtio_mem *m, uint64_t addr, uint64_t len,
			  struct iovec *iov, unsigned max_iov);

/**
 * uvirtio_mem_ptr() - a host pointer to a guest range that lies wholly inside
 * one region (rings, descriptor tables, request headers).
 *
 * Return: the pointer, or NULL when the range is empty, overflows, or is not
 * inside one region.
 */
UVIRTIO_API
void *uvirtio_mem_ptr(const struct uvirtio_mem *m, uint64_t addr, uint64_t len);

/**
 * uvirtio_mem_find() - the region holding guest address @addr, or NULL.
 */
UVIRTIO_API
const struct uvirtio_mem_region *uvirtio_mem_find(const struct uvirtio_mem *m, uint64_t addr);

#endif
