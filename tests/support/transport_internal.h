/* SPDX-License-Identifier: MIT */
/*
 * Tests' window into src/transport/ and the eventfd helpers of src/core/
 * (tests/support/README.md): the vhost-user wire format (message layout,
 * request and protocol-feature numbers) and the backend's message handler, for
 * tests that play a front-end or backend by hand.
 */
#ifndef UVIRTIO_TESTS_SUPPORT_TRANSPORT_INTERNAL_H
#define UVIRTIO_TESTS_SUPPORT_TRANSPORT_INTERNAL_H

#include "../../src/core/eventfd.h"
#include "../../src/transport/vhost_backend_priv.h"
#include "../../src/transport/vhost_msg.h"

#endif
