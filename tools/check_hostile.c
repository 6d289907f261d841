// SPDX-License-Identifier: MIT
/*
 * `uvirtio check`, the checks that need raw ring access: a split ring laid
 * out here, in the transport's shared memory, driven through the transport
 * operations themselves (not the blk driver, which never builds a malformed
 * request): writes to a read-only disk, ring stop and restart at the right
 * index, and a hostile driver's malformed chains.
 *
 * Hostile means answered: within --timeout-ms the backend must answer the
 * malformed request with an error status, close the connection, or mark
 * the device broken (DEVICE_NEEDS_RESET, which reaches a vhost-user
 * front-end through GET_STATUS), and then serve verified I/O on a new
 * connection. A queue that just stops is a FAIL naming the request.
 *
 * Buffers live in an arena poisoned with 0xa5; after each request every
 * byte outside the buffers the device may write is checked, so a device
 * that writes beyond what a chain allows is caught.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "uvirtio/driver.h"

#define RAW_QSIZE 16u
#define ARENA_BYTES (256u << 10)
#define POISON 0xa5

/* Where each part of a request lives in the arena; the gaps stay poisoned. */
#define HDR_OFF 0x1000u
#define DATA_OFF 0x2000u     /* up to 4096 bytes */
#define STATUS_OFF 0x4000u
#define IND_OFF 0x6000u      /* an indirect table */
#define IND2_OFF 0x7000u     /* a second one (nested indirect) */
#define SEG_OFF 0x10000u     /* many small data segments, 1 KiB apart */

struct range {
	size_t off, len;
};

