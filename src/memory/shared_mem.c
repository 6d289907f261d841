// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uvirtio/shared_mem.h"

int uvirtio_shared_mem_create(struct uvirtio_shared_mem *sm, const char *name, size_t size, uint64_t guest_addr)
{
	struct uvirtio_mem_region r;
	int ret;

	memset(sm, 0, sizeof(*sm));
	sm->size = size ? size : UVIRTIO_SHARED_MEM_DEFAULT_SIZE;
	sm->guest_addr = guest_addr ? guest_addr : UVIRTIO_SHARED_MEM_DEFAULT_GUEST_ADDR;
	sm->driver_map = sm->device_map = MAP_FAILED;
	uvirtio_mem_init(&sm->mem);

	sm->memfd = memfd_create(name, MFD_CLOEXEC);
	if (sm->memfd < 0 || ftruncate(sm->memfd, (off_t)sm->size) < 0)
		goto fail_errno;
	/* Two mappings of one memfd: the device's view is not the driver's, so
	 * a translation that were skipped or wrong would show. */
	sm->driver_map = mmap(NULL, sm->size, PROT_READ | PROT_WRITE, MAP_SHARED, sm->memfd, 0);
	sm->device_map = mmap(NULL, sm->size, PROT_READ | PROT_WRITE, MAP_SHARED, sm->memfd, 0);
	if (sm->driver_map == MAP_FAILED || sm->device_map == MAP_FAILED)
		goto fail_errno;
	r = (struct uvirtio_mem_region){ .guest_addr = sm->guest_addr, .size = sm->size,
					 .host_addr = sm->device_map, .fd = sm->memfd };
	ret = uvirtio_mem_add(&sm->mem, &r);
	if (!ret)
		ret = uvirtio_dma_init(&sm->dma, sm->driver_map, sm->guest_addr, sm->size);
	if (ret)
		goto fail;
	return 0;

fail_errno:
	ret = -errno;
fail:
	uvirtio_shared_mem_destroy(sm);
	return ret;
}

void uvirtio_shared_mem_destroy(struct uvirtio_shared_mem *sm)
{
	if (sm->dma.base)
		uvirtio_dma_destroy(&sm->dma);
	if (sm->driver_map && sm->driver_map != MAP_FAILED)
		munmap(sm->driver_map, sm->size);
	if (sm->device_map && sm->device_map != MAP_FAILED)
		munmap(sm->device_map, sm->size);
	if (sm->memfd > 0)
		close(sm->memfd);
	memset(sm, 0, sizeof(*sm));
	sm->memfd = -1;
}
