// SPDX-License-Identifier: MIT
/*
 * Packed ring, driver side: the drvq API over the packed layout, IN_ORDER
 * batches, notification data, and what it refuses from a device. The device
 * is written here by hand: it reads the descriptor ring as a device would
 * and writes used descriptors, honest or not.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "drvq_fixture.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "../support/ring_internal.h"

#define GA 0x200000ull
#define MEM_SIZE (8u << 20)
#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)
#define EVENT_IDX UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)
#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)
#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)

static char *shared;

/* The device's view of the ring. */
struct dev {
	uint16_t avail_pos, used_pos;
	bool avail_wrap, used_wrap;
};

/* A buffer as the device read it. */
struct seen {
	uint16_t id, ndescs, nparts;
	uint32_t out_len, in_len;
	bool indirect;
};

struct fix {
	struct uvirtio_dma dma;
	struct uvirtio_drvq q;
	/* The ring as the device sees it (uvirtio_drvq_ring()). */
	struct uvirtio_drvq_ring ring;
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver_event, *device_event;
	struct dev d;
	char *buf;
	unsigned notifies;
};

static int count_notify(void *opaque, unsigned index)
{
	struct fix *f = opaque;

	(void)index;
	f->notifies++;
	return 0;
}

static int fix_init(struct fix *f, unsigned num, uint64_t features, unsigned indirect_max)
{
	int ret;

	if (!shared)
		shared = aligned_alloc(4096, MEM_SIZE);
	memset(shared, 0, MEM_SIZE);
	memset(f, 0, sizeof(*f));
	uvirtio_dma_init(&f->dma, shared, GA, MEM_SIZE);
	ret = uvirtio_drvq_create(&f->q, &f->dma, 0, num, PACKED | features, indirect_max);
	if (ret)
		return ret;
	uvirtio_drvq_set_notify(&f->q, count_notify, f);
	uvirtio_drvq_ring(&f->q, &f->ring);
	f->desc = f->ring.desc_host;
	f->driver_event = f->ring.avail_host;
	f->device_event = f->ring.used_host;
	f->buf = uvirtio_dma_alloc(&f->dma, 65536, 64);
	f->d = (struct dev){ .avail_wrap = true, .used_wrap = true };
	return 0;
}

static void fix_fini(struct fix *f)
{
	uvirtio_drvq_destroy(&f->q);
	uvirtio_dma_destroy(&f->dma);
}

static struct iovec part(struct fix *f, size_t off, size_t len)
{
	return (struct iovec){ .iov_base = f->buf + off, .iov_len = len };
}

/* A queue of 4 without features and one buffer added: @in, 8 bytes the
 * device writes, with token @tok. Return: 0, or the failed step's error. */
static int fix_init_one_added(struct fix *f, struct iovec *in, int *tok)
{
	int ret = fix_init(f, 4, 0, 0);

	if (ret)
		return ret;
	*in = part(f, 0, 8);
	return uvirtio_drvq_add(&f->q, NULL, 0, in, 1, tok);
}

static void *host(uint64_t addr)
{
	return shared + (addr - GA);
}

static void dev_advance(struct fix *f, uint16_t *pos, bool *wrap, unsigned by)
{
	*pos = (uint16_t)(*pos + by);
	if (*pos >= uvirtio_drvq_size(&f->q)) {
		*pos = (uint16_t)(*pos - uvirtio_drvq_size(&f->q));
		*wrap = !*wrap;
	}
}

