// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: inflight tracking (src/ring/devq_inflight.c) under a
 * schedule and a death the input chooses, and an area the input spoils.
 *
 * A driver (drvq) and a device (devq) share one ring in one memory; the
 * input is a program of driver and device steps. The device dies (the crash
 * hook longjmps out of the ring code) at the point and the time the input
 * names, the input may then flip bytes of the area (what a front-end could
 * hand back), and a new device resumes the ring from the area at the base
 * QEMU 7.2 would send, then the program runs on and the ring is drained.
 *
 * Input layout:
 *   u8  flags: 0x01 packed, 0x02 INDIRECT_DESC (the driver uses tables of 4)
 *   u8  crash point (mod 5 + 1; 0 never), u8 crash at its Nth time (N + 1)
 *   u8  byte flips, then that many { u16 offset into the area, u8 xor }
 *   the rest: steps, one byte each (bits 0-1 what, bits 2-7 how many):
 *       0 the driver adds buffers, 1 the device pops and holds them,
 *       2 the device pushes what it holds (a batch, the last first),
 *       3 the driver takes what is used
 *
 * Invariants: no memory error anywhere (ASan), whatever the area holds;
 * resume returns the number resubmitted or -EBADMSG; the device never holds
 * more than the ring, never hands out a handle twice; the driver's ring
 * never breaks and, with the area untouched, every buffer added comes back
 * to the driver exactly once by the end. With the area spoiled, the only
 * promise is safety: no iovec outside guest memory, no crash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "uvirtio/devq.h"
#include "uvirtio/dma.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"
#include "../../src/ring/devq_priv.h"

#define GA 0x100000000ull
#define MEM_SIZE (256u << 10)
#define NUM 8
#define MAX_BUFS 200

static char mem_base[MEM_SIZE] __attribute__((aligned(4096)));
static uint8_t area[512] __attribute__((aligned(64)));

static struct uvirtio_dma dma;
static struct uvirtio_mem mem;
static struct uvirtio_drvq dq_drv;
static struct uvirtio_drvq_ring ring;
static struct uvirtio_devq q;
static uint64_t features;
static size_t area_size;
static char *bufs;

static struct iovec iov[16];
static struct uvirtio_req req;
static struct uvirtio_used held[NUM];
static unsigned nheld;
static bool handle_out[NUM];
static bool spoiled; /* the area was changed behind the device's back */
static unsigned added, returned[MAX_BUFS];

static jmp_buf died;
static int crash_point;
static unsigned crash_nth, crash_seen;

static void crash_hook(const struct devq *dq, enum devq_crash_point at)
{
	(void)dq;
	if ((int)at == crash_point && ++crash_seen == crash_nth)
		longjmp(died, 1);
}

static int device_start(uint16_t next_avail, uint16_t used)
{
	int ret;

	uvirtio_devq_reset(&q);
	ret = uvirtio_devq_setup(&q, &mem, NUM, ring.desc, ring.avail, ring.used, features);
	FUZZ_CHECK(ret == 0);
	FUZZ_CHECK(uvirtio_devq_set_indices(&q, next_avail, used) == 0);
	uvirtio_devq_set_inflight(&q, area, area_size);
	ret = uvirtio_devq_resume_inflight(&q);
	FUZZ_CHECK(ret >= 0 || ret == -EBADMSG);
	FUZZ_CHECK(ret <= NUM);
	nheld = 0;
	memset(handle_out, 0, sizeof(handle_out));
	return ret;
}

static void add_one(void)
{
	unsigned k = added;
	char *b = bufs + (k % 64) * 1024;
	struct iovec out[2] = { { b, 16 + k % 7 }, { b + 256, 32 } };
	struct iovec in[2] = { { b + 512, 64 + k % 5 }, { b + 768, 8 } };
	void *token = (void *)(uintptr_t)(k + 1);
	int ret;

	if (added >= MAX_BUFS || uvirtio_drvq_num_free(&dq_drv) < 4)
		return;
	ret = uvirtio_drvq_add(&dq_drv, out, 1 + k % 2, in, k % 3, token);
	/* A driver the device broke (a spoiled area) takes nothing more;
	 * whether it may break is checked at the end. */
	FUZZ_CHECK(ret == 0 || uvirtio_drvq_is_broken(&dq_drv));
	added += ret == 0;
}

static void pop_one(void)
{
	int ret;

	if (nheld == NUM)
		return;
	uvirtio_req_init(&req, iov, 16);
	ret = uvirtio_devq_pop(&q, &req);
	FUZZ_CHECK(ret == 0 || ret == 1 || ret == -EIO);
	if (ret != 1)
		return;
	/* Packed handles are the device's own: never two alike. A split head
	 * is the driver's: a spoiled area can name one the driver also made
	 * available again, as a hostile driver can. */
	FUZZ_CHECK(req.id < NUM);
	FUZZ_CHECK(!handle_out[req.id] || (spoiled && !(features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED))));
	for (unsigned i = 0; i < req.n_out + req.n_in; i++)
		FUZZ_CHECK((char *)req.iov[i].iov_base >= mem_base &&
			   (char *)req.iov[i].iov_base + req.iov[i].iov_len <= mem_base + MEM_SIZE);
	handle_out[req.id] = true;
	held[nheld++] = (struct uvirtio_used){ .id = req.id, .len = 0 };
}

