// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/eventfd.h"
#include "uvirtio/shared_mem.h"
#include "uvirtio/loopback.h"

enum call_op {
	OP_GET_FEATURES,
	OP_SET_FEATURES,
	OP_GET_STATUS,
	OP_SET_STATUS,
	OP_RESET,
	OP_GET_CONFIG,
	OP_SET_CONFIG,
	OP_CONFIG_GENERATION,
	OP_QUEUE_MAX_SIZE,
	OP_QUEUE_ENABLE,
	OP_QUEUE_RESET,
	OP_RUN,
	OP_REPLACE,
	OP_STOP,
};

/* One driver-to-device call, carried to the device thread. */
struct call {
	enum call_op op;
	unsigned index;
	uint64_t value;
	void *buf;
	unsigned offset, len;
	const struct uvirtio_queue_layout *layout;
	int (*fn)(struct uvirtio_device *dev, void *arg);
	int ret;
	bool done;
};

struct uvirtio_loopback {
	struct uvirtio_transport t; /* first: the driver's handle */
	struct uvirtio_shared_mem sm;

	struct uvirtio_device *dev;
	pthread_t thread;
	bool started;

	int epfd;
	int ctrl_fd;
	int config_fd;
	unsigned nqueues;
	int *kick_fds;
	int *call_fds;
	/* Per queue, the last notification data (NOTIFICATION_DATA): the
	 * driver's thread stores it, then kicks; the device thread loads it. */
	uint32_t *notify_data;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct call *pending;
};

/* Device side. */

static void hook_notify_used(void *opaque, unsigned index)
{
	struct uvirtio_loopback *lb = opaque;

	if (index < lb->nqueues)
		eventfd_signal(lb->call_fds[index]);
}

static void hook_reschedule(void *opaque, unsigned index)
{
	struct uvirtio_loopback *lb = opaque;

	/* The device thread's loop sees a kick, after any call waiting. */
	if (index < lb->nqueues)
		eventfd_signal(lb->kick_fds[index]);
}

static void hook_notify_config(void *opaque)
{
	struct uvirtio_loopback *lb = opaque;

	eventfd_signal(lb->config_fd);
}

static void set_hooks(struct uvirtio_loopback *lb, struct uvirtio_device *dev);

/* On the device thread: from now on the kicks and calls go to @next. */
static int replace_device(struct uvirtio_loopback *lb, struct uvirtio_device *next)
{
	struct uvirtio_device *old = lb->dev;

	if (uvirtio_device_num_queues(next) != uvirtio_device_num_queues(old) ||
	    uvirtio_device_ops(next)->takes_kick_fds != uvirtio_device_ops(old)->takes_kick_fds)
		return -EINVAL;
	for (unsigned i = 0; i < lb->nqueues; i++) {
		if (uvirtio_device_ops(old)->takes_kick_fds) {
			uvirtio_device_set_kick_fd(old, i, -1);
			uvirtio_device_set_kick_fd(next, i, lb->kick_fds[i]);
		}
	}
	uvirtio_device_set_hooks(old, &(struct uvirtio_device_hooks){ 0 });
	lb->dev = next;
	set_hooks(lb, next);
	return 0;
}

static int execute(struct uvirtio_loopback *lb, struct call *c)
{
	struct uvirtio_device *dev = lb->dev;
	unsigned max;
	int ret;

	switch (c->op) {
	case OP_GET_FEATURES:
		c->value = uvirtio_device_get_features(dev);
		return 0;
	case OP_SET_FEATURES:
		return uvirtio_device_set_driver_features(dev, c->value);
	case OP_GET_STATUS:
		c->value = uvirtio_device_get_status(dev);
		return 0;
	case OP_SET_STATUS:
		if (c->value)
			return uvirtio_device_set_status(dev, (uint8_t)c->value);
		/* writing 0 is a reset */
		__attribute__((fallthrough));
	case OP_RESET:
		uvirtio_device_reset(dev);
		/* Notifications sent before the reset mean nothing after it. */
		for (unsigned i = 0; i < lb->nqueues; i++)
			eventfd_drain(lb->call_fds[i]);
		eventfd_drain(lb->config_fd);
		return 0;
	case OP_GET_CONFIG:
		return uvirtio_device_config_read(dev, c->offset, c->buf, c->len);
	case OP_SET_CONFIG:
		return uvirtio_device_config_write(dev, c->offset, c->buf, c->len);
	case OP_CONFIG_GENERATION:
		c->value = uvirtio_device_config_generation(dev);
		return 0;
	case OP_QUEUE_MAX_SIZE:
		max = uvirtio_device_queue_max_size(dev, c->index);
		c->value = max;
		return 0;
	case OP_QUEUE_ENABLE:
		return uvirtio_device_queue_enable(dev, c->index, c->layout);
	case OP_QUEUE_RESET:
		ret = uvirtio_device_queue_reset(dev, c->index);
		/* A notification sent before the reset means nothing after it. */
		if (!ret && c->index < lb->nqueues)
			eventfd_drain(lb->call_fds[c->index]);
		return ret;
	case OP_RUN:
		return c->fn(dev, c->buf);
	case OP_REPLACE:
		return replace_device(lb, c->buf);
	case OP_STOP:
		return 0;
	}
	return -EINVAL;
}

