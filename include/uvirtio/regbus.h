/* SPDX-License-Identifier: MIT */
/*
 * A register bus: how a driver-side register transport (virtio-mmio,
 * virtio-pci) reaches a device's registers. An emulator or firmware that
 * embeds a device-side register model routes its guest's trapped accesses
 * to that model; uvirtio's own driver-side transports make their accesses
 * through this table, so the device end can be a model in this process, or
 * one in another process reached over a socket, without the driver knowing.
 *
 * Accesses are little-endian values of 1, 2 or 4 bytes, as a CPU makes
 * them. @space selects an address space: for virtio-pci 0 is PCI
 * configuration space and 1 is BAR 0; virtio-mmio has only space 0.
 */
#ifndef UVIRTIO_REGBUS_H
#define UVIRTIO_REGBUS_H

#include <stdint.h>

struct uvirtio_regbus {
	/* Return 0, or a negative errno when the device end is gone
	 * (-ENOTCONN) or the access is malformed (-EINVAL). */
	int (*read)(void *opaque, unsigned space, uint64_t offset, unsigned size,
		    uint32_t *value);
	int (*write)(void *opaque, unsigned space, uint64_t offset, unsigned size,
		     uint32_t value);
	void *opaque;
};

#endif
