// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend's inflight area (INFLIGHT_SHMFD, GET_INFLIGHT_FD,
 * SET_INFLIGHT_FD; src/transport/vhost_backend_inflight.c) against a
 * front-end played over the socket (vhost_backend_fixture.h): the good path
 * as QEMU 7.2 takes it (vhost_dev_prepare_inflight(): features, then
 * GET_INFLIGHT_FD, SET_INFLIGHT_FD, then the start), a restart from an area
 * written by hand as a dead backend leaves it, and a hostile front-end
 * (requests before features or without the protocol feature, shapes the
 * device does not have, areas that do not fit their file or are no file,
 * wrong fd counts and payload sizes, an area handed over while a ring runs,
 * an area of garbage). Every refusal is a failure reply or a disconnect,
 * as for the other requests (vhost_backend.c, handle_msg()), and no fd is
 * left behind.
 *
 * The area's layout (vhost-user.rst "Inflight I/O tracking"; DPDK's and
 * libvhost-user's) is written out here from the spec, not taken from the
 * ring layer: a test of the layout must not share it with the code.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "uvirtio/log.h"
#include "vhost_backend_fixture.h"

/* The split area: per queue a 16-byte header, then one 16-byte state per
 * descriptor head; each queue's part rounded up to 64 bytes. */
struct split_hdr {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
};

struct split_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

/* The packed area: a 32-byte header, 32-byte entries. */
struct packed_hdr {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;
	uint16_t old_free_head;
	uint16_t used_idx;
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[7];
};

_Static_assert(sizeof(struct split_hdr) == 16, "split header");
_Static_assert(sizeof(struct split_desc) == 16, "split state");
struct packed_desc {
	uint8_t inflight;
	uint8_t padding;
	uint16_t next;
	uint16_t last;
	uint16_t num;
	uint64_t counter;
	uint16_t id;
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

_Static_assert(sizeof(struct packed_hdr) == 32, "packed header");
_Static_assert(sizeof(struct packed_desc) == 32, "packed entry");

/* The queue thread moves the area's used index just after it publishes:
 * the driver may see the used entries first. Waits (bounded) for @want. */
static bool area_u16_becomes(const uint16_t *at, uint16_t want)
{
	for (int i = 0; i < GUARD_MS * 10; i++) {
		if (__atomic_load_n(at, __ATOMIC_ACQUIRE) == want)
			return true;
		usleep(100);
	}
	return false;
}

static size_t align64(size_t n)
{
	return (n + 63) / 64 * 64;
}

static size_t split_part(unsigned queue_size)
{
	return align64(16 + 16 * (size_t)queue_size);
}

static size_t packed_part(unsigned queue_size)
{
	return align64(32 + 32 * (size_t)queue_size);
}

/* The ring features an area records: the layout and what changes the
 * shape of a request (devq_inflight.c ring_features()). */
#define AREA_FEATURES \
	(UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX))

/* A log sink that also keeps the ring layer's lines (capture_log() keeps
 * the backend's only): the "does not fit" line is the queue's. */
struct sink {
	struct fe *f;
	pthread_mutex_t lock;
	unsigned misfits;
	char misfit[300];
};

static void sink_log(void *opaque, int level, const char *line)
{
	struct sink *s = opaque;

	(void)level;
	if (!strncmp(line, "vhost-user: ", 12)) {
		pthread_mutex_lock(&s->f->log_lock);
		s->f->log_lines++;
		snprintf(s->f->last_log, sizeof(s->f->last_log), "%s", line);
		pthread_mutex_unlock(&s->f->log_lock);
	}
	if (strstr(line, "inflight area does not fit")) {
		pthread_mutex_lock(&s->lock);
		s->misfits++;
		snprintf(s->misfit, sizeof(s->misfit), "%s", line);
		pthread_mutex_unlock(&s->lock);
	}
}

static void sink_start(struct sink *s, struct fe *f)
{
	memset(s, 0, sizeof(*s));
	s->f = f;
	pthread_mutex_init(&s->lock, NULL);
	uvirtio_set_log(sink_log, UVIRTIO_LOG_DEBUG, s);
}

static unsigned sink_misfits(struct sink *s, char *why, size_t len)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->misfits;
	snprintf(why, len, "%s", s->misfit);
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* The backend's last log line (the reason of the last refusal). */
static void last_line(struct fe *f, char *buf, size_t len)
{
	pthread_mutex_lock(&f->log_lock);
	snprintf(buf, len, "%s", f->last_log);
	pthread_mutex_unlock(&f->log_lock);
}

static bool last_line_has(struct fe *f, const char *what)
{
	char line[256];

	last_line(f, line, sizeof(line));
	if (strstr(line, what))
		return true;
	printf("# last line \"%s\" does not say \"%s\"\n", line, what);
	return false;
}

/* GET_INFLIGHT_FD(@num_queues, @queue_size): the reply, and its fd in *@fd. */
static int get_inflight(struct fe *f, unsigned num_queues, unsigned queue_size,
			struct vhost_user_inflight *out, int *fd)
{
	struct vhost_user_inflight in = { .num_queues = (uint16_t)num_queues,
					  .queue_size = (uint16_t)queue_size };
	static struct uvirtio_vhost_msg r;

