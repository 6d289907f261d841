// SPDX-License-Identifier: MIT
/*
 * `uvirtio check --socket-path=PATH`: a conformance checker for any
 * vhost-user blk backend (ours, qemu-storage-daemon, SPDK, ...). It runs a
 * table of checks; each connects with the vhost-user front-end as it needs,
 * drives the backend through the blk driver (check_config.c: negotiation
 * and config; check_io.c: verified I/O of every request type offered, reset
 * and renegotiation, several queues) or through a split ring it lays out
 * itself (check_raw.c: ring stop and restart; check_hostile.c: hostile-driver
 * requests), and prints one line:
 *
 *   PASS  <name>: <detail>
 *   FAIL  <name>: <reason>
 *   N/A   <name>: <why not applicable>
 *
 * then "N passed, N failed, N not applicable". Exit 0 when nothing failed,
 * 1 when something did, 2 for a usage error.
 *
 * The checks WRITE to the disk: 4 MiB from --offset (default 0) are
 * overwritten. Run it on a scratch image.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- the command -------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uvirtio check --socket-path=PATH [options]\n"
		"\n"
		"Check a vhost-user blk backend against the virtio spec: negotiation and config,\n"
		"verified I/O of every request type it offers, reset and renegotiation, ring\n"
		"stop and restart, several queues, and a hostile driver's malformed rings.\n"
		"One line per check: PASS, FAIL or N/A with the reason. Exit 0 when nothing\n"
		"failed, 1 when something did, 2 for a usage error.\n"
		"\n"
		"WARNING: the checks WRITE to the disk: 4 MiB from --offset are overwritten.\n"
		"\n"
		"  --socket-path=PATH  the backend's vhost-user socket\n"
		"  --timeout-ms=MS     bound on every wait (default 5000)\n"
		"  --offset=BYTES      where on the disk the checks write (default 0; a multiple of 4096)\n"
		"  --only=NAME,...     run only these checks\n"
		"  --list              list the checks and exit\n"
		"  --json              print the results as one JSON object\n"
		"  --loopback=IMAGE    (development) check uvirtio's own blk device serving IMAGE\n"
		"                      in-process over the loopback transport, instead of a socket;\n"
		"                      --loopback-read-only serves it read-only\n");
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static bool wanted(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only)
		return true;
	for (const char *p = only; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && !strncmp(p, name, n))
			return true;
		p += len + (end ? 1 : 0);
	}
	return false;
}

struct table_ref {
	const struct check *checks;
	size_t n;
};

int check_main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_TIMEOUT, O_OFFSET, O_ONLY, O_LIST, O_JSON, O_LOOPBACK, O_LOOPBACK_RO, O_HELP };
	static const struct option lopts[] = {
		{ "socket-path", required_argument, NULL, O_SOCKET },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "offset", required_argument, NULL, O_OFFSET },
		{ "only", required_argument, NULL, O_ONLY },
		{ "list", no_argument, NULL, O_LIST },
		{ "json", no_argument, NULL, O_JSON },
		{ "loopback", required_argument, NULL, O_LOOPBACK },
		{ "loopback-read-only", no_argument, NULL, O_LOOPBACK_RO },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	const struct table_ref tables[] = {
		{ check_config_checks, check_config_checks_count },
		{ check_io_checks, check_io_checks_count },
		{ check_raw_checks, check_raw_checks_count },
		{ check_hostile_checks, check_hostile_checks_count },
	};
	const size_t ntables = sizeof(tables) / sizeof(tables[0]);
	struct check_ctx c = { .opts = { .timeout_ms = 5000 } };
	const char *only = NULL;
	bool list = false, json = false;
	unsigned counts[3] = { 0 };
	char *end;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (opt) {
		case O_SOCKET:
			c.opts.socket_path = optarg;
			break;
		case O_TIMEOUT: {
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 3600000) {
				fprintf(stderr, "uvirtio check: bad value '%s' for --timeout-ms: milliseconds, 1 to 3600000\n",
					optarg);
				return 2;
			}
			c.opts.timeout_ms = (int)v;
			break;
		}
		case O_OFFSET: {
			unsigned long long v;

			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || v % 4096 || v > (UINT64_MAX >> 10)) {
				fprintf(stderr, "uvirtio check: bad value '%s' for --offset: bytes, a multiple of 4096\n",
					optarg);
				return 2;
			}
			c.opts.offset = v;
			break;
		}
		case O_ONLY:
			only = optarg;
			break;
		case O_LIST:
			list = true;
			break;
		case O_JSON:
			json = true;
			break;
		case O_LOOPBACK:
			c.opts.loopback_image = optarg;
			break;
		case O_LOOPBACK_RO:
			c.opts.loopback_read_only = true;
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "uvirtio check: unknown option '%s'; run 'uvirtio check --help'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uvirtio check: unexpected argument '%s'; the backend is named with --socket-path=PATH\n",
			argv[optind]);
		return 2;
	}
	if (list) {
		for (size_t t = 0; t < ntables; t++)
			for (size_t i = 0; i < tables[t].n; i++)
				printf("%-36s %s\n", tables[t].checks[i].name, tables[t].checks[i].what);
		return 0;
	}
	if (only) {
		/* A misspelt name would otherwise run nothing and "pass". */
		for (const char *p = only; *p;) {
			const char *e = strchr(p, ',');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			bool found = false;

			for (size_t t = 0; t < ntables && !found; t++)
				for (size_t i = 0; i < tables[t].n && !found; i++)
					found = strlen(tables[t].checks[i].name) == len &&
						!strncmp(tables[t].checks[i].name, p, len);
			if (!found) {
				fprintf(stderr, "uvirtio check: --only: no check named '%.*s'; run 'uvirtio check --list'\n",
					(int)len, p);
				return 2;
			}
			p += len + (e ? 1 : 0);
		}
	}
	if (!!c.opts.socket_path == !!c.opts.loopback_image) {
		fprintf(stderr, "uvirtio check: name the backend with --socket-path=PATH\n");
		return 2;
	}

	/* A backend that is gone closes the socket under a write. */
	signal(SIGPIPE, SIG_IGN);

	/* One connection first: a backend that is not there is one clear line,
	 * not every check failing the same way. */
	{
		struct check_conn conn;
		int ret = check_connect(&c, &conn);

		if (ret && ret != -ENODEV) {
			fprintf(stderr, "uvirtio check: cannot connect to '%s': %s\n",
				c.opts.socket_path ? c.opts.socket_path : c.opts.loopback_image,
				check_connect_error(&conn, ret));
			return 1;
		}
		if (!ret)
			check_disconnect(&conn);
	}

	if (json)
		printf("{\"socket_path\": "), json_string(stdout, c.opts.socket_path ? c.opts.socket_path : ""),
			printf(", \"checks\": [");
	bool first = true;

	for (size_t t = 0; t < ntables; t++) {
		for (size_t i = 0; i < tables[t].n; i++) {
			const struct check *ck = &tables[t].checks[i];
			static const char *const word[] = { "PASS", "FAIL", "N/A" };
			static const char *const jword[] = { "pass", "fail", "n/a" };
			enum check_verdict v;

			if (!wanted(only, ck->name))
				continue;
			c.detail[0] = 0;
			v = ck->fn(&c);
			counts[v]++;
			if (json) {
				printf("%s\n  {\"name\": \"%s\", \"result\": \"%s\", \"detail\": ", first ? "" : ",",
				       ck->name, jword[v]);
				json_string(stdout, c.detail);
				printf("}");
			} else {
				printf("%-5s %s: %s\n", word[v], ck->name, c.detail);
			}
			first = false;
			fflush(stdout);
		}
	}
	if (json)
		printf("\n], \"passed\": %u, \"failed\": %u, \"not_applicable\": %u}\n", counts[CHECK_PASS],
		       counts[CHECK_FAIL], counts[CHECK_NA]);
	else
		printf("%u passed, %u failed, %u not applicable\n", counts[CHECK_PASS], counts[CHECK_FAIL],
		       counts[CHECK_NA]);
	return counts[CHECK_FAIL] ? 1 : 0;
}
