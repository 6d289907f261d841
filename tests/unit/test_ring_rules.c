// SPDX-License-Identifier: MIT
/*
 * The rules a driver's ring must keep, as one table, each run over every
 * ring the device side serves: split and packed, each with and without
 * VIRTIO_F_IN_ORDER, VIRTIO_RING_F_EVENT_IDX and VIRTIO_RING_F_INDIRECT_DESC
 * (16 rings). The driver side (a drvq over the same memory) makes one
 * well-formed buffer available, one readable and one writable part; a rule
 * then forges the descriptors the way a hostile driver would and says what
 * the device must do: take the buffer, or break the queue for that rule.
 * The descriptors are reached through one view whatever the layout: the two
 * ring descriptors of the chain, or the head and the two entries of its
 * indirect table, so each rule is written once.
 */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "uvirtio/devq.h"
#include "uvirtio/dma.h"
#include "uvirtio/drvq.h"
#include "uvirtio/memory.h"
#include "uvirtio/virtio_spec.h"

#define GA 0x100000000ull
#define MEM_SIZE (1u << 20)
#define NUM 8
#define PART 64u

#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)
#define EVENT_IDX UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)
#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)

/* One descriptor in shared memory, split or packed (the same 16 bytes,
 * flags and next/id in other places). Only the flags a rule may forge are
 * changed: a packed descriptor keeps its AVAIL/USED bits. */
struct desc_ref {
	void *p;
	bool packed;
};

static uint16_t *desc_flags(struct desc_ref d)
{
	return d.packed ? &((struct vring_packed_desc *)d.p)->flags : &((struct vring_desc *)d.p)->flags;
}

static void desc_set_addr(struct desc_ref d, uint64_t addr)
{
	if (d.packed)
		((struct vring_packed_desc *)d.p)->addr = addr;
	else
		((struct vring_desc *)d.p)->addr = addr;
}

static void desc_set_len(struct desc_ref d, uint32_t len)
{
	if (d.packed)
		((struct vring_packed_desc *)d.p)->len = len;
	else
		((struct vring_desc *)d.p)->len = len;
}

static void desc_flip(struct desc_ref d, uint16_t set, uint16_t clear)
{
	*desc_flags(d) = (uint16_t)((*desc_flags(d) | set) & ~clear);
}

/* The buffer as the device will read it: @head is the ring descriptor the
 * chain starts at; @part[] the readable then the writable part, in the ring
 * (head is part[0]) or in the indirect table head points at. */
struct buf_view {
	struct desc_ref head, part[2];
	bool indirect;
};

struct ring {
	uint64_t features;
	char *mem_base;
	struct uvirtio_dma dma;
	struct uvirtio_mem mem;
	struct uvirtio_drvq q;
	struct uvirtio_devq dq;
	char *buf;
	unsigned broken_calls;
	struct buf_view v;
};

static void *host_of(struct ring *r, uint64_t guest_addr)
{
	return r->mem_base + (guest_addr - GA);
}

static void on_broken(struct uvirtio_devq *q, void *opaque)
{
	(void)q;
	((struct ring *)opaque)->broken_calls++;
}

/* Finds the descriptors of the first buffer made available on a fresh
 * ring: the head is ring slot 0 in both layouts; its chain continues at
 * next (split) or the following slot (packed), or in its indirect table. */
static void find_buffer(struct ring *r)
{
	bool packed = r->features & PACKED;
	struct uvirtio_drvq_ring ring;
	struct buf_view *v = &r->v;

	uvirtio_drvq_ring(&r->q, &ring);
	v->head = (struct desc_ref){ ring.desc_host, packed };
	v->indirect = *desc_flags(v->head) & VRING_DESC_F_INDIRECT;
	if (v->indirect) {
		uint64_t table = packed ? ((struct vring_packed_desc *)ring.desc_host)->addr
					: ((struct vring_desc *)ring.desc_host)->addr;
		char *t = host_of(r, table);
		uint16_t second = packed ? 1 : ((struct vring_desc *)t)->next;

		v->part[0] = (struct desc_ref){ t, packed };
		v->part[1] = (struct desc_ref){ t + 16u * second, packed };
	} else {
		uint16_t second = packed ? 1 : ((struct vring_desc *)ring.desc_host)->next;

		v->part[0] = v->head;
		v->part[1] = (struct desc_ref){ (char *)ring.desc_host + 16u * second, packed };
	}
}

