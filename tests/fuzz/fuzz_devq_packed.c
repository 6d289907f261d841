// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the device side of a packed ring (src/ring/packed_dev.c,
 * src/ring/devq.c) against whatever a hostile driver can put in guest memory.
 *
 * Input layout (tests/fuzz/make_seeds.py writes the same):
 *
 *   u8  queue size (0 and anything the ring part does not fit are refused)
 *   u8  flags: 0x01 INDIRECT_DESC, 0x02 EVENT_IDX, 0x04 the device writes
 *       into the writable buffers it pops, 0x08 resume at the indices below,
 *       0x10 IN_ORDER, 0x20 NOTIFICATION_DATA
 *   u8  iovec capacity - 1 (mod 64)
 *   u8  memory regions - 1 (mod 4)
 *   4 x { u64 guest address, u16 size, u16 host offset }
 *   3 x { u8 region, u16 offset }: descriptor ring, driver area, device area;
 *       region bit 7 keeps the offset as is, else it is aligned as the spec asks
 *   u16 next avail index, u16 used index (encoded: bit 15 the wrap counter)
 *   u8  operation count, then that many { u8 operation, u16 argument }
 *   the rest: the bytes of the host buffer the regions map, from its start
 *
 * Invariants: no iovec outside guest memory (ASan catches reads outside); a
 * handle is < num and never handed out twice while in flight; the
 * descriptors between the used index and the next avail index are exactly
 * those of the requests not yet published, never more than num; a push
 * publishes a used descriptor marked with the device's wrap counter; a
 * broken queue stays broken and never writes guest memory again.
 */
#include "fuzz_devq_harness.h"

enum op {
	OP_POP_PUSH,      /* pop, push back at once with the argument as length */
	OP_POP_HOLD,      /* pop, keep it in flight */
	OP_PUSH_HELD,     /* push everything held as one batch (odd arg: reversed) */
	OP_NEEDS_NOTIFY,
	OP_ENABLE_NOTIFY,
	OP_DISABLE_NOTIFY,
	OP_PUSH_BAD_ID,   /* a handle outside the queue or not in flight */
	OP_POP_PUSH_FULL, /* pop, push back with the whole writable length */
	OP_STOP,
	OP_NOTE,          /* notification data with the argument as bits 16-31 */
	OP_HAS_AVAIL,
	OP_COUNT
};

static bool handle_out[NUM_MAX]; /* popped and not pushed, by handle */
static bool was_broken;

/* An encoded index as a distance along two laps (wrap 1 first). */
static uint32_t lap(const struct uvirtio_devq *q, uint16_t v)
{
	return (v & 0x7fffu) + ((v & 0x8000u) ? 0u : DEVQ(q)->num);
}

/* Descriptors from the used index to the next avail index. */
static uint32_t ring_distance(const struct uvirtio_devq *q)
{
	uint32_t laps = 2u * DEVQ(q)->num;

	return (lap(q, uvirtio_devq_next_avail(q)) + laps - lap(q, uvirtio_devq_used_index(q))) % laps;
}

static void check_state(const struct uvirtio_devq *q)
{
	if (was_broken)
		FUZZ_CHECK(DEVQ(q)->broken);
	if (DEVQ(q)->broken) {
		FUZZ_CHECK(broken_calls == 1);
		FUZZ_CHECK(DEVQ(q)->broken_reason != NULL);
		FUZZ_CHECK(!DEVQ(q)->ready);
		was_broken = true;
	} else {
		FUZZ_CHECK(broken_calls == 0);
	}
	if (DEVQ(q)->ready) {
		/* Indices stay inside the ring, and between them lie exactly the
		 * descriptors of requests not yet published: at most num. */
		FUZZ_CHECK((uvirtio_devq_next_avail(q) & 0x7fff) < DEVQ(q)->num);
		FUZZ_CHECK((uvirtio_devq_used_index(q) & 0x7fff) < DEVQ(q)->num);
		FUZZ_CHECK(DEVQ(q)->inflight_desc <= DEVQ(q)->num);
		FUZZ_CHECK(ring_distance(q) == DEVQ(q)->inflight_desc % (2u * DEVQ(q)->num));
		FUZZ_CHECK(DEVQ(q)->inflight <= DEVQ(q)->num);
	}
}

