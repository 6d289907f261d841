// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uvirtio/regbus.h"

#define OP_READ 1
#define OP_WRITE 2
#define REQUEST_BYTES 16
#define REPLY_BYTES 8

struct regbus_remote {
	struct uvirtio_regbus bus; /* handed out by uvirtio_regbus_remote_bus() */
	int fd;
	pthread_mutex_t lock; /* one access on the wire at a time */
};
UVIRTIO_OPAQUE_FITS(struct regbus_remote, struct uvirtio_regbus_remote);

static inline struct regbus_remote *regbus_remote_of(struct uvirtio_regbus_remote *p)
{
	return (struct regbus_remote *)p;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Whole messages or nothing: 0, -ENOTCONN at end of stream, or -errno. */
static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 && errno != EPIPE && errno != ECONNRESET ? -errno : -ENOTCONN;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = recv(fd, p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 && errno != ECONNRESET ? -errno : -ENOTCONN;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int transact(struct regbus_remote *r, uint8_t op, unsigned space, uint64_t offset,
		    unsigned size, uint32_t value, uint32_t *out)
{
	uint8_t req[REQUEST_BYTES] = { op, (uint8_t)space, (uint8_t)size, 0 }, rep[REPLY_BYTES];
	int32_t status;
	int ret;

	if (space > 255 || (size != 1 && size != 2 && size != 4))
		return -EINVAL;
	put_le(req + 4, value, 4);
	put_le(req + 8, offset, 8);
	pthread_mutex_lock(&r->lock);
	ret = send_all(r->fd, req, sizeof(req));
	if (!ret)
		ret = recv_all(r->fd, rep, sizeof(rep));
	pthread_mutex_unlock(&r->lock);
	if (ret)
		return ret;
	status = (int32_t)get_le(rep, 4);
	/* The other end is another process, not trusted to report sense. */
	if (status > 0 || status < -4095)
		return -EPROTO;
	if (out)
		*out = (uint32_t)get_le(rep + 4, 4);
	return status;
}

static int remote_read(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t *value)
{
	return transact(opaque, OP_READ, space, offset, size, 0, value);
}

static int remote_write(void *opaque, unsigned space, uint64_t offset, unsigned size, uint32_t value)
{
	return transact(opaque, OP_WRITE, space, offset, size, value, NULL);
}

void uvirtio_regbus_remote_init(struct uvirtio_regbus_remote *public_r, int fd)
{
	struct regbus_remote *r = regbus_remote_of(public_r);

	r->fd = fd;
	pthread_mutex_init(&r->lock, NULL);
	r->bus = (struct uvirtio_regbus){ .read = remote_read, .write = remote_write, .opaque = r };
}

struct uvirtio_regbus *uvirtio_regbus_remote_bus(struct uvirtio_regbus_remote *r)
{
	return &regbus_remote_of(r)->bus;
}

void uvirtio_regbus_remote_destroy(struct uvirtio_regbus_remote *public_r)
{
	struct regbus_remote *r = regbus_remote_of(public_r);

	pthread_mutex_destroy(&r->lock);
	memset(public_r, 0, sizeof(*public_r));
	r->fd = -1;
}

int uvirtio_regbus_serve(int fd, const struct uvirtio_regbus *local)
{
	for (;;) {
		uint8_t req[REQUEST_BYTES], rep[REPLY_BYTES] = { 0 };
		uint32_t value = 0;
		unsigned size;
		int ret = recv_all(fd, req, sizeof(req));

		if (ret)
			return ret == -ENOTCONN ? 0 : ret;
		size = req[2];
		if ((req[0] != OP_READ && req[0] != OP_WRITE) || req[3] ||
		    (size != 1 && size != 2 && size != 4))
			return -EPROTO;
		if (req[0] == OP_READ)
			ret = local->read(local->opaque, req[1], get_le(req + 8, 8), size, &value);
		else
			ret = local->write(local->opaque, req[1], get_le(req + 8, 8), size,
					   (uint32_t)get_le(req + 4, 4));
		put_le(rep, (uint32_t)ret, 4);
		put_le(rep + 4, value, 4);
		ret = send_all(fd, rep, sizeof(rep));
		if (ret)
			return ret == -ENOTCONN ? 0 : ret;
	}
}