	TRY(fe_send(f, VHOST_USER_GET_INFLIGHT_FD, 0, &in, sizeof(in), NULL, 0) == 0);
	TRY(fe_recv(f, &r) == 0);
	TRY(r.hdr.request == VHOST_USER_GET_INFLIGHT_FD);
	TRY(r.hdr.flags == (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK));
	TRY(r.hdr.size == sizeof(struct vhost_user_inflight));
	/* Exactly one fd. */
	if (r.nfds != 1) {
		printf("# GET_INFLIGHT_FD reply has %u fds\n", r.nfds);
		for (unsigned i = 0; i < r.nfds; i++)
			close(r.fds[i]);
		return -1;
	}
	*out = r.payload.inflight;
	*fd = r.fds[0];
	return 0;
}

/* SET_INFLIGHT_FD with NEED_REPLY: 0 taken, 1 refused. */
static int set_inflight(struct fe *f, uint64_t size, uint64_t off, unsigned num_queues,
			unsigned queue_size, const int *fds, unsigned nfds)
{
	struct vhost_user_inflight in = { .mmap_size = size, .mmap_offset = off,
					  .num_queues = (uint16_t)num_queues,
					  .queue_size = (uint16_t)queue_size };

	return fe_ack(f, VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in), fds, nfds);
}

static int area_memfd(size_t size)
{
	int fd = memfd_create("test-inflight", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *map_fd(int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Realized with @pf, the ring features set: where QEMU asks for the area. */
static int start_with(struct fe *f, bool threaded, uint64_t pf)
{
	TRY(fe_start(f, threaded) == 0);
	TRY(qemu_realize(f, pf, -1) == 0);
	TRY(fe_set_u64(f, VHOST_USER_SET_FEATURES, NEED,
		       (f->ring_features ? f->ring_features : RING_FEATURES) | F_PROTO) == 0);
	return 0;
}

/* @n writable buffers of 256 bytes on ring @i, not kicked; their heads
 * (split) as the avail ring has them. */
static int add_bufs(struct fe *f, unsigned i, unsigned n, uint16_t *heads)
{
	struct uvirtio_drvq_ring r = dq_ring(f, i);
	unsigned num = f->ring_num ? f->ring_num : 64;
	volatile uint16_t *avail = r.avail_host;

	for (unsigned k = 0; k < n; k++) {
		struct iovec in = { uvirtio_dma_alloc(&f->dma, 256, 16), 256 };
		uint16_t idx;

		TRY(in.iov_base);
		TRY(uvirtio_drvq_add(&f->dq[i], NULL, 0, &in, 1, in.iov_base) == 0);
		idx = avail[1];
		if (heads)
			heads[k] = avail[2 + (uint16_t)(idx - 1) % num];
	}
	return 0;
}

/* Waits for @n used buffers on ring @i (each filled by tdev). */
static int wait_used(struct fe *f, unsigned i, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		void *token;
		uint32_t len;
		struct pollfd p = { .fd = f->call[i], .events = POLLIN };
		uint64_t v;
		int got = uvirtio_drvq_get(&f->dq[i], &token, &len);

		TRY(got >= 0);
		if (got == 1) {
			TRY(len == 256 && ((unsigned char *)token)[0] == 0x5a);
			done++;
			continue;
		}
		if (!uvirtio_drvq_enable_cb(&f->dq[i]))
			continue;
		TRY(poll(&p, 1, GUARD_MS) == 1);
		(void)!read(f->call[i], &v, sizeof(v));
	}
	return 0;
}

/* 1. The good path. */

static void test_inflight_get_gives_a_zeroed_area_of_the_size_set_takes_it_ring_runs_in_it(void)
{
	int fds = count_fds(), fd = -1;
	struct vhost_user_inflight rep;
	uint32_t base[2];
	struct stat st;
	uint8_t *area;
	struct split_hdr *h0, *h1;
	struct split_desc *d0;
	struct fe f;

	CHECK_EQ(start_with(&f, true, PF_ALL), 0);
	CHECK_EQ(get_inflight(&f, 2, 64, &rep, &fd), 0);
	/* Two parts of 16 + 16 * 64 = 1040 bytes, each rounded to 1088. */
	CHECK_EQ(rep.mmap_size, 2 * split_part(64));
	CHECK_EQ(rep.mmap_size, 2176);
	CHECK_EQ(rep.mmap_offset, 0);
	CHECK_EQ(rep.num_queues, 2);
	CHECK_EQ(rep.queue_size, 64);
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ((uint64_t)st.st_size, rep.mmap_size);
	area = map_fd(fd, rep.mmap_size);
	CHECK(area);
	CHECK(all_zero(area, rep.mmap_size));
	/* QEMU hands it back before each start (vhost_dev_set_inflight()). */
	CHECK_EQ(set_inflight(&f, rep.mmap_size, 0, 2, 64, &fd, 1), 0);
	close(fd);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 2, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0x5a), 0);
	CHECK_EQ(ring_io(&f, 1, 3, 0x5a), 0);
	h0 = (struct split_hdr *)area;
	h1 = (struct split_hdr *)(area + split_part(64));
	d0 = (struct split_desc *)(h0 + 1);
	CHECK(area_u16_becomes(&h0->used_idx, 10));
	CHECK(area_u16_becomes(&h1->used_idx, 3));
	CHECK_EQ(h0->version, 1);
	CHECK_EQ(h0->desc_num, 64);
	CHECK_EQ(h0->features, AREA_FEATURES);
	CHECK_EQ(h1->version, 1);
	CHECK_EQ(h1->desc_num, 64);
	/* Nothing held: every state is back to 0. */
	for (unsigned i = 0; i < 64; i++)
		CHECK_EQ(d0[i].inflight, 0);
	/* A clean stop (GET_VRING_BASE, nothing in flight): the front-end has
	 * the base, and each part starts afresh at the next start. */
	CHECK_EQ(qemu_stop(&f, PF_ALL, 2, base), 0);
	CHECK_EQ(base[0], 10);
	CHECK_EQ(base[1], 3);
	CHECK(all_zero(area, rep.mmap_size));
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 0);
	munmap(area, rep.mmap_size);
	CHECK_EQ(count_fds(), fds);
}