/* The device takes the next available buffer: 1, or 0 when there is none. */
static int dev_pop(struct fix *f, struct seen *s)
{
	struct vring_packed_desc *ring = f->desc;
	uint16_t pos = f->d.avail_pos;
	bool wrap = f->d.avail_wrap;
	uint16_t flags = le16toh(__atomic_load_n(&ring[pos].flags, __ATOMIC_ACQUIRE));

	memset(s, 0, sizeof(*s));
	if (!!(flags & F_AVAIL) != wrap || !!(flags & F_USED) == wrap)
		return 0;
	for (;;) {
		struct vring_packed_desc d = ring[pos];

		flags = le16toh(d.flags);
		s->ndescs++;
		if (flags & VRING_DESC_F_INDIRECT) {
			struct vring_packed_desc *t = host(le64toh(d.addr));

			s->indirect = true;
			for (unsigned k = 0; k < le32toh(d.len) / sizeof(*t); k++) {
				s->nparts++;
				if (le16toh(t[k].flags) & VRING_DESC_F_WRITE)
					s->in_len += le32toh(t[k].len);
				else
					s->out_len += le32toh(t[k].len);
			}
		} else {
			s->nparts++;
			if (flags & VRING_DESC_F_WRITE)
				s->in_len += le32toh(d.len);
			else
				s->out_len += le32toh(d.len);
		}
		s->id = le16toh(d.id);
		dev_advance(f, &pos, &wrap, 1);
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		/* A chain's descriptors after the head are in the same state. */
		flags = le16toh(ring[pos].flags);
		if (!!(flags & F_AVAIL) != wrap)
			return -1;
	}
	f->d.avail_pos = pos;
	f->d.avail_wrap = wrap;
	return 1;
}

/* The device writes a used descriptor for buffer @id at its used position
 * and moves on by @skip descriptors. */
static void dev_push_raw(struct fix *f, uint16_t id, uint32_t len, unsigned skip, bool wrap)
{
	struct vring_packed_desc *d = &f->desc[f->d.used_pos];

	d->id = htole16(id);
	d->len = htole32(len);
	__atomic_store_n(&d->flags, htole16(wrap ? F_AVAIL | F_USED : 0), __ATOMIC_RELEASE);
	dev_advance(f, &f->d.used_pos, &f->d.used_wrap, skip);
}

static void dev_push(struct fix *f, const struct seen *s, uint32_t len)
{
	dev_push_raw(f, s->id, len, s->ndescs, f->d.used_wrap);
}

static void dev_set_area(struct fix *f, uint16_t flags, uint16_t off, bool wrap)
{
	f->device_event->off_wrap = htole16((uint16_t)(off | (wrap ? 0x8000 : 0)));
	f->device_event->flags = htole16(flags);
}

#define CHECK_DRV_BROKEN(f, reason)                                           \
	do {                                                                  \
		void *token_;                                                 \
		uint32_t len_;                                                \
		struct iovec in_ = part(&(f), 0, 8);                          \
		CHECK_EQ(uvirtio_drvq_get(&(f).q, &token_, &len_), -EIO);     \
		CHECK(uvirtio_drvq_is_broken(&(f).q));                        \
		CHECK_STR(uvirtio_drvq_broken_reason(&(f).q), reason);       \
		CHECK_EQ(uvirtio_drvq_add(&(f).q, NULL, 0, &in_, 1, &token_), -EIO); \
	} while (0)

static void test_packed_sizes_any_number_up_to_32768(void)
{
	struct fix f;

	CHECK_EQ(fix_init(&f, 0, 0, 0), -EINVAL);
	CHECK_EQ(fix_init(&f, 32769, 0, 0), -EINVAL);
	CHECK_EQ(fix_init(&f, 1, 0, 0), 0);
	fix_fini(&f);
	CHECK_EQ(fix_init(&f, 5, 0, 0), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 5);
	fix_fini(&f);
	CHECK_EQ(fix_init(&f, 32768, 0, 0), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 32768);
	fix_fini(&f);
}

static void test_packed_layout_ring_then_driver_then_device_area(void)
{
	struct fix f;

	CHECK_EQ(uvirtio_drvq_ring_bytes(5, PACKED), 5 * 16 + 8);
	CHECK_EQ(fix_init(&f, 5, 0, 0), 0);
	CHECK(uvirtio_drvq_is_packed(&f.q));
	CHECK_EQ(f.ring.desc % 16, 0);
	CHECK_EQ(f.ring.avail, f.ring.desc + 5 * 16);
	CHECK_EQ(f.ring.used, f.ring.avail + 4);
	fix_fini(&f);
}

