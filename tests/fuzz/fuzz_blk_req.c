// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the blk device's requests (src/devices/blk_req.c and the
 * synchronous I/O of blk_backend.c) through uvirtio_blk_dev_serve_sync(),
 * with no thread, against a model of what virtio-blk (virtio 1.2, 5.2.6)
 * says the device answers.
 *
 * The input picks the device (read-only, negotiated features, capacity,
 * segment limits, the null backend or a small image in a memfd), then a
 * sequence of requests: how many readable and writable iovecs, each one's
 * length, and the readable bytes (header, segments, data). Each iovec is a
 * heap block of its exact size, so ASan stops any access outside it.
 *
 * Input layout (little-endian; a short input reads as zeros):
 *   u8 flags: bit 0 read-only, bit 1 writethrough, bit 2 an image in a memfd
 *      (else the null backend)
 *   in_num capacity: the null disk's bytes; with an image, its file size is
 *      this % (IMAGE_MAX + 1) (a tail that is not a whole sector included)
 *   u8 max_discard_seg % 20, u8 max_write_zeroes_seg % 20, u64 features
 *   then up to MAX_REQS requests: u8 n_out % 9, u8 n_in % 9, per iovec a
 *   u16 length % (MAX_IOV_LEN + 1) and, for readable ones, its bytes.
 *
 * After each request the model's answer must be the device's: the status
 * byte, the used length, the bytes of the writable buffers (the data a read
 * or GET_ID returns, the status byte as the last one, nothing else), the
 * readable buffers unchanged, and the image (a shadow copy the model keeps)
 * changed only where a write or write-zeroes put its data, a discard its
 * range. A mismatch stops the run (the input is saved).
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uvirtio/blk_dev.h"
#include "../../src/core/core_priv.h"
#include "fuzz_input.h"
#include "../../src/devices/blk_priv.h"

#define MAX_IOV 8
#define MAX_IOV_LEN 1200
#define MAX_REQS 16
#define CANARY 0xa5
#define SECTOR 512u
#define IMAGE_MAX (64u * SECTOR + 511)
#define SERIAL "fuzz-serial-0123456789"

static struct uvirtio_mem mem;

/* The image as the model says it is; bytes a discard may have changed are
 * taken from the image afterwards. */
static uint8_t shadow[IMAGE_MAX];
static uint8_t image_now[IMAGE_MAX];
static uint8_t flat_out[MAX_IOV * MAX_IOV_LEN];
static uint8_t flat_in[MAX_IOV * MAX_IOV_LEN];

struct model_dev {
	bool read_only, has_image;
	uint64_t capacity; /* sectors, as the config space says */
	uint64_t image_bytes;
	uint64_t features;
	uint32_t max_seg[2], max_sectors[2]; /* [0] discard, [1] write zeroes */
	char serial[VIRTIO_BLK_ID_BYTES];
};

/* What the model expects of one request. */
struct expect {
	bool any_status; /* the spec orders none of the faults present: IOERR or UNSUPP */
	uint8_t status;
	uint32_t used;
	uint32_t data_len;         /* writable bytes the answer carries before the status */
	const uint8_t *data;       /* their contents; NULL: any (the null disk reads nothing) */
	/* Image ranges that change: [off, off + len) with @src (NULL: zeroes),
	 * or, discard, to anything. */
	unsigned nranges;
	struct { uint64_t off, len; const uint8_t *src; bool any; } ranges[256];
};

static uint8_t id_bytes[VIRTIO_BLK_ID_BYTES];

FUZZ_MODEL static bool in_disk(const struct model_dev *d, uint64_t sector, uint64_t sectors)
{
	return sector <= d->capacity && sectors <= d->capacity - sector;
}

FUZZ_MODEL static bool has(const struct model_dev *d, unsigned bit)
{
	return d->features & (1ull << bit);
}

/* spec 5.2.6: the request is a header (type, reserved, sector) in the
 * readable part, data, and a status byte, the last writable byte. */
FUZZ_MODEL static void model(const struct model_dev *d, const uint8_t *out, uint32_t out_len,
			     const uint8_t *in, uint32_t in_len, struct expect *e)
{
	uint32_t type, data_out;
	uint64_t sector;

	(void)in;
	memset(e, 0, sizeof(*e));
	/* No status byte: nothing to answer with; the buffer goes back unused. */
	if (in_len == 0) {
		e->used = 0;
		return;
	}
	e->used = 1;
	e->status = VIRTIO_BLK_S_IOERR;
	if (out_len < 16)
		return;
	memcpy(&type, out, 4);
	memcpy(&sector, out + 8, 8);
	type = le32toh(type);
	sector = le64toh(sector);
	data_out = out_len - 16;

	switch (type) {
	case VIRTIO_BLK_T_IN: {
		uint32_t len = in_len - 1;

		/* Data travels one way: a read carries none to the device; its
		 * length is whole sectors and lies within the capacity. */
		if (data_out || len % SECTOR || !in_disk(d, sector, len / SECTOR))
			return;
		e->status = VIRTIO_BLK_S_OK;
		e->used = len + 1;
		e->data_len = len;
		e->data = d->has_image ? shadow + sector * SECTOR : NULL;
		return;
	}
	case VIRTIO_BLK_T_OUT:
		/* spec: with VIRTIO_BLK_F_RO offered, IOERR for every write. */
		if (d->read_only || in_len != 1 || data_out % SECTOR ||
		    !in_disk(d, sector, data_out / SECTOR))
			return;
		e->status = VIRTIO_BLK_S_OK;
		if (data_out && d->has_image)
			e->ranges[e->nranges++] = (typeof(e->ranges[0])){ sector * SECTOR, data_out,
									out + 16, false };
		return;
	case VIRTIO_BLK_T_FLUSH:
		if (data_out || in_len != 1)
			return;
		e->status = VIRTIO_BLK_S_OK;
		return;
	case VIRTIO_BLK_T_GET_ID:
		/* The 20-byte serial, as much of it as the buffer holds. */
		if (data_out)
			return;
		e->status = VIRTIO_BLK_S_OK;
		e->data_len = in_len - 1 < VIRTIO_BLK_ID_BYTES ? in_len - 1 : VIRTIO_BLK_ID_BYTES;
		e->used = e->data_len + 1;
		memcpy(id_bytes, d->serial, sizeof(id_bytes));
		e->data = id_bytes;
		return;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool discard = type == VIRTIO_BLK_T_DISCARD;
		unsigned k = !discard, nsegs = data_out / 16;
		bool unsupp = false, ioerr = false;

		/* spec: a command whose feature was not negotiated is unsupported. */
		if (!has(d, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
			e->status = VIRTIO_BLK_S_UNSUPP;
			return;
		}
		if (d->read_only || in_len != 1 || data_out % 16 || !nsegs || nsegs > d->max_seg[k])
			return;
		for (unsigned i = 0; i < nsegs; i++) {
			const uint8_t *seg = out + 16 + 16 * i;
			uint64_t s;
			uint32_t num, flags;

			memcpy(&s, seg, 8);
			memcpy(&num, seg + 8, 4);
			memcpy(&flags, seg + 12, 4);
			s = le64toh(s);
			num = le32toh(num);
			flags = le32toh(flags);
			/* spec: UNSUPP for an unknown flag, and for unmap on a discard. */
			if ((flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) || (discard && flags))
				unsupp = true;
			else if (num > d->max_sectors[k] || !in_disk(d, s, num))
				ioerr = true;
			else if (d->has_image && num)
				e->ranges[e->nranges++] = (typeof(e->ranges[0])){ s * SECTOR,
					(uint64_t)num * SECTOR, NULL, discard };
		}
		if (unsupp && ioerr) {
			e->any_status = true;
		} else if (unsupp) {
			e->status = VIRTIO_BLK_S_UNSUPP;
		} else if (!ioerr) {
			e->status = VIRTIO_BLK_S_OK;
			return;
		}
		e->nranges = 0;
		return;
	}
	default:
		/* spec: a request type the device does not know is unsupported. */
		e->status = VIRTIO_BLK_S_UNSUPP;
		return;
	}
}

static size_t flatten(const struct iovec *iov, unsigned n, uint8_t *dst)
{
	size_t k = 0;

	for (unsigned i = 0; i < n; i++) {
		memcpy(dst + k, iov[i].iov_base, iov[i].iov_len);
		k += iov[i].iov_len;
	}
	return k;
}

FUZZ_MODEL static void check_request(const struct model_dev *d, int image_fd, const struct expect *e,
				      const struct iovec *orig, unsigned n_out, unsigned n_in,
				      uint8_t **copies, uint32_t used)
{
	uint32_t in_len;

	/* Readable buffers are the driver's: the device never writes them. */
	for (unsigned i = 0; i < n_out; i++)
		FUZZ_CHECK(!memcmp(orig[i].iov_base, copies[i], orig[i].iov_len));
	in_len = (uint32_t)flatten(orig + n_out, n_in, flat_in);
	FUZZ_CHECK(used == e->used);
	if (in_len) {
		uint8_t st = flat_in[in_len - 1];

		if (e->any_status)
			FUZZ_CHECK(st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP);
		else
			FUZZ_CHECK(st == e->status);
	}
	for (uint32_t k = 0; k + 1 < in_len; k++) {
		if (k < e->data_len) {
			if (e->data)
				FUZZ_CHECK(flat_in[k] == e->data[k]);
		} else {
			FUZZ_CHECK(flat_in[k] == CANARY); /* beyond what the answer carries */
		}
	}
	if (!d->has_image)
		return;
	for (unsigned r = 0; r < e->nranges; r++) {
		if (e->ranges[r].any)
			continue;
		if (e->ranges[r].src)
			memcpy(shadow + e->ranges[r].off, e->ranges[r].src, e->ranges[r].len);
		else
			memset(shadow + e->ranges[r].off, 0, e->ranges[r].len);
	}
	FUZZ_CHECK(pread(image_fd, image_now, d->image_bytes, 0) == (ssize_t)d->image_bytes);
	for (unsigned r = 0; r < e->nranges; r++)
		if (e->ranges[r].any)
			memcpy(shadow + e->ranges[r].off, image_now + e->ranges[r].off, e->ranges[r].len);
	/* Nothing else changed: not outside the request's sectors, not the
	 * tail past the last whole sector. */
	FUZZ_CHECK(!memcmp(shadow, image_now, d->image_bytes));
}

