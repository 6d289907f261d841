/* SPDX-License-Identifier: MIT */
/*
 * `uvirtio check`: a conformance checker for a vhost-user blk backend. Each
 * check is a {name, fn} row; a check connects as it needs (check_connect()),
 * decides PASS, FAIL or N/A and says why in one line. Every wait is bounded
 * by the --timeout-ms time-out, so no check hangs.
 *
 * Shared between tools/check.c (the command), check_conn.c (connections,
 * verdicts, the data pattern, a session with the blk driver probed),
 * check_config.c and check_io.c (the checks through the blk driver),
 * check_raw.c and check_hostile.c (the raw ring, check_raw.h: stop/restart
 * and the hostile-driver cases, which lay out their own split ring in the
 * transport's memory).
 */
#ifndef UVIRTIO_TOOLS_CHECK_H
#define UVIRTIO_TOOLS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include <linux/virtio_ring.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/loopback.h"
#include "uvirtio/transport.h"
#include "uvirtio/vhost_frontend.h"
#include "uvirtio/vhost_user.h"

enum check_verdict { CHECK_PASS, CHECK_FAIL, CHECK_NA };

struct check_opts {
	const char *socket_path;
	int timeout_ms;       /* bounds every wait */
	uint64_t offset;      /* first byte of the disk the checks write */
	/* Development and tests: serve an in-process blk device on this image
	 * over the loopback transport instead of connecting to a socket. */
	const char *loopback_image;
	bool loopback_read_only;
};

struct check_ctx {
	struct check_opts opts;
	char detail[1024]; /* the verdict's one line */
};

/* Bytes of the disk, from --offset, that the checks may overwrite, and the
 * part of them each check uses, so one check's data does not disturb another's. */
#define CHECK_AREA_BYTES (4u << 20)
#define CHECK_AREA_IO 0u
#define CHECK_AREA_RENEGOTIATE (1u << 20)
#define CHECK_AREA_MQ (2u << 20)          /* 64 KiB per queue */
#define CHECK_AREA_RING (3u << 20)
#define CHECK_AREA_HOSTILE ((3u << 20) + (512u << 10))

/* One connection to the backend: the vhost-user front-end, or in-process
 * loopback for development. */
struct check_conn {
	struct uvirtio_vhost_frontend *fe; /* NULL over loopback */
	struct uvirtio_loopback *lb;
	struct uvirtio_blk_dev *dev;
	struct uvirtio_transport *t;
};

struct check {
	const char *name;
	enum check_verdict (*fn)(struct check_ctx *c);
	const char *what; /* for --list */
};

/* check.c */
/* `uvirtio check`: argv[0] is "check". Return: the exit code. */
int check_main(int argc, char **argv);

/* check_conn.c */
int check_connect(struct check_ctx *c, struct check_conn *conn);
void check_disconnect(struct check_conn *conn);
/* One line saying why check_connect() failed. */
const char *check_connect_error(const struct check_conn *conn, int err);
enum check_verdict check_set(struct check_ctx *c, enum check_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define PASS(c, ...) check_set(c, CHECK_PASS, __VA_ARGS__)
#define FAIL(c, ...) check_set(c, CHECK_FAIL, __VA_ARGS__)
#define NA(c, ...) check_set(c, CHECK_NA, __VA_ARGS__)
/* Fill @buf with a pattern that depends on the disk offset and @seed. */
void check_fill(void *buf, size_t len, uint64_t disk_offset, uint32_t seed);
/* The first byte where @buf differs from the pattern, or SIZE_MAX. */
size_t check_mismatch(const void *buf, size_t len, uint64_t disk_offset, uint32_t seed);
/* A NEW connection does verified I/O (a write and read back where the disk
 * is writable, a read otherwise) at @disk_offset: the backend is alive.
 * Return: 0, or -errno with @why set. */
int check_alive(struct check_ctx *c, uint64_t disk_offset, char *why, size_t whylen);
/* One line naming @err, for a verdict. */
const char *err_name(int err);
/* err_name(), and for an error on a queue the driver found broken, the rule
 * the device broke there (a bad used entry). Thread-local: a queue's
 * thread each in the multi-queue check. */
const char *queue_err_name(struct uvirtio_blk_drv *b, unsigned q, int err);

/* A connection with the blk driver probed. */
struct blk_session {
	struct check_conn conn;
	struct uvirtio_blk_drv b;
	bool probed;
	void *buf[3]; /* shared memory for data */
	size_t buf_len;
};

/* Connect and probe the blk driver with @opts; on failure sets the verdict
 * line and returns the error. */
int session_open(struct check_ctx *c, struct blk_session *s, const struct uvirtio_blk_drv_opts *opts);
void session_close(struct blk_session *s);
/* Whether the disk holds the area the checks use; sets an N/A line if not. */
bool area_fits(struct check_ctx *c, const struct uvirtio_blk_drv *b);
/* Split @len bytes of @buf into segments no longer than @seg (and the
 * device's size_max), at most @max of them. Return: the count, 0 if it does
 * not fit. */
unsigned make_iov(const struct uvirtio_blk_drv *b, struct iovec *iov, unsigned max, void *buf,
		  size_t len, size_t seg);
/* Write @len bytes of pattern @seed at @disk through segments of @wseg
 * bytes, read them back through segments of @rseg bytes into a poisoned
 * buffer, compare. Return: 0, 1 when the sizes do not fit the device's
 * limits (skipped), or -errno with @why set. */
int write_read_verify(struct blk_session *s, unsigned q, uint64_t disk, size_t len, size_t wseg,
		      size_t rseg, uint32_t seed, int timeout_ms, char *why, size_t whylen);

/* check_config.c: negotiation and config. */
extern const struct check check_config_checks[];
extern const size_t check_config_checks_count;

/* check_io.c: verified I/O, reset and renegotiation, several queues. */
extern const struct check check_io_checks[];
extern const size_t check_io_checks_count;

/* check_raw.c: the raw ring's writes to a read-only disk, ring stop and restart. */
extern const struct check check_raw_checks[];
extern const size_t check_raw_checks_count;

/* check_hostile.c: the hostile driver's malformed chains on the raw ring. */
extern const struct check check_hostile_checks[];
extern const size_t check_hostile_checks_count;

#endif
