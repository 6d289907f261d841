/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into src/devices/ (tests/support/README.md): the ops table a
 * blk device gives the device core, so a test can check how the device asked
 * to be run (its queue threads take the kick fds).
 */
#ifndef UVIRTIO_TESTS_SUPPORT_DEVICES_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_DEVICES_INTERNAL_H

#include "../../src/devices/blk_priv.h"

#endif
