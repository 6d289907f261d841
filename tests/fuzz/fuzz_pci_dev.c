// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the virtio-pci register model (src/transport/pci_dev.c)
 * over an rng device, against any sequence of register accesses a hostile
 * driver can make, with guest memory it writes as it likes.
 *
 * Input layout: a stream of operations until the input runs out, each a
 * u8 opcode (taken mod 8) and its arguments:
 *
 *   0 BAR read     u8 area, u16 offset, u8 size code
 *   1 BAR write    u8 area, u16 offset, u8 size code, u32 value
 *   2 config read  u8 offset, u8 size code
 *   3 guest write  u16 offset, u8 length, that many bytes
 *   4 kick         u8 queue (a write to its notify address)
 *   5 save, load the same state back (must succeed)
 *   6 load         u8 length, that many bytes (any answer but a crash)
 *   7 raw access   u8 write?, u32 offset, u8 size code, u32 value
 *
 * area (mod 5): 0 common config (offset mod 0x40), 1 ISR, 2 device config,
 * 3 notify (offset mod 0x100), 4 the offset as it is. size code: mod 3
 * gives 1, 2 or 4; 0xf0 and above give sizes that do not exist (0, 3, 8).
 *
 * Guest memory is GUEST_SIZE bytes at GUEST_ADDR; a driver that programs a
 * queue inside it gets a ring the device really uses. Invariants: a read
 * of something that is not a register gives 0, save/load round-trips, and
 * writing 0 to device_status leaves it reading 0 at once.
 */
#include <errno.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"
#include "uvirtio/pci.h"
#include "uvirtio/rng.h"

#define GUEST_ADDR 0x100000u
#define GUEST_SIZE 65536u

static _Alignas(4096) uint8_t guest[GUEST_SIZE];

static void irq(void *opaque, uint16_t vector)
{
	(void)opaque;
	(void)vector;
}

static unsigned size_of(uint8_t code)
{
	static const unsigned bad[] = { 0, 3, 8 };

	return code >= 0xf0 ? bad[code % 3] : 1u << (code % 3);
}

static uint64_t area_offset(uint8_t area, uint16_t off)
{
	switch (area % 5) {
	case 0:
		return UVIRTIO_PCI_COMMON_OFFSET + off % 0x40;
	case 1:
		return UVIRTIO_PCI_ISR_OFFSET + off % 4;
	case 2:
		return UVIRTIO_PCI_DEVICE_OFFSET + off % 0x100;
	case 3:
		return UVIRTIO_PCI_NOTIFY_OFFSET + off % 0x100;
	}
	return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t saved[4096], blob[256];
	struct fuzz_in in = { data, size };
	struct uvirtio_pci_dev *m;
	struct uvirtio_rng_dev rng;
	struct uvirtio_mem mem;
	uint32_t v;
	long n;

	memset(guest, 0, sizeof(guest));
	uvirtio_mem_init(&mem);
	FUZZ_CHECK(uvirtio_mem_add(&mem, &(struct uvirtio_mem_region){
					       .guest_addr = GUEST_ADDR, .size = GUEST_SIZE,
					       .host_addr = guest, .fd = -1 }) == 0);
	FUZZ_CHECK(uvirtio_rng_dev_init(&rng, &mem) == 0);
	FUZZ_CHECK(uvirtio_pci_dev_create(&m, uvirtio_rng_dev_device(&rng),
					  &(struct uvirtio_pci_dev_config){ .irq = irq }) == 0);

	while (!in_empty(&in)) {
		uint8_t op = in_u8(&in) % 8;
		uint64_t off;
		unsigned sz, len;
		uint8_t area;
		int ret;

		switch (op) {
		case 0:
			area = in_u8(&in);
			off = area_offset(area, in_u16(&in));
			sz = size_of(in_u8(&in));
			ret = uvirtio_pci_dev_read(m, UVIRTIO_PCI_SPACE_BAR0, off, sz, &v);
			FUZZ_CHECK(ret == 0 || (ret == -EINVAL && v == 0));
			/* Outside every structure a read gives 0. */
			if (off >= UVIRTIO_PCI_COMMON_CFG_SIZE && off < UVIRTIO_PCI_ISR_OFFSET)
				FUZZ_CHECK(v == 0);
			break;
		case 1:
			area = in_u8(&in);
			off = area_offset(area, in_u16(&in));
			sz = size_of(in_u8(&in));
			uvirtio_pci_dev_write(m, UVIRTIO_PCI_SPACE_BAR0, off, sz, in_u32(&in));
			break;
		case 2:
			off = in_u8(&in);
			sz = size_of(in_u8(&in));
			ret = uvirtio_pci_dev_read(m, UVIRTIO_PCI_SPACE_CONFIG, off, sz, &v);
			FUZZ_CHECK(ret == 0 || v == 0);
			break;
		case 3:
			off = in_u16(&in);
			len = in_u8(&in);
			for (unsigned i = 0; i < len; i++)
				guest[(off + i) % GUEST_SIZE] = in_u8(&in);
			break;
		case 4:
			uvirtio_pci_dev_write(m, UVIRTIO_PCI_SPACE_BAR0,
					      UVIRTIO_PCI_NOTIFY_OFFSET +
						      (uint64_t)(in_u8(&in) % 2) * UVIRTIO_PCI_NOTIFY_MULTIPLIER,
					      2, 0);
			break;
		case 5:
			n = uvirtio_pci_dev_save(m, saved, sizeof(saved));
			FUZZ_CHECK(n > 0 && (size_t)n == uvirtio_pci_dev_save_size(m));
			FUZZ_CHECK(uvirtio_pci_dev_load(m, saved, (size_t)n, NULL) == 0);
			break;
		case 6:
			len = in_u8(&in);
			for (unsigned i = 0; i < len; i++)
				blob[i] = in_u8(&in);
			uvirtio_pci_dev_load(m, blob, len, NULL);
			break;
		case 7: {
			bool write = in_u8(&in) & 1;

			off = in_u32(&in);
			sz = size_of(in_u8(&in));
			v = in_u32(&in);
			if (write)
				uvirtio_pci_dev_write(m, UVIRTIO_PCI_SPACE_BAR0, off, sz, v);
			else
				uvirtio_pci_dev_read(m, UVIRTIO_PCI_SPACE_BAR0, off, sz, &v);
			break;
		}
		}
	}

	/* spec: a reset is complete when the write of 0 returns. */
	uvirtio_pci_dev_write(m, UVIRTIO_PCI_SPACE_BAR0,
			      offsetof(struct virtio_pci_common_cfg, device_status), 1, 0);
	uvirtio_pci_dev_read(m, UVIRTIO_PCI_SPACE_BAR0,
			     offsetof(struct virtio_pci_common_cfg, device_status), 1, &v);
	FUZZ_CHECK(v == 0);
	FUZZ_CHECK(!uvirtio_device_queue_ready(uvirtio_rng_dev_device(&rng), 0));
	uvirtio_pci_dev_destroy(m);
	uvirtio_rng_dev_destroy(&rng);
	return 0;
}
