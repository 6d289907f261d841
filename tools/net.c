// SPDX-License-Identifier: MIT
/*
 * `uvirtio net`: a virtio-net device for a vhost-user front-end (QEMU's
 * -netdev vhost-user, DPDK's net_virtio_user), in front of a tap or an
 * in-process packet backend. It follows the backend program conventions of
 * QEMU's docs/interop/vhost-user.rst (--socket-path, --fd,
 * --print-capabilities). Over vhost-user QEMU serves the control queue, the
 * MAC and the link status itself: the device here has rx/tx pairs only.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_parse.h"
#include "vhost_cli.h"
#include "net.h"
#include "uvirtio/net_dev.h"
#include "uvirtio/vhost_backend.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uvirtio net --socket-path=PATH [options]\n"
		"       uvirtio net --fd=N [options]\n"
		"       uvirtio net --print-capabilities\n"
		"\n"
		"Serve a virtio-net device over vhost-user, to one front-end at a time\n"
		"(QEMU: -netdev vhost-user,chardev=...,queues=N -device virtio-net-pci).\n"
		"\n"
		"  --socket-path=PATH   listen on this unix socket (with --client: connect to it)\n"
		"  --fd=N               use inherited socket N (listening or connected)\n"
		"  --client             connect to --socket-path instead of listening\n"
		"  --backend=KIND       where frames go (default tap):\n"
		"                         tap      a tap interface (--tap), one queue per pair\n"
		"                         reflect  every frame comes back, MAC addresses swapped\n"
		"                         null     tx frames dropped, no rx\n"
		"                         gen      every rx buffer filled with a --frame-size frame\n"
		"  --tap=NAME           the tap interface (created if missing; needs CAP_NET_ADMIN)\n"
		"  --queues=N           rx/tx queue pairs, 1 to %u (default 1); a thread each\n"
		"  --frame-size=N       gen: bytes per frame, %u to %u (default %u)\n"
		"  --mac=XX:XX:XX:XX:XX:XX  the device's MAC (default 52:54:00:12:34:56)\n"
		"  --mtu=N              offer VIRTIO_NET_F_MTU with this MTU, %u to %u\n"
		"  --poll               pair threads busy-poll instead of sleeping\n"
		"  --poll-us=N          when a pair runs dry, keep looking N microseconds\n"
		"                       before sleeping (default %d; 0: sleep at once)\n"
		"  --state-file=PATH    keep the packed rings' inflight state in PATH, so that\n"
		"                       a backend restarted with the same PATH resumes them\n"
		"                       (QEMU restarts packed vhost-user-net rings at 0)\n"
		"  --print-capabilities print the backend's capabilities as JSON and exit\n"
		"\n"
		"SIGUSR1 prints the counters (one line, \"uvirtio net: counters ...\"), as does\n"
		"the exit; SIGINT and SIGTERM stop it.\n",
		UVIRTIO_NET_PAIRS_MAX, UVIRTIO_NET_GEN_FRAME_MIN, UVIRTIO_NET_FRAME_MAX,
		UVIRTIO_NET_GEN_FRAME_DEFAULT, UVIRTIO_NET_MTU_MIN, UVIRTIO_NET_MTU_MAX,
		UVIRTIO_NET_POLL_US_DEFAULT);
}

static int bad_value(const char *flag, const char *value, const char *want)
{
	fprintf(stderr, "uvirtio net: bad value '%s' for %s: %s\n", value, flag, want);
	return 2;
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return false;
	if (strlen(s) != 17)
		return false;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return true;
}

static void print_counters(const struct uvirtio_net_dev *net)
{
	struct uvirtio_net_dev_stats s;

	uvirtio_net_dev_get_stats(net, &s);
	fprintf(stderr,
		"uvirtio net: counters tx_packets=%" PRIu64 " tx_bytes=%" PRIu64 " rx_packets=%" PRIu64
		" rx_bytes=%" PRIu64 " tx_bad_header=%" PRIu64 " tx_bad_csum=%" PRIu64 " tx_bad_gso=%" PRIu64
		" tx_bad_size=%" PRIu64 " tx_bad_num_buffers=%" PRIu64 " tx_backend_errors=%" PRIu64
		" rx_bad_chain=%" PRIu64 " rx_dropped=%" PRIu64 "\n",
		s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes, s.tx_bad_header, s.tx_bad_csum,
		s.tx_bad_gso, s.tx_bad_size, s.tx_bad_num_buffers, s.tx_backend_errors, s.rx_bad_chain,
		s.rx_dropped);
}

/* SIGUSR1 is blocked in every thread; this one takes it with sigwait(), so
 * the counters are printed outside a signal handler. */
