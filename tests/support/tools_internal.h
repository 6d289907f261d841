/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into tools/ (tests/support/README.md): the latency histogram
 * of `uvirtio bench blk`, tested on its own.
 */
#ifndef UVIRTIO_TESTS_SUPPORT_TOOLS_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_TOOLS_INTERNAL_H

#include "../../tools/bench_blk_stats.h"

#endif
