// SPDX-License-Identifier: MIT
/*
 * The in-process virtio-pci pair: the register model and the driver-side
 * transport over one shared guest memory, the transport's regbus calling
 * the model directly.
 */
#include <errno.h>
#include <linux/virtio_pci.h>
#include <stdlib.h>

#include "../core/eventfd.h"
#include "uvirtio/shared_mem.h"
#include "uvirtio/pci.h"

struct uvirtio_pci_pair {
	struct uvirtio_shared_mem sm;
	unsigned nvectors;
	struct uvirtio_pci_dev *model;
	struct uvirtio_transport *t; /* atomic: the irq reads it on any thread */
	struct uvirtio_regbus bus;
};

static void signal_vector(struct uvirtio_transport *t, uint16_t vector)
{
	int fd = uvirtio_pci_drv_vector_fd(t, vector);

	if (fd >= 0)
		eventfd_signal(fd);
}

/* The model raises an interrupt: lock-free, on whatever thread notifies. */
static void pair_irq(void *opaque, uint16_t vector)
{
	struct uvirtio_pci_pair *p = opaque;
	struct uvirtio_transport *t = __atomic_load_n(&p->t, __ATOMIC_ACQUIRE);
	int fd;

	if (!t)
		return;
	if (vector != VIRTIO_MSI_NO_VECTOR) {
		signal_vector(t, vector);
		return;
	}
	/* INTx is one line shared by every source: wake every handler, each
	 * looks at its own queue (a spurious wake-up costs a look). */
	for (unsigned v = 0;; v++) {
		fd = uvirtio_pci_drv_vector_fd(t, (uint16_t)v);
		if (fd == -EINVAL)
			break;
		if (fd >= 0)
			eventfd_signal(fd);
	}
}

int uvirtio_pci_pair_create(struct uvirtio_pci_pair **out, const struct uvirtio_pci_pair_config *cfg)
{
	struct uvirtio_pci_pair *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return -ENOMEM;
	ret = uvirtio_shared_mem_create(&p->sm, "uvirtio-pci", cfg ? cfg->mem_size : 0,
				cfg ? cfg->guest_addr : 0);
	if (ret) {
		free(p);
		return ret;
	}
	p->nvectors = cfg ? cfg->nvectors : 0;
	*out = p;
	return 0;
}

struct uvirtio_mem *uvirtio_pci_pair_mem(struct uvirtio_pci_pair *p)
{
	return uvirtio_shared_mem_device_view(&p->sm);
}

int uvirtio_pci_pair_start(struct uvirtio_pci_pair *p, struct uvirtio_device *dev)
{
	struct uvirtio_pci_dev_config mc = { .irq = pair_irq, .opaque = p, .nvectors = p->nvectors };
	struct uvirtio_transport *t;
	int ret;

	if (p->model)
		return -EBUSY;
	ret = uvirtio_pci_dev_create(&p->model, dev, &mc);
	if (ret)
		return ret;
	uvirtio_pci_dev_bus(p->model, &p->bus);
	ret = uvirtio_pci_drv_create(&t, &p->bus, uvirtio_shared_mem_driver_view(&p->sm));
	if (ret) {
		uvirtio_pci_dev_destroy(p->model);
		p->model = NULL;
		return ret;
	}
	__atomic_store_n(&p->t, t, __ATOMIC_RELEASE);
	return 0;
}

struct uvirtio_transport *uvirtio_pci_pair_transport(struct uvirtio_pci_pair *p)
{
	return __atomic_load_n(&p->t, __ATOMIC_ACQUIRE);
}

struct uvirtio_pci_dev *uvirtio_pci_pair_model(struct uvirtio_pci_pair *p)
{
	return p->model;
}

void uvirtio_pci_pair_destroy(struct uvirtio_pci_pair *p)
{
	struct uvirtio_transport *t;

	if (!p)
		return;
	/* The model first: its reset stops the queue threads, after which no
	 * irq reaches the transport's eventfds. */
	uvirtio_pci_dev_destroy(p->model);
	t = __atomic_exchange_n(&p->t, NULL, __ATOMIC_ACQ_REL);
	uvirtio_pci_drv_destroy(t);
	uvirtio_shared_mem_destroy(&p->sm);
	free(p);
}