/* A backend on packed rings of PACKED_NUM, realized as QEMU does it; with
 * a state file at @state_path unless NULL. */
static int realize_packed(struct fe *f, const char *state_path)
{
	TRY(fe_start_state(f, true, state_path) == 0);
	f->ring_features = PACKED_FEATURES;
	f->ring_num = PACKED_NUM;
	return qemu_realize(f, PF_ALL, -1);
}

static void test_inflight_packed_parts_are_32_plus_32_per_entry_and_ring_runs_in_it(void)
{
	int fds = count_fds(), fd = -1;
	struct vhost_user_inflight rep;
	uint32_t base[1];
	uint8_t *area;
	struct packed_hdr *h0;
	struct fe f;

	CHECK_EQ(realize_packed(&f, NULL), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, PACKED_FEATURES | F_PROTO), 0);
	/* Parts for rings of up to 16: 32 + 32 * 16 = 544, rounded to 576. */
	CHECK_EQ(get_inflight(&f, 2, 16, &rep, &fd), 0);
	CHECK_EQ(rep.mmap_size, 2 * packed_part(16));
	CHECK_EQ(rep.mmap_size, 1152);
	CHECK_EQ(rep.num_queues, 2);
	CHECK_EQ(rep.queue_size, 16);
	area = map_fd(fd, rep.mmap_size);
	CHECK(area);
	CHECK(all_zero(area, rep.mmap_size));
	CHECK_EQ(set_inflight(&f, rep.mmap_size, 0, 2, 16, &fd, 1), 0);
	close(fd);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0x80008000u), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0x5a), 0);
	h0 = (struct packed_hdr *)area;
	CHECK(area_u16_becomes(&h0->old_used_idx, 0x800a));
	CHECK_EQ(h0->version, 1);
	/* The ring's size, not the part's. */
	CHECK_EQ(h0->desc_num, PACKED_NUM);
	CHECK_EQ(h0->features, AREA_FEATURES | UVIRTIO_BIT(VIRTIO_F_RING_PACKED));
	/* Position 10, wrap counter 1, in bit 15. */
	CHECK_EQ(h0->used_idx, 0x800a);
	CHECK_EQ(h0->old_used_idx, 0x800a);
	/* Ring 1 never started: its part is untouched. */
	CHECK(all_zero(area + packed_part(16), packed_part(16)));
	/* A clean stop: the part starts afresh at the next start's base. */
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 0x800a800au);
	CHECK(all_zero(area, rep.mmap_size));
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 0);
	munmap(area, rep.mmap_size);
	CHECK_EQ(count_fds(), fds);
}

/* 2. A restart from an area a dead backend left: two requests popped and
 * not completed (counters 5 and 3), one made available after them. */