static struct uvirtio_net_dev *counted;
static bool counters_done;

static void *counters_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	while (!sigwait(set, &sig) && !__atomic_load_n(&counters_done, __ATOMIC_ACQUIRE))
		print_counters(counted);
	return NULL;
}

static const char *tap_error(int err)
{
	switch (err) {
	case -ENOENT:
	case -ENODEV:
		return "no /dev/net/tun (load the tun module)";
	case -EPERM:
	case -EACCES:
		return "not allowed to create or attach it (needs root or CAP_NET_ADMIN)";
	case -EBUSY:
		return "the name is in use (by an interface that is not a tap, a tap without "
		       "multi_queue, or one another process holds)";
	default:
		return strerror(-err);
	}
}

static const char *backend_name(enum uvirtio_net_backend b)
{
	static const char *names[] = { "tap", "reflect", "null", "gen" };

	return names[b];
}

int net_main(int argc, char **argv)
{
	enum { O_FIRST = VHOST_CLI_END - 1, O_BACKEND, O_TAP, O_QUEUES, O_FRAME, O_MAC, O_MTU,
	       O_POLL, O_POLL_US, O_STATE, O_CAPS, O_HELP };
	static const struct option opts[] = {
		VHOST_CLI_OPTIONS,
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "tap", required_argument, NULL, O_TAP },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "frame-size", required_argument, NULL, O_FRAME },
		{ "mac", required_argument, NULL, O_MAC },
		{ "mtu", required_argument, NULL, O_MTU },
		{ "poll", no_argument, NULL, O_POLL },
		{ "poll-us", required_argument, NULL, O_POLL_US },
		{ "state-file", required_argument, NULL, O_STATE },
		{ "print-capabilities", no_argument, NULL, O_CAPS },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	struct uvirtio_net_dev_config nc = { .backend = UVIRTIO_NET_BACKEND_TAP, .num_pairs = 1 };
	struct uvirtio_vhost_backend_config vc = { .fd = -1 };
	struct uvirtio_vhost_backend *vb = NULL;
	struct uvirtio_net_dev net;
	const char *state_file = NULL;
	sigset_t usr1;
	pthread_t counter;
	uint8_t mac[6];
	uint64_t v;
	int opt, ret;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case VHOST_CLI_SOCKET:
		case VHOST_CLI_FD:
		case VHOST_CLI_CLIENT:
			if (vhost_cli_option("uvirtio net", opt, optarg, &vc))
				return 2;
			break;
		case O_BACKEND:
			if (!strcmp(optarg, "tap"))
				nc.backend = UVIRTIO_NET_BACKEND_TAP;
			else if (!strcmp(optarg, "reflect"))
				nc.backend = UVIRTIO_NET_BACKEND_REFLECT;
			else if (!strcmp(optarg, "null"))
				nc.backend = UVIRTIO_NET_BACKEND_NULL;
			else if (!strcmp(optarg, "gen"))
				nc.backend = UVIRTIO_NET_BACKEND_GEN;
			else
				return bad_value("--backend", optarg, "tap, reflect, null or gen");
			break;
		case O_TAP:
			if (!optarg[0] || strlen(optarg) >= 16)
				return bad_value("--tap", optarg, "an interface name of 1 to 15 characters");
			nc.tap = optarg;
			break;
		case O_QUEUES:
			if (!cli_parse_u64(optarg, &v) || v < 1 || v > UVIRTIO_NET_PAIRS_MAX)
				return bad_value("--queues", optarg, "a number of queue pairs from 1 to 16");
			nc.num_pairs = (unsigned)v;
			break;
		case O_FRAME:
			if (!cli_parse_u64(optarg, &v) || v < UVIRTIO_NET_GEN_FRAME_MIN || v > UVIRTIO_NET_FRAME_MAX)
				return bad_value("--frame-size", optarg, "bytes, 60 to 65554");
			nc.frame_size = (unsigned)v;
			break;
		case O_MAC:
			if (!parse_mac(optarg, mac))
				return bad_value("--mac", optarg, "six hex bytes, as 52:54:00:12:34:56");
			if (mac[0] & 1)
				return bad_value("--mac", optarg,
						 "a multicast address (the first byte is odd) cannot be a device's");
			nc.mac = mac;
			break;
		case O_MTU:
			if (!cli_parse_u64(optarg, &v) || v < UVIRTIO_NET_MTU_MIN || v > UVIRTIO_NET_MTU_MAX)
				return bad_value("--mtu", optarg, "68 to 65535");
			nc.mtu = (unsigned)v;
			break;
		case O_POLL:
			nc.poll = true;
			break;
		case O_POLL_US:
			if (!cli_parse_u64(optarg, &v) || v > 1000000)
				return bad_value("--poll-us", optarg, "microseconds, 0 to 1000000");
			nc.poll_us = v ? (int)v : -1;
			break;
		case O_STATE:
			if (!optarg[0])
				return bad_value("--state-file", optarg, "a file path");
			state_file = optarg;
			break;
		case O_CAPS:
			/* docs/interop/vhost-user.json has no net capabilities;
			 * these name what this backend offers. */
			printf("{\n  \"type\": \"net\",\n  \"features\": [\n    \"mq\",\n    \"mrg-rxbuf\",\n"
			       "    \"packed-ring\",\n    \"mtu\"\n  ]\n}\n");
			return 0;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "uvirtio net: unknown option '%s'; run 'uvirtio net --help'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uvirtio net: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (nc.backend == UVIRTIO_NET_BACKEND_TAP && !nc.tap) {
		fprintf(stderr, "uvirtio net: --backend=tap needs --tap=NAME\n");
		return 2;
	}
	if (nc.backend != UVIRTIO_NET_BACKEND_TAP && nc.tap) {
		fprintf(stderr, "uvirtio net: --tap is for --backend=tap\n");
		return 2;
	}
	if (nc.frame_size && nc.backend != UVIRTIO_NET_BACKEND_GEN) {
		fprintf(stderr, "uvirtio net: --frame-size is for --backend=gen\n");
		return 2;
	}
	if (vhost_cli_check("uvirtio net", &vc))
		return 2;

	/* Before any thread exists, so that every thread inherits the mask. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);

	ret = uvirtio_vhost_backend_create(&vb, &vc);
	if (ret) {
		fprintf(stderr, "uvirtio net: cannot use socket '%s': %s\n",
			vhost_cli_where(&vc), strerror(-ret));
		return 1;
	}
	ret = uvirtio_vhost_backend_set_state_file(vb, state_file);
	if (ret) {
		fprintf(stderr, "uvirtio net: --state-file: %s\n", strerror(-ret));
		uvirtio_vhost_backend_destroy(vb);
		return 1;
	}
	ret = uvirtio_net_dev_init(&net, &nc, uvirtio_vhost_backend_mem(vb));
	if (ret) {
		if (nc.backend == UVIRTIO_NET_BACKEND_TAP)
			fprintf(stderr, "uvirtio net: cannot open tap '%s': %s\n", nc.tap, tap_error(ret));
		else
			fprintf(stderr, "uvirtio net: cannot set the device up: %s\n", strerror(-ret));
		uvirtio_vhost_backend_destroy(vb);
		return 1;
	}
	if (vhost_cli_serve("uvirtio net", vb, uvirtio_net_dev_device(&net), &vc)) {
		uvirtio_vhost_backend_destroy(vb);
		uvirtio_net_dev_destroy(&net);
		return 1;
	}
	counted = &net;
	ret = -pthread_create(&counter, NULL, counters_thread, &usr1);
	if (ret) {
		fprintf(stderr, "uvirtio net: cannot start: %s\n", strerror(-ret));
		uvirtio_vhost_backend_destroy(vb);
		uvirtio_net_dev_destroy(&net);
		return 1;
	}

	fprintf(stderr, "uvirtio net: serving %u queue pair%s (%s backend%s%s%s) on %s\n", nc.num_pairs,
		nc.num_pairs == 1 ? "" : "s", backend_name(nc.backend), nc.tap ? " " : "",
		nc.tap ? nc.tap : "", nc.poll ? ", polling" : "",
		vc.socket_path ? vc.socket_path : "the inherited fd");

	ret = vhost_cli_run("uvirtio net", vb);
	uvirtio_vhost_backend_destroy(vb);
	print_counters(&net);
	__atomic_store_n(&counters_done, true, __ATOMIC_RELEASE);
	pthread_kill(counter, SIGUSR1);
	pthread_join(counter, NULL);
	uvirtio_net_dev_destroy(&net);
	return ret ? 1 : 0;
}
