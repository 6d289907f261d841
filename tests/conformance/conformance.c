// SPDX-License-Identifier: MIT
/*
 * One conformance suite over every transport: the same lifecycle scenarios
 * run between uvirtio's blk driver side (driver core + rings, requests built
 * here) and uvirtio's blk device over loopback, virtio-mmio, virtio-pci and
 * vhost-user:
 *
 *   initialisation, verified I/O, device reset under load, renegotiation
 *   with other features, queue reset under load, resize, suspend and resume
 *   under load, snapshot and restore in a new process then resume under load.
 *
 * Every request has an identity (slot, generation, kind) and must complete
 * exactly once; one taken back by a reset is poisoned and must stay poisoned
 * (the device touched no buffer after it let go) until it is submitted
 * again; every read verifies the last write of its sectors.
 *
 *   conformance --transport=loopback|mmio|pci|vhost-user
 *               [--ring=split|packed|split-in-order|packed-in-order] [--image=PATH]
 *               [--request-deadline-ms=MS]
 *
 * A request not completed within --request-deadline-ms (default 30000)
 * fails the scenario, naming the request.
 *
 * --ring adds the layout's features to every negotiation (packed: RING_PACKED;
 * -in-order: IN_ORDER; all but split also NOTIFICATION_DATA, where the
 * transport carries it), and the first scenario checks what was negotiated.
 *
 * prints TAP. The device end of a move runs in a new process: this program
 * again, with --device-child (see fixtures.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uvirtio/log.h"

#include "../../tools/lifecycle/blk_load.h"
#include "../unit/harness.h"

static struct fixture fx;
static struct load ld;

/* The ring layout's features, added to every negotiation (--ring=). */
static uint64_t ring_bits;

static const struct {
	const char *name;
	uint64_t bits;
} rings[] = {
	{ "split", 0 },
	{ "packed", UVIRTIO_BIT(VIRTIO_F_RING_PACKED) | UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA) },
	{ "split-in-order", UVIRTIO_BIT(VIRTIO_F_IN_ORDER) | UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA) },
	{ "packed-in-order", UVIRTIO_BIT(VIRTIO_F_RING_PACKED) | UVIRTIO_BIT(VIRTIO_F_IN_ORDER) |
				     UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA) },
};

/* NOTIFICATION_DATA needs a transport that carries it: vhost-user's kick
 * eventfd does not, and the driver core then leaves it out. */
static void check_ring_negotiated(void)
{
	uint64_t need = ring_bits;

	if (!fx.t->ops->notify_data)
		need &= ~UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA);
	CHECK_EQ(uvirtio_driver_features(&ld.drv) & ring_bits, need);
	CHECK(!(uvirtio_driver_features(&ld.drv) & ~ring_bits &
		(UVIRTIO_BIT(VIRTIO_F_RING_PACKED) | UVIRTIO_BIT(VIRTIO_F_IN_ORDER) |
		 UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA))));
}

/* Scenarios, in order; each leaves the driver running for the next. */

static void test_initialisation_negotiates_lifecycle_features(void)
{
	uint8_t status = 0;

	CHECK_EQ(load_init(&ld, &fx), 0);
	CHECK_EQ(load_start_driver(&ld, LOAD_FULL_FEATURES | ring_bits), 0);
	check_ring_negotiated();
	CHECK_EQ(fx.t->ops->get_status(fx.t, &status), 0);
	CHECK_EQ(status, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	CHECK(uvirtio_driver_has_feature(&ld.drv, VIRTIO_F_RING_RESET));
	CHECK(uvirtio_driver_has_feature(&ld.drv, VIRTIO_F_SUSPEND));
	CHECK(uvirtio_driver_has_feature(&ld.drv, VIRTIO_BLK_F_MQ));
}

static void test_verified_io_every_request_completes_once(void)
{
	CHECK_EQ(load_run(&ld, 2000), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
}

static void test_device_reset_under_load_touches_no_buffer_after(void)
{
	CHECK_EQ(load_run(&ld, 200), 0);
	CHECK_EQ(load_refill(&ld, true), 0);
	CHECK(load_count(&ld, INFLIGHT) > 0);
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, load_detached, &ld), 0);
	CHECK(ld.failure == NULL);
	CHECK(load_poison_intact(&ld));
	/* The driver comes back with the same features; nothing of the old
	 * requests may surface, and the taken-back ones run again. */
	CHECK_EQ(load_start_driver(&ld, LOAD_FULL_FEATURES | ring_bits), 0);
	CHECK(load_poison_intact(&ld));
	load_requeue_detached(&ld, -1);
	CHECK_EQ(load_run(&ld, 500), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
}

static void test_renegotiation_with_other_features(void)
{
	CHECK_EQ(load_drain(&ld), 0);
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, load_detached, &ld), 0);
	CHECK_EQ(load_count(&ld, DETACHED), 0);
	/* No indirect descriptors, no event index. */
	CHECK_EQ(load_start_driver(&ld, UVIRTIO_BIT(VIRTIO_F_RING_RESET) | UVIRTIO_BIT(VIRTIO_F_SUSPEND) |
					    ring_bits),
		 0);
	CHECK(!uvirtio_driver_has_feature(&ld.drv, VIRTIO_RING_F_INDIRECT_DESC));
	CHECK(!uvirtio_driver_has_feature(&ld.drv, VIRTIO_RING_F_EVENT_IDX));
	CHECK_EQ(load_verify_all(&ld), 0);
	CHECK_EQ(load_run(&ld, 1000), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
	/* Back to everything for the scenarios that follow. */
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, load_detached, &ld), 0);
	CHECK_EQ(load_start_driver(&ld, LOAD_FULL_FEATURES | ring_bits), 0);
}

