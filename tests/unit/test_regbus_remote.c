// SPDX-License-Identifier: MIT
/* The register bus across processes: forwarding, and a hostile other end. */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "uvirtio/regbus.h"

/* A device end with 16 plain 32-bit registers per space. */
struct regs {
	uint32_t r[2][16];
};

static int regs_read(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t *value)
{
	struct regs *g = opaque;

	if (space > 1 || offset >= 64 || offset % 4 || size != 4)
		return -EINVAL;
	*value = g->r[space][offset / 4];
	return 0;
}

static int regs_write(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t value)
{
	struct regs *g = opaque;

	if (space > 1 || offset >= 64 || offset % 4 || size != 4)
		return -EINVAL;
	g->r[space][offset / 4] = value;
	return 0;
}

struct server {
	int fd;
	struct uvirtio_regbus local;
	int ret;
};

static void *serve(void *arg)
{
	struct server *s = arg;

	s->ret = uvirtio_regbus_serve(s->fd, &s->local);
	return NULL;
}

static void test_regbus_remote_forwards_reads_writes_and_errors(void)
{
	struct regs g = { 0 };
	struct server s = { .local = { regs_read, regs_write, &g } };
	struct uvirtio_regbus_remote r;
	struct uvirtio_regbus *bus;
	pthread_t th;
	uint32_t v = 0;
	int sv[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	CHECK_EQ(pthread_create(&th, NULL, serve, &s), 0);
	uvirtio_regbus_remote_init(&r, sv[0]);
	bus = uvirtio_regbus_remote_bus(&r);
	CHECK_EQ(bus->write(bus->opaque, 1, 8, 4, 0xdeadbeef), 0);
	CHECK_EQ(bus->read(bus->opaque, 1, 8, 4, &v), 0);
	CHECK_EQ(v, 0xdeadbeef);
	CHECK_EQ(g.r[1][2], 0xdeadbeef);
	/* The device end's refusal comes back as it was. */
	CHECK_EQ(bus->read(bus->opaque, 0, 6, 4, &v), -EINVAL);
	/* A size no CPU makes never goes on the wire. */
	CHECK_EQ(bus->write(bus->opaque, 0, 0, 3, 1), -EINVAL);
	close(sv[0]);
	pthread_join(th, NULL);
	CHECK_EQ(s.ret, 0);
	close(sv[1]);
	uvirtio_regbus_remote_destroy(&r);
}

static void test_regbus_remote_access_fails_once_the_device_end_is_gone(void)
{
	struct uvirtio_regbus_remote r;
	struct uvirtio_regbus *bus;
	uint32_t v;
	int sv[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	uvirtio_regbus_remote_init(&r, sv[0]);
	bus = uvirtio_regbus_remote_bus(&r);
	CHECK_EQ(bus->read(bus->opaque, 0, 0, 4, &v), -ENOTCONN);
	CHECK_EQ(bus->write(bus->opaque, 0, 0, 4, 0), -ENOTCONN);
	close(sv[0]);
	uvirtio_regbus_remote_destroy(&r);
}

static void test_regbus_remote_refuses_a_reply_with_a_positive_status(void)
{
	struct uvirtio_regbus_remote r;
	struct uvirtio_regbus *bus;
	uint8_t req[16], rep[8] = { 1, 0, 0, 0 };
	uint32_t v;
	int sv[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* The reply is there before the request: the other end lies. */
	CHECK_EQ(write(sv[1], rep, sizeof(rep)), (ssize_t)sizeof(rep));
	uvirtio_regbus_remote_init(&r, sv[0]);
	bus = uvirtio_regbus_remote_bus(&r);
	CHECK_EQ(bus->read(bus->opaque, 0, 0, 4, &v), -EPROTO);
	CHECK_EQ(read(sv[1], req, sizeof(req)), (ssize_t)sizeof(req));
	close(sv[0]);
	close(sv[1]);
	uvirtio_regbus_remote_destroy(&r);
}

static void test_regbus_serve_refuses_a_malformed_request(void)
{
	struct regs g = { 0 };
	struct uvirtio_regbus local = { regs_read, regs_write, &g };
	uint8_t bad_op[16] = { 7, 0, 4 }, bad_size[16] = { 1, 0, 3 }, bad_pad[16] = { 1, 0, 4, 1 };
	const uint8_t *reqs[] = { bad_op, bad_size, bad_pad };

	for (unsigned i = 0; i < 3; i++) {
		int sv[2];

		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		CHECK_EQ(write(sv[0], reqs[i], 16), 16);
		CHECK_EQ(uvirtio_regbus_serve(sv[1], &local), -EPROTO);
		close(sv[0]);
		close(sv[1]);
	}
	/* A request cut short is the end of the stream, not an access. */
	{
		int sv[2];

		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		CHECK_EQ(write(sv[0], bad_op, 5), 5);
		close(sv[0]);
		CHECK_EQ(uvirtio_regbus_serve(sv[1], &local), 0);
		close(sv[1]);
	}
}

TEST_MAIN(T(test_regbus_remote_forwards_reads_writes_and_errors),
	  T(test_regbus_remote_access_fails_once_the_device_end_is_gone),
	  T(test_regbus_remote_refuses_a_reply_with_a_positive_status),
	  T(test_regbus_serve_refuses_a_malformed_request))