struct raw {
	struct check_conn conn;
	struct uvirtio_transport *t;
	struct uvirtio_dma *dma;
	uint64_t offered, features;
	unsigned num;
	void *ring;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, used_idx;
	int call_fd;
	uint8_t *arena;
	uint64_t arena_addr;
	/* The arena bytes the device may write for the request in flight. */
	struct range writable[48];
	unsigned nwritable;
	bool started;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void raw_close(struct raw *r)
{
	if (r->t) {
		/* Reset before freeing: after it the device touches no buffer. */
		r->t->ops->reset(r->t);
		if (r->ring)
			uvirtio_dma_free(r->dma, r->ring);
		if (r->arena)
			uvirtio_dma_free(r->dma, r->arena);
	}
	check_disconnect(&r->conn);
	memset(r, 0, sizeof(*r));
}

static int add_status(struct raw *r, uint8_t bits)
{
	uint8_t s;
	int ret = r->t->ops->get_status(r->t, &s);

	return ret ? ret : r->t->ops->set_status(r->t, s | bits);
}

/* Connect, negotiate VERSION_1 plus what the device offers of @wanted, lay
 * a ring of @num entries out and start the device. On failure the verdict
 * line says why. */
static int raw_open(struct check_ctx *c, struct raw *r, uint64_t wanted, unsigned num)
{
	uint8_t status;
	unsigned max;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = check_connect(c, &r->conn);
	if (ret) {
		FAIL(c, "cannot connect: %s", check_connect_error(&r->conn, ret));
		return ret;
	}
	r->t = r->conn.t;
	r->dma = r->t->ops->dma(r->t);
	ret = r->t->ops->reset(r->t);
	if (!ret)
		ret = add_status(r, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	if (!ret)
		ret = add_status(r, VIRTIO_CONFIG_S_DRIVER);
	if (!ret)
		ret = r->t->ops->get_features(r->t, &r->offered);
	if (ret)
		goto fail;
	r->features = r->offered & (wanted | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	ret = r->t->ops->set_features(r->t, r->features);
	if (!ret)
		ret = add_status(r, VIRTIO_CONFIG_S_FEATURES_OK);
	if (!ret)
		ret = r->t->ops->get_status(r->t, &status);
	if (ret)
		goto fail;
	if (!(status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		FAIL(c, "FEATURES_OK did not stick with features 0x%" PRIx64, r->features);
		raw_close(r);
		return -ENODEV;
	}
	ret = r->t->ops->queue_max_size(r->t, 0, &max);
	if (ret)
		goto fail;
	if (max == 0) {
		FAIL(c, "the device has no queue 0");
		raw_close(r);
		return -ENOENT;
	}
	while (num > max)
		num /= 2;
	r->num = num;

	/* The split ring: descriptors, then the avail ring (with used_event),
	 * then the used ring (with avail_event) at 4-byte alignment. */
	size_t avail_off = 16u * num, used_off = (avail_off + 6 + 2u * num + 3) & ~(size_t)3;
	struct uvirtio_queue_layout l = { .num = num };

	r->ring = uvirtio_dma_alloc(r->dma, used_off + 6 + 8u * num, 4096);
	r->arena = uvirtio_dma_alloc(r->dma, ARENA_BYTES, 4096);
	if (!r->ring || !r->arena) {
		ret = -ENOMEM;
		goto fail;
	}
	memset(r->arena, POISON, ARENA_BYTES);
	uvirtio_dma_addr(r->dma, r->arena, ARENA_BYTES, &r->arena_addr);
	r->desc = r->ring;
	r->avail = (struct vring_avail *)((char *)r->ring + avail_off);
	r->used = (struct vring_used *)((char *)r->ring + used_off);
	uvirtio_dma_addr(r->dma, r->desc, 1, &l.desc);
	uvirtio_dma_addr(r->dma, r->avail, 1, &l.avail);
	uvirtio_dma_addr(r->dma, r->used, 1, &l.used);
	ret = r->t->ops->queue_enable(r->t, 0, &l);
	if (!ret)
		ret = add_status(r, VIRTIO_CONFIG_S_DRIVER_OK);
	if (ret)
		goto fail;
	r->call_fd = r->t->ops->event_fd(r->t, 0);
	if (r->call_fd < 0) {
		ret = r->call_fd;
		goto fail;
	}
	r->started = true;
	return 0;
fail:
	FAIL(c, "setting the device up: %s%s%s", strerror(-ret), r->conn.fe ? "; front-end: " : "",
	     r->conn.fe ? uvirtio_vhost_frontend_error(r->conn.fe) : "");
	raw_close(r);
	return ret;
}

static uint64_t gaddr(const struct raw *r, size_t off)
{
	return r->arena_addr + off;
}

static void set_desc(struct raw *r, struct vring_desc *table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	table[i].addr = htole64(addr);
	table[i].len = htole32(len);
	table[i].flags = htole16(flags);
	table[i].next = htole16(next);
	(void)r;
}

static void allow_write(struct raw *r, size_t off, size_t len)
{
	if (r->nwritable < sizeof(r->writable) / sizeof(r->writable[0]))
		r->writable[r->nwritable++] = (struct range){ off, len };
}

static void set_hdr(struct raw *r, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = htole32(type), .ioprio = 0, .sector = htole64(sector) };

	memcpy(r->arena + HDR_OFF, &h, sizeof(h));
}

/* Make @head available and notify. */
static int raw_publish(struct raw *r, uint16_t head)
{
	r->avail->ring[r->avail_idx % r->num] = htole16(head);
	/* The entry before the index that covers it; pairs with the device's
	 * acquire of avail->idx. */
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx), __ATOMIC_RELEASE);
	return r->t->ops->notify(r->t, 0);
}

enum wait_outcome { GOT_USED, NO_USED, NEEDS_RESET, CLOSED };

/* Wait up to @timeout_ms for the next used entry. While waiting, look
 * every 100 ms whether the device gave up on the queue (DEVICE_NEEDS_RESET)
 * or the backend closed the connection, so those are told apart from a
 * queue that just stopped. */
static enum wait_outcome raw_wait(struct raw *r, int timeout_ms, uint32_t *id, uint32_t *len)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		uint16_t idx = le16toh(__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE));

		if (idx != r->used_idx) {
			/* The entry is read after the index that covers it (acquire above). */
			struct vring_used_elem e = r->used->ring[r->used_idx % r->num];

			r->used_idx++;
			*id = le32toh(e.id);
			*len = le32toh(e.len);
			return GOT_USED;
		}
		int64_t left = deadline - now_ms();

		if (left <= 0)
			return NO_USED;
		struct pollfd p = { .fd = r->call_fd, .events = POLLIN };
		int n = poll(&p, 1, left < 100 ? (int)left : 100);

		if (n > 0) {
			uint64_t count;

			if (read(r->call_fd, &count, sizeof(count)) < 0)
				count = 0;
			continue;
		}
		uint8_t status = 0;
		int ret = r->t->ops->get_status(r->t, &status);

		if (r->conn.fe && !ret) {
			/* GET_STATUS may be answered from the front-end's copy;
			 * a config read always reaches the backend. */
			uint8_t b;

			ret = r->t->ops->get_config(r->t, 0, &b, 1);
		}
		if (ret == -ENOTCONN || ret == -EPIPE || ret == -ECONNRESET ||
		    (r->conn.fe && !uvirtio_vhost_frontend_connected(r->conn.fe)))
			return CLOSED;
		if (!ret && (status & VIRTIO_CONFIG_S_NEEDS_RESET))
			return NEEDS_RESET;
	}
}

