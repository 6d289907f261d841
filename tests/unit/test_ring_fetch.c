// SPDX-License-Identifier: MIT
/*
 * No double fetch, on every machine (design.md, principle 1: a descriptor is
 * read once into local memory, then validated).
 *
 * This program links its own copy of the ring sources, compiled with
 * UVIRTIO_RING_READ_HOOK: then every read the rings make of shared memory
 * goes through uvirtio_test_ring_read() below (src/ring/ring_access.h). It
 * counts the reads of each field a test names, and right after a field's
 * first read it changes the field in memory, so a second read would see
 * another value. While the ring code runs, the pages it reads are PROT_NONE
 * and opened only inside the hook: a read that bypasses the accessors faults
 * and fails the test, instead of going uncounted.
 *
 * Device side: every field of every descriptor a pop walks (split: addr,
 * len, flags, next; packed: addr, len, id, flags), indirect tables included,
 * and the avail ring's index and entry. Driver side: the used entry's id and
 * len, and what says it is there (split: used->idx; packed: the flags).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "../support/ring_internal.h"
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/virtio_spec.h"

#define PAGE 4096u
#define N_PAGES 16u
#define GA 0x100000ull
#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)
#define PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)

/* Guest memory, page-aligned so that parts of it can be guarded. */
static char *guest;

/* A field a test watches, and how often the ring read it. */
struct field {
	char name[48];
	const char *at;
	size_t size;
	unsigned reads;
};

static struct field fields[64];
static unsigned n_fields;
/* The guarded pages, and reads of them that touched no watched field. */
static char *guard_at;
static size_t guard_len;
static bool guarding;
static unsigned unwatched_reads;

static void watch(const char *what, unsigned index, const void *at, size_t size)
{
	struct field *f = &fields[n_fields++];

	snprintf(f->name, sizeof(f->name), "%s[%u]", what, index);
	f->at = at;
	f->size = size;
	f->reads = 0;
}

#define WATCH(what, index, lvalue) watch(what, index, &(lvalue), sizeof(lvalue))

/* Watches member @m of entry @i of @table as "what.m[i]". */
static void watch_member(const char *what, const char *member, unsigned i, const void *at,
			 size_t size)
{
	char n[40];

	snprintf(n, sizeof(n), "%s.%s", what, member);
	watch(n, i, at, size);
}
#define WATCH_MEMBER(what, table, i, m) \
	watch_member(what, #m, i, &(table)[i].m, sizeof((table)[i].m))

static void guard(void *at, size_t len)
{
	guard_at = at;
	guard_len = len;
	unwatched_reads = 0;
	guarding = true;
	mprotect(guard_at, guard_len, PROT_NONE);
}

static void unguard(void)
{
	mprotect(guard_at, guard_len, PROT_READ | PROT_WRITE);
	guarding = false;
}

void uvirtio_test_ring_read(void *dst, const void *src, size_t n)
{
	const char *p = src;
	bool guarded = guarding && p + n > guard_at && p < guard_at + guard_len;
	bool watched = false;

	if (guarded)
		mprotect(guard_at, guard_len, PROT_READ | PROT_WRITE);
	memcpy(dst, src, n);
	for (unsigned i = 0; i < n_fields; i++) {
		struct field *f = &fields[i];

		if (f->at + f->size <= p || f->at >= p + n)
			continue;
		watched = true;
		/* After the first read the driver (or device) "rewrites" the
		 * field: a second read sees another value. */
		if (f->reads++ == 0)
			for (size_t k = 0; k < f->size; k++)
				((volatile char *)f->at)[k] ^= 0x5a;
	}
	if (guarded && !watched)
		unwatched_reads++;
	if (guarded)
		mprotect(guard_at, guard_len, PROT_NONE);
}

/* A read of a guarded page outside the hook: the ring fetched shared memory
 * without ring_access.h, where these counts cannot see it. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	const char *a = si->si_addr;
	char msg[200];
	int n;

	(void)uc;
	if (guarding && a >= guard_at && a < guard_at + guard_len) {
		n = snprintf(msg, sizeof(msg),
			     "Bail out! the ring accessed guarded guest memory at offset 0x%zx "
			     "without src/ring/ring_access.h (a fetch nothing counts)\n",
			     (size_t)(a - guest));
		if (write(1, msg, (size_t)n) < 0)
			_exit(2);
		_exit(1);
	}
	if (guarding) {
		/* Elsewhere, while the ring ran: typically a value fetched
		 * again after its check, now the changed one, used as an index. */
		n = snprintf(msg, sizeof(msg),
			     "Bail out! the ring faulted at %p while reading guarded guest memory "
			     "(a field fetched twice, the second value used unchecked?)\n", (void *)a);
		if (write(1, msg, (size_t)n) < 0)
			_exit(2);
		_exit(1);
	}
	signal(sig, SIG_DFL);
}

