/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci, modern interface (virtio 1.x, section 4.1), both ends:
 *
 * - the device side, a register model of one struct uvirtio_device as a
 *   PCI function: PCI configuration space with the virtio vendor
 *   capabilities, and BAR 0 with the common configuration, ISR, device
 *   configuration and notification structures. A VMM (or a test) routes
 *   its guest's accesses to it with uvirtio_pci_dev_read()/_write();
 * - the driver side, a struct uvirtio_transport that behaves as Linux 6.1's
 *   virtio_pci_modern and makes every access to the device through a
 *   struct uvirtio_regbus, so the device end may be a model in this
 *   process or one in another;
 * - an in-process pair of the two, shaped like loopback.h.
 *
 * Address spaces on the regbus: 0 (UVIRTIO_PCI_SPACE_CONFIG) is the 256
 * bytes of PCI configuration space, 1 (UVIRTIO_PCI_SPACE_BAR0) is BAR 0.
 *
 * Interrupts are MSI-X style: the driver transport asks for vector 0 for
 * configuration changes and vector i + 1 for queue i, and owns one eventfd
 * per vector. The model calls its irq callback with the vector to raise; a
 * source whose vector is VIRTIO_MSI_NO_VECTOR raises the legacy interrupt
 * (INTx) instead: the model sets its ISR bit and calls irq with
 * VIRTIO_MSI_NO_VECTOR.
 */
#ifndef UVIRTIO_PCI_H
#define UVIRTIO_PCI_H

#include <stddef.h>
#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"
#include "uvirtio/dma.h"
#include "uvirtio/memory.h"
#include "uvirtio/regbus.h"
#include "uvirtio/transport.h"

#define UVIRTIO_PCI_SPACE_CONFIG 0u
#define UVIRTIO_PCI_SPACE_BAR0 1u

#define UVIRTIO_PCI_VENDOR_ID 0x1af4u
/* Modern (non-transitional) device ids: 0x1040 + the virtio device id. */
#define UVIRTIO_PCI_DEVICE_ID_BASE 0x1040u
#define UVIRTIO_PCI_DEVICE_ID_LAST 0x107fu
#define UVIRTIO_PCI_CONFIG_SPACE_SIZE 256u

/* The model's BAR 0. Its size is a constant of the model, and the driver
 * side takes it as the size of BAR 0 too: a capability that points outside
 * it is refused. */
#define UVIRTIO_PCI_BAR0_SIZE 0x4000u
#define UVIRTIO_PCI_COMMON_OFFSET 0x0000u
#define UVIRTIO_PCI_ISR_OFFSET 0x1000u
#define UVIRTIO_PCI_DEVICE_OFFSET 0x2000u
#define UVIRTIO_PCI_NOTIFY_OFFSET 0x3000u
#define UVIRTIO_PCI_NOTIFY_MULTIPLIER 4u
/* Queue i's notify address is NOTIFY_OFFSET + i * MULTIPLIER, inside the
 * 4 KiB notify area: so many queues at most. */
#define UVIRTIO_PCI_MAX_QUEUES 1024u
/* Device configuration space fits its 4 KiB area. */
#define UVIRTIO_PCI_DEVICE_CFG_MAX 0x1000u

/* Device side: the register model. */

struct uvirtio_pci_dev;

struct uvirtio_pci_dev_config {
	/* Raise interrupt @vector (or the INTx line for VIRTIO_MSI_NO_VECTOR).
	 * Called from whatever thread the device notifies on, a queue thread
	 * included, possibly while a register access holds the model's lock:
	 * it must not block and must not access the model's registers. */
	void (*irq)(void *opaque, uint16_t vector);
	void *opaque;
	/* MSI-X vectors the function has; 0: the device's queue count + 1.
	 * A vector written at or above this reads back VIRTIO_MSI_NO_VECTOR. */
	unsigned nvectors;
	/* Subsystem vendor and id in PCI configuration space; 0: 0x1af4 and
	 * the virtio device id. */
	uint16_t subsystem_vendor, subsystem_id;
};

/**
 * uvirtio_pci_dev_create() - a virtio-pci register model for @dev.
 * @out: set to the model, owned by the caller (free with destroy).
 * @dev: the device, initialised by its device type; owned by the caller,
 *       who keeps it alive until destroy. No queue thread of it may run
 *       (status 0, or a device restored from a snapshot, suspended). The
 *       model sets its hooks, and for a device type that takes kick fds,
 *       one eventfd per queue (the model owns them).
 * @cfg: irq callback and vectors; copied.
 *
 * Return: 0; -EINVAL for a device with more than UVIRTIO_PCI_MAX_QUEUES
 * queues, more than UVIRTIO_PCI_DEVICE_CFG_MAX bytes of config space, a
 * device id the PCI device id cannot carry, nvectors above 2048, or no irq;
 * -ENOMEM; or eventfd's errno.
 */
