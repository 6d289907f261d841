// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's memory table: SET_MEM_TABLE, ADD_MEM_REG and
 * REM_MEM_REG map the front-end's regions (each checked against its file
 * and the others before it is used) into the guest memory map the device
 * reads, and translate the front-end's addresses into guest ones.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/crc32.h"
#include "vhost_backend_priv.h"

/* Guest memory. */

/* The front-end's (virtual) address range [uva, uva + len) as a guest
 * address, when one region holds all of it. */
int vb_uva_to_gpa(const struct uvirtio_vhost_backend *vb, uint64_t uva, uint64_t len,
		      uint64_t *gpa)
{
	for (unsigned i = 0; i < vb->nregions; i++) {
		const struct region *r = &vb->regions[i];
		uint64_t off = uva - r->uva;

		/* Unsigned wrap makes an address below the region a huge offset. */
		if (uva >= r->uva && off < r->size && len <= r->size - off) {
			*gpa = r->gpa + off;
			return 0;
		}
	}
	return -EFAULT;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Callers checked that neither range wraps. */
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* Maps region @in from @fd (not consumed) into @out after checking it. */
static int map_region(struct uvirtio_vhost_backend *vb, const struct vhost_user_mem_region *in,
		      int fd, struct region *out)
{
	uint64_t gpa = in->guest_phys_addr, size = in->memory_size, uva = in->userspace_addr;
	uint64_t off = in->mmap_offset, end, last, page = (uint64_t)sysconf(_SC_PAGESIZE), delta;
	struct stat st;
	void *map;

	if (size == 0)
		return vb_fail(vb, -EINVAL, "memory region of size 0");
	if (__builtin_add_overflow(gpa, size - 1, &last) || __builtin_add_overflow(uva, size - 1, &last) ||
	    __builtin_add_overflow(off, size, &end))
		return vb_fail(vb, -EINVAL, "memory region wraps around (gpa %#llx uva %#llx offset %#llx size %#llx)",
			    (unsigned long long)gpa, (unsigned long long)uva,
			    (unsigned long long)off, (unsigned long long)size);
	if (fstat(fd, &st) < 0)
		return vb_fail(vb, -errno, "memory region fd: fstat failed: %s", strerror(errno));
	/* Only a file has a size to check against; memfd and hugetlbfs files
	 * are regular files. */
	if (!S_ISREG(st.st_mode))
		return vb_fail(vb, -EINVAL, "memory region fd is not a mappable file");
	/* Touching a page past the end of the file would SIGBUS this process. */
	if (st.st_size < 0 || end > (uint64_t)st.st_size)
		return vb_fail(vb, -EINVAL, "memory region (offset %#llx size %#llx) is larger than its file (%lld bytes)",
			    (unsigned long long)off, (unsigned long long)size, (long long)st.st_size);
	delta = off % page;
	if (size + delta > SIZE_MAX)
		return vb_fail(vb, -EINVAL, "memory region too large");
	map = mmap(NULL, (size_t)(size + delta), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)(off - delta));
	if (map == MAP_FAILED)
		return vb_fail(vb, -errno, "memory region: mmap failed: %s", strerror(errno));
	*out = (struct region){ .gpa = gpa, .size = size, .uva = uva, .mmap_offset = off,
				.file_dev = (uint64_t)st.st_dev, .file_ino = (uint64_t)st.st_ino,
				.map = map, .map_len = (size_t)(size + delta),
				.host = (char *)map + delta, .refs = 1 };
	return 0;
}

/* A CRC of each region's file and place, in table order (QEMU sends the
 * same table to a restarted backend). The same guest keeps its memory file
 * for its whole life; another guest has another file. (Not its change
 * time: the guest's stores through the mapping move it.) */
uint64_t vb_mem_identity(const struct uvirtio_vhost_backend *vb)
{
	uint64_t v[UVIRTIO_MEM_MAX_REGIONS][5];

	for (unsigned i = 0; i < vb->nregions; i++) {
		const struct region *r = &vb->regions[i];

		memcpy(v[i], (uint64_t[5]){ r->file_dev, r->file_ino, r->gpa, r->size, r->mmap_offset },
		       sizeof(v[i]));
	}
	return crc32_ieee((const uint8_t *)v, vb->nregions * sizeof(v[0]));
}

static void unmap_region(struct region *r)
{
	munmap(r->map, r->map_len);
	r->map = NULL;
}

static struct uvirtio_mem_region mem_region(const struct region *r)
{
	return (struct uvirtio_mem_region){ .guest_addr = r->gpa, .size = r->size,
					    .host_addr = r->host, .fd = -1,
					    .fd_offset = r->mmap_offset };
}

