/* SPDX-License-Identifier: MIT */
/* Benchmarks of the uvirtio command (`uvirtio bench ...`). */
#ifndef UVIRTIO_BENCH_H
#define UVIRTIO_BENCH_H

/* `uvirtio bench ring [options]`: returns the process exit code. */
int bench_ring_main(int argc, char **argv);

#endif
