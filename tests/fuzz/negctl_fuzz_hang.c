// SPDX-License-Identifier: MIT
/*
 * Negative control for the fuzz harness, not a fuzzer of the library: an
 * input that starts with "HANG" never returns, so a harness run with
 * -timeout=N must report a timeout (and count it as a failure) on the seed
 * in corpus/negctl_fuzz_hang. Named negctl_* so the loop over fuzz_* does not
 * take it for a real target; it has no -runs=0 seed test for the same reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* volatile: the loop must really spin, not be reasoned away. */
	static volatile uint64_t spins;

	if (size >= 4 && !memcmp(data, "HANG", 4))
		for (;;)
			spins++;
	return 0;
}
