/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk, driver side (device ID 2): a userspace API to drive any
 * virtio-blk device over any transport, through the driver core.
 *
 * A request is a header (type, sector), the data, and a status byte the
 * device writes last. The header, the discard/write-zeroes range, the ID
 * buffer and the status byte live in per-slot driver memory allocated at
 * probe, so nothing is allocated per request. The data must live in the
 * transport's shared memory (uvirtio_blk_drv_alloc_buf()): the device can
 * reach nothing else, and a buffer outside it is refused with -EFAULT.
 *
 * The device is hostile input: a used length that does not cover what it
 * claims to have written, or a status other than OK/IOERR/UNSUPP, fails that
 * request with -EIO;
 * a used id the driver did not submit or a length larger than offered breaks
 * the queue (drvq.h), and every later call on it returns -EIO until remove.
 *
 *   struct uvirtio_blk_drv blk;
 *   uvirtio_blk_drv_probe(&blk, transport, NULL);
 *   char *buf = uvirtio_blk_drv_alloc_buf(&blk, 4096);
 *   uvirtio_blk_drv_read(&blk, 0, sector, buf, 4096, -1);
 *   uvirtio_blk_drv_free_buf(&blk, buf);
 *   uvirtio_blk_drv_remove(&blk);
 *
 * Thread rules: probe, remove, the buffer helpers and set_writeback are
 * lifecycle calls, made from one thread while no other call runs. Between
 * them each queue may be used by one thread at a time (submit, poll, the
 * synchronous calls on it); different queues by different threads at once.
 * The getters may be called from any thread.
 */
#ifndef UVIRTIO_BLK_DRV_H
#define UVIRTIO_BLK_DRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_blk.h>

#include "uvirtio/api.h"
#include "uvirtio/driver.h"

/* The device-type features this driver implements; the default to negotiate
 * (with INDIRECT_DESC and EVENT_IDX). RO is always accepted when offered. */
#define UVIRTIO_BLK_DRV_FEATURES                                                       \
	(UVIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |         \
	 UVIRTIO_BIT(VIRTIO_BLK_F_RO) | UVIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |              \
	 UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | UVIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |           \
	 UVIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) | UVIRTIO_BIT(VIRTIO_BLK_F_MQ) |            \
	 UVIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | UVIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) |     \
	 UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX))

/* Ring features the driver uses when asked for in its options (not by
 * default, as QEMU's devices default to packed=off): the packed layout,
 * IN_ORDER and NOTIFICATION_DATA. */
#define UVIRTIO_BLK_DRV_RING_FEATURES                                                  \
	(UVIRTIO_BIT(VIRTIO_F_RING_PACKED) | UVIRTIO_BIT(VIRTIO_F_IN_ORDER) |             \
	 UVIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA))

#define UVIRTIO_BLK_DRV_SECTOR_SIZE 512u

/* Request flag: a write-zeroes request may deallocate the sectors. */
#define UVIRTIO_BLK_DRV_REQ_UNMAP 1u

struct uvirtio_blk_drv_opts {
	uint64_t features;   /* 0: UVIRTIO_BLK_DRV_FEATURES; else masked with it and
			      * UVIRTIO_BLK_DRV_RING_FEATURES */
	unsigned num_queues; /* 0: 1; capped at the device's num_queues */
	unsigned queue_size; /* 0: the driver core's default; capped at the device's */
};

/* What the device said about itself at probe; a field whose feature was
 * not negotiated is 0 (false). */
struct uvirtio_blk_drv_limits {
	uint64_t capacity;           /* in 512-byte sectors */
	uint32_t blk_size;           /* logical block size in bytes; 512 without BLK_SIZE */
	uint32_t size_max;           /* largest data segment in bytes; 0: no limit */
	uint32_t seg_max;            /* most data segments per request (also capped by the queue) */
	uint8_t physical_block_exp;  /* TOPOLOGY: physical block = blk_size << this */
	uint8_t alignment_offset;    /* TOPOLOGY, in logical blocks */
	uint16_t min_io_size;        /* TOPOLOGY, in logical blocks */
	uint32_t opt_io_size;        /* TOPOLOGY, in logical blocks */
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	bool write_zeroes_may_unmap;
	uint16_t device_queues;      /* queues the device has (1 without MQ) */
};

struct uvirtio_blk_drv_req;
typedef void (*uvirtio_blk_drv_done_fn)(struct uvirtio_blk_drv_req *req);

/* One request, owned by the caller; it must stay valid, and its data
 * unused, from submit until its callback runs (or remove). */