/* Returns false when the call was OP_STOP. */
static bool serve_call(struct uvirtio_loopback *lb)
{
	struct call *c;
	bool go_on;

	eventfd_drain(lb->ctrl_fd);
	pthread_mutex_lock(&lb->lock);
	c = lb->pending;
	pthread_mutex_unlock(&lb->lock);
	if (!c)
		return true;
	c->ret = execute(lb, c);
	go_on = c->op != OP_STOP;
	pthread_mutex_lock(&lb->lock);
	c->done = true;
	lb->pending = NULL;
	pthread_cond_broadcast(&lb->cond);
	pthread_mutex_unlock(&lb->lock);
	return go_on;
}

static void *device_thread(void *arg)
{
	struct uvirtio_loopback *lb = arg;
	struct epoll_event evs[16];

	for (;;) {
		int n = epoll_wait(lb->epfd, evs, 16, -1);

		for (int i = 0; i < n; i++) {
			unsigned id = evs[i].data.u32;

			if (id == UINT32_MAX) {
				if (!serve_call(lb)) {
					uvirtio_device_reset(lb->dev);
					return NULL;
				}
				continue;
			}
			eventfd_drain(lb->kick_fds[id]);
			if (uvirtio_device_has_feature(lb->dev, VIRTIO_F_NOTIFICATION_DATA))
				uvirtio_device_queue_notify_data(
					lb->dev, __atomic_load_n(&lb->notify_data[id], __ATOMIC_ACQUIRE));
			else
				uvirtio_device_queue_notify(lb->dev, id);
		}
	}
}

/* Driver side: every operation but notify is a call to the device thread. */

static struct uvirtio_loopback *to_lb(struct uvirtio_transport *t)
{
	return (struct uvirtio_loopback *)((char *)t - offsetof(struct uvirtio_loopback, t));
}

static int call(struct uvirtio_transport *t, struct call *c)
{
	struct uvirtio_loopback *lb = to_lb(t);

	if (!lb->started)
		return -ENOTCONN;
	pthread_mutex_lock(&lb->lock);
	while (lb->pending)
		pthread_cond_wait(&lb->cond, &lb->lock);
	c->done = false;
	lb->pending = c;
	pthread_mutex_unlock(&lb->lock);

	eventfd_signal(lb->ctrl_fd);

	pthread_mutex_lock(&lb->lock);
	while (!c->done)
		pthread_cond_wait(&lb->cond, &lb->lock);
	pthread_mutex_unlock(&lb->lock);
	return c->ret;
}

static int lb_get_features(struct uvirtio_transport *t, uint64_t *features)
{
	struct call c = { .op = OP_GET_FEATURES };
	int ret = call(t, &c);

	*features = c.value;
	return ret;
}

static int lb_set_features(struct uvirtio_transport *t, uint64_t features)
{
	struct call c = { .op = OP_SET_FEATURES, .value = features };

	return call(t, &c);
}

static int lb_get_status(struct uvirtio_transport *t, uint8_t *status)
{
	struct call c = { .op = OP_GET_STATUS };
	int ret = call(t, &c);

	*status = (uint8_t)c.value;
	return ret;
}

static int lb_set_status(struct uvirtio_transport *t, uint8_t status)
{
	struct call c = { .op = OP_SET_STATUS, .value = status };

	return call(t, &c);
}

static int lb_reset(struct uvirtio_transport *t)
{
	struct call c = { .op = OP_RESET };

	/* The call returns once the device thread finished the reset, which is
	 * the "write 0, wait to read 0" of the spec. */
	return call(t, &c);
}

