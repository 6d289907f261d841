/* SPDX-License-Identifier: MIT */
#ifndef UVIRTIO_DEMO_H
#define UVIRTIO_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "uvirtio/trace.h"

/* `uvirtio demo [blk|rng] [options]`: returns the process exit code. */
int demo_main(int argc, char **argv);
int demo_rng_main(int argc, char **argv);
int demo_blk_main(int argc, char **argv);
int demo_lifecycle_main(int argc, char **argv);

const char *demo_describe_status(uint8_t s, char *buf, size_t size);
/* A uvirtio_trace_fn printing each step; @opaque is the device_names table. */
void demo_print_step(void *opaque, const struct uvirtio_trace_event *ev);

#endif
