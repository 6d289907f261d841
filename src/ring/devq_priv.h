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

#include <linux/virtio_ring.h>

#include "uvirtio/devq.h"

enum { SLOT_FREE, SLOT_INFLIGHT, SLOT_DONE };

/* The queue behind a struct uvirtio_devq (devq.h). */
struct devq {
	/* Set by uvirtio_devq_setup(); read-only afterwards. */
	const struct uvirtio_mem *mem;
	union {
		struct { /* split ring */
			struct vring_desc *desc;
			struct vring_avail *avail;
			struct vring_used *used;
		};
		struct { /* packed ring */
			struct vring_packed_desc *pdesc;
			struct vring_packed_desc_event *driver_event; /* driver area */
			struct vring_packed_desc_event *device_event; /* device area */
		};
	};
	uint16_t num;
	bool event_idx;
	bool indirect;
	bool ready;
	bool packed;            /* VIRTIO_F_RING_PACKED */
	bool in_order;          /* VIRTIO_F_IN_ORDER */
	bool notification_data; /* VIRTIO_F_NOTIFICATION_DATA */

	/* Device-private state, never read back from shared memory. Split: the
	 * free-running 16-bit indices. Packed: index | wrap counter << 15. */
	uint16_t last_avail;     /* next avail slot (packed: descriptor) to take */
	uint16_t avail_seen;     /* split: avail->idx as last read */
	uint16_t used_idx;       /* next used slot, also the published used->idx */
	uint16_t signalled_used; /* used_idx when the driver was last notified */
	bool signalled_used_valid;
	bool notify_enabled;
	uint32_t inflight;       /* popped and not yet pushed */
	uint32_t inflight_desc;  /* packed: ring descriptors those requests hold */
	uint32_t used_since_signal; /* packed: descriptors used since needs_notify */
	uint16_t notified_avail; /* NOTIFICATION_DATA: the last data's bits 16-31 */
	bool notified;           /* whether notified_avail holds anything */

	/* Packed or IN_ORDER only (NULL otherwise): allocated by setup, freed
	 * by reset. slots[num]; free_handles: a stack of free packed handles;
	 * order: the in-order ring of handles popped, oldest first. */
	struct uvirtio_devq_slot *slots;
	uint16_t *free_handles;
	uint16_t *order;
	uint32_t nfree;
	uint32_t order_head;
	uint32_t order_count;

	bool broken;
	const char *broken_reason;
	unsigned index; /* the queue's number in log lines; kept by reset */
	/* Dirty logging (devq.h), kept by reset; both atomic: the owner may
	 * set them while the queue runs. */
	struct uvirtio_dirty_log *log;
	uint64_t log_used;  /* split: the used ring's guest address to log */
	uint64_t desc_gpa;  /* packed: the descriptor ring's guest address */
	uvirtio_devq_broken_fn on_broken;
	void *on_broken_opaque;
	/* Inflight tracking (devq_inflight.c): the area, kept by reset; the
	 * state over it, from resume until reset (NULL: not tracking). */
	void *ifl_area;
	size_t ifl_size;
	struct devq_ifl *ifl;
};
UVIRTIO_OPAQUE_FITS(struct devq, struct uvirtio_devq);

static inline struct devq *devq_of(struct uvirtio_devq *q)
{
	return (struct devq *)q;
}

static inline const struct devq *devq_of_const(const struct uvirtio_devq *q)
{
	return (const struct devq *)q;
}

/* The public handle of @q, for the broken callback. */
static inline struct uvirtio_devq *devq_public(struct devq *q)
{
	return (struct uvirtio_devq *)q;
}


/*
 * Packed only: the writable ranges of a request, recorded when it is popped
 * (always, not only while logging: QEMU turns logging on under requests in
 * flight), so that push can mark them without reading the descriptors
 * again, which the device may have overwritten with used ones by then.
 * Past DEVQ_LOG_RANGES the last range grows to cover the rest: more pages
 * marked than written, never fewer.
 */
#define DEVQ_LOG_RANGES 3
struct devq_log_ranges {
	uint64_t gpa[DEVQ_LOG_RANGES];
	uint64_t len[DEVQ_LOG_RANGES];
	uint8_t n;
	bool covering; /* the last range covers several: marked whole */
};

/* One request, by handle (packed) or head index (split, IN_ORDER). */
struct uvirtio_devq_slot {
	struct devq_log_ranges w; /* packed */
	uint32_t in_len; /* bytes writable: a full-length completion */
	uint32_t len;    /* the pushed len, while held back (IN_ORDER) */
	uint16_t buf_id; /* packed: the driver's buffer id; split: the head */
	uint16_t ndesc;  /* packed: ring descriptors the request took */
	uint16_t pos;    /* packed: where its first descriptor is (encoded) */
	uint16_t ifl_entry; /* packed, tracking: its chain's first entry in the area */
	uint8_t state;
	bool replayed;   /* packed: popped again from the inflight area */
};

/* What a layout's peek found, besides the request itself. */
struct devq_popped {
	uint16_t buf_id; /* packed: the driver's buffer id; split: the head */
	uint16_t ndesc;  /* packed: ring descriptors of the chain; split: 1 */
	struct devq_log_ranges w; /* packed: the writable ranges */
};