static void test_packed_fresh_queue_indices_are_0x8000(void)
{
	struct fix f;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	CHECK_EQ(uvirtio_drvq_avail_index(&f.q), 0x8000);
	CHECK_EQ(uvirtio_drvq_used_index(&f.q), 0x8000);
	fix_fini(&f);
}

static void test_packed_add_and_get_round_trip_token_and_length(void)
{
	struct fix f;
	struct iovec out, in;
	struct seen s;
	void *token = NULL;
	uint32_t len = 0;
	int tok;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	out = part(&f, 0, 16);
	in = part(&f, 64, 100);
	CHECK_EQ(uvirtio_drvq_add(&f.q, &out, 1, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 6);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 0);

	CHECK_EQ(dev_pop(&f, &s), 1);
	CHECK_EQ(s.out_len, 16);
	CHECK_EQ(s.in_len, 100);
	CHECK_EQ(s.ndescs, 2);
	dev_push(&f, &s, 42);

	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK(token == &tok);
	CHECK_EQ(len, 42);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 8);
	CHECK_EQ(uvirtio_drvq_used_index(&f.q), 0x8000 | 2);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 0);
	fix_fini(&f);
}

/* The chain's descriptors in ring order, flags as the spec wants them, the
 * id in each, and the head made available last. */
static void test_packed_chain_flags_ids_and_avail_bits(void)
{
	struct fix f;
	struct iovec parts[3];
	int tok;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	for (unsigned i = 0; i < 3; i++)
		parts[i] = part(&f, 16 * i, 16);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, parts + 1, 2, &tok), 0);
	CHECK_EQ(le16toh(f.desc[0].flags), F_AVAIL | VRING_DESC_F_NEXT);
	CHECK_EQ(le16toh(f.desc[1].flags), F_AVAIL | VRING_DESC_F_NEXT | VRING_DESC_F_WRITE);
	CHECK_EQ(le16toh(f.desc[2].flags), F_AVAIL | VRING_DESC_F_WRITE);
	CHECK_EQ(le16toh(f.desc[3].flags), 0);
	for (unsigned i = 0; i < 3; i++) {
		uint64_t addr;

		CHECK_EQ(le16toh(f.desc[i].id), le16toh(f.desc[0].id));
		CHECK_EQ(uvirtio_dma_addr(&f.dma, parts[i].iov_base, 16, &addr), 0);
		CHECK_EQ(le64toh(f.desc[i].addr), addr);
		CHECK_EQ(le32toh(f.desc[i].len), 16);
	}
	CHECK_EQ(uvirtio_drvq_avail_index(&f.q), 0x8000 | 3);
	fix_fini(&f);
}

/* Around a ring of 5 many times, chains of 1 to 3 descriptors crossing the
 * end: the wrap counters flip on both sides and every buffer comes back. */
static void test_packed_wraps_odd_ring_several_times(void)
{
	struct fix f;
	struct iovec parts[3];
	unsigned laps_seen = 0;
	bool last_wrap = true;
	int toks[3];

	CHECK_EQ(fix_init(&f, 5, 0, 0), 0);
	for (unsigned i = 0; i < 3; i++)
		parts[i] = part(&f, 16 * i, 16);
	for (unsigned i = 0; i < 40; i++) {
		unsigned n = 1 + i % 3;
		struct seen s;
		void *token;
		uint32_t len;

		CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 0, parts, n, &toks[i % 3]), 0);
		CHECK_EQ(dev_pop(&f, &s), 1);
		CHECK_EQ(s.ndescs, n);
		CHECK_EQ(s.in_len, 16 * n);
		dev_push(&f, &s, (uint32_t)i % 16);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == &toks[i % 3]);
		CHECK_EQ(len, i % 16);
		CHECK_EQ(uvirtio_drvq_num_free(&f.q), 5);
		CHECK_EQ(uvirtio_drvq_avail_index(&f.q), uvirtio_drvq_used_index(&f.q));
		CHECK_EQ(uvirtio_drvq_avail_index(&f.q) & 0x7fff, f.d.avail_pos);
		CHECK_EQ(!!(uvirtio_drvq_avail_index(&f.q) & 0x8000), f.d.avail_wrap);
		if (f.d.avail_wrap != last_wrap)
			laps_seen++;
		last_wrap = f.d.avail_wrap;
	}
	/* 79 descriptors over a ring of 5: 15 wraps. */
	CHECK_EQ(laps_seen, 15);
	fix_fini(&f);
}

