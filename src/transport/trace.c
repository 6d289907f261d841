// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stddef.h>

#include "uvirtio/trace.h"
#include "uvirtio/virtio_spec.h"

struct trace_transport {
	struct uvirtio_transport t; /* what the driver is given */
	struct uvirtio_transport *inner;
	uvirtio_trace_fn fn;
	void *opaque;
	unsigned quiet; /* UVIRTIO_TRACE_QUIET_* */
};
UVIRTIO_OPAQUE_FITS(struct trace_transport, struct uvirtio_trace_transport);

static struct trace_transport *trace_transport_of(struct uvirtio_trace_transport *tt)
{
	return (struct trace_transport *)tt;
}

static struct trace_transport *to_tt(struct uvirtio_transport *t)
{
	return (struct trace_transport *)((char *)t - offsetof(struct trace_transport, t));
}

static int report(struct uvirtio_transport *t, unsigned quiet_bit, const char *op, unsigned index,
		  uint64_t value, int ret)
{
	struct trace_transport *tt = to_tt(t);
	struct uvirtio_trace_event ev = { .op = op, .index = index, .value = value, .ret = ret };

	if (!(tt->quiet & quiet_bit))
		tt->fn(tt->opaque, &ev);
	return ret;
}

#define INNER(t) (to_tt(t)->inner)
#define CALL(t, op, ...) INNER(t)->ops->op(INNER(t), ##__VA_ARGS__)

static int tr_get_features(struct uvirtio_transport *t, uint64_t *f)
{
	int ret = CALL(t, get_features, f);

	/* The driver core asks for notification data only from a transport
	 * that carries it; the traced one must not claim more than its inner. */
	if (!ret && !INNER(t)->ops->notify_data)
		*f &= ~UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA);
	return report(t, 0, "get_features", 0, ret ? 0 : *f, ret);
}

static int tr_set_features(struct uvirtio_transport *t, uint64_t f)
{
	return report(t, 0, "set_features", 0, f, CALL(t, set_features, f));
}

static int tr_get_status(struct uvirtio_transport *t, uint8_t *s)
{
	int ret = CALL(t, get_status, s);

	return report(t, UVIRTIO_TRACE_QUIET_GET_STATUS, "get_status", 0, ret ? 0 : *s, ret);
}

static int tr_set_status(struct uvirtio_transport *t, uint8_t s)
{
	return report(t, 0, "set_status", 0, s, CALL(t, set_status, s));
}

static int tr_reset(struct uvirtio_transport *t)
{
	return report(t, 0, "reset", 0, 0, CALL(t, reset));
}

static int tr_get_config(struct uvirtio_transport *t, unsigned off, void *buf, unsigned len)
{
	return report(t, UVIRTIO_TRACE_QUIET_CONFIG, "get_config", off, len,
		      CALL(t, get_config, off, buf, len));
}

static int tr_set_config(struct uvirtio_transport *t, unsigned off, const void *buf, unsigned len)
{
	return report(t, 0, "set_config", off, len, CALL(t, set_config, off, buf, len));
}

static int tr_config_generation(struct uvirtio_transport *t, uint32_t *gen)
{
	int ret = CALL(t, config_generation, gen);

	return report(t, UVIRTIO_TRACE_QUIET_CONFIG, "config_generation", 0, ret ? 0 : *gen, ret);
}

static int tr_queue_max_size(struct uvirtio_transport *t, unsigned index, unsigned *max)
{
	int ret = CALL(t, queue_max_size, index, max);

	return report(t, 0, "queue_max_size", index, ret ? 0 : *max, ret);
}

static int tr_queue_enable(struct uvirtio_transport *t, unsigned index,
			   const struct uvirtio_queue_layout *l)
{
	return report(t, 0, "queue_enable", index, l->num, CALL(t, queue_enable, index, l));
}

static int tr_queue_reset(struct uvirtio_transport *t, unsigned index)
{
	if (!INNER(t)->ops->queue_reset)
		return report(t, 0, "queue_reset", index, 0, -EOPNOTSUPP);
	return report(t, 0, "queue_reset", index, 0, CALL(t, queue_reset, index));
}

static int tr_notify(struct uvirtio_transport *t, unsigned index)
{
	return report(t, UVIRTIO_TRACE_QUIET_NOTIFY, "notify", index, 0, CALL(t, notify, index));
}

static int tr_notify_data(struct uvirtio_transport *t, uint32_t data)
{
	if (!INNER(t)->ops->notify_data)
		return report(t, UVIRTIO_TRACE_QUIET_NOTIFY, "notify_data", data & 0xffff, data >> 16,
			      -EOPNOTSUPP);
	return report(t, UVIRTIO_TRACE_QUIET_NOTIFY, "notify_data", data & 0xffff, data >> 16,
		      CALL(t, notify_data, data));
}

static int tr_event_fd(struct uvirtio_transport *t, unsigned index)
{
	return CALL(t, event_fd, index);
}

static struct uvirtio_dma *tr_dma(struct uvirtio_transport *t)
{
	return CALL(t, dma);
}

static const struct uvirtio_transport_ops trace_ops = {
	.get_features = tr_get_features,
	.set_features = tr_set_features,
	.get_status = tr_get_status,
	.set_status = tr_set_status,
	.reset = tr_reset,
	.get_config = tr_get_config,
	.set_config = tr_set_config,
	.config_generation = tr_config_generation,
	.queue_max_size = tr_queue_max_size,
	.queue_enable = tr_queue_enable,
	.queue_reset = tr_queue_reset,
	.notify = tr_notify,
	.notify_data = tr_notify_data,
	.event_fd = tr_event_fd,
	.dma = tr_dma,
};

void uvirtio_trace_transport_init(struct uvirtio_trace_transport *tt, struct uvirtio_transport *inner,
				  uvirtio_trace_fn fn, void *opaque)
{
	*trace_transport_of(tt) = (struct trace_transport){
		.t = { .ops = &trace_ops, .name = inner->name },
		.inner = inner,
		.fn = fn,
		.opaque = opaque,
	};
}

struct uvirtio_transport *uvirtio_trace_transport_handle(struct uvirtio_trace_transport *tt)
{
	return &trace_transport_of(tt)->t;
}

void uvirtio_trace_transport_set_quiet(struct uvirtio_trace_transport *tt, unsigned quiet)
{
	trace_transport_of(tt)->quiet = quiet;
}
