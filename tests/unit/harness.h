/* SPDX-License-Identifier: MIT */
/*
 * A small TAP test harness: one program per unit, one function per rule.
 * meson runs each program with protocol 'tap' and counts every test.
 *
 *   static void test_split_refuses_indirect_with_next(void) { ... CHECK(x == y); }
 *   TEST_MAIN(T(test_split_refuses_indirect_with_next), ...)
 *
 * CHECK* return from the test function at the first failure, so they are for
 * use in the test body (void functions) only.
 */
#ifndef UVIRTIO_TEST_HARNESS_H
#define UVIRTIO_TEST_HARNESS_H

#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

static bool test_failed;
static const char *test_skipped;

static inline void test_fail_at(const char *file, int line, const char *what)
{
	printf("# %s:%d: check failed: %s\n", file, line, what);
	test_failed = true;
}

/* Open fds of this process, for tests that check nothing leaked. */
static inline int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

#define CHECK(cond)                                              \
	do {                                                     \
		if (!(cond)) {                                   \
			test_fail_at(__FILE__, __LINE__, #cond); \
			return;                                  \
		}                                                \
	} while (0)

#define CHECK_EQ(a, b)                                                                     \
	do {                                                                               \
		long long va_ = (long long)(a), vb_ = (long long)(b);                      \
		if (va_ != vb_) {                                                          \
			printf("# %s = %lld, %s = %lld\n", #a, va_, #b, vb_);              \
			test_fail_at(__FILE__, __LINE__, #a " == " #b);                    \
			return;                                                            \
		}                                                                          \
	} while (0)

#define CHECK_STR(a, b)                                                          \
	do {                                                                     \
		const char *sa_ = (a), *sb_ = (b);                               \
		if (!sa_ || !sb_ || strcmp(sa_, sb_)) {                          \
			printf("# %s = \"%s\"\n", #a, sa_ ? sa_ : "(null)");     \
			test_fail_at(__FILE__, __LINE__, #a " == \"" #b "\""); \
			return;                                                  \
		}                                                                \
	} while (0)

/* Mark the running test skipped (it then reports neither pass nor fail). */
#define SKIP(why)                      \
	do {                           \
		test_skipped = (why); \
		return;                \
	} while (0)

#define T(fn) { #fn, fn }

/* Reads and writes of a ring's 16-bit event fields, which sit where the
 * headers declare other types (used->ring[num], avail->ring[num]). */
static inline uint16_t peek16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void poke16(void *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline int test_run_all(const struct test_case *cases, size_t n)
{
	int failures = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		test_failed = false;
		test_skipped = NULL;
		cases[i].fn();
		if (test_skipped && !test_failed)
			printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, test_skipped);
		else
			printf("%sok %zu - %s\n", test_failed ? "not " : "", i + 1, cases[i].name);
		failures += test_failed;
	}
	return failures ? 1 : 0;
}

#define TEST_MAIN(...)                                                           \
	int main(void)                                                           \
	{                                                                        \
		static const struct test_case cases_[] = { __VA_ARGS__ };        \
		return test_run_all(cases_, sizeof(cases_) / sizeof(cases_[0])); \
	}

#endif
