// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the virtio-mmio register model (src/transport/mmio_dev.c)
 * fed arbitrary register accesses, as a hostile guest makes them.
 *
 * Input layout (little-endian):
 *   u8 device: % 3 picks rng, an echo device with 2 queues and 16 bytes of
 *              writable config, or blk on the null backend (2 queues, queue
 *              threads, kick fds)
 *   then operations, each an op byte (% 9) and its operands:
 *     0 read      u16 offset, u8 size
 *     1 write     u16 offset, u8 size, u32 value
 *     2 reg write u8 register (index into regs[]), u32 value
 *     3 reg read  u8 register
 *     4 queue     u8 queue, u8 log2 size, u8 place: QueueSel, QueueNum and
 *                 the three ring addresses at (place % 4) KiB-steps into
 *                 guest memory, then QueueReady = 1
 *     5 status    u8 value written to Status
 *     6 save/load the model's registers saved and loaded back; then u8 n
 *                 and n bytes loaded as a blob (must be refused or valid)
 *     7 run       uvirtio_mmio_dev_run()
 *     8 poke      u16 offset, u8 n, n bytes into guest memory
 *
 * Never a crash, and after each operation: MagicValue and Version read as
 * the spec says, InterruptStatus has no bit but 0 and 1, QueueReset reads
 * 0, a malformed access reads 0, and a Status write of 0 leaves status 0
 * and InterruptStatus 0 at once.
 */
#include <errno.h>
#include <linux/virtio_mmio.h>
#include <stdint.h>
#include <string.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/mmio.h"
#include "uvirtio/rng.h"
#include "../../src/memory/memory_priv.h"
#include "fuzz_input.h"

#define GUEST_ADDR 0x10000u
#define GUEST_SIZE 0x10000u
#define MAX_OPS 256

static uint8_t guest[GUEST_SIZE] __attribute__((aligned(4096)));
static struct uvirtio_mem mem;

static const uint16_t regs[] = {
	VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_DEVICE_ID,
	VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL,
	VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,
	VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY,
	VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK,
	VIRTIO_MMIO_STATUS, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
	VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW,
	VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_MMIO_QUEUE_RESET, VIRTIO_MMIO_CONFIG_GENERATION,
	0x100, 0x104, 0x108, 0x10c,
};

/* The echo device: gives every buffer back, with its whole writable part. */
struct echo {
	struct uvirtio_device dev;
	struct iovec iov[16];
	uint8_t config[16];
};

static void echo_notify(struct uvirtio_device *dev, unsigned index)
{
	struct echo *e = uvirtio_device_priv(dev);
	struct uvirtio_devq *q = uvirtio_device_queue(dev, index);
	struct uvirtio_req req;
	unsigned budget = 64;

	uvirtio_req_init(&req, e->iov, 16);
	while (budget-- && uvirtio_devq_pop(q, &req) == 1)
		uvirtio_devq_push(q, req.id, req.in_len);
	if (!budget)
		uvirtio_device_reschedule(dev, index);
	uvirtio_device_notify(dev, index);
}

static int echo_config_write(struct uvirtio_device *dev, unsigned offset, const void *buf,
			     unsigned len)
{
	(void)dev, (void)buf, (void)len;
	/* The first 4 bytes are read-only, as a device type may have them. */
	return offset < 4 ? -EPERM : 0;
}

static const struct uvirtio_device_ops echo_ops = {
	.name = "echo", .device_id = 0xfff2, .features = UVIRTIO_BIT(0), .num_queues = 2,
	.queue_max_size = 256, .queue_notify = echo_notify, .config_write = echo_config_write,
};

static struct uvirtio_rng_dev rng;
static struct echo echo;
static struct uvirtio_blk_dev blk;

static uint32_t irqs;
static bool threaded; /* blk: queue threads run beside the fuzzer */

static void count_irq(void *opaque)
{
	(void)opaque;
	__atomic_add_fetch(&irqs, 1, __ATOMIC_RELAXED);
}

FUZZ_MODEL static void check_invariants(struct uvirtio_mmio_dev *m)
{
	uint32_t v;

	FUZZ_CHECK(uvirtio_mmio_dev_read(m, VIRTIO_MMIO_MAGIC_VALUE, 4, &v) == 0);
	FUZZ_CHECK(v == UVIRTIO_MMIO_MAGIC);
	FUZZ_CHECK(uvirtio_mmio_dev_read(m, VIRTIO_MMIO_VERSION, 4, &v) == 0 && v == 2);
	FUZZ_CHECK(uvirtio_mmio_dev_read(m, VIRTIO_MMIO_INTERRUPT_STATUS, 4, &v) == 0);
	FUZZ_CHECK((v & ~3u) == 0);
	FUZZ_CHECK(uvirtio_mmio_dev_read(m, VIRTIO_MMIO_QUEUE_RESET, 4, &v) == 0 && v == 0);
}

static void queue_macro(struct uvirtio_mmio_dev *m, struct fuzz_in *in)
{
	uint8_t index = in_u8(in), lg = in_u8(in) % 10, place = in_u8(in) % 4;
	uint32_t num = 1u << lg;
	uint64_t base = GUEST_ADDR + place * 0x4000u;

	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_SEL, 4, index % 4);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_NUM, 4, num);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_DESC_LOW, 4, (uint32_t)base);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_DESC_HIGH, 4, 0);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 4, (uint32_t)base + 0x2000);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 4, 0);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_USED_LOW, 4, (uint32_t)base + 0x3000);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_USED_HIGH, 4, 0);
	uvirtio_mmio_dev_write(m, VIRTIO_MMIO_QUEUE_READY, 4, 1);
}

