/* SPDX-License-Identifier: MIT */
/*
 * Accessors for memory shared with the peer. The rings are little-endian (the
 * spec, VERSION_1) and written concurrently by the other side, so every access
 * is a single atomic load or store of the field's width: the compiler may not
 * split, merge, or repeat it. Ordering is explicit at each call site.
 */
#ifndef UVIRTIO_RING_ACCESS_H
#define UVIRTIO_RING_ACCESS_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/virtio_ring.h>

#ifdef UVIRTIO_RING_READ_HOOK
/*
 * Test builds only (tests/unit/test_ring_fetch.c compiles the ring sources
 * with this defined): every read of shared memory goes through one function
 * the test defines, which counts the reads of each field and changes a field
 * in memory after its first read, so a second fetch is seen.
 */
void uvirtio_test_ring_read(void *dst, const void *src, size_t n);

static inline uint16_t ring_hooked16(const void *p)
{
	uint16_t v;

	uvirtio_test_ring_read(&v, p, sizeof(v));
	return v;
}

static inline uint32_t ring_hooked32(const void *p)
{
	uint32_t v;

	uvirtio_test_ring_read(&v, p, sizeof(v));
	return v;
}

#define ring_load16(p) le16toh(ring_hooked16(p))
#define ring_load16_acquire(p) le16toh(ring_hooked16(p))
#define ring_load32(p) le32toh(ring_hooked32(p))
#define ring_copy(dst, src, n) uvirtio_test_ring_read((dst), (src), (n))
#else
#define ring_load16(p) le16toh(__atomic_load_n((uint16_t *)(p), __ATOMIC_RELAXED))
#define ring_load16_acquire(p) le16toh(__atomic_load_n((uint16_t *)(p), __ATOMIC_ACQUIRE))
#define ring_load32(p) le32toh(__atomic_load_n((uint32_t *)(p), __ATOMIC_RELAXED))
/* A plain copy out of shared memory, for descriptors (see desc_read_once). */
#define ring_copy(dst, src, n) memcpy((dst), (src), (n))
#endif
#define ring_store16(p, v) __atomic_store_n((uint16_t *)(p), htole16(v), __ATOMIC_RELAXED)
#define ring_store16_release(p, v) __atomic_store_n((uint16_t *)(p), htole16(v), __ATOMIC_RELEASE)
#define ring_store32(p, v) __atomic_store_n((uint32_t *)(p), htole32(v), __ATOMIC_RELAXED)

/* A full barrier: orders our earlier stores before our later loads, which
 * acquire/release cannot do. Used where each side writes one location and
 * then reads the other's (event index, notification flags). */
static inline void ring_mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Stops the compiler from assuming shared memory is unchanged across it. */
static inline void compiler_barrier(void)
{
	__asm__ __volatile__("" ::: "memory");
}

/* A descriptor as one local copy, in host byte order. */
struct desc_copy {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Read a descriptor exactly once. The compiler barrier after the copy means
 * the checks below it can only see the local copy: the driver may rewrite the
 * table at any moment, and a second read could differ from the checked one.
 * memcpy copes with indirect tables at any alignment. */
static inline struct desc_copy desc_read_once(const struct vring_desc *shared)
{
	struct vring_desc raw;
	struct desc_copy d;

	ring_copy(&raw, (const void *)shared, sizeof(raw));
	compiler_barrier();
	d.addr = le64toh(raw.addr);
	d.len = le32toh(raw.len);
	d.flags = le16toh(raw.flags);
	d.next = le16toh(raw.next);
	return d;
}

/* A packed-ring descriptor as one local copy, in host byte order. */
struct pdesc_copy {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

/* Read a packed descriptor exactly once, for the same reason as
 * desc_read_once(): every check then sees one consistent copy. */
static inline struct pdesc_copy pdesc_read_once(const struct vring_packed_desc *shared)
{
	struct vring_packed_desc raw;
	struct pdesc_copy d;

	ring_copy(&raw, (const void *)shared, sizeof(raw));
	compiler_barrier();
	d.addr = le64toh(raw.addr);
	d.len = le32toh(raw.len);
	d.id = le16toh(raw.id);
	d.flags = le16toh(raw.flags);
	return d;
}

/* The first descriptor of a packed chain, whose @flags the caller has
 * already loaded (with acquire, to see the rest): the other fields are
 * read once here and the flags not again, so every check sees the one value
 * that made the descriptor available. */
static inline struct pdesc_copy pdesc_read_once_but_flags(const struct vring_packed_desc *shared,
							   uint16_t flags)
{
	struct vring_packed_desc raw;
	struct pdesc_copy d;

	ring_copy(&raw, (const void *)shared, offsetof(struct vring_packed_desc, flags));
	compiler_barrier();
	d.addr = le64toh(raw.addr);
	d.len = le32toh(raw.len);
	d.id = le16toh(raw.id);
	d.flags = flags;
	return d;
}

/* Packed ring: whether @flags mark a descriptor available in the lap whose
 * wrap counter is @wrap (AVAIL equal to it, USED its inverse). */
static inline int pdesc_is_avail(uint16_t flags, int wrap)
{
	int avail = !!(flags & (1u << VRING_PACKED_DESC_F_AVAIL));
	int used = !!(flags & (1u << VRING_PACKED_DESC_F_USED));

	return avail == !!wrap && used != !!wrap;
}

/* Packed ring: whether @flags mark a descriptor used in the lap whose wrap
 * counter is @wrap (AVAIL and USED both equal to it). */
static inline int pdesc_is_used(uint16_t flags, int wrap)
{
	int avail = !!(flags & (1u << VRING_PACKED_DESC_F_AVAIL));
	int used = !!(flags & (1u << VRING_PACKED_DESC_F_USED));

	return avail == !!wrap && used == !!wrap;
}

/* Packed ring: an index and its wrap counter in one 16-bit value, bits 0-14
 * the index and bit 15 the counter (vhost-user's and QEMU's encoding). */
#define PACKED_WRAP_BIT 0x8000u
#define packed_idx(v) ((uint16_t)((v) & 0x7fffu))
#define packed_wrap(v) (((v) & PACKED_WRAP_BIT) != 0)
#define packed_encode(idx, wrap) ((uint16_t)((idx) | ((wrap) ? PACKED_WRAP_BIT : 0)))

#endif
