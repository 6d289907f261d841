// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend transport, driven by a test that plays QEMU 7.2's
 * front-end over a socketpair (vhost_backend_fixture.h): its exact realize,
 * start, stop and restart sequences with a real device type (rng, served on
 * the control thread, and a device that serves each queue on a thread of its
 * own and polls the kick fds itself), I/O through a driver-side ring built in
 * the shared memfd, split and packed. The listening and connecting modes are
 * in test_vhost_backend_socket.c, a hostile front-end in
 * test_vhost_backend_hostile.c. Every test counts the process's fds before
 * and after: nothing the front-end sent may leak.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "vhost_backend_fixture.h"

/* End to end with QEMU's sequences. */

static void test_vhost_qemu_realize_start_io_reset_restart_with_rng(void)
{
	uint32_t base[1];
	struct uvirtio_rng_dev_stats st;
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 5, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 3, 0), 0);
	/* Guest reset: the positions come back true. */
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 8);
	CHECK_EQ(get_u64(&f, VHOST_USER_GET_STATUS), 0);
	/* Restart at that index. The backend kept the memory region; QEMU
	 * sends only changes to the table, and qemu_start() adds it again,
	 * so take it out first. */
	{
		struct vhost_user_mem_reg reg = { .region = whole_memory(&f) };

		CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	}
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, (uint16_t)base[0]), 0);
	CHECK_EQ(ring_io(&f, 0, 4, 0), 0);
	uvirtio_rng_dev_stats(&f.rng, &st);
	CHECK_EQ(st.requests, 12);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 12);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 0);
}

static void test_vhost_without_status_or_reply_ack_a_ring_start_is_driver_ok(void)
{
	uint64_t pf = UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG);
	uint32_t base[1];
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, pf, -1), 0);
	CHECK_EQ(qemu_start(&f, pf, 1, 0), 0);
	CHECK_EQ(qemu_start_fds(&f, pf, 1), 0);
	CHECK_EQ(ring_io(&f, 0, 7, 0), 0);
	CHECK_EQ(qemu_stop(&f, pf, 1, base), 0);
	CHECK_EQ(base[0], 7);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_queue_threads_serve_and_stop_keeping_position(void)
{
	uint32_t base[2];
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 2, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0x5a), 0);
	CHECK_EQ(ring_io(&f, 1, 3, 0x5a), 0);
	/* Pause (SET_VRING_ENABLE(0) alone) and resume keep the position. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 0), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 0);
	CHECK_EQ(ring_io(&f, 0, 2, 0x5a), 0);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 2, base), 0);
	CHECK_EQ(base[0], 12);
	CHECK_EQ(base[1], 3);
	CHECK_EQ(__atomic_load_n(&f.td.served, __ATOMIC_RELAXED), 15);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_call_fd_swapped_while_queue_thread_signals(void)
{
	uint32_t base[2];
	struct fe f;

	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	/* QEMU masks and unmasks interrupts by swapping the call fd while
	 * the ring runs: each swap races the queue thread's signal. */
	for (unsigned round = 0; round < 40; round++) {
		int fresh = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct iovec in = { uvirtio_dma_alloc(&f.dma, 256, 16), 256 };
		uint64_t v = 0;

		CHECK(fresh >= 0 && in.iov_base);
		CHECK_EQ(uvirtio_drvq_add(&f.dq[0], NULL, 0, &in, 1, in.iov_base), 0);
		CHECK_EQ(uvirtio_drvq_kick(&f.dq[0]), 0);
		CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_CALL, NEED, &v, 8, &fresh, 1, &v), 0);
		CHECK_EQ(v, 0);
		close(f.call[0]);
		f.call[0] = fresh;
	}
	/* Signals that went to a replaced fd are QEMU's to check: every
	 * buffer comes back, and any wait after the last swap is woken
	 * through the new fd. */
	for (unsigned got = 0; got < 40;) {
		struct pollfd p = { .fd = f.call[0], .events = POLLIN };
		void *token;
		uint32_t len;
		uint64_t v;
		int ret = uvirtio_drvq_get(&f.dq[0], &token, &len);

		CHECK(ret >= 0);
		if (ret == 1) {
			CHECK_EQ(len, 256);
			got++;
			continue;
		}
		if (!uvirtio_drvq_enable_cb(&f.dq[0]))
			continue;
		CHECK_EQ(poll(&p, 1, GUARD_MS), 1);
		(void)!read(f.call[0], &v, sizeof(v));
	}
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 40);
	CHECK_EQ(fe_finish(&f), 0);
}

