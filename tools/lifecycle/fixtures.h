/* SPDX-License-Identifier: MIT */
/*
 * The conformance suite's transports: each fixture sets a blk device up
 * behind one transport, gives the driver side its struct uvirtio_transport,
 * and can move the (suspended) device into a new process.
 */
#ifndef UVIRTIO_TOOLS_LIFECYCLE_FIXTURES_H
#define UVIRTIO_TOOLS_LIFECYCLE_FIXTURES_H

#include <stdbool.h>
#include <sys/types.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/driver.h"
#include "uvirtio/regbus.h"
#include "uvirtio/shared_mem.h"

#define CONFORMANCE_QUEUES 2

struct fixture {
	const char *name;
	struct uvirtio_transport *t; /* the driver's side */
	/* Snapshot the suspended device, restore it in a new process (or, for
	 * loopback, a new device) and serve the driver from there. */
	int (*move)(struct fixture *f);
	const char *where; /* who serves the device now, for the log */

	/* Private to fixtures.c. */
	const char *transport, *image, *self;
	struct uvirtio_blk_dev blk[2];
	unsigned cur;  /* which blk[] serves, while in this process */
	bool in_child; /* the device end lives in a child process */
	struct uvirtio_loopback *lb;
	struct uvirtio_shared_mem sm;
	int irq_fds[CONFORMANCE_QUEUES + 1];
	void *model;
	struct uvirtio_regbus bus;
	struct uvirtio_regbus_remote remote;
	pid_t child;
	int sock;
	char where_buf[96];
};

int fixture_create(struct fixture *f, const char *transport, const char *image, const char *self);
void fixture_destroy(struct fixture *f);

/* main() of the device end's new process (argv has --device-child). */
int fixture_device_child(int argc, char **argv);

#endif
