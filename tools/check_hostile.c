// SPDX-License-Identifier: MIT
/*
 * `uvirtio check`, the hostile driver: malformed chains on the raw ring
 * (check_raw.h), one check per case.
 *
 * Hostile means answered: within --timeout-ms the backend must answer the
 * malformed request with an error status, close the connection, or mark
 * the device broken (DEVICE_NEEDS_RESET, which reaches a vhost-user
 * front-end through GET_STATUS), and then serve verified I/O on a new
 * connection. A queue that just stops is a FAIL naming the request.
 *
 * Every byte of the arena outside the buffers the device may write is
 * checked after the request, so a device that writes beyond what a chain
 * allows is caught.
 */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "check_raw.h"

/* ---- the hostile driver ------------------------------------------------------ */

/* What a hostile case laid out. */
struct hcase {
	uint16_t head;         /* what goes into the avail ring */
	bool has_status;       /* the chain has a last writable byte, for the status */
	size_t status_off;     /* where that byte is in the arena (0: STATUS_OFF) */
	size_t alt_status_off; /* where it is if the device reads the chain another way (0: none) */
	const char *alt_why;   /* which way that is */
	bool must_be_unsupp;   /* a well-formed request of an unknown type */
	bool valid_if_ok;      /* completing it OK is not a violation (see the case) */
	uint32_t ok_len;       /* with valid_if_ok: the used length an OK completion has */
	char note[96];         /* said before the outcome */
};

struct hostile {
	uint64_t needs;        /* features the case needs offered (0: none) */
	void (*build)(struct raw *r, struct hcase *h);
	const char *what;      /* the malformed request, for --list and a hang */
};

static uint64_t g_sector; /* the sector hostile requests name; set per run */

static bool status_hidden(const struct raw *r)
{
	uint64_t offered = 0;

	if (!r->conn.fe)
		return false;
	uvirtio_vhost_frontend_protocol_features(r->conn.fe, &offered);
	/* Without STATUS (GET_STATUS) the front-end cannot see DEVICE_NEEDS_RESET. */
	return !(offered & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS));
}

/* The usual readable header, to be followed by parts of the case's choosing. */
static void std_hdr(struct raw *r, uint32_t type)
{
	set_hdr(r, type, g_sector);
	mark_ours(r, HDR_OFF, sizeof(struct virtio_blk_outhdr));
}

/* The usual read in the ring's own table: header, data, status in
 * descriptors 0, 1, 2, with the lengths and data address the case chooses;
 * head 0, the status byte at the end. A case that breaks one descriptor
 * otherwise rewrites it afterwards. */