static void test_packed_out_of_order_completion(void)
{
	struct fix f;
	struct iovec in;
	struct seen s[3];
	int toks[3];
	void *token;
	uint32_t len;

	CHECK_EQ(fix_init(&f, 4, 0, 0), 0);
	in = part(&f, 0, 8);
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &toks[i]), 0);
		CHECK_EQ(dev_pop(&f, &s[i]), 1);
	}
	dev_push(&f, &s[2], 3);
	dev_push(&f, &s[0], 1);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK(token == &toks[2]);
	CHECK_EQ(len, 3);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK(token == &toks[0]);
	/* The freed ids serve new buffers while buffer 1 is still out. */
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &toks[0]), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &toks[2]), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &toks[2]), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &toks[2]), -ENOSPC);
	dev_push(&f, &s[1], 2);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK(token == &toks[1]);
	CHECK_EQ(len, 2);
	fix_fini(&f);
}

static void test_packed_num_free_counts_descriptors(void)
{
	struct fix f;
	struct iovec parts[3];
	int tok;

	CHECK_EQ(fix_init(&f, 5, 0, 0), 0);
	for (unsigned i = 0; i < 3; i++)
		parts[i] = part(&f, 16 * i, 16);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 3, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 2);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 3, NULL, 0, &tok), -ENOSPC);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 2, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, NULL, 0, &tok), -ENOSPC);
	fix_fini(&f);
}

static void test_packed_indirect_one_descriptor_with_table(void)
{
	struct fix f;
	struct iovec parts[3];
	struct seen s;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 4, INDIRECT, 8), 0);
	for (unsigned i = 0; i < 3; i++)
		parts[i] = part(&f, 16 * i, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, parts + 1, 2, &tok), 0);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 3);
	CHECK_EQ(le16toh(f.desc[0].flags), F_AVAIL | VRING_DESC_F_INDIRECT);
	CHECK_EQ(le32toh(f.desc[0].len), 3 * 16);
	CHECK_EQ(dev_pop(&f, &s), 1);
	CHECK(s.indirect);
	CHECK_EQ(s.nparts, 3);
	CHECK_EQ(s.out_len, 8);
	CHECK_EQ(s.in_len, 16);
	dev_push(&f, &s, 16);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK(token == &tok);
	CHECK_EQ(len, 16);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 4);
	/* Too many parts for a table and for the ring: -ENOMEM. */
	{
		struct iovec many[9];

		for (unsigned i = 0; i < 9; i++)
			many[i] = part(&f, 8 * i, 8);
		CHECK_EQ(uvirtio_drvq_add(&f.q, many, 9, NULL, 0, &tok), -ENOMEM);
	}
	fix_fini(&f);
}

static void test_packed_add_refuses_memory_the_device_cannot_reach(void)
{
	struct fix f;
	char outside[16];
	struct iovec parts[3];
	int tok;

	CHECK_EQ(fix_init(&f, 4, 0, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 8);
	parts[2] = (struct iovec){ .iov_base = outside, .iov_len = sizeof(outside) };
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 3, NULL, 0, &tok), -EFAULT);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 4);
	/* Nothing was written, the chain's second descriptor included: once
	 * a later one-part add makes position 0 available, a device moves on
	 * to position 1, which must not look available. */
	CHECK_EQ(le16toh(f.desc[0].flags), 0);
	CHECK_EQ(le16toh(f.desc[1].flags), 0);
	CHECK_EQ(uvirtio_drvq_avail_index(&f.q), 0x8000);
	fix_fini(&f);
}

