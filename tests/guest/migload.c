/* migload: the guest's write/verify load of the migration test (migrate.py)
 * and of the crash test (crash.py).
 *
 *     migload [-t THREADS] DEVICE BLOCKS [DIRTY_MIB]
 *
 * With DIRTY_MIB, a child process writes one byte of every page of a
 * DIRTY_MIB MiB buffer ten times a second for as long as the load runs: a
 * dirty rate the host's low max-bandwidth cannot keep up with, so precopy
 * goes on for several dirty-sync rounds until the host raises it. The passes
 * it has made are on every progress line (`dirty-passes N`).
 *
 * Writes 4 KiB blocks with O_DIRECT at pseudo-random block numbers in
 * [1, BLOCKS] of DEVICE, each with a deterministic content made of its block
 * number and a generation (one per write, from 1); after every write it reads
 * back a pseudo-random block already written and compares it. THREADS (-t,
 * default 1) threads do so at once, each on its own blocks (those whose
 * number is its index modulo THREADS, so that no two threads ever write one
 * block and each knows what its blocks must hold), each with its own
 * pseudo-random sequence (thread 0's is the one of a single-threaded run).
 * It keeps going until block 0 holds the host's stop mark (STOP_MARK, checked
 * by thread 0 every CHECK_EVERY of its writes; the host writes it into the
 * image after the last migration or kill), then reads every block of
 * [1, BLOCKS]: a written one must hold the content of its last generation,
 * an unwritten one only zeroes (the host gives a fresh sparse image).
 * Prints a progress line every PROGRESS writes (all threads together) and at
 * the end exactly one
 *   migload: result writes W reads R blocks B errors E mismatches M gens G
 * (errors: failed or short reads and writes; G: the FNV-1a 64 hash, in hex,
 * of the last generation of blocks 1..BLOCKS as 8-byte little-endian words,
 * 0 for a block never written, which the host checks against the image);
 * exit 0 when E and M are 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define BS 4096
#define STOP_MARK "UVIRTIO-MIGRATE-STOP"
#define CHECK_EVERY 32
#define PROGRESS 256
#define MAX_THREADS 64
#define MAGIC 0x6d69676c6f616431ull /* "migload1" */

static uint64_t next_rand(uint64_t *rng)
{
	/* xorshift64*: deterministic, the same sequence every run. */
	*rng ^= *rng >> 12;
	*rng ^= *rng << 25;
	*rng ^= *rng >> 27;
	return *rng * 0x2545f4914f6cdd1dull;
}

/* The content of `block` at generation `gen`: a header, then words that
 * depend on both, so a stale or misplaced block never matches. */
static void fill(uint64_t *buf, uint64_t block, uint64_t gen)
{
	buf[0] = MAGIC;
	buf[1] = block;
	buf[2] = gen;
	for (size_t i = 3; i < BS / 8; i++)
		buf[i] = (block * 0x100000001b3ull) ^ (gen << 20) ^ (i * 0x9e3779b97f4a7c15ull);
}

static int fd;
static unsigned nthreads = 1;
static uint64_t nblocks;
/* gens[b]: the last generation written to block b (0: never, UINT64_MAX: a
 * failed write, content unknown); each entry written by its block's thread
 * only, read by the final verify after every thread has joined. */
static uint64_t *gens;
static uint64_t total_writes, total_reads, total_errors, total_mismatches;
static volatile int stop_seen;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

struct worker {
	pthread_t thread;
	unsigned index;
	uint64_t rng;
	uint64_t *wbuf, *rbuf, *ebuf;
	uint64_t *written; /* distinct blocks this thread wrote */
	uint64_t nwritten;
};

