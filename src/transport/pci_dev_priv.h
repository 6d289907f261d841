/* SPDX-License-Identifier: MIT */
/*
 * Private to the virtio-pci register model (device side), not installed:
 * its state, shared by pci_dev.c (configuration space and BAR 0) and
 * pci_dev_save.c (saving and loading it).
 */
#ifndef UVIRTIO_PCI_DEV_PRIV_H
#define UVIRTIO_PCI_DEV_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "uvirtio/pci.h"

/* ISR status bits (spec 4.1.4.5). */
#define ISR_QUEUE 0x1u
#define ISR_CONFIG 0x2u

struct pci_queue {
	uint16_t size;     /* staged by the driver; 0: not written (reads max) */
	uint16_t vector;   /* atomic: the hooks read it on queue threads */
	uint64_t desc, driver, device; /* staged ring addresses */
	int kick_fd;       /* for a device type that takes kick fds; else -1 */
	bool rescheduled;  /* atomic: the device type asked to be run again */
};

struct uvirtio_pci_dev {
	struct uvirtio_device *dev;
	struct uvirtio_pci_dev_config cfg;
	unsigned nqueues;
	uint8_t config_space[UVIRTIO_PCI_CONFIG_SPACE_SIZE];

	/* One lock for every register access: device core calls are made one
	 * at a time, as under a VMM's big lock. The hooks never take it. */
	pthread_mutex_t lock;
	uint32_t device_feature_select, driver_feature_select;
	uint16_t msix_config; /* atomic: read by the hooks */
	uint16_t queue_select;
	uint8_t isr;          /* atomic: set by the hooks, cleared by a read */
	unsigned rescheduled; /* atomic: queues with rescheduled set */
	struct pci_queue *queues;
};

/* Little-endian stores, for configuration space and saved state. */
static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

#endif
