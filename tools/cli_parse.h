/* SPDX-License-Identifier: MIT */
#ifndef UVIRTIO_TOOLS_CLI_PARSE_H
#define UVIRTIO_TOOLS_CLI_PARSE_H

/*
 * What the `uvirtio` subcommands share: reading numbers from the command
 * line, and the thread placement and spin-wait hint of the benchmarks.
 */
#include <stdbool.h>
#include <stdint.h>

/**
 * cli_parse_u64() - read a decimal number, all of @s.
 * @s: the text; no sign, no leading space, nothing after the digits.
 * @out: set to the number on success, untouched otherwise.
 *
 * Return: true if @s is such a number and fits 64 bits, false otherwise.
 */
bool cli_parse_u64(const char *s, uint64_t *out);

/**
 * cli_parse_bytes() - read a byte count with an optional binary suffix.
 * @s: decimal digits, then optionally K, M, G or T (either case, powers of
 *     1024), then optionally "i", "iB", "b" or "B" (4K, 4KiB, 4kb, 4096B);
 *     no sign, no leading space.
 * @out: set to the count on success, untouched otherwise.
 *
 * Return: true if @s is such a count and it fits 64 bits, false otherwise.
 */
bool cli_parse_bytes(const char *s, uint64_t *out);

/**
 * cli_pin_cpu() - run the calling thread on one CPU only.
 * @cpu: the CPU number; negative leaves the thread where it may run.
 *
 * Best effort: a CPU the process may not use is ignored (the thread keeps
 * its affinity), as a benchmark is still worth running unpinned.
 */
void cli_pin_cpu(int cpu);

/* What a vhost-user backend's listen() error means, for its one-line message. */
const char *cli_socket_error(int err);

/* A spin-wait hint to the CPU (PAUSE on x86), for busy-polling loops. */
static inline void cli_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif
