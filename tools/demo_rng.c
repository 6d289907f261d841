// SPDX-License-Identifier: MIT
/*
 * `uvirtio demo rng`: the lifecycle of the simplest device. A virtio-rng
 * device runs on its own thread behind the loopback transport; its driver
 * probes it, reads random bytes, removes it (reset) and probes it again with
 * a different feature set. Every transport operation is printed as it
 * happens, through a tracing transport wrapped around the loopback.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "feature_names.h"
#include "uvirtio/loopback.h"
#include "uvirtio/rng.h"
#include "uvirtio/trace.h"

static int device_counters(struct uvirtio_device *dev, void *arg)
{
	unsigned long *c = arg;
	struct uvirtio_device_stats dst;
	struct uvirtio_rng_dev_stats st;

	uvirtio_device_get_stats(dev, &dst);
	uvirtio_rng_dev_stats(uvirtio_device_priv(dev), &st);
	c[0] = dst.resets;
	c[1] = st.requests;
	c[2] = st.bytes;
	return 0;
}

/* Byte-value coverage of random data: a crude sanity check a person can read. */
static unsigned distinct_bytes(const unsigned char *p, size_t n)
{
	bool seen[256] = { false };
	unsigned count = 0;

	for (size_t i = 0; i < n; i++)
		if (!seen[p[i]]) {
			seen[p[i]] = true;
			count++;
		}
	return count;
}

static int round_trip(struct uvirtio_trace_transport *tt, unsigned round, uint64_t wanted, size_t bytes,
		      unsigned char *data, uint64_t *negotiated, unsigned long *requests)
{
	struct uvirtio_rng_drv drv;
	struct uvirtio_rng_drv_stats st;
	char buf[256];
	ssize_t got;
	int ret;

	printf("round %u: the driver asks for %s\n", round,
	       wanted ? features_describe(NULL, wanted, buf, sizeof(buf)) : "no optional feature");
	ret = uvirtio_rng_drv_probe(&drv, uvirtio_trace_transport_handle(tt), wanted);
	if (ret) {
		fprintf(stderr, "uvirtio demo: probe failed: %s\n", strerror(-ret));
		return ret;
	}
	*negotiated = uvirtio_driver_features(uvirtio_rng_drv_driver(&drv));

	got = uvirtio_rng_drv_read(&drv, data, bytes, 5000);
	if (got < 0) {
		fprintf(stderr, "uvirtio demo: read failed: %s\n", strerror((int)-got));
		uvirtio_rng_drv_remove(&drv);
		return (int)got;
	}
	uvirtio_rng_drv_stats(&drv, &st);
	printf("  I/O: %zu random bytes in %llu requests; %u of 256 byte values seen; first bytes",
	       (size_t)got, (unsigned long long)st.requests, distinct_bytes(data, (size_t)got));
	for (size_t i = 0; i < 8 && i < (size_t)got; i++)
		printf(" %02x", data[i]);
	printf("\n");
	*requests = st.requests;
	printf("  removing the driver:\n");
	uvirtio_rng_drv_remove(&drv);
	return 0;
}

int demo_rng_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const uint64_t rounds[2] = {
		UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), 0,
	};
	struct uvirtio_trace_transport tt;
	struct uvirtio_loopback *lb = NULL;
	struct uvirtio_rng_dev rng = { 0 };
	unsigned long counters[3] = { 0 }, requests[2] = { 0 };
	uint64_t negotiated[2] = { 0 };
	size_t bytes = 1u << 20;
	unsigned char *data;
	char f0[256], f1[256];
	char *end;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bytes = strtoul(optarg, &end, 10);
			if (*end || !bytes || bytes > (1u << 30)) {
				fprintf(stderr, "uvirtio demo: --bytes must be from 1 to 1073741824, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			printf("usage: uvirtio demo rng [--bytes=N]\n"
			       "  --bytes=N   random bytes to read in each round (default 1048576)\n");
			return 0;
		default:
			return 2;
		}
	}

	data = malloc(bytes);
	if (!data) {
		fprintf(stderr, "uvirtio demo: out of memory for %zu bytes\n", bytes);
		return 1;
	}
	ret = uvirtio_loopback_create(&lb, NULL);
	if (!ret)
		ret = uvirtio_rng_dev_init(&rng, uvirtio_loopback_mem(lb));
	if (!ret)
		ret = uvirtio_loopback_start(lb, uvirtio_rng_dev_device(&rng));
	if (ret) {
		fprintf(stderr, "uvirtio demo: cannot start the loopback transport: %s\n", strerror(-ret));
		uvirtio_loopback_destroy(lb);
		uvirtio_rng_dev_destroy(&rng);
		free(data);
		return 1;
	}
	printf("uvirtio demo: a virtio-rng device (device thread) and its driver (this thread)\n"
	       "over the loopback transport: 64 MiB of guest memory in a memfd, mapped once for\n"
	       "each side; notifications through eventfds.\n\n");

	uvirtio_trace_transport_init(&tt, uvirtio_loopback_transport(lb), demo_print_step, NULL);
	uvirtio_trace_transport_set_quiet(&tt, UVIRTIO_TRACE_QUIET_NOTIFY | UVIRTIO_TRACE_QUIET_GET_STATUS | UVIRTIO_TRACE_QUIET_CONFIG);
	for (unsigned r = 0; r < 2 && !ret; r++) {
		ret = round_trip(&tt, r + 1, rounds[r], bytes, data, &negotiated[r], &requests[r]);
		printf("\n");
	}
	uvirtio_loopback_run_on_device(lb, device_counters, counters);
	uvirtio_loopback_destroy(lb);
	uvirtio_rng_dev_destroy(&rng);
	free(data);
	if (ret)
		return 1;

	printf("summary: 2 negotiations, features %s then %s;\n"
	       "         %zu bytes read in %lu + %lu requests; the device served %lu requests (%lu bytes)\n"
	       "         and went through %lu resets (one at each probe, one at each removal).\n",
	       features_describe(NULL, negotiated[0], f0, sizeof(f0)), features_describe(NULL, negotiated[1], f1, sizeof(f1)),
	       2 * bytes, requests[0], requests[1], counters[1], counters[2], counters[0]);
	return 0;
}
