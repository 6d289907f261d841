/* SPDX-License-Identifier: MIT */
/*
 * `uvirtio check`: a conformance checker for a vhost-user blk backend. Each
 * check is a {name, fn} row; a check connects as it needs (check_connect()),
 * decides PASS, FAIL or N/A and says why in one line. Every wait is bounded
 * by the --timeout-ms time-out, so no check hangs.
 *
 * Shared between tools/check.c (the command, the front-end's I/O checks) and
 * tools/check_hostile.c (the raw ring: stop/restart and the hostile-driver
 * cases, which lay out their own split ring in the transport's memory).
 */
#ifndef UVIRTIO_TOOLS_CHECK_H
#define UVIRTIO_TOOLS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* check_hostile.c: the raw ring and the checks that drive it. */
extern const struct check check_raw_checks[];
extern const size_t check_raw_checks_count;

#endif