static int pop_checked(struct uvirtio_devq *q, struct uvirtio_req *req, unsigned iov_cap,
		       bool write_in, uint8_t fill)
{
	uint32_t inflight = DEVQ(q)->inflight;
	int ret;

	uvirtio_req_init(req, iov_store + IOV_MAX_CAP - iov_cap, iov_cap);
	ret = uvirtio_devq_pop(q, req);
	if (was_broken) {
		FUZZ_CHECK(ret == -EIO);
		return ret;
	}
	FUZZ_CHECK(ret == 0 || ret == 1 || ret == -EIO);
	FUZZ_CHECK((ret == -EIO) == DEVQ(q)->broken);
	if (ret != 1) {
		FUZZ_CHECK(DEVQ(q)->inflight == inflight);
		return ret;
	}
	FUZZ_CHECK(DEVQ(q)->inflight == inflight + 1);
	/* A handle indexes the device's table: below num, never two alike. */
	FUZZ_CHECK(req->id < DEVQ(q)->num);
	FUZZ_CHECK(!handle_out[req->id]);
	handle_out[req->id] = true;
	check_req_iovs(req, iov_cap);
	if (write_in)
		for (unsigned i = req->n_out; i < req->n_out + req->n_in; i++)
			memset(req->iov[i].iov_base, fill, req->iov[i].iov_len);
	return 1;
}

static void push_checked(struct uvirtio_devq *q, const struct uvirtio_used *e, unsigned n)
{
	uint16_t before = uvirtio_devq_used_index(q);
	uint32_t inflight = DEVQ(q)->inflight;
	bool valid = true;
	int ret;

	for (unsigned i = 0; i < n && valid; i++) {
		valid = e[i].id < DEVQ(q)->num && handle_out[e[i].id];
		for (unsigned j = 0; j < i && valid; j++)
			valid = e[j].id != e[i].id;
	}
	ret = n == 1 ? uvirtio_devq_push(q, (uint16_t)e->id, e->len) : uvirtio_devq_push_batch(q, e, n);
	if (!DEVQ(q)->ready || DEVQ(q)->broken) {
		FUZZ_CHECK(ret == (DEVQ(q)->broken ? -EIO : -ESHUTDOWN));
		return;
	}
	if (!valid) {
		FUZZ_CHECK(ret == -EINVAL);
		FUZZ_CHECK(uvirtio_devq_used_index(q) == before);
		FUZZ_CHECK(DEVQ(q)->inflight == inflight);
		return;
	}
	FUZZ_CHECK(ret == 0);
	FUZZ_CHECK(DEVQ(q)->inflight == inflight - n);
	for (unsigned i = 0; i < n; i++)
		handle_out[e[i].id] = false;
	/* Without IN_ORDER everything pushed is published at once. */
	if (!DEVQ(q)->in_order && n)
		FUZZ_CHECK(uvirtio_devq_used_index(q) != before || n == 0);
	if (uvirtio_devq_used_index(q) != before) {
		/* The batch's first descriptor, its flags stored last: used in
		 * the lap of the old used index. */
		uint16_t f = load16(&DEVQ(q)->pdesc[before & 0x7fff].flags);
		bool w = before & 0x8000;

		FUZZ_CHECK(!!(f & (1u << VRING_PACKED_DESC_F_AVAIL)) == w);
		FUZZ_CHECK(!!(f & (1u << VRING_PACKED_DESC_F_USED)) == w);
	}
}

