// SPDX-License-Identifier: MIT
/*
 * `uvirtio demo`: the main job on its embedded defaults. `uvirtio demo` (or
 * `demo blk`) runs the virtio-blk device and driver over the loopback
 * transport; `demo rng` the simplest device. Both print every transport
 * operation as it happens, through a tracing transport; the helpers for that
 * are here.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "demo.h"
#include "feature_names.h"
#include "uvirtio/virtio_spec.h"

const char *demo_describe_status(uint8_t s, char *buf, size_t size)
{
	static const struct { uint8_t bit; const char *name; } names[] = {
		{ VIRTIO_CONFIG_S_ACKNOWLEDGE, "ACKNOWLEDGE" }, { VIRTIO_CONFIG_S_DRIVER, "DRIVER" },
		{ VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK" }, { VIRTIO_CONFIG_S_DRIVER_OK, "DRIVER_OK" },
		{ VIRTIO_CONFIG_S_SUSPEND, "SUSPEND" }, { VIRTIO_CONFIG_S_NEEDS_RESET, "DEVICE_NEEDS_RESET" }, { VIRTIO_CONFIG_S_FAILED, "FAILED" },
	};
	size_t n = (size_t)snprintf(buf, size, "0x%02x", s);

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]) && n < size; i++)
		if (s & names[i].bit)
			n += (size_t)snprintf(buf + n, size - n, " %s", names[i].name);
	return buf;
}

void demo_print_step(void *opaque, const struct uvirtio_trace_event *ev)
{
	const char *const *device_names = opaque;
	char buf[512];

	if (!strcmp(ev->op, "reset"))
		printf("  driver -> reset: device status 0, queues stopped, features forgotten\n");
	else if (!strcmp(ev->op, "set_status"))
		printf("  driver -> status %s\n", demo_describe_status((uint8_t)ev->value, buf, sizeof(buf)));
	else if (!strcmp(ev->op, "get_features"))
		printf("  device <- offers   %s\n", features_describe(device_names, ev->value, buf, sizeof(buf)));
	else if (!strcmp(ev->op, "set_features"))
		printf("  driver -> accepts  %s\n", features_describe(device_names, ev->value, buf, sizeof(buf)));
	else if (!strcmp(ev->op, "queue_max_size"))
		printf("  device <- queue %u holds up to %llu entries\n", ev->index, (unsigned long long)ev->value);
	else if (!strcmp(ev->op, "queue_enable"))
		printf("  driver -> queue %u enabled with %llu entries\n", ev->index, (unsigned long long)ev->value);
	else
		printf("  driver -> %s\n", ev->op);
	if (ev->ret)
		printf("           failed: %s\n", strerror(-ev->ret));
}

int demo_main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "rng"))
		return demo_rng_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "blk"))
		return demo_blk_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "lifecycle"))
		return demo_lifecycle_main(argc - 1, argv + 1);
	/* The default shows the blk device's life, then its lifecycle
	 * operations: queue reset, suspend/resume, a move to a new process. */
	{
		int ret = demo_blk_main(argc, argv);
		char *lc[] = { "lifecycle", NULL };

		if (ret)
			return ret;
		printf("\n");
		return demo_lifecycle_main(1, lc);
	}
}
