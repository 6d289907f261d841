/* SPDX-License-Identifier: MIT */
/*
 * What a fuzz target counts to show an input left nothing behind: open fds
 * and threads, from /proc. Include after fuzz_input.h (FUZZ_MODEL).
 */
#ifndef UVIRTIO_FUZZ_LEAKS_H
#define UVIRTIO_FUZZ_LEAKS_H

#include <dirent.h>
#include <stdbool.h>
#include <unistd.h>

/* Entries of a /proc directory (fd or task): -1 if it cannot be read. */
FUZZ_MODEL static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* A joined thread may still be listed for a moment: pthread_join returns
 * when the kernel cleared its tid, a little before the task is gone. A
 * thread left running stays, and fails the check after 200 ms. */
FUZZ_MODEL static inline bool threads_settle(int expected)
{
	for (int i = 0; i < 2000; i++) {
		if (count_dir("/proc/self/task") == expected)
			return true;
		usleep(100);
	}
	return false;
}

#endif
