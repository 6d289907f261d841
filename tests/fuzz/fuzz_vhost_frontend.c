// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the vhost-user front-end (src/transport/vhost_frontend*.c)
 * against a hostile backend. Per input a socketpair joins the front-end
 * (uvirtio_vhost_frontend_connect() with cfg.fd) to a fake backend on a
 * thread of its own, which reads each request the front-end sends and
 * answers it as the input says: the reply a well-behaved blk backend gives,
 * or one of the input's making (any request code, flags, size, payload and
 * fds), nothing at all, an extra message nobody asked for, half a reply, or
 * a hang-up. Over the front-end the blk driver (or the driver core alone)
 * probes (negotiation, config, rings handed over at DRIVER_OK), then the
 * input may stop and restart a ring, reset a queue, suspend and resume, move
 * to another backend, and the driver is removed (reset: rings stopped with
 * GET_VRING_BASE, SET_STATUS(0)).
 *
 * The front-end's reply time-out is REPLY_TIMEOUT_MS, so a backend that
 * stays silent costs that much, no more.
 *
 * Input layout (little-endian; a short input reads as zeros, and zeros are a
 * well-behaved backend):
 *   u8 driver: bits 0-1 max_queue_size (256, 128, 1024, 2), bit 2 disable
 *      REPLY_ACK, bit 3 disable CONFIGURE_MEM_SLOTS, bit 4 stop and restart
 *      ring 0 after probe, bit 5 suspend and resume after probe, bit 6 read
 *      the config again after probe
 *   u8 more: bit 0 switch the write cache (SET_CONFIG), bit 1 reset queue 0
 *      and enable it again, bit 2 suspend, move to a second fake backend
 *      (which answers from the same input) and resume, bit 3 a flush that
 *      nobody serves (times out after 1 ms; remove cancels it), bit 4 the
 *      driver core instead of the blk driver (asking for RING_RESET and
 *      SUSPEND too, which blk does not), bit 5 with it PACKED, bit 6 with it
 *      two queues, bit 7 the re-enabled queue with 32 entries
 *   u64 features ^ DEFAULT_FEATURES, u64 protocol features ^ DEFAULT_PF,
 *   u8 queues - 1 (% 4): what the well-behaved backend offers
 *   then, for each request the front-end sends, a u8 action (% 8):
 *     0, 7  the well-behaved reply (none when the request has none)
 *     1  a reply of the input's: u8 request delta (added to the request's
 *        code), u8 flags, u16 size (% (VHOST_USER_PAYLOAD_MAX + 64)), u8
 *        nfds (% 5), nfds fd kinds (u8 % 3: eventfd, memfd, pipe read end),
 *        size payload bytes
 *     2  the well-behaved reply, then an unasked 12-byte message
 *     3  no reply (the front-end times out)
 *     4  hang up
 *     5  the first u8 % 12 bytes of the well-behaved reply (or of a
 *        header), then hang up
 *     6  the well-behaved reply with its first 8 payload bytes replaced by
 *        an in_num (a u64 answer: features, queue count, slots, base, ack)
 *
 * Checks: every call returns 0 or a negative errno; when the input ends,
 * the front-end is destroyed and the fake backend joined, no fd and no
 * thread is left.
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
#include <unistd.h>

#include <linux/virtio_blk.h>

#include "uvirtio/blk_drv.h"
#include "uvirtio/vhost_frontend.h"
#include "../../src/transport/vhost_msg.h"
#include "fuzz_input.h"
#include "fuzz_fds.h"
#include "fuzz_leaks.h"

#define REPLY_TIMEOUT_MS 5
#define MEM_SIZE (2u << 20)
#define DEFAULT_FEATURES                                                                  \
	(UVIRTIO_BIT(VIRTIO_F_VERSION_1) | UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES) |  \
	 UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |   \
	 UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | UVIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |          \
	 UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |          \
	 UVIRTIO_BIT(VIRTIO_BLK_F_MQ) | UVIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |                 \
	 UVIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES))
#define PFB(bit) UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_##bit)
#define DEFAULT_PF                                                                        \
	(PFB(MQ) | PFB(REPLY_ACK) | PFB(CONFIG) | PFB(RESET_DEVICE) |                      \
	 PFB(CONFIGURE_MEM_SLOTS) | PFB(STATUS))

struct fake {
	int sock;
	struct fuzz_in *in; /* shared by the fakes: one answers at a time */
	uint64_t features, protocol;
	unsigned queues;
	uint8_t status;
	struct virtio_blk_config config;
};

static uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX + 64];

/* FUZZ_VERBOSE=1: say how far each input got (to check the seeds). */
static bool verbose, verbose_set;

/* The error convention: 0 or a negative errno. */
#define check_ret(ret) check_ret_at(ret, #ret)
FUZZ_MODEL static void check_ret_at(int ret, const char *what)
{
	if (verbose)
		fprintf(stderr, "fuzz_vhost_frontend: %d = %s\n", ret, what);
	FUZZ_CHECK(ret <= 0 && ret >= -4095);
}

/* Read @n bytes into @p; false at the end of the stream. Fds are closed. */
static bool read_full(int sock, uint8_t *p, size_t n)
{
	char cbuf[CMSG_SPACE(16 * sizeof(int))];

	while (n) {
		struct iovec iov = { p, n };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t k = recvmsg(sock, &h, MSG_CMSG_CLOEXEC);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
		p += k;
		n -= (size_t)k;
	}
	return true;
}

static void send_raw(int sock, const void *p, size_t n, const int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(8 * sizeof(int))];
	struct iovec iov = { (void *)p, n };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds)
		fuzz_attach_fds(&h, cbuf, fds, nfds);
	/* The front-end may be gone: then the bytes go nowhere. */
	(void)!sendmsg(sock, &h, MSG_NOSIGNAL);
}

/* The reply a well-behaved blk backend gives @req; its size, or -1 for none. */
static int good_reply(struct fake *f, const struct vhost_user_hdr *req, const uint8_t *payload,
		      uint8_t *out)
{
	uint64_t v;
	uint32_t size;

	switch (req->request) {
	case VHOST_USER_GET_FEATURES:
		v = f->features;
		break;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		v = f->protocol;
		break;
	case VHOST_USER_GET_QUEUE_NUM:
		v = f->queues;
		break;
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		v = 8;
		break;
	case VHOST_USER_GET_STATUS:
		v = f->status;
		break;
	case VHOST_USER_GET_VRING_BASE:
		/* {index, base}: the index echoed, the ring where it started. */
		memcpy(&v, payload, 4);
		v &= 0xffffffffu;
		break;
	case VHOST_USER_GET_CONFIG: {
		struct vhost_user_config c;
		uint32_t n = req->size < VHOST_USER_CONFIG_HDR_SIZE ? 0 : req->size;

		if (!n)
			return -1;
		memcpy(&c, payload, VHOST_USER_CONFIG_HDR_SIZE);
		memset(c.payload, 0, sizeof(c.payload));
		for (uint32_t i = 0; i < c.size && i < sizeof(c.payload); i++)
			if (c.offset + i < sizeof(f->config))
				c.payload[i] = ((const uint8_t *)&f->config)[c.offset + i];
		memcpy(out + VHOST_USER_HDR_SIZE, &c, n < sizeof(c) ? n : sizeof(c));
		size = n < sizeof(c) ? n : (uint32_t)sizeof(c);
		goto header;
	}
	default:
		if (req->request == VHOST_USER_SET_STATUS)
			memcpy(&f->status, payload, 1);
		if (!(req->flags & VHOST_USER_NEED_REPLY_MASK))
			return -1;
		v = 0; /* ack: done */
		break;
	}
	memcpy(out + VHOST_USER_HDR_SIZE, &v, 8);
	size = 8;
header: {
		struct vhost_user_hdr h = { req->request, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
					    size };

		memcpy(out, &h, sizeof(h));
	}
	return (int)(VHOST_USER_HDR_SIZE + size);
}

static int make_fd(uint8_t kind)
{
	int p[2], fd;

	switch (kind % 3) {
	case 0:
		return eventfd(0, EFD_CLOEXEC);
	case 1:
		fd = memfd_create("fuzz-reply", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, 4096) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	default:
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		close(p[1]);
		return p[0];
	}
}

