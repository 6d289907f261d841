/* SPDX-License-Identifier: MIT */
/*
 * A transport that wraps another and reports every operation the driver
 * side makes through it: for logs, demos and tests of the lifecycle order.
 * It changes nothing that passes through.
 */
#ifndef UVIRTIO_TRACE_H
#define UVIRTIO_TRACE_H

#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/transport.h"

struct uvirtio_trace_event {
	const char *op;  /* "reset", "set_status", "get_features", ... */
	unsigned index;  /* queue index, or config offset; 0 otherwise */
	uint64_t value;  /* status or features written or read; queue size */
	int ret;         /* what the wrapped transport returned */
};

typedef void (*uvirtio_trace_fn)(void *opaque, const struct uvirtio_trace_event *ev);

struct uvirtio_trace_transport {
	struct uvirtio_transport t; /* hand &t to the driver */
	struct uvirtio_transport *inner;
	uvirtio_trace_fn fn;
	void *opaque;
	/* Operations not reported: bit per op, UVIRTIO_TRACE_QUIET_*. Notify,
	 * get_status and config reads are frequent; quiet them for readable logs. */
	unsigned quiet;
};

#define UVIRTIO_TRACE_QUIET_NOTIFY 1u
#define UVIRTIO_TRACE_QUIET_GET_STATUS 2u
#define UVIRTIO_TRACE_QUIET_CONFIG 4u

/**
 * uvirtio_trace_transport_init() - wrap @inner; @fn(@opaque, event) runs
 * after each operation, on the calling thread. @inner must outlive @tt.
 */
UVIRTIO_API
void uvirtio_trace_transport_init(struct uvirtio_trace_transport *tt, struct uvirtio_transport *inner,
				  uvirtio_trace_fn fn, void *opaque);

#endif
