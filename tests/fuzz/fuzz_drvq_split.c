// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the driver side of a split ring (src/ring/split_drv.c)
 * against whatever a hostile device can write into shared memory.
 *
 * Input layout: as fuzz_drvq_harness.h describes, with the queue size byte
 * read as log2 (0..8, so 1..256); OP_POKE_USED takes u8 slot, u32 id,
 * u32 len (a hostile used entry), OP_POKE_DEVICE_AREA a u16 (a hostile
 * used->idx).
 *
 * The device is played two ways. An honest one is this library's own device
 * side (uvirtio_devq) on the same ring: as long as only it has written the
 * ring, the driver must hand back exactly the buffers it completed, in
 * order, with their lengths, and the device side must accept every chain
 * the driver wrote. A hostile one pokes the used ring, its index, or any
 * byte of shared memory; from the first poke on only the safety rules are
 * checked: a token comes back only if it was added and not yet returned,
 * never with more than its writable length, the free count adds up, and a
 * broken queue stays broken.
 */
#include "fuzz_drvq_harness.h"

static unsigned drvq_fuzz_num(uint8_t byte)
{
	return 1u << (byte % 9);
}

static uint64_t drvq_fuzz_layout_features(void)
{
	return 0;
}

static void drvq_fuzz_check_indices(const struct uvirtio_drvq *q)
{
	/* Each buffer in flight is one avail entry the driver has not had back. */
	FUZZ_CHECK((uint16_t)(DRVQ(q)->avail_idx - DRVQ(q)->last_used) == st.in_flight);
}

static void drvq_fuzz_check_after_get(const struct uvirtio_drvq *q)
{
	/* With EVENT_IDX and callbacks on, used_event follows the next entry. */
	if (DRVQ(q)->event_idx && st.cb_enabled)
		FUZZ_CHECK(load16(&DRVQ(q)->avail->ring[DRVQ(q)->num]) == DRVQ(q)->last_used);
}

/* One avail entry per buffer, whatever its descriptors. */
static uint16_t drvq_fuzz_kick_units(const struct tok *t)
{
	(void)t;
	return 1;
}

static bool drvq_fuzz_kick_expected(const struct uvirtio_drvq *q, uint16_t added_since_kick)
{
	uint16_t new = DRVQ(q)->avail_idx, old = (uint16_t)(new - added_since_kick);

	/* spec: with EVENT_IDX notify when avail_event lies in [old, new),
	 * else unless the device set NO_NOTIFY. */
	if (DRVQ(q)->event_idx)
		return vring_need_event(load16(&DRVQ(q)->used->ring[DRVQ(q)->num]), new, old);
	return !(load16(&DRVQ(q)->used->flags) & VRING_USED_F_NO_NOTIFY);
}

static void drvq_fuzz_layout_op(struct uvirtio_drvq *q, enum op op, struct fuzz_in *in)
{
	switch (op) {
	case OP_POKE_USED: {
		uint8_t slot = in_u8(in);
		uint32_t id = in_u32(in), len = in_u32(in);

		store32(&DRVQ(q)->used->ring[slot & (DRVQ(q)->num - 1)].id, id);
		store32(&DRVQ(q)->used->ring[slot & (DRVQ(q)->num - 1)].len, len);
		st.dirty = true;
		break;
	}
	case OP_POKE_DEVICE_AREA:
		store16(&DRVQ(q)->used->idx, in_u16(in));
		st.dirty = true;
		break;
	case OP_ENABLE_CB: {
		uint16_t last_used = DRVQ(q)->last_used;
		bool was = st.cb_enabled, got = uvirtio_drvq_enable_cb(q);

		st.cb_enabled = true;
		/* False exactly when used buffers are pending, so the caller
		 * collects them instead of sleeping through them. */
		FUZZ_CHECK(got == (load16(&DRVQ(q)->used->idx) == last_used));
		if (DRVQ(q)->event_idx)
			FUZZ_CHECK(load16(&DRVQ(q)->avail->ring[DRVQ(q)->num]) == last_used);
		else if (!was || !st.dirty)
			/* The flag is rewritten only when it changes: a device
			 * that scribbled on it meanwhile keeps its scribble. */
			FUZZ_CHECK(!(load16(&DRVQ(q)->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT));
		break;
	}
	case OP_ENABLE_CB_DELAYED: {
		uint16_t last_used = DRVQ(q)->last_used;
		uint16_t bufs = (uint16_t)((uint16_t)(DRVQ(q)->avail_idx - last_used) * 3 / 4);
		bool got = uvirtio_drvq_enable_cb_delayed(q);

		st.cb_enabled = true;
		if (!DRVQ(q)->event_idx)
			bufs = 0;
		FUZZ_CHECK(got == ((uint16_t)(load16(&DRVQ(q)->used->idx) - last_used) <= bufs));
		if (DRVQ(q)->event_idx)
			FUZZ_CHECK(load16(&DRVQ(q)->avail->ring[DRVQ(q)->num]) == (uint16_t)(last_used + bufs));
		break;
	}
	case OP_DISABLE_CB: {
		bool was = st.cb_enabled;

		uvirtio_drvq_disable_cb(q);
		st.cb_enabled = false;
		if (was && DRVQ(q)->event_idx)
			FUZZ_CHECK(load16(&DRVQ(q)->avail->ring[DRVQ(q)->num]) == (uint16_t)(DRVQ(q)->last_used - 1));
		else if (was)
			FUZZ_CHECK(load16(&DRVQ(q)->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
		break;
	}
	default:
		break;
	}
}
