// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the virtio-pci driver's capability walk and set-up
 * (src/transport/pci_drv.c) against a hostile device: PCI configuration
 * space and the common configuration structure come from the input.
 *
 * Input layout:
 *
 *   256 bytes  PCI configuration space
 *   64 bytes   the common configuration structure, as the device presents
 *              it wherever its COMMON capability says (num_queues,
 *              device_status, queue_size, queue_enable, queue_notify_off
 *              ... read from here; writes are ignored)
 *   u8         flags: 0x01 run the transport's ops after create
 *   the rest   device configuration bytes (read back as any access asks)
 *
 * Invariants: read_caps and create return (no loop: the walk and every
 * wait are bounded, the waits with a time-out of 0); a capability set they
 * accept lies inside BAR 0; create refuses what read_caps refuses.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"
#include "uvirtio/pci.h"

#define DMA_SIZE 65536u

struct hostile {
	uint8_t cs[256];
	uint8_t common[64];
	const uint8_t *devcfg;
	size_t devcfg_len;
	uint32_t common_offset; /* from the caps, once known */
	uint64_t reads;
};

static _Alignas(4096) uint8_t dma_area[DMA_SIZE];

static FUZZ_MODEL int hostile_read(void *opaque, unsigned space, uint64_t off, unsigned size,
				   uint32_t *v)
{
	struct hostile *h = opaque;

	*v = 0;
	h->reads++;
	for (unsigned i = 0; i < size; i++) {
		uint64_t at = off + i;
		uint8_t b = 0;

		if (space == UVIRTIO_PCI_SPACE_CONFIG) {
			b = at < sizeof(h->cs) ? h->cs[at] : 0;
		} else if (at >= h->common_offset && at - h->common_offset < sizeof(h->common)) {
			b = h->common[at - h->common_offset];
		} else if (h->devcfg_len) {
			b = h->devcfg[at % h->devcfg_len];
		}
		*v |= (uint32_t)b << (8 * i);
	}
	return 0;
}

static FUZZ_MODEL int hostile_write(void *opaque, unsigned space, uint64_t off, unsigned size,
				    uint32_t v)
{
	(void)opaque, (void)space, (void)off, (void)size, (void)v;
	return 0;
}

static void check_inside(uint32_t offset, uint32_t length)
{
	FUZZ_CHECK(offset <= UVIRTIO_PCI_BAR0_SIZE && length <= UVIRTIO_PCI_BAR0_SIZE - offset);
}

static void run_ops(struct uvirtio_transport *t, const struct uvirtio_pci_caps *caps)
{
	struct uvirtio_queue_layout l = { .num = 8, .desc = 0x1000, .avail = 0x2000, .used = 0x3000 };
	uint8_t buf[64];
	uint64_t features;
	uint32_t gen;
	unsigned max;
	uint8_t status;

	uvirtio_pci_drv_set_timeout(t, 0);
	t->ops->reset(t);
	t->ops->get_features(t, &features);
	t->ops->set_features(t, features);
	t->ops->get_status(t, &status);
	t->ops->set_status(t, 0x0b);
	t->ops->config_generation(t, &gen);
	if (caps->device_length)
		t->ops->get_config(t, 0, buf, caps->device_length < sizeof(buf) ? caps->device_length
										: sizeof(buf));
	FUZZ_CHECK(t->ops->get_config(t, caps->device_length, buf, 1) == -EINVAL);
	for (unsigned i = 0; i < 3; i++) {
		t->ops->queue_max_size(t, i, &max);
		if (t->ops->queue_enable(t, i, &l) == 0) {
			t->ops->notify(t, i);
			t->ops->queue_reset(t, i);
		}
		t->ops->event_fd(t, i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct uvirtio_pci_caps caps;
	struct uvirtio_transport *t;
	struct uvirtio_regbus bus;
	struct uvirtio_dma dma;
	struct hostile h;
	const char *why = NULL;
	uint8_t flags;
	int ret, ret2;

	memset(&h, 0, sizeof(h));
	for (unsigned i = 0; i < sizeof(h.cs); i++)
		h.cs[i] = in_u8(&in);
	for (unsigned i = 0; i < sizeof(h.common); i++)
		h.common[i] = in_u8(&in);
	flags = in_u8(&in);
	h.devcfg = in.p;
	h.devcfg_len = in.n;
	bus = (struct uvirtio_regbus){ .read = hostile_read, .write = hostile_write, .opaque = &h };

	ret = uvirtio_pci_drv_read_caps(&bus, &caps, &why);
	FUZZ_CHECK(ret <= 0);
	FUZZ_CHECK(ret == 0 || why != NULL);
	/* Each dword of capability space at most once, a few reads each. */
	FUZZ_CHECK(h.reads < 64 * 12);
	if (ret)
		return 0;
	check_inside(caps.common_offset, caps.common_length);
	check_inside(caps.notify_offset, caps.notify_length);
	check_inside(caps.isr_offset, caps.isr_length);
	check_inside(caps.device_offset, caps.device_length);
	h.common_offset = caps.common_offset;

	FUZZ_CHECK(uvirtio_dma_init(&dma, dma_area, 0x100000, sizeof(dma_area)) == 0);
	ret2 = uvirtio_pci_drv_create(&t, &bus, &dma);
	FUZZ_CHECK(ret2 == 0 || ret2 == -ENOMEM || ret2 == -EMFILE);
	if (!ret2) {
		if (flags & 1)
			run_ops(t, &caps);
		uvirtio_pci_drv_destroy(t);
	}
	uvirtio_dma_destroy(&dma);
	return 0;
}
