/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk, device side (device ID 2): a disk image (a file or a block
 * device, served through io_uring) or a null disk (no I/O, for benchmarks).
 *
 * Each queue is served by a thread of its own (queue_start/queue_stop of the
 * device core), which polls the queue's kick fd, submits the guest's iovecs
 * to io_uring as they are (no copy), and pushes completions in batches. With
 * @poll the threads spin on their ring and completion queue instead of
 * sleeping.
 *
 * Requests come from a hostile driver: every header and segment is read once
 * into local memory, every length and sector range is checked with
 * overflow-safe arithmetic, and a malformed request is answered
 * VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP (or, without a status byte to
 * write, given back with used length 0). Nothing is allocated per request.
 *
 *   struct uvirtio_blk_dev blk;
 *   struct uvirtio_blk_dev_config cfg = { .path = "disk.img", .num_queues = 2 };
 *   uvirtio_blk_dev_init(&blk, &cfg, mem);
 *   ... hand uvirtio_blk_dev_device(&blk) to a transport ...
 *   uvirtio_blk_dev_destroy(&blk);
 */
#ifndef UVIRTIO_BLK_DEV_H
#define UVIRTIO_BLK_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_blk.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"

/* QEMU's virtio-blk queue-size goes up to 1024, and so does ours. */
#define UVIRTIO_BLK_QUEUE_SIZE_MAX 1024u
/* Data segments per request offered as seg_max by default. With the header
 * and the status byte a request is seg_max + 2 descriptors, and no chain
 * may be longer than its queue (a longer one breaks the queue), so this
 * fits QEMU's default vhost-user-blk queue-size of 128, as
 * qemu-storage-daemon's 126 does. Front-ends with smaller queues need a
 * smaller seg_max. */
#define UVIRTIO_BLK_SEG_MAX_DEFAULT 126u
/* Segments per DISCARD / WRITE_ZEROES request, by default. */
#define UVIRTIO_BLK_DISCARD_SEG_DEFAULT 16u
/* How long a queue thread polls an empty ring before sleeping, by default. */
#define UVIRTIO_BLK_POLL_US_DEFAULT 32
/* The most queues a device may have. */
#define UVIRTIO_BLK_QUEUES_MAX 64u

enum uvirtio_blk_backend {
	UVIRTIO_BLK_BACKEND_FILE, /* a file or block device at @path, through io_uring */
	UVIRTIO_BLK_BACKEND_NULL, /* no I/O: reads leave the buffer as it is */
};

struct uvirtio_blk_dev_config {
	enum uvirtio_blk_backend backend;
	const char *path;        /* FILE: image or block device; copied at init */
	uint64_t null_capacity;  /* NULL: size in bytes (rounded down to 512) */
	bool read_only;          /* offer VIRTIO_BLK_F_RO; refuse every write */
	bool direct;             /* FILE: O_DIRECT (unaligned requests go buffered) */
	bool poll;               /* queue threads busy-poll, never sleep */
	/* When a queue's ring runs dry its thread keeps looking this many
	 * microseconds before it asks for kicks and sleeps (QEMU's iothreads
	 * poll the same way, poll-max-ns): a driver that adds its next request
	 * within the window needs no kick and the thread no wake-up. 0:
	 * UVIRTIO_BLK_POLL_US_DEFAULT; negative: sleep at once. */
	int poll_us;
	bool writethrough;       /* start with the write cache off (wce = 0) */
	unsigned num_queues;     /* 0: 1; more than 1 offers VIRTIO_BLK_F_MQ */
	const char *serial;      /* GET_ID answer, up to 20 bytes; NULL: empty */
	unsigned seg_max;        /* 0: UVIRTIO_BLK_SEG_MAX_DEFAULT; at most 1022 */
	uint32_t size_max;       /* largest segment in bytes; 0: 1 MiB */
	uint32_t blk_size;       /* logical block size; 0: the device's, or 512 */
	unsigned max_discard_seg;      /* 0: UVIRTIO_BLK_DISCARD_SEG_DEFAULT; at most 256 */
	unsigned max_write_zeroes_seg; /* 0: UVIRTIO_BLK_DISCARD_SEG_DEFAULT; at most 256 */
};

/* What the device did since init, for reports. Requests are counted by type
 * when they are taken; the error counters count the answers. */
