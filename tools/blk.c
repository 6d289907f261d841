// SPDX-License-Identifier: MIT
/*
 * `uvirtio blk`: serve an image as a virtio-blk device to a vhost-user
 * front-end (QEMU's vhost-user-blk-pci). It follows the backend program
 * conventions of QEMU's docs/interop/vhost-user.rst: --socket-path, --fd,
 * --print-capabilities, and for block backends --blk-file and --read-only.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"
#include "cli_parse.h"
#include "vhost_cli.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/vhost_backend.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uvirtio blk --socket-path=PATH [options] IMAGE\n"
		"       uvirtio blk --fd=N [options] IMAGE\n"
		"       uvirtio blk --print-capabilities\n"
		"\n"
		"Serve IMAGE (a file or block device) as a virtio-blk device over vhost-user,\n"
		"to one front-end at a time (QEMU: -device vhost-user-blk-pci).\n"
		"\n"
		"  --socket-path=PATH   listen on this unix socket (with --client: connect to it)\n"
		"  --fd=N               use inherited socket N (listening or connected)\n"
		"  --client             connect to --socket-path instead of listening\n"
		"  --blk-file=PATH      the image (instead of the IMAGE argument)\n"
		"  --read-only          offer VIRTIO_BLK_F_RO and refuse every write\n"
		"  --queues=N           request queues, 1 to %u (default 1); one I/O thread each\n"
		"  --direct             open the image with O_DIRECT (no host page cache)\n"
		"  --poll               queue threads busy-poll instead of sleeping\n"
		"  --poll-us=N          when a ring runs dry, keep looking N microseconds\n"
		"                       before sleeping (default %d; 0: sleep at once)\n"
		"  --backend=file|null  null: complete every request without I/O (benchmarks)\n"
		"  --size=BYTES         capacity of the null backend (default 1G; K, M, G, T suffixes)\n"
		"  --serial=STRING      the disk's ID (GET_ID), up to 20 bytes\n"
		"  --writethrough       start with the write cache off\n"
		"  --print-capabilities print the backend's capabilities as JSON and exit\n",
		UVIRTIO_BLK_QUEUES_MAX, UVIRTIO_BLK_POLL_US_DEFAULT);
#ifdef UVIRTIO_FAULT_INJECTION
	fprintf(f, "  --inject-fault=SPEC  (test build) inject one fault, as UVIRTIO_BLK_FAULT=SPEC\n"
		   "                       does (SPEC is NAME[@N][:BYTES]; src/devices/blk_fault.h)\n");
#endif
}

static int bad_value(const char *flag, const char *value, const char *want)
{
	fprintf(stderr, "uvirtio blk: bad value '%s' for %s: %s\n", value, flag, want);
	return 2;
}

static void print_capabilities(void)
{
	/* The schema is QEMU's docs/interop/vhost-user.json,
	 * VHostUserBackendCapabilitiesBlock. */
	printf("{\n  \"type\": \"block\",\n  \"features\": [\n    \"read-only\",\n    \"blk-file\"\n  ]\n}\n");
}

int blk_main(int argc, char **argv)
{
	enum { O_FIRST = VHOST_CLI_END - 1, O_FILE, O_RO, O_QUEUES, O_DIRECT, O_POLL, O_POLL_US,
	       O_BACKEND, O_SIZE, O_SERIAL, O_WT, O_CAPS, O_HELP, O_FAULT };
	static const struct option opts[] = {
		VHOST_CLI_OPTIONS,
		{ "blk-file", required_argument, NULL, O_FILE },
		{ "read-only", no_argument, NULL, O_RO },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "direct", no_argument, NULL, O_DIRECT },
		{ "poll", no_argument, NULL, O_POLL },
		{ "poll-us", required_argument, NULL, O_POLL_US },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "size", required_argument, NULL, O_SIZE },
		{ "serial", required_argument, NULL, O_SERIAL },
		{ "writethrough", no_argument, NULL, O_WT },
		{ "print-capabilities", no_argument, NULL, O_CAPS },
		{ "help", no_argument, NULL, O_HELP },
#ifdef UVIRTIO_FAULT_INJECTION
		{ "inject-fault", required_argument, NULL, O_FAULT },
