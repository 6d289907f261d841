/* SPDX-License-Identifier: MIT */
/*
 * Shared by the virtio-mmio unit programs (test_mmio.c, test_mmio_pair.c):
 * status bits, the model's register accessors, and a regbus that passes
 * every access on and writes it down.
 */
#ifndef UVIRTIO_TEST_MMIO_FIXTURE_H
#define UVIRTIO_TEST_MMIO_FIXTURE_H

#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdint.h>

#include "uvirtio/mmio.h"

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRIVER VIRTIO_CONFIG_S_DRIVER
#define S_FEATURES_OK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DRIVER_OK VIRTIO_CONFIG_S_DRIVER_OK

uint32_t rd(struct uvirtio_mmio_dev *m, uint64_t off);
void wr(struct uvirtio_mmio_dev *m, uint64_t off, uint32_t v);

/* A regbus that passes every access on and writes it down. */
struct access {
	char op; /* 'r' or 'w' */
	uint32_t off, value;
};

struct recorder {
	struct uvirtio_regbus inner;
	pthread_mutex_t lock;
	struct access log[4096];
	unsigned n;
};

int rec_read(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t *v);
int rec_write(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t v);

/* An irq hook for the model: writes 1 to the eventfd at *@opaque. */
void signal_fd(void *opaque);

#endif