UVIRTIO_API
int uvirtio_pci_dev_create(struct uvirtio_pci_dev **out, struct uvirtio_device *dev,
			   const struct uvirtio_pci_dev_config *cfg);

/**
 * uvirtio_pci_dev_read() - the driver reads @size bytes (1, 2 or 4) at
 * @offset of address space @space; @value gets them, little-endian. Thread
 * rules: any thread; register accesses are serialised by the model's lock.
 * A read of something that is not a register (wrong size, misaligned, out
 * of range) gives 0, as a PCI bus does.
 *
 * Return: 0, or -EINVAL for a @space or @size that does not exist (@value
 * is then 0 too).
 */
UVIRTIO_API
int uvirtio_pci_dev_read(struct uvirtio_pci_dev *m, unsigned space, uint64_t offset, unsigned size,
			 uint32_t *value);

/**
 * uvirtio_pci_dev_write() - the driver writes @value (@size bytes: 1, 2 or
 * 4) at @offset of address space @space. Thread rules as for read; a kick
 * of a device type that takes kick fds takes no lock. Writing 0 to
 * device_status resets the device before this returns, and so does writing
 * 1 to queue_reset for its queue (with VIRTIO_F_RING_RESET). A write that
 * is not to a register, or that the device refuses, changes nothing.
 *
 * Return: 0, or -EINVAL for a @space or @size that does not exist.
 */
UVIRTIO_API
int uvirtio_pci_dev_write(struct uvirtio_pci_dev *m, unsigned space, uint64_t offset, unsigned size,
			  uint32_t value);

/**
 * uvirtio_pci_dev_bus() - fill @bus with accessors that call this model
 * directly (uvirtio_pci_dev_read/_write); valid until destroy.
 */
UVIRTIO_API
void uvirtio_pci_dev_bus(struct uvirtio_pci_dev *m, struct uvirtio_regbus *bus);

/**
 * uvirtio_pci_dev_isr_peek() - the ISR bits now, without clearing them
 * (reading the ISR register clears them); for tests and reports.
 */
UVIRTIO_API
uint8_t uvirtio_pci_dev_isr_peek(struct uvirtio_pci_dev *m);

/**
 * uvirtio_pci_dev_save_size() - bytes uvirtio_pci_dev_save() writes.
 */
UVIRTIO_API
size_t uvirtio_pci_dev_save_size(const struct uvirtio_pci_dev *m);

/**
 * uvirtio_pci_dev_save() - write the model's own state (what the device
 * core's snapshot does not hold: MSI-X vectors, selectors, the queue fields
 * the driver staged but did not enable, ISR) into @buf, to move the device
 * to another process: save this and uvirtio_device_snapshot(), restore the
 * snapshot into a fresh device there, make a model for it, then
 * uvirtio_pci_dev_load().
 *
 * Layout (version 1), every integer little-endian:
 *   header  magic "UVPCIDEV", le32 version, le32 total length,
 *           le32 queue count, le32 vectors, le32 device_feature_select,
 *           le32 driver_feature_select, le16 msix_config, le16 queue_select,
 *           u8 ISR, 3 zero bytes
 *   queue   le16 staged size (0: never written), le16 vector, 4 zero bytes,
 *   (each)  le64 staged desc, le64 staged driver, le64 staged device
 *
 * Thread rules: no register access may run meanwhile.
 * Return: the bytes written; -ENOSPC when @size is too small.
 */
UVIRTIO_API
long uvirtio_pci_dev_save(const struct uvirtio_pci_dev *m, void *buf, size_t size);

/**
 * uvirtio_pci_dev_load() - take the state uvirtio_pci_dev_save() wrote.
 * @why: if not NULL, set to a static one-line reason on failure.
 *
 * Everything is checked before anything changes: on failure the model is
 * as it was. Thread rules: no register access may run meanwhile.
 *
 * Return: 0; -EBADMSG for a truncated or malformed blob (magic, length,
 * non-zero padding, a vector the function does not have, a staged size
 * above the maximum, ISR bits that do not exist); -EPROTONOSUPPORT for
 * another version; -EINVAL for a blob of a model with another queue or
 * vector count.
 */
UVIRTIO_API
int uvirtio_pci_dev_load(struct uvirtio_pci_dev *m, const void *buf, size_t size, const char **why);

