// SPDX-License-Identifier: MIT
/* The socket options and set-up the vhost-user backend programs share (vhost_cli.h). */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli_parse.h"
#include "vhost_cli.h"

static struct uvirtio_vhost_backend *serving;

static void on_signal(int sig)
{
	(void)sig;
	if (serving)
		uvirtio_vhost_backend_stop(serving);
}

int vhost_cli_option(const char *prog, int opt, const char *arg, struct uvirtio_vhost_backend_config *vc)
{
	uint64_t v;

	switch (opt) {
	case VHOST_CLI_SOCKET:
		vc->socket_path = arg;
		return 0;
	case VHOST_CLI_FD:
		if (!cli_parse_u64(arg, &v) || v > INT_MAX) {
			fprintf(stderr, "%s: bad value '%s' for --fd: a file descriptor number\n", prog, arg);
			return 2;
		}
		vc->fd = (int)v;
		return 0;
	case VHOST_CLI_CLIENT:
		vc->client = true;
		return 0;
	}
	return -1;
}

int vhost_cli_check(const char *prog, const struct uvirtio_vhost_backend_config *vc)
{
	if (!!vc->socket_path == (vc->fd >= 0)) {
		fprintf(stderr, "%s: give exactly one of --socket-path=PATH and --fd=N\n", prog);
		return 2;
	}
	if (vc->client && !vc->socket_path) {
		fprintf(stderr, "%s: --client connects to --socket-path=PATH\n", prog);
		return 2;
	}
	return 0;
}

const char *vhost_cli_where(const struct uvirtio_vhost_backend_config *vc)
{
	return vc->socket_path ? vc->socket_path : "--fd";
}

int vhost_cli_serve(const char *prog, struct uvirtio_vhost_backend *vb, struct uvirtio_device *dev,
		    const struct uvirtio_vhost_backend_config *vc)
{
	int ret = uvirtio_vhost_backend_attach(vb, dev);

	if (!ret)
		ret = uvirtio_vhost_backend_listen(vb);
	if (!ret) {
		struct sigaction sa = { .sa_handler = on_signal };

		serving = vb;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		return 0;
	}
	fprintf(stderr, "%s: cannot %s socket '%s': %s\n", prog, vc->client ? "connect to" : "listen on",
		vhost_cli_where(vc), cli_socket_error(ret));
	return 1;
}

int vhost_cli_run(const char *prog, struct uvirtio_vhost_backend *vb)
{
	int ret = uvirtio_vhost_backend_run(vb);

	serving = NULL;
	if (ret)
		fprintf(stderr, "%s: stopped: %s\n", prog, strerror(-ret));
	return ret;
}
