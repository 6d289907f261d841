/* SPDX-License-Identifier: MIT */
/*
 * The library's side of include/uvirtio/log.h: how src/ reports a line.
 * Not installed.
 */
#ifndef UVIRTIO_LOG_PRIV_H
#define UVIRTIO_LOG_PRIV_H

#include <stdarg.h>
#include <stdbool.h>

#include "uvirtio/log.h"

/* Whether a line of @level would reach a sink: lets a caller skip building
 * an expensive message. One relaxed load. */
bool uvirtio_log_enabled(int level);

/* Formats one line (no newline) and hands it to the sink, if one takes
 * @level. For failure branches, not for the per-descriptor path. */
void uvirtio_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void uvirtio_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