struct uvirtio_blk_drv_req {
	uint32_t type;        /* VIRTIO_BLK_T_IN, _OUT, _FLUSH, _GET_ID, _DISCARD, _WRITE_ZEROES */
	uint32_t flags;       /* UVIRTIO_BLK_DRV_REQ_UNMAP (write zeroes only) */
	uint64_t sector;      /* first sector: IN, OUT, DISCARD, WRITE_ZEROES */
	uint32_t num_sectors; /* DISCARD, WRITE_ZEROES */
	const struct iovec *iov; /* IN, OUT: the data, in shared memory */
	unsigned niov;
	uvirtio_blk_drv_done_fn callback; /* may be NULL */
	void *opaque;         /* for the caller */

	/* Set by the driver before the callback. */
	int result;           /* 0 or a negative errno */
	char id[VIRTIO_BLK_ID_BYTES + 1]; /* GET_ID: the device's ID, NUL-terminated */

	/* Private to the driver. */
	void *uvirtio_private_do_not_touch;
};

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_blk_drv {
	UVIRTIO_OPAQUE(512); /* holds a struct uvirtio_driver */
};

/**
 * uvirtio_blk_drv_probe() - reset the device, negotiate, read its config,
 * set its queues up and start it.
 * @b:    the driver, owned by the caller; its previous contents are ignored.
 * @t:    the transport; must outlive @b.
 * @opts: NULL for the defaults.
 *
 * Config space is read once here (with the driver core's generation loop);
 * the getters return that snapshot.
 *
 * Return: 0; -ENODEV when the device is not a usable virtio-blk device
 * (see uvirtio_driver_probe()); -ENOMEM when the per-slot memory or the
 * queues cannot be had; or the transport's error. On failure the device is
 * reset and nothing is left allocated.
 */
UVIRTIO_API
int uvirtio_blk_drv_probe(struct uvirtio_blk_drv *b, struct uvirtio_transport *t,
			  const struct uvirtio_blk_drv_opts *opts);

/**
 * uvirtio_blk_drv_remove() - reset the device, then complete every request
 * still outstanding with -ECANCELED (its callback runs here, on the caller's
 * thread; it may not submit) and free everything probe allocated. Buffers
 * from uvirtio_blk_drv_alloc_buf() are not freed. @b may be probed again.
 * Lifecycle call; calling it twice, or after a failed probe, is harmless.
 */
UVIRTIO_API
void uvirtio_blk_drv_remove(struct uvirtio_blk_drv *b);

/**
 * uvirtio_blk_drv_alloc_buf() - @size zeroed bytes of shared memory for I/O
 * data, aligned to 4096. Lifecycle call (see above).
 * Return: the buffer, or NULL when there is no room or @size is 0.
 */
UVIRTIO_API
void *uvirtio_blk_drv_alloc_buf(struct uvirtio_blk_drv *b, size_t size);

/** uvirtio_blk_drv_free_buf() - release a buffer from alloc_buf; NULL is ignored. */
UVIRTIO_API
void uvirtio_blk_drv_free_buf(struct uvirtio_blk_drv *b, void *buf);

/**
 * uvirtio_blk_drv_driver() - the driver core inside @b (for the driver
 * core's calls, e.g. uvirtio_driver_has_feature()).
 * Return: owned by @b, valid until uvirtio_blk_drv_remove().
 */
UVIRTIO_API
struct uvirtio_driver *uvirtio_blk_drv_driver(struct uvirtio_blk_drv *b);

/** uvirtio_blk_drv_capacity() - the size of the disk in 512-byte sectors. */
UVIRTIO_API
uint64_t uvirtio_blk_drv_capacity(const struct uvirtio_blk_drv *b);

/** uvirtio_blk_drv_limits() - the device's limits and topology, read at probe. */
UVIRTIO_API
const struct uvirtio_blk_drv_limits *uvirtio_blk_drv_limits(const struct uvirtio_blk_drv *b);

/** uvirtio_blk_drv_num_queues() - queues the driver set up (0 to this - 1). */
UVIRTIO_API
unsigned uvirtio_blk_drv_num_queues(const struct uvirtio_blk_drv *b);

/** uvirtio_blk_drv_read_only() - whether the device is read-only (RO). */
UVIRTIO_API
bool uvirtio_blk_drv_read_only(const struct uvirtio_blk_drv *b);

/**
 * uvirtio_blk_drv_writeback() - whether the device caches writes, so that
 * only a flush makes them durable: FLUSH negotiated and, with CONFIG_WCE,
 * the config's writeback field set.
 */
