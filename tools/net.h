/* SPDX-License-Identifier: MIT */
#ifndef UVIRTIO_TOOLS_NET_H
#define UVIRTIO_TOOLS_NET_H

/* `uvirtio net [options]`: returns the process exit code. */
int net_main(int argc, char **argv);

#endif
