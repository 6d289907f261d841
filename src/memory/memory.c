// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "memory_priv.h"

/* Last guest address of a region; callers have checked it does not overflow. */
static uint64_t region_last(const struct uvirtio_mem_region *r)
{
	return r->guest_addr + (r->size - 1);
}

/* Index of the first region whose last address is >= addr (binary search). */
static unsigned lower_bound(const struct mem *m, uint64_t addr)
{
	unsigned lo = 0, hi = m->nregions;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (region_last(&m->regions[mid]) < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void uvirtio_mem_init(struct uvirtio_mem *public_m)
{
	mem_of(public_m)->nregions = 0;
}

int uvirtio_mem_add(struct uvirtio_mem *public_m, const struct uvirtio_mem_region *r)
{
	struct mem *m = mem_of(public_m);
	uint64_t last;
	unsigned at;

	/* Nothing is mapped at NULL; pointer arithmetic from it is undefined. */
	if (r->size == 0 || !r->host_addr)
		return -EINVAL;
	if (__builtin_add_overflow(r->guest_addr, r->size - 1, &last))
		return -EINVAL;
	if ((uintptr_t)r->host_addr + (r->size - 1) < (uintptr_t)r->host_addr)
		return -EINVAL;
	if (m->nregions == UVIRTIO_MEM_MAX_REGIONS)
		return -ENOSPC;

	at = lower_bound(m, r->guest_addr);
	/* The region at `at` ends at or after our start; it must begin after our end. */
	if (at < m->nregions && m->regions[at].guest_addr <= last)
		return -EINVAL;

	memmove(&m->regions[at + 1], &m->regions[at],
		(m->nregions - at) * sizeof(m->regions[0]));
	m->regions[at] = *r;
	m->nregions++;
	return 0;
}

int uvirtio_mem_remove(struct uvirtio_mem *public_m, uint64_t guest_addr, uint64_t size,
		       struct uvirtio_mem_region *out)
{
	struct mem *m = mem_of(public_m);
	unsigned at = lower_bound(m, guest_addr);

	if (at == m->nregions || m->regions[at].guest_addr != guest_addr ||
	    m->regions[at].size != size)
		return -ENOENT;
	if (out)
		*out = m->regions[at];
	memmove(&m->regions[at], &m->regions[at + 1],
		(m->nregions - at - 1) * sizeof(m->regions[0]));
	m->nregions--;
	return 0;
}

static const struct uvirtio_mem_region *find(const struct mem *m, uint64_t addr)
{
	unsigned at = lower_bound(m, addr);

	if (at == m->nregions || m->regions[at].guest_addr > addr)
		return NULL;
	return &m->regions[at];
}

const struct uvirtio_mem_region *uvirtio_mem_find(const struct uvirtio_mem *m, uint64_t addr)
{
	return find(mem_of_const(m), addr);
}

void *uvirtio_mem_ptr(const struct uvirtio_mem *m, uint64_t addr, uint64_t len)
{
	const struct uvirtio_mem_region *r;
	uint64_t last;

	if (len == 0 || __builtin_add_overflow(addr, len - 1, &last))
		return NULL;
	r = find(mem_of_const(m), addr);
	if (!r || last > region_last(r))
		return NULL;
	return (char *)r->host_addr + (addr - r->guest_addr);
}

int uvirtio_mem_translate(const struct uvirtio_mem *public_m, uint64_t addr, uint64_t len,
			  struct iovec *iov, unsigned max_iov)
{
	const struct mem *m = mem_of_const(public_m);
	uint64_t last;
	unsigned n = 0;

	if (len == 0)
		return 0;
	if (__builtin_add_overflow(addr, len - 1, &last))
		return -EFAULT;

	for (unsigned at = lower_bound(m, addr);; at++) {
		const struct uvirtio_mem_region *r = &m->regions[at];
		uint64_t chunk_last;

		/* Regions are sorted, so a gap before the next one means a hole. */
		if (at == m->nregions || r->guest_addr > addr)
			return -EFAULT;
		if (n == max_iov)
			return -ENOBUFS;
		chunk_last = last < region_last(r) ? last : region_last(r);
		iov[n].iov_base = (char *)r->host_addr + (addr - r->guest_addr);
		iov[n].iov_len = (size_t)(chunk_last - addr + 1);
		n++;
		if (chunk_last == last)
			return (int)n;
		addr = chunk_last + 1;
	}
}

unsigned mem_nregions(const struct uvirtio_mem *m)
{
	return mem_of_const(m)->nregions;
}
