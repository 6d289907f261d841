// SPDX-License-Identifier: MIT
/*
 * The interop client: uvirtio's front-end and blk driver against a
 * vhost-user blk backend given by socket path (qemu-storage-daemon or
 * `uvirtio blk`). It writes a pattern on every queue, verifies it, resets
 * and renegotiates with fewer features, verifies again, stops and restarts
 * a ring, and with --verify-only just checks what an earlier run wrote. The
 * test around it (interop.py) then reads the backend's image file, so the
 * data is checked where it landed, not only through the driver.
 *
 * Pattern: byte i of region r (1 MiB at sector r * 2048) is
 * (i * 31 + r * 7 + (i >> 9)) & 0xff. Exit 0 when every step passed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uvirtio/blk_drv.h"
#include "uvirtio/vhost_frontend.h"

#define REGION_BYTES (1u << 20)
#define REGION_SECTORS (REGION_BYTES / 512u)
#define CHUNK 65536u

static const char *socket_path;

static void fill(unsigned char *p, size_t len, size_t start, unsigned region)
{
	for (size_t k = 0; k < len; k++) {
		size_t i = start + k;

		p[k] = (unsigned char)(i * 31 + region * 7 + (i >> 9));
	}
}

static int step(int ret, const char *what, struct uvirtio_vhost_frontend *fe)
{
	if (ret)
		printf("FAIL %s: %s%s%s\n", what, strerror(-ret), fe && *uvirtio_vhost_frontend_error(fe) ? "; " : "",
		       fe ? uvirtio_vhost_frontend_error(fe) : "");
	else
		printf("ok   %s\n", what);
	return ret;
}

/* Writes region @region through @queue in CHUNK pieces, each as two
 * segments, so multi-segment requests are exercised too. */
static int write_region(struct uvirtio_blk_drv *b, unsigned queue, unsigned region, unsigned char *buf)
{
	for (size_t off = 0; off < REGION_BYTES; off += CHUNK) {
		struct iovec iov[2] = { { buf, CHUNK / 4 }, { buf + CHUNK / 4, CHUNK - CHUNK / 4 } };
		int ret;

		fill(buf, CHUNK, off, region);
		ret = uvirtio_blk_drv_writev(b, queue, (uint64_t)region * REGION_SECTORS + off / 512, iov,
					     2, 10000);
		if (ret)
			return ret;
	}
	return 0;
}

static int verify_region(struct uvirtio_blk_drv *b, unsigned queue, unsigned region,
			 unsigned char *buf, unsigned char *want)
{
	for (size_t off = 0; off < REGION_BYTES; off += CHUNK) {
		int ret = uvirtio_blk_drv_read(b, queue, (uint64_t)region * REGION_SECTORS + off / 512,
					       buf, CHUNK, 10000);

		if (ret)
			return ret;
		fill(want, CHUNK, off, region);
		if (memcmp(buf, want, CHUNK)) {
			printf("# region %u differs at byte %zu\n", region, off);
			return -EILSEQ;
		}
	}
	return 0;
}

static int connect_fe(struct uvirtio_vhost_frontend **fe)
{
	char err[200] = "";
	struct uvirtio_vhost_frontend_config cfg = { .socket_path = socket_path, .fd = -1,
						      .error = err, .error_size = sizeof(err) };
	int ret = uvirtio_vhost_frontend_connect(fe, &cfg);

	if (ret)
		printf("FAIL connect to %s: %s\n", socket_path, err);
	return ret;
}

