// SPDX-License-Identifier: MIT
/*
 * `uvirtio demo` (blk): the main job on its embedded defaults. A virtio-blk
 * device serving a temporary image (one I/O thread per queue, io_uring)
 * behind the loopback transport; its driver, on this thread, probes it with
 * every feature and two queues, writes a pattern over the whole disk with
 * many requests in flight, flushes, reads it back and verifies it (and
 * checks the image file itself), discards and zeroes a range, asks for the
 * disk's ID; then removes the driver (a device reset) and probes again with
 * a smaller feature set and one queue, and verifies that the data survived.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "demo.h"
#include "feature_names.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/loopback.h"
#include "uvirtio/trace.h"

#define CHUNK (64u * 1024)  /* bytes per request */
#define DEPTH 16u           /* requests in flight per queue */
#define SERIAL "uvirtio-demo"
#define TIMEOUT_MS 10000

/* What the disk should hold: generation @gen of the pattern, except the
 * zeroed range. */
struct model {
	size_t size;
	unsigned gen[2];       /* pattern generation of the first half, the second */
	size_t zero_at, zero_len;
};

static uint64_t word_at(unsigned gen, uint64_t offset)
{
	uint64_t x = (offset / 8) * 0x9e3779b97f4a7c15ull + gen;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

static void fill(unsigned char *buf, size_t len, uint64_t offset, unsigned gen)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = word_at(gen, offset + i);

		memcpy(buf + i, &w, 8);
	}
}

/* The first offset in [offset, offset + len) where @buf differs from the
 * model, or SIZE_MAX. */
static size_t mismatch(const struct model *m, const unsigned char *buf, size_t len, uint64_t offset)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t at = offset + i, want = 0;

		if (at < m->zero_at || at >= m->zero_at + m->zero_len)
			want = word_at(m->gen[at >= m->size / 2], at);
		if (memcmp(buf + i, &want, 8))
			return at;
	}
	return SIZE_MAX;
}

/* One pass over the disk: what it writes or checks, and how far it got. */
struct pass {
	const struct model *m;
	bool write;
	size_t done;      /* requests completed */
	size_t first_bad; /* reads: first offset that differs from the model */
	int error;        /* first failed request's result */
	uint64_t error_at;
};

struct io {
	struct uvirtio_blk_drv_req req;
	struct iovec iov;
	unsigned char *buf;
	uint64_t offset;
	struct pass *pass;
	bool busy;
};

static void io_done(struct uvirtio_blk_drv_req *req)
{
	struct io *io = req->opaque;
	struct pass *p = io->pass;

	io->busy = false;
	p->done++;
	if (req->result && !p->error) {
		p->error = req->result;
		p->error_at = io->offset;
	} else if (!req->result && !p->write && p->first_bad == SIZE_MAX) {
		p->first_bad = mismatch(p->m, io->buf, CHUNK, io->offset);
	}
}

/* Write (generation @gen) or read and verify [from, to) of the disk with
 * CHUNK-sized requests, DEPTH in flight on every queue. @p is the caller's
 * and outlives the driver: after an error, requests still in flight complete
 * (cancelled) at remove, and their callbacks still find it. */
static int run_pass(struct uvirtio_blk_drv *drv, struct io *ios, struct pass *pp, const struct model *m,
		    bool write, unsigned gen, size_t from, size_t to, size_t *first_bad,
		    unsigned long *requests)
{
	unsigned nq = uvirtio_blk_drv_num_queues(drv);
	size_t next = from, total = (to - from) / CHUNK;

	*pp = (struct pass){ .m = m, .write = write, .first_bad = SIZE_MAX };
	while (pp->done < total && !pp->error) {
		size_t before = pp->done;

		for (unsigned q = 0; q < nq; q++) {
			for (unsigned d = 0; d < DEPTH && next < to; d++) {
				struct io *io = &ios[q * DEPTH + d];
				int ret;

				if (io->busy)
					continue;
				io->offset = next;
				io->pass = pp;
				io->iov = (struct iovec){ io->buf, CHUNK };
				if (write)
					fill(io->buf, CHUNK, next, gen);
				io->req = (struct uvirtio_blk_drv_req){
					.type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					.sector = next / 512, .iov = &io->iov, .niov = 1,
					.callback = io_done, .opaque = io,
				};
				ret = uvirtio_blk_drv_submit(drv, q, &io->req);
				if (ret == -EAGAIN || ret == -ENOSPC)
					break;
				if (ret) {
					fprintf(stderr, "uvirtio demo: submit failed: %s\n", strerror(-ret));
					return ret;
				}
				io->busy = true;
				next += CHUNK;
				(*requests)++;
			}
		}
		for (unsigned q = 0; q < nq; q++) {
			int n = uvirtio_blk_drv_poll(drv, q, DEPTH);

			if (n < 0) {
				fprintf(stderr, "uvirtio demo: queue %u failed: %s\n", q, strerror(-n));
				return n;
			}
		}
		if (pp->done == before)
			sched_yield();
	}
	if (pp->error) {
		fprintf(stderr, "uvirtio demo: %s at byte %llu failed: %s\n", write ? "write" : "read",
			(unsigned long long)pp->error_at, strerror(-pp->error));
		return pp->error;
	}
	*first_bad = pp->first_bad;
	return 0;
}