/* Answer one request as the input says. Return: false to hang up. */
static bool answer(struct fake *f, const struct vhost_user_hdr *req, const uint8_t *payload)
{
	struct fuzz_in *in = f->in;
	uint8_t action = in_u8(in) % 8;
	int n = good_reply(f, req, payload, buf);

	switch (action) {
	case 1: {
		struct vhost_user_hdr h;
		int fds[4];
		unsigned nfds, k = 0;

		h.request = req->request + in_u8(in);
		h.flags = in_u8(in);
		h.size = in_u16(in) % (VHOST_USER_PAYLOAD_MAX + 64);
		nfds = in_u8(in) % 5;
		for (unsigned i = 0; i < nfds; i++) {
			int fd = make_fd(in_u8(in));

			if (fd >= 0)
				fds[k++] = fd;
		}
		memcpy(buf, &h, sizeof(h));
		for (uint32_t i = 0; i < h.size; i++)
			buf[VHOST_USER_HDR_SIZE + i] = in_u8(in);
		send_raw(f->sock, buf, VHOST_USER_HDR_SIZE + h.size, fds, k);
		for (unsigned i = 0; i < k; i++)
			close(fds[i]);
		return true;
	}
	case 2: {
		struct vhost_user_hdr h = { VHOST_USER_GET_FEATURES,
					    VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 0 };

		if (n > 0)
			send_raw(f->sock, buf, (size_t)n, NULL, 0);
		send_raw(f->sock, &h, sizeof(h), NULL, 0);
		return true;
	}
	case 3:
		return true;
	case 4:
		return false;
	case 5: {
		unsigned cut = in_u8(in) % 12;

		if (n <= 0)
			memcpy(buf, req, sizeof(*req));
		send_raw(f->sock, buf, cut, NULL, 0);
		return false;
	}
	case 6:
		if (n > 0) {
			uint64_t v = in_num(in);

			memcpy(buf + VHOST_USER_HDR_SIZE, &v, 8);
			if (n < (int)(VHOST_USER_HDR_SIZE + 8))
				n = VHOST_USER_HDR_SIZE + 8;
		}
		/* fall through */
	default:
		if (n > 0)
			send_raw(f->sock, buf, (size_t)n, NULL, 0);
		return true;
	}
}

