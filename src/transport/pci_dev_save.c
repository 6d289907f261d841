// SPDX-License-Identifier: MIT
/*
 * Saving and loading the virtio-pci register model's state (what the driver
 * staged and selected), beside the device core's snapshot.
 */
#include <errno.h>
#include <linux/virtio_pci.h>
#include <string.h>

#include "../log/log_priv.h"
#include "pci_dev_priv.h"

#define SAVE_MAGIC "UVPCIDEV"
#define SAVE_VERSION 1u
#define SAVE_HEADER 40u
#define SAVE_QUEUE 32u

static void le16_put(uint8_t **p, uint16_t v)
{
	put16(*p, v);
	*p += 2;
}

static void le32_put(uint8_t **p, uint32_t v)
{
	put32(*p, v);
	*p += 4;
}

static void le64_put(uint8_t **p, uint64_t v)
{
	le32_put(p, (uint32_t)v);
	le32_put(p, (uint32_t)(v >> 32));
}

static uint16_t le16_get(const uint8_t **p)
{
	uint16_t v = (uint16_t)((*p)[0] | (*p)[1] << 8);

	*p += 2;
	return v;
}

static uint32_t le32_get(const uint8_t **p)
{
	uint32_t lo = le16_get(p);

	return lo | (uint32_t)le16_get(p) << 16;
}

static uint64_t le64_get(const uint8_t **p)
{
	uint64_t lo = le32_get(p);

	return lo | (uint64_t)le32_get(p) << 32;
}

size_t uvirtio_pci_dev_save_size(const struct uvirtio_pci_dev *m)
{
	return SAVE_HEADER + (size_t)m->nqueues * SAVE_QUEUE;
}

long uvirtio_pci_dev_save(const struct uvirtio_pci_dev *m, void *buf, size_t size)
{
	size_t total = uvirtio_pci_dev_save_size(m);
	uint8_t *p = buf;

	if (size < total)
		return -ENOSPC;
	memset(buf, 0, total);
	memcpy(p, SAVE_MAGIC, 8);
	p += 8;
	le32_put(&p, SAVE_VERSION);
	le32_put(&p, (uint32_t)total);
	le32_put(&p, m->nqueues);
	le32_put(&p, m->cfg.nvectors);
	le32_put(&p, m->device_feature_select);
	le32_put(&p, m->driver_feature_select);
	le16_put(&p, __atomic_load_n(&m->msix_config, __ATOMIC_ACQUIRE));
	le16_put(&p, m->queue_select);
	*p = __atomic_load_n(&m->isr, __ATOMIC_ACQUIRE);
	p += 4;
	for (unsigned i = 0; i < m->nqueues; i++) {
		const struct pci_queue *q = &m->queues[i];

		le16_put(&p, q->size);
		le16_put(&p, __atomic_load_n(&q->vector, __ATOMIC_ACQUIRE));
		p += 4;
		le64_put(&p, q->desc);
		le64_put(&p, q->driver);
		le64_put(&p, q->device);
	}
	return (long)total;
}

static int refuse(const char **why, const char *reason, int err)
{
	uvirtio_log(UVIRTIO_LOG_WARN, "pci: %s: not loaded", reason);
	if (why)
		*why = reason;
	return err;
}

static bool vector_ok(const struct uvirtio_pci_dev *m, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || v < m->cfg.nvectors;
}

int uvirtio_pci_dev_load(struct uvirtio_pci_dev *m, const void *buf, size_t size, const char **why)
{
	const uint8_t *p = buf;
	uint32_t version, total, nqueues, nvectors, dfs, gfs;
	uint16_t msix, select;
	uint8_t isr;
	unsigned max = uvirtio_device_queue_max_size(m->dev, 0);

	/* Read and check everything first; change the model only at the end. */
	if (size < SAVE_HEADER)
		return refuse(why, "pci model state is truncated", -EBADMSG);
	if (memcmp(p, SAVE_MAGIC, 8))
		return refuse(why, "pci model state has a bad magic", -EBADMSG);
	p += 8;
	version = le32_get(&p);
	total = le32_get(&p);
	nqueues = le32_get(&p);
	nvectors = le32_get(&p);
	dfs = le32_get(&p);
	gfs = le32_get(&p);
	msix = le16_get(&p);
	select = le16_get(&p);
	isr = p[0];
	if (version != SAVE_VERSION)
		return refuse(why, "pci model state of another version", -EPROTONOSUPPORT);
	if (nqueues != m->nqueues || nvectors != m->cfg.nvectors)
		return refuse(why, "pci model state of another queue or vector count", -EINVAL);
	if (total != uvirtio_pci_dev_save_size(m) || size != total)
		return refuse(why, "pci model state has a wrong length", -EBADMSG);
	if (p[1] || p[2] || p[3])
		return refuse(why, "pci model state has non-zero padding", -EBADMSG);
	if (isr & ~(ISR_QUEUE | ISR_CONFIG))
		return refuse(why, "pci model state has ISR bits that do not exist", -EBADMSG);
	if (!vector_ok(m, msix))
		return refuse(why, "pci model state has a vector the function lacks", -EBADMSG);
	p += 4;
	for (unsigned i = 0; i < nqueues; i++) {
		const uint8_t *q = p + (size_t)i * SAVE_QUEUE;
		uint16_t qsize = le16_get(&q), vector = le16_get(&q);

		if (qsize > max)
			return refuse(why, "pci model state has a queue size above the maximum",
				      -EBADMSG);
		if (!vector_ok(m, vector))
			return refuse(why, "pci model state has a vector the function lacks",
				      -EBADMSG);
		if (q[0] || q[1] || q[2] || q[3])
			return refuse(why, "pci model state has non-zero padding", -EBADMSG);
	}

	m->device_feature_select = dfs;
	m->driver_feature_select = gfs;
	__atomic_store_n(&m->msix_config, msix, __ATOMIC_RELEASE);
	m->queue_select = select;
	__atomic_store_n(&m->isr, isr, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < nqueues; i++) {
		struct pci_queue *q = &m->queues[i];

		q->size = le16_get(&p);
		__atomic_store_n(&q->vector, le16_get(&p), __ATOMIC_RELEASE);
		p += 4;
		q->desc = le64_get(&p);
		q->driver = le64_get(&p);
		q->device = le64_get(&p);
	}
	return 0;
}