#endif
		{ 0 },
	};
	struct uvirtio_blk_dev_config bc = { .backend = UVIRTIO_BLK_BACKEND_FILE, .num_queues = 1 };
	struct uvirtio_vhost_backend_config vc = { .fd = -1 };
	struct uvirtio_vhost_backend *vb = NULL;
	struct uvirtio_blk_dev blk;
	uint64_t v;
	bool size_given = false;
	int opt, ret;

	bc.null_capacity = 1ull << 30;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case VHOST_CLI_SOCKET:
		case VHOST_CLI_FD:
		case VHOST_CLI_CLIENT:
			if (vhost_cli_option("uvirtio blk", opt, optarg, &vc))
				return 2;
			break;
		case O_FILE:
			bc.path = optarg;
			break;
		case O_RO:
			bc.read_only = true;
			break;
		case O_QUEUES:
			if (!cli_parse_u64(optarg, &v) || v < 1 || v > UVIRTIO_BLK_QUEUES_MAX)
				return bad_value("--queues", optarg, "a number of queues from 1 to 64");
			bc.num_queues = (unsigned)v;
			break;
		case O_DIRECT:
			bc.direct = true;
			break;
		case O_POLL:
			bc.poll = true;
			break;
		case O_POLL_US:
			if (!cli_parse_u64(optarg, &v) || v > 1000000)
				return bad_value("--poll-us", optarg, "microseconds, 0 to 1000000");
			bc.poll_us = v ? (int)v : -1;
			break;
		case O_BACKEND:
			if (!strcmp(optarg, "file"))
				bc.backend = UVIRTIO_BLK_BACKEND_FILE;
			else if (!strcmp(optarg, "null"))
				bc.backend = UVIRTIO_BLK_BACKEND_NULL;
			else
				return bad_value("--backend", optarg, "file or null");
			break;
		case O_SIZE:
			if (!cli_parse_bytes(optarg, &bc.null_capacity) || bc.null_capacity < 512)
				return bad_value("--size", optarg, "bytes, at least 512 (K, M, G, T suffixes)");
			size_given = true;
			break;
		case O_SERIAL:
			if (strlen(optarg) > VIRTIO_BLK_ID_BYTES)
				return bad_value("--serial", optarg, "at most 20 bytes");
			bc.serial = optarg;
			break;
		case O_WT:
			bc.writethrough = true;
			break;
		case O_CAPS:
			print_capabilities();
			return 0;
		case O_HELP:
			usage(stdout);
			return 0;
#ifdef UVIRTIO_FAULT_INJECTION
		case O_FAULT:
			/* The library's one way in for a fault: the device
			 * reads it when it starts (uvirtio_blk_dev_init()),
			 * which refuses a SPEC that names no fault. */
			if (setenv("UVIRTIO_BLK_FAULT", optarg, 1))
				return bad_value("--inject-fault", optarg, strerror(errno));
			break;
#endif
		default:
			fprintf(stderr, "uvirtio blk: unknown option '%s'; run 'uvirtio blk --help'\n",
				argv[optind - 1]);
			return 2;
		}
	}

	if (optind < argc) {
		if (bc.path || optind + 1 < argc) {
			fprintf(stderr, "uvirtio blk: one image only (got '%s' too)\n", argv[argc - 1]);
			return 2;
		}
		bc.path = argv[optind];
	}
	if (bc.backend == UVIRTIO_BLK_BACKEND_FILE && !bc.path) {
		fprintf(stderr, "uvirtio blk: no image given; name a file or block device, or use --backend=null\n");
		return 2;
	}
	if (bc.backend == UVIRTIO_BLK_BACKEND_NULL && bc.path) {
		fprintf(stderr, "uvirtio blk: --backend=null serves no image; drop '%s' (use --size)\n", bc.path);
		return 2;
	}
	if (size_given && bc.backend != UVIRTIO_BLK_BACKEND_NULL) {
		fprintf(stderr, "uvirtio blk: --size is for --backend=null; a file's size is its capacity\n");
		return 2;
	}
	if (vhost_cli_check("uvirtio blk", &vc))
		return 2;

	ret = uvirtio_vhost_backend_create(&vb, &vc);
	if (ret) {
		fprintf(stderr, "uvirtio blk: cannot use socket '%s': %s\n",
			vhost_cli_where(&vc), strerror(-ret));
		return 1;
	}
	ret = uvirtio_blk_dev_init(&blk, &bc, uvirtio_vhost_backend_mem(vb));
	if (ret) {
		if (bc.path)
			fprintf(stderr, "uvirtio blk: cannot serve image '%s': %s\n", bc.path,
				ret == -EROFS ? "it is read-only; use --read-only" : strerror(-ret));
		else
			fprintf(stderr, "uvirtio blk: cannot set the device up: %s\n", strerror(-ret));
		uvirtio_vhost_backend_destroy(vb);
		return 1;
	}
	if (vhost_cli_serve("uvirtio blk", vb, uvirtio_blk_dev_device(&blk), &vc)) {
		uvirtio_vhost_backend_destroy(vb);
		uvirtio_blk_dev_destroy(&blk);
		return 1;
	}

	fprintf(stderr, "uvirtio blk: serving %s (%" PRIu64 " sectors of 512 bytes, %u queue%s%s%s) on %s\n",
		bc.path ? bc.path : "null backend", uvirtio_blk_dev_capacity(&blk), bc.num_queues,
		bc.num_queues == 1 ? "" : "s", bc.read_only ? ", read-only" : "",
		bc.poll ? ", polling" : "", vc.socket_path ? vc.socket_path : "the inherited fd");

	ret = vhost_cli_run("uvirtio blk", vb);
	uvirtio_vhost_backend_destroy(vb);
	uvirtio_blk_dev_destroy(&blk);
	return ret ? 1 : 0;
}
