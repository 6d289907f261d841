// SPDX-License-Identifier: MIT
/*
 * The one log sink (include/uvirtio/log.h). The level is read without the
 * lock, so a library without a sink pays one load per report; the sink is
 * called with the lock held, which serialises its calls and lets
 * uvirtio_set_log() promise that the old sink is no longer running.
 */
#include <pthread.h>
#include <stdio.h>

#include "log_priv.h"

/* Below every level: nothing passes. */
#define LOG_OFF (-1)

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static uvirtio_log_fn sink_fn;
static void *sink_opaque;
static int sink_level = LOG_OFF;

void uvirtio_set_log(uvirtio_log_fn fn, int level, void *opaque)
{
	pthread_mutex_lock(&sink_lock);
	sink_fn = fn;
	sink_opaque = opaque;
	__atomic_store_n(&sink_level, fn ? level : LOG_OFF, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&sink_lock);
}

bool uvirtio_log_enabled(int level)
{
	return level <= __atomic_load_n(&sink_level, __ATOMIC_RELAXED);
}

void uvirtio_vlog(int level, const char *fmt, va_list ap)
{
	char line[320];

	if (!uvirtio_log_enabled(level))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	pthread_mutex_lock(&sink_lock);
	/* Checked again under the lock: the sink may have gone meanwhile. */
	if (sink_fn && level <= sink_level)
		sink_fn(sink_opaque, level, line);
	pthread_mutex_unlock(&sink_lock);
}

void uvirtio_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	uvirtio_vlog(level, fmt, ap);
	va_end(ap);
}