static int run(unsigned regions, bool verify_only)
{
	struct uvirtio_vhost_frontend *fe;
	struct uvirtio_blk_drv b;
	struct uvirtio_blk_drv_opts all = { .num_queues = regions };
	struct uvirtio_blk_drv_opts fewer = {
		.features = UVIRTIO_BLK_DRV_FEATURES & ~(UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
							  UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
							  UVIRTIO_BIT(VIRTIO_BLK_F_MQ)),
		.num_queues = 1, .queue_size = 16,
	};
	unsigned char *buf, *want = malloc(CHUNK);
	uint64_t offered, used;
	uint32_t base;
	int ret;

	if (!want || connect_fe(&fe))
		return 1;
	used = uvirtio_vhost_frontend_protocol_features(fe, &offered);
	printf("# backend features %#llx, protocol features %#llx of %#llx offered, %u queues\n",
	       (unsigned long long)uvirtio_vhost_frontend_backend_features(fe),
	       (unsigned long long)used, (unsigned long long)offered, uvirtio_vhost_frontend_num_queues(fe));
	if (step(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), &all),
		 "probe with every feature", fe))
		return 1;
	printf("# negotiated %#llx, %u queues, capacity %llu sectors\n",
	       (unsigned long long)uvirtio_driver_features(uvirtio_blk_drv_driver(&b)), uvirtio_blk_drv_num_queues(&b),
	       (unsigned long long)uvirtio_blk_drv_capacity(&b));
	buf = uvirtio_blk_drv_alloc_buf(&b, CHUNK);
	if (!buf || (uint64_t)regions * REGION_SECTORS > uvirtio_blk_drv_capacity(&b))
		return step(-ENOSPC, "room for the regions", fe), 1;
	for (unsigned r = 0; r < regions && !verify_only; r++) {
		char what[64];

		snprintf(what, sizeof(what), "write region %u on queue %u", r, r % uvirtio_blk_drv_num_queues(&b));
		if (step(write_region(&b, r % uvirtio_blk_drv_num_queues(&b), r, buf), what, fe))
			return 1;
	}
	if (!verify_only && (uvirtio_driver_features(uvirtio_blk_drv_driver(&b)) & UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH)) &&
	    step(uvirtio_blk_drv_flush(&b, 0, 10000), "flush", fe))
		return 1;
	for (unsigned r = 0; r < regions; r++) {
		char what[64];

		/* Read back on another queue than the one that wrote. */
		snprintf(what, sizeof(what), "verify region %u on queue %u", r, (r + 1) % uvirtio_blk_drv_num_queues(&b));
		if (step(verify_region(&b, (r + 1) % uvirtio_blk_drv_num_queues(&b), r, buf, want), what, fe))
			return 1;
	}
	if (verify_only)
		goto out;

	ret = uvirtio_vhost_frontend_stop_ring(fe, 0, &base);
	if (step(ret, "stop ring 0 (GET_VRING_BASE)", fe))
		return 1;
	printf("# ring 0 stopped at base %u\n", base);
	if (step(uvirtio_vhost_frontend_restart_ring(fe, 0, base), "restart ring 0 at that base", fe) ||
	    step(verify_region(&b, 0, 0, buf, want), "verify region 0 after the restart", fe))
		return 1;

	uvirtio_blk_drv_free_buf(&b, buf);
	uvirtio_blk_drv_remove(&b);
	if (step(uvirtio_blk_drv_probe(&b, uvirtio_vhost_frontend_transport(fe), &fewer),
		 "reset, renegotiate without INDIRECT_DESC, EVENT_IDX and MQ, 16-entry queue", fe))
		return 1;
	printf("# negotiated %#llx, %u queues\n", (unsigned long long)uvirtio_driver_features(uvirtio_blk_drv_driver(&b)), uvirtio_blk_drv_num_queues(&b));
	buf = uvirtio_blk_drv_alloc_buf(&b, CHUNK);
	for (unsigned r = 0; r < regions; r++) {
		char what[64];

		snprintf(what, sizeof(what), "verify region %u after renegotiation", r);
		if (step(verify_region(&b, 0, r, buf, want), what, fe))
			return 1;
	}
	if (step(write_region(&b, 0, regions, buf), "write one more region", fe) ||
	    step(verify_region(&b, 0, regions, buf, want), "verify it", fe))
		return 1;
out:
	uvirtio_blk_drv_free_buf(&b, buf);
	uvirtio_blk_drv_remove(&b);
	uvirtio_vhost_frontend_destroy(fe);
	free(want);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned regions = 2;
	bool verify_only = false;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--socket-path=", 14))
			socket_path = argv[i] + 14;
		else if (!strncmp(argv[i], "--regions=", 10))
			regions = (unsigned)atoi(argv[i] + 10);
		else if (!strcmp(argv[i], "--verify-only"))
			verify_only = true;
		else {
			fprintf(stderr, "usage: interop_blk_io --socket-path=PATH [--regions=N] [--verify-only]\n");
			return 2;
		}
	}
	if (!socket_path || regions < 1 || regions > 8) {
		fprintf(stderr, "interop_blk_io: --socket-path is needed; --regions is 1 to 8\n");
		return 2;
	}
	return run(regions, verify_only);
}
