/* SPDX-License-Identifier: MIT */
/*
 * What devq.c (the public device-side API, IN_ORDER and the packed handles)
 * shares with the two layouts, split_dev.c and packed_dev.c. Private to
 * src/ring.
 */
#ifndef UVIRTIO_DEVQ_PRIV_H
#define UVIRTIO_DEVQ_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "uvirtio/devq.h"

enum { SLOT_FREE, SLOT_INFLIGHT, SLOT_DONE };

/* One request, by handle (packed) or head index (split, IN_ORDER). */
struct uvirtio_devq_slot {
	uint32_t in_len; /* bytes writable: a full-length completion */
	uint32_t len;    /* the pushed len, while held back (IN_ORDER) */
	uint16_t buf_id; /* packed: the driver's buffer id; split: the head */
	uint16_t ndesc;  /* packed: ring descriptors the request took */
	uint8_t state;
};

/* What a layout's peek found, besides the request itself. */
struct devq_popped {
	uint16_t buf_id; /* packed: the driver's buffer id; split: the head */
	uint16_t ndesc;  /* packed: ring descriptors of the chain; split: 1 */
};

/* Used entries being written: one publication, see devq_*_used_end(). */
struct used_writer {
	uint16_t idx;        /* where the next entry goes (packed: encoded) */
	uint32_t advanced;   /* split: buffers; packed: descriptors */
	unsigned n;          /* entries written */
	uint16_t first_pos;  /* packed: the first entry's position... */
	uint16_t first_flags; /* ...and its flags, stored last */
};

/* Marks @q broken for the rule @why names (kept as its reason, logged with
 * the queue's index) and calls its broken callback, once; always -EIO.
 * devq_broken_at() adds the offending values to the log line, formatted
 * from @fmt only when a sink takes it: call it on failure branches only. */
int devq_broken(struct uvirtio_devq *q, const char *why);
int devq_broken_at(struct uvirtio_devq *q, const char *why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int split_dev_setup(struct uvirtio_devq *q, const struct uvirtio_mem *mem, unsigned num,
		     uint64_t desc, uint64_t avail, uint64_t used);
bool split_dev_has_avail(const struct uvirtio_devq *q);
int split_dev_peek(struct uvirtio_devq *q, struct uvirtio_req *req, struct devq_popped *p);
void split_dev_consume(struct uvirtio_devq *q);
void split_dev_used_put(struct uvirtio_devq *q, struct used_writer *w, uint16_t id, uint32_t len,
			 uint16_t count);
void split_dev_used_end(struct uvirtio_devq *q, struct used_writer *w);
bool split_dev_needs_notify(struct uvirtio_devq *q);
void split_dev_disable_notify(struct uvirtio_devq *q);
bool split_dev_enable_notify(struct uvirtio_devq *q);

int packed_dev_setup(struct uvirtio_devq *q, const struct uvirtio_mem *mem, unsigned num,
		      uint64_t desc, uint64_t driver, uint64_t device);
bool packed_dev_has_avail(const struct uvirtio_devq *q);
int packed_dev_peek(struct uvirtio_devq *q, struct uvirtio_req *req, struct devq_popped *p);
void packed_dev_consume(struct uvirtio_devq *q, uint16_t ndesc);
void packed_dev_used_put(struct uvirtio_devq *q, struct used_writer *w, uint16_t id, uint32_t len,
			  uint16_t ndesc);
void packed_dev_used_end(struct uvirtio_devq *q, struct used_writer *w);
bool packed_dev_needs_notify(struct uvirtio_devq *q);
void packed_dev_disable_notify(struct uvirtio_devq *q);
bool packed_dev_enable_notify(struct uvirtio_devq *q);

#endif
