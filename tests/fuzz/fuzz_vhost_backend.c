// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the vhost-user backend serving the blk device (null
 * backend, no disk I/O) through its real receive path. Per input a socketpair
 * joins the fuzzer to uvirtio_vhost_backend_run() on a thread of its own (the
 * connected-fd mode, cfg.fd), so the backend's own recvmsg framing, fd
 * counts, message handlers, ring start/stop and the blk queue threads all run
 * as they do under QEMU. Kick and call fds are real eventfds the fuzzer keeps
 * copies of; a kick writes the kick eventfd, which the queue thread polls.
 * fuzz_vhost_msg keeps the direct path (messages handed to the handler).
 *
 * Input layout (little-endian; a short input reads as zeros):
 *   u8 device: bit 0 read-only, bit 1 two queues, bit 2 queue threads
 *      sleep at once (no polling window)
 *   then operations, each a u8 op (op % 16):
 *     0-9  a message: u8 request, u8 header flags, u16 size, u8 nfds (% 17),
 *          nfds fd kinds (below), then size payload bytes. A size over
 *          VHOST_USER_PAYLOAD_MAX sends the header alone (the backend must
 *          hang up on it).
 *     10   raw bytes: u8 n, n bytes written to the socket as they are, so a
 *          message may be split or run into the next
 *     11   kick: u8 k; waits until the backend handled every message sent
 *          so far, then writes the kick eventfd of ring k % 4; with bit 7 of
 *          k set and a queue thread running, then waits up to KICK_WAIT_MS
 *          for the device to take a request (so that a seed's request is
 *          served before the next message stops the ring, instead of
 *          whenever the thread happens to run)
 *     12   poke guest memory: u24 offset, u8 n, n bytes
 *     13   wait until the backend handled every message sent so far
 *     14-15 hang up now (the rest of the input is ignored)
 *   fd kind byte: bits 0-2 what, bits 3-4 index i (bits 3-7 for pages):
 *     0 guest memory (the GUEST_SIZE memfd), 1 kick eventfd i, 2 call
 *     eventfd i, 3 a fresh eventfd, 4 a memfd of (kind >> 3) pages, 5 a
 *     pipe's read end, 6 a socket (its peer stays open for the session),
 *     7 /dev/null
 *
 * Seeds converted from recorded QEMU sessions (vhost_seeds.py) map QEMU's
 * memory table onto the guest memfd and put ring r at r * RING_SLOT: the
 * descriptors at +0, the avail ring (packed: driver event area) at +16 KiB,
 * the used ring (device event area) at +20 KiB; data buffers from DATA_AT.
 *
 * Every reply must be well-formed (version 1, the reply flag, a size the
 * protocol allows, no fds). Waits are bounded: the backend handles a message
 * in microseconds, so WAIT_MS without progress means it hangs, and a check
 * says so. At the end of each input the fuzzer hangs up and joins the
 * backend thread; then no fd and no thread may be left, the device must be
 * reset and no guest memory region mapped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/vhost_backend.h"
#include "../../src/memory/memory_priv.h"
#include "../../src/transport/vhost_backend_priv.h"
#include "fuzz_input.h"
#include "fuzz_fds.h"
#include "fuzz_leaks.h"

#define GUEST_SIZE (128u * 1024)
/* The seeds' layout (vhost_seeds.py); the fuzzer itself places nothing. */
#define RING_SLOT (32u * 1024)
#define DATA_AT (64u * 1024)
#define NEVFD 4
#define MAX_SEND_FDS 16
#define WAIT_MS 2000
#define KICK_WAIT_MS 5

struct session {
	int sock; /* the fuzzer's end of the socketpair */
	int kick[NEVFD], call[NEVFD];
	int chan[2]; /* a socketpair for fd kind 6 */
	struct uvirtio_vhost_backend *vb;
	pthread_t thread;
	int done;   /* atomic: run() returned */
	int done_fd; /* an eventfd, written when run() returned */
	int run_ret;
	/* The fuzzer's copy of the backend's framing: how many complete
	 * messages it has sent, and where in a message the stream is. */
	uint8_t hdr[VHOST_USER_HDR_SIZE];
	unsigned hdr_have;
	uint32_t payload_left;
	bool framing_dead; /* a size over the maximum: the backend hangs up */
	uint64_t complete;
	/* The same for the backend's replies. */
	uint8_t rhdr[VHOST_USER_HDR_SIZE];
	unsigned rhdr_have;
	uint32_t rpayload_left;
};

static int guest_fd = -1;
/* FUZZ_VERBOSE=1 in the environment: one line per input saying what the
 * backend and the device did (to check that seeds reach the queues). */
