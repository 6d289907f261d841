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

/* A transport that reports each operation of another. Caller-owned, opaque
 * (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_trace_transport {
	UVIRTIO_OPAQUE(128);
};

/* Operations not reported (uvirtio_trace_transport_set_quiet()): notify,
 * get_status and config reads are frequent; quiet them for readable logs. */
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

/**
 * uvirtio_trace_transport_handle() - the tracing transport, to hand to a
 * driver in place of the inner one. Owned by @tt.
 */
UVIRTIO_API
struct uvirtio_transport *uvirtio_trace_transport_handle(struct uvirtio_trace_transport *tt);

/**
 * uvirtio_trace_transport_set_quiet() - stop reporting the operations in
 * @quiet, a mask of UVIRTIO_TRACE_QUIET_* (0, the default, reports all).
 */
UVIRTIO_API
void uvirtio_trace_transport_set_quiet(struct uvirtio_trace_transport *tt, unsigned quiet);

#endif