struct uvirtio_blk_dev_stats {
	uint64_t reads, writes, flushes, get_ids, discards, write_zeroes;
	uint64_t other;            /* requests of an unknown type */
	uint64_t bytes_read, bytes_written;
	uint64_t ioerr;            /* answered VIRTIO_BLK_S_IOERR */
	uint64_t unsupp;           /* answered VIRTIO_BLK_S_UNSUPP */
	uint64_t no_status;        /* no status byte: given back with length 0 */
	uint64_t direct_fallbacks; /* O_DIRECT reads/writes served buffered instead */
	uint64_t writethrough;     /* writes made durable before completing (wce = 0) */
};

/* Caller-owned, opaque (docs/ARCHITECTURE.md, "Objects"). */
struct uvirtio_blk_dev {
	UVIRTIO_OPAQUE(2048); /* holds a struct uvirtio_device */
};

/**
 * uvirtio_blk_dev_init() - open the backend and set a virtio-blk device up.
 * @blk: the device, owned by the caller; hand uvirtio_blk_dev_device(@blk) to a
 *       transport. It
 *       must not move after init (its ops and queues point into it).
 * @cfg: what to serve; copied (strings too), so it may go after the call.
 * @mem: guest memory the queues use (the transport's).
 *
 * The capacity is the image's size (a block device's BLKGETSIZE64) or
 * @cfg->null_capacity, rounded down to 512 bytes. Call on the control thread.
 *
 * Return: 0; -EINVAL for a bad config (no path, a capacity under 512
 * bytes, too many queues or segments, a block size that is not a power of two
 * from 512 to 65536, not a regular file or block device, or @cfg->direct on a
 * filesystem that refuses O_DIRECT); -ENOENT when the image does not exist; -EACCES or
 * -EROFS when it cannot be opened for writing and @cfg->read_only is false
 * (set read_only to serve it anyway); another open(2)/ioctl(2) errno;
 * -ENOMEM; or uvirtio_device_init()'s error.
 */
UVIRTIO_API
int uvirtio_blk_dev_init(struct uvirtio_blk_dev *blk, const struct uvirtio_blk_dev_config *cfg,
			 struct uvirtio_mem *mem);

/**
 * uvirtio_blk_dev_destroy() - reset the device (every queue thread finishes
 * its requests and exits), close the backend and free what init allocated.
 * Call on the control thread, after the transport let go of
 * uvirtio_blk_dev_device(@blk).
 */
UVIRTIO_API
void uvirtio_blk_dev_destroy(struct uvirtio_blk_dev *blk);

/**
 * uvirtio_blk_dev_device() - the device core inside @blk, to hand to a
 * transport (and for the device core's calls, e.g. uvirtio_device_queue()).
 * @blk: an initialised device.
 * Return: owned by @blk, valid until uvirtio_blk_dev_destroy().
 */
UVIRTIO_API
struct uvirtio_device *uvirtio_blk_dev_device(struct uvirtio_blk_dev *blk);

/**
 * uvirtio_blk_dev_capacity() - the disk's size in 512-byte sectors, as set at
 * init (what the config space offers). Any thread.
 */
UVIRTIO_API
uint64_t uvirtio_blk_dev_capacity(const struct uvirtio_blk_dev *blk);

/**
 * uvirtio_blk_dev_get_stats() - add up the counters of every queue into @out.
 * May be called on any thread while the queues run (the numbers are then a
 * moment's snapshot, each counter read atomically).
 */
UVIRTIO_API
void uvirtio_blk_dev_get_stats(const struct uvirtio_blk_dev *blk, struct uvirtio_blk_dev_stats *out);

/**
 * uvirtio_blk_dev_serve_sync() - serve one request on the calling thread,
 * without a queue thread or io_uring: parse and check it exactly as a queue
 * thread does, do its I/O with synchronous system calls (preadv, pwritev,
 * fdatasync; nothing for the null backend), and write its status byte.
 * @blk:  the device; its features decide what is supported.
 * @req:  a request from uvirtio_devq_pop(); its iovecs may be rewritten
 *        (trimmed to the data part) but are never written outside the
 *        writable iovecs' bytes.
 * @stats: counters to add to; may be NULL.
 *
 * For tests, fuzzing and tools; the caller pushes the request back itself.
 * Return: the used length to push (bytes written including the status byte;
 * 0 when the request has no status byte).
 */
UVIRTIO_API
uint32_t uvirtio_blk_dev_serve_sync(struct uvirtio_blk_dev *blk, struct uvirtio_req *req,
				    struct uvirtio_blk_dev_stats *stats);

#endif