/**
 * uvirtio_pci_dev_destroy() - reset the device (its queue threads stop and
 * it sends nothing more), take the model's hooks and kick fds off it, and
 * free the model. The device stays the caller's. NULL is ignored.
 */
UVIRTIO_API
void uvirtio_pci_dev_destroy(struct uvirtio_pci_dev *m);

/* Driver side: the transport. */

/* Where the capabilities put each structure in BAR 0, as the driver found. */
struct uvirtio_pci_caps {
	uint16_t pci_device_id;   /* 0x1040 + virtio device id */
	uint32_t virtio_device_id;
	uint32_t common_offset, common_length;
	uint32_t notify_offset, notify_length, notify_multiplier;
	uint32_t isr_offset, isr_length;
	uint32_t device_offset, device_length; /* length 0: no device config */
};

/**
 * uvirtio_pci_drv_read_caps() - check that the function at @bus is a modern
 * virtio-pci device and walk its capability list, as Linux 6.1's
 * vp_modern_probe() does, for the first usable COMMON, NOTIFY, ISR and
 * DEVICE capability. The walk is bounded (a revisited capability is a
 * loop, and refused); every capability is read once and checked: its
 * position, its length (16 bytes, 20 for NOTIFY), and that offset + length
 * lies inside BAR 0 of UVIRTIO_PCI_BAR0_SIZE bytes. A capability for another
 * BAR is skipped, as the spec lets a driver do (this transport knows BAR 0
 * only).
 * @bus:  the device end; only read.
 * @caps: filled on success.
 * @why:  if not NULL, set to a static one-line reason on failure.
 *
 * Return: 0; -ENODEV when the vendor or device id is not virtio-pci modern
 * (0x1af4, 0x1040 to 0x107f) or there is no capability list; -ELOOP for a
 * capability list that loops; -EINVAL for a capability that is malformed or
 * outside BAR 0, or structures too short; -ENOENT when COMMON, NOTIFY or
 * ISR is missing; or the bus's error.
 */
UVIRTIO_API
int uvirtio_pci_drv_read_caps(const struct uvirtio_regbus *bus, struct uvirtio_pci_caps *caps,
			      const char **why);

/**
 * uvirtio_pci_drv_create() - a driver-side virtio-pci transport.
 * @out: set to the transport, owned by the caller (free with destroy).
 * @bus: how to reach the device; copied. Every access goes through it.
 * @dma: where rings and buffers live (the device sees these addresses);
 *       must outlive the transport.
 *
 * Reads the capabilities (uvirtio_pci_drv_read_caps()) and the queue
 * count, and makes the configuration vector's eventfd; the device is not
 * touched otherwise (the driver core's probe resets it). Queue vectors'
 * eventfds are made when their queue is first enabled.
 *
 * The ops: reset writes 0 to device_status and waits to read 0 (bounded by
 * the time-out, -ETIMEDOUT), then clears every vector's eventfd and asks
 * for vector 0 for configuration changes. queue_enable programs the queue
 * (size, vector i + 1, ring addresses), reads its notify offset, checks it
 * against the NOTIFY structure and writes 1 to queue_enable; it never
 * writes 0 there, and refuses a queue that is already enabled (-EBUSY) or
 * does not exist (-ENOENT). queue_reset writes 1 to queue_reset and waits
 * to read 0 from it and from queue_enable (-ETIMEDOUT; -EOPNOTSUPP when the
 * common structure has no queue_reset field). A vector the device will not
 * take (reads back VIRTIO_MSI_NO_VECTOR) leaves that source on INTx: the
 * device end then signals every vector's eventfd. event_fd(i) is vector
 * i + 1's eventfd, event_fd(UVIRTIO_CONFIG_EVENT) vector 0's.
 *
 * Thread rules: as transport.h: lifecycle ops from one thread; notify for
 * a queue from the thread using it; uvirtio_pci_drv_vector_fd() from any.
 *
 * Return: 0; -ENOMEM; eventfd's errno; or uvirtio_pci_drv_read_caps()'s
 * error.
 */
UVIRTIO_API
int uvirtio_pci_drv_create(struct uvirtio_transport **out, const struct uvirtio_regbus *bus,
			   struct uvirtio_dma *dma);

/**
 * uvirtio_pci_drv_caps() - the capabilities @t found. NULL when @t is not
 * a virtio-pci transport.
 */
UVIRTIO_API
const struct uvirtio_pci_caps *uvirtio_pci_drv_caps(struct uvirtio_transport *t);