static void std_chain(struct raw *r, struct hcase *h, uint32_t hdr_len, uint64_t data_addr, uint32_t data_len,
		      uint32_t status_len)
{
	set_desc(r, r->desc, 0, gaddr(r, HDR_OFF), hdr_len, VRING_DESC_F_NEXT, 1);
	set_desc(r, r->desc, 1, data_addr, data_len, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(r, r->desc, 2, gaddr(r, STATUS_OFF), status_len, VRING_DESC_F_WRITE, 0);
	h->head = 0;
	h->has_status = true;
}

/* std_chain() for a read of 512 bytes into DATA_OFF, header of @type and
 * @hdr_len bytes: what the device may write is the data and the status. */
static void std_read(struct raw *r, struct hcase *h, uint32_t type, uint32_t hdr_len)
{
	std_hdr(r, type);
	allow_write(r, DATA_OFF, 512);
	allow_write(r, STATUS_OFF, 1);
	std_chain(r, h, hdr_len, gaddr(r, DATA_OFF), 512, 1);
}

static void build_loop(struct raw *r, struct hcase *h)
{
	/* spec: a chain is bounded by the queue size; 1 -> 2 -> 1 never ends. */
	std_read(r, h, VIRTIO_BLK_T_IN, 16);
	/* The status descriptor leads back to the data. */
	set_desc(r, r->desc, 2, gaddr(r, STATUS_OFF), 1, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
}

static void build_next_out_of_range(struct raw *r, struct hcase *h)
{
	std_read(r, h, VIRTIO_BLK_T_IN, 16);
	/* next == queue size: one past the table. */
	set_desc(r, r->desc, 1, gaddr(r, DATA_OFF), 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, (uint16_t)r->num);
}

static void build_head_out_of_range(struct raw *r, struct hcase *h)
{
	std_read(r, h, VIRTIO_BLK_T_IN, 16);
	/* The avail ring names a head past the descriptor table. */
	h->head = (uint16_t)r->num;
}

static void build_address_outside(struct raw *r, struct hcase *h)
{
	uint64_t guest_addr, outside;
	size_t size;

	/* The data buffer starts 1 MiB past the end of guest memory. */
	uvirtio_dma_guest_range(r->dma, &guest_addr, &size);
	outside = guest_addr + size + (1u << 20);

	std_hdr(r, VIRTIO_BLK_T_IN);
	allow_write(r, STATUS_OFF, 1);
	std_chain(r, h, 16, outside, 4096, 1);
}

static void build_address_wraps(struct raw *r, struct hcase *h)
{
	/* addr + len overflows 64 bits: a device adding them unchecked lands
	 * inside guest memory (at its start). */
	std_hdr(r, VIRTIO_BLK_T_IN);
	allow_write(r, STATUS_OFF, 1);
	std_chain(r, h, 16, UINT64_MAX - 511, 4096, 1);
}

static void build_chain_longer(struct raw *r, struct hcase *h)
{
	/* spec 2.7.5.3.1: a driver MUST NOT create a descriptor chain longer
	 * than the queue size; an indirect table is the one way to build one
	 * without a loop. Header, num + 1 data segments, status. */
	struct vring_desc *t = (struct vring_desc *)(r->arena + IND_OFF);
	unsigned nseg = r->num + 1, n = nseg + 2;

	std_hdr(r, VIRTIO_BLK_T_IN);
	set_desc(r, t, 0, gaddr(r, HDR_OFF), 16, VRING_DESC_F_NEXT, 1);
	for (unsigned i = 0; i < nseg; i++) {
		set_desc(r, t, 1 + i, gaddr(r, SEG_OFF + i * 1024u), 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
			 (uint16_t)(2 + i));
		allow_write(r, SEG_OFF + i * 1024u, 512);
	}
	set_desc(r, t, n - 1, gaddr(r, STATUS_OFF), 1, VRING_DESC_F_WRITE, 0);
	mark_ours(r, IND_OFF, n * sizeof(*t));
	allow_write(r, STATUS_OFF, 1);
	set_desc(r, r->desc, 0, gaddr(r, IND_OFF), n * (uint32_t)sizeof(*t), VRING_DESC_F_INDIRECT, 0);
	snprintf(h->note, sizeof(h->note), "indirect chain of %u descriptors, queue size %u: ", n, r->num);
	h->head = 0;
	h->has_status = true;
}

static void build_nested_indirect(struct raw *r, struct hcase *h)
{
	/* spec: the driver MUST NOT set INDIRECT within an indirect descriptor. */
	struct vring_desc *t = (struct vring_desc *)(r->arena + IND_OFF);
	struct vring_desc *t2 = (struct vring_desc *)(r->arena + IND2_OFF);

	std_hdr(r, VIRTIO_BLK_T_IN);
	set_desc(r, t2, 0, gaddr(r, DATA_OFF), 512, VRING_DESC_F_WRITE, 0);
	set_desc(r, t, 0, gaddr(r, HDR_OFF), 16, VRING_DESC_F_NEXT, 1);
	set_desc(r, t, 1, gaddr(r, IND2_OFF), sizeof(*t2), VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 2);
	set_desc(r, t, 2, gaddr(r, STATUS_OFF), 1, VRING_DESC_F_WRITE, 0);
	mark_ours(r, IND_OFF, 3 * sizeof(*t));
	mark_ours(r, IND2_OFF, sizeof(*t2));
	allow_write(r, STATUS_OFF, 1);
	set_desc(r, r->desc, 0, gaddr(r, IND_OFF), 3 * sizeof(*t), VRING_DESC_F_INDIRECT, 0);
	h->head = 0;
	h->has_status = true;
}

static void build_indirect_with_next(struct raw *r, struct hcase *h)
{
	/* spec: the driver MUST NOT set both INDIRECT and NEXT. */
	struct vring_desc *t = (struct vring_desc *)(r->arena + IND_OFF);

	std_hdr(r, VIRTIO_BLK_T_IN);
	set_desc(r, t, 0, gaddr(r, HDR_OFF), 16, VRING_DESC_F_NEXT, 1);
	set_desc(r, t, 1, gaddr(r, DATA_OFF), 512, VRING_DESC_F_WRITE, 0);
	mark_ours(r, IND_OFF, 2 * sizeof(*t));
	allow_write(r, DATA_OFF, 512);
	allow_write(r, STATUS_OFF, 1);
	set_desc(r, r->desc, 0, gaddr(r, IND_OFF), 2 * sizeof(*t), VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	set_desc(r, r->desc, 1, gaddr(r, STATUS_OFF), 1, VRING_DESC_F_WRITE, 0);
	h->head = 0;
	h->has_status = true;
	/* A device that follows the table and ignores NEXT sees a chain that
	 * ends with the data: its last byte is then the status. */
	h->alt_status_off = DATA_OFF + 511;
	h->alt_why = "the device ignored NEXT; status at the data's last byte";
}

static void build_header_short(struct raw *r, struct hcase *h)
{
	/* 8 bytes of header (type and ioprio, no sector), then the status. */
	std_hdr(r, VIRTIO_BLK_T_IN);
	allow_write(r, STATUS_OFF, 1);
	set_desc(r, r->desc, 0, gaddr(r, HDR_OFF), 8, VRING_DESC_F_NEXT, 1);
	set_desc(r, r->desc, 1, gaddr(r, STATUS_OFF), 1, VRING_DESC_F_WRITE, 0);
	h->head = 0;
	h->has_status = true;
}

static void build_unknown_type(struct raw *r, struct hcase *h)
{
	/* A well-formed request of type 200, which no spec version defines. */
	std_read(r, h, 200, 16);
	h->must_be_unsupp = true;
}

static void build_zero_len_header(struct raw *r, struct hcase *h)
{
	std_read(r, h, VIRTIO_BLK_T_IN, 0);
}

static void build_zero_len_status(struct raw *r, struct hcase *h)
{
	/* The last writable buffer has length 0. The status is the last
	 * writable byte of the chain whatever the framing (spec 2.6.4, message
	 * framing), so it lands on the data's last byte, and the data is then
	 * 511 bytes, not a multiple of 512: the request must be refused. */
	std_hdr(r, VIRTIO_BLK_T_IN);
	allow_write(r, DATA_OFF, 512);
	std_chain(r, h, 16, gaddr(r, DATA_OFF), 512, 0);
	h->status_off = DATA_OFF + 511;
}

static void build_zero_len_data(struct raw *r, struct hcase *h)
{
	/* A read whose only data buffer has length 0. No rule forbids a
	 * zero-length buffer and 0 is a multiple of 512, so an OK answer
	 * that writes nothing but the status is acceptable too. */
	std_hdr(r, VIRTIO_BLK_T_IN);
	allow_write(r, STATUS_OFF, 1);
	std_chain(r, h, 16, gaddr(r, DATA_OFF), 0, 1);
	h->valid_if_ok = true;
	h->ok_len = 1;
}

#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)
/* Every case: check name, the features it needs, its builder, what it sends. */
#define HOSTILE_CASES(X)                                                                                \
	X(descriptor_loop, 0, build_loop, "a chain whose NEXT links loop")                               \
	X(next_out_of_range, 0, build_next_out_of_range, "a NEXT index equal to the queue size")           \
	X(head_out_of_range, 0, build_head_out_of_range, "an avail ring head equal to the queue size")     \
	X(address_outside_memory, 0, build_address_outside, "a data buffer 1 MiB past guest memory")       \
	X(address_wraps, 0, build_address_wraps, "a data buffer whose address + length wraps 64 bits")     \
	X(chain_longer_than_queue, INDIRECT, build_chain_longer,                                          \
	  "an indirect chain longer than the queue (INDIRECT_DESC)")                                      \
	X(nested_indirect, INDIRECT, build_nested_indirect,                                               \
	  "an indirect table holding an INDIRECT descriptor (INDIRECT_DESC)")                             \
	X(indirect_with_next, INDIRECT, build_indirect_with_next,                                         \
	  "a descriptor with INDIRECT and NEXT set (INDIRECT_DESC)")                                      \
	X(header_short, 0, build_header_short, "a request header of 8 bytes")                              \
	X(unknown_type_unsupp, 0, build_unknown_type, "an unknown request type (to be answered UNSUPP)")   \
	X(zero_length_header, 0, build_zero_len_header, "a header buffer of length 0")                     \
	X(zero_length_status, 0, build_zero_len_status, "a status buffer of length 0")                     \
	X(zero_length_data, 0, build_zero_len_data, "a read whose data buffer has length 0")

#define HOSTILE_CASE(name, needs, build, what) { needs, build, what },
static const struct hostile hostile_cases[] = { HOSTILE_CASES(HOSTILE_CASE) };

static enum check_verdict hostile_run(struct check_ctx *c, const struct hostile *hc)
{
	struct raw r;
	struct hcase h = { 0 };
	char outcome[256], alive[512];
	uint32_t id = 0, len = 0;
	enum wait_outcome w;
	size_t bad;
	bool violated = false;

	g_sector = (c->opts.offset + CHECK_AREA_HOSTILE) / 512;
	/* Only the features the case needs: the device's view of the ring
	 * is then the plain one (no EVENT_IDX). */
	if (raw_open(c, &r, hc->needs | UVIRTIO_BIT(VIRTIO_BLK_F_RO), RAW_QSIZE))
		return CHECK_FAIL;
	if ((r.offered & hc->needs) != hc->needs) {
		raw_close(&r);
		return NA(c, "backend does not offer INDIRECT_DESC");
	}
	repoison(&r);
	hc->build(&r, &h);
	raw_publish(&r, h.head);
	w = raw_wait(&r, c->opts.timeout_ms, &id, &len);
	/* Stop the device before judging the memory: nothing may change under
	 * the check. A closed connection has stopped already. */
	if (w != CLOSED)
		r.t->ops->reset(r.t);
	bad = poison_broken(&r);

	uint8_t status = r.arena[h.status_off ? h.status_off : STATUS_OFF];
	size_t pre = (size_t)snprintf(outcome, sizeof(outcome), "%s", h.note);

	if (w == GOT_USED && status == POISON && h.alt_status_off && len >= 1) {
		status = r.arena[h.alt_status_off];
		pre += (size_t)snprintf(outcome + pre, sizeof(outcome) - pre, "%s: ", h.alt_why);
	}

	switch (w) {
	case GOT_USED:
		if (h.must_be_unsupp) {
			violated = status != VIRTIO_BLK_S_UNSUPP;
			snprintf(outcome + pre, sizeof(outcome) - pre, "answered %s (0x%02x), used length %u%s", status_name(status),
				 status, len, violated ? "; spec: an unknown type MUST be answered UNSUPP" : "");
		} else if (h.has_status && status == VIRTIO_BLK_S_OK && len >= 1) {
			violated = !h.valid_if_ok || len != h.ok_len;
			snprintf(outcome + pre, sizeof(outcome) - pre, "%s with OK, used length %u", violated ?
				 "completed the invalid request" : "accepted: completed", len);
		} else if (h.has_status && len >= 1 &&
			   (status == VIRTIO_BLK_S_IOERR || status == VIRTIO_BLK_S_UNSUPP)) {
			snprintf(outcome + pre, sizeof(outcome) - pre, "refused with %s", status_name(status));
		} else if (len == 0 && (!h.has_status || status == POISON)) {
			snprintf(outcome + pre, sizeof(outcome) - pre, "given back unserved (used length 0, no status written)");
		} else if (!h.has_status) {
			violated = true;
			snprintf(outcome + pre, sizeof(outcome) - pre,
				 "used length %u for a request with no room for its status byte", len);
		} else {
			violated = true;
			snprintf(outcome + pre, sizeof(outcome) - pre, "used length %u with status %s (0x%02x)", len,
				 status_name(status), status);
		}
		if (id != h.head && id >= r.num)
			snprintf(outcome + strlen(outcome), sizeof(outcome) - strlen(outcome),
				 "; used id %u is not a descriptor index", id);
		break;
	case NO_USED:
		/* Hostile means answered: an error status, a closed connection
		 * or DEVICE_NEEDS_RESET. A queue that just stops (or spins) is
		 * a backend that hangs on a hostile driver. */
		violated = true;
		snprintf(outcome + pre, sizeof(outcome) - pre,
			 "hung on %s: no used entry, no DEVICE_NEEDS_RESET and the connection still open after %d ms%s",
			 hc->what, c->opts.timeout_ms,
			 status_hidden(&r) ? " (the backend does not offer protocol feature STATUS: "
					     "DEVICE_NEEDS_RESET cannot reach the front-end, so it must answer or close)" : "");
		break;
	case NEEDS_RESET:
		snprintf(outcome + pre, sizeof(outcome) - pre, "queue broken, DEVICE_NEEDS_RESET set");
		break;
	case CLOSED:
		snprintf(outcome + pre, sizeof(outcome) - pre, "backend closed the connection");
		break;
	}
	if (bad != SIZE_MAX) {
		violated = true;
		snprintf(outcome + strlen(outcome), sizeof(outcome) - strlen(outcome),
			 "; wrote outside the buffers the chain allows (arena byte 0x%zx is 0x%02x)", bad, r.arena[bad]);
	}
	raw_close(&r);

	/* Whatever it did, the backend must still serve a new connection. */
	int ret = check_alive(c, c->opts.offset + CHECK_AREA_HOSTILE + 8192, alive, sizeof(alive));

	if (ret)
		return FAIL(c, "%s; then a new connection failed: %s", outcome, alive);
	if (violated)
		return FAIL(c, "%s", outcome);
	return PASS(c, "%s; a new connection then did verified I/O", outcome);
}

#define HOSTILE_FN(name, needs, build, what)                                   \
	static enum check_verdict hostile_##name(struct check_ctx *c)            \
	{                                                                        \
		return hostile_run(c, &hostile_cases[HOSTILE_##name]);           \
	}
#define HOSTILE_INDEX(name, needs, build, what) HOSTILE_##name,
enum { HOSTILE_CASES(HOSTILE_INDEX) };
HOSTILE_CASES(HOSTILE_FN)

const struct check check_hostile_checks[] = {
#define HOSTILE_ROW(name, needs, build, what) { "hostile_" #name, hostile_##name, what },
	HOSTILE_CASES(HOSTILE_ROW)
};

const size_t check_hostile_checks_count = sizeof(check_hostile_checks) / sizeof(check_hostile_checks[0]);
