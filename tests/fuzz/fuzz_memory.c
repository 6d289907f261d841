// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the guest memory map (src/core/memory.c) against a model.
 *
 * The input is a sequence of operations: add, remove, translate, ptr, find,
 * bulk add, clear. A second, deliberately naive map (linear scans, no binary
 * search) predicts every result, and after each operation the library's
 * region array must equal the model's: sorted, non-overlapping, same regions.
 *
 * Host addresses come from the input and are never dereferenced: the map only
 * does arithmetic on them, and the checks compare that arithmetic exactly.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "uvirtio/memory.h"
#include "../../src/memory/memory_priv.h"
#include "fuzz_input.h"

#define MAX_IOV 16
/* A canary no translation can produce: iov_len 0 never comes back. */
#define IOV_CANARY_LEN 0

struct model {
	unsigned n;
	struct uvirtio_mem_region r[UVIRTIO_MEM_MAX_REGIONS]; /* sorted by guest_addr */
};

/* Static: the map is ~20 KiB, too much for libFuzzer's stack budget. */
static struct uvirtio_mem map;
static struct model model;

/* Callers have checked the region does not overflow. */
static uint64_t last_of(const struct uvirtio_mem_region *r)
{
	return r->guest_addr + (r->size - 1);
}

FUZZ_MODEL static bool same_region(const struct uvirtio_mem_region *a,
				   const struct uvirtio_mem_region *b)
{
	return a->guest_addr == b->guest_addr && a->size == b->size &&
	       a->host_addr == b->host_addr && a->fd == b->fd && a->fd_offset == b->fd_offset;
}

FUZZ_MODEL static const struct uvirtio_mem_region *model_find(uint64_t addr)
{
	for (unsigned i = 0; i < model.n; i++)
		if (model.r[i].guest_addr <= addr && addr <= last_of(&model.r[i]))
			return &model.r[i];
	return NULL;
}

/* The map must hold exactly the model's regions, in guest order, none
 * overlapping the next: the binary searches in memory.c rely on it. */
FUZZ_MODEL static void check_map(void)
{
	const struct mem *m = mem_of_const(&map);

	FUZZ_CHECK(m->nregions == model.n);
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct uvirtio_mem_region *r = &m->regions[i];
		uint64_t last;

		FUZZ_CHECK(r->size != 0);
		FUZZ_CHECK(!__builtin_add_overflow(r->guest_addr, r->size - 1, &last));
		if (i + 1 < m->nregions)
			FUZZ_CHECK(last < m->regions[i + 1].guest_addr);
		FUZZ_CHECK(same_region(r, &model.r[i]));
	}
}

/* Whether uvirtio_mem_add() must refuse @r with -EINVAL. */
FUZZ_MODEL static bool model_add_invalid(const struct uvirtio_mem_region *r)
{
	uint64_t last;

	if (r->size == 0 || !r->host_addr || __builtin_add_overflow(r->guest_addr, r->size - 1, &last) ||
	    (uintptr_t)r->host_addr > UINTPTR_MAX - (r->size - 1))
		return true;
	for (unsigned i = 0; i < model.n; i++)
		if (model.r[i].guest_addr <= last && r->guest_addr <= last_of(&model.r[i]))
			return true;
	return false;
}

FUZZ_MODEL static void model_insert(const struct uvirtio_mem_region *r)
{
	unsigned at;

	for (at = 0; at < model.n && model.r[at].guest_addr < r->guest_addr; at++)
		;
	memmove(&model.r[at + 1], &model.r[at], (model.n - at) * sizeof(model.r[0]));
	model.r[at] = *r;
	model.n++;
}

static void do_add(const struct uvirtio_mem_region *r)
{
	/* Which of the documented errors apply; the order the library checks
	 * them in is its own business, so any applicable one is accepted. */
	bool einval = model_add_invalid(r);
	bool enospc = model.n == UVIRTIO_MEM_MAX_REGIONS;
	int ret = uvirtio_mem_add(&map, r);

	if (!einval && !enospc) {
		FUZZ_CHECK(ret == 0);
		model_insert(r);
	} else {
		FUZZ_CHECK((einval && ret == -EINVAL) || (enospc && ret == -ENOSPC));
	}
}

static void do_remove(uint64_t guest_addr, uint64_t size, bool want_out)
{
	struct uvirtio_mem_region out;
	unsigned at;
	int ret;

	memset(&out, 0xa5, sizeof(out));
	ret = uvirtio_mem_remove(&map, guest_addr, size, want_out ? &out : NULL);
	for (at = 0; at < model.n; at++)
		if (model.r[at].guest_addr == guest_addr && model.r[at].size == size)
			break;
	if (at == model.n) {
		FUZZ_CHECK(ret == -ENOENT);
		return;
	}
	FUZZ_CHECK(ret == 0);
	if (want_out)
		FUZZ_CHECK(same_region(&out, &model.r[at]));
	memmove(&model.r[at], &model.r[at + 1], (model.n - at - 1) * sizeof(model.r[0]));
	model.n--;
}