/* A call made on the masked fd while QEMU swaps it back, or skipped by a
 * backend killed after its used index store, would leave the driver
 * waiting for completions that are already in the used ring: every new
 * call fd gets one call at once. */
static void test_vhost_new_call_fd_gets_one_call_at_once(void)
{
	int fresh = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t v = 0, count = 0;
	uint32_t base[1];
	struct fe f;

	CHECK(fresh >= 0);
	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_CALL, NEED, &v, 8, &fresh, 1, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(read(fresh, &count, sizeof(count)), (ssize_t)sizeof(count));
	CHECK_EQ(count, 1);
	close(f.call[0]);
	f.call[0] = fresh;
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_config_change_goes_to_the_backend_channel(void)
{
	int chan[2];
	static struct uvirtio_vhost_msg m;
	struct fe f;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	CHECK_EQ(fe_start(&f, true), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, chan[1]), 0);
	close(chan[1]);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	/* The device type changes its config (as a device thread would). */
	CHECK_EQ(uvirtio_device_config_update(f.dev, 0, "changed", 8), 0);
	CHECK_EQ(uvirtio_vhost_msg_recv(chan[0], &m, -1), 0);
	CHECK_EQ(m.hdr.request, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
	CHECK_EQ(m.hdr.size, 0);
	close(chan[0]);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_reset_device_forgets_ring_state(void)
{
	uint32_t base[1];
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 2, 0), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0), 0);
	CHECK_EQ(get_u64(&f, VHOST_USER_GET_STATUS), 0);
	CHECK_EQ(qemu_stop(&f, 0, 1, base), 0);
	CHECK_EQ(base[0], 0);
	CHECK_EQ(fe_finish(&f), 0);
}

/* The packed ring over vhost-user, as QEMU 7.2 drives it. */

static void test_vhost_packed_ring_base_in_qemu_encoding_wraps_and_restarts_there(void)
{
	uint32_t base[1];
	struct uvirtio_rng_dev_stats st;
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	f.ring_features = PACKED_FEATURES;
	f.ring_num = PACKED_NUM;
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	/* Fresh: avail 0 and used 0, each with wrap counter 1. */
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, 0x80008000u), 0);
	CHECK_EQ(ring_io(&f, 0, 10, 0), 0);
	CHECK_EQ(ring_io(&f, 0, 6, 0), 0);
	/* num + 3 requests: position 3, both wrap counters flipped to 0;
	 * avail in bits 0-15, used in 16-31. */
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 0x00030003u);
	CHECK_EQ(uvirtio_drvq_avail_index(&f.dq[0]), 0x0003);
	CHECK_EQ(uvirtio_drvq_used_index(&f.dq[0]), 0x0003);
	{
		struct vhost_user_mem_reg reg = { .region = whole_memory(&f) };

		CHECK_EQ(fe_ack(&f, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0), 0);
	}
	/* Restarted at that base, the ring carries on (a restart anywhere
	 * else would serve nothing, or find descriptors not available). */
	CHECK_EQ(qemu_full_start(&f, PF_ALL, 1, base[0]), 0);
	CHECK_EQ(ring_io(&f, 0, PACKED_NUM, 0), 0);
	uvirtio_rng_dev_stats(&f.rng, &st);
	CHECK_EQ(st.requests, 16 + PACKED_NUM);
	CHECK_EQ(qemu_stop(&f, PF_ALL, 1, base), 0);
	CHECK_EQ(base[0], 0x80038003u);
	CHECK(!uvirtio_drvq_is_broken(&f.dq[0]));
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 0);
}

