// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend against a hostile front-end: one test per rule a
 * front-end can break (payload sizes, fds, queue indexes, ring sizes and
 * addresses, the memory table, features, requests while a ring runs). The
 * front-end is vhost_backend_fixture.h's.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "vhost_backend_fixture.h"

/* Hostile front-end: one test per rule. Each checks the answer (a failure
 * reply, or the connection ended), one log line, and no fd leaked. */

static void test_vhost_refuses_payload_size_wrong_for_request(void)
{
	uint32_t four = 1;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_FEATURES, &four, 4, NULL, 0), 1);
	CHECK_EQ(log_lines(&f), 1);
	/* Still connected. */
	CHECK(get_u64(&f, VHOST_USER_GET_FEATURES) & F_PROTO);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_bad_message_without_need_reply(void)
{
	struct vhost_user_vring_state s = { 0, 3 }; /* size 3: not a power of 2 */
	struct uvirtio_vhost_backend_stats st;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_send(&f, VHOST_USER_SET_VRING_NUM, 0, &s, sizeof(s), NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	uvirtio_vhost_backend_get_stats(f.vb, &st);
	CHECK_EQ(st.disconnects_on_error, 1);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 1);
}

static void test_vhost_closes_fds_a_request_does_not_take(void)
{
	int fds_before, efd = eventfd(0, EFD_CLOEXEC);
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	fds_before = count_fds();
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_OWNER, NULL, 0, &efd, 1), 1);
	close(efd);
	CHECK_EQ(count_fds(), fds_before - 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_more_than_eight_fds(void)
{
	int efd[9];
	union {
		char buf[CMSG_SPACE(9 * sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	struct vhost_user_hdr h = { VHOST_USER_SET_OWNER, VHOST_USER_VERSION, 0 };
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
			     .msg_controllen = sizeof(ctrl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	for (int i = 0; i < 9; i++)
		efd[i] = eventfd(0, EFD_CLOEXEC);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(efd));
	memcpy(CMSG_DATA(c), efd, sizeof(efd));
	CHECK_EQ(sendmsg(f.sock, &mh, 0), (ssize_t)sizeof(h));
	for (int i = 0; i < 9; i++)
		close(efd[i]);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_queue_index_out_of_range(void)
{
	struct vhost_user_vring_state s = { 1, 0 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 1, 64), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0xffffffff, 1), 1);
	/* GET_VRING_BASE has no failure reply: the connection ends. */
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_ring_size_not_power_of_two_or_above_max(void)
{
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 0), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 48), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, UVIRTIO_RNG_QUEUE_SIZE * 2), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, UVIRTIO_RNG_QUEUE_SIZE), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x10000), 1);
	CHECK_EQ(log_lines(&f), 4);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_ring_outside_memory_table(void)
{
	uint64_t uva;
	struct vhost_user_vring_addr a;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	uva = (uintptr_t)f.map;
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 64), 0);
	a = (struct vhost_user_vring_addr){ .index = 0, .desc_user_addr = uva,
					    .avail_user_addr = uva + 0x1000, .used_user_addr = uva + 0x2000 };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	/* Below the region. */
	a.desc_user_addr = uva - 0x1000;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	/* The used ring straddles the region's end. */
	a.desc_user_addr = uva;
	a.used_user_addr = uva + MEM_SIZE - 16;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	/* An address that wraps. */
	a.used_user_addr = ~0ull - 8;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	/* Logging before VHOST_F_LOG_ALL was set. */
	a.used_user_addr = uva + 0x2000;
	a.flags = VHOST_USER_VRING_F_LOG;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static int mem_table(struct fe *f, const struct vhost_user_mem_region *r, unsigned n, const int *fds,
		     unsigned nfds)
{
	struct vhost_user_mem_table t = { .nregions = n };

	memcpy(t.regions, r, n * sizeof(*r));
	return fe_ack(f, VHOST_USER_SET_MEM_TABLE, &t, 8 + 32 * n, fds, nfds);
}