static bool verbose;
static uint8_t *guest;
static uint8_t payload[VHOST_USER_PAYLOAD_MAX];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *serve(void *arg)
{
	struct session *s = arg;

	s->run_ret = uvirtio_vhost_backend_run(s->vb);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	(void)!eventfd_write(s->done_fd, 1);
	return NULL;
}

static bool done(struct session *s)
{
	return __atomic_load_n(&s->done, __ATOMIC_ACQUIRE);
}

/* Every message the backend sends here is a reply: version 1 with the
 * reply flag, of a size the protocol allows. (Its request code is whatever
 * the request had: raw bytes can make any.) */
FUZZ_MODEL static void check_replies(struct session *s, const uint8_t *p, size_t n)
{
	while (n) {
		if (s->rhdr_have < VHOST_USER_HDR_SIZE) {
			s->rhdr[s->rhdr_have++] = *p++;
			n--;
			if (s->rhdr_have == VHOST_USER_HDR_SIZE) {
				struct vhost_user_hdr h;

				memcpy(&h, s->rhdr, sizeof(h));
				FUZZ_CHECK(h.flags == (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK));
				FUZZ_CHECK(h.size <= VHOST_USER_PAYLOAD_MAX);
				s->rpayload_left = h.size;
				if (!h.size)
					s->rhdr_have = 0;
			}
		} else {
			size_t k = n < s->rpayload_left ? n : s->rpayload_left;

			p += k;
			n -= k;
			s->rpayload_left -= (uint32_t)k;
			if (!s->rpayload_left)
				s->rhdr_have = 0;
		}
	}
}

/* Read and drop what the backend sent (replies), closing any fds with them,
 * so it never blocks on a full socket. */
static void drain(struct session *s)
{
	char buf[8192];
	char cbuf[CMSG_SPACE(64 * sizeof(int))];

	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(s->sock, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n <= 0)
			return;
		check_replies(s, (const uint8_t *)buf, (size_t)n);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
			/* The backend sends no fds on the front-end's socket. */
			FUZZ_CHECK(c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS);
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
	}
}

/* Wait (draining replies) until @cond holds or the backend thread ended. */
static void wait_until(struct session *s, bool (*cond)(struct session *))
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (!done(s) && !cond(s)) {
		struct pollfd p[2] = { { .fd = s->sock, .events = POLLIN },
				       { .fd = s->done_fd, .events = POLLIN } };

		FUZZ_CHECK(now_ms() < deadline); /* the backend hangs */
		if (poll(p, 2, 1) > 0)
			drain(s);
	}
	drain(s);
}

static bool writable(struct session *s)
{
	struct pollfd p = { .fd = s->sock, .events = POLLOUT };

	return poll(&p, 1, 0) > 0;
}

/* Follow the stream as the backend's recv frames it. */
static void track(struct session *s, const uint8_t *p, size_t n)
{
	while (n && !s->framing_dead) {
		if (s->hdr_have < VHOST_USER_HDR_SIZE) {
			s->hdr[s->hdr_have++] = *p++;
			n--;
			if (s->hdr_have < VHOST_USER_HDR_SIZE)
				continue;
			memcpy(&s->payload_left, s->hdr + 8, 4);
			if (s->payload_left > VHOST_USER_PAYLOAD_MAX) {
				s->framing_dead = true;
				return;
			}
		} else {
			size_t k = n < s->payload_left ? n : s->payload_left;

			p += k;
			n -= k;
			s->payload_left -= (uint32_t)k;
		}
		if (s->hdr_have == VHOST_USER_HDR_SIZE && !s->payload_left) {
			s->complete++;
			s->hdr_have = 0;
		}
	}
}

/* Write @n bytes, the fds with the first of them; gives up once the backend
 * is gone (it may hang up on a message in the middle of our write). */
static void send_bytes(struct session *s, const uint8_t *p, size_t n, const int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(MAX_SEND_FDS * sizeof(int))];
	size_t off = 0;

	while (off < n) {
		struct iovec iov = { (void *)(p + off), n - off };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t k;

		if (nfds)
			fuzz_attach_fds(&h, cbuf, fds, nfds);
		k = sendmsg(s->sock, &h, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				wait_until(s, writable);
				if (done(s))
					return;
				continue;
			}
			return; /* EPIPE, ECONNRESET: the backend hung up */
		}
		track(s, p + off, (size_t)k);
		off += (size_t)k;
		nfds = 0;
	}
}