static int lb_get_config(struct uvirtio_transport *t, unsigned offset, void *buf, unsigned len)
{
	struct call c = { .op = OP_GET_CONFIG, .offset = offset, .buf = buf, .len = len };

	return call(t, &c);
}

static int lb_set_config(struct uvirtio_transport *t, unsigned offset, const void *buf,
			 unsigned len)
{
	struct call c = { .op = OP_SET_CONFIG, .offset = offset, .buf = (void *)buf, .len = len };

	return call(t, &c);
}

static int lb_config_generation(struct uvirtio_transport *t, uint32_t *generation)
{
	struct call c = { .op = OP_CONFIG_GENERATION };
	int ret = call(t, &c);

	*generation = (uint32_t)c.value;
	return ret;
}

static int lb_queue_max_size(struct uvirtio_transport *t, unsigned index, unsigned *max)
{
	struct call c = { .op = OP_QUEUE_MAX_SIZE, .index = index };
	int ret = call(t, &c);

	*max = (unsigned)c.value;
	return ret;
}

static int lb_queue_enable(struct uvirtio_transport *t, unsigned index,
			   const struct uvirtio_queue_layout *layout)
{
	struct call c = { .op = OP_QUEUE_ENABLE, .index = index, .layout = layout };

	return call(t, &c);
}

static int lb_queue_reset(struct uvirtio_transport *t, unsigned index)
{
	struct call c = { .op = OP_QUEUE_RESET, .index = index };

	/* Returns once the device thread finished the reset: the "write 1 to
	 * queue_reset, wait to read 0" of the spec. */
	return call(t, &c);
}

static int lb_notify(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_loopback *lb = to_lb(t);

	if (index >= lb->nqueues)
		return -EINVAL;
	eventfd_signal(lb->kick_fds[index]);
	return 0;
}

static int lb_notify_data(struct uvirtio_transport *t, uint32_t data)
{
	struct uvirtio_loopback *lb = to_lb(t);
	unsigned index = data & 0xffff;

	if (index >= lb->nqueues)
		return -EINVAL;
	/* Notifications that meet in one eventfd count as one: the latest data
	 * names the furthest position, which covers them all. */
	__atomic_store_n(&lb->notify_data[index], data, __ATOMIC_RELEASE);
	eventfd_signal(lb->kick_fds[index]);
	return 0;
}

static int lb_event_fd(struct uvirtio_transport *t, unsigned index)
{
	struct uvirtio_loopback *lb = to_lb(t);

	if (index == UVIRTIO_CONFIG_EVENT)
		return lb->config_fd;
	return index < lb->nqueues ? lb->call_fds[index] : -EINVAL;
}

static struct uvirtio_dma *lb_dma(struct uvirtio_transport *t)
{
	return uvirtio_shared_mem_driver_view(&to_lb(t)->sm);
}

static const struct uvirtio_transport_ops loopback_ops = {
	.get_features = lb_get_features,
	.set_features = lb_set_features,
	.get_status = lb_get_status,
	.set_status = lb_set_status,
	.reset = lb_reset,
	.get_config = lb_get_config,
	.set_config = lb_set_config,
	.config_generation = lb_config_generation,
	.queue_max_size = lb_queue_max_size,
	.queue_enable = lb_queue_enable,
	.queue_reset = lb_queue_reset,
	.notify = lb_notify,
	.notify_data = lb_notify_data,
	.event_fd = lb_event_fd,
	.dma = lb_dma,
};

/* Set-up. */

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

static void close_queue_fds(struct uvirtio_loopback *lb)
{
	for (unsigned i = 0; i < lb->nqueues; i++) {
		close_fd(lb->kick_fds[i]);
		close_fd(lb->call_fds[i]);
	}
	free(lb->kick_fds);
	free(lb->call_fds);
	free(lb->notify_data);
	lb->kick_fds = lb->call_fds = NULL;
	lb->notify_data = NULL;
	lb->nqueues = 0;
}

static int watch(struct uvirtio_loopback *lb, int fd, uint32_t id)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = id };

	return epoll_ctl(lb->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}