static void test_packed_detach_unused_returns_every_token(void)
{
	struct fix f;
	struct iovec parts[2];
	int toks[3];
	bool back[3] = { false };
	void *t;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 8);
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, parts + 1, 1, &toks[i]), 0);
	while ((t = uvirtio_drvq_detach_unused(&f.q))) {
		unsigned i = (unsigned)((int *)t - toks);

		CHECK(i < 3 && !back[i]);
		back[i] = true;
	}
	CHECK(back[0] && back[1] && back[2]);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 8);
	fix_fini(&f);
}

/* spec, packed event suppression: the device area's flags ENABLE/DISABLE. */
static void test_packed_kick_prepare_honours_device_area_flags(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	in = part(&f, 0, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	dev_set_area(&f, VRING_PACKED_EVENT_FLAG_DISABLE, 0, false);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(!uvirtio_drvq_kick_prepare(&f.q));
	CHECK_EQ(uvirtio_drvq_kick(&f.q), 0);
	CHECK_EQ(f.notifies, 0);
	/* DESC without EVENT_IDX means nothing we can honour: notify. */
	dev_set_area(&f, VRING_PACKED_EVENT_FLAG_DESC, 7, true);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	dev_set_area(&f, VRING_PACKED_EVENT_FLAG_ENABLE, 0, false);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_kick(&f.q), 0);
	CHECK_EQ(f.notifies, 1);
	fix_fini(&f);
}

/* With EVENT_IDX the device names the descriptor (offset and wrap counter)
 * whose making available it wants to hear of; the window crosses a wrap. */
static void test_packed_kick_prepare_honours_event_offset_across_wrap(void)
{
	struct fix f;
	struct iovec in;
	struct seen s;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 5, EVENT_IDX, 0), 0);
	in = part(&f, 0, 8);
	/* Move both sides to position 3 of the first lap. */
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
		CHECK_EQ(dev_pop(&f, &s), 1);
		dev_push(&f, &s, 0);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	}
	(void)uvirtio_drvq_kick_prepare(&f.q);

	/* Wants to hear when position 0 of the next lap (wrap 0) is made
	 * available: adding 3 and 4 does not reach it. */
	dev_set_area(&f, VRING_PACKED_EVENT_FLAG_DESC, 0, false);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(!uvirtio_drvq_kick_prepare(&f.q));
	CHECK_EQ(uvirtio_drvq_avail_index(&f.q), 0); /* position 0, wrap 0 */
	/* Adding at 0 (wrap 0) crosses it. */
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	/* An event in the previous lap (wrap 1, offset 4) already passed: a
	 * batch at 1 does not cross it. */
	dev_set_area(&f, VRING_PACKED_EVENT_FLAG_DESC, 4, true);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(!uvirtio_drvq_kick_prepare(&f.q));
	/* One at the very position we add next: crossed. */
	dev_set_area(&f, VRING_PACKED_EVENT_FLAG_DESC, 2, false);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 1);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_kick_prepare(&f.q));
	fix_fini(&f);
}

