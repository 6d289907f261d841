// SPDX-License-Identifier: MIT
/* The README's library example, built and run by the tests. */
#include <uvirtio/uvirtio.h>

int main(void)
{
	struct uvirtio_loopback *lb;
	struct uvirtio_rng_dev dev;   /* device side */
	struct uvirtio_rng_drv drv;   /* driver side */
	unsigned char key[32];

	uvirtio_loopback_create(&lb, NULL);               /* guest memory + eventfds */
	uvirtio_rng_dev_init(&dev, uvirtio_loopback_mem(lb));
	uvirtio_loopback_start(lb, uvirtio_rng_dev_device(&dev));              /* device thread */

	/* reset, ACKNOWLEDGE, DRIVER, negotiate, FEATURES_OK, queue, DRIVER_OK */
	uvirtio_rng_drv_probe(&drv, uvirtio_loopback_transport(lb),
			      UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX));
	if (uvirtio_rng_drv_read(&drv, key, sizeof(key), 1000) != sizeof(key))
		return 1;

	uvirtio_rng_drv_remove(&drv);                      /* reset, then free queues */
	uvirtio_loopback_destroy(lb);
	uvirtio_rng_dev_destroy(&dev);
	return 0;
}
