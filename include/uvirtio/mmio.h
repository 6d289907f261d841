/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio, version 2 (virtio 1.x "modern" MMIO, spec 4.2.2), both sides.
 *
 * Device side: a register model for one struct uvirtio_device. An emulator
 * routes its guest's trapped accesses to the register window to
 * uvirtio_mmio_dev_read()/_write(); the model turns them into device core
 * calls and raises an interrupt line through a callback. Registers are at
 * the offsets of <linux/virtio_mmio.h>; device config starts at 0x100.
 *
 * Driver side: a struct uvirtio_transport that drives a device through its
 * registers as Linux 6.1's drivers/virtio/virtio_mmio.c does, making every
 * access through a struct uvirtio_regbus (so the model may live in this
 * process or in another one).
 *
 * Pair: both in one process for tests and demos, shaped like loopback.h:
 *
 *   struct uvirtio_mmio_pair *p;
 *   uvirtio_mmio_pair_create(&p, NULL);
 *   uvirtio_rng_dev_init(&rng, uvirtio_mmio_pair_mem(p));
 *   uvirtio_mmio_pair_start(p, uvirtio_rng_dev_device(&rng));
 *   uvirtio_rng_drv_probe(&drv, uvirtio_mmio_pair_transport(p), 0);
 *
 * Only version 2 exists here: the legacy interface (version 1, QueuePFN) is
 * neither offered by the model nor accepted by the driver.
 */
#ifndef UVIRTIO_MMIO_H
#define UVIRTIO_MMIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"
#include "uvirtio/dma.h"
#include "uvirtio/memory.h"
#include "uvirtio/regbus.h"
#include "uvirtio/transport.h"

/* "virt", little-endian, as MagicValue reads. */
#define UVIRTIO_MMIO_MAGIC 0x74726976u
/* "QEMU", what QEMU's virtio-mmio presents as VendorID. */
#define UVIRTIO_MMIO_VENDOR_QEMU 0x554d4551u
/* Where device-specific configuration space starts. */
#define UVIRTIO_MMIO_CONFIG 0x100u
/* Bytes the model's saved registers take (uvirtio_mmio_dev_save()) for a
 * device of @nqueues queues. */
#define UVIRTIO_MMIO_DEV_SAVE_SIZE(nqueues) (32u + 32u * (size_t)(nqueues))

/* Device side. */

struct uvirtio_mmio_dev;

struct uvirtio_mmio_dev_config {
	/* Raise the interrupt line: called when InterruptStatus goes from 0 to
	 * non-zero, and again when an InterruptACK leaves bits set (the line
	 * stays high). May run on a device queue thread, with or without the
	 * model's lock held: it must not call back into the model. NULL: none. */
	void (*irq)(void *opaque);
	void *opaque;
	uint32_t vendor_id; /* 0: UVIRTIO_MMIO_VENDOR_QEMU */
};

/**
 * uvirtio_mmio_dev_create() - a virtio-mmio register model for @dev.
 * @out: set to the model, owned by the caller (free with destroy).
 * @dev: an initialised device, status 0; it must outlive the model. The
 *       model sets its hooks and, for a device type with takes_kick_fds, one
 *       kick eventfd per queue (the model owns them): from now on @dev is
 *       reached only through the model until destroy.
 * @cfg: NULL for no interrupt line and the default vendor.
 *
 * Return: 0; -EINVAL when @dev has no ops; -ENOMEM; or eventfd(2)'s errno.
 */
UVIRTIO_API
int uvirtio_mmio_dev_create(struct uvirtio_mmio_dev **out, struct uvirtio_device *dev,
			    const struct uvirtio_mmio_dev_config *cfg);

/**
 * uvirtio_mmio_dev_read() - the driver reads @size bytes at @offset of the
 * register window.
 * @m:      the model; any thread (accesses are serialised by its lock).
 * @offset: from the window's start.
 * @size:   1, 2 or 4 for config space (from 0x100); 4 for registers.
 * @value:  set to what the register reads (little-endian value), 0 for a
 *          malformed access or a write-only register.
 *
 * Return: 0; -EINVAL for a malformed access (wrong size, an unaligned
 * register, an unknown offset, config space out of range), which reads 0
 * and has no other effect.
 */
UVIRTIO_API
int uvirtio_mmio_dev_read(struct uvirtio_mmio_dev *m, uint64_t offset, unsigned size,
			  uint32_t *value);