/* Every watched field read exactly once, and no other read of the guarded
 * pages; names each field that was not. */
static bool each_read_once(void)
{
	bool ok = unwatched_reads == 0;

	for (unsigned i = 0; i < n_fields; i++) {
		if (fields[i].reads != 1) {
			printf("# %s read %u times\n", fields[i].name, fields[i].reads);
			ok = false;
		}
	}
	if (unwatched_reads)
		printf("# %u reads of guarded memory outside the watched fields\n", unwatched_reads);
	return ok;
}

static void fresh_guest(void)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };

	if (!guest) {
		guest = mmap(NULL, N_PAGES * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (guest == MAP_FAILED) {
			perror("mmap");
			exit(1);
		}
		sigaction(SIGSEGV, &sa, NULL);
	}
	if (guarding)
		unguard(); /* a failed check left the last test's guard on */
	memset(guest, 0, N_PAGES * PAGE);
	n_fields = 0;
}

static uint64_t ga(unsigned page, unsigned off)
{
	return GA + (uint64_t)page * PAGE + off;
}

static void *host(unsigned page)
{
	return guest + (size_t)page * PAGE;
}

/* ---- device side ---- */

struct dev {
	struct uvirtio_mem mem;
	struct uvirtio_devq q;
	struct iovec iov[16];
	struct uvirtio_req req;
};

static struct dev dv;

static int dev_init(struct dev *d, uint64_t desc, uint64_t drv, uint64_t dev, uint64_t features)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = N_PAGES * PAGE, .host_addr = guest,
					.fd = -1 };

	uvirtio_devq_reset(&d->q);
	memset(d, 0, sizeof(*d));
	uvirtio_mem_init(&d->mem);
	uvirtio_mem_add(&d->mem, &r);
	uvirtio_req_init(&d->req, d->iov, 16);
	return uvirtio_devq_setup(&d->q, &d->mem, 8, desc, drv, dev, features);
}

/* The three buffers of every device-side test: two readable, one writable. */
static const struct {
	unsigned off;
	uint32_t len;
} part[3] = { { 0x100, 16 }, { 0x300, 24 }, { 0x800, 40 } };
#define DATA_PG 8u

static bool req_is_the_three_parts(const struct uvirtio_req *req)
{
	if (req->n_out != 2 || req->n_in != 1 || req->out_len != 40 || req->in_len != 40)
		return false;
	for (unsigned i = 0; i < 3; i++)
		if (req->iov[i].iov_base != (char *)host(DATA_PG) + part[i].off ||
		    req->iov[i].iov_len != part[i].len)
			return false;
	return true;
}

/* Pops the one request with the ring pages from @from (@bytes) guarded:
 * true when it is the three parts, every watched field was read once
 * (each_read_once() names any that was not) and the queue is not broken. */
static bool pop_guarded_reads_each_once(void *from, size_t bytes)
{
	int ret;
	bool once;

	guard(from, bytes);
	ret = uvirtio_devq_pop(&dv.q, &dv.req);
	unguard();
	once = each_read_once();
	if (ret != 1)
		printf("# uvirtio_devq_pop() = %d, expected 1\n", ret);
	else if (!req_is_the_three_parts(&dv.req))
		printf("# the request is not the three parts\n");
	return ret == 1 && req_is_the_three_parts(&dv.req) && once &&
	       !uvirtio_devq_is_broken(&dv.q);
}

/* Split layout: descriptors, avail ring and indirect table guarded. */
enum { S_DESC_PG, S_AVAIL_PG, S_TABLE_PG, S_USED_PG };