/* The image as the host sees it, read with pread: does it hold the model? */
static size_t check_image(const char *path, const struct model *m, unsigned char *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t bad = SIZE_MAX;

	if (fd < 0)
		return 0;
	for (size_t off = 0; off < m->size && bad == SIZE_MAX; off += CHUNK) {
		if (pread(fd, buf, CHUNK, (off_t)off) != (ssize_t)CHUNK) {
			bad = off;
			break;
		}
		bad = mismatch(m, buf, CHUNK, off);
	}
	close(fd);
	return bad;
}

static void print_limits(const struct uvirtio_blk_drv *drv)
{
	const struct uvirtio_blk_drv_limits *l = uvirtio_blk_drv_limits(drv);

	char seg[32] = "any size";

	if (l->size_max)
		snprintf(seg, sizeof(seg), "%u bytes", l->size_max);
	printf("  config: %llu sectors (%llu MiB), block size %u, up to %u segments of %s,\n"
	       "          %u queue%s on the device (%u used), write cache %s, %s\n",
	       (unsigned long long)l->capacity, (unsigned long long)(l->capacity >> 11), l->blk_size,
	       l->seg_max, seg, l->device_queues, l->device_queues == 1 ? "" : "s",
	       uvirtio_blk_drv_num_queues(drv), uvirtio_blk_drv_writeback(drv) ? "on" : "off",
	       uvirtio_blk_drv_read_only(drv) ? "read-only" : "writable");
	if (l->max_discard_sectors || l->max_write_zeroes_sectors)
		printf("          discard up to %u sectors, write zeroes up to %u sectors%s\n",
		       l->max_discard_sectors, l->max_write_zeroes_sectors,
		       l->write_zeroes_may_unmap ? " (may unmap)" : "");
}

struct round {
	const char *what;
	struct uvirtio_blk_drv_opts opts;
	uint64_t negotiated;
	unsigned long requests;
};