static void test_vhost_packed_ring_size_need_not_be_power_of_two_split_base_is_16_bits(void)
{
	struct vhost_user_vring_addr a;
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	/* Split: a power of 2, a 16-bit base. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, PACKED_NUM), 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x10000), 1);
	/* Packed: any size; a base of two halves. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, PACKED_FEATURES | F_PROTO), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, PACKED_NUM), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x80008000u), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x10000), 0);
	CHECK_EQ(log_lines(&f), 2);
	/* Back to split with that base kept: the ring does not start. */
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED, RING_FEATURES | F_PROTO), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 16), 0);
	CHECK_EQ(make_ring(&f, 0, 16), 0);
	a = (struct vhost_user_vring_addr){ .index = 0,
					    .desc_user_addr = ring_uva(&f, dq_ring(&f, 0).desc),
					    .used_user_addr = ring_uva(&f, dq_ring(&f, 0).used),
					    .avail_user_addr = ring_uva(&f, dq_ring(&f, 0).avail) };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_KICK, NEED, &v, 8, &f.kick[0], 1, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 1);
	CHECK_EQ(log_lines(&f), 3);
	pthread_mutex_lock(&f.log_lock);
	CHECK(strstr(f.last_log, "over 16 bits"));
	pthread_mutex_unlock(&f.log_lock);
	/* Not running: a ring change is still taken. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, NEED, 0, 16), 0);
	CHECK_EQ(fe_finish(&f), 0);
}

static void test_vhost_packed_base_index_not_below_ring_size_refused_when_ring_starts(void)
{
	static const uint32_t bad[] = { 0x8000800du, 0x800d8000u, 0x7fff7fffu };
	uint64_t v = 0;
	struct fe f;

	CHECK_EQ(fe_start(&f, false), 0);
	f.ring_features = PACKED_FEATURES;
	f.ring_num = PACKED_NUM;
	CHECK_EQ(qemu_realize(&f, PF_ALL, -1), 0);
	/* Taken when set (the ring checks it), refused when the ring runs. */
	CHECK_EQ(qemu_start(&f, PF_ALL, 1, bad[0]), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_KICK, NEED, &v, 8, &f.kick[0], 1, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_VRING_CALL, NEED, &v, 8, &f.call[0], 1, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(log_lines(&f), 0);
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, bad[k]), 0);
		CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 1);
		CHECK_EQ(log_lines(&f), k + 1);
	}
	/* Not running (a ring change is taken); a base inside the ring
	 * starts it, and I/O runs. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, NEED, 0, 0x80008000u), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, NEED, 0, 1), 0);
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_STATUS, NEED, S_ALL), 0);
	CHECK_EQ(ring_io(&f, 0, PACKED_NUM, 0), 0);
	CHECK_EQ(fe_finish(&f), 0);
	CHECK_EQ(f.log_lines, 3);
}

static void test_vhost_never_offers_notification_data(void)
{
	uint64_t features;
	struct fe f;

	CHECK_EQ(hostile_start(&f), 0);
	/* The device core offers it; a kick eventfd cannot carry it. */
	CHECK(uvirtio_device_get_features(f.dev) & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA));
	features = get_u64(&f, VHOST_USER_GET_FEATURES);
	CHECK(!(features & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_RING_PACKED));
	CHECK(features & UVIRTIO_BIT(VIRTIO_F_IN_ORDER));
	CHECK_EQ(fe_set_u64(&f, VHOST_USER_SET_FEATURES, NEED,
			    PACKED_FEATURES | F_PROTO | UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)), 1);
	CHECK_EQ(fe_finish(&f), 0);
}

TEST_MAIN(T(test_vhost_qemu_realize_start_io_reset_restart_with_rng),
	  T(test_vhost_without_status_or_reply_ack_a_ring_start_is_driver_ok),
	  T(test_vhost_queue_threads_serve_and_stop_keeping_position),
	  T(test_vhost_call_fd_swapped_while_queue_thread_signals),
	  T(test_vhost_new_call_fd_gets_one_call_at_once),
	  T(test_vhost_config_change_goes_to_the_backend_channel),
	  T(test_vhost_reset_device_forgets_ring_state),
	  T(test_vhost_packed_ring_base_in_qemu_encoding_wraps_and_restarts_there),
	  T(test_vhost_packed_ring_size_need_not_be_power_of_two_split_base_is_16_bits),
	  T(test_vhost_packed_base_index_not_below_ring_size_refused_when_ring_starts),
	  T(test_vhost_never_offers_notification_data))
