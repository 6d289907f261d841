// SPDX-License-Identifier: MIT
/* The uvirtio command: one binary, a subcommand per job. */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "uvirtio/log.h"

#include "../bench/bench.h"
#include "blk.h"
#include "check.h"
#include "net.h"
#include "demo.h"
#include "lifecycle/fixtures.h"

#define UVIRTIO_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uvirtio <command> [options]\n"
		"\n"
		"commands:\n"
		"  demo            virtio-blk over loopback (negotiation, verified I/O, reset and\n"
		"                  renegotiation), then over virtio-mmio its lifecycle: queue\n"
		"                  reset, suspend/resume, a move to a new process; each step printed\n"
		"                  (demo rng, demo blk, demo lifecycle: one part)\n"
		"  blk             serve an image as a virtio-blk device over vhost-user\n"
		"  net             serve a virtio-net device over vhost-user (tap, reflect, null, gen)\n"
		"  check           check a vhost-user blk backend against the spec (writes to its disk)\n"
		"  bench ring      split-ring throughput, driver and device on two CPUs\n"
		"  bench blk       IOPS and latency of a vhost-user-blk backend, as fio measures a disk\n"
		"  version         print the version\n"
		"\n"
		"`uvirtio <command> --help` describes a command's options.\n"
		"\n"
		"exit status: 0 done; 1 the work failed (an image, a socket, a peer, a check);\n"
		"2 a usage error (an unknown command, option or value). Either way one line\n"
		"on stderr says what was wrong.\n");
}

/* The library's log lines (a peer's fault, a connection dropped, an
 * injected fault striking) go to stderr, one per line. */
static void log_to_stderr(void *opaque, int level, const char *msg)
{
	(void)opaque;
	(void)level;
	fprintf(stderr, "uvirtio: %s\n", msg);
}

int main(int argc, char **argv)
{
	uvirtio_set_log(log_to_stderr, UVIRTIO_LOG_INFO, NULL);
	/* Installed as uvirtio-blk too, the program a vhost-user JSON
	 * description names: management tools run it with no subcommand. */
	if (!strcmp(basename(argv[0]), "uvirtio-blk"))
		return blk_main(argc, argv);
	if (!strcmp(basename(argv[0]), "uvirtio-net"))
		return net_main(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "demo"))
		return demo_main(argc - 1, argv + 1);
	/* The device end of a lifecycle move, re-executed in its new process. */
	if (!strcmp(argv[1], "--device-child"))
		return fixture_device_child(argc, argv);
	if (!strcmp(argv[1], "blk"))
		return blk_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "net"))
		return net_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return check_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench")) {
		if (argc >= 3 && !strcmp(argv[2], "ring"))
			return bench_ring_main(argc - 2, argv + 2);
		if (argc >= 3 && !strcmp(argv[2], "blk"))
			return bench_blk_main(argc - 2, argv + 2);
		fprintf(stderr, "uvirtio bench: unknown benchmark '%s'; the benchmarks are: ring, blk\n",
			argc >= 3 ? argv[2] : "");
		return 2;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("uvirtio %s\n", UVIRTIO_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "uvirtio: unknown command '%s'; run 'uvirtio help' for the list\n", argv[1]);
	return 2;
}
