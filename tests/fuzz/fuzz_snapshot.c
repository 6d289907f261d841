// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: uvirtio_device_restore() (src/core/snapshot.c) fed
 * arbitrary snapshot blobs for an rng device over 64 KiB of guest memory;
 * a restored device is then resumed, kicked and reset, so whatever restore
 * accepted must also be safe to run.
 *
 * Input layout (little-endian; a short input reads as zeros):
 *   u8  flags: bit 0 reseal (rewrite the length and CRC fields so the
 *       fuzzer gets past them to the fields they guard),
 *       bit 1 after a successful restore, resume and kick queue 0
 *   u16 len, len bytes        guest memory from offset 0 (at GUEST_ADDR)
 *   the rest                  the blob
 *
 * Invariants: a refused blob leaves the device at status 0 with a reason;
 * an accepted one leaves it suspended.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uvirtio/rng.h"
#include "uvirtio/snapshot.h"
#include "fuzz_input.h"
#include "../../src/core/crc32.h"

#define GUEST_SIZE 65536u
#define GUEST_ADDR 0x10000u

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *guest;
	struct fuzz_in in = { data, size };
	struct uvirtio_mem_region r;
	struct uvirtio_rng_dev rng;
	struct uvirtio_mem mem;
	uint8_t flags = in_u8(&in);
	uint16_t glen = in_u16(&in);
	const char *why = NULL;
	uint8_t *blob;
	size_t n;
	int ret;

	if (!guest)
		guest = aligned_alloc(4096, GUEST_SIZE);
	memset(guest, 0, GUEST_SIZE);
	for (unsigned i = 0; i < glen && i < GUEST_SIZE; i++)
		guest[i] = in_u8(&in);
	n = in.n;
	blob = malloc(n ? n : 1);
	memcpy(blob, in.p, n);
	if ((flags & 1) && n >= 16) {
		put32(blob + 12, (uint32_t)n);
		put32(blob + n - 4, crc32_ieee(blob, n - 4));
	}

	uvirtio_mem_init(&mem);
	r = (struct uvirtio_mem_region){ .guest_addr = GUEST_ADDR, .size = GUEST_SIZE,
					 .host_addr = guest, .fd = -1 };
	uvirtio_mem_add(&mem, &r);
	if (uvirtio_rng_dev_init(&rng, &mem))
		abort();
	ret = uvirtio_device_restore(uvirtio_rng_dev_device(&rng), blob, n, &why);
	if (ret) {
		FUZZ_CHECK(why != NULL);
		FUZZ_CHECK(uvirtio_device_get_status(uvirtio_rng_dev_device(&rng)) == 0);
	} else {
		FUZZ_CHECK(uvirtio_device_suspended(uvirtio_rng_dev_device(&rng)));
		if (flags & 2) {
			uvirtio_device_set_status(uvirtio_rng_dev_device(&rng), uvirtio_device_get_status(uvirtio_rng_dev_device(&rng)) |
								    VIRTIO_CONFIG_S_DRIVER_OK);
			uvirtio_device_queue_notify(uvirtio_rng_dev_device(&rng), 0);
		}
	}
	uvirtio_rng_dev_destroy(&rng);
	free(blob);
	return 0;
}
