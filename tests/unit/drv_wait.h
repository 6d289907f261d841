/* SPDX-License-Identifier: MIT */
/*
 * What the unit fixtures that drive a device through the driver core share:
 * wait for one used buffer on a queue, sleeping on its notification.
 */
#ifndef UVIRTIO_TESTS_DRV_WAIT_H
#define UVIRTIO_TESTS_DRV_WAIT_H

#include <errno.h>
#include <stdint.h>

#include "uvirtio/driver.h"

/* Return: 1 with @token and @len set; -ETIMEDOUT after @timeout_ms without
 * one (a hang guard); or the driver's negative errno. */
static inline int drv_wait_used(struct uvirtio_driver *drv, unsigned qi, void **token, uint32_t *len,
				int timeout_ms)
{
	struct uvirtio_drvq *q = uvirtio_driver_vq(drv, qi);

	for (;;) {
		int ret = uvirtio_drvq_get(q, token, len);

		if (ret)
			return ret;
		/* Notifications on, then look again: a buffer used meanwhile
		 * sends none. */
		if (!uvirtio_drvq_enable_cb(q))
			continue;
		ret = uvirtio_driver_wait(drv, qi, timeout_ms);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
}

#endif