static void watch_split_desc(struct vring_desc *table, unsigned i, const char *what)
{
	WATCH_MEMBER(what, table, i, addr);
	WATCH_MEMBER(what, table, i, len);
	WATCH_MEMBER(what, table, i, flags);
	WATCH_MEMBER(what, table, i, next);
}

static void set_split_desc(struct vring_desc *table, unsigned i, unsigned p, uint16_t flags,
			   uint16_t next)
{
	table[i] = (struct vring_desc){ .addr = ga(DATA_PG, part[p].off), .len = part[p].len,
					.flags = flags, .next = next };
}

static void split_make_avail(uint16_t head)
{
	struct vring_avail *avail = host(S_AVAIL_PG);

	avail->ring[0] = head;
	avail->idx = 1;
	WATCH("avail.idx", 0, avail->idx);
	WATCH("avail.ring", 0, avail->ring[0]);
}

static void test_split_dev_reads_each_descriptor_field_once(void)
{
	struct vring_desc *desc = host(S_DESC_PG);

	fresh_guest();
	CHECK_EQ(dev_init(&dv, ga(S_DESC_PG, 0), ga(S_AVAIL_PG, 0), ga(S_USED_PG, 0), 0), 0);
	/* A chain 0 -> 3 -> 5: the walk follows next, not ring order. */
	set_split_desc(desc, 0, 0, VRING_DESC_F_NEXT, 3);
	set_split_desc(desc, 3, 1, VRING_DESC_F_NEXT, 5);
	set_split_desc(desc, 5, 2, VRING_DESC_F_WRITE, 6);
	split_make_avail(0);
	watch_split_desc(desc, 0, "desc");
	watch_split_desc(desc, 3, "desc");
	watch_split_desc(desc, 5, "desc");

	CHECK(pop_guarded_reads_each_once(host(S_DESC_PG), 3 * PAGE));
	CHECK_EQ(dv.req.id, 0);
}

static void test_split_dev_reads_each_indirect_descriptor_field_once(void)
{
	struct vring_desc *desc = host(S_DESC_PG), *table = host(S_TABLE_PG);

	fresh_guest();
	CHECK_EQ(dev_init(&dv, ga(S_DESC_PG, 0), ga(S_AVAIL_PG, 0), ga(S_USED_PG, 0), INDIRECT), 0);
	desc[2] = (struct vring_desc){ .addr = ga(S_TABLE_PG, 0), .len = 3 * sizeof(*table),
				       .flags = VRING_DESC_F_INDIRECT };
	set_split_desc(table, 0, 0, VRING_DESC_F_NEXT, 1);
	set_split_desc(table, 1, 1, VRING_DESC_F_NEXT, 2);
	set_split_desc(table, 2, 2, VRING_DESC_F_WRITE, 0);
	split_make_avail(2);
	watch_split_desc(desc, 2, "desc");
	for (unsigned i = 0; i < 3; i++)
		watch_split_desc(table, i, "table");

	CHECK(pop_guarded_reads_each_once(host(S_DESC_PG), 3 * PAGE));
	CHECK_EQ(dv.req.id, 2);
}

/* Packed layout: descriptor ring and indirect table guarded. */
enum { P_DESC_PG, P_TABLE_PG, P_EVENT_PG };

static void watch_packed_desc(struct vring_packed_desc *table, unsigned i, const char *what)
{
	WATCH_MEMBER(what, table, i, addr);
	WATCH_MEMBER(what, table, i, len);
	WATCH_MEMBER(what, table, i, id);
	WATCH_MEMBER(what, table, i, flags);
}

static void set_packed_desc(struct vring_packed_desc *table, unsigned i, unsigned p, uint16_t id,
			    uint16_t flags)
{
	table[i] = (struct vring_packed_desc){ .addr = ga(DATA_PG, part[p].off), .len = part[p].len,
					       .id = id, .flags = flags };
}

static int packed_dev_init(uint64_t features)
{
	return dev_init(&dv, ga(P_DESC_PG, 0), ga(P_EVENT_PG, 0), ga(P_EVENT_PG, 16),
			PACKED | features);
}

/* The buffer id the device gives back: push the request, read the used
 * descriptor (at ring position 0). */
