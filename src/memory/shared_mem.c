// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uvirtio/shared_mem.h"

struct shared_mem {
	int memfd; /* the backing memfd (close-on-exec); owned; 0 or -1: none */
	size_t size;
	uint64_t guest_addr; /* where both views start in guest-physical space */
	void *driver_map, *device_map;
	struct uvirtio_mem mem; /* the device's view */
	struct uvirtio_dma dma; /* the driver's view */
	bool dma_ready;
};
UVIRTIO_OPAQUE_FITS(struct shared_mem, struct uvirtio_shared_mem);

static struct shared_mem *shared_mem_of(struct uvirtio_shared_mem *sm)
{
	return (struct shared_mem *)sm;
}

int uvirtio_shared_mem_create(struct uvirtio_shared_mem *public_sm, const char *name, size_t size,
			      uint64_t guest_addr)
{
	struct shared_mem *sm = shared_mem_of(public_sm);
	struct uvirtio_mem_region r;
	int ret;

	memset(public_sm, 0, sizeof(*public_sm));
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
	sm->dma_ready = !ret;
	if (ret)
		goto fail;
	return 0;

fail_errno:
	ret = -errno;
fail:
	uvirtio_shared_mem_destroy(public_sm);
	return ret;
}

void uvirtio_shared_mem_destroy(struct uvirtio_shared_mem *public_sm)
{
	struct shared_mem *sm = shared_mem_of(public_sm);

	if (sm->dma_ready)
		uvirtio_dma_destroy(&sm->dma);
	if (sm->driver_map && sm->driver_map != MAP_FAILED)
		munmap(sm->driver_map, sm->size);
	if (sm->device_map && sm->device_map != MAP_FAILED)
		munmap(sm->device_map, sm->size);
	if (sm->memfd > 0)
		close(sm->memfd);
	memset(public_sm, 0, sizeof(*public_sm));
	sm->memfd = -1;
}

struct uvirtio_mem *uvirtio_shared_mem_device_view(struct uvirtio_shared_mem *sm)
{
	return &shared_mem_of(sm)->mem;
}

struct uvirtio_dma *uvirtio_shared_mem_driver_view(struct uvirtio_shared_mem *sm)
{
	return &shared_mem_of(sm)->dma;
}

int uvirtio_shared_mem_fd(const struct uvirtio_shared_mem *public_sm, size_t *size, uint64_t *guest_addr)
{
	const struct shared_mem *sm = (const struct shared_mem *)public_sm;

	if (size)
		*size = sm->size;
	if (guest_addr)
		*guest_addr = sm->guest_addr;
	return sm->memfd > 0 ? sm->memfd : -1;
}
