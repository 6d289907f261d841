// SPDX-License-Identifier: MIT
/* The log sink (include/uvirtio/log.h): what a broken ring reports, the
 * level filter, and silence without a sink. */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "uvirtio/device.h"
#include "uvirtio/devq.h"
#include "uvirtio/log.h"
#include "uvirtio/mmio.h"
#include "uvirtio/virtio_spec.h"
#include "../support/log_internal.h"

#define GA 0x100000ull /* guest address of the fixture's memory */
#define DESC_OFF 0x0
#define AVAIL_OFF 0x1000
#define USED_OFF 0x2000
#define DATA_OFF 0x3000

static _Alignas(4096) char guest[1 << 16];

/* What the sink received: the count, the first two lines, the last one. */
struct capture {
	unsigned lines;
	int level;
	char first[320], second[320], last[320];
};

static void capture(void *opaque, int level, const char *msg)
{
	struct capture *c = opaque;

	if (c->lines == 0)
		snprintf(c->first, sizeof(c->first), "%s", msg);
	else if (c->lines == 1)
		snprintf(c->second, sizeof(c->second), "%s", msg);
	c->lines++;
	c->level = level;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

static const struct uvirtio_device_ops two_queues = {
	.name = "log-test",
	.device_id = 0xfff1,
	.num_queues = 2,
	.queue_max_size = 8,
};

struct fix {
	struct uvirtio_mem mem;
	struct uvirtio_device dev;
	struct uvirtio_devq *q;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct iovec iov[8];
	struct uvirtio_req req;
};

/* Queue 1 of a device, set up on a split ring of 8 in the fixture's memory:
 * the device core numbers its queues, so the log line can name it. */
static int fix_init(struct fix *f)
{
	struct uvirtio_mem_region r = { .guest_addr = GA, .size = sizeof(guest), .host_addr = guest, .fd = -1 };

	memset(guest, 0, sizeof(guest));
	memset(f, 0, sizeof(*f));
	uvirtio_mem_init(&f->mem);
	if (uvirtio_mem_add(&f->mem, &r))
		return -1;
	if (uvirtio_device_init(&f->dev, &two_queues, NULL, NULL, 0, &f->mem))
		return -1;
	f->q = uvirtio_device_queue(&f->dev, 1);
	f->desc = (struct vring_desc *)(guest + DESC_OFF);
	f->avail = (struct vring_avail *)(guest + AVAIL_OFF);
	uvirtio_req_init(&f->req, f->iov, 8);
	return uvirtio_devq_setup(f->q, &f->mem, 8, GA + DESC_OFF, GA + AVAIL_OFF, GA + USED_OFF, 0);
}

static void fix_destroy(struct fix *f)
{
	uvirtio_device_destroy(&f->dev);
}

/* Descriptor 7 reaches past the end of guest memory. */
static void make_overflowing_descriptor_available(struct fix *f)
{
	f->desc[7].addr = GA + DATA_OFF;
	f->desc[7].len = UINT32_MAX;
	f->desc[7].flags = VRING_DESC_F_WRITE;
	f->avail->ring[0] = 7;
	f->avail->idx = 1;
}

static void test_log_broken_ring_names_queue_check_and_value(void)
{
	struct capture c = { 0 };
	struct fix f;

	CHECK_EQ(fix_init(&f), 0);
	uvirtio_set_log(capture, UVIRTIO_LOG_DEBUG, &c);
	make_overflowing_descriptor_available(&f);

	CHECK_EQ(uvirtio_devq_pop(f.q, &f.req), -EIO);
	uvirtio_set_log(NULL, 0, NULL);

	/* The queue's fault, then what it leads to. */
	CHECK_EQ(c.lines, 2);
	CHECK_EQ(c.level, UVIRTIO_LOG_ERR);
	CHECK_STR(c.first, "queue 1: buffer outside guest memory (descriptor 7 addr 0x103000 length "
			   "4294967295); the queue is broken");
	CHECK_STR(c.second, "log-test device: DEVICE_NEEDS_RESET (buffer outside guest memory)");
	fix_destroy(&f);
}

static void test_log_broken_ring_logs_once(void)
{
	struct capture c = { 0 };
	struct fix f;

	CHECK_EQ(fix_init(&f), 0);
	uvirtio_set_log(capture, UVIRTIO_LOG_DEBUG, &c);
	make_overflowing_descriptor_available(&f);

	CHECK_EQ(uvirtio_devq_pop(f.q, &f.req), -EIO);
	CHECK_EQ(uvirtio_devq_pop(f.q, &f.req), -EIO);
	CHECK_EQ(uvirtio_devq_push(f.q, 7, 0), -EIO);
	uvirtio_set_log(NULL, 0, NULL);

	CHECK_EQ(c.lines, 2);
	fix_destroy(&f);
}

static void test_log_level_filter_passes_only_as_severe_or_worse(void)
{
	struct capture c = { 0 };

	uvirtio_set_log(capture, UVIRTIO_LOG_WARN, &c);
	CHECK(uvirtio_log_enabled(UVIRTIO_LOG_ERR));
	CHECK(uvirtio_log_enabled(UVIRTIO_LOG_WARN));
	CHECK(!uvirtio_log_enabled(UVIRTIO_LOG_INFO));
	uvirtio_log(UVIRTIO_LOG_DEBUG, "debug %d", 1);
	uvirtio_log(UVIRTIO_LOG_INFO, "info %d", 2);
	CHECK_EQ(c.lines, 0);
	uvirtio_log(UVIRTIO_LOG_WARN, "warn %d", 3);
	CHECK_EQ(c.lines, 1);
	CHECK_EQ(c.level, UVIRTIO_LOG_WARN);
	CHECK_STR(c.last, "warn 3");
	uvirtio_log(UVIRTIO_LOG_ERR, "err %d", 4);
	uvirtio_set_log(NULL, 0, NULL);

	CHECK_EQ(c.lines, 2);
	CHECK_EQ(c.level, UVIRTIO_LOG_ERR);
	CHECK_STR(c.last, "err 4");
}

static void test_log_errors_only_sink_still_gets_a_broken_ring(void)
{
	struct capture c = { 0 };
	struct fix f;

	/* A broken queue is an error: a sink for errors only still gets it. */
	CHECK_EQ(fix_init(&f), 0);
	uvirtio_set_log(capture, UVIRTIO_LOG_ERR, &c);
	make_overflowing_descriptor_available(&f);
	CHECK_EQ(uvirtio_devq_pop(f.q, &f.req), -EIO);
	uvirtio_log(UVIRTIO_LOG_DEBUG, "detail");
	uvirtio_set_log(NULL, 0, NULL);

	CHECK_EQ(c.lines, 2);
	CHECK(strstr(c.first, "queue 1: buffer outside guest memory") != NULL);
	fix_destroy(&f);
}

static void test_log_null_sink_is_silent(void)
{
	struct capture c = { 0 };
	struct fix f;

	/* Installed, then removed: the old sink hears nothing after. */
	CHECK_EQ(fix_init(&f), 0);
	uvirtio_set_log(capture, UVIRTIO_LOG_DEBUG, &c);
	uvirtio_set_log(NULL, UVIRTIO_LOG_DEBUG, &c);
	CHECK(!uvirtio_log_enabled(UVIRTIO_LOG_ERR));
	make_overflowing_descriptor_available(&f);

	CHECK_EQ(uvirtio_devq_pop(f.q, &f.req), -EIO);
	uvirtio_log(UVIRTIO_LOG_ERR, "nobody hears this");

	CHECK_EQ(c.lines, 0);
	/* The error is still the return value and the queue's reason. */
	CHECK_STR(uvirtio_devq_broken_reason(f.q), "buffer outside guest memory");
	fix_destroy(&f);
}

static void test_log_mmio_refused_access_names_offset_and_size(void)
{
	struct capture c = { 0 };
	struct uvirtio_mmio_dev *m;
	struct fix f;

	CHECK_EQ(fix_init(&f), 0);
	CHECK_EQ(uvirtio_mmio_dev_create(&m, &f.dev, NULL), 0);
	uvirtio_set_log(capture, UVIRTIO_LOG_WARN, &c);

	CHECK_EQ(uvirtio_mmio_dev_write(m, 0x70, 2, 1), -EINVAL);
	uvirtio_set_log(NULL, 0, NULL);

	CHECK_EQ(c.lines, 1);
	CHECK_EQ(c.level, UVIRTIO_LOG_WARN);
	CHECK_STR(c.last, "mmio: write of 2 bytes at 0x70: registers are aligned 32-bit words");
	uvirtio_mmio_dev_destroy(m);
	fix_destroy(&f);
}

TEST_MAIN(T(test_log_broken_ring_names_queue_check_and_value),
	  T(test_log_broken_ring_logs_once),
	  T(test_log_level_filter_passes_only_as_severe_or_worse),
	  T(test_log_errors_only_sink_still_gets_a_broken_ring),
	  T(test_log_null_sink_is_silent),
	  T(test_log_mmio_refused_access_names_offset_and_size))