/* The first arena byte outside the writable ranges that is no longer
 * poison, or SIZE_MAX. */
static size_t poison_broken(const struct raw *r)
{
	for (size_t i = 0; i < ARENA_BYTES; i++) {
		bool ok = false;

		if (r->arena[i] == POISON)
			continue;
		for (unsigned k = 0; k < r->nwritable && !ok; k++)
			ok = i >= r->writable[k].off && i - r->writable[k].off < r->writable[k].len;
		/* The header and readable data were written by us. */
		if (!ok)
			return i;
	}
	return SIZE_MAX;
}

/* Poison the arena again, except what the next request's readable parts
 * need (the caller writes them after this). */
static void repoison(struct raw *r)
{
	memset(r->arena, POISON, ARENA_BYTES);
	r->nwritable = 0;
}

/* Which arena bytes we wrote ourselves (headers, readable data) count as
 * "writable" for the poison check: they are not poison by design. */
static void mark_ours(struct raw *r, size_t off, size_t len)
{
	allow_write(r, off, len);
}

/* A well-formed request: header, one data buffer at DATA_OFF of @len bytes
 * (device-readable for OUT, device-writable for IN), status. Waits for it.
 * Return: the status byte (0..255), or -ETIMEDOUT / -EIO (needs reset) /
 * -ENOTCONN / -EPROTO (bad used entry) with @why set. */
static int raw_rw(struct check_ctx *c, struct raw *r, uint32_t type, uint64_t sector, uint32_t len,
		  bool wait, char *why, size_t whylen)
{
	bool in = type == VIRTIO_BLK_T_IN;
	uint32_t id, ulen;

	r->nwritable = 0;
	mark_ours(r, HDR_OFF, sizeof(struct virtio_blk_outhdr));
	mark_ours(r, DATA_OFF, len);
	allow_write(r, STATUS_OFF, 1);
	set_hdr(r, type, sector);
	r->arena[STATUS_OFF] = POISON;
	set_desc(r, r->desc, 0, gaddr(r, HDR_OFF), sizeof(struct virtio_blk_outhdr), VRING_DESC_F_NEXT, 1);
	set_desc(r, r->desc, 1, gaddr(r, DATA_OFF), len, VRING_DESC_F_NEXT | (in ? VRING_DESC_F_WRITE : 0), 2);
	set_desc(r, r->desc, 2, gaddr(r, STATUS_OFF), 1, VRING_DESC_F_WRITE, 0);
	raw_publish(r, 0);
	if (!wait)
		return 0;
	switch (raw_wait(r, c->opts.timeout_ms, &id, &ulen)) {
	case GOT_USED:
		break;
	case NO_USED:
		snprintf(why, whylen, "no used entry within %d ms", c->opts.timeout_ms);
		return -ETIMEDOUT;
	case NEEDS_RESET:
		snprintf(why, whylen, "the device set DEVICE_NEEDS_RESET");
		return -EIO;
	case CLOSED:
		snprintf(why, whylen, "the backend closed the connection");
		return -ENOTCONN;
	}
	if (id != 0 || ulen > (in ? len : 0) + 1u) {
		snprintf(why, whylen, "used entry id %u length %u for head 0 with %u writable bytes", id, ulen,
			 (in ? len : 0) + 1);
		return -EPROTO;
	}
	return r->arena[STATUS_OFF];
}

static const char *status_name(int s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case POISON: return "untouched";
	default: return "an undefined value";
	}
}

/* ---- writes to a read-only disk ------------------------------------------ */

static enum check_verdict check_read_only(struct check_ctx *c)
{
	struct raw r;
	char why[256];
	uint64_t sector = (c->opts.offset + CHECK_AREA_HOSTILE) / 512;
	uint8_t before[4096];
	int s;

