/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into src/memory/ (tests/support/README.md): how many regions
 * a guest-memory map holds and how many allocations a DMA area holds, for
 * tests that check a refused change left the map alone or that every
 * allocation was given back.
 */
#ifndef UVIRTIO_TESTS_SUPPORT_MEMORY_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_MEMORY_INTERNAL_H

#include "../../src/memory/memory_priv.h"

#endif