static void test_inflight_restart_resubmits_marked_requests_oldest_first_before_new_ones(void)
{
	int fds = count_fds(), fd;
	size_t part = split_part(64);
	uint16_t heads[3], used_before;
	uint32_t base[1];
	uint8_t *area;
	struct split_hdr *h;
	struct split_desc *d;
	struct uvirtio_drvq_ring r;
	volatile uint16_t *used16;
	volatile uint32_t *used_ring;
	unsigned seen[3] = { 0 };
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	/* A first life without the area: used->idx moves to 4. */
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 4, 0x5a), 0);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 4);
	{
		struct vhost_user_mem_reg reg = { .region = whole_memory(&f) };

		CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	}
	r = dq_ring(&f, 0);
	used16 = r.used_host;
	used_ring = (volatile uint32_t *)((uint8_t *)r.used_host + 4);
	used_before = used16[1];
	CHECK_EQ(used_before, 4);
	/* Three buffers; the "dead backend" had popped the first two. */
	CHECK_EQ(add_bufs(&f, 0, 3, heads), 0);
	CHECK(heads[0] != heads[1] && heads[1] != heads[2] && heads[0] != heads[2]);

	fd = area_memfd(part);
	CHECK(fd >= 0);
	area = map_fd(fd, part);
	CHECK(area);
	h = (struct split_hdr *)area;
	d = (struct split_desc *)(h + 1);
	h->features = AREA_FEATURES;
	h->desc_num = 64;
	h->used_idx = used_before;
	h->last_batch_head = 0;
	d[heads[0]].inflight = 1;
	d[heads[0]].counter = 5;
	d[heads[1]].inflight = 1;
	d[heads[1]].counter = 3;
	h->version = 1;

	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &fd, 1), 0);
	/* QEMU 7.2 restarts a split ring at used->idx. */
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, used_before), 0);
	CHECK_EQ(wait_used(&f, 0, 3), 0);
	/* The area catches up: nothing held, the used index the ring's. */
	CHECK(area_u16_becomes(&h->used_idx, (uint16_t)(used_before + 3)));
	CHECK_EQ(d[heads[0]].inflight, 0);
	CHECK_EQ(d[heads[1]].inflight, 0);
	CHECK_EQ(d[heads[2]].inflight, 0);
	/* Stopped, the queue thread is joined: nothing more can come. */
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], used_before + 3u);
	CHECK_EQ(used16[1], (uint16_t)(used_before + 3));
	/* Counter 3 first, then 5, then the new one; each once. */
	CHECK_EQ(used_ring[2 * ((used_before + 0) % 64)], heads[1]);
	CHECK_EQ(used_ring[2 * ((used_before + 1) % 64)], heads[0]);
	CHECK_EQ(used_ring[2 * ((used_before + 2) % 64)], heads[2]);
	for (uint16_t k = used_before; k != used16[1]; k++)
		for (unsigned j = 0; j < 3; j++)
			seen[j] += used_ring[2 * (k % 64)] == heads[j];
	CHECK_EQ(seen[0], 1);
	CHECK_EQ(seen[1], 1);
	CHECK_EQ(seen[2], 1);
	CHECK_EQ(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED), 4 + 3);
	CHECK(!uvirtio_drvq_is_broken(&f.dq[0]));
	/* The clean stop left a fresh part. */
	CHECK(all_zero((uint8_t *)h, part));
	/* Restarted again from the area the backend left: nothing replayed. */
	{
		struct vhost_user_mem_reg reg = { .region = whole_memory(&f) };

		CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	}
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &fd, 1), 0);
	close(fd);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, base[0]), 0);
	CHECK_EQ(ring_io(&f, 0, 5, 0x5a), 0);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], used_before + 8u);
	CHECK_EQ(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED), 4 + 3 + 5);
	CHECK(!uvirtio_drvq_is_broken(&f.dq[0]));
	CHECK_EQ(fe_finish(&f), 0);
	munmap(area, part);
	CHECK_EQ(count_fds(), fds);
}

/* A backend that stops without GET_VRING_BASE (its connection ends, it is
 * stopped for an upgrade) leaves the position in the front-end's area:
 * QEMU 7.2 never learnt it and restarts a packed ring at its first base. */
static void test_inflight_packed_ring_halted_without_base_resumes_from_the_area(void)
{
	int fds = count_fds(), fd = -1;
	struct vhost_user_inflight rep;
	struct fe f;

	CHECK_EQ(realize_packed(&f, NULL), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, PACKED_FEATURES | F_PROTO), 0);
	CHECK_EQ(get_inflight(&f, 1, 16, &rep, &fd), 0);
	CHECK_EQ(set_inflight(&f, rep.mmap_size, 0, 1, 16, &fd, 1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0x80008000u), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0x5a), 0);
	CHECK_EQ(fe_send(&f, VHOST_USER_RESET_OWNER, 0, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, PACKED_FEATURES | F_PROTO), 0);
	CHECK_EQ(set_inflight(&f, rep.mmap_size, 0, 1, 16, &fd, 1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0x80008000u), 0);
	CHECK_EQ(ring_io(&f, 0, 5, 0x5a), 0);
	CHECK(!uvirtio_drvq_is_broken(&f.dq[0]));
	CHECK_EQ(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED), 10 + 5);
	close(fd);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(count_fds(), fds);
}

/* 2b. The state file (uvirtio_vhost_backend_set_state_file()): QEMU's
 * vhost-user-net hands a backend no area, and after the backend's death
 * restarts every packed ring at the base of its first start. */
/* A packed ring started at QEMU 7.2's first base, with the state file. */
static int start_packed_with_state(struct fe *f, const char *path)
{
	TRY(realize_packed(f, path) == 0);
	return qemu_full_start(f, PF_ALL, 1, 0x80008000u);
}

static void test_state_file_packed_ring_resumes_where_it_was_not_at_the_stale_base(void)
{
	char path[] = "/tmp/uvirtio-test-state-XXXXXX";
	int fds, tmp = mkstemp(path);
	struct fe f;

	CHECK(tmp >= 0);
	close(tmp);
	fds = count_fds();
	CHECK_EQ(start_packed_with_state(&f, path), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0x5a), 0);
	/* Gone without telling anyone where the ring is (no GET_VRING_BASE):
	 * the device is reset and the area let go, as for a new process. */
	CHECK_EQ(fe_send(&f, VHOST_USER_RESET_OWNER, 0, NULL, 0, NULL, 0), 0);
	/* QEMU 7.2 starts it again at its first start's base; the driver goes
	 * on at descriptor 10 of its ring (a lap of 13 ends within these). */
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0x80008000u), 0);
	CHECK_EQ(ring_io(&f, 0, 5, 0x5a), 0);
	CHECK(!uvirtio_drvq_is_broken(&f.dq[0]));
	CHECK_EQ(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED), 10 + 5);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(count_fds(), fds);
	/* Another guest (another memory file) on the same state file: its
	 * rings start afresh, at the base it gives. */
	CHECK_EQ(start_packed_with_state(&f, path), 0);
	CHECK_EQ(ring_io(&f, 0, 3, 0x5a), 0);
	CHECK(!uvirtio_drvq_is_broken(&f.dq[0]));
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(count_fds(), fds);
	unlink(path);
}

