/* SPDX-License-Identifier: MIT */
/* Benchmarks of the uvirtio command (`uvirtio bench ...`). */
#ifndef UVIRTIO_BENCH_H
#define UVIRTIO_BENCH_H

/* `uvirtio bench ring [options]`: returns the process exit code. */
int bench_ring_main(int argc, char **argv);

/* `uvirtio bench blk --socket-path=PATH [options]`: a vhost-user-blk
 * backend measured with fio's kind of job; returns the process exit code. */
int bench_blk_main(int argc, char **argv);

#endif
