// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core_priv.h"
#include "../log/log_priv.h"

/* Status bits the driver writes; DEVICE_NEEDS_RESET is the device's. */
#define DRIVER_STATUS_BITS                                                          \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_SUSPEND)

static void queue_broken(struct uvirtio_devq *q, void *opaque)
{
	struct uvirtio_device *dev = opaque;

	uvirtio_device_needs_reset(dev, uvirtio_devq_broken_reason(q));
}

int uvirtio_device_init(struct uvirtio_device *public_dev, const struct uvirtio_device_ops *ops,
			void *priv, void *config, unsigned config_size, struct uvirtio_mem *mem)
{
	struct device *dev = device_of(public_dev);
	unsigned max = ops->queue_max_size;

	memset(public_dev, 0, sizeof(*public_dev));
	if (ops->num_queues == 0 || !max || (max & (max - 1)) || max > UVIRTIO_QUEUE_SIZE_MAX)
		return -EINVAL;
	if (config_size && !config)
		return -EINVAL;
	dev->queues = calloc(ops->num_queues, sizeof(*dev->queues));
	dev->queue_started = calloc(ops->num_queues, sizeof(*dev->queue_started));
	dev->kick_fds = malloc(ops->num_queues * sizeof(*dev->kick_fds));
	dev->layouts = calloc(ops->num_queues, sizeof(*dev->layouts));
	dev->config_pending = config_size ? malloc(config_size) : NULL;
	if (!dev->queues || !dev->queue_started || !dev->kick_fds || !dev->layouts ||
	    (config_size && !dev->config_pending)) {
		free(dev->queues);
		free(dev->queue_started);
		free(dev->kick_fds);
		free(dev->layouts);
		free(dev->config_pending);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ops->num_queues; i++) {
		uvirtio_devq_set_broken_cb(&dev->queues[i], queue_broken, public_dev);
		uvirtio_devq_set_index(&dev->queues[i], i);
		dev->kick_fds[i] = -1;
	}
	pthread_mutex_init(&dev->status_lock, NULL);
	pthread_mutex_init(&dev->config_lock, NULL);

	dev->ops = ops;
	dev->priv = priv;
	dev->mem = mem;
	dev->num_queues = ops->num_queues;
	dev->config = config;
	dev->config_size = config_size;
	dev->offered = ops->features | UVIRTIO_TRANSPORT_FEATURES;
	return 0;
}

void uvirtio_device_destroy(struct uvirtio_device *public_dev)
{
	struct device *dev = device_of(public_dev);

	if (!dev->ops)
		return;
	uvirtio_device_reset(public_dev);
	free(dev->queues);
	free(dev->queue_started);
	free(dev->kick_fds);
	free(dev->layouts);
	free(dev->config_pending);
	pthread_mutex_destroy(&dev->status_lock);
	pthread_mutex_destroy(&dev->config_lock);
	memset(public_dev, 0, sizeof(*public_dev));
}

void uvirtio_device_set_hooks(struct uvirtio_device *public_dev,
			      const struct uvirtio_device_hooks *hooks)
{
	struct device *dev = device_of(public_dev);

	dev->hooks = *hooks;
}

int uvirtio_device_set_offered(struct uvirtio_device *public_dev, uint64_t features)
{
	struct device *dev = device_of(public_dev);

	if (status_of(dev))
		return -EBUSY;
	dev->offered = features | UVIRTIO_BIT(VIRTIO_F_VERSION_1);
	return 0;
}

uint64_t uvirtio_device_get_features(const struct uvirtio_device *public_dev)
{
	const struct device *dev = device_of_const(public_dev);

	return dev->offered;
}

int uvirtio_device_set_driver_features(struct uvirtio_device *public_dev, uint64_t features)
{
	struct device *dev = device_of(public_dev);

	/* spec: the driver MUST NOT change features after FEATURES_OK. */
	if (status_of(dev) & VIRTIO_CONFIG_S_FEATURES_OK)
		return -EBUSY;
	dev->driver_features = features;
	return 0;
}

