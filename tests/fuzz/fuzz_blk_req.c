// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the blk device's request checks (src/devices/blk_req.c)
 * through uvirtio_blk_dev_serve_sync() on the null backend, with no thread.
 *
 * The input picks the device (read-only, negotiated features, capacity,
 * segment limits), then a sequence of requests: how many readable and
 * writable iovecs, each one's length, and the readable bytes (header,
 * segments, data). Each iovec is a heap block of its exact size, so ASan
 * stops any access outside it; afterwards readable bytes must be as they
 * were, and of the writable bytes only the first used - 1 and the status
 * byte (the last writable byte) may have changed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uvirtio/blk_dev.h"
#include "fuzz_input.h"

#define MAX_IOV 8
#define MAX_IOV_LEN 1200
#define MAX_REQS 16
#define CANARY 0xa5

static struct uvirtio_mem mem;

/* Does byte @k (counted over the writable part, of @in_len bytes) lie where
 * the device may write given used length @used? */
FUZZ_MODEL static bool may_write(uint64_t k, uint64_t in_len, uint32_t used)
{
	if (!used)
		return false;
	return k + 1 < used || k == in_len - 1;
}

FUZZ_MODEL static void check_request(const struct uvirtio_req *req, struct iovec *orig,
				      uint8_t **copies, uint32_t used)
{
	uint64_t k = 0;

	FUZZ_CHECK(used <= req->in_len);
	/* No status byte, nothing written back. */
	if (!req->in_len)
		FUZZ_CHECK(used == 0);
	else
		FUZZ_CHECK(used >= 1);
	for (unsigned i = 0; i < req->n_out; i++)
		FUZZ_CHECK(!memcmp(orig[i].iov_base, copies[i], orig[i].iov_len));
	for (unsigned i = req->n_out; i < req->n_out + req->n_in; i++) {
		const uint8_t *p = orig[i].iov_base;

		for (size_t j = 0; j < orig[i].iov_len; j++, k++) {
			if (!may_write(k, req->in_len, used))
				FUZZ_CHECK(p[j] == CANARY);
			else if (k == req->in_len - 1)
				FUZZ_CHECK(p[j] <= VIRTIO_BLK_S_UNSUPP);
		}
	}
}

static void one_request(struct uvirtio_blk_dev *blk, struct fuzz_in *in)
{
	struct iovec iov[2 * MAX_IOV], orig[2 * MAX_IOV];
	uint8_t *copies[2 * MAX_IOV] = { NULL };
	struct uvirtio_blk_dev_stats st = { 0 };
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
	used = uvirtio_blk_dev_serve_sync(blk, &req, &st);
	check_request(&req, orig, copies, used);
	for (unsigned i = 0; i < n; i++) {
		free(orig[i].iov_base);
		free(copies[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static struct uvirtio_blk_dev blk;
	struct uvirtio_blk_dev_config cfg = { .backend = UVIRTIO_BLK_BACKEND_NULL };
	uint8_t flags = in_u8(&in);
	uint64_t features;

	cfg.read_only = flags & 1;
	cfg.writethrough = flags & 2;
	cfg.null_capacity = in_num(&in);
	cfg.max_discard_seg = in_u8(&in) % 20;
	cfg.max_write_zeroes_seg = in_u8(&in) % 20;
	cfg.serial = "fuzz-serial-0123456789";
	uvirtio_mem_init(&mem);
	if (uvirtio_blk_dev_init(&blk, &cfg, &mem))
		return 0;
	/* Negotiated as the input says (the fuzzer stands in for FEATURES_OK). */
	features = uvirtio_device_get_features(&blk.dev);
	blk.dev.features = features & (in_u64(&in) | UVIRTIO_BIT(VIRTIO_F_VERSION_1));
	for (unsigned r = 0; r < MAX_REQS && !in_empty(&in); r++)
		one_request(&blk, &in);
	uvirtio_blk_dev_destroy(&blk);
	return 0;
}