static uint64_t requests_taken(const struct uvirtio_blk_dev *blk)
{
	struct uvirtio_blk_dev_stats st;

	uvirtio_blk_dev_get_stats(blk, &st);
	return st.reads + st.writes + st.flushes + st.get_ids + st.discards + st.write_zeroes +
	       st.other;
}

static bool all_handled(struct session *s)
{
	struct uvirtio_vhost_backend_stats st;

	uvirtio_vhost_backend_get_stats(s->vb, &st);
	return st.messages >= s->complete;
}

/* Every complete message sent so far is handled. The message counter counts
 * a message when its handling begins, so a stateless probe (GET_FEATURES,
 * answered whatever the state) goes after them, when the stream is at a
 * message boundary. */
static void sync_backend(struct session *s)
{
	if (!s->framing_dead && !s->hdr_have) {
		struct vhost_user_hdr h = { .request = VHOST_USER_GET_FEATURES,
					    .flags = VHOST_USER_VERSION };

		send_bytes(s, (const uint8_t *)&h, sizeof(h), NULL, 0);
	}
	wait_until(s, all_handled);
}

static int make_fd(struct session *s, uint8_t kind)
{
	unsigned i = (kind >> 3) % NEVFD;
	int fd, p[2];

	switch (kind & 7) {
	case 0:
		return dup(guest_fd);
	case 1:
		return dup(s->kick[i]);
	case 2:
		return dup(s->call[i]);
	case 3:
		return eventfd(0, EFD_CLOEXEC);
	case 4:
		fd = memfd_create("fuzz-region", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, (off_t)(kind >> 3) * 4096) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	case 5:
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		close(p[1]);
		return p[0];
	case 6:
		return dup(s->chan[1]);
	default:
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	}
}

static void one_message(struct session *s, struct fuzz_in *in)
{
	uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX];
	struct vhost_user_hdr h = { .request = in_u8(in) };
	int fds[MAX_SEND_FDS];
	unsigned nfds, n = 0;
	size_t len;

	h.flags = in_u8(in);
	h.size = in_u16(in);
	nfds = in_u8(in) % (MAX_SEND_FDS + 1);
	for (unsigned i = 0; i < nfds; i++) {
		int fd = make_fd(s, in_u8(in));

		if (fd >= 0)
			fds[n++] = fd;
	}
	len = h.size <= VHOST_USER_PAYLOAD_MAX ? h.size : 0;
	for (size_t i = 0; i < len; i++)
		payload[i] = in_u8(in);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	send_bytes(s, buf, sizeof(h) + len, fds, n);
	/* The kernel holds its own references to fds in flight. */
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static void session_start(struct session *s, struct uvirtio_blk_dev *blk,
			  const struct uvirtio_blk_dev_config *bcfg)
{
	struct uvirtio_vhost_backend_config cfg = { .fd = -1 } /* no log sink: the library is silent */;
	int sv[2];

	memset(s, 0, sizeof(*s));
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->chan) == 0);
	for (unsigned i = 0; i < NEVFD; i++) {
		s->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		s->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		FUZZ_CHECK(s->kick[i] >= 0 && s->call[i] >= 0);
	}
	s->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	FUZZ_CHECK(s->done_fd >= 0);
	s->sock = sv[0];
	cfg.fd = sv[1];
	FUZZ_CHECK(uvirtio_vhost_backend_create(&s->vb, &cfg) == 0);
	FUZZ_CHECK(uvirtio_blk_dev_init(blk, bcfg, uvirtio_vhost_backend_mem(s->vb)) == 0);
	FUZZ_CHECK(uvirtio_vhost_backend_attach(s->vb, uvirtio_blk_dev_device(blk)) == 0);
	FUZZ_CHECK(pthread_create(&s->thread, NULL, serve, s) == 0);
}

/* Hang up and wait for the backend to notice: it ends the connection (rings
 * stopped, queue threads joined, memory unmapped, fds closed) and run()
 * returns. */