static int ring_init(struct ring *r, uint64_t features)
{
	struct uvirtio_mem_region region = { .guest_addr = GA, .size = MEM_SIZE, .fd = -1 };
	struct uvirtio_drvq_ring ring;
	struct iovec out, in;
	int ret;

	memset(r, 0, sizeof(*r));
	r->features = features | UVIRTIO_BIT(VIRTIO_F_VERSION_1);
	r->mem_base = aligned_alloc(4096, MEM_SIZE);
	if (!r->mem_base)
		return -ENOMEM;
	memset(r->mem_base, 0, MEM_SIZE);
	region.host_addr = r->mem_base;
	ret = uvirtio_dma_init(&r->dma, r->mem_base, GA, MEM_SIZE);
	if (ret)
		return ret;
	uvirtio_mem_init(&r->mem);
	ret = uvirtio_mem_add(&r->mem, &region);
	if (!ret)
		ret = uvirtio_drvq_create(&r->q, &r->dma, 0, NUM, r->features, 0);
	if (ret)
		return ret;
	r->buf = uvirtio_dma_alloc(&r->dma, 2 * PART, 64);
	if (!r->buf)
		return -ENOMEM;
	uvirtio_drvq_ring(&r->q, &ring);
	ret = uvirtio_devq_setup(&r->dq, &r->mem, NUM, ring.desc, ring.avail, ring.used, r->features);
	if (ret)
		return ret;
	uvirtio_devq_set_broken_cb(&r->dq, on_broken, r);
	out = (struct iovec){ .iov_base = r->buf, .iov_len = PART };
	in = (struct iovec){ .iov_base = r->buf + PART, .iov_len = PART };
	ret = uvirtio_drvq_add(&r->q, &out, 1, &in, 1, r);
	if (ret)
		return ret;
	find_buffer(r);
	return 0;
}

static void ring_fini(struct ring *r)
{
	uvirtio_devq_reset(&r->dq);
	uvirtio_drvq_destroy(&r->q);
	uvirtio_dma_destroy(&r->dma);
	free(r->mem_base);
}

/* A rule: for which rings it holds, how a hostile driver breaks it (NULL:
 * it does not, the buffer is well formed), and the reason the device must
 * break the queue for (NULL: the device takes the buffer). */
struct rule {
	const char *name;
	uint64_t needs, refuses; /* features the ring must have, must not have */
	void (*forge)(struct buf_view *v);
	const char *reason;
};

static void writable_then_readable(struct buf_view *v)
{
	desc_flip(v->part[0], VRING_DESC_F_WRITE, 0);
	desc_flip(v->part[1], 0, VRING_DESC_F_WRITE);
}

static void part_outside_memory(struct buf_view *v)
{
	desc_set_addr(v->part[1], GA + MEM_SIZE);
}

static void part_address_wraps(struct buf_view *v)
{
	desc_set_addr(v->part[1], UINT64_MAX - 7);
}

static void part_straddles_memory_end(struct buf_view *v)
{
	desc_set_addr(v->part[1], GA + MEM_SIZE - PART / 2);
}

static void nested_indirect(struct buf_view *v)
{
	desc_flip(v->part[0], VRING_DESC_F_INDIRECT, 0);
}

static void table_length_not_whole(struct buf_view *v)
{
	desc_set_len(v->head, 24);
}

static void table_outside_memory(struct buf_view *v)
{
	desc_set_addr(v->head, GA + MEM_SIZE);
}

static void indirect_with_next(struct buf_view *v)
{
	desc_flip(v->head, VRING_DESC_F_NEXT, 0);
}

static void indirect_not_negotiated(struct buf_view *v)
{
	/* The head alone, marked indirect (its own bytes as the "table"). */
	desc_flip(v->head, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT);
	desc_set_len(v->head, 16);
}

static const struct rule rules[] = {
	{ "a well-formed buffer is taken", 0, 0, NULL, NULL },
	{ "readable after writable", 0, 0, writable_then_readable,
	  "readable descriptor after a writable one" },
	{ "a part outside guest memory", 0, 0, part_outside_memory, "buffer outside guest memory" },
	{ "a part whose address wraps", 0, 0, part_address_wraps, "buffer outside guest memory" },
	{ "a part across the end of memory", 0, 0, part_straddles_memory_end,
	  "buffer outside guest memory" },
	{ "INDIRECT without the feature", 0, INDIRECT, indirect_not_negotiated,
	  "indirect descriptor without VIRTIO_F_INDIRECT_DESC" },
	{ "a nested indirect table", INDIRECT, 0, nested_indirect, "nested indirect descriptor" },
	{ "a table length not a multiple of 16", INDIRECT, 0, table_length_not_whole,
	  "indirect table length not a non-zero multiple of 16" },
	{ "a table outside guest memory", INDIRECT, 0, table_outside_memory,
	  "indirect table outside guest memory" },
	{ "INDIRECT with NEXT", INDIRECT, 0, indirect_with_next, "indirect descriptor with NEXT set" },
};

static const char *ring_name(uint64_t f, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", f & PACKED ? "packed" : "split", f & IN_ORDER ? "+in_order" : "",
		 f & EVENT_IDX ? "+event_idx" : "", f & INDIRECT ? "+indirect" : "");
	return buf;
}