/**
 * uvirtio_pci_drv_vector_fd() - the eventfd of MSI-X vector @vector, for
 * the device end to signal (the transport owns it). Any thread.
 * Return: the fd; -ENOENT for a queue's vector before its queue was first
 * enabled; -EINVAL for a vector the transport does not use, or a @t that is
 * not a virtio-pci transport.
 */
UVIRTIO_API
int uvirtio_pci_drv_vector_fd(struct uvirtio_transport *t, uint16_t vector);

/**
 * uvirtio_pci_drv_set_timeout() - how long reset and queue_reset wait for
 * the device to read 0 (default 5000 ms). With 0 they still read a few
 * times before giving up.
 */
UVIRTIO_API
void uvirtio_pci_drv_set_timeout(struct uvirtio_transport *t, unsigned timeout_ms);

/**
 * uvirtio_pci_drv_set_bus() - the device end moved (e.g. to another
 * process, after uvirtio_pci_dev_save()/load()): use @bus from now on.
 * Only while the device is suspended or before probe, with no other op
 * running. The new end's capabilities are read and must be the same.
 * Return: 0; -EBUSY when the driver has written a status since the last
 * reset and has not suspended the device; -ENODEV when the new end's
 * capabilities or queue count differ (the old bus stays); -EINVAL when @t
 * is not a virtio-pci transport or @bus lacks an accessor; or
 * uvirtio_pci_drv_read_caps()'s error.
 */
UVIRTIO_API
int uvirtio_pci_drv_set_bus(struct uvirtio_transport *t, const struct uvirtio_regbus *bus);

/** uvirtio_pci_drv_destroy() - close the eventfds and free. NULL is ignored. */
UVIRTIO_API
void uvirtio_pci_drv_destroy(struct uvirtio_transport *t);

/* An in-process pair: the model and the transport over one shared memory,
 * like loopback.h but through registers:
 *
 *   struct uvirtio_pci_pair *p;
 *   uvirtio_pci_pair_create(&p, NULL);
 *   uvirtio_rng_dev_init(&rng, uvirtio_pci_pair_mem(p));
 *   uvirtio_pci_pair_start(p, uvirtio_rng_dev_device(&rng));
 *   uvirtio_rng_drv_probe(&drv, uvirtio_pci_pair_transport(p));
 *
 * There is no device thread: a register access runs the device on the
 * accessing thread, as a vCPU's trapped access runs a VMM's device model.
 * The model's irq signals the transport's vector eventfd; INTx (a source
 * left without a vector) signals every vector's eventfd, as a shared
 * interrupt line wakes every handler on it. */

struct uvirtio_pci_pair;

struct uvirtio_pci_pair_config {
	size_t mem_size;     /* bytes of guest memory; 0: 64 MiB */
	uint64_t guest_addr; /* where it starts in guest addresses; 0: 1 GiB */
	unsigned nvectors;   /* the model's MSI-X vectors; 0: queues + 1 */
};

/**
 * uvirtio_pci_pair_create() - make the shared guest memory.
 * @out: set to the pair, owned by the caller (free with destroy).
 * @cfg: NULL for the defaults.
 * Return: 0; -ENOMEM; or the errno of memfd_create or mmap.
 */
UVIRTIO_API
int uvirtio_pci_pair_create(struct uvirtio_pci_pair **out, const struct uvirtio_pci_pair_config *cfg);

/** uvirtio_pci_pair_mem() - guest memory as the device sees it. */
UVIRTIO_API
struct uvirtio_mem *uvirtio_pci_pair_mem(struct uvirtio_pci_pair *p);

/**
 * uvirtio_pci_pair_start() - make the model for @dev (initialised with
 * uvirtio_pci_pair_mem(@p)) and the transport over it.
 * Return: 0; -EBUSY when already started; or uvirtio_pci_dev_create()'s or
 * uvirtio_pci_drv_create()'s error.
 */
UVIRTIO_API
int uvirtio_pci_pair_start(struct uvirtio_pci_pair *p, struct uvirtio_device *dev);

/** uvirtio_pci_pair_transport() - the driver's side; NULL before start. */
UVIRTIO_API
struct uvirtio_transport *uvirtio_pci_pair_transport(struct uvirtio_pci_pair *p);

/** uvirtio_pci_pair_model() - the device's side; NULL before start. */
UVIRTIO_API
struct uvirtio_pci_dev *uvirtio_pci_pair_model(struct uvirtio_pci_pair *p);

/**
 * uvirtio_pci_pair_destroy() - destroy the model (which resets the device),
 * then the transport and the memory. The device stays the caller's.
 */
UVIRTIO_API
void uvirtio_pci_pair_destroy(struct uvirtio_pci_pair *p);

#endif
