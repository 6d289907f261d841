/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user backend transport: serves one device to a vhost-user
 * front-end (QEMU, or anything speaking QEMU docs/interop/vhost-user.rst)
 * over a unix socket. The front-end's messages become device core calls;
 * guest memory arrives as fds that are mapped into the map returned by
 * uvirtio_vhost_backend_mem(); kicks and used-buffer notifications travel
 * through the eventfds the front-end hands over.
 *
 *   struct uvirtio_vhost_backend *vb;
 *   struct uvirtio_vhost_backend_config cfg = { .socket_path = "/run/rng.sock", .fd = -1 };
 *   uvirtio_vhost_backend_create(&vb, &cfg);
 *   uvirtio_rng_dev_init(&rng, uvirtio_vhost_backend_mem(vb));
 *   uvirtio_vhost_backend_attach(vb, uvirtio_rng_dev_device(&rng));
 *   uvirtio_vhost_backend_listen(vb);   // "socket in use" shows here
 *   uvirtio_vhost_backend_run(vb);      // until uvirtio_vhost_backend_stop()
 *
 * The front-end is hostile input: every message is checked, a bad one gets
 * an error reply or ends the connection, and nothing it sends crashes the
 * process, leaks an fd or a mapping, or maps memory beyond a file's end.
 *
 * Thread rules: the thread that calls uvirtio_vhost_backend_run() is the
 * device's control thread while it runs (every device core call happens
 * there). uvirtio_vhost_backend_stop() and uvirtio_vhost_backend_get_stats()
 * may be called from any thread; stop also from a signal handler. The other
 * functions are for the thread that owns the backend while run() is not
 * running.
 */
#ifndef UVIRTIO_VHOST_BACKEND_H
#define UVIRTIO_VHOST_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"
#include "uvirtio/memory.h"

struct uvirtio_vhost_backend;

struct uvirtio_vhost_backend_config {
	/* Where to listen (or, with @client, to connect); NULL with @fd. */
	const char *socket_path;
	/* Connect to @socket_path instead of listening on it. */
	bool client;
	/* An inherited socket (a --fd=N option), or -1: either a listening
	 * socket (SO_ACCEPTCONN) to accept front-ends from, or one already
	 * connected to a front-end. The backend owns it from create on. */
	int fd;
	/* What goes wrong with a front-end (a request refused, a connection
	 * dropped) is logged through uvirtio_set_log() (log.h), as
	 * "vhost-user: ..." lines from the thread running
	 * uvirtio_vhost_backend_run() (or listen()). */
};

struct uvirtio_vhost_backend_stats {
	uint64_t connections; /* front-ends served (accepted or connected) */
	uint64_t messages;    /* requests received */
	uint64_t errors;      /* requests refused or malformed, protocol errors */
	uint64_t disconnects_on_error; /* connections ended because of an error */
	bool connected;       /* a front-end is connected now */
};

/**
 * uvirtio_vhost_backend_create() - a backend transport, not yet serving.
 * @out: set to the new backend, owned by the caller (free with destroy).
 * @cfg: copied; @cfg->socket_path is copied too. Exactly one of socket_path
 *       and fd (>= 0) must be given; client needs socket_path.
 *
 * Return: 0; -EINVAL for a config that names no socket or two, or a path
 * longer than a unix socket address holds (-ENAMETOOLONG); -ENOMEM; or
 * eventfd's negative errno. On error @cfg->fd is left open.
 */
UVIRTIO_API
int uvirtio_vhost_backend_create(struct uvirtio_vhost_backend **out,
				 const struct uvirtio_vhost_backend_config *cfg);

/**
 * uvirtio_vhost_backend_mem() - guest memory as the device sees it: pass it
 * to the device type's init. The backend fills it from the front-end's
 * memory table and empties it when the front-end goes; it lives as long as
 * @vb.
 */
UVIRTIO_API
struct uvirtio_mem *uvirtio_vhost_backend_mem(struct uvirtio_vhost_backend *vb);

