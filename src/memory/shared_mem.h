/* SPDX-License-Identifier: MIT */
/*
 * Private: guest memory for an in-process pair (loopback, mmio and pci
 * pairs): one memfd mapped twice, once as the device's guest memory and once
 * as the driver's DMA area, so every address really is translated. The memfd
 * is kept so a device end in another process can map the same memory.
 */
#ifndef UVIRTIO_SRC_SHARED_MEM_H
#define UVIRTIO_SRC_SHARED_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "uvirtio/dma.h"
#include "uvirtio/memory.h"

#define SHARED_MEM_DEFAULT_SIZE (64u << 20)
#define SHARED_MEM_DEFAULT_GUEST_ADDR (1ull << 30)

struct shared_mem {
	int memfd;
	size_t size;
	uint64_t guest_addr;
	void *driver_map, *device_map;
	struct uvirtio_mem mem; /* the device's view */
	struct uvirtio_dma dma; /* the driver's view */
};

/* @size 0 and @guest_addr 0 pick the defaults. Return 0 or a negative errno;
 * on failure nothing is left to destroy. */
int shared_mem_create(struct shared_mem *sm, const char *name, size_t size, uint64_t guest_addr);

/* Safe on a zeroed struct or after a failed create. */
void shared_mem_destroy(struct shared_mem *sm);

#endif
