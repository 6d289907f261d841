/* SPDX-License-Identifier: MIT */
/*
 * What the vhost-user backend programs (`uvirtio blk`, `uvirtio net`) share:
 * the socket options of QEMU's backend program conventions (--socket-path,
 * --fd, --client), their checks, and attaching and listening with one clear
 * line when it fails.
 */
#ifndef UVIRTIO_TOOLS_VHOST_CLI_H
#define UVIRTIO_TOOLS_VHOST_CLI_H

#include <getopt.h>

#include "uvirtio/vhost_backend.h"

/* getopt values of the shared options; a program's own start above them. */
enum { VHOST_CLI_SOCKET = 256, VHOST_CLI_FD, VHOST_CLI_CLIENT, VHOST_CLI_END };

#define VHOST_CLI_OPTIONS                                                 \
	{ "socket-path", required_argument, NULL, VHOST_CLI_SOCKET },     \
	{ "fd", required_argument, NULL, VHOST_CLI_FD },                  \
	{ "client", no_argument, NULL, VHOST_CLI_CLIENT }

/* Take getopt's @opt into @vc if it is one of the shared options. Returns
 * 0 when taken, 2 (the usage exit status, message printed as "PROG: ...")
 * for a bad value, -1 when @opt is not one of them. */
int vhost_cli_option(const char *prog, int opt, const char *arg, struct uvirtio_vhost_backend_config *vc);

/* After parsing: exactly one socket, --client only with a path. 0 or 2. */
int vhost_cli_check(const char *prog, const struct uvirtio_vhost_backend_config *vc);

/* The socket as a message names it. */
const char *vhost_cli_where(const struct uvirtio_vhost_backend_config *vc);

/* Attach @dev to @vb and listen (or connect); 0, or 1 with one line said.
 * From then on SIGINT and SIGTERM stop @vb and SIGPIPE is ignored. */
int vhost_cli_serve(const char *prog, struct uvirtio_vhost_backend *vb, struct uvirtio_device *dev,
		    const struct uvirtio_vhost_backend_config *vc);

/* Serve until stopped; a failure gets one line. Returns run()'s result. */
int vhost_cli_run(const char *prog, struct uvirtio_vhost_backend *vb);

#endif