/**
 * uvirtio_vhost_backend_attach() - serve @dev, initialised with
 * uvirtio_vhost_backend_mem(@vb). Sets @dev's hooks. @dev must outlive its
 * use by @vb (until destroy, or another attach).
 *
 * Return: 0; -EBUSY while run() runs; -ENOMEM.
 */
UVIRTIO_API
int uvirtio_vhost_backend_attach(struct uvirtio_vhost_backend *vb, struct uvirtio_device *dev);

/**
 * uvirtio_vhost_backend_set_state_file() - keep the packed rings' inflight
 * state in the file at @path when the front-end hands over no inflight area
 * of its own (QEMU's vhost-user-net: it acks INFLIGHT_SHMFD but never asks,
 * and after a backend's death it restarts every packed ring at the base of
 * its first start). A backend started again on the same file resumes the
 * rings from it, as from a front-end's area (docs/inflight.md). The file is
 * created (mode 0600) or reused at the first packed ring's start; the state
 * in it is taken only when it was written for the same guest memory (the
 * memory files' device and inode, the regions' addresses, sizes and
 * offsets) and, ring by ring, the same descriptor address, else it is
 * cleared. An area from SET_INFLIGHT_FD replaces it.
 * Split rings do without it (QEMU restarts them at the used index). @path is
 * copied; NULL turns it off. Not while run() runs.
 *
 * Return: 0; -EBUSY while run() runs; -ENOMEM.
 */
UVIRTIO_API
int uvirtio_vhost_backend_set_state_file(struct uvirtio_vhost_backend *vb, const char *path);

/**
 * uvirtio_vhost_backend_listen() - bind and listen now (server mode), so a
 * command can report a bad path before it runs. A stale socket file that
 * nobody accepts connections on is replaced. With an inherited fd this
 * checks what kind of socket it is; in client mode it does nothing.
 * Calling it again after success does nothing.
 *
 * Return: 0; -EADDRINUSE when something accepts connections at the path;
 * -EEXIST when the path exists and is not a socket; -ENOTSOCK when the
 * inherited fd is not a stream socket; or the negative errno of socket,
 * bind or listen.
 */
UVIRTIO_API
int uvirtio_vhost_backend_listen(struct uvirtio_vhost_backend *vb);

/**
 * uvirtio_vhost_backend_run() - serve front-ends until stopped: in server
 * mode (a path, or an inherited listening socket) one connection at a time,
 * back to accepting after each disconnect; in client mode, or with an
 * inherited connected socket, the one connection. When a front-end goes,
 * the rings stop, the device is reset, its memory is unmapped and every fd
 * it sent is closed.
 *
 * Return: 0 when uvirtio_vhost_backend_stop() was called, or the one
 * connection of client or connected-fd mode ended; -EINVAL when no device is
 * attached; -EBUSY when already running; or the negative errno of
 * listen/accept/connect.
 */
UVIRTIO_API
int uvirtio_vhost_backend_run(struct uvirtio_vhost_backend *vb);

/**
 * uvirtio_vhost_backend_stop() - make run() disconnect and return, now or,
 * when it has not started yet, as soon as it does. Once stopped, run()
 * returns at once every time. Async-signal-safe; any thread.
 */
UVIRTIO_API
void uvirtio_vhost_backend_stop(struct uvirtio_vhost_backend *vb);

/**
 * uvirtio_vhost_backend_get_stats() - counters for tests and reports, read
 * atomically one by one (any thread).
 */
UVIRTIO_API
void uvirtio_vhost_backend_get_stats(const struct uvirtio_vhost_backend *vb,
				     struct uvirtio_vhost_backend_stats *out);

/**
 * uvirtio_vhost_backend_destroy() - disconnect, close the sockets (and remove
 * the socket file this backend created), free @vb. The attached device is
 * reset but not destroyed: it stays the caller's. run() must have returned.
 */
UVIRTIO_API
void uvirtio_vhost_backend_destroy(struct uvirtio_vhost_backend *vb);

#endif