static void push_held(void)
{
	int ret;

	if (!nheld)
		return;
	for (unsigned i = 0; i < nheld / 2; i++) {
		struct uvirtio_used t = held[i];

		held[i] = held[nheld - 1 - i];
		held[nheld - 1 - i] = t;
	}
	ret = uvirtio_devq_push_batch(&q, held, nheld);
	FUZZ_CHECK(ret == 0 || ret == -EIO);
	for (unsigned i = 0; i < nheld; i++)
		handle_out[held[i].id] = false;
	nheld = 0;
}

static void take_used(void)
{
	void *token;
	uint32_t len;

	while (uvirtio_drvq_get(&dq_drv, &token, &len) == 1) {
		uintptr_t k = (uintptr_t)token - 1;

		FUZZ_CHECK(k < MAX_BUFS);
		returned[k]++;
	}
}

static void step(uint8_t s)
{
	unsigned n = 1 + (s >> 2) % 4;

	for (unsigned i = 0; i < n; i++) {
		switch (s & 3) {
		case 0:
			add_one();
			break;
		case 1:
			pop_one();
			break;
		case 2:
			push_held();
			return;
		default:
			take_used();
			return;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = MEM_SIZE, .fd = -1,
					.host_addr = mem_base };
	struct fuzz_in in = { data, size };
	uint8_t flags = in_u8(&in), point = in_u8(&in), nth = in_u8(&in), flips = in_u8(&in);
	bool packed = flags & 1;
	/* volatile: kept across the longjmp. */
	volatile size_t at;
	const uint8_t *steps;
	size_t nsteps;

	struct { uint16_t off; uint8_t x; } flip[16];
	unsigned nflips = flips % 17;

	features = UVIRTIO_BIT(VIRTIO_F_VERSION_1) | (packed ? UVIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0) |
		   (flags & 2 ? UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) : 0);

	for (unsigned i = 0; i < nflips; i++) {
		flip[i].off = in_u16(&in);
		flip[i].x = in_u8(&in);
	}
	steps = in.p;
	nsteps = in.n;

	memset(mem_base, 0, sizeof(mem_base));
	memset(area, 0, sizeof(area));
	memset(returned, 0, sizeof(returned));
	added = 0;
	spoiled = false;
	area_size = uvirtio_devq_inflight_size(NUM, packed);
	FUZZ_CHECK(area_size <= sizeof(area));
	uvirtio_dma_init(&dma, mem_base, GA, MEM_SIZE);
	uvirtio_mem_init(&mem);
	FUZZ_CHECK(uvirtio_mem_add(&mem, &r) == 0);
	FUZZ_CHECK(uvirtio_drvq_create(&dq_drv, &dma, 0, NUM, features, flags & 2 ? 4 : 0) == 0);
	bufs = uvirtio_dma_alloc(&dma, 64 * 1024, 64);
	FUZZ_CHECK(bufs != NULL);
	uvirtio_drvq_ring(&dq_drv, &ring);
	memset(&q, 0, sizeof(q));
	device_start(packed ? 0x8000 : 0, packed ? 0x8000 : 0);

	crash_point = point ? (point - 1) % DEVQ_CRASH_POINTS : -1;
	crash_nth = 1u + nth;
	crash_seen = 0;
	devq_crash_hook = crash_point >= 0 ? crash_hook : NULL;
	at = 0;
	if (setjmp(died)) {
		uint16_t used;

		devq_crash_hook = NULL;
		for (unsigned i = 0; i < nflips; i++) {
			area[flip[i].off % area_size] ^= flip[i].x;
			spoiled |= flip[i].x != 0;
		}
		/* The base QEMU 7.2 sends after a backend died. */
		used = packed ? 0x8000 : __atomic_load_n(&((struct vring_used *)ring.used_host)->idx,
						  __ATOMIC_ACQUIRE);
		device_start(used, used);
		at++; /* the step the device died in is not run again */
	}
	for (; at < nsteps; at++)
		step(steps[at]);
	devq_crash_hook = NULL;

	/* Drain: every buffer added comes back, unless the area was spoiled
	 * (then the ring may have broken, or requests may be lost). */
	for (unsigned round = 0; round < 4 * MAX_BUFS && !uvirtio_devq_is_broken(&q); round++) {
		pop_one();
		push_held();
		take_used();
	}
	FUZZ_CHECK(!uvirtio_drvq_is_broken(&dq_drv) || spoiled);
	if (!spoiled) {
		FUZZ_CHECK(!uvirtio_devq_is_broken(&q));
		for (unsigned k = 0; k < added; k++)
			FUZZ_CHECK(returned[k] == 1);
	}
	uvirtio_devq_set_inflight(&q, NULL, 0);
	uvirtio_devq_reset(&q);
	uvirtio_drvq_destroy(&dq_drv);
	uvirtio_dma_destroy(&dma);
	return 0;
}
