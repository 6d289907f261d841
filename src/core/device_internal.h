/* SPDX-License-Identifier: MIT */
/*
 * The device core's state that only tests read (tests/support/core_internal.h):
 * not public API, not exported.
 */
#ifndef UVIRTIO_CORE_DEVICE_INTERNAL_H
#define UVIRTIO_CORE_DEVICE_INTERNAL_H

#include <stdbool.h>

#include "uvirtio/device.h"

/* The hooks the transport set (uvirtio_device_set_hooks()), for a test that
 * fires a notification as the device core would. */
const struct uvirtio_device_hooks *uvirtio_device_get_hooks(const struct uvirtio_device *dev);

/* Whether the core called queue_start for queue @index and not queue_stop yet. */
bool uvirtio_device_queue_started(const struct uvirtio_device *dev, unsigned index);

#endif
