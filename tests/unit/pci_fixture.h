/* SPDX-License-Identifier: MIT */
/*
 * Shared by the virtio-pci unit programs (test_pci.c, test_pci_pair.c): a
 * regbus that records every access and can make the device look slow, a
 * device (rng or blk) over the in-process pair, and register accessors.
 */
#ifndef UVIRTIO_TEST_PCI_FIXTURE_H
#define UVIRTIO_TEST_PCI_FIXTURE_H

#include <linux/virtio_pci.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/driver.h"
#include "uvirtio/pci.h"
#include "uvirtio/rng.h"

#define WAIT_MS 10000
#define IMAGE_SIZE (1u << 20)

#define COMMON(field) (UVIRTIO_PCI_COMMON_OFFSET + offsetof(struct virtio_pci_common_cfg, field))
#define QUEUE_RESET (UVIRTIO_PCI_COMMON_OFFSET + UVIRTIO_PCI_COMMON_QUEUE_RESET)
#define BAR UVIRTIO_PCI_SPACE_BAR0
#define CFG UVIRTIO_PCI_SPACE_CONFIG

/* A regbus in front of another: records every access, and can make the
 * device look slow (device_status or queue_reset read non-zero for a few
 * reads after the write that starts a reset) or hostile. */
struct access {
	bool write;
	unsigned space;
	uint64_t off;
	unsigned size;
	uint32_t val;
};

struct recbus {
	struct uvirtio_regbus inner, bus;
	pthread_mutex_t lock;
	struct access *acc;
	unsigned n, cap;
	unsigned status_busy_reads;     /* after writing 0 to device_status */
	unsigned queue_reset_busy_reads; /* after writing 1 to queue_reset */
	bool status_stuck;              /* device_status never reads 0 again */
	bool busy_status, busy_reset;
	int notify_off;                 /* >= 0: queue_notify_off reads this */
};

/* How many resets the device core completed. */
unsigned resets_of(const struct uvirtio_device *dev);
void rec_init(struct recbus *r, const struct uvirtio_regbus *inner);
void rec_clear(struct recbus *r);
void rec_destroy(struct recbus *r);

/* A device over the pair. */
struct env {
	struct uvirtio_pci_pair *p;
	struct uvirtio_rng_dev rng;
	struct uvirtio_blk_dev blk;
	struct uvirtio_device *dev;
	struct uvirtio_pci_dev *m;
	struct uvirtio_regbus bus; /* the model's, for the test's own accesses */
	struct uvirtio_transport *t;
	bool is_blk;
	char path[64];
	int fd;
};

int env_start(struct env *e, bool blk, unsigned nq, unsigned nvectors);
void env_stop(struct env *e);
uint32_t mrd(struct env *e, uint64_t off, unsigned size);
void mwr(struct env *e, uint64_t off, unsigned size, uint32_t v);
uint32_t cfg_rd(struct env *e, uint64_t off, unsigned size);
/* Probe with the driver core, set queue 0 up and start. */
int probe_rng(struct env *e, struct uvirtio_driver *drv, uint64_t features);
/* One rng request of @len bytes through the driver core; returns the used length. */
long rng_once(struct uvirtio_driver *drv, uint8_t *buf, unsigned len);
bool readable(int fd);

#endif
