// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the driver side of a packed ring (src/ring/packed_drv.c)
 * against whatever a hostile device can write into shared memory.
 *
 * Input layout: as fuzz_drvq_harness.h describes, with the queue size byte
 * read as size - 1 (mod 128: any size 1..128, odd ones too); OP_POKE_USED
 * takes u8 where, u16 id, u16 flags, u32 len (a hostile used descriptor),
 * OP_POKE_DEVICE_AREA a u32 (the device event's off_wrap and flags).
 *
 * As in fuzz_drvq_split, the device is played two ways: this library's
 * device side (uvirtio_devq, packed) as the honest one, whose completions
 * the driver must hand back exactly, in order, with their lengths; and a
 * hostile one that writes used descriptors (any id, length, flags, at any
 * position), the device area, or any byte of the ring. From the first
 * hostile write on only the safety rules are checked: a token comes back
 * only if it was added and not yet returned, never with more than its
 * writable length, no get loop runs longer than the buffers in flight, the
 * free count adds up, and a broken queue stays broken.
 */
#include "fuzz_drvq_harness.h"

#define NUM_LIMIT 128
#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)

static unsigned drvq_fuzz_num(uint8_t byte)
{
	return 1u + byte % NUM_LIMIT;
}

static uint64_t drvq_fuzz_layout_features(void)
{
	return UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
}

/* A position and its wrap counter as one count over two laps (both
 * counters start at 1, so lap 1 is the first). */
static unsigned lin(const struct uvirtio_drvq *q, uint16_t pos, bool wrap)
{
	return pos + (wrap ? 0u : DRVQ(q)->num);
}

static bool is_used(uint16_t flags, bool wrap)
{
	return !!(flags & F_AVAIL) == !!(flags & F_USED) && !!(flags & F_USED) == wrap;
}

static void drvq_fuzz_check_indices(const struct uvirtio_drvq *q)
{
	/* The descriptors in flight lie between the next used and the next
	 * available position (counted over two laps, by the wrap counters). */
	FUZZ_CHECK(DRVQ(q)->next_avail < DRVQ(q)->num && DRVQ(q)->last_used < DRVQ(q)->num);
	FUZZ_CHECK((lin(q, DRVQ(q)->next_avail, DRVQ(q)->avail_wrap) + 2u * DRVQ(q)->num -
		    lin(q, DRVQ(q)->last_used, DRVQ(q)->used_wrap)) % (2u * DRVQ(q)->num) == st.held_descs % (2u * DRVQ(q)->num));
}

static void drvq_fuzz_check_after_get(const struct uvirtio_drvq *q)
{
	/* With callbacks on at a descriptor (EVENT_IDX, after enable_cb;
	 * a fresh queue starts at ENABLE), off_wrap follows the next used
	 * descriptor. */
	if (DRVQ(q)->event_flags == VRING_PACKED_EVENT_FLAG_DESC && st.cb_enabled && !st.dirty)
		FUZZ_CHECK(load16(&DRVQ(q)->driver_event->off_wrap) == uvirtio_drvq_used_index(q));
}

/* The kick compares descriptor positions: a buffer moves it by each one. */
static uint16_t drvq_fuzz_kick_units(const struct tok *t)
{
	return (uint16_t)t->ndescs;
}

static bool drvq_fuzz_kick_expected(const struct uvirtio_drvq *q, uint16_t added_since_kick)
{
	uint16_t new = DRVQ(q)->next_avail, old = (uint16_t)(new - added_since_kick);
	uint16_t off_wrap = load16(&DRVQ(q)->device_event->off_wrap), flags = load16(&DRVQ(q)->device_event->flags);
	uint16_t ev = off_wrap & 0x7fff;

	/* spec, packed event suppression: DESC with EVENT_IDX names the
	 * descriptor (offset, wrap counter) to notify for; otherwise notify
	 * unless DISABLE. */
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !DRVQ(q)->event_idx)
		return flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	if (added_since_kick >= DRVQ(q)->num)
		return true;
	if (!!(off_wrap & 0x8000) != DRVQ(q)->avail_wrap)
		ev = (uint16_t)(ev - DRVQ(q)->num);
	return vring_need_event(ev, new, old);
}

static void drvq_fuzz_layout_op(struct uvirtio_drvq *q, enum op op, struct fuzz_in *in)
{
	switch (op) {
	case OP_POKE_USED: {
		uint8_t where = in_u8(in);
		uint16_t id = in_u16(in), flags = in_u16(in);
		uint32_t len = in_u32(in);
		/* Mostly just ahead of the driver, where it looks next. */
		unsigned pos = (where & 0x80) ? where % DRVQ(q)->num : (DRVQ(q)->last_used + where % 4u) % DRVQ(q)->num;
		struct vring_packed_desc *d = &DRVQ(q)->packed_desc[pos];

		/* Bit 0 of @where: a well-formed used descriptor for the
		 * current lap; otherwise whatever flags the input gives. */
		if (where & 1)
			flags = (uint16_t)((flags & ~(F_AVAIL | F_USED)) |
					   (DRVQ(q)->used_wrap ? F_AVAIL | F_USED : 0));
		store16(&d->id, id);
		store32(&d->len, len);
		store16(&d->flags, flags);
		st.dirty = true;
		break;
	}
	case OP_POKE_DEVICE_AREA:
		store32(DRVQ(q)->device_event, in_u32(in));
		st.dirty = true;
		break;
	case OP_ENABLE_CB: {
		bool was_batch = DRVQ(q)->batch_pending, got = uvirtio_drvq_enable_cb(q);

		st.cb_enabled = true;
		/* False exactly when a used buffer is pending, so the caller
		 * collects it instead of sleeping through it. */
		FUZZ_CHECK(got == !(was_batch ||
				    is_used(load16(&DRVQ(q)->packed_desc[DRVQ(q)->last_used].flags), DRVQ(q)->used_wrap)));
		if (!st.dirty) {
			if (DRVQ(q)->event_idx)
				FUZZ_CHECK(load16(&DRVQ(q)->driver_event->off_wrap) == uvirtio_drvq_used_index(q));
			FUZZ_CHECK(load16(&DRVQ(q)->driver_event->flags) ==
				   (DRVQ(q)->event_idx ? VRING_PACKED_EVENT_FLAG_DESC : VRING_PACKED_EVENT_FLAG_ENABLE));
		}
		break;
	}
	case OP_ENABLE_CB_DELAYED: {
		unsigned bufs = DRVQ(q)->event_idx ? st.held_descs * 3 / 4 : 0;
		unsigned pos = DRVQ(q)->last_used + bufs;
		bool wrap = DRVQ(q)->used_wrap, was_batch = DRVQ(q)->batch_pending;
		bool got = uvirtio_drvq_enable_cb_delayed(q);

		if (pos >= DRVQ(q)->num) {
			pos -= DRVQ(q)->num;
			wrap = !wrap;
		}
		st.cb_enabled = true;
		FUZZ_CHECK(got == !(was_batch || is_used(load16(&DRVQ(q)->packed_desc[pos].flags), wrap)));
		if (DRVQ(q)->event_idx && !st.dirty)
			FUZZ_CHECK(load16(&DRVQ(q)->driver_event->off_wrap) == (uint16_t)(pos | (wrap ? 0x8000u : 0)));
		break;
	}
	case OP_DISABLE_CB:
		uvirtio_drvq_disable_cb(q);
		st.cb_enabled = false;
		if (!st.dirty)
			FUZZ_CHECK(load16(&DRVQ(q)->driver_event->flags) == VRING_PACKED_EVENT_FLAG_DISABLE);
		break;
	default:
		break;
	}
}
