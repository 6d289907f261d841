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

/* The dirty log: one bit per 4 KiB page of guest-physical addresses from 0
 * to the end of guest memory, in whole u64 words (QEMU's unit). */
static size_t log_size(const struct uvirtio_vhost_frontend *fe)
{
	uint64_t pages = (fe->mem_guest_addr + fe->mem_size + 4095) / 4096;

	return (size_t)((pages + 63) / 64 * 8);
}

void vf_free_log(struct uvirtio_vhost_frontend *fe)
{
	if (fe->log_map)
		munmap(fe->log_map, fe->log_size);
	fe->log_map = NULL;
	fe->log_size = 0;
	close_fd(&fe->log_fd);
}

/* A new log, handed to the backend with SET_LOG_BASE. The old one (if
 * any) is read into the new one only after the backend's reply: from then
 * on it marks the new one, and what it marked before is in the old. */
int vf_make_log(struct uvirtio_vhost_frontend *fe)
{
	size_t size = log_size(fe);
	struct vhost_user_log l = { .mmap_size = size, .mmap_offset = 0 };
	uint8_t *map;
	uint64_t reply = 0;
	int fd, ret;

	if (!has_pf(fe, VHOST_USER_PROTOCOL_F_LOG_SHMFD) ||
	    !(fe->backend_features & (1ull << VHOST_F_LOG_ALL)))
		return vf_report(fe, -EOPNOTSUPP, "dirty log: the backend does not offer %s",
				 has_pf(fe, VHOST_USER_PROTOCOL_F_LOG_SHMFD) ? "VHOST_F_LOG_ALL"
									     : "LOG_SHMFD");
	fd = memfd_create("uvirtio-dirty-log", MFD_CLOEXEC);
	if (fd < 0)
		return vf_report(fe, -errno, "dirty log: memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		close(fd);
		return vf_report(fe, ret, "dirty log of %zu bytes: %s", size, strerror(-ret));
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		ret = -errno;
		close(fd);
		return vf_report(fe, ret, "dirty log: mmap: %s", strerror(-ret));
	}
	ret = vf_transact(fe, VHOST_USER_SET_LOG_BASE, &l, sizeof(l), &fd, 1, &reply, sizeof(reply));
	if (!ret && reply)
		ret = vf_report(fe, -EIO, "SET_LOG_BASE: the backend refused the log");
	if (ret) {
		munmap(map, size);
		close(fd);
		return ret;
	}
	if (fe->log_map) {
		/* Same size (the memory does not change): bits the backend
		 * set in the old log before its reply are kept. */
		for (size_t i = 0; i < size && i < fe->log_size; i++)
			__atomic_fetch_or(&map[i], __atomic_exchange_n(&fe->log_map[i], 0, __ATOMIC_RELAXED),
					  __ATOMIC_RELAXED);
	}
	vf_free_log(fe);
	fe->log_map = map;
	fe->log_size = size;
	fe->log_fd = fd;
	return 0;
}
