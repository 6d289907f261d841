// SPDX-License-Identifier: MIT
/*
 * The reconnect client: uvirtio's blk driver over the vhost-user front-end
 * with reconnect on, keeping --depth writes in flight on one queue while
 * the test around it (reconnect.py) kills the backend with SIGKILL and
 * starts it again on the same socket, --kills times. Every write is of one
 * 4 KiB block, in passes over --blocks blocks (a block is written again
 * only once its previous write completed); once the front-end reconnected
 * --kills times, the pass under way and one more are written. Then every
 * request must have completed exactly once with success, and every block
 * must read back with its last pass's pattern.
 *
 * Lines for the test: "READY" (writes are in flight), "LOST n" (the
 * connection went with n requests in flight), "RECONNECTED k" (the k-th
 * reconnect), "RESUBMITTED n" (without INFLIGHT_SHMFD: the ring was reset
 * and its n requests in flight added again), "FINAL_PASS p" (the image
 * holds pass p), then "PASS" or "FAIL why". Pattern: byte i of block b
 * in pass p is (i * 31 + b * 7 + p * 13 + (i >> 9)) & 0xff. Exit 0 on
 * PASS, 1 on FAIL.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "uvirtio/blk_drv.h"
#include "uvirtio/driver.h"
#include "uvirtio/vhost_frontend.h"
#include "uvirtio/vhost_user.h"

#define BLOCK 4096u
#define MAX_DEPTH 128u

struct slot {
	struct uvirtio_blk_drv_req req;
	struct iovec iov;
	unsigned char *buf;
	unsigned block, pass;
	bool busy;
};

static struct uvirtio_blk_drv blk;
static struct slot slots[MAX_DEPTH];
static unsigned depth = 32, nblocks = 1024, kills = 1;
static bool packed, no_inflight;
static unsigned outstanding, completed, failures, doubles;
static bool *block_busy;
static unsigned *block_pass; /* last pass completed per block, +1 (0: none) */