/* spec, packed event suppression: the driver area's flags and off_wrap. */
static void test_packed_disable_and_enable_cb_write_driver_area(void)
{
	struct fix f;

	CHECK_EQ(fix_init(&f, 8, 0, 0), 0);
	uvirtio_drvq_disable_cb(&f.q);
	CHECK_EQ(le16toh(f.driver_event->flags), VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(uvirtio_drvq_enable_cb(&f.q));
	CHECK_EQ(le16toh(f.driver_event->flags), VRING_PACKED_EVENT_FLAG_ENABLE);
	fix_fini(&f);

	CHECK_EQ(fix_init(&f, 8, EVENT_IDX, 0), 0);
	uvirtio_drvq_disable_cb(&f.q);
	CHECK_EQ(le16toh(f.driver_event->flags), VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(uvirtio_drvq_enable_cb(&f.q));
	CHECK_EQ(le16toh(f.driver_event->flags), VRING_PACKED_EVENT_FLAG_DESC);
	CHECK_EQ(le16toh(f.driver_event->off_wrap), 0x8000);
	fix_fini(&f);
}

static void test_packed_enable_cb_returns_false_when_used_buffers_pending(void)
{
	struct fix f;
	struct iovec in;
	struct seen s;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 8, EVENT_IDX, 0), 0);
	in = part(&f, 0, 8);
	uvirtio_drvq_disable_cb(&f.q);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(dev_pop(&f, &s), 1);
	dev_push(&f, &s, 0);
	CHECK(!uvirtio_drvq_enable_cb(&f.q));
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	/* get moves the event along with callbacks on. */
	CHECK_EQ(le16toh(f.driver_event->off_wrap), 0x8000 | 1);
	CHECK(uvirtio_drvq_enable_cb(&f.q));
	fix_fini(&f);
}

static void test_packed_enable_cb_delayed_asks_at_three_quarters(void)
{
	struct fix f;
	struct iovec in;
	struct seen s;
	int tok;

	CHECK_EQ(fix_init(&f, 6, EVENT_IDX, 0), 0);
	in = part(&f, 0, 8);
	/* Two laps' position 4: 4 in flight from position 2, 3/4 is 3. */
	for (unsigned i = 0; i < 2; i++) {
		void *token;
		uint32_t len;

		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
		CHECK_EQ(dev_pop(&f, &s), 1);
		dev_push(&f, &s, 0);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	}
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK(uvirtio_drvq_enable_cb_delayed(&f.q));
	CHECK_EQ(le16toh(f.driver_event->flags), VRING_PACKED_EVENT_FLAG_DESC);
	CHECK_EQ(le16toh(f.driver_event->off_wrap), 0x8000 | 5);
	/* Used up to there already: false. */
	for (unsigned i = 0; i < 4; i++) {
		CHECK_EQ(dev_pop(&f, &s), 1);
		dev_push(&f, &s, 0);
	}
	CHECK(!uvirtio_drvq_enable_cb_delayed(&f.q));
	fix_fini(&f);
}

/* NOTIFICATION_DATA, packed: queue index in 0-15, next offset in 16-30,
 * wrap counter in 31. */
static void test_packed_notification_data_offset_and_wrap(void)
{
	struct fix f;
	struct iovec in;
	struct seen s;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init(&f, 3, UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA), 0), 0);
	CHECK((uvirtio_drvq_features(&f.q) & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)));
	drvq_test_set_index(&f.q, 7);
	in = part(&f, 0, 8);
	CHECK_EQ(uvirtio_drvq_notification_data(&f.q), 0x80000007u);
	for (unsigned i = 1; i <= 7; i++) {
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
		/* Position i mod 3, wrap counter flips every 3 (from 1). */
		CHECK_EQ(uvirtio_drvq_notification_data(&f.q),
			 ((uint32_t)(i % 3) << 16) | ((i / 3) % 2 ? 0 : 0x80000000u) | 7);
		CHECK_EQ(dev_pop(&f, &s), 1);
		dev_push(&f, &s, 0);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	}
	fix_fini(&f);
}

/* A used descriptor from the previous lap, or one whose AVAIL and USED bits
 * differ, is not used yet: get() reports nothing and nothing breaks. */
static void test_packed_used_flags_with_wrong_wrap_not_seen_yet(void)
{
	struct fix f;
	struct iovec in;
	struct seen s;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init_one_added(&f, &in, &tok), 0);
	CHECK_EQ(dev_pop(&f, &s), 1);
	dev_push_raw(&f, s.id, 0, 0, false); /* both bits 0: wrap 0 */
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 0);
	f.desc[0].flags = htole16(F_USED); /* USED only */
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 0);
	CHECK(!uvirtio_drvq_is_broken(&f.q));
	dev_push_raw(&f, s.id, 0, 1, true);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	fix_fini(&f);
}