/* One rule on one ring: 0 when the device did what the rule says, else
 * -1 with the difference printed. */
static int check_rule(const struct rule *rule, uint64_t features)
{
	struct iovec iov[4];
	struct uvirtio_req req;
	char name[64];
	struct ring r;
	int ret, failed = -1;

	ring_name(features, name, sizeof(name));
	if (ring_init(&r, features)) {
		printf("# %s: cannot set the ring up\n", name);
		goto out;
	}
	/* What the drvq wrote is what each rule assumes. */
	if (r.v.indirect != !!(features & INDIRECT)) {
		printf("# %s: the buffer is %sindirect\n", name, r.v.indirect ? "" : "not ");
		goto out;
	}
	if (rule->forge)
		rule->forge(&r.v);
	uvirtio_req_init(&req, iov, 4);
	ret = uvirtio_devq_pop(&r.dq, &req);
	if (!rule->reason) {
		if (ret != 1 || req.out_len != PART || req.in_len != PART) {
			printf("# %s: pop = %d, lengths %u/%u, want 1 with %u/%u\n", name, ret, req.out_len,
			       req.in_len, PART, PART);
			goto out;
		}
	} else if (ret != -EIO || !uvirtio_devq_is_broken(&r.dq) || r.broken_calls != 1 ||
		   !uvirtio_devq_broken_reason(&r.dq) ||
		   strcmp(uvirtio_devq_broken_reason(&r.dq), rule->reason)) {
		printf("# %s: pop = %d, broken %d (callback %u times), reason \"%s\"; want -EIO for \"%s\"\n",
		       name, ret, uvirtio_devq_is_broken(&r.dq), r.broken_calls,
		       uvirtio_devq_broken_reason(&r.dq) ? uvirtio_devq_broken_reason(&r.dq) : "(none)",
		       rule->reason);
		goto out;
	} else if (uvirtio_devq_pop(&r.dq, &req) != -EIO || r.broken_calls != 1) {
		printf("# %s: a broken queue must stay broken, its callback called once\n", name);
		goto out;
	}
	failed = 0;
out:
	ring_fini(&r);
	return failed;
}

/* Runs rule @i over every ring it holds for; the number of rings it ran on. */
static int run_rule(unsigned i)
{
	const struct rule *rule = &rules[i];
	int rings = 0;

	for (uint64_t combo = 0; combo < 16; combo++) {
		uint64_t f = (combo & 1 ? PACKED : 0) | (combo & 2 ? IN_ORDER : 0) |
			     (combo & 4 ? EVENT_IDX : 0) | (combo & 8 ? INDIRECT : 0);

		if ((f & rule->needs) != rule->needs || (f & rule->refuses))
			continue;
		if (check_rule(rule, f))
			return -1;
		rings++;
	}
	return rings;
}

#define RULE_TEST(n, fn, rings)                  \
	static void fn(void)                     \
	{                                        \
		CHECK_EQ(run_rule(n), rings);    \
	}

RULE_TEST(0, test_rules_well_formed_buffer_is_taken_on_every_ring, 16)
RULE_TEST(1, test_rules_readable_after_writable_breaks_every_ring, 16)
RULE_TEST(2, test_rules_part_outside_memory_breaks_every_ring, 16)
RULE_TEST(3, test_rules_part_address_wrapping_breaks_every_ring, 16)
RULE_TEST(4, test_rules_part_across_memory_end_breaks_every_ring, 16)
RULE_TEST(5, test_rules_indirect_without_the_feature_breaks_the_ring, 8)
RULE_TEST(6, test_rules_nested_indirect_breaks_the_ring, 8)
RULE_TEST(7, test_rules_table_length_not_whole_breaks_the_ring, 8)
RULE_TEST(8, test_rules_table_outside_memory_breaks_the_ring, 8)
RULE_TEST(9, test_rules_indirect_with_next_breaks_the_ring, 8)

_Static_assert(sizeof(rules) / sizeof(rules[0]) == 10, "one test per rule");

TEST_MAIN(T(test_rules_well_formed_buffer_is_taken_on_every_ring),
	  T(test_rules_readable_after_writable_breaks_every_ring),
	  T(test_rules_part_outside_memory_breaks_every_ring),
	  T(test_rules_part_address_wrapping_breaks_every_ring),
	  T(test_rules_part_across_memory_end_breaks_every_ring),
	  T(test_rules_indirect_without_the_feature_breaks_the_ring),
	  T(test_rules_nested_indirect_breaks_the_ring),
	  T(test_rules_table_length_not_whole_breaks_the_ring),
	  T(test_rules_table_outside_memory_breaks_the_ring),
	  T(test_rules_indirect_with_next_breaks_the_ring))