static int blk_round(struct uvirtio_trace_transport *tt, struct round *r, unsigned number, struct model *m,
		     const char *image, struct io *ios, unsigned nios)
{
	struct uvirtio_blk_drv drv;
	struct pass pass; /* outlives remove, which cancels what is in flight */
	char buf[512], id[VIRTIO_BLK_ID_BYTES + 1];
	size_t bad;
	int ret;

	printf("round %u: %s\n", number, r->what);
	ret = uvirtio_blk_drv_probe(&drv, uvirtio_trace_transport_handle(tt), &r->opts);
	if (ret) {
		fprintf(stderr, "uvirtio demo: probe failed: %s\n", strerror(-ret));
		return ret;
	}
	r->negotiated = uvirtio_driver_features(uvirtio_blk_drv_driver(&drv));
	print_limits(&drv);
	for (unsigned i = 0; i < nios && !ret; i++) {
		ios[i].buf = uvirtio_blk_drv_alloc_buf(&drv, CHUNK);
		if (!ios[i].buf)
			ret = -ENOMEM;
	}
	if (ret)
		goto out;

	if (number == 1) {
		ret = run_pass(&drv, ios, &pass, m, true, 1, 0, m->size, &bad, &r->requests);
		if (!ret)
			ret = uvirtio_blk_drv_flush(&drv, 0, TIMEOUT_MS);
		if (ret)
			goto out;
		m->gen[0] = m->gen[1] = 1;
		printf("  I/O: wrote %zu MiB in %zu requests of %u KiB, %u in flight per queue; flushed\n",
		       m->size >> 20, m->size / CHUNK, CHUNK >> 10, DEPTH);
	} else {
		ret = run_pass(&drv, ios, &pass, m, false, 0, 0, m->size, &bad, &r->requests);
		if (ret)
			goto out;
		if (bad != SIZE_MAX) {
			fprintf(stderr, "uvirtio demo: after the reset, byte %zu differs\n", bad);
			ret = -EIO;
			goto out;
		}
		printf("  I/O: read %zu MiB back after the reset: the data survived\n", m->size >> 20);
		ret = run_pass(&drv, ios, &pass, m, true, 2, m->size / 2, m->size, &bad, &r->requests);
		if (!ret)
			ret = uvirtio_blk_drv_flush(&drv, 0, TIMEOUT_MS);
		if (ret)
			goto out;
		m->gen[1] = 2;
		printf("  I/O: rewrote the second half with a new pattern; flushed\n");
	}

	ret = run_pass(&drv, ios, &pass, m, false, 0, 0, m->size, &bad, &r->requests);
	if (ret)
		goto out;
	if (bad != SIZE_MAX) {
		fprintf(stderr, "uvirtio demo: read back: byte %zu differs from what was written\n", bad);
		ret = -EIO;
		goto out;
	}
	bad = check_image(image, m, ios[0].buf);
	if (bad != SIZE_MAX) {
		fprintf(stderr, "uvirtio demo: the image file differs at byte %zu\n", bad);
		ret = -EIO;
		goto out;
	}
	printf("  I/O: read %zu MiB back: every byte verified, and so is the image file itself\n",
	       m->size >> 20);

	if (number == 1) {
		size_t at = m->size / 4, len = 1u << 20;

		ret = uvirtio_blk_drv_discard(&drv, 0, at / 512, (uint32_t)(len / 512), TIMEOUT_MS);
		if (!ret)
			ret = uvirtio_blk_drv_write_zeroes(&drv, 0, at / 512, (uint32_t)(len / 512), true,
							   TIMEOUT_MS);
		if (ret) {
			fprintf(stderr, "uvirtio demo: discard / write zeroes failed: %s\n", strerror(-ret));
			goto out;
		}
		m->zero_at = at;
		m->zero_len = len;
		ret = run_pass(&drv, ios, &pass, m, false, 0, 0, m->size, &bad, &r->requests);
		if (!ret && bad != SIZE_MAX) {
			fprintf(stderr, "uvirtio demo: after write zeroes, byte %zu differs\n", bad);
			ret = -EIO;
		}
		if (ret)
			goto out;
		printf("  I/O: discarded, then zeroed (with unmap) 1 MiB at %zu MiB: reads back as zeroes\n",
		       at >> 20);
		ret = uvirtio_blk_drv_get_id(&drv, 0, id, TIMEOUT_MS);
		if (ret)
			goto out;
		printf("  I/O: the disk's ID is \"%s\"\n", id);
	}
	printf("  negotiated %s\n", features_describe(features_blk_names, r->negotiated, buf, sizeof(buf)));
	printf("  removing the driver:\n");
out:
	if (ret)
		fprintf(stderr, "uvirtio demo: round %u failed: %s\n", number, strerror(-ret));
	/* Reset first: after an error the device may still hold buffers. */
	uvirtio_blk_drv_remove(&drv);
	for (unsigned i = 0; i < nios; i++) {
		uvirtio_blk_drv_free_buf(&drv, ios[i].buf);
		ios[i].buf = NULL;
	}
	return ret;
}

struct device_report {
	struct uvirtio_blk_dev_stats st;
	unsigned resets;
};

static int device_report(struct uvirtio_device *dev, void *arg)
{
	struct device_report *r = arg;
	struct uvirtio_device_stats st;

	uvirtio_blk_dev_get_stats(uvirtio_device_priv(dev), &r->st);
	uvirtio_device_get_stats(dev, &st);
	r->resets = st.resets;
	return 0;
}

static int make_image(char *path, size_t size)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, 4096, "%s/uvirtio-demo-XXXXXX.img", dir && *dir ? dir : "/tmp");
	fd = mkstemps(path, 4);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		int err = -errno;

		close(fd);
		unlink(path);
		return err;
	}
	close(fd);
	return 0;
}

