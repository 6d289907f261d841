/* SPDX-License-Identifier: MIT */
/*
 * What the device-side fuzz targets of both ring layouts share
 * (fuzz_devq_split.c, fuzz_devq_packed.c): the guest memory the regions map,
 * the checks that an address range or an iovec lies inside an accepted
 * region, reading the common part of the input (regions, ring parts,
 * indices, operations, guest bytes) and the final check of a broken queue.
 *
 * Every region maps into one fixed host buffer, so anything the library
 * hands out must lie inside it; ASan catches a read outside, iov_in_region()
 * an iovec that points outside.
 */
#ifndef UVIRTIO_FUZZ_DEVQ_HARNESS_H
#define UVIRTIO_FUZZ_DEVQ_HARNESS_H

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "uvirtio/devq.h"
#include "uvirtio/virtio_spec.h"
#include "fuzz_input.h"
#include "../../src/ring/devq_priv.h"

/* The queue's private state, which the targets check after every step
 * (tests/fuzz compiles the library's sources and sees their headers). */
#define DEVQ(q) ((struct devq *)(q))

#define GUEST_SIZE 16384u
#define NREGIONS_MAX 4
#define IOV_MAX_CAP 64
#define NUM_MAX 256

struct fuzz_op {
	uint8_t op;
	uint16_t arg;
};

/* Each target's checked pop and push (they check different layouts). */
typedef int (*fuzz_pop_fn)(struct uvirtio_devq *q, struct uvirtio_req *req, unsigned iov_cap,
			   bool write_in, uint8_t fill);
typedef void (*fuzz_push_fn)(struct uvirtio_devq *q, const struct uvirtio_used *e, unsigned n);

/* Pop a request and push it straight back: with @o->arg as its length, or
 * (@whole) with its whole writable length. */
static inline void fuzz_pop_push_now(struct uvirtio_devq *q, const struct fuzz_op *o, bool whole,
				     unsigned iov_cap, bool write_in, fuzz_pop_fn pop,
				     fuzz_push_fn push)
{
	struct uvirtio_req req;

	if (pop(q, &req, iov_cap, write_in, (uint8_t)o->arg) == 1) {
		struct uvirtio_used e = { .id = req.id, .len = whole ? req.in_len : o->arg };

		push(q, &e, 1);
	}
}

static _Alignas(4096) uint8_t guest[GUEST_SIZE];
static uint8_t snapshot[GUEST_SIZE];
static struct uvirtio_mem mem;

/* Regions the map accepted, to check iovecs against. */
static struct uvirtio_mem_region added[NREGIONS_MAX];
static unsigned nadded;

/* The request's iovecs end where this array ends, so an iovec written past
 * iov_cap lands in ASan's redzone after it. */
static struct iovec iov_store[IOV_MAX_CAP];
static struct uvirtio_used held[NUM_MAX];
static unsigned nheld;

static struct fuzz_op ops[256];
static unsigned broken_calls;

static void on_broken(struct uvirtio_devq *q, void *opaque)
{
	(void)q;
	(void)opaque;
	broken_calls++;
	/* Everything after this must leave guest memory alone. */
	memcpy(snapshot, guest, sizeof(guest));
}

FUZZ_MODEL static bool in_one_region(uint64_t addr, uint64_t len)
{
	for (unsigned i = 0; i < nadded; i++) {
		const struct uvirtio_mem_region *r = &added[i];

		if (addr >= r->guest_addr && len <= r->size && addr - r->guest_addr <= r->size - len)
			return true;
	}
	return false;
}

/* An iovec must lie inside one accepted region's host range (so inside the
 * buffer). Overlapping host ranges are allowed, so any region will do. */
FUZZ_MODEL static bool iov_in_region(const struct iovec *v)
{
	uintptr_t b = (uintptr_t)v->iov_base;

	for (unsigned i = 0; i < nadded; i++) {
		uintptr_t h = (uintptr_t)added[i].host_addr;

		if (b >= h && v->iov_len <= added[i].size && b - h <= added[i].size - v->iov_len)
			return true;
	}
	return false;
}

/* What every popped request must be, whatever the layout: its iovecs inside
 * the caller's capacity, none empty, each inside one accepted region (so,
 * the point of it all, inside guest memory), adding up to its lengths. */
