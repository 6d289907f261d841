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

#include "uvirtio/api.h"

struct uvirtio_regbus {
	/* Return 0, or a negative errno when the device end is gone
	 * (-ENOTCONN) or the access is malformed (-EINVAL). */
	int (*read)(void *opaque, unsigned space, uint64_t offset, unsigned size,
		    uint32_t *value);
	int (*write)(void *opaque, unsigned space, uint64_t offset, unsigned size,
		     uint32_t value);
	void *opaque;
};

/*
 * A register bus across processes: the device end's model runs in another
 * process (moved there with a snapshot, say) and serves the accesses that
 * arrive on a connected stream socket; this side forwards them. Each access
 * is one 16-byte request (u8 op, u8 space, u8 size, u8 zero, le32 value,
 * le64 offset) and one 8-byte reply (le32 negative errno or 0, le32 value).
 * Interrupts do not travel here: the device end signals eventfds it
 * inherited or was given.
 *
 * Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects").
 */
struct uvirtio_regbus_remote {
	UVIRTIO_OPAQUE(256);
};

/**
 * uvirtio_regbus_remote_init() - forward accesses over @fd, a connected
 * stream socket whose other end runs uvirtio_regbus_serve(). @r is the
 * caller's; the fd stays the caller's too. Thread-safe: accesses from
 * several threads are serialised. An access fails with -ENOTCONN once the
 * other end is gone, and -EPROTO on a reply that makes no sense.
 */
UVIRTIO_API
void uvirtio_regbus_remote_init(struct uvirtio_regbus_remote *r, int fd);

/**
 * uvirtio_regbus_remote_bus() - the bus to hand to a driver-side transport
 * (uvirtio_mmio_drv_set_bus(), uvirtio_pci_drv_set_bus()).
 * @r: an initialised one. Return: owned by @r, valid until its destroy.
 */
UVIRTIO_API
struct uvirtio_regbus *uvirtio_regbus_remote_bus(struct uvirtio_regbus_remote *r);

/** uvirtio_regbus_remote_destroy() - free what init set up (not the fd). */
UVIRTIO_API
void uvirtio_regbus_remote_destroy(struct uvirtio_regbus_remote *r);

/**
 * uvirtio_regbus_serve() - serve the accesses arriving on @fd with @local
 * (a device-side model's bus) until the other end closes @fd.
 * Return: 0 at end of stream; -EPROTO for a malformed request (the peer is
 * not trusted: the stream then ends); or a negative errno of the socket.
 */
UVIRTIO_API
int uvirtio_regbus_serve(int fd, const struct uvirtio_regbus *local);

#endif
