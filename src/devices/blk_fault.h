/* SPDX-License-Identifier: MIT */
/*
 * Faults the blk device injects on purpose, in test builds only (meson
 * -Dfault_injection=true; a release build refuses the option). Each one is
 * a bug a detector must catch (tests/negative): the guest's write/verify
 * test, `uvirtio check`, the conformance suite. One fault per process,
 * chosen by blk_fault_set() (`uvirtio blk --inject-fault=SPEC`) or, for a
 * device set up in-process, by the environment: UVIRTIO_BLK_FAULT=SPEC.
 *
 * SPEC is NAME[@N][:BYTES]; the fault strikes once, at the Nth data request
 * (read or write) the process completes, or the first one after it that it
 * can strike (default N = 20, so that negotiation and the first I/O
 * succeed), and only a request of at least BYTES data bytes (default 0; a
 * guest's file data, not its filesystem's metadata, say). A fault says so
 * when it strikes, in a log line "injected fault NAME ..." (log.h; the
 * uvirtio command and the conformance test print it on stderr), so a
 * negative control knows it was there:
 *
 *   flip-read-byte   one byte of a successful read's data flipped
 *   long-used-len    one used length longer than the chain's writable buffers
 *   drop-completion  one completion never pushed: the request is forgotten
 *   hang-queue       the queue stops taking requests (no error, no
 *                    DEVICE_NEEDS_RESET) until it is stopped or reset
 *   ignore-hostile   every malformed chain (N unused) stops its queue silently:
 *                    no used entry, no DEVICE_NEEDS_RESET, connection open
 */
#ifndef UVIRTIO_BLK_FAULT_H
#define UVIRTIO_BLK_FAULT_H

#include <stdint.h>

#include "blk_priv.h"
#include "uvirtio/devq.h"

#define BLK_FAULT_SPEC "NAME[@N][:BYTES]"
#define BLK_FAULT_NAMES "flip-read-byte, long-used-len, drop-completion, hang-queue, ignore-hostile"

/* Choose the fault from SPEC (see above). Call before any device starts.
 * Return: 0, or -EINVAL for a spec that names no fault. */
BLK_HIDDEN int blk_fault_set(const char *spec);

/* uvirtio_blk_dev_init(), once the device core is set up: take
 * UVIRTIO_BLK_FAULT from the environment unless blk_fault_set() chose, and
 * for ignore-hostile unhook the queues from DEVICE_NEEDS_RESET.
 * Return: 0, or -EINVAL (with one log line) for a bad UVIRTIO_BLK_FAULT. */
BLK_HIDDEN int blk_fault_dev_init(struct blk_dev *blk);

/* What a queue thread does with a request it is about to give back. */
enum blk_fault_action {
	BLK_FAULT_PUSH,  /* push it (*used may have been changed) */
	BLK_FAULT_DROP,  /* forget it: never pushed */
	BLK_FAULT_HANG,  /* push it, then take nothing more from this queue */
};

/* A queue thread completes @req (parsed as @p) with @used bytes written. */
BLK_HIDDEN enum blk_fault_action blk_fault_complete(const struct uvirtio_req *req,
						    const struct blk_parsed *p, uint32_t *used);

#endif