static uint16_t packed_pushed_id(void)
{
	struct vring_packed_desc *desc = host(P_DESC_PG);

	if (uvirtio_devq_push(&dv.q, dv.req.id, 0))
		return 0xffff;
	return desc[0].id;
}

static void test_packed_dev_reads_each_descriptor_field_once(void)
{
	struct vring_packed_desc *desc = host(P_DESC_PG);

	fresh_guest();
	CHECK_EQ(packed_dev_init(0), 0);
	/* First lap (wrap counter 1): AVAIL set, USED clear. The buffer id is
	 * the last descriptor's. */
	set_packed_desc(desc, 0, 0, 0, F_AVAIL | VRING_DESC_F_NEXT);
	set_packed_desc(desc, 1, 1, 0, F_AVAIL | VRING_DESC_F_NEXT);
	set_packed_desc(desc, 2, 2, 7, F_AVAIL | VRING_DESC_F_WRITE);
	for (unsigned i = 0; i < 3; i++)
		watch_packed_desc(desc, i, "desc");

	CHECK(pop_guarded_reads_each_once(host(P_DESC_PG), 2 * PAGE));
	CHECK_EQ(packed_pushed_id(), 7);
	uvirtio_devq_reset(&dv.q);
}

static void test_packed_dev_reads_each_indirect_descriptor_field_once(void)
{
	struct vring_packed_desc *desc = host(P_DESC_PG), *table = host(P_TABLE_PG);

	fresh_guest();
	CHECK_EQ(packed_dev_init(INDIRECT), 0);
	desc[0] = (struct vring_packed_desc){ .addr = ga(P_TABLE_PG, 0), .len = 3 * sizeof(*table),
					      .id = 5, .flags = F_AVAIL | VRING_DESC_F_INDIRECT };
	set_packed_desc(table, 0, 0, 0, 0);
	set_packed_desc(table, 1, 1, 0, 0);
	set_packed_desc(table, 2, 2, 0, VRING_DESC_F_WRITE);
	watch_packed_desc(desc, 0, "desc");
	for (unsigned i = 0; i < 3; i++)
		watch_packed_desc(table, i, "table");

	CHECK(pop_guarded_reads_each_once(host(P_DESC_PG), 2 * PAGE));
	CHECK_EQ(packed_pushed_id(), 5);
	uvirtio_devq_reset(&dv.q);
}

/* ---- driver side ---- */

struct drv {
	struct uvirtio_dma dma;
	struct uvirtio_drvq q;
	char *buf;
};

static struct drv dr;
static int tokens[2];

/* The ring comes first in the DMA area (page 0 of guest memory). */
static int drv_init(uint64_t features)
{
	int ret;

	memset(&dr, 0, sizeof(dr));
	uvirtio_dma_init(&dr.dma, guest, GA, N_PAGES * PAGE);
	ret = uvirtio_drvq_create(&dr.q, &dr.dma, 0, 256, features, 0);
	if (ret)
		return ret;
	dr.buf = uvirtio_dma_alloc(&dr.dma, PAGE, 64);
	return dr.buf ? 0 : -ENOMEM;
}

static void drv_fini(void)
{
	uvirtio_drvq_destroy(&dr.q);
	uvirtio_dma_destroy(&dr.dma);
}

/* One buffer of 16 readable and 32 writable bytes. */
static int drv_add(void *token)
{
	struct iovec out = { dr.buf, 16 }, in = { dr.buf + 64, 32 };

	return uvirtio_drvq_add(&dr.q, &out, 1, &in, 1, token);
}

/* Pages holding [p, p + len). */
static void guard_range(const void *p, size_t len)
{
	uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(PAGE - 1);
	uintptr_t hi = ((uintptr_t)p + len + PAGE - 1) & ~(uintptr_t)(PAGE - 1);

	guard((void *)lo, hi - lo);
}