	if (raw_open(c, &r, UVIRTIO_BIT(VIRTIO_BLK_F_RO), RAW_QSIZE))
		return CHECK_FAIL;
	if (!(r.offered & UVIRTIO_BIT(VIRTIO_BLK_F_RO))) {
		raw_close(&r);
		return NA(c, "backend does not offer RO (the disk is writable)");
	}
	s = raw_rw(c, &r, VIRTIO_BLK_T_IN, sector, 4096, true, why, sizeof(why));
	if (s != VIRTIO_BLK_S_OK) {
		raw_close(&r);
		return FAIL(c, "read before the write: %s", s < 0 ? why : status_name(s));
	}
	memcpy(before, r.arena + DATA_OFF, sizeof(before));
	/* Something the disk surely does not hold yet. */
	for (unsigned i = 0; i < 4096; i++)
		r.arena[DATA_OFF + i] = (uint8_t)~before[i];
	s = raw_rw(c, &r, VIRTIO_BLK_T_OUT, sector, 4096, true, why, sizeof(why));
	if (s < 0) {
		raw_close(&r);
		return FAIL(c, "write to the read-only disk: %s (spec: the device MUST answer IOERR)", why);
	}
	if (s != VIRTIO_BLK_S_IOERR) {
		raw_close(&r);
		return FAIL(c, "write to the read-only disk answered %s (0x%02x); spec: IOERR and no data written",
			    status_name(s), s);
	}
	memset(r.arena + DATA_OFF, POISON, 4096);
	s = raw_rw(c, &r, VIRTIO_BLK_T_IN, sector, 4096, true, why, sizeof(why));
	if (s != VIRTIO_BLK_S_OK) {
		raw_close(&r);
		return FAIL(c, "read after the refused write: %s", s < 0 ? why : status_name(s));
	}
	bool same = !memcmp(before, r.arena + DATA_OFF, sizeof(before));

	raw_close(&r);
	if (!same)
		return FAIL(c, "the write was answered IOERR but the data changed");
	return PASS(c, "write refused with IOERR (RO), the data unchanged");
}

/* ---- ring stop and restart ------------------------------------------------ */

static enum check_verdict check_ring_stop_restart(struct check_ctx *c)
{
	struct raw r;
	char why[256];
	uint64_t disk = c->opts.offset + CHECK_AREA_RING;
	unsigned done = 0, n;
	uint32_t base, id, len;
	bool ro;
	int s, quiet_ms;

	if (raw_open(c, &r, UVIRTIO_BIT(VIRTIO_BLK_F_RO), 8))
		return CHECK_FAIL;
	if (!r.conn.fe) {
		raw_close(&r);
		return NA(c, "loopback: rings are stopped with vhost-user GET_VRING_BASE");
	}
	ro = r.features & UVIRTIO_BIT(VIRTIO_BLK_F_RO);
	/* More requests than the ring has entries, so the indices wrap. */
	n = 2 * r.num + 3;
	for (unsigned i = 0; i < n; i++) {
		uint64_t at = disk + (uint64_t)(i / 2) * 4096;
		bool write = !ro && i % 2 == 0;

		if (write)
			check_fill(r.arena + DATA_OFF, 4096, at, 500);
		else
			memset(r.arena + DATA_OFF, POISON, 4096);
		s = raw_rw(c, &r, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, at / 512, 4096, true, why, sizeof(why));
		if (s != VIRTIO_BLK_S_OK) {
			raw_close(&r);
			return FAIL(c, "request %u before the stop: %s", i, s < 0 ? why : status_name(s));
		}
		if (!ro && !write && check_mismatch(r.arena + DATA_OFF, 4096, at, 500) != SIZE_MAX) {
			raw_close(&r);
			return FAIL(c, "request %u before the stop read back other data", i);
		}
		done++;
	}
	s = uvirtio_vhost_frontend_stop_ring(r.conn.fe, 0, &base);
	if (s) {
		FAIL(c, "GET_VRING_BASE after %u requests: %s (%s)", done, strerror(-s),
		     uvirtio_vhost_frontend_error(r.conn.fe));
		raw_close(&r);
		return CHECK_FAIL;
	}
	if ((uint16_t)base != (uint16_t)done) {
		raw_close(&r);
		return FAIL(c, "GET_VRING_BASE after %u completed requests answered %u, not %u", done, base,
			    done & 0xffff);
	}

	/* A request made available while the ring is stopped: the backend
	 * must not take it until the ring is handed back. The kick may be
	 * refused by the front-end for a stopped ring; the restart kicks. */
	uint64_t at = disk;