static void run_op(struct uvirtio_devq *q, const struct fuzz_op *o, unsigned iov_cap, bool write_in)
{
	struct uvirtio_req req;
	bool ready = DEVQ(q)->ready && !DEVQ(q)->broken;

	switch (o->op % OP_COUNT) {
	case OP_POP_PUSH:
	case OP_POP_PUSH_FULL:
		fuzz_pop_push_now(q, o, o->op % OP_COUNT == OP_POP_PUSH_FULL, iov_cap, write_in,
				  pop_checked, push_checked);
		break;
	case OP_POP_HOLD:
		if (pop_checked(q, &req, iov_cap, write_in, (uint8_t)o->arg) == 1)
			held[nheld++] = (struct uvirtio_used){ .id = req.id,
							       .len = o->arg & 1 ? req.in_len : o->arg };
		break;
	case OP_PUSH_HELD:
		if (o->arg & 1)
			for (unsigned i = 0; i < nheld / 2; i++) {
				struct uvirtio_used t = held[i];

				held[i] = held[nheld - 1 - i];
				held[nheld - 1 - i] = t;
			}
		push_checked(q, held, nheld);
		if (ready)
			nheld = 0;
		break;
	case OP_NEEDS_NOTIFY: {
		bool got = uvirtio_devq_needs_notify(q);
		uint16_t flags = ready ? load16(&DEVQ(q)->driver_event->flags) & 3 : 0;

		if (!ready)
			FUZZ_CHECK(!got);
		else if (flags == VRING_PACKED_EVENT_FLAG_DISABLE)
			FUZZ_CHECK(!got);
		else if (flags != VRING_PACKED_EVENT_FLAG_DESC)
			FUZZ_CHECK(got);
		break;
	}
	case OP_ENABLE_NOTIFY: {
		bool got = uvirtio_devq_enable_notify(q);

		if (!ready) {
			FUZZ_CHECK(!got);
			break;
		}
		if (DEVQ(q)->event_idx) {
			FUZZ_CHECK(load16(&DEVQ(q)->device_event->flags) == VRING_PACKED_EVENT_FLAG_DESC);
			FUZZ_CHECK(load16(&DEVQ(q)->device_event->off_wrap) == uvirtio_devq_next_avail(q));
		} else {
			FUZZ_CHECK(load16(&DEVQ(q)->device_event->flags) == VRING_PACKED_EVENT_FLAG_ENABLE);
		}
		break;
	}
	case OP_DISABLE_NOTIFY: {
		/* Written once when it turns kicks off; the area may overlap
		 * descriptors the device writes later, so look only then. */
		bool was_enabled = DEVQ(q)->notify_enabled;

		uvirtio_devq_disable_notify(q);
		if (ready && was_enabled)
			FUZZ_CHECK(load16(&DEVQ(q)->device_event->flags) == VRING_PACKED_EVENT_FLAG_DISABLE);
		if (ready)
			FUZZ_CHECK(!DEVQ(q)->notify_enabled);
		break;
	}
	case OP_PUSH_BAD_ID: {
		uint16_t id = (uint16_t)(o->arg & 1 ? DEVQ(q)->num + (o->arg >> 1) : (o->arg >> 1) % NUM_MAX);
		struct uvirtio_used e = { .id = id, .len = 0 };

		if (id < NUM_MAX && handle_out[id])
			break; /* in flight: not a bad id */
		push_checked(q, &e, 1);
		break;
	}
	case OP_STOP: {
		uint16_t next = uvirtio_devq_next_avail(q);

		uvirtio_devq_stop(q);
		FUZZ_CHECK(!DEVQ(q)->ready && uvirtio_devq_next_avail(q) == next);
		break;
	}
	case OP_NOTE: {
		int ret = uvirtio_devq_note_notification(q, (uint32_t)o->arg << 16 | 7u);
		uint16_t v;

		if (!DEVQ(q)->notification_data)
			FUZZ_CHECK(ret == -EPERM);
		else if ((o->arg & 0x7fff) >= DEVQ(q)->num)
			FUZZ_CHECK(ret == -EINVAL);
		else
			FUZZ_CHECK(ret == 0 && uvirtio_devq_notified_avail(q, &v) && v == o->arg);
		break;
	}
	case OP_HAS_AVAIL:
		if (DEVQ(q)->broken)
			FUZZ_CHECK(!uvirtio_devq_has_avail(q));
		else
			(void)uvirtio_devq_has_avail(q);
		break;
	}
	check_state(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static const uint64_t align[3] = { 16, 4, 4 };
	struct devq_fuzz_input fi;
	struct uvirtio_devq q;
	unsigned num, iov_cap, nregs, nops, iters;
	uint64_t desc, driver, device, features = UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	uint16_t next_avail, used_idx;
	uint8_t flags;
	int ret, want;

	num = in_u8(&in);
	flags = in_u8(&in);
	iov_cap = 1 + in_u8(&in) % IOV_MAX_CAP;
	nregs = 1 + in_u8(&in) % NREGIONS_MAX;
	if (flags & 0x01)
		features |= UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	if (flags & 0x02)
		features |= UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	if (flags & 0x10)
		features |= UVIRTIO_BIT(VIRTIO_F_IN_ORDER);
	if (flags & 0x20)
		features |= UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA);

	devq_fuzz_read_input(&in, nregs, align, &fi);
	desc = fi.part[0];
	driver = fi.part[1];
	device = fi.part[2];
	next_avail = fi.next_avail;
	used_idx = fi.used_idx;
	nops = fi.nops;

	broken_calls = 0;
	was_broken = false;
	nheld = 0;
	memset(handle_out, 0, sizeof(handle_out));
	memset(&q, 0, sizeof(q));
	uvirtio_devq_set_broken_cb(&q, on_broken, NULL);
	ret = uvirtio_devq_setup(&q, &mem, num, desc, driver, device, features);

	/* spec: 1..32768 entries, parts aligned 16/4/4, each inside memory. */
	if (!num || desc % 16 || driver % 4 || device % 4)
		want = -EINVAL;
	else if (!in_one_region(desc, 16ull * num) || !in_one_region(driver, 4) ||
		 !in_one_region(device, 4))
		want = -EFAULT;
	else
		want = 0;
	FUZZ_CHECK(ret == want);
	FUZZ_CHECK(DEVQ(&q)->ready == (ret == 0));
	FUZZ_CHECK(!DEVQ(&q)->broken);

	if (ret == 0) {
		FUZZ_CHECK(DEVQ(&q)->packed && DEVQ(&q)->num == num);
		FUZZ_CHECK(uvirtio_devq_next_avail(&q) == 0x8000);
		FUZZ_CHECK(uvirtio_devq_used_index(&q) == 0x8000);
		if (flags & 0x08) {
			bool bad = (next_avail & 0x7fff) >= num || (used_idx & 0x7fff) >= num;

			/* Resume with nothing in flight: both indices alike. */
			FUZZ_CHECK(uvirtio_devq_set_indices(&q, next_avail, next_avail) ==
				   ((next_avail & 0x7fff) >= num ? -EINVAL : 0));
			if (bad && (next_avail & 0x7fff) < num)
				FUZZ_CHECK(uvirtio_devq_set_indices(&q, next_avail, used_idx) == -EINVAL);
		}
	}
	check_state(&q);

	iters = 2 * num + 16;
	for (unsigned it = 0; it < iters; it++) {
		struct fuzz_op o = nops ? ops[it % nops] : (struct fuzz_op){ OP_POP_PUSH, 0 };

		run_op(&q, &o, iov_cap, flags & 0x04);
	}

	if (DEVQ(&q)->broken)
		devq_fuzz_check_broken_end(&q, true);
	uvirtio_devq_reset(&q);
	return 0;
}
