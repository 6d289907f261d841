// SPDX-License-Identifier: MIT
/* Command-line numbers and benchmark thread placement, shared by the
 * `uvirtio` subcommands (see cli_parse.h). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "cli_parse.h"

/* strtoull takes a sign and leading space; a count on the command line
 * has neither, so "-1" is refused rather than read as 2^64 - 1. */
static bool starts_as_number(const char *s)
{
	return *s && *s != '-' && *s != '+' && *s != ' ';
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!starts_as_number(s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

bool cli_parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!starts_as_number(s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' || *end == 'b' || *end == 'B') /* 4KiB, 4kb */
		end += *end == 'i' && (end[1] == 'B' || end[1] == 'b') ? 2 : 1;
	if (*end || v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

void cli_pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

const char *cli_socket_error(int err)
{
	switch (err) {
	case -EADDRINUSE:
		return "another process is serving on it; stop it or choose another path";
	case -EEXIST:
		return "it exists and is not a socket; choose another path";
	case -ENOTSOCK:
		return "the inherited fd is not a stream socket";
	default:
		return strerror(-err);
	}
}
