// SPDX-License-Identifier: MIT
/*
 * `uvirtio demo lifecycle`: the three lifecycle operations virtio grew for
 * driver upgrades, buffer reclaim and live migration, on a virtio-blk
 * device behind a register transport (virtio-mmio by default), each step
 * printed: per-queue reset with requests in flight (they are handed back
 * and submitted again) and a resize, suspend and resume, then a move of
 * the suspended device into a new process (a snapshot restored there),
 * where the driver carries on. Every request completes exactly once and
 * every read verifies the last write (tools/lifecycle/blk_load.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"
#include "feature_names.h"
#include "lifecycle/blk_load.h"

static struct fixture fx;
static struct load ld;

static int step(const char *what, int ret)
{
	if (ret)
		fprintf(stderr, "uvirtio demo lifecycle: %s failed: %s%s%s\n", what, strerror(-ret),
			ld.failure ? "; " : "", ld.failure ? ld.failure : "");
	return ret;
}

static void status_line(const char *when)
{
	char buf[160];
	uint8_t s = 0;

	fx.t->ops->get_status(fx.t, &s);
	printf("  status %s: %s\n", when, demo_describe_status(s, buf, sizeof(buf)));
}

static int run_demo(void)
{
	char buf[512];
	unsigned long before;
	unsigned handed_back;

	if (step("probe", load_start_driver(&ld, LOAD_FULL_FEATURES)))
		return 1;
	printf("  negotiated %s\n",
	       features_describe(features_blk_names, uvirtio_driver_features(&ld.drv), buf, sizeof(buf)));
	if (step("I/O", load_run(&ld, 2000)) || step("verify", load_verify_all(&ld)))
		return 1;
	printf("  %lu requests on %u queues, every one completed once, data verified\n", ld.done, ld.nq);

	printf("queue reset (VIRTIO_F_RING_RESET) of queue 0 with requests in flight\n");
	if (step("I/O", load_refill(&ld, true)))
		return 1;
	if (step("queue reset", uvirtio_driver_queue_reset(&ld.drv, 0, load_detached, &ld)))
		return 1;
	handed_back = load_count(&ld, DETACHED);
	before = ld.done;
	if (step("I/O on queue 1", load_run(&ld, 300)))
		return 1;
	printf("  %u requests handed back untouched; queue 1 completed %lu more meanwhile\n",
	       handed_back, ld.done - before);
	if (step("queue enable", uvirtio_driver_queue_enable(&ld.drv, 0, 16)))
		return 1;
	load_requeue_detached(&ld, 0);
	if (step("I/O", load_run(&ld, 500)) || step("verify", load_verify_all(&ld)))
		return 1;
	printf("  queue 0 enabled again with 16 entries (a resize): the handed-back requests ran "
	       "once each, data verified\n");

	printf("suspend (VIRTIO_F_SUSPEND) with requests in flight, then resume\n");
	if (step("suspend", load_suspend_under_load(&ld)))
		return 1;
	status_line("while suspended");
	if (step("resume", uvirtio_driver_resume(&ld.drv, 5000)))
		return 1;
	status_line("after resume");
	if (step("I/O", load_run(&ld, 500)) || step("verify", load_verify_all(&ld)))
		return 1;

	printf("move to a new process: suspend, snapshot, restore there, resume\n");
	if (step("suspend", load_suspend_under_load(&ld)) || step("move", fx.move(&fx)))
		return 1;
	printf("  the device is now served by %s\n", fx.where);
	if (!load_nothing_used_since_suspend(&ld)) {
		fprintf(stderr, "uvirtio demo lifecycle: the ring moved while suspended\n");
		return 1;
	}
	if (step("resume", uvirtio_driver_resume(&ld.drv, 5000)) ||
	    step("verify", load_verify_all(&ld)) || step("I/O", load_run(&ld, 1000)) ||
	    step("verify", load_verify_all(&ld)))
		return 1;
	printf("  data written before the move read back after it; %lu requests in all, each "
	       "completed exactly once\n", ld.done);
	if (step("remove", load_drain(&ld)) ||
	    step("remove", uvirtio_driver_remove(&ld.drv, load_detached, &ld)))
		return 1;
	return 0;
}

int demo_lifecycle_main(int argc, char **argv)
{
	const char *transport = "mmio";
	char image[] = "/tmp/uvirtio-demo-lifecycle-XXXXXX";
	int fd, ret;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--transport=", 12)) {
			transport = argv[i] + 12;
		} else if (!strcmp(argv[i], "--help")) {
			printf("usage: uvirtio demo lifecycle [--transport=mmio|pci|vhost-user|loopback]\n");
			return 0;
		} else {
			fprintf(stderr, "uvirtio demo lifecycle: unknown option '%s' (see --help)\n",
				argv[i]);
			return 2;
		}
	}
	fd = mkstemp(image);
	if (fd < 0 || ftruncate(fd, 8 << 20) < 0) {
		perror("uvirtio demo lifecycle: temporary image");
		return 1;
	}
	close(fd);
	ret = fixture_create(&fx, transport, image, "uvirtio");
	if (ret == -EINVAL) {
		fprintf(stderr, "uvirtio demo lifecycle: unknown transport '%s': mmio, pci, vhost-user "
				"or loopback\n", transport);
		unlink(image);
		return 2;
	}
	printf("lifecycle demo: virtio-blk, 2 queues, a temporary image, over %s\n", transport);
	ret = ret ? step("set-up", ret) : step("set-up", load_init(&ld, &fx));
	if (!ret)
		ret = run_demo();
	fixture_destroy(&fx);
	unlink(image);
	if (!ret)
		printf("lifecycle demo: done\n");
	return ret ? 1 : 0;
}