/**
 * uvirtio_mmio_dev_write() - the driver writes @value (@size bytes) at
 * @offset of the register window. A write of 0 to Status resets the device
 * before it returns (MMIO has no "wait to read 0"). QueueNotify of a device
 * type with takes_kick_fds only signals that queue's kick eventfd (no lock,
 * as an ioeventfd); otherwise the device serves the kick inside the write.
 * @m:      the model; any thread.
 * @offset: from the window's start.
 * @size:   1, 2 or 4 for config space; 4 for registers.
 * @value:  the value written.
 *
 * Return: 0 (including writes the device core refuses, which the driver
 * sees by reading back, as on hardware); -EINVAL for a malformed access
 * (wrong size, unaligned, unknown offset, a read-only register, config space
 * out of range), which is ignored.
 */
UVIRTIO_API
int uvirtio_mmio_dev_write(struct uvirtio_mmio_dev *m, uint64_t offset, unsigned size,
			   uint32_t value);

/**
 * uvirtio_mmio_dev_bus() - fill @bus with a register bus that calls the
 * model directly (space 0 only), for a driver in this process. The bus is
 * valid while @m lives.
 */
UVIRTIO_API
void uvirtio_mmio_dev_bus(struct uvirtio_mmio_dev *m, struct uvirtio_regbus *bus);

/**
 * uvirtio_mmio_dev_interrupt_status() - InterruptStatus as the driver would
 * read it (bit 0 used buffers, bit 1 configuration change), for tests and
 * emulators that sample the line.
 */
UVIRTIO_API
uint32_t uvirtio_mmio_dev_interrupt_status(struct uvirtio_mmio_dev *m);

/**
 * uvirtio_mmio_dev_work_fd() - an eventfd that becomes readable when the
 * device type asked to be called again (uvirtio_device_reschedule()) and
 * the model could not do so at once (hooks never take the model's lock).
 * The emulator's loop polls it and calls uvirtio_mmio_dev_run(). Owned by
 * the model.
 */
UVIRTIO_API
int uvirtio_mmio_dev_work_fd(struct uvirtio_mmio_dev *m);

/**
 * uvirtio_mmio_dev_run() - serve the rescheduled queues: clear the work fd
 * and pass each such queue a kick, under the model's lock. Any thread.
 */
UVIRTIO_API
void uvirtio_mmio_dev_run(struct uvirtio_mmio_dev *m);

/**
 * uvirtio_mmio_dev_save() - the model's own registers (selectors,
 * InterruptStatus, the queue values staged before QueueReady), little-endian,
 * for a move to another process together with uvirtio_device_snapshot().
 * @m:   the model; any thread.
 * @buf: receives UVIRTIO_MMIO_DEV_SAVE_SIZE(num_queues) bytes; NULL to ask
 *       the size.
 * @len: bytes at @buf.
 *
 * Return: the size written (or needed, with @buf NULL); -ENOSPC when @len
 * is too small.
 */
UVIRTIO_API
ssize_t uvirtio_mmio_dev_save(struct uvirtio_mmio_dev *m, void *buf, size_t len);

/**
 * uvirtio_mmio_dev_load() - restore registers saved by
 * uvirtio_mmio_dev_save() into a model of a device with as many queues.
 * Nothing changes unless the whole blob is valid. When the loaded
 * InterruptStatus is non-zero the line is raised again.
 * @m:   the model; any thread.
 * @buf: the saved bytes.
 * @len: their count.
 *
 * Return: 0; -EINVAL for a blob of the wrong size, magic or version, for
 * another queue count, or with InterruptStatus bits that do not exist.
 */
UVIRTIO_API
int uvirtio_mmio_dev_load(struct uvirtio_mmio_dev *m, const void *buf, size_t len);

/**
 * uvirtio_mmio_dev_destroy() - reset the device (its queue threads stop),
 * take the hooks and kick fds back from it, and free the model. No access
 * may be in progress or follow. NULL is ignored.
 */
UVIRTIO_API
void uvirtio_mmio_dev_destroy(struct uvirtio_mmio_dev *m);

/* Driver side. */

/* The most queues the driver-side transport serves (event fds). */
#define UVIRTIO_MMIO_DRV_MAX_QUEUES 1024u