/* 3. A hostile front-end. */

/* GET_INFLIGHT_FD has a reply of its own and no failure reply: a refused
 * one ends the connection (as GET_VRING_BASE does), and the memfd it would
 * have made is not left open. */
static int get_refused_fd(uint64_t pf, bool features, unsigned num_queues, unsigned queue_size,
			  uint32_t size, int fd, const char *why)
{
	struct vhost_user_inflight in = { .num_queues = (uint16_t)num_queues,
					  .queue_size = (uint16_t)queue_size };
	uint8_t payload[32] = { 0 }; /* room for a payload too long */
	struct uvirtio_vhost_backend_stats st;
	int fds = count_fds();
	struct fe f;

	memcpy(payload, &in, sizeof(in));
	TRY(size <= sizeof(payload));
	TRY(fe_start(&f, false) == 0);
	TRY(qemu_realize(&f, pf, -1) == 0);
	if (features)
		TRY(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO) == 0);
	TRY(fe_send(&f, VHOST_USER_GET_INFLIGHT_FD, 0, payload, size, &fd, fd >= 0) == 0);
	TRY(fe_disconnected(&f));
	uvirtio_vhost_backend_get_stats(f.vb, &st);
	TRY(st.disconnects_on_error == 1);
	TRY(last_line_has(&f, "GET_INFLIGHT_FD"));
	TRY(last_line_has(&f, why));
	TRY(fe_finish(&f) == 0);
	TRY(count_fds() == fds);
	return 0;
}

static int get_refused(uint64_t pf, bool features, unsigned num_queues, unsigned queue_size,
		       uint32_t size, const char *why)
{
	return get_refused_fd(pf, features, num_queues, queue_size, size, -1, why);
}

static void test_inflight_get_refused_before_features_without_protocol_feature_or_shape(void)
{
	uint64_t no_ifl = PF_ALL & ~PF(INFLIGHT_SHMFD);
	uint32_t sz = sizeof(struct vhost_user_inflight);

	/* Before SET_FEATURES the layout (split or packed) is not known. */
	CHECK_EQ(get_refused(PF_ALL, false, 1, 64, sz, "before SET_FEATURES"), 0);
	CHECK_EQ(get_refused(no_ifl, true, 1, 64, sz, "without INFLIGHT_SHMFD"), 0);
	/* The rng device has one ring of up to 64. */
	CHECK_EQ(get_refused(PF_ALL, true, 0, 64, sz, "0 queues"), 0);
	CHECK_EQ(get_refused(PF_ALL, true, 2, 64, sz, "2 queues"), 0);
	CHECK_EQ(get_refused(PF_ALL, true, 1, 0, sz, "queue size 0"), 0);
	CHECK_EQ(get_refused(PF_ALL, true, 1, 32769, sz, "queue size 32769"), 0);
	CHECK_EQ(get_refused(PF_ALL, true, 1, UVIRTIO_RNG_QUEUE_SIZE * 2, sz, "queue size 128"), 0);
	CHECK_EQ(get_refused(PF_ALL, true, 1, 0xffff, sz, "queue size 65535"), 0);
	/* The wrong payload size. */
	CHECK_EQ(get_refused(PF_ALL, true, 1, 64, 20, "malformed"), 0);
	CHECK_EQ(get_refused(PF_ALL, true, 1, 64, 28, "malformed"), 0);
	CHECK_EQ(get_refused(PF_ALL, true, 1, 64, 0, "malformed"), 0);
	/* An fd attached to a request that takes none: closed, not kept. */
	{
		int efd = eventfd(0, EFD_CLOEXEC), fds;

		CHECK(efd >= 0);
		fds = count_fds();
		CHECK_EQ(get_refused_fd(PF_ALL, true, 1, 64, sz, efd, "wrong number"), 0);
		close(efd);
		CHECK_EQ(count_fds(), fds - 1);
	}
}

/* The same shape checks guard SET_INFLIGHT_FD, which has a failure reply. */
static void test_inflight_set_refused_before_features_or_without_protocol_feature(void)
{
	size_t part = split_part(64);
	int fds = count_fds(), fd = area_memfd(part);
	struct fe f;

	CHECK(fd >= 0);
	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "before SET_FEATURES"));
	CHECK_EQ(fe_finish(&f), 0);

	CHECK_EQ(start_with(&f, false, PF_ALL & ~PF(INFLIGHT_SHMFD)), 0);
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "without INFLIGHT_SHMFD"));
	CHECK_EQ(log_lines(&f), 1);
	CHECK_EQ(fe_finish(&f), 0);
	close(fd);
	CHECK_EQ(count_fds(), fds);
}

