// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the vhost-user backend's message handler
 * (src/transport/vhost_backend*.c) fed arbitrary streams of front-end
 * requests, with fds attached, and an rng device behind it whose ring lives
 * in guest memory the input fills. No socket: requests go straight to the
 * handler, replies are only kept.
 *
 * Input layout (little-endian; a short input reads as zeros):
 *   u16 len, len bytes        guest memory (a 64 KiB memfd) from offset 0
 *   then operations, each a u8 op:
 *     op % 8 < 6: a request
 *       u8  request
 *       u8  flags: bit 0 NEED_REPLY, bit 1 REPLY (hostile), bit 2 exact size
 *       u16 size, or with bit 2 a count n: SET_MEM_TABLE gets n % 9 regions,
 *           GET/SET_CONFIG n % 257 config bytes, others their defined size
 *       u8  nfds (% 9), then per fd a u8 kind: 0 memfd of (u8) pages,
 *           1 eventfd, 2 the guest memfd, 3 a pipe's read end
 *       size payload bytes
 *     op % 8 == 6: u8 ring: the driver kicked it (queue_notify)
 *     op % 8 == 7: the front-end disconnects
 *
 * After each input the connection ends; then no fd may be left open and no
 * region mapped beyond what the target itself holds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uvirtio/rng.h"
#include "uvirtio/vhost_backend.h"
#include "../../src/memory/memory_priv.h"
#include "../../src/transport/vhost_backend_priv.h"
#include "fuzz_input.h"
#include "fuzz_leaks.h"

#define GUEST_SIZE 65536u

static struct uvirtio_vhost_backend *vb;
static struct uvirtio_rng_dev rng;
static int guest_fd = -1;
static struct uvirtio_vhost_msg msg;

static void setup(void)
{
	struct uvirtio_vhost_backend_config cfg = {
		.socket_path = "/nonexistent/fuzz_vhost_msg.sock", .fd = -1, /* no log sink: the library is silent */
	};

	FUZZ_CHECK(uvirtio_vhost_backend_create(&vb, &cfg) == 0);
	FUZZ_CHECK(uvirtio_rng_dev_init(&rng, uvirtio_vhost_backend_mem(vb)) == 0);
	FUZZ_CHECK(uvirtio_vhost_backend_attach(vb, uvirtio_rng_dev_device(&rng)) == 0);
	guest_fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	FUZZ_CHECK(guest_fd >= 0 && ftruncate(guest_fd, GUEST_SIZE) == 0);
}

static int make_fd(struct fuzz_in *in)
{
	uint8_t kind = in_u8(in);
	int fd, p[2];

	switch (kind % 4) {
	case 0:
		fd = memfd_create("fuzz-region", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, (off_t)in_u8(in) * 4096) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	case 1:
		return eventfd(0, EFD_CLOEXEC);
	case 2:
		return dup(guest_fd);
	default:
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		close(p[1]);
		return p[0];
	}
}

static uint32_t exact_size(uint32_t req, unsigned n)
{
	switch (req) {
	case VHOST_USER_SET_FEATURES:
	case VHOST_USER_SET_PROTOCOL_FEATURES:
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
	case VHOST_USER_SET_VRING_ENABLE:
	case VHOST_USER_SET_STATUS:
		return 8;
	case VHOST_USER_SET_VRING_ADDR:
	case VHOST_USER_ADD_MEM_REG:
	case VHOST_USER_REM_MEM_REG:
		return 40;
	case VHOST_USER_GET_INFLIGHT_FD:
	case VHOST_USER_SET_INFLIGHT_FD:
		return sizeof(struct vhost_user_inflight);
	case VHOST_USER_SET_MEM_TABLE:
		return 8 + 32 * (n % 9);
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		return VHOST_USER_CONFIG_HDR_SIZE + n % 257;
	default:
		return 0;
	}
}

static void one_request(struct fuzz_in *in)
{
	uint32_t req = in_u8(in);
	uint8_t flags = in_u8(in);
	uint16_t size_or_n = in_u16(in);
	unsigned nfds = in_u8(in) % (VHOST_USER_MAX_FDS + 1);
	uint32_t size = flags & 4 ? exact_size(req, size_or_n) : size_or_n % (VHOST_USER_PAYLOAD_MAX + 1);

	memset(&msg, 0, sizeof(msg));
	msg.hdr.request = req;
	msg.hdr.flags = VHOST_USER_VERSION | (flags & 1 ? VHOST_USER_NEED_REPLY_MASK : 0) |
			(flags & 2 ? VHOST_USER_REPLY_MASK : 0);
	msg.hdr.size = size;
	for (unsigned i = 0; i < nfds; i++) {
		int fd = make_fd(in);

		if (fd >= 0)
			msg.fds[msg.nfds++] = fd;
	}
	for (uint32_t i = 0; i < size; i++)
		msg.payload.raw[i] = in_u8(in);
	if (flags & 4) {
		if (req == VHOST_USER_SET_MEM_TABLE)
			msg.payload.mem_table.nregions = size_or_n % 9;
		if (req == VHOST_USER_GET_CONFIG || req == VHOST_USER_SET_CONFIG)
			msg.payload.config.size = size_or_n % 257;
	}
	uvirtio_vhost_backend_handle_msg(vb, &msg);
	/* The handler owns every fd it was given: none may be left in msg. */
	FUZZ_CHECK(msg.nfds == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	int fds_at_start;
	uint16_t len;
	char *g;

	if (!vb)
		setup();
	/* Counted per input: libFuzzer itself opens fds between inputs (its
	 * symbolizer's pipes when it prints a new function). */
	fds_at_start = count_dir("/proc/self/fd");
	g = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, guest_fd, 0);
	FUZZ_CHECK(g != MAP_FAILED);
	memset(g, 0, GUEST_SIZE);
	len = in_u16(&in);
	for (unsigned i = 0; i < len && i < GUEST_SIZE; i++)
		g[i] = (char)in_u8(&in);

	while (!in_empty(&in)) {
		uint8_t op = in_u8(&in);

		switch (op % 8) {
		case 6:
			uvirtio_device_queue_notify(uvirtio_rng_dev_device(&rng), in_u8(&in));
			break;
		case 7:
			uvirtio_vhost_backend_end_connection(vb);
			break;
		default:
			one_request(&in);
			break;
		}
	}
	uvirtio_vhost_backend_end_connection(vb);
	munmap(g, GUEST_SIZE);
	FUZZ_CHECK(uvirtio_vhost_backend_mapped_regions(vb) == 0);
	FUZZ_CHECK(mem_nregions(uvirtio_vhost_backend_mem(vb)) == 0);
	FUZZ_CHECK(uvirtio_device_get_status(uvirtio_rng_dev_device(&rng)) == 0);
	FUZZ_CHECK(count_dir("/proc/self/fd") == fds_at_start);
	return 0;
}
