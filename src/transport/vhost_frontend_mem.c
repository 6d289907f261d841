// SPDX-License-Identifier: MIT
/*
 * The vhost-user front-end's guest memory: one shared memfd, mapped here
 * and handed to the backend as its memory table, and the addresses rings
 * are given by.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "vhost_frontend_priv.h"

/* Front-end addresses are what SET_VRING_ADDR carries: the backend
 * translates them through the regions' userspace_addr. */
uint64_t vf_frontend_addr(const struct uvirtio_vhost_frontend *fe, uint64_t guest)
{
	return (uint64_t)(uintptr_t)fe->map + (guest - fe->mem_guest_addr);
}

bool vf_layout_inside(const struct uvirtio_vhost_frontend *fe,
			  const struct uvirtio_queue_layout *l)
{
	uint64_t lo = fe->mem_guest_addr, hi = lo + fe->mem_size;

	return l->desc >= lo && l->desc < hi && l->avail >= lo && l->avail < hi &&
	       l->used >= lo && l->used < hi;
}

int vf_make_memory(struct uvirtio_vhost_frontend *fe, const struct uvirtio_vhost_frontend_config *cfg)
{
	size_t page = cfg->hugetlb ? HUGE_PAGE_SIZE : (size_t)sysconf(_SC_PAGESIZE);
	size_t size = cfg->mem_size ? cfg->mem_size : DEFAULT_MEM_SIZE;
	uint64_t guest = cfg->guest_addr ? cfg->guest_addr : DEFAULT_GUEST_ADDR;
	unsigned flags = MFD_CLOEXEC | (cfg->hugetlb ? MFD_HUGETLB : 0);

	if (size > SIZE_MAX - page)
		return vf_set_error(fe, -EINVAL, "guest memory of %zu bytes is too large", size);
	size = (size + page - 1) & ~(page - 1);
	fe->memfd = memfd_create("uvirtio-guest", flags);
	if (fe->memfd < 0)
		return vf_set_error(fe, -errno, "memfd_create%s: %s", cfg->hugetlb ? " (hugetlb)" : "",
				 strerror(errno));
	if (ftruncate(fe->memfd, (off_t)size) < 0)
		return vf_set_error(fe, -errno, "guest memory of %zu bytes: %s", size, strerror(errno));
	/* With huge pages the reservation is made here, so too few free pages
	 * is an error now, not a SIGBUS on first touch. */
	fe->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd, 0);
	if (fe->map == MAP_FAILED) {
		fe->map = NULL;
		return vf_set_error(fe, -errno, "mapping %zu bytes of guest memory%s: %s", size,
				 cfg->hugetlb ? " in huge pages" : "", strerror(errno));
	}
	fe->mem_size = size;
	fe->mem_guest_addr = guest;
	if (uvirtio_dma_init(&fe->dma, fe->map, guest, size))
		return vf_set_error(fe, -EINVAL, "guest memory at %#llx of %zu bytes overflows",
				 (unsigned long long)guest, size);
	fe->dma_ready = true;
	return 0;
}

int vf_share_memory(struct uvirtio_vhost_frontend *fe)
{
	struct vhost_user_mem_region region = {
		.guest_phys_addr = fe->mem_guest_addr,
		.memory_size = fe->mem_size,
		.userspace_addr = (uint64_t)(uintptr_t)fe->map,
		.mmap_offset = 0,
	};

	if (has_pf(fe, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		struct vhost_user_mem_reg reg = { .region = region };
		uint64_t slots;
		int ret = vf_get_u64(fe, VHOST_USER_GET_MAX_MEM_SLOTS, &slots);

		if (ret)
			return ret;
		if (slots < 1)
			return vf_set_error(fe, -ENOSPC, "GET_MAX_MEM_SLOTS: the backend has no slot");
		return vf_transact(fe, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &fe->memfd, 1, NULL, 0);
	}
	struct vhost_user_mem_table table = { .nregions = 1, .regions = { region } };

	/* The payload is the header and the regions used, as QEMU sends it. */
	return vf_transact(fe, VHOST_USER_SET_MEM_TABLE, &table,
			offsetof(struct vhost_user_mem_table, regions) + sizeof(region), &fe->memfd, 1,
			NULL, 0);
}