static void test_inflight_set_refuses_shape_size_offset_fds_and_payload_size(void)
{
	size_t part = split_part(64), file = 4096;
	int fds = count_fds(), fd = area_memfd(file), efd = eventfd(0, EFD_CLOEXEC), pipefd[2];
	struct vhost_user_inflight in = { .mmap_size = part, .num_queues = 1, .queue_size = 64 };
	unsigned refused = 0;
	int two[2];
	struct fe f;

	CHECK(fd >= 0 && efd >= 0);
	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	CHECK_EQ(start_with(&f, false, PF_ALL), 0);
	/* Queues and sizes the device does not have (one ring of up to 64). */
	CHECK_EQ(set_inflight(&f, part, 0, 0, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "0 queues"));
	CHECK_EQ(set_inflight(&f, 2 * part, 0, 2, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "2 queues"));
	CHECK_EQ(set_inflight(&f, part, 0, 1, 0, &fd, 1), 1);
	CHECK(last_line_has(&f, "queue size 0"));
	CHECK_EQ(set_inflight(&f, file, 0, 1, 32769, &fd, 1), 1);
	CHECK(last_line_has(&f, "queue size 32769"));
	CHECK_EQ(set_inflight(&f, file, 0, 1, 128, &fd, 1), 1);
	CHECK(last_line_has(&f, "queue size 128"));
	refused += 5;
	/* An area smaller than the parts it must hold. */
	CHECK_EQ(set_inflight(&f, part - 1, 0, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "need"));
	CHECK_EQ(set_inflight(&f, 0, 0, 1, 64, &fd, 1), 1);
	/* Past the file's end (mapping it would SIGBUS this process). */
	CHECK_EQ(set_inflight(&f, part, file - part + 64, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "larger than its file"));
	CHECK_EQ(set_inflight(&f, 2 * file, 0, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "larger than its file"));
	/* offset + size wraps past 2^64. */
	CHECK_EQ(set_inflight(&f, part, ~0ull - 127, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "wraps"));
	CHECK_EQ(set_inflight(&f, ~0ull, 4096, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "wraps"));
	/* An offset that would leave the parts' atomic counters misaligned. */
	CHECK_EQ(set_inflight(&f, file - 100, 100, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "not 64-byte aligned"));
	CHECK_EQ(set_inflight(&f, part, 8, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "not 64-byte aligned"));
	refused += 8;
	/* Not a mappable file. */
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &pipefd[0], 1), 1);
	CHECK(last_line_has(&f, "not a mappable file"));
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &efd, 1), 1);
	CHECK(last_line_has(&f, "not a mappable file"));
	/* No fd, two fds. */
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, NULL, 0), 1);
	CHECK(last_line_has(&f, "wrong number"));
	two[0] = fd;
	two[1] = efd;
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, two, 2), 1);
	CHECK(last_line_has(&f, "wrong number"));
	refused += 4;
	/* 20 and 28 bytes: not the 24 of the struct with its tail padding. */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_INFLIGHT_FD, &in, 20, &fd, 1), 1);
	CHECK(last_line_has(&f, "malformed"));
	{
		uint8_t big[28] = { 0 };

		memcpy(big, &in, sizeof(in));
		CHECK_EQ(fe_ack(&f, VHOST_USER_SET_INFLIGHT_FD, big, 28, &fd, 1), 1);
		CHECK(last_line_has(&f, "malformed"));
	}
	refused += 2;
	CHECK_EQ(log_lines(&f), refused);
	/* Still connected, and a good one is taken; at an offset too. */
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &fd, 1), 0);
	CHECK_EQ(set_inflight(&f, file - 64, 64, 1, 64, &fd, 1), 0);
	CHECK_EQ(log_lines(&f), refused);
	/* Without NEED_REPLY a refusal cannot be told: the connection ends. */
	in.num_queues = 2;
	CHECK_EQ(fe_send(&f, VHOST_USER_SET_INFLIGHT_FD, 0, &in, sizeof(in), &fd, 1), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
	close(fd);
	close(efd);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_EQ(count_fds(), fds);
}

static void test_inflight_area_not_replaced_while_a_ring_runs(void)
{
	size_t part = split_part(64);
	int fds = count_fds(), fd = area_memfd(part);
	struct vhost_user_inflight in = { .num_queues = 1, .queue_size = 64 };
	struct fe f;

	CHECK(fd >= 0);
	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 2, 0), 0);
	/* A queue could be writing the old area (-EBUSY). */
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &fd, 1), 1);
	CHECK(last_line_has(&f, "while rings run"));
	CHECK_EQ(ring_io(&f, 0, 2, 0), 0);
	/* GET_INFLIGHT_FD too would replace it: refused, its memfd closed,
	 * and no failure reply for it: the connection ends. */
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_INFLIGHT_FD, 0, &in, sizeof(in), NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	CHECK(last_line_has(&f, "while rings run"));
	CHECK_EQ(fe_finish(&f), 0);
	close(fd);
	CHECK_EQ(count_fds(), fds);
}