static void test_packed_breaks_on_used_id_out_of_range(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init_one_added(&f, &in, &tok), 0);
	dev_push_raw(&f, 4, 0, 1, true);
	CHECK_DRV_BROKEN(f, "used id out of range");
	fix_fini(&f);
}

static void test_packed_breaks_on_used_id_not_in_flight(void)
{
	struct fix f;
	struct iovec in;
	int tok;

	CHECK_EQ(fix_init_one_added(&f, &in, &tok), 0);
	dev_push_raw(&f, 2, 0, 1, true);
	CHECK_DRV_BROKEN(f, "used id not in flight");
	fix_fini(&f);
}

static void test_packed_breaks_on_used_id_returned_twice(void)
{
	struct fix f;
	struct iovec in;
	struct seen s;
	void *token;
	uint32_t len;
	int tok;

	CHECK_EQ(fix_init_one_added(&f, &in, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, &in, 1, &tok), 0);
	CHECK_EQ(dev_pop(&f, &s), 1);
	dev_push(&f, &s, 0);
	dev_push(&f, &s, 0);
	CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
	CHECK_DRV_BROKEN(f, "used id not in flight");
	fix_fini(&f);
}

static void test_packed_breaks_on_used_length_larger_than_buffer(void)
{
	struct fix f;
	struct iovec out, in;
	struct seen s;
	int tok;

	CHECK_EQ(fix_init(&f, 4, 0, 0), 0);
	out = part(&f, 0, 100);
	in = part(&f, 100, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, &out, 1, &in, 1, &tok), 0);
	CHECK_EQ(dev_pop(&f, &s), 1);
	/* Only the writable part counts: 9 > 8 even though out had 100. */
	dev_push(&f, &s, 9);
	CHECK_DRV_BROKEN(f, "used length larger than the buffer");
	fix_fini(&f);
}

/* IN_ORDER: ids are the heads' positions, in ring order. */
static void test_packed_in_order_ids_follow_ring_positions(void)
{
	struct fix f;
	struct iovec parts[2];
	struct seen s;
	int tok;

	CHECK_EQ(fix_init(&f, 5, IN_ORDER, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 2, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 1, NULL, 0, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, parts, 2, NULL, 0, &tok), 0);
	CHECK_EQ(dev_pop(&f, &s), 1);
	CHECK_EQ(s.id, 0);
	CHECK_EQ(dev_pop(&f, &s), 1);
	CHECK_EQ(s.id, 2);
	CHECK_EQ(dev_pop(&f, &s), 1);
	CHECK_EQ(s.id, 3);
	fix_fini(&f);
}

/* IN_ORDER: one used descriptor at the batch's first position, with the
 * last buffer's id, skipping the batch's descriptors, completes the whole
 * batch in order; buffers without an entry report their writable length.
 * Twice round a ring of 5, so batches cross the end. */
static void test_packed_in_order_batch_completes_every_buffer_up_to_id(void)
{
	struct fix f;
	struct iovec parts[2];
	int toks[3];

	CHECK_EQ(fix_init(&f, 5, IN_ORDER, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 16);
	for (unsigned round = 0; round < 4; round++) {
		struct seen s[3];
		unsigned descs = 0;
		void *token;
		uint32_t len;

		/* 1 + 2 + 1 descriptors. */
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 1, &toks[0]), 0);
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 2, &toks[1]), 0);
		CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts + 1, 1, &toks[2]), 0);
		for (unsigned i = 0; i < 3; i++) {
			CHECK_EQ(dev_pop(&f, &s[i]), 1);
			descs += s[i].ndescs;
		}
		dev_push_raw(&f, s[2].id, 5, descs, f.d.used_wrap);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == &toks[0]);
		CHECK_EQ(len, 8);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == &toks[1]);
		CHECK_EQ(len, 24);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 1);
		CHECK(token == &toks[2]);
		CHECK_EQ(len, 5);
		CHECK_EQ(uvirtio_drvq_get(&f.q, &token, &len), 0);
		CHECK_EQ(uvirtio_drvq_num_free(&f.q), 5);
		CHECK_EQ(uvirtio_drvq_used_index(&f.q), uvirtio_drvq_avail_index(&f.q));
	}
	fix_fini(&f);
}