static void count(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

static int read_block(struct worker *w, uint64_t block)
{
	ssize_t n = pread(fd, w->rbuf, BS, (off_t)(block * BS));
	count(&total_reads);
	if (n != BS) {
		count(&total_errors);
		printf("migload: read of block %" PRIu64 " returned %zd (%s)\n", block, n,
		       n < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

/* Compare rbuf with what block must hold (gen 0: never written, zeroes). */
static void check_block(struct worker *w, uint64_t block, uint64_t gen, const char *when)
{
	if (gen)
		fill(w->ebuf, block, gen);
	else
		memset(w->ebuf, 0, BS);
	if (memcmp(w->rbuf, w->ebuf, BS) != 0) {
		uint64_t m = __atomic_add_fetch(&total_mismatches, 1, __ATOMIC_RELAXED);
		if (m <= 5)
			printf("migload: mismatch (%s) block %" PRIu64 ": expected gen %" PRIu64
			       ", found block %" PRIu64 " gen %" PRIu64 "\n",
			       when, block, gen, w->rbuf[1], w->rbuf[2]);
	}
}

/* Passes the dirtier has made over its buffer, in a shared page so that the
 * progress line shows whether it runs (0 without a dirtier). */
static volatile uint64_t *dirty_passes;

/* How many blocks thread t owns: 1 + t, 1 + t + THREADS, ... up to BLOCKS. */
static uint64_t blocks_of(unsigned t)
{
	return nblocks / nthreads + (t < nblocks % nthreads);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t mine = blocks_of(w->index);
	uint64_t own_writes = 0;

	while (!__atomic_load_n(&stop_seen, __ATOMIC_ACQUIRE)) {
		if (w->index == 0 && own_writes % CHECK_EVERY == 0 && read_block(w, 0) == 0 &&
		    memcmp(w->rbuf, STOP_MARK, strlen(STOP_MARK)) == 0) {
			__atomic_store_n(&stop_seen, 1, __ATOMIC_RELEASE);
			break;
		}
		uint64_t block = 1 + w->index + (next_rand(&w->rng) % mine) * nthreads;
		uint64_t gen = __atomic_add_fetch(&total_writes, 1, __ATOMIC_RELAXED);
		fill(w->wbuf, block, gen);
		ssize_t n = pwrite(fd, w->wbuf, BS, (off_t)(block * BS));
		own_writes++;
		if (n != BS) {
			count(&total_errors);
			printf("migload: write of block %" PRIu64 " returned %zd (%s)\n", block, n,
			       n < 0 ? strerror(errno) : "short");
			/* Its content is unknown now: it is not checked. */
			gens[block] = UINT64_MAX;
		} else {
			if (gens[block] == 0)
				w->written[w->nwritten++] = block;
			gens[block] = gen;
		}
		if (w->nwritten) {
			uint64_t other = w->written[next_rand(&w->rng) % w->nwritten];
			if (gens[other] != UINT64_MAX && read_block(w, other) == 0)
				check_block(w, other, gens[other], "read-back");
		}
		if (gen % PROGRESS == 0) {
			pthread_mutex_lock(&out_lock);
			printf("migload: progress writes %" PRIu64 " errors %" PRIu64
			       " mismatches %" PRIu64 " dirty-passes %" PRIu64 "\n", gen,
			       __atomic_load_n(&total_errors, __ATOMIC_RELAXED),
			       __atomic_load_n(&total_mismatches, __ATOMIC_RELAXED),
			       dirty_passes ? *dirty_passes : 0);
			pthread_mutex_unlock(&out_lock);
		}
	}
	return NULL;
}

static pid_t start_dirtier(size_t mib)
{
	dirty_passes = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (dirty_passes == MAP_FAILED) {
		perror("migload: mmap");
		exit(2);
	}
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	volatile unsigned char *mem = malloc(mib << 20);
	if (!mem)
		_exit(1);
	for (unsigned char v = 1;; v++) {
		for (size_t off = 0; off < mib << 20; off += 4096)
			mem[off] = v;
		__atomic_add_fetch(dirty_passes, 1, __ATOMIC_RELAXED);
		usleep(100000);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: migload [-t THREADS] DEVICE BLOCKS [DIRTY_MIB]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't')
			return usage();
		nthreads = (unsigned)strtoul(optarg, NULL, 0);
		if (nthreads < 1 || nthreads > MAX_THREADS) {
			fprintf(stderr, "migload: THREADS must be 1..%d\n", MAX_THREADS);
			return 2;
		}
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc != 3 && argc != 4)
		return usage();
	pid_t dirtier = argc == 4 && atoi(argv[3]) > 0 ? start_dirtier((size_t)atoi(argv[3])) : 0;
	nblocks = strtoull(argv[2], NULL, 0);
	if (nblocks < 2 || nblocks < nthreads) {
		fprintf(stderr, "migload: BLOCKS must be at least 2 and THREADS\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0) {
		perror("migload: open");
		return 2;
	}
	struct worker *ws = calloc(nthreads, sizeof(*ws));
	gens = calloc(nblocks + 1, sizeof(*gens));
	if (!ws || !gens) {
		fprintf(stderr, "migload: out of memory\n");
		return 2;
	}
	for (unsigned t = 0; t < nthreads; t++) {
		struct worker *w = &ws[t];
		w->index = t;
		w->rng = 0x9e3779b97f4a7c15ull + t * 0x632be59bd9b4e019ull;
		w->written = calloc(blocks_of(t), sizeof(*w->written));
		if (!w->written || posix_memalign((void **)&w->wbuf, BS, BS) ||
		    posix_memalign((void **)&w->rbuf, BS, BS) ||
		    posix_memalign((void **)&w->ebuf, BS, BS)) {
			fprintf(stderr, "migload: out of memory\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("migload: started, %" PRIu64 " blocks of %d bytes, %u thread(s)\n", nblocks, BS,
	       nthreads);
	if (nthreads == 1) {
		work(&ws[0]);
	} else {
		for (unsigned t = 0; t < nthreads; t++) {
			int err = pthread_create(&ws[t].thread, NULL, work, &ws[t]);
			if (err) {
				fprintf(stderr, "migload: pthread_create: %s\n", strerror(err));
				return 2;
			}
		}
		for (unsigned t = 0; t < nthreads; t++)
			pthread_join(ws[t].thread, NULL);
	}
	if (dirtier > 0) {
		kill(dirtier, SIGKILL);
		waitpid(dirtier, NULL, 0);
	}
	printf("migload: stop mark seen after %" PRIu64 " writes; verifying\n", total_writes);
	uint64_t nwritten = 0, hash = 0xcbf29ce484222325ull;
	for (uint64_t b = 1; b <= nblocks; b++) {
		if (gens[b] != UINT64_MAX && read_block(&ws[0], b) == 0)
			check_block(&ws[0], b, gens[b], "final");
		nwritten += gens[b] != 0;
		for (int i = 0; i < 8; i++) {
			hash ^= (gens[b] >> (8 * i)) & 0xff;
			hash *= 0x100000001b3ull;
		}
	}
	printf("migload: result writes %" PRIu64 " reads %" PRIu64 " blocks %" PRIu64
	       " errors %" PRIu64 " mismatches %" PRIu64 " gens %016" PRIx64 "\n",
	       total_writes, total_reads, nwritten, total_errors, total_mismatches, hash);
	return total_errors || total_mismatches ? 1 : 0;
}