static void *fake_backend(void *arg)
{
	struct fake *f = arg;
	static uint8_t payload[VHOST_USER_PAYLOAD_MAX];

	for (;;) {
		struct vhost_user_hdr h;

		if (!read_full(f->sock, (uint8_t *)&h, sizeof(h)))
			break;
		/* The front-end is the code under test, but its requests are
		 * its own: a size it cannot have sent is a bug. */
		FUZZ_CHECK(h.size <= VHOST_USER_PAYLOAD_MAX);
		if (!read_full(f->sock, payload, h.size))
			break;
		if (!answer(f, &h, payload))
			break;
	}
	shutdown(f->sock, SHUT_RDWR);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned qsizes[] = { 256, 128, 1024, 2 };
	struct fuzz_in in = { data, size };
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1, .mem_size = MEM_SIZE,
						     .reply_timeout_ms = REPLY_TIMEOUT_MS };
	static struct fake f, f2;
	static struct fuzz_in fin;
	static struct uvirtio_blk_drv blk;
	static struct uvirtio_driver gen;
	struct uvirtio_vhost_frontend *fe = NULL;
	int fds_at_start = count_dir("/proc/self/fd");
	int threads_at_start = count_dir("/proc/self/task");
	uint8_t drv = in_u8(&in), more = in_u8(&in);
	bool core = more & 16;
	pthread_t thread, thread2;
	bool moved = false;
	int sv2[2] = { -1, -1 };
	char error[160];
	int sv[2], ret;

	if (!verbose_set) {
		verbose = getenv("FUZZ_VERBOSE");
		verbose_set = true;
	}
	memset(&f, 0, sizeof(f));
	f.features = DEFAULT_FEATURES ^ in_u64(&in);
	f.protocol = DEFAULT_PF ^ in_u64(&in);
	f.queues = 1 + in_u8(&in) % 4;
	f.config.capacity = 2048;
	f.config.seg_max = 32;
	f.config.blk_size = 512;
	f.config.num_queues = (uint16_t)f.queues;
	f.config.max_discard_sectors = 1u << 16;
	f.config.max_discard_seg = 1;
	f.config.max_write_zeroes_sectors = 1u << 16;
	f.config.max_write_zeroes_seg = 1;
	fin = in;
	f.in = &fin;

	cfg.max_queue_size = qsizes[drv & 3];
	if (drv & 4)
		cfg.disable_protocol_features |= PFB(REPLY_ACK);
	if (drv & 8)
		cfg.disable_protocol_features |= PFB(CONFIGURE_MEM_SLOTS);
	cfg.error = error;
	cfg.error_size = sizeof(error);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	f.sock = sv[1];
	cfg.fd = sv[0];
	FUZZ_CHECK(pthread_create(&thread, NULL, fake_backend, &f) == 0);

	error[0] = 0;
	ret = uvirtio_vhost_frontend_connect(&fe, &cfg);
	check_ret(ret);
	if (verbose)
		fprintf(stderr, "fuzz_vhost_frontend: connect %d %s\n", ret, error);
	if (!ret) {
		struct uvirtio_transport *t = uvirtio_vhost_frontend_transport(fe);
		struct uvirtio_driver *d = core ? &gen : uvirtio_blk_drv_driver(&blk);

		if (core) {
			/* The driver core alone, asking for what the blk driver
			 * does not: queue reset and suspend (the front-end's own). */
			static const unsigned sizes[2] = { 0, 64 };
			uint64_t wanted = UVIRTIO_TRANSPORT_FEATURES;

			if (!(more & 32))
				wanted &= ~UVIRTIO_BIT(VIRTIO_F_RING_PACKED);
			ret = uvirtio_driver_probe(&gen, t, wanted);
			if (!ret)
				ret = uvirtio_driver_find_vqs(&gen, 1 + (more >> 6) % 2, sizes);
			if (!ret)
				ret = uvirtio_driver_ready(&gen);
			if (ret)
				check_ret(uvirtio_driver_remove(&gen, NULL, NULL));
		} else {
			ret = uvirtio_blk_drv_probe(&blk, t, NULL);
		}
		check_ret(ret);
		if (verbose)
			fprintf(stderr, "fuzz_vhost_frontend: probe %d (%s), %u queues\n", ret,
				uvirtio_vhost_frontend_error(fe), uvirtio_vhost_frontend_num_queues(fe));
		if (!ret) {
			uint32_t base;

			if (drv & 16) {
				ret = uvirtio_vhost_frontend_stop_ring(fe, 0, &base);
				check_ret(ret);
				if (!ret)
					check_ret(uvirtio_vhost_frontend_restart_ring(fe, 0, base));
			}
			if (drv & 32) {
				ret = uvirtio_driver_suspend(d, REPLY_TIMEOUT_MS);
				check_ret(ret);
				if (!ret)
					check_ret(uvirtio_driver_resume(d, REPLY_TIMEOUT_MS));
			}
			if (drv & 64) {
				struct virtio_blk_config c;

				check_ret(uvirtio_driver_config_read(d, 0, &c, sizeof(c)));
			}
			if ((more & 1) && !core)
				check_ret(uvirtio_blk_drv_set_writeback(&blk, !uvirtio_blk_drv_writeback(&blk)));
			if (more & 2) {
				ret = uvirtio_driver_queue_reset(d, 0, NULL, NULL);
				check_ret(ret);
				if (!ret)
					check_ret(uvirtio_driver_queue_enable(d, 0, (more & 128) ? 32 : 0));
			}
			if (more & 4) {
				ret = uvirtio_driver_suspend(d, REPLY_TIMEOUT_MS);
				check_ret(ret);
				if (!ret) {
					struct uvirtio_vhost_frontend_config mc = { .fd = -1 };

					FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2) == 0);
					f2 = f;
					f2.sock = sv2[1];
					f2.status = 0;
					FUZZ_CHECK(pthread_create(&thread2, NULL, fake_backend, &f2) == 0);
					moved = true;
					mc.fd = sv2[0];
					check_ret(uvirtio_vhost_frontend_move(fe, &mc));
					check_ret(uvirtio_driver_resume(d, REPLY_TIMEOUT_MS));
				}
			}
			if ((more & 8) && !core)
				check_ret(uvirtio_blk_drv_flush(&blk, 0, 1));
			if (core)
				check_ret(uvirtio_driver_remove(&gen, NULL, NULL));
			else
				uvirtio_blk_drv_remove(&blk);
			if (verbose)
				fprintf(stderr, "fuzz_vhost_frontend: removed (%s)\n",
					uvirtio_vhost_frontend_error(fe));
		}
		uvirtio_vhost_frontend_destroy(fe);
	}
	/* connect closed sv[0] (on failure too), destroy did otherwise: the
	 * fake backend sees the end of the stream. */
	pthread_join(thread, NULL);
	close(sv[1]);
	if (moved) {
		/* move took sv2[0] over (and closed it on failure). */
		pthread_join(thread2, NULL);
		close(sv2[1]);
	}
	FUZZ_CHECK(count_dir("/proc/self/fd") == fds_at_start);
	FUZZ_CHECK(threads_settle(threads_at_start));
	return 0;
}
