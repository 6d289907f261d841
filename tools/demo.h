/* SPDX-License-Identifier: MIT */
#ifndef UVIRTIO_DEMO_H
#define UVIRTIO_DEMO_H

/* `uvirtio demo [options]`: returns the process exit code. */
int demo_main(int argc, char **argv);

#endif