/* IN_ORDER: an id inside a chain (not a buffer's head) is not in flight. */
static void test_packed_in_order_breaks_on_used_id_not_in_flight(void)
{
	struct fix f;
	struct iovec parts[2];
	int tok;

	CHECK_EQ(fix_init(&f, 5, IN_ORDER, 0), 0);
	parts[0] = part(&f, 0, 8);
	parts[1] = part(&f, 8, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 2, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 1, &tok), 0);
	dev_push_raw(&f, 1, 0, 3, true);
	CHECK_DRV_BROKEN(f, "used id not in flight");
	fix_fini(&f);
}

/* IN_ORDER: the batch's last length is checked against its own buffer. */
static void test_packed_in_order_breaks_on_used_length_larger_than_buffer(void)
{
	struct fix f;
	struct iovec parts[2];
	int tok;

	CHECK_EQ(fix_init(&f, 5, IN_ORDER, 0), 0);
	parts[0] = part(&f, 0, 64);
	parts[1] = part(&f, 64, 8);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts, 1, &tok), 0);
	CHECK_EQ(uvirtio_drvq_add(&f.q, NULL, 0, parts + 1, 1, &tok), 0);
	dev_push_raw(&f, 1, 9, 2, true);
	CHECK_DRV_BROKEN(f, "used length larger than the buffer");
	fix_fini(&f);
}

static void test_packed_in_order_detach_unused_returns_every_token(void)
{
	struct fix f;
	struct iovec in;
	int toks[4];

	CHECK_EQ(fix_init(&f, 5, IN_ORDER, 0), 0);
	in = part(&f, 0, 8);
	/* Every token back, in the order added. */
	CHECK_EQ(drvq_add_then_detach_all(&f.q, &in, toks, 4), 4);
	CHECK_EQ(uvirtio_drvq_num_free(&f.q), 5);
	fix_fini(&f);
}

TEST_MAIN(T(test_packed_sizes_any_number_up_to_32768),
	  T(test_packed_layout_ring_then_driver_then_device_area),
	  T(test_packed_fresh_queue_indices_are_0x8000),
	  T(test_packed_add_and_get_round_trip_token_and_length),
	  T(test_packed_chain_flags_ids_and_avail_bits),
	  T(test_packed_wraps_odd_ring_several_times),
	  T(test_packed_out_of_order_completion),
	  T(test_packed_num_free_counts_descriptors),
	  T(test_packed_indirect_one_descriptor_with_table),
	  T(test_packed_add_refuses_memory_the_device_cannot_reach),
	  T(test_packed_detach_unused_returns_every_token),
	  T(test_packed_kick_prepare_honours_device_area_flags),
	  T(test_packed_kick_prepare_honours_event_offset_across_wrap),
	  T(test_packed_disable_and_enable_cb_write_driver_area),
	  T(test_packed_enable_cb_returns_false_when_used_buffers_pending),
	  T(test_packed_enable_cb_delayed_asks_at_three_quarters),
	  T(test_packed_notification_data_offset_and_wrap),
	  T(test_packed_used_flags_with_wrong_wrap_not_seen_yet),
	  T(test_packed_breaks_on_used_id_out_of_range),
	  T(test_packed_breaks_on_used_id_not_in_flight),
	  T(test_packed_breaks_on_used_id_returned_twice),
	  T(test_packed_breaks_on_used_length_larger_than_buffer),
	  T(test_packed_in_order_ids_follow_ring_positions),
	  T(test_packed_in_order_batch_completes_every_buffer_up_to_id),
	  T(test_packed_in_order_breaks_on_used_id_not_in_flight),
	  T(test_packed_in_order_breaks_on_used_length_larger_than_buffer),
	  T(test_packed_in_order_detach_unused_returns_every_token))