static void test_queue_reset_under_load_other_queue_runs_on(void)
{
	unsigned long before;

	CHECK_EQ(load_run(&ld, 200), 0);
	CHECK_EQ(load_refill(&ld, true), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&ld.drv, 0, load_detached, &ld), 0);
	CHECK(ld.failure == NULL);
	/* Queue 1 keeps working while queue 0 is reset. */
	before = ld.done;
	CHECK_EQ(load_run(&ld, 300), 0);
	CHECK(ld.done >= before + 300);
	CHECK(load_poison_intact(&ld));
	CHECK_EQ(uvirtio_driver_queue_enable(&ld.drv, 0, 0), 0);
	CHECK(load_poison_intact(&ld));
	load_requeue_detached(&ld, 0);
	CHECK_EQ(load_run(&ld, 500), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
}

static void test_queue_resize_through_queue_reset(void)
{
	CHECK_EQ(load_refill(&ld, true), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&ld.drv, 1, load_detached, &ld), 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&ld.drv, 1, 16), 0);
	CHECK_EQ(uvirtio_drvq_size(uvirtio_driver_vq(&ld.drv, 1)), 16);
	CHECK(load_poison_intact(&ld));
	load_requeue_detached(&ld, 1);
	CHECK_EQ(load_run(&ld, 500), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
	/* And back up to the maximum. */
	CHECK_EQ(load_drain(&ld), 0);
	CHECK_EQ(uvirtio_driver_queue_reset(&ld.drv, 1, load_detached, &ld), 0);
	CHECK_EQ(uvirtio_driver_queue_enable(&ld.drv, 1, 256), 0);
	CHECK_EQ(load_run(&ld, 300), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
}

static void test_suspend_under_load_finishes_in_flight_and_resume_carries_on(void)
{
	unsigned long before;
	unsigned waiting = 0;
	uint8_t status = 0;
	const char *broken;

	CHECK_EQ(load_run(&ld, 200), 0);
	CHECK_EQ(load_suspend_under_load(&ld), 0);
	CHECK_EQ(fx.t->ops->get_status(fx.t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	CHECK(!(status & VIRTIO_CONFIG_S_DRIVER_OK));
	/* spec, SUSPEND: no queue access and no notification while suspended.
	 * Requests made available and every queue kicked now must wait,
	 * untouched, with nothing signalled (watched for 200 ms). */
	CHECK_EQ(load_add_while_suspended(&ld, &waiting), 0);
	printf("# %u requests wait while suspended\n", waiting);
	broken = load_device_left_alone(&ld, 200);
	if (broken)
		printf("# %s\n", broken);
	CHECK(broken == NULL);
	CHECK_EQ(fx.t->ops->get_status(fx.t, &status), 0);
	CHECK(status & VIRTIO_CONFIG_S_SUSPEND);
	/* Resumed, the device takes them: each completes exactly once with
	 * its data verified (load_complete), and none is left behind. */
	before = ld.done;
	CHECK_EQ(uvirtio_driver_resume(&ld.drv, WAIT_MS), 0);
	CHECK_EQ(load_drain(&ld), 0);
	CHECK_EQ(ld.done - before, waiting);
	CHECK_EQ(load_run(&ld, 500), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
}

static void test_snapshot_restore_in_new_process_resumes_under_load(void)
{
	CHECK_EQ(load_run(&ld, 300), 0);
	CHECK_EQ(load_suspend_under_load(&ld), 0);
	CHECK_EQ(fx.move(&fx), 0);
	printf("# device now served by %s\n", fx.where);
	CHECK(load_nothing_used_since_suspend(&ld));
	CHECK_EQ(uvirtio_driver_resume(&ld.drv, WAIT_MS), 0);
	/* What was written before the move reads back after it. */
	CHECK_EQ(load_verify_all(&ld), 0);
	CHECK_EQ(load_run(&ld, 1000), 0);
	CHECK_EQ(load_verify_all(&ld), 0);
}

static void test_remove_at_the_end(void)
{
	CHECK_EQ(load_drain(&ld), 0);
	CHECK_EQ(uvirtio_driver_remove(&ld.drv, load_detached, &ld), 0);
	CHECK(ld.failure == NULL);
}

static const struct test_case cases[] = {
	T(test_initialisation_negotiates_lifecycle_features),
	T(test_verified_io_every_request_completes_once),
	T(test_device_reset_under_load_touches_no_buffer_after),
	T(test_renegotiation_with_other_features),
	T(test_queue_reset_under_load_other_queue_runs_on),
	T(test_queue_resize_through_queue_reset),
	T(test_suspend_under_load_finishes_in_flight_and_resume_carries_on),
	T(test_snapshot_restore_in_new_process_resumes_under_load),
	T(test_remove_at_the_end),
};

/* The library's log lines on stderr, as the uvirtio command prints them
 * (the negative controls look for an injected fault's line there). */
static void log_to_stderr(void *opaque, int level, const char *msg)
{
	(void)opaque;
	(void)level;
	fprintf(stderr, "uvirtio: %s\n", msg);
}

int main(int argc, char **argv)
{
	const char *transport = NULL, *image = NULL, *ring = "split";
	char tmp[] = "/tmp/uvirtio-conformance-XXXXXX";
	unsigned n = sizeof(cases) / sizeof(cases[0]), failed = 0;
	int ret;

	uvirtio_set_log(log_to_stderr, UVIRTIO_LOG_INFO, NULL);
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--transport=", 12))
			transport = argv[i] + 12;
		else if (!strncmp(argv[i], "--ring=", 7))
			ring = argv[i] + 7;
		else if (!strncmp(argv[i], "--image=", 8))
			image = argv[i] + 8;
		else if (!strncmp(argv[i], "--request-deadline-ms=", 22) && atoi(argv[i] + 22) > 0)
			load_deadline_ms = atoi(argv[i] + 22);
		else if (!strcmp(argv[i], "--device-child"))
			return fixture_device_child(argc, argv);
	}
	for (unsigned i = 0; i < sizeof(rings) / sizeof(rings[0]); i++)
		if (!strcmp(ring, rings[i].name))
			ring_bits = rings[i].bits | UVIRTIO_BIT(VIRTIO_F_VERSION_1);
	if (!transport || !ring_bits) {
		fprintf(stderr, "usage: conformance --transport=loopback|mmio|pci|vhost-user "
				"[--ring=split|packed|split-in-order|packed-in-order] [--request-deadline-ms=MS]\n");
		return 2;
	}
	ring_bits &= ~UVIRTIO_BIT(VIRTIO_F_VERSION_1);
	if (!image) {
		int fd = mkstemp(tmp);

		if (fd < 0 || ftruncate(fd, (off_t)SLOTS * DATA_BYTES + (1 << 20)) < 0) {
			perror("conformance: image");
			return 1;
		}
		close(fd);
		image = tmp;
	}
	ret = fixture_create(&fx, transport, image, argv[0]);
	if (ret) {
		fprintf(stderr, "conformance: cannot set up %s: %s\n", transport, strerror(-ret));
		if (image == tmp)
			unlink(tmp);
		return 1;
	}
	printf("1..%u\n# transport %s, ring %s\n", n, transport, ring);
	for (unsigned i = 0; i < n; i++) {
		test_failed = false;
		cases[i].fn();
		if (ld.failure) {
			printf("# rule broken: %s\n", ld.failure);
			test_failed = true;
		}
		printf("%s %u - %s\n", test_failed ? "not ok" : "ok", i + 1, cases[i].name);
		fflush(stdout);
		if (test_failed) {
			failed++;
			/* Later scenarios build on this one: stop here. */
			for (unsigned k = i + 1; k < n; k++)
				printf("not ok %u - %s # an earlier scenario failed\n", k + 1, cases[k].name);
			failed += n - i - 1;
			break;
		}
	}
	fixture_destroy(&fx);
	if (image == tmp)
		unlink(tmp);
	return failed ? 1 : 0;
}
