/* SPDX-License-Identifier: MIT */
/*
 * Guest memory for a device and a driver in one process (or a device end in
 * a child that inherits the memfd): one memfd mapped twice, once as the
 * device's guest memory (struct uvirtio_mem) and once as the driver's DMA
 * area (struct uvirtio_dma), so every address really is translated. The
 * loopback, mmio and pci pairs use it; so can a program that puts a device
 * behind its own transport and drives it from the same process.
 */
#ifndef UVIRTIO_SHARED_MEM_H
#define UVIRTIO_SHARED_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/dma.h"
#include "uvirtio/memory.h"

#define UVIRTIO_SHARED_MEM_DEFAULT_SIZE (64u << 20)
#define UVIRTIO_SHARED_MEM_DEFAULT_GUEST_ADDR (1ull << 30)

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). A zeroed one is
 * safe to destroy. */
struct uvirtio_shared_mem {
	UVIRTIO_OPAQUE(25600); /* holds a struct uvirtio_mem */
};

/**
 * uvirtio_shared_mem_create() - make one memfd of @size bytes and map it twice.
 * @sm:         filled in; owned by the caller.
 * @name:       the memfd's name (seen in /proc/PID/fd).
 * @size:       bytes, or 0 for UVIRTIO_SHARED_MEM_DEFAULT_SIZE.
 * @guest_addr: where the device sees the memory, or 0 for
 *              UVIRTIO_SHARED_MEM_DEFAULT_GUEST_ADDR.
 *
 * Return: 0, or a negative errno from memfd_create(), ftruncate() or mmap(),
 * or -EINVAL for a range that overflows; on failure nothing is left to destroy.
 */
UVIRTIO_API
int uvirtio_shared_mem_create(struct uvirtio_shared_mem *sm, const char *name, size_t size,
			      uint64_t guest_addr);

/**
 * uvirtio_shared_mem_destroy() - unmap both views and close the memfd.
 * @sm: a created one, a zeroed one, or one whose create failed (all safe).
 * No device or driver may use either view any more.
 */
UVIRTIO_API
void uvirtio_shared_mem_destroy(struct uvirtio_shared_mem *sm);

/**
 * uvirtio_shared_mem_device_view() - the device's view: guest memory to give
 * a device type's init or a device-side transport.
 * @sm: a created one. Return: owned by @sm, valid until its destroy.
 */
UVIRTIO_API
struct uvirtio_mem *uvirtio_shared_mem_device_view(struct uvirtio_shared_mem *sm);

/**
 * uvirtio_shared_mem_driver_view() - the driver's view: the DMA area a
 * driver-side transport allocates rings and buffers from.
 * @sm: a created one. Return: owned by @sm, valid until its destroy.
 */
UVIRTIO_API
struct uvirtio_dma *uvirtio_shared_mem_driver_view(struct uvirtio_shared_mem *sm);

/**
 * uvirtio_shared_mem_fd() - the backing memfd, for a child process that maps
 * the device's view itself (it inherits the fd; @sm keeps owning it).
 * @sm:         a created one.
 * @size:       if not NULL, set to the size in bytes.
 * @guest_addr: if not NULL, set to where the memory starts in guest space.
 * Return: the fd, or -1 for a zeroed or destroyed @sm.
 */
UVIRTIO_API
int uvirtio_shared_mem_fd(const struct uvirtio_shared_mem *sm, size_t *size, uint64_t *guest_addr);

#endif
