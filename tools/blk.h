/* SPDX-License-Identifier: MIT */
#ifndef UVIRTIO_TOOLS_BLK_H
#define UVIRTIO_TOOLS_BLK_H

/* `uvirtio blk [options] IMAGE`: returns the process exit code. */
int blk_main(int argc, char **argv);

#endif
