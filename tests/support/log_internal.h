/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into src/log/ (tests/support/README.md): the library's own
 * log call, so a test can send lines of each level through the sink and
 * check its level filter.
 */
#ifndef UVIRTIO_TESTS_SUPPORT_LOG_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_LOG_INTERNAL_H

#include "../../src/log/log_priv.h"

#endif
