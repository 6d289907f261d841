// SPDX-License-Identifier: MIT
/* The packed ring's driver side, written by hand for the device-side tests
 * (packed_dev_fixture.h). */
#include <stdlib.h>
#include <string.h>

#include "packed_dev_fixture.h"

_Alignas(4096) char guest[GUEST_SIZE];

struct fix fx;

void on_broken(struct uvirtio_devq *q, void *opaque)
{
	struct fix *f = opaque;

	(void)q;
	f->broken_calls++;
}

/* Frees what the previous test's queue held (a failed CHECK skips its
 * fix_fini), then sets up a fresh ring. */
int fix_init(struct fix *f, unsigned num, uint64_t features)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = sizeof(guest), .host_addr = guest, .fd = -1 };
	struct uvirtio_mem_region huge = { .guest_addr = HUGE_GA, .size = 8ull << 30, .host_addr = guest, .fd = -1 };

	uvirtio_devq_reset(&f->q);
	memset(guest, 0, sizeof(guest));
	memset(f, 0, sizeof(*f));
	uvirtio_mem_init(&f->mem);
	uvirtio_mem_add(&f->mem, &r);
	uvirtio_mem_add(&f->mem, &huge);
	f->desc = (struct vring_packed_desc *)(guest + DESC_OFF);
	f->driver = (struct vring_packed_desc_event *)(guest + DRIVER_OFF);
	f->device = (struct vring_packed_desc_event *)(guest + DEVICE_OFF);
	f->avail_wrap = f->used_wrap = true;
	uvirtio_req_init(&f->req, f->iov, 64);
	uvirtio_devq_set_broken_cb(&f->q, on_broken, f);
	return uvirtio_devq_setup(&f->q, &f->mem, num, GA + DESC_OFF, GA + DRIVER_OFF,
				  GA + DEVICE_OFF, features | PACKED);
}

void fix_fini(struct fix *f)
{
	uvirtio_devq_reset(&f->q);
}

static uint16_t avail_bits(bool wrap)
{
	return (uint16_t)(wrap ? F_AVAIL : F_USED);
}

/* Makes a buffer available as a driver does: the descriptors after the
 * first, then the first one's flags with a release store. The buffer id goes
 * in every descriptor (the device reads the last one's). */
void drv_add(struct fix *f, const struct elem *e, unsigned n, uint16_t id)
{
	uint16_t head = f->avail_pos, head_flags = 0;

	for (unsigned i = 0; i < n; i++) {
		struct vring_packed_desc *d = &f->desc[f->avail_pos];
		uint16_t flags = (uint16_t)(e[i].flags | (i + 1 < n ? VRING_DESC_F_NEXT : 0) |
					    avail_bits(f->avail_wrap));

		d->addr = e[i].addr;
		d->len = e[i].len;
		d->id = id;
		if (i == 0)
			head_flags = flags;
		else
			d->flags = flags;
		if (++f->avail_pos == uvirtio_devq_size(&f->q)) {
			f->avail_pos = 0;
			f->avail_wrap = !f->avail_wrap;
		}
	}
	__atomic_store_n(&f->desc[head].flags, head_flags, __ATOMIC_RELEASE);
}

/* One readable descriptor of 16 bytes. */
void drv_add1(struct fix *f, uint16_t id)
{
	struct elem e = { GA + DATA_OFF, 16, 0 };

	drv_add(f, &e, 1, id);
}

/* The next used descriptor, if the device wrote one; the driver then skips
 * @ndesc descriptors (what it knows the buffer, or batch, took). */
bool drv_get(struct fix *f, unsigned ndesc, uint16_t *id, uint32_t *len)
{
	struct vring_packed_desc *d = &f->desc[f->used_pos];
	uint16_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);

	if (!!(flags & F_AVAIL) != f->used_wrap || !!(flags & F_USED) != f->used_wrap)
		return false;
	*id = d->id;
	*len = d->len;
	f->used_pos = (uint16_t)(f->used_pos + ndesc);
	if (f->used_pos >= uvirtio_devq_size(&f->q)) {
		f->used_pos = (uint16_t)(f->used_pos - uvirtio_devq_size(&f->q));
		f->used_wrap = !f->used_wrap;
	}
	return true;
}