/**
 * uvirtio_mmio_drv_create() - a virtio-mmio transport over @bus, after
 * checking what Linux's virtio_mmio_probe() checks.
 * @out:    set to the transport, owned by the caller (free with
 *          uvirtio_mmio_drv_destroy()).
 * @bus:    how to reach the registers; copied. Every device access goes
 *          through it, serialised by the transport's lock.
 * @dma:    shared memory for rings and buffers; must outlive the transport.
 * @irq_fd: an eventfd the device end signals for its interrupt line; the
 *          transport's interrupt thread polls it (the caller keeps owning it).
 *
 * Its ops return, besides the bus's errors: queue_max_size and queue_enable
 * -EIO when QueueNumMax is not a power of two or above 32768 (0 means no
 * such queue: max 0, and -ENOENT from queue_enable); queue_enable -ENOENT
 * when QueueReady is already 1 and -EIO when it does not read 1 after the
 * set-up (the device refused the ring); queue_reset -ETIMEDOUT when
 * QueueReset does not read 0 within a bounded number of reads, and -EIO
 * when QueueReady still reads 1 after it (no RING_RESET).
 *
 * Return: 0; -ENODEV when MagicValue is not "virt" or DeviceID is 0 (no
 * device behind the window); -EPROTONOSUPPORT for version 1 (legacy, not
 * implemented) or any version but 2; the bus's error; -ENOMEM; or the
 * errno of eventfd(2) or pthread_create().
 */
UVIRTIO_API
int uvirtio_mmio_drv_create(struct uvirtio_transport **out, const struct uvirtio_regbus *bus,
			    struct uvirtio_dma *dma, int irq_fd);

/**
 * uvirtio_mmio_drv_device_id() - the DeviceID read at create (VIRTIO_ID_*).
 */
UVIRTIO_API
uint32_t uvirtio_mmio_drv_device_id(struct uvirtio_transport *t);

/**
 * uvirtio_mmio_drv_set_bus() - the device end moved (to another process):
 * make further accesses through @bus (copied). Only while the device is
 * suspended (the driver wrote SUSPEND and has not resumed) or reset
 * (status 0 last written, or never written), when no access is due.
 * The interrupt thread then looks at the new end's InterruptStatus once:
 * its line may be up already (a model loaded with bits set raises it
 * before the switch).
 * Return: 0, or -EBUSY when the device runs.
 */
UVIRTIO_API
int uvirtio_mmio_drv_set_bus(struct uvirtio_transport *t, const struct uvirtio_regbus *bus);

/**
 * uvirtio_mmio_drv_destroy() - stop the interrupt thread and free the
 * transport (its event fds close). It does not reset the device: remove
 * the driver first. NULL is ignored.
 */
UVIRTIO_API
void uvirtio_mmio_drv_destroy(struct uvirtio_transport *t);

/* In-process pair. */

struct uvirtio_mmio_pair;

struct uvirtio_mmio_pair_config {
	size_t mem_size;     /* bytes of guest memory; 0: 64 MiB */
	uint64_t guest_addr; /* where it starts in guest addresses; 0: 1 GiB */
	uint32_t vendor_id;  /* 0: UVIRTIO_MMIO_VENDOR_QEMU */
};

/**
 * uvirtio_mmio_pair_create() - make guest memory and the interrupt eventfd.
 * @out: set to the pair, owned by the caller (free with destroy).
 * @cfg: NULL for the defaults.
 * Return: 0; -ENOMEM; or the errno of memfd_create, mmap or eventfd.
 */
UVIRTIO_API
int uvirtio_mmio_pair_create(struct uvirtio_mmio_pair **out,
			     const struct uvirtio_mmio_pair_config *cfg);

/** uvirtio_mmio_pair_mem() - guest memory as the device sees it. */
UVIRTIO_API
struct uvirtio_mem *uvirtio_mmio_pair_mem(struct uvirtio_mmio_pair *p);

/**
 * uvirtio_mmio_pair_start() - put a register model on @dev (initialised
 * with uvirtio_mmio_pair_mem(@p)), start the thread that serves its work
 * fd, and create the driver-side transport over the model's bus.
 * Return: 0; -EBUSY when already started; or the error of
 * uvirtio_mmio_dev_create(), uvirtio_mmio_drv_create() or pthread_create().
 */
UVIRTIO_API
int uvirtio_mmio_pair_start(struct uvirtio_mmio_pair *p, struct uvirtio_device *dev);

/** uvirtio_mmio_pair_transport() - the driver's side; NULL before start. */
UVIRTIO_API
struct uvirtio_transport *uvirtio_mmio_pair_transport(struct uvirtio_mmio_pair *p);

/** uvirtio_mmio_pair_model() - the device-side register model; NULL before start. */
UVIRTIO_API
struct uvirtio_mmio_dev *uvirtio_mmio_pair_model(struct uvirtio_mmio_pair *p);

/**
 * uvirtio_mmio_pair_destroy() - destroy the transport, then the model (which
 * resets the device), and free the memory. The device itself stays the
 * caller's to destroy, after this. NULL is ignored.
 */
UVIRTIO_API
void uvirtio_mmio_pair_destroy(struct uvirtio_mmio_pair *p);

#endif
