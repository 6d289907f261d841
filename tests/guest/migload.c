/* migload: the guest's write/verify load of the migration test (migrate.py).
 *
 *     migload DEVICE BLOCKS [DIRTY_MIB]
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
 * back a pseudo-random block already written and compares it. It keeps going
 * until block 0 holds the host's stop mark (STOP_MARK, checked every
 * CHECK_EVERY writes; the host writes it into the image after the last
 * migration), then reads every block of [1, BLOCKS]: a written one must hold
 * the content of its last generation, an unwritten one only zeroes (the host
 * gives a fresh sparse image). Prints a progress line every PROGRESS writes
 * and at the end exactly one
 *   migload: result writes W reads R blocks B errors E mismatches M
 * (errors: failed or short reads and writes); exit 0 when E and M are 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#define MAGIC 0x6d69676c6f616431ull /* "migload1" */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	/* xorshift64*: deterministic, the same sequence every run. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
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
static uint64_t *wbuf, *rbuf, *ebuf;
static uint64_t writes, reads, errors, mismatches;

static int read_block(uint64_t block)
{
	ssize_t n = pread(fd, rbuf, BS, (off_t)(block * BS));
	reads++;
	if (n != BS) {
		errors++;
		printf("migload: read of block %" PRIu64 " returned %zd (%s)\n", block, n,
		       n < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

/* Compare rbuf with what block must hold (gen 0: never written, zeroes). */
static void check_block(uint64_t block, uint64_t gen, const char *when)
{
	if (gen)
		fill(ebuf, block, gen);
	else
		memset(ebuf, 0, BS);
	if (memcmp(rbuf, ebuf, BS) != 0) {
		mismatches++;
		if (mismatches <= 5)
			printf("migload: mismatch (%s) block %" PRIu64 ": expected gen %" PRIu64
			       ", found block %" PRIu64 " gen %" PRIu64 "\n",
			       when, block, gen, rbuf[1], rbuf[2]);
	}
}

/* Passes the dirtier has made over its buffer, in a shared page so that the
 * progress line shows whether it runs (0 without a dirtier). */
static volatile uint64_t *dirty_passes;

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

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: migload DEVICE BLOCKS [DIRTY_MIB]\n");
		return 2;
	}
	pid_t dirtier = argc == 4 && atoi(argv[3]) > 0 ? start_dirtier((size_t)atoi(argv[3])) : 0;
	uint64_t nblocks = strtoull(argv[2], NULL, 0);
	if (nblocks < 2) {
		fprintf(stderr, "migload: BLOCKS must be at least 2\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0) {
		perror("migload: open");
		return 2;
	}
	uint64_t *gens = calloc(nblocks + 1, sizeof(*gens));
	uint64_t *written = calloc(nblocks, sizeof(*written));
	if (!gens || !written || posix_memalign((void **)&wbuf, BS, BS) ||
	    posix_memalign((void **)&rbuf, BS, BS) || posix_memalign((void **)&ebuf, BS, BS)) {
		fprintf(stderr, "migload: out of memory\n");
		return 2;
	}
	uint64_t nwritten = 0; /* distinct blocks written, listed in written[] */
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("migload: started, %" PRIu64 " blocks of %d bytes\n", nblocks, BS);
	for (;;) {
		if (writes % CHECK_EVERY == 0 && read_block(0) == 0 &&
		    memcmp(rbuf, STOP_MARK, strlen(STOP_MARK)) == 0)
			break;
		uint64_t block = 1 + next_rand() % nblocks;
		uint64_t gen = writes + 1;
		fill(wbuf, block, gen);
		ssize_t n = pwrite(fd, wbuf, BS, (off_t)(block * BS));
		writes++;
		if (n != BS) {
			errors++;
			printf("migload: write of block %" PRIu64 " returned %zd (%s)\n", block, n,
			       n < 0 ? strerror(errno) : "short");
			/* Its content is unknown now: it is not checked. */
			gens[block] = UINT64_MAX;
		} else {
			if (gens[block] == 0)
				written[nwritten++] = block;
			gens[block] = gen;
		}
		uint64_t other = written[next_rand() % nwritten];
		if (gens[other] != UINT64_MAX && read_block(other) == 0)
			check_block(other, gens[other], "read-back");
		if (writes % PROGRESS == 0)
			printf("migload: progress writes %" PRIu64 " errors %" PRIu64
			       " mismatches %" PRIu64 " dirty-passes %" PRIu64 "\n", writes, errors,
			       mismatches, dirtier > 0 ? *dirty_passes : 0);
	}
	if (dirtier > 0) {
		kill(dirtier, SIGKILL);
		waitpid(dirtier, NULL, 0);
	}
	printf("migload: stop mark seen after %" PRIu64 " writes; verifying\n", writes);
	for (uint64_t b = 1; b <= nblocks; b++)
		if (gens[b] != UINT64_MAX && read_block(b) == 0)
			check_block(b, gens[b], "final");
	printf("migload: result writes %" PRIu64 " reads %" PRIu64 " blocks %" PRIu64
	       " errors %" PRIu64 " mismatches %" PRIu64 "\n",
	       writes, reads, nwritten, errors, mismatches);
	return errors || mismatches ? 1 : 0;
}