static void test_vhost_refuses_overlapping_regions(void)
{
	struct vhost_user_mem_region r[2];
	int fds[2];
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	fds[0] = fds[1] = f.memfd;
	r[0] = r[1] = whole_memory(&f);
	r[0].memory_size = r[1].memory_size = MEM_SIZE / 2;
	/* Guest ranges overlap; user ranges do not. */
	r[1].guest_phys_addr += MEM_SIZE / 4;
	r[1].userspace_addr += MEM_SIZE / 2;
	r[1].mmap_offset = MEM_SIZE / 2;
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 1);
	/* User ranges overlap; guest ranges do not. */
	r[1].guest_phys_addr = GPA + MEM_SIZE;
	r[1].userspace_addr = r[0].userspace_addr + 4096;
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 1);
	/* Apart, both: accepted. */
	r[1].userspace_addr = r[0].userspace_addr + MEM_SIZE / 2;
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 0);
	/* ADD_MEM_REG over a part of an existing region. */
	{
		struct vhost_user_mem_reg reg = { .region = r[0] };

		reg.region.memory_size /= 2;
		CHECK_EQ(fe_ack(&f, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &f.memfd, 1), 1);
	}
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_region_that_wraps(void)
{
	struct vhost_user_mem_region r;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	r = whole_memory(&f);
	r.guest_phys_addr = ~0ull - 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.userspace_addr = ~0ull - 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.mmap_offset = ~0ull - 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.memory_size = 0;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	CHECK_EQ(log_lines(&f), 4);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_region_larger_than_its_file(void)
{
	struct vhost_user_mem_region r;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	r = whole_memory(&f);
	r.memory_size = MEM_SIZE + 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	r = whole_memory(&f);
	r.mmap_offset = 4096;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 1);
	/* Exactly the file: fine, and an unaligned offset too. */
	r.memory_size = MEM_SIZE - 8192;
	r.mmap_offset = 100;
	CHECK_EQ(mem_table(&f, &r, 1, &f.memfd, 1), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_region_fd_not_mappable(void)
{
	int efd = eventfd(0, EFD_CLOEXEC), pipefd[2];
	struct vhost_user_mem_region r;
	struct fe f;

	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	CHECK_EQ(hostile_start(&f), 0);
	r = whole_memory(&f);
	CHECK_EQ(mem_table(&f, &r, 1, &efd, 1), 1);
	CHECK_EQ(mem_table(&f, &r, 1, &pipefd[0], 1), 1);
	close(efd);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_mem_table_with_fd_count_mismatch(void)
{
	struct vhost_user_mem_region r[2];
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	r[0] = r[1] = whole_memory(&f);
	r[1].guest_phys_addr += MEM_SIZE;
	r[1].userspace_addr += MEM_SIZE;
	CHECK_EQ(mem_table(&f, r, 2, &f.memfd, 1), 1);
	CHECK_EQ(mem_table(&f, r, 1, (int[]){ f.memfd, f.memfd }, 2), 1);
	/* More regions than a SET_MEM_TABLE holds. */
	{
		struct vhost_user_mem_table t = { .nregions = 9 };

		CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &t, sizeof(t), NULL, 0), 1);
	}
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_more_regions_than_max_mem_slots(void)
{
	int mfd = memfd_create("slots", MFD_CLOEXEC);
	struct fe f;

	CHECK(mfd >= 0);
	CHECK_EQ(ftruncate(mfd, 4096 * (UVIRTIO_MEM_MAX_REGIONS + 1)), 0);
	CHECK_EQ(fe_start(&f, false), 0);
	for (unsigned i = 0; i <= UVIRTIO_MEM_MAX_REGIONS; i++) {
		struct vhost_user_mem_reg reg = {
			.region = { .guest_phys_addr = GPA + 8192ull * i, .memory_size = 4096,
				    .userspace_addr = 0x10000000ull + 8192ull * i,
				    .mmap_offset = 4096ull * i },
		};
		int want = i < UVIRTIO_MEM_MAX_REGIONS ? 0 : 1;

		CHECK_EQ(fe_ack(&f, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &mfd, 1), want);
	}
	close(mfd);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_rem_mem_reg_refuses_a_region_not_mapped(void)
{
	struct vhost_user_mem_reg reg;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	reg = (struct vhost_user_mem_reg){ .region = whole_memory(&f) };
	reg.region.memory_size /= 2;
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 1);
	reg.region.memory_size *= 2;
	/* QEMU sends the fd along; it is closed. */
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), &f.memfd, 1), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

/* QEMU's vhost-user-net has a vhost device per queue pair on one
 * connection, and each sends ADD_MEM_REG (later REM_MEM_REG) for every
 * region: the same region again is counted, not refused, and goes with as
 * many removals. */
static void test_vhost_same_region_added_twice_goes_with_two_removals(void)
{
	struct vhost_user_mem_reg reg;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	reg = (struct vhost_user_mem_reg){ .region = whole_memory(&f) };
	CHECK_EQ(fe_ack(&f, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &f.memfd, 1), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_ring_fds_that_are_not_eventfds(void)
{
	int pipefd[2];
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_KICK, &v, 8, &pipefd[0], 1), 1);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_CALL, &v, 8, &pipefd[1], 1), 1);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ERR, &v, 8, &f.memfd, 1), 1);
	/* Polling mode (no kick fd) is not offered. */
	v = VHOST_USER_VRING_NOFD_MASK;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_KICK, &v, 8, NULL, 0), 1);
	/* "No fd" with an fd attached. */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_CALL, &v, 8, &f.call[0], 1), 1);
	/* Call without an fd: allowed (notifications off). */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_CALL, &v, 8, NULL, 0), 0);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_unknown_request_ignored_or_refused_when_reply_needed(void)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	/* QEMU probes: no answer asked, none given, still connected. */
	CHECK_EQ(fe_send(&f, VHOST_USER_GPU_SET_SOCKET, 0, &v, 8, &efd, 1), 0);
	CHECK_EQ(fe_send(&f, 999, 0, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe_ack(&f, 1000, &v, 8, NULL, 0), 1);
	CHECK(get_u64(&f, VHOST_USER_GET_FEATURES) & F_PROTO);
	close(efd);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_reply_flag_in_a_request(void)
{
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_FEATURES, VHOST_USER_REPLY_MASK, NULL, 0, NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_bad_version(void)
{
	struct vhost_user_hdr h = { VHOST_USER_GET_FEATURES, 2, 0 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(write(f.sock, &h, sizeof(h)), (ssize_t)sizeof(h));
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_oversized_payload(void)
{
	struct vhost_user_hdr h = { VHOST_USER_SET_CONFIG, VHOST_USER_VERSION, 1u << 20 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(write(f.sock, &h, sizeof(h)), (ssize_t)sizeof(h));
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_disconnects_on_message_cut_short(void)
{
	struct vhost_user_hdr h = { VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8 };
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(write(f.sock, &h, sizeof(h)), (ssize_t)sizeof(h));
	CHECK_EQ(write(f.sock, "abc", 3), 3);
	CHECK_EQ(shutdown(f.sock, SHUT_WR), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 1);
}

static void test_vhost_get_config_outside_config_space_replies_failure(void)
{
	struct vhost_user_config c = { .offset = 4, .size = 8 };
	static struct uvirtio_vhost_msg r;
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 8, NULL, 0), 0);
	CHECK_EQ(fe_recv(&f, &r), 0);
	CHECK_EQ(r.hdr.size, VHOST_USER_CONFIG_HDR_SIZE);
	CHECK_EQ(r.payload.config.size, 0);
	/* A config size over 256 is malformed. */
	c.size = 300;
	CHECK_EQ(fe_send(&f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE, NULL, 0), 0);
	CHECK(fe_disconnected(&f));
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_set_config_refused_by_a_read_only_device(void)
{
	struct vhost_user_config c = { .offset = 0, .size = 4 };
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_features_and_protocol_features_not_offered(void)
{
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED,
			    RING_FEATURES | UVIRTIO_BIT(VIRTIO_F_RING_RESET)), 1);
	/* Without VERSION_1 the device refuses at FEATURES_OK. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)), 1);
	CHECK_EQ(get_u64(&f, VHOST_USER_GET_STATUS), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, NEED, UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_PAGEFAULT)), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, NEED, PF_ALL), 0);
	/* DRIVER_OK before any features. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_STATUS, NEED, S_ALL), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_STATUS, NEED, 0x100), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_ring_changes_refused_while_it_runs(void)
{
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 32), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 5), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES), 1);
	/* The same features again are harmless. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(ring_io(&f, 0, 2, 0), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_memory_table_change_while_ring_runs_restarts_it(void)
{
	struct vhost_user_mem_region r[2];
	int fds[2];
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
					 UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS), -1), 0);
	CHECK_EQ(qemu_full_start(&f, UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
					     UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS), 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 4, 0x5a), 0);
	/* Memory hot-plug: the same memory plus one more region. */
	fds[0] = fds[1] = f.memfd;
	r[0] = whole_memory(&f);
	r[1] = (struct vhost_user_mem_region){ .guest_phys_addr = GPA + 2 * MEM_SIZE,
					       .memory_size = 4096, .userspace_addr = 0x1000,
					       .mmap_offset = 0 };
	CHECK_EQ(mem_table(&f, r, 2, fds, 2), 0);
	CHECK_EQ(ring_io(&f, 0, 4, 0x5a), 0);
	/* Removing the ring's memory: the ring cannot restart. */
	CHECK_EQ(mem_table(&f, &r[1], 1, fds, 1), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

/* Dirty logging (vhost-user.rst "Migration"): SET_LOG_BASE and the LOG
 * flag of SET_VRING_ADDR. The log covers guest memory (at GPA). */
#define LOG_BYTES (((GPA + MEM_SIZE) / 4096 / 8 + 4095) / 4096 * 4096)

static int log_memfd(size_t size)
{
	int fd = memfd_create("test-log", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* SET_LOG_BASE's reply (QEMU waits for it, REPLY_ACK or not): 0 or 1. */
static uint64_t set_log_base(struct fe *f, uint64_t size, uint64_t off, const int *fds,
			     unsigned nfds)
{
	struct vhost_user_log l = { .mmap_size = size, .mmap_offset = off };
	uint64_t v = ~0ull;

	if (fe_u64(f, VHOST_USER_SET_LOG_BASE, 0, &l, sizeof(l), fds, nfds, &v))
		return ~0ull;
	return v;
}

static void test_vhost_refuses_log_base_that_overflows_or_exceeds_its_fd(void)
{
	int fd = log_memfd(LOG_BYTES), pipefd[2], two[2];
	struct fe f;

	CHECK(fd >= 0);
	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	CHECK_EQ(hostile_start(&f), 0);
	CHECK_EQ(set_log_base(&f, 0, 0, &fd, 1), 1);
	CHECK_EQ(set_log_base(&f, ~0ull, 16, &fd, 1), 1);          /* size + offset wraps */
	CHECK_EQ(set_log_base(&f, 4096, ~0ull - 100, &fd, 1), 1);  /* so does this */
	CHECK_EQ(set_log_base(&f, LOG_BYTES, 4096, &fd, 1), 1);    /* past the fd's end */
	CHECK_EQ(set_log_base(&f, LOG_BYTES + 1, 0, &fd, 1), 1);
	CHECK_EQ(set_log_base(&f, 4096, 0, pipefd, 1), 1);         /* not a file */
	CHECK_EQ(set_log_base(&f, 4096, 0, NULL, 0), 1);           /* no fd */
	two[0] = fd;
	two[1] = pipefd[0];
	CHECK_EQ(set_log_base(&f, 4096, 0, two, 2), 1);            /* two */
	CHECK_EQ(log_lines(&f), 8);
	/* Still connected, and a good one is taken; then replaced. */
	CHECK_EQ(set_log_base(&f, LOG_BYTES, 0, &fd, 1), 0);
	CHECK_EQ(set_log_base(&f, LOG_BYTES - 4096, 4096, &fd, 1), 0);
	/* SET_LOG_FD: kept and closed with the connection. */
	CHECK_EQ(fe_send(&f, VHOST_USER_SET_LOG_FD, 0, NULL, 0, &pipefd[1], 1), 0);
	CHECK(get_u64(&f, VHOST_USER_GET_FEATURES) & UVIRTIO_BIT(VHOST_F_LOG_ALL));
	CHECK(get_u64(&f, VHOST_USER_GET_PROTOCOL_FEATURES) & PF(LOG_SHMFD));
	close(fd);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_refuses_log_guest_addr_that_wraps_or_lies_outside_the_log(void)
{
	int fd = log_memfd(LOG_BYTES);
	uint64_t uva;
	struct vhost_user_vring_addr a;
	struct fe f;

	CHECK(fd >= 0);
	CHECK_EQ(hostile_start(&f), 0);
	uva = (uintptr_t)f.map;
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 64), 0);
	a = (struct vhost_user_vring_addr){ .index = 0, .flags = VHOST_USER_VRING_F_LOG,
					    .desc_user_addr = uva, .avail_user_addr = uva + 0x1000,
					    .used_user_addr = uva + 0x2000, .log_guest_addr = GPA + 0x2000 };
	/* Before VHOST_F_LOG_ALL. */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED,
			    RING_FEATURES | F_PROTO | UVIRTIO_BIT(VHOST_F_LOG_ALL)), 0);
	CHECK_EQ(set_log_base(&f, LOG_BYTES, 0, &fd, 1), 0);
	a.log_guest_addr = ~0ull - 8; /* the used ring's 518 bytes wrap */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	a.log_guest_addr = (uint64_t)LOG_BYTES * 8 * 4096; /* the first page past the log */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	a.log_guest_addr = (uint64_t)LOG_BYTES * 8 * 4096 - 16; /* straddles its end */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	a.flags = 0x2; /* unknown flag */
	a.log_guest_addr = GPA + 0x2000;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	CHECK_EQ(log_lines(&f), 5);
	a.flags = VHOST_USER_VRING_F_LOG;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	close(fd);
	CHECK_EQ(fe_finish(&f), 0);
}

TEST_MAIN(T(test_vhost_refuses_payload_size_wrong_for_request),
	  T(test_vhost_refuses_log_base_that_overflows_or_exceeds_its_fd),
	  T(test_vhost_refuses_log_guest_addr_that_wraps_or_lies_outside_the_log),
	  T(test_vhost_disconnects_on_bad_message_without_need_reply),
	  T(test_vhost_closes_fds_a_request_does_not_take),
	  T(test_vhost_disconnects_on_more_than_eight_fds),
	  T(test_vhost_refuses_queue_index_out_of_range),
	  T(test_vhost_refuses_ring_size_not_power_of_two_or_above_max),
	  T(test_vhost_refuses_ring_outside_memory_table),
	  T(test_vhost_refuses_overlapping_regions),
	  T(test_vhost_refuses_region_that_wraps),
	  T(test_vhost_refuses_region_larger_than_its_file),
	  T(test_vhost_refuses_region_fd_not_mappable),
	  T(test_vhost_refuses_mem_table_with_fd_count_mismatch),
	  T(test_vhost_refuses_more_regions_than_max_mem_slots),
	  T(test_vhost_rem_mem_reg_refuses_a_region_not_mapped),
	  T(test_vhost_same_region_added_twice_goes_with_two_removals),
	  T(test_vhost_refuses_ring_fds_that_are_not_eventfds),
	  T(test_vhost_unknown_request_ignored_or_refused_when_reply_needed),
	  T(test_vhost_disconnects_on_reply_flag_in_a_request),
	  T(test_vhost_disconnects_on_bad_version),
	  T(test_vhost_disconnects_on_oversized_payload),
	  T(test_vhost_disconnects_on_message_cut_short),
	  T(test_vhost_get_config_outside_config_space_replies_failure),
	  T(test_vhost_set_config_refused_by_a_read_only_device),
	  T(test_vhost_refuses_features_and_protocol_features_not_offered),
	  T(test_vhost_ring_changes_refused_while_it_runs),
	  T(test_vhost_memory_table_change_while_ring_runs_restarts_it))