int demo_blk_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "queues", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct round rounds[2] = {
		{ .what = "the driver asks for every feature it knows and two queues",
		  .opts = { .num_queues = 2 } },
		{ .what = "after the reset, the driver renegotiates with fewer features and one queue",
		  .opts = { .features = UVIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | UVIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
					UVIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX),
			    .num_queues = 1 } },
	};
	struct uvirtio_blk_dev_config bc = { .backend = UVIRTIO_BLK_BACKEND_FILE, .num_queues = 2,
					     .serial = SERIAL };
	struct device_report rep = { 0 };
	struct uvirtio_trace_transport tt;
	struct uvirtio_loopback *lb = NULL;
	struct uvirtio_blk_dev blk;
	struct model m = { .size = 32u << 20 };
	struct io *ios;
	char image[4096];
	char *end;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		unsigned long v;

		switch (c) {
		case 's':
			v = strtoul(optarg, &end, 10);
			if (*end || v < 4 || v > 1024) {
				fprintf(stderr, "uvirtio demo: --size is in MiB, from 4 to 1024, not '%s'\n", optarg);
				return 2;
			}
			m.size = v << 20;
			break;
		case 'q':
			v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > 8) {
				fprintf(stderr, "uvirtio demo: --queues must be from 1 to 8, not '%s'\n", optarg);
				return 2;
			}
			bc.num_queues = (unsigned)v;
			rounds[0].opts.num_queues = (unsigned)v;
			break;
		case 'h':
			printf("usage: uvirtio demo [blk] [--size=MiB] [--queues=N]\n"
			       "  --size=MiB   the temporary image (default 32)\n"
			       "  --queues=N   queues of the device and of the first round (default 2)\n");
			return 0;
		default:
			return 2;
		}
	}

	ios = calloc(bc.num_queues * DEPTH, sizeof(*ios));
	ret = ios ? make_image(image, m.size) : -ENOMEM;
	if (ret) {
		fprintf(stderr, "uvirtio demo: cannot make a temporary image: %s\n", strerror(-ret));
		free(ios);
		return 1;
	}
	bc.path = image;
	ret = uvirtio_loopback_create(&lb, NULL);
	if (!ret)
		ret = uvirtio_blk_dev_init(&blk, &bc, uvirtio_loopback_mem(lb));
	if (!ret) {
		ret = uvirtio_loopback_start(lb, uvirtio_blk_dev_device(&blk));
		if (ret)
			uvirtio_blk_dev_destroy(&blk);
	}
	if (ret) {
		fprintf(stderr, "uvirtio demo: cannot start the blk device: %s\n", strerror(-ret));
		uvirtio_loopback_destroy(lb);
		unlink(image);
		free(ios);
		return 1;
	}
	printf("uvirtio demo: a virtio-blk device serving a %zu MiB temporary image\n"
	       "(%s; one I/O thread per queue, io_uring) and its driver (this thread)\n"
	       "over the loopback transport: guest memory in a memfd mapped once for each\n"
	       "side, notifications through eventfds.\n\n",
	       m.size >> 20, image);

	uvirtio_trace_transport_init(&tt, uvirtio_loopback_transport(lb), demo_print_step,
				     (void *)features_blk_names);
	uvirtio_trace_transport_set_quiet(&tt, UVIRTIO_TRACE_QUIET_NOTIFY | UVIRTIO_TRACE_QUIET_GET_STATUS | UVIRTIO_TRACE_QUIET_CONFIG);
	for (unsigned r = 0; r < 2 && !ret; r++) {
		ret = blk_round(&tt, &rounds[r], r + 1, &m, image, ios, rounds[r].opts.num_queues * DEPTH);
		printf("\n");
	}
	uvirtio_loopback_run_on_device(lb, device_report, &rep);
	uvirtio_loopback_destroy(lb);
	uvirtio_blk_dev_destroy(&blk);
	unlink(image);
	free(ios);
	if (ret)
		return 1;

	printf("summary: 2 negotiations (%u queues, then 1); every byte written was read back\n"
	       "         and verified, through the driver and in the image file, across a reset.\n"
	       "         The device served %llu reads (%llu MiB), %llu writes (%llu MiB), %llu flushes,\n"
	       "         %llu discards, %llu write-zeroes and %llu get-id, %llu errors, and went\n"
	       "         through %u resets (one at each probe, one at each removal).\n",
	       rounds[0].opts.num_queues, (unsigned long long)rep.st.reads,
	       (unsigned long long)(rep.st.bytes_read >> 20), (unsigned long long)rep.st.writes,
	       (unsigned long long)(rep.st.bytes_written >> 20), (unsigned long long)rep.st.flushes,
	       (unsigned long long)rep.st.discards, (unsigned long long)rep.st.write_zeroes,
	       (unsigned long long)rep.st.get_ids, (unsigned long long)(rep.st.ioerr + rep.st.unsupp),
	       rep.resets);
	return 0;
}