static void check_req_iovs(const struct uvirtio_req *req, unsigned iov_cap)
{
	uint64_t out_sum = 0, in_sum = 0;

	FUZZ_CHECK(req->n_out <= iov_cap && req->n_in <= iov_cap - req->n_out);
	for (unsigned i = 0; i < req->n_out + req->n_in; i++) {
		const struct iovec *v = &req->iov[i];

		FUZZ_CHECK(v->iov_len != 0);
		FUZZ_CHECK(iov_in_region(v));
		FUZZ_CHECK((uintptr_t)v->iov_base >= (uintptr_t)guest &&
			   (uintptr_t)v->iov_base - (uintptr_t)guest + v->iov_len <= GUEST_SIZE);
		if (i < req->n_out)
			out_sum += v->iov_len;
		else
			in_sum += v->iov_len;
	}
	FUZZ_CHECK(out_sum == req->out_len);
	FUZZ_CHECK(in_sum == req->in_len);
}

static uint16_t load16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint64_t ring_part_addr(struct fuzz_in *in, const struct uvirtio_mem_region *regs,
			       unsigned nregs, uint64_t align)
{
	uint8_t sel = in_u8(in);
	uint16_t off = in_u16(in);

	if (!(sel & 0x80))
		off &= (uint16_t)~(align - 1);
	return regs[(sel & 0x7f) % nregs].guest_addr + off;
}

/* The input after its first four bytes (size, flags, iovec capacity, region
 * count), as both targets lay it out. */
struct devq_fuzz_input {
	uint64_t part[3];     /* descriptor ring, driver area, device area */
	uint16_t next_avail, used_idx;
	unsigned nops;        /* operations read into ops[] */
};

/*
 * Reads 4 regions, the ring parts (aligned to @align[i] unless the input says
 * not to), the indices and the operations; copies the rest of the input into
 * guest memory and adds the first @nregs regions to mem (added[] the ones it
 * accepted).
 *
 * The host offset keeps the guest address's place within 16 bytes. The ring
 * code checks alignment in guest addresses only and then does atomic loads
 * and stores at the host addresses; a map that breaks the congruence gives
 * misaligned atomics (undefined behaviour, a fault on some CPUs), and
 * memory.c does not refuse such a map today. Keeping the congruence lets
 * the fuzzer look past that one finding.
 */
static void devq_fuzz_read_input(struct fuzz_in *in, unsigned nregs, const uint64_t align[3],
				 struct devq_fuzz_input *out)
{
	struct uvirtio_mem_region regs[NREGIONS_MAX];

	for (unsigned i = 0; i < NREGIONS_MAX; i++) {
		uint64_t ga = in_u64(in);
		uint16_t sz = in_u16(in);
		uint32_t host_off = ((in_u16(in) % GUEST_SIZE) & ~15u) | (ga & 15);

		regs[i] = (struct uvirtio_mem_region){
			.guest_addr = ga,
			.size = 1 + sz % (GUEST_SIZE - host_off),
			.host_addr = guest + host_off,
			.fd = -1,
		};
	}
	for (unsigned i = 0; i < 3; i++)
		out->part[i] = ring_part_addr(in, regs, nregs, align[i]);
	out->next_avail = in_u16(in);
	out->used_idx = in_u16(in);
	out->nops = in_u8(in);
	for (unsigned i = 0; i < out->nops; i++) {
		ops[i].op = in_u8(in);
		ops[i].arg = in_u16(in);
	}
	memset(guest, 0, sizeof(guest));
	memcpy(guest, in->p, in->n < sizeof(guest) ? in->n : sizeof(guest));

	uvirtio_mem_init(&mem);
	nadded = 0;
	for (unsigned i = 0; i < nregs; i++)
		if (uvirtio_mem_add(&mem, &regs[i]) == 0)
			added[nadded++] = regs[i];
}

/* A broken queue stays broken and keeps its hands off memory; @has_avail:
 * check uvirtio_devq_has_avail() too. */
static void devq_fuzz_check_broken_end(struct uvirtio_devq *q, bool has_avail)
{
	struct uvirtio_req req;
	struct uvirtio_used e = { .id = 0, .len = 0 };

	uvirtio_req_init(&req, iov_store, IOV_MAX_CAP);
	FUZZ_CHECK(uvirtio_devq_pop(q, &req) == -EIO);
	FUZZ_CHECK(uvirtio_devq_push_batch(q, &e, 1) == -EIO);
	FUZZ_CHECK(!uvirtio_devq_needs_notify(q));
	FUZZ_CHECK(!uvirtio_devq_enable_notify(q));
	if (has_avail)
		FUZZ_CHECK(!uvirtio_devq_has_avail(q));
	uvirtio_devq_disable_notify(q);
	FUZZ_CHECK(memcmp(snapshot, guest, sizeof(guest)) == 0);
	FUZZ_CHECK(broken_calls == 1);
}

#endif