static void session_end(struct session *s, struct uvirtio_blk_dev *blk)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	shutdown(s->sock, SHUT_WR);
	while (!done(s)) {
		struct pollfd p[2] = { { .fd = s->sock, .events = POLLIN },
				       { .fd = s->done_fd, .events = POLLIN } };

		FUZZ_CHECK(now_ms() < deadline); /* the backend does not end the connection */
		if (poll(p, 2, 1) > 0)
			drain(s);
	}
	pthread_join(s->thread, NULL);
	FUZZ_CHECK(s->run_ret == 0);
	if (verbose) {
		struct uvirtio_vhost_backend_stats vst;
		struct uvirtio_blk_dev_stats bst;

		uvirtio_vhost_backend_get_stats(s->vb, &vst);
		uvirtio_blk_dev_get_stats(blk, &bst);
		fprintf(stderr, "fuzz_vhost_backend: %llu messages, %llu errors; blk %llu reads, "
			"%llu writes, %llu flushes, %llu get_ids, %llu other, %llu ioerr, "
			"%llu unsupp\n",
			(unsigned long long)vst.messages, (unsigned long long)vst.errors,
			(unsigned long long)bst.reads, (unsigned long long)bst.writes,
			(unsigned long long)bst.flushes, (unsigned long long)bst.get_ids,
			(unsigned long long)bst.other, (unsigned long long)bst.ioerr,
			(unsigned long long)bst.unsupp);
	}
	FUZZ_CHECK(uvirtio_vhost_backend_mapped_regions(s->vb) == 0);
	FUZZ_CHECK(mem_nregions(uvirtio_vhost_backend_mem(s->vb)) == 0);
	FUZZ_CHECK(uvirtio_device_get_status(uvirtio_blk_dev_device(blk)) == 0);
	uvirtio_vhost_backend_destroy(s->vb);
	uvirtio_blk_dev_destroy(blk);
	close(s->sock);
	close(s->done_fd);
	close(s->chan[0]);
	close(s->chan[1]);
	for (unsigned i = 0; i < NEVFD; i++) {
		close(s->kick[i]);
		close(s->call[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct uvirtio_blk_dev_config cfg = { .backend = UVIRTIO_BLK_BACKEND_NULL,
					      .null_capacity = 1u << 20, .serial = "fuzz" };
	static struct uvirtio_blk_dev blk;
	struct session s;
	int fds_at_start, threads_at_start;
	uint8_t dev = in_u8(&in);
	bool hung_up = false;

	if (guest_fd < 0) {
		verbose = getenv("FUZZ_VERBOSE");
		guest_fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
		FUZZ_CHECK(guest_fd >= 0 && ftruncate(guest_fd, GUEST_SIZE) == 0);
		guest = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, guest_fd, 0);
		FUZZ_CHECK(guest != MAP_FAILED);
	}
	/* Counted per input: libFuzzer itself opens fds between inputs (its
	 * symbolizer's pipes when it prints a new function). */
	fds_at_start = count_dir("/proc/self/fd");
	threads_at_start = count_dir("/proc/self/task");
	memset(guest, 0, GUEST_SIZE);
	cfg.read_only = dev & 1;
	cfg.num_queues = dev & 2 ? 2 : 1;
	cfg.poll_us = dev & 4 ? -1 : 0;
	session_start(&s, &blk, &cfg);

	while (!in_empty(&in) && !hung_up && !done(&s)) {
		uint8_t op = in_u8(&in) % 16, buf[256];
		unsigned n, off, ring;
		uint64_t taken;

		switch (op) {
		case 10:
			n = in_u8(&in);
			for (unsigned i = 0; i < n; i++)
				buf[i] = in_u8(&in);
			send_bytes(&s, buf, n, NULL, 0);
			break;
		case 11:
			ring = in_u8(&in);
			sync_backend(&s);
			taken = requests_taken(&blk);
			(void)!eventfd_write(s.kick[ring % NEVFD], 1);
			/* Only while some queue thread runs (more threads than
			 * the target's and the backend's): otherwise nobody
			 * can take the request. */
			if ((ring & 0x80) && count_dir("/proc/self/task") > threads_at_start + 1)
				for (uint64_t end = now_ms() + KICK_WAIT_MS;
				     requests_taken(&blk) == taken && now_ms() < end;)
					usleep(50);
			if (verbose)
				fprintf(stderr, "fuzz_vhost_backend: kick %u: %llu requests taken before, %llu after\n",
					ring % NEVFD, (unsigned long long)taken,
					(unsigned long long)requests_taken(&blk));
			break;
		case 12:
			off = (unsigned)in_le(&in, 3);
			n = in_u8(&in);
			for (unsigned i = 0; i < n; i++) {
				uint8_t b = in_u8(&in);

				if (off + i < GUEST_SIZE)
					__atomic_store_n(&guest[off + i], b, __ATOMIC_RELAXED);
			}
			break;
		case 13:
			sync_backend(&s);
			break;
		case 14:
		case 15:
			hung_up = true;
			break;
		default:
			one_message(&s, &in);
			break;
		}
	}
	session_end(&s, &blk);
	FUZZ_CHECK(count_dir("/proc/self/fd") == fds_at_start);
	FUZZ_CHECK(threads_settle(threads_at_start));
	return 0;
}