static bool features_acceptable(struct device *dev, uint64_t f)
{
	/* spec: the driver MUST NOT accept a feature the device did not offer. */
	if (f & ~dev->offered)
		return false;
	/* uvirtio has no legacy interface: a driver without VERSION_1 is legacy. */
	if (!(f & UVIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return false;
	/* spec: the driver MUST NOT accept a feature that depends on one it did
	 * not accept. */
	for (unsigned i = 0; i < dev->ops->ndeps; i++) {
		const struct uvirtio_feature_dep *d = &dev->ops->deps[i];

		if ((f & UVIRTIO_BIT(d->feature)) && !(f & UVIRTIO_BIT(d->requires)))
			return false;
	}
	return !dev->ops->validate_features || dev->ops->validate_features(pub(dev), f) == 0;
}

uint8_t uvirtio_device_get_status(const struct uvirtio_device *public_dev)
{
	const struct device *dev = device_of_const(public_dev);

	return __atomic_load_n(&dev->status, __ATOMIC_ACQUIRE);
}

/* Replace the driver's bits, keeping DEVICE_NEEDS_RESET, which a queue
 * thread may set meanwhile. */
static void store_status(struct device *dev, uint8_t driver_bits)
{
	pthread_mutex_lock(&dev->status_lock);
	__atomic_store_n(&dev->status,
			 (uint8_t)((dev->status & VIRTIO_CONFIG_S_NEEDS_RESET) | driver_bits),
			 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dev->status_lock);
}

static void start_queue(struct device *dev, unsigned i)
{
	if (!dev->ops->queue_start || dev->queue_started[i] ||
	    !uvirtio_devq_is_ready(&dev->queues[i]))
		return;
	if (dev->ops->queue_start(pub(dev), i)) {
		uvirtio_device_needs_reset(pub(dev), "device failed to start a queue");
		return;
	}
	dev->queue_started[i] = true;
}

static void stop_queue(struct device *dev, unsigned i)
{
	if (!dev->queue_started[i])
		return;
	dev->ops->queue_stop(pub(dev), i);
	dev->queue_started[i] = false;
}

/* Have the device type finish or drop what it took from queue @i: stop its
 * thread, or, for a device type serving queues on the control path, ask it
 * through queue_stop when it keeps requests across calls. */
static void drain_queue(struct device *dev, unsigned i)
{
	if (dev->ops->queue_start)
		stop_queue(dev, i);
	else if (dev->ops->queue_stop && uvirtio_devq_is_ready(&dev->queues[i]))
		dev->ops->queue_stop(pub(dev), i);
}

/* Look at every queue once, as if kicked, or start its thread. */
static void start_queues(struct device *dev)
{
	for (unsigned i = 0; i < dev->num_queues; i++) {
		if (dev->ops->queue_start)
			start_queue(dev, i);
		else
			uvirtio_device_queue_notify(pub(dev), i);
	}
}

/* spec, SUSPEND: the device stops taking buffers, finishes those in flight,
 * then presents SUSPEND with DRIVER_OK clear. Every queue keeps its place
 * so resume goes on from it. */
static void suspend(struct device *dev, uint8_t driver_bits)
{
	for (unsigned i = 0; i < dev->num_queues; i++) {
		drain_queue(dev, i);
		if (uvirtio_devq_is_ready(&dev->queues[i]))
			uvirtio_devq_stop(&dev->queues[i]);
	}
	pthread_mutex_lock(&dev->config_lock);
	if (dev->config_size)
		memcpy(dev->config_pending, dev->config, dev->config_size);
	dev->config_pending_dirty = false;
	pthread_mutex_unlock(&dev->config_lock);
	/* spec: a device that cannot suspend sets DEVICE_NEEDS_RESET. */
	if (dev->ops->suspend && dev->ops->suspend(pub(dev))) {
		store_status(dev, driver_bits & (uint8_t)~VIRTIO_CONFIG_S_SUSPEND);
		uvirtio_device_needs_reset(pub(dev), "device could not suspend");
		return;
	}
	store_status(dev, (driver_bits | VIRTIO_CONFIG_S_SUSPEND) & (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Restart every queue stopped by suspend, at the place it stopped. */
static int resume_queues(struct device *dev)
{
	for (unsigned i = 0; i < dev->num_queues; i++) {
		struct uvirtio_devq *q = &dev->queues[i];
		uint16_t next_avail = uvirtio_devq_next_avail(q), used_idx = uvirtio_devq_used_index(q);
		int ret;

		if (!dev->layouts[i].num)
			continue;
		ret = uvirtio_devq_setup(q, dev->mem, dev->layouts[i].num, dev->layouts[i].desc,
					 dev->layouts[i].avail, dev->layouts[i].used, dev->features);
		if (!ret)
			ret = uvirtio_devq_set_indices(q, next_avail, used_idx);
		if (ret)
			return ret;
	}
	return 0;
}

static void resume(struct device *dev, uint8_t driver_bits)
{
	int ret = resume_queues(dev);

	store_status(dev, (driver_bits | VIRTIO_CONFIG_S_DRIVER_OK) & (uint8_t)~VIRTIO_CONFIG_S_SUSPEND);
	if (ret) {
		uvirtio_device_needs_reset(pub(dev), "device could not resume a queue");
		return;
	}
	/* spec: config changes are held back while suspended; publish them now. */
	if (dev->config_pending_dirty) {
		dev->config_pending_dirty = false;
		uvirtio_device_config_update(pub(dev), 0, dev->config_pending, dev->config_size);
	}
	if (dev->ops->start && dev->ops->start(pub(dev))) {
		uvirtio_device_needs_reset(pub(dev), "device failed to start");
		return;
	}
	start_queues(dev);
}

int uvirtio_device_set_status(struct uvirtio_device *public_dev, uint8_t status)
{
	struct device *dev = device_of(public_dev);
	uint8_t old = status_of(dev) & DRIVER_STATUS_BITS;
	uint8_t new = status & DRIVER_STATUS_BITS;
	uint8_t added = new & ~old;

	if (status == 0) {
		uvirtio_device_reset(public_dev);
		return 0;
	}
	if (old & VIRTIO_CONFIG_S_SUSPEND) {
		/* spec: resume is the driver setting DRIVER_OK again; it may write
		 * SUSPEND back or clear it in the same write. */
		if ((old & ~new & (uint8_t)~VIRTIO_CONFIG_S_SUSPEND) ||
		    (added & (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK))
			return -EINVAL;
		if (added & VIRTIO_CONFIG_S_DRIVER_OK)
			resume(dev, new);
		return 0;
	}
	/* spec: the driver MUST NOT clear a device status bit; only reset does. */
	if (old & ~new)
		return -EINVAL;
	if (added & VIRTIO_CONFIG_S_SUSPEND) {
		/* spec: the driver MUST NOT set SUSPEND unless SUSPEND was
		 * negotiated, and only after DRIVER_OK. */
		if (!has_feature(dev, VIRTIO_F_SUSPEND) ||
		    !(new & VIRTIO_CONFIG_S_DRIVER_OK) || (added & VIRTIO_CONFIG_S_DRIVER_OK))
			return -EINVAL;
		if (status_of(dev) & VIRTIO_CONFIG_S_NEEDS_RESET)
			return 0;
		suspend(dev, new);
		return 0;
	}
	if ((added & VIRTIO_CONFIG_S_FEATURES_OK) && !features_acceptable(dev, dev->driver_features))
		new &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	/* Checked after the features: one write of FEATURES_OK | DRIVER_OK with
	 * features the device refuses must not start it. */
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(new & VIRTIO_CONFIG_S_FEATURES_OK))
		return -EINVAL;
	if (added & VIRTIO_CONFIG_S_FEATURES_OK & new)
		dev->features = dev->driver_features;
	store_status(dev, new);

	if (added & VIRTIO_CONFIG_S_DRIVER_OK) {
		if (dev->ops->start && dev->ops->start(public_dev)) {
			uvirtio_device_needs_reset(public_dev, "device failed to start");
			return 0;
		}
		/* A driver may make buffers available before DRIVER_OK (Linux
		 * virtio-net fills its receive queue so) but must not notify until
		 * after it: look at every queue once. */
		start_queues(dev);
	}
	return 0;
}

void uvirtio_device_reset(struct uvirtio_device *public_dev)
{
	struct device *dev = device_of(public_dev);

	/* The device type drains first, while the queues still work, so a
	 * request it finishes can still be pushed; after this nothing is. */
	for (unsigned i = 0; i < dev->num_queues; i++)
		stop_queue(dev, i);
	if (dev->ops->reset)
		dev->ops->reset(public_dev);
	for (unsigned i = 0; i < dev->num_queues; i++) {
		uvirtio_devq_reset(&dev->queues[i]);
		dev->layouts[i] = (struct uvirtio_queue_layout){ 0 };
	}
	dev->config_pending_dirty = false;
	pthread_mutex_lock(&dev->status_lock);
	__atomic_store_n(&dev->status, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dev->status_lock);
	dev->driver_features = 0;
	dev->features = 0;
	dev->needs_reset_reason = NULL;
	dev->resets++;
}

int uvirtio_device_config_read(const struct uvirtio_device *public_dev, unsigned offset, void *buf,
			       unsigned len)
{
	const struct device *dev = device_of_const(public_dev);

	if (offset > dev->config_size || len > dev->config_size - offset)
		return -EINVAL;
	/* A device type without config space has a NULL one; memcpy from NULL
	 * is undefined even for 0 bytes. */
	if (len) {
		pthread_mutex_t *lock = (pthread_mutex_t *)&dev->config_lock;

		pthread_mutex_lock(lock);
		memcpy(buf, (const char *)dev->config + offset, len);
		pthread_mutex_unlock(lock);
	}
	return 0;
}

int uvirtio_device_config_write(struct uvirtio_device *public_dev, unsigned offset, const void *buf,
				unsigned len)
{
	struct device *dev = device_of(public_dev);
	int ret;

	if (offset > dev->config_size || len > dev->config_size - offset)
		return -EINVAL;
	if (!dev->ops->config_write)
		return -EPERM;
	ret = dev->ops->config_write(public_dev, offset, buf, len);
	if (!ret) {
		pthread_mutex_lock(&dev->config_lock);
		memcpy((char *)dev->config + offset, buf, len);
		pthread_mutex_unlock(&dev->config_lock);
	}
	return ret;
}

uint32_t uvirtio_device_config_generation(const struct uvirtio_device *public_dev)
{
	const struct device *dev = device_of_const(public_dev);

	return __atomic_load_n(&dev->config_generation, __ATOMIC_ACQUIRE);
}

int uvirtio_device_config_update(struct uvirtio_device *public_dev, unsigned offset,
				 const void *buf, unsigned len)
{
	struct device *dev = device_of(public_dev);

	if (offset > dev->config_size || len > dev->config_size - offset)
		return -EINVAL;
	/* spec: while suspended the device changes no config space and sends
	 * no notification; the change waits for resume. */
	pthread_mutex_lock(&dev->config_lock);
	if (suspended(dev)) {
		if (len)
			memcpy((char *)dev->config_pending + offset, buf, len);
		dev->config_pending_dirty = true;
		pthread_mutex_unlock(&dev->config_lock);
		return 0;
	}
	if (len)
		memcpy((char *)dev->config + offset, buf, len);
	pthread_mutex_unlock(&dev->config_lock);
	__atomic_add_fetch(&dev->config_generation, 1, __ATOMIC_RELEASE);
	if ((status_of(dev) & VIRTIO_CONFIG_S_DRIVER_OK) && dev->hooks.notify_config)
		dev->hooks.notify_config(dev->hooks.opaque);
	return 0;
}

unsigned uvirtio_device_queue_max_size(const struct uvirtio_device *public_dev, unsigned index)
{
	const struct device *dev = device_of_const(public_dev);

	return index < dev->num_queues ? dev->ops->queue_max_size : 0;
}

/* Set queue @index up on @l; at its start (@at NULL) or at the encoded
 * indices at[0] (next avail) and at[1] (used). */
static int queue_enable(struct device *dev, unsigned index,
			const struct uvirtio_queue_layout *l, const uint16_t *at)
{
	struct uvirtio_devq *q;
	int ret;

	if (index >= dev->num_queues || l->num > dev->ops->queue_max_size)
		return -EINVAL;
	/* Ring features are known only once negotiated. */
	if (!(status_of(dev) & VIRTIO_CONFIG_S_FEATURES_OK))
		return -EINVAL;
	/* Its thread must be gone before the ring under it changes. */
	stop_queue(dev, index);
	q = &dev->queues[index];
	ret = uvirtio_devq_setup(q, dev->mem, l->num, l->desc, l->avail, l->used, dev->features);
	if (!ret && at)
		ret = uvirtio_devq_set_indices(q, at[0], at[1]);
	/* With an inflight area (vhost-user INFLIGHT_SHMFD) the ring resumes
	 * from it; one that did not fit the ring was started afresh and said
	 * so: the queue runs either way. */
	if (!ret) {
		ret = uvirtio_devq_resume_inflight(q);
		if (ret > 0 || ret == -EBADMSG || ret == -EOPNOTSUPP)
			ret = 0;
	}
	if (ret) {
		/* Refused: the queue is disabled, whatever it was before. */
		uvirtio_devq_reset(q);
		dev->layouts[index] = (struct uvirtio_queue_layout){ 0 };
		return ret;
	}
	dev->layouts[index] = *l;
	if (running(dev))
		start_queue(dev, index);
	return 0;
}

int uvirtio_device_queue_enable(struct uvirtio_device *public_dev, unsigned index,
				const struct uvirtio_queue_layout *l)
{
	struct device *dev = device_of(public_dev);

	return queue_enable(dev, index, l, NULL);
}

int uvirtio_device_queue_enable_at(struct uvirtio_device *public_dev, unsigned index,
				   const struct uvirtio_queue_layout *l, uint16_t next_avail,
				   uint16_t used_idx)
{
	struct device *dev = device_of(public_dev);
	const uint16_t at[2] = { next_avail, used_idx };

	return queue_enable(dev, index, l, at);
}

uint16_t uvirtio_device_queue_stop(struct uvirtio_device *public_dev, unsigned index)
{
	struct device *dev = device_of(public_dev);

	if (index >= dev->num_queues)
		return 0;
	stop_queue(dev, index);
	uvirtio_devq_stop(&dev->queues[index]);
	return uvirtio_devq_next_avail(&dev->queues[index]);
}

int uvirtio_device_queue_reset(struct uvirtio_device *public_dev, unsigned index)
{
	struct device *dev = device_of(public_dev);

	if (index >= dev->num_queues)
		return -EINVAL;
	/* spec: queue reset exists only with VIRTIO_F_RING_RESET. */
	if (!has_feature(dev, VIRTIO_F_RING_RESET))
		return -EPERM;
	/* The device type finishes or drops what it took while the ring still
	 * works; then the ring and its indices are forgotten. */
	drain_queue(dev, index);
	uvirtio_devq_reset(&dev->queues[index]);
	dev->layouts[index] = (struct uvirtio_queue_layout){ 0 };
	return 0;
}

bool uvirtio_device_queue_ready(const struct uvirtio_device *public_dev, unsigned index)
{
	const struct device *dev = device_of_const(public_dev);

	/* A queue stopped by suspend is still enabled as the driver sees it. */
	return index < dev->num_queues && dev->layouts[index].num;
}

void uvirtio_device_queue_layout(const struct uvirtio_device *public_dev, unsigned index,
				 struct uvirtio_queue_layout *layout)
{
	const struct device *dev = device_of_const(public_dev);

	*layout = index < dev->num_queues ? dev->layouts[index] : (struct uvirtio_queue_layout){ 0 };
}

int uvirtio_device_set_kick_fd(struct uvirtio_device *public_dev, unsigned index, int fd)
{
	struct device *dev = device_of(public_dev);

	if (index >= dev->num_queues)
		return -EINVAL;
	dev->kick_fds[index] = fd;
	return 0;
}

int uvirtio_device_queue_kick_fd(const struct uvirtio_device *public_dev, unsigned index)
{
	const struct device *dev = device_of_const(public_dev);

	return index < dev->num_queues ? dev->kick_fds[index] : -1;
}

void uvirtio_device_queue_notify(struct uvirtio_device *public_dev, unsigned index)
{
	struct device *dev = device_of(public_dev);

	if (index >= dev->num_queues || !running(dev))
		return;
	/* A queue served on its own thread is that thread's to read: ask
	 * whether the core started it, not the ring's ready flag, which the
	 * thread clears when it finds the ring broken. */
	if (dev->ops->queue_start ? !dev->queue_started[index]
				  : !uvirtio_devq_is_ready(&dev->queues[index]))
		return;
	dev->ops->queue_notify(public_dev, index);
}

void uvirtio_device_queue_notify_data(struct uvirtio_device *public_dev, uint32_t data)
{
	struct device *dev = device_of(public_dev);
	uint32_t index = uvirtio_device_notified_queue(public_dev, data);

	/* A queue on its own thread is that thread's: its kick fd carries no
	 * data, and the data is only a hint (the ring is what counts). */
	if ((dev->features & UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA)) && index < dev->num_queues &&
	    running(dev) && !dev->ops->queue_start && uvirtio_devq_is_ready(&dev->queues[index]))
		(void)uvirtio_devq_note_notification(&dev->queues[index], data);
	uvirtio_device_queue_notify(public_dev, index);
}

struct uvirtio_devq *uvirtio_device_queue(struct uvirtio_device *public_dev, unsigned index)
{
	struct device *dev = device_of(public_dev);

	return index < dev->num_queues ? &dev->queues[index] : NULL;
}

void uvirtio_device_notify(struct uvirtio_device *public_dev, unsigned index)
{
	struct device *dev = device_of(public_dev);

	if (index >= dev->num_queues || !running(dev))
		return;
	if (uvirtio_devq_needs_notify(&dev->queues[index]) && dev->hooks.notify_used)
		dev->hooks.notify_used(dev->hooks.opaque, index);
}

void uvirtio_device_reschedule(struct uvirtio_device *public_dev, unsigned index)
{
	struct device *dev = device_of(public_dev);

	if (index < dev->num_queues && running(dev) && dev->hooks.reschedule)
		dev->hooks.reschedule(dev->hooks.opaque, index);
}

void uvirtio_device_needs_reset(struct uvirtio_device *public_dev, const char *why)
{
	struct device *dev = device_of(public_dev);
	uint8_t status;

	pthread_mutex_lock(&dev->status_lock);
	status = dev->status;
	if (!(status & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		dev->needs_reset_reason = why;
		__atomic_store_n(&dev->status, status | VIRTIO_CONFIG_S_NEEDS_RESET,
				 __ATOMIC_RELEASE);
		__atomic_add_fetch(&dev->config_generation, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&dev->status_lock);
	if (status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	uvirtio_log(UVIRTIO_LOG_ERR, "%s device: DEVICE_NEEDS_RESET (%s)",
		    dev->ops->name ? dev->ops->name : "virtio", why ? why : "no reason given");
	if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && dev->hooks.notify_config)
		dev->hooks.notify_config(dev->hooks.opaque);
}

uint32_t uvirtio_device_notified_queue(const struct uvirtio_device *dev, uint32_t data)
{
	return has_feature(device_of_const(dev), VIRTIO_F_NOTIFICATION_DATA) ? data & 0xffff : data;
}

bool uvirtio_device_has_feature(const struct uvirtio_device *dev, unsigned bit)
{
	return has_feature(device_of_const(dev), bit);
}

bool uvirtio_device_suspended(const struct uvirtio_device *dev)
{
	return suspended(device_of_const(dev));
}

bool uvirtio_device_running(const struct uvirtio_device *dev)
{
	return running(device_of_const(dev));
}

uint64_t uvirtio_device_get_driver_features(const struct uvirtio_device *dev)
{
	return device_of_const(dev)->driver_features;
}

void uvirtio_device_get_stats(const struct uvirtio_device *public_dev,
			      struct uvirtio_device_stats *out)
{
	const struct device *dev = device_of_const(public_dev);

	*out = (struct uvirtio_device_stats){
		.resets = dev->resets,
		.needs_reset_reason = dev->needs_reset_reason,
	};
}

const struct uvirtio_device_ops *uvirtio_device_ops(const struct uvirtio_device *dev)
{
	return device_of_const(dev)->ops;
}

unsigned uvirtio_device_num_queues(const struct uvirtio_device *dev)
{
	return device_of_const(dev)->num_queues;
}

unsigned uvirtio_device_config_size(const struct uvirtio_device *dev)
{
	return device_of_const(dev)->config_size;
}

void *uvirtio_device_priv(const struct uvirtio_device *dev)
{
	return device_of_const(dev)->priv;
}

uint64_t uvirtio_device_accepted_features(const struct uvirtio_device *dev)
{
	return device_of_const(dev)->features;
}

const struct uvirtio_device_hooks *uvirtio_device_get_hooks(const struct uvirtio_device *dev)
{
	return &device_of_const(dev)->hooks;
}

bool uvirtio_device_queue_started(const struct uvirtio_device *public_dev, unsigned index)
{
	const struct device *dev = device_of_const(public_dev);

	return index < dev->num_queues && dev->queue_started[index];
}
