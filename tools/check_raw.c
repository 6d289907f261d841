// SPDX-License-Identifier: MIT
/*
 * `uvirtio check`, the raw ring (check_raw.h): a split ring laid out here,
 * in the transport's shared memory, driven through the transport operations
 * themselves (not the blk driver, which never builds a malformed request),
 * and the two checks that need it well-formed: writes to a read-only disk,
 * and ring stop and restart at the right index. check_hostile.c drives the
 * same ring with malformed chains.
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

#include "check_raw.h"
#include "uvirtio/driver.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void raw_close(struct raw *r)
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

int raw_open(struct check_ctx *c, struct raw *r, uint64_t wanted, unsigned num)
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

uint64_t gaddr(const struct raw *r, size_t off)
{
	return r->arena_addr + off;
}

void set_desc(struct raw *r, struct vring_desc *table, unsigned i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next)
{
	table[i].addr = htole64(addr);
	table[i].len = htole32(len);
	table[i].flags = htole16(flags);
	table[i].next = htole16(next);
	(void)r;
}

void allow_write(struct raw *r, size_t off, size_t len)
{
	if (r->nwritable < sizeof(r->writable) / sizeof(r->writable[0]))
		r->writable[r->nwritable++] = (struct range){ off, len };
}

void set_hdr(struct raw *r, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = htole32(type), .ioprio = 0, .sector = htole64(sector) };

	memcpy(r->arena + HDR_OFF, &h, sizeof(h));
}

int raw_publish(struct raw *r, uint16_t head)
{
	r->avail->ring[r->avail_idx % r->num] = htole16(head);
	/* The entry before the index that covers it; pairs with the device's
	 * acquire of avail->idx. */
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx), __ATOMIC_RELEASE);
	return r->t->ops->notify(r->t, 0);
}

enum wait_outcome raw_wait(struct raw *r, int timeout_ms, uint32_t *id, uint32_t *len)
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

size_t poison_broken(const struct raw *r)
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

void repoison(struct raw *r)
{
	memset(r->arena, POISON, ARENA_BYTES);
	r->nwritable = 0;
}

void mark_ours(struct raw *r, size_t off, size_t len)
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

const char *status_name(int s)
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

const struct check check_raw_checks[] = {
	{ "io_read_only_refuses_writes", check_read_only, "a write to an RO disk is answered IOERR and changes nothing" },
	{ "ring_stop_restart_at_index", check_ring_stop_restart,
	  "GET_VRING_BASE = requests completed; a request made available while stopped completes after restart" },
};

const size_t check_raw_checks_count = sizeof(check_raw_checks) / sizeof(check_raw_checks[0]);