UVIRTIO_API
bool uvirtio_blk_drv_writeback(const struct uvirtio_blk_drv *b);

/**
 * uvirtio_blk_drv_set_writeback() - switch the device's cache mode through
 * the config's writeback field (CONFIG_WCE). Lifecycle call.
 * Return: 0; -EOPNOTSUPP without CONFIG_WCE; or the transport's error.
 */
UVIRTIO_API
int uvirtio_blk_drv_set_writeback(struct uvirtio_blk_drv *b, bool writeback);

/**
 * uvirtio_blk_drv_submit() - make @req available to the device on queue
 * @queue and notify it. The caller's thread must own @queue.
 *
 * Checked before anything reaches the device: the type's feature (FLUSH,
 * DISCARD, WRITE_ZEROES) was negotiated; no write, discard or write-zeroes
 * on a read-only device; IN/OUT data a non-zero multiple of 512 bytes, each
 * segment within size_max, at most seg_max segments (and the queue size
 * less two), inside capacity, in shared memory; GET_ID and FLUSH without
 * data; a discard or write-zeroes range inside capacity and within the
 * device's max sectors; UNMAP only on write zeroes.
 *
 * On success @req belongs to the driver until its callback runs, from
 * uvirtio_blk_drv_poll() (or a synchronous call) on @queue, or from remove.
 *
 * Return: 0; -EINVAL for a bad queue or a request the checks above refuse
 * (-EOPNOTSUPP for a type whose feature was not negotiated or an unknown
 * type, -EROFS for a write to a read-only device, -EFAULT for data outside
 * shared memory); -EAGAIN when every request slot of the queue is in use or
 * -ENOSPC when its ring has no room (poll, then retry); -EIO when the queue
 * is broken or the device needs a reset; or the transport's notify error
 * (the request is then with the device anyway).
 */
UVIRTIO_API
int uvirtio_blk_drv_submit(struct uvirtio_blk_drv *b, unsigned queue, struct uvirtio_blk_drv_req *req);

/**
 * uvirtio_blk_drv_resubmit() - reset queue @queue and add every request
 * still outstanding on it again, in the order they were submitted, on a
 * new ring: for a transport that lost the device's copy of the ring (the
 * vhost-user front-end after a reconnect without INFLIGHT_SHMFD, see
 * uvirtio_vhost_frontend_ring_needs_resubmit()). Each request then
 * completes once, from the new ring; a read reads again, a write writes
 * the same data again. Requests a synchronous call gave up on are dropped.
 * Needs VIRTIO_F_RING_RESET negotiated (ask for it in opts->features). The
 * caller's thread must own @queue; it makes transport lifecycle calls
 * (queue_reset, queue_enable), so no other lifecycle call may run at once.
 *
 * Return: the number of requests added again; -EINVAL for a bad queue;
 * -EOPNOTSUPP without RING_RESET; -ENOMEM; or the transport's error (every
 * outstanding request is then completed with -EIO: the queue is unusable).
 */
UVIRTIO_API
int uvirtio_blk_drv_resubmit(struct uvirtio_blk_drv *b, unsigned queue);

/**
 * uvirtio_blk_drv_poll() - complete up to @max requests the device has
 * finished on @queue, calling their callbacks on this thread (a callback
 * may submit again, but not poll). Also clears the queue's event fd.
 *
 * A request's result: 0 for VIRTIO_BLK_S_OK with a used length covering
 * the whole writable part (data and status byte); -EIO for OK with any
 * other length, for a used length of 0, for IOERR or for an unknown status;
 * -EOPNOTSUPP for UNSUPP.
 *
 * Return: the number of callbacks run (when it is @max more may be pending:
 * call again before waiting on the event fd); -EINVAL for a bad queue; -EIO
 * when the queue is broken or the device needs a reset (requests still
 * outstanding then complete at remove, with -ECANCELED).
 */
UVIRTIO_API
int uvirtio_blk_drv_poll(struct uvirtio_blk_drv *b, unsigned queue, unsigned max);

/**
 * uvirtio_blk_drv_event_fd() - an fd that becomes readable when requests on
 * @queue may have completed, or the device needs a reset: wait on it with
 * poll(2)/epoll, then call uvirtio_blk_drv_poll(), which clears it. Owned by
 * the driver, valid until remove.
 * Return: the fd, or -EINVAL for a bad queue.
 */
UVIRTIO_API
int uvirtio_blk_drv_event_fd(struct uvirtio_blk_drv *b, unsigned queue);

