// SPDX-License-Identifier: MIT
/* The virtio-mmio unit programs' shared fixture (mmio_fixture.h). */
#include <linux/virtio_mmio.h>
#include <unistd.h>

#include "mmio_fixture.h"

uint32_t rd(struct uvirtio_mmio_dev *m, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	uvirtio_mmio_dev_read(m, off, 4, &v);
	return v;
}

void wr(struct uvirtio_mmio_dev *m, uint64_t off, uint32_t v)
{
	uvirtio_mmio_dev_write(m, off, 4, v);
}

static void rec_add(struct recorder *r, char op, uint64_t off, uint32_t v)
{
	pthread_mutex_lock(&r->lock);
	if (r->n < sizeof(r->log) / sizeof(r->log[0]))
		r->log[r->n++] = (struct access){ op, (uint32_t)off, v };
	pthread_mutex_unlock(&r->lock);
}

int rec_read(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t *v)
{
	struct recorder *r = opaque;
	int ret = r->inner.read(r->inner.opaque, space, off, size, v);

	/* The interrupt thread's accesses are not the driver's sequence. */
	if (off != VIRTIO_MMIO_INTERRUPT_STATUS)
		rec_add(r, 'r', off, *v);
	return ret;
}

int rec_write(void *opaque, unsigned space, uint64_t off, unsigned size, uint32_t v)
{
	struct recorder *r = opaque;

	if (off != VIRTIO_MMIO_INTERRUPT_ACK)
		rec_add(r, 'w', off, v);
	return r->inner.write(r->inner.opaque, space, off, size, v);
}

void signal_fd(void *opaque)
{
	uint64_t one = 1;

	(void)!write(*(int *)opaque, &one, sizeof(one));
}
