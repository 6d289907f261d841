// SPDX-License-Identifier: MIT
/*
 * A virtio-mmio driver and device in one process: the register model, the
 * driver-side transport over the model's bus, one memfd mapped twice for
 * guest memory, an eventfd for the interrupt line, and a thread that plays
 * the emulator's loop for the model's work fd.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "uvirtio/shared_mem.h"
#include "uvirtio/mmio.h"

struct uvirtio_mmio_pair {
	struct uvirtio_shared_mem sm;
	uint32_t vendor_id;
	int irq_fd;
	int stop_fd;
	struct uvirtio_mmio_dev *model;
	struct uvirtio_transport *t;
	pthread_t thread;
	bool started;
};

static void raise_irq(void *opaque)
{
	struct uvirtio_mmio_pair *p = opaque;

	eventfd_signal(p->irq_fd);
}

static void *work_thread(void *arg)
{
	struct uvirtio_mmio_pair *p = arg;
	struct pollfd fds[2] = {
		{ .fd = p->stop_fd, .events = POLLIN },
		{ .fd = uvirtio_mmio_dev_work_fd(p->model), .events = POLLIN },
	};

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (fds[0].revents)
			return NULL;
		if (fds[1].revents & POLLIN)
			uvirtio_mmio_dev_run(p->model);
	}
}

int uvirtio_mmio_pair_create(struct uvirtio_mmio_pair **out,
			     const struct uvirtio_mmio_pair_config *cfg)
{
	struct uvirtio_mmio_pair *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return -ENOMEM;
	p->irq_fd = p->stop_fd = -1;
	p->vendor_id = cfg ? cfg->vendor_id : 0;
	ret = uvirtio_shared_mem_create(&p->sm, "uvirtio-mmio", cfg ? cfg->mem_size : 0,
				cfg ? cfg->guest_addr : 0);
	if (ret) {
		free(p);
		return ret;
	}
	p->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->irq_fd < 0 || p->stop_fd < 0) {
		ret = -errno;
		uvirtio_mmio_pair_destroy(p);
		return ret;
	}
	*out = p;
	return 0;
}

struct uvirtio_mem *uvirtio_mmio_pair_mem(struct uvirtio_mmio_pair *p)
{
	return uvirtio_shared_mem_device_view(&p->sm);
}

int uvirtio_mmio_pair_start(struct uvirtio_mmio_pair *p, struct uvirtio_device *dev)
{
	struct uvirtio_mmio_dev_config mc = { .irq = raise_irq, .opaque = p, .vendor_id = p->vendor_id };
	struct uvirtio_regbus bus;
	int ret;

	if (p->model)
		return -EBUSY;
	ret = uvirtio_mmio_dev_create(&p->model, dev, &mc);
	if (ret)
		return ret;
	ret = -pthread_create(&p->thread, NULL, work_thread, p);
	if (ret)
		goto fail;
	p->started = true;
	uvirtio_mmio_dev_bus(p->model, &bus);
	ret = uvirtio_mmio_drv_create(&p->t, &bus, uvirtio_shared_mem_driver_view(&p->sm), p->irq_fd);
	if (ret)
		goto fail;
	return 0;

fail:
	if (p->started) {
		eventfd_signal(p->stop_fd);
		pthread_join(p->thread, NULL);
		eventfd_drain(p->stop_fd);
		p->started = false;
	}
	uvirtio_mmio_dev_destroy(p->model);
	p->model = NULL;
	p->t = NULL;
	return ret;
}

struct uvirtio_transport *uvirtio_mmio_pair_transport(struct uvirtio_mmio_pair *p)
{
	return p->t;
}

struct uvirtio_mmio_dev *uvirtio_mmio_pair_model(struct uvirtio_mmio_pair *p)
{
	return p->model;
}

void uvirtio_mmio_pair_destroy(struct uvirtio_mmio_pair *p)
{
	if (!p)
		return;
	uvirtio_mmio_drv_destroy(p->t);
	if (p->started) {
		eventfd_signal(p->stop_fd);
		pthread_join(p->thread, NULL);
	}
	uvirtio_mmio_dev_destroy(p->model);
	if (p->irq_fd >= 0)
		close(p->irq_fd);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	uvirtio_shared_mem_destroy(&p->sm);
	free(p);
}