/**
 * uvirtio_blk_drv_read() - read @len bytes at @sector into @buf, and wait.
 * @b:          the driver.
 * @queue:      the queue to use; the caller's thread must own it.
 * @sector:     the first sector (512 bytes each).
 * @buf:        the data, in shared memory (uvirtio_blk_drv_alloc_buf()).
 * @len:        a non-zero multiple of 512 bytes.
 * @timeout_ms: bounds the whole call; -1 for none.
 *
 * The synchronous calls (this one and those below) submit one request on
 * @queue and wait for it on the queue's event fd, completing other requests
 * of that queue meanwhile (their callbacks run here). When the queue is full
 * with the caller's own asynchronous requests they wait for room first.
 *
 * Return: 0; the errors of uvirtio_blk_drv_submit() and a request's errors
 * (see uvirtio_blk_drv_poll()); -ETIMEDOUT when the device did not answer in
 * time. After -ETIMEDOUT, and after -EIO from a broken queue or a device
 * that needs a reset, the request still belongs to the device: it may yet
 * read or write the buffer, so keep the buffer until uvirtio_blk_drv_remove()
 * (the late answer is dropped without a callback).
 */
UVIRTIO_API
int uvirtio_blk_drv_read(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector, void *buf,
			 size_t len, int timeout_ms);

/**
 * uvirtio_blk_drv_write() - write @len bytes from @buf at @sector, and wait.
 * Arguments, thread rules and returns as uvirtio_blk_drv_read(); -EROFS on a
 * read-only device. A write is durable only after a flush when the device
 * caches writes (uvirtio_blk_drv_writeback()).
 */
UVIRTIO_API
int uvirtio_blk_drv_write(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			  const void *buf, size_t len, int timeout_ms);

/**
 * uvirtio_blk_drv_readv() - read into the @niov segments of @iov at @sector,
 * and wait. Each segment is in shared memory, non-empty and at most size_max
 * bytes; at most seg_max segments; their sum a multiple of 512 bytes. Thread
 * rules and returns as uvirtio_blk_drv_read().
 */
UVIRTIO_API
int uvirtio_blk_drv_readv(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			  const struct iovec *iov, unsigned niov, int timeout_ms);

/**
 * uvirtio_blk_drv_writev() - write the @niov segments of @iov at @sector,
 * and wait. Segments as uvirtio_blk_drv_readv(); returns as
 * uvirtio_blk_drv_write().
 */
UVIRTIO_API
int uvirtio_blk_drv_writev(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			   const struct iovec *iov, unsigned niov, int timeout_ms);

/**
 * uvirtio_blk_drv_flush() - make every completed write durable, and wait.
 * Returns as uvirtio_blk_drv_read(); -EOPNOTSUPP when FLUSH was not
 * negotiated (the device then writes through).
 */
UVIRTIO_API
int uvirtio_blk_drv_flush(struct uvirtio_blk_drv *b, unsigned queue, int timeout_ms);

/**
 * uvirtio_blk_drv_discard() - tell the device @num_sectors sectors at @sector
 * are unused, and wait. What they read back afterwards is the device's
 * choice. Returns as uvirtio_blk_drv_read(); -EOPNOTSUPP without DISCARD;
 * -EROFS on a read-only device; -EINVAL for a range outside the disk or over
 * max_discard_sectors.
 */
UVIRTIO_API
int uvirtio_blk_drv_discard(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
			    uint32_t num_sectors, int timeout_ms);

/**
 * uvirtio_blk_drv_write_zeroes() - make @num_sectors sectors at @sector read
 * back as zeroes, letting the device deallocate them when @unmap, and wait.
 * Returns as uvirtio_blk_drv_read(); -EOPNOTSUPP without WRITE_ZEROES;
 * -EROFS on a read-only device; -EINVAL for a range outside the disk or over
 * max_write_zeroes_sectors.
 */
UVIRTIO_API
int uvirtio_blk_drv_write_zeroes(struct uvirtio_blk_drv *b, unsigned queue, uint64_t sector,
				 uint32_t num_sectors, bool unmap, int timeout_ms);

/**
 * uvirtio_blk_drv_get_id() - the device's ID string (its serial) into @id,
 * NUL-terminated (at most 20 characters), and wait. Returns as
 * uvirtio_blk_drv_read(); -EOPNOTSUPP when the device does not have one.
 */
UVIRTIO_API
int uvirtio_blk_drv_get_id(struct uvirtio_blk_drv *b, unsigned queue,
			   char id[VIRTIO_BLK_ID_BYTES + 1], int timeout_ms);

#endif