static void test_split_drv_reads_each_used_field_once(void)
{
	bool once;
	int ret;

	fresh_guest();
	CHECK_EQ(drv_init(0), 0);
	/* Twice: the used index is read in the get that finds it moved. */
	for (unsigned round = 0; round < 2; round++) {
		struct uvirtio_drvq_ring ring;
		struct vring_used *used;
		struct vring_avail *avail;
		uint16_t head;
		void *token = NULL;
		uint32_t len = 0;

		uvirtio_drvq_ring(&dr.q, &ring);
		used = ring.used_host;
		avail = ring.avail_host;
		CHECK_EQ(drv_add(&tokens[round]), 0);
		head = avail->ring[round];
		/* The device: one used entry, then the index. */
		used->ring[round] = (struct vring_used_elem){ .id = head, .len = 20 + round };
		used->idx = (uint16_t)(round + 1);
		n_fields = 0;
		WATCH("used.idx", 0, used->idx);
		WATCH("used.ring.id", round, used->ring[round].id);
		WATCH("used.ring.len", round, used->ring[round].len);

		guard_range(used, sizeof(*used) + 256 * sizeof(used->ring[0]));
		ret = uvirtio_drvq_get(&dr.q, &token, &len);
		unguard();
		once = each_read_once();
		CHECK_EQ(ret, 1);
		CHECK(token == &tokens[round]);
		CHECK_EQ(len, 20 + round);
		CHECK(once);
		CHECK(!uvirtio_drvq_is_broken(&dr.q));
	}
	drv_fini();
}

static void test_packed_drv_reads_each_used_field_once(void)
{
	bool once;
	int ret;

	fresh_guest();
	CHECK_EQ(drv_init(PACKED), 0);
	/* Each buffer takes two ring descriptors: used at 0, then at 2. */
	for (unsigned round = 0; round < 2; round++) {
		struct uvirtio_drvq_ring ring;
		struct vring_packed_desc *desc;
		unsigned pos = 2 * round;
		uint16_t id;
		void *token = NULL;
		uint32_t len = 0;

		uvirtio_drvq_ring(&dr.q, &ring);
		desc = ring.desc_host;
		CHECK_EQ(drv_add(&tokens[round]), 0);
		id = desc[pos + 1].id;
		/* The device: id and len, then the flags (first lap: AVAIL and
		 * USED both set; WRITE, it wrote). */
		desc[pos].id = id;
		desc[pos].len = 20 + round;
		desc[pos].flags = F_AVAIL | F_USED | VRING_DESC_F_WRITE;
		n_fields = 0;
		WATCH("desc.id", pos, desc[pos].id);
		WATCH("desc.len", pos, desc[pos].len);
		WATCH("desc.flags", pos, desc[pos].flags);

		guard_range(desc, 256 * sizeof(*desc));
		ret = uvirtio_drvq_get(&dr.q, &token, &len);
		unguard();
		once = each_read_once();
		CHECK_EQ(ret, 1);
		CHECK(token == &tokens[round]);
		CHECK_EQ(len, 20 + round);
		CHECK(once);
		CHECK(!uvirtio_drvq_is_broken(&dr.q));
	}
	drv_fini();
}

/* The harness itself: a field read twice counts two, and the second read
 * sees the changed value. */
static void test_fetch_counter_counts_a_second_read(void)
{
	uint32_t *field, a, b;

	fresh_guest();
	field = host(DATA_PG);
	*field = 1234;
	WATCH("field", 0, *field);
	a = ring_load32(field);
	b = ring_load32(field);
	CHECK_EQ(a, 1234);
	CHECK(b != a);
	CHECK_EQ(fields[0].reads, 2);
}

/* The harness itself: a read of a guarded page that bypasses the accessors
 * ends the process with the "Bail out!" line and status 1 (in a child). */
static void test_fetch_guard_catches_a_read_around_the_accessors(void)
{
	int status = 0;
	pid_t pid;

	fresh_guest();
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		volatile uint32_t *p = host(0);

		if (dup2(open("/dev/null", O_WRONLY), 1) < 0)
			_exit(3);
		guard(host(0), PAGE);
		(void)*p;
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 1);
}

TEST_MAIN(T(test_fetch_counter_counts_a_second_read),
	  T(test_fetch_guard_catches_a_read_around_the_accessors),
	  T(test_split_dev_reads_each_descriptor_field_once),
	  T(test_split_dev_reads_each_indirect_descriptor_field_once),
	  T(test_packed_dev_reads_each_descriptor_field_once),
	  T(test_packed_dev_reads_each_indirect_descriptor_field_once),
	  T(test_split_drv_reads_each_used_field_once),
	  T(test_packed_drv_reads_each_used_field_once))