/* The parts' size depends on the layout, and the layout on the features:
 * an area handed over for a split ring, then the features changed to
 * packed (allowed while no ring runs), must not have the backend write
 * packed parts, twice as large, past the end of what it was given. The
 * file is larger than the area, so the writes land in the file, where the
 * canary past the area shows them. */
static void test_inflight_area_never_written_past_its_size_when_features_change_layout(void)
{
	size_t part = split_part(64), file = 8192;
	int fds = count_fds(), fd = area_memfd(file);
	uint32_t base[1];
	uint8_t *area;
	size_t bad = 0;
	struct fe f;

	CHECK(fd >= 0);
	area = map_fd(fd, file);
	CHECK(area);
	memset(area + part, 0xee, file - part);
	CHECK_EQ(start_with(&f, true, PF_ALL), 0);
	CHECK_EQ(set_inflight(&f, part, 0, 1, 64, &fd, 1), 0);
	close(fd);
	/* Packed now: 32 + 32 * 64 bytes a part, rounded to 2112. */
	f.ring_features = PACKED_FEATURES;
	f.ring_num = 64;
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0x80008000u), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0x5a), 0);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 0x800a800au);
	for (size_t i = part; i < file; i++)
		bad += area[i] != 0xee;
	CHECK_EQ(fe_finish(&f), 0);
	munmap(area, file);
	if (bad)
		printf("# %zu bytes past the %zu-byte area written\n", bad, part);
	CHECK_EQ(bad, 0);
	CHECK_EQ(count_fds(), fds);
}

/* An area of garbage handed back after a "restart": taken (its shape is
 * right), and the ring starts afresh from it, saying why. */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

enum garbage { G_ALL, G_STATES, G_TOO_MANY, G_USED_AHEAD, G_LAYOUT, G_SIZE };

static int garbage_run(enum garbage kind, const char *why)
{
	size_t part = split_part(64);
	int fds = count_fds(), fd = area_memfd(part);
	uint64_t seed = 0x9e3779b97f4a7c15ull + kind;
	uint32_t base[1];
	uint8_t *area;
	struct split_hdr *h;
	struct split_desc *d;
	char line[300];
	struct sink s;
	struct fe f;

	TRY(fd >= 0);
	area = map_fd(fd, part);
	TRY(area);
	for (size_t i = 0; i < part; i++)
		area[i] = (uint8_t)xorshift(&seed);
	h = (struct split_hdr *)area;
	d = (struct split_desc *)(h + 1);
	if (kind != G_ALL) {
		/* A header that fits; what follows does not. */
		h->version = 1;
		h->desc_num = 64;
		h->features = AREA_FEATURES;
		h->used_idx = 0;
	}
	if (kind == G_TOO_MANY || kind == G_USED_AHEAD)
		for (unsigned i = 0; i < 64; i++)
			d[i].inflight = i % 3 == 0;
	if (kind == G_USED_AHEAD) {
		h->used_idx = 1000;
		for (unsigned i = 0; i < 64; i++)
			d[i].inflight = 0;
	}
	if (kind == G_LAYOUT)
		h->features = UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	if (kind == G_SIZE)
		h->desc_num = 128;

	TRY(start_with(&f, true, PF_ALL) == 0);
	sink_start(&s, &f);
	TRY(set_inflight(&f, part, 0, 1, 64, &fd, 1) == 0);
	close(fd);
	TRY(qemu_full_start(&f, PF_ALL, 1, 0) == 0);
	TRY(ring_io(&f, 0, 6, 0x5a) == 0);
	/* Started afresh in it: a fitting header, nothing held. */
	TRY(area_u16_becomes(&h->used_idx, 6));
	TRY(h->version == 1 && h->desc_num == 64 && h->features == AREA_FEATURES);
	for (unsigned i = 0; i < 64; i++)
		TRY(d[i].inflight == 0);
	TRY(qemu_stop(&f, PF_ALL, 1, base) == 0);
	TRY(base[0] == 6);
	/* Nothing came back from the garbage. */
	TRY(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED) == 6);
	TRY(!uvirtio_drvq_is_broken(&f.dq[0]));
	TRY(sink_misfits(&s, line, sizeof(line)) == 1);
	if (!strstr(line, why)) {
		printf("# \"%s\" does not say \"%s\"\n", line, why);
		return -1;
	}
	TRY(fe_finish(&f) == 0);
	pthread_mutex_destroy(&s.lock);
	munmap(area, part);
	TRY(count_fds() == fds);
	return 0;
}

static void test_inflight_garbage_area_is_started_afresh_and_the_ring_runs(void)
{
	CHECK_EQ(garbage_run(G_ALL, "version"), 0);
	CHECK_EQ(garbage_run(G_STATES, "not 0, 1 or 2"), 0);
	CHECK_EQ(garbage_run(G_TOO_MANY, "more requests in flight than the driver made available"), 0);
	CHECK_EQ(garbage_run(G_USED_AHEAD, "more than a ring behind"), 0);
	CHECK_EQ(garbage_run(G_LAYOUT, "another ring layout"), 0);
	CHECK_EQ(garbage_run(G_SIZE, "another queue size"), 0);
}

/* The same for a packed ring, whose entries are chains the area links. */

enum pgarbage { PG_ALL, PG_STATES, PG_CHAIN_LONG, PG_CHAIN_LOOP, PG_USED_OUTSIDE };

