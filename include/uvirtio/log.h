/* SPDX-License-Identifier: MIT */
/*
 * One optional log sink for the whole library. Library code reports a
 * peer's faults through it (a ring or transport refusing what the other
 * side wrote, with the queue, the check that failed and the offending
 * value), and the few things a transport has to say about its connection.
 * Nothing is printed by the library itself: without a sink it is silent.
 * What a function returns is its error; a log line only says why
 * (docs/ARCHITECTURE.md, "Errors").
 */
#ifndef UVIRTIO_LOG_H
#define UVIRTIO_LOG_H

#include "uvirtio/api.h"

/*
 * Levels, most severe first; a sink set with level L receives the lines of
 * level L and every more severe one.
 *
 * UVIRTIO_LOG_ERR:   an object stopped working: a queue broke, a
 *                    connection was dropped because of what the peer sent.
 * UVIRTIO_LOG_WARN:  the peer's input was refused, the object goes on (a
 *                    request answered with failure, a register write ignored).
 * UVIRTIO_LOG_INFO:  the life of a connection (unsupported requests ignored,
 *                    front-ends that come and go).
 * UVIRTIO_LOG_DEBUG: detail for whoever debugs a peer.
 */
enum uvirtio_log_level {
	UVIRTIO_LOG_ERR = 0,
	UVIRTIO_LOG_WARN = 1,
	UVIRTIO_LOG_INFO = 2,
	UVIRTIO_LOG_DEBUG = 3,
};

/**
 * typedef uvirtio_log_fn - receives one log line.
 * @opaque: what was given to uvirtio_set_log().
 * @level:  the line's level, UVIRTIO_LOG_*.
 * @msg:    one line, without a newline and without a "uvirtio" prefix, such
 *          as "queue 0: buffer outside guest memory (descriptor 7 addr
 *          0x1000 len 4294967295)"; valid only during the call.
 *
 * Called on whichever thread hit the problem (a queue thread, a transport's
 * connection thread, the caller's), one call at a time: the library
 * serialises the calls under a lock of its own, so the function must not
 * call uvirtio_set_log() or any other uvirtio function (it could log, and
 * wait for itself), and should return quickly: a queue thread waits.
 */
typedef void (*uvirtio_log_fn)(void *opaque, int level, const char *msg);

/**
 * uvirtio_set_log() - install the process-wide log sink, or remove it.
 * @fn:     the sink; NULL makes the library silent (the default).
 * @level:  the least severe level passed to @fn (UVIRTIO_LOG_ERR for errors
 *          only, UVIRTIO_LOG_DEBUG for everything).
 * @opaque: handed to @fn with every line.
 *
 * Thread-safe: may be called while queue and transport threads run. When
 * it returns, no call of the previous sink is under way and none follows,
 * so the previous @opaque may be freed.
 */
UVIRTIO_API
void uvirtio_set_log(uvirtio_log_fn fn, int level, void *opaque);

#endif