int uvirtio_loopback_create(struct uvirtio_loopback **out, const struct uvirtio_loopback_config *cfg)
{
	struct uvirtio_loopback *lb = calloc(1, sizeof(*lb));
	int ret;

	if (!lb)
		return -ENOMEM;
	lb->epfd = lb->ctrl_fd = lb->config_fd = -1;
	pthread_mutex_init(&lb->lock, NULL);
	pthread_cond_init(&lb->cond, NULL);
	lb->t = (struct uvirtio_transport){ .ops = &loopback_ops, .name = "loopback" };
	ret = uvirtio_shared_mem_create(&lb->sm, "uvirtio-loopback", cfg ? cfg->mem_size : 0,
				cfg ? cfg->guest_addr : 0);
	if (ret)
		goto fail;

	lb->epfd = epoll_create1(EPOLL_CLOEXEC);
	lb->ctrl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	lb->config_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (lb->epfd < 0 || lb->ctrl_fd < 0 || lb->config_fd < 0)
		goto fail_errno;
	ret = watch(lb, lb->ctrl_fd, UINT32_MAX);
	if (ret)
		goto fail;
	*out = lb;
	return 0;

fail_errno:
	ret = -errno;
fail:
	uvirtio_loopback_destroy(lb);
	return ret;
}

struct uvirtio_mem *uvirtio_loopback_mem(struct uvirtio_loopback *lb)
{
	return uvirtio_shared_mem_device_view(&lb->sm);
}

struct uvirtio_transport *uvirtio_loopback_transport(struct uvirtio_loopback *lb)
{
	return &lb->t;
}

static void set_hooks(struct uvirtio_loopback *lb, struct uvirtio_device *dev)
{
	struct uvirtio_device_hooks hooks = {
		.notify_used = hook_notify_used, .notify_config = hook_notify_config,
		.reschedule = hook_reschedule, .opaque = lb,
	};

	uvirtio_device_set_hooks(dev, &hooks);
}

int uvirtio_loopback_start(struct uvirtio_loopback *lb, struct uvirtio_device *dev)
{
	unsigned n = uvirtio_device_num_queues(dev);
	int ret = 0;

	if (lb->started)
		return -EBUSY;
	lb->kick_fds = malloc(n * sizeof(int));
	lb->call_fds = malloc(n * sizeof(int));
	lb->notify_data = calloc(n, sizeof(*lb->notify_data));
	if (!lb->kick_fds || !lb->call_fds || !lb->notify_data) {
		ret = -ENOMEM;
		goto fail;
	}
	lb->nqueues = n;
	for (unsigned i = 0; i < n; i++)
		lb->kick_fds[i] = lb->call_fds[i] = -1;
	for (unsigned i = 0; i < n && !ret; i++) {
		lb->kick_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		lb->call_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (lb->kick_fds[i] < 0 || lb->call_fds[i] < 0)
			ret = -errno;
		else if (uvirtio_device_ops(dev)->takes_kick_fds)
			ret = uvirtio_device_set_kick_fd(dev, i, lb->kick_fds[i]);
		else
			ret = watch(lb, lb->kick_fds[i], i);
	}
	if (ret)
		goto fail;

	lb->dev = dev;
	set_hooks(lb, dev);
	ret = -pthread_create(&lb->thread, NULL, device_thread, lb);
	if (ret)
		goto fail;
	lb->started = true;
	return 0;

fail:
	/* Closing an fd also takes it out of the epoll set. */
	close_queue_fds(lb);
	return ret;
}

int uvirtio_loopback_run_on_device(struct uvirtio_loopback *lb,
				   int (*fn)(struct uvirtio_device *dev, void *arg), void *arg)
{
	struct call c = { .op = OP_RUN, .fn = fn, .buf = arg };

	return call(&lb->t, &c);
}

int uvirtio_loopback_replace_device(struct uvirtio_loopback *lb, struct uvirtio_device *next)
{
	struct call c = { .op = OP_REPLACE, .buf = next };

	return call(&lb->t, &c);
}

void uvirtio_loopback_destroy(struct uvirtio_loopback *lb)
{
	if (!lb)
		return;
	if (lb->started) {
		struct call c = { .op = OP_STOP };

		call(&lb->t, &c);
		pthread_join(lb->thread, NULL);
		lb->started = false;
	}
	close_queue_fds(lb);
	close_fd(lb->epfd);
	close_fd(lb->ctrl_fd);
	close_fd(lb->config_fd);
	uvirtio_shared_mem_destroy(&lb->sm);
	pthread_mutex_destroy(&lb->lock);
	pthread_cond_destroy(&lb->cond);
	free(lb);
}
