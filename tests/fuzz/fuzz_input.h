/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz targets share: reading the input as a stream of fields, and
 * the check that stops the run when an invariant fails.
 *
 * An input that runs out reads as zeros, so every prefix of an input is a
 * valid input of its own: libFuzzer's truncations and splices keep meaning
 * something instead of being thrown away by a length check.
 */
#ifndef UVIRTIO_FUZZ_INPUT_H
#define UVIRTIO_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool in_empty(const struct fuzz_in *in)
{
	return in->n == 0;
}

static inline uint8_t in_u8(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* Little-endian, whatever the host: seeds written by make_seeds.py mean the
 * same on every machine. */
static inline uint64_t in_le(struct fuzz_in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)in_u8(in) << (8 * i);
	return v;
}

static inline uint16_t in_u16(struct fuzz_in *in)
{
	return (uint16_t)in_le(in, 2);
}

static inline uint32_t in_u32(struct fuzz_in *in)
{
	return (uint32_t)in_le(in, 4);
}

static inline uint64_t in_u64(struct fuzz_in *in)
{
	return in_le(in, 8);
}

/*
 * A number whose shape the input picks with one tag byte: 1, 2, 4 or 8 bytes
 * wide (tag bits 0-1), counted down from UINT64_MAX (bit 2), in 4 KiB pages
 * (bit 3). Small values make regions meet and overlap; values near the top
 * reach the overflow checks. A raw u64 would give the fuzzer neither often.
 */
static inline uint64_t in_num(struct fuzz_in *in)
{
	uint8_t tag = in_u8(in);
	uint64_t v = in_le(in, 1u << (tag & 3));

	if (tag & 8)
		v <<= 12;
	if (tag & 4)
		v = ~v;
	return v;
}

/* For the targets' own models: coverage feedback from them would only steer
 * the fuzzer towards exercising the model, and tracing their comparisons
 * costs more than the library calls they check. Out of line, or inlining
 * puts them back inside an instrumented caller. */
#define FUZZ_MODEL __attribute__((no_sanitize("coverage"), noinline))

/* An invariant of the library failed: say which, then stop with a signal so
 * libFuzzer saves the input and prints the stack. */
#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                     \
			__builtin_trap();                                             \
		}                                                                     \
	} while (0)

#endif
