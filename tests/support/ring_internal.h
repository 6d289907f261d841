/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into src/ring/ (tests/support/README.md): the accessors for
 * memory shared with the peer and, with UVIRTIO_RING_READ_HOOK, the hook the
 * no-double-fetch test counts every read through.
 */
#ifndef UVIRTIO_TESTS_SUPPORT_RING_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_RING_INTERNAL_H

#include "../../src/ring/ring_access.h"

#endif