static int packed_garbage_run(enum pgarbage kind, const char *why)
{
	size_t part = packed_part(PACKED_NUM);
	int fds = count_fds(), fd = area_memfd(part);
	uint64_t seed = 0x2545f4914f6cdd1dull + kind;
	uint64_t features = AREA_FEATURES | UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
	uint32_t base[1];
	uint8_t *area;
	struct packed_hdr *h;
	struct packed_desc *d;
	char line[300];
	struct sink s;
	struct fe f;

	TRY(fd >= 0);
	area = map_fd(fd, part);
	TRY(area);
	for (size_t i = 0; i < part; i++)
		area[i] = (uint8_t)xorshift(&seed);
	h = (struct packed_hdr *)area;
	d = (struct packed_desc *)(h + 1);
	if (kind != PG_ALL) {
		h->version = 1;
		h->desc_num = PACKED_NUM;
		h->features = features;
		h->used_idx = h->old_used_idx = 0x8000; /* position 0, wrap counter 1 */
	}
	if (kind == PG_CHAIN_LONG || kind == PG_CHAIN_LOOP || kind == PG_USED_OUTSIDE)
		for (unsigned i = 0; i < PACKED_NUM; i++)
			d[i].inflight = 0;
	if (kind == PG_CHAIN_LONG) {
		/* More descriptors than the ring has. */
		d[0].inflight = 1;
		d[0].num = 200;
	}
	if (kind == PG_CHAIN_LOOP) {
		/* A chain of two that comes back to its first entry. */
		d[3].inflight = 1;
		d[3].num = 2;
		d[3].flags = VRING_DESC_F_NEXT;
		d[3].next = 3;
		d[3].last = 3;
	}
	if (kind == PG_USED_OUTSIDE)
		h->used_idx = h->old_used_idx = 0x8000 | PACKED_NUM;

	TRY(fe_start(&f, true) == 0);
	f.ring_features = PACKED_FEATURES;
	f.ring_num = PACKED_NUM;
	TRY(qemu_realize(&f, PF_ALL, -1) == 0);
	TRY(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, PACKED_FEATURES | F_PROTO) == 0);
	sink_start(&s, &f);
	TRY(set_inflight(&f, part, 0, 1, PACKED_NUM, &fd, 1) == 0);
	close(fd);
	TRY(qemu_full_start(&f, PF_ALL, 1, 0x80008000u) == 0);
	TRY(ring_io(&f, 0, 6, 0x5a) == 0);
	TRY(area_u16_becomes(&h->old_used_idx, 0x8006));
	TRY(h->version == 1 && h->desc_num == PACKED_NUM && h->features == features);
	TRY(h->used_idx == 0x8006);
	for (unsigned i = 0; i < PACKED_NUM; i++)
		TRY(d[i].inflight == 0);
	TRY(qemu_stop(&f, PF_ALL, 1, base) == 0);
	TRY(base[0] == 0x80068006u);
	TRY(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED) == 6);
	TRY(!uvirtio_drvq_is_broken(&f.dq[0]));
	TRY(sink_misfits(&s, line, sizeof(line)) == 1);
	if (!strstr(line, why)) {
		printf("# \"%s\" does not say \"%s\"\n", line, why);
		return -1;
	}
	TRY(fe_finish(&f) == 0);
	pthread_mutex_destroy(&s.lock);
	munmap(area, part);
	TRY(count_fds() == fds);
	return 0;
}

static void test_inflight_packed_garbage_area_is_started_afresh_and_the_ring_runs(void)
{
	CHECK_EQ(packed_garbage_run(PG_ALL, "version"), 0);
	CHECK_EQ(packed_garbage_run(PG_STATES, "not 0, 1 or 2"), 0);
	CHECK_EQ(packed_garbage_run(PG_CHAIN_LONG, "chain of entries is malformed"), 0);
	CHECK_EQ(packed_garbage_run(PG_CHAIN_LOOP, "chain of entries is malformed"), 0);
	CHECK_EQ(packed_garbage_run(PG_USED_OUTSIDE, "used position is outside the ring"), 0);
}

TEST_MAIN(T(test_inflight_get_gives_a_zeroed_area_of_the_size_set_takes_it_ring_runs_in_it),
	  T(test_inflight_packed_parts_are_32_plus_32_per_entry_and_ring_runs_in_it),
	  T(test_inflight_restart_resubmits_marked_requests_oldest_first_before_new_ones),
	  T(test_inflight_packed_ring_halted_without_base_resumes_from_the_area),
	  T(test_state_file_packed_ring_resumes_where_it_was_not_at_the_stale_base),
	  T(test_inflight_get_refused_before_features_without_protocol_feature_or_shape),
	  T(test_inflight_set_refused_before_features_or_without_protocol_feature),
	  T(test_inflight_set_refuses_shape_size_offset_fds_and_payload_size),
	  T(test_inflight_area_not_replaced_while_a_ring_runs),
	  T(test_inflight_garbage_area_is_started_afresh_and_the_ring_runs),
	  T(test_inflight_packed_garbage_area_is_started_afresh_and_the_ring_runs),
	  T(test_inflight_area_never_written_past_its_size_when_features_change_layout))