static void save_load(struct uvirtio_mmio_dev *m, struct fuzz_in *in)
{
	uint8_t blob[UVIRTIO_MMIO_DEV_SAVE_SIZE(4)], again[sizeof(blob)];
	ssize_t n = uvirtio_mmio_dev_save(m, blob, sizeof(blob));
	uint8_t len;

	FUZZ_CHECK(n > 0 && (size_t)n <= sizeof(blob));
	FUZZ_CHECK(uvirtio_mmio_dev_load(m, blob, (size_t)n) == 0);
	FUZZ_CHECK(uvirtio_mmio_dev_save(m, again, sizeof(again)) == n);
	/* InterruptStatus (bytes 24 to 27) moves under us while a blk queue
	 * thread notifies; the rest is the model's alone. */
	FUZZ_CHECK(!memcmp(blob, again, 24));
	FUZZ_CHECK(!memcmp(blob + 28, again + 28, (size_t)n - 28));
	if (!threaded)
		FUZZ_CHECK(!memcmp(blob + 24, again + 24, 4));
	len = in_u8(in);
	for (unsigned i = 0; i < len && i < sizeof(blob); i++)
		blob[i] = in_u8(in);
	uvirtio_mmio_dev_load(m, blob, len < sizeof(blob) ? len : sizeof(blob));
}

static void run_ops(struct uvirtio_mmio_dev *m, struct fuzz_in *in)
{
	for (unsigned k = 0; k < MAX_OPS && !in_empty(in); k++) {
		uint8_t op = in_u8(in) % 9;
		uint32_t v = 0;
		uint16_t off;
		uint8_t size, n;
		int ret;

		switch (op) {
		case 0:
			off = in_u16(in);
			size = in_u8(in);
			ret = uvirtio_mmio_dev_read(m, off, size, &v);
			FUZZ_CHECK(ret == 0 || ret == -EINVAL);
			if (ret)
				FUZZ_CHECK(v == 0);
			break;
		case 1:
			off = in_u16(in);
			size = in_u8(in);
			v = in_u32(in);
			ret = uvirtio_mmio_dev_write(m, off, size, v);
			FUZZ_CHECK(ret == 0 || ret == -EINVAL);
			break;
		case 2:
			off = regs[in_u8(in) % (sizeof(regs) / sizeof(regs[0]))];
			uvirtio_mmio_dev_write(m, off, 4, in_u32(in));
			break;
		case 3:
			off = regs[in_u8(in) % (sizeof(regs) / sizeof(regs[0]))];
			uvirtio_mmio_dev_read(m, off, 4, &v);
			break;
		case 4:
			queue_macro(m, in);
			break;
		case 5:
			v = in_u8(in);
			uvirtio_mmio_dev_write(m, VIRTIO_MMIO_STATUS, 4, v);
			if (v == 0) {
				/* spec: an MMIO reset is complete when the write returns. */
				FUZZ_CHECK(uvirtio_mmio_dev_read(m, VIRTIO_MMIO_STATUS, 4, &v) == 0 && v == 0);
				FUZZ_CHECK(uvirtio_mmio_dev_interrupt_status(m) == 0);
			}
			break;
		case 6:
			save_load(m, in);
			break;
		case 7:
			uvirtio_mmio_dev_run(m);
			break;
		case 8:
			off = in_u16(in);
			n = in_u8(in);
			for (unsigned i = 0; i < n; i++)
				guest[(off + i) % GUEST_SIZE] = in_u8(in);
			break;
		}
		check_invariants(m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct uvirtio_mem_region r = {
		.guest_addr = GUEST_ADDR, .size = GUEST_SIZE, .host_addr = guest, .fd = -1,
	};
	struct uvirtio_blk_dev_config bc = {
		.backend = UVIRTIO_BLK_BACKEND_NULL, .null_capacity = 1 << 20, .num_queues = 2,
		.poll_us = -1,
	};
	struct uvirtio_mmio_dev_config mc = { .irq = count_irq };
	struct uvirtio_device *dev;
	struct uvirtio_mmio_dev *m;
	unsigned kind = in_u8(&in) % 3;

	threaded = kind == 2;

	if (!mem_nregions(&mem)) {
		uvirtio_mem_init(&mem);
		if (uvirtio_mem_add(&mem, &r))
			__builtin_trap();
	}
	memset(guest, 0, sizeof(guest));
	if (kind == 0) {
		FUZZ_CHECK(uvirtio_rng_dev_init(&rng, &mem) == 0);
		dev = uvirtio_rng_dev_device(&rng);
	} else if (kind == 1) {
		memset(&echo, 0, sizeof(echo));
		FUZZ_CHECK(uvirtio_device_init(&echo.dev, &echo_ops, &echo, echo.config,
					       sizeof(echo.config), &mem) == 0);
		dev = &echo.dev;
	} else {
		FUZZ_CHECK(uvirtio_blk_dev_init(&blk, &bc, &mem) == 0);
		dev = uvirtio_blk_dev_device(&blk);
	}
	FUZZ_CHECK(uvirtio_mmio_dev_create(&m, dev, &mc) == 0);
	run_ops(m, &in);
	uvirtio_mmio_dev_destroy(m);
	if (kind == 0)
		uvirtio_rng_dev_destroy(&rng);
	else if (kind == 1)
		uvirtio_device_destroy(&echo.dev);
	else
		uvirtio_blk_dev_destroy(&blk);
	return 0;
}
