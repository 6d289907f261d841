/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into src/core/ (tests/support/README.md): the snapshot blob's
 * CRC-32, so a test that edits a blob can reseal it and reach the check after
 * the checksum; the device core's hooks and per-queue started flag, for
 * tests that fire a notification by hand or check that a queue thread
 * stopped; and its offered features, which a test widens to reach a device's
 * own feature rules.
 */
#ifndef UVIRTIO_TESTS_SUPPORT_CORE_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_CORE_INTERNAL_H

#include "../../src/core/crc32.h"
#include "../../src/core/core_priv.h"

#endif
