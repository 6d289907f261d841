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
 *
 * After every test the harness checks that the test left nothing behind:
 * the same open fds and threads as before it, and, built with
 * AddressSanitizer, no unreachable heap block (LeakSanitizer's check, run
 * after each test rather than once at exit, so the leak names its test).
 * A test that means to keep something for the next one cannot; each test
 * starts and ends with the process as it found it.
 */
#ifndef UVIRTIO_TEST_HARNESS_H
#define UVIRTIO_TEST_HARNESS_H

#if defined(__SANITIZE_ADDRESS__)
#define TEST_HEAP_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_HEAP_CHECK 1
#endif
#endif
#ifdef TEST_HEAP_CHECK
#include <sanitizer/lsan_interface.h>
#endif

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Entries of a /proc/self directory, without "." and "..", and without
 * the directory's own fd when it is the fd table. */
static inline int count_proc_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return strcmp(dir, "/proc/self/fd") ? n : n - 1;
}

/* Open fds of this process, for tests that check nothing leaked. */
static inline int count_fds(void)
{
	return count_proc_entries("/proc/self/fd");
}

struct test_resources {
	int fds;
	int threads;
};

static inline struct test_resources test_resources_now(void)
{
	return (struct test_resources){
		.fds = count_fds(),
		.threads = count_proc_entries("/proc/self/task"),
	};
}

/* What the test left behind, or NULL. A thread the test joined is gone; a
 * detached one, or an fd it closes on its way out, may take a moment, so a
 * difference in fds or threads must last 2 s before it counts. */
static inline const char *leaks_after(const struct test_resources *before, char *buf, size_t len)
{
	struct test_resources now;

	for (int waited_ms = 0;; waited_ms += 10) {
		now = test_resources_now();
		if ((now.fds == before->fds && now.threads == before->threads) || waited_ms >= 2000)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	int n = 0;

	buf[0] = '\0';
	if (now.fds != before->fds || now.threads != before->threads)
		n = snprintf(buf, len, "left behind: open fds %d -> %d, threads %d -> %d", before->fds,
			     now.fds, before->threads, now.threads);
#ifdef TEST_HEAP_CHECK
	/* LeakSanitizer reports a leak again on each later check: after the
	 * first, heap checks would blame the tests that follow. */
	static bool heap_leak_reported;

	if (!heap_leak_reported && __lsan_do_recoverable_leak_check()) {
		heap_leak_reported = true;
		snprintf(buf + n, len - (size_t)n, "%sunreachable heap blocks (LeakSanitizer's report on stderr)",
			 n ? "; " : "left behind: ");
	}
#endif
	(void)n;
	return buf[0] ? buf : NULL;
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

static inline void *test_no_op_thread(void *arg)
{
	return arg;
}

static inline int test_run_all(const struct test_case *cases, size_t n)
{
	int failures = 0;
	pthread_t warm_up;

	/* ThreadSanitizer starts a thread of its own at the first
	 * pthread_create(); started here, it is in every test's baseline. */
	if (!pthread_create(&warm_up, NULL, test_no_op_thread, NULL))
		pthread_join(warm_up, NULL);

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		struct test_resources before = test_resources_now();
		char leak[200];
		const char *leaked;

		test_failed = false;
		test_skipped = NULL;
		cases[i].fn();
		/* Checked after a failed test too, so that what it left is
		 * not blamed on the next one. */
		if ((leaked = leaks_after(&before, leak, sizeof(leak)))) {
			printf("# %s: %s\n", cases[i].name, leaked);
			test_failed = true;
		}
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