	memset(r.arena + DATA_OFF, POISON, 4096);
	raw_rw(c, &r, VIRTIO_BLK_T_IN, at / 512, 4096, false, why, sizeof(why));
	quiet_ms = c->opts.timeout_ms / 5 < 100 ? 100 : c->opts.timeout_ms / 5;
	int64_t until = now_ms() + quiet_ms;

	while (now_ms() < until) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (le16toh(__atomic_load_n(&r.used->idx, __ATOMIC_ACQUIRE)) != r.used_idx) {
			raw_close(&r);
			return FAIL(c, "a request made available while the ring was stopped completed before the restart");
		}
		nanosleep(&ts, NULL);
	}
	s = uvirtio_vhost_frontend_restart_ring(r.conn.fe, 0, base);
	if (s) {
		FAIL(c, "restart at base %u: %s (%s)", base, strerror(-s), uvirtio_vhost_frontend_error(r.conn.fe));
		raw_close(&r);
		return CHECK_FAIL;
	}
	switch (raw_wait(&r, c->opts.timeout_ms, &id, &len)) {
	case GOT_USED:
		break;
	case NO_USED:
		raw_close(&r);
		return FAIL(c, "the request made available while stopped did not complete within %d ms of the restart",
			    c->opts.timeout_ms);
	case NEEDS_RESET:
		raw_close(&r);
		return FAIL(c, "after the restart the device set DEVICE_NEEDS_RESET");
	case CLOSED:
		raw_close(&r);
		return FAIL(c, "after the restart the backend closed the connection");
	}
	if (id != 0 || r.arena[STATUS_OFF] != VIRTIO_BLK_S_OK) {
		raw_close(&r);
		return FAIL(c, "the request made available while stopped completed with id %u, status %s", id,
			    status_name(r.arena[STATUS_OFF]));
	}
	if (!ro && check_mismatch(r.arena + DATA_OFF, 4096, at, 500) != SIZE_MAX) {
		raw_close(&r);
		return FAIL(c, "the request made available while stopped read other data than was written");
	}
	done++;
	/* More I/O after the restart, verified, then the index once more. */
	for (unsigned i = 0; i < 3; i++) {
		uint64_t at2 = disk + 64 * 1024 + (uint64_t)i * 4096;

		if (!ro) {
			check_fill(r.arena + DATA_OFF, 4096, at2, 501);
			s = raw_rw(c, &r, VIRTIO_BLK_T_OUT, at2 / 512, 4096, true, why, sizeof(why));
			if (s != VIRTIO_BLK_S_OK) {
				raw_close(&r);
				return FAIL(c, "write after the restart: %s", s < 0 ? why : status_name(s));
			}
			done++;
		}
		memset(r.arena + DATA_OFF, POISON, 4096);
		s = raw_rw(c, &r, VIRTIO_BLK_T_IN, at2 / 512, 4096, true, why, sizeof(why));
		if (s != VIRTIO_BLK_S_OK) {
			raw_close(&r);
			return FAIL(c, "read after the restart: %s", s < 0 ? why : status_name(s));
		}
		if (!ro && check_mismatch(r.arena + DATA_OFF, 4096, at2, 501) != SIZE_MAX) {
			raw_close(&r);
			return FAIL(c, "read after the restart returned other data than was written");
		}
		done++;
	}
	uint32_t base2;

	unsigned num = r.num;

	s = uvirtio_vhost_frontend_stop_ring(r.conn.fe, 0, &base2);
	raw_close(&r);
	if (s)
		return FAIL(c, "second GET_VRING_BASE: %s", strerror(-s));
	if ((uint16_t)base2 != (uint16_t)done)
		return FAIL(c, "second GET_VRING_BASE after %u requests answered %u", done, base2);
	return PASS(c, "GET_VRING_BASE = %u after %u requests (ring of %u); a request made available while "
		    "stopped waited %d ms, then completed after the restart%s; base %u after %u",
		    base, n, num, quiet_ms, ro ? "" : ", verified", base2, done);
}

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

const struct check check_raw_checks[] = {
	{ "io_read_only_refuses_writes", check_read_only, "a write to an RO disk is answered IOERR and changes nothing" },
	{ "ring_stop_restart_at_index", check_ring_stop_restart,
	  "GET_VRING_BASE = requests completed; a request made available while stopped completes after restart" },
#define HOSTILE_ROW(name, needs, build, what) { "hostile_" #name, hostile_##name, what },
	HOSTILE_CASES(HOSTILE_ROW)
};

const size_t check_raw_checks_count = sizeof(check_raw_checks) / sizeof(check_raw_checks[0]);