static void one_request(struct uvirtio_blk_dev *blk, const struct model_dev *d, int image_fd,
			struct fuzz_in *in)
{
	struct iovec iov[2 * MAX_IOV], orig[2 * MAX_IOV];
	uint8_t *copies[2 * MAX_IOV] = { NULL };
	struct uvirtio_blk_dev_stats st = { 0 };
	static struct expect e;
	struct uvirtio_req req;
	unsigned n_out = in_u8(in) % (MAX_IOV + 1);
	unsigned n_in = in_u8(in) % (MAX_IOV + 1);
	unsigned n = n_out + n_in;
	uint32_t used;

	uvirtio_req_init(&req, iov, 2 * MAX_IOV);
	req.n_out = n_out;
	req.n_in = n_in;
	req.id = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t len = in_u16(in) % (MAX_IOV_LEN + 1);
		uint8_t *p = malloc(len ? len : 1);

		if (i < n_out) {
			/* Readable bytes come from the input (zeros once it runs out). */
			for (size_t j = 0; j < len; j++)
				p[j] = in_u8(in);
			copies[i] = malloc(len ? len : 1);
			memcpy(copies[i], p, len);
			req.out_len += (uint32_t)len;
		} else {
			memset(p, CANARY, len);
			req.in_len += (uint32_t)len;
		}
		iov[i] = orig[i] = (struct iovec){ p, len };
	}
	/* The model reads the request before the device does (it may change
	 * the iovec array, not the bytes). */
	flatten(orig, n_out, flat_out);
	model(d, flat_out, req.out_len, NULL, req.in_len, &e);
	used = uvirtio_blk_dev_serve_sync(blk, &req, &st);
	check_request(d, image_fd, &e, orig, n_out, n_in, copies, used);
	for (unsigned i = 0; i < n; i++) {
		free(orig[i].iov_base);
		free(copies[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static struct uvirtio_blk_dev blk;
	struct uvirtio_blk_dev_config cfg = { .backend = UVIRTIO_BLK_BACKEND_NULL };
	struct model_dev d = { 0 };
	struct blk_dev *bd;
	uint8_t flags = in_u8(&in);
	uint64_t capacity = in_num(&in);
	char path[64];
	int image_fd = -1;

	cfg.read_only = flags & 1;
	cfg.writethrough = flags & 2;
	cfg.max_discard_seg = in_u8(&in) % 20;
	cfg.max_write_zeroes_seg = in_u8(&in) % 20;
	cfg.serial = SERIAL;
	if (flags & 4) {
		d.image_bytes = capacity % (IMAGE_MAX + 1);
		image_fd = memfd_create("fuzz-blk-image", MFD_CLOEXEC);
		FUZZ_CHECK(image_fd >= 0 && ftruncate(image_fd, (off_t)d.image_bytes) == 0);
		for (uint64_t i = 0; i < d.image_bytes; i++)
			shadow[i] = (uint8_t)(i * 7 + i / 512 + 3);
		FUZZ_CHECK(pwrite(image_fd, shadow, d.image_bytes, 0) == (ssize_t)d.image_bytes);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", image_fd);
		cfg.backend = UVIRTIO_BLK_BACKEND_FILE;
		cfg.path = path;
		d.has_image = true;
	} else {
		cfg.null_capacity = capacity;
	}
	uvirtio_mem_init(&mem);
	if (uvirtio_blk_dev_init(&blk, &cfg, &mem)) {
		if (image_fd >= 0)
			close(image_fd);
		return 0;
	}
	/* Negotiated as the input says (the fuzzer stands in for FEATURES_OK). */
	bd = blk_dev_of(&blk);
	device_of(&bd->dev)->features = uvirtio_device_get_features(&bd->dev) &
					(in_u64(&in) | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	/* The model knows the device from what a driver sees: the config
	 * space and the features. */
	d.read_only = cfg.read_only;
	d.features = uvirtio_device_accepted_features(&bd->dev);
	d.capacity = le64toh(bd->config.capacity);
	d.max_seg[0] = le32toh(bd->config.max_discard_seg);
	d.max_seg[1] = le32toh(bd->config.max_write_zeroes_seg);
	d.max_sectors[0] = le32toh(bd->config.max_discard_sectors);
	d.max_sectors[1] = le32toh(bd->config.max_write_zeroes_sectors);
	strncpy(d.serial, SERIAL, sizeof(d.serial));
	FUZZ_CHECK(!d.has_image || d.capacity == d.image_bytes / SECTOR);
	for (unsigned r = 0; r < MAX_REQS && !in_empty(&in); r++)
		one_request(&blk, &d, image_fd, &in);
	uvirtio_blk_dev_destroy(&blk);
	if (image_fd >= 0)
		close(image_fd);
	return 0;
}