static unsigned char pattern(size_t i, unsigned block, unsigned pass)
{
	return (unsigned char)(i * 31 + block * 7 + pass * 13 + (i >> 9));
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void done(struct uvirtio_blk_drv_req *req)
{
	struct slot *s = req->opaque;

	if (!s->busy) {
		/* A second used entry for one request. */
		doubles++;
		printf("# block %u pass %u completed twice\n", s->block, s->pass);
		return;
	}
	s->busy = false;
	outstanding--;
	completed++;
	block_busy[s->block] = false;
	if (req->result) {
		failures++;
		printf("# block %u pass %u failed: %s\n", s->block, s->pass, strerror(-req->result));
		return;
	}
	if (s->pass + 1 > block_pass[s->block])
		block_pass[s->block] = s->pass + 1;
}

static int submit(struct slot *s, unsigned long cursor)
{
	s->block = (unsigned)(cursor % nblocks);
	s->pass = (unsigned)(cursor / nblocks);
	for (size_t i = 0; i < BLOCK; i++)
		s->buf[i] = pattern(i, s->block, s->pass);
	s->iov = (struct iovec){ s->buf, BLOCK };
	s->req = (struct uvirtio_blk_drv_req){ .type = VIRTIO_BLK_T_OUT,
					       .sector = (uint64_t)s->block * (BLOCK / 512),
					       .iov = &s->iov, .niov = 1, .callback = done,
					       .opaque = s };
	s->busy = true;
	block_busy[s->block] = true;
	outstanding++;
	int ret = uvirtio_blk_drv_submit(&blk, 0, &s->req);

	if (ret) {
		s->busy = false;
		block_busy[s->block] = false;
		outstanding--;
	}
	return ret;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int timeout_ms = 30000, run_ms = 600000;
	char err[200] = "";
	struct uvirtio_vhost_frontend *fe;
	unsigned long cursor = 0, end = 0;
	unsigned seen = 0, lost_seen = 0, resubmits = 0;
	bool was_connected = true, ready = false;
	int64_t deadline;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--socket-path=", 14))
			path = argv[i] + 14;
		else if (!strncmp(argv[i], "--kills=", 8))
			kills = (unsigned)atoi(argv[i] + 8);
		else if (!strncmp(argv[i], "--blocks=", 9))
			nblocks = (unsigned)atoi(argv[i] + 9);
		else if (!strncmp(argv[i], "--depth=", 8))
			depth = (unsigned)atoi(argv[i] + 8);
		else if (!strncmp(argv[i], "--reconnect-timeout-ms=", 23))
			timeout_ms = atoi(argv[i] + 23);
		else if (!strcmp(argv[i], "--packed"))
			packed = true;
		else if (!strcmp(argv[i], "--no-inflight"))
			no_inflight = true;
		else if (!strncmp(argv[i], "--run-timeout-ms=", 17))
			run_ms = atoi(argv[i] + 17);
		else {
			fprintf(stderr, "usage: %s --socket-path=PATH [--kills=N] [--blocks=N] [--depth=N] "
				"[--reconnect-timeout-ms=MS] [--run-timeout-ms=MS] [--packed] [--no-inflight]\n", argv[0]);
			return 2;
		}
	}
	if (!path || !depth || depth > MAX_DEPTH || nblocks <= depth) {
		fprintf(stderr, "need --socket-path; 0 < depth <= %u < blocks\n", MAX_DEPTH);
		return 2;
	}
	block_busy = calloc(nblocks, sizeof(*block_busy));
	block_pass = calloc(nblocks, sizeof(*block_pass));
	if (!block_busy || !block_pass)
		return 1;

	struct uvirtio_vhost_frontend_config cfg = {
		.socket_path = path, .fd = -1, .mem_size = 32u << 20, .error = err,
		.error_size = sizeof(err), .reconnect = true, .reconnect_interval_ms = 50,
		.reconnect_timeout_ms = timeout_ms,
		.disable_protocol_features =
			no_inflight ? 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD : 0,
	};
	ret = uvirtio_vhost_frontend_connect(&fe, &cfg);
	if (ret) {
		printf("FAIL connect: %s: %s\n", strerror(-ret), err);
		return 1;
	}
	uint64_t offered;
	uint64_t used = uvirtio_vhost_frontend_protocol_features(fe, &offered);

	printf("# protocol features offered %#llx; INFLIGHT_SHMFD offered %d, in use %d\n",
	       (unsigned long long)offered,
	       !!(offered & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)),
	       !!(used & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)));
	/* RING_RESET only without INFLIGHT_SHMFD: a lost ring is then reset
	 * and its requests added again (uvirtio_blk_drv_resubmit()). With it
	 * the backend resubmits, and a packed ring with RING_RESET would go
	 * without it (see the front-end's header). */
	bool inflight = used & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
	struct uvirtio_blk_drv_opts opts = {
		.features = UVIRTIO_BLK_DRV_FEATURES |
			    (inflight ? 0 : UVIRTIO_BIT(VIRTIO_F_RING_RESET)) |
			    (packed ? UVIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0),
	};

	ret = uvirtio_blk_drv_probe(&blk, uvirtio_vhost_frontend_transport(fe), &opts);
	if (ret) {
		printf("FAIL probe: %s: %s\n", strerror(-ret), uvirtio_vhost_frontend_error(fe));
		uvirtio_vhost_frontend_destroy(fe);
		return 1;
	}
	printf("# ring: %s\n", uvirtio_driver_has_feature(uvirtio_blk_drv_driver(&blk),
						       VIRTIO_F_RING_PACKED) ? "packed" : "split");
	if (uvirtio_blk_drv_capacity(&blk) < (uint64_t)nblocks * (BLOCK / 512)) {
		printf("FAIL the disk is smaller than %u blocks\n", nblocks);
		goto out;
	}
	for (unsigned i = 0; i < depth; i++) {
		slots[i].buf = uvirtio_blk_drv_alloc_buf(&blk, BLOCK);
		if (!slots[i].buf) {
			printf("FAIL no buffer\n");
			goto out;
		}
	}

	deadline = now_ms() + run_ms;
	int efd = uvirtio_blk_drv_event_fd(&blk, 0);

	for (;;) {
		unsigned r = uvirtio_vhost_frontend_reconnects(fe);
		bool conn = uvirtio_vhost_frontend_connected(fe);

		if (was_connected && !conn) {
			lost_seen++;
			printf("LOST %u\n", outstanding);
			fflush(stdout);
		}
		was_connected = conn;
		while (seen < r) {
			seen++;
			printf("RECONNECTED %u\n", seen);
			fflush(stdout);
		}
		if (uvirtio_vhost_frontend_ring_needs_resubmit(fe, 0)) {
			ret = uvirtio_blk_drv_resubmit(&blk, 0);
			if (ret < 0) {
				printf("FAIL resubmit: %s: %s\n", strerror(-ret),
				       uvirtio_vhost_frontend_error(fe));
				goto out;
			}
			resubmits++;
			printf("RESUBMITTED %d\n", ret);
			fflush(stdout);
		}
		if (!end && seen >= kills)
			end = (cursor / nblocks + 2) * nblocks;
		/* Keep the queue full, a block never twice in flight. */
		for (unsigned i = 0; i < depth && (!end || cursor < end); i++) {
			if (slots[i].busy || block_busy[cursor % nblocks])
				continue;
			ret = submit(&slots[i], cursor);
			if (ret == -EAGAIN || ret == -ENOSPC)
				break;
			if (ret) {
				printf("FAIL submit: %s: %s\n", strerror(-ret),
				       uvirtio_vhost_frontend_error(fe));
				goto out;
			}
			cursor++;
		}
		if (!ready && outstanding) {
			ready = true;
			printf("READY\n");
			fflush(stdout);
		}
		if (end && cursor >= end && !outstanding)
			break;
		ret = uvirtio_blk_drv_poll(&blk, 0, depth);
		if (ret < 0) {
			printf("FAIL poll: %s: %s\n", strerror(-ret), uvirtio_vhost_frontend_error(fe));
			goto out;
		}
		if (ret == 0) {
			struct pollfd p = { .fd = efd, .events = POLLIN };

			(void)poll(&p, 1, 50);
		}
		if (now_ms() > deadline) {
			printf("FAIL not done in %d ms: %u reconnects of %u, %u in flight, %u completed; %s\n",
			       run_ms, seen, kills, outstanding, completed, uvirtio_vhost_frontend_error(fe));
			goto out;
		}
	}
	printf("# %lu writes, %u completed, %u failed, %u completed twice, %u losses seen, %u resubmits\n",
	       cursor, completed, failures, doubles, lost_seen, resubmits);
	printf("FINAL_PASS %lu\n", end / nblocks - 1);
	if (failures || doubles || completed != cursor) {
		printf("FAIL %u failed, %u completed twice, %lu submitted and %u completed\n", failures,
		       doubles, cursor, completed);
		goto out;
	}
	/* Read every block back through the reconnected device. */
	for (unsigned b = 0; b < nblocks; b++) {
		unsigned p = block_pass[b] - 1;

		ret = uvirtio_blk_drv_read(&blk, 0, (uint64_t)b * (BLOCK / 512), slots[0].buf, BLOCK, 30000);
		if (ret) {
			printf("FAIL read of block %u: %s\n", b, strerror(-ret));
			goto out;
		}
		if (block_pass[b] != end / nblocks) {
			printf("FAIL block %u last written in pass %u, expected %lu\n", b, p,
			       end / nblocks - 1);
			goto out;
		}
		for (size_t i = 0; i < BLOCK; i++)
			if (slots[0].buf[i] != pattern(i, b, p)) {
				printf("FAIL block %u differs at byte %zu from pass %u\n", b, i, p);
				goto out;
			}
	}
	printf("PASS %u reconnects, %lu writes each completed once, %u blocks verified\n", seen,
	       cursor, nblocks);
	uvirtio_blk_drv_remove(&blk);
	uvirtio_vhost_frontend_destroy(fe);
	return 0;
out:
	uvirtio_blk_drv_remove(&blk);
	uvirtio_vhost_frontend_destroy(fe);
	return 1;
}