/* Used entries being written: one publication, see devq_*_used_end(). */
struct used_writer {
	uint16_t idx;        /* where the next entry goes (packed: encoded) */
	uint32_t advanced;   /* split: buffers; packed: descriptors */
	unsigned n;          /* entries written */
	uint16_t first_pos;  /* packed: the first entry's position... */
	uint16_t first_flags; /* ...and its flags, stored last */
	/* Logging: the area to mark the entries in, or NULL. */
	const struct uvirtio_dirty_log_area *log;
};

/*
 * Inflight tracking (devq_inflight.c), called by devq.c only when q->ifl is
 * set. Pop: ifl_replay_pending() first, then ifl_pop_replay(); a new
 * request is marked by ifl_popped() before it is consumed; unpop by
 * ifl_unpopped(). Push: ifl_completing() before the first used write,
 * ifl_completed() after the publication.
 */
struct devq_ifl;
bool ifl_replay_pending(const struct devq *q);
int ifl_pop_replay(struct devq *q, struct uvirtio_req *req);
/* Packed: the ring descriptors of the chain peek just read, in order. */
struct pdesc_copy;
struct pdesc_copy *ifl_chain(struct devq *q);
int ifl_popped(struct devq *q, uint16_t handle, uint16_t head, uint16_t ndesc);
/* Return: true when @id was popped again from the area (the unpop is done). */
bool ifl_unpopped(struct devq *q, uint16_t id);
void ifl_completing(struct devq *q, const struct uvirtio_used *elems, unsigned n);
void ifl_completed(struct devq *q, const struct uvirtio_used *elems, unsigned n);
void ifl_free(struct devq *q);

/* Where a test's crash hook (ring_test.c) is called, in tracking only. */
enum devq_crash_point {
	DEVQ_CRASH_POP,        /* a request peeked, not marked yet */
	DEVQ_CRASH_MARKED,     /* marked, not consumed yet */
	DEVQ_CRASH_COMPLETING, /* a batch marked completing, no used entry written */
	DEVQ_CRASH_PUBLISHED,  /* the batch's used entries published, marks not cleared */
	DEVQ_CRASH_CLEARED,    /* marks cleared, the area's used index not moved */
	DEVQ_CRASH_POINTS
};
extern void (*devq_crash_hook)(const struct devq *q, enum devq_crash_point at);

/* Split: walk the chain at @head into req (split_dev.c). Packed: peek the
 * chain at @at of @ring (q->pdesc, or a replayed chain laid out as a ring
 * from 0 with wrap counter 1). */
int split_dev_walk(struct devq *q, uint16_t head, struct uvirtio_req *req);
int packed_dev_peek_in(struct devq *q, const struct vring_packed_desc *ring, uint16_t at,
		       struct uvirtio_req *req, struct devq_popped *p);

/* Marks @q broken for the rule @why names (kept as its reason, logged with
 * the queue's index) and calls its broken callback, once; always -EIO.
 * devq_broken_at() adds the offending values to the log line, formatted
 * from @fmt only when a sink takes it: call it on failure branches only. */
int devq_broken(struct devq *q, const char *why);
int devq_broken_at(struct devq *q, const char *why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Logging: mark the first @len bytes of the writable part of the split
 * chain at @head (split_dev.c), of recorded ranges @w (devq.c). */
void split_dev_log_chain(struct devq *q, const struct uvirtio_dirty_log_area *a, uint16_t head,
			 uint32_t len);
void devq_log_ranges_mark(const struct uvirtio_dirty_log_area *a, const struct devq_log_ranges *w,
			  uint32_t len);

int split_dev_setup(struct devq *q, const struct uvirtio_mem *mem, unsigned num,
		    uint64_t desc, uint64_t avail, uint64_t used);
bool split_dev_has_avail(const struct devq *q);
int split_dev_peek(struct devq *q, struct uvirtio_req *req, struct devq_popped *p);
void split_dev_consume(struct devq *q);
void split_dev_used_put(struct devq *q, struct used_writer *w, uint16_t id, uint32_t len,
			uint16_t count);
void split_dev_used_end(struct devq *q, struct used_writer *w);
bool split_dev_needs_notify(struct devq *q);
void split_dev_disable_notify(struct devq *q);
bool split_dev_enable_notify(struct devq *q);

int packed_dev_setup(struct devq *q, const struct uvirtio_mem *mem, unsigned num,
		     uint64_t desc, uint64_t driver, uint64_t device);
bool packed_dev_has_avail(const struct devq *q);
int packed_dev_peek(struct devq *q, struct uvirtio_req *req, struct devq_popped *p);
void packed_dev_consume(struct devq *q, uint16_t ndesc);
void packed_dev_used_put(struct devq *q, struct used_writer *w, uint16_t id, uint32_t len,
			 uint16_t ndesc);
void packed_dev_used_end(struct devq *q, struct used_writer *w);
bool packed_dev_needs_notify(struct devq *q);
void packed_dev_disable_notify(struct devq *q);
bool packed_dev_enable_notify(struct devq *q);

#endif