void vb_unmap_all(struct uvirtio_vhost_backend *vb)
{
	for (unsigned i = 0; i < vb->nregions; i++)
		unmap_region(&vb->regions[i]);
	vb->nregions = 0;
	uvirtio_mem_init(&vb->mem);
}

/* Checks @in against the regions of @table (n of them) and vb's map or
 * scratch map @gmap, then maps it. */
static int check_and_map(struct uvirtio_vhost_backend *vb, const struct vhost_user_mem_region *in,
			 int fd, const struct region *table, unsigned n, struct region *out)
{
	int ret = map_region(vb, in, fd, out);

	if (ret)
		return ret;
	for (unsigned k = 0; k < n; k++) {
		if (ranges_overlap(out->gpa, out->size, table[k].gpa, table[k].size) ||
		    ranges_overlap(out->uva, out->size, table[k].uva, table[k].size)) {
			unmap_region(out);
			return vb_fail(vb, -EINVAL, "memory region at gpa %#llx overlaps another",
				    (unsigned long long)in->guest_phys_addr);
		}
	}
	return 0;
}

int vb_set_mem_table(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_mem_table *t = &m->payload.mem_table;
	struct region fresh[VHOST_USER_MEM_TABLE_MAX];
	unsigned n = t->nregions, done = 0;
	int ret = 0;

	/* The new table is built aside; a bad region leaves the old one. */
	for (; done < n && !ret; done++)
		ret = check_and_map(vb, &t->regions[done], m->fds[done], fresh, done, &fresh[done]);
	uvirtio_vhost_msg_close_fds(m);
	if (ret) {
		for (unsigned k = 0; k + 1 < done; k++)
			unmap_region(&fresh[k]);
		return ret;
	}
	/* Queue threads read guest memory: stop them while it changes. */
	vb_halt_all(vb);
	vb_unmap_all(vb);
	for (unsigned k = 0; k < n; k++) {
		struct uvirtio_mem_region mr = mem_region(&fresh[k]);

		vb->regions[k] = fresh[k];
		/* Cannot fail: the regions were checked against each other. */
		uvirtio_mem_add(&vb->mem, &mr);
	}
	vb->nregions = n;
	return vb_run_ready_rings(vb);
}

/* vhost-user.rst: a region is identified by guest address, user address
 * and size. */
static struct region *find_region(struct uvirtio_vhost_backend *vb, const struct vhost_user_mem_region *in)
{
	for (unsigned k = 0; k < vb->nregions; k++)
		if (vb->regions[k].gpa == in->guest_phys_addr && vb->regions[k].size == in->memory_size &&
		    vb->regions[k].uva == in->userspace_addr)
			return &vb->regions[k];
	return NULL;
}

int vb_add_mem_reg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	struct region r;
	struct uvirtio_mem_region mr;
	int ret;
	struct region *same = find_region(vb, &m->payload.mem_reg.region);

	if (same) {
		/* The same region again, from another of the front-end's vhost
		 * devices: already mapped, the rings keep running. */
		uvirtio_vhost_msg_close_fds(m);
		same->refs++;
		return 0;
	}
	if (vb->nregions == UVIRTIO_MEM_MAX_REGIONS) {
		uvirtio_vhost_msg_close_fds(m);
		return vb_fail(vb, -ENOSPC, "memory table full (%u regions)", UVIRTIO_MEM_MAX_REGIONS);
	}
	ret = check_and_map(vb, &m->payload.mem_reg.region, m->fds[0], vb->regions, vb->nregions, &r);
	uvirtio_vhost_msg_close_fds(m);
	if (ret)
		return ret;
	vb_halt_all(vb);
	mr = mem_region(&r);
	ret = uvirtio_mem_add(&vb->mem, &mr);
	if (ret) {
		unmap_region(&r);
		vb_run_ready_rings(vb);
		return vb_fail(vb, ret, "memory region refused by the map");
	}
	vb->regions[vb->nregions++] = r;
	return vb_run_ready_rings(vb);
}

int vb_rem_mem_reg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m)
{
	const struct vhost_user_mem_region *in = &m->payload.mem_reg.region;
	struct region *r = find_region(vb, in);
	unsigned k;

	uvirtio_vhost_msg_close_fds(m);
	if (!r)
		return vb_fail(vb, -ENOENT, "no memory region at gpa %#llx size %#llx to remove",
			    (unsigned long long)in->guest_phys_addr, (unsigned long long)in->memory_size);
	if (--r->refs)
		return 0;
	k = (unsigned)(r - vb->regions);
	vb_halt_all(vb);
	uvirtio_mem_remove(&vb->mem, vb->regions[k].gpa, vb->regions[k].size, NULL);
	unmap_region(&vb->regions[k]);
	vb->regions[k] = vb->regions[--vb->nregions];
	return vb_run_ready_rings(vb);
}