static void do_translate(uint64_t addr, uint64_t len, unsigned max_iov)
{
	struct iovec iov[MAX_IOV + 1], want[MAX_IOV + 1];
	unsigned chunks = 0; /* regions the covered prefix of the range touches */
	bool covered = false;
	uint64_t last, cur = addr, sum = 0;
	int ret;

	for (unsigned i = 0; i <= MAX_IOV; i++)
		iov[i] = (struct iovec){ .iov_base = NULL, .iov_len = IOV_CANARY_LEN };
	ret = uvirtio_mem_translate(&map, addr, len, iov, max_iov);

	/* Entries past max_iov are not the library's to write, whatever it returns. */
	for (unsigned i = max_iov; i <= MAX_IOV; i++)
		FUZZ_CHECK(iov[i].iov_base == NULL && iov[i].iov_len == IOV_CANARY_LEN);

	if (len == 0) {
		FUZZ_CHECK(ret == 0);
		return;
	}
	if (__builtin_add_overflow(addr, len - 1, &last)) {
		FUZZ_CHECK(ret == -EFAULT);
		return;
	}

	/* Walk the range region by region through the model. */
	for (;;) {
		const struct uvirtio_mem_region *r = model_find(cur);
		uint64_t chunk_last;

		if (!r)
			break;
		chunk_last = last < last_of(r) ? last : last_of(r);
		if (chunks <= MAX_IOV)
			want[chunks] = (struct iovec){
				.iov_base = (char *)r->host_addr + (cur - r->guest_addr),
				.iov_len = (size_t)(chunk_last - cur + 1),
			};
		chunks++;
		if (chunk_last == last) {
			covered = true;
			break;
		}
		cur = chunk_last + 1;
	}

	if (!covered) {
		/* A range with a hole is refused; when the part before the hole
		 * already needs more than max_iov entries, either error is true. */
		FUZZ_CHECK(ret == -EFAULT || (ret == -ENOBUFS && chunks > max_iov));
		return;
	}
	if (chunks > max_iov) {
		FUZZ_CHECK(ret == -ENOBUFS);
		return;
	}
	FUZZ_CHECK(ret == (int)chunks);
	for (unsigned i = 0; i < chunks; i++) {
		FUZZ_CHECK(iov[i].iov_base == want[i].iov_base);
		FUZZ_CHECK(iov[i].iov_len == want[i].iov_len);
		FUZZ_CHECK(iov[i].iov_len != 0);
		sum += iov[i].iov_len;
	}
	FUZZ_CHECK(sum == len);
}

static void do_ptr(uint64_t addr, uint64_t len)
{
	const struct uvirtio_mem_region *r = model_find(addr);
	void *want = NULL;
	uint64_t last;

	if (len && !__builtin_add_overflow(addr, len - 1, &last) && r && last <= last_of(r))
		want = (char *)r->host_addr + (addr - r->guest_addr);
	FUZZ_CHECK(uvirtio_mem_ptr(&map, addr, len) == want);
}

static void do_find(uint64_t addr)
{
	const struct uvirtio_mem_region *got = uvirtio_mem_find(&map, addr);
	const struct uvirtio_mem_region *want = model_find(addr);

	FUZZ_CHECK(!got == !want);
	if (got)
		FUZZ_CHECK(same_region(got, want));
}

/*
 * A host address for a region. Never dereferenced, but the library does
 * pointer arithmetic on it, and offsetting NULL is undefined behaviour in C
 * (UBSan says so): no caller maps guest memory at page 0, so neither do we.
 */
static void *in_host(struct fuzz_in *in)
{
	uint64_t h = in_num(in);

	if (h < 4096)
		h += 4096;
	return (void *)(uintptr_t)h;
}

static void read_region(struct fuzz_in *in, struct uvirtio_mem_region *r)
{
	r->guest_addr = in_num(in);
	r->size = in_num(in);
	r->host_addr = in_host(in);
	r->fd = (int8_t)in_u8(in);
	r->fd_offset = in_num(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct uvirtio_mem_region r;
	uint64_t a, b;

	uvirtio_mem_init(&map);
	model.n = 0;

	while (!in_empty(&in)) {
		uint8_t op = in_u8(&in);

		switch (op % 8) {
		case 0:
		case 1:
			read_region(&in, &r);
			do_add(&r);
			break;
		case 2: {
			/* Remove a region that is there (by index), or an arbitrary one. */
			uint8_t how = in_u8(&in);

			if ((how & 1) && model.n) {
				const struct uvirtio_mem_region *m = &model.r[in_u16(&in) % model.n];

				do_remove(m->guest_addr, m->size, how & 2);
			} else {
				a = in_num(&in);
				b = in_num(&in);
				do_remove(a, b, how & 2);
			}
			break;
		}
		case 3:
		case 4:
			a = in_num(&in);
			b = in_num(&in);
			do_translate(a, b, in_u8(&in) % (MAX_IOV + 1));
			break;
		case 5:
			a = in_num(&in);
			b = in_num(&in);
			do_ptr(a, b);
			break;
		case 6:
			do_find(in_num(&in));
			break;
		case 7: {
			/* Many regions end to end: reaches the region limit and gives
			 * translations that cross many boundaries. */
			unsigned count = in_u8(&in);
			uint64_t step;

			read_region(&in, &r);
			step = r.size + (in_u8(&in) & 3); /* 0: adjacent, else small gaps */
			for (unsigned i = 0; i < count; i++) {
				do_add(&r);
				r.guest_addr += step;
				/* Integer arithmetic: the address may be near the top. */
				r.host_addr = (void *)((uintptr_t)r.host_addr + 4096);
			}
			break;
		}
		}
		check_map();
	}
	return 0;
}
